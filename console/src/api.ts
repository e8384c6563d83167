// A typed client of the public REST API (/v1/..., same origin). Inputs are camelCase, outputs
// snake_case; a failure arrives as {success:false, error:{code, message, details}} and is
// thrown as an ApiError carrying the API's own message and the fields at fault.

import { UNAUTHORIZED_EVENT, readToken } from './session_store';

export interface FieldError {
  field: string;
  message: string;
}

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: FieldError[];

  constructor(status: number, code: string, message: string, details: FieldError[] = []) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.details = details;
  }

  /** The message for one field (as the API names it, e.g. "url" or "events[0]"), if any. */
  fieldMessage(field: string): string | undefined {
    return this.details.find((d) => d.field === field)?.message;
  }
}

export type Query = Record<string, string | number | boolean | null | undefined>;

export interface RequestOptions {
  query?: Query;
  body?: unknown;
  signal?: AbortSignal;
  /** Overrides the stored token (sign-in checks a key before keeping it). */
  token?: string | null;
}

function withQuery(path: string, query?: Query): string {
  if (!query) return path;
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    if (value === null || value === undefined || value === '') continue;
    params.set(name, String(value));
  }
  const text = params.toString();
  return text ? `${path}?${text}` : path;
}

function asFieldErrors(value: unknown): FieldError[] {
  if (!Array.isArray(value)) return [];
  return value
    .filter((d): d is Record<string, unknown> => typeof d === 'object' && d !== null)
    .map((d) => ({ field: String(d.field ?? ''), message: String(d.message ?? '') }));
}

/** One call; resolves to the envelope's `data`, or throws ApiError. */
export async function request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  const token = options.token === undefined ? readToken() : options.token;
  if (token) headers.Authorization = `Bearer ${token}`;
  let body: string | undefined;
  if (options.body !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(options.body);
  }
  let response: Response;
  try {
    response = await fetch(withQuery(path, options.query), {
      method,
      headers,
      body,
      signal: options.signal,
      credentials: 'omit',
      cache: 'no-store',
    });
  } catch (err) {
    if (err instanceof DOMException && err.name === 'AbortError') throw err;
    throw new ApiError(0, 'network', 'The API could not be reached: check the connection and try again.');
  }
  const text = await response.text();
  let parsed: unknown = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = null;
  }
  const envelope = (typeof parsed === 'object' && parsed !== null ? parsed : {}) as Record<string, unknown>;
  if (!response.ok || envelope.success === false) {
    if (response.status === 401 && options.token === undefined && token) {
      window.dispatchEvent(new Event(UNAUTHORIZED_EVENT));
    }
    const error = (envelope.error ?? {}) as Record<string, unknown>;
    const message =
      typeof error.message === 'string' && error.message
        ? error.message
        : text && !text.trimStart().startsWith('<')
          ? text.slice(0, 300)
          : `The API answered ${response.status} ${response.statusText}`.trim();
    throw new ApiError(response.status, String(error.code ?? response.status), message, asFieldErrors(error.details));
  }
  return envelope.data as T;
}

export const api = {
  get: <T>(path: string, query?: Query, signal?: AbortSignal) => request<T>('GET', path, { query, signal }),
  post: <T>(path: string, body?: unknown) => request<T>('POST', path, { body: body ?? {} }),
  patch: <T>(path: string, body: unknown) => request<T>('PATCH', path, { body }),
  put: <T>(path: string, body: unknown) => request<T>('PUT', path, { body }),
  delete: <T>(path: string) => request<T>('DELETE', path),
};

/** `/v1/accounts/{account}{rest}`, each id escaped. */
export function accountPath(accountId: string, rest = ''): string {
  return `/v1/accounts/${encodeURIComponent(accountId)}${rest}`;
}

/** Escapes one path segment. */
export const seg = (value: string) => encodeURIComponent(value);

/** A page of a list: the rows and the cursor of the next page (null: the last page). */
export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

/** Reads one page of a list whose data holds `key: T[]` beside `next_cursor`. */
export async function getPage<T>(
  path: string,
  key: string,
  query: Query = {},
  signal?: AbortSignal,
): Promise<Page<T>> {
  const data = await api.get<Record<string, unknown>>(path, query, signal);
  const items = (Array.isArray(data[key]) ? data[key] : []) as T[];
  const next = data.next_cursor;
  return { items, next_cursor: typeof next === 'string' && next ? next : null };
}

// ---- shapes of the API's answers (snake_case, as sent) ----

export interface Me {
  account_id: string;
  kind?: 'key' | 'portal';
  role: string | null;
  key_id?: string;
  label?: string | null;
  read_only?: boolean;
  webhook_ids?: string[] | null;
  expires_at?: string;
}

export interface Webhook {
  id: string;
  organization_id: string;
  name: string | null;
  url: string;
  events: string[];
  room_id: string | null;
  enabled: boolean;
  disabled_reason?: string | null;
  retry_schedule?: number[] | null;
  headers?: Record<string, string>;
  ordering?: 'none' | 'room';
  send_traceparent?: boolean;
  previous_secret_expires_at?: string | null;
  created_at: string;
  updated_at: string;
}

export interface WebhookWithSecret extends Webhook {
  secret: string;
}

export interface StatsBucket {
  start: string;
  attempts: number;
  successes: number;
  failures: number;
  latency_p95_ms: number | null;
}

export interface WebhookStats {
  webhook_id: string;
  window: '1h' | '24h' | '7d';
  since: string | null;
  attempts: number;
  successes: number;
  failures: number;
  success_rate: number | null;
  deliveries: { success: number; failed: number; pending: number };
  latency_ms: { p50: number | null; p95: number | null; p99: number | null };
  last_success_at: string | null;
  last_failure_at: string | null;
  last_error: string | null;
  failure_streak: number;
  buckets: StatsBucket[];
}

export type DeliveryStatus = 'pending' | 'success' | 'failed';

export interface Delivery {
  id: string;
  webhook_id: string;
  event_id: string;
  event: string;
  payload: string;
  status: DeliveryStatus;
  attempts: number;
  last_attempt_at: string | null;
  next_retry_at: string | null;
  status_code: number | null;
  last_error: string | null;
  created_at: string | null;
  updated_at: string | null;
}

export interface DeliveryAttempt {
  attempt: number;
  started_at: string;
  duration_ms: number;
  status_code: number | null;
  error: string | null;
  response_body: string | null;
  request_headers?: Record<string, string> | null;
}

export interface Job {
  id: string;
  kind: 'recover';
  webhook_id: string;
  status: 'queued' | 'running' | 'done' | 'failed';
  total: number;
  done: number;
  since: string;
  until: string;
  error: string | null;
  created_at: string;
  updated_at: string;
}

export interface EventType {
  name: string;
  scope: 'room' | 'organization';
  description: string;
}
