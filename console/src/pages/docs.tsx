// Stub: replaced by the page's owner.
export function Docs(_props: Record<string, unknown>) {
  return (
    <section>
      <h1>Docs</h1>
    </section>
  );
}
