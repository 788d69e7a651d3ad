#!/usr/bin/env python3
"""A running site's /metrics, /livez and /readyz (patronusd's http_listen), unprivileged on
loopback: two daemons probe each other over real UDP.

- /readyz says 503 with the failing check until the first decisions, then 200;
- Prometheus' own checker (promtool check metrics) finds nothing in the live scrape;
- the families say what the site does: paths up with probe counts and RTTs, each class's path,
  failover counters from zero, the probe plugin's drop counters (a malformed datagram is counted
  as such), plugin calls, the store's batches;
- killing the peer shows in the gauges and the failover counters;
- hostile HTTP (malformed, oversized, a slow client, more connections than the bound, a POST)
  is answered or closed and the site keeps answering.
Prints a JSON report; exits 1 on the first failed check."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from loopback_sites import LoopbackSites, free_port  # noqa: E402

PROMTOOL = "/usr/bin/promtool"


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


def get(url, timeout=5):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), dict(e.headers)


def wait_for(what, fn, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = fn()
        if v:
            return v
        time.sleep(0.1)
    raise Failure("timed out after %.0f s waiting for %s" % (timeout, what))


def parse(text):
    """{(name, frozenset(labels)): value} of an exposition (the test's own reader)."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        name, _, rest = series.partition("{")
        labels = []
        rest = rest.rstrip("}")
        while rest:
            k, _, rest = rest.partition('="')
            v = ""
            while rest:
                c, rest = rest[0], rest[1:]
                if c == "\\":
                    v += {"n": "\n"}.get(rest[0], rest[0])
                    rest = rest[1:]
                elif c == '"':
                    break
                else:
                    v += c
            labels.append((k, v))
            rest = rest[1:] if rest.startswith(",") else rest
        out[(name, frozenset(labels))] = float(value)
    return out


def series(m, name, **labels):
    return [v for (n, ls), v in m.items()
            if n == name and all((k, str(x)) in ls for k, x in labels.items())]


def raw(port, data, read_timeout=8):
    with socket.create_connection(("127.0.0.1", port), timeout=read_timeout) as s:
        s.sendall(data)
        got = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
        except socket.timeout:
            pass
        return got


def main():
    build = os.path.abspath(sys.argv[sys.argv.index("--build") + 1])
    if not os.path.exists(PROMTOOL):
        print("no promtool (Debian package prometheus; scripts/install-deps installs it)")
        return 1
    work = tempfile.mkdtemp(prefix="patronus-site-metrics-")
    report = {}
    lab = None
    ok = False
    try:
        lab = LoopbackSites(build, work, [("hq", 10, ["127.0.0.1", "127.0.0.3"]),
                                          ("branch", 20, ["127.0.0.2"])])
        probe_port = lab.probe_port
        procs = lab.procs
        ports = {}
        for site in ("hq", "branch"):
            ports[site] = free_port()
            lab.write_config(site, "127.0.0.1:%d" % ports[site],
                             "interval_ms: 50, idle_interval_ms: 100, detect_multiplier: 3, "
                             "stats_interval_ms: 200",
                             "control_socket: %s.sock\nflush_interval_ms: 100\n"
                             "log_format: logfmt\n" % site)
        base = "http://127.0.0.1:%d" % ports["hq"]
        for site in ("hq", "branch"):
            lab.start(site)

        # Not ready until the first decisions; the failing check is named.
        def listening():
            try:
                return get(base + "/readyz?verbose")
            except OSError:
                return None
        code, body, _ = wait_for("hq's listener", listening, 20)
        report["first_readyz"] = [code, body.strip().splitlines()[-1]]
        if code == 503:
            check("[-]first_decisions failed" in body or "[-]config_applied" in body,
                  "a 503 /readyz names no failed check: %s" % body)
        wait_for("hq ready", lambda: get(base + "/readyz")[0] == 200, 20)
        code, body, _ = get(base + "/readyz?verbose")
        check(code == 200 and "[+]first_decisions ok" in body and "readyz check passed" in body,
              "/readyz?verbose: %d %s" % (code, body))
        code, body, _ = get(base + "/livez")
        check(code == 200 and body == "ok\n", "/livez: %d %r" % (code, body))

        time.sleep(1.5)  # windows fill; the stats (200 ms) publish the drop counters
        code, text, headers = get(base + "/metrics")
        check(code == 200, "/metrics: %d" % code)
        check(headers.get("Content-Type", "").startswith("text/plain; version=0.0.4"),
              "content type %s" % headers.get("Content-Type"))
        m = parse(text)
        up = series(m, "patronus_path_up", peer_site="branch")
        check(len(up) == 2 and all(v == 1 for v in up), "patronus_path_up: %s" % up)
        sent = series(m, "patronus_path_probes_sent_total", peer_site="branch")
        received = series(m, "patronus_path_probes_received_total", peer_site="branch")
        check(len(sent) == 2 and all(v > 5 for v in sent) and all(r > 5 for r in received),
              "probe counters: sent %s received %s" % (sent, received))
        counts = series(m, "patronus_path_probe_rtt_seconds_count", peer_site="branch")
        check(counts and all(c > 5 for c in counts), "RTT histogram counts %s" % counts)
        rtt = series(m, "patronus_path_rtt_seconds", peer_site="branch")
        check(rtt and all(0 < v < 0.05 for v in rtt), "RTT on loopback: %s" % rtt)
        check(series(m, "patronus_class_selected_path", peer_site="branch", **{"class": "voice"})
              == [1], "voice has no selected path")
        check(series(m, "patronus_class_has_path", peer_site="branch") and
              all(v == 1 for v in series(m, "patronus_class_has_path", peer_site="branch")),
              "a class without a path while both paths are up")
        fo = series(m, "patronus_class_failovers_total", peer_site="branch", reason="no_path")
        check(fo and all(v == 0 for v in fo), "failover counters before a fault: %s" % fo)
        check(series(m, "patronus_plugin_calls_total", plugin_instance="scoring")[0] > 0,
              "no calls into the scorer counted")
        check(series(m, "patronus_store_write_batches_total")[0] > 0, "no store batches")
        check(series(m, "patronus_site_ready") == [1], "patronus_site_ready is not 1")
        with open(os.path.join(work, "keys", "hq", "wan0.key")) as f:
            check(f.read().strip() not in text, "a private key in /metrics")
        forged_before = series(m, "patronus_plugin_probe_dropped_total", reason="forged")
        check(forged_before == [0], "forged drops before any: %s" % forged_before)
        # A datagram that is no probe at the probe port: dropped and counted as malformed.
        malformed_before = series(m, "patronus_plugin_probe_dropped_total",
                                  reason="malformed")[0]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"\x00" * 7, ("127.0.0.1", probe_port))

        def dropped():
            mm = parse(get(base + "/metrics")[1])
            v = series(mm, "patronus_plugin_probe_dropped_total", reason="malformed")
            return v and v[0] > malformed_before
        wait_for("the malformed datagram counted", dropped, 5)
        report["scrape_bytes"] = len(text)
        report["families"] = text.count("# TYPE ")

        lint = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                              text=True, timeout=30)
        report["promtool"] = (lint.stdout + lint.stderr).strip() or "clean"
        check(lint.returncode == 0 and not (lint.stdout + lint.stderr).strip(),
              "promtool check metrics: %s" % report["promtool"])

        # Hostile HTTP: each answered or closed, bounded; the site keeps answering.
        port = ports["hq"]
        got = {
            "malformed": raw(port, b"GARBAGE\r\n\r\n"),
            "oversized_header": raw(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " +
                                    b"a" * 20000 + b"\r\n\r\n"),
            "post": raw(port, b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"),
            "unknown": raw(port, b"GET /nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        }
        expect = {"malformed": b" 400 ", "oversized_header": b" 431 ", "post": b" 405 ",
                  "unknown": b" 404 "}
        for k, want in expect.items():
            check(want in got[k].split(b"\r\n")[0], "%s: %r" % (k, got[k][:120]))
        report["hostile_http"] = {k: got[k].split(b"\r\n")[0].decode() for k in got}
        t = time.monotonic()
        slow = raw(port, b"GET /metrics HTTP/1.1\r\nHost:", read_timeout=15)
        slow_s = time.monotonic() - t
        check(slow == b"" and slow_s < 10, "a slow client: %r after %.1f s" % (slow, slow_s))
        report["hostile_http"]["slow_closed_after_s"] = round(slow_s, 2)
        many = []
        try:
            for _ in range(200):
                c = socket.create_connection(("127.0.0.1", port), timeout=2)
                many.append(c)
            time.sleep(0.5)
            closed = 0
            for c in many:
                c.settimeout(0.05)
                try:
                    if c.recv(1) == b"":
                        closed += 1
                except (socket.timeout, ConnectionResetError):
                    pass
            report["hostile_http"]["connections_closed_of_200"] = closed
            check(closed >= 200 - 64, "%d of 200 connections closed past the bound of 64" % closed)
        finally:
            for c in many:
                c.close()
        wait_for("/livez after the hostile clients", lambda: get(base + "/livez")[0] == 200, 10)

        # The peer dies: the paths go down, the classes have no path, the failovers are counted.
        procs["branch"].kill()
        procs["branch"].wait()

        def failed_over():
            mm = parse(get(base + "/metrics")[1])
            down = series(mm, "patronus_path_up", peer_site="branch")
            fo = series(mm, "patronus_class_failovers_total", peer_site="branch",
                        **{"class": "voice"})
            has = series(mm, "patronus_class_has_path", peer_site="branch", **{"class": "voice"})
            return mm if down and all(v == 0 for v in down) and sum(fo) >= 1 and has == [0] \
                else None
        m = wait_for("the failover in /metrics", failed_over, 20)
        report["failovers_voice"] = sum(series(m, "patronus_class_failovers_total",
                                               peer_site="branch", **{"class": "voice"}))
        state = series(m, "patronus_path_state", peer_site="branch", state="down")
        check(state == [1, 1], "patronus_path_state{state=down}: %s" % state)

        # Every log line is logfmt with the site and a component.
        with open(os.path.join(work, "hq.log"), errors="replace") as f:
            lines = [x for x in f.read().splitlines() if x]
        bad = [x for x in lines if not (x.startswith("ts=") and " site=hq " in x and
                                        " component=" in x and " msg=" in x)]
        check(not bad, "log lines not in logfmt: %s" % bad[:3])
        procs["hq"].send_signal(signal.SIGTERM)
        check(procs["hq"].wait(timeout=10) == 0, "hq did not stop cleanly")
        ok = True
    except Failure as e:
        report["failed"] = str(e)
        if lab is not None:
            report["logs"] = lab.logs(3000)
    finally:
        if lab is not None:
            for p in lab.procs.values():
                if p.poll() is None:
                    p.kill()
                    p.wait()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(report, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
