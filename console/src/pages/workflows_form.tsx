// A workflow's fields and code, as created or edited: a save's code-check error is shown as a
// message naming its line and column and marked at that line in the editor.

import { useState } from 'preact/hooks';
import { ApiError, api, type EventType } from '../api';
import { ErrorNotice, Loading } from '../components';
import { CodeEditor, problemOf, type CodeLanguage, type CodeProblem } from '../components/code_editor';
import { useLoad } from '../hooks';
import type { Workflow } from './workflows_api';

export interface WorkflowFields {
  name: string;
  events: string[];
  roomId: string;
  language: CodeLanguage;
  enabled: boolean;
  code: string;
}

export const STARTER_CODE = `export default async function (event, { room }) {
  const roomData = await room.get();
  console.log(\`[\${event.event}] in room \${roomData?.name ?? event.room?.id}\`);
  return { seen: event.id };
}
`;

export function fieldsOf(workflow?: Workflow): WorkflowFields {
  return {
    name: workflow?.name ?? '',
    events: workflow?.events ?? [],
    roomId: workflow?.room_id ?? '',
    language: workflow?.language ?? 'js',
    enabled: workflow?.enabled ?? true,
    code: workflow?.code ?? STARTER_CODE,
  };
}

export function createBody(f: WorkflowFields): Record<string, unknown> {
  const body: Record<string, unknown> = {
    name: f.name.trim(),
    events: f.events,
    code: f.code,
    language: f.language,
    enabled: f.enabled,
  };
  if (f.roomId.trim()) body.roomId = f.roomId.trim();
  return body;
}

/** Only what changed: a PATCH with new code or language makes a new version. */
export function patchBody(before: WorkflowFields, f: WorkflowFields): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  if (f.name.trim() !== before.name) body.name = f.name.trim();
  if (f.events.join('\n') !== before.events.join('\n')) body.events = f.events;
  if (f.roomId.trim() !== before.roomId) body.roomId = f.roomId.trim() || null;
  if (f.language !== before.language) body.language = f.language;
  if (f.code !== before.code) body.code = f.code;
  return body;
}

function fieldMessage(error: unknown, field: string): string | undefined {
  return error instanceof ApiError ? error.fieldMessage(field) : undefined;
}

function FieldError({ id, error, field }: { id: string; error: unknown; field: string }) {
  const message = fieldMessage(error, field);
  return message ? (
    <small id={id} class="field-error">
      {message}
    </small>
  ) : null;
}

/** The code check's problem in a failed save, if the API located one. */
export function codeProblem(error: unknown): CodeProblem | null {
  const message = fieldMessage(error, 'code');
  return message ? problemOf(message) : null;
}

export function WorkflowForm({
  initial,
  mode,
  readOnly,
  onSubmit,
}: {
  initial: WorkflowFields;
  mode: 'create' | 'edit';
  readOnly: boolean;
  onSubmit: (fields: WorkflowFields) => Promise<void>;
}) {
  const [f, setF] = useState<WorkflowFields>(initial);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(undefined);
  const [problem, setProblem] = useState<CodeProblem | null>(null);
  const [saved, setSaved] = useState(false);
  const catalog = useLoad((signal) => api.get<{ event_types: EventType[] }>('/v1/event-types', undefined, signal), []);
  const set = (patch: Partial<WorkflowFields>) => {
    setSaved(false);
    setF((old) => ({ ...old, ...patch }));
  };

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    setSaved(false);
    try {
      await onSubmit(f);
      setProblem(null);
      setSaved(true);
    } catch (err) {
      setError(err);
      setProblem(codeProblem(err));
    } finally {
      setBusy(false);
    }
  };

  const toggleEvent = (name: string, on: boolean) =>
    set({ events: on ? [...f.events.filter((x) => x !== name), name] : f.events.filter((x) => x !== name) });
  const known = new Set((catalog.data?.event_types ?? []).map((t) => t.name));
  const extra = f.events.filter((x) => catalog.data && !known.has(x));
  const invalid = (field: string) => (fieldMessage(error, field) ? true : undefined);
  const title = mode === 'create' ? 'New workflow' : 'Edit workflow';

  return (
    <form onSubmit={submit} noValidate aria-label={title}>
      <ErrorNotice error={error} title={mode === 'create' ? 'The workflow was not created' : 'The workflow was not saved'} />
      <fieldset disabled={readOnly}>
        <label for="wf-name">Name</label>
        <input
          id="wf-name"
          value={f.name}
          required
          aria-invalid={invalid('name')}
          aria-describedby="wf-name-error"
          onInput={(e) => set({ name: e.currentTarget.value })}
        />
        <FieldError id="wf-name-error" error={error} field="name" />
      </fieldset>

      <fieldset disabled={readOnly} aria-invalid={invalid('events')} aria-describedby="wf-events-error">
        <legend>Events</legend>
        {catalog.loading ? <Loading what="Loading the event catalog" /> : null}
        <ErrorNotice error={catalog.error} title="The event catalog could not be read" />
        <div class="event-choices">
          {(catalog.data?.event_types ?? []).map((t) => (
            <label key={t.name} title={t.description}>
              <input type="checkbox" name="events" value={t.name} checked={f.events.includes(t.name)} onChange={(e) => toggleEvent(t.name, e.currentTarget.checked)} />
              {t.name}
            </label>
          ))}
          {extra.map((name) => (
            <label key={name}>
              <input type="checkbox" name="events" value={name} checked onChange={(e) => toggleEvent(name, e.currentTarget.checked)} />
              {name}
            </label>
          ))}
        </div>
        <FieldError id="wf-events-error" error={error} field="events" />
      </fieldset>

      <div class="grid">
        <div>
          <label for="wf-room">Room ID</label>
          <input
            id="wf-room"
            value={f.roomId}
            disabled={readOnly}
            aria-invalid={invalid('roomId')}
            aria-describedby="wf-room-help wf-room-error"
            onInput={(e) => set({ roomId: e.currentTarget.value })}
          />
          <small id="wf-room-help">Only this room's events; empty: every room.</small>
          <FieldError id="wf-room-error" error={error} field="roomId" />
        </div>
        <div>
          <label for="wf-language">Language</label>
          <select
            id="wf-language"
            value={f.language}
            disabled={readOnly}
            aria-invalid={invalid('language')}
            onChange={(e) => set({ language: e.currentTarget.value as CodeLanguage })}
          >
            <option value="js">JavaScript</option>
            <option value="ts">TypeScript (types stripped, not checked)</option>
          </select>
          <FieldError id="wf-language-error" error={error} field="language" />
        </div>
      </div>

      {mode === 'create' ? (
        <label>
          <input type="checkbox" role="switch" checked={f.enabled} onChange={(e) => set({ enabled: e.currentTarget.checked })} />
          Enabled (runs on its events from now)
        </label>
      ) : null}

      <p id="wf-code-label">
        <strong>Code</strong>{' '}
        <small>An ES module whose default export is <code>async function (event, bindings)</code>; checked on save, never run by the console.</small>
      </p>
      {problem ? (
        <p class="error-notice code-problem" role="alert" id="wf-code-problem">
          Line {problem.line}, column {problem.column}: {problem.message}
        </p>
      ) : null}
      <CodeEditor value={f.code} language={f.language} label="Code" readOnly={readOnly} problem={problem} onChange={(code) => set({ code })} />
      {!problem ? <FieldError id="wf-code-error" error={error} field="code" /> : null}

      {readOnly ? null : (
        <p class="actions">
          <button type="submit" aria-busy={busy} disabled={busy}>
            {mode === 'create' ? 'Create workflow' : 'Save'}
          </button>
          {saved ? <span role="status">Saved.</span> : null}
        </p>
      )}
    </form>
  );
}
