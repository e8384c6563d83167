// A workflow's saved versions (newest first, no code in the list) and one version's code,
// read-only.

import { useState } from 'preact/hooks';
import { api, getPage } from '../api';
import { ErrorNotice, Loading, PagedTable, Time } from '../components';
import { CodeEditor } from '../components/code_editor';
import { useLoad, usePaged } from '../hooks';
import { useSession } from '../session';
import { workflowPath, type SavedBy, type Version, type VersionSummary } from './workflows_api';

const PAGE_SIZE = 25;

function savedBy(who: SavedBy | null): string {
  if (!who) return 'not recorded';
  if (who.actor === 'system') return 'the platform';
  const name = who.key_label ?? (who.key_id ? `key ${who.key_id.slice(0, 8)}` : 'a key');
  return who.role ? `${name} (${who.role})` : name;
}

export function VersionList({ workflowId, current }: { workflowId: string; current: number }) {
  const { accountId } = useSession();
  const [shown, setShown] = useState<number | null>(null);
  const page = usePaged<VersionSummary>(
    (cursor, signal) => getPage<VersionSummary>(workflowPath(accountId, workflowId, '/versions'), 'versions', { limit: PAGE_SIZE, cursor }, signal),
    [accountId, workflowId, current],
  );
  return (
    <section aria-labelledby="wf-versions">
      <h2 id="wf-versions">Versions</h2>
      <PagedTable
        page={page}
        noun="versions"
        caption="Versions"
        columns={['Version', 'Language', 'Saved', 'By', 'Code']}
        row={(v) => (
          <tr key={v.version} aria-current={v.version === shown ? 'true' : undefined}>
            <th scope="row">
              {v.version}
              {v.current ? ' (current)' : ''}
            </th>
            <td>{v.language}</td>
            <td>
              <Time value={v.created_at} />
            </td>
            <td>{savedBy(v.saved_by)}</td>
            <td>
              <button type="button" class="secondary outline" onClick={() => setShown(v.version)} aria-pressed={v.version === shown}>
                Show version {v.version}
              </button>
            </td>
          </tr>
        )}
        pagerLabel="Version pages"
      />
      {shown !== null ? <VersionCode workflowId={workflowId} version={shown} onClose={() => setShown(null)} /> : null}
    </section>
  );
}

function VersionCode({ workflowId, version, onClose }: { workflowId: string; version: number; onClose: () => void }) {
  const { accountId } = useSession();
  const loaded = useLoad(
    (signal) => api.get<{ version: Version }>(workflowPath(accountId, workflowId, `/versions/${version}`), undefined, signal),
    [accountId, workflowId, version],
  );
  const v = loaded.data?.version;
  return (
    <article aria-labelledby="wf-version-code">
      <header class="actions">
        <h3 id="wf-version-code">Version {version}</h3>
        <button type="button" class="secondary outline" onClick={onClose}>
          Close version {version}
        </button>
      </header>
      <ErrorNotice error={loaded.error} title={`Version ${version} could not be read`} />
      {loaded.loading && !v ? <Loading what={`Loading version ${version}`} /> : null}
      {v ? (
        <>
          <p>
            {v.language === 'ts' ? 'TypeScript' : 'JavaScript'}, saved <Time value={v.created_at} /> by {savedBy(v.saved_by)}.
          </p>
          <CodeEditor key={`${workflowId}-${version}`} value={v.code} language={v.language} label={`Code of version ${version}`} readOnly />
        </>
      ) : null}
    </article>
  );
}
