// A workflow's executions: the paged log (filtered by status), one execution with its result,
// error and logs, and the chart of executions per status over a window.

import { useMemo, useState } from 'preact/hooks';
import { api, getPage } from '../api';
import { Chart, ErrorNotice, JsonView, Link, Loading, PagedTable, Time, type ChartSeries } from '../components';
import { useLoad, usePaged } from '../hooks';
import { useSession } from '../session';
import {
  EXECUTION_STATUSES,
  errorMessage,
  formatDuration,
  oneLine,
  workflowLink,
  workflowPath,
  type Execution,
  type ExecutionFetch,
  type ExecutionStatus,
  type StatsWindow,
  type Workflow,
  type WorkflowStats,
} from './workflows_api';

const PAGE_SIZE = 25;

export function ExecutionStatusText({ status }: { status: string }) {
  const good = status === 'success';
  const bad = status === 'error' || status === 'timeout';
  return <span class={good ? 'status-ok' : bad ? 'status-bad' : undefined}>{status}</span>;
}

function eventLink(eventId: string): string {
  return `/events/${encodeURIComponent(eventId)}`;
}

export function ExecutionList({ workflowId, onRefresh }: { workflowId: string; onRefresh?: () => void }) {
  const { accountId, portal } = useSession();
  const [status, setStatus] = useState<'' | ExecutionStatus>('');
  const page = usePaged<Execution>(
    (cursor, signal) =>
      getPage<Execution>(workflowPath(accountId, workflowId, '/executions'), 'executions', { limit: PAGE_SIZE, cursor, status }, signal),
    [accountId, workflowId, status],
  );
  return (
    <section aria-labelledby="wf-executions">
      <h2 id="wf-executions">Executions</h2>
      <div class="actions">
        <label for="wf-exec-status">Status</label>
        <select id="wf-exec-status" value={status} onChange={(e) => setStatus(e.currentTarget.value as '' | ExecutionStatus)}>
          <option value="">Every status</option>
          {EXECUTION_STATUSES.map((s) => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
        </select>
        <button
          type="button"
          class="secondary outline"
          onClick={() => {
            page.reload();
            onRefresh?.();
          }}
        >
          Refresh executions
        </button>
      </div>
      <PagedTable
        page={page}
        noun="executions"
        caption="Executions"
        empty={<p>No executions{status ? ` with status ${status}` : ''} yet.</p>}
        columns={['Started', 'Status', 'Event', 'Version', 'Duration', 'Result', 'Error', 'Logs']}
        row={(x) => (
          <tr key={x.id}>
            <th scope="row">
              <Link to={workflowLink(workflowId, `/executions/${encodeURIComponent(x.id)}`)}>
                <Time value={x.started_at ?? x.created_at} />
              </Link>
            </th>
            <td>
              <ExecutionStatusText status={x.status} />
            </td>
            <td>{portal ? x.event : <Link to={eventLink(x.event_id)}>{x.event}</Link>}</td>
            <td>{x.version}</td>
            <td>{formatDuration(x.duration_ms)}</td>
            <td>
              <code>{oneLine(x.result, 60)}</code>
            </td>
            <td>{x.error ? oneLine(errorMessage(x.error), 80) : '—'}</td>
            <td>{x.logs.length}</td>
          </tr>
        )}
        pagerLabel="Execution pages"
      />
    </section>
  );
}

function logText(entry: Execution['logs'][number]): string {
  if (typeof entry.message === 'string') return entry.message;
  return JSON.stringify(entry);
}

export function ExecutionDetail({ id = '', executionId = '' }: { id?: string; executionId?: string }) {
  const { accountId } = useSession();
  const loaded = useLoad(
    async (signal) => {
      const [execution, workflow] = await Promise.all([
        api.get<{ execution: Execution }>(workflowPath(accountId, id, `/executions/${encodeURIComponent(executionId)}`), undefined, signal),
        api.get<{ workflow: Workflow }>(workflowPath(accountId, id), undefined, signal).catch(() => null),
      ]);
      return { execution: execution.execution, workflow: workflow?.workflow ?? null };
    },
    [accountId, id, executionId],
  );
  const x = loaded.data?.execution;
  return (
    <section>
      <nav aria-label="Breadcrumb">
        <ul>
          <li>
            <Link to="/workflows">Workflows</Link>
          </li>
          <li>
            <Link to={workflowLink(id)}>{loaded.data?.workflow?.name ?? 'Workflow'}</Link>
          </li>
          <li>Execution</li>
        </ul>
      </nav>
      <h1>Execution</h1>
      <ErrorNotice error={loaded.error} title="The execution could not be read" />
      {loaded.loading && !x ? <Loading what="Loading the execution" /> : null}
      {x ? (
        <>
          <dl class="facts">
            <dt>Status</dt>
            <dd>
              <ExecutionStatusText status={x.status} />
            </dd>
            <dt>Event</dt>
            <dd>
              <Link to={eventLink(x.event_id)}>{x.event}</Link> <code>{x.event_id}</code>
            </dd>
            <dt>Version</dt>
            <dd>{x.version}</dd>
            <dt>Started</dt>
            <dd>
              <Time value={x.started_at} empty="not started" />
            </dd>
            <dt>Duration</dt>
            <dd>{formatDuration(x.duration_ms)}</dd>
            <dt>ID</dt>
            <dd>
              <code>{x.id}</code>
            </dd>
          </dl>
          <h2>Result</h2>
          {x.result === null || x.result === undefined ? <p>No result.</p> : <JsonView value={x.result} label="Result" />}
          <h2>Error</h2>
          {x.error ? (
            <>
              <p class="status-bad">{errorMessage(x.error)}</p>
              {typeof x.error.stack === 'string' && x.error.stack ? (
                <pre class="json-view" tabIndex={0} aria-label="Stack">
                  <code>{x.error.stack}</code>
                </pre>
              ) : null}
            </>
          ) : (
            <p>No error.</p>
          )}
          <h2>Logs</h2>
          {x.logs.length === 0 ? (
            <p>No log lines.</p>
          ) : (
            <pre class="json-view execution-logs" tabIndex={0} aria-label="Logs">
              <code>
                {x.logs.map((entry, i) => (
                  <span key={i}>
                    {typeof entry.level === 'string' ? `${entry.level}: ` : ''}
                    {logText(entry)}
                    {'\n'}
                  </span>
                ))}
              </code>
            </pre>
          )}
          <h2>Fetches</h2>
          <ExecutionFetches fetches={x.fetches} />
        </>
      ) : null}
    </section>
  );
}

function ExecutionFetches({ fetches }: { fetches: ExecutionFetch[] | null | undefined }) {
  if (fetches === null || fetches === undefined) return <p>Not recorded for this execution.</p>;
  if (fetches.length === 0) return <p>No fetches.</p>;
  return (
    <div class="overflow-auto">
      <table aria-label="Fetches">
        <thead>
          <tr>
            <th scope="col">Method</th>
            <th scope="col">URL</th>
            <th scope="col">Status</th>
            <th scope="col">Duration</th>
            <th scope="col">Error</th>
          </tr>
        </thead>
        <tbody>
          {fetches.map((f, i) => (
            <tr key={i}>
              <td>{f.method}</td>
              <td>
                <code>{f.url}</code>
              </td>
              <td>{f.status === null ? 'no answer' : f.status}</td>
              <td>{formatDuration(f.duration_ms)}</td>
              <td>{f.error ?? '—'}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

const WINDOWS: [StatsWindow, string][] = [
  ['1h', 'Last hour'],
  ['24h', 'Last 24 hours'],
  ['7d', 'Last 7 days'],
];

const COLORS: Record<ExecutionStatus, string> = {
  success: '#43a047',
  error: '#e53935',
  timeout: '#fb8c00',
  running: '#1e88e5',
};

export function ExecutionChart({ workflowId, refreshKey = 0 }: { workflowId: string; refreshKey?: number }) {
  const { accountId } = useSession();
  const [span, setSpan] = useState<StatsWindow>('24h');
  const stats = useLoad(
    (signal) => api.get<{ stats: WorkflowStats }>(workflowPath(accountId, workflowId, '/stats'), { window: span }, signal),
    [accountId, workflowId, span, refreshKey],
  );
  const s = stats.data?.stats;
  const times = useMemo(() => (s ? s.buckets.map((b) => Math.floor(Date.parse(b.start) / 1000)) : []), [s]);
  const series = useMemo<ChartSeries[]>(
    () =>
      s
        ? EXECUTION_STATUSES.map((status) => ({
            label: status,
            values: s.buckets.map((b) => b.statuses[status] ?? 0),
            format: (v: number) => String(Math.round(v)),
            color: COLORS[status],
          }))
        : [],
    [s],
  );
  return (
    <section aria-labelledby="wf-activity">
      <h2 id="wf-activity">Executions over time</h2>
      <div class="actions">
        <label for="wf-window">Window</label>
        <select id="wf-window" value={span} onChange={(e) => setSpan(e.currentTarget.value as StatsWindow)}>
          {WINDOWS.map(([value, label]) => (
            <option key={value} value={value}>
              {label}
            </option>
          ))}
        </select>
      </div>
      <ErrorNotice error={stats.error} title="The execution statistics could not be read" />
      {stats.loading && !s ? <Loading what="Loading the execution statistics" /> : null}
      {s ? (
        <>
          <p>
            {s.executions} execution{s.executions === 1 ? '' : 's'}: {EXECUTION_STATUSES.map((st) => `${s.statuses[st] ?? 0} ${st}`).join(', ')}; p95 duration{' '}
            {formatDuration(s.duration_p95_ms)}.
          </p>
          <Chart title="Executions per status" times={times} series={series} />
        </>
      ) : null}
    </section>
  );
}
