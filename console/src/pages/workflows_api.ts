// Workflows as the API answers them (snake_case, as sent), and their paths.

import { accountPath, seg } from '../api';
import type { CodeLanguage } from '../components/code_editor';

export interface Workflow {
  id: string;
  organization_id: string;
  name: string;
  events: string[];
  room_id: string | null;
  enabled: boolean;
  language: CodeLanguage;
  version: number;
  code: string;
  created_at: string;
  updated_at: string;
}

export type ExecutionStatus = 'running' | 'success' | 'error' | 'timeout';
export const EXECUTION_STATUSES: ExecutionStatus[] = ['running', 'success', 'error', 'timeout'];

export interface Execution {
  id: string;
  workflow_id: string;
  version: number;
  event_id: string;
  event: string;
  status: ExecutionStatus;
  started_at: string | null;
  duration_ms: number | null;
  result: unknown;
  error: { message?: unknown; stack?: unknown; [k: string]: unknown } | null;
  logs: { level?: unknown; message?: unknown; [k: string]: unknown }[];
  // The code's fetch calls in order; null for executions recorded before they were kept.
  fetches?: ExecutionFetch[] | null;
  created_at: string;
}

export interface ExecutionFetch {
  method: string;
  url: string;
  status: number | null; // null: nothing answered
  duration_ms: number | null;
  error: string | null;
}

export interface SavedBy {
  actor: 'key' | 'system';
  key_id: string | null;
  key_label: string | null;
  role: string | null;
}

export interface VersionSummary {
  version: number;
  language: CodeLanguage;
  current: boolean;
  created_at: string;
  saved_by: SavedBy | null;
}

export interface Version extends VersionSummary {
  workflow_id: string;
  code: string;
}

export type StatusCounts = Record<ExecutionStatus, number>;

export interface ExecutionBucket {
  start: string;
  executions: number;
  statuses: StatusCounts;
  duration_p95_ms: number | null;
}

export interface WorkflowStats {
  workflow_id: string;
  window: StatsWindow;
  since: string;
  executions: number;
  statuses: StatusCounts;
  duration_p95_ms: number | null;
  buckets: ExecutionBucket[];
}

export type StatsWindow = '1h' | '24h' | '7d';

export function workflowsPath(accountId: string): string {
  return accountPath(accountId, '/workflows');
}

export function workflowPath(accountId: string, id: string, rest = ''): string {
  return accountPath(accountId, `/workflows/${seg(id)}${rest}`);
}

/** The console's own link to a workflow page (relative to the area's base). */
export function workflowLink(id: string, rest = ''): string {
  return `/workflows/${encodeURIComponent(id)}${rest}`;
}

export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '—';
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
}

/** Anything the code returned or threw, as one line of text (never markup). */
export function oneLine(value: unknown, max = 120): string {
  if (value === null || value === undefined) return '—';
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

export function errorMessage(error: Execution['error']): string {
  if (!error) return '—';
  return typeof error.message === 'string' ? error.message : oneLine(error);
}
