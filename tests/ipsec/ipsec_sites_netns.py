#!/usr/bin/python3
"""Two Patronus sites over IPsec/IKEv2 (strongSwan's charon, driven by the ipsec plugin), in
network namespaces, with real daemons.

Namespaces: the site routers hq and br, and a LAN host behind each (hq-lan 10.1.0.2, br-lan
10.2.0.2). Two underlays join the routers: "corp" (198.51.100.0/24, IPsec endpoints) and "inet"
(192.0.2.0/24, WireGuard endpoints). Each router runs its own charon (kernel-libipsec: userspace
ESP over the TUN ipsec0, UDP-encapsulated) and patronusd with the ipsec, wireguard, probes and
scoring plugins. The run checks, in order:
  1. IPsec only (the sites file's corp endpoints say `transport: ipsec`): the IKE_SA and CHILD_SA
     come up, probes run over the tunnel and the path is scored, and a ping from hq's LAN host to
     br's crosses it (the CHILD_SA's byte counters move);
  2. charon restarting is noticed (the path goes down, "the device went away") and, once charon
     is back, the plugin loads the connection again and the path comes back up;
  3. a mixed site (inet over WireGuard, corp over IPsec, to the same remote site): a UDP flow from
     LAN to LAN leaves by the tunnel the daemon chose; cutting that tunnel's underlay moves it to
     the other transport;
  4. a third-party peer: a charon configured by hand with swanctl.conf (as a partner's gateway
     would be, not by our plugin; LAN 172.16.0.0/16) and described in hq's sites file under
     `peers:`. Its proposal is one we do not offer: the path stays down, the diagnostic and the
     ipsec.error event name NO_PROPOSAL_CHOSEN. With the peer's proposal in the sites file but the
     partner holding another PSK: AUTHENTICATION_FAILED. Once the partner loads the right key, the
     tunnel comes up, the path is used without probes, and hq's LAN pings the partner's LAN.
Names are unique to the run; namespaces, daemons, charon and wireguard-go are removed also when a
check fails. Prints a JSON report; exit 0 when every check passed, 77 when the machine cannot run
it (not root, no charon, no wireguard-go).
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

SKIP = 77
CHARON = "/usr/lib/ipsec/charon"
FLOW_PORT = 5005
FLOW_PPS = 100
HERE = os.path.dirname(os.path.abspath(__file__))


class Failed(Exception):
    pass


def fail(msg):
    raise Failed(msg)


def sh(*args, check=True):
    r = subprocess.run(list(args), capture_output=True, text=True)
    if check and r.returncode != 0:
        fail("%s: %s" % (" ".join(args), r.stderr.strip()))
    return r.stdout


def wait_for(what, fn, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = fn()
        if v:
            return v
        time.sleep(0.2)
    fail("timed out after %.0f s waiting for %s" % (timeout, what))


STRONGSWAN_CONF = """charon {{
  load_modular = yes
  {site_only}
  retransmit_timeout = 1.0
  retransmit_tries = 3
  plugins {{
    include /etc/strongswan.d/charon/*.conf
    kernel-libipsec {{ load = yes }}
    vici {{ socket = unix://{dir}/charon.vici }}
  }}
  filelog {{
    log {{ path = {dir}/charon.log
      default = 1
      ike = 2 }}
  }}
}}
"""

SITES_IPSEC = """sites:
  - name: hq
    subnets: [10.1.0.0/24]
    endpoints:
      - {name: corp, address: "198.51.100.1:500", transport: ipsec, ike: {dpd_s: 2}}
  - name: br
    subnets: [10.2.0.0/24]
    endpoints:
      - {name: corp, address: "198.51.100.2:500", transport: ipsec, ike: {dpd_s: 2}}
"""

SITES_MIXED = """sites:
  - name: hq
    subnets: [10.1.0.0/24]
    endpoints:
      - {name: inet, address: "192.0.2.1:51820", type: broadband}
      - {name: corp, address: "198.51.100.1:500", type: wan, transport: ipsec, ike: {dpd_s: 2}}
  - name: br
    subnets: [10.2.0.0/24]
    endpoints:
      - {name: inet, address: "192.0.2.2:51820", type: broadband}
      - {name: corp, address: "198.51.100.2:500", type: wan, transport: ipsec, ike: {dpd_s: 2}}
"""

DAEMON = """site: {site}
state_db: {dir}/{site}-{phase}.db
control_socket: {dir}/{site}.sock
plugin_dir: {plugins}
log_level: info
flush_interval_ms: 200
plugins:
  - plugin: ipsec
    name: ike
    config: {{vici_socket: {dir}/{site}-charon/charon.vici, keys_dir: {keys}, mode: libipsec,
              status_interval_ms: 200, retry_ms: 500, reconnect_ms: 200}}
  - plugin: wireguard
    name: wg
    config: {{keys_dir: {keys}, remove_on_stop: true, status_interval_ms: 200}}
  - plugin: probes
    config: {{interval_ms: 50, idle_interval_ms: 50, detect_multiplier: 5}}
  - plugin: scoring
runtime:
  sites_file: {dir}/sites-{phase}.yaml
  topology: full-mesh
  keys_dir: {keys}
  transports: {{wireguard: wg, ipsec: ike}}
  probe: probes
  scorer: scoring
  tick_ms: 50
  classes:
    classes:
      - {{name: realtime, priority: critical, hold_down_ms: 60000}}
      - {{name: default, priority: best-effort, hold_down_ms: 60000}}
    rules:
      - {{class: realtime, protocol: udp, dst_ports: {port}}}
    default_class: default
"""


class Net:
    def __init__(self, build, work):
        self.build = build
        self.work = work
        tag = str(os.getpid())
        self.ns = {k: "pi%s%s" % (k, tag) for k in ("hq", "br", "hqlan", "brlan", "pp")}
        self.charon = {}
        self.daemons = {}
        self.logs = []
        self.procs = []

    def ip(self, ns, *args):
        return sh("ip", "-n", self.ns[ns], *args)

    def exec(self, ns, *args, check=True):
        return sh("ip", "netns", "exec", self.ns[ns], *args, check=check)

    def popen(self, ns, args, **kw):
        p = subprocess.Popen(["ip", "netns", "exec", self.ns[ns]] + args, **kw)
        self.procs.append(p)
        return p

    def setup(self):
        for n in self.ns.values():
            sh("ip", "netns", "add", n)
        for n in self.ns:
            self.ip(n, "link", "set", "lo", "up")
        # underlays between the routers, a LAN behind each
        for name, net in (("corp0", "198.51.100"), ("inet0", "192.0.2")):
            sh("ip", "link", "add", name, "netns", self.ns["hq"], "type", "veth", "peer", "name",
               name, "netns", self.ns["br"])
            self.ip("hq", "addr", "add", net + ".1/24", "dev", name)
            self.ip("br", "addr", "add", net + ".2/24", "dev", name)
            self.ip("hq", "link", "set", name, "up")
            self.ip("br", "link", "set", name, "up")
        # the partner's gateway, on its own underlay from hq; its LAN address on lo
        sh("ip", "link", "add", "ext0", "netns", self.ns["hq"], "type", "veth", "peer", "name",
           "ext0", "netns", self.ns["pp"])
        self.ip("hq", "addr", "add", "203.0.113.1/24", "dev", "ext0")
        self.ip("pp", "addr", "add", "203.0.113.9/24", "dev", "ext0")
        self.ip("pp", "addr", "add", "172.16.0.1/32", "dev", "lo")
        self.ip("hq", "link", "set", "ext0", "up")
        self.ip("pp", "link", "set", "ext0", "up")
        for site, net in (("hq", "10.1.0"), ("br", "10.2.0")):
            sh("ip", "link", "add", "lan0", "netns", self.ns[site], "type", "veth", "peer", "name",
               "lan0", "netns", self.ns[site + "lan"])
            self.ip(site, "addr", "add", net + ".1/24", "dev", "lan0")
            self.ip(site + "lan", "addr", "add", net + ".2/24", "dev", "lan0")
            self.ip(site, "link", "set", "lan0", "up")
            self.ip(site + "lan", "link", "set", "lan0", "up")
            self.ip(site + "lan", "route", "add", "default", "via", net + ".1")
            self.exec(site, "sysctl", "-qw", "net.ipv4.ip_forward=1")

    def start_charon(self, site, patronus=True):
        d = os.path.join(self.work, site + "-charon")
        os.makedirs(os.path.join(d, "run"), exist_ok=True)
        # kernel-libipsec installs a route per policy into table 220 whatever install_routes
        # says: on our sites its rule goes after the dataplane's (20000 and up), so steering
        # decides. The partner (and br's first charon, to see the plugin notice) keeps charon's
        # defaults.
        site_only = "routing_table_prio = 32000\n  install_virtual_ip = no" if patronus else ""
        with open(os.path.join(d, "strongswan.conf"), "w") as f:
            f.write(STRONGSWAN_CONF.format(dir=d, site_only=site_only))
        sock = os.path.join(d, "charon.vici")
        if os.path.exists(sock):
            os.unlink(sock)
        log = open(os.path.join(d, "stdout.log"), "a")
        self.logs.append(log)
        self.charon[site] = self.popen(site, [
            "sh", "-c", "mount --bind %s/run /run && exec env STRONGSWAN_CONF=%s/strongswan.conf %s"
            % (d, d, CHARON)], stdout=log, stderr=subprocess.STDOUT)
        wait_for("%s's charon socket" % site, lambda: os.path.exists(sock), 10)
        wait_for("%s's ipsec0" % site,
                 lambda: "ipsec0" in self.exec(site, "ip", "-o", "link", check=False), 10)

    def stop_charon(self, site):
        p = self.charon.pop(site, None)
        if p is not None and p.poll() is None:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def write_phase(self, phase, sites_yaml):
        if sites_yaml is not None:
            with open(os.path.join(self.work, "sites-%s.yaml" % phase), "w") as f:
                f.write(sites_yaml)
        # every site's keys in one directory, as a lab keeps them
        sh(os.path.join(self.build, "bin", "patronus"), "mesh", "plan", "--sites",
           os.path.join(self.work, "sites-%s.yaml" % phase), "--keys-dir",
           os.path.join(self.work, "keys"), "--json")
        for site in ("hq", "br"):
            with open(os.path.join(self.work, "%s-%s.yaml" % (site, phase)), "w") as f:
                f.write(DAEMON.format(site=site, dir=self.work, phase=phase,
                                      plugins=os.path.join(self.build, "plugins"),
                                      keys=os.path.join(self.work, "keys"), port=FLOW_PORT))

    def start_daemon(self, site, phase):
        log = open(os.path.join(self.work, "%s-%s.log" % (site, phase)), "a")
        self.logs.append(log)
        # A private /run per site (wireguard-go's sockets are always /var/run/wireguard/IF.sock,
        # and both sites name their interface wg-inet).
        run = os.path.join(self.work, site + "-run")
        os.makedirs(run, exist_ok=True)
        self.daemons[site] = self.popen(site, [
            "sh", "-c", "mount --bind %s /run && exec %s --config %s" % (
                run, os.path.join(self.build, "bin", "patronusd"),
                os.path.join(self.work, "%s-%s.yaml" % (site, phase)))], stdout=log,
            stderr=subprocess.STDOUT)

    def stop_daemons(self):
        for site, p in list(self.daemons.items()):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        self.daemons.clear()

    def paths(self, site):
        r = subprocess.run([os.path.join(self.build, "bin", "patronus"), "paths", "list",
                            "--socket", os.path.join(self.work, site + ".sock"), "--json"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            return None
        return json.loads(r.stdout)["paths"]

    def tx(self, site, ifname):
        for line in self.exec(site, "cat", "/proc/net/dev").splitlines():
            name, _, rest = line.partition(":")
            if name.strip() == ifname:
                return int(rest.split()[9])
        return 0

    def cleanup(self):
        self.stop_daemons()
        for site in list(self.charon):
            self.stop_charon(site)
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for n in self.ns.values():
            # wireguard-go and anything else left in the namespace
            pids = subprocess.run(["ip", "netns", "pids", n], capture_output=True, text=True)
            for pid in pids.stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except OSError:
                    pass
            subprocess.run(["ip", "netns", "del", n], capture_output=True)
        for log in self.logs:
            log.close()


# The partner's gateway as its administrator writes it: no Patronus anywhere.
PARTNER_SWANCTL = """connections {{
  hq {{
    version = 2
    local_addrs = 203.0.113.9
    remote_addrs = 203.0.113.1
    proposals = aes256-sha256-ecp384
    local {{
      auth = psk
      id = gw.partner.example
    }}
    remote {{
      auth = psk
      id = 203.0.113.1
    }}
    children {{
      lan {{
        local_ts = 172.16.0.0/16
        remote_ts = 10.1.0.0/24
        esp_proposals = aes256gcm16-x25519
      }}
    }}
  }}
}}
secrets {{
  ike-hq {{
    id-1 = gw.partner.example
    id-2 = 203.0.113.1
    secret = "{secret}"
  }}
}}
"""

SITES_PEER = """sites:
  - name: hq
    subnets: [10.1.0.0/24]
    endpoints:
      - {{name: ext, address: "203.0.113.1:500", transport: ipsec}}
peers:
  - name: partner
    address: 203.0.113.9
    subnets: [172.16.0.0/16]
    ike: {{id: gw.partner.example, psk_file: {psk}{proposals}}}
"""

PSK = "patronus-partner-shared-key-0123456789"


def all_up(net, site, n, transports=None):
    paths = net.paths(site)
    if paths is None or len(paths) != n:
        return None
    for p in paths:
        t = p.get("tunnel")
        if p["state"] != "up" or p.get("score") is None or p.get("latency_ms") is None:
            return None
        if not t or not t.get("up"):
            return None
    return paths


def stably_up(net, n, what, timeout=60, hold=2.0):
    """Both sites' paths up and scored, and still so `hold` seconds later.

    A path that has just come up can go down again once: probes sent before the tunnel existed
    time out after the first reply and count as loss for one window. Later steps compare against
    a reading taken once that has passed.
    """
    end = time.monotonic() + timeout
    since = None
    while time.monotonic() < end:
        now = time.monotonic()
        paths = all_up(net, "hq", n)
        if paths and all_up(net, "br", n):
            since = since or now
            if now - since >= hold:
                return paths
        else:
            since = None
        time.sleep(0.2)
    fail("timed out after %.0f s waiting for %s (hq: %s; br: %s)" % (
        timeout, what, net.paths("hq"), net.paths("br")))


def ping_lan(net):
    out = net.exec("hqlan", "ping", "-c", "3", "-i", "0.2", "-W", "2", "10.2.0.2", check=False)
    return " 0% packet loss" in out


def run(net, report):
    net.setup()
    net.start_charon("hq")
    net.start_charon("br", patronus=False)  # charon's table 220 before steering: said by br

    # 1. two sites over IPsec
    net.write_phase("ipsec", SITES_IPSEC)
    t0 = time.monotonic()
    for site in ("hq", "br"):
        net.start_daemon(site, "ipsec")
    before = stably_up(net, 1, "both IPsec paths up and scored")[0]["tunnel"]
    report["ipsec_up_s"] = round(time.monotonic() - t0, 2)
    if not ping_lan(net):
        fail("ping from hq's LAN to br's LAN over IPsec failed")
    after = wait_for("the CHILD_SA's counters", lambda: (lambda p: p if p and
                     p[0]["tunnel"]["tx_bytes"] > before["tx_bytes"] else None)(all_up(net, "hq", 1)), 10)
    t = after[0]["tunnel"]
    report["ipsec_path"] = {k: after[0][k] for k in ("name", "score", "latency_ms", "loss_pct")}
    report["ipsec_tunnel"] = t
    if t.get("handshake_age_s") is None:
        fail("the IPsec tunnel reports no establishment time: %s" % t)

    with open(os.path.join(net.work, "br-ipsec.log")) as f:
        if "charon's route table 220 is looked up at priority 220" not in f.read():
            fail("br's daemon did not say that charon's routes come before the steering rules")

    # 2. charon restarts: the path goes down, then comes back with the configuration reloaded
    # (br's charon now with its routes after the dataplane's)
    net.stop_charon("br")
    wait_for("br's path down while its charon is gone",
             lambda: (lambda p: p and p[0]["tunnel"] and not p[0]["tunnel"]["up"])(net.paths("br")),
             10)
    down = net.paths("br")[0]["tunnel"]
    report["charon_gone_diagnostic"] = down.get("diagnostic")
    t1 = time.monotonic()
    net.start_charon("br")
    stably_up(net, 1, "the IPsec paths back after charon's restart", hold=0.0)
    report["charon_restart_recovered_s"] = round(time.monotonic() - t1, 2)
    if not ping_lan(net):
        fail("ping over IPsec failed after charon's restart")
    net.stop_daemons()

    # 3. a mixed site: WireGuard and IPsec to the same site; cutting the active one moves the flow
    net.write_phase("mixed", SITES_MIXED)
    for site in ("hq", "br"):
        net.start_daemon(site, "mixed")
    stably_up(net, 2, "both sites' WireGuard and IPsec paths up and scored")
    recv_file = os.path.join(net.work, "recv.txt")
    duration = 20
    net.popen("brlan", ["/usr/bin/python3", os.path.join(HERE, "..", "lab", "udpflow.py"), "recv",
                        str(FLOW_PORT), str(duration + 5), recv_file])
    time.sleep(0.5)
    sender = net.popen("hqlan", ["/usr/bin/python3",
                                 os.path.join(HERE, "..", "lab", "udpflow.py"), "send",
                                 "10.2.0.2", str(FLOW_PORT), str(FLOW_PPS), str(duration)],
                       stdout=subprocess.PIPE, text=True)
    time.sleep(2)

    def carrying():
        ifs = ("wg-inet", "ipsec0")
        a = {i: net.tx("hq", i) for i in ifs}
        time.sleep(1)
        d = {i: net.tx("hq", i) - a[i] for i in ifs}
        return max(d, key=d.get), d

    first, delta = carrying()
    report["flow_before"] = {"interface": first, "tx_packets_1s": delta}
    if delta[first] < FLOW_PPS * 0.5:
        fail("the flow is on no tunnel of hq (tx packets %s)" % delta)
    cut = "inet0" if first == "wg-inet" else "corp0"
    other = "ipsec0" if first == "wg-inet" else "wg-inet"
    net.ip("hq", "link", "set", cut, "down")
    time.sleep(3)
    moved, delta = carrying()
    report["flow_after_cut"] = {"cut": cut, "interface": moved, "tx_packets_1s": delta}
    if moved != other or delta[moved] < FLOW_PPS * 0.5:
        report["hq_forwarding"] = {
            "rules": net.exec("hq", "ip", "rule", check=False).splitlines(),
            "routes": net.exec("hq", "ip", "route", "show", "table", "all", check=False).splitlines(),
        }
        fail("after cutting %s the flow did not move to %s (tx packets %s)" % (cut, other, delta))
    sent = int(sender.communicate(timeout=duration + 10)[0].strip())
    time.sleep(1)
    seqs, arrivals = set(), []
    with open(recv_file) as f:
        for line in f:
            s, at = line.split()
            seqs.add(int(s))
            arrivals.append(float(at))
    arrivals.sort()
    gap = max((b - a for a, b in zip(arrivals, arrivals[1:])), default=0)
    report["flow"] = {"sent": sent, "received": len(seqs), "lost": sent - len(seqs),
                      "longest_gap_ms": round(gap * 1000, 1)}
    if len(seqs) < sent * 0.8:
        fail("the flow lost more than a fifth of its packets: %s" % report["flow"])
    net.stop_daemons()

    # 4. a third-party peer, configured by hand
    third_party(net, report)


def peer_path(net):
    paths = net.paths("hq")
    if not paths:
        return None
    for p in paths:
        if p["peer_site"] == "partner":
            return p
    return None


def ipsec_errors(net, phase):
    """The ipsec.error events hq's daemon stored (its state database)."""
    import sqlite3
    db = sqlite3.connect(os.path.join(net.work, "hq-%s.db" % phase))
    try:
        rows = db.execute("SELECT payload FROM decision_events WHERE kind = 'ipsec.error'")
        return [json.loads(r[0]) for r in rows]
    except sqlite3.Error:
        return []
    finally:
        db.close()


def third_party(net, report):
    pp = os.path.join(net.work, "pp-charon")
    net.start_charon("pp", patronus=False)
    swanctl = os.path.join(pp, "swanctl.conf")

    def partner_secret(secret):
        with open(swanctl, "w") as f:
            f.write(PARTNER_SWANCTL.format(secret=secret))
        net.exec("pp", "swanctl", "--load-all", "--clear", "--file", swanctl, "--uri",
                 "unix://%s/charon.vici" % pp)

    partner_secret(PSK)
    psk_file = os.path.join(net.work, "partner.psk")
    with open(psk_file, "w") as f:
        f.write(PSK + "\n")
    os.chmod(psk_file, 0o600)

    def run_phase(phase, proposals):
        with open(os.path.join(net.work, "sites-%s.yaml" % phase), "w") as f:
            f.write(SITES_PEER.format(psk=psk_file, proposals=proposals))
        net.write_phase(phase, None)
        net.start_daemon("hq", phase)

    def down_with(diagnostic):
        p = peer_path(net)
        return p if p and p["tunnel"] and not p["tunnel"]["up"] and \
            p["tunnel"]["diagnostic"] == diagnostic else None

    # a. the partner accepts only a proposal we do not offer by default
    run_phase("peer-proposal", "")
    p = wait_for("the refused proposal reported", lambda: down_with(
        "no proposal or traffic selector agreed"), 30)
    errors = ipsec_errors(net, "peer-proposal")
    wait_for("an ipsec.error event naming NO_PROPOSAL_CHOSEN", lambda: any(
        "NO_PROPOSAL_CHOSEN" in e.get("error", "") for e in ipsec_errors(net, "peer-proposal")), 10)
    report["peer_wrong_proposal"] = {"state": p["state"], "tunnel": p["tunnel"]["diagnostic"],
                                     "event": [e for e in ipsec_errors(net, "peer-proposal")
                                               if "NO_PROPOSAL" in e["error"]][0]}
    net.stop_daemons()

    # b. its proposal in the sites file; the partner holds another PSK
    partner_secret("not-the-key-we-were-given-0123456789")
    run_phase("peer-psk", ", proposals: [aes256-sha256-prfsha256-ecp384]")
    p = wait_for("the failed authentication reported", lambda: down_with(
        "authentication failed"), 30)
    wait_for("an ipsec.error event naming AUTHENTICATION_FAILED", lambda: any(
        "AUTHENTICATION_FAILED" in e.get("error", "") for e in ipsec_errors(net, "peer-psk")), 10)
    report["peer_wrong_psk"] = {"state": p["state"], "tunnel": p["tunnel"]["diagnostic"],
                                "event": [e for e in ipsec_errors(net, "peer-psk")
                                          if "AUTHENTICATION" in e["error"]][0]}

    # c. the partner loads the right key: our retries get through
    partner_secret(PSK)
    p = wait_for("the tunnel to the partner up", lambda: (lambda x: x if x and x["tunnel"]["up"]
                                                           and x["state"] == "up" else None)(
        peer_path(net)), 30)
    if p.get("probed") is not False or p.get("score") is not None or p["samples"] != 0:
        fail("the peer's path was probed or scored: %s" % p)
    out = net.exec("hqlan", "ping", "-c", "3", "-i", "0.2", "-W", "2", "172.16.0.1", check=False)
    if " 0% packet loss" not in out:
        fail("ping from hq's LAN to the partner's LAN failed: %s" % out)
    report["peer_up"] = {"state": p["state"], "tunnel": p["tunnel"], "probed": p["probed"]}
    # the key went to charon and nowhere else: not in the daemon's log or state database
    net.stop_daemons()
    for name in ("hq-peer-proposal.log", "hq-peer-psk.log", "hq-peer-proposal.db",
                 "hq-peer-psk.db"):
        with open(os.path.join(net.work, name), "rb") as f:
            if PSK.encode() in f.read():
                fail("the pre-shared key appears in %s" % name)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("ipsec_sites_netns: needs root")
        return SKIP
    for need in (CHARON, shutil.which("wireguard-go") or "/nonexistent/wireguard-go"):
        if not os.path.exists(need):
            print("ipsec_sites_netns: %s is not installed" % need)
            return SKIP
    work = tempfile.mkdtemp(prefix="patronus-ipsec-")
    os.chmod(work, 0o700)
    net = Net(os.path.abspath(args.build), work)
    report = {}
    code = 0
    try:
        run(net, report)
        report["result"] = "passed"
    except Exception as e:  # a Failed, or a bug in this script: either way, the logs
        report["result"] = "failed"
        report["error"] = "%s: %s" % (type(e).__name__, e)
        for site in ("hq", "br"):
            report.setdefault("paths", {})[site] = net.paths(site)
            for name in ("%s-charon/charon.log" % site, "%s-ipsec.log" % site,
                         "%s-mixed.log" % site, "%s-peer-proposal.log" % site,
                         "%s-peer-psk.log" % site, "pp-charon/charon.log"):
                path = os.path.join(work, name)
                if os.path.exists(path):
                    with open(path) as f:
                        report.setdefault("logs", {})[name] = f.read()[-4000:]
        code = 1
    finally:
        net.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(report, indent=2))
    return code


if __name__ == "__main__":
    sys.exit(main())
