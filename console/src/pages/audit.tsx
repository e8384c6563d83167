// Stub: replaced by the page's owner.
export function AuditLog(_props: Record<string, unknown>) {
  return (
    <section>
      <h1>Audit log</h1>
    </section>
  );
}
