#!/usr/bin/python3
"""The dashboard in a real browser (ui/tests/dashboard.mjs drives Debian's Chromium).

--mode scale: a controller on loopback with --sites generated sites (hub-spoke, two hubs), added
  through its admin socket; the map must render them within --bound-ms and stay interactive.
--mode lab: the three-site lab (tests/lab/three_site_lab.py: Mininet, wireguard-go, real
  daemons) run from a controller that requires approval, with its API and dashboard on the
  controller's host. a and b are approved through the API; c waits, and the browser (as an
  operator) approves it. Then the browser asks this driver to cut a's internet link and checks
  the map and the decision; to restart the controller and checks the reconnection. Needs root.

Screenshots go to --shots (docs/guides/img/dashboard to refresh the guide's). Prints a JSON
report; exit status 0 only when every check passed, 77 when the machine cannot run it.
"""
import argparse
import base64
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "api"))
sys.path.insert(0, os.path.join(ROOT, "tests", "lab"))
SKIP = 77
PASSWORD = "correct horse battery staple"
SCRIPT = os.path.join(ROOT, "ui", "tests", "dashboard.mjs")
CHROMIUM = os.environ.get("PATRONUS_CHROMIUM", "/usr/bin/chromium")


def spki_of(cert_path):
    """The certificate's public key pin, as Chromium's --ignore-certificate-errors-spki-list
    takes it (base64 SHA-256 of the DER SubjectPublicKeyInfo)."""
    pub = subprocess.run(["openssl", "x509", "-in", cert_path, "-noout", "-pubkey"],
                         capture_output=True, check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub,
                         capture_output=True, check=True).stdout
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def drive(plan, popen, answer):
    """Runs the browser script with `popen`; answers its ASK lines with answer(what) -> dict."""
    work = tempfile.mkdtemp(prefix="patronus-ui-plan-")
    path = os.path.join(work, "plan.json")
    with open(path, "w") as f:
        json.dump(plan, f)
    proc = popen(["node", SCRIPT, path], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                 text=True, bufsize=1, cwd=os.path.join(ROOT, "ui"))
    result = None
    try:
        for line in proc.stdout:
            line = line.rstrip("\n")
            if line.startswith("ASK "):
                reply = answer(line[4:])
                proc.stdin.write("OK " + json.dumps(reply) + "\n")
                proc.stdin.flush()
            elif line.startswith("REPORT "):
                result = json.loads(line[7:])
            else:
                print(line, flush=True)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)
    if result is None:
        result = {"status": "FAILED", "error": "the browser script ended without a report (exit %s)"
                  % proc.returncode}
    return result


def scale(args):
    import apitest
    report = {"mode": "scale", "sites": args.sites}
    with apitest.Controller(args.build, password=PASSWORD, name="ui-scale") as c:
        lines = ["sites:"]
        for i in range(args.sites):
            lines += ["  - name: s%04d" % i,
                      "    endpoints: [{name: wan0, address: '198.18.%d.%d:51820', type: wan}]"
                      % (i // 250, 1 + i % 250),
                      "    subnets: ['10.%d.%d.0/24']" % (i // 256, i % 256)]
        sites = os.path.join(c.dir, "sites.yaml")
        with open(sites, "w") as f:
            f.write("\n".join(lines) + "\n")
        ctl = [os.path.join(args.build, "bin", "patronus"), "controller", "--socket",
               os.path.join(c.dir, "admin.sock")]
        t = time.monotonic()
        for cmd in (["sites", "add", "-f", sites],
                    ["topology", "set", "hub-spoke", "--hubs", "s0000", "s0001"]):
            r = subprocess.run(ctl + cmd, capture_output=True, text=True, timeout=120)
            apitest.check(r.returncode == 0, "patronus controller %s: %s" % (cmd[0], r.stderr))
        report["add_s"] = round(time.monotonic() - t, 2)
        plan = {"mode": "scale", "base": c.base, "spki": spki_of(c.cacert),
                "users": {"admin": [c.admin, c.password]}, "shots": args.shots,
                "sites": args.sites, "render_bound_ms": args.bound_ms}
        r = drive(plan, subprocess.Popen, lambda what: {})
    report.update(r)
    return report


def lab_run(args):
    import three_site_lab as tsl
    import apitest

    class UiLab(tsl.Lab):
        """The controller lab with the API (dashboard) on the controller's host, approval on."""
        api_port = 8443

        def start_controller(self):
            with open(os.path.join(self.work, "controller.yaml"), "w") as f:
                f.write("listen: '%s:7443'\nstate_db: %s\nadmin_socket: %s\nrequire_approval: true\n"
                        "api: {listen: '127.0.0.1:%d', ui_dir: %s}\n" % (
                            tsl.CONTROLLER_ADDRESS, os.path.join(self.work, "fleet.db"),
                            os.path.join(self.work, "controller.sock"), self.api_port,
                            os.path.join(args.build, "share", "patronus", "ui")))
            r = subprocess.run([os.path.join(self.build, "bin", "patronus-controller"), "-c",
                                os.path.join(self.work, "controller.yaml"), "init", "--admin",
                                "admin"], input=PASSWORD + "\n", text=True, capture_output=True)
            if r.returncode != 0:
                tsl.fail("init: " + r.stderr)
            self.launch_controller()
            self.pin = tsl.wait_for("the controller's key in its log", self.pinned, 20)
            tsl.wait_for("the controller's admin socket",
                         lambda: os.path.exists(os.path.join(self.work, "controller.sock")), 10)
            self.write_files(self.members)
            self.ctl("topology", "set", "full-mesh", "-f", os.path.join(self.work, "mesh.yaml"))

        def launch_controller(self):
            path = os.path.join(self.work, "controller.log")
            offset = os.path.getsize(path) if os.path.exists(path) else 0
            log = open(path, "ab")
            self.logs["controller"] = log
            k = self.net.get("k" + self.tok)
            self.ctl_proc = k.popen([os.path.join(self.build, "bin", "patronus-controller"), "-c",
                                     os.path.join(self.work, "controller.yaml")],
                                    stdout=log, stderr=subprocess.STDOUT)

            def api_up():
                with open(path, errors="replace") as f:
                    f.seek(offset)
                    return "operator API on https://" in f.read()
            tsl.wait_for("the controller's API", api_up, 20)

        def pinned(self):
            with open(os.path.join(self.work, "controller.log"), errors="replace") as f:
                for word in f.read().split():
                    if word.startswith("ed25519:"):
                        return word
            return None

        def api(self, method, path, token=None, body=None, content_type="application/json"):
            """curl inside the controller's host (its API is on that host's loopback); a str
            body is sent as it is."""
            k = self.net.get("k" + self.tok)
            cmd = ["curl", "-sS", "--cacert",
                   os.path.join(self.work, "controller-identity", "api.crt"),
                   "--resolve", "localhost:%d:127.0.0.1" % self.api_port, "-X", method,
                   "-w", "\n%{http_code}", "https://localhost:%d/api/v1%s" % (self.api_port, path)]
            if token:
                cmd += ["-H", "Authorization: Bearer " + token]
            if body is not None:
                cmd += ["-H", "Content-Type: " + content_type, "--data-binary",
                        body if isinstance(body, str) else json.dumps(body)]
            out = k.popen(cmd, stdout=subprocess.PIPE, text=True).communicate(timeout=30)[0]
            text, _, code = out.rpartition("\n")
            return int(code), (json.loads(text) if text.strip() else None)

    work = tempfile.mkdtemp(prefix="patronus-ui-lab-")
    lab = UiLab(args.build, work, "%03d" % random.randrange(1000), True)
    report = {"mode": "lab"}
    contract = apitest.Contract()
    admin = None
    try:
        lab.members = ["a", "b", "c"]
        lab.start_net()
        lab.start_controller()
        lab.enrol(["a", "b", "c"])
        for s in lab.members:
            lab.start_daemon(s)
        code, tokens = lab.api("POST", "/auth/login", body={"user": "admin", "password": PASSWORD})
        if code != 200:
            tsl.fail("admin login: %d %s" % (code, tokens))
        admin = tokens["access_token"]
        for role in ("operator", "viewer"):
            code, body = lab.api("POST", "/users", admin,
                                 {"name": role + "1", "role": role, "password": PASSWORD})
            if code != 201:
                tsl.fail("create %s: %d %s" % (role, code, body))

        def enrolled(names):
            code, page = lab.api("GET", "/sites", admin)
            have = {s["name"]: s for s in page["items"]}
            return all(have.get(n, {}).get("enrolled") for n in names)
        tsl.wait_for("a, b and c enrolled (waiting for approval)",
                     lambda: enrolled(["a", "b", "c"]), 30)
        for s in ("a", "b"):
            code, body = lab.api("POST", "/sites/%s/approve" % s, admin)
            if code != 200:
                tsl.fail("approve %s: %d %s" % (s, code, body))
        # An inventory for the reachability matrix.
        inv = "".join("---\napiVersion: v1\nkind: Pod\nmetadata: {name: %s, namespace: default, "
                      "labels: {app: %s}}\nstatus: {podIP: 10.9.0.%d}\n" % (n, n, i + 1)
                      for i, n in enumerate(["web", "db", "cache"]))
        code, body = lab.api("PUT", "/inventory", admin, inv, "application/yaml")
        if code != 204:
            tsl.fail("inventory: %d %s" % (code, body))
        k = lab.net.get("k" + lab.tok)
        sim = os.path.join(work, "link-cut.json")
        with open(sim, "w") as f:
            subprocess.run([os.path.join(args.build, "bin", "patronus"), "sim", "run",
                            os.path.join(ROOT, "sim", "scenarios", "link-cut.yaml"), "--json"],
                           stdout=f, check=True, timeout=300)

        def live_checks():
            """The live API's answers, with real sites behind them, against the contract (before
            the restart: decisions and path history are kept in memory)."""
            for path in ("/paths?limit=500", "/decisions?limit=100", "/sites/a/path-history",
                         "/sites/a/selections", "/events?limit=500"):
                code, body = lab.api("GET", path, admin)
                if code != 200:
                    tsl.fail("GET %s: %d %s" % (path, code, body))
                contract.validate("GET", "/api/v1" + path, code, "application/json", json.dumps(body))
            report["contract_checked"] = len(contract.checked)
            paths = lab.api("GET", "/paths?limit=500", admin)[1]["items"]
            with_tunnel = [p for p in paths if p["tunnel"] and p["tunnel"]["handshake_age_s"] is not None]
            if len(with_tunnel) < 6:
                tsl.fail("paths with a tunnel handshake reported: %d of %d" % (len(with_tunnel), len(paths)))
            decs = lab.api("GET", "/decisions?limit=100", admin)[1]["items"]
            if not any(d["candidates"] for d in decs):
                tsl.fail("no decision carries its candidates: %s" % decs[:2])

        def answer(what):
            words = what.split()
            if words[0] == "cut":
                # Packets between a and b's address on that underlay are dropped (nftables, in
                # a's namespace): that a-b path dies and nothing else (a's controller session
                # runs over the internet link too, to another address).
                # The path a's classes to b are on (the first to come up won: either).
                code, sel = lab.api("GET", "/sites/a/selections", admin)
                on = [x["path_name"] for x in sel["items"] if x["remote_site"] == "b"]
                if not on or not on[0]:
                    tsl.fail("a's selections to b: %s" % sel)
                kind = "lte" if "-lte~" in on[0] else "inet"
                report["cut_path"] = on[0]
                cut_ms = int(time.time() * 1000)
                host, peer = lab.net.get(lab.host("a")), lab.underlay(2, kind)
                for c in ("nft add table inet patronus_cut",
                          "nft add chain inet patronus_cut out '{ type filter hook output priority 0; }'",
                          "nft add rule inet patronus_cut out ip daddr %s drop" % peer,
                          "nft add chain inet patronus_cut in '{ type filter hook input priority 0; }'",
                          "nft add rule inet patronus_cut in ip saddr %s drop" % peer):
                    out = host.cmd(c + " && echo cut-ok")
                    if "cut-ok" not in out:
                        tsl.fail("%s: %s" % (c, out))
                return {"cut_unix_ms": cut_ms}
            if words[0] == "times":
                site, since = words[1], int(words[2])
                deadline = time.time() + 20
                while time.time() < deadline:
                    code, page = lab.api("GET", "/events?site=%s&limit=500" % site, admin)
                    downs = [e for e in page["items"] if e["kind"] == "path.state"
                             and e["state"] == "down" and e["unix_ns"] // 1000000 >= since]
                    decs = [e for e in page["items"] if e["kind"] == "decision"
                            and e["unix_ns"] // 1000000 >= since]
                    if downs and decs:
                        return {"path_down_unix_ms": downs[0]["unix_ns"] / 1e6,
                                "decision_unix_ms": decs[0]["unix_ns"] / 1e6,
                                "decision_reason": decs[0]["decision"]["reason"]}
                    time.sleep(0.2)
                return {"path_down_unix_ms": 0, "decision_unix_ms": 0}
            if words[0] == "restart":
                live_checks()
                lab.ctl_proc.send_signal(signal.SIGTERM)
                lab.ctl_proc.wait(timeout=15)
                time.sleep(2)
                lab.launch_controller()
                return {}
            return {"error": "unknown request " + what}

        plan = {"mode": "lab", "base": "https://localhost:%d" % lab.api_port,
                "spki": spki_of(os.path.join(work, "controller-identity", "api.crt")),
                "users": {"admin": ["admin", PASSWORD], "operator": ["operator1", PASSWORD],
                          "viewer": ["viewer1", PASSWORD]},
                "shots": args.shots, "sim_report": sim, "pending": "c", "cut_site": "a"}
        report.update(drive(plan, k.popen, answer))
        print(json.dumps(report, indent=2), flush=True)
        if report.get("status") != "ok":
            tsl.fail("the browser's checks failed: " + report.get("error", "?"))
    except (AssertionError, apitest.Failure) as e:
        report["status"] = "FAILED"
        report["error"] = str(e)
        try:  # what the controller had, for the diagnosis
            code, page = lab.api("GET", "/events?limit=500", admin)
            report["controller_events"] = [
                "%s %s %s %s" % (x["kind"], x["site"], x.get("path") or "",
                                 (x.get("decision") or {}).get("reason", ""))
                for x in (page or {}).get("items", [])][-40:]
        except Exception as x:  # noqa: BLE001 (diagnostics only)
            report["controller_events"] = str(x)
        lab.diagnostics()
    finally:
        lab.teardown()
        if report.get("status") == "ok":
            shutil.rmtree(work, ignore_errors=True)
        else:
            print("lab directory kept: " + work)
    return report


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--mode", choices=["lab", "scale"], required=True)
    ap.add_argument("--sites", type=int, default=1000)
    ap.add_argument("--bound-ms", type=int, default=2000)
    ap.add_argument("--shots", default="")
    args = ap.parse_args()
    args.build = os.path.abspath(args.build)
    if not os.path.exists(CHROMIUM):
        print("no Chromium at %s (scripts/install-deps installs Debian's chromium)" % CHROMIUM)
        return 1
    if not os.path.exists(os.path.join(args.build, "share", "patronus", "ui", "index.html")):
        print("the dashboard is not built (%s/share/patronus/ui): run scripts/install-deps, then build the "
              "target patronus-ui" % args.build)
        return 1
    if not os.path.exists(os.path.join(ROOT, "ui", "node_modules", "playwright-core")):
        print("ui/node_modules is missing: run scripts/install-deps")
        return 1
    if args.shots:
        args.shots = os.path.abspath(args.shots)
    if args.mode == "lab":
        if os.geteuid() != 0:
            print("the lab needs root (namespaces, wireguard-go)")
            return SKIP
        report = lab_run(args)
    else:
        report = scale(args)
    print(json.dumps(report, indent=2))
    return 0 if report.get("status") == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
