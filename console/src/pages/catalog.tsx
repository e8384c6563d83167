// The event catalog (GET /v1/event-types): each event's scope and description, its payload shape
// and example when the API serves them, and (outside the portal) the latest payload of that
// event this account received, read on demand from the event log.

import { useState } from 'preact/hooks';
import { accountPath, api, getPage, seg, type EventType } from '../api';
import { ErrorNotice, JsonView, Loading, Time } from '../components';
import { useLoad } from '../hooks';
import { useSession } from '../session';
import type { LoggedEvent } from './events';

/** A catalog entry; `payload_schema` and `example` only where the API serves them. */
interface CatalogEntry extends EventType {
  payload_schema?: unknown;
  example?: unknown;
}

export function Catalog(_props: Record<string, unknown>) {
  const { portal } = useSession();
  const [scope, setScope] = useState<'' | 'room' | 'organization'>('');
  const catalog = useLoad((signal) => api.get<{ event_types: CatalogEntry[] }>('/v1/event-types', undefined, signal), []);
  const entries = (catalog.data?.event_types ?? []).filter((t) => !scope || t.scope === scope);
  return (
    <section>
      <hgroup>
        <h1>Event catalog</h1>
        <p>
          The events webhooks and workflows subscribe to. Room events carry their room (and may be limited to one room); organization events carry
          none.
        </p>
      </hgroup>
      <label for="catalog-scope">Scope</label>
      <select id="catalog-scope" value={scope} onChange={(e) => setScope(e.currentTarget.value as typeof scope)}>
        <option value="">Every scope</option>
        <option value="room">room</option>
        <option value="organization">organization</option>
      </select>
      <ErrorNotice error={catalog.error} title="The event catalog could not be read" />
      {catalog.loading ? <Loading what="Loading the event catalog" /> : null}
      {entries.map((t) => (
        <article key={t.name} aria-labelledby={`event-${t.name}`}>
          <header>
            <h2 id={`event-${t.name}`}>
              <code>{t.name}</code>
            </h2>
            <small>{t.scope} event</small>
          </header>
          <p>{t.description}</p>
          {t.payload_schema !== undefined ? (
            <details>
              <summary>Payload shape of {t.name}</summary>
              <JsonView value={t.payload_schema} label={`Payload shape of ${t.name}`} />
            </details>
          ) : null}
          {t.example !== undefined ? (
            <details>
              <summary>Example of {t.name}</summary>
              <JsonView value={t.example} label={`Example of ${t.name}`} />
            </details>
          ) : null}
          {portal ? null : <LatestReceived name={t.name} />}
        </article>
      ))}
    </section>
  );
}

interface Latest {
  event: LoggedEvent;
  payload: string | null;
}

/** The newest accepted event of `name` in the account's log, with its payload; read when asked. */
function LatestReceived({ name }: { name: string }) {
  const { accountId } = useSession();
  const [state, setState] = useState<{ loading: boolean; error?: unknown; latest?: Latest | null }>({ loading: false });
  const load = async () => {
    setState({ loading: true });
    try {
      const page = await getPage<LoggedEvent>(accountPath(accountId, '/events'), 'events', { event: name, status: 'accepted', limit: 1 });
      const first = page.items[0];
      if (!first || !first.id) {
        setState({ loading: false, latest: null });
        return;
      }
      const detail = await api.get<Latest>(accountPath(accountId, `/events/${seg(first.id)}`));
      setState({ loading: false, latest: detail });
    } catch (err) {
      setState({ loading: false, error: err });
    }
  };
  if (state.latest === undefined && !state.error) {
    return (
      <button type="button" class="secondary outline" aria-busy={state.loading} disabled={state.loading} onClick={load}>
        Show the latest {name} received
      </button>
    );
  }
  return (
    <div>
      <ErrorNotice error={state.error} title={`The latest ${name} could not be read`} />
      {state.latest === null ? <p>This account has received no {name} yet.</p> : null}
      {state.latest ? (
        <>
          <p>
            The latest {name} received, <Time value={state.latest.event.received_at} />:
          </p>
          <JsonView value={state.latest.payload ?? ''} label={`Latest ${name} received`} />
        </>
      ) : null}
    </div>
  );
}
