// The console's token lives in sessionStorage for this tab only: never in localStorage, a
// cookie or a URL.

export const TOKEN_KEY = 'roomhooks.console.token';

export function readToken(): string | null {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

export function storeToken(token: string): void {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function clearToken(): void {
  try {
    sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // storage unavailable: nothing was kept
  }
}

/** Dispatched on window when the API refuses the kept token (401): the session has ended. */
export const UNAUTHORIZED_EVENT = 'roomhooks:unauthorized';
