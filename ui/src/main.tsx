// The dashboard's shell: sign-in, the navigation (what the user's role may see), the live
// connection's state, and one view at a time chosen by the URL's fragment (#/sites/hq).
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import "uplot/dist/uPlot.min.css";
import "./style.css";
import { atLeast, currentSession, logout, onSession, refresh, Role, Session } from "./api";
import { live, useLive } from "./live";
import { Login } from "./views/Login";
import { FleetMap } from "./views/FleetMap";
import { SiteView } from "./views/Site";
import { WhyPath } from "./views/WhyPath";
import { Timeline } from "./views/Timeline";
import { Enrolment } from "./views/Enrolment";
import { Config } from "./views/Config";
import { Audit } from "./views/Audit";
import { Users } from "./views/Users";

export interface Route {
  view: string;
  arg: string;
  query: URLSearchParams;
}

function parse(hash: string): Route {
  const [path, q] = hash.replace(/^#\/?/, "").split("?", 2);
  const [view, ...rest] = path.split("/");
  return { view: view || "map", arg: decodeURIComponent(rest.join("/")), query: new URLSearchParams(q ?? "") };
}

const NAV: { view: string; label: string; role: Role }[] = [
  { view: "map", label: "Fleet map", role: "viewer" },
  { view: "sites", label: "Sites", role: "viewer" },
  { view: "why", label: "Why this path", role: "viewer" },
  { view: "timeline", label: "Failover timeline", role: "viewer" },
  { view: "enrolment", label: "Enrolment", role: "viewer" },
  { view: "config", label: "Configuration", role: "viewer" },
  { view: "audit", label: "Audit log", role: "operator" },
  { view: "users", label: "Users and keys", role: "viewer" },
];

function Shell({ session }: { session: Session }) {
  const [route, setRoute] = useState(parse(location.hash));
  const l = useLive();
  useEffect(() => {
    const on = () => setRoute(parse(location.hash));
    addEventListener("hashchange", on);
    live.start();
    return () => removeEventListener("hashchange", on);
  }, []);
  useEffect(() => {
    const nav = NAV.find((n) => n.view === route.view);
    document.title = `${nav?.view === "users" && !atLeast("admin") ? "Account and keys" : (nav?.label ?? "Patronus")} · Patronus`;
  }, [route.view]);
  const allowed = NAV.filter((n) => atLeast(n.role)).map((n) => (n.view === "users" && !atLeast("admin") ? { ...n, label: "Account and keys" } : n));
  let body;
  switch (route.view) {
    case "map":
      body = <FleetMap />;
      break;
    case "sites":
      body = <SiteView name={route.arg} />;
      break;
    case "why":
      body = <WhyPath query={route.query} />;
      break;
    case "timeline":
      body = <Timeline query={route.query} />;
      break;
    case "enrolment":
      body = <Enrolment />;
      break;
    case "config":
      body = <Config tab={route.arg || "topology"} />;
      break;
    case "audit":
      body = atLeast("operator") ? <Audit /> : <p role="alert">The audit log is for operators and admins.</p>;
      break;
    case "users":
      body = <Users />;
      break;
    default:
      body = <p role="alert">No such page.</p>;
  }
  return (
    <div class="shell">
      <header class="top">
        <a class="brand" href="#/map">
          Patronus
        </a>
        <span class={`stream stream-${l.stream}`} role="status" data-testid="stream">
          {l.stream === "live" ? "live" : l.stream === "connecting" ? "connecting…" : "controller unreachable: reconnecting"}
        </span>
        <span class="who">
          {session.user} <span class="role">{session.role}</span>
          <button
            type="button"
            class="link"
            onClick={() => {
              live.end(); // the stream first: a logout ends its credential
              void logout();
            }}
          >
            Sign out
          </button>
        </span>
      </header>
      <nav class="side" aria-label="Views">
        <ul>
          {allowed.map((n) => (
            <li key={n.view}>
              <a href={`#/${n.view}`} aria-current={route.view === n.view ? "page" : undefined}>
                {n.label}
              </a>
            </li>
          ))}
        </ul>
      </nav>
      <main id="main">{body}</main>
    </div>
  );
}

function App() {
  const [session, setSession] = useState<Session | null>(currentSession());
  const [restoring, setRestoring] = useState(true);
  useEffect(() => {
    const off = onSession(setSession);
    // A reload: the tab's refresh token signs in again without the password.
    refresh()
      .catch(() => false)
      .finally(() => setRestoring(false));
    return off;
  }, []);
  if (restoring) return <p class="restoring">Loading…</p>;
  if (!session) return <Login />;
  return <Shell session={session} />;
}

render(<App />, document.getElementById("app") as HTMLElement);
