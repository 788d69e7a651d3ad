// The controller's public API (api/openapi.yaml), and nothing else: every call the dashboard makes
// goes through call() with the signed-in user's access token.
//
// Tokens: the access token lives in memory only; the refresh token in sessionStorage, which only
// this origin and this tab can read (never localStorage, never a cookie another origin could
// send). A reload refreshes once; closing the tab ends the session.

export type Role = "viewer" | "operator" | "admin";

export interface FieldError {
  field: string;
  message: string;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly detail: string,
    readonly errors: FieldError[] = [],
  ) {
    super(detail);
  }
  // The message for `field` ("" none): what the form shows next to it.
  on(field: string): string {
    return this.errors.find((e) => e.field === field || e.field.startsWith(field + "."))?.message ?? "";
  }
}

export interface Session {
  user: string;
  role: Role;
}

const REFRESH_KEY = "patronus.refresh";
let access: string | null = null;
let accessExpiresMs = 0;
let session: Session | null = null;
let refreshing: Promise<boolean> | null = null;
const sessionListeners = new Set<(s: Session | null) => void>();

export function onSession(fn: (s: Session | null) => void): () => void {
  sessionListeners.add(fn);
  return () => sessionListeners.delete(fn);
}

function setSession(s: Session | null) {
  session = s;
  for (const fn of sessionListeners) fn(s);
}

export function currentSession(): Session | null {
  return session;
}

export function atLeast(role: Role): boolean {
  const rank: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };
  return session !== null && rank[session.role] >= rank[role];
}

interface Tokens {
  access_token: string;
  access_expires_unix_ns: number;
  refresh_token: string;
  user: string;
  role: Role;
}

function keep(t: Tokens) {
  access = t.access_token;
  // Refresh a minute before the controller would refuse it (the clocks are the same machine's
  // or close; an early refresh costs one call).
  accessExpiresMs = Date.now() + Math.max(30_000, t.access_expires_unix_ns / 1e6 - Date.now() - 60_000);
  sessionStorage.setItem(REFRESH_KEY, t.refresh_token);
  setSession({ user: t.user, role: t.role });
}

async function problemOf(r: Response): Promise<ApiError> {
  let detail = `${r.status} ${r.statusText}`;
  let errors: FieldError[] = [];
  try {
    const p = await r.json();
    if (typeof p.detail === "string") detail = p.detail;
    if (Array.isArray(p.errors)) errors = p.errors;
  } catch {
    // not a problem document (a proxy's page): the status says it
  }
  return new ApiError(r.status, detail, errors);
}

export async function login(user: string, password: string, totp?: string): Promise<void> {
  const body: Record<string, string> = { user, password };
  if (totp) body.totp = totp;
  const r = await fetch("/api/v1/auth/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
    credentials: "omit",
  });
  if (!r.ok) throw await problemOf(r);
  keep(await r.json());
}

// A new access token from the refresh token (which is rotated). false: signed out.
export function refresh(): Promise<boolean> {
  if (refreshing) return refreshing;
  const token = sessionStorage.getItem(REFRESH_KEY);
  if (!token) return Promise.resolve(false);
  refreshing = (async () => {
    try {
      const r = await fetch("/api/v1/auth/refresh", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ refresh_token: token }),
        credentials: "omit",
      });
      if (r.status === 401) {
        sessionStorage.removeItem(REFRESH_KEY);
        access = null;
        setSession(null);
        return false;
      }
      if (!r.ok) throw await problemOf(r);
      keep(await r.json());
      return true;
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

// Forgets this tab's login without asking the controller (it has ended it: a password change).
export function forget(): void {
  sessionStorage.removeItem(REFRESH_KEY);
  access = null;
  setSession(null);
}

export async function logout(): Promise<void> {
  try {
    if (access) await fetch("/api/v1/auth/logout", { method: "POST", headers: auth(), credentials: "omit" });
  } finally {
    sessionStorage.removeItem(REFRESH_KEY);
    access = null;
    setSession(null);
  }
}

function auth(): Record<string, string> {
  return access ? { Authorization: `Bearer ${access}` } : {};
}

async function token(): Promise<void> {
  if (!access || Date.now() >= accessExpiresMs) await refresh();
}

export interface Reply<T> {
  status: number;
  body: T;
  etag: string | null;
}

export interface CallOptions {
  body?: unknown;
  contentType?: string; // default application/json (a string body is sent as is)
  ifMatch?: string | null;
}

export async function call<T = unknown>(method: string, path: string, o: CallOptions = {}): Promise<Reply<T>> {
  await token();
  const send = () => {
    const headers: Record<string, string> = { ...auth() };
    let body: string | undefined;
    if (o.body !== undefined) {
      headers["Content-Type"] = o.contentType ?? "application/json";
      body = typeof o.body === "string" ? o.body : JSON.stringify(o.body);
    }
    if (o.ifMatch) headers["If-Match"] = o.ifMatch;
    return fetch(`/api/v1${path}`, { method, headers, body, credentials: "omit" });
  };
  let r = await send();
  if (r.status === 401 && (await refresh())) r = await send();
  if (!r.ok) throw await problemOf(r);
  const text = r.status === 204 ? "" : await r.text();
  return { status: r.status, body: (text ? JSON.parse(text) : null) as T, etag: r.headers.get("ETag") };
}

export const get = async <T>(path: string): Promise<T> => (await call<T>("GET", path)).body;

// Every item of a paged list (cursor pagination), at most `maxPages` pages of `limit`.
export async function all<T>(path: string, limit = 500, maxPages = 20): Promise<{ items: T[]; complete: boolean }> {
  const items: T[] = [];
  let cursor: string | null = null;
  for (let page = 0; page < maxPages; ++page) {
    const sep = path.includes("?") ? "&" : "?";
    const q: string = `${path}${sep}limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`;
    const r: { items: T[]; next_cursor: string | null } = await get(q);
    items.push(...r.items);
    cursor = r.next_cursor;
    if (!cursor) return { items, complete: true };
  }
  return { items, complete: false };
}

// ---- the live event stream (Server-Sent Events over fetch, so the token goes in a header) ----

export interface FleetEvent {
  id: number;
  unix_ns: number;
  kind: string;
  site: string;
  path?: string;
  state?: string;
  previous?: string;
  message?: string;
  decision?: Decision;
  audit?: { actor: string; method: string; route: string; target: string; status: number };
}

export type StreamState = "connecting" | "live" | "down";

// Reads /events/stream until stopped; reconnects with Last-Event-ID after a break (the controller
// restarting, the network), backing off to 5 s. `reset` says events were missed: reload state.
export function streamEvents(
  onEvent: (e: FleetEvent) => void,
  onState: (s: StreamState) => void,
  onReset: () => void,
): () => void {
  let stopped = false;
  let lastId: string | null = null;
  let controller: AbortController | null = null;
  let delay = 250;
  const run = async () => {
    while (!stopped) {
      onState("connecting");
      controller = new AbortController();
      try {
        await token();
        const headers: Record<string, string> = { ...auth(), Accept: "text/event-stream" };
        if (lastId) headers["Last-Event-ID"] = lastId;
        const r = await fetch("/api/v1/events/stream", { headers, signal: controller.signal, credentials: "omit" });
        if (r.status === 401) {
          if (!(await refresh())) return;
          continue;
        }
        if (!r.ok || !r.body) throw new Error(`stream: ${r.status}`);
        onState("live");
        delay = 250;
        const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let end: number;
          while ((end = buf.indexOf("\n\n")) >= 0) {
            const block = buf.slice(0, end);
            buf = buf.slice(end + 2);
            let event = "message";
            let data = "";
            let id: string | null = null;
            for (const line of block.split("\n")) {
              if (line.startsWith("event:")) event = line.slice(6).trim();
              else if (line.startsWith("data:")) data += line.slice(5).trim();
              else if (line.startsWith("id:")) id = line.slice(3).trim();
            }
            if (id) lastId = id;
            if (event === "reset") onReset();
            else if (event === "end") await refresh();  // the credential ended: a new one, or signed out
            else if (data) onEvent(JSON.parse(data) as FleetEvent);
          }
        }
      } catch {
        // the controller went away or the tab stopped us: retry below
      }
      if (stopped) break;
      onState("down");
      await new Promise((res) => setTimeout(res, delay));
      delay = Math.min(5000, delay * 2);
    }
  };
  void run();
  return () => {
    stopped = true;
    controller?.abort();
  };
}

// ---- the API's types (api/openapi.yaml) ----

export interface Endpoint {
  name: string;
  address: string;
  type: string;
  cost_per_gb: number;
  bandwidth_mbps: number | null;
}

export interface Site {
  name: string;
  endpoints: Endpoint[];
  subnets: string[];
  enrolled: boolean;
  approved: boolean;
  in_mesh: boolean;
  connected: boolean;
  version: number;
  hash: string;
  applied_version: number;
  applied_hash: string;
  drift: boolean;
  last_seen_unix_ns: number;
  paths_up: number;
  paths_degraded: number;
  paths_down: number;
  last_error: string;
  rotation: string;
  tokens: number;
  history: { unix_ns: number; up: number; degraded: number; down: number }[];
}

export interface Tunnel {
  up: boolean;
  diagnostic: string;
  handshake_age_s: number | null;
  rx_bytes: number;
  tx_bytes: number;
}

export interface Liveness {
  instance: string;
  up: boolean;
  diagnostic: string;
  detect_time_ms: number;
}

export interface Path {
  site: string;
  id: number;
  name: string;
  state: string;
  score: number | null;
  rtt_ms: number | null;
  jitter_ms: number | null;
  loss_pct: number | null;
  peer_site: string;
  local_endpoint: string;
  remote_endpoint: string;
  tunnel: Tunnel | null;
  liveness: Liveness[];
}

export interface Candidate {
  path: number;
  score: number;
  eligible: boolean;
  why_not: string;
}

export interface Decision {
  site: string;
  unix_ns: number;
  class_name: string;
  remote_site: string;
  from_path: number;
  to_path: number;
  reason: string;
  why: string;
  fault_age_ms: number | null;
  flows_moved: number;
  candidates: Candidate[];
}

export interface PathSample {
  unix_ns: number;
  state: string;
  score: number | null;
  rtt_ms: number | null;
  jitter_ms: number | null;
  loss_pct: number | null;
}

export interface PathHistory {
  site: string;
  paths: { id: number; name: string; samples: PathSample[] }[];
}

export interface Selection {
  class_name: string;
  remote_site: string;
  path: number;
  path_name: string | null;
  reason: string;
}
