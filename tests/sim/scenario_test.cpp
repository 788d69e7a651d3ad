// The simulator end to end: every shipped scenario runs in ns-3 with the real plugins and meets
// its own expectations (failover times, lost packets and false failovers counted from simulated
// packets and the runtimes' decisions); the same file and seed give the same report and trace;
// bad scenario files are refused with the line and field, before anything runs.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "runner.hpp"
#include "scenario.hpp"
#include "test_support.hpp"
#include "wan.hpp"

namespace {

using namespace patronus;

std::string scenario_path(const std::string& name) {
  return test::source_dir() + "/sim/scenarios/" + name + ".yaml";
}

sim::RunOutput run(const std::string& name, bool trace = false) {
  auto s = sim::load_scenario(scenario_path(name));
  EXPECT_TRUE(s.is_ok()) << s.status().to_string();
  sim::RunOptions o;
  o.plugin_dir = test::plugin_dir();
  o.trace = trace;
  auto out = sim::run_scenario(s.value(), o);
  EXPECT_TRUE(out.is_ok()) << out.status().to_string();
  return out.is_ok() ? out.value() : sim::RunOutput{};
}

class ShippedScenario : public ::testing::TestWithParam<std::string> {};

TEST_P(ShippedScenario, MeetsItsExpectations) {
  const auto out = run(GetParam());
  ASSERT_FALSE(out.report.is_null());
  for (const auto& e : out.report["expectations"]) {
    EXPECT_TRUE(e["ok"].get<bool>()) << e["expect"] << ": " << e["detail"];
  }
  EXPECT_TRUE(out.ok);
  EXPECT_GT(out.report["events"].get<std::uint64_t>(), 0u);
  // The runtime's steering and the Dataplane's tables never disagreed on a packet.
  EXPECT_EQ(out.report["steering_mismatches"].get<std::uint64_t>(), 0u);
  // Packets really crossed the simulated WAN.
  for (const auto& f : out.report["flows"]) {
    EXPECT_GT(f["received_packets"].get<std::uint64_t>(), 0u) << f["name"];
  }
  if (GetParam() == "loss-soak") {
    // The loss is real: about 1 % of the round trips of an hour of probes and calls were lost on
    // the simulated links, and still nothing moved.
    const auto& wan = out.report["wan"];
    const double lost = wan["dropped_loss"].get<double>(), sent = wan["sent"].get<double>();
    EXPECT_GT(lost / sent, 0.004);  // each way 0.5 % (two access links of 0.25 %)
    EXPECT_LT(lost / sent, 0.006);
    EXPECT_GT(out.report["sim_seconds"].get<double>(), 3599);
    EXPECT_EQ(out.report["false_failovers"].get<int>(), 0);
    for (const auto& f : out.report["flows"]) {
      EXPECT_TRUE(f["failovers"].empty()) << f["name"];
      EXPECT_GT(f["lost_packets"].get<int>(), 0) << f["name"] << ": the calls crossed lossy links";
    }
  }
  std::cout << "[measured] " << sim::text_report(out.report);
}

INSTANTIATE_TEST_SUITE_P(Sim, ShippedScenario,
                         ::testing::Values("flagship", "link-cut", "endpoint-failure", "brownout",
                                           "flapping", "hub-failure", "loss-soak", "mesh50", "lab3",
                                           "bfd-vs-probes", "controller"));

// The controller in the simulator: every change reaches the sites it concerns through the real
// core (enrolment, keys, debounce, push, apply, acknowledge), with the scenario's path ids; an
// outage changes nothing on the sites and nothing is pushed again when they reconnect.
TEST(Simulator, TheControllerPushesEachChangeAndItsOutageDisturbsNothing) {
  const auto out = run("controller", true);
  ASSERT_TRUE(out.report.contains("controller"));
  const auto& c = out.report["controller"];
  ASSERT_EQ(c["changes"].size(), 2u);
  // Start: enrol (20 ms), welcome (20 ms), keys (20 ms), 500 ms debounce, push (20 ms).
  const auto& start = c["changes"][0];
  EXPECT_EQ(start["reached_ms"].size(), 3u);
  EXPECT_TRUE(start["missing"].empty());
  EXPECT_GE(start["last_ms"].get<double>(), 580.0);
  EXPECT_LT(start["last_ms"].get<double>(), 2000.0);
  // The join of d reaches d and every site it has paths to.
  const auto& join = c["changes"][1];
  EXPECT_EQ(join["at_s"].get<double>(), 30.0);
  EXPECT_EQ(join["reached_ms"].size(), 4u);
  EXPECT_TRUE(join["missing"].empty());
  ASSERT_EQ(c["outages"].size(), 1u);
  const auto& o = c["outages"][0];
  EXPECT_EQ(o["sites_back"].get<int>(), 4);
  EXPECT_EQ(o["unexplained_path_downs"].get<int>(), 0);
  EXPECT_EQ(o["false_failovers"].get<int>(), 0);
  EXPECT_EQ(o["configs_pushed_on_reconnect"].get<int>(), 0);
  EXPECT_EQ(c["stops"].get<int>(), 1);
  EXPECT_FALSE(o["all_back_after_up_ms"].is_null());
  EXPECT_EQ(c["configs_refused_by_sites"].get<int>(), 0);
  // The cut during the outage failed over on the configured paths, named as the run names them:
  // the controller's fleet-wide ids are the scenario's.
  for (const auto& f : out.report["flows"]) {
    if (f["name"] == "ab") {
      ASSERT_EQ(f["failovers"].size(), 1u);
      EXPECT_EQ(f["failovers"][0]["from_path"], "a.inet-b.inet");
    }
    if (f["name"] == "ad") {
      EXPECT_EQ(f["final_path"], "a.inet-d.inet");
    }
  }
  EXPECT_NE(out.trace.find("d controller session up"), std::string::npos);
  EXPECT_NE(out.trace.find("fault controller down"), std::string::npos);
}

// A site that joins while the controller is down waits for it: the expectation says so.
TEST(Simulator, AJoinDuringAControllerOutageIsLate) {
  std::ifstream in(scenario_path("controller"));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto at = text.find("join: 30s");
  ASSERT_NE(at, std::string::npos);
  text.replace(at, 9, "join: 52s");
  const auto flow = text.find("start: 40s");
  ASSERT_NE(flow, std::string::npos);
  text.replace(flow, 10, "start: 90s");
  auto s = sim::parse_scenario(text, "late.yaml");
  ASSERT_TRUE(s.is_ok()) << s.status().to_string();
  sim::RunOptions o;
  o.plugin_dir = test::plugin_dir();
  auto out = sim::run_scenario(s.value(), o);
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_FALSE(out.value().ok);
  const auto& e = out.value().report["expectations"][0];
  EXPECT_EQ(e["expect"], "{max_config_delay: 2s}");
  EXPECT_FALSE(e["ok"].get<bool>());
  EXPECT_NE(e["detail"].get<std::string>().find("the change at 52"), std::string::npos)
      << e["detail"];
  // d could enrol only once the controller was back (65 s) and it had retried.
  const auto& join = out.value().report["controller"]["changes"][1];
  EXPECT_GT(join["last_ms"].get<double>(), 13000.0);
}

// The BFD plugin in the simulator: the same cut, detected by BFD's session (50 ms x 3, a liveness
// instance gating the path) well before our probe's 50 ms x 5, and the flow moves sooner.
TEST(Simulator, BfdDetectsTheSameCutBeforeTheProbes) {
  const auto out = run("bfd-vs-probes");
  ASSERT_EQ(out.report["variants"].size(), 1u);
  const auto& probes = out.report;
  const auto& bfd = out.report["variants"][0];
  const double probe_detect =
      probes["faults"][0]["detected_ms"]["east.isp1-west.isp1"].get<double>();
  const double bfd_detect = bfd["faults"][0]["detected_ms"]["east.isp1-west.isp1"].get<double>();
  // Down after the detection time of the last packet received before the cut: probes 250 ms
  // (5 x 50), BFD 150 ms (3 x 50), each minus up to one interval.
  EXPECT_GT(probe_detect, 200);
  EXPECT_LE(probe_detect, 250);
  EXPECT_GT(bfd_detect, 100 - 50 * 0.25);
  EXPECT_LE(bfd_detect, 150);
  const double probe_failover = probes["flows"][0]["failovers"][0]["failover_ms"].get<double>();
  const double bfd_failover = bfd["flows"][0]["failovers"][0]["failover_ms"].get<double>();
  EXPECT_LT(bfd_failover, probe_failover);
  EXPECT_LT(bfd["flows"][0]["lost_packets"].get<int>(),
            probes["flows"][0]["lost_packets"].get<int>());
}

TEST(Simulator, SameFileAndSeedGiveTheSameReportAndTrace) {
  auto a = run("link-cut", true);
  auto b = run("link-cut", true);
  a.report.erase("wall_seconds");
  b.report.erase("wall_seconds");
  EXPECT_EQ(a.report.dump(), b.report.dump());
  EXPECT_EQ(a.trace, b.trace);
  EXPECT_NE(a.trace.find("decision voice"), std::string::npos);
}

TEST(Simulator, TheFlagshipComparesItsVariantsInTheSameRun) {
  const auto out = run("flagship");
  ASSERT_EQ(out.report["variants"].size(), 2u);
  auto worst = [](const nlohmann::json& run) {
    double w = 0;
    for (const auto& f : run["flows"][0]["failovers"]) {
      if (!f["failover_ms"].is_null()) w = std::max(w, f["failover_ms"].get<double>());
    }
    return w;
  };
  const double ours = worst(out.report);
  const double bfd = worst(out.report["variants"][0]);
  const double published = worst(out.report["variants"][1]);
  EXPECT_GT(ours, 0);
  EXPECT_LT(ours, bfd);       // 50 ms x 4 detects before 300 ms x 3
  EXPECT_LT(bfd, published);  // which detects before 10 s x 3
  EXPECT_GT(published, 10'000);
}

// The WAN binds like a socket layer: port 0 is a free ephemeral port, a taken port and an address
// that is not an endpoint are refused, and an unbound port is free again.
TEST(SimulatedWan, BindsLikeSockets) {
  sim::WanModel wan(1);
  const auto ip = model::IpAddress::parse("100.64.0.1").value();
  wan.add_site_count(1);
  wan.add_endpoint(0, ip.v4_host_order(), sim::LinkSpec{});
  auto none = [](const model::SocketAddress&, int, const std::uint8_t*, std::size_t) {};
  auto a = wan.bind(model::SocketAddress(ip, 0), none);
  auto b = wan.bind(model::SocketAddress(ip, 0), none);
  ASSERT_TRUE(a.is_ok() && b.is_ok());
  EXPECT_NE(a.value().port(), 0);
  EXPECT_NE(a.value().port(), b.value().port());
  EXPECT_TRUE(wan.bind(model::SocketAddress(ip, 51820), none).is_ok());
  EXPECT_FALSE(wan.bind(model::SocketAddress(ip, 51820), none).is_ok()) << "taken";
  EXPECT_FALSE(wan.bind(model::SocketAddress::parse("100.64.0.2:1").value(), none).is_ok());
  wan.unbind(a.value());
  auto c = wan.bind(model::SocketAddress(ip, 0), none);
  ASSERT_TRUE(c.is_ok());
  EXPECT_EQ(c.value().port(), a.value().port()) << "freed ports are reused";
}

TEST(Simulator, AnotherSeedIsAnotherRun) {
  auto s = sim::load_scenario(scenario_path("link-cut"));
  ASSERT_TRUE(s.is_ok());
  sim::RunOptions o;
  o.plugin_dir = test::plugin_dir();
  o.trace = true;
  auto a = sim::run_scenario(s.value(), o);
  o.seed = 99;
  auto b = sim::run_scenario(s.value(), o);
  ASSERT_TRUE(a.is_ok() && b.is_ok());
  EXPECT_EQ(b.value().report["seed"].get<std::uint64_t>(), 99u);
  // Other keys and probe phases: other timings, down to the detection of the same cut.
  EXPECT_NE(a.value().trace, b.value().trace);
  EXPECT_NE(a.value().report["faults"][0]["detected_ms"].dump(),
            b.value().report["faults"][0]["detected_ms"].dump());
}

TEST(Simulator, RandomPathFaultsHitOnlyPathsOfTheTopology) {
  // Hub and spoke: spoke-to-spoke endpoint pairs are not paths and must never be chosen.
  auto s = sim::parse_scenario(R"(name: x
duration: 30s
topology: {type: hub-spoke, hubs: [hub]}
sites:
  - {name: hub, endpoints: [{name: e1, type: internet}]}
  - {name: s1, endpoints: [{name: e1, type: internet}]}
  - {name: s2, endpoints: [{name: e1, type: internet}]}
  - {name: s3, endpoints: [{name: e1, type: internet}]}
faults:
  - {random: {count: 40, targets: paths, actions: [down], between: [5s, 25s], duration: 2s}}
)",
                               "t.yaml");
  ASSERT_TRUE(s.is_ok()) << s.status().to_string();
  sim::RunOptions o;
  o.plugin_dir = test::plugin_dir();
  auto out = sim::run_scenario(s.value(), o);
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  std::size_t downs = 0;
  for (const auto& f : out.value().report["faults"]) {
    if (f["action"] != "down") continue;
    ++downs;
    EXPECT_NE(f["target"].get<std::string>().find("hub."), std::string::npos) << f["target"];
    EXPECT_EQ(f["detected_ms"].size(), 1u) << f["target"];
  }
  EXPECT_EQ(downs, 40u);
}

TEST(Simulator, PlotsATimelineWithGnuplot) {
  auto s = sim::load_scenario(scenario_path("link-cut"));
  ASSERT_TRUE(s.is_ok());
  sim::RunOptions o;
  o.plugin_dir = test::plugin_dir();
  o.plot = true;
  auto out = sim::run_scenario(s.value(), o);
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  ASSERT_EQ(out.value().plots.size(), 1u);
  const auto& p = out.value().plots[0];
  EXPECT_FALSE(p.samples.empty());
  EXPECT_EQ(p.flows.size(), 1u);
  // The voice flow's steps: on a path, moved at the cut, back after the hold-down.
  EXPECT_GE(p.steps.size(), 3u);
  test::TempDir dir;
  const std::string png = dir.file("timeline.png");
  auto st = sim::write_plot(out.value().plots, out.value().report, png);
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  std::ifstream f(png, std::ios::binary);
  char magic[8] = {};
  f.read(magic, 8);
  EXPECT_EQ(std::string(magic + 1, 3), "PNG");
  // A path with a quote and shell syntax is a file name, not a command (gnuplot is spawned
  // without a shell, and the script quotes what it embeds).
  const std::string marker = "pwned-" + std::to_string(::getpid());
  const std::string odd = dir.file("it's $(touch " + marker + ").png");
  st = sim::write_plot(out.value().plots, out.value().report, odd);
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  EXPECT_TRUE(std::filesystem::exists(odd));
  EXPECT_FALSE(std::filesystem::exists(marker));  // where a shell would have run `touch`
  std::filesystem::remove(marker);
}

struct BadCase {
  const char* what;
  const char* yaml;
  const char* error;
};

TEST(Scenario, BadFilesAreRefusedWithTheLineAndField) {
  const std::string sites = R"(sites:
  - name: a
    endpoints: [{name: e1, type: internet}]
  - name: b
    endpoints: [{name: e1, type: internet}]
)";
  const BadCase cases[] = {
      {"unknown key", "name: x\nduration: 10s\nbogus: 1\n", "line 3: bogus: unknown key"},
      {"no unit", "name: x\nduration: 10\n", "duration: '10' is not a duration"},
      {"bad loss",
       "name: x\nduration: 10s\nsites:\n  - name: a\n    endpoints: [{name: e, type: internet, "
       "access: {loss: 5}}]\n  - name: b\n    endpoints: [{name: e, type: internet}]\n",
       "line 5: sites[0].endpoints[0].access.loss: '5' is not a percentage"},
      {"transport", "name: x\nduration: 10s\ntransport: wireguard\n",
       "do not run in the simulator"},
      {"unknown site in flow", "", "'c' is not a site of this scenario"},
      {"unknown path", "", "names no path between two endpoints"},
      {"fault after the end", "", "is not before the end"},
      {"expectation on no flow", "", "'ghost' is not a flow of this scenario"},
      {"join without a controller", "", "add `controller: {}`"},
      {"controller fault without one", "", "needs a `controller:` section"},
      {"config delay without one", "", "needs a `controller:` section"},
  };
  const std::string tails[] = {
      "",
      "",
      "",
      "",
      "flows:\n  - {name: f, from: a, to: c, rate: 10pps}\n",
      "faults:\n  - {at: 1s, path: a.e1-b.e9, action: down}\n",
      "faults:\n  - {at: 20s, site: a, action: down}\n",
      "expect:\n  - {flow: ghost, max_lost_packets: 1}\n",
      "",
      "faults:\n  - {at: 1s, controller: down}\n",
      "expect:\n  - {max_config_delay: 1s}\n",
  };
  for (std::size_t i = 0; i < std::size(cases); ++i) {
    std::string text =
        i < 4 ? std::string(cases[i].yaml) : "name: x\nduration: 10s\n" + sites + tails[i];
    if (std::string(cases[i].what) == "join without a controller") {
      text.replace(text.find("  - name: b\n"), 12, "  - name: b\n    join: 2s\n");
    }
    auto s = sim::parse_scenario(text, "t.yaml");
    ASSERT_FALSE(s.is_ok()) << cases[i].what;
    EXPECT_NE(s.status().message().find(cases[i].error), std::string::npos)
        << cases[i].what << ": " << s.status().message();
    EXPECT_EQ(s.status().message().rfind("t.yaml: ", 0), 0u) << s.status().message();
  }
}

TEST(Scenario, UnitsParse) {
  EXPECT_EQ(sim::parse_duration("50ms").value(), 50'000'000);
  EXPECT_EQ(sim::parse_duration("1.5s").value(), 1'500'000'000);
  EXPECT_DOUBLE_EQ(sim::parse_percent("0.5%").value(), 0.005);
  EXPECT_DOUBLE_EQ(sim::parse_bandwidth("100Mbps").value(), 1e8);
  EXPECT_DOUBLE_EQ(sim::parse_rate_pps("50pps").value(), 50);
  EXPECT_EQ(sim::parse_bytes("200B").value(), 200u);
  EXPECT_FALSE(sim::parse_duration("-1s").is_ok());
  EXPECT_FALSE(sim::parse_percent("101%").is_ok());
  EXPECT_FALSE(sim::parse_bandwidth("10 Mbps").is_ok());
  EXPECT_FALSE(sim::parse_bytes("1.5B").is_ok());
}

TEST(Scenario, AFlowWhosePacketsFallIntoAnotherClassIsRefused) {
  auto s = sim::parse_scenario(R"(name: x
duration: 10s
sites:
  - name: a
    endpoints: [{name: e1, type: internet}]
  - name: b
    endpoints: [{name: e1, type: internet}]
flows:
  - {name: f, from: a, to: b, priority: critical, dst_port: 9999, rate: 10pps}
)",
                               "t.yaml");
  ASSERT_TRUE(s.is_ok()) << s.status().to_string();
  sim::RunOptions o;
  o.plugin_dir = test::plugin_dir();
  auto out = sim::run_scenario(s.value(), o);
  ASSERT_FALSE(out.is_ok());
  EXPECT_NE(out.status().message().find("priority critical, but its packets"), std::string::npos)
      << out.status().message();
}

}  // namespace

// A transport plugin is refused by its descriptor's needs-real-network flag (the real WireGuard
// plugin from the build), anything else the simulator does not host as such, before anything runs.
TEST(Scenario, PluginsTheSimulatorDoesNotHostAreRefusedByTheirDescriptor) {
  const std::string base = R"(name: x
duration: 10s
sites:
  - name: a
    endpoints: [{name: e1, type: internet}]
  - name: b
    endpoints: [{name: e1, type: internet}]
plugins:
)";
  const std::pair<std::string, std::string> cases[] = {
      {"  wireguard: {keys_dir: /nonexistent}\n",
       "line 9: plugins.wireguard: plugin 'wireguard' (transport"},
      {"  netpolicy: {}\n", "'netpolicy' is a policy plugin it does not host"},
      {"  wireguard2: {x: 1}\n", "line 9: plugins.wireguard2: unknown plugin"},
  };
  for (const auto& [tail, needle] : cases) {
    auto s = sim::parse_scenario(base + tail, "t.yaml");
    ASSERT_TRUE(s.is_ok()) << s.status().to_string();
    sim::RunOptions o;
    o.plugin_dir = test::plugin_dir();
    auto out = sim::run_scenario(s.value(), o);
    ASSERT_FALSE(out.is_ok()) << tail;
    EXPECT_NE(out.status().message().find(needle), std::string::npos) << out.status().message();
  }
  auto s = sim::parse_scenario(base + "  wireguard: {}\n", "t.yaml");
  sim::RunOptions o;
  o.plugin_dir = test::plugin_dir();
  EXPECT_NE(sim::run_scenario(s.value(), o).status().message().find("needs the real network"),
            std::string::npos);
}

// A vendor's scorer (the SDK example, acme-latency, built as a vendor would and loaded from
// another directory) runs in every simulated site exactly as patronusd hosts it and chooses the
// class's path: on the same WAN, weighting loss moves voice off the fast lossy path, not weighting
// it keeps voice there.
TEST(Simulator, AScenarioRunsAThirdPartyScorerThatChoosesTheClassPath) {
  const auto scenario = [](const std::string& loss_weight, const std::string& final_path) {
    return R"(name: vendor-scorer
seed: 3
duration: 40s
plugins:
  probes: {interval: 50ms, idle_interval: 1s, detect_multiplier: 4}
  acme-latency: {budget_ms: 150, loss_weight: )" +
           loss_weight + R"(}
classes:
  - {name: voice, priority: critical, scorer: acme-latency, min_score: 0, hysteresis: 3, hold_down_ms: 5000}
  - {name: default, priority: best-effort}
rules:
  - {class: voice, protocol: udp, dst_ports: 5060}
default_class: default
sites:
  - name: a
    endpoints:
      - {name: fast, type: internet, access: {delay: 5ms}}
      - {name: slow, type: internet, access: {delay: 30ms}}
  - name: b
    endpoints:
      - {name: e1, type: internet, access: {delay: 5ms}}
paths:
  - {path: a.fast-b.e1, loss: 5%}
flows:
  - {name: voice, from: a, to: b, priority: critical, protocol: udp, dst_port: 5060, rate: 50pps, size: 200B, start: 15s}
expect:
  - {flow: voice, final_path: )" +
           final_path + "}\n";
  };
  sim::RunOptions o;
  o.plugin_dir = test::plugin_dir();
  o.extra_plugin_dirs = {test::test_plugin_dir()};
  for (const auto& [weight, path] : {std::pair<std::string, std::string>{"40", "a.slow-b.e1"},
                                     std::pair<std::string, std::string>{"0", "a.fast-b.e1"}}) {
    auto s = sim::parse_scenario(scenario(weight, path), "vendor.yaml");
    ASSERT_TRUE(s.is_ok()) << s.status().to_string();
    auto out = sim::run_scenario(s.value(), o);
    ASSERT_TRUE(out.is_ok()) << out.status().to_string();
    EXPECT_TRUE(out.value().ok) << "loss_weight " << weight << ":\n"
                                << sim::text_report(out.value().report);
  }
  // Without the vendor's directory the plugin is unknown, and says where it was looked for.
  auto s = sim::parse_scenario(scenario("0", "a.fast-b.e1"), "vendor.yaml");
  ASSERT_TRUE(s.is_ok());
  sim::RunOptions bare;
  bare.plugin_dir = test::plugin_dir();
  const auto refused = sim::run_scenario(s.value(), bare);
  ASSERT_FALSE(refused.is_ok());
  EXPECT_NE(refused.status().message().find("plugins.acme-latency: unknown plugin"),
            std::string::npos)
      << refused.status().message();
  // Its own verdict on its settings is asked before anything runs.
  s = sim::parse_scenario(scenario("-1", "a.fast-b.e1"), "vendor.yaml");
  ASSERT_TRUE(s.is_ok());
  const auto bad = sim::run_scenario(s.value(), o);
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find(
                "refused its configuration: acme-latency (acme-latency): configure failed: "
                "loss_weight must be >= 0"),
            std::string::npos)
      << bad.status().message();
  // `probe:` must name a probe plugin the scenario configures.
  s = sim::parse_scenario("probe: acme-latency\n" + scenario("0", "a.fast-b.e1"), "vendor.yaml");
  ASSERT_TRUE(s.is_ok());
  const auto not_probe = sim::run_scenario(s.value(), o);
  ASSERT_FALSE(not_probe.is_ok());
  EXPECT_NE(not_probe.status().message().find("line 1: probe: 'acme-latency' is not a probe"),
            std::string::npos)
      << not_probe.status().message();
}

namespace {

// What went wrong inside the sites reaches the text report too (a vendor's failing scorer was
// only visible with --json): the count, and the first lines.
TEST(Simulator, TheTextReportSaysWhatTheSitesWarnedAbout) {
  auto out = run("link-cut");
  ASSERT_TRUE(out.report.is_object());
  EXPECT_EQ(sim::text_report(out.report).find("Warnings:"), std::string::npos);
  out.report["warnings"] = {"hq/runtime: runtime.scorer_error {\"scorer\":\"acme\"}"};
  const std::string text = sim::text_report(out.report);
  EXPECT_NE(text.find("  Warnings: 1\n    hq/runtime: runtime.scorer_error {\"scorer\":\"acme\"}"),
            std::string::npos)
      << text;
}

}  // namespace
