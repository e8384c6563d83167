// Stub: replaced by the page's owner.
export function ApiKeys(_props: Record<string, unknown>) {
  return (
    <section>
      <h1>API keys</h1>
    </section>
  );
}
