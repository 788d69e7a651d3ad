// The dashboard in a real browser: Debian's Chromium, headless, driven by playwright-core (which
// downloads nothing). Started by tests/ui/dashboard_test.py, which runs the controller (and, in
// the lab, the sites) and answers this script's requests on stdin ("cut", "restart").
//
//   node ui/tests/dashboard.mjs PLAN.json
//
// PLAN: {mode: "lab" | "scale", base, spki, users: {admin|operator|viewer: [user, password]},
//        shots (a directory for the screenshots), sim_report (a `sim run --json` file),
//        pending (the site waiting for approval), cut_site, render_bound_ms}
// Prints one JSON report line last ("REPORT {...}"); exit status 0 only when every check passed.
import { readFileSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const require = createRequire(import.meta.url);
const plan = JSON.parse(readFileSync(process.argv[2], "utf8"));
const axeSource = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
const report = { mode: plan.mode, checks: [], axe: {}, console_errors: [] };
const lines = createInterface({ input: process.stdin });
const answers = [];
const waiting = [];
lines.on("line", (l) => (waiting.length ? waiting.shift()(l) : answers.push(l)));

function ask(what) {
  process.stdout.write(`ASK ${what}\n`);
  return new Promise((resolve) => (answers.length ? resolve(answers.shift()) : waiting.push(resolve)));
}

function check(cond, what) {
  if (!cond) throw new Error(what);
  report.checks.push(what);
}

const browser = await chromium.launch({
  executablePath: process.env.PATRONUS_CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  // The controller's own certificate, pinned by its public key (nothing else is trusted less).
  args: ["--no-sandbox", "--disable-gpu", `--ignore-certificate-errors-spki-list=${plan.spki}`],
});

// Console errors fail the run, except the network errors a controller restart causes (the
// browser logs a refused fetch); those are counted separately while `expectOutage` is set.
let expectOutage = false;
let expectRejection = false;
report.outage_network_errors = 0;
report.expected_rejections = 0;
async function newPage() {
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  const page = await context.newPage();
  page.on("console", (m) => {
    if (m.type() !== "error") return;
    if (expectOutage && /ERR_CONNECTION_REFUSED|Failed to load resource|ERR_CONNECTION_RESET|net::/.test(m.text())) {
      report.outage_network_errors++;
      return;
    }
    // Chromium logs every 4xx answer; the one the test provokes on purpose is counted apart.
    if (expectRejection && /status of 422/.test(m.text())) {
      report.expected_rejections++;
      return;
    }
    report.console_errors.push(m.text());
  });
  page.on("pageerror", (e) => report.console_errors.push(`pageerror: ${e.message}`));
  return page;
}

async function signIn(page, role) {
  const [user, password] = plan.users[role];
  await page.goto(plan.base + "/");
  await page.getByLabel("User", { exact: true }).fill(user);
  await page.getByLabel("Password", { exact: true }).fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByText(`${user}`, { exact: false }).first().waitFor();
  await page.locator("nav.side").waitFor();
}

async function axe(page, view) {
  await page.evaluate(axeSource);
  const r = await page.evaluate(() =>
    // eslint-disable-next-line no-undef
    axe.run(document, { resultTypes: ["violations"], runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21aa", "best-practice"] } }),
  );
  const v = r.violations.map((x) => `${x.id} (${x.impact}): ${x.nodes.length} node(s), e.g. ${x.nodes[0]?.target?.join(" ")}`);
  report.axe[view] = v.length;
  check(v.length === 0, `${view}: no accessibility violation${v.length ? `, found: ${v.join("; ")}` : ""}`);
}

async function shot(page, name) {
  if (!plan.shots) return;
  await page.evaluate(() => window.scrollTo(0, 0));
  mkdirSync(plan.shots, { recursive: true });
  await page.screenshot({ path: `${plan.shots}/${name}.png`, fullPage: false });
}

async function view(page, hash, heading) {
  await page.goto(`${plan.base}/${hash}`);
  await page.getByRole("heading", { level: 1, name: heading }).waitFor();
}

async function navLabels(page) {
  return page.locator("nav.side a").allInnerTexts();
}

async function lab() {
  // Every role signs in and sees what its role allows.
  const expected = {
    viewer: ["Fleet map", "Sites", "Why this path", "Failover timeline", "Enrolment", "Configuration", "Account and keys"],
    operator: ["Fleet map", "Sites", "Why this path", "Failover timeline", "Enrolment", "Configuration", "Audit log", "Account and keys"],
    admin: ["Fleet map", "Sites", "Why this path", "Failover timeline", "Enrolment", "Configuration", "Audit log", "Users and keys"],
  };
  {
    const page = await newPage();
    await page.goto(plan.base + "/");
    await page.getByRole("button", { name: "Sign in" }).waitFor();
    await shot(page, "sign-in");
    await axe(page, "sign-in");
    await page.context().close();
  }
  for (const role of ["viewer", "operator", "admin"]) {
    const page = await newPage();
    await signIn(page, role);
    const nav = await navLabels(page);
    check(JSON.stringify(nav) === JSON.stringify(expected[role]), `${role}: the navigation is ${nav.join(", ")}`);
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("button", { name: "Sign in" }).waitFor();
    await page.context().close();
  }

  // The viewer cannot reach the edit forms (the API refuses them too: api_contract).
  const viewer = await newPage();
  await signIn(viewer, "viewer");
  await view(viewer, "#/config/topology", "Configuration");
  await viewer.locator("[data-testid=topology-form]").waitFor();
  check((await viewer.getByRole("button", { name: "Save topology" }).count()) === 0, "viewer: no Save topology button");
  check(await viewer.locator("[data-testid=topology-form] select").isDisabled(), "viewer: the topology form is disabled");
  await view(viewer, "#/config/policies", "Configuration");
  await viewer.locator("[data-testid=policies]").waitFor();
  check((await viewer.locator("[data-testid=policy-form]").count()) === 0, "viewer: no policy form");
  await view(viewer, "#/enrolment", "Enrolment");
  await viewer.locator("[data-testid=pending]").waitFor();
  check((await viewer.getByRole("button", { name: /Approve|New token|Revoke/ }).count()) === 0, "viewer: no enrolment buttons");
  await viewer.context().close();

  // The operator approves the pending site; the map then shows three sites and their paths.
  const page = await newPage();
  await signIn(page, "operator");
  await view(page, "#/enrolment", "Enrolment");
  const pending = page.locator(`[data-testid=pending] tr[data-site="${plan.pending}"]`);
  await pending.waitFor({ timeout: 30000 });
  await shot(page, "enrolment");
  await axe(page, "enrolment");
  await page.getByRole("button", { name: `Approve ${plan.pending}` }).click();
  await pending.waitFor({ state: "detached", timeout: 10000 });
  check(true, `operator approved ${plan.pending} from the enrolment page`);

  await view(page, "#/map", "Fleet map");
  await page.waitForFunction(
    () => {
      const rows = [...document.querySelectorAll("[data-testid=pairs] tr[data-pair]")];
      return rows.length === 3 && rows.every((r) => r.dataset.state === "up") && document.querySelectorAll("[data-testid=sites] tr[data-site]").length === 3;
    },
    null,
    { timeout: 90000, polling: 250 },
  );
  const pairs = await page.locator("[data-testid=pairs] tr[data-pair]").evaluateAll((rows) => rows.map((r) => r.dataset.pair));
  check(pairs.length === 3, `the map shows three sites and their pairs, all up: ${pairs.join(", ")}`);
  const chips = await page.locator("[data-testid=pairs] .chip").count();
  check(chips === 6, `the map lists two paths per pair (${chips})`);
  await shot(page, "fleet-map");
  await axe(page, "fleet-map");

  // A path is cut: it turns down on the map and the decision appears, with its reason.
  const before = await page.locator(`[data-testid=latest-decisions] li[data-reason^=failover][data-site="${plan.cut_site}"]`).count();
  const cutAnswer = JSON.parse((await ask("cut")).replace(/^OK /, ""));
  const seen = await page.evaluate(
    ({ site, before }) =>
      new Promise((resolve, reject) => {
        const out = {};
        const t0 = Date.now();
        const poll = () => {
          if (!out.down_ms && document.querySelector(`[data-testid=pairs] .chip[data-state=down]`)) out.down_ms = Date.now();
          const ds = document.querySelectorAll(`[data-testid=latest-decisions] li[data-reason^=failover][data-site="${site}"]`);
          if (!out.decision_ms && ds.length > before) {
            out.decision_ms = Date.now();
            out.reason = ds[0].dataset.reason;
            out.text = ds[0].textContent;
          }
          if (out.down_ms && out.decision_ms) return resolve(out);
          if (Date.now() - t0 > 60000) return reject(new Error(`not seen within 60 s: ${JSON.stringify(out)}`));
          setTimeout(poll, 20);
        };
        poll();
      }),
    { site: plan.cut_site, before },
  );
  // When the controller had each (its event times, read back from the API by the driver).
  const times = JSON.parse((await ask(`times ${plan.cut_site} ${cutAnswer.cut_unix_ms}`)).replace(/^OK /, ""));
  const downLag = seen.down_ms - times.path_down_unix_ms;
  const decisionLag = seen.decision_ms - times.decision_unix_ms;
  report.cut = { ...seen, ...times, down_lag_ms: downLag, decision_lag_ms: decisionLag };
  check(/^failover/.test(seen.reason), `the decision's reason is shown: ${seen.reason}`);
  check(downLag <= 2000, `the path turned down on the map ${downLag} ms after the controller received it (bound 2000)`);
  check(decisionLag <= 2000, `the decision appeared ${decisionLag} ms after the controller received it (bound 2000)`);
  await shot(page, "fleet-map-cut");

  // The site's view: paths with quality, tunnels, classes, charts.
  await view(page, `#/sites/${plan.cut_site}`, new RegExp(`Site ${plan.cut_site}`));
  await page.locator("[data-testid=site-paths] tr[data-state=down]").first().waitFor({ timeout: 10000 });
  await page.locator(".chart canvas").first().waitFor({ timeout: 10000 });
  const charts = await page.locator(".chart canvas").count();
  check(charts >= 4, `the site view draws its four charts (${charts} canvases)`);
  const handshake = await page.locator("[data-testid=site-paths] tbody tr").first().locator("td").nth(6).innerText();
  check(/s ago|never/.test(handshake), `the site view shows the tunnel's handshake age: ${handshake}`);
  await page.waitForTimeout(1500); // a few report samples in the charts
  await shot(page, "site");
  await axe(page, "site");

  await view(page, "#/sites", "Sites");
  await page.locator("[data-testid=site-list] tbody tr").first().waitFor();
  await axe(page, "sites");

  // Why this path: the decision with its candidates.
  await view(page, `#/why?site=${plan.cut_site}`, "Why this path");
  await page.locator("[data-testid=decisions] li.decision").first().waitFor({ timeout: 10000 });
  const cands = await page.locator("[data-testid=decisions] li.decision").first().locator("tbody tr").count();
  check(cands >= 1, `the latest decision lists its candidates (${cands})`);
  await shot(page, "why-this-path");
  await axe(page, "why-this-path");

  // The failover timeline, live and from a simulator report.
  await view(page, `#/timeline?site=${plan.cut_site}`, "Failover timeline");
  await page.locator("svg.timeline").waitFor({ timeout: 10000 });
  await shot(page, "timeline-live");
  await axe(page, "timeline-live");
  await page.locator("[data-testid=sim-file]").setInputFiles(plan.sim_report);
  await page.locator("[data-testid=sim-report] [data-testid=sim-flows] tbody tr").first().waitFor();
  const simRows = await page.locator("[data-testid=sim-report] [data-testid=sim-flows]").first().innerText();
  check(/ms/.test(simRows), "the simulator report's failovers are listed with their times");
  await shot(page, "timeline-sim");
  await axe(page, "timeline-sim");

  // A NetworkPolicy with an error: the field is flagged; a good one applies.
  await view(page, "#/config/policies", "Configuration");
  const bad =
    "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web, namespace: default}\n" +
    "spec:\n  podSelector: {}\n  ingress:\n  - ports:\n    - {port: 80, endPort: 70}\n";
  await page.locator("textarea[name=policy]").fill(bad);
  expectRejection = true;
  await page.getByRole("button", { name: "Apply policies" }).click();
  const flagged = page.locator("[data-testid=errors] li[data-field]").first();
  await flagged.waitFor({ timeout: 10000 });
  expectRejection = false;
  check(report.expected_rejections === 1, `the bad policy was refused once with 422 (${report.expected_rejections})`);
  const field = await flagged.getAttribute("data-field");
  check(/spec\.ingress\[0\]\.ports\[0\]/.test(field ?? ""), `the policy's error names its field: ${field}`);
  check((await page.locator("textarea[name=policy]").getAttribute("aria-invalid")) === "true", "the policy text is marked invalid");
  await shot(page, "config-policy-error");
  await axe(page, "config-policies");
  await page.locator("textarea[name=policy]").fill(bad.replace("endPort: 70", "endPort: 90"));
  await page.getByRole("button", { name: "Apply policies" }).click();
  await page.locator("[data-testid=policies] td", { hasText: "web" }).first().waitFor({ timeout: 10000 });
  await view(page, "#/config/reachability", "Configuration");
  await page.locator("[data-testid=matrix]").waitFor({ timeout: 10000 });
  await shot(page, "config-reachability");
  await axe(page, "config-reachability");
  for (const tab of ["topology", "classes", "plugins"]) {
    await view(page, `#/config/${tab}`, "Configuration");
    await page.waitForTimeout(300);
    await shot(page, `config-${tab}`);
    await axe(page, `config-${tab}`);
  }

  // The audit log has the approval.
  await view(page, "#/audit", "Audit log");
  await page.locator("[data-testid=audit] td", { hasText: `sites/${plan.pending}` }).first().waitFor({ timeout: 10000 });
  await shot(page, "audit");
  await axe(page, "audit");

  // The controller goes away for a moment: the page says so, reconnects and resumes the stream.
  expectOutage = true;
  const stream = page.locator("[data-testid=stream]");
  await view(page, "#/map", "Fleet map");
  await stream.filter({ hasText: "live" }).waitFor({ timeout: 10000 });
  const restarting = ask("restart");
  await stream.filter({ hasText: "unreachable" }).waitFor({ timeout: 15000 });
  await restarting;
  await stream.filter({ hasText: /^live$/ }).waitFor({ timeout: 20000 });
  check(true, "the controller's restart was shown and the stream resumed");
  await shot(page, "reconnected");
  expectOutage = false;
  await page.context().close();

  // Admin: users and keys.
  const admin = await newPage();
  await signIn(admin, "admin");
  await view(admin, "#/users", "Users and keys");
  await admin.locator("[data-testid=users] tbody tr").first().waitFor();
  const users = await admin.locator("[data-testid=users] tbody tr").count();
  check(users >= 3, `the admin sees the users (${users})`);
  await shot(admin, "users-and-keys");
  await axe(admin, "users-and-keys");
  await admin.context().close();
}

async function scale() {
  const page = await newPage();
  await signIn(page, "admin");
  // From navigation to the map drawn with every site.
  const t0 = Date.now();
  await page.goto(`${plan.base}/#/map`);
  await page.waitForFunction((n) => document.querySelector("[data-testid=fleet-canvas]")?.dataset.sites === String(n), plan.sites, {
    timeout: 30000,
    polling: 10,
  });
  const renderMs = Date.now() - t0;
  report.render_ms = renderMs;
  report.draw_ms = Number(await page.locator("[data-testid=fleet-canvas]").getAttribute("data-draw-ms"));
  check(renderMs <= plan.render_bound_ms, `${plan.sites} sites rendered in ${renderMs} ms (bound ${plan.render_bound_ms})`);
  // Interactive: hovering a site and filtering the list answer within a frame or two.
  const box = await page.locator("[data-testid=fleet-canvas]").boundingBox();
  let t = Date.now();
  for (let i = 0; i < 20; ++i) await page.mouse.move(box.x + 40 + i * 20, box.y + box.height / 2);
  report.hover_ms_per_move = (Date.now() - t) / 20;
  t = Date.now();
  await page.getByLabel("Filter by name").fill("s0999");
  await page.locator("[data-testid=sites] tr[data-site=s0999]").waitFor();
  report.filter_ms = Date.now() - t;
  check(report.hover_ms_per_move < 250 && report.filter_ms < 1000, `the map stays interactive: hover ${report.hover_ms_per_move} ms per move, filter ${report.filter_ms} ms`);
  await page.getByLabel("Filter by name").fill("");
  await shot(page, "fleet-map-1000");
  await axe(page, "fleet-map-1000");
  await page.context().close();
}

let status = 0;
try {
  if (plan.mode === "lab") await lab();
  else await scale();
  check(report.console_errors.length === 0, `no console errors${report.console_errors.length ? `: ${report.console_errors.join(" | ")}` : ""}`);
  report.status = "ok";
} catch (e) {
  report.status = "FAILED";
  report.error = String(e?.stack ?? e);
  status = 1;
} finally {
  await browser.close();
  lines.close();
}
process.stdout.write(`REPORT ${JSON.stringify(report)}\n`);
process.exit(status);
