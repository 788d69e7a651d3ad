#!/usr/bin/env python3
"""The controller's /metrics, /livez and /readyz: Prometheus' own checker (promtool check metrics)
finds nothing in a live scrape; the families say what the fleet is; /metrics needs credentials;
health answers with its checks (?verbose)."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "api"))
import apitest  # noqa: E402
from apitest import Failure, check  # noqa: E402

PROMTOOL = "/usr/bin/promtool"


def scrape(c, token=None):
    args = ["curl", "-sS", "--cacert", c.cacert, "-w", "\n%{http_code}", c.base + "/metrics"]
    if token:
        args += ["-H", "Authorization: Bearer " + token]
    out = subprocess.run(args, capture_output=True, text=True, timeout=30).stdout
    body, _, code = out.rpartition("\n")
    return int(code), body


def main():
    build = sys.argv[sys.argv.index("--build") + 1]
    if not os.path.exists(PROMTOOL):
        print("no promtool (Debian package prometheus; scripts/install-deps installs it)")
        return 1
    report = {}
    try:
        with apitest.Controller(build, name="metrics") as c:
            admin = c.login(c.admin, c.password)["access_token"]
            for i in range(3):
                r = c.curl("POST", "/api/v1/sites", admin,
                           {"name": "m%d" % i, "endpoints": [{"name": "wan0", "address": "192.0.2.%d:51820" % (i + 1)}],
                            "subnets": ["10.%d.0.0/24" % i]})
                check(r.status == 201, "site: %d %s" % (r.status, r.body))
            code, _ = scrape(c)
            check(code == 401, "/metrics without credentials: %d" % code)
            code, body = scrape(c, admin)
            check(code == 200, "/metrics: %d %s" % (code, body[:200]))
            lint = subprocess.run([PROMTOOL, "check", "metrics"], input=body, capture_output=True,
                                  text=True, timeout=30)
            check(lint.returncode == 0 and not lint.stdout.strip() and not lint.stderr.strip(),
                  "promtool check metrics: %s %s" % (lint.stdout, lint.stderr))
            for line in ('patronus_controller_sites{state="not_enrolled"} 3',
                         'patronus_build_info{component="controller"',
                         "# TYPE patronus_controller_pushes_total counter"):
                check(line in body, "missing from /metrics: %s" % line)
            report["families"] = body.count("# TYPE ")
            for path in ("/livez", "/readyz?verbose"):
                out = subprocess.run(["curl", "-sS", "--cacert", c.cacert, "-w", "\n%{http_code}",
                                      c.base + path], capture_output=True, text=True).stdout
                body, _, code = out.rpartition("\n")
                check(code == "200", "%s: %s %s" % (path, code, body))
                if "verbose" in path:
                    check("[+]event_loop ok" in body and "readyz check passed" in body,
                          "%s: %s" % (path, body))
    except Failure as e:
        return apitest.finish(report, e)
    return apitest.finish(report)


if __name__ == "__main__":
    sys.exit(main())
