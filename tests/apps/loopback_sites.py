"""Patronus sites on loopback, for the tests and benchmarks that run real daemons without root
(tests/apps/site_metrics.py, tests/bench/metrics_scrape_bench.py): the sites file and every
endpoint's key (`patronus mesh plan`), a daemon config per site, the daemons started, and every
one stopped at the end, whatever happened."""
import os
import signal
import socket
import subprocess


def free_port(kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LoopbackSites:
    """`sites`: [(name, third octet of its LAN, [endpoint addresses])]."""

    def __init__(self, build, work, sites):
        self.build = os.path.abspath(build)
        self.work = work
        self.sites = sites
        self.probe_port = free_port(socket.SOCK_DGRAM)  # the same on every site (user guide)
        self.procs = {}
        lines = ["sites:"]
        for name, octet, addresses in sites:
            lines += ["  - name: %s" % name, "    subnets: [192.168.%d.0/24]" % octet,
                      "    endpoints:"]
            lines += ["      - {name: wan%d, address: '%s:51820', type: wan}" % (i, a)
                      for i, a in enumerate(addresses)]
        with open(os.path.join(work, "sites.yaml"), "w") as f:
            f.write("\n".join(lines) + "\n")
        subprocess.run([os.path.join(self.build, "bin", "patronus"), "mesh", "plan", "--sites",
                        os.path.join(work, "sites.yaml"), "--keys-dir",
                        os.path.join(work, "keys")], check=True, stdout=subprocess.DEVNULL)

    def write_config(self, site, http_listen, probes, daemon_extra=""):
        """Site `site`'s daemon config: probes (their `config:` flow map without the port) and
        the scoring plugin, the runtime over the sites file; `daemon_extra`: more top-level
        keys."""
        with open(os.path.join(self.work, site + ".yaml"), "w") as f:
            f.write("site: %s\nstate_db: %s.db\nplugin_dir: %s\nhttp_listen: '%s'\n%s"
                    "plugins:\n  - plugin: probes\n    name: probe\n"
                    "    config: {port: %d, %s}\n  - plugin: scoring\n"
                    "runtime:\n  sites_file: sites.yaml\n  keys_dir: keys\n  probe: probe\n"
                    "  scorer: scoring\n"
                    % (site, site, os.path.join(self.build, "plugins"), http_listen,
                       daemon_extra, self.probe_port, probes))

    def start(self, site):
        log = open(os.path.join(self.work, site + ".log"), "wb")
        self.procs[site] = subprocess.Popen(
            [os.path.join(self.build, "bin", "patronusd"), "-c",
             os.path.join(self.work, site + ".yaml")], stdout=log, stderr=subprocess.STDOUT)
        return self.procs[site]

    def logs(self, chars):
        out = {}
        for name, _, _ in self.sites:
            p = os.path.join(self.work, name + ".log")
            if os.path.exists(p):
                with open(p, errors="replace") as f:
                    out[name] = f.read()[-chars:]
        return out

    def stop(self):
        """SIGTERM, then SIGKILL after 10 s, for every daemon still running."""
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
