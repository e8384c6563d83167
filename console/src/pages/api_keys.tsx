// The account's API keys (OWNER keys only, as the API decides): the list, revoked ones included,
// a create form whose answer shows the key once, and revoke with a confirmation.

import { useState } from 'preact/hooks';
import { ApiError, accountPath, api, getPage, seg } from '../api';
import { ConfirmButton, CopyButton, ErrorNotice, PagedTable, Time } from '../components';
import { usePaged } from '../hooks';
import { useSession } from '../session';

const PAGE_SIZE = 25;
const ROLES = ['OWNER', 'ADMIN', 'MEMBER'] as const;
type Role = (typeof ROLES)[number];

const ROLE_HELP: Record<Role, string> = {
  OWNER: 'manages keys, reads and writes everything',
  ADMIN: 'reads and writes webhooks and workflows',
  MEMBER: 'only reads',
};

interface ApiKey {
  id: string;
  account_id: string;
  label: string | null;
  role: string;
  prefix: string;
  created_at: string;
  last_used_at: string | null;
  expires_at: string | null;
  revoked_at: string | null;
}

interface ApiKeyWithToken extends ApiKey {
  key: string;
}

function keysPath(accountId: string, rest = ''): string {
  return accountPath(accountId, `/api-keys${rest}`);
}

export function ApiKeys(_props: Record<string, unknown>) {
  const { accountId, me } = useSession();
  const owner = String(me.role ?? '').toUpperCase() === 'OWNER';
  return (
    <section>
      <hgroup>
        <h1>API keys</h1>
        <p>Keys that call the API for this account. A key is shown once, when it is created; lists show its first characters.</p>
      </hgroup>
      {owner ? <OwnerView accountId={accountId} ownKeyId={me.key_id} /> : <p role="status">Only OWNER keys list, create and revoke API keys; this key is {me.role ?? 'not a key'}.</p>}
    </section>
  );
}

function OwnerView({ accountId, ownKeyId }: { accountId: string; ownKeyId?: string }) {
  const [created, setCreated] = useState<ApiKeyWithToken | null>(null);
  const [revokeError, setRevokeError] = useState<unknown>(undefined);
  const page = usePaged<ApiKey>(
    (cursor, signal) => getPage<ApiKey>(keysPath(accountId), 'api_keys', { limit: PAGE_SIZE, cursor }, signal),
    [accountId],
  );
  const revoke = async (key: ApiKey) => {
    setRevokeError(undefined);
    try {
      await api.delete(keysPath(accountId, `/${seg(key.id)}`));
      page.reload();
    } catch (err) {
      setRevokeError(err);
    }
  };
  return (
    <>
      {created ? (
        <KeyOnce created={created} onDone={() => setCreated(null)} />
      ) : (
        <CreateKey
          accountId={accountId}
          onCreated={(key) => {
            setCreated(key);
            page.first();
            page.reload();
          }}
        />
      )}
      <h2>Keys</h2>
      <ErrorNotice error={revokeError} title="The key was not revoked" />
      <PagedTable
        page={page}
        noun="API keys"
        caption="API keys"
        columns={['Label', 'Role', 'Prefix', 'Created', 'Last used', 'Expires', 'Revoked', <span class="visually-hidden">Actions</span>]}
        row={(k) => (
          <tr key={k.id}>
            <th scope="row">
              {k.label ?? <em>no label</em>}
              {k.id === ownKeyId ? ' (this key)' : ''}
            </th>
            <td>{k.role}</td>
            <td>
              <code>{k.prefix}…</code>
            </td>
            <td>
              <Time value={k.created_at} />
            </td>
            <td>
              <Time value={k.last_used_at} empty="never" />
            </td>
            <td>
              <Time value={k.expires_at} empty="never" />
            </td>
            <td>{k.revoked_at ? <Time value={k.revoked_at} /> : 'no'}</td>
            <td>
              {k.revoked_at ? null : (
                <ConfirmButton
                  label={`Revoke ${k.label ?? k.prefix}`}
                  question={`Revoke ${k.label ?? `the key ${k.prefix}…`}? Every request with it is refused from now on.`}
                  onConfirm={() => revoke(k)}
                />
              )}
            </td>
          </tr>
        )}
        pagerLabel="API key pages"
      />
    </>
  );
}

function KeyOnce({ created, onDone }: { created: ApiKeyWithToken; onDone: () => void }) {
  return (
    <article aria-labelledby="key-created">
      <h2 id="key-created">API key created</h2>
      <p>
        {created.label ?? 'The new key'} ({created.role}):
      </p>
      <p>
        <code class="secret" aria-label="Created API key">
          {created.key}
        </code>
      </p>
      <p class="actions">
        <CopyButton value={created.key} />
      </p>
      <p role="alert">
        <strong>This key will not be shown again.</strong> Copy it now and keep it somewhere safe.
      </p>
      <button type="button" class="secondary" onClick={onDone}>
        Done
      </button>
    </article>
  );
}

/** The value of a datetime-local input as an RFC 3339 instant in UTC; '' stays ''. */
function instantOf(local: string): string {
  if (!local) return '';
  const at = new Date(local);
  return Number.isNaN(at.getTime()) ? local : at.toISOString();
}

function CreateKey({ accountId, onCreated }: { accountId: string; onCreated: (key: ApiKeyWithToken) => void }) {
  const [role, setRole] = useState<Role>('MEMBER');
  const [label, setLabel] = useState('');
  const [expires, setExpires] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(undefined);
  const fieldMessage = (field: string) => (error instanceof ApiError ? error.fieldMessage(field) : undefined);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const body: Record<string, unknown> = { role };
      if (label.trim()) body.label = label.trim();
      if (expires) body.expiresAt = instantOf(expires);
      const data = await api.post<{ api_key: ApiKeyWithToken }>(keysPath(accountId), body);
      setLabel('');
      setExpires('');
      onCreated(data.api_key);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form onSubmit={submit} noValidate aria-label="New API key">
      <h2>New API key</h2>
      <ErrorNotice error={error} title="The key was not created" />
      <div class="grid">
        <div>
          <label for="key-role">Role</label>
          <select id="key-role" value={role} aria-describedby="key-role-help" onChange={(e) => setRole(e.currentTarget.value as Role)}>
            {ROLES.map((r) => (
              <option key={r} value={r}>
                {r}
              </option>
            ))}
          </select>
          <small id="key-role-help">{ROLE_HELP[role]}</small>
        </div>
        <div>
          <label for="key-label">Label</label>
          <input
            id="key-label"
            value={label}
            maxLength={100}
            aria-invalid={fieldMessage('label') ? true : undefined}
            aria-describedby="key-label-error"
            onInput={(e) => setLabel(e.currentTarget.value)}
          />
          {fieldMessage('label') ? <small id="key-label-error">{fieldMessage('label')}</small> : null}
        </div>
        <div>
          <label for="key-expires">Expires</label>
          <input
            id="key-expires"
            type="datetime-local"
            value={expires}
            aria-invalid={fieldMessage('expiresAt') || fieldMessage('expires_at') ? true : undefined}
            aria-describedby="key-expires-help"
            onInput={(e) => setExpires(e.currentTarget.value)}
          />
          <small id="key-expires-help">{fieldMessage('expiresAt') ?? fieldMessage('expires_at') ?? 'Your local time; empty: never.'}</small>
        </div>
      </div>
      <button type="submit" aria-busy={busy} disabled={busy}>
        Create key
      </button>
    </form>
  );
}
