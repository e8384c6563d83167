// The webhook form, for creating and for editing: URL, name, events (from the catalog), room,
// custom headers, the retry schedule, ordering and the traceparent header. The API validates; its field
// errors are shown beside the fields they name.

import { useState } from 'preact/hooks';
import { ApiError, api, type EventType, type Webhook } from '../api';
import { ErrorNotice, Loading } from '../components';
import { useLoad } from '../hooks';

export interface WebhookFields {
  url: string;
  name: string;
  events: string[];
  roomId: string;
  headers: { name: string; value: string }[];
  retrySchedule: string;
  ordering: 'none' | 'room';
  sendTraceparent: boolean;
  enabled: boolean;
}

export function fieldsOf(webhook?: Webhook): WebhookFields {
  return {
    url: webhook?.url ?? '',
    name: webhook?.name ?? '',
    events: webhook?.events ?? [],
    roomId: webhook?.room_id ?? '',
    headers: Object.entries(webhook?.headers ?? {}).map(([name, value]) => ({ name, value })),
    retrySchedule: (webhook?.retry_schedule ?? []).join(', '),
    ordering: webhook?.ordering ?? 'none',
    sendTraceparent: webhook?.send_traceparent ?? false,
    enabled: webhook?.enabled ?? true,
  };
}

/** "1, 5, 30" -> [1, 5, 30]; empty -> null (the deployment's default); a bad entry -> an error. */
export function parseSchedule(text: string): number[] | null | { error: string } {
  const parts = text
    .split(/[\s,]+/)
    .map((p) => p.trim())
    .filter(Boolean);
  if (parts.length === 0) return null;
  const values: number[] = [];
  for (const part of parts) {
    if (!/^\d+$/.test(part)) return { error: `"${part}" is not a whole number of seconds` };
    values.push(Number(part));
  }
  return values;
}

function headersObject(rows: WebhookFields['headers']): Record<string, string> {
  const out: Record<string, string> = {};
  for (const row of rows) {
    if (row.name.trim() === '' && row.value === '') continue;
    out[row.name.trim()] = row.value;
  }
  return out;
}

/** The create body (camelCase), every field. */
export function createBody(f: WebhookFields): Record<string, unknown> {
  const schedule = parseSchedule(f.retrySchedule);
  return {
    url: f.url.trim(),
    events: f.events,
    name: f.name.trim() || null,
    roomId: f.roomId.trim() || null,
    headers: headersObject(f.headers),
    retrySchedule: Array.isArray(schedule) ? schedule : null,
    ordering: f.ordering,
    sendTraceparent: f.sendTraceparent,
    enabled: f.enabled,
  };
}

/** The PATCH body: only what changed from `before`, so masked header values are never sent back. */
export function patchBody(before: WebhookFields, f: WebhookFields): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  if (f.url.trim() !== before.url) body.url = f.url.trim();
  if (f.name.trim() !== before.name) body.name = f.name.trim() || null;
  if (JSON.stringify([...f.events].sort()) !== JSON.stringify([...before.events].sort())) body.events = f.events;
  if (f.roomId.trim() !== before.roomId) body.roomId = f.roomId.trim() || null;
  const headers = headersObject(f.headers);
  if (JSON.stringify(headers) !== JSON.stringify(headersObject(before.headers))) body.headers = headers;
  if (f.retrySchedule.trim() !== before.retrySchedule) {
    const schedule = parseSchedule(f.retrySchedule);
    body.retrySchedule = Array.isArray(schedule) ? schedule : null;
  }
  if (f.ordering !== before.ordering) body.ordering = f.ordering;
  if (f.sendTraceparent !== before.sendTraceparent) body.sendTraceparent = f.sendTraceparent;
  return body;
}

function FieldError({ id, error, field }: { id: string; error: unknown; field: string }) {
  if (!(error instanceof ApiError)) return null;
  const messages = error.details.filter((d) => d.field === field || d.field.startsWith(`${field}.`) || d.field.startsWith(`${field}[`));
  if (messages.length === 0) return null;
  return (
    <small id={id} class="status-bad">
      {messages.map((d) => `${d.field}: ${d.message}`).join('; ')}
    </small>
  );
}

function invalid(error: unknown, field: string): true | undefined {
  if (!(error instanceof ApiError)) return undefined;
  return error.details.some((d) => d.field === field || d.field.startsWith(`${field}.`) || d.field.startsWith(`${field}[`)) || undefined;
}

export function WebhookForm({
  initial,
  mode,
  onSubmit,
  onCancel,
}: {
  initial: WebhookFields;
  mode: 'create' | 'edit';
  onSubmit: (fields: WebhookFields) => Promise<void>;
  onCancel?: () => void;
}) {
  const [f, setF] = useState<WebhookFields>(initial);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(undefined);
  const catalog = useLoad((signal) => api.get<{ event_types: EventType[] }>('/v1/event-types', undefined, signal), []);
  const set = (patch: Partial<WebhookFields>) => setF((old) => ({ ...old, ...patch }));

  const submit = async (e: Event) => {
    e.preventDefault();
    const schedule = parseSchedule(f.retrySchedule);
    if (schedule && !Array.isArray(schedule)) {
      setError(new ApiError(400, 'validation_error', `retrySchedule: ${schedule.error}`, [{ field: 'retrySchedule', message: schedule.error }]));
      return;
    }
    setBusy(true);
    setError(undefined);
    try {
      await onSubmit(f);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  const toggleEvent = (name: string, on: boolean) =>
    set({ events: on ? [...f.events.filter((e) => e !== name), name] : f.events.filter((e) => e !== name) });
  const setHeader = (i: number, patch: Partial<{ name: string; value: string }>) =>
    set({ headers: f.headers.map((h, j) => (j === i ? { ...h, ...patch } : h)) });
  const known = new Set((catalog.data?.event_types ?? []).map((t) => t.name));
  // Events the webhook has that the catalog no longer lists stay visible (and removable).
  const extra = f.events.filter((e) => catalog.data && !known.has(e));

  return (
    <form onSubmit={submit} noValidate aria-label={mode === 'create' ? 'New webhook' : 'Edit webhook'}>
      <ErrorNotice error={error} title={mode === 'create' ? 'The webhook was not created' : 'The webhook was not saved'} />
      <label for="wh-url">URL</label>
      <input
        id="wh-url"
        type="url"
        required
        value={f.url}
        placeholder="https://example.com/hooks/roomhooks"
        aria-invalid={invalid(error, 'url')}
        aria-describedby="wh-url-error"
        onInput={(e) => set({ url: e.currentTarget.value })}
      />
      <FieldError id="wh-url-error" error={error} field="url" />

      <label for="wh-name">Name</label>
      <input id="wh-name" value={f.name} aria-invalid={invalid(error, 'name')} aria-describedby="wh-name-error" onInput={(e) => set({ name: e.currentTarget.value })} />
      <FieldError id="wh-name-error" error={error} field="name" />

      <fieldset aria-invalid={invalid(error, 'events')}>
        <legend>Events</legend>
        {catalog.loading ? <Loading what="Loading the event catalog" /> : null}
        <ErrorNotice error={catalog.error} title="The event catalog could not be read" />
        <div class="event-choices">
          {(catalog.data?.event_types ?? []).map((t) => (
            <label key={t.name} title={t.description}>
              <input type="checkbox" name="events" value={t.name} checked={f.events.includes(t.name)} onChange={(e) => toggleEvent(t.name, e.currentTarget.checked)} />
              {t.name}
            </label>
          ))}
          {extra.map((name) => (
            <label key={name}>
              <input type="checkbox" name="events" value={name} checked onChange={(e) => toggleEvent(name, e.currentTarget.checked)} />
              {name}
            </label>
          ))}
        </div>
        <FieldError id="wh-events-error" error={error} field="events" />
      </fieldset>

      <label for="wh-room">Room ID</label>
      <input id="wh-room" value={f.roomId} aria-describedby="wh-room-help wh-room-error" aria-invalid={invalid(error, 'roomId')} onInput={(e) => set({ roomId: e.currentTarget.value })} />
      <small id="wh-room-help">Only this room's events; empty: every room.</small>
      <FieldError id="wh-room-error" error={error} field="roomId" />

      <fieldset aria-invalid={invalid(error, 'headers')}>
        <legend>Custom headers</legend>
        {f.headers.map((h, i) => (
          <div class="grid header-row" key={i}>
            <input aria-label={`Header name ${i + 1}`} value={h.name} placeholder="X-Team" onInput={(e) => setHeader(i, { name: e.currentTarget.value })} />
            <input aria-label={`Header value ${i + 1}`} value={h.value} onInput={(e) => setHeader(i, { value: e.currentTarget.value })} />
            <button type="button" class="secondary outline" onClick={() => set({ headers: f.headers.filter((_, j) => j !== i) })}>
              Remove header {i + 1}
            </button>
          </div>
        ))}
        <button type="button" class="secondary" onClick={() => set({ headers: [...f.headers, { name: '', value: '' }] })}>
          Add header
        </button>
        <FieldError id="wh-headers-error" error={error} field="headers" />
      </fieldset>

      <label for="wh-retry">Retry schedule (seconds)</label>
      <input
        id="wh-retry"
        value={f.retrySchedule}
        placeholder="1, 5, 30"
        aria-describedby="wh-retry-help wh-retry-error"
        aria-invalid={invalid(error, 'retrySchedule')}
        onInput={(e) => set({ retrySchedule: e.currentTarget.value })}
      />
      <small id="wh-retry-help">Seconds to wait after each failed attempt, separated by commas; empty: the default (1, 5, 30).</small>
      <FieldError id="wh-retry-error" error={error} field="retrySchedule" />

      <label for="wh-ordering">Ordering</label>
      <select
        id="wh-ordering"
        value={f.ordering}
        aria-describedby="wh-ordering-help wh-ordering-error"
        aria-invalid={invalid(error, 'ordering')}
        onChange={(e) => set({ ordering: e.currentTarget.value === 'room' ? 'room' : 'none' })}
      >
        <option value="none">None: each delivery goes as soon as it can</option>
        <option value="room">Per room: one at a time, in the order events were published</option>
      </select>
      <small id="wh-ordering-help">
        Per room, a failing delivery holds that room's later ones until it succeeds or fails for good; other rooms go on.
      </small>
      <FieldError id="wh-ordering-error" error={error} field="ordering" />

      <label>
        <input
          type="checkbox"
          checked={f.sendTraceparent}
          aria-describedby="wh-traceparent-help wh-traceparent-error"
          aria-invalid={invalid(error, 'sendTraceparent')}
          onChange={(e) => set({ sendTraceparent: e.currentTarget.checked })}
        />
        Send traceparent header
      </label>
      <small id="wh-traceparent-help">
        Each attempt carries a W3C <code>traceparent</code> header, so an endpoint that traces continues the event's trace. Only
        while the platform's tracing is on.
      </small>
      <FieldError id="wh-traceparent-error" error={error} field="sendTraceparent" />

      {mode === 'create' ? (
        <label>
          <input type="checkbox" role="switch" checked={f.enabled} onChange={(e) => set({ enabled: e.currentTarget.checked })} />
          Enabled
        </label>
      ) : null}

      <div class="actions">
        <button type="submit" aria-busy={busy} disabled={busy}>
          {mode === 'create' ? 'Create webhook' : 'Save changes'}
        </button>
        {onCancel ? (
          <button type="button" class="secondary" onClick={onCancel}>
            Cancel
          </button>
        ) : null}
      </div>
    </form>
  );
}
