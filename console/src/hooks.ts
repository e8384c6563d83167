// Loading state for pages: one call (useLoad) or a list paged by the API's cursors (usePaged).

import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import type { Page } from './api';

export interface Loaded<T> {
  data: T | undefined;
  error: Error | undefined;
  loading: boolean;
  reload: () => void;
  /** Replaces the data in place (after a write answered the new state). */
  set: (data: T) => void;
}

/**
 * Runs `load` when `deps` change (and on reload). `loading` holds from the render in which the
 * deps change until their answer, so a page never shows old rows as the answer to new deps;
 * an aborted or stale answer never overwrites a newer one. Deps are plain values (JSON).
 */
export function useLoad<T>(load: (signal: AbortSignal) => Promise<T>, deps: unknown[]): Loaded<T> {
  const [tick, setTick] = useState(0);
  const key = JSON.stringify([...deps, tick]);
  const [state, setState] = useState<{ key?: string; data?: T; error?: Error }>({});
  useEffect(() => {
    const controller = new AbortController();
    load(controller.signal).then(
      (value) => {
        if (!controller.signal.aborted) setState({ key, data: value });
      },
      (err: unknown) => {
        if (controller.signal.aborted) return;
        const error = err instanceof Error ? err : new Error(String(err));
        setState((old) => ({ key, data: old.data, error }));
      },
    );
    return () => controller.abort();
  }, [key]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  const set = useCallback((data: T) => setState((old) => ({ ...old, data })), []);
  const current = state.key === key;
  return { data: state.data, error: current ? state.error : undefined, loading: !current, reload, set };
}

export interface Paged<T> extends Loaded<Page<T>> {
  /** 1-based number of the page shown. */
  pageNumber: number;
  hasPrevious: boolean;
  hasNext: boolean;
  next: () => void;
  previous: () => void;
  /** Back to the first page (after a filter changed). */
  first: () => void;
}

/**
 * A list read one page at a time with the API's `next_cursor`; the cursors of the pages
 * already seen are kept so "Previous page" goes back without reloading everything.
 */
export function usePaged<T>(
  loadPage: (cursor: string | null, signal: AbortSignal) => Promise<Page<T>>,
  deps: unknown[],
): Paged<T> {
  // cursors[i] is the cursor that loads page i + 1 (null for the first page)
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const depsKey = JSON.stringify(deps);
  const lastKey = useRef(depsKey);
  let stack = cursors;
  if (lastKey.current !== depsKey) {
    lastKey.current = depsKey;
    stack = [null];
    if (cursors.length !== 1) setCursors(stack);
  }
  const cursor = stack[stack.length - 1];
  const loaded = useLoad((signal) => loadPage(cursor, signal), [depsKey, cursor]);
  const nextCursor = loaded.data?.next_cursor ?? null;
  return {
    ...loaded,
    pageNumber: stack.length,
    hasPrevious: stack.length > 1,
    hasNext: !loaded.loading && nextCursor !== null,
    next: () => {
      if (nextCursor) setCursors([...stack, nextCursor]);
    },
    previous: () => {
      if (stack.length > 1) setCursors(stack.slice(0, -1));
    },
    first: () => setCursors([null]),
  };
}
