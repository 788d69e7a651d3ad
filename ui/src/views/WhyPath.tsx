// Why a class is on its path: the site's decision log for one class and destination, newest
// first, each with the candidates the runtime weighed, their scores, and why each was or was not
// eligible. New decisions arrive live.
import { useEffect, useState } from "preact/hooks";
import { all, ApiError, Decision, get } from "../api";
import { clock, num, useLive } from "../live";
import { Choice } from "./Choice";

export function WhyPath({ query }: { query: URLSearchParams }) {
  const l = useLive();
  const site = query.get("site") ?? "";
  const cls = query.get("class") ?? "";
  const to = query.get("to") ?? "";
  const [loaded, setLoaded] = useState<Decision[]>([]);
  const [bounds, setBounds] = useState<Record<string, Record<string, unknown>>>({});
  useEffect(() => {
    // The fleet's classes, for their thresholds (none when every site keeps its own classes).
    get<{ given: boolean; classes: Record<string, unknown>[] }>("/classes")
      .then((c) => setBounds(Object.fromEntries((c.given ? c.classes : []).map((x) => [String(x.name), x]))))
      .catch(() => undefined);
  }, []);
  const [error, setError] = useState("");
  useEffect(() => {
    if (!site) return;
    all<Decision>(`/decisions?site=${encodeURIComponent(site)}`, 500, 2)
      .then((r) => setLoaded(r.items))
      .catch((e: ApiError) => setError(e.message));
  }, [site]);
  // Live decisions first, then the loaded log (the same decision may be in both).
  const seen = new Set<string>();
  const decisions = [...l.decisions(), ...loaded].filter((d) => {
    const k = `${d.site}|${d.unix_ns}|${d.class_name}|${d.remote_site}`;
    if (d.site !== site || seen.has(k)) return false;
    seen.add(k);
    return (!cls || d.class_name === cls) && (!to || d.remote_site === to);
  });
  const names = new Map([...l.fleet.paths.values()].filter((p) => p.site === site).map((p) => [p.id, p.name]));
  const pathName = (id: number) => (id ? (names.get(id) ?? `path ${id}`) : "none");
  const classes = [
    ...new Set([...Object.keys(bounds), ...[...l.decisions(), ...loaded].filter((d) => d.site === site).map((d) => d.class_name)]),
  ].sort();
  const go = (k: string, v: string) => {
    const q = new URLSearchParams(query);
    if (v) q.set(k, v);
    else q.delete(k);
    location.hash = `#/why?${q}`;
  };
  return (
    <section aria-labelledby="why-h">
      <h1 id="why-h">Why this path</h1>
      <form class="inline" onSubmit={(e) => e.preventDefault()}>
        <Choice label="Site" value={site} options={[...l.fleet.sites.keys()].sort()} none="choose a site" onChange={(v) => go("site", v)} />
        <Choice label="Class" value={cls} options={classes} none="every class" onChange={(v) => go("class", v)} />
        <Choice
          label="To site"
          value={to}
          options={[...l.fleet.sites.keys()].filter((s) => s !== site).sort()}
          none="every site"
          onChange={(v) => go("to", v)}
        />
      </form>
      {error && <p role="alert" class="error">{error}</p>}
      {!site && <p>Choose a site to read its decisions.</p>}
      {site && decisions.length === 0 && (
        <p>
          {l.fleet.sites.get(site)?.connected === false && !l.fleet.sites.get(site)?.last_seen_unix_ns
            ? `${site} has never connected: it has made no decision yet.`
            : "No decision recorded for this choice (the controller keeps each site's last 256)."}
        </p>
      )}
      <ol class="decisions" data-testid="decisions">
        {decisions.slice(0, 50).map((d) => (
          <li key={`${d.unix_ns}|${d.class_name}|${d.remote_site}`} class="decision" data-reason={d.reason} data-unix-ns={d.unix_ns}>
            <h2>
              {clock(d.unix_ns, true)} — {d.class_name} to {d.remote_site}: {pathName(d.from_path)} → {pathName(d.to_path)}
            </h2>
            <p>
              <strong class="reason">{d.reason}</strong>: {d.why}
              {d.fault_age_ms !== null && ` (the fault had lasted ${num(d.fault_age_ms, 0, " ms")})`}
              {d.flows_moved > 0 && `; ${d.flows_moved} flows moved`}
            </p>
            {bounds[d.class_name] && (
              <p class="hint">
                Thresholds of {d.class_name}: latency ≤ {String(bounds[d.class_name].max_latency_ms ?? "–")} ms, jitter ≤{" "}
                {String(bounds[d.class_name].max_jitter_ms ?? "–")} ms, loss ≤ {String(bounds[d.class_name].max_loss_pct ?? "–")} %, score ≥{" "}
                {String(bounds[d.class_name].min_score ?? "–")}, hysteresis {String(bounds[d.class_name].hysteresis ?? "–")}, hold-down{" "}
                {String(bounds[d.class_name].hold_down_ms ?? "–")} ms
              </p>
            )}
            {d.candidates.length > 0 && (
              <table class="data">
                <caption>Candidates</caption>
                <thead>
                  <tr>
                    <th scope="col">Path</th>
                    <th scope="col">Score</th>
                    <th scope="col">Eligible</th>
                    <th scope="col">Why not</th>
                  </tr>
                </thead>
                <tbody>
                  {[...d.candidates]
                    .sort((a, b) => Number(b.eligible) - Number(a.eligible) || b.score - a.score)
                    .map((c) => (
                      <tr key={c.path} class={c.path === d.to_path ? "chosen" : undefined}>
                        <td>
                          {pathName(c.path)}
                          {c.path === d.to_path && " (chosen)"}
                        </td>
                        <td>{c.score.toFixed(1)}</td>
                        <td>{c.eligible ? "yes" : "no"}</td>
                        <td>{c.why_not || (c.path === d.to_path ? "best eligible" : "eligible, scored lower or within the hysteresis")}</td>
                      </tr>
                    ))}
                </tbody>
              </table>
            )}
          </li>
        ))}
      </ol>
    </section>
  );
}
