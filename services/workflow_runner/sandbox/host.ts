// The sandbox host: one long-lived Deno process, started by process.py (see launch.py for the
// exact command line). It connects to the Unix socket Python listens on (argv[0]) and speaks
// JSON lines (protocol.py has the message shapes), never stdin/stdout: a Worker can reach
// fds 0-2 through node:fs.
//
// Each workflow version runs in module Workers with permissions "none", kept warm between
// runs (one run at a time per Worker), evicted LRU past `max_workers`, retired when a newer
// version of the workflow arrives, and terminated at the wall-time limit, or at the CPU limit
// when its event loop stays blocked (see "The CPU limit" below). Everything a Worker posts is
// untrusted: checked here, and again in Python.

type Limits = {
  maxLogEntries: number;
  maxLogBytes: number;
  maxResultBytes: number;
  maxCalls: number;
  maxFetches: number;
  maxFetchBodyBytes: number;
};

type LogEntry = { level: string; message: string };
type RunError = { message: string; stack: string | null };

type Slot = {
  workflow: string;
  version: number;
  lang: string;
  code: string;
  url: string;
  preludeUrl: string; // the blob: URL its Worker loaded the prelude from, revoked once it has
  worker: Worker;
  run: Run | null;
  lastUsed: number;
  retire: boolean; // terminate after the current run (older version, failed load, ...)
  booted: boolean; // its prelude has run ({k: "ready"}): pings from now on are its own code's
  ping: number | null; // the liveness ping it has not answered yet
  checkedAt: number; // when the watch last looked at it
  blockedMs: number; // the wall time its event loop has been blocked, as the watch counted it
  cpuMs: number; // the CPU time its thread used meanwhile, as far as Python has read it
  cpuBase: number | null; // its thread's CPU time (ns) at Python's first reading of this block
  cpuBefore: number; // cpuMs at that reading (wall time counted until then)
  cpuAsked: number | null; // the ping whose block Python was last asked to read
  cpuUnread: boolean; // Python cannot read its thread's CPU time: wall time counts instead
  thread: string; // its OS thread's name: Deno names a Worker's thread worker-<its id>
  demoted: boolean; // Python was asked to lower its thread's CPU priority
};

type Run = {
  id: string;
  slot: Slot;
  cold: boolean;
  timer: ReturnType<typeof setTimeout> | undefined;
  logs: LogEntry[];
  logBytes: number;
  logsFull: boolean;
  dropped: number;
  calls: number;
};

const LEVELS = new Set(["log", "info", "warn", "error", "debug"]);
const METHODS = new Set([
  "store.get",
  "store.getAll",
  "room.get",
  "room.getUsers",
  "files.list",
  "fetch",
]);
const INIT_MAX_BYTES = 16 * 1024 * 1024;

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const socketPath = Deno.args[0];
const conn = await Deno.connect({ transport: "unix", path: socketPath });
const writer = conn.writable.getWriter();

let maxMessageBytes = INIT_MAX_BYTES;
let maxWorkers = 64;
let idleTtlMs = 300_000;
let cpuLimitMs = 500;
let pings = 0;
let workerIds = 0; // Deno numbers this process's Workers 1, 2, ... (none can start another)
let limits: Limits | null = null;
let prelude = ""; // worker.js, as Python sent it
const slots = new Set<Slot>();
const runs = new Map<string, Run>();

function fatal(reason: string): never {
  console.error(`sandbox host: ${reason}`);
  Deno.exit(70);
}

function send(message: Record<string, unknown>): boolean {
  const bytes = encoder.encode(JSON.stringify(message) + "\n");
  if (bytes.length > maxMessageBytes) return false;
  writer.write(bytes).catch(() => fatal("the socket to Python is gone"));
  return true;
}

function byteLength(text: string): number {
  return text.length > 4 * maxMessageBytes ? text.length : encoder.encode(text).length;
}

function clip(text: unknown, maxChars: number): string {
  const s = typeof text === "string" ? text : String(text);
  return s.length > maxChars ? s.slice(0, maxChars) + " …[truncated]" : s;
}

// --- Workers

function moduleUrl(lang: string, code: string): string {
  const type = lang === "ts" ? "application/typescript" : "application/javascript";
  return `data:${type},${encodeURIComponent(code)}`;
}

function terminate(slot: Slot): void {
  URL.revokeObjectURL(slot.preludeUrl);
  slots.delete(slot);
  slot.worker.terminate();
}

// One Worker with the prelude already run and no workflow yet: a new version's first run takes
// it and pays only its module's import, not `new Worker` (~10 ms idle, which also blocks this
// thread) and the prelude (~10 ms). It counts against maxWorkers and is the first to go when
// room is needed. A new one is made once no run is in flight (or SPARE_WAIT_MS later), since
// `new Worker` holds this thread meanwhile: made at once, the run that took the spare waited
// ~30 ms for its own message to reach its Worker.
let spare: Slot | null = null;
let spareScheduled = false;
const SPARE_WAIT_MS = 1000; // made once no run is in flight, or after this long regardless

function makeRoom(): void {
  while (slots.size + (spare === null ? 0 : 1) >= maxWorkers) {
    if (spare !== null) {
      terminate(spare);
      spare = null;
      continue;
    }
    let oldest: Slot | null = null;
    for (const slot of slots) {
      if (slot.run === null && (oldest === null || slot.lastUsed < oldest.lastUsed)) oldest = slot;
    }
    if (oldest === null) return; // every Worker is busy: Python bounds runs per host
    terminate(oldest);
  }
}

function makeSpareSoon(): void {
  if (spareScheduled) return;
  spareScheduled = true;
  const since = performance.now();
  const attempt = () => {
    if (spare !== null || slots.size + 1 >= maxWorkers) {
      spareScheduled = false;
    } else if ((runs.size > 0 || coldStarts.length > 0) && performance.now() - since < SPARE_WAIT_MS) {
      setTimeout(attempt, 5);
    } else {
      spareScheduled = false;
      spare = newWorker("spare");
    }
  };
  setTimeout(attempt, 0);
}

function createSlot(workflow: string, version: number, lang: string, code: string): Slot {
  let slot = spare;
  spare = null;
  makeRoom();
  slot ??= newWorker(`${workflow}@${version}`);
  slot.workflow = workflow;
  slot.version = version;
  slot.lang = lang;
  slot.code = code;
  slot.url = moduleUrl(lang, code);
  slot.lastUsed = performance.now();
  slots.add(slot);
  makeSpareSoon();
  return slot;
}

function newWorker(name: string): Slot {
  // A blob: URL of its own, not a data: URL of the prelude: a Worker's location is the URL it
  // was loaded from, and `new Request(url)` parses that as its base every time (on deno 2.9.8 a
  // 30 kB data: URL made each Request cost ~0.4 ms, so a run's 1,500 refused fetches took 500 ms
  // of CPU without yielding). Revoked once the prelude has run: a workflow can neither load it
  // again nor revoke what another Worker still needs.
  const preludeUrl = URL.createObjectURL(new Blob([prelude], { type: "text/javascript" }));
  const worker = new Worker(preludeUrl, {
    type: "module",
    name,
    // @ts-ignore: Deno's unstable Worker option (--unstable-worker-options)
    deno: { permissions: "none" },
  });
  const slot: Slot = {
    workflow: "",
    version: 0,
    lang: "js",
    code: "",
    url: "",
    preludeUrl,
    worker,
    run: null,
    lastUsed: performance.now(),
    retire: false,
    booted: false,
    ping: null,
    checkedAt: performance.now(),
    blockedMs: 0,
    cpuMs: 0,
    cpuBase: null,
    cpuBefore: 0,
    cpuAsked: null,
    cpuUnread: false,
    thread: `worker-${++workerIds}`,
    demoted: false,
  };
  worker.onmessage = (event: MessageEvent) => onWorkerMessage(slot, event.data);
  worker.onmessageerror = () => {
    if (slot.run) failRun(slot.run, "the workflow posted a message that cannot be read");
  };
  worker.onerror = (event: ErrorEvent) => {
    event.preventDefault(); // an unhandled Worker error would end the host
    slot.retire = true;
    if (slot.run) failRun(slot.run, `the workflow's worker failed: ${clip(event.message, 2000)}`);
    else {
      if (slot === spare) spare = null;
      terminate(slot);
    }
  };
  return slot;
}

// --- Runs

// Runs that need a new Worker, started one per turn of the event loop: `new Worker` blocks
// this thread until the Worker's isolate exists (~10 ms idle, far more on a busy machine),
// and a burst of them must not hold up the runs of warm Workers behind it.
const coldStarts: Record<string, unknown>[] = [];
let coldScheduled = false;

function startColdSoon(): void {
  if (coldScheduled || coldStarts.length === 0) return;
  coldScheduled = true;
  setTimeout(() => {
    coldScheduled = false;
    const message = coldStarts.shift();
    if (message !== undefined) startRun(message, true);
    startColdSoon();
  }, 0);
}

function startRun(message: Record<string, unknown>, queued = false): void {
  const id = String(message.run);
  const workflow = String(message.workflow);
  const version = Number(message.version);
  const lang = message.lang === "ts" ? "ts" : "js";
  const code = String(message.code);
  const timeoutMs = Number(message.timeout_ms);
  if (limits === null || runs.has(id)) {
    send({
      t: "done",
      run: id,
      status: "error",
      result: null,
      error: { message: limits === null ? "host not initialised" : "duplicate run id", stack: null },
      logs: [],
      dropped: 0,
      cold: false,
      workers: slots.size,
    });
    return;
  }
  let newer = false;
  let slot: Slot | null = null;
  for (const s of [...slots]) {
    if (s.workflow !== workflow) continue;
    if (s.version < version) {
      if (s.run === null) terminate(s);
      else s.retire = true;
    } else if (s.version > version) {
      newer = true;
    } else if (slot === null && s.run === null && !s.retire && s.lang === lang && s.code === code) {
      slot = s;
    }
  }
  const cold = slot === null;
  if (cold && !queued && spare === null) {
    coldStarts.push(message);
    return startColdSoon();
  }
  slot ??= createSlot(workflow, version, lang, code);
  if (newer) slot.retire = true; // an out-of-order run of an old version: do not keep it
  const run: Run = {
    id,
    slot,
    cold,
    timer: undefined,
    logs: [],
    logBytes: 0,
    logsFull: false,
    dropped: 0,
    calls: 0,
  };
  // terminate() at the limit frees the run, not necessarily the thread (denoland/deno#35657):
  // Python retires this host after a timeout.
  run.timer = setTimeout(() => {
    finish(run, "timeout", null, {
      message: `the workflow ran longer than ${timeoutMs / 1000} s (wall time) and was stopped`,
      stack: null,
    });
  }, timeoutMs);
  slot.run = run;
  slot.checkedAt = performance.now(); // its first ping `watchMs` from now
  runs.set(id, run);
  slot.worker.postMessage({ k: "run", url: slot.url, lang, event: message.event, limits });
}

function failRun(run: Run, message: string): void {
  run.slot.retire = true;
  finish(run, "error", null, { message, stack: null });
}

function finish(run: Run, status: string, result: string | null, error: RunError | null): void {
  if (runs.get(run.id) !== run) return; // already finished
  clearTimeout(run.timer);
  runs.delete(run.id);
  const slot = run.slot;
  slot.run = null;
  slot.lastUsed = performance.now();
  if (status === "timeout" || slot.retire) terminate(slot);
  send({
    t: "done",
    run: run.id,
    status,
    result,
    error,
    logs: run.logs,
    dropped: run.dropped,
    cold: run.cold,
    workers: slots.size,
  });
}

function addLog(run: Run, level: unknown, message: unknown): void {
  const lim = limits!;
  if (typeof level !== "string" || !LEVELS.has(level) || typeof message !== "string") return;
  const size = byteLength(message);
  // worker.js already capped them; a Worker that posts its own entries loses the rest here.
  if (run.logsFull || run.logs.length >= lim.maxLogEntries || run.logBytes + size > lim.maxLogBytes) {
    run.logsFull = true;
    run.dropped += 1;
    return;
  }
  run.logs.push({ level, message });
  run.logBytes += size;
}

function onWorkerMessage(slot: Slot, data: unknown): void {
  if (typeof data !== "object" || data === null) return;
  const m = data as Record<string, unknown>;
  if (m.k === "pong") {
    if (m.n === slot.ping) {
      slot.ping = null;
      slot.blockedMs = 0;
      slot.cpuMs = 0;
      slot.cpuBase = null;
    }
    return;
  }
  if (m.k === "ready") {
    slot.booted = true;
    URL.revokeObjectURL(slot.preludeUrl);
    return;
  }
  const run = slot.run;
  if (run === null) return;
  switch (m.k) {
    case "log":
      addLog(run, m.level, m.message);
      return;
    case "call":
      forwardCall(run, m);
      return;
    case "done":
      workerDone(run, m);
      return;
  }
}

function forwardCall(run: Run, m: Record<string, unknown>): void {
  const lim = limits!;
  const id = m.id;
  if (typeof id !== "number" || !Number.isSafeInteger(id)) return;
  const refuse = (error: string) =>
    run.slot.worker.postMessage({ k: "reply", id, ok: false, error });
  const method = m.method;
  if (typeof method !== "string" || !METHODS.has(method) || !Array.isArray(m.args)) {
    return refuse("unknown binding");
  }
  run.calls += 1;
  if (run.calls > lim.maxCalls + lim.maxFetches) return refuse("binding call limit reached");
  const sent = send({ t: "call", run: run.id, call: id, method, args: m.args });
  if (!sent) refuse(`${method}(): the arguments are too large`);
}

function workerDone(run: Run, m: Record<string, unknown>): void {
  const lim = limits!;
  if (typeof m.dropped === "number" && m.dropped > 0) run.dropped += Math.min(m.dropped, 1e9);
  if (m.loadFailed === true) run.slot.retire = true;
  if (m.ok === true) {
    const result = typeof m.result === "string" ? m.result : null;
    if (result !== null && byteLength(result) > lim.maxResultBytes) {
      return finish(run, "error", null, {
        message: `result too large: the limit is ${lim.maxResultBytes} bytes of JSON`,
        stack: null,
      });
    }
    return finish(run, "success", result, null);
  }
  const e = (typeof m.error === "object" && m.error !== null ? m.error : {}) as Record<
    string,
    unknown
  >;
  finish(run, "error", null, {
    message: clip(e.message ?? "the workflow failed", 4096),
    stack: typeof e.stack === "string" ? clip(e.stack, 16384) : null,
  });
}

// --- The CPU limit. A Worker that keeps its event loop blocked (a synchronous loop, before or
// after an await, in a timer, at module load) answers no ping; awaiting a binding, a fetch or a
// timer answers at once. The host pings a Worker whose run is under way every `watchMs` (from
// `watchMs` after the run began: most runs end before their first ping), one that ran in the
// last RECENT_MS every `cpuLimitMs` (timers left behind), the others every IDLE_WATCH_MS, and
// while a ping stays unanswered it counts the CPU time the Worker's thread uses: Python reads
// it from /proc for the host (a "cpu" question each watch; Deno lets no host without
// --allow-all read /proc/self); until Python's first reading of the block its wall time
// counts, but at most two watch periods of it, and only a reading stops a run for CPU (wall
// time counts in full where no reading can be had). CPU time, not wall time: on a busy
// machine a demoted thread waits long for the CPU, and that wait is not the workflow's. Past `cpuLimitMs` of it the run, if any,
// ends as a timeout that says so and the Worker is terminated; its thread spins on
// (denoland/deno#35657), so Python is told ("stuck") and kills this host soon after. A Worker
// blocked BLOCKED_WALL_LIMIT times as long in wall time (Atomics.wait, or starved) is stopped
// the same way. A check counts at most twice its period of wall time: a host starved of CPU
// itself does not count that wait against its Workers. Idle past the TTL: terminated too.
// A Worker blocked for DEMOTE_AFTER watch periods already has its thread's CPU priority
// lowered (Python renices it): spinning or crunching, it takes the CPU only when the other
// runs leave it some, and keeps that priority. While one of its Workers is blocked that long,
// the host says so ("blocked"): Python lowers the host's whole scheduling group
// (autogroup.py); "calm" once none has been for CALM_AFTER_MS, never after a Worker ran past
// the limit (its thread spins on until Python kills the host). `watchMs` is at most 10: with 50 a wave of
// spinning Workers held normal priority for ~100 ms each, and another account's runs during
// it were slower by more than 2x at p99 (`make chaos`'s sandbox scenario: 2.02-2.78x in three
// runs at 50, 1.45-1.78x at 10).
const RECENT_MS = 10_000;
const DEMOTE_AFTER = 1; // watch periods
const IDLE_WATCH_MS = 1000;
const BLOCKED_WALL_LIMIT = 10; // times cpuLimitMs
const CALM_AFTER_MS = 1000; // Linux rate-limits changes of an autogroup's priority
let watchMs = 10;
let cpuQuestion = false; // a "cpu" question Python has not answered yet
let hostBlocked = false; // Python was told "blocked" and not "calm" since
let lastBlocked = 0; // when the watch last saw a Worker blocked past DEMOTE_AFTER
let runaway = false; // a Worker ran past the limit: its thread may spin until the end

function blocked(slot: Slot, message: string): void {
  runaway = true;
  // Before "done": Python retires this host and kills it after a short grace.
  send({
    t: "stuck",
    workers: slots.size - 1,
    cpu_ms: Math.round(slot.cpuMs),
    blocked_ms: Math.round(slot.blockedMs),
    workflow: slot.workflow,
  });
  if (slot.run === null) return terminate(slot);
  finish(slot.run, "timeout", null, { message, stack: null }); // terminates the Worker
}

function judge(slot: Slot): void {
  // Past the CPU limit only by a reading (or where there is none to be had): until Python's
  // first answer, the wall time counted is a guess, and a runner too busy to answer at once
  // would have a waiting or starved Worker stopped for CPU it never used.
  const known = slot.cpuBase !== null || slot.cpuUnread;
  if (known && slot.cpuMs >= cpuLimitMs) {
    const ms = Math.round(slot.cpuMs);
    blocked(slot, `cpu limit: the workflow ran ${ms} ms without yielding and was stopped`);
  } else if (slot.blockedMs >= BLOCKED_WALL_LIMIT * cpuLimitMs) {
    const ms = Math.round(slot.blockedMs);
    blocked(slot, `the workflow kept its event loop blocked ${ms} ms (wall time) and was stopped`);
  } else if (!slot.demoted && slot.cpuMs >= DEMOTE_AFTER * watchMs) {
    slot.demoted = true; // busy without a turn of its loop: others' runs go first
    send({ t: "demote", thread: slot.thread });
  }
}

function watch(): void {
  const now = performance.now();
  const reading: Slot[] = [];
  for (const slot of [...slots]) {
    if (!slot.booted) continue; // starting up: the prelude's time, not the workflow's
    if (slot.run === null && now - slot.lastUsed > idleTtlMs) {
      terminate(slot);
      continue;
    }
    const recent = now - slot.lastUsed < RECENT_MS;
    const period = slot.run !== null ? watchMs : recent ? cpuLimitMs : IDLE_WATCH_MS;
    const elapsed = now - slot.checkedAt;
    if (elapsed < period) continue;
    slot.checkedAt = now;
    if (slot.ping !== null) {
      const wall = Math.min(elapsed, 2 * period);
      slot.blockedMs += wall;
      if (slot.cpuBase === null) slot.cpuMs += wall; // no reading of this block yet
      judge(slot);
      if (slots.has(slot) && !slot.cpuUnread) reading.push(slot);
      continue;
    }
    slot.ping = ++pings;
    slot.worker.postMessage({ k: "ping", n: slot.ping });
  }
  tellBlocked(now);
  if (reading.length > 0 && !cpuQuestion) {
    const asked = reading.slice(0, maxWorkers);
    for (const slot of asked) slot.cpuAsked = slot.ping;
    cpuQuestion = send({ t: "cpu", threads: asked.map((slot) => slot.thread) });
  }
}

function tellBlocked(now: number): void {
  for (const slot of slots) {
    if (slot.ping !== null && slot.cpuMs >= DEMOTE_AFTER * watchMs) lastBlocked = now;
  }
  const blockedNow = lastBlocked === now || runaway;
  if (blockedNow && !hostBlocked) {
    hostBlocked = true;
    send({ t: "blocked" });
  } else if (hostBlocked && !blockedNow && now - lastBlocked >= CALM_AFTER_MS) {
    hostBlocked = false;
    send({ t: "calm" });
  }
}

function onCpu(ns: Record<string, unknown>): void {
  cpuQuestion = false;
  for (const slot of [...slots]) {
    if (slot.ping === null || slot.cpuAsked !== slot.ping || !Object.hasOwn(ns, slot.thread)) {
      continue; // not blocked now, or blocked again since the question
    }
    const value = ns[slot.thread];
    if (typeof value !== "number" || !Number.isFinite(value)) {
      slot.cpuUnread = true; // from now on wall time counts for it
      slot.cpuBase = null;
    } else if (slot.cpuBase === null) {
      slot.cpuBase = value;
      // Before this first reading the block's CPU is unknown: count at most the two watch
      // periods a prompt answer takes, not the wall time a late one let pass.
      slot.cpuBefore = Math.min(slot.cpuMs, 2 * watchMs);
      slot.cpuMs = slot.cpuBefore;
    } else {
      slot.cpuMs = slot.cpuBefore + Math.max(0, value - slot.cpuBase) / 1e6;
      judge(slot);
    }
  }
}

// --- Python's messages

function onMessage(message: Record<string, unknown>): void {
  switch (message.t) {
    case "init": {
      const l = message.limits as Record<string, number>;
      limits = {
        maxLogEntries: l.max_log_entries,
        maxLogBytes: l.max_log_bytes,
        maxResultBytes: l.max_result_bytes,
        maxCalls: l.max_calls,
        maxFetches: l.max_fetches,
        maxFetchBodyBytes: l.max_fetch_body_bytes,
      };
      maxWorkers = Number(message.max_workers);
      idleTtlMs = Number(message.idle_ttl_ms);
      cpuLimitMs = Number(message.cpu_limit_ms);
      watchMs = Math.max(5, Math.min(10, Math.floor(cpuLimitMs / 5)));
      setInterval(watch, watchMs);
      maxMessageBytes = Number(message.max_message_bytes);
      prelude = String(message.prelude);
      makeSpareSoon();
      send({ t: "ready", deno: Deno.version.deno, pid: Deno.pid });
      return;
    }
    case "run":
      startRun(message);
      return;
    case "cpu":
      if (typeof message.ns === "object" && message.ns !== null) {
        onCpu(message.ns as Record<string, unknown>);
      }
      return;
    case "reply": {
      const run = runs.get(String(message.run));
      if (run === undefined) return; // the run ended meanwhile
      run.slot.worker.postMessage({
        k: "reply",
        id: message.call,
        ok: message.ok === true,
        value: message.value,
        error: message.error,
      });
      return;
    }
  }
}

// --- The socket: newline-delimited JSON, each line at most maxMessageBytes.

let pending: Uint8Array[] = [];
let pendingBytes = 0;
for await (const chunk of conn.readable) {
  let start = 0;
  let newline = chunk.indexOf(10, start);
  while (newline !== -1) {
    let line = chunk.subarray(start, newline);
    if (pendingBytes > 0) {
      pending.push(line);
      line = new Uint8Array(pendingBytes + line.length);
      let offset = 0;
      for (const part of pending) {
        line.set(part, offset);
        offset += part.length;
      }
      pending = [];
      pendingBytes = 0;
    }
    if (line.length > 0) {
      let message: unknown;
      try {
        message = JSON.parse(decoder.decode(line));
      } catch {
        fatal("a line from Python is not JSON");
      }
      if (typeof message === "object" && message !== null) {
        onMessage(message as Record<string, unknown>);
      }
    }
    start = newline + 1;
    newline = chunk.indexOf(10, start);
  }
  if (start < chunk.length) {
    pending.push(chunk.slice(start));
    pendingBytes += chunk.length - start;
    if (pendingBytes > maxMessageBytes) fatal("a line from Python is too long");
  }
}
// Python closed the socket: nothing more to do.
Deno.exit(0);
