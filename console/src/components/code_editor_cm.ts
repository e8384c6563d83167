// The CodeMirror half of the workflow editor, loaded on demand (it is most of the console's
// weight): one editor in a shadow root, and the operations the Preact component drives.

import { basicSetup } from 'codemirror';
import { javascript } from '@codemirror/lang-javascript';
import { lintGutter, setDiagnostics, type Diagnostic } from '@codemirror/lint';
import { Compartment, EditorState, RangeSetBuilder, StateEffect, StateField, type Text } from '@codemirror/state';
import { Decoration, EditorView, type DecorationSet } from '@codemirror/view';
import type { CodeLanguage, CodeProblem } from './code_editor';

/** The document offset of a 1-based line and column, kept inside the document. */
function offsetOf(doc: Text, problem: CodeProblem): { from: number; to: number; line: number } {
  const lineNo = Math.min(Math.max(problem.line, 1), doc.lines);
  const line = doc.line(lineNo);
  const from = Math.min(line.from + Math.max(problem.column - 1, 0), line.to);
  return { from, to: Math.max(from, line.to), line: lineNo };
}

const setProblemLine = StateEffect.define<number | null>();

/** The line a problem is on, decorated with `cm-problemLine`; follows edits, cleared on demand. */
const problemLine = StateField.define<DecorationSet>({
  create: () => Decoration.none,
  update(value, tr) {
    let next = value.map(tr.changes);
    for (const effect of tr.effects) {
      if (!effect.is(setProblemLine)) continue;
      const builder = new RangeSetBuilder<Decoration>();
      if (effect.value !== null) {
        const line = tr.state.doc.line(effect.value);
        builder.add(line.from, line.from, Decoration.line({ class: 'cm-problemLine' }));
      }
      next = builder.finish();
    }
    return next;
  },
  provide: (field) => EditorView.decorations.from(field),
});

// Colours from Pico's custom properties, which inherit into the shadow root (light and dark).
const theme = EditorView.theme({
  '&': {
    color: 'var(--pico-color)',
    backgroundColor: 'var(--pico-form-element-background-color)',
    border: '1px solid var(--pico-form-element-border-color)',
    borderRadius: 'var(--pico-border-radius)',
    fontSize: '0.9rem',
  },
  '&.cm-focused': { outline: '2px solid var(--pico-primary-focus)' },
  '.cm-content': { fontFamily: 'var(--pico-font-family-monospace)', caretColor: 'var(--pico-color)' },
  '.cm-cursor': { borderLeftColor: 'var(--pico-color)' },
  '.cm-gutters': {
    backgroundColor: 'var(--pico-card-sectioning-background-color)',
    color: 'var(--pico-muted-color)',
    borderRight: '1px solid var(--pico-form-element-border-color)',
  },
  '.cm-activeLine, .cm-activeLineGutter': { backgroundColor: 'var(--pico-text-selection-color)' },
  '.cm-scroller': { minHeight: '16rem', maxHeight: '36rem' },
  '.cm-problemLine': { backgroundColor: 'rgba(229, 57, 53, 0.18)' },
  '.cm-tooltip': {
    backgroundColor: 'var(--pico-card-background-color)',
    color: 'var(--pico-color)',
  },
});

function languageOf(language: CodeLanguage) {
  return javascript({ typescript: language === 'ts' });
}

export interface EditorHandle {
  setLanguage(language: CodeLanguage): void;
  setReadOnly(readOnly: boolean): void;
  /** Marks `problem` at its line and column (a diagnostic and a line class); null clears it. */
  setProblem(problem: CodeProblem | null): void;
  destroy(): void;
}

// Chromium's own editing, typing over a selection that spans highlighted text, writes style
// attributes to keep the old look, which the CSP refuses (harmless, but a violation each time):
// such an input is made a transaction instead.
const typeOverSelection = EditorView.domEventHandlers({
  beforeinput(event, view) {
    const typed = event.inputType === 'insertText' || event.inputType === 'insertReplacementText';
    if (!typed || !event.data || view.state.selection.main.empty || view.state.readOnly) return false;
    event.preventDefault();
    view.dispatch(view.state.update(view.state.replaceSelection(event.data), { userEvent: 'input.type', scrollIntoView: true }));
    return true;
  },
});

function editable(readOnly: boolean) {
  return [EditorState.readOnly.of(readOnly), EditorView.editable.of(!readOnly)];
}

/**
 * An editor in a shadow root of `host`: CodeMirror injects its styles with a <style> element
 * in a document, which the console's CSP refuses, but as an adopted stylesheet in a shadow root.
 */
export function createEditor(
  host: HTMLElement,
  options: { value: string; language: CodeLanguage; readOnly: boolean; label: string; onChange: (value: string) => void },
): EditorHandle {
  const root = host.shadowRoot ?? host.attachShadow({ mode: 'open' });
  const parent = document.createElement('div');
  root.appendChild(parent);
  const languageSlot = new Compartment();
  const readOnlySlot = new Compartment();
  const view = new EditorView({
    root,
    parent,
    state: EditorState.create({
      doc: options.value,
      extensions: [
        basicSetup,
        typeOverSelection,
        lintGutter(),
        problemLine,
        theme,
        languageSlot.of(languageOf(options.language)),
        readOnlySlot.of(editable(options.readOnly)),
        EditorView.contentAttributes.of({ 'aria-label': options.label }),
        EditorView.updateListener.of((update) => {
          if (update.docChanged) options.onChange(update.state.doc.toString());
        }),
      ],
    }),
  });
  return {
    setLanguage(language) {
      view.dispatch({ effects: languageSlot.reconfigure(languageOf(language)) });
    },
    setReadOnly(readOnly) {
      view.dispatch({ effects: readOnlySlot.reconfigure(editable(readOnly)) });
    },
    setProblem(problem) {
      const diagnostics: Diagnostic[] = [];
      let line: number | null = null;
      if (problem) {
        const at = offsetOf(view.state.doc, problem);
        diagnostics.push({ from: at.from, to: at.to, severity: 'error', message: problem.message, source: 'code check' });
        line = at.line;
      }
      const spec = setDiagnostics(view.state, diagnostics);
      view.dispatch({ effects: [...[spec.effects ?? []].flat(), setProblemLine.of(line)] });
      if (line !== null) view.dispatch({ effects: EditorView.scrollIntoView(view.state.doc.line(line).from, { y: 'center' }) });
    },
    destroy() {
      view.destroy();
      parent.remove();
    },
  };
}
