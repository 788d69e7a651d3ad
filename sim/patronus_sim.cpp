// patronus-sim: runs Patronus sites inside an ns-3 discrete-event simulation.
//
//   patronus-sim pingpong [--seed N] [--delay-ms D] [--rate-mbps R] [--loss P] [--count C]
//                         [--interval-ms I] [--payload B] [--both] [--trace FILE] [--json]
//
// Scenario `pingpong`: two sites (a: 10.1.0.1, b: 10.1.0.2) joined by a point-to-point link;
// site a runs the pingpong probe plugin against b (and b against a with --both). Prints what the
// probes measured, in simulated time.
#include <CLI/CLI.hpp>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "ns3/core-module.h"
#include "ns3/internet-module.h"
#include "ns3/network-module.h"
#include "ns3/point-to-point-module.h"
#include "patronus/core/config_schema.hpp"
#include "patronus/core/plugin_host.hpp"
#include "router_app.hpp"

namespace {

using namespace patronus;

struct Collected : core::RouterObserver {
  struct Site {
    std::uint64_t received = 0, lost = 0;
    std::vector<std::int64_t> rtts;
    std::vector<std::string> events;
  };
  std::map<std::string, Site> by_instance;
  void on_sample(const std::string& instance, const patronus_path_sample& s) override {
    auto& site = by_instance[instance];
    if (s.lost) {
      ++site.lost;
    } else {
      ++site.received;
      site.rtts.push_back(s.rtt_ns);
    }
  }
  void on_event(const std::string& instance, const std::string& type,
                const std::string& json) override {
    by_instance[instance].events.push_back(type + " " + json);
  }
};

std::string default_plugin_dir() {
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  // pingpong is the seam proof, a test plugin: build/test-plugins/.
  return ec ? "test-plugins" : (exe.parent_path().parent_path() / "test-plugins").string();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"patronus-sim: Patronus sites in an ns-3 simulation"};
  app.require_subcommand(1);
  std::string plugin_dir = default_plugin_dir(), trace_file;
  std::uint64_t seed = 1;
  double delay_ms = 10, rate_mbps = 8, loss = 0;
  std::uint32_t count = 20, interval_ms = 100, payload = 64;
  bool both = false, as_json = false;
  auto* pp = app.add_subcommand("pingpong", "two sites probing each other over one link");
  pp->add_option("--plugin-dir", plugin_dir, "directory holding libpatronus-pingpong.so");
  pp->add_option("--seed", seed, "simulation seed")->capture_default_str();
  pp->add_option("--delay-ms", delay_ms, "one-way link delay")->check(CLI::Range(0.0, 10000.0));
  pp->add_option("--rate-mbps", rate_mbps, "link rate")->check(CLI::Range(0.001, 100000.0));
  pp->add_option("--loss", loss, "packet loss rate per direction")->check(CLI::Range(0.0, 1.0));
  pp->add_option("--count", count, "pings per site")->check(CLI::Range(1u, 1000000u));
  pp->add_option("--interval-ms", interval_ms, "ping interval")->check(CLI::Range(1u, 60000u));
  pp->add_option("--payload", payload, "datagram size")->check(CLI::Range(24u, 1400u));
  pp->add_flag("--both", both, "site b pings site a too");
  pp->add_option("--trace", trace_file, "write the routers' event trace here");
  pp->add_flag("--json", as_json, "JSON output");
  CLI11_PARSE(app, argc, argv);

  core::PluginRegistry registry;
  auto lib = registry.load_file(plugin_dir + "/libpatronus-pingpong.so");
  if (!lib.is_ok()) {
    std::cerr << "patronus-sim: " << lib.status().message() << std::endl;
    return 2;
  }
  auto config_for = [&](const std::string& listen, const std::string& peer) -> std::string {
    const std::string yaml =
        "listen: " + listen + "\n" + (peer.empty() ? "" : "peer: " + peer + "\n") +
        "interval_ms: " + std::to_string(interval_ms) + "\ncount: " + std::to_string(count) +
        "\npayload_size: " + std::to_string(payload) + "\n";
    auto bytes = lib.value()->schema()->text_to_bytes(yaml, "pingpong");
    if (!bytes.is_ok()) throw std::runtime_error(bytes.status().message());
    return bytes.value();
  };

  ns3::RngSeedManager::SetSeed(static_cast<std::uint32_t>(seed % 4294967295u) + 1);
  ns3::RngSeedManager::SetRun(1);
  ns3::NodeContainer nodes;
  nodes.Create(2);
  ns3::PointToPointHelper p2p;
  p2p.SetDeviceAttribute(
      "DataRate", ns3::DataRateValue(ns3::DataRate(static_cast<std::uint64_t>(rate_mbps * 1e6))));
  p2p.SetChannelAttribute(
      "Delay", ns3::TimeValue(ns3::NanoSeconds(static_cast<std::int64_t>(delay_ms * 1e6))));
  ns3::NetDeviceContainer devices = p2p.Install(nodes);
  std::int64_t stream = 0;
  if (loss > 0) {
    for (std::uint32_t i = 0; i < 2; ++i) {
      auto em = ns3::CreateObject<ns3::RateErrorModel>();
      em->SetAttribute("ErrorRate", ns3::DoubleValue(loss));
      em->SetAttribute("ErrorUnit", ns3::StringValue("ERROR_UNIT_PACKET"));
      stream += em->AssignStreams(stream);
      devices.Get(i)->SetAttribute("ReceiveErrorModel", ns3::PointerValue(em));
    }
  }
  ns3::InternetStackHelper stack;
  stack.Install(nodes);
  ns3::Ipv4AddressHelper ipv4;
  ipv4.SetBase("10.1.0.0", "255.255.255.0");
  ipv4.Assign(devices);

  Collected collected;
  std::vector<ns3::Ptr<sim::RouterApp>> apps;
  const char* names[2] = {"a", "b"};
  const char* addrs[2] = {"10.1.0.1:7000", "10.1.0.2:7000"};
  for (std::uint32_t i = 0; i < 2; ++i) {
    const bool pings = i == 0 || both;
    auto app_i = ns3::CreateObject<sim::RouterApp>();
    app_i->Setup(names[i], seed * 2 + i,
                 {{lib.value(), std::string("probe-") + names[i],
                   config_for(addrs[i], pings ? addrs[1 - i] : "")}},
                 &collected);
    nodes.Get(i)->AddApplication(app_i);
    app_i->SetStartTime(ns3::Seconds(0));
    apps.push_back(app_i);
  }
  const double stop_s = count * (interval_ms / 1000.0) + 2.0 + 2 * delay_ms / 1000.0;
  ns3::Simulator::Stop(ns3::Seconds(stop_s));
  ns3::Simulator::Run();
  std::string errors;
  for (auto& a : apps) errors += a->error();
  const double sim_seconds = ns3::Simulator::Now().GetSeconds();
  ns3::Simulator::Destroy();  // disposes the apps: routers stop, traces are kept
  std::string trace;
  for (std::size_t i = 0; i < apps.size(); ++i) {
    trace += std::string("# site ") + names[i] + "\n" + apps[i]->final_trace();
  }
  apps.clear();
  if (!errors.empty()) {
    std::cerr << "patronus-sim: " << errors << std::endl;
    return 1;
  }
  if (!trace_file.empty()) std::ofstream(trace_file) << trace;

  nlohmann::json out = {{"scenario", "pingpong"},
                        {"seed", seed},
                        {"simulated_seconds", sim_seconds},
                        {"sites", nlohmann::json::object()}};
  for (const auto& [instance, s] : collected.by_instance) {
    std::int64_t lo = 0, hi = 0;
    for (std::size_t k = 0; k < s.rtts.size(); ++k) {
      lo = k == 0 ? s.rtts[k] : std::min(lo, s.rtts[k]);
      hi = k == 0 ? s.rtts[k] : std::max(hi, s.rtts[k]);
    }
    out["sites"][instance] = {{"received", s.received}, {"lost", s.lost},   {"min_rtt_ns", lo},
                              {"max_rtt_ns", hi},       {"rtt_ns", s.rtts}, {"events", s.events}};
  }
  if (as_json) {
    std::cout << out.dump(2) << std::endl;
  } else {
    std::cout << "pingpong over ns-3: delay " << delay_ms << " ms, " << rate_mbps
              << " Mbit/s, loss " << loss << ", seed " << seed << ", " << sim_seconds
              << " s simulated\n";
    for (const auto& [instance, s] : collected.by_instance) {
      std::cout << "  " << instance << ": " << s.received << " answered, " << s.lost
                << " lost, rtt min "
                << out["sites"][instance]["min_rtt_ns"].get<std::int64_t>() / 1e6 << " ms, max "
                << out["sites"][instance]["max_rtt_ns"].get<std::int64_t>() / 1e6 << " ms\n";
    }
  }
  return 0;
}
