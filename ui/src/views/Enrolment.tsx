// Enrolment: sites waiting for an operator's approval, and enrolment tokens for sites that have
// not enrolled yet (made, shown once, revoked).
import { useState } from "preact/hooks";
import { ApiError, atLeast, call } from "../api";
import { clock, live, useLive } from "../live";

export function Enrolment() {
  const l = useLive();
  const [message, setMessage] = useState("");
  const [error, setError] = useState("");
  const [token, setToken] = useState<{ site: string; token: string; expires: number } | null>(null);
  const [ttlH, setTtlH] = useState(24);
  const canEdit = atLeast("operator");
  const sites = [...l.fleet.sites.values()].sort((a, b) => a.name.localeCompare(b.name));
  const pending = sites.filter((s) => s.enrolled && !s.approved);
  const waiting = sites.filter((s) => !s.enrolled);
  const act = async (what: () => Promise<string>) => {
    setError("");
    setMessage("");
    try {
      setMessage(await what());
      await live.load();
    } catch (e) {
      setError((e as ApiError).message);
    }
  };
  const approve = (name: string) =>
    act(async () => {
      await call("POST", `/sites/${encodeURIComponent(name)}/approve`);
      return `${name} approved: it gets its configuration now.`;
    });
  const makeToken = (name: string) =>
    act(async () => {
      const r = await call<{ site: string; token: string; expires_unix_ns: number }>("POST", `/sites/${encodeURIComponent(name)}/enrolment-tokens`, {
        body: { ttl_s: ttlH * 3600 },
      });
      setToken({ site: name, token: r.body.token, expires: r.body.expires_unix_ns });
      return `A token for ${name}, valid ${ttlH} h. It is shown once.`;
    });
  const revoke = (name: string) =>
    act(async () => {
      await call("DELETE", `/sites/${encodeURIComponent(name)}/enrolment-tokens`);
      if (token?.site === name) setToken(null);
      return `Every outstanding token of ${name} is revoked.`;
    });
  return (
    <section aria-labelledby="enr-h">
      <h1 id="enr-h">Enrolment</h1>
      {!canEdit && <p class="hint">You can read this page; approving and tokens need the operator role.</p>}
      <div aria-live="polite">
        {message && <p class="ok">{message}</p>}
        {error && (
          <p role="alert" class="error">
            {error}
          </p>
        )}
      </div>
      {token && (
        <div class="secret" data-testid="new-token">
          <p>
            Token for <strong>{token.site}</strong> (put it in the site's <code>controller.token_file</code>; it expires {clock(token.expires)}):
          </p>
          <code class="token">{token.token}</code>
        </div>
      )}
      <h2>Waiting for approval</h2>
      <table class="data" data-testid="pending">
        <thead>
          <tr>
            <th scope="col">Site</th>
            <th scope="col">Endpoints</th>
            <th scope="col">Connected</th>
            <th scope="col">Action</th>
          </tr>
        </thead>
        <tbody>
          {pending.map((s) => (
            <tr key={s.name} data-site={s.name}>
              <td>{s.name}</td>
              <td>{s.endpoints.map((e) => `${e.name} ${e.address}`).join(", ")}</td>
              <td>{s.connected ? "yes" : "no"}</td>
              <td>
                {canEdit && (
                  <button type="button" onClick={() => approve(s.name)}>
                    Approve {s.name}
                  </button>
                )}
              </td>
            </tr>
          ))}
          {pending.length === 0 && (
            <tr>
              <td colSpan={4}>no site is waiting</td>
            </tr>
          )}
        </tbody>
      </table>
      <h2>Not enrolled yet</h2>
      {canEdit && (
        <label class="filter">
          New tokens are valid for (hours)
          <input type="number" min={1} max={8760} value={ttlH} onInput={(e) => setTtlH(Math.max(1, Number(e.currentTarget.value) || 24))} />
        </label>
      )}
      <table class="data" data-testid="not-enrolled">
        <thead>
          <tr>
            <th scope="col">Site</th>
            <th scope="col">Tokens outstanding</th>
            <th scope="col">Actions</th>
          </tr>
        </thead>
        <tbody>
          {waiting.map((s) => (
            <tr key={s.name} data-site={s.name}>
              <td>{s.name}</td>
              <td>{s.tokens}</td>
              <td>
                {canEdit && (
                  <>
                    <button type="button" onClick={() => makeToken(s.name)}>
                      New token for {s.name}
                    </button>{" "}
                    <button type="button" class="danger" disabled={s.tokens === 0} onClick={() => revoke(s.name)}>
                      Revoke tokens of {s.name}
                    </button>
                  </>
                )}
              </td>
            </tr>
          ))}
          {waiting.length === 0 && (
            <tr>
              <td colSpan={3}>every site has enrolled</td>
            </tr>
          )}
        </tbody>
      </table>
    </section>
  );
}
