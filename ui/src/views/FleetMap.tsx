// The fleet on one screen: sites as dots, site pairs as lines coloured by the worst state of their
// paths, hubs in the middle. Drawn on a canvas so that a thousand sites stay fast; past
// MAX_LINES pairs only the pairs that are not up (and the hubs' links) are drawn. The tables
// under it say the same in text (for screen readers, and what is wrong at a glance).
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { Path, Site } from "../api";
import { ago, clock, Fleet, pathState, useLive } from "../live";

const MAX_LINES = 3000;
const COLOURS = { up: "#2e7d32", degraded: "#b26a00", down: "#c62828", unknown: "#78909c" };
const RANK = { unknown: 0, up: 1, degraded: 2, down: 3 };
type State = keyof typeof COLOURS;

export interface Pair {
  a: string;
  b: string;
  state: State;
  paths: Path[];
}

// Site pairs from the paths each site reports (both ends report the same pair).
export function pairsOf(paths: Iterable<Path>): Map<string, Pair> {
  const out = new Map<string, Pair>();
  for (const p of paths) {
    const peer = p.peer_site || p.name.split("~")[1]?.split(":")[0] || "";
    if (!peer) continue;
    const [a, b] = p.site < peer ? [p.site, peer] : [peer, p.site];
    const key = `${a}|${b}`;
    const s = pathState(p);
    const cur = out.get(key);
    if (!cur) out.set(key, { a, b, state: s, paths: [p] });
    else {
      cur.paths.push(p);
      if (RANK[s] > RANK[cur.state]) cur.state = s;
    }
  }
  return out;
}

export function siteState(s: Site): State {
  if (!s.connected) return "unknown";
  if (s.paths_down > 0) return "down";
  if (s.paths_degraded > 0) return "degraded";
  return s.paths_up > 0 ? "up" : "unknown";
}

interface Layout {
  at: Map<string, [number, number]>;
  size: number;
}

// Hubs on an inner ring, the other sites on a circle (few) or spread evenly over a disc (many:
// a sunflower pattern keeps neighbours apart at any count).
function layout(sites: Site[], hubs: Set<string>, size: number): Layout {
  const at = new Map<string, [number, number]>();
  const c = size / 2;
  const hubList = sites.filter((s) => hubs.has(s.name));
  const rest = sites.filter((s) => !hubs.has(s.name));
  hubList.forEach((s, i) => {
    const r = hubList.length === 1 ? 0 : size * 0.1;
    const t = (2 * Math.PI * i) / hubList.length;
    at.set(s.name, [c + r * Math.cos(t), c + r * Math.sin(t)]);
  });
  if (rest.length <= 120) {
    rest.forEach((s, i) => {
      const t = (2 * Math.PI * i) / rest.length - Math.PI / 2;
      at.set(s.name, [c + size * 0.4 * Math.cos(t), c + size * 0.4 * Math.sin(t)]);
    });
  } else {
    const golden = Math.PI * (3 - Math.sqrt(5));
    rest.forEach((s, i) => {
      const r = size * 0.45 * Math.sqrt((i + 0.5) / rest.length) + (hubList.length ? size * 0.05 : 0);
      const t = i * golden;
      at.set(s.name, [c + Math.min(r, size * 0.47) * Math.cos(t), c + Math.min(r, size * 0.47) * Math.sin(t)]);
    });
  }
  return { at, size };
}

function draw(canvas: HTMLCanvasElement, fleet: Fleet, pairs: Map<string, Pair>, l: Layout, hover: string | null) {
  const dpr = window.devicePixelRatio || 1;
  canvas.width = l.size * dpr;
  canvas.height = l.size * dpr;
  const g = canvas.getContext("2d");
  if (!g) return;
  g.scale(dpr, dpr);
  g.clearRect(0, 0, l.size, l.size);
  const many = pairs.size > MAX_LINES;
  const dense = fleet.sites.size > 120;
  // Up first, so that trouble is drawn on top.
  const order = [...pairs.values()].sort((x, y) => RANK[x.state] - RANK[y.state]);
  for (const p of order) {
    if (many && p.state === "up" && !fleet.hubs.has(p.a) && !fleet.hubs.has(p.b)) continue;
    const a = l.at.get(p.a);
    const b = l.at.get(p.b);
    if (!a || !b) continue;
    const highlight = hover !== null && (p.a === hover || p.b === hover);
    g.strokeStyle = COLOURS[p.state];
    g.globalAlpha = p.state === "up" ? (dense ? 0.15 : 0.6) : 0.95;
    g.lineWidth = p.state === "down" ? 2.5 : p.state === "degraded" ? 2 : highlight ? 2 : 1;
    g.beginPath();
    g.moveTo(a[0], a[1]);
    g.lineTo(b[0], b[1]);
    g.stroke();
  }
  g.globalAlpha = 1;
  const radius = dense ? 3 : 9;
  for (const s of fleet.sites.values()) {
    const at = l.at.get(s.name);
    if (!at) continue;
    const hub = fleet.hubs.has(s.name);
    g.fillStyle = COLOURS[siteState(s)];
    g.beginPath();
    g.arc(at[0], at[1], hub ? radius * 1.6 : radius, 0, 2 * Math.PI);
    g.fill();
    if (hub || s.name === hover) {
      g.strokeStyle = "#111";
      g.lineWidth = 1.5;
      g.stroke();
    }
    if (!dense || hub || s.name === hover) {
      g.fillStyle = "#111";
      g.font = "12px system-ui, sans-serif";
      g.fillText(s.name, at[0] + radius + 3, at[1] - radius);
    }
  }
}

export function FleetMap() {
  const l = useLive();
  const fleet = l.fleet;
  const canvas = useRef<HTMLCanvasElement>(null);
  const [hover, setHover] = useState<string | null>(null);
  const [filter, setFilter] = useState("");
  const sites = useMemo(() => [...fleet.sites.values()].sort((a, b) => a.name.localeCompare(b.name)), [fleet.sites, fleet.loadedAt]);
  const pairs = pairsOf(fleet.paths.values());
  const size = Math.min(760, Math.max(360, (typeof window !== "undefined" ? window.innerWidth : 1000) - 420));
  const lay = useMemo(() => layout(sites, fleet.hubs, size), [sites, fleet.hubs, size]);
  useEffect(() => {
    if (!canvas.current) return;
    const t0 = performance.now();
    draw(canvas.current, fleet, pairs, lay, hover);
    if (fleet.loadedAt) {
      canvas.current.dataset.sites = String(fleet.sites.size);
      canvas.current.dataset.drawMs = (performance.now() - t0).toFixed(1);
    }
  });
  const onMove = (e: MouseEvent) => {
    const r = (e.currentTarget as HTMLCanvasElement).getBoundingClientRect();
    const x = e.clientX - r.left;
    const y = e.clientY - r.top;
    let best: string | null = null;
    let bestD = 12 * 12;
    for (const [name, at] of lay.at) {
      const d = (at[0] - x) ** 2 + (at[1] - y) ** 2;
      if (d < bestD) {
        bestD = d;
        best = name;
      }
    }
    if (best !== hover) setHover(best);
  };
  const trouble = [...pairs.values()].filter((p) => p.state === "down" || p.state === "degraded");
  const shownPairs = pairs.size <= 60 ? [...pairs.values()] : trouble.slice(0, 200);
  const listed = sites
    .filter((s) => !filter || s.name.includes(filter))
    .sort((a, b) => RANK[siteState(b)] - RANK[siteState(a)] || a.name.localeCompare(b.name))
    .slice(0, 100);
  const counts = { up: 0, degraded: 0, down: 0, unknown: 0 };
  for (const p of pairs.values()) counts[p.state]++;
  return (
    <section aria-labelledby="map-h">
      <h1 id="map-h">Fleet map</h1>
      <p class="summary" data-testid="map-summary">
        {fleet.sites.size} sites, {pairs.size} site pairs: {counts.up} up, {counts.degraded} degraded, {counts.down} down
        {pairs.size > MAX_LINES && ` (drawn: the ${trouble.length} pairs not up and the hubs' links)`}
        {!fleet.complete && " — more paths than the dashboard loads; the lists show the first ones"}
      </p>
      <div class="map-wrap">
        <canvas
          ref={canvas}
          data-testid="fleet-canvas"
          role="img"
          aria-label={`Map of ${fleet.sites.size} sites; ${counts.down} site pairs down, ${counts.degraded} degraded`}
          style={{ width: `${size}px`, height: `${size}px` }}
          onMouseMove={onMove}
          onMouseLeave={() => setHover(null)}
          onClick={() => hover && (location.hash = `#/sites/${encodeURIComponent(hover)}`)}
        />
        <ul class="legend" aria-label="Legend">
          {(Object.keys(COLOURS) as State[]).map((k) => (
            <li key={k}>
              <span class="swatch" style={{ background: COLOURS[k] }} /> {k === "unknown" ? "not connected / no report" : k}
            </li>
          ))}
          <li>larger, outlined: hub</li>
          {hover && <li class="hovered">{hover}: click for the site</li>}
        </ul>
      </div>
      <h2>Latest decisions</h2>
      <ol class="latest" data-testid="latest-decisions" aria-live="polite">
        {l.decisions().slice(0, 8).map((d) => (
          <li key={`${d.site}|${d.unix_ns}|${d.class_name}|${d.remote_site}`} data-reason={d.reason} data-site={d.site}>
            {clock(d.unix_ns).slice(11)} <a href={`#/why?site=${encodeURIComponent(d.site)}&class=${encodeURIComponent(d.class_name)}&to=${encodeURIComponent(d.remote_site)}`}>
              {d.site}: {d.class_name} to {d.remote_site}
            </a>{" "}
            — <strong>{d.reason}</strong>: {d.why}
          </li>
        ))}
        {l.decisions().length === 0 && <li class="hint">none since this page was opened (the Why this path view has the log)</li>}
      </ol>
      <h2>Site pairs{pairs.size > 60 && " that are not up"}</h2>
      <table class="data" data-testid="pairs">
        <thead>
          <tr>
            <th scope="col">Sites</th>
            <th scope="col">State</th>
            <th scope="col">Paths</th>
          </tr>
        </thead>
        <tbody>
          {shownPairs.map((p) => (
            <tr key={`${p.a}|${p.b}`} data-pair={`${p.a}|${p.b}`} data-state={p.state}>
              <td>
                <a href={`#/sites/${encodeURIComponent(p.a)}`}>{p.a}</a> – <a href={`#/sites/${encodeURIComponent(p.b)}`}>{p.b}</a>
              </td>
              <td>
                <span class={`state state-${p.state}`}>{p.state}</span>
              </td>
              <td>
                {p.paths
                  .filter((x) => x.site === p.a)
                  .map((x) => (
                    <span key={x.name} class={`chip state-${pathState(x)}`} data-path={x.name} data-state={pathState(x)}>
                      {x.name.replace(/^[^:]*:/, "").replace(/~[^:]*:/, " – ")} {pathState(x)}
                    </span>
                  ))}
              </td>
            </tr>
          ))}
          {shownPairs.length === 0 && (
            <tr>
              <td colSpan={3}>{pairs.size ? "every pair is up" : "no site has reported paths yet"}</td>
            </tr>
          )}
        </tbody>
      </table>
      <h2>Sites</h2>
      <label class="filter">
        Filter by name <input value={filter} onInput={(e) => setFilter(e.currentTarget.value)} />
      </label>
      <table class="data" data-testid="sites">
        <thead>
          <tr>
            <th scope="col">Site</th>
            <th scope="col">State</th>
            <th scope="col">Paths up / degraded / down</th>
            <th scope="col">Config</th>
            <th scope="col">Last report</th>
          </tr>
        </thead>
        <tbody>
          {listed.map((s) => (
            <tr key={s.name} data-site={s.name}>
              <td>
                <a href={`#/sites/${encodeURIComponent(s.name)}`}>{s.name}</a>
                {fleet.hubs.has(s.name) && " (hub)"}
              </td>
              <td>
                <span class={`state state-${siteState(s)}`}>
                  {s.connected ? siteState(s) : s.enrolled ? "disconnected" : "not enrolled"}
                </span>
              </td>
              <td>
                {s.paths_up} / {s.paths_degraded} / {s.paths_down}
              </td>
              <td>{s.drift ? `drift (runs v${s.applied_version}, sent v${s.version})` : s.version ? `v${s.version}` : "none yet"}</td>
              <td>{ago(s.last_seen_unix_ns)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {sites.length > listed.length && <p class="hint">The first {listed.length} by state; filter to find others.</p>}
    </section>
  );
}
