// The site runtime: the router. Path registry, metric windows, scoring through scorer plugins,
// per-class selection, failover and failback, the flow table, the decision log ("why this
// path"), and the Dataplane it drives. It takes an Env, a RouterInstance holding the plugin
// instances, a Dataplane and observers, nothing else, so patronusd, every ns-3 node of the
// simulator and the tests host the same object. Single-threaded (the Env's thread).
// See docs/adr/0008-site-runtime.md.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "patronus/core/router.hpp"
#include "patronus/env/env.hpp"
#include "patronus/model/address.hpp"
#include "patronus/model/ids.hpp"
#include "patronus/model/types.hpp"
#include "patronus/steering/classes.hpp"
#include "patronus/steering/dataplane.hpp"
#include "patronus/steering/events.hpp"
#include "patronus/steering/flow_table.hpp"
#include "patronus/steering/metric_window.hpp"
#include "patronus/steering/selection.hpp"

namespace patronus::steering {

// One path of this site, as the plan describes it.
struct PathSpec {
  model::PathId id;  // the canonical id (the store's, stable across re-plans)
  std::string name;  // "local-site:endpoint~remote-site:endpoint"
  std::string remote_site;
  std::string local_endpoint, remote_endpoint;
  model::SocketAddress local_underlay, remote_underlay;
  std::optional<model::IpAddress> local_overlay, remote_overlay;
  std::uint32_t session_id = 0;              // the same on both ends (mesh::probe_session_id)
  std::array<std::uint8_t, 32> probe_key{};  // mesh::derive_probe_key; never a private key
  bool has_key = false;
  // False for a path to a peer that is not a Patronus site (a partner's IKEv2 gateway): it runs
  // no probe responder, so nothing is measured and nothing is invented. Such a path is usable
  // exactly while its transport reports the tunnel up (IKE's DPD keeps that honest), has no score
  // and meets no class thresholds; it needs a transport and no overlay addresses.
  bool probed = true;
  std::optional<double> bandwidth_mbps;  // the smaller of the two endpoints' capacities
  double cost_per_gb = 0;                // the larger of the two endpoints' costs
  // The tunnel, for a transport plugin (RuntimeConfig::transport): the interface carrying the
  // local endpoint, its overlay addresses (address, prefix length), what the remote end carries,
  // both ends' public keys and the keepalive.
  struct Tunnel {
    std::string interface_name;
    std::vector<std::pair<model::IpAddress, int>> interface_addresses;
    std::vector<model::IpPrefix> allowed_prefixes;
    std::array<std::uint8_t, 32> local_public_key{}, remote_public_key{};
    // While the remote endpoint rotates its key: the key it will switch to (ADR 0013).
    std::optional<std::array<std::uint8_t, 32>> remote_next_public_key;
    std::uint16_t keepalive_s = 0;
    // Which transport builds it (RuntimeConfig::transports picks the plugin instance), and its
    // settings from the sites file for the plugin (patronus_path_desc::transport_params).
    std::string transport = "wireguard";
    std::string params_json;
  };
  std::optional<Tunnel> tunnel;
};

// A remote site and the prefixes reached through it (its LAN subnets and overlay addresses).
// A site without direct paths (a spoke seen from another spoke) is reached through relay sites:
// `via` names remote sites with paths of their own, and the site's traffic is steered over the
// paths to them (the relay forwards it on with its own runtime). Direct paths, when a site has
// any, are its only candidates.
struct RemoteSite {
  std::string name;
  std::vector<model::IpPrefix> prefixes;  // what flows to it are matched by (LANs and overlay)
  std::vector<std::string> via;
  // Its LAN subnets: what the dataplane steers per class (overlay addresses are the transport's,
  // per tunnel). Handed to Dataplane::add_site when the site joins a running runtime.
  std::vector<model::IpPrefix> subnets;
};

struct RuntimeConfig {
  std::string site;
  std::string probe;           // probe plugin instance that watches the paths
  std::string default_scorer;  // scorer instance of classes that name none
  // Transport plugin instance that builds every path's tunnel ("": none; the paths exist already,
  // as in the simulator). With one, start() brings each path's tunnel up first, probes run over
  // the overlay addresses (through the tunnels), and a path whose tunnel the transport reports
  // down is not used. stop() leaves the tunnels to the transport (whose own stop decides whether
  // they outlive the daemon), so a restart does not drop them.
  std::string transport;
  // Per transport kind (PathSpec::Tunnel::transport, e.g. "wireguard", "ipsec"): the instance
  // that builds such paths' tunnels, for a site whose paths use several; a kind not listed falls
  // back to `transport`. Every path then needs an instance for its kind.
  std::map<std::string, std::string> transports;
  // Further probe instances whose liveness verdicts gate the paths (e.g. BFD towards a router the
  // site does not control): each is asked to watch every path, described by its underlay
  // addresses; one that answers NOT_FOUND does not cover that path. A covered path is usable only
  // while the instance says it is up (down until its first verdict). Their samples are ignored:
  // scores come from `probe`.
  std::vector<std::string> liveness;
  ClassSet classes = default_classes("");
  WindowLimits window;
  std::uint32_t max_paths = 4096;
  std::uint32_t max_remote_sites = 4096;  // at most 65535 (flow entries keep a 16-bit index)
  std::uint32_t max_flows = 65536;
  std::int64_t flow_idle_ns = 60'000'000'000;         // a flow unseen this long is forgotten
  std::int64_t tick_ns = 100'000'000;                 // periodic evaluation, expiry
  std::int64_t idle_after_ns = 30'000'000'000;        // no traffic this long: idle probe rate
  std::size_t decision_log = 4096;                    // decisions kept in memory
  std::int64_t metrics_interval_ns = 10'000'000'000;  // path metrics to observers
  // A scorer that fails on a path keeps its last good score this long, then the default
  // scorer's score stands in (the default scorer failing leaves the path unscored).
  std::int64_t scorer_hold_ns = 10'000'000'000;
};

// A tunnel diagnostic (PATRONUS_TUNNEL_DIAG_*) in words: what decisions and the control API say.
const char* tunnel_diagnostic_text(std::uint32_t diagnostic);
// A liveness verdict's PATRONUS_DIAG_* in words ("" for none).
const char* liveness_diagnostic_text(std::uint32_t diagnostic);

enum class Reason : std::uint8_t {
  kInitial,    // the class had no path to the site
  kPathDown,   // the path's probe declared it down
  kThreshold,  // the path broke the class's thresholds (or its scorer said down)
  kFailback,   // the path the class failed over from has been good for the hold-down
  kBetter,     // while settling after an initial choice: a path better by the hysteresis
  kNoPath,     // nothing usable is left
  kRebalance,  // a balanced class's set of paths changed
};
const char* to_string(Reason r);

struct Candidate {
  model::PathId path;
  double score = 0;
  bool eligible = false;
  std::string why_not;  // "" when eligible
};

// One decision with its inputs: which class, to which site, from which path to which, why.
struct Decision {
  std::int64_t wall_ns = 0;  // Env wall clock (deterministic in simulation)
  std::int64_t mono_ns = 0;  // Env monotonic clock
  std::string site, cls, dst_site;
  model::PathId from, to;
  Reason reason = Reason::kInitial;
  std::string why;
  // Failovers: time since the old path's last good evidence (its last probe reply), i.e. an
  // upper bound on fault-to-move. -1 otherwise.
  std::int64_t fault_age_ns = -1;
  std::uint32_t flows_moved = 0;
  std::vector<Candidate> candidates;
  std::string to_json() const;
};

struct PathView {
  model::PathId id;
  std::string name, remote_site;
  model::PathStatus status = model::PathStatus::kDown;
  bool live = false;
  bool probed = true;  // PathSpec::probed
  bool scored = false;
  double score = 0;  // by the default scorer
  WindowStats stats;
  std::uint32_t rate = PATRONUS_PROBE_RATE_IDLE;
  std::uint32_t selections = 0;  // (class, site) selections using it
  std::uint32_t flows = 0;
  // The transport's last report on the path's tunnel (none without a transport).
  struct TunnelView {
    bool up = false;
    std::uint32_t diagnostic = PATRONUS_TUNNEL_DIAG_NONE;
    std::int64_t last_handshake_wall_ns = 0;  // 0: never
    std::uint64_t rx_bytes = 0, tx_bytes = 0;
    std::optional<model::SocketAddress> endpoint;
  };
  std::optional<TunnelView> tunnel;
  // The verdicts of the liveness instances covering the path (RuntimeConfig::liveness).
  struct LivenessView {
    std::string instance;
    bool up = false;
    std::uint32_t diagnostic = PATRONUS_DIAG_NONE;
    std::int64_t detect_time_ns = 0;
  };
  std::vector<LivenessView> liveness;
};

// Several may listen (store, trace, simulator). Every callback carries the site.
class RuntimeObserver {
 public:
  virtual ~RuntimeObserver() = default;
  virtual void on_decision(const std::string& site, const Decision& d) { (void)site, (void)d; }
  virtual void on_path_state(const std::string& site, const PathView& p) { (void)site, (void)p; }
  virtual void on_path_metrics(const std::string& site, const PathView& p) { (void)site, (void)p; }
  virtual void on_sample(const std::string& site, const std::string& instance,
                         const patronus_path_sample& s) {
    (void)site, (void)instance, (void)s;
  }
  // The runtime's own events and plugins' (in a PluginEvent envelope), typed (events.hpp).
  virtual void on_event(const std::string& site, const Event& e) { (void)site, (void)e; }
  virtual void on_log(const std::string& site, const std::string& instance, std::uint32_t level,
                      const std::string& msg) {
    (void)site, (void)instance, (void)level, (void)msg;
  }
};

struct RuntimeCounters {
  std::uint64_t samples = 0, samples_unknown_path = 0, samples_late = 0;
  // Losses of probes sent before a path's first answer (its start, not its quality).
  std::uint64_t samples_before_first_answer = 0;
  // Losses of probes sent while a key rotation switched the path's tunnel (update_path), before
  // the first answer under the new keys.
  std::uint64_t samples_during_rekey = 0;
  std::uint64_t liveness_changes = 0, decisions = 0, failovers = 0, failbacks = 0;
  std::uint64_t tunnel_changes = 0, tunnel_reports_unknown_path = 0;
  std::uint64_t flows_created = 0, flows_refused = 0, flows_expired = 0, flows_unrouted = 0;
  std::uint64_t packets = 0;
  std::uint64_t scorer_errors = 0, dataplane_errors = 0, rate_errors = 0, timers_refused = 0;
  std::uint64_t scorer_fallbacks = 0;  // a failing scorer's stand-in changed (last good, default)
  std::uint64_t plugin_metrics = 0;    // values plugins reported (host service metric)
  std::uint64_t plugin_metrics_refused = 0;  // new names past the table's bound
  std::uint64_t decisions_evicted = 0;       // older decisions leaving the in-memory ring
};

class SiteRuntime final : private core::RouterObserver {
 public:
  // The router's plugin instances must be added before start(); the runtime becomes the router's
  // observer. config is checked by start().
  SiteRuntime(env::Env& env, core::RouterInstance& router, RuntimeConfig config,
              Dataplane& dataplane);
  ~SiteRuntime() override;
  SiteRuntime(const SiteRuntime&) = delete;
  SiteRuntime& operator=(const SiteRuntime&) = delete;

  void add_observer(RuntimeObserver* o);
  // Before start(), or while running: a new plan's site or path joins without disturbing the
  // others. Running, a new site gets its prefixes in the dataplane (unreachable until decided)
  // and its classes' selections; a new path gets its tunnel, its probe and liveness watches at
  // once and becomes a candidate of its site's classes (and of the sites relayed through it).
  // No other path is touched, no class moves. Errors name the offending field; nothing is added
  // on error.
  Status add_remote_site(const RemoteSite& site);
  Status add_path(const PathSpec& path);
  // A path no longer in the plan: before start() it is forgotten; running, its watches and its
  // tunnel are removed and the classes on it move as from a path that went down (the decision
  // says it was removed). Its id stays reserved (a path of that id added again comes back).
  // True when the path existed.
  Result<bool> remove_path(model::PathId id);
  // A remote site no longer in the plan, after its paths (and the sites relayed through it): its
  // prefixes leave the dataplane (Dataplane::remove_site) and the classifier, its flows are
  // forgotten, and it is no longer counted or listed. Its place is kept, so a site of that name
  // added again comes back in it. Refused (nothing changes) while a path leads to it or a site is
  // relayed through it. True when the site existed.
  Result<bool> remove_remote_site(const std::string& name);
  bool has_remote_site(const std::string& name) const;
  // A key rotation (ADR 0013): the same path (id, name, endpoints, addresses, interface) with new
  // keys. Running, the transport gets the path again and the probe the new key (it keeps
  // accepting the previous one for a grace period). Anything but keys differing is refused (a
  // path whose endpoints changed is removed and added with a new id by its plan). Nothing
  // changes on error. True when some key changed.
  Result<bool> update_path(const PathSpec& path);
  // A running site's classes and rules replaced in one evaluation: a class kept by name keeps
  // its path and state (its new thresholds apply at once), an added class gets its first path in
  // the same call, a removed one goes. The dataplane gets the new set first (Dataplane::
  // set_classes). When the rules or the default class change, the flow table is forgotten and
  // each flow is classified anew with its next packet; otherwise flows keep their class. Nothing
  // changes on error (a set that does not validate, a scorer instance that is not loaded, a
  // dataplane that cannot take it).
  // `change` (optional) gets what changed, as the runtime.classes_changed event says it.
  Status set_classes(const ClassSet& next, ClassesChanged* change = nullptr);
  // Plugin instance `instance` was restarted with a new config (RouterInstance::replace_plugin):
  // what the runtime registered with it is registered again (a probe or liveness instance
  // watches the paths it watched, a transport gets their tunnels), and a scorer scores every
  // path again. The runtime's own state (windows, liveness, classes' paths) stays: nothing moves
  // unless the new instance's verdicts differ. Errors name the path; the rest still registers.
  Status plugin_restarted(const std::string& instance);
  // Checks the configuration (classes, scorer and probe instances), starts the router if it is
  // not running, asks the probe to watch every path and starts the decision tick.
  Status start();
  void stop();
  bool running() const { return running_; }

  // The data path: a packet of a flow (DSCP 0..63). Returns the path it is steered onto (an
  // invalid PathId: no usable path, or a destination outside every remote site's prefixes).
  model::PathId on_packet(const model::FlowKey& key, std::uint8_t dscp, std::uint32_t bytes);
  // The same for a batch of packets (how a data path delivers them): tracked flows are looked up
  // together with prefetching (FlowTable::find_batch); new flows take on_packet. out[i] is the
  // path of packets[i].
  struct Packet {
    model::FlowKey key;
    std::uint8_t dscp = 0;
    std::uint32_t bytes = 0;
  };
  void on_packets(const Packet* packets, std::size_t n, model::PathId* out);
  // Evaluates every (class, site) now (the tick does this too).
  void evaluate_all();

  const std::string& site() const { return config_.site; }
  const RuntimeConfig& config() const { return config_; }
  std::vector<PathView> paths() const;
  std::optional<PathView> path(model::PathId id) const;
  // The plan's description of a path (nullptr: no such path).
  const PathSpec* spec(model::PathId id) const;
  // The transport plugin instance that builds a path's tunnel ("" without a tunnel).
  const std::string& transport_of(const PathSpec& spec) const;
  // The remote sites, in the order they were added.
  std::vector<std::string> remote_site_names() const;
  // The path a class's traffic to a site takes now (invalid: none).
  model::PathId class_path(const std::string& dst_site, const std::string& cls) const;
  const std::deque<Decision>& decisions() const { return decisions_; }
  const FlowTable& flows() const { return flows_; }
  // Milliseconds since a tracked flow's last packet (its entry keeps a wrapping runtime clock).
  std::int64_t flow_idle_ms(const FlowEntry& e) const {
    return static_cast<std::uint32_t>(now_ms() - e.last_seen);
  }
  const RuntimeCounters& counters() const { return counters_; }
  // The last value of each metric the plugins reported (the host service `metric`), by instance
  // and name, with when (Env wall clock). Bounded: kMaxPluginMetrics names; a new name past
  // the bound is refused and counted (plugin_metrics_refused), a known one always updates.
  struct PluginMetric {
    double value = 0;
    std::int64_t updated_wall_ns = 0;
  };
  static constexpr std::size_t kMaxPluginMetrics = 1024;
  const std::map<std::pair<std::string, std::string>, PluginMetric>& plugin_metrics() const {
    return plugin_metrics_;
  }
  // The class a flow falls into (rules in order, else the default class).
  const std::string& classify(const model::FlowKey& key, std::uint8_t dscp) const;

 private:
  struct Path;
  struct Selection;
  struct ScorerSlot {
    std::string instance;
    int first_class = -1;  // the class named in the windows it scores
  };

  // core::RouterObserver
  void on_sample(const std::string& instance, const patronus_path_sample& s) override;
  void on_liveness(const std::string& instance, const patronus_path_liveness& l) override;
  void on_tunnel(const std::string& instance, const patronus_tunnel_status& t) override;
  void on_gate(const std::string& instance, const patronus_path_liveness& l);
  void alive_changed(const Path& p, bool was_alive, const std::string& by,
                     const patronus_path_liveness& l);
  Status watch_liveness();
  void on_event(const std::string& instance, const std::string& type,
                const std::string& json) override;
  void on_metric(const std::string& instance, const std::string& name, double value) override;
  void on_log(const std::string& instance, std::uint32_t level, const std::string& msg) override;

  patronus_path_desc describe(const Path& p) const;
  patronus_path_desc probe_desc(const Path& p) const;
  Status bring_up_tunnel(const Path& p);
  // The transport instance of a path ("" without tunnels); whether the paths have tunnels.
  const std::string& transport_of(const Path& p) const;
  bool tunnels() const { return !config_.transport.empty() || !config_.transports.empty(); }
  void emit_event(Event e);
  // An anomaly (refused timer, full table, plugin or dataplane error): an event and a warning log.
  void warn(Event e);
  void tick();
  void schedule_tick();
  void rescore(Path& p);
  // Running: a path's tunnel, probe watch and liveness watches (join), and their removal.
  Status join(Path& p);
  // The probe's watch of a path at `rate`; liveness instance i's (always at the active rate).
  Status watch_probe(const Path& p, std::uint32_t rate);
  Status watch_gate(const Path& p, std::size_t i);
  void leave(Path& p);
  // The selections of `site` (and of the sites relayed through it) gain candidate `index`.
  void add_candidate(std::uint32_t site, std::uint32_t index);
  // The scorer slots a class set needs (one per distinct instance, the default scorer first).
  Status scorer_slots(const ClassSet& set, std::vector<ScorerSlot>& slots,
                      std::vector<std::uint32_t>& class_slot) const;
  void forget_flow(std::uint32_t i);
  void score_failed(Path& p, std::size_t slot, const std::string& error);
  void refresh_eligibility(Path& p, const WindowStats& st);
  void evaluate_site(std::uint32_t site);
  void evaluate(Selection& s);
  void apply(Selection& s, int chosen, Reason reason, std::int64_t fault_age,
             const std::vector<CandidateInput>& inputs);
  void rebalance(Selection& s);
  void update_rates();
  void request_rate_update();
  // A packet of a tracked flow that has a path: counts it and notes the class's traffic. False
  // (nothing counted) when the flow has no path yet.
  bool count_cached(FlowEntry& e, std::uint32_t bytes, std::int64_t now, model::PathId* out);
  void expire_flows();
  void publish_metrics();
  void notify_state(Path& p);
  PathView view(const Path& p) const;
  int class_index(const model::FlowKey& key, std::uint8_t dscp) const;
  int site_of(const model::IpAddress& dst) const;
  std::uint16_t pick_balanced(const Selection& s, std::uint64_t flow_hash) const;
  std::uint32_t now_ms() const;

  env::Env& env_;
  core::RouterInstance& router_;
  RuntimeConfig config_;
  Dataplane& dataplane_;
  std::vector<RuntimeObserver*> observers_;
  std::vector<RemoteSite> sites_;
  std::vector<bool> site_removed_;  // per site: removed from the plan (a tombstone)
  std::vector<std::unique_ptr<Path>> paths_;
  std::map<std::uint64_t, std::uint32_t> path_index_;  // PathId -> index
  std::vector<ScorerSlot> scorers_;
  std::vector<std::uint32_t> class_scorer_;                          // class -> scorer slot
  std::vector<std::unique_ptr<Selection>> selections_;               // site * classes + class
  std::vector<std::pair<model::IpPrefix, std::uint32_t>> prefixes_;  // longest first
  std::vector<std::vector<std::uint32_t>> relayed_;  // site -> sites relayed through it
  FlowTable flows_;
  std::vector<CandidateInput> scratch_;         // evaluate()'s candidate inputs
  std::vector<std::uint16_t> balance_scratch_;  // rebalance()'s candidate set
  std::deque<Decision> decisions_;
  RuntimeCounters counters_;
  std::map<std::pair<std::string, std::string>, PluginMetric> plugin_metrics_;
  env::TimerId tick_timer_ = 0;
  env::TimerId rates_timer_ = 0;  // a pending request_rate_update()
  std::int64_t next_metrics_ns_ = 0;
  bool running_ = false;
};

}  // namespace patronus::steering
