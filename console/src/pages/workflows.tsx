// Workflows: the list, the create page, and a workflow's page (its code in the editor, enable or
// disable, delete, executions and their chart, versions). Routes: /workflows, /workflows/new,
// /workflows/:id, /workflows/:id/executions/:executionId (app.tsx).

import { useState } from 'preact/hooks';
import { useLocation } from 'preact-iso';
import { api, getPage } from '../api';
import { ConfirmButton, ErrorNotice, Link, Loading, PagedTable, Time } from '../components';
import { useLoad, usePaged } from '../hooks';
import { useArea, useSession } from '../session';
import { workflowLink, workflowPath, workflowsPath, type Workflow } from './workflows_api';
import { WorkflowForm, createBody, fieldsOf, patchBody } from './workflows_form';
import { ExecutionChart, ExecutionList } from './workflows_runs';
import { VersionList } from './workflows_versions';

export { ExecutionDetail } from './workflows_runs';

const PAGE_SIZE = 25;

function EnabledText({ enabled }: { enabled: boolean }) {
  return <span class={enabled ? 'status-ok' : 'status-bad'}>{enabled ? 'enabled' : 'disabled'}</span>;
}

function languageName(language: string): string {
  return language === 'ts' ? 'TypeScript' : 'JavaScript';
}

export function WorkflowList(_props: Record<string, unknown>) {
  const { accountId, canWrite } = useSession();
  const page = usePaged<Workflow>(
    (cursor, signal) => getPage<Workflow>(workflowsPath(accountId), 'workflows', { limit: PAGE_SIZE, cursor }, signal),
    [accountId],
  );
  return (
    <section>
      <hgroup>
        <h1>Workflows</h1>
        <p>Code that runs on the platform when its events occur.</p>
      </hgroup>
      {canWrite ? (
        <p>
          <Link to="/workflows/new" role="button">
            New workflow
          </Link>
        </p>
      ) : null}
      <PagedTable
        page={page}
        noun="workflows"
        caption="Workflows"
        empty={<p>No workflows yet.</p>}
        columns={['Name', 'Events', 'Status', 'Language', 'Version', 'Updated']}
        row={(w) => (
          <tr key={w.id}>
            <th scope="row">
              <Link to={workflowLink(w.id)}>{w.name}</Link>
            </th>
            <td>{w.events.join(', ')}</td>
            <td>
              <EnabledText enabled={w.enabled} />
            </td>
            <td>{languageName(w.language)}</td>
            <td>{w.version}</td>
            <td>
              <Time value={w.updated_at} />
            </td>
          </tr>
        )}
        pagerLabel="Workflow pages"
      />
    </section>
  );
}

export function WorkflowNew(_props: Record<string, unknown>) {
  const { accountId, canWrite } = useSession();
  const { base } = useArea();
  const { route } = useLocation();
  if (!canWrite) {
    return (
      <section>
        <h1>New workflow</h1>
        <ErrorNotice error={new Error('This key may only read: creating a workflow needs an OWNER or ADMIN key.')} />
      </section>
    );
  }
  return (
    <section>
      <h1>New workflow</h1>
      <WorkflowForm
        mode="create"
        readOnly={false}
        initial={fieldsOf()}
        onSubmit={async (fields) => {
          const data = await api.post<{ workflow: Workflow }>(workflowsPath(accountId), createBody(fields));
          route(`${base}${workflowLink(data.workflow.id)}`);
        }}
      />
    </section>
  );
}

export function WorkflowDetail({ id = '' }: { id?: string }) {
  const { accountId, canWrite } = useSession();
  const { base } = useArea();
  const { route } = useLocation();
  const loaded = useLoad((signal) => api.get<{ workflow: Workflow }>(workflowPath(accountId, id), undefined, signal), [accountId, id]);
  const [actionError, setActionError] = useState<unknown>(undefined);
  const [toggling, setToggling] = useState(false);
  const [runsSeen, setRunsSeen] = useState(0);
  const w = loaded.data?.workflow;

  const setEnabled = async (enabled: boolean) => {
    setToggling(true);
    setActionError(undefined);
    try {
      const data = await api.patch<{ workflow: Workflow }>(workflowPath(accountId, id), { enabled });
      loaded.set(data);
    } catch (err) {
      setActionError(err);
    } finally {
      setToggling(false);
    }
  };
  const remove = async () => {
    setActionError(undefined);
    try {
      await api.delete(workflowPath(accountId, id));
      route(`${base}/workflows`);
    } catch (err) {
      setActionError(err);
    }
  };

  return (
    <section>
      <nav aria-label="Breadcrumb">
        <ul>
          <li>
            <Link to="/workflows">Workflows</Link>
          </li>
          <li>{w?.name ?? 'Workflow'}</li>
        </ul>
      </nav>
      <ErrorNotice error={loaded.error} title="The workflow could not be read" />
      {loaded.loading && !w ? <Loading what="Loading the workflow" /> : null}
      {w ? (
        <>
          <hgroup>
            <h1>{w.name}</h1>
            <p>
              <EnabledText enabled={w.enabled} /> · {languageName(w.language)} · version {w.version} · updated <Time value={w.updated_at} />
            </p>
          </hgroup>
          <ErrorNotice error={actionError} title="That did not work" />
          {canWrite ? (
            <p class="actions">
              <button type="button" class="secondary" aria-busy={toggling} disabled={toggling} onClick={() => setEnabled(!w.enabled)}>
                {w.enabled ? 'Disable' : 'Enable'}
              </button>
              <ConfirmButton label="Delete" question={`Delete the workflow "${w.name}"? Its executions stay in the log.`} onConfirm={remove} />
            </p>
          ) : null}
          {/* keyed by id: a save that answers a new version keeps the editor's own text */}
          <WorkflowForm
            key={w.id}
            mode="edit"
            readOnly={!canWrite}
            initial={fieldsOf(w)}
            onSubmit={async (fields) => {
              const current = loaded.data?.workflow ?? w;
              const body = patchBody(fieldsOf(current), fields);
              if (Object.keys(body).length === 0) return;
              const data = await api.patch<{ workflow: Workflow }>(workflowPath(accountId, id), body);
              loaded.set(data);
            }}
          />
          <ExecutionChart workflowId={w.id} refreshKey={runsSeen} />
          <ExecutionList workflowId={w.id} onRefresh={() => setRunsSeen((n) => n + 1)} />
          <VersionList workflowId={w.id} current={w.version} />
        </>
      ) : null}
    </section>
  );
}
