export function WebhookList(_props: Record<string, unknown>) {
  return (
    <section>
      <h1>Webhooks</h1>
    </section>
  );
}

export function WebhookNew(_props: Record<string, unknown>) {
  return (
    <section>
      <h1>New webhook</h1>
    </section>
  );
}
