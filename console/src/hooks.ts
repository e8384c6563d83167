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

/** Runs `load` when `deps` change (and on reload); a stale answer never overwrites a newer one. */
export function useLoad<T>(load: (signal: AbortSignal) => Promise<T>, deps: unknown[]): Loaded<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<Error | undefined>(undefined);
  const [loading, setLoading] = useState(true);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    const controller = new AbortController();
    setLoading(true);
    setError(undefined);
    load(controller.signal).then(
      (value) => {
        if (controller.signal.aborted) return;
        setData(value);
        setLoading(false);
      },
      (err: unknown) => {
        if (controller.signal.aborted) return;
        setError(err instanceof Error ? err : new Error(String(err)));
        setLoading(false);
      },
    );
    return () => controller.abort();
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { data, error, loading, reload, set: setData };
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
