import { ApiError } from '../api';

/** An error as the API said it, with the fields at fault; the text is rendered as text. */
export function ErrorNotice({ error, title }: { error: unknown; title?: string }) {
  if (!error) return null;
  const err = error instanceof Error ? error : new Error(String(error));
  const details = err instanceof ApiError ? err.details : [];
  return (
    <div class="error-notice" role="alert">
      {title ? <strong>{title}: </strong> : null}
      <span>{err.message}</span>
      {details.length > 0 ? (
        <ul>
          {details.map((d, i) => (
            <li key={i}>
              <code>{d.field}</code>: {d.message}
            </li>
          ))}
        </ul>
      ) : null}
    </div>
  );
}
