// The webhooks list (25 a page, each row's health from its stats) and the create page, which
// shows the new webhook's secret once.

import { useState } from 'preact/hooks';
import { accountPath, api, getPage, type Webhook, type WebhookWithSecret } from '../api';
import { ErrorNotice, Link, PagedTable, Time } from '../components';
import { usePaged } from '../hooks';
import { useArea, useSession } from '../session';
import { WebhookForm, createBody, fieldsOf } from './webhook_form';
import { HealthCells, SecretOnce, WebhookStatus, webhookTitle } from './webhook_parts';

export const PAGE_SIZE = 25;

export function WebhookList(_props: Record<string, unknown>) {
  const { accountId, canWrite } = useSession();
  const page = usePaged<Webhook>(
    (cursor, signal) => getPage<Webhook>(accountPath(accountId, '/webhooks'), 'webhooks', { limit: PAGE_SIZE, cursor }, signal),
    [accountId],
  );
  return (
    <section>
      <hgroup>
        <h1>Webhooks</h1>
        <p>Where events are delivered, and how each endpoint has answered over the last 24 hours.</p>
      </hgroup>
      {canWrite ? (
        <p>
          <Link to="/webhooks/new" class="button-link">
            New webhook
          </Link>
        </p>
      ) : null}
      <PagedTable
        page={page}
        noun="webhooks"
        caption="Webhooks"
        empty={<p>No webhooks yet.{canWrite ? ' Create one to start receiving events.' : ''}</p>}
        columns={['Name', 'URL', 'Events', 'Status', 'Success (24 h)', 'p95 latency', 'Failure streak', 'Created']}
        row={(w) => (
          <tr key={w.id}>
            <th scope="row">
              <Link to={`/webhooks/${encodeURIComponent(w.id)}`}>{webhookTitle(w)}</Link>
            </th>
            <td>
              <code>{w.url}</code>
            </td>
            <td>{w.events.join(', ')}</td>
            <td>
              <WebhookStatus webhook={w} />
            </td>
            <HealthCells accountId={accountId} webhookId={w.id} />
            <td>
              <Time value={w.created_at} />
            </td>
          </tr>
        )}
        pagerLabel="Webhook pages"
      />
    </section>
  );
}

export function WebhookNew(_props: Record<string, unknown>) {
  const { accountId, canWrite } = useSession();
  const { base } = useArea();
  const [created, setCreated] = useState<WebhookWithSecret | null>(null);
  if (!canWrite) {
    return (
      <section>
        <h1>New webhook</h1>
        <ErrorNotice error={new Error('This key may only read: creating a webhook needs an OWNER or ADMIN key.')} />
      </section>
    );
  }
  if (created) {
    return (
      <section>
        <h1>Webhook created</h1>
        <p>
          <strong>{webhookTitle(created)}</strong> delivers to <code>{created.url}</code>.
        </p>
        <SecretOnce secret={created.secret} />
        <p>
          <a href={`${base}/webhooks/${encodeURIComponent(created.id)}`}>Open the webhook</a>
        </p>
      </section>
    );
  }
  return (
    <section>
      <h1>New webhook</h1>
      <WebhookForm
        mode="create"
        initial={fieldsOf()}
        onSubmit={async (fields) => {
          const data = await api.post<{ webhook: WebhookWithSecret }>(accountPath(accountId, '/webhooks'), createBody(fields));
          setCreated(data.webhook);
        }}
      />
    </section>
  );
}
