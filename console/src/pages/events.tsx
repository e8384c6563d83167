// The account's event log (accepted and rejected events, newest first, filtered and paged) and
// one event: its payload pretty-printed, and the delivery or execution of each webhook and
// workflow it reached. Routes: /events, /events/:id (app.tsx).

import { useState } from 'preact/hooks';
import { accountPath, api, getPage, seg, type EventType } from '../api';
import { ErrorNotice, JsonView, Link, Loading, PagedTable, Time } from '../components';
import { useLoad, usePaged } from '../hooks';
import { useSession } from '../session';

const PAGE_SIZE = 25;

export interface LoggedEvent {
  organization_id: string;
  id: string | null;
  event: string | null;
  room_id: string | null;
  status: 'accepted' | 'rejected';
  reason: string | null;
  webhooks: number;
  workflows: number;
  received_at: string;
}

interface ReachedWebhook {
  webhook_id: string;
  delivery_id: string;
  status: string | null;
}

interface ReachedWorkflow {
  workflow_id: string;
  execution_id: string;
  status: string | null;
}

interface EventDetailData {
  event: LoggedEvent;
  payload: string | null;
  webhooks: ReachedWebhook[];
  workflows: ReachedWorkflow[];
}

interface Filters {
  status: '' | 'accepted' | 'rejected';
  event: string;
  roomId: string;
}

function StatusText({ status }: { status: string | null }) {
  if (!status) return <span>not recorded yet</span>;
  const good = status === 'accepted' || status === 'success';
  const bad = status === 'rejected' || status === 'failed' || status === 'error' || status === 'timeout';
  return <span class={good ? 'status-ok' : bad ? 'status-bad' : undefined}>{status}</span>;
}

export function EventList(_props: Record<string, unknown>) {
  const { accountId } = useSession();
  const [draft, setDraft] = useState<Filters>({ status: '', event: '', roomId: '' });
  const [filters, setFilters] = useState<Filters>(draft);
  const catalog = useLoad((signal) => api.get<{ event_types: EventType[] }>('/v1/event-types', undefined, signal), []);
  const page = usePaged<LoggedEvent>(
    (cursor, signal) =>
      getPage<LoggedEvent>(
        accountPath(accountId, '/events'),
        'events',
        { limit: PAGE_SIZE, cursor, status: filters.status, event: filters.event, roomId: filters.roomId.trim() },
        signal,
      ),
    [accountId, filters],
  );
  const apply = (e: Event) => {
    e.preventDefault();
    setFilters({ ...draft });
  };
  return (
    <section>
      <hgroup>
        <h1>Events</h1>
        <p>Every event received for this account, newest first: accepted (with or without subscribers) and rejected at ingress with the reason.</p>
      </hgroup>
      <form class="filters" onSubmit={apply} aria-label="Filter events">
        <div class="grid">
          <div>
            <label for="ev-status">Status</label>
            <select id="ev-status" value={draft.status} onChange={(e) => setDraft({ ...draft, status: e.currentTarget.value as Filters['status'] })}>
              <option value="">Any status</option>
              <option value="accepted">accepted</option>
              <option value="rejected">rejected</option>
            </select>
          </div>
          <div>
            <label for="ev-event">Event</label>
            <select id="ev-event" value={draft.event} onChange={(e) => setDraft({ ...draft, event: e.currentTarget.value })}>
              <option value="">Any event</option>
              {(catalog.data?.event_types ?? []).map((t) => (
                <option key={t.name} value={t.name}>
                  {t.name}
                </option>
              ))}
            </select>
          </div>
          <div>
            <label for="ev-room">Room ID</label>
            <input id="ev-room" value={draft.roomId} maxLength={200} onInput={(e) => setDraft({ ...draft, roomId: e.currentTarget.value })} />
          </div>
        </div>
        <p class="actions">
          <button type="submit">Apply filters</button>
          <button type="button" class="secondary outline" onClick={page.reload}>
            Refresh events
          </button>
        </p>
      </form>
      <PagedTable
        page={page}
        noun="events"
        caption="Events"
        empty={<p>No events match.</p>}
        columns={['Received', 'Event', 'ID', 'Status', 'Reason', 'Room', 'Webhooks', 'Workflows']}
        row={(x, i) => (
          <tr key={`${x.id ?? ''}-${x.received_at}-${i}`}>
            <th scope="row">
              <Time value={x.received_at} />
            </th>
            <td>{x.event ?? <em>unreadable</em>}</td>
            <td>{x.id ? <Link to={`/events/${encodeURIComponent(x.id)}`}>{x.id}</Link> : <em>none</em>}</td>
            <td>
              <StatusText status={x.status} />
            </td>
            <td>{x.reason ?? ''}</td>
            <td>{x.room_id ? <code>{x.room_id}</code> : ''}</td>
            <td>{x.webhooks}</td>
            <td>{x.workflows}</td>
          </tr>
        )}
        pagerLabel="Event pages"
      />
    </section>
  );
}

export function EventDetail({ id = '' }: { id?: string }) {
  const { accountId } = useSession();
  // The router hands the id decoded; the API takes it escaped as one path segment.
  const eventId = id;
  const loaded = useLoad(
    (signal) => api.get<EventDetailData>(accountPath(accountId, `/events/${seg(eventId)}`), undefined, signal),
    [accountId, eventId],
  );
  const d = loaded.data;
  return (
    <section>
      <nav aria-label="Breadcrumb">
        <ul>
          <li>
            <Link to="/events">Events</Link>
          </li>
          <li>{eventId}</li>
        </ul>
      </nav>
      <h1>Event {d?.event.event ?? ''}</h1>
      <ErrorNotice error={loaded.error} title="The event could not be read" />
      {loaded.loading && !d ? <Loading what="Loading the event" /> : null}
      {d ? (
        <>
          <dl class="facts">
            <dt>ID</dt>
            <dd>
              <code>{d.event.id ?? eventId}</code>
            </dd>
            <dt>Status</dt>
            <dd>
              <StatusText status={d.event.status} />
            </dd>
            {d.event.reason ? (
              <>
                <dt>Reason</dt>
                <dd>{d.event.reason}</dd>
              </>
            ) : null}
            <dt>Received</dt>
            <dd>
              <Time value={d.event.received_at} />
            </dd>
            <dt>Room</dt>
            <dd>{d.event.room_id ? <code>{d.event.room_id}</code> : 'none (an organization event)'}</dd>
          </dl>

          <h2>Webhooks reached</h2>
          <Reached
            what={['Webhook', 'Delivery']}
            rows={d.webhooks.map((w) => ({
              owner: w.webhook_id,
              ownerPath: `/webhooks/${encodeURIComponent(w.webhook_id)}`,
              run: w.delivery_id,
              runPath: `/webhooks/${encodeURIComponent(w.webhook_id)}/deliveries/${encodeURIComponent(w.delivery_id)}`,
              status: w.status,
            }))}
          />

          <h2>Workflows reached</h2>
          <Reached
            what={['Workflow', 'Execution']}
            rows={d.workflows.map((w) => ({
              owner: w.workflow_id,
              ownerPath: `/workflows/${encodeURIComponent(w.workflow_id)}`,
              run: w.execution_id,
              runPath: `/workflows/${encodeURIComponent(w.workflow_id)}/executions/${encodeURIComponent(w.execution_id)}`,
              status: w.status,
            }))}
          />

          <h2>Payload</h2>
          {d.payload === null ? (
            <p>Not kept: a rejected event's bytes stay in the dead-letter topic.</p>
          ) : (
            <JsonView value={d.payload} label="Payload" />
          )}
        </>
      ) : null}
    </section>
  );
}

interface ReachedRow {
  owner: string;
  ownerPath: string;
  run: string;
  runPath: string;
  status: string | null;
}

/** The webhooks (and their deliveries) or workflows (and their executions) an event reached. */
function Reached({ what, rows }: { what: [string, string]; rows: ReachedRow[] }) {
  if (rows.length === 0) return <p>None.</p>;
  return (
    <table class="striped">
      <thead>
        <tr>
          <th scope="col">{what[0]}</th>
          <th scope="col">{what[1]}</th>
          <th scope="col">Status</th>
        </tr>
      </thead>
      <tbody>
        {rows.map((r) => (
          <tr key={r.run}>
            <td>
              <Link to={r.ownerPath}>
                <code>{r.owner}</code>
              </Link>
            </td>
            <td>
              <Link to={r.runPath}>
                <code>{r.run}</code>
              </Link>
            </td>
            <td>
              <StatusText status={r.status} />
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
