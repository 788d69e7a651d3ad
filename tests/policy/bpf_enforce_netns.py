#!/usr/bin/python3
"""NetworkPolicy enforced on real packets by `patronus policy enforce` (the eBPF datapath at tc).

Namespaces stand in for pods behind a site: a router namespace forwards between three pod
namespaces (x/client, x/server, y/other) and runs the enforcer on its three pod-facing interfaces.
The run checks, in order:
  1. a TCP connection and a UDP exchange that policy allows succeed, replies included (the client
     is isolated for ingress with no rule: its replies pass only as replies of its connections);
  2. denied ones are dropped: another port, another namespace's pod, the server opening a
     connection to the client;
  3. the counters (`patronus policy counters --json`) show the allowed, denied and reply packets
     and attribute them to the policies;
  4. editing the policy file (allow a second port) takes effect without a restart, as an
     incremental update;
  5. SIGTERM detaches: no tc filter and no pin is left.
The enforcer runs in a mount namespace of the test's own in which /sys/fs/bpf is not mounted, as on
a machine that booted without it: it must mount the BPF filesystem itself and say so.
Names are unique to the run; namespaces, processes and pins are removed also when a check fails.
Exit 0 when every check passed, 77 when the machine cannot run it (not root, no patronus).
"""
import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

SKIP = 77

SERVER = r"""
import socket, sys, threading
def tcp(port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(16)
    while True:
        c, _ = s.accept()
        try:
            d = c.recv(100)
            c.sendall(b"echo:" + d)
        finally:
            c.close()
def udp(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", port))
    while True:
        d, a = s.recvfrom(100)
        s.sendto(b"echo:" + d, a)
for p in sys.argv[1].split(","):
    threading.Thread(target=tcp, args=(int(p),), daemon=True).start()
for p in sys.argv[2].split(","):
    threading.Thread(target=udp, args=(int(p),), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"""

CLIENT = r"""
import socket, sys
kind, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
try:
    if kind == "tcp":
        s = socket.create_connection((host, port), timeout=1.5)
        s.sendall(b"hi"); d = s.recv(100)
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(1.5)
        s.sendto(b"hi", (host, port)); d, _ = s.recvfrom(100)
    print("ok" if d == b"echo:hi" else "bad")
except OSError as e:
    print("fail %s" % e)
"""


def fail(msg):
    raise AssertionError(msg)


def sh(cmd, check=True):
    r = subprocess.run(cmd, shell=True, capture_output=True, text=True)
    if check and r.returncode != 0:
        fail("%s: %s" % (cmd, r.stderr.strip()))
    return r.stdout


class Lab:
    def __init__(self, build, tok):
        self.build = os.path.abspath(build)
        self.tok = tok
        self.router = "pr%s" % tok
        self.pods = {"client": ("x", 1), "server": ("x", 2), "other": ("y", 3)}
        self.procs = []
        self.enforcer = None
        self.holder = None  # keeps the enforcer's mount namespace (no bpffs at first) alive
        self.work = tempfile.mkdtemp(prefix="patronus-bpf-")

    def ns(self, pod):
        return "pp%s%s" % (self.tok, pod[0])

    def rif(self, pod):
        return "r%s%s" % (self.tok, pod[0])

    def ip(self, pod):
        return "10.61.%d.2" % self.pods[pod][1]

    def setup(self):
        sh("ip netns add %s" % self.router)
        sh("ip -n %s link set lo up" % self.router)
        sh("ip netns exec %s sysctl -qw net.ipv4.ip_forward=1" % self.router)
        for pod, (_, n) in self.pods.items():
            ns = self.ns(pod)
            sh("ip netns add %s" % ns)
            sh("ip -n %s link set lo up" % ns)
            sh("ip link add %s netns %s type veth peer name eth0 netns %s"
               % (self.rif(pod), self.router, ns))
            sh("ip -n %s addr add 10.61.%d.1/24 dev %s" % (self.router, n, self.rif(pod)))
            sh("ip -n %s link set %s up" % (self.router, self.rif(pod)))
            sh("ip -n %s addr add %s/24 dev eth0" % (ns, self.ip(pod)))
            sh("ip -n %s link set eth0 up" % ns)
            sh("ip -n %s route add default via 10.61.%d.1" % (ns, n))

    def write_inputs(self, server_ports):
        inv = []
        for pod, (nsname, _) in self.pods.items():
            inv.append("""apiVersion: v1
kind: Pod
metadata: {name: %s, namespace: %s, labels: {app: %s}}
spec: {containers: [{name: main, ports: [{name: web, containerPort: 8080}]}]}
status: {podIP: %s}
""" % (pod, nsname, pod, self.ip(pod)))
        self.inventory = os.path.join(self.work, "inventory.yaml")
        with open(self.inventory, "w") as f:
            f.write("---\n".join(inv))
        ports = ", ".join("{port: %s}" % p for p in server_ports)
        policies = """apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: server-from-client, namespace: x}
spec:
  podSelector: {matchLabels: {app: server}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: client}}}]
    ports: [%s, {protocol: UDP, port: 5353}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: client-closed, namespace: x}
spec:
  podSelector: {matchLabels: {app: client}}
  policyTypes: [Ingress]
""" % ports
        self.policies = os.path.join(self.work, "policies.yaml")
        tmp = self.policies + ".tmp"
        with open(tmp, "w") as f:
            f.write(policies)
        os.replace(tmp, self.policies)

    def start_servers(self):
        for pod, tcp, udp in (("server", "8080,8081", "5353"), ("client", "9000", "9001"),
                              ("other", "8080", "5353")):
            p = subprocess.Popen(["ip", "netns", "exec", self.ns(pod), "/usr/bin/python3", "-c",
                                  SERVER, tcp, udp], stdout=subprocess.PIPE, text=True)
            self.procs.append(p)
            if p.stdout.readline().strip() != "ready":
                fail("server in %s did not start" % pod)

    def start_mount_namespace(self):
        """A private mount namespace without a BPF filesystem, held by a sleeping process."""
        self.holder = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c",
             "while mountpoint -q /sys/fs/bpf; do umount /sys/fs/bpf || exit 1; done; "
             "echo ready; exec sleep 600"], stdout=subprocess.PIPE, text=True)
        if self.holder.stdout.readline().strip() != "ready":
            fail("could not make a mount namespace without /sys/fs/bpf")
        if self.in_mounts(["mountpoint", "-q", "/sys/fs/bpf"]).returncode == 0:
            fail("/sys/fs/bpf is still mounted in the test's mount namespace")

    def in_mounts(self, cmd):
        return subprocess.run(["nsenter", "--mount=/proc/%d/ns/mnt" % self.holder.pid] + cmd,
                              capture_output=True, text=True)

    def start_enforcer(self):
        cli = os.path.join(self.build, "bin", "patronus")
        cmd = ["nsenter", "--mount=/proc/%d/ns/mnt" % self.holder.pid,
               "--net=/run/netns/%s" % self.router, cli, "policy", "enforce",
               "--policies", self.policies, "--inventory", self.inventory, "--name",
               "t" + self.tok, "--poll-ms", "100"]
        for pod in self.pods:
            cmd += ["--interface", self.rif(pod)]
        self.enforcer = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                         text=True)
        self.enforcer_out = []
        mounted = self.enforcer.stdout.readline()
        self.enforcer_out.append(mounted)
        if "mounted one" not in mounted:
            fail("the enforcer did not say it mounted the BPF filesystem: %s%s"
                 % (mounted, self.enforcer.stdout.read()))
        line = self.enforcer.stdout.readline()
        self.enforcer_out.append(line)
        if not line.startswith("enforcing"):
            fail("enforcer did not start: %s%s" % (line, self.enforcer.stdout.read()))
        if self.in_mounts(["mountpoint", "-q", "/sys/fs/bpf"]).returncode != 0:
            fail("the enforcer said it mounted /sys/fs/bpf, but nothing is mounted there")

    def wait_enforcer_line(self, prefix, timeout):
        import selectors
        sel = selectors.DefaultSelector()
        sel.register(self.enforcer.stdout, selectors.EVENT_READ)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if sel.select(timeout=max(0.0, end - time.monotonic())):
                line = self.enforcer.stdout.readline()
                self.enforcer_out.append(line)
                if line.startswith(prefix):
                    return line
        fail("no '%s' line from the enforcer within %.0f s: %s" % (prefix, timeout,
                                                                  "".join(self.enforcer_out)))

    def talk(self, src, kind, dst, port):
        out = subprocess.run(["ip", "netns", "exec", self.ns(src), "/usr/bin/python3", "-c",
                              CLIENT, kind, self.ip(dst), str(port)],
                             capture_output=True, text=True).stdout.strip()
        return out == "ok"

    def counters(self):
        cli = os.path.join(self.build, "bin", "patronus")
        out = self.in_mounts([cli, "policy", "counters", "--name", "t" + self.tok, "--json"])
        if out.returncode != 0:
            fail("policy counters: %s" % out.stderr)
        return json.loads(out.stdout)

    def teardown(self):
        if self.enforcer is not None and self.enforcer.poll() is None:
            self.enforcer.kill()
            self.enforcer.wait()
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for pod in self.pods:
            sh("ip netns del %s" % self.ns(pod), check=False)
        sh("ip netns del %s" % self.router, check=False)
        # The pins live in the test's own mount namespace: they go with it.
        if self.holder is not None and self.holder.poll() is None:
            self.holder.kill()
            self.holder.wait()
        try:
            os.unlink("/run/patronus/policy/t%s.json" % self.tok)
        except OSError:
            pass
        subprocess.run(["rm", "-rf", self.work])


def run(lab, report):
    lab.setup()
    lab.write_inputs([8080])
    lab.start_servers()
    # Before enforcement everything connects (the namespaces route).
    if not lab.talk("other", "tcp", "server", 8081):
        fail("the namespaces do not route before enforcement")
    lab.start_mount_namespace()
    lab.start_enforcer()
    report["bpffs"] = lab.enforcer_out[0].strip()
    report["enforcer"] = lab.enforcer_out[1].strip()

    # 1. allowed, replies included
    checks = {
        "client->server tcp/8080": lab.talk("client", "tcp", "server", 8080),
        "client->server udp/5353": lab.talk("client", "udp", "server", 5353),
    }
    # 2. denied
    denied = {
        "client->server tcp/8081": lab.talk("client", "tcp", "server", 8081),
        "other->server tcp/8080": lab.talk("other", "tcp", "server", 8080),
        "server->client tcp/9000": lab.talk("server", "tcp", "client", 9000),
        "server->client udp/9001": lab.talk("server", "udp", "client", 9001),
    }
    # Not isolated: the other pod accepts anyone.
    checks["client->other tcp/8080"] = lab.talk("client", "tcp", "other", 8080)
    report["allowed"] = checks
    report["denied"] = denied
    for k, ok in checks.items():
        if not ok:
            fail("%s should connect" % k)
    for k, ok in denied.items():
        if ok:
            fail("%s should be dropped" % k)

    # 3. counters
    c = lab.counters()
    report["counters"] = c
    v = c["verdicts"]
    if v["allowed"] < 4 or v["reply"] < 2 or v["denied"] < 4:
        fail("counters too low for the traffic sent: %s" % v)
    by = {(p["policy"], p["direction"]): p for p in c["policies"]}
    sp = by.get(("x/server-from-client", "ingress"))
    cc = by.get(("x/client-closed", "ingress"))
    if not sp or sp["allowed"] < 2 or sp["denied"] < 2:
        fail("x/server-from-client counts: %s" % sp)
    if not cc or cc["denied"] < 2:
        fail("x/client-closed counts: %s" % cc)

    # 4. an edit takes effect incrementally
    time.sleep(0.05)
    lab.write_inputs([8080, 8081])
    line = lab.wait_enforcer_line("update:", 10)
    report["update"] = line.strip()
    if "incremental" not in line:
        fail("the edit was not an incremental update: %s" % line)
    if not lab.talk("client", "tcp", "server", 8081):
        fail("client->server tcp/8081 should connect after the edit")
    if lab.talk("other", "tcp", "server", 8081):
        fail("other->server tcp/8081 should still be dropped after the edit")

    # 5. SIGTERM detaches and unpins
    lab.enforcer.send_signal(signal.SIGTERM)
    rc = lab.enforcer.wait(timeout=10)
    if rc != 0:
        fail("enforcer exited %d" % rc)
    for pod in lab.pods:
        filters = sh("ip netns exec %s tc filter show dev %s ingress" % (lab.router, lab.rif(pod)),
                     check=False)
        if filters.strip():
            fail("a filter is left on %s: %s" % (lab.rif(pod), filters))
    if lab.in_mounts(["test", "-e", "/sys/fs/bpf/patronus/t%s" % lab.tok]).returncode == 0:
        fail("pins left behind")
    if not lab.talk("client", "tcp", "server", 8081) or not lab.talk("other", "tcp", "server",
                                                                     8081):
        fail("traffic does not flow after the enforcer stopped")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bpf_enforce_netns: needs root (namespaces, BPF)")
        return SKIP
    if not os.path.exists(os.path.join(args.build, "bin", "patronus")):
        print("bpf_enforce_netns: no %s/bin/patronus" % args.build)
        return SKIP
    lab = Lab(args.build, "%04d" % random.randrange(10000))
    report = {}
    ok = False
    try:
        run(lab, report)
        ok = True
    except (AssertionError, subprocess.TimeoutExpired) as e:
        report["failed"] = str(e)
        if lab.enforcer is not None:
            report["enforcer_output"] = "".join(lab.enforcer_out)
    finally:
        lab.teardown()
    print(json.dumps(report, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
