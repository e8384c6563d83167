// The workflow editor: CodeMirror 6 for JavaScript or TypeScript, with a save's code-check
// error marked at its line (a lint diagnostic: gutter marker, underline, tooltip; and a line
// class). CodeMirror itself (code_editor_cm.ts) is loaded on first use.

import { useEffect, useRef, useState } from 'preact/hooks';
import { ErrorNotice, Loading } from './index';
import type { EditorHandle } from './code_editor_cm';

export type CodeLanguage = 'js' | 'ts';

/** Where a save's code check failed: 1-based line and column, and what it said. */
export interface CodeProblem {
  line: number;
  column: number;
  message: string;
}

const LOCATED = /line (\d+), column (\d+): ?/i;

/** The line and column a code-check message names ("line 3, column 5: ..."), if it names one. */
export function problemOf(message: string): CodeProblem | null {
  const found = LOCATED.exec(message);
  if (!found) return null;
  return { line: Number(found[1]), column: Number(found[2]), message: message.replace(LOCATED, '') || message };
}

/**
 * An editor that starts with `value` and owns its text from then on (`onChange` gets every
 * edit): feeding each edit back as `value` would race the edits after it, so other text is
 * loaded by giving the editor a new `key`. `problem` (from the last save) is marked at its line
 * and column until the next one replaces it (null clears it).
 */
export function CodeEditor({
  value,
  language,
  label,
  onChange,
  readOnly = false,
  problem = null,
}: {
  value: string;
  language: CodeLanguage;
  label: string;
  onChange?: (value: string) => void;
  readOnly?: boolean;
  problem?: CodeProblem | null;
}) {
  const host = useRef<HTMLDivElement>(null);
  const [editor, setEditor] = useState<EditorHandle | null>(null);
  const [failed, setFailed] = useState<unknown>(undefined);
  const latest = useRef({ value, language, readOnly, onChange });
  latest.current = { value, language, readOnly, onChange };

  useEffect(() => {
    let handle: EditorHandle | null = null;
    let gone = false;
    import('./code_editor_cm').then(
      ({ createEditor }) => {
        if (gone || !host.current) return;
        const now = latest.current;
        handle = createEditor(host.current, {
          value: now.value,
          language: now.language,
          readOnly: now.readOnly,
          label,
          onChange: (text) => latest.current.onChange?.(text),
        });
        setEditor(handle);
      },
      (err: unknown) => setFailed(err),
    );
    return () => {
      gone = true;
      handle?.destroy();
    };
  }, []);

  useEffect(() => editor?.setLanguage(language), [editor, language]);
  useEffect(() => editor?.setReadOnly(readOnly), [editor, readOnly]);
  useEffect(() => editor?.setProblem(problem), [editor, problem]);

  return (
    <>
      {failed ? <ErrorNotice error={failed} title="The code editor could not be loaded" /> : null}
      {!editor && !failed ? <Loading what="Loading the code editor" /> : null}
      <div ref={host} class="code-editor" data-language={language} data-ready={editor ? 'true' : undefined} />
    </>
  );
}
