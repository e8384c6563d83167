// The API reference as text: every operation of /openapi.json (method, path, summary), grouped
// by tag, or by the path's first segments when an operation has no tag.

import { useMemo, useState } from 'preact/hooks';
import { ApiError } from '../api';
import { ErrorNotice, Loading } from '../components';
import { useLoad } from '../hooks';

const METHODS = ['get', 'post', 'put', 'patch', 'delete', 'head', 'options'];

interface Operation {
  method: string;
  path: string;
  summary: string;
  group: string;
}

interface OpenApi {
  info?: { title?: string; version?: string; description?: string };
  paths?: Record<string, Record<string, { summary?: string; description?: string; tags?: string[] }>>;
}

/** `/v1/accounts/{account_id}/webhooks/...` -> "webhooks"; `/healthz` -> "healthz". */
export function groupOf(path: string): string {
  const parts = path.split('/').filter((p) => p && !p.startsWith('{') && p !== 'v1' && p !== 'accounts');
  return parts[0] ?? path;
}

export function operationsOf(doc: OpenApi): Operation[] {
  const ops: Operation[] = [];
  for (const [path, item] of Object.entries(doc.paths ?? {})) {
    for (const method of METHODS) {
      const op = item?.[method];
      if (!op || typeof op !== 'object') continue;
      const tag = Array.isArray(op.tags) && typeof op.tags[0] === 'string' ? op.tags[0] : null;
      ops.push({
        method: method.toUpperCase(),
        path,
        summary: String(op.summary ?? op.description ?? ''),
        group: tag ?? groupOf(path),
      });
    }
  }
  return ops;
}

// The document is public and not an envelope: read as it is, with no key sent.
async function loadDocument(signal: AbortSignal): Promise<OpenApi> {
  let response: Response;
  try {
    response = await fetch('/openapi.json', { signal, credentials: 'omit', headers: { Accept: 'application/json' } });
  } catch (err) {
    if (err instanceof DOMException && err.name === 'AbortError') throw err;
    throw new ApiError(0, 'network', 'The API could not be reached: check the connection and try again.');
  }
  if (!response.ok) throw new ApiError(response.status, String(response.status), `The API answered ${response.status} for /openapi.json`);
  return (await response.json()) as OpenApi;
}

export function Docs(_props: Record<string, unknown>) {
  const loaded = useLoad(loadDocument, []);
  const [filter, setFilter] = useState('');
  const groups = useMemo(() => {
    const byGroup = new Map<string, Operation[]>();
    const needle = filter.trim().toLowerCase();
    for (const op of operationsOf(loaded.data ?? {})) {
      if (needle && !`${op.method} ${op.path} ${op.summary}`.toLowerCase().includes(needle)) continue;
      byGroup.set(op.group, [...(byGroup.get(op.group) ?? []), op]);
    }
    return [...byGroup.entries()];
  }, [loaded.data, filter]);
  const info = loaded.data?.info;
  return (
    <section>
      <hgroup>
        <h1>API reference</h1>
        <p>
          {info?.title ?? 'The roomhooks API'}
          {info?.version ? ` ${info.version}` : ''}: every operation, from <a href="/openapi.json">/openapi.json</a>. Calls take{' '}
          <code>Authorization: Bearer &lt;API key&gt;</code>; bodies are camelCase JSON, answers snake_case.
        </p>
      </hgroup>
      <label for="docs-filter">Filter operations</label>
      <input id="docs-filter" type="search" value={filter} onInput={(e) => setFilter(e.currentTarget.value)} />
      <ErrorNotice error={loaded.error} title="The API document could not be read" />
      {loaded.loading ? <Loading what="Loading the API document" /> : null}
      {loaded.data && groups.length === 0 ? <p>No operation matches.</p> : null}
      {groups.map(([group, ops]) => (
        <section key={group} aria-labelledby={`docs-${group}`}>
          <h2 id={`docs-${group}`}>{group}</h2>
          <table class="striped">
            <thead>
              <tr>
                <th scope="col">Method</th>
                <th scope="col">Path</th>
                <th scope="col">Summary</th>
              </tr>
            </thead>
            <tbody>
              {ops.map((op) => (
                <tr key={`${op.method} ${op.path}`}>
                  <td>
                    <code>{op.method}</code>
                  </td>
                  <td>
                    <code>{op.path}</code>
                  </td>
                  <td>{op.summary}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
      ))}
    </section>
  );
}
