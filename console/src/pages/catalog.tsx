// Stub: replaced by the page's owner.
export function Catalog(_props: Record<string, unknown>) {
  return (
    <section>
      <h1>Event catalog</h1>
    </section>
  );
}
