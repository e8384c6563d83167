export function WebhookDetail(_props: { id?: string }) {
  return (
    <section>
      <h1>Webhook</h1>
    </section>
  );
}
