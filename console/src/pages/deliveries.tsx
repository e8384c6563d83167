export function DeliveryList(_props: { id?: string }) {
  return (
    <section>
      <h1>Deliveries</h1>
    </section>
  );
}

export function DeliveryDetail(_props: { id?: string; deliveryId?: string }) {
  return (
    <section>
      <h1>Delivery</h1>
    </section>
  );
}
