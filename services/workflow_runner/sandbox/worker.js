// The first module of every workflow Worker (created by host.ts with permissions "none").
//
// It locks the realm down, then, on each {k: "run"} from the host, imports the workflow
// module once (data: URL) and calls its default export with (event, bindings). Everything it
// posts is re-checked by the host and again by Python: a workflow can call postMessage itself.
//
// Worker -> host: {k: "log", level, message}, {k: "call", id, method, args},
//                 {k: "done", ok, result (JSON text | null), error: {message, stack} | null}
//                 {k: "pong", n}, {k: "ready"} (once, when this prelude has run)
// Host -> worker: {k: "run", url, lang, event, limits}, {k: "reply", id, ok, value | error},
//                 {k: "ping", n}

const post = globalThis.postMessage.bind(globalThis);
const { stringify } = JSON;
const { defineProperty, getOwnPropertyDescriptor, freeze } = Object;
const encoder = new TextEncoder();
const inspectArgs = Deno[Deno.internal].inspectArgs;
const NativeRequest = Request;
const NativeResponse = Response;
const fromBase64 = (text) => Uint8Array.fromBase64(text);
const toBase64 = (bytes) => bytes.toBase64();
// This module is loaded from a blob: URL of its own (host.ts), the workflow as
// data:application/...; Deno elides long data: URLs in stack traces, so match those by shape.
const PRELUDE_MARK = import.meta.url;
const DATA_URL = /data:application\/(?:javascript|typescript),.*?(?=:\d+:\d+\)?$)/gm;
// RULES is declared above this file by launch.worker_prelude(), from shared/sandbox_rules.py:
// `blockedBuiltins` (name -> message), the built-in modules a workflow must not reach through
// process.getBuiltinModule (the import map blocks the same for import/import()), and what to
// say in place of Deno's refusals, which tell the reader to run again with an --allow flag.
const BLOCKED_BUILTINS = RULES.blockedBuiltins;
const REFUSED = /(?:\b(?:NotCapable|PermissionDenied|TypeError|Error): )?Requires (\w+) access( to (?:"[^"\n]*"|[^,\n]*))?, run again with the --allow-[\w-]+ flag/g;
const NO_NPM = /(?:TypeError: )?npm specifiers were requested; but --no-npm is specified/g;
const NOT_MAPPED = /(?:TypeError: )?Import "([^"\n]*)" not a dependency and not in import map from "[^"\n]*"/g;
const NO_JSR = /(?:TypeError: )?JSR package manifest for '[^'\n]*' failed to load\. /g;
// Without PATH, Deno looks a bare command up before it asks for the run permission.
const NO_SPAWN = /(?:NotFound: )?Failed to spawn '([^'\n]*)': entity not found/g;
const NO_EXPORT = /(?:SyntaxError: )?The requested module '(node:[^'\n]+)' does not provide an export named '[^'\n]*'/g;

let limits = null; // from the first run message; the same for every run of this Worker
let run = null; // the current run's counters; null between runs
let workflow = null; // the module's default export once imported
let moduleUrl = null;
let fileName = "workflow.js";
let nextId = 0;
const pending = new Map();

function unavailable(what) {
  return function () {
    throw new TypeError(`${what} is not available in the workflow sandbox`);
  };
}

function lock(target, name, value) {
  defineProperty(target, name, { value, writable: false, configurable: false });
}

// --- The Deno namespace: no stdio, no self-signals, no exit, no internals. Deleting `Deno`
// itself would break the node: built-ins, which read it.
for (const name of ["stdin", "stdout", "stderr"]) {
  try {
    Deno[name].close(); // this Worker's handle only; the host's fds stay open
  } catch { /* already closed */ }
  const blank = freeze({
    write: unavailable(`Deno.${name}`),
    writeSync: unavailable(`Deno.${name}`),
    read: unavailable(`Deno.${name}`),
    readSync: unavailable(`Deno.${name}`),
    close() {},
    isTerminal: () => false,
  });
  lock(Deno, name, blank);
}
lock(Deno, "kill", unavailable("Deno.kill")); // permission-free for the host's own pid
lock(Deno, "exit", unavailable("Deno.exit"));
delete Deno[Deno.internal]; // holds `core` (raw ops: print, create_worker, ...)
delete Deno.internal;

// --- What the host is: its working directory, binary, arguments and process ids name the
// runner's private directory, its virtualenv and its socket, and nothing a workflow needs.
// Each has a neutral answer (`process` likewise, below).
lock(Deno, "cwd", () => "/");
lock(Deno, "execPath", () => "deno"); // node's process reads it on its first use
lock(Deno, "args", freeze([]));
lock(Deno, "mainModule", "file:///workflow.js");
lock(Deno, "pid", 0);
lock(Deno, "ppid", 0);

// --- Promises: Deno's own Worker code awaits plain objects and derives promises. On deno
// 2.9.8 a `then` on Object.prototype (even `Object.prototype.then = function () {}`) or a
// Promise[Symbol.species] made it panic ("either js is polling or the worker is terminated"),
// which ended the whole host and every run on it. So Object.prototype.then stays undefined
// (assigning `then` to any other object still makes an own property), and the Promise
// intrinsics are frozen.
defineProperty(Object.prototype, "then", {
  get: () => undefined,
  set(value) {
    defineProperty(this, "then", { value, writable: true, enumerable: true, configurable: true });
  },
  enumerable: false,
  configurable: false,
});
freeze(Promise);
freeze(Promise.prototype);

// --- Globals: no nested Workers (they outlive terminate()), no silent close(), and nothing
// the Workers of one host share: a BroadcastChannel reaches every Worker listening on its
// name, and CacheStorage is one store per host process, written to disk without a bound
// (measured on deno 2.9.8: one workflow read what another had put there).
delete globalThis.Worker;
for (const name of ["BroadcastChannel", "caches", "CacheStorage", "Cache"]) {
  delete globalThis[name];
  if (name in globalThis) throw new Error(`the sandbox could not remove ${name}`);
}
lock(globalThis, "close", unavailable("close()"));

// `process` is a lazy getter (node compat costs ~25 ms to boot): patch it on first use.
const processGetter = getOwnPropertyDescriptor(globalThis, "process")?.get;
let lockedProcess = null;
function lockProcess(proc) {
  const getBuiltinModule = proc.getBuiltinModule;
  lock(proc, "getBuiltinModule", (id) => {
    const name = String(id).replace(/^node:/, "");
    if (Object.hasOwn(BLOCKED_BUILTINS, name)) throw new TypeError(BLOCKED_BUILTINS[name]);
    return getBuiltinModule.call(proc, id);
  });
  for (const name of ["kill", "abort", "exit", "reallyExit", "dlopen", "binding", "_linkedBinding"]) {
    lock(proc, name, unavailable(`process.${name}`));
  }
  lock(proc, "cwd", () => "/");
  lock(proc, "chdir", unavailable("process.chdir"));
  // The rest as neutral as Deno's (above). Those node's process defines for good (execPath,
  // pid, ppid: read from Deno's as it boots) keep their value; argv0 cannot be redefined: it
  // is the name the host was started by, `deno` (launch.py).
  for (const [name, value] of [["argv", freeze([])], ["execArgv", freeze([])], ["pid", 0],
    ["ppid", 0]]) {
    if (getOwnPropertyDescriptor(proc, name)?.configurable ?? true) lock(proc, name, value);
  }
  for (const [name, level] of [["stdout", "log"], ["stderr", "error"]]) {
    const stream = freeze({
      write(chunk, ...rest) {
        emit(level, typeof chunk === "string" ? chunk : String(chunk));
        const callback = rest.find((x) => typeof x === "function");
        if (callback) queueMicrotask(callback);
        return true;
      },
      isTTY: false,
      on() { return this; },
      once() { return this; },
      end() {},
    });
    lock(proc, name, stream);
  }
  lock(proc, "stdin", freeze({ on() { return this; }, read: () => null, isTTY: false }));
  return proc;
}
if (processGetter) {
  defineProperty(globalThis, "process", {
    get() {
      lockedProcess ??= lockProcess(processGetter.call(globalThis));
      return lockedProcess;
    },
    configurable: false,
    enumerable: false,
  });
}

// --- Logs: console.* and uncaught errors go to the current run, capped here first.
function truncate(text, maxBytes) {
  let cut = text.length > maxBytes ? text.slice(0, maxBytes) : text;
  while (encoder.encode(cut).length > maxBytes) cut = cut.slice(0, Math.floor(cut.length * 0.9));
  return cut;
}

// The same rule as protocol.cap_logs: a prefix of the entries; the first that does not fit
// whole is truncated to the bytes left (at least 32) and ends it.
const TRUNCATED = " …[truncated]";
function emit(level, message) {
  const r = run;
  if (r === null) return; // between runs (a timer left behind): nobody to attribute it to
  if (r.full || r.logEntries >= limits.maxLogEntries) {
    r.full = true;
    r.dropped += 1;
    return;
  }
  const whole = message.length <= limits.maxLogBytes; // else it cannot fit in any case
  let text = whole ? message : message.slice(0, limits.maxLogBytes);
  let size = encoder.encode(text).length;
  const room = limits.maxLogBytes - r.logBytes;
  if (!whole || size > room) {
    r.full = true;
    if (room < 32) {
      r.dropped += 1;
      return;
    }
    text = truncate(text, room - encoder.encode(TRUNCATED).length) + TRUNCATED;
    size = encoder.encode(text).length;
  }
  r.logEntries += 1;
  r.logBytes += size;
  post({ k: "log", level, message: text });
}

// Deno's refusal, as the customer can act on it: what workflows do not get and what to do
// instead, never "run again with the --allow-env flag".
function actionable(text) {
  try {
    return rewrite(text);
  } catch {
    return text; // the workflow changed String or RegExp: its own messages, as they are
  }
}

function rewrite(text) {
  const imports = RULES.imports;
  const instead = (what) => `${imports.denied}: ${imports.advice} (${what} was refused)`;
  const spawn = RULES.permissions.run;
  return text
    .replace(NO_JSR, "")
    .replace(NO_SPAWN, (all, cmd) => `${spawn.denied}: ${spawn.advice} (${stringify(cmd)} was refused)`)
    .replace(REFUSED, (all, flag, to) => {
      const rule = Object.hasOwn(RULES.permissions, flag) ? RULES.permissions[flag] : undefined;
      if (rule === undefined) return all.replace(/, run again with the --allow-[\w-]+ flag$/, "");
      return `${rule.denied}: ${rule.advice} (${flag} access${to ?? ""} was refused)`;
    })
    .replace(NO_NPM, () => instead("an npm: specifier"))
    .replace(NOT_MAPPED, (all, specifier) => instead(stringify(specifier)))
    .replace(NO_EXPORT, (all, specifier) => {
      const name = specifier.slice("node:".length);
      return Object.hasOwn(BLOCKED_BUILTINS, name) ? BLOCKED_BUILTINS[name] : all;
    });
}

function format(args) {
  try {
    return actionable(inspectArgs(args, { colors: false }));
  } catch (error) {
    return `[unprintable: ${safeString(error)}]`;
  }
}

function safeString(value) {
  try {
    return String(value);
  } catch {
    return "[unprintable]";
  }
}

const counts = new Map();
const timers = new Map();
const sandboxConsole = {
  assert(condition, ...args) {
    if (!condition) emit("error", "Assertion failed" + (args.length ? ": " + format(args) : ""));
  },
  count(label = "default") {
    const n = (counts.get(label) ?? 0) + 1;
    counts.set(label, n);
    emit("info", `${label}: ${n}`);
  },
  countReset(label = "default") { counts.delete(label); },
  time(label = "default") { timers.set(label, performance.now()); },
  timeLog(label = "default", ...args) {
    const t = timers.get(label);
    if (t !== undefined) emit("info", `${label}: ${(performance.now() - t).toFixed(1)}ms ${format(args)}`.trim());
  },
  timeEnd(label = "default") {
    sandboxConsole.timeLog(label);
    timers.delete(label);
  },
  group(...args) { if (args.length) emit("log", format(args)); },
  groupCollapsed(...args) { if (args.length) emit("log", format(args)); },
  groupEnd() {},
  clear() {},
};
for (const [method, level] of [
  ["log", "log"], ["info", "info"], ["warn", "warn"], ["error", "error"], ["debug", "debug"],
  ["trace", "debug"], ["dir", "log"], ["dirxml", "log"], ["table", "log"],
]) {
  sandboxConsole[method] = (...args) => emit(level, format(args));
}
// Not frozen: node compat binds its streams onto the global console when it boots.
lock(globalThis, "console", sandboxConsole);

globalThis.addEventListener("error", (event) => {
  event.preventDefault(); // never reaches the host (it would print to the host's stderr)
  emit("error", `Uncaught ${actionable(safeString(event.error ?? event.message))}`);
});
globalThis.addEventListener("unhandledrejection", (event) => {
  event.preventDefault();
  emit("error", `Uncaught (in promise) ${actionable(safeString(event.reason))}`);
});

// --- Bindings and fetch: each call is a message to the host, answered by Python.
function invoke(method, args) {
  const r = run;
  if (r === null) return Promise.reject(new Error(`${method}() was called outside of a run`));
  const isFetch = method === "fetch";
  const used = isFetch ? ++r.fetches : ++r.calls;
  const cap = isFetch ? limits.maxFetches : limits.maxCalls;
  if (used > cap) {
    const what = isFetch ? "fetch" : "binding call";
    return Promise.reject(new (isFetch ? TypeError : Error)(`${what} limit reached (${cap} per run)`));
  }
  let payload;
  try {
    payload = JSON.parse(stringify(args));
  } catch {
    return Promise.reject(new TypeError(`${method}(): the arguments must be JSON values`));
  }
  return new Promise((resolve, reject) => {
    const id = ++nextId;
    pending.set(id, { resolve, reject, isFetch });
    post({ k: "call", id, method, args: payload });
  });
}

function binding(method) {
  return freeze((...args) => invoke(method, args));
}

const bindings = freeze({
  store: freeze({ get: binding("store.get"), getAll: binding("store.getAll") }),
  room: freeze({ get: binding("room.get"), getUsers: binding("room.getUsers") }),
  files: freeze({ list: binding("files.list") }),
});

const NULL_BODY = new Set([101, 103, 204, 205, 304]);

async function sandboxFetch(input, init = undefined) {
  if (!(input instanceof NativeRequest) && !URL.canParse(String(input))) {
    throw new TypeError(`fetch: ${stringify(String(input).slice(0, 200))} is not an absolute URL`);
  }
  const request = new NativeRequest(input, init);
  const body = request.body === null ? null : new Uint8Array(await request.arrayBuffer());
  if (body !== null && body.length > limits.maxFetchBodyBytes) {
    throw new TypeError(`fetch body larger than ${limits.maxFetchBodyBytes} bytes`);
  }
  const wire = {
    url: request.url,
    method: request.method,
    headers: [...request.headers],
    body: body === null ? null : toBase64(body),
  };
  let reply;
  try {
    reply = await invoke("fetch", [wire]);
  } catch (error) {
    const text = safeString(error?.message ?? error);
    emit("warn", text.startsWith("fetch ") ? text : `fetch ${wire.method} ${wire.url} failed: ${text}`);
    throw error instanceof TypeError ? error : new TypeError(text);
  }
  const status = reply.status;
  const bytes = reply.body ? fromBase64(reply.body) : null;
  return new NativeResponse(NULL_BODY.has(status) ? null : bytes, {
    status: status >= 200 && status <= 599 ? status : 599,
    headers: reply.headers,
  });
}
defineProperty(globalThis, "fetch", { value: sandboxFetch, writable: true, configurable: true });

// --- Results and errors, as the host expects them.
function toJson(value) {
  if (value === undefined) return null;
  const replacer = (key, v) => {
    const type = typeof v;
    if (type === "function" || type === "bigint" || type === "symbol") {
      const where = key === "" ? "" : ` (at key ${stringify(key)})`;
      throw new TypeError(`the return value is not JSON: a ${type} cannot be serialized${where}`);
    }
    return v;
  };
  let text;
  try {
    text = stringify(value, replacer);
  } catch (error) {
    if (error instanceof TypeError && error.message.startsWith("the return value")) throw error;
    throw new TypeError(`the return value is not JSON: ${safeString(error?.message ?? error)}`);
  }
  if (text === undefined) return null;
  const size = text.length > limits.maxResultBytes ? text.length : encoder.encode(text).length;
  if (size > limits.maxResultBytes) {
    throw new RangeError(
      `result too large: ${size} bytes of JSON, the limit is ${limits.maxResultBytes}`,
    );
  }
  return text;
}

function clean(text, maxChars) {
  let out = text.split("\n").filter((line) => !line.includes(PRELUDE_MARK)).join("\n");
  if (moduleUrl !== null) out = out.split(moduleUrl).join(fileName);
  out = out.replace(DATA_URL, fileName);
  return out.length > maxChars ? out.slice(0, maxChars) + " …[truncated]" : out;
}

function describe(error) {
  let message;
  let stack = null;
  try {
    if (error instanceof Error) {
      const name = safeString(error.name);
      message = name && name !== "Error" ? `${name}: ${safeString(error.message)}` : safeString(error.message);
      // A module that does not parse rejects the import with TypeError("SyntaxError: ...").
      if (message.startsWith("TypeError: SyntaxError: ")) message = message.slice("TypeError: ".length);
      if (typeof error.stack === "string") stack = clean(actionable(error.stack), 16384);
    } else {
      message = `Uncaught ${safeString(error)}`;
    }
  } catch {
    message = "Uncaught [unprintable]";
  }
  return { message: clean(actionable(message), 4096), stack };
}

globalThis.addEventListener("message", async (event) => {
  const m = event.data;
  if (m === null || typeof m !== "object") return;
  if (m.k === "ping") {
    post({ k: "pong", n: m.n }); // answered only when this Worker's event loop is free
    return;
  }
  if (m.k === "reply") {
    const waiter = pending.get(m.id);
    if (waiter === undefined) return;
    pending.delete(m.id);
    if (m.ok) waiter.resolve(m.value);
    else waiter.reject(new (waiter.isFetch ? TypeError : Error)(String(m.error)));
    return;
  }
  if (m.k !== "run") return;
  limits ??= freeze({ ...m.limits });
  moduleUrl ??= m.url;
  fileName = m.lang === "ts" ? "workflow.ts" : "workflow.js";
  pending.clear(); // replies owed to an earlier run are never delivered
  run = { calls: 0, fetches: 0, logEntries: 0, logBytes: 0, dropped: 0, full: false };
  let done;
  let loaded = workflow !== null;
  try {
    if (workflow === null) {
      const module = await import(moduleUrl);
      if (typeof module.default !== "function") {
        throw new TypeError("the module must export a default function");
      }
      workflow = module.default;
      loaded = true;
    }
    const value = await workflow(m.event, bindings);
    done = { k: "done", ok: true, result: toJson(value), error: null };
  } catch (error) {
    done = { k: "done", ok: false, result: null, error: describe(error), loadFailed: !loaded };
  }
  done.dropped = run.dropped;
  run = null;
  post(done);
});

// The host's CPU watch counts this Worker's blocked time from here on, not its start-up.
post({ k: "ready" });
