/** Pretty-prints JSON (a value, or JSON text as the API keeps payloads) as text in a <pre>. */
export function prettyJson(value: unknown): string {
  if (typeof value === 'string') {
    try {
      return JSON.stringify(JSON.parse(value), null, 2);
    } catch {
      return value;
    }
  }
  if (value === undefined) return '';
  return JSON.stringify(value, null, 2);
}

export function JsonView({ value, label }: { value: unknown; label?: string }) {
  return (
    <pre class="json-view" tabIndex={0} aria-label={label}>
      <code>{prettyJson(value)}</code>
    </pre>
  );
}
