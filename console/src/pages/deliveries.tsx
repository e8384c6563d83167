// A webhook's deliveries (filtered by status and by when they were created, 25 a page) with
// the recovery of a time window, and one delivery: its payload as text, every attempt, and a
// redelivery. The list's filters live in the page's URL query (status, since, until: the API's
// own parameters, in UTC), so a reload or a shared link shows the same deliveries.

import { useLocation } from 'preact-iso';
import { useEffect, useState } from 'preact/hooks';
import { accountPath, api, getPage, seg, type Delivery, type DeliveryAttempt, type DeliveryStatus, type Webhook } from '../api';
import { ErrorNotice, JsonView, Link, Loading, PagedTable, Time } from '../components';
import { useLoad, usePaged } from '../hooks';
import { useArea, useSession } from '../session';
import { RecoverPanel, localInput, rfc3339 } from './recover';
import { webhookTitle } from './webhook_parts';

export const DELIVERY_PAGE_SIZE = 25;

function deliveriesPath(accountId: string, webhookId: string, rest = ''): string {
  return accountPath(accountId, `/webhooks/${seg(webhookId)}/deliveries${rest}`);
}

function StatusText({ status }: { status: DeliveryStatus }) {
  const cls = status === 'success' ? 'status-ok' : status === 'failed' ? 'status-bad' : undefined;
  const text = status === 'success' ? 'Delivered' : status === 'failed' ? 'Failed' : 'Pending';
  return <span class={cls}>{text}</span>;
}

/** The delivery log of one webhook, newest first; paged with the API's cursors when `paged`. */
export function DeliveriesTable({
  accountId,
  webhookId,
  status,
  since = '',
  until = '',
  pageSize = DELIVERY_PAGE_SIZE,
  paged = true,
  refresh = 0,
}: {
  accountId: string;
  webhookId: string;
  status: DeliveryStatus | '';
  /** Created at or after this instant (RFC 3339); '' for no bound. */
  since?: string;
  /** Created before this instant (RFC 3339); '' for no bound. */
  until?: string;
  pageSize?: number;
  paged?: boolean;
  /** Bumped to read the page again. */
  refresh?: number;
}) {
  const page = usePaged<Delivery>(
    (cursor, signal) =>
      getPage<Delivery>(deliveriesPath(accountId, webhookId), 'deliveries', { limit: pageSize, cursor, status, since, until }, signal),
    [accountId, webhookId, status, since, until, pageSize, refresh],
  );
  const windowed = since || until ? ' in this window' : '';
  return (
    <PagedTable
      page={page}
      noun="deliveries"
      caption="Deliveries"
      empty={
        <p>
          No deliveries{status ? ` with status ${status}` : ''}
          {windowed} yet.
        </p>
      }
      columns={['Delivery', 'Event', 'Status', 'Attempts', 'HTTP status', 'Last error', 'Created']}
      row={(d) => (
        <tr key={d.id}>
          <th scope="row">
            <Link to={`/webhooks/${seg(webhookId)}/deliveries/${seg(d.id)}`} aria-label={`Delivery ${d.id}`}>
              <code>{d.id.slice(0, 8)}</code>
            </Link>
          </th>
          <td>
            <code>{d.event}</code>
          </td>
          <td>
            <StatusText status={d.status} />
          </td>
          <td>{d.attempts}</td>
          <td>{d.status_code ?? '—'}</td>
          <td>{d.last_error ? <code>{d.last_error}</code> : '—'}</td>
          <td>
            <Time value={d.created_at} />
          </td>
        </tr>
      )}
      pagerLabel={paged ? 'Delivery pages' : undefined}
      tableClass="deliveries"
    />
  );
}

function useWebhook(accountId: string, id: string) {
  return useLoad((signal) => api.get<{ webhook: Webhook }>(accountPath(accountId, `/webhooks/${seg(id)}`), undefined, signal), [accountId, id]);
}

function Crumbs({ webhook, id, last }: { webhook?: Webhook; id: string; last?: string }) {
  return (
    <nav aria-label="Breadcrumb">
      <ul>
        <li>
          <Link to="/webhooks">Webhooks</Link>
        </li>
        <li>
          <Link to={`/webhooks/${seg(id)}`}>{webhook ? webhookTitle(webhook) : 'Webhook'}</Link>
        </li>
        <li>{last ? <Link to={`/webhooks/${seg(id)}/deliveries`}>Deliveries</Link> : 'Deliveries'}</li>
        {last ? <li>{last}</li> : null}
      </ul>
    </nav>
  );
}

const STATUSES: [DeliveryStatus | '', string][] = [
  ['', 'Any status'],
  ['pending', 'Pending'],
  ['success', 'Delivered'],
  ['failed', 'Failed'],
];

/** An instant of the URL (RFC 3339) as a datetime-local value in the user's time zone; '' if none. */
function localValue(instant: string): string {
  const at = new Date(instant);
  return instant && !Number.isNaN(at.getTime()) ? localInput(at) : '';
}

export function DeliveryList({ id = '' }: { id?: string }) {
  const { accountId, canWrite } = useSession();
  const webhook = useWebhook(accountId, id);
  const { path, query, route } = useLocation();
  // What the URL says, as sent to the API: a hand-edited value is the API's to refuse by name.
  const status = (query.status ?? '') as DeliveryStatus | '';
  const since = query.since ?? '';
  const until = query.until ?? '';
  const setFilters = (changes: Record<string, string>) => {
    const params = new URLSearchParams(query);
    for (const [name, value] of Object.entries(changes)) {
      if (value) params.set(name, value);
      else params.delete(name);
    }
    const text = params.toString();
    route(text ? `${path}?${text}` : path, true);
  };
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  const [refresh, setRefresh] = useState(0);
  return (
    <section>
      <Crumbs webhook={webhook.data?.webhook} id={id} />
      <h1>Deliveries{webhook.data ? ` of ${webhookTitle(webhook.data.webhook)}` : ''}</h1>
      <ErrorNotice error={webhook.error} title="The webhook could not be read" />
      <div class="actions filters" role="group" aria-label="Filter deliveries">
        <label for="delivery-status">Status</label>
        <select id="delivery-status" value={status} onChange={(e) => setFilters({ status: e.currentTarget.value })}>
          {STATUSES.map(([value, label]) => (
            <option key={value} value={value}>
              {label}
            </option>
          ))}
        </select>
        <label for="delivery-since">From</label>
        <input
          id="delivery-since"
          class="filter-time"
          type="datetime-local"
          value={localValue(since)}
          aria-describedby="delivery-zone"
          onChange={(e) => setFilters({ since: rfc3339(e.currentTarget.value) })}
        />
        <label for="delivery-until">To</label>
        <input
          id="delivery-until"
          class="filter-time"
          type="datetime-local"
          value={localValue(until)}
          aria-describedby="delivery-zone"
          onChange={(e) => setFilters({ until: rfc3339(e.currentTarget.value) })}
        />
        <small id="delivery-zone">Times in {zone}</small>
        <button type="button" class="secondary" onClick={() => setRefresh((n) => n + 1)}>
          Refresh
        </button>
      </div>
      <DeliveriesTable accountId={accountId} webhookId={id} status={status} since={since} until={until} refresh={refresh} />
      {canWrite ? <RecoverPanel accountId={accountId} webhookId={id} onDone={() => setRefresh((n) => n + 1)} /> : null}
    </section>
  );
}

export function DeliveryDetail({ id = '', deliveryId = '' }: { id?: string; deliveryId?: string }) {
  const { accountId, canWrite } = useSession();
  const { portal } = useArea();
  const webhook = useWebhook(accountId, id);
  const path = deliveriesPath(accountId, id, `/${seg(deliveryId)}`);
  const loaded = useLoad(
    (signal) => api.get<{ delivery: Delivery; attempts: DeliveryAttempt[] }>(path, undefined, signal),
    [path],
  );
  const [redelivering, setRedelivering] = useState<'idle' | 'sending' | 'watching'>('idle');
  const [redeliverError, setRedeliverError] = useState<unknown>(undefined);
  const [watchFrom, setWatchFrom] = useState(0);

  // After a redelivery, read the delivery again every second until its new attempt shows
  // (at most 30 times: a receiver that hangs is told by the attempt's own timeout).
  const attemptCount = loaded.data?.attempts.length ?? 0;
  useEffect(() => {
    if (redelivering !== 'watching') return;
    if (attemptCount > watchFrom) {
      setRedelivering('idle');
      return;
    }
    let tries = 0;
    const timer = setInterval(() => {
      tries += 1;
      if (tries > 30) {
        clearInterval(timer);
        setRedelivering('idle');
        return;
      }
      loaded.reload();
    }, 1000);
    return () => clearInterval(timer);
  }, [redelivering, attemptCount, watchFrom]);

  const redeliver = async () => {
    setRedelivering('sending');
    setRedeliverError(undefined);
    try {
      await api.post(`${path}/redeliver`);
      setWatchFrom(attemptCount);
      setRedelivering('watching');
    } catch (err) {
      setRedeliverError(err);
      setRedelivering('idle');
    }
  };

  if (loaded.loading && !loaded.data) return <Loading what="Loading the delivery" />;
  if (!loaded.data) {
    return (
      <section>
        <Crumbs webhook={webhook.data?.webhook} id={id} last="Delivery" />
        <h1>Delivery</h1>
        <ErrorNotice error={loaded.error} title="The delivery could not be read" />
      </section>
    );
  }
  const { delivery: d, attempts } = loaded.data;
  return (
    <section>
      <Crumbs webhook={webhook.data?.webhook} id={id} last={d.id.slice(0, 8)} />
      <h1>
        Delivery <code>{d.id}</code>
      </h1>
      <ErrorNotice error={loaded.error} title="The delivery could not be read again" />
      <dl class="settings">
        <dt>Status</dt>
        <dd>
          <StatusText status={d.status} />
        </dd>
        <dt>Event</dt>
        <dd>
          <code>{d.event}</code>{' '}
          {portal ? (
            <code>{d.event_id}</code>
          ) : (
            <Link to={`/events/${seg(d.event_id)}`} aria-label={`Event ${d.event_id}`}>
              <code>{d.event_id}</code>
            </Link>
          )}
        </dd>
        <dt>Attempts</dt>
        <dd>{d.attempts}</dd>
        <dt>HTTP status</dt>
        <dd>{d.status_code ?? '—'}</dd>
        <dt>Last error</dt>
        <dd>{d.last_error ? <code>{d.last_error}</code> : '—'}</dd>
        <dt>Created</dt>
        <dd>
          <Time value={d.created_at} />
        </dd>
        <dt>Last attempt</dt>
        <dd>
          <Time value={d.last_attempt_at} />
        </dd>
        <dt>Next retry</dt>
        <dd>
          <Time value={d.next_retry_at} empty="none" />
        </dd>
      </dl>
      {canWrite ? (
        <div class="actions">
          <button type="button" aria-busy={redelivering !== 'idle'} disabled={redelivering !== 'idle'} onClick={redeliver}>
            Redeliver
          </button>
          <span role="status">{redelivering === 'watching' ? 'Redelivery queued: waiting for its attempt…' : ''}</span>
        </div>
      ) : null}
      <ErrorNotice error={redeliverError} title="The redelivery was refused" />
      <h2>Payload</h2>
      <JsonView value={d.payload} label="Payload" />
      <h2>Attempts ({attempts.length})</h2>
      {attempts.length === 0 ? <p>No attempt yet.</p> : null}
      {attempts.map((a) => (
        <Attempt key={a.attempt} attempt={a} />
      ))}
    </section>
  );
}

function Attempt({ attempt: a }: { attempt: DeliveryAttempt }) {
  const ok = a.status_code !== null && a.status_code >= 200 && a.status_code < 300 && !a.error;
  const headers = a.request_headers ? Object.entries(a.request_headers) : null;
  return (
    <article class="attempt" aria-labelledby={`attempt-${a.attempt}`}>
      <header>
        <h3 id={`attempt-${a.attempt}`}>Attempt {a.attempt}</h3>
      </header>
      <dl class="settings">
        <dt>Started</dt>
        <dd>
          <Time value={a.started_at} />
        </dd>
        <dt>HTTP status</dt>
        <dd class={ok ? 'status-ok' : 'status-bad'}>{a.status_code ?? 'no answer'}</dd>
        <dt>Duration</dt>
        <dd>{a.duration_ms} ms</dd>
        {a.error ? (
          <>
            <dt>Error</dt>
            <dd>
              <code>{a.error}</code>
            </dd>
          </>
        ) : null}
      </dl>
      {headers ? (
        <details>
          <summary>Request headers as sent ({headers.length})</summary>
          <table class="striped">
            <thead>
              <tr>
                <th scope="col">Header</th>
                <th scope="col">Value</th>
              </tr>
            </thead>
            <tbody>
              {headers.map(([name, value]) => (
                <tr key={name}>
                  <th scope="row">
                    <code>{name}</code>
                  </th>
                  <td>
                    <code>{value}</code>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </details>
      ) : null}
      <details open={!ok}>
        <summary>Response body{a.response_body ? '' : ' (none kept)'}</summary>
        {a.response_body ? <JsonView value={a.response_body} label={`Response body of attempt ${a.attempt}`} /> : null}
      </details>
    </article>
  );
}
