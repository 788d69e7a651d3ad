// One site: its state and config version, its paths with quality, tunnels and liveness (BFD)
// sessions, each class's current path, and its paths' quality over the last reports.
import { useEffect, useMemo, useState } from "preact/hooks";
import { ApiError, get, Path, PathHistory, Selection } from "../api";
import { ago, bytes, num, pathState, useLive } from "../live";
import { Chart, Series } from "./Chart";
import { siteState } from "./FleetMap";

function SiteList() {
  const l = useLive();
  const sites = [...l.fleet.sites.values()].sort((a, b) => a.name.localeCompare(b.name));
  return (
    <section aria-labelledby="sites-h">
      <h1 id="sites-h">Sites</h1>
      <table class="data" data-testid="site-list">
        <thead>
          <tr>
            <th scope="col">Site</th>
            <th scope="col">State</th>
            <th scope="col">Endpoints</th>
            <th scope="col">Paths up / degraded / down</th>
            <th scope="col">Last report</th>
          </tr>
        </thead>
        <tbody>
          {sites.slice(0, 500).map((s) => (
            <tr key={s.name}>
              <td>
                <a href={`#/sites/${encodeURIComponent(s.name)}`}>{s.name}</a>
              </td>
              <td>
                <span class={`state state-${siteState(s)}`}>{!s.enrolled ? "not enrolled" : s.connected ? siteState(s) : "disconnected"}</span>
              </td>
              <td>{s.endpoints.map((e) => e.name).join(", ")}</td>
              <td>
                {s.paths_up} / {s.paths_degraded} / {s.paths_down}
              </td>
              <td>{ago(s.last_seen_unix_ns)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {sites.length > 500 && <p class="hint">The first 500; the fleet map's filter finds any site.</p>}
    </section>
  );
}

export function SiteView({ name }: { name: string }) {
  if (!name) return <SiteList />;
  return <OneSite key={name} name={name} />;
}

function OneSite({ name }: { name: string }) {
  const l = useLive();
  const site = l.fleet.sites.get(name);
  const [history, setHistory] = useState<PathHistory | null>(null);
  const [selections, setSelections] = useState<Selection[]>([]);
  const [error, setError] = useState("");
  const paths: Path[] = [...l.fleet.paths.values()].filter((p) => p.site === name).sort((a, b) => a.name.localeCompare(b.name));
  // Refetched on every path state change of this site and every 5 s (the site reports every
  // report_interval_ms, 5 s by default).
  const stamp = paths.map((p) => `${p.name}=${p.state}`).join(",");
  const known = !!site;
  useEffect(() => {
    if (!known) return; // nothing to ask about a site the fleet does not have
    let stop = false;
    const load = () =>
      Promise.all([get<PathHistory>(`/sites/${encodeURIComponent(name)}/path-history`), get<{ items: Selection[] }>(`/sites/${encodeURIComponent(name)}/selections`)])
        .then(([h, s]) => {
          if (stop) return;
          setHistory(h);
          setSelections(s.items);
          setError("");
        })
        .catch((e: ApiError) => !stop && setError(e.message));
    void load();
    const t = setInterval(load, 5000);
    return () => {
      stop = true;
      clearInterval(t);
    };
  }, [name, stamp, known]);
  const series = useMemo(() => {
    const pick = (k: "rtt_ms" | "jitter_ms" | "loss_pct" | "score"): Series[] =>
      (history?.paths ?? []).map((p) => ({
        label: p.name.replace(`${name}:`, ""),
        points: p.samples.map((s) => [s.unix_ns / 1e9, s[k]] as [number, number | null]),
      }));
    return { rtt: pick("rtt_ms"), jitter: pick("jitter_ms"), loss: pick("loss_pct"), score: pick("score") };
  }, [history, name]);
  if (!site) {
    return (
      <section>
        <h1>Site {name}</h1>
        <p role="alert">{l.fleet.loadedAt ? `No site named ${name}.` : "Loading…"}</p>
      </section>
    );
  }
  const byId = new Map(paths.map((p) => [p.id, p]));
  return (
    <section aria-labelledby="site-h">
      <h1 id="site-h">
        Site {name}{" "}
        <span class={`state state-${siteState(site)}`}>
          {!site.enrolled
            ? "not enrolled"
            : !site.connected
              ? "disconnected"
              : site.paths_down || site.paths_degraded
                ? `${site.paths_down} of ${site.paths_up + site.paths_degraded + site.paths_down} paths down, ${site.paths_degraded} degraded`
                : "every path up"}
        </span>
      </h1>
      {error && <p role="alert" class="error">{error}</p>}
      <dl class="facts">
        <dt>Connected</dt>
        <dd>{site.connected ? `yes, last report ${ago(site.last_seen_unix_ns)}` : site.last_seen_unix_ns ? `no (last seen ${ago(site.last_seen_unix_ns)})` : "never"}</dd>
        <dt>Enrolment</dt>
        <dd>
          {!site.enrolled ? (
            <>
              not enrolled yet ({site.tokens} {site.tokens === 1 ? "token" : "tokens"} outstanding): <a href="#/enrolment">Enrolment</a>
            </>
          ) : site.approved ? (
            "enrolled and approved"
          ) : (
            <>
              enrolled, waiting for approval: <a href="#/enrolment">Enrolment</a>
            </>
          )}
        </dd>
        <dt>Config</dt>
        <dd>
          {site.version === 0 ? "none sent yet" : `sent v${site.version}, runs ${site.applied_version ? `v${site.applied_version}` : "none yet"}`}
          {site.drift && <strong> — drift</strong>}
          {site.last_error && ` — last apply failed: ${site.last_error}`}
        </dd>
        <dt>Endpoints</dt>
        <dd>{site.endpoints.map((e) => `${e.name} ${e.address} (${e.type})`).join(", ")}</dd>
        <dt>Subnets</dt>
        <dd>{site.subnets.join(", ") || "none"}</dd>
        {site.rotation && (
          <>
            <dt>Key rotation</dt>
            <dd>{site.rotation}</dd>
          </>
        )}
      </dl>
      <h2>Paths</h2>
      <div class="scroll">
        <table class="data" data-testid="site-paths">
          <thead>
            <tr>
              <th scope="col">Path</th>
              <th scope="col">State</th>
              <th scope="col">RTT</th>
              <th scope="col">Jitter</th>
              <th scope="col">Loss</th>
              <th scope="col">Score</th>
              <th scope="col">Tunnel handshake</th>
              <th scope="col">Tunnel bytes in / out</th>
              <th scope="col">Liveness sessions (BFD)</th>
            </tr>
          </thead>
          <tbody>
            {paths.map((p) => (
              <tr key={p.name} data-path={p.name} data-state={pathState(p)}>
                <td>{p.name}</td>
                <td>
                  <span class={`state state-${pathState(p)}`}>{p.state}</span>
                </td>
                <td>{num(p.rtt_ms, 2, " ms")}</td>
                <td>{num(p.jitter_ms, 2, " ms")}</td>
                <td>{num(p.loss_pct, 2, " %")}</td>
                <td>{num(p.score, 1)}</td>
                <td>
                  {!p.tunnel
                    ? "no transport report"
                    : p.tunnel.handshake_age_s === null
                      ? `never${p.tunnel.diagnostic ? ` (${p.tunnel.diagnostic})` : ""}`
                      : `${p.tunnel.handshake_age_s.toFixed(0)} s ago${p.tunnel.up ? "" : ` — down: ${p.tunnel.diagnostic}`}`}
                </td>
                <td>{p.tunnel ? `${bytes(p.tunnel.rx_bytes)} / ${bytes(p.tunnel.tx_bytes)}` : "–"}</td>
                <td>
                  {p.liveness.length === 0
                    ? "none"
                    : p.liveness.map((s) => `${s.instance}: ${s.up ? "up" : `down (${s.diagnostic})`}, detect ${s.detect_time_ms.toFixed(0)} ms`).join("; ")}
                </td>
              </tr>
            ))}
            {paths.length === 0 && (
              <tr>
                <td colSpan={9}>no paths reported</td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
      <h2>Classes</h2>
      <table class="data" data-testid="site-classes">
        <thead>
          <tr>
            <th scope="col">Class</th>
            <th scope="col">To site</th>
            <th scope="col">Current path</th>
            <th scope="col">Why</th>
          </tr>
        </thead>
        <tbody>
          {selections.map((s) => (
            <tr key={`${s.class_name}|${s.remote_site}`}>
              <td>{s.class_name}</td>
              <td>{s.remote_site}</td>
              <td>{s.path ? (s.path_name ?? byId.get(s.path)?.name ?? `#${s.path}`) : "none"}</td>
              <td>
                <a href={`#/why?site=${encodeURIComponent(name)}&class=${encodeURIComponent(s.class_name)}&to=${encodeURIComponent(s.remote_site)}`}>
                  {s.reason || "why this path"}
                </a>
              </td>
            </tr>
          ))}
          {selections.length === 0 && (
            <tr>
              <td colSpan={4}>no class selections reported</td>
            </tr>
          )}
        </tbody>
      </table>
      <h2>Quality over the last reports</h2>
      {!(history?.paths ?? []).some((p) => p.samples.length > 0) && (
        <p class="hint">No reports yet: the charts fill as the site reports (every report_interval_ms, 5 s by default).</p>
      )}
      <div class="charts">
        <Chart title="Round-trip time" unit="ms" series={series.rtt} />
        <Chart title="Jitter" unit="ms" series={series.jitter} />
        <Chart title="Loss" unit="%" series={series.loss} />
        <Chart title="Score" unit="score" series={series.score} />
      </div>
      <p>
        <a href={`#/timeline?site=${encodeURIComponent(name)}`}>Failover timeline of {name}</a>
      </p>
    </section>
  );
}
