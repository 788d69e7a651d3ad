// Users (admins manage them) and API keys (everyone has their own; a key's role is at most its
// maker's; the key is shown once).
import { useEffect, useState } from "preact/hooks";
import { all, ApiError, atLeast, call, currentSession, forget, get, Role } from "../api";
import { live } from "../live";
import { Choice } from "./Choice";
import { fieldMessage } from "./Config";
import { clock } from "../live";

interface User {
  name: string;
  role: Role;
  created_unix_ns: number;
  totp: string;
}
interface Key {
  id: string;
  name: string;
  user: string;
  role: Role;
  created_unix_ns: number;
  expires_unix_ns: number;
  revoked: boolean;
}

function Problem({ error }: { error: ApiError | null }) {
  if (!error) return null;
  return (
    <div role="alert" class="error">
      {error.message}
      {error.errors.map((e) => (
        <div key={e.field}>
          <code>{e.field}</code>: {fieldMessage(e)}
        </div>
      ))}
    </div>
  );
}

// The signed-in user's own account: password and second factor.
function Account() {
  const me = currentSession();
  const [totp, setTotp] = useState("");
  const [pw, setPw] = useState({ current: "", next: "" });
  const [enrolling, setEnrolling] = useState<{ secret: string; uri: string } | null>(null);
  const [code, setCode] = useState("");
  const [error, setError] = useState<ApiError | null>(null);
  const [ok, setOk] = useState("");
  const path = `/users/${encodeURIComponent(me?.user ?? "")}`;
  const load = () =>
    get<{ totp: string }>(path)
      .then((u) => setTotp(u.totp))
      .catch((e: ApiError) => setError(e));
  useEffect(() => {
    void load();
  }, []);
  const run = async (f: () => Promise<string>) => {
    setError(null);
    setOk("");
    try {
      setOk(await f());
      await load();
    } catch (e) {
      setError(e as ApiError);
    }
  };
  return (
    <>
      <h2>Your account ({me?.user})</h2>
      <Problem error={error} />
      {ok && <p class="ok">{ok}</p>}
      <form
        class="inline"
        onSubmit={(e) => {
          e.preventDefault();
          void run(async () => {
            await call("PUT", `${path}/password`, { body: { current_password: pw.current, password: pw.next } });
            // The change ends every login of the user, this one too.
            live.end();
            forget();
            return "";
          });
        }}
      >
        <label>
          Current password
          <input type="password" autoComplete="current-password" required value={pw.current} onInput={(e) => setPw({ ...pw, current: e.currentTarget.value })} />
        </label>
        <label>
          New password (12 or more characters; signs you out everywhere)
          <input
            type="password"
            autoComplete="new-password"
            required
            value={pw.next}
            onInput={(e) => setPw({ ...pw, next: e.currentTarget.value })}
            aria-invalid={!!error?.on("password")}
          />
        </label>
        <button type="submit">Change password</button>
      </form>
      <p>
        Second factor: <strong>{totp === "on" ? "on" : totp === "pending" ? "set up, not confirmed yet" : "none"}</strong>{" "}
        {totp !== "on" && !enrolling && (
          <button
            type="button"
            onClick={() =>
              void run(async () => {
                const r = await call<{ secret: string; uri: string }>("POST", `${path}/totp`);
                setEnrolling(r.body);
                return "";
              })
            }
          >
            Set up a second factor
          </button>
        )}
        {totp !== "none" && (
          <button
            type="button"
            class="danger"
            onClick={() =>
              void run(async () => {
                await call("DELETE", `${path}/totp`);
                setEnrolling(null);
                return "The second factor is removed.";
              })
            }
          >
            Remove the second factor
          </button>
        )}
      </p>
      {enrolling && (
        <div class="secret">
          <p>Add this to your authenticator app (shown once), then confirm with its current code:</p>
          <p>
            Secret: <code class="token">{enrolling.secret}</code>
          </p>
          <p>
            URI: <code class="token">{enrolling.uri}</code>
          </p>
          <form
            class="inline"
            onSubmit={(e) => {
              e.preventDefault();
              void run(async () => {
                await call("POST", `${path}/totp/confirm`, { body: { code } });
                setEnrolling(null);
                setCode("");
                return "The second factor is on: sign-ins need its code from now on.";
              });
            }}
          >
            <label>
              Code
              <input inputMode="numeric" value={code} onInput={(e) => setCode(e.currentTarget.value)} aria-invalid={!!error?.on("code")} />
            </label>
            <button type="submit">Confirm</button>
          </form>
        </div>
      )}
    </>
  );
}

export function Users() {
  const admin = atLeast("admin");
  const me = currentSession();
  const [users, setUsers] = useState<User[]>([]);
  const [keys, setKeys] = useState<Key[]>([]);
  const [error, setError] = useState<ApiError | null>(null);
  const [created, setCreated] = useState("");
  const [u, setU] = useState({ name: "", role: "viewer" as Role, password: "" });
  const [k, setK] = useState({ name: "", role: "viewer" as Role, days: 90 });
  const load = async () => {
    try {
      if (admin) setUsers((await all<User>("/users")).items);
      setKeys((await all<Key>("/api-keys")).items);
    } catch (e) {
      setError(e as ApiError);
    }
  };
  useEffect(() => {
    void load();
  }, []);
  const run = async (f: () => Promise<void>) => {
    setError(null);
    try {
      await f();
      await load();
    } catch (e) {
      setError(e as ApiError);
    }
  };
  const roles: Role[] = ["viewer", "operator", "admin"];
  const mine = roles.slice(0, roles.indexOf(me?.role ?? "viewer") + 1);
  return (
    <section aria-labelledby="users-h">
      <h1 id="users-h">{admin ? "Users and keys" : "Account and keys"}</h1>
      <Problem error={error} />
      {admin && (
        <>
          <h2>Users</h2>
          <table class="data" data-testid="users">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Role</th>
                <th scope="col">Second factor</th>
                <th scope="col">Created</th>
                <th scope="col">Action</th>
              </tr>
            </thead>
            <tbody>
              {users.map((x) => (
                <tr key={x.name}>
                  <td>{x.name}</td>
                  <td>{x.role}</td>
                  <td>{x.totp}</td>
                  <td>{clock(x.created_unix_ns)}</td>
                  <td>
                    {x.name !== me?.user && (
                      <button type="button" class="danger" onClick={() => run(() => call("DELETE", `/users/${encodeURIComponent(x.name)}`).then(() => undefined))}>
                        Delete {x.name}
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          <form
            class="inline"
            onSubmit={(e) => {
              e.preventDefault();
              void run(async () => {
                await call("POST", "/users", { body: u });
                setU({ name: "", role: "viewer", password: "" });
              });
            }}
          >
            <label>
              Name
              <input value={u.name} required onInput={(e) => setU({ ...u, name: e.currentTarget.value })} aria-invalid={!!error?.on("name")} />
            </label>
            <Choice label="Role" value={u.role} options={roles} onChange={(v) => setU({ ...u, role: v as Role })} />
            <label>
              Password (12 or more characters)
              <input
                type="password"
                autoComplete="new-password"
                value={u.password}
                required
                onInput={(e) => setU({ ...u, password: e.currentTarget.value })}
                aria-invalid={!!error?.on("password")}
              />
            </label>
            <button type="submit">Add user</button>
          </form>
        </>
      )}
      <Account />
      <h2>API keys</h2>
      <table class="data" data-testid="keys">
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Id</th>
            <th scope="col">User</th>
            <th scope="col">Role</th>
            <th scope="col">Expires</th>
            <th scope="col">State</th>
            <th scope="col">Action</th>
          </tr>
        </thead>
        <tbody>
          {keys.map((x) => (
            <tr key={x.id}>
              <td>{x.name}</td>
              <td>
                <code>{x.id}</code>
              </td>
              <td>{x.user}</td>
              <td>{x.role}</td>
              <td>{clock(x.expires_unix_ns)}</td>
              <td>{x.revoked ? "revoked" : x.expires_unix_ns < Date.now() * 1e6 ? "expired" : "active"}</td>
              <td>
                {!x.revoked && (
                  <button type="button" class="danger" onClick={() => run(() => call("DELETE", `/api-keys/${x.id}`).then(() => undefined))}>
                    Revoke {x.name}
                  </button>
                )}
              </td>
            </tr>
          ))}
          {keys.length === 0 && (
            <tr>
              <td colSpan={7}>no API keys</td>
            </tr>
          )}
        </tbody>
      </table>
      <form
        class="inline"
        onSubmit={(e) => {
          e.preventDefault();
          void run(async () => {
            const r = await call<{ key: string }>("POST", "/api-keys", { body: { name: k.name, role: k.role, expires_in_days: k.days } });
            setCreated(r.body.key);
            setK({ ...k, name: "" });
          });
        }}
      >
        <label>
          Key name
          <input value={k.name} required onInput={(e) => setK({ ...k, name: e.currentTarget.value })} />
        </label>
        <Choice label="Role" value={k.role} options={mine} onChange={(v) => setK({ ...k, role: v as Role })} />
        <label>
          Days valid
          <input type="number" min={1} max={366} value={k.days} onInput={(e) => setK({ ...k, days: Number(e.currentTarget.value) })} />
        </label>
        <button type="submit">Create key</button>
      </form>
      {created && (
        <div class="secret" data-testid="new-key">
          <p>The new key, shown once (use it as PATRONUS_API_KEY or a Bearer token):</p>
          <code class="token">{created}</code>
        </div>
      )}
    </section>
  );
}
