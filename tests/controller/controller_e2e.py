#!/usr/bin/env python3
"""The controller with real daemons on loopback (no root: 127.0.0.x addresses, probes in underlay
mode, no tunnels).

- patronus-controller starts with a fresh fleet store; three sites are added with the CLI, each
  gets a one-time token written to an owner-only file, three patronusd enrol with them and every
  path comes up (both ends report it up, under one fleet-wide id);
- a fourth site is added and started: every site has its path to it, and no existing path went
  down or moved (the time it took is reported);
- the controller is killed (SIGKILL) with the sites running: for 4 s no path goes down and no
  decision is made; it comes back and every site reports the version it runs, nothing resent;
- a wrong token, a token of another site and an expired one are refused with clear messages, and
  the refused daemons stop retrying and run no path;
- a restarted site starts from the config it stored, with the controller down.

Prints a JSON report; exit 0 passed, 1 failed.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time


class Failed(Exception):
    pass


def fail(msg):
    raise Failed(msg)


def free_port(kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(what, fn, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = fn()
        if v:
            return v
        time.sleep(0.1)
    fail("timed out after %.0f s waiting for %s" % (timeout, what))


class Fleet:
    def __init__(self, build, work):
        self.build = build
        self.work = work
        self.port = free_port()
        self.probe_port = free_port(socket.SOCK_DGRAM)
        self.procs = {}
        self.logs = []
        self.pin = None

    def path(self, name):
        return os.path.join(self.work, name)

    def cli(self, *args, check=True):
        r = subprocess.run([os.path.join(self.build, "bin", "patronus"), "controller", "--socket",
                            self.path("admin.sock")] + list(args), capture_output=True, text=True)
        if check and r.returncode != 0:
            fail("patronus controller %s: %s" % (" ".join(args), r.stderr.strip()))
        return r

    def cli_json(self, *args):
        return json.loads(self.cli("--json", *args).stdout)

    def start_controller(self):
        if not os.path.exists(self.path("controller.yaml")):
            with open(self.path("controller.yaml"), "w") as f:
                f.write("listen: 127.0.0.1:%d\nstate_db: fleet.db\nadmin_socket: admin.sock\n"
                        "debounce_ms: 200\nmax_wait_ms: 1000\n" % self.port)
        log = open(self.path("controller.log"), "a")
        self.logs.append(log)
        self.procs["controller"] = subprocess.Popen(
            [os.path.join(self.build, "bin", "patronus-controller"), "--config",
             self.path("controller.yaml")], stdout=log, stderr=subprocess.STDOUT)
        wait_for("the controller's admin socket",
                 lambda: self.cli("sites", "list", check=False).returncode == 0, 10)
        if self.pin is None:
            with open(self.path("controller.log")) as f:
                for word in f.read().split():
                    if word.startswith("ed25519:"):
                        self.pin = word
            if not self.pin:
                fail("the controller's log does not print its key")

    def kill(self, name, sig=signal.SIGKILL):
        p = self.procs.pop(name)
        p.send_signal(sig)
        p.wait(15)

    def add_site(self, name, n, token_name=None, ttl="1h"):
        with open(self.path(name + "-site.yaml"), "w") as f:
            f.write("sites:\n  - name: %s\n    subnets: [192.168.%d.0/24]\n    endpoints:\n"
                    "      - {name: wan0, address: 127.0.0.%d:51820, type: wan}\n" % (name, n, n))
        self.cli("sites", "add", "-f", self.path(name + "-site.yaml"))
        if token_name is not False:
            self.cli("token", "create", "--site", token_name or name, "--ttl", ttl, "--out",
                     self.path(name + ".token"))

    def start_site(self, name):
        with open(self.path(name + ".yaml"), "w") as f:
            f.write("""site: {name}
state_db: {name}.db
control_socket: {name}.sock
plugin_dir: {plugins}
flush_interval_ms: 100
plugins:
  - plugin: probes
    name: probe
    config: {{port: {port}, interval_ms: 50, idle_interval_ms: 100, detect_multiplier: 3}}
  - plugin: scoring
  - plugin: netpolicy
    name: k8s
controller:
  address: 127.0.0.1:{cport}
  pin: {pin}
  token_file: {name}.token
  report_interval_ms: 500
runtime:
  keys_dir: keys-{name}
  probe: probe
  scorer: scoring
""".format(name=name, plugins=os.path.join(self.build, "plugins"), port=self.probe_port,
           cport=self.port, pin=self.pin))
        log = open(self.path(name + ".log"), "a")
        self.logs.append(log)
        self.procs[name] = subprocess.Popen(
            [os.path.join(self.build, "bin", "patronusd"), "--config", self.path(name + ".yaml")],
            stdout=log, stderr=subprocess.STDOUT)

    def site_paths(self, name):
        r = subprocess.run([os.path.join(self.build, "bin", "patronus"), "paths", "list",
                            "--socket", self.path(name + ".sock"), "--json"],
                           capture_output=True, text=True)
        return json.loads(r.stdout)["paths"] if r.returncode == 0 else None

    def decisions(self, name):
        r = subprocess.run([os.path.join(self.build, "bin", "patronus"), "decisions",
                            "--socket", self.path(name + ".sock"), "--json", "--limit", "1000"],
                           capture_output=True, text=True)
        return json.loads(r.stdout).get("decisions", []) if r.returncode == 0 else None

    def log(self, name):
        with open(self.path(name + ".log")) as f:
            return f.read()

    def cleanup(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()
        for log in self.logs:
            log.close()


def all_up(fleet, sites):
    """Every site's paths to every other site up, seen both ways: {site: {path id: name}}."""
    out = {}
    for s in sites:
        paths = fleet.site_paths(s)
        if paths is None or len(paths) != len(sites) - 1:
            return None
        if any(p["state"] != "up" for p in paths):
            return None
        out[s] = {p["id"]: p["name"] for p in paths}
    return out


def run(fleet, report):
    fleet.start_controller()
    sites = ["hq", "branch", "dc"]
    for i, s in enumerate(sites):
        fleet.add_site(s, 10 + i)
        mode = os.stat(fleet.path(s + ".token")).st_mode & 0o777
        if mode != 0o600:
            fail("the token file is %o, not 600" % mode)
    t0 = time.monotonic()
    for s in sites:
        fleet.start_site(s)
    ids = wait_for("three enrolled sites with every path up", lambda: all_up(fleet, sites), 30)
    report["three_sites_up_s"] = round(time.monotonic() - t0, 2)
    # One id per path, the same at both ends.
    by_id = {}
    for s, paths in ids.items():
        for pid, name in paths.items():
            by_id.setdefault(pid, set()).add(s)
    if len(by_id) != 3 or any(len(v) != 2 for v in by_id.values()):
        fail("path ids are not fleet-wide: %s" % ids)
    status = fleet.cli_json("fleet", "status")["status"]["sites"]
    for v in status:
        if not (v["enrolled"] and v["connected"] and v["applied_version"] == v["version"] > 0):
            fail("fleet status after enrolment: %s" % v)
    # The sites' reports (every 500 ms here) reach the fleet view.
    wait_for("fleet paths to show the six path ends up", lambda: (lambda v: len(v) == 6 and all(
        p["state"] == "up" for p in v))(fleet.cli_json("fleet", "paths")["paths"].get("paths", [])),
        10)

    # The sites' decisions reach the controller (bounded log per site), each class's path is
    # reported, and each site has a short history of its path counts.
    def decided():
        d = fleet.cli_json("fleet", "decisions", "--limit", "1000")["decisions"].get(
            "decisions", [])
        return {x["site"] for x in d if x["reason"] == "initial"} == set(sites) and d
    d = wait_for("the sites' initial decisions in fleet decisions", decided, 10)
    report["decisions_reported"] = len(d)
    st = fleet.cli_json("fleet", "status")["status"]["sites"]
    if any(not v.get("history") for v in st):
        fail("a site without a history of its path counts: %s" % st)

    # A fourth site: every site gets its path to it; nothing that ran moves.
    before = {s: len(fleet.decisions(s)) for s in sites}
    fleet.add_site("edge", 13)
    t1 = time.monotonic()
    fleet.start_site("edge")
    sites.append("edge")
    wait_for("every site's path to the fourth", lambda: all_up(fleet, sites), 30)
    report["fourth_site_all_paths_up_s"] = round(time.monotonic() - t1, 2)
    for s in sites[:3]:
        if " is down" in fleet.log(s):
            fail("%s: a path went down while a site was added:\n%s" % (s, fleet.log(s)))
        moved = [d for d in fleet.decisions(s)[: len(fleet.decisions(s)) - before[s]]
                 if d.get("dst_site") != "edge" or d.get("reason") != "initial"]
        if moved:
            fail("%s: decisions not about the new site: %s" % (s, moved))

    # The fleet's NetworkPolicies and inventory: every site's policy instance reloads them,
    # nothing else moves; a policy the CLI cannot validate is refused before it is sent.
    with open(fleet.path("inventory.yaml"), "w") as f:
        f.write("apiVersion: v1\nkind: Pod\nmetadata: {name: db, namespace: shop, labels: "
                "{app: db}}\nstatus: {podIP: 10.9.0.20}\n")
    with open(fleet.path("policy.yaml"), "w") as f:
        f.write("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: "
                "db-deny, namespace: shop}\nspec: {podSelector: {matchLabels: {app: db}}, "
                "policyTypes: [Ingress]}\n")
    with open(fleet.path("bad-policy.yaml"), "w") as f:
        f.write("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: "
                "x, namespace: shop}\nspec: {policyTypes: [Up]}\n")
    before = {s: len(fleet.decisions(s)) for s in sites}
    fleet.cli("policy", "inventory", "-f", fleet.path("inventory.yaml"))
    fleet.cli("policy", "apply", "-f", fleet.path("policy.yaml"))
    time.sleep(1)  # past the debounce: the versions with the policies are compiled

    def reloaded():
        v = fleet.cli_json("fleet", "status")["status"]["sites"]
        return all(x["applied_version"] == x["version"] for x in v) and all(
            "the fleet's policies reloaded" in fleet.log(s) for s in sites)
    wait_for("every site to reload the fleet's policies", reloaded, 15)
    listed = fleet.cli_json("policy", "list")["policies"]
    if [p["name"] for p in listed.get("policies", [])] != ["db-deny"] or listed.get("pods") != 1:
        fail("policy list: %s" % listed)
    bad = fleet.cli("policy", "apply", "-f", fleet.path("bad-policy.yaml"), check=False)
    if bad.returncode != 2 or "policyTypes" not in bad.stderr:
        fail("a bad policy: exit %d, %s" % (bad.returncode, bad.stderr))
    for s in sites:
        if " is down" in fleet.log(s) or len(fleet.decisions(s)) != before[s]:
            fail("%s: the policies moved something" % s)
    report["policies_reloaded_on"] = len(sites)

    # A plugin setting for the fleet: every site restarts its probe instance alone with it; no
    # path goes down, nothing moves. A config the plugin's schema refuses is refused by the CLI.
    with open(fleet.path("probe.yaml"), "w") as f:
        f.write("port: %d\ninterval_ms: 50\nidle_interval_ms: 100\ndetect_multiplier: 4\n"
                % fleet.probe_port)
    with open(fleet.path("bad-probe.yaml"), "w") as f:
        f.write("port: %d\nintreval_ms: 50\n" % fleet.probe_port)
    plugin_dir = os.path.join(fleet.build, "plugins")
    bad = fleet.cli("plugins", "set", "probe", "--plugin", "probes", "-f",
                    fleet.path("bad-probe.yaml"), "--plugin-dir", plugin_dir, check=False)
    if bad.returncode != 2 or "intreval_ms" not in bad.stderr:
        fail("a bad plugin config: exit %d, %s" % (bad.returncode, bad.stderr))
    fleet.cli("plugins", "set", "probe", "--plugin", "probes", "-f", fleet.path("probe.yaml"),
              "--plugin-dir", plugin_dir)
    time.sleep(1)

    def restarted():
        v = fleet.cli_json("fleet", "status")["status"]["sites"]
        return all(x["applied_version"] == x["version"] for x in v) and all(
            'restarted ["probe"]' in fleet.log(s) for s in sites)
    wait_for("every site to restart its probe with the fleet's config", restarted, 15)
    time.sleep(1)
    for s in sites:
        if " is down" in fleet.log(s) or len(fleet.decisions(s)) != before[s]:
            fail("%s: the plugin setting moved something" % s)
    if not all_up(fleet, sites):
        fail("a path is not up after the plugin setting")
    report["probe_restarted_on"] = len(sites)

    # The controller dies: nothing on the sites changes.
    counts = {s: len(fleet.decisions(s)) for s in sites}
    fleet.kill("controller")
    end = time.monotonic() + 4
    while time.monotonic() < end:
        if not all_up(fleet, sites):
            fail("a path went down with the controller gone")
        time.sleep(0.2)
    for s in sites:
        if len(fleet.decisions(s)) != counts[s]:
            fail("%s decided something with the controller gone" % s)
    report["controller_down_paths_down"] = 0
    t2 = time.monotonic()
    fleet.start_controller()

    def current():
        v = fleet.cli_json("fleet", "status")["status"]["sites"]
        return all(x["connected"] and x["applied_version"] == x["version"] for x in v) and v
    wait_for("every site back with the current version", current, 30)
    report["controller_back_all_current_s"] = round(time.monotonic() - t2, 2)
    for s in sites:
        if "controller: applied version" in fleet.log(s).split("connected to")[-1]:
            fail("%s was sent its config again after the controller came back" % s)

    # Bad tokens: each refused with a message that says why, and the daemon stops asking.
    fleet.add_site("wrong", 20, token_name=False)
    with open(fleet.path("wrong.token"), "w") as f:
        f.write("ptk_not-a-real-token\n")
    fleet.add_site("other", 21, token_name="wrong")  # a token for another site
    fleet.add_site("late", 22, ttl="1s")
    time.sleep(1.5)
    for s in ("wrong", "other", "late"):
        fleet.start_site(s)
    expect = {"wrong": "the token is unknown or was used already",
              "other": "the token is for another site",
              "late": "the token expired"}
    for s, why in expect.items():
        wait_for("%s refused" % s, lambda: why in fleet.log(s), 15)
        if "not retrying" not in fleet.log(s):
            fail("%s: a refused enrolment keeps retrying" % s)
        if fleet.site_paths(s):
            fail("%s runs paths without being enrolled" % s)
    report["refusals"] = {s: [l for l in fleet.log(s).splitlines() if "refused" in l][0]
                          for s in expect}
    # A used token again (hq's, still in its file): refused too.
    fleet.kill("late", signal.SIGTERM)
    shutil.copy(fleet.path("hq.token"), fleet.path("late.token"))
    fleet.start_site("late")
    wait_for("a used token refused", lambda: fleet.log("late").count(
        "the token is unknown or was used already") == 1, 15)

    # A site restarted with the controller down starts from its stored config.
    fleet.kill("controller")
    fleet.kill("branch", signal.SIGTERM)
    fleet.start_site("branch")
    wait_for("branch's paths back from its stored config", lambda: all_up(fleet, sites), 30)
    if "starting from version" not in fleet.log("branch"):
        fail("branch did not say it started from its stored config")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="patronus-controller-")
    fleet = Fleet(os.path.abspath(args.build), work)
    report = {}
    code = 0
    try:
        run(fleet, report)
        report["result"] = "passed"
    except Exception as e:  # a Failed, or a bug in this script: the logs either way
        report["result"] = "failed"
        report["error"] = "%s: %s" % (type(e).__name__, e)
        for name in ("hq", "branch", "dc", "edge"):  # the runtime's counters say why
            r = subprocess.run([os.path.join(fleet.build, "bin", "patronus"), "status",
                                "--socket", fleet.path(name + ".sock"), "--json"],
                               capture_output=True, text=True)
            if r.returncode == 0:
                report.setdefault("status", {})[name] = json.loads(r.stdout).get("counters")
            report.setdefault("paths", {})[name] = [
                {k: p.get(k) for k in ("name", "status", "score", "loss_pct", "rtt_ms", "samples")}
                for p in (fleet.site_paths(name) or [])]
        for name in ("controller", "hq", "branch", "dc", "edge", "wrong", "other", "late"):
            p = fleet.path(name + ".log")
            if os.path.exists(p):
                with open(p) as f:
                    report.setdefault("logs", {})[name] = f.read()[-1500:]
        code = 1
    finally:
        fleet.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(report, indent=2))
    return code


if __name__ == "__main__":
    sys.exit(main())
