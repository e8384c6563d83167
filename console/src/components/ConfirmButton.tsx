import { useEffect, useRef, useState } from 'preact/hooks';

/**
 * A button that asks before acting: the first press shows the question with
 * "Confirm <label>" and "Cancel"; only the confirmation runs `onConfirm`.
 */
export function ConfirmButton({
  label,
  question,
  onConfirm,
  danger = true,
  disabled = false,
}: {
  label: string;
  question: string;
  onConfirm: () => Promise<unknown> | void;
  danger?: boolean;
  disabled?: boolean;
}) {
  const [asking, setAsking] = useState(false);
  const [busy, setBusy] = useState(false);
  const confirmRef = useRef<HTMLButtonElement>(null);
  const askRef = useRef<HTMLButtonElement>(null);
  const wasAsking = useRef(false);
  // Focus follows the question: to the confirmation when asked, back to the button after.
  useEffect(() => {
    if (asking) confirmRef.current?.focus();
    else if (wasAsking.current) askRef.current?.focus();
    wasAsking.current = asking;
  }, [asking]);
  if (!asking) {
    return (
      <button ref={askRef} type="button" class={danger ? 'secondary outline' : 'secondary'} disabled={disabled} onClick={() => setAsking(true)}>
        {label}
      </button>
    );
  }
  const confirm = async () => {
    setBusy(true);
    try {
      await onConfirm();
    } finally {
      setBusy(false);
      setAsking(false);
    }
  };
  return (
    <span role="group" aria-label={question} class="confirm">
      <span>{question} </span>
      <button ref={confirmRef} type="button" class={danger ? 'danger' : undefined} aria-busy={busy} disabled={busy} onClick={confirm}>
        Confirm {label.toLowerCase()}
      </button>
      <button type="button" class="secondary" disabled={busy} onClick={() => setAsking(false)}>
        Cancel
      </button>
    </span>
  );
}
