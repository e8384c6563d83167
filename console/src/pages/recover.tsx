// Recover a time window: POST .../recover starts a background job that sends every failed
// delivery of the window again; its progress is read each second until done or failed.

import { useEffect, useState } from 'preact/hooks';
import { accountPath, api, seg, type Job } from '../api';
import { ErrorNotice } from '../components';

const POLL_MS = 1000;

/** A datetime-local value (local time, minutes) for an instant. */
export function localInput(at: Date): string {
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${at.getFullYear()}-${pad(at.getMonth() + 1)}-${pad(at.getDate())}T${pad(at.getHours())}:${pad(at.getMinutes())}`;
}

/** A datetime-local value as RFC 3339 (UTC); empty stays empty, nonsense is passed on for the API to name. */
export function rfc3339(value: string): string {
  if (!value) return '';
  const at = new Date(value);
  return Number.isNaN(at.getTime()) ? value : at.toISOString();
}

export function RecoverPanel({ accountId, webhookId, onDone }: { accountId: string; webhookId: string; onDone?: () => void }) {
  const [since, setSince] = useState(() => localInput(new Date(Date.now() - 3600_000)));
  const [until, setUntil] = useState('');
  const [job, setJob] = useState<Job | null>(null);
  const [error, setError] = useState<unknown>(undefined);
  const [busy, setBusy] = useState(false);
  const running = job !== null && (job.status === 'queued' || job.status === 'running');

  useEffect(() => {
    if (!job || !running) return;
    let stopped = false;
    const timer = setTimeout(async () => {
      try {
        const data = await api.get<{ job: Job }>(accountPath(accountId, `/jobs/${seg(job.id)}`));
        if (stopped) return;
        setJob(data.job);
        if (data.job.status === 'done' || data.job.status === 'failed') onDone?.();
      } catch (err) {
        if (!stopped) setError(err);
      }
    }, POLL_MS);
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [job, running, accountId]);

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    setJob(null);
    try {
      const body: Record<string, string> = { since: rfc3339(since) };
      if (until) body.until = rfc3339(until);
      const data = await api.post<{ job: Job }>(accountPath(accountId, `/webhooks/${seg(webhookId)}/recover`), body);
      setJob(data.job);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <section aria-labelledby="recover-heading">
      <h2 id="recover-heading">Recover a time window</h2>
      <p>Sends every failed delivery created in the window again, with new attempts.</p>
      <form onSubmit={submit} noValidate aria-label="Recover">
        <div class="grid">
          <div>
            <label for="recover-since">From</label>
            <input id="recover-since" type="datetime-local" value={since} required onInput={(e) => setSince(e.currentTarget.value)} />
          </div>
          <div>
            <label for="recover-until">Until</label>
            <input
              id="recover-until"
              type="datetime-local"
              value={until}
              aria-describedby="recover-until-help"
              onInput={(e) => setUntil(e.currentTarget.value)}
            />
            <small id="recover-until-help">Empty: now.</small>
          </div>
        </div>
        <button type="submit" aria-busy={busy} disabled={busy || running}>
          Recover failed deliveries
        </button>
      </form>
      <ErrorNotice error={error} title="The recovery could not be started" />
      {job ? <JobProgress job={job} /> : null}
    </section>
  );
}

function JobProgress({ job }: { job: Job }) {
  const finished = job.status === 'done' || job.status === 'failed';
  const total = Math.max(job.total, job.done);
  const words =
    job.status === 'queued'
      ? 'Queued'
      : job.status === 'running'
        ? `Running: ${job.done} of ${total} sent again`
        : job.status === 'done'
          ? `Done: ${job.done} of ${total} sent again`
          : `Failed: ${job.error ?? 'the job stopped'}`;
  return (
    <div class="job-progress">
      <label for="recover-progress">Recovery progress</label>
      <progress
        id="recover-progress"
        max={total > 0 ? total : 1}
        value={total > 0 ? job.done : finished ? 1 : undefined}
        aria-describedby="recover-status"
      />
      <p id="recover-status" role="status" data-status={job.status} class={job.status === 'failed' ? 'status-bad' : undefined}>
        {words}
      </p>
    </div>
  );
}
