#include "runner.hpp"

#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <limits>
#include <map>
#include <set>

#include "ns3/core-module.h"
#include "ns3/network-module.h"
#include "patronus/core/config_schema.hpp"
#include "patronus/core/plugin_host.hpp"
#include "patronus/core/router.hpp"
#include "patronus/mesh/keys.hpp"
#include "patronus/mesh/plan.hpp"
#include "patronus/mesh/sites.hpp"
#include "patronus/site/plan_store.hpp"
#include "site_app.hpp"
#include "wan.hpp"

namespace patronus::sim {

namespace fleet = controller::fleet;

using nlohmann::json;

namespace {

constexpr std::int64_t kSec = 1'000'000'000;
constexpr std::int64_t kMs = 1'000'000;
// A failover up to this long after a fault ended is still the fault's: windows forget a fault
// only when it has aged out of them (10 s, or min_samples probe intervals with slow probing).
std::int64_t attribution_grace_ns(const PluginSettings& settings) {
  std::int64_t interval_ms = 1000;  // the probes plugin's idle default
  if (auto it = settings.find("probes"); it != settings.end()) {
    for (const char* key : {"interval_ms", "idle_interval_ms"}) {
      if (auto v = it->second.find(key); v != it->second.end()) {
        interval_ms = std::max<std::int64_t>(interval_ms, std::atoll(v->second.c_str()));
      }
    }
  }
  const steering::WindowLimits w;
  return std::max<std::int64_t>(15 * kSec, (w.min_samples + 1) * interval_ms * kMs);
}
// Underlay addresses: 100.64.0.0/10, one per endpoint; LANs from 10.128.0.0/9, a /24 per site.
constexpr std::uint32_t kUnderlayBase = 0x64400000;  // 100.64.0.0
constexpr std::uint32_t kLanBase = 0x0a800000;       // 10.128.0.0

bool failover_reason(steering::Reason r) {
  return r == steering::Reason::kPathDown || r == steering::Reason::kThreshold ||
         r == steering::Reason::kNoPath;
}

std::string seconds(std::int64_t ns) {
  char b[40];
  std::snprintf(b, sizeof b, "%lld.%09lld", static_cast<long long>(ns / kSec),
                static_cast<long long>(ns % kSec));
  return b;
}

std::string fmt_ms(double v) {
  char b[40];
  std::snprintf(b, sizeof b, "%.1f ms", v);
  return b;
}

std::string fmt_s(double v) {
  char b[40];
  std::snprintf(b, sizeof b, "%.3f s", v);
  return b;
}

double ms(std::int64_t ns) {
  return std::round(static_cast<double>(ns) / 1e3) / 1e3;  // microsecond precision
}

// The loaded plugin binaries, once per process.
struct Plugins {
  core::PluginRegistry registry;
  std::map<std::string, std::shared_ptr<const core::PluginLibrary>> libs;
};

Result<Plugins*> plugins_from(const std::string& dir) {
  static std::map<std::string, std::unique_ptr<Plugins>> loaded;
  auto& slot = loaded[dir];
  if (slot) return slot.get();
  auto p = std::make_unique<Plugins>();
  for (const std::string& n : hosted_plugins()) {
    const std::string file = dir + "/libpatronus-" + n + ".so";
    auto lib = p->registry.load_file(file);
    if (!lib.is_ok()) {
      return Status(lib.status().code(), lib.status().message() +
                                             " (give the build's plugin directory with "
                                             "--plugin-dir)");
    }
    // The file must be the plugin it is named after, with the configuration the simulator
    // writes for it.
    const auto& info = lib.value()->info();
    if (info.name != n || !lib.value()->schema()) {
      return failed_precondition(
          file + ": is plugin '" + info.name + "' (" + core::to_string(info.kind) + ", " +
          (lib.value()->schema() ? "config " + info.config_type : std::string("no configuration")) +
          "), not the simulator's '" + n + "' with its configuration message");
    }
    p->libs[n] = lib.value();
  }
  slot = std::move(p);
  return slot.get();
}

// The sites' private keys: seeded by the run (the same scenario and seed give the same keys).
site::PrivateKeys seeded_keys(std::uint64_t seed) {
  return [seed](std::string_view site, std::string_view ep) {
    return mesh::seeded_keypair(seed, std::string(site) + "/" + std::string(ep));
  };
}

// A plugin instance (named after its plugin) in a site's config.
void add_plugin(site::SiteConfig& c, const std::string& name, const std::string& config) {
  auto* p = c.add_plugins();
  p->set_plugin(name);
  p->set_instance(name);
  p->set_config(config);
}

// One fault as it acts: when, on which graph paths, until when.
struct FaultWindow {
  const FaultSpec* fault = nullptr;
  std::int64_t start = 0, end = 0;
  bool hard = false;  // down, flap, site: the paths stop carrying packets
  std::vector<std::uint32_t> paths;
};

struct FlowRecord {
  std::uint64_t sent = 0, no_path = 0, received = 0, relay_drops = 0;
  std::int64_t latency_sum = 0, latency_max = 0;
  struct Move {
    std::int64_t at = 0;
    model::PathId from, to;
    std::optional<steering::Reason> reason;  // none: the flow started
  };
  std::vector<Move> moves;
};

struct StateEvent {
  std::int64_t at = 0;
  std::size_t site = 0;
  std::uint64_t path = 0;
  bool live = false;
  model::PathStatus status = model::PathStatus::kDown;
};

struct DecisionRecord {
  std::int64_t at = 0;
  std::size_t site = 0;
  steering::Reason reason = steering::Reason::kInitial;
  std::string cls, dst;
  model::PathId from, to;
};

class Collector final : public SiteListener, public steering::RuntimeObserver {
 public:
  Collector(std::size_t flows, bool trace, std::map<std::string, std::size_t> site_index,
            std::map<std::uint64_t, std::string> path_names)
      : flows_(flows),
        trace_on_(trace),
        site_index_(std::move(site_index)),
        names_(std::move(path_names)) {}

  // SiteListener
  void flow_path(std::size_t flow, std::int64_t now, model::PathId from, model::PathId to,
                 std::optional<steering::Reason> reason) override {
    flows_[flow].moves.push_back({now, from, to, reason});
  }
  void packet_sent(std::size_t flow, bool has_path) override {
    ++flows_[flow].sent;
    if (!has_path) ++flows_[flow].no_path;
  }
  void packet_delivered(std::size_t flow, std::int64_t sent_ns, std::int64_t now) override {
    if (flow >= flows_.size()) return;
    auto& f = flows_[flow];
    ++f.received;
    f.latency_sum += now - sent_ns;
    f.latency_max = std::max(f.latency_max, now - sent_ns);
  }
  void packet_dropped_at_relay(std::size_t flow) override {
    if (flow < flows_.size()) ++flows_[flow].relay_drops;
  }
  void steering_mismatch(std::size_t) override { ++mismatches_; }
  void controller_link(const std::string& site, std::int64_t now, bool up) override {
    links_.push_back({now, site_index_.at(site), up});
    trace_line(seconds(now) + " " + site + " controller session " + (up ? "up" : "down"));
  }
  void config_applied(const std::string& site, std::int64_t now, std::uint64_t version,
                      const std::vector<std::string>& remote_sites,
                      const std::string& error) override {
    applies_.push_back({now, site_index_.at(site), version,
                        std::set<std::string>(remote_sites.begin(), remote_sites.end()), error});
    trace_line(seconds(now) + " " + site + " config version " + std::to_string(version) +
               (error.empty() ? " applied (" + std::to_string(remote_sites.size()) + " peers)"
                              : " refused: " + error));
  }

  // steering::RuntimeObserver
  void on_decision(const std::string& site, const steering::Decision& d) override {
    const std::size_t si = site_index_.at(site);
    decisions_.push_back({d.mono_ns, si, d.reason, d.cls, d.dst_site, d.from, d.to});
    if (trace_on_) {
      trace_ += seconds(d.mono_ns) + " " + site + " decision " + d.cls + " to " + d.dst_site +
                ": " + name(d.from) + " -> " + name(d.to) + " (" + steering::to_string(d.reason) +
                ") " + d.why + "\n";
    }
  }
  void on_path_state(const std::string& site, const steering::PathView& p) override {
    const std::int64_t now = ns3::Simulator::Now().GetNanoSeconds();
    states_.push_back({now, site_index_.at(site), p.id.value(), p.live, p.status});
    if (trace_on_) {
      trace_ +=
          seconds(now) + " " + site + " path " + name(p.id) + " " + model::to_string(p.status) +
          (p.live ? "" : " (no probe replies)") +
          (p.scored ? " score " + std::to_string(static_cast<int>(std::lround(p.score))) : "") +
          "\n";
    }
  }
  void on_event(const std::string& site, const steering::Event& e) override {
    // Liveness changes (over all the path's sources: the probe, BFD), also when the path's
    // status did not change.
    if (!e.has_path()) return;
    const auto& a = e.path();
    const std::int64_t now = ns3::Simulator::Now().GetNanoSeconds();
    states_.push_back({now, site_index_.at(site), a.path(), a.up(),
                       a.up() ? model::PathStatus::kUp : model::PathStatus::kDown});
    if (trace_on_) {
      trace_ += seconds(now) + " " + site + " " + a.by() + " " + name(model::PathId(a.path())) +
                (a.up() ? " up" : " down") + "\n";
    }
  }
  void on_log(const std::string& site, const std::string& instance, std::uint32_t level,
              const std::string& msg) override {
    if (level >= PATRONUS_LOG_WARN && warnings_.size() < 100) {
      warnings_.push_back(site + "/" + instance + ": " + msg);
    }
  }

  void trace_line(const std::string& line) {
    if (trace_on_) trace_ += line + "\n";
  }
  std::string name(model::PathId id) const {
    if (!id.valid()) return "none";
    auto it = names_.find(id.value());
    return it == names_.end() ? std::to_string(id.value()) : it->second;
  }

  std::vector<FlowRecord> flows_;
  std::vector<DecisionRecord> decisions_;
  std::vector<StateEvent> states_;
  struct LinkRecord {
    std::int64_t at = 0;
    std::size_t site = 0;
    bool up = false;
  };
  std::vector<LinkRecord> links_;
  struct ApplyRecord {
    std::int64_t at = 0;
    std::size_t site = 0;
    std::uint64_t version = 0;
    std::set<std::string> peers;
    std::string error;
  };
  std::vector<ApplyRecord> applies_;
  std::vector<std::string> warnings_;
  std::uint64_t mismatches_ = 0;
  bool trace_on_;
  std::string trace_;

 private:
  std::map<std::string, std::size_t> site_index_;
  std::map<std::uint64_t, std::string> names_;
};

// Everything one run builds from the scenario, before ns-3 is touched.
struct World {
  std::vector<std::size_t> ep_offset;  // site -> index of its first endpoint
  std::vector<std::uint32_t> ep_ip;    // by global endpoint index
  std::vector<model::IpPrefix> lans;
  std::optional<mesh::MeshGraph> graph;
  std::vector<site::SitePlan> plans;                // as each site realised it (the runner's view)
  std::vector<site::v1::Plan> shares;               // what each site's config carries
  std::map<std::uint64_t, std::string> path_names;  // PathId -> "a.x-b.y"
  std::vector<std::pair<std::size_t, std::size_t>> path_eps;  // graph path -> (ep, ep)
  std::vector<PathRef> path_refs;                             // graph path -> its ends
  // With a controller: each site as the operator adds it, and its endpoints' public keys.
  std::vector<controller::FleetSite> fleet_sites;
  std::vector<std::vector<std::string>> public_keys;
  std::map<std::uint64_t, std::string> path_ids_by_name;  // PathId -> mesh::canonical_path_name
  std::vector<mesh::LinkSpec> links;                      // explicit topology
};

Result<World> build_world(const Scenario& s, std::uint64_t seed) {
  World w;
  mesh::SitesFile file;
  std::size_t next_ep = 0;
  for (std::size_t i = 0; i < s.sites.size(); ++i) {
    const auto& site = s.sites[i];
    w.ep_offset.push_back(next_ep);
    mesh::SiteSpec spec;
    spec.site.name = site.name;
    spec.site.region = "sim";
    const model::IpPrefix lan =
        site.subnet
            ? *site.subnet
            : model::IpPrefix(model::IpAddress::v4(kLanBase + (static_cast<std::uint32_t>(i) << 8)),
                              24);
    w.lans.push_back(lan);
    spec.subnets.push_back(lan);
    for (const auto& e : site.endpoints) {
      const std::uint32_t ip = kUnderlayBase + static_cast<std::uint32_t>(++next_ep);
      w.ep_ip.push_back(ip);
      model::Endpoint ep;
      ep.name = e.name;
      ep.address = model::SocketAddress(model::IpAddress::v4(ip), SiteApp::kTunnelPort);
      ep.type = e.type;
      ep.cost_per_gb = e.cost_per_gb;
      if (e.access.bandwidth_bps > 0) ep.bandwidth_mbps = e.access.bandwidth_bps / 1e6;
      spec.site.endpoints.push_back(ep);
      auto kp = mesh::seeded_keypair(seed, site.name + "/" + e.name);
      if (!kp.is_ok()) return kp.status();
      spec.public_keys.push_back(mesh::key_to_base64(kp.value().public_key));
    }
    if (auto st = model::validate_site(spec.site); !st.is_ok()) {
      return invalid_argument("sites[" + std::to_string(i) + "]: " + st.message());
    }
    controller::FleetSite fs;
    fs.name = spec.site.name;
    fs.endpoints = spec.site.endpoints;
    fs.subnets = spec.subnets;
    w.fleet_sites.push_back(std::move(fs));
    w.public_keys.push_back(spec.public_keys);
    file.sites.push_back(std::move(spec));
  }
  for (std::size_t i = 0; i < s.sites.size(); ++i) {
    for (std::size_t j = i + 1; j < s.sites.size(); ++j) {
      if (w.lans[i].contains(w.lans[j].network()) || w.lans[j].contains(w.lans[i].network())) {
        return invalid_argument("sites " + s.sites[i].name + " and " + s.sites[j].name +
                                ": their subnets overlap");
      }
    }
  }
  file.hubs = s.topology.hubs;
  for (const auto& [a, b] : s.topology.links) {
    mesh::LinkSpec l;
    const auto da = a.find('.'), db = b.find('.');
    l.a_site = a.substr(0, da);
    if (da != std::string::npos) l.a_endpoint = a.substr(da + 1);
    l.b_site = b.substr(0, db);
    if (db != std::string::npos) l.b_endpoint = b.substr(db + 1);
    file.links.push_back(l);
  }
  w.links = file.links;
  mesh::TopologyOptions topo;
  topo.kind = s.topology.kind;
  topo.hubs = s.topology.hubs;
  topo.k = s.topology.k;
  auto g = mesh::MeshGraph::build(std::move(file), topo);
  if (!g.is_ok()) return Status(g.status().code(), "topology: " + g.status().message());
  w.graph.emplace(std::move(g.value()));
  const mesh::MeshGraph& graph = *w.graph;
  auto overlay = mesh::assign_overlay(graph, {});
  if (!overlay.is_ok()) return overlay.status();
  auto plan = mesh::make_plan(graph, overlay.value());
  if (!plan.is_ok()) return plan.status();
  std::vector<model::PathId> ids;
  for (std::uint32_t i = 0; i < graph.num_paths(); ++i) {
    ids.emplace_back(i + 1);
    const auto& pe = graph.path(i);
    const std::uint32_t a = pe.src_site, b = graph.path_dst(i);
    PathRef r{a, pe.src_endpoint, b, pe.dst_endpoint, ""};
    r.text = s.path_text(r);
    w.path_names[i + 1] = r.text;
    w.path_ids_by_name[i + 1] =
        mesh::canonical_path_name(s.sites[a].name, s.sites[a].endpoints[pe.src_endpoint].name,
                                  s.sites[b].name, s.sites[b].endpoints[pe.dst_endpoint].name);
    w.path_refs.push_back(r);
    w.path_eps.emplace_back(w.ep_offset[a] + pe.src_endpoint, w.ep_offset[b] + pe.dst_endpoint);
  }
  const site::PrivateKeys keys = seeded_keys(seed);
  for (const auto& site : s.sites) {
    auto share = site::plan_for_site(graph, plan.value(), ids, site.name);
    if (!share.is_ok()) return share.status();
    auto sp = site::realise_plan(share.value(), site.name, keys);
    if (!sp.is_ok()) return sp.status();
    w.plans.push_back(std::move(sp.value()));
    w.shares.push_back(std::move(share).value());
  }
  return w;
}

std::size_t global_ep(const World& w, std::size_t site, std::size_t ep) {
  return w.ep_offset[site] + ep;
}

std::vector<std::uint32_t> affected_paths(const World& w, const FaultSpec& f) {
  std::vector<std::uint32_t> out;
  for (std::uint32_t gp = 0; gp < w.path_eps.size(); ++gp) {
    const auto [a, b] = w.path_eps[gp];
    bool hit = false;
    switch (f.kind) {
      case TargetKind::kPath:
        hit = same_path(f.path, w.path_refs[gp]);
        break;
      case TargetKind::kEndpoint: {
        const auto e = global_ep(w, f.site, f.endpoint);
        hit = a == e || b == e;
        break;
      }
      case TargetKind::kSite: {
        const auto lo = w.ep_offset[f.site];
        const auto hi = f.site + 1 < w.ep_offset.size() ? w.ep_offset[f.site + 1] : w.ep_ip.size();
        hit = (a >= lo && a < hi) || (b >= lo && b < hi);
        break;
      }
    }
    if (hit) out.push_back(gp);
  }
  return out;
}

bool same_target(const FaultSpec& a, const FaultSpec& b) {
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case TargetKind::kPath:
      return same_path(a.path, b.path);
    case TargetKind::kEndpoint:
      return a.site == b.site && a.endpoint == b.endpoint;
    case TargetKind::kSite:
      return a.site == b.site;
  }
  return false;
}

std::vector<FaultWindow> windows_of(const World& w, const std::vector<FaultSpec>& faults,
                                    std::int64_t end_ns) {
  std::vector<FaultWindow> out;
  for (std::size_t i = 0; i < faults.size(); ++i) {
    const FaultSpec& f = faults[i];
    if (f.action == FaultAction::kUp) continue;
    FaultWindow fw;
    fw.fault = &f;
    fw.start = f.at_ns;
    fw.hard = f.action != FaultAction::kDegrade;
    fw.end = end_ns;
    if (f.duration_ns > 0) {
      fw.end = std::min(end_ns, f.at_ns + f.duration_ns);
    }
    if (f.action != FaultAction::kFlap) {
      for (std::size_t j = i + 1; j < faults.size(); ++j) {
        if (faults[j].action == FaultAction::kUp && same_target(f, faults[j])) {
          fw.end = std::min(fw.end, faults[j].at_ns);
          break;
        }
      }
    }
    fw.paths = affected_paths(w, f);
    out.push_back(std::move(fw));
  }
  return out;
}

// The window of the latest fault that explains a move off graph path `gp` at `t`, or null.
const FaultWindow* explaining(const std::vector<FaultWindow>& ws, std::uint32_t gp, std::int64_t t,
                              std::int64_t grace) {
  const FaultWindow* best = nullptr;
  for (const auto& fw : ws) {
    if (fw.start > t || t > fw.end + grace) continue;
    if (std::find(fw.paths.begin(), fw.paths.end(), gp) == fw.paths.end()) continue;
    if (!best || fw.start >= best->start) best = &fw;
  }
  return best;
}

void apply_fault(WanModel& wan, const World& w, const FaultSpec& f, bool down_phase) {
  switch (f.kind) {
    case TargetKind::kSite:
      wan.set_site_up(f.site, !down_phase);
      break;
    case TargetKind::kEndpoint: {
      const auto e = global_ep(w, f.site, f.endpoint);
      if (f.action == FaultAction::kDegrade && down_phase) {
        wan.set_endpoint_link(e, f.degrade.applied_to(wan.endpoint_link(e)));
      } else if (f.action == FaultAction::kUp || !down_phase) {
        wan.set_endpoint_up(e, true);
        wan.restore_endpoint_link(e);
      } else {
        wan.set_endpoint_up(e, false);
      }
      break;
    }
    case TargetKind::kPath: {
      const auto a = global_ep(w, f.path.a_site, f.path.a_endpoint);
      const auto b = global_ep(w, f.path.b_site, f.path.b_endpoint);
      if (f.action == FaultAction::kDegrade && down_phase) {
        wan.set_path_degraded(a, b, f.degrade);
      } else if (f.action == FaultAction::kUp || !down_phase) {
        wan.set_path_up(a, b, true);
        wan.restore_path_link(a, b);
      } else {
        wan.set_path_up(a, b, false);
      }
      break;
    }
  }
}

void schedule_fault(WanModel& wan, const World& w, const FaultSpec& f, Collector& c,
                    std::int64_t end_ns) {
  auto at = [&](std::int64_t t, bool down, const std::string& what) {
    if (t >= end_ns) return;
    ns3::Simulator::Schedule(ns3::NanoSeconds(t), [&wan, &w, &f, &c, down, what, t] {
      apply_fault(wan, w, f, down);
      c.trace_line(seconds(t) + " fault " + f.target + " " + what);
    });
  };
  switch (f.action) {
    case FaultAction::kUp:
      at(f.at_ns, false, "up");
      break;
    case FaultAction::kDown:
    case FaultAction::kDegrade:
      at(f.at_ns, true, to_string(f.action));
      if (f.duration_ns > 0)
        at(f.at_ns + f.duration_ns, false, "up (end of " + std::string(to_string(f.action)) + ")");
      break;
    case FaultAction::kFlap: {
      bool down = true;
      for (std::int64_t t = f.at_ns; t < f.at_ns + f.duration_ns; t += f.period_ns) {
        at(t, down, down ? "flap down" : "flap up");
        down = !down;
      }
      at(f.at_ns + f.duration_ns, false, "up (end of flap)");
      break;
    }
  }
}

// ---- typed results of a run --------------------------------------------------------------------

// When each path a fault hit was seen to fail (nullopt: never), by path name.
struct FaultResult {
  const FaultSpec* fault = nullptr;
  const FaultWindow* window = nullptr;  // null for an `up`
  std::map<std::string, std::optional<std::int64_t>> detected_ns;
};
struct FailoverResult {
  std::int64_t at = 0;
  model::PathId from, to;
  steering::Reason reason = steering::Reason::kPathDown;
  const FaultWindow* fault = nullptr;  // what explains it (null: a false failover)
};
struct FailbackResult {
  std::int64_t at = 0;
  model::PathId from, to;
};
struct Unrecovered {
  const FaultWindow* fault = nullptr;
  model::PathId path;
};
struct FlowResult {
  std::uint64_t lost = 0;
  model::PathId final_path;
  std::vector<FailoverResult> failovers;
  std::vector<FailbackResult> failbacks;
  std::vector<Unrecovered> unrecovered;
};
struct Attribution {
  std::vector<FaultResult> faults;
  std::vector<const DecisionRecord*> false_failovers;
  std::vector<FlowResult> flows;  // by scenario flow
};
struct ExpectationResult {
  const Expectation* spec = nullptr;
  bool ok = true;
  std::string detail;
};

std::string fault_text(const FaultWindow& fw) {
  return fw.fault->target + " " + to_string(fw.fault->action) + " at " + seconds(fw.start);
}

std::uint32_t graph_path(model::PathId id) {
  return static_cast<std::uint32_t>(id.value() - 1);
}

// What happened, from the collector's records: when each fault was detected, which failover a
// fault explains, which were false, where each flow ended.
Attribution attribute(const Scenario& s, const World& w, const std::vector<FaultSpec>& faults,
                      const std::vector<FaultWindow>& windows, std::int64_t grace,
                      const Collector& c) {
  Attribution a;
  std::size_t wi = 0;
  for (const auto& f : faults) {
    FaultResult fr;
    fr.fault = &f;
    if (f.action != FaultAction::kUp) {
      const FaultWindow& fw = windows[wi++];
      fr.window = &fw;
      for (const std::uint32_t gp : fw.paths) {
        const std::uint64_t id = gp + 1;
        std::int64_t first = -1;
        for (const auto& st : c.states_) {
          if (st.path != id || st.at < fw.start || st.at > fw.end + grace) continue;
          const bool seen = fw.hard ? !st.live : st.status != model::PathStatus::kUp;
          if (seen) {
            first = st.at;
            break;
          }
        }
        if (!fw.hard) {
          for (const auto& d : c.decisions_) {
            if (d.from.value() != id || d.at < fw.start || (first >= 0 && d.at >= first)) continue;
            if (d.at > fw.end + grace || !failover_reason(d.reason)) continue;
            first = d.at;
            break;
          }
        }
        fr.detected_ns[w.path_names.at(id)] =
            first < 0 ? std::nullopt : std::optional<std::int64_t>(first - fw.start);
      }
    }
    a.faults.push_back(std::move(fr));
  }
  // False failovers: failover decisions off a path no fault explains.
  for (const auto& d : c.decisions_) {
    if (!failover_reason(d.reason) || !d.from.valid()) continue;
    if (!explaining(windows, graph_path(d.from), d.at, grace)) a.false_failovers.push_back(&d);
  }
  for (std::size_t i = 0; i < s.flows.size(); ++i) {
    const FlowSpec& f = s.flows[i];
    const FlowRecord& r = c.flows_[i];
    FlowResult fl;
    fl.lost = r.sent - std::min(r.sent, r.received);
    for (const auto& m : r.moves) {
      if (m.reason && m.from.valid() && (failover_reason(*m.reason) || !m.to.valid())) {
        fl.failovers.push_back(
            {m.at, m.from, m.to, *m.reason, explaining(windows, graph_path(m.from), m.at, grace)});
      } else if (m.reason == steering::Reason::kFailback) {
        fl.failbacks.push_back({m.at, m.from, m.to});
      }
      fl.final_path = m.to;
    }
    // Hard faults that hit the flow's path while it ran and that it never moved away from.
    for (const auto& fw : windows) {
      if (!fw.hard || fw.start < f.start_ns || fw.start >= f.stop_ns) continue;
      model::PathId on;
      for (const auto& m : r.moves) {
        if (m.at > fw.start) break;
        on = m.to;
      }
      if (!on.valid() ||
          std::find(fw.paths.begin(), fw.paths.end(), graph_path(on)) == fw.paths.end()) {
        continue;
      }
      const bool moved = std::any_of(r.moves.begin(), r.moves.end(), [&](const auto& m) {
        return m.at >= fw.start && m.at <= std::min(fw.end, f.stop_ns) && m.from == on &&
               m.to.valid();
      });
      if (!moved) fl.unrecovered.push_back({&fw, on});
    }
    a.flows.push_back(std::move(fl));
  }
  return a;
}

// The scenario's expectations, checked on the typed results.
struct ControllerResult;
std::vector<std::string> config_delay_failures(const ControllerResult* cr, std::int64_t bound);

std::vector<ExpectationResult> check_expectations(const Scenario& s, const World& w,
                                                  const Attribution& a, const Collector& c,
                                                  const ControllerResult* cr) {
  std::vector<ExpectationResult> out;
  for (const auto& e : s.expect) {
    ExpectationResult r;
    r.spec = &e;
    auto fail = [&](const std::string& why) {
      r.ok = false;
      r.detail += (r.detail.empty() ? "" : "; ") + why;
    };
    const FlowResult* fl = nullptr;
    if (!e.flow.empty()) {
      for (std::size_t i = 0; i < s.flows.size(); ++i) {
        if (s.flows[i].name == e.flow) fl = &a.flows[i];
      }
    }
    if (e.max_failover_ns && fl) {
      double worst = 0;
      for (const auto& x : fl->failovers) {
        if (!x.fault) continue;
        worst = std::max(worst, ms(x.at - x.fault->start));
        if (!x.to.valid()) fail("at " + fmt_s(x.at / 1e9) + " it lost every path");
      }
      if (worst > ms(*e.max_failover_ns)) fail("failover took " + fmt_ms(worst));
      for (const auto& u : fl->unrecovered) {
        fail("never moved off " + c.name(u.path) + " after " + fault_text(*u.fault));
      }
      if (r.ok) r.detail = "worst " + fmt_ms(worst);
    }
    if (e.max_lost_packets && fl && fl->lost > *e.max_lost_packets) {
      fail("lost " + std::to_string(fl->lost) + " packets");
    }
    if (fl) {
      const auto n = fl->failovers.size();
      if (e.max_failovers && n > *e.max_failovers) fail(std::to_string(n) + " failovers");
      if (e.min_failovers && n < *e.min_failovers) fail(std::to_string(n) + " failovers");
      if (e.final_path || e.final_path_none) {
        const model::PathId got = fl->final_path;
        const bool ok_path =
            e.final_path ? got.valid() && same_path(*e.final_path, w.path_refs[graph_path(got)])
                         : !got.valid();
        if (!ok_path) fail("final path " + c.name(got));
      }
    }
    if (e.max_false_failovers && a.false_failovers.size() > *e.max_false_failovers) {
      fail(std::to_string(a.false_failovers.size()) + " false failovers");
    }
    if (e.max_config_delay_ns) {
      for (const auto& why : config_delay_failures(cr, *e.max_config_delay_ns)) fail(why);
    }
    if (e.max_detection_ns) {
      for (const auto& f : a.faults) {
        if (!f.window) continue;
        for (const auto& [path, v] : f.detected_ns) {
          if (!v) {
            fail(f.fault->target + " " + to_string(f.fault->action) + ": " + path +
                 " never detected");
          } else if (ms(*v) > ms(*e.max_detection_ns)) {
            fail(f.fault->target + ": " + path + " detected after " + fmt_ms(ms(*v)));
          }
        }
      }
    }
    out.push_back(std::move(r));
  }
  return out;
}

// The run as JSON (the `--json` format), from the typed results.
// ---- the controller
// ------------------------------------------------------------------------------

// How each change of the fleet (the sites at the start, each later join) reached the sites it
// concerns, and what each controller outage did to the sites.
struct ControllerResult {
  json report;
  std::vector<std::string> late;  // for max_config_delay: a site never reached, or too late
  struct Change {
    std::int64_t at = 0;
    std::int64_t last_ns = 0;
    std::vector<std::string> missing;
  };
  std::vector<Change> changes;
};

ControllerResult controller_result(const Scenario& s, const World& w, const Collector& c,
                                   const controller::CoreCounters& k, std::uint64_t restarts,
                                   const Attribution& attribution,
                                   const std::vector<FaultWindow>& fault_windows,
                                   std::int64_t grace) {
  ControllerResult out;
  const std::int64_t end = s.duration_ns;
  std::map<std::int64_t, std::vector<std::size_t>> groups;  // join time -> sites
  for (std::size_t i = 0; i < s.sites.size(); ++i)
    groups[s.sites[i].join_ns.value_or(0)].push_back(i);
  std::vector<std::set<std::size_t>> neighbours(s.sites.size());
  for (const auto& p : w.path_refs) {
    neighbours[p.a_site].insert(p.b_site);
    neighbours[p.b_site].insert(p.a_site);
  }
  auto started_by = [&](std::size_t i, std::int64_t t) {
    return s.sites[i].join_ns.value_or(0) <= t;
  };
  json changes = json::array();
  for (const auto& [at, joined] : groups) {
    const std::set<std::size_t> j(joined.begin(), joined.end());
    // Each site the change concerns, with the peers its config must then have.
    std::map<std::size_t, std::set<std::string>> needed;
    for (std::size_t x = 0; x < s.sites.size(); ++x) {
      if (!started_by(x, at)) continue;
      for (const std::size_t n : neighbours[x]) {
        if (started_by(n, at) && (j.count(x) || j.count(n))) needed[x].insert(s.sites[n].name);
      }
    }
    ControllerResult::Change ch;
    ch.at = at;
    json reached = json::object();
    for (const auto& [x, peers] : needed) {
      std::optional<std::int64_t> when;
      for (const auto& a : c.applies_) {
        if (a.site != x || a.at < at || !a.error.empty()) continue;
        if (std::includes(a.peers.begin(), a.peers.end(), peers.begin(), peers.end())) {
          when = a.at;
          break;
        }
      }
      if (!when) {
        ch.missing.push_back(s.sites[x].name);
        continue;
      }
      reached[s.sites[x].name] = std::round(ms(*when - at) * 1000) / 1000;
      ch.last_ns = std::max(ch.last_ns, *when - at);
    }
    json names = json::array();
    for (const std::size_t x : joined) names.push_back(s.sites[x].name);
    changes.push_back(
        {{"at_s", at / 1e9},
         {"sites", names},
         {"reached_ms", reached},
         {"last_ms",
          reached.empty() ? json(nullptr) : json(std::round(ms(ch.last_ns) * 1000) / 1000)},
         {"missing", ch.missing}});
    out.changes.push_back(std::move(ch));
  }
  // Outages: down until the next up (or its duration, or the end).
  std::vector<std::pair<std::int64_t, std::int64_t>> windows;
  auto faults = s.controller_faults;
  std::stable_sort(
      faults.begin(), faults.end(),
      [](const ControllerFault& a, const ControllerFault& b) { return a.at_ns < b.at_ns; });
  for (std::size_t k = 0; k < faults.size(); ++k) {
    if (faults[k].up || (!windows.empty() && windows.back().second > faults[k].at_ns)) continue;
    std::int64_t up = faults[k].duration_ns > 0 ? faults[k].at_ns + faults[k].duration_ns : end;
    for (std::size_t m = k + 1; m < faults.size(); ++m) {
      if (faults[m].up) {
        up = std::min(up, faults[m].at_ns);
        break;
      }
    }
    windows.emplace_back(faults[k].at_ns, std::min(up, end));
  }
  json outages = json::array();
  for (const auto& [down, up] : windows) {
    // The sites are back once each one that had a session before has one again.
    std::set<std::size_t> had;
    for (const auto& l : c.links_) {
      if (l.at < down && l.up) had.insert(l.site);
    }
    std::int64_t back = up;
    std::size_t relinked = 0;
    for (const std::size_t x : had) {
      for (const auto& l : c.links_) {
        if (l.site == x && l.up && l.at >= up) {
          back = std::max(back, l.at);
          ++relinked;
          break;
        }
      }
    }
    // What no fault of the WAN explains happened because of the outage.
    const bool came_up = up < end;
    std::uint64_t downs = 0, moves = 0, pushed = 0;
    for (const auto& e : c.states_) {
      downs += !e.live && e.at >= down && e.at <= back &&
               !explaining(fault_windows, graph_path(model::PathId(e.path)), e.at, grace);
    }
    for (const auto* d : attribution.false_failovers) moves += d->at >= down && d->at <= back;
    for (const auto& a : c.applies_)
      pushed += a.at >= up && a.at <= back + 2 * s.controller->latency_ns;
    outages.push_back({{"down_s", down / 1e9},
                       {"up_s", came_up ? json(up / 1e9) : json(nullptr)},
                       {"sites", had.size()},
                       {"sites_back", relinked},
                       {"all_back_after_up_ms", came_up && relinked == had.size()
                                                    ? json(std::round(ms(back - up) * 1000) / 1000)
                                                    : json(nullptr)},
                       {"unexplained_path_downs", downs},
                       {"false_failovers", moves},
                       {"configs_pushed_on_reconnect", pushed}});
  }
  std::uint64_t refused = 0;
  for (const auto& a : c.applies_) refused += !a.error.empty();
  out.report = {{"latency_ms", ms(s.controller->latency_ns)},
                {"debounce_ms", ms(s.controller->debounce_ns)},
                {"max_wait_ms", ms(s.controller->max_wait_ns)},
                {"compiles", k.compiles},
                {"configs_compiled", k.configs_compiled},
                {"pushes", k.pushes},
                {"resends", k.resends},
                {"messages_refused", k.messages_refused},
                {"configs_refused_by_sites", refused},
                {"stops", restarts},
                {"changes", changes},
                {"outages", outages}};
  return out;
}

std::vector<std::string> config_delay_failures(const ControllerResult* cr, std::int64_t bound) {
  std::vector<std::string> out;
  if (cr == nullptr) return {"no controller ran"};
  for (const auto& ch : cr->changes) {
    const std::string when = "the change at " + fmt_s(ch.at / 1e9);
    for (const auto& m : ch.missing) out.push_back(when + " never reached " + m);
    if (ch.last_ns > bound) out.push_back(when + " took " + fmt_ms(ms(ch.last_ns)));
  }
  return out;
}

json report_of(const Scenario& s, const Variant* variant, std::uint64_t seed, const World& w,
               const Attribution& a, const Collector& c,
               const std::vector<std::string>& flow_class) {
  json jf = json::array();
  for (const auto& f : a.faults) {
    const FaultSpec& spec = *f.fault;
    json entry = {
        {"at_s", spec.at_ns / 1e9}, {"target", spec.target}, {"action", to_string(spec.action)}};
    if (spec.action == FaultAction::kFlap) {
      entry["period_ms"] = ms(spec.period_ns);
      entry["duration_s"] = spec.duration_ns / 1e9;
    }
    if (f.window) {
      entry["until_s"] = f.window->end / 1e9;
      json detected = json::object();
      for (const auto& [path, v] : f.detected_ns) detected[path] = v ? json(ms(*v)) : json();
      entry["detected_ms"] = detected;
    }
    jf.push_back(entry);
  }
  json false_list = json::array();
  for (const DecisionRecord* d : a.false_failovers) {
    if (false_list.size() >= 20) break;
    false_list.push_back({{"at_s", d->at / 1e9},
                          {"site", s.sites[d->site].name},
                          {"class", d->cls},
                          {"to_site", d->dst},
                          {"from_path", c.name(d->from)},
                          {"reason", steering::to_string(d->reason)}});
  }
  json jflows = json::array();
  for (std::size_t i = 0; i < s.flows.size(); ++i) {
    const FlowSpec& f = s.flows[i];
    const FlowRecord& r = c.flows_[i];
    const FlowResult& fl = a.flows[i];
    json failovers = json::array(), failbacks = json::array(), unrecovered = json::array();
    for (const auto& x : fl.failovers) {
      json j = {{"at_s", x.at / 1e9},
                {"from_path", c.name(x.from)},
                {"to_path", x.to.valid() ? json(c.name(x.to)) : json(nullptr)},
                {"reason", steering::to_string(x.reason)}};
      if (x.fault) {
        j["failover_ms"] = ms(x.at - x.fault->start);
        j["fault"] = fault_text(*x.fault);
      } else {
        j["failover_ms"] = nullptr;
        j["false"] = true;
      }
      failovers.push_back(j);
    }
    for (const auto& x : fl.failbacks) {
      failbacks.push_back(
          {{"at_s", x.at / 1e9}, {"from_path", c.name(x.from)}, {"to_path", c.name(x.to)}});
    }
    for (const auto& u : fl.unrecovered) {
      unrecovered.push_back({{"fault", fault_text(*u.fault)}, {"path", c.name(u.path)}});
    }
    jflows.push_back(
        {{"name", f.name},
         {"from", s.sites[f.from].name},
         {"to", s.sites[f.to].name},
         {"class", flow_class[i]},
         {"sent_packets", r.sent},
         {"received_packets", r.received},
         {"lost_packets", fl.lost},
         {"no_path_packets", r.no_path},
         {"relay_dropped_packets", r.relay_drops},
         {"loss_pct", r.sent ? std::round(1e4 * fl.lost / r.sent) / 100 : 0.0},
         {"mean_latency_ms",
          r.received ? ms(r.latency_sum / static_cast<std::int64_t>(r.received)) : 0.0},
         {"max_latency_ms", ms(r.latency_max)},
         {"final_path", fl.final_path.valid() ? json(c.name(fl.final_path)) : json(nullptr)},
         {"failovers", failovers},
         {"failbacks", failbacks},
         {"unrecovered_faults", unrecovered}});
  }
  return {{"scenario", s.name},
          {"variant", variant ? json(variant->name) : json(nullptr)},
          {"seed", seed},
          {"sim_seconds", s.duration_ns / 1e9},
          {"sites", s.sites.size()},
          {"paths", w.graph->num_paths()},
          {"topology", mesh::to_string(s.topology.kind)},
          {"plugins", json::object()},
          {"faults", jf},
          {"flows", jflows},
          {"false_failovers", a.false_failovers.size()},
          {"false_failover_list", false_list},
          {"decisions", c.decisions_.size()},
          {"steering_mismatches", c.mismatches_},
          {"warnings", c.warnings_}};
}

std::string progress_bar(const std::string& name, double sim_s, double total_s, double wall_s) {
  char b[160];
  std::snprintf(b, sizeof b, "\r%s: %.0f/%.0f s simulated (%.0f%%), %.1f s wall", name.c_str(),
                sim_s, total_s, 100.0 * sim_s / total_s, wall_s);
  return b;
}

struct OneRun {
  json report;
  std::string trace;
  PlotData plot;
};

// Each plugin's config for a run, checked by its schema and by the plugin itself (as patronusd
// asks before anything starts): the shipped plugins always, a third-party one when configured.
Result<std::map<std::string, std::string>> plugin_configs(const Scenario& s,
                                                          const PluginSettings& settings,
                                                          const Variant* variant,
                                                          const Plugins& plugins) {
  std::map<std::string, std::string> configs;
  for (const auto& [name, lib] : plugins.libs) {
    auto it = settings.find(name);
    if (!is_hosted_plugin(name) && it == settings.end()) continue;  // another scenario's
    // Errors name the scenario file and the plugin's line (the variant's when it is one).
    const auto line =
        variant ? variant->line : (s.plugin_lines.count(name) ? s.plugin_lines.at(name) : 0);
    const std::string where =
        s.origin + (line > 0 ? ": line " + std::to_string(line) : std::string()) + ": " +
        (variant ? "variants." + variant->name + "." : "") + "plugins." + name;
    // The settings as a YAML map built here (no text: no line of its own to report).
    YAML::Node node(YAML::NodeType::Map);
    if (it != settings.end()) {
      for (const auto& [k, v] : it->second) node[k] = v;
    }
    std::string bytes;
    if (lib->schema()) {
      auto b = lib->schema()->yaml_to_bytes(node, name);
      if (!b.is_ok()) return invalid_argument(where + ": " + b.status().message());
      bytes = b.value();
    } else if (it != settings.end() && !it->second.empty()) {
      return invalid_argument(where + ": plugin '" + name + "' takes no configuration");
    }
    if (auto st = core::check_plugin_config(lib, name, bytes); !st.is_ok()) {
      return invalid_argument(where + ": plugin '" + name +
                              "' refused its configuration: " + st.message());
    }
    configs[name] = bytes;
  }
  return configs;
}

// The flows of a run at their sending sites: keys, and the class each falls into (checked
// against what the scenario says of it).
struct LocalFlows {
  std::vector<std::vector<LocalFlow>> by_site;
  std::vector<std::string> cls;  // by scenario flow
};
Result<LocalFlows> local_flows(const Scenario& s, const World& w,
                               const steering::ClassSet& classes) {
  LocalFlows out;
  out.by_site.resize(s.sites.size());
  out.cls.resize(s.flows.size());
  for (std::size_t i = 0; i < s.flows.size(); ++i) {
    const FlowSpec& f = s.flows[i];
    LocalFlow lf;
    lf.index = i;
    lf.spec = &f;
    lf.key.src = w.lans[f.from].at(1);
    lf.key.dst = w.lans[f.to].at(1);
    lf.key.src_port = f.src_port;
    lf.key.dst_port = f.dst_port;
    lf.key.protocol = static_cast<model::IpProtocol>(f.protocol);
    const auto& cls = classes.classes[steering::classify_index(classes, lf.key, f.dscp)];
    lf.cls = cls.name;
    const std::string where = s.origin + ": line " + std::to_string(f.line) + ": flow " + f.name;
    if (f.priority && cls.priority != *f.priority) {
      return invalid_argument(
          where + ": priority " + model::to_string(*f.priority) + ", but its packets (protocol " +
          std::to_string(f.protocol) + ", dst_port " + std::to_string(f.dst_port) + ", dscp " +
          std::to_string(f.dscp) + ") fall into class '" + cls.name + "' (" +
          model::to_string(cls.priority) + "): set dscp, protocol or ports, or the classes' rules");
    }
    if (!f.class_name.empty() && f.class_name != cls.name) {
      return invalid_argument(where + ": class " + f.class_name + ", but its packets fall into '" +
                              cls.name + "'");
    }
    out.cls[i] = cls.name;
    out.by_site[f.from].push_back(std::move(lf));
  }
  return out;
}

// The SiteConfig every site of a run shares (each gets its own share of the plan): the same
// plugins and runtime settings, built as patronusd builds its own.
Result<site::SiteConfig> site_config_of_run(const Scenario& s, const PluginSettings& settings,
                                            const std::map<std::string, std::string>& configs,
                                            const steering::ClassSet& classes,
                                            const Plugins& plugins) {
  site::SiteConfig site_config;
  site_config.set_schema(site::kSiteConfigSchema);
  steering::RuntimeConfig rc;
  rc.probe = "probes";
  rc.default_scorer = "scoring";
  rc.classes = classes;
  rc.tick_ns = s.tick_ns;  // whole ms in the config; the exact tick through setup.tune
  for (const char* n : {"probes", "scoring", "emodel"}) add_plugin(site_config, n, configs.at(n));
  // BFD, when the scenario (or the variant) configures it: a session on every path, gating it.
  if (settings.count("bfd")) {
    add_plugin(site_config, "bfd", configs.at("bfd"));
    rc.liveness = {"bfd"};
  }
  // Third-party plugins, as patronusd hosts them: scorers for the classes that name them, the
  // scenario's `probe:`, and any other probe plugin gating the paths.
  for (const auto& [name, bytes] : configs) {
    if (is_hosted_plugin(name)) continue;
    add_plugin(site_config, name, bytes);
    if (plugins.libs.at(name)->info().kind == core::PluginKind::kProbe && name != s.probe) {
      rc.liveness.push_back(name);
    }
  }
  if (!configs.count(s.probe) ||
      plugins.libs.at(s.probe)->info().kind != core::PluginKind::kProbe) {
    return invalid_argument(s.origin + ": line " + std::to_string(s.probe_line) + ": probe: '" +
                            s.probe + "' is not a probe plugin the scenario configures (probes, " +
                            "or one named under plugins:)");
  }
  rc.probe = s.probe;
  *site_config.mutable_runtime() = site::runtime_to_proto(rc);
  return site_config;
}

Result<OneRun> run_once(const Scenario& s, const Variant* variant, std::uint64_t seed,
                        const RunOptions& o, Plugins& plugins) {
  const auto wall_start = std::chrono::steady_clock::now();
  auto world = build_world(s, seed);
  if (!world.is_ok()) return world.status();
  World& w = world.value();
  const std::vector<FaultSpec> faults = expand_faults(s, seed, w.path_refs);

  const PluginSettings settings = plugin_settings(s, variant);
  const auto yaml = plugin_yaml(settings);
  auto configs_or = plugin_configs(s, settings, variant, plugins);
  if (!configs_or.is_ok()) return configs_or.status();
  const auto& configs = configs_or.value();
  steering::ClassSet classes = steering::default_classes("emodel");
  if (!s.classes_yaml.empty()) {
    auto cs = steering::parse_classes_yaml(s.classes_yaml, "emodel");
    if (!cs.is_ok()) return Status(cs.status().code(), "classes: " + cs.status().message());
    classes = cs.value();
  }
  auto flows_or = local_flows(s, w, classes);
  if (!flows_or.is_ok()) return flows_or.status();
  const auto& local = flows_or.value().by_site;
  const auto& flow_class = flows_or.value().cls;

  // ns-3.
  ns3::Simulator::Destroy();
  // std::priority_queue: measured fastest of the ns-3 schedulers here (10 sites, 600 s: 0.94 s
  // wall against 1.2-1.3 s for the default map and the heap scheduler).
  ns3::ObjectFactory scheduler;
  scheduler.SetTypeId("ns3::PriorityQueueScheduler");
  ns3::Simulator::SetScheduler(scheduler);
  ns3::RngSeedManager::SetSeed(static_cast<std::uint32_t>(seed % 4294967294u) + 1);
  ns3::RngSeedManager::SetRun(1);
  std::map<std::string, std::size_t> site_index;
  for (std::size_t i = 0; i < s.sites.size(); ++i) site_index[s.sites[i].name] = i;
  Collector collector(s.flows.size(), o.trace, site_index, w.path_names);
  WanModel wan(seed ^ 0x77616e);
  wan.add_site_count(s.sites.size());
  ns3::NodeContainer nodes;
  nodes.Create(static_cast<std::uint32_t>(s.sites.size()));
  auto site_config = site_config_of_run(s, settings, configs, classes, plugins);
  if (!site_config.is_ok()) return site_config.status();
  const site::PrivateKeys keys = seeded_keys(seed);
  // The controller, on a node of its own, with the run's path ids in its store.
  std::unique_ptr<SimController> ctl;
  if (s.controller) {
    controller::FleetSnapshot initial;
    fleet::Settings& fs = initial.settings.emplace();
    fs.set_topology(mesh::to_string(s.topology.kind));
    for (const auto& h : s.topology.hubs) fs.add_hubs(h);
    fs.set_k(static_cast<std::uint32_t>(s.topology.k));
    for (const auto& link : w.links) {
      auto* l = fs.add_links();
      l->set_a_site(link.a_site);
      l->set_a_endpoint(link.a_endpoint);
      l->set_b_site(link.b_site);
      l->set_b_endpoint(link.b_endpoint);
    }
    auto& memory = initial.compiler.emplace();
    for (const auto& [id, ref] : w.path_ids_by_name) (*memory.mutable_path_ids())[ref] = id;
    memory.set_next_path_id(w.path_refs.size() + 1);
    ctl = std::make_unique<SimController>(ns3::CreateObject<ns3::Node>(), seed ^ 0x63746c,
                                          *s.controller, std::move(initial));
    if (auto st = ctl->up(); !st.is_ok()) return st;
    for (const auto& f : s.controller_faults) {
      SimController* c = ctl.get();
      ns3::Simulator::Schedule(ns3::NanoSeconds(f.at_ns), [c, f, &collector] {
        collector.trace_line(seconds(f.at_ns) + " fault controller " + (f.up ? "up" : "down"));
        if (f.up) {
          (void)c->up();
        } else {
          c->down();
        }
      });
      if (!f.up && f.duration_ns > 0) {
        const std::int64_t at = f.at_ns + f.duration_ns;
        ns3::Simulator::Schedule(ns3::NanoSeconds(at), [c, at, &collector] {
          collector.trace_line(seconds(at) + " fault controller up");
          (void)c->up();
        });
      }
    }
  }
  std::vector<ns3::Ptr<SiteApp>> apps;
  for (std::size_t i = 0; i < s.sites.size(); ++i) {
    ns3::Ptr<ns3::Node> node = nodes.Get(static_cast<std::uint32_t>(i));
    SiteSetup setup;
    setup.net = &wan;
    for (std::size_t e = 0; e < s.sites[i].endpoints.size(); ++e) {
      const std::uint32_t ip = w.ep_ip[global_ep(w, i, e)];
      wan.add_endpoint(i, ip, s.sites[i].endpoints[e].access);
      setup.endpoint_ips.push_back(model::IpAddress::v4(ip));
    }
    setup.site = s.sites[i].name;
    setup.seed = seed * 1000003 + i;
    setup.config = site_config.value();
    setup.config.set_site(s.sites[i].name);
    if (ctl) {
      setup.controller = ctl.get();
      setup.fleet_site = w.fleet_sites[i];
      setup.public_keys = w.public_keys[i];
    } else {
      *setup.config.mutable_plan() = w.shares[i];
    }
    setup.plugins = [&plugins](const std::string& name) {
      const auto it = plugins.libs.find(name);
      return it == plugins.libs.end() ? nullptr : it->second;
    };
    setup.keys = keys;
    setup.tune = [tick = s.tick_ns](steering::RuntimeConfig& rc) { rc.tick_ns = tick; };
    setup.lan = w.lans[i];
    for (std::size_t j = 0; j < s.sites.size(); ++j) {
      if (j != i) setup.routes.emplace_back(w.lans[j], s.sites[j].name);
    }
    setup.flows = local[i];
    setup.observers.push_back(&collector);
    setup.listener = &collector;
    auto app = ns3::CreateObject<SiteApp>();
    app->Setup(std::move(setup));
    node->AddApplication(app);
    app->SetStartTime(ns3::NanoSeconds(s.sites[i].join_ns.value_or(0)));
    apps.push_back(app);
  }
  for (const auto& po : s.paths) {
    wan.set_path_link(global_ep(w, po.path.a_site, po.path.a_endpoint),
                      global_ep(w, po.path.b_site, po.path.b_endpoint),
                      po.link.applied_to(LinkSpec{}));
  }
  for (const auto& f : faults) schedule_fault(wan, w, f, collector, s.duration_ns);

  // Plot samples: every path of a site that sends a flow, by the sending site's runtime.
  PlotData plot;
  std::vector<std::pair<std::size_t, model::PathId>> plotted;  // (site, path)
  if (o.plot) {
    std::set<std::size_t> senders;
    for (const auto& f : s.flows) senders.insert(f.from);
    for (const std::size_t si : senders) {
      for (const auto& p : w.plans[si].paths) {
        if (plotted.size() >= 16) break;
        plotted.emplace_back(si, p.id);
        plot.paths.push_back(s.sites[si].name + ": " + w.path_names.at(p.id.value()));
      }
    }
    for (const auto& f : s.flows) plot.flows.push_back(f.name);
    const std::int64_t step = std::max<std::int64_t>(100 * kMs, s.duration_ns / 2000);
    for (std::int64_t t = step; t < s.duration_ns; t += step) {
      ns3::Simulator::Schedule(ns3::NanoSeconds(t), [&plot, &plotted, &apps, t] {
        PlotData::Sample smp;
        smp.t = static_cast<double>(t) / 1e9;
        for (const auto& [si, id] : plotted) {
          auto* rt = apps[si]->runtime();
          const auto v = rt ? rt->path(id) : std::nullopt;
          smp.score.push_back(v && v->live && v->scored ? v->score
                                                        : std::numeric_limits<double>::quiet_NaN());
        }
        plot.samples.push_back(std::move(smp));
      });
    }
  }
  const std::string run_name = s.name + (variant ? "/" + variant->name : "");
  if (o.progress) {
    const std::int64_t step = std::max<std::int64_t>(kSec, s.duration_ns / 200);
    auto last = std::make_shared<std::chrono::steady_clock::time_point>(wall_start);
    for (std::int64_t t = step; t < s.duration_ns; t += step) {
      ns3::Simulator::Schedule(ns3::NanoSeconds(t), [=, &s] {
        const auto now = std::chrono::steady_clock::now();
        if (now - *last < std::chrono::milliseconds(500)) return;
        *last = now;
        std::cerr << progress_bar(run_name, t / 1e9, s.duration_ns / 1e9,
                                  std::chrono::duration<double>(now - wall_start).count())
                  << std::flush;
      });
    }
  }
  ns3::Simulator::Stop(ns3::NanoSeconds(s.duration_ns));
  ns3::Simulator::Run();
  const std::uint64_t events = ns3::Simulator::GetEventCount();
  std::string errors;
  for (auto& a : apps) {
    if (!a->error().empty()) errors += (errors.empty() ? "" : "; ") + a->error();
  }
  const controller::CoreCounters ctl_counters = ctl ? ctl->counters() : controller::CoreCounters{};
  const std::uint64_t ctl_restarts = ctl ? ctl->restarts() : 0;
  ctl.reset();  // its core's timers are ns-3 events
  ns3::Simulator::Destroy();
  apps.clear();
  if (o.progress) std::cerr << "\r\033[K" << std::flush;
  if (!errors.empty()) return failed_precondition(errors);
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();

  // ---- attribution, expectations, the report ----------------------------------------------------
  const auto windows = windows_of(w, faults, s.duration_ns);
  const Attribution a = attribute(s, w, faults, windows, attribution_grace_ns(settings), collector);
  std::optional<ControllerResult> controller_out;
  if (s.controller) {
    controller_out = controller_result(s, w, collector, ctl_counters, ctl_restarts, a, windows,
                                       attribution_grace_ns(settings));
  }
  const auto expectations =
      check_expectations(s, w, a, collector, controller_out ? &*controller_out : nullptr);
  json report = report_of(s, variant, seed, w, a, collector, flow_class);
  report["wall_seconds"] = std::round(wall * 1000) / 1000;
  report["events"] = events;
  if (controller_out) report["controller"] = controller_out->report;
  report["wan"] = {{"sent", wan.counters().sent},
                   {"delivered", wan.counters().delivered},
                   {"dropped_down", wan.counters().dropped_down},
                   {"dropped_loss", wan.counters().dropped_loss},
                   {"dropped_queue", wan.counters().dropped_queue},
                   {"dropped_unroutable", wan.counters().dropped_unroutable},
                   {"no_listener", wan.counters().no_listener}};
  for (const auto& [plugin, text] : yaml) report["plugins"][plugin] = text;
  json jexp = json::array();
  for (const auto& e : expectations) {
    jexp.push_back(
        {{"expect", e.spec->text}, {"line", e.spec->line}, {"ok", e.ok}, {"detail", e.detail}});
  }
  report["expectations"] = jexp;

  OneRun out;
  out.report = std::move(report);
  out.trace = std::move(collector.trace_);
  if (o.plot) {
    std::map<std::pair<std::size_t, std::uint64_t>, int> index;  // (site, path) -> row
    for (std::size_t k = 0; k < plotted.size(); ++k) {
      index[{plotted[k].first, plotted[k].second.value()}] = static_cast<int>(k);
    }
    for (std::size_t i = 0; i < s.flows.size(); ++i) {
      for (const auto& m : collector.flows_[i].moves) {
        auto it = index.find({s.flows[i].from, m.to.value()});
        plot.steps.push_back({m.at / 1e9, i, m.to.valid() && it != index.end() ? it->second : -1});
      }
    }
    for (const auto& f : faults) {
      plot.faults.emplace_back(f.at_ns / 1e9, f.target + " " + to_string(f.action));
    }
    out.plot = std::move(plot);
  }
  return out;
}

// A third-party plugin a scenario names: loaded from the first directory that provides it, and
// refused by what its descriptor says when it cannot run in a simulated site.
Status load_third_party(Plugins& plugins, const ThirdPartyPlugin& f, const std::string& origin,
                        const RunOptions& o) {
  const std::string where = origin + ": line " + std::to_string(f.line) + ": " + f.path + ": ";
  std::vector<std::string> dirs = o.extra_plugin_dirs;
  dirs.push_back(o.plugin_dir);
  // Loaded by an earlier run of this process: only from a directory this run names.
  if (const auto it = plugins.libs.find(f.name); it != plugins.libs.end()) {
    const auto from = std::filesystem::path(it->second->info().file).parent_path();
    for (const auto& dir : dirs) {
      if (std::filesystem::path(dir).lexically_normal() == from.lexically_normal()) {
        return Status::ok();
      }
    }
    return invalid_argument(where + "unknown plugin: '" + f.name + "' was loaded from " +
                            from.string() + ", which this run does not name");
  }
  std::shared_ptr<const core::PluginLibrary> lib;
  std::string tried;
  for (const auto& dir : dirs) {
    auto loaded = plugins.registry.load_named(dir, {f.name});
    if (loaded.is_ok()) {
      lib = plugins.registry.find(f.name);
      break;
    }
    tried += (tried.empty() ? "" : "; ") + loaded.status().message();
  }
  if (!lib) {
    return invalid_argument(where + "unknown plugin (the simulator ships " + hosted_plugins_text() +
                            "; no file in " + std::to_string(dirs.size()) + " plugin director" +
                            (dirs.size() == 1 ? "y" : "ies") + " provides '" + f.name +
                            "': " + tried + ")");
  }
  const auto& info = lib->info();
  if (info.needs_real_network) {
    return failed_precondition(where + "plugin '" + info.name + "' (" + core::to_string(info.kind) +
                               ", " + info.file +
                               ") declares that it needs the real network: it configures real "
                               "interfaces, and in the simulator the simulated WAN is the tunnel");
  }
  if (info.kind != core::PluginKind::kScorer && info.kind != core::PluginKind::kProbe) {
    return invalid_argument(where + "'" + info.name + "' is a " + core::to_string(info.kind) +
                            " plugin it does not host (a scenario runs scorer and probe plugins)");
  }
  plugins.libs[f.name] = lib;
  return Status::ok();
}

}  // namespace

Result<RunOutput> run_scenario(const Scenario& s, const RunOptions& o) {
  if (o.plugin_dir.empty()) return invalid_argument("run_scenario: no plugin directory given");
  auto plugins = plugins_from(o.plugin_dir);
  if (!plugins.is_ok()) return plugins.status();
  for (const auto& f : s.third_party_plugins) {
    if (auto st = load_third_party(*plugins.value(), f, s.origin, o); !st.is_ok()) return st;
  }
  const std::uint64_t seed = o.seed.value_or(s.seed);
  std::vector<const Variant*> runs = {nullptr};
  if (o.variant) {
    const Variant* v = nullptr;
    for (const auto& x : s.variants) {
      if (x.name == *o.variant) v = &x;
    }
    if (!v) return invalid_argument("no variant '" + *o.variant + "' in " + s.name);
    runs.push_back(v);
  } else {
    for (const auto& x : s.variants) runs.push_back(&x);
  }
  RunOutput out;
  json variants = json::array();
  for (const Variant* v : runs) {
    auto r = run_once(s, v, seed, o, *plugins.value());
    if (!r.is_ok()) return r.status();
    if (o.trace) {
      out.trace += "# " + s.name + (v ? " variant " + v->name : "") + ", seed " +
                   std::to_string(seed) + "\n" + r.value().trace;
    }
    if (o.plot) out.plots.push_back(std::move(r.value().plot));
    if (v == nullptr) {
      out.report = std::move(r.value().report);
    } else {
      variants.push_back(std::move(r.value().report));
    }
  }
  bool ok = true;
  for (const auto& e : out.report["expectations"]) ok = ok && e["ok"].get<bool>();
  out.report["variants"] = variants;
  out.report["ok"] = ok;
  out.ok = ok;
  return out;
}

}  // namespace patronus::sim
