// A webhook's page: its settings and the writes on it (edit, enable/disable, test ping, rotate
// the secret, delete), its health over a window as charts, and its latest deliveries.

import { useMemo, useState } from 'preact/hooks';
import { useLocation } from 'preact-iso';
import { ApiError, accountPath, api, seg, type Webhook, type WebhookStats, type WebhookWithSecret } from '../api';
import { Chart, ConfirmButton, ErrorNotice, Link, Loading, Time, type ChartSeries } from '../components';
import { useLoad } from '../hooks';
import { useArea, useSession } from '../session';
import { DeliveriesTable } from './deliveries';
import { WebhookForm, fieldsOf, patchBody } from './webhook_form';
import { SecretOnce, WebhookStatus, formatMs, formatRate, statsPath, webhookTitle } from './webhook_parts';

export function webhookPath(accountId: string, id: string, rest = ''): string {
  return accountPath(accountId, `/webhooks/${seg(id)}${rest}`);
}

export function WebhookDetail({ id = '' }: { id?: string }) {
  const { accountId } = useSession();
  const loaded = useLoad((signal) => api.get<{ webhook: Webhook }>(webhookPath(accountId, id), undefined, signal), [accountId, id]);
  if (loaded.loading && !loaded.data) return <Loading what="Loading the webhook" />;
  if (loaded.error || !loaded.data) {
    return (
      <section>
        <h1>Webhook</h1>
        <ErrorNotice error={loaded.error} title="The webhook could not be read" />
        <Link to="/webhooks">Back to the webhooks</Link>
      </section>
    );
  }
  const webhook = loaded.data.webhook;
  return (
    <section>
      <nav aria-label="Breadcrumb">
        <ul>
          <li>
            <Link to="/webhooks">Webhooks</Link>
          </li>
          <li>{webhookTitle(webhook)}</li>
        </ul>
      </nav>
      <h1>{webhookTitle(webhook)}</h1>
      <Settings webhook={webhook} onChanged={(w) => loaded.set({ webhook: w })} />
      <Health accountId={accountId} webhookId={webhook.id} />
      <section aria-labelledby="recent-deliveries">
        <h2 id="recent-deliveries">Latest deliveries</h2>
        <DeliveriesTable accountId={accountId} webhookId={webhook.id} pageSize={10} status="" paged={false} />
        <p>
          <Link to={`/webhooks/${seg(webhook.id)}/deliveries`}>All deliveries</Link>
        </p>
      </section>
    </section>
  );
}

function Settings({ webhook, onChanged }: { webhook: Webhook; onChanged: (w: Webhook) => void }) {
  const { accountId, canWrite } = useSession();
  const { portal, base } = useArea();
  const { route } = useLocation();
  const [editing, setEditing] = useState(false);
  const [error, setError] = useState<unknown>(undefined);
  const [notice, setNotice] = useState<string>('');
  const [testDelivery, setTestDelivery] = useState<string | null>(null);
  const [secret, setSecret] = useState<string | null>(null);
  const [overlap, setOverlap] = useState('86400');
  const [busy, setBusy] = useState<string>('');
  const path = webhookPath(accountId, webhook.id);

  const run = async (what: string, action: () => Promise<void>) => {
    setBusy(what);
    setError(undefined);
    setNotice('');
    try {
      await action();
    } catch (err) {
      setError(err);
    } finally {
      setBusy('');
    }
  };

  if (editing) {
    const before = fieldsOf(webhook);
    return (
      <section aria-labelledby="settings-heading">
        <h2 id="settings-heading">Edit settings</h2>
        <WebhookForm
          mode="edit"
          initial={before}
          onCancel={() => setEditing(false)}
          onSubmit={async (fields) => {
            const body = patchBody(before, fields);
            if (Object.keys(body).length > 0) {
              const data = await api.patch<{ webhook: Webhook }>(path, body);
              onChanged(data.webhook);
            }
            setEditing(false);
            setNotice('Saved.');
          }}
        />
      </section>
    );
  }

  const headers = Object.entries(webhook.headers ?? {});
  return (
    <section aria-labelledby="settings-heading">
      <h2 id="settings-heading">Settings</h2>
      <ErrorNotice error={error} />
      {notice ? <p role="status">{notice}</p> : null}
      {secret ? <SecretOnce secret={secret} heading="New signing secret" /> : null}
      <dl class="settings">
        <dt>Status</dt>
        <dd>
          <WebhookStatus webhook={webhook} />
        </dd>
        <dt>URL</dt>
        <dd>
          <code>{webhook.url}</code>
        </dd>
        <dt>Name</dt>
        <dd>{webhook.name ?? '—'}</dd>
        <dt>Events</dt>
        <dd>
          <ul class="plain">
            {webhook.events.map((e) => (
              <li key={e}>
                <code>{e}</code>
              </li>
            ))}
          </ul>
        </dd>
        <dt>Room</dt>
        <dd>{webhook.room_id ? <code>{webhook.room_id}</code> : 'Every room'}</dd>
        <dt>Custom headers</dt>
        <dd>
          {headers.length === 0 ? (
            'None'
          ) : (
            <ul class="plain">
              {headers.map(([name, value]) => (
                <li key={name}>
                  <code>
                    {name}: {value}
                  </code>
                </li>
              ))}
            </ul>
          )}
        </dd>
        <dt>Retry schedule</dt>
        <dd>{webhook.retry_schedule?.length ? `${webhook.retry_schedule.join(', ')} seconds` : 'The default (1, 5, 30 seconds)'}</dd>
        <dt>Ordering</dt>
        <dd>{webhook.ordering === 'room' ? 'Per room, in publish order' : 'None'}</dd>
        <dt>Traceparent header</dt>
        <dd>{webhook.send_traceparent ? 'Sent (while tracing is on)' : 'Not sent'}</dd>
        {webhook.previous_secret_expires_at ? (
          <>
            <dt>Previous secret signs until</dt>
            <dd>
              <Time value={webhook.previous_secret_expires_at} />
            </dd>
          </>
        ) : null}
        <dt>Created</dt>
        <dd>
          <Time value={webhook.created_at} />
        </dd>
        <dt>Updated</dt>
        <dd>
          <Time value={webhook.updated_at} />
        </dd>
        <dt>ID</dt>
        <dd>
          <code>{webhook.id}</code>
        </dd>
      </dl>
      {testDelivery ? (
        <p role="status">
          Test ping queued: <Link to={`/webhooks/${seg(webhook.id)}/deliveries/${seg(testDelivery)}`}>open its delivery</Link>.
        </p>
      ) : null}
      {canWrite ? (
        <div class="actions" role="group" aria-label="Webhook actions">
          <button type="button" onClick={() => setEditing(true)}>
            Edit
          </button>
          <button
            type="button"
            class="secondary"
            aria-busy={busy === 'enable'}
            disabled={busy !== ''}
            onClick={() =>
              run('enable', async () => {
                const data = await api.patch<{ webhook: Webhook }>(path, { enabled: !webhook.enabled });
                onChanged(data.webhook);
                setNotice(data.webhook.enabled ? 'Enabled.' : 'Disabled.');
              })
            }
          >
            {webhook.enabled ? 'Disable' : 'Enable'}
          </button>
          <button
            type="button"
            class="secondary"
            aria-busy={busy === 'test'}
            disabled={busy !== ''}
            onClick={() =>
              run('test', async () => {
                const data = await api.post<{ delivery_id: string }>(`${path}/test`);
                setTestDelivery(data.delivery_id);
              })
            }
          >
            Send test ping
          </button>
          {portal ? null : (
            <ConfirmButton
              label="Delete"
              question={`Delete ${webhookTitle(webhook)}? Its deliveries stop.`}
              disabled={busy !== ''}
              onConfirm={() =>
                run('delete', async () => {
                  await api.delete(path);
                  route(`${base}/webhooks`);
                })
              }
            />
          )}
        </div>
      ) : null}
      {canWrite ? (
        <form
          class="rotate"
          aria-label="Rotate secret"
          noValidate
          onSubmit={(e) => {
            e.preventDefault();
            run('rotate', async () => {
              if (overlap.trim() === '') {
                throw new ApiError(400, 'validation_error', 'overlapSeconds: enter the seconds the replaced secret keeps signing (0 to 604800)', [
                  { field: 'overlapSeconds', message: 'required' },
                ]);
              }
              // The API checks the number (a whole number of seconds, 0 to 604800) and names the field.
              const data = await api.post<{ webhook: WebhookWithSecret }>(`${path}/rotate-secret`, { overlapSeconds: Number(overlap) });
              const { secret: fresh, ...rest } = data.webhook;
              setSecret(fresh);
              onChanged(rest);
            });
          }}
        >
          <fieldset role="group">
            <label for="overlap" class="visually-hidden">
              Overlap seconds
            </label>
            <input
              id="overlap"
              type="number"
              min={0}
              max={604800}
              value={overlap}
              aria-describedby="overlap-help"
              onInput={(e) => setOverlap(e.currentTarget.value)}
            />
            <button type="submit" class="secondary" aria-busy={busy === 'rotate'} disabled={busy !== ''}>
              Rotate secret
            </button>
          </fieldset>
          <small id="overlap-help">Overlap seconds: how long the replaced secret keeps signing beside the new one (0 to 604800).</small>
        </form>
      ) : null}
    </section>
  );
}

const WINDOWS: [WebhookStats['window'], string][] = [
  ['1h', 'Last hour'],
  ['24h', 'Last 24 hours'],
  ['7d', 'Last 7 days'],
];

function Health({ accountId, webhookId }: { accountId: string; webhookId: string }) {
  const [span, setSpan] = useState<WebhookStats['window']>('24h');
  const stats = useLoad(
    (signal) => api.get<{ stats: WebhookStats }>(statsPath(accountId, webhookId), { window: span }, signal),
    [accountId, webhookId, span],
  );
  const s = stats.data?.stats;
  const charts = useMemo(() => {
    if (!s) return null;
    const times = s.buckets.map((b) => Math.floor(Date.parse(b.start) / 1000));
    const rate: ChartSeries = {
      label: 'Success rate',
      values: s.buckets.map((b) => (b.attempts > 0 ? (100 * b.successes) / b.attempts : null)),
      format: (v) => `${Math.round(v)}%`,
      color: '#2e7d32',
    };
    const latency: ChartSeries = {
      label: 'p95 latency',
      values: s.buckets.map((b) => b.latency_p95_ms),
      format: (v) => `${Math.round(v)} ms`,
      color: '#1e88e5',
    };
    return { times, rate: [rate], latency: [latency] };
  }, [s]);
  return (
    <section aria-labelledby="health-heading">
      <h2 id="health-heading">Health</h2>
      <div class="actions filters">
        <label for="stats-window">Window</label>
        <select id="stats-window" value={span} onChange={(e) => setSpan(e.currentTarget.value as WebhookStats['window'])}>
          {WINDOWS.map(([value, label]) => (
            <option key={value} value={value}>
              {label}
            </option>
          ))}
        </select>
      </div>
      <ErrorNotice error={stats.error} title="The health could not be read" />
      {stats.loading && !s ? <Loading what="Loading the health" /> : null}
      {s ? (
        <>
          <div class="grid stats-summary">
            <article>
              <small>Success rate</small>
              <p>
                <strong>{s.attempts === 0 ? 'no attempts' : formatRate(s.success_rate)}</strong>
              </p>
              <small>
                {s.successes} of {s.attempts} attempts
              </small>
            </article>
            <article>
              <small>Latency p50 / p95 / p99</small>
              <p>
                <strong>
                  {formatMs(s.latency_ms.p50)} / {formatMs(s.latency_ms.p95)} / {formatMs(s.latency_ms.p99)}
                </strong>
              </p>
            </article>
            <article>
              <small>Failure streak</small>
              <p>
                <strong class={s.failure_streak > 0 ? 'status-bad' : undefined}>{s.failure_streak}</strong>
              </p>
              <small>
                Last success <Time value={s.last_success_at} empty="never" />
              </small>
            </article>
            <article>
              <small>Deliveries</small>
              <p>
                <strong>
                  {s.deliveries.success} delivered, {s.deliveries.failed} failed, {s.deliveries.pending} pending
                </strong>
              </p>
            </article>
          </div>
          {s.last_error ? (
            <p>
              Last error (<Time value={s.last_failure_at} />): <code>{s.last_error}</code>
            </p>
          ) : null}
          {charts && s.attempts > 0 ? (
            <div class="grid">
              <Chart title="Success rate over time" times={charts.times} series={charts.rate} yMax={100} />
              <Chart title="p95 latency over time" times={charts.times} series={charts.latency} />
            </div>
          ) : (
            <p>No attempts in this window: nothing to chart yet.</p>
          )}
        </>
      ) : null}
    </section>
  );
}
