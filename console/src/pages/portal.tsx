// Stub: replaced by the page's owner. The customer portal's entry, /console/portal#token=...:
// exchange the link token (POST /v1/portal-sessions/exchange), keep the session token with
// useSignIn() from ../session, drop the fragment with history.replaceState, then go to
// /console/portal/webhooks. Rendered whether or not a session exists.
export function Portal(_props: Record<string, unknown>) {
  return (
    <section>
      <h1>Customer portal</h1>
    </section>
  );
}
