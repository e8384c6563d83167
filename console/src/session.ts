// Who is signed in: the token (session_store), `GET /v1/me`, and what that caller may do.

import { createContext } from 'preact';
import { useContext } from 'preact/hooks';
import { request, type Me } from './api';

export { TOKEN_KEY, readToken, storeToken, clearToken } from './session_store';

/** Roles whose keys may change things; the API refuses writes to the others anyway. */
const WRITING_ROLES = new Set(['OWNER', 'ADMIN']);

export function isPortal(me: Me): boolean {
  return me.kind === 'portal';
}

/** Whether to render write controls for this caller. */
export function canWrite(me: Me): boolean {
  if (isPortal(me)) return me.read_only === false;
  return WRITING_ROLES.has(String(me.role ?? '').toUpperCase());
}

/** Asks the API who a token belongs to; throws ApiError (401 for a bad key). */
export function fetchMe(token?: string): Promise<Me> {
  return request<Me>('GET', '/v1/me', token === undefined ? {} : { token });
}

export interface Session {
  me: Me;
  accountId: string;
  canWrite: boolean;
  portal: boolean;
  /** Keeps a token (a key or a portal session token) after checking it with /v1/me. */
  signIn: (token: string) => Promise<Me>;
  signOut: () => void;
}

export const SessionContext = createContext<Session | null>(null);

/** The signed-in session; only used under the signed-in layout. */
export function useSession(): Session {
  const session = useContext(SessionContext);
  if (!session) throw new Error('useSession outside a signed-in console');
  return session;
}

/** Where the pages live: `/console` for a key, `/console/portal` for a customer portal. */
export interface Area {
  base: string;
  portal: boolean;
}

export const AreaContext = createContext<Area>({ base: '/console', portal: false });

export function useArea(): Area {
  return useContext(AreaContext);
}

/** Keeps a token after checking it; available signed in or out (sign-in form, portal exchange). */
export const SignInContext = createContext<(token: string) => Promise<Me>>(async () => {
  throw new Error('no console around');
});

export function useSignIn(): (token: string) => Promise<Me> {
  return useContext(SignInContext);
}
