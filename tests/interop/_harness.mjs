// Shared plumbing for the realm-web interop scenarios.
//
// Every scenario script imports this module, builds a realm-web App pointed at the
// local server (SERVER_URL / APP_ID from the environment) and runs a sequence of
// named steps. Each step prints exactly one JSON line on stdout:
//
//   {"step": "<name>", "ok": true|false, "detail": <anything JSON>, "ms": <duration>}
//
// The pytest driver (test_realm_web.py) parses those lines. A failing step stops the
// scenario (later steps usually depend on it), so the driver reports the failure plus
// the steps that never ran. Nothing printed here may contain a token, a password or an
// API key: details carry ids, counts, error codes and messages only.

import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { appendFileSync } from "node:fs";
import process from "node:process";

import * as Realm from "realm-web";

export { assert, Realm };

const env = (name) => {
  const value = process.env[name];
  if (!value) {
    emit({ step: "environment", ok: false, detail: `missing environment variable ${name}` });
    process.exit(2);
  }
  return value;
};

/** Server origin, e.g. http://127.0.0.1:41234 (no trailing slash). */
export const SERVER_URL = env("SERVER_URL").replace(/\/+$/, "");
/** App id the local server serves. */
export const APP_ID = env("APP_ID");
const ADMIN_TOKEN = env("ADMIN_TOKEN");
/** Default per-step budget; the driver has its own, larger, process timeout. */
const STEP_TIMEOUT_MS = Number(process.env.STEP_TIMEOUT_MS || 15000);

function emit(record) {
  process.stdout.write(JSON.stringify(record) + "\n");
}

// Compact JWTs (three base64url parts) that slip into an assertion's actual/expected
// values or messages are masked before anything is printed.
const JWT_PATTERN = /[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/g;

function redact(value) {
  if (typeof value === "string") {
    return value.replace(JWT_PATTERN, "<redacted-jwt>");
  }
  if (Array.isArray(value)) {
    return value.map(redact);
  }
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redact(v)]));
  }
  return value;
}

/** Turn anything thrown into a JSON-friendly description without secrets. */
export function describeError(err) {
  return redact(describeErrorRaw(err));
}

function describeErrorRaw(err) {
  if (err instanceof Realm.MongoDBRealmError) {
    return {
      type: "MongoDBRealmError",
      message: err.message,
      statusCode: err.statusCode,
      errorCode: err.errorCode ?? null,
      error: err.error ?? null,
    };
  }
  if (err instanceof assert.AssertionError) {
    return {
      type: "AssertionError",
      message: err.message,
      actual: safeJson(err.actual),
      expected: safeJson(err.expected),
    };
  }
  if (err instanceof Error) {
    return { type: err.constructor?.name ?? "Error", message: err.message };
  }
  return { type: typeof err, message: String(err) };
}

function safeJson(value) {
  try {
    return JSON.parse(JSON.stringify(value, (_k, v) => (typeof v === "bigint" ? v.toString() : v)) ?? "null");
  } catch {
    return String(value);
  }
}

function withTimeout(promise, ms, name) {
  let timer;
  const timeout = new Promise((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`step "${name}" timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

class StepFailed extends Error {}

/**
 * Run one named step. `fn` returns the step's detail (any JSON value) or throws.
 * On failure the step is reported and the scenario stops (see `scenario`).
 */
export async function step(name, fn, { timeoutMs = STEP_TIMEOUT_MS } = {}) {
  const started = performance.now();
  const ms = () => Math.round(performance.now() - started);
  try {
    const detail = await withTimeout(Promise.resolve().then(fn), timeoutMs, name);
    emit({ step: name, ok: true, detail: safeJson(detail ?? null), ms: ms() });
    return detail;
  } catch (err) {
    emit({ step: name, ok: false, detail: describeError(err), ms: ms() });
    throw new StepFailed(name);
  }
}

/**
 * Expect `fn` to reject. Returns the error's description; `check` may assert on the error.
 * A resolved promise is an assertion failure.
 */
export async function rejects(fn, check) {
  let caught;
  try {
    await fn();
  } catch (err) {
    caught = err;
  }
  if (caught === undefined) {
    throw new assert.AssertionError({ message: "expected the call to fail, but it succeeded" });
  }
  if (check) {
    await check(caught);
  }
  return describeError(caught);
}

/** Assert a realm-web HTTP error with the given status (a number or "4xx") and error_code. */
export function expectServiceError(err, { status, errorCode } = {}) {
  assert.ok(err instanceof Realm.MongoDBRealmError, `expected MongoDBRealmError, got ${describeError(err).message}`);
  if (status === "4xx") {
    assert.ok(err.statusCode >= 400 && err.statusCode < 500, `expected a 4xx status: ${err.message}`);
  } else if (status !== undefined) {
    assert.equal(err.statusCode, status, `status of ${err.message}`);
  }
  if (errorCode !== undefined) {
    assert.equal(err.errorCode, errorCode, `error_code of ${err.message}`);
  }
}

/** Name of the step every scenario ends with (see checkWireConformance). */
export const WIRE_STEP = "wire.content_types";

/** Every recorder made by makeApp, so the closing step can inspect all traffic. */
const allRecorders = [];

/**
 * Protocol §2.5/§15.2, over every response any App of the scenario received:
 * JSON bodies carry exactly `application/json` (core compares the whole header),
 * streams `text/event-stream`; a response without a content type has an empty body,
 * and a 204 has no content type.
 */
function checkWireConformance() {
  const exchanges = allRecorders.flatMap((r) => r.log).filter((e) => e.status !== null);
  const bad = exchanges.filter((e) => {
    if (e.contentType === null) {
      return !e.emptyBody;
    }
    if (e.status === 204) {
      return true;
    }
    return !(e.contentType === "application/json" || e.contentType.startsWith("text/event-stream"));
  });
  assert.deepEqual(
    bad.map((e) => `${e.method} ${e.path} -> ${e.status} ${e.contentType}`),
    [],
    "responses with a content type other than the protocol's",
  );
  return { responses: exchanges.length };
}

/**
 * Run a whole scenario: `body` calls `step(...)` in order, then the wire check runs. Exits 0 when every step
 * passed, 1 after the first failing step (already reported), 3 on a harness error.
 */
export async function scenario(body) {
  let code = 0;
  try {
    await body();
    await step(WIRE_STEP, checkWireConformance);
  } catch (err) {
    if (err instanceof StepFailed) {
      code = 1;
    } else {
      emit({ step: "harness", ok: false, detail: describeError(err) });
      code = 3;
    }
  }
  // Open streams (watch) or keep-alive sockets must not keep the process alive.
  process.exit(code);
}

// ---------------------------------------------------------------------------
// HTTP recording: realm-web accepts a `fetch` in its App configuration. We wrap the
// global fetch to keep a log of what the client really sent (method, path, status),
// which lets steps assert wire behaviour, e.g. "exactly one POST /auth/session".

/**
 * @typedef {{method: string, path: string, query: string, status: number | null,
 *            hasAuth: boolean, contentType: string | null, emptyBody?: boolean}} Exchange
 */

/** Create a recording fetch. Returns {fetch, log, waitFor}. */
export function recordingFetch() {
  /** @type {Exchange[]} */
  const log = [];
  const waiters = [];
  const notify = () => {
    for (const waiter of [...waiters]) {
      if (waiter.predicate(log)) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve();
      }
    }
  };
  const wrapped = async (input, init = {}) => {
    const url = new URL(typeof input === "string" ? input : input.url);
    const headers = new Headers(init.headers || {});
    const entry = {
      method: (init.method || "GET").toUpperCase(),
      path: url.pathname,
      query: url.search,
      status: null,
      hasAuth: headers.has("authorization"),
      contentType: null,
    };
    log.push(entry);
    const response = await globalThis.fetch(input, init);
    entry.status = response.status;
    entry.contentType = response.headers.get("content-type");
    if (entry.contentType === null) {
      // Without a content type the body must be empty (protocol §2.5); read a copy.
      entry.emptyBody = (await response.clone().text()).length === 0;
    }
    notify();
    return response;
  };
  /** Resolve once `predicate(log)` holds (checked after every response head). */
  const waitFor = (predicate) =>
    predicate(log) ? Promise.resolve() : new Promise((resolve) => waiters.push({ predicate, resolve }));
  return { fetch: wrapped, log, waitFor };
}

/**
 * Capture raw response bodies of function calls, for assertions on the exact EJSON the
 * server put on the wire (realm-web's relaxed decoding loses int64 precision).
 */
export function rawBodyFetch(inner) {
  const bodies = [];
  const wrapped = async (input, init = {}) => {
    const response = await inner(input, init);
    const ctype = response.headers.get("content-type") || "";
    if (ctype.startsWith("application/json")) {
      const text = await response.clone().text();
      bodies.push({ path: new URL(typeof input === "string" ? input : input.url).pathname, text });
    }
    return response;
  };
  return { fetch: wrapped, bodies };
}

// realm-web's Node entry point keeps every App's users in one process-wide MemoryStorage,
// so two Apps with the same id would hydrate each other's users. The class is not
// exported; the default instance's constructor is, in effect, the class.
const MemoryStorage = Realm.getEnvironment().defaultStorage.constructor;

/**
 * A realm-web App against the local server, with its own recording fetch and its own
 * in-memory storage (each App behaves like a separate device).
 */
export function makeApp() {
  const recorder = recordingFetch();
  allRecorders.push(recorder);
  const raw = rawBodyFetch(recorder.fetch);
  const app = new Realm.App({
    id: APP_ID,
    baseUrl: SERVER_URL,
    fetch: raw.fetch,
    storage: new MemoryStorage(),
  });
  return { app, http: recorder, raw };
}

// ---------------------------------------------------------------------------
// Admin hooks (out-of-process access to the server's test controls).

async function adminRequest(method, name, body) {
  const response = await globalThis.fetch(`${SERVER_URL}/_appusers/admin/${name}`, {
    method,
    headers: {
      "X-Appusers-Admin": ADMIN_TOKEN,
      ...(body === undefined ? {} : { "Content-Type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) {
    throw new Error(`admin ${method} ${name} failed with status ${response.status}: ${text.slice(0, 300)}`);
  }
  // The server answers admin calls in canonical EJSON like everything else, so counters
  // arrive as {"$numberInt": "3"}; decode them the way realm-web decodes responses.
  return text ? Realm.BSON.EJSON.deserialize(JSON.parse(text)) : null;
}

export const admin = {
  /** Mails the server "sent": [{email, token, tokenId, kind}]. */
  outbox: () => adminRequest("GET", "outbox"),
  /** Request counters by route name ("refresh", "login", ...). */
  stats: () => adminRequest("GET", "stats"),
  revokeAccessTokens: (userId) => adminRequest("POST", "revoke_access_tokens", { user_id: userId }),
  revokeSessions: (userId) => adminRequest("POST", "revoke_sessions", { user_id: userId }),
  fault: (route, status, body, times = 1) => adminRequest("POST", "fault", { route, status, body, times }),
};

/**
 * The newest outbox mail for `email` of `kind` (e.g. "confirm", "reset"). The kind
 * names are the server's; we match loosely (substring) so "reset" finds "reset_password".
 */
export async function mailFor(email, kind) {
  const outbox = await admin.outbox();
  assert.ok(Array.isArray(outbox), "admin outbox must be a JSON array");
  const mails = outbox.filter(
    (m) => m.email === email && typeof m.kind === "string" && m.kind.toLowerCase().includes(kind),
  );
  assert.ok(
    mails.length > 0,
    `no "${kind}" mail for ${email} in the outbox (kinds present: ${JSON.stringify(outbox.map((m) => m.kind))})`,
  );
  const mail = mails[mails.length - 1];
  assert.equal(typeof mail.token, "string", "outbox mail token must be a string");
  assert.equal(typeof mail.tokenId, "string", "outbox mail tokenId must be a string");
  return mail;
}

/** A unique address per run so scenarios never collide, even on a shared server. */
export function uniqueEmail(tag) {
  const nonce = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
  return `${tag}-${nonce}@example.com`;
}

/** A random password (never printed). */
export function randomPassword() {
  return `pw-${Math.random().toString(36).slice(2)}-${Date.now().toString(36)}`;
}

/** Count entries of the HTTP log matching method and a path suffix. */
export function countRequests(log, method, pathSuffix) {
  return log.filter((e) => e.method === method && e.path.endsWith(pathSuffix)).length;
}

/** Read a counter from the admin stats (0 when absent). */
export function statCount(stats, route) {
  const value = stats?.[route];
  return typeof value === "number" ? value : 0;
}

// ---------------------------------------------------------------------------
// Custom JWTs, signed here with node:crypto (no extra npm dependency).

const b64url = (data) => Buffer.from(data).toString("base64url");

/** Sign `payload` as a compact HS256 JWT (`header` overrides, e.g. {alg: "none"}). */
export function signJwt(payload, secret, header = {}) {
  const head = b64url(JSON.stringify({ alg: "HS256", typ: "JWT", ...header }));
  const body = b64url(JSON.stringify(payload));
  const signingInput = `${head}.${body}`;
  const signature = createHmac("sha256", secret).update(signingInput).digest("base64url");
  return `${signingInput}.${signature}`;
}

/** Seconds since the epoch. */
export const nowSeconds = () => Math.floor(Date.now() / 1000);

/** A required environment variable that is not part of every scenario. */
export function requireEnv(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`missing environment variable ${name}`);
  }
  return value;
}

/**
 * Hand a secret (password, API key, refresh token) to the pytest driver, which checks
 * that it never appears in clear in the server's data directory. It goes to the file
 * named by INTEROP_SECRETS_FILE (created by the driver in its tmp_path), never to stdout.
 */
export function recordSecret(kind, value) {
  const path = process.env.INTEROP_SECRETS_FILE;
  if (path) {
    appendFileSync(path, JSON.stringify({ kind, value }) + "\n", { mode: 0o600 });
  }
}
