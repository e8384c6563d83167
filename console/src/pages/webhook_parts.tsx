// Pieces the webhook pages share: the secret shown once, a webhook's status, its health.

import { accountPath, api, seg, type Webhook, type WebhookStats } from '../api';
import { CopyButton } from '../components';
import { useLoad } from '../hooks';

/** A secret the API answers once (create, rotate): shown with a Copy button and the warning. */
export function SecretOnce({ secret, heading = 'Signing secret' }: { secret: string; heading?: string }) {
  return (
    <article class="secret-once" aria-labelledby="secret-heading">
      <h2 id="secret-heading">{heading}</h2>
      <p>
        <strong>This secret will not be shown again.</strong> Keep it where your receiver can read it to verify
        signatures.
      </p>
      <p>
        <code class="secret" aria-label="Secret">
          {secret}
        </code>
      </p>
      <CopyButton value={secret} label="Copy secret" />
    </article>
  );
}

export function webhookTitle(w: Pick<Webhook, 'name' | 'url'>): string {
  return w.name && w.name.trim() ? w.name : w.url;
}

export function WebhookStatus({ webhook }: { webhook: Webhook }) {
  if (webhook.enabled) return <span class="status-ok">Enabled</span>;
  return (
    <span class="status-bad">
      Disabled
      {webhook.disabled_reason ? <small class="reason">: {webhook.disabled_reason}</small> : null}
    </span>
  );
}

export function formatRate(rate: number | null | undefined): string {
  return rate === null || rate === undefined ? '—' : `${(rate * 100).toFixed(rate >= 0.9995 || rate === 0 ? 0 : 1)}%`;
}

export function formatMs(ms: number | null | undefined): string {
  return ms === null || ms === undefined ? '—' : `${ms} ms`;
}

export function statsPath(accountId: string, webhookId: string): string {
  return accountPath(accountId, `/webhooks/${seg(webhookId)}/stats`);
}

/** One list row's health over the last 24 hours: success rate, p95 latency, failure streak. */
export function HealthCells({ accountId, webhookId }: { accountId: string; webhookId: string }) {
  const stats = useLoad(
    (signal) => api.get<{ stats: WebhookStats }>(statsPath(accountId, webhookId), { window: '24h' }, signal),
    [accountId, webhookId],
  );
  if (stats.loading) {
    return (
      <td colSpan={3} aria-busy="true">
        Loading health…
      </td>
    );
  }
  if (stats.error || !stats.data) {
    return (
      <td colSpan={3} class="status-bad">
        Health unavailable: {stats.error?.message ?? 'no answer'}
      </td>
    );
  }
  const s = stats.data.stats;
  return (
    <>
      <td>{s.attempts === 0 ? 'no attempts' : formatRate(s.success_rate)}</td>
      <td>{formatMs(s.latency_ms.p95)}</td>
      <td class={s.failure_streak > 0 ? 'status-bad' : undefined}>{s.failure_streak}</td>
    </>
  );
}
