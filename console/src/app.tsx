// The console: sign-in, the session, the layout (nav, theme, sign-out) and the routes.
// Every page's URL is a path under /console/ so a deep link works after a reload.

import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useMemo, useState } from 'preact/hooks';
import { LocationProvider, Route, Router, lazy, useLocation } from 'preact-iso';
import { ApiError, type Me } from './api';
import { ErrorNotice, Link, Loading } from './components';
import {
  AreaContext,
  SessionContext,
  SignInContext,
  canWrite,
  clearToken,
  fetchMe,
  isPortal,
  readToken,
  storeToken,
  useArea,
  useSession,
  useSignIn,
  type Area,
  type Session,
} from './session';
import { UNAUTHORIZED_EVENT } from './session_store';
import { ThemeToggle } from './theme';
import { DeliveryDetail, DeliveryList } from './pages/deliveries';
import { WebhookDetail } from './pages/webhook';
import { WebhookList, WebhookNew } from './pages/webhooks';
import { EventDetail, EventList } from './pages/events';
import { ApiKeys } from './pages/api_keys';
import { Catalog } from './pages/catalog';
import { AuditLog } from './pages/audit';
import { Docs } from './pages/docs';
import { Portal, PortalEnded } from './pages/portal';

// The workflow pages carry the code editor (CodeMirror, most of the bundle): loaded on first use.
const workflows = () => import('./pages/workflows');
const WorkflowList = lazy(() => workflows().then((m) => m.WorkflowList));
const WorkflowNew = lazy(() => workflows().then((m) => m.WorkflowNew));
const WorkflowDetail = lazy(() => workflows().then((m) => m.WorkflowDetail));
const ExecutionDetail = lazy(() => workflows().then((m) => m.ExecutionDetail));

export const CONSOLE = '/console';
export const PORTAL = '/console/portal';

const CONSOLE_AREA: Area = { base: CONSOLE, portal: false };
const PORTAL_AREA: Area = { base: PORTAL, portal: true };

type State =
  | { kind: 'checking' }
  | { kind: 'signed-out'; notice?: string }
  | { kind: 'signed-in'; me: Me };

export function App() {
  return (
    <LocationProvider scope={CONSOLE}>
      <Console />
    </LocationProvider>
  );
}

function Console() {
  const [state, setState] = useState<State>(() => (readToken() ? { kind: 'checking' } : { kind: 'signed-out' }));
  const [checkError, setCheckError] = useState<unknown>(undefined);

  const signIn = useCallback(async (token: string) => {
    const me = await fetchMe(token);
    storeToken(token);
    setState({ kind: 'signed-in', me });
    return me;
  }, []);

  const signOut = useCallback((notice?: string) => {
    clearToken();
    setState({ kind: 'signed-out', notice });
  }, []);

  // A kept token is checked once per load of the app (a reload keeps the tab's session).
  useEffect(() => {
    if (state.kind !== 'checking') return;
    const token = readToken();
    if (!token) return setState({ kind: 'signed-out' });
    fetchMe(token).then(
      (me) => setState({ kind: 'signed-in', me }),
      (err: unknown) => {
        if (err instanceof ApiError && err.status === 401) signOut('Your session has ended: sign in again.');
        else setCheckError(err);
      },
    );
  }, [state.kind]);

  // Any call answered 401 with the kept token ends the session (a revoked key, an expired portal link).
  useEffect(() => {
    const onUnauthorized = () => signOut('Your session has ended: sign in again.');
    window.addEventListener(UNAUTHORIZED_EVENT, onUnauthorized);
    return () => window.removeEventListener(UNAUTHORIZED_EVENT, onUnauthorized);
  }, [signOut]);

  const session = useMemo<Session | null>(() => {
    if (state.kind !== 'signed-in') return null;
    const me = state.me;
    return {
      me,
      accountId: me.account_id,
      canWrite: canWrite(me),
      portal: isPortal(me),
      signIn,
      signOut: () => signOut(),
    };
  }, [state, signIn, signOut]);

  const { path } = useLocation();
  const atPortalEntry = path === PORTAL;

  let body: ComponentChildren;
  if (atPortalEntry) {
    // The portal's entry exchanges its link token whatever session the tab has.
    body = (
      <Shell>
        <Portal />
      </Shell>
    );
  } else if (state.kind === 'checking') {
    body = <Shell>{checkError ? <ErrorNotice error={checkError} title="Could not check the session" /> : <Loading what="Checking the session" />}</Shell>;
  } else if (state.kind === 'signed-out' || !session) {
    // A portal page's customer has no key to sign in with: their link must be opened again.
    body = (
      <Shell>
        {path.startsWith(`${PORTAL}/`) ? <PortalEnded /> : <SignIn notice={state.kind === 'signed-out' ? state.notice : undefined} />}
      </Shell>
    );
  } else {
    body = (
      <SessionContext.Provider value={session}>
        <SignedIn />
      </SessionContext.Provider>
    );
  }
  return <SignInContext.Provider value={signIn}>{body}</SignInContext.Provider>;
}

function Shell({ children, nav }: { children: ComponentChildren; nav?: ComponentChildren }) {
  return (
    <>
      <header class="container">
        <nav aria-label="Console">
          <ul>
            <li>
              <strong>roomhooks</strong>
            </li>
          </ul>
          {nav}
          <ul>
            <li>
              <ThemeToggle />
            </li>
          </ul>
        </nav>
      </header>
      <main class="container">{children}</main>
    </>
  );
}

const CONSOLE_NAV: [string, string][] = [
  ['/webhooks', 'Webhooks'],
  ['/events', 'Events'],
  ['/workflows', 'Workflows'],
  ['/api-keys', 'API keys'],
  ['/catalog', 'Catalog'],
  ['/audit', 'Audit log'],
  ['/docs', 'Docs'],
];

const PORTAL_NAV: [string, string][] = [
  ['/webhooks', 'Webhooks'],
  ['/catalog', 'Catalog'],
];

function MainNav() {
  const { base, portal } = useArea();
  const { path } = useLocation();
  const session = useSession();
  const items = portal ? PORTAL_NAV : CONSOLE_NAV;
  return (
    <ul class="main-nav">
      {items.map(([to, label]) => {
        const href = `${base}${to}`;
        const current = path === href || path.startsWith(`${href}/`);
        return (
          <li key={to}>
            <Link to={to} aria-current={current ? 'page' : undefined}>
              {label}
            </Link>
          </li>
        );
      })}
      <li class="who">
        <small>
          {session.portal ? 'Portal' : session.me.role ?? ''}
          {session.canWrite ? '' : ' (read only)'}
        </small>
      </li>
      <li>
        <button type="button" class="secondary outline" onClick={session.signOut}>
          Sign out
        </button>
      </li>
    </ul>
  );
}

function SignedIn() {
  const session = useSession();
  const area = session.portal ? PORTAL_AREA : CONSOLE_AREA;
  const { path, route } = useLocation();
  // A portal session stays in the portal's pages; a key stays out of them.
  const misplaced = session.portal ? !path.startsWith(`${PORTAL}/`) : path.startsWith(`${PORTAL}/`);
  const home = path === CONSOLE || path === `${CONSOLE}/`;
  useEffect(() => {
    if (misplaced || home) route(`${area.base}/webhooks`, true);
  }, [misplaced, home, area.base]);
  return (
    <AreaContext.Provider value={area}>
      <Shell nav={<MainNav />}>
        {misplaced || home ? <Loading what="Opening the webhooks" /> : session.portal ? <PortalRoutes /> : <ConsoleRoutes />}
      </Shell>
    </AreaContext.Provider>
  );
}

function ConsoleRoutes() {
  return (
    <Router>
      <Route path={`${CONSOLE}/webhooks`} component={WebhookList} />
      <Route path={`${CONSOLE}/webhooks/new`} component={WebhookNew} />
      <Route path={`${CONSOLE}/webhooks/:id`} component={WebhookDetail} />
      <Route path={`${CONSOLE}/webhooks/:id/deliveries`} component={DeliveryList} />
      <Route path={`${CONSOLE}/webhooks/:id/deliveries/:deliveryId`} component={DeliveryDetail} />
      <Route path={`${CONSOLE}/events`} component={EventList} />
      <Route path={`${CONSOLE}/events/:id`} component={EventDetail} />
      <Route path={`${CONSOLE}/workflows`} component={WorkflowList} />
      <Route path={`${CONSOLE}/workflows/new`} component={WorkflowNew} />
      <Route path={`${CONSOLE}/workflows/:id`} component={WorkflowDetail} />
      <Route path={`${CONSOLE}/workflows/:id/executions/:executionId`} component={ExecutionDetail} />
      <Route path={`${CONSOLE}/api-keys`} component={ApiKeys} />
      <Route path={`${CONSOLE}/catalog`} component={Catalog} />
      <Route path={`${CONSOLE}/audit`} component={AuditLog} />
      <Route path={`${CONSOLE}/docs`} component={Docs} />
      <Route default component={NotFound} />
    </Router>
  );
}

function PortalRoutes() {
  return (
    <Router>
      <Route path={`${PORTAL}/webhooks`} component={WebhookList} />
      <Route path={`${PORTAL}/webhooks/new`} component={WebhookNew} />
      <Route path={`${PORTAL}/webhooks/:id`} component={WebhookDetail} />
      <Route path={`${PORTAL}/webhooks/:id/deliveries`} component={DeliveryList} />
      <Route path={`${PORTAL}/webhooks/:id/deliveries/:deliveryId`} component={DeliveryDetail} />
      <Route path={`${PORTAL}/catalog`} component={Catalog} />
      <Route default component={NotFound} />
    </Router>
  );
}

function NotFound() {
  const { path } = useLocation();
  return (
    <section>
      <h1>Not found</h1>
      <p>
        Nothing lives at <code>{path}</code>. <Link to="/webhooks">Go to the webhooks</Link>.
      </p>
    </section>
  );
}

function SignIn({ notice }: { notice?: string }) {
  const signIn = useSignIn();
  const [key, setKey] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(undefined);
  const submit = async (e: Event) => {
    e.preventDefault();
    const token = key.trim();
    if (!token) {
      setError(new Error('Enter an API key.'));
      return;
    }
    setBusy(true);
    setError(undefined);
    try {
      await signIn(token);
    } catch (err) {
      // The API's own words ("the API key is not valid", "... has expired", a rate limit).
      setError(err);
      setBusy(false);
    }
  };
  return (
    <section class="sign-in">
      <h1>Sign in</h1>
      {notice ? <p role="status">{notice}</p> : null}
      <form onSubmit={submit} noValidate>
        <label for="api-key">API key</label>
        <input
          id="api-key"
          name="api-key"
          type="password"
          autocomplete="off"
          spellcheck={false}
          value={key}
          aria-invalid={error ? true : undefined}
          aria-describedby="api-key-help"
          onInput={(e) => setKey((e.currentTarget as HTMLInputElement).value)}
        />
        <small id="api-key-help">Kept in this tab only, until you sign out or close it.</small>
        <ErrorNotice error={error} />
        <button type="submit" aria-busy={busy} disabled={busy}>
          Sign in
        </button>
      </form>
    </section>
  );
}
