// The customer portal's entry, /console/portal#token=<link token>: the link token is exchanged
// once for a session token (POST /v1/portal-sessions/exchange), which is kept in this tab's
// sessionStorage like a key; the fragment is dropped from the address at once, so the link
// token is never left in the history; then the portal's webhook pages open. A reload of the
// entry reuses the kept session until it expires.

import { useEffect, useState } from 'preact/hooks';
import { useLocation } from 'preact-iso';
import { ApiError, request } from '../api';
import { ErrorNotice, Loading } from '../components';
import { clearToken, readToken, useSignIn } from '../session';

export const PORTAL_BASE = '/console/portal';

interface Exchanged {
  session_token: string;
  expires_at: string;
  account_id: string;
  webhook_ids: string[] | null;
  read_only: boolean;
}

/** The link token in a fragment such as `#token=...`, if any. */
export function linkTokenOf(hash: string): string | null {
  const params = new URLSearchParams(hash.replace(/^#/, ''));
  const token = params.get('token');
  return token && token.trim() ? token.trim() : null;
}

type Outcome = { kind: 'working'; what: string } | { kind: 'failed'; title: string; error: unknown } | { kind: 'no-link' };

// One exchange per link token per page load, even if the entry renders twice.
const exchanges = new Map<string, Promise<Exchanged>>();

function exchange(token: string): Promise<Exchanged> {
  let pending = exchanges.get(token);
  if (!pending) {
    pending = request<Exchanged>('POST', '/v1/portal-sessions/exchange', { body: { token }, token: null });
    exchanges.set(token, pending);
  }
  return pending;
}

/** What a refused link means for the person holding it. */
function linkTrouble(err: unknown): { title: string; error: unknown } {
  if (err instanceof ApiError && err.status === 401) {
    return { title: 'This portal link cannot be used', error: new Error(`${err.message}. Ask whoever sent you the link for a new one.`) };
  }
  if (err instanceof ApiError && err.status === 429) {
    return { title: 'Too many attempts', error: err };
  }
  return { title: 'The portal could not be opened', error: err };
}

export function Portal(_props: Record<string, unknown>) {
  const signIn = useSignIn();
  const { route } = useLocation();
  const [outcome, setOutcome] = useState<Outcome>({ kind: 'working', what: 'Opening the portal' });

  useEffect(() => {
    const token = linkTokenOf(window.location.hash);
    if (token) {
      // Drop the fragment before anything else: the link works once and must not linger.
      history.replaceState(history.state, '', `${PORTAL_BASE}${window.location.search}`);
      setOutcome({ kind: 'working', what: 'Opening the portal link' });
      exchange(token)
        .then((session) => signIn(session.session_token))
        .then(
          () => route(`${PORTAL_BASE}/webhooks`, true),
          (err: unknown) => setOutcome({ kind: 'failed', ...linkTrouble(err) }),
        );
      return;
    }
    const kept = readToken();
    if (!kept || !kept.startsWith('rhp_')) {
      setOutcome({ kind: 'no-link' });
      return;
    }
    signIn(kept).then(
      () => route(`${PORTAL_BASE}/webhooks`, true),
      (err: unknown) => {
        if (err instanceof ApiError && err.status === 401) {
          clearToken();
          setOutcome({ kind: 'failed', title: 'This portal session has ended', error: new Error(`${err.message}. Ask whoever sent you the link for a new one.`) });
        } else setOutcome({ kind: 'failed', title: 'The portal could not be opened', error: err });
      },
    );
  }, []);

  return (
    <section>
      <h1>Customer portal</h1>
      {outcome.kind === 'working' ? <Loading what={outcome.what} /> : null}
      {outcome.kind === 'failed' ? <ErrorNotice error={outcome.error} title={outcome.title} /> : null}
      {outcome.kind === 'no-link' ? (
        <p role="status">This page opens a portal link: use the whole link you were sent (it ends with #token=…). A link works once, until it expires.</p>
      ) : null}
    </section>
  );
}

/** Shown at a portal page when the tab's portal session has ended (expired or revoked). */
export function PortalEnded({ notice }: { notice?: string }) {
  return (
    <section>
      <h1>Customer portal</h1>
      <div class="error-notice" role="alert">
        <strong>This portal session has ended</strong>
        {notice ? <span>: {notice}</span> : null}. Ask whoever sent you the link for a new one.
      </div>
    </section>
  );
}
