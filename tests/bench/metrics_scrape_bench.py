#!/usr/bin/env python3
"""The cost of a site's /metrics under a scrape every 100 ms, on a real site: hq (9 endpoints)
and branch (10 endpoints) on loopback, 90 probed paths at 50 ms, real UDP, the scoring plugin.

The baseline is the same daemon in the same run without scraping: hq's CPU time (utime + stime
from /proc) over a window without scrapes, then over an equal window with a scrape every 100 ms.
Reports the CPU ratio (with / without), the CPU a scrape costs, the scrape's p50/p99/max latency
and its size. With --max-cpu-ratio the run fails above that ratio.

Usage: metrics_scrape_bench.py --build BUILD [--seconds 20] [--max-cpu-ratio 2.0]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "apps"))
from loopback_sites import LoopbackSites, free_port  # noqa: E402


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def get(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.status, r.read()


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--max-cpu-ratio", type=float, default=0)
    args = ap.parse_args()
    args.build = os.path.abspath(args.build)
    work = tempfile.mkdtemp(prefix="patronus-scrape-bench-")
    report = {"seconds_per_window": args.seconds}
    lab = None
    try:
        http_port = free_port()
        lab = LoopbackSites(args.build, work,
                            [("hq", 10, ["127.0.1.%d" % (i + 1) for i in range(9)]),
                             ("branch", 20, ["127.0.2.%d" % (i + 1) for i in range(10)])])
        for site in ("hq", "branch"):
            lab.write_config(site, "127.0.0.1:%d" % http_port if site == "hq" else "none",
                             "interval_ms: 50, idle_interval_ms: 50", "control_socket: none\n")
        hq = lab.start("hq")
        lab.start("branch")
        base = "http://127.0.0.1:%d" % http_port
        deadline = time.monotonic() + 60
        while True:
            try:
                if get(base + "/readyz")[0] == 200:
                    body = get(base + "/metrics")[1].decode()
                    up = sum(1 for line in body.splitlines()
                             if line.startswith("patronus_path_up{") and line.endswith(" 1"))
                    if up == 90:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the 90 paths did not come up")
            time.sleep(0.5)
        time.sleep(2)

        c0 = cpu_s(hq.pid)
        time.sleep(args.seconds)
        idle = cpu_s(hq.pid) - c0

        lat = []
        size = 0
        c0 = cpu_s(hq.pid)
        t_end = time.monotonic() + args.seconds
        next_at = time.monotonic()
        while time.monotonic() < t_end:
            t = time.monotonic()
            status, body = get(base + "/metrics")
            lat.append((time.monotonic() - t) * 1000)
            if status != 200:
                raise RuntimeError("scrape %d" % status)
            size = len(body)
            next_at += 0.1
            time.sleep(max(0, next_at - time.monotonic()))
        scraped = cpu_s(hq.pid) - c0
        series = sum(1 for line in body.decode().splitlines() if line and line[0] != "#")
        report.update({
            "paths": 90,
            "cpu_s_without_scrapes": round(idle, 3),
            "cpu_s_with_scrapes": round(scraped, 3),
            "cpu_ratio": round(scraped / idle, 3) if idle > 0 else None,
            "scrapes": len(lat),
            "cpu_ms_per_scrape": round((scraped - idle) / len(lat) * 1000, 3),
            "scrape_ms_p50": round(pct(lat, 50), 2),
            "scrape_ms_p99": round(pct(lat, 99), 2),
            "scrape_ms_max": round(max(lat), 2),
            "scrape_bytes": size,
            "series": series,
        })
        ok = True
        if args.max_cpu_ratio and (report["cpu_ratio"] is None or
                                   report["cpu_ratio"] > args.max_cpu_ratio):
            report["failed"] = "CPU ratio %s above %s" % (report["cpu_ratio"], args.max_cpu_ratio)
            ok = False
    except (RuntimeError, OSError, subprocess.CalledProcessError) as e:
        report["failed"] = str(e)
        if lab is not None:
            report["logs"] = lab.logs(2000)
        ok = False
    finally:
        if lab is not None:
            lab.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(report, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
