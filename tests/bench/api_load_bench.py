#!/usr/bin/env python3
"""The operator API under load: the real patronus-controller, N Server-Sent Events clients
connected and reading, a steady rate of writes, and wrk (Debian's) driving reads and writes.
Every number has its baseline in the same run: GET /livez, a handler that does nothing, through
the same TLS server.

Reports (JSON): requests per second and p50/p99 latency for the baseline, reads (GET /sites, a
page of 50), writes (POST /sites, each one audited, stored with fsync and streamed to every SSE
client), the ratios to the baseline; the controller's memory per SSE client; the latency of the
steady writes while wrk runs; events delivered to the SSE clients.

Usage: api_load_bench.py --build BUILD [--sse 200] [--seconds 5] [--write-rate 20]
"""

import argparse
import http.client
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "api"))
import apitest  # noqa: E402
from apitest import Controller, Failure, check  # noqa: E402


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class SseClients(threading.Thread):
    """N event streams read by one thread (non-blocking sockets, a selector), as a proxy or a
    browser tab per client would hold them; counts the events each gets and whether it was
    closed on it."""

    def __init__(self, c, token, n, stop):
        super().__init__(daemon=True)
        self.c, self.token, self.n, self.stop = c, token, n, stop
        self.events = [0] * n
        self.closed = [False] * n
        self.connected = 0
        self.ready = threading.Event()
        self.error = None

    def run(self):
        import selectors
        try:
            ctx = ssl.create_default_context(cafile=self.c.cacert)
            sel = selectors.DefaultSelector()
            socks = []
            for i in range(self.n):
                s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", self.c.port), timeout=30),
                                    server_hostname="localhost")
                s.sendall(("GET /api/v1/events/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n"
                           % self.token).encode())
                head = s.recv(4096)
                if b" 200 " in head[:20]:
                    self.connected += 1
                s.setblocking(False)
                sel.register(s, selectors.EVENT_READ, i)
                socks.append(s)
            self.ready.set()
            while not self.stop.is_set():
                for key, _ in sel.select(timeout=0.2):
                    i = key.data
                    while True:
                        try:
                            b = key.fileobj.recv(65536)
                        except (ssl.SSLWantReadError, BlockingIOError):
                            break
                        except OSError:
                            b = b""
                        if not b:
                            self.closed[i] = True
                            sel.unregister(key.fileobj)
                            break
                        self.events[i] += b.count(b"\nevent: ")
            for s in socks:
                s.close()
        except Exception as e:  # noqa: BLE001 - reported, and the run fails
            self.error = str(e)
            self.ready.set()


class Writer(threading.Thread):
    """A steady rate of writes (a site added, then removed) over one kept-alive connection."""

    def __init__(self, c, token, rate, stop):
        super().__init__(daemon=True)
        self.c, self.token, self.rate, self.stop = c, token, rate, stop
        self.latencies_ms = []
        self.errors = 0

    def run(self):
        ctx = ssl.create_default_context(cafile=self.c.cacert)
        conn = http.client.HTTPSConnection("localhost", self.c.port, context=ctx, timeout=30)
        h = {"Authorization": "Bearer " + self.token, "Content-Type": "application/json"}
        i = 0
        next_at = time.time()
        while not self.stop.is_set():
            name = "w%d" % (i // 2)
            if i % 2 == 0:
                body = json.dumps({"name": name, "endpoints": [
                    {"name": "wan0", "address": "100.64.%d.%d:51820" % ((i // 2) // 250 % 250, (i // 2) % 250 + 1)}]})
                req = ("POST", "/api/v1/sites", body)
            else:
                req = ("DELETE", "/api/v1/sites/" + name, None)
            t0 = time.perf_counter()
            try:
                conn.request(req[0], req[1], body=req[2], headers=h)
                r = conn.getresponse()
                r.read()
                if r.status not in (201, 204):
                    self.errors += 1
            except OSError as e:
                self.errors += 1
                self.last_error = str(e)
                conn.close()
                conn = http.client.HTTPSConnection("localhost", self.c.port, context=ctx, timeout=30)
            self.latencies_ms.append((time.perf_counter() - t0) * 1000)
            i += 1
            next_at += 1.0 / self.rate
            time.sleep(max(0.0, next_at - time.time()))
        conn.close()


def wrk(c, path, seconds, connections, token=None, script=None):
    args = ["wrk", "-t2", "-c%d" % connections, "-d%ds" % seconds, "--latency", "--timeout", "10s"]
    if token:
        args += ["-H", "Authorization: Bearer " + token]
    if script:
        args += ["-s", script]
    args.append(c.base.replace("localhost", "127.0.0.1") + path)
    out = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 60).stdout

    def ms(label):
        m = re.search(r"^\s+%s\s+([\d.]+)(us|ms|s)\s*$" % label, out, re.M)
        check(m, "wrk printed no %s latency:\n%s" % (label, out))
        v = float(m.group(1))
        return v / 1000 if m.group(2) == "us" else v * 1000 if m.group(2) == "s" else v

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    check(rps, "wrk printed no rate:\n" + out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": round(float(rps.group(1)), 1), "p50_ms": round(ms("50%"), 3),
            "p99_ms": round(ms("99%"), 3), "non_2xx": int(non2xx.group(1)) if non2xx else 0}


WRITE_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local counter = 0
local id = 0
function setup(thread)
  id = id + 1
  thread:set("tid", id)
end
function request()
  counter = counter + 1
  local n = tid * 100000 + counter
  local body = string.format('{"name":"b%d","endpoints":[{"name":"wan0","address":"10.%d.%d.%d:51820"}]}',
    n, 100 + tid, math.floor(counter / 250) % 250, counter % 250 + 1)
  return wrk.format(nil, nil, nil, body)
end
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--sse", type=int, default=200)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--write-rate", type=float, default=20)
    ap.add_argument("--connections", type=int, default=16)
    args = ap.parse_args()
    report = {"sse_clients": args.sse, "seconds": args.seconds, "write_rate": args.write_rate}
    stop = threading.Event()
    try:
        with Controller(args.build, extra_api={"max_streams": max(512, args.sse + 16),
                                               "request_timeout_ms": 30000}, name="bench") as c:
            token = c.login(c.admin, c.password)["access_token"]
            time.sleep(0.3)
            before = rss_kib(c.proc.pid)
            clients = SseClients(c, token, args.sse, stop)
            clients.start()
            clients.ready.wait(60)
            check(clients.error is None and clients.connected == args.sse,
                  "SSE clients: %d connected, %s" % (clients.connected, clients.error))
            time.sleep(0.5)
            after = rss_kib(c.proc.pid)
            report["rss_kib_before_streams"] = before
            report["rss_kib_with_streams"] = after
            report["kib_per_sse_client"] = round((after - before) / max(1, args.sse), 1)

            writer = Writer(c, token, args.write_rate, stop)
            writer.start()
            report["baseline_livez"] = wrk(c, "/livez", args.seconds, args.connections)
            report["reads_sites"] = wrk(c, "/api/v1/sites?limit=50", args.seconds, args.connections, token)
            # Under reads and the steady writes, every stream keeps up and gets every event.
            steady_so_far = len(writer.latencies_ms)
            events_mid = list(clients.events)
            closed_mid = sum(clients.closed)
            report["sse_during_reads"] = {"events_min": min(events_mid), "events_max": max(events_mid),
                                          "steady_writes": steady_so_far, "dropped": closed_mid}
            rss_peak = rss_kib(c.proc.pid)
            with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
                f.write(WRITE_SCRIPT)
            try:
                report["writes_sites"] = wrk(c, "/api/v1/sites", args.seconds, args.connections, token, f.name)
            finally:
                os.unlink(f.name)
            stop.set()
            writer.join(30)
            clients.join(10)
            lat = sorted(writer.latencies_ms)
            check(lat, "the steady writer made no write")
            report["steady_writes"] = {
                "count": len(lat), "errors": writer.errors,
                "p50_ms": round(lat[len(lat) // 2], 2),
                "p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 2)}
            # Under the write flood (every write an event to every stream), readers that fall
            # behind are dropped at their queue's bound; the controller's memory stays bounded.
            report["sse_during_write_flood"] = {
                "events_min": min(clients.events), "events_max": max(clients.events),
                "dropped": sum(clients.closed)}
            base = report["baseline_livez"]
            for k in ("reads_sites", "writes_sites"):
                report[k]["rps_ratio_to_baseline"] = round(report[k]["rps"] / base["rps"], 3)
                report[k]["p99_ratio_to_baseline"] = round(report[k]["p99_ms"] / base["p99_ms"], 2)
            report["rss_kib_after_reads"] = rss_peak
            report["rss_kib_at_end"] = rss_kib(c.proc.pid)
            # What must hold: every answer a success, every client fed, the writer unharmed.
            for k in ("baseline_livez", "reads_sites", "writes_sites"):
                check(report[k]["non_2xx"] == 0, "%s: %d non-2xx answers" % (k, report[k]["non_2xx"]))
            check(writer.errors == 0, "the steady writer got %d errors" % writer.errors)
            check(closed_mid == 0, "%d streams were dropped under the steady writes" % closed_mid)
            check(min(events_mid) >= steady_so_far - 1,
                  "an SSE client missed events: %d < %d writes" % (min(events_mid), steady_so_far))
            # The bound: queued bytes at most max_streams x 256 KiB, plus the TLS buffers.
            check(report["rss_kib_at_end"] < before + args.sse * (256 + 128) + 64 * 1024,
                  "the controller grew to %d KiB" % report["rss_kib_at_end"])
    except Failure as e:
        stop.set()
        return apitest.finish(report, e)
    return apitest.finish(report)


if __name__ == "__main__":
    sys.exit(main())
