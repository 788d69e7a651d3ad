// Simulation speed (issue 9), each as a ratio measured in the same run:
//  - BM_RuntimeVsPlainEcho: packets per wall second of two sites running the real runtime and
//    plugins over the simulated WAN, against a plain ns-3 UDP echo (two nodes, a point-to-point
//    link, ns-3's UdpEchoClient/Server) carrying the same number of packets. Target >= 0.5x.
//  - BM_TenSites60s: a 10-site full mesh for 60 simulated seconds (probing, 10 voice calls):
//    simulated over wall time. Target >= 600x.
//  - BM_FullMesh/N: N sites, one access link each, full mesh, idle probing and 50 flows, 60
//    simulated seconds: events per wall second, wall time, and the peak memory per simulated site
//    (each run in a child process, whose peak RSS the kernel reports; minus a 2-site run's).
#include <benchmark/benchmark.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "ns3/applications-module.h"
#include "ns3/core-module.h"
#include "ns3/internet-module.h"
#include "ns3/point-to-point-module.h"
#include "runner.hpp"
#include "scenario.hpp"

namespace {

using namespace patronus;

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// A full mesh of `sites` sites with `eps` access links each; `flows` voice calls (50 pps) from
// site i to site (i + sites/2) % sites, from 5 s on.
std::string mesh_yaml(int sites, int eps, int flows, int seconds) {
  std::string y = "name: bench\nseed: 1\nduration: " + std::to_string(seconds) + "s\nsites:\n";
  for (int i = 0; i < sites; ++i) {
    y += "  - name: s" + std::to_string(i) + "\n    endpoints:\n";
    for (int e = 0; e < eps; ++e) {
      y += "      - {name: e" + std::to_string(e) +
           ", type: internet, access: {delay: " + std::to_string(2 + (i + 3 * e) % 9) + "ms}}\n";
    }
  }
  if (flows > 0) y += "flows:\n";
  for (int f = 0; f < flows; ++f) {
    const int from = f % sites, to = (from + sites / 2) % sites;
    y += "  - {name: f" + std::to_string(f) + ", from: s" + std::to_string(from) + ", to: s" +
         std::to_string(to) +
         ", priority: critical, dscp: ef, src_port: " + std::to_string(20000 + f) +
         ", rate: 50pps, size: 200B, start: 5s}\n";
  }
  return y;
}

struct Run {
  double wall_s = 0;
  double events = 0;
  double packets = 0;  // datagrams the WAN carried
  bool ok = false;
  std::string error;
};

Run run(const std::string& yaml) {
  Run r;
  auto s = sim::parse_scenario(yaml, "bench");
  if (!s.is_ok()) {
    r.error = s.status().message();
    return r;
  }
  sim::RunOptions o;
  o.plugin_dir = PATRONUS_BENCH_PLUGINS;
  const double t0 = now_s();
  auto out = sim::run_scenario(s.value(), o);
  r.wall_s = now_s() - t0;
  if (!out.is_ok()) {
    r.error = out.status().message();
    return r;
  }
  const auto& rep = out.value().report;
  r.events = rep.at("events").get<double>();
  r.packets = rep.at("wan").at("sent").get<double>();
  r.ok = true;
  return r;
}

// The baseline: ns-3's own UDP echo between two nodes over a point-to-point link, `requests`
// requests (so twice as many packets), sent 1 ms apart.
double plain_echo_wall(std::uint32_t requests) {
  const double t0 = now_s();
  ns3::NodeContainer nodes;
  nodes.Create(2);
  ns3::PointToPointHelper p2p;
  p2p.SetDeviceAttribute("DataRate", ns3::StringValue("1Gbps"));
  p2p.SetChannelAttribute("Delay", ns3::StringValue("10ms"));
  auto devices = p2p.Install(nodes);
  ns3::InternetStackHelper stack;
  stack.Install(nodes);
  ns3::Ipv4AddressHelper addr;
  addr.SetBase("10.1.1.0", "255.255.255.0");
  auto ifs = addr.Assign(devices);
  ns3::UdpEchoServerHelper server(9);
  auto sa = server.Install(nodes.Get(1));
  sa.Start(ns3::Seconds(0));
  ns3::UdpEchoClientHelper client(ifs.GetAddress(1), 9);
  client.SetAttribute("MaxPackets", ns3::UintegerValue(requests));
  client.SetAttribute("Interval", ns3::TimeValue(ns3::MilliSeconds(1)));
  client.SetAttribute("PacketSize", ns3::UintegerValue(200));
  auto ca = client.Install(nodes.Get(0));
  ca.Start(ns3::Seconds(0));
  ns3::Simulator::Stop(ns3::MilliSeconds(requests + 1000));
  ns3::Simulator::Run();
  ns3::Simulator::Destroy();
  return now_s() - t0;
}

void BM_RuntimeVsPlainEcho(benchmark::State& state) {
  // Two sites, one path, a 400 pps flow and probing, 30 s.
  std::string y = mesh_yaml(2, 1, 0, 30);
  y += "flows:\n  - {name: f, from: s0, to: s1, priority: critical, dscp: ef, rate: 400pps, "
       "size: 200B, start: 1s}\n";
  double runtime_pps = 0, echo_pps = 0, packets = 0;
  for (auto _ : state) {
    const Run r = run(y);
    if (!r.ok) {
      state.SkipWithError(r.error.c_str());
      return;
    }
    const double echo_wall = plain_echo_wall(static_cast<std::uint32_t>(r.packets / 2));
    runtime_pps = r.packets / r.wall_s;
    echo_pps = r.packets / echo_wall;
    packets = r.packets;
  }
  state.counters["packets"] = packets;
  state.counters["runtime_pps"] = runtime_pps;
  state.counters["echo_pps"] = echo_pps;
  state.counters["ratio"] = runtime_pps / echo_pps;  // target >= 0.5
}
BENCHMARK(BM_RuntimeVsPlainEcho)->Iterations(3)->Unit(benchmark::kMillisecond);

void BM_TenSites60s(benchmark::State& state) {
  const int eps = static_cast<int>(state.range(0));
  const std::string y = mesh_yaml(10, eps, 10, 60);
  Run r;
  for (auto _ : state) {
    r = run(y);
    if (!r.ok) {
      state.SkipWithError(r.error.c_str());
      return;
    }
  }
  state.counters["paths"] = 45.0 * eps * eps;
  state.counters["events"] = r.events;
  state.counters["x_real_time"] = 60.0 / r.wall_s;  // target >= 600 (one access link a site)
}
BENCHMARK(BM_TenSites60s)->Arg(1)->Arg(2)->Iterations(3)->Unit(benchmark::kMillisecond);

// Runs the scenario in a child process: its wall time, events and peak RSS (KiB).
struct ChildRun {
  bool ok = false;
  double wall_s = 0, events = 0;
  long max_rss_kib = 0;
};

ChildRun run_in_child(const std::string& yaml) {
  ChildRun c;
  int fds[2];
  if (pipe(fds) != 0) return c;
  const pid_t pid = fork();
  if (pid < 0) return c;
  if (pid == 0) {
    close(fds[0]);
    const Run r = run(yaml);
    char buf[128];
    const int n =
        std::snprintf(buf, sizeof buf, "%d %.6f %.0f\n", r.ok ? 1 : 0, r.wall_s, r.events);
    if (write(fds[1], buf, static_cast<std::size_t>(n)) != n) _exit(2);
    _exit(r.ok ? 0 : 1);
  }
  close(fds[1]);
  char buf[128] = {};
  std::size_t got = 0;
  for (ssize_t n; got < sizeof buf - 1 && (n = read(fds[0], buf + got, sizeof buf - 1 - got)) > 0;)
    got += static_cast<std::size_t>(n);
  close(fds[0]);
  int status = 0;
  rusage ru{};
  if (wait4(pid, &status, 0, &ru) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return c;
  }
  int ok = 0;
  if (std::sscanf(buf, "%d %lf %lf", &ok, &c.wall_s, &c.events) != 3 || ok != 1) return c;
  c.max_rss_kib = ru.ru_maxrss;
  c.ok = true;
  return c;
}

void BM_FullMesh(benchmark::State& state) {
  const int sites = static_cast<int>(state.range(0));
  ChildRun base, r;
  for (auto _ : state) {
    base = run_in_child(mesh_yaml(2, 1, 0, 60));
    r = run_in_child(mesh_yaml(sites, 1, 50, 60));
    if (!base.ok || !r.ok) {
      state.SkipWithError("the scenario failed in the child process");
      return;
    }
  }
  state.counters["paths"] = double(sites) * (sites - 1) / 2;
  state.counters["wall_s"] = r.wall_s;
  state.counters["events"] = r.events;
  state.counters["events_per_s"] = r.events / r.wall_s;
  state.counters["x_real_time"] = 60.0 / r.wall_s;
  state.counters["peak_rss_mib"] = double(r.max_rss_kib) / 1024;
  state.counters["kib_per_site"] = double(r.max_rss_kib - base.max_rss_kib) / sites;
}
BENCHMARK(BM_FullMesh)->Arg(100)->Arg(250)->Iterations(1)->Unit(benchmark::kSecond);

}  // namespace

BENCHMARK_MAIN();
