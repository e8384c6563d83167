// The webhooks list (25 a page, each row's health from its stats) and the create page, which
// shows the new webhook's secret once.

import { useState } from 'preact/hooks';
import { accountPath, api, getPage, type Webhook, type WebhookWithSecret } from '../api';
import { ErrorNotice, Link, Loading, Pager, Time } from '../components';
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
  const rows = page.data?.items ?? [];
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
      <ErrorNotice error={page.error} title="The webhooks could not be read" />
      {page.loading && !page.data ? <Loading what="Loading the webhooks" /> : null}
      {page.data && rows.length === 0 && page.pageNumber === 1 ? (
        <p>No webhooks yet.{canWrite ? ' Create one to start receiving events.' : ''}</p>
      ) : null}
      {rows.length > 0 ? (
        <div class="overflow-auto">
          <table class="striped" aria-busy={page.loading}>
            <caption class="visually-hidden">Webhooks, page {page.pageNumber}</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">URL</th>
                <th scope="col">Events</th>
                <th scope="col">Status</th>
                <th scope="col">Success (24 h)</th>
                <th scope="col">p95 latency</th>
                <th scope="col">Failure streak</th>
                <th scope="col">Created</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((w) => (
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
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
      <Pager
        label="Webhook pages"
        pageNumber={page.pageNumber}
        hasPrevious={page.hasPrevious}
        hasNext={page.hasNext}
        onPrevious={page.previous}
        onNext={page.next}
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
