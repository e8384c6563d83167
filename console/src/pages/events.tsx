// Stub: replaced by the page's owner. Routes: /events, /events/:id (see app.tsx).
export function EventList(_props: Record<string, unknown>) {
  return (
    <section>
      <h1>Events</h1>
    </section>
  );
}

export function EventDetail(_props: { id?: string }) {
  return (
    <section>
      <h1>Event</h1>
    </section>
  );
}
