// How a failover happened: faults, their detection, the move and the traffic lost, on one time
// axis. For a live site from the controller's events and decisions; for a simulator run from the
// report `patronus sim run --json` writes (opened from a file, read in the browser only).
import { useEffect, useState } from "preact/hooks";
import { all, ApiError, FleetEvent } from "../api";
import { clock, num, useLive } from "../live";
import { Choice } from "./Choice";

interface Segment {
  from: number;
  to: number;
  state: string;
}
interface Lane {
  label: string;
  segments: Segment[];
}
interface Mark {
  t: number;
  label: string;
  kind: "fault" | "detect" | "move" | "back";
}

const FILL: Record<string, string> = { up: "#2e7d32", degraded: "#b26a00", down: "#c62828", fault: "#c62828", unknown: "#b0bec5" };

export function TimeAxis({ lanes, marks, t0, t1, unit }: { lanes: Lane[]; marks: Mark[]; t0: number; t1: number; unit: (t: number) => string }) {
  const W = 900;
  const left = 220;
  const laneH = 22;
  const top = 24;
  const H = top + lanes.length * laneH + 64;
  const x = (t: number) => left + ((t - t0) / Math.max(1e-9, t1 - t0)) * (W - left - 40);
  // Ticks at round steps (1, 2 or 5 times a power of ten), about six of them.
  const raw = (t1 - t0) / 6;
  const mag = Math.pow(10, Math.floor(Math.log10(Math.max(raw, 1e-9))));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const ticks: number[] = [];
  for (let t = Math.ceil(t0 / step) * step; t <= t1 + 1e-9; t += step) ticks.push(t);
  return (
    <svg class="timeline" viewBox={`0 0 ${W} ${H}`} role="img" aria-label={`Timeline: ${lanes.length} lanes, ${marks.length} events`}>
      {ticks.map((t) => (
        <g key={t}>
          <line x1={x(t)} x2={x(t)} y1={top - 6} y2={H - 50} stroke="#ccc" />
          <text x={x(t)} y={top - 10} font-size="11" text-anchor="middle" fill="#333">
            {unit(t)}
          </text>
        </g>
      ))}
      {lanes.map((l, i) => (
        <g key={l.label}>
          <text x={4} y={top + i * laneH + 15} font-size="12" fill="#111">
            {l.label.length > 32 ? `${l.label.slice(0, 31)}…` : l.label}
          </text>
          {l.segments.map((s, j) => (
            <rect key={j} x={x(s.from)} width={Math.max(1.5, x(s.to) - x(s.from))} y={top + i * laneH + 3} height={laneH - 6} fill={FILL[s.state] ?? FILL.unknown} />
          ))}
        </g>
      ))}
      {marks.map((m, i) => (
        <g key={i}>
          <line x1={x(m.t)} x2={x(m.t)} y1={top} y2={H - 50} stroke={m.kind === "move" ? "#1565c0" : m.kind === "detect" ? "#6a1b9a" : m.kind === "back" ? "#00838f" : "#c62828"} stroke-dasharray={m.kind === "detect" ? "3 2" : undefined} />
          <text x={Math.min(x(m.t) + 2, W - 230)} y={H - 44 + (i % 4) * 12} font-size="10" fill="#111">
            {m.label}
          </text>
        </g>
      ))}
    </svg>
  );
}

// ---- a live site ----

function LiveTimeline({ site }: { site: string }) {
  const l = useLive();
  const [events, setEvents] = useState<FleetEvent[]>([]);
  const [error, setError] = useState("");
  useEffect(() => {
    all<FleetEvent>(`/events?site=${encodeURIComponent(site)}`, 500, 20)
      .then((r) => setEvents(r.items))
      .catch((e: ApiError) => setError(e.message));
  }, [site]);
  const seen = new Set(events.map((e) => e.id));
  const merged = [...events, ...l.events.filter((e) => e.site === site && !seen.has(e.id)).reverse()].sort((a, b) => a.id - b.id);
  const now = Date.now() * 1e6;
  const t0 = Math.max(merged.length ? merged[0].unix_ns : now - 600e9, now - 3600e9);
  const lanes = new Map<string, Lane>();
  const open = new Map<string, Segment>();
  const marks: Mark[] = [];
  const rows: { t: number; what: string; detail: string }[] = [];
  for (const e of merged) {
    if (e.unix_ns < t0) continue;
    if (e.kind === "path.state" && e.path) {
      const lane = lanes.get(e.path) ?? { label: e.path, segments: [] };
      lanes.set(e.path, lane);
      const cur = open.get(e.path);
      if (cur) cur.to = e.unix_ns;
      else if (e.previous) lane.segments.push({ from: t0, to: e.unix_ns, state: e.previous });
      const seg = { from: e.unix_ns, to: now, state: e.state ?? "unknown" };
      lane.segments.push(seg);
      open.set(e.path, seg);
      if (e.state === "down") marks.push({ t: e.unix_ns, label: `${e.path.split("~")[0]} down`, kind: "detect" });
      rows.push({ t: e.unix_ns, what: `path ${e.state}`, detail: `${e.path} (was ${e.previous || "unknown"}), as the site reported it` });
    } else if (e.kind === "decision" && e.decision) {
      const d = e.decision;
      const back = d.reason.startsWith("failback");
      marks.push({ t: d.unix_ns, label: `${d.class_name} → ${d.remote_site}`, kind: back ? "back" : "move" });
      if (d.fault_age_ms !== null) {
        marks.push({ t: d.unix_ns - d.fault_age_ms * 1e6, label: "fault", kind: "fault" });
        rows.push({ t: d.unix_ns - d.fault_age_ms * 1e6, what: "fault began", detail: `${num(d.fault_age_ms, 0, " ms")} before the move below` });
      }
      rows.push({ t: d.unix_ns, what: back ? "failback" : "move", detail: `${d.class_name} to ${d.remote_site}: ${d.reason} — ${d.why}${d.flows_moved ? ` (${d.flows_moved} flows)` : ""}` });
    } else if (e.kind === "site.connected" || e.kind === "site.disconnected") {
      rows.push({ t: e.unix_ns, what: e.kind.replace("site.", "site "), detail: e.message ?? "" });
    }
  }
  rows.sort((a, b) => a.t - b.t);
  return (
    <>
      {error && <p role="alert" class="error">{error}</p>}
      <p class="hint">
        Times are the site's (decisions) and the controller's (path states). Traffic lost is not measured on a live site: the lab and the simulator
        measure it.
      </p>
      {lanes.size === 0 && marks.length === 0 ? (
        <p>No path state change or decision of {site} in the controller's events.</p>
      ) : (
        <TimeAxis lanes={[...lanes.values()]} marks={marks} t0={t0} t1={now} unit={(t) => clock(t).slice(11, 19)} />
      )}
      <table class="data" data-testid="timeline-rows">
        <thead>
          <tr>
            <th scope="col">Time</th>
            <th scope="col">What</th>
            <th scope="col">Detail</th>
          </tr>
        </thead>
        <tbody>
          {rows.slice(-200).map((r, i) => (
            <tr key={i}>
              <td>{clock(r.t, true)}</td>
              <td>{r.what}</td>
              <td>{r.detail}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}

// ---- a simulator report ----

interface SimFailover {
  at_s: number;
  failover_ms: number;
  fault: string;
  from_path: string;
  to_path: string;
  reason: string;
}
interface SimRun {
  scenario: string;
  variant: string | null;
  sim_seconds: number;
  faults: { action: string; at_s: number; until_s?: number; target: string; detected_ms?: Record<string, number> }[];
  flows: {
    name: string;
    class: string;
    from: string;
    to: string;
    lost_packets: number;
    sent_packets: number;
    failovers: SimFailover[];
    failbacks: { at_s: number; from_path: string; to_path: string }[];
  }[];
  variants?: SimRun[];
  expectations?: { expect: string; ok: boolean; detail: string }[];
}

// What the dashboard needs of a report, checked before it is drawn.
export function parseSimReport(text: string): SimRun {
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch {
    throw new Error("not JSON: open the file `patronus sim run SCENARIO --json` wrote");
  }
  const r = j as SimRun;
  if (typeof r !== "object" || r === null || typeof r.sim_seconds !== "number" || !Array.isArray(r.faults) || !Array.isArray(r.flows)) {
    throw new Error("not a simulator report: it needs sim_seconds, faults and flows (from `patronus sim run --json`)");
  }
  return r;
}

function SimTimeline({ run }: { run: SimRun }) {
  const lanes: Lane[] = [];
  const marks: Mark[] = [];
  const faults = run.faults.filter((f) => f.action !== "up");
  for (const f of faults) {
    // A fault lasts until its until_s, or until the same target's next "up", or the run's end.
    const up = run.faults.find((g) => g.action === "up" && g.target === f.target && g.at_s > f.at_s);
    lanes.push({ label: `${f.action} ${f.target}`, segments: [{ from: f.at_s, to: f.until_s ?? up?.at_s ?? run.sim_seconds, state: "fault" }] });
    marks.push({ t: f.at_s, label: `${f.action} ${f.target}`, kind: "fault" });
  }
  for (const fl of run.flows) {
    for (const b of fl.failbacks) marks.push({ t: b.at_s, label: `${fl.name} back`, kind: "back" });
  }
  // Each failover up close: the fault, its detection on each path, the move (milliseconds from
  // the fault).
  const closeUps = run.flows.flatMap((fl) =>
    fl.failovers.map((m) => {
      const f = faults.find((x) => m.fault.startsWith(x.target)) ?? faults.filter((x) => x.at_s <= m.at_s).pop();
      const t0 = f ? f.at_s : m.at_s - m.failover_ms / 1000;
      const zoom: Mark[] = [{ t: 0, label: f ? `${f.action} ${f.target}` : "fault", kind: "fault" }];
      for (const [path, ms] of Object.entries(f?.detected_ms ?? {})) zoom.push({ t: ms, label: `detected on ${path}`, kind: "detect" });
      zoom.push({ t: (m.at_s - t0) * 1000, label: `${fl.name} moved to ${m.to_path}`, kind: "move" });
      return { key: `${fl.name}@${m.at_s}`, title: `${fl.name}: ${m.fault}`, zoom, end: Math.max(...zoom.map((z) => z.t)) };
    }),
  );
  return (
    <section class="sim-run" aria-label={`Simulator run ${run.variant ?? "default settings"}`}>
      <h2>
        {run.scenario}: {run.variant ?? "our defaults"}
      </h2>
      <TimeAxis lanes={lanes} marks={marks} t0={0} t1={run.sim_seconds} unit={(t) => `${t.toFixed(0)} s`} />
      {closeUps.map((c) => (
        <figure key={c.key} class="closeup">
          <figcaption>{c.title}: milliseconds from the fault</figcaption>
          <TimeAxis lanes={[]} marks={c.zoom} t0={-0.1 * c.end} t1={c.end * 1.25} unit={(t) => `${t.toFixed(0)} ms`} />
        </figure>
      ))}
      <table class="data" data-testid="sim-flows">
        <thead>
          <tr>
            <th scope="col">Flow</th>
            <th scope="col">Fault</th>
            <th scope="col">Moved at</th>
            <th scope="col">Failover time</th>
            <th scope="col">From → to</th>
            <th scope="col">Packets lost (whole run)</th>
          </tr>
        </thead>
        <tbody>
          {run.flows.flatMap((fl) =>
            [...(fl.failovers.length ? fl.failovers : [null]), ...fl.failbacks.map((b) => ({ ...b, back: true }))].map((m, i) =>
              m && "back" in m ? (
                <tr key={`${fl.name}-b${i}`}>
                  <td>
                    {fl.name} ({fl.class}, {fl.from} → {fl.to})
                  </td>
                  <td>failback</td>
                  <td>{`${m.at_s.toFixed(3)} s`}</td>
                  <td>–</td>
                  <td>{`${m.from_path} → ${m.to_path}`}</td>
                  <td>
                    {fl.lost_packets} of {fl.sent_packets}
                  </td>
                </tr>
              ) : (
              <tr key={`${fl.name}-${i}`}>
                <td>
                  {fl.name} ({fl.class}, {fl.from} → {fl.to})
                </td>
                <td>{m ? m.fault.replace(/(\d+\.\d{3})\d+/, "$1 s") : "none"}</td>
                <td>{m ? `${m.at_s.toFixed(3)} s` : "–"}</td>
                <td>{m ? `${m.failover_ms.toFixed(1)} ms` : "–"}</td>
                <td>{m ? `${m.from_path} → ${m.to_path}` : "–"}</td>
                <td>
                  {fl.lost_packets} of {fl.sent_packets}
                </td>
              </tr>
              ),
            ),
          )}
        </tbody>
      </table>
      {run.expectations && run.expectations.length > 0 && (
        <table class="data">
          <caption>The scenario's expectations</caption>
          <thead>
            <tr>
              <th scope="col">Expected</th>
              <th scope="col">Met</th>
              <th scope="col">Measured</th>
            </tr>
          </thead>
          <tbody>
            {run.expectations.map((e, i) => (
              <tr key={i}>
                <td>
                  <code>{e.expect}</code>
                </td>
                <td>
                  <span class={`state state-${e.ok ? "up" : "down"}`}>{e.ok ? "yes" : "no"}</span>
                </td>
                <td>{e.detail}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

export function Timeline({ query }: { query: URLSearchParams }) {
  const l = useLive();
  const site = query.get("site") ?? "";
  const [report, setReport] = useState<SimRun | null>(null);
  const [error, setError] = useState("");
  const open = async (e: Event) => {
    const f = (e.currentTarget as HTMLInputElement).files?.[0];
    if (!f) return;
    try {
      setReport(parseSimReport(await f.text()));
      setError("");
    } catch (x) {
      setReport(null);
      setError((x as Error).message);
    }
  };
  return (
    <section aria-labelledby="tl-h">
      <h1 id="tl-h">Failover timeline</h1>
      <form class="inline" onSubmit={(e) => e.preventDefault()}>
        <Choice
          label="Live site"
          value={site}
          options={[...l.fleet.sites.keys()].sort()}
          none="choose a site"
          onChange={(v) => (location.hash = `#/timeline?site=${encodeURIComponent(v)}`)}
        />
        <label>
          Or a simulator report (sim run --json)
          <input type="file" accept=".json,application/json" data-testid="sim-file" onChange={open} />
        </label>
      </form>
      {error && <p role="alert" class="error">{error}</p>}
      {report ? (
        <div data-testid="sim-report">
          {[report, ...(report.variants ?? [])].map((r, i) => (
            <SimTimeline key={i} run={r} />
          ))}
        </div>
      ) : site && !error ? (
        <LiveTimeline key={site} site={site} />
      ) : (
        <p>Choose a live site, or open a simulator report.</p>
      )}
    </section>
  );
}
