// The fleet as the dashboard knows it: loaded from the API, then kept current by the event
// stream (path states, site connections, decisions). Views subscribe and re-render on change.
import { useEffect, useState } from "preact/hooks";
import { all, Decision, FleetEvent, get, Path, Site, StreamState, streamEvents } from "./api";

export interface Fleet {
  sites: Map<string, Site>;
  paths: Map<string, Path>; // by `${site}/${name}`
  hubs: Set<string>;
  complete: boolean; // false: more paths than the dashboard loads (see all())
  loadedAt: number;
}

const MAX_EVENTS = 500;

class Live {
  fleet: Fleet = { sites: new Map(), paths: new Map(), hubs: new Set(), complete: true, loadedAt: 0 };
  events: FleetEvent[] = []; // newest first, bounded
  stream: StreamState = "connecting";
  private listeners = new Set<() => void>();
  private stop: (() => void) | null = null;
  private loading: Promise<void> | null = null;

  subscribe(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private changed() {
    for (const fn of this.listeners) fn();
  }

  load(): Promise<void> {
    if (this.loading) return this.loading;
    this.loading = (async () => {
      try {
        const [sites, paths, topo] = await Promise.all([
          all<Site>("/sites"),
          all<Path>("/paths"),
          get<{ hubs: string[] }>("/topology"),
        ]);
        const f: Fleet = {
          sites: new Map(sites.items.map((s) => [s.name, s])),
          paths: new Map(paths.items.map((p) => [`${p.site}/${p.name}`, p])),
          hubs: new Set(topo.hubs),
          complete: sites.complete && paths.complete,
          loadedAt: Date.now(),
        };
        this.fleet = f;
        this.changed();
      } finally {
        this.loading = null;
      }
    })();
    return this.loading;
  }

  start() {
    if (this.stop) return;
    void this.load().catch(() => undefined);
    this.stop = streamEvents(
      (e) => this.apply(e),
      (s) => {
        const was = this.stream;
        this.stream = s;
        // Back after a break: what happened meanwhile is in the stream's resume, but a reload
        // also catches what the controller no longer keeps.
        if (s === "live" && was === "down") void this.load().catch(() => undefined);
        this.changed();
      },
      () => void this.load().catch(() => undefined),
    );
  }

  end() {
    this.stop?.();
    this.stop = null;
    this.events = [];
    this.fleet = { sites: new Map(), paths: new Map(), hubs: new Set(), complete: true, loadedAt: 0 };
  }

  private apply(e: FleetEvent) {
    this.events.unshift(e);
    if (this.events.length > MAX_EVENTS) this.events.length = MAX_EVENTS;
    const site = this.fleet.sites.get(e.site);
    switch (e.kind) {
      case "path.state": {
        const key = `${e.site}/${e.path}`;
        const p = this.fleet.paths.get(key);
        if (p && e.state) {
          this.fleet.paths.set(key, { ...p, state: e.state });
        } else {
          void this.load().catch(() => undefined); // a path we did not know: reload
        }
        break;
      }
      case "site.connected":
      case "site.disconnected":
        if (site) this.fleet.sites.set(e.site, { ...site, connected: e.kind === "site.connected" });
        break;
      case "site.drift":
        if (site) this.fleet.sites.set(e.site, { ...site, drift: e.state === "drift" });
        break;
      default:
        break;
    }
    this.changed();
  }

  decisions(): Decision[] {
    return this.events.filter((e) => e.kind === "decision" && e.decision).map((e) => e.decision as Decision);
  }
}

export const live = new Live();

// Re-renders the calling component whenever the live state changes.
export function useLive(): Live {
  const [, tick] = useState(0);
  useEffect(() => live.subscribe(() => tick((n) => n + 1)), []);
  return live;
}

export function pathState(p: Path | undefined): "up" | "degraded" | "down" | "unknown" {
  if (!p) return "unknown";
  return p.state === "up" || p.state === "degraded" || p.state === "down" ? p.state : "unknown";
}

export function ago(unixNs: number): string {
  if (!unixNs) return "never";
  const s = Math.max(0, Math.round((Date.now() - unixNs / 1e6) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

// Times are UTC everywhere (the controller's logs and the API's are): seconds, or milliseconds
// where they matter (decisions, failovers).
export function clock(unixNs: number, ms = false): string {
  const d = new Date(unixNs / 1e6).toISOString().replace("T", " ");
  return `${ms ? d.replace(/Z$/, "") : d.replace(/\.\d{3}Z$/, "")} UTC`;
}

export function num(v: number | null | undefined, digits = 1, unit = ""): string {
  return v === null || v === undefined ? "–" : `${v.toFixed(digits)}${unit}`;
}

export function bytes(n: number): string {
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < u.length - 1) {
    v /= 1024;
    ++i;
  }
  return `${v.toFixed(i ? 1 : 0)} ${u[i]}`;
}
