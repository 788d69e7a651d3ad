// The fleet's configuration: topology, classes and rules, plugin settings, NetworkPolicies (with
// the API's validation errors on the fields) and the reachability matrix the policy engine
// computes. Writes carry the ETag they were read with (If-Match): another operator's change in
// between is refused, not overwritten.
import { useEffect, useState } from "preact/hooks";
import { ApiError, atLeast, call, FieldError, get } from "../api";

const TABS = [
  ["topology", "Topology"],
  ["classes", "Classes and rules"],
  ["plugins", "Plugin settings"],
  ["policies", "NetworkPolicies"],
  ["reachability", "Reachability"],
] as const;

// The message without what the list already says: the field's name in front of it (and, for a
// manifest, which document of the body it was in).
export function fieldMessage(e: FieldError): string {
  const at = e.field ? e.message.lastIndexOf(`${e.field}: `) : -1;
  return at >= 0 ? e.message.slice(at + e.field.length + 2) : e.message;
}

function ReadOnly() {
  return atLeast("operator") ? null : <p class="hint">Read-only: changing the configuration needs the operator role.</p>;
}

function Errors({ error }: { error: ApiError | null }) {
  if (!error) return null;
  return (
    <div role="alert" class="error" data-testid="errors">
      <p>{error.errors.length > 0 ? `Refused (${error.status}): nothing was changed. Fix:` : error.message}</p>
      {error.errors.length > 0 && (
        <ul>
          {error.errors.map((e: FieldError, i) => (
            <li key={i} data-field={e.field}>
              <code>{e.field || "(the whole document)"}</code>: {fieldMessage(e)}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

// Reads `path` with its ETag; `save` sends the edit with If-Match.
function useDoc<T>(path: string) {
  const [doc, setDoc] = useState<T | null>(null);
  const [etag, setEtag] = useState<string | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const load = () =>
    call<T>("GET", path)
      .then((r) => {
        setDoc(r.body);
        setEtag(r.etag);
      })
      .catch((e: ApiError) => setError(e));
  useEffect(() => {
    void load();
  }, [path]);
  // A change: the API's refusal shown on the form, or what it did said and the document read again.
  const [saved, setSaved] = useState("");
  const act = async (change: () => Promise<string>) => {
    setError(null);
    setSaved("");
    try {
      setSaved(await change());
      await load();
    } catch (x) {
      setError(x as ApiError);
    }
  };
  return { doc, etag, error, setError, saved, act };
}

function Topology() {
  const { doc, etag, error, saved, act } = useDoc<{ topology: string; hubs: string[]; k: number }>("/topology");
  const [kind, setKind] = useState("");
  const [hubs, setHubs] = useState("");
  const [k, setK] = useState(0);
  useEffect(() => {
    if (doc) {
      setKind(doc.topology);
      setHubs(doc.hubs.join(", "));
      setK(doc.k);
    }
  }, [doc]);
  if (!doc) return <Errors error={error} />;
  const edit = atLeast("operator");
  const save = async (e: Event) => {
    e.preventDefault();
    await act(async () => {
      const list = hubs.split(/[\s,]+/).filter(Boolean);
      const body: Record<string, unknown> = { topology: kind, hubs: kind === "hub-spoke" ? list : [] };
      if (kind === "partial") body.k = k;
      await call("PUT", "/topology", { body, ifMatch: etag });
      return "Saved: the sites get their new configs now.";
    });
  };
  return (
    <>
      <ReadOnly />
      <form onSubmit={save} class="stack" data-testid="topology-form">
        <fieldset disabled={!edit}>
          <legend>Topology</legend>
          <label>
            Kind
            <select value={kind} onChange={(e) => setKind(e.currentTarget.value)} aria-invalid={!!error?.on("topology")}>
              {["full-mesh", "hub-spoke", "partial"].map((x) => (
                <option key={x} value={x}>
                  {x}
                </option>
              ))}
              {doc.topology === "explicit" && <option value="explicit">explicit (its links: below)</option>}
            </select>
          </label>
          {kind === "hub-spoke" && (
            <label>
              Hubs (site names, comma-separated)
              <input value={hubs} onInput={(e) => setHubs(e.currentTarget.value)} aria-invalid={!!error?.on("hubs")} />
            </label>
          )}
          {kind === "partial" && (
            <label>
              Peers per site (1-64; 0: the default, 2)
              <input type="number" min={0} max={64} value={k} onInput={(e) => setK(Number(e.currentTarget.value))} aria-invalid={!!error?.on("k")} />
            </label>
          )}
          <p class="hint">
            An explicit topology (the site pairs that have paths) is set with <code>patronus controller topology set explicit -f FILE</code> or{" "}
            <code>PUT /api/v1/topology</code> with <code>links</code>; overlay addresses and endpoint rules the same way.
          </p>
          {edit && <button type="submit">Save topology</button>}
        </fieldset>
      </form>
      {saved && <p class="ok">{saved}</p>}
      <Errors error={error} />
      <h2>As stored</h2>
      <pre class="doc">{JSON.stringify(doc, null, 2)}</pre>
    </>
  );
}

export function bound(what: string, v: unknown, unit: string): string {
  return v === null || v === undefined ? `${what}: no bound` : `${what} ≤ ${String(v)} ${unit}`;
}

function Classes() {
  const { doc, etag, error, setError, saved, act } = useDoc<{ given: boolean; classes: unknown[]; rules: unknown[]; default_class: string }>(
    "/classes",
  );
  const [text, setText] = useState("");
  useEffect(() => {
    if (doc) setText(JSON.stringify({ classes: doc.classes, rules: doc.rules, default_class: doc.default_class }, null, 2));
  }, [doc]);
  if (!doc) return <Errors error={error} />;
  const edit = atLeast("operator");
  const save = async (e: Event) => {
    e.preventDefault();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch (x) {
      setError(new ApiError(422, `not JSON: ${(x as Error).message}`));
      return;
    }
    await act(async () => {
      await call("PUT", "/classes", { body, ifMatch: etag });
      return "Saved.";
    });
  };
  return (
    <>
      <ReadOnly />
      <p>{doc.given ? "The fleet's classes: every site steers by these." : "No fleet classes: every site keeps the classes of its own file."}</p>
      <table class="data">
        <caption>Classes</caption>
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Priority</th>
            <th scope="col">Bounds</th>
          </tr>
        </thead>
        <tbody>
          {(doc.classes as Record<string, unknown>[]).map((c) => (
            <tr key={String(c.name)}>
              <td>{String(c.name)}</td>
              <td>{String(c.priority ?? "")}</td>
              <td>
                {bound("latency", c.max_latency_ms, "ms")}, {bound("jitter", c.max_jitter_ms, "ms")}, {bound("loss", c.max_loss_pct, "%")}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <form onSubmit={save} class="stack">
        <label>
          <span>
            Classes and rules (JSON, as <code>PUT /api/v1/classes</code> takes them)
          </span>
          <textarea rows={14} value={text} readOnly={!edit} onInput={(e) => setText(e.currentTarget.value)} aria-invalid={!!error} />
        </label>
        {edit && <button type="submit">Save classes</button>}
      </form>
      {saved && <p class="ok">{saved}</p>}
      <Errors error={error} />
    </>
  );
}

function Plugins() {
  const { doc, error, saved, act } = useDoc<{ items: { instance: string; plugin: string; site: string; yaml: string }[] }>("/plugins");
  if (!doc) return <Errors error={error} />;
  const remove = (instance: string, site: string) =>
    act(async () => {
      await call("DELETE", `/plugins/${encodeURIComponent(instance)}${site ? `?site=${encodeURIComponent(site)}` : ""}`);
      return `${instance} removed.`;
    });
  return (
    <>
      <p class="hint">
        Settings are set with <code>patronus controller plugins set</code>, which encodes them with the plugin's own schema (the controller does not load
        plugins).
      </p>
      <table class="data">
        <thead>
          <tr>
            <th scope="col">Instance</th>
            <th scope="col">Plugin</th>
            <th scope="col">Sites</th>
            <th scope="col">Settings</th>
            {atLeast("operator") && <th scope="col">Action</th>}
          </tr>
        </thead>
        <tbody>
          {doc.items.map((p) => (
            <tr key={`${p.instance}|${p.site}`}>
              <td>{p.instance}</td>
              <td>{p.plugin}</td>
              <td>{p.site || "every site"}</td>
              <td>
                <pre class="doc">{p.yaml}</pre>
              </td>
              {atLeast("operator") && (
                <td>
                  <button type="button" class="danger" onClick={() => remove(p.instance, p.site)}>
                    Remove {p.instance}
                  </button>
                </td>
              )}
            </tr>
          ))}
          {doc.items.length === 0 && (
            <tr>
              <td colSpan={5}>no plugin settings from the controller</td>
            </tr>
          )}
        </tbody>
      </table>
      {saved && <p class="ok">{saved}</p>}
      <Errors error={error} />
    </>
  );
}

const EXAMPLE = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: web-from-frontend
  namespace: default
spec:
  podSelector:
    matchLabels: {app: web}
  ingress:
  - from:
    - podSelector:
        matchLabels: {app: frontend}
    ports:
    - {protocol: TCP, port: 80}
`;

function Policies() {
  const { doc, etag, error, saved, act } = useDoc<{ items: { namespace: string; name: string; enabled: boolean; priority: number; spec: unknown }[] }>(
    "/policies",
  );
  const [text, setText] = useState(EXAMPLE);
  if (!doc) return <Errors error={error} />;
  const edit = atLeast("operator");
  const apply = async (e: Event) => {
    e.preventDefault();
    await act(async () => {
      const r = await call<{ items: unknown[] }>("POST", "/policies", { body: text, contentType: "application/yaml", ifMatch: etag });
      return `Applied: the fleet has ${r.body.items.length} ${r.body.items.length === 1 ? "policy" : "policies"}.`;
    });
  };
  const remove = (ns: string, name: string) =>
    act(async () => {
      await call("DELETE", `/policies/${encodeURIComponent(ns)}/${encodeURIComponent(name)}`, { ifMatch: etag });
      return `${ns}/${name} removed.`;
    });
  return (
    <>
      <table class="data" data-testid="policies">
        <thead>
          <tr>
            <th scope="col">Namespace</th>
            <th scope="col">Name</th>
            <th scope="col">Enabled</th>
            <th scope="col">Spec</th>
            {edit && <th scope="col">Action</th>}
          </tr>
        </thead>
        <tbody>
          {doc.items.map((p) => (
            <tr key={`${p.namespace}/${p.name}`}>
              <td>{p.namespace}</td>
              <td>{p.name}</td>
              <td>{p.enabled ? "yes" : "no"}</td>
              <td>
                <pre class="doc">{JSON.stringify(p.spec)}</pre>
              </td>
              {edit && (
                <td>
                  <button type="button" class="danger" onClick={() => remove(p.namespace, p.name)}>
                    Remove {p.namespace}/{p.name}
                  </button>
                </td>
              )}
            </tr>
          ))}
          {doc.items.length === 0 && (
            <tr>
              <td colSpan={5}>no fleet policies</td>
            </tr>
          )}
        </tbody>
      </table>
      {edit && (
        <form onSubmit={apply} class="stack" data-testid="policy-form">
          <label>
            <span>
              NetworkPolicy manifests (YAML; what <code>kubectl apply</code> and <code>patronus policy apply</code> take)
            </span>
            <textarea
              name="policy"
              rows={16}
              value={text}
              onInput={(e) => setText(e.currentTarget.value)}
              aria-invalid={!!error}
              aria-describedby={error ? "policy-errors" : undefined}
            />
          </label>
          <button type="submit">Apply policies</button>
        </form>
      )}
      {saved && <p class="ok">{saved}</p>}
      <div id="policy-errors">
        <Errors error={error} />
      </div>
    </>
  );
}

function Reachability() {
  const [probe, setProbe] = useState("tcp/80");
  const [m, setM] = useState<{ probe: string; pods: string[]; allowed: boolean[][] } | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const load = (p: string) =>
    get<{ probe: string; pods: string[]; allowed: boolean[][] }>(`/policies/reachability?probe=${encodeURIComponent(p)}`)
      .then((r) => {
        setM(r);
        setError(null);
      })
      .catch((e: ApiError) => setError(e));
  useEffect(() => {
    void load(probe);
  }, []);
  return (
    <>
      <form
        class="inline"
        onSubmit={(e) => {
          e.preventDefault();
          void load(probe);
        }}
      >
        <label>
          Probe (protocol/port or protocol/port-name)
          <input value={probe} onInput={(e) => setProbe(e.currentTarget.value)} aria-invalid={!!error?.on("probe")} />
        </label>
        <button type="submit">Compute</button>
      </form>
      <Errors error={error} />
      {m && m.pods.length === 0 && (
        <p>
          The fleet's inventory has no pods. Give it the Namespace and Pod manifests the policies select from with{" "}
          <code>patronus controller policy inventory -f FILE</code> or <code>PUT /api/v1/inventory</code>.
        </p>
      )}
      {m && m.pods.length > 0 && (
        <div class="scroll">
          <table class="matrix" data-testid="matrix">
            <caption>
              {m.probe}: rows may connect to columns (✓ allowed, ✗ denied)
            </caption>
            <thead>
              <tr>
                <td />
                {m.pods.map((p) => (
                  <th key={p} scope="col">
                    {p}
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {m.allowed.map((row, i) => (
                <tr key={m.pods[i]}>
                  <th scope="row">{m.pods[i]}</th>
                  {row.map((ok, j) => (
                    <td key={j} class={ok ? "allow" : "deny"} aria-label={`${m.pods[i]} to ${m.pods[j]}: ${ok ? "allowed" : "denied"}`}>
                      {ok ? "✓" : "✗"}
                    </td>
                  ))}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </>
  );
}

export function Config({ tab }: { tab: string }) {
  return (
    <section aria-labelledby="cfg-h">
      <h1 id="cfg-h">Configuration</h1>
      <nav aria-label="Configuration sections" class="tabs">
        {TABS.map(([id, label]) => (
          <a key={id} href={`#/config/${id}`} aria-current={tab === id ? "page" : undefined}>
            {label}
          </a>
        ))}
      </nav>
      {tab === "topology" && <Topology />}
      {tab === "classes" && <Classes />}
      {tab === "plugins" && <Plugins />}
      {tab === "policies" && <Policies />}
      {tab === "reachability" && <Reachability />}
    </section>
  );
}
