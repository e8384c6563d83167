// The account's audit log (OWNER and ADMIN keys, as the API decides), newest first and paged:
// who changed what, and the fields changed; a value the API hides is shown as hidden.

import { accountPath, getPage } from '../api';
import { PagedTable, Time } from '../components';
import { usePaged } from '../hooks';
import { useSession } from '../session';

const PAGE_SIZE = 25;

interface FieldChange {
  field: string;
  value?: unknown;
  hidden?: boolean;
}

interface AuditEntry {
  id: string;
  account_id: string;
  created_at: string;
  actor: string;
  key_id: string | null;
  key_label: string | null;
  role: string | null;
  action: string;
  target_id: string | null;
  changes: FieldChange[];
}

function actorText(e: AuditEntry): string {
  if (e.actor === 'system') return 'the platform';
  const who = e.key_label ?? (e.key_id ? `key ${e.key_id.slice(0, 8)}` : e.actor);
  return e.role ? `${who} (${e.role})` : who;
}

function valueText(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  return typeof value === 'string' ? value : JSON.stringify(value);
}

export function AuditLog(_props: Record<string, unknown>) {
  const { accountId, me } = useSession();
  const role = String(me.role ?? '').toUpperCase();
  const allowed = role === 'OWNER' || role === 'ADMIN';
  return (
    <section>
      <hgroup>
        <h1>Audit log</h1>
        <p>Every change to the account, newest first: through the API (which key) and by the platform itself.</p>
      </hgroup>
      {allowed ? <Entries accountId={accountId} /> : <p role="status">Only OWNER and ADMIN keys read the audit log; this key is {me.role ?? 'not a key'}.</p>}
    </section>
  );
}

function Entries({ accountId }: { accountId: string }) {
  const page = usePaged<AuditEntry>(
    (cursor, signal) => getPage<AuditEntry>(accountPath(accountId, '/audit-log'), 'entries', { limit: PAGE_SIZE, cursor }, signal),
    [accountId],
  );
  return (
    <>
      <PagedTable
        page={page}
        noun="audit log"
        caption="Audit log"
        empty={<p>No changes yet.</p>}
        columns={['When', 'Actor', 'Action', 'Target', 'Changes']}
        row={(e) => (
          <tr key={e.id}>
            <th scope="row">
              <Time value={e.created_at} />
            </th>
            <td>{actorText(e)}</td>
            <td>
              <code>{e.action}</code>
            </td>
            <td>{e.target_id ? <code>{e.target_id}</code> : '—'}</td>
            <td>
              {e.changes.length === 0 ? (
                '—'
              ) : (
                <ul class="changes">
                  {e.changes.map((c, i) => (
                    <li key={i}>
                      <code>{c.field}</code>: {c.hidden ? <em>hidden</em> : <code>{valueText(c.value)}</code>}
                    </li>
                  ))}
                </ul>
              )}
            </td>
          </tr>
        )}
        pagerLabel="Audit log pages"
      />
    </>
  );
}
