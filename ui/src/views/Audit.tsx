// The audit trail (operators and admins): who changed what, when, from where, with the change
// itself (an RFC 6902 patch from before to after).
import { useEffect, useState } from "preact/hooks";
import { ApiError, get } from "../api";
import { clock } from "../live";

interface Entry {
  id: number;
  unix_ns: number;
  actor: string;
  address: string;
  method: string;
  route: string;
  target: string;
  status: number;
  truncated: boolean;
  patch: unknown[];
}

export function Audit() {
  const [actor, setActor] = useState("");
  const [target, setTarget] = useState("");
  const [items, setItems] = useState<Entry[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [error, setError] = useState("");
  const load = async (more: boolean) => {
    const q = new URLSearchParams({ limit: "50" });
    if (actor) q.set("actor", actor);
    if (target) q.set("target", target);
    if (more && cursor) q.set("cursor", cursor);
    try {
      const r = await get<{ items: Entry[]; next_cursor: string | null }>(`/audit?${q}`);
      setItems(more ? [...items, ...r.items] : r.items);
      setCursor(r.next_cursor);
      setError("");
    } catch (e) {
      setError((e as ApiError).message);
    }
  };
  useEffect(() => {
    void load(false);
  }, []);
  return (
    <section aria-labelledby="audit-h">
      <h1 id="audit-h">Audit log</h1>
      <form
        class="inline"
        onSubmit={(e) => {
          e.preventDefault();
          void load(false);
        }}
      >
        <label>
          Actor (user:NAME, key:ID)
          <input value={actor} onInput={(e) => setActor(e.currentTarget.value)} />
        </label>
        <label>
          Target (sites/hq, topology, …)
          <input value={target} onInput={(e) => setTarget(e.currentTarget.value)} />
        </label>
        <button type="submit">Filter</button>
      </form>
      {error && <p role="alert" class="error">{error}</p>}
      <table class="data" data-testid="audit">
        <thead>
          <tr>
            <th scope="col">When</th>
            <th scope="col">Who</th>
            <th scope="col">From</th>
            <th scope="col">What</th>
            <th scope="col">Target</th>
            <th scope="col">Result</th>
            <th scope="col">Change</th>
          </tr>
        </thead>
        <tbody>
          {items.map((e) => (
            <tr key={e.id}>
              <td>{clock(e.unix_ns)}</td>
              <td>{e.actor}</td>
              <td>{e.address}</td>
              <td>
                {e.method} {e.route}
              </td>
              <td>{e.target}</td>
              <td>{e.status}</td>
              <td>
                {e.truncated ? (
                  "too large to keep"
                ) : (
                  <details>
                    <summary>{e.patch.length} operations</summary>
                    <pre class="doc">{JSON.stringify(e.patch, null, 1)}</pre>
                  </details>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {cursor && (
        <button type="button" onClick={() => void load(true)}>
          Older entries
        </button>
      )}
    </section>
  );
}
