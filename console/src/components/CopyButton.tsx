import { useState } from 'preact/hooks';

/** Copies a value to the clipboard and says so; the value never leaves the page otherwise. */
export function CopyButton({ value, label = 'Copy' }: { value: string; label?: string }) {
  const [state, setState] = useState<'idle' | 'copied' | 'failed'>('idle');
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(value);
      setState('copied');
    } catch {
      setState('failed');
    }
  };
  return (
    <>
      <button type="button" class="secondary" onClick={copy}>
        {label}
      </button>
      <span role="status" class="copy-state">
        {state === 'copied' ? ' Copied' : state === 'failed' ? ' Copy failed: select the text and copy it' : ''}
      </span>
    </>
  );
}
