// A simulation scenario: the sites of a multi-site WAN with their endpoints and access links, the
// mesh topology, per-path overrides, traffic flows, faults at given times, variants (the same
// scenario with other plugin settings) and expectations. Parsed completely and validated before
// anything runs; every error names the line and the field. The file format is documented in
// docs/guides/simulation.md.
//
// This header is C++17 (the ns-3 translation units include it).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "patronus/mesh/graph.hpp"
#include "patronus/model/address.hpp"
#include "patronus/model/types.hpp"
#include "patronus/util/status.hpp"

namespace patronus::sim {

// What a link does to the packets crossing it.
struct LinkSpec {
  std::int64_t delay_ns = 0;
  std::int64_t jitter_ns = 0;  // each packet's delay is uniform in [delay - jitter, delay + jitter]
  double loss = 0;             // probability 0..1
  double bandwidth_bps = 0;    // 0: no limit
};

// Fields a per-path override or a `degrade` fault changes.
struct LinkChange {
  std::optional<std::int64_t> delay_ns, jitter_ns;
  std::optional<double> loss, bandwidth_bps;
  LinkSpec applied_to(LinkSpec base) const;
  bool empty() const { return !delay_ns && !jitter_ns && !loss && !bandwidth_bps; }
};

struct EndpointSpec {
  std::string name;
  std::string network;  // as written: internet, mpls, lte, broadband, satellite
  model::InterfaceType type = model::InterfaceType::kWan;
  LinkSpec access;
  double cost_per_gb = 0;
  int line = 0;
};

struct SiteSpec {
  std::string name;
  std::vector<EndpointSpec> endpoints;
  std::optional<model::IpPrefix> subnet;  // LAN; assigned from 10.128.0.0/9 when absent
  // With a controller: the operator adds the site to the fleet and it starts at this time (none:
  // at the start).
  std::optional<std::int64_t> join_ns;
  int line = 0;
};

// `controller:`: the fleet runs from the controller's core (the code patronus-controller runs),
// hosted on a node of its own. Every site starts with no paths, enrols with a one-time token and
// applies the configs it is pushed, as patronusd does; the channel is a message link with a
// one-way latency (the TLS and WebSocket framing are not simulated).
struct ControllerSpec {
  std::int64_t latency_ns = 10'000'000;
  std::int64_t debounce_ns = 500'000'000, max_wait_ns = 3'000'000'000;
  int line = 0;
};

// `{at: 20s, controller: down, duration: 10s}`: the controller process stops (every session
// drops; its fleet stays in its store) and starts again (`up`, or after `duration`).
struct ControllerFault {
  std::int64_t at_ns = 0;
  bool up = false;
  std::int64_t duration_ns = 0;  // down: 0 = until an `up`
  int line = 0;
};

// A path between two endpoints, "site.endpoint-site.endpoint" in the file.
struct PathRef {
  std::size_t a_site = 0, a_endpoint = 0, b_site = 0, b_endpoint = 0;
  std::string text;
};

struct PathOverride {
  PathRef path;
  LinkChange link;
  int line = 0;
};

enum class FlowKind { kConstant, kBulk };

struct FlowSpec {
  std::string name;
  std::size_t from = 0, to = 0;  // site indices
  FlowKind kind = FlowKind::kConstant;
  std::optional<model::Priority> priority;  // checked against the class the site puts it in
  std::string class_name;                   // the same, by class name ("" = not checked)
  std::uint8_t protocol = 17;
  std::uint16_t src_port = 40000, dst_port = 0;
  std::uint8_t dscp = 0;
  double rate_pps = 0;
  std::uint32_t size_bytes = 0;  // bytes per packet on the tunnel (payload)
  std::int64_t start_ns = 0, stop_ns = 0;
  int line = 0;
};

enum class FaultAction { kDown, kUp, kDegrade, kFlap };
const char* to_string(FaultAction a);
enum class TargetKind { kPath, kEndpoint, kSite };

struct FaultSpec {
  std::int64_t at_ns = 0;
  TargetKind kind = TargetKind::kPath;
  std::string target;  // as written ("hq.wan1-branch1.wan1", "hq.lte1", "hq")
  std::size_t site = 0, endpoint = 0;
  PathRef path;
  FaultAction action = FaultAction::kDown;
  LinkChange degrade;            // kDegrade
  std::int64_t period_ns = 0;    // kFlap: down, then up, every period
  std::int64_t duration_ns = 0;  // kFlap: how long it flaps; kDegrade: 0 = until `up`
  int line = 0;
};

// `random: {count, targets: paths|endpoints|sites, actions, between: [from, to], duration}`:
// expanded with the run's seed into `count` faults (each ends with `up` after `duration`).
struct RandomFaults {
  std::uint32_t count = 0;
  TargetKind kind = TargetKind::kPath;
  std::vector<FaultAction> actions;  // kDown, kDegrade, kFlap
  std::int64_t from_ns = 0, to_ns = 0, duration_ns = 0, period_ns = 0;
  LinkChange degrade;
  int line = 0;
};

struct Expectation {
  std::string flow;  // "" = about the whole run
  std::optional<std::int64_t> max_failover_ns, max_detection_ns;
  std::optional<std::uint64_t> max_lost_packets, max_failovers, min_failovers, max_false_failovers;
  std::optional<PathRef> final_path;  // with final_path_none: the flow ends with no path
  // With a controller: every site a join's change reaches applied it within this time.
  std::optional<std::int64_t> max_config_delay_ns;
  bool final_path_none = false;
  std::string text;  // as written, for the report
  int line = 0;
};

// Plugin config overrides: plugin name -> key -> scalar value (units already converted: a key
// given as a duration becomes `<key>_ms`).
using PluginSettings = std::map<std::string, std::map<std::string, std::string>>;

struct Variant {
  std::string name;
  PluginSettings plugins;  // merged over the scenario's
  int line = 0;
};

struct TopologySpec {
  mesh::TopologyKind kind = mesh::TopologyKind::kFullMesh;
  std::vector<std::string> hubs;
  int k = 2;
  std::vector<std::pair<std::string, std::string>> links;  // explicit: "site[.endpoint]" pairs
};

// The plugins the simulator hosts in every site, by name, in the order it loads them. One list,
// in sim/CMakeLists.txt (PATRONUS_SIM_PLUGINS): the build of the main job builds exactly these.
const std::vector<std::string>& hosted_plugins();
bool is_hosted_plugin(const std::string& name);
// "probes, scoring, emodel and bfd"
std::string hosted_plugins_text();

// A plugin the scenario names that the simulator does not ship (a vendor's scorer or probe):
// run_scenario loads it from the plugin directories, runs it in every site as instance NAME with
// the scenario's settings, exactly as patronusd would, and refuses only what cannot run there (a
// plugin that declares it needs the real network, a transport or policy plugin), by its descriptor.
struct ThirdPartyPlugin {
  std::string name;
  std::string path;  // "plugins.acme-latency" or "variants[1].plugins.x"
  int line = 0;
};

struct Scenario {
  std::vector<ThirdPartyPlugin> third_party_plugins;
  // The runtime's probe instance: the shipped `probes`, or a third-party probe plugin the
  // scenario configures under `plugins:`. Other probe plugins it configures gate the paths.
  std::string probe = "probes";
  int probe_line = 0;
  std::map<std::string, int> plugin_lines;  // plugin name -> line of its `plugins:` entry
  std::string name;
  std::string origin;  // file name, for errors
  std::uint64_t seed = 1;
  std::int64_t duration_ns = 0;
  std::int64_t tick_ns = 100'000'000;  // the runtime's decision tick
  TopologySpec topology;
  PluginSettings plugins;
  std::string classes_yaml;  // `classes:`/`rules:`/`default_class:` as in the daemon config
  std::vector<SiteSpec> sites;
  std::vector<PathOverride> paths;
  std::vector<FlowSpec> flows;
  std::vector<FaultSpec> faults;
  std::vector<RandomFaults> random_faults;
  std::vector<Variant> variants;
  std::vector<Expectation> expect;
  std::optional<ControllerSpec> controller;
  std::vector<ControllerFault> controller_faults;

  int find_site(const std::string& name) const;
  int find_endpoint(std::size_t site, const std::string& name) const;
  // "site.endpoint-site.endpoint" (either order of the ends is the same path).
  std::string path_text(const PathRef& p) const;
};

// Bounds: a scenario is user input.
constexpr std::size_t kMaxScenarioSites = 1000;
constexpr std::size_t kMaxScenarioEndpoints = 8;  // per site
constexpr std::size_t kMaxScenarioFlows = 10000;
constexpr std::size_t kMaxScenarioFaults = 100000;
constexpr std::size_t kMaxScenarioVariants = 16;
constexpr std::int64_t kMaxScenarioDurationNs = 7LL * 24 * 3600 * 1'000'000'000;

Result<Scenario> parse_scenario(const std::string& text, const std::string& origin);
Result<Scenario> load_scenario(const std::string& path);

// The scenario's faults with the random ones expanded for `seed`, ordered by time (stable).
// Random path faults pick among `mesh_paths` (the paths the topology has).
std::vector<FaultSpec> expand_faults(const Scenario& s, std::uint64_t seed,
                                     const std::vector<PathRef>& mesh_paths);

// The plugin settings of a variant (nullptr: the base scenario), merged over the scenario's.
PluginSettings plugin_settings(const Scenario& s, const Variant* v);
// The same as YAML per plugin (what the plugins' config schemas read).
std::map<std::string, std::string> plugin_yaml(const PluginSettings& settings);

// Whether two references name the same path (either order of the ends).
bool same_path(const PathRef& a, const PathRef& b);

// Unit parsers (exposed for the tests): "50ms", "1.5s"; "0.5%"; "100Mbps"; "50pps"; "200B".
Result<std::int64_t> parse_duration(const std::string& text);
Result<double> parse_percent(const std::string& text);
Result<double> parse_bandwidth(const std::string& text);
Result<double> parse_rate_pps(const std::string& text);
Result<std::uint32_t> parse_bytes(const std::string& text);

}  // namespace patronus::sim
