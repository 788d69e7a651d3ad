#include "patronus/steering/site_runtime.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

namespace patronus::steering {

namespace {

using J = nlohmann::json;

std::string fmt(double v, int digits = 1) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::uint32_t priority_of(model::Priority p) {
  return static_cast<std::uint32_t>(p);
}

bool is_pow2(std::uint64_t v) {
  return v != 0 && (v & (v - 1)) == 0;
}

// One-sided 99.9 % lower bound (Wilson score) of a loss ratio, in percent. A class's loss
// threshold is broken only when the window shows, with that confidence, more loss than allowed:
// 2 lost of 13 probes (15 %) on a path losing 2 % is noise, not evidence (ADR 0008). The bound is
// tested at every probe, on overlapping windows, so the confidence must be high: in the 10-site
// soak (paths losing 1 % of round trips, voice bounded at 2 %) a 95 % bound (8 of 200) made 30
// false moves in 20 call-hours, a 99 % bound (10 of 200) 8 in 100, this one (11 of 200) 2 in 100.
double loss_lower_bound_pct(std::uint32_t lost, std::uint32_t n) {
  if (n == 0) return 0;
  constexpr double z = 3.090232;
  const double p = static_cast<double>(lost) / n;
  const double z2n = z * z / n;
  const double center = p + z2n / 2;
  const double margin = z * std::sqrt(p * (1 - p) / n + z2n / (4.0 * n));
  return std::max(0.0, (center - margin) / (1 + z2n)) * 100.0;
}

}  // namespace

const char* liveness_diagnostic_text(std::uint32_t diagnostic) {
  switch (diagnostic) {
    case PATRONUS_DIAG_NONE:
      return "";
    case PATRONUS_DIAG_DETECT_EXPIRED:
      return "control detection time expired";
    case PATRONUS_DIAG_NEIGHBOR_DOWN:
      return "the neighbour signalled session down";
    case PATRONUS_DIAG_ADMIN_DOWN:
      return "administratively down";
    default:
      return "unknown diagnostic";
  }
}

const char* tunnel_diagnostic_text(std::uint32_t diagnostic) {
  switch (diagnostic) {
    case PATRONUS_TUNNEL_DIAG_NONE:
      return "";
    case PATRONUS_TUNNEL_DIAG_NO_HANDSHAKE:
      return "no handshake within the reject window";
    case PATRONUS_TUNNEL_DIAG_DEVICE_ERROR:
      return "the device refused its configuration";
    case PATRONUS_TUNNEL_DIAG_DEVICE_GONE:
      return "the device went away";
    case PATRONUS_TUNNEL_DIAG_AUTH_FAILED:
      return "authentication failed";
    case PATRONUS_TUNNEL_DIAG_NEGOTIATION_FAILED:
      return "no proposal or traffic selector agreed";
    default:
      return "unknown diagnostic";
  }
}

const char* to_string(Reason r) {
  switch (r) {
    case Reason::kInitial:
      return "initial";
    case Reason::kPathDown:
      return "failover-path-down";
    case Reason::kThreshold:
      return "failover-threshold";
    case Reason::kFailback:
      return "failback";
    case Reason::kBetter:
      return "better-while-settling";
    case Reason::kNoPath:
      return "no-path";
    case Reason::kRebalance:
      return "rebalance";
  }
  return "unknown";
}

std::string Decision::to_json() const {
  nlohmann::json cands = nlohmann::json::array();
  for (const auto& c : candidates) {
    nlohmann::json j = {{"path", c.path.value()},
                        {"score", std::round(c.score * 100) / 100},
                        {"eligible", c.eligible}};
    if (!c.why_not.empty()) j["why_not"] = c.why_not;
    cands.push_back(std::move(j));
  }
  return nlohmann::json{{"site", site},
                        {"class", cls},
                        {"dst_site", dst_site},
                        {"from", from.value()},
                        {"to", to.value()},
                        {"reason", to_string(reason)},
                        {"why", why},
                        {"mono_ns", mono_ns},
                        {"fault_age_ns", fault_age_ns},
                        {"flows_moved", flows_moved},
                        {"candidates", std::move(cands)}}
      .dump();
}

// More probes than this unanswered before a path's first answer mean that the peer was absent,
// or had not learned the path yet (both ends apply a new path at about the same time, not at
// the same instant).
constexpr std::uint64_t kAbsentProbes = 1;

// How long a key rotation's probe losses are not held against the path (see Path::rekey_at_ns): a
// rotation that has not produced an answer by then has broken the path, and its losses count.
constexpr std::int64_t kRekeyWindowNs = 1'000'000'000;

struct SiteRuntime::Path {
  PathSpec spec;
  std::uint32_t site = 0;
  MetricWindow window;
  bool live = false;
  std::int64_t last_rx_ns = 0;
  // The send time of the first probe the peer answered (-1: none yet). Until then the peer may
  // not have been there (it had not started, or not learned the path); probes sent before it
  // that time out afterwards are not counted, so a path that has just come up does not go down
  // again on the losses of its own start. INT64_MIN: answered from its first probes.
  std::int64_t first_answer_sent_ns = -1;
  // A key rotation of the path (update_path): from then until the first answer to a probe sent
  // after it, the two ends switch keys at their own times and a probe may fall in the gap (one
  // WireGuard handshake and the far end's standby poll). Those losses are the rotation,
  // not the path: they are not counted, for at most kRekeyWindowNs. -1: no rotation under way.
  std::int64_t rekey_at_ns = -1;
  std::int64_t rekey_answered_ns = -1;  // the send time of the first probe answered after it
  struct Score {
    bool valid = false;
    double score = 0;
    std::uint32_t state = PATRONUS_PATH_DOWN;
    // The scorer failed on this path: since when (0: it answers), the last score it gave and
    // when. While it fails, the last good score holds for RuntimeConfig::scorer_hold_ns, then
    // the default scorer's score stands in (see rescore).
    std::int64_t failing_since_ns = 0;
    std::int64_t good_at_ns = -1;
    double good_score = 0;
    std::uint32_t good_state = PATRONUS_PATH_DOWN;
    std::string said;  // what stands in, as last reported
  };
  std::vector<Score> scores;                 // per scorer slot
  std::vector<std::int64_t> eligible_since;  // per class, -1: not eligible
  model::PathStatus status = model::PathStatus::kDown;
  bool status_reported = false;
  std::uint32_t rate = PATRONUS_PROBE_RATE_IDLE;
  bool confirming = false;  // a class verdict waits for confirm_samples probes (active rate)
  std::int64_t confirm_since_ns = 0;
  std::uint32_t selections = 0;
  std::uint32_t flows = 0;
  bool removed = false;  // no longer in the plan (remove_path): a tombstone keeping its index
  std::optional<PathView::TunnelView> tunnel;  // the transport's last report
  // Per RuntimeConfig::liveness instance: whether it covers the path, and its last verdict.
  struct Gate {
    bool covered = false, up = false;
    std::uint32_t diagnostic = PATRONUS_DIAG_NONE;
    std::int64_t detect_time_ns = 0;
  };
  std::vector<Gate> gates;
  // Alive as far as the probes go: ours answered and no covering liveness instance says down.
  bool alive() const {
    if (!live) return false;
    for (const auto& g : gates) {
      if (g.covered && !g.up) return false;
    }
    return true;
  }
  // Usable for traffic as far as liveness goes: alive and the tunnel (if a transport reports on
  // it) not down. An unprobed path (PathSpec::probed) has only its tunnel: up once reported up.
  bool up() const {
    if (!spec.probed) return alive() && tunnel && tunnel->up;
    return alive() && !(tunnel && !tunnel->up);
  }
  explicit Path(const WindowLimits& w) : window(w) {}
};

struct SiteRuntime::Selection {
  std::uint32_t site = 0;
  std::uint32_t cls = 0;
  std::vector<std::uint32_t> cand;  // path indices to the site
  SelectionState state;             // indices into cand
  std::int64_t last_traffic_ns = INT64_MIN / 2;
  std::vector<std::uint16_t> balanced;  // path indices of a balanced class's set
  std::uint16_t current_path() const {
    return state.current < 0 ? kNoPath : static_cast<std::uint16_t>(cand[state.current]);
  }
};

namespace {
// From the Env: the OS's randomness on a real site, the seed's in a simulation.
FlowHashKey flow_hash_key(env::Env& env) {
  FlowHashKey k;
  for (std::size_t i = 0; i < k.size(); i += 8) {
    const std::uint64_t r = env.random_u64();
    std::memcpy(k.data() + i, &r, 8);
  }
  return k;
}
}  // namespace

SiteRuntime::SiteRuntime(env::Env& env, core::RouterInstance& router, RuntimeConfig config,
                         Dataplane& dataplane)
    : env_(env),
      router_(router),
      config_(std::move(config)),
      dataplane_(dataplane),
      flows_(std::clamp<std::uint32_t>(config_.max_flows, 1, FlowTable::kMaxCapacity),
             flow_hash_key(env)) {
  router_.set_observer(this);
}

SiteRuntime::~SiteRuntime() {
  stop();
  router_.set_observer(nullptr);
}

void SiteRuntime::add_observer(RuntimeObserver* o) {
  if (o) observers_.push_back(o);
}

Status SiteRuntime::add_remote_site(const RemoteSite& site) {
  if (site.name.empty()) return invalid_argument("remote site: name is empty");
  if (site.name == config_.site) {
    return invalid_argument("remote site '" + site.name + "' is this site");
  }
  int revive = -1;  // a removed site coming back keeps its index
  for (std::size_t i = 0; i < sites_.size(); ++i) {
    if (sites_[i].name != site.name) continue;
    if (!site_removed_[i]) return invalid_argument("remote site '" + site.name + "' twice");
    revive = static_cast<int>(i);
  }
  // Flow entries keep the destination site in 16 bits.
  const std::uint32_t bound = std::min<std::uint32_t>(config_.max_remote_sites, 65535);
  if (revive < 0 && sites_.size() >= bound) {
    return resource_exhausted("remote sites: the bound of " + std::to_string(bound) +
                              " is reached");
  }
  if (running_) {
    for (const auto& v : site.via) {
      if (!has_remote_site(v)) {
        return invalid_argument("remote site '" + site.name + "': via '" + v +
                                "' is not a remote site");
      }
    }
    // The dataplane first: the site's prefixes are unreachable until a class is decided, never
    // routed by whatever else matches them.
    if (auto s = dataplane_.add_site(site.name, site.subnets); !s.is_ok()) {
      return Status(s.code(), "remote site '" + site.name + "': " + s.message());
    }
  }
  if (revive >= 0) {
    sites_[static_cast<std::size_t>(revive)] = site;
    site_removed_[static_cast<std::size_t>(revive)] = false;
  } else {
    sites_.push_back(site);
    site_removed_.push_back(false);
  }
  if (!running_) return Status::ok();
  const auto index = revive >= 0 ? static_cast<std::uint32_t>(revive)
                                 : static_cast<std::uint32_t>(sites_.size() - 1);
  for (const auto& pr : site.prefixes) prefixes_.emplace_back(pr, index);
  std::stable_sort(prefixes_.begin(), prefixes_.end(), [](const auto& a, const auto& b) {
    return a.first.length() > b.first.length();
  });
  const std::size_t nclasses = config_.classes.classes.size();
  if (revive < 0) relayed_.emplace_back();
  for (std::uint32_t c = 0; c < nclasses; ++c) {
    auto sel = std::make_unique<Selection>();
    sel->site = index;
    sel->cls = c;
    if (revive >= 0) {
      selections_[index * nclasses + c] = std::move(sel);
    } else {
      selections_.push_back(std::move(sel));
    }
  }
  // Relayed: the paths to its relays are its candidates until it has paths of its own.
  for (const auto& v : site.via) {
    std::uint32_t r = 0;
    while (sites_[r].name != v) ++r;
    relayed_[r].push_back(index);
    for (std::uint32_t i = 0; i < paths_.size(); ++i) {
      if (paths_[i]->site != r || paths_[i]->removed) continue;
      for (std::uint32_t c = 0; c < nclasses; ++c) {
        selections_[index * nclasses + c]->cand.push_back(i);
      }
    }
  }
  {
    Event e;
    auto* a = e.mutable_site_added();
    a->set_site(site.name);
    a->set_prefixes(static_cast<std::uint32_t>(site.prefixes.size()));
    for (const auto& v : site.via) a->add_via(v);
    emit_event(std::move(e));
  }
  evaluate_site(index);
  return Status::ok();
}

bool SiteRuntime::has_remote_site(const std::string& name) const {
  for (std::size_t i = 0; i < sites_.size(); ++i) {
    if (sites_[i].name == name && !site_removed_[i]) return true;
  }
  return false;
}

Result<bool> SiteRuntime::remove_remote_site(const std::string& name) {
  std::size_t index = 0;
  while (index < sites_.size() && (sites_[index].name != name || site_removed_[index])) ++index;
  if (index == sites_.size()) return false;
  for (const auto& p : paths_) {
    if (!p->removed && p->site == index) {
      return failed_precondition("remote site '" + name + "': path '" + p->spec.name +
                                 "' still leads to it (remove its paths first)");
    }
  }
  for (std::size_t i = 0; i < sites_.size(); ++i) {
    if (i == index || site_removed_[i]) continue;
    if (std::find(sites_[i].via.begin(), sites_[i].via.end(), name) != sites_[i].via.end()) {
      return failed_precondition("remote site '" + name + "': site '" + sites_[i].name +
                                 "' is relayed through it (remove that site first)");
    }
  }
  if (running_) {
    if (auto s = dataplane_.remove_site(name); !s.is_ok()) {
      return Status(s.code(), "remote site '" + name + "': " + s.message());
    }
    // Its flows go; its classes have no path left to hold.
    std::uint32_t forgotten = 0;
    for (std::uint32_t i = flows_.size(); i-- > 0;) {
      if (flows_.at(i).site != index) continue;
      forget_flow(i);
      ++forgotten;
    }
    const std::size_t nclasses = config_.classes.classes.size();
    for (std::size_t c = 0; c < nclasses; ++c) {
      auto& sel = selections_[index * nclasses + c];
      const auto cur = sel->current_path();
      if (cur != kNoPath) --paths_[cur]->selections;
      sel->cand.clear();
      sel->balanced.clear();
      sel->state = {};
    }
    prefixes_.erase(std::remove_if(prefixes_.begin(), prefixes_.end(),
                                   [&](const auto& e) { return e.second == index; }),
                    prefixes_.end());
    for (auto& r : relayed_) r.erase(std::remove(r.begin(), r.end(), index), r.end());
    relayed_[index].clear();
    Event e;
    auto* d = e.mutable_site_removed();
    d->set_site(name);
    d->set_flows_forgotten(forgotten);
    emit_event(std::move(e));
  }
  site_removed_[index] = true;
  return true;
}

Status SiteRuntime::add_path(const PathSpec& spec) {
  const std::string p = "path '" + spec.name + "'";
  if (!spec.id.valid()) return invalid_argument(p + ": id is 0 (paths get ids from the store)");
  const auto known = path_index_.find(spec.id.value());
  const bool revive = known != path_index_.end() && paths_[known->second]->removed;
  if (known != path_index_.end() && !revive) {
    return invalid_argument(p + ": id " + std::to_string(spec.id.value()) + " is used already");
  }
  if (paths_.size() >= config_.max_paths || paths_.size() >= kNoPath) {
    return resource_exhausted(p + ": the bound of " + std::to_string(config_.max_paths) +
                              " paths is reached");
  }
  int site = -1;
  for (std::size_t i = 0; i < sites_.size(); ++i) {
    if (sites_[i].name == spec.remote_site) site = static_cast<int>(i);
  }
  if (site < 0) {
    return invalid_argument(p + ": remote site '" + spec.remote_site +
                            "' was not added (add_remote_site first)");
  }
  if (spec.bandwidth_mbps && !(*spec.bandwidth_mbps > 0)) {
    return invalid_argument(p + ": bandwidth_mbps must be > 0");
  }
  auto path = std::make_unique<Path>(config_.window);
  path->spec = spec;
  path->site = static_cast<std::uint32_t>(site);
  if (running_) {
    if (tunnels() &&
        (!spec.tunnel || (spec.probed && (!spec.local_overlay || !spec.remote_overlay)))) {
      return invalid_argument("transport: " + p +
                              " has no tunnel (interface, keys, overlay addresses)");
    }
    if (tunnels() && transport_of(*path).empty()) {
      return invalid_argument("transports: no instance for " + p + " (its transport is " +
                              spec.tunnel->transport + ")");
    }
    if (revive && paths_[known->second]->site != path->site) {
      return invalid_argument(p + ": id " + std::to_string(spec.id.value()) +
                              " was a path to another site");
    }
    if (auto s = join(*path); !s.is_ok()) return Status(s.code(), p + ": " + s.message());
  }
  std::uint32_t index = 0;
  if (revive) {
    index = known->second;
    paths_[index] = std::move(path);  // its candidacies (the index) stand...
    if (running_) {
      const auto& cand =
          selections_[static_cast<std::size_t>(site) * config_.classes.classes.size()]->cand;
      if (std::find(cand.begin(), cand.end(), index) == cand.end()) {
        add_candidate(static_cast<std::uint32_t>(site), index);  // ...unless its site was removed
      }
    }
  } else {
    index = static_cast<std::uint32_t>(paths_.size());
    path_index_[spec.id.value()] = index;
    paths_.push_back(std::move(path));
    if (running_) add_candidate(static_cast<std::uint32_t>(site), index);
  }
  if (running_) {
    Event e;
    auto* a = e.mutable_path_added();
    a->set_path(spec.id.value());
    a->set_name(spec.name);
    a->set_site(spec.remote_site);
    emit_event(std::move(e));
    request_rate_update();
  }
  return Status::ok();
}

void SiteRuntime::add_candidate(std::uint32_t site, std::uint32_t index) {
  const std::size_t nclasses = config_.classes.classes.size();
  auto add = [&](std::uint32_t s) {
    for (std::size_t c = 0; c < nclasses; ++c) selections_[s * nclasses + c]->cand.push_back(index);
  };
  add(site);
  for (const std::uint32_t r : relayed_[site]) add(r);
}

Status SiteRuntime::join(Path& p) {
  const std::size_t nclasses = config_.classes.classes.size();
  p.scores.assign(scorers_.size(), {});
  p.eligible_since.assign(nclasses, -1);
  p.gates.assign(config_.liveness.size(), {});
  if (tunnels()) {
    if (auto s = bring_up_tunnel(p); !s.is_ok()) return s;
  }
  if (!p.spec.probed) {
    p.live = true;  // nothing to hear from: the tunnel alone says whether it is usable
  } else {
    p.rate = PATRONUS_PROBE_RATE_ACTIVE;  // warm-up: see update_rates()
    if (auto s = watch_probe(p, p.rate); !s.is_ok()) {
      if (tunnels()) (void)router_.path_down(transport_of(p), p.spec.id.value());
      return s;
    }
  }
  for (std::size_t i = 0; i < config_.liveness.size(); ++i) {
    auto s = watch_gate(p, i);
    if (s.code() == Code::kNotFound) continue;
    if (!s.is_ok()) {
      leave(p);
      return Status(s.code(), "liveness '" + config_.liveness[i] + "': " + s.message());
    }
    p.gates[i].covered = true;
  }
  return Status::ok();
}

void SiteRuntime::leave(Path& p) {
  if (p.spec.probed) (void)router_.unwatch_path(config_.probe, p.spec.id.value());
  for (std::size_t i = 0; i < p.gates.size() && i < config_.liveness.size(); ++i) {
    if (p.gates[i].covered) (void)router_.unwatch_path(config_.liveness[i], p.spec.id.value());
    p.gates[i] = {};
  }
  if (tunnels() && p.spec.tunnel) (void)router_.path_down(transport_of(p), p.spec.id.value());
}

Result<bool> SiteRuntime::remove_path(model::PathId id) {
  auto it = path_index_.find(id.value());
  if (it == path_index_.end() || paths_[it->second]->removed) return false;
  if (!running_) {
    // Not started: nothing refers to its index yet.
    const std::uint32_t index = it->second;
    paths_.erase(paths_.begin() + index);
    path_index_.erase(it);
    for (auto& [pid, i] : path_index_) {
      if (i > index) --i;
    }
    return true;
  }
  Path& p = *paths_[it->second];
  leave(p);
  const bool was_alive = p.alive();
  p.removed = true;
  p.live = false;
  p.tunnel.reset();
  for (auto& sc : p.scores) sc.valid = false;
  std::fill(p.eligible_since.begin(), p.eligible_since.end(), -1);
  p.status = model::PathStatus::kDown;
  if (was_alive) {
    Event e;
    auto* d = e.mutable_path();
    d->set_path(p.spec.id.value());
    d->set_name(p.spec.name);
    d->set_up(false);
    d->set_by("plan");
    d->set_diagnostic(PATRONUS_DIAG_NONE);
    emit_event(std::move(e));
  }
  {
    Event e;
    auto* r = e.mutable_path_removed();
    r->set_path(p.spec.id.value());
    r->set_name(p.spec.name);
    r->set_site(p.spec.remote_site);
    emit_event(std::move(e));
  }
  evaluate_site(p.site);  // the classes on it move now, as off a path that went down
  return true;
}

Status SiteRuntime::scorer_slots(const ClassSet& set, std::vector<ScorerSlot>& slots,
                                 std::vector<std::uint32_t>& class_slot) const {
  const auto names = router_.instance_names();
  auto has = [&](const std::string& n) {
    return std::find(names.begin(), names.end(), n) != names.end();
  };
  slots.clear();
  class_slot.clear();
  for (std::size_t c = 0; c < set.classes.size(); ++c) {
    const auto& cls = set.classes[c];
    const std::string inst = cls.scorer.empty() ? config_.default_scorer : cls.scorer;
    if (inst.empty() || !has(inst)) {
      return invalid_argument("classes[" + std::to_string(c) + "].scorer: no plugin instance '" +
                              inst + "'");
    }
    std::uint32_t slot = 0;
    while (slot < slots.size() && slots[slot].instance != inst) ++slot;
    if (slot == slots.size()) slots.push_back({inst});
    class_slot.push_back(slot);
  }
  // The default scorer is slot 0 if some class uses it, else it gets a slot for path status.
  if (config_.default_scorer.empty() || !has(config_.default_scorer)) {
    return invalid_argument("default_scorer: no plugin instance '" + config_.default_scorer + "'");
  }
  auto it = std::find_if(slots.begin(), slots.end(),
                         [&](const ScorerSlot& s) { return s.instance == config_.default_scorer; });
  if (it == slots.end()) {
    slots.insert(slots.begin(), {config_.default_scorer});
    for (auto& s : class_slot) ++s;
  } else if (it != slots.begin()) {
    const auto idx = static_cast<std::uint32_t>(it - slots.begin());
    std::swap(slots[0], slots[idx]);
    for (auto& s : class_slot) s = s == idx ? 0 : (s == 0 ? idx : s);
  }
  for (auto& slot : slots) slot.first_class = -1;
  for (std::size_t c = 0; c < set.classes.size(); ++c) {
    auto& slot = slots[class_slot[c]];
    if (slot.first_class < 0) slot.first_class = static_cast<int>(c);
  }
  return Status::ok();
}

namespace {

bool same_rules(const ClassSet& a, const ClassSet& b) {
  auto ports = [](const std::optional<PortRange>& x, const std::optional<PortRange>& y) {
    return x.has_value() == y.has_value() && (!x || (x->first == y->first && x->last == y->last));
  };
  if (a.default_class != b.default_class || a.rules.size() != b.rules.size()) return false;
  for (std::size_t i = 0; i < a.rules.size(); ++i) {
    const ClassRule& x = a.rules[i];
    const ClassRule& y = b.rules[i];
    if (x.class_name != y.class_name || x.protocol != y.protocol || x.dscp != y.dscp ||
        !ports(x.dst_ports, y.dst_ports) || !ports(x.src_ports, y.src_ports) ||
        x.dst_prefixes != y.dst_prefixes || x.src_prefixes != y.src_prefixes) {
      return false;
    }
  }
  // A flow's class is its index: the same rules over reordered classes are other rules.
  if (a.classes.size() != b.classes.size()) return false;
  for (std::size_t i = 0; i < a.classes.size(); ++i) {
    if (a.classes[i].name != b.classes[i].name) return false;
  }
  return true;
}

bool same_class(const ClassSpec& a, const ClassSpec& b) {
  return a.name == b.name && a.priority == b.priority && a.scorer == b.scorer &&
         a.min_score == b.min_score && a.max_loss_pct == b.max_loss_pct &&
         a.max_latency_ms == b.max_latency_ms && a.max_jitter_ms == b.max_jitter_ms &&
         a.hysteresis == b.hysteresis && a.hold_down_ns == b.hold_down_ns &&
         a.balance == b.balance && a.balance_margin == b.balance_margin;
}

}  // namespace

void SiteRuntime::forget_flow(std::uint32_t i) {
  const FlowEntry& e = flows_.at(i);
  if (e.path != kNoPath) --paths_[e.path]->flows;
  const FlowKeyBytes k = e.key();
  if (config_.classes.classes[e.cls].balance &&
      !dataplane_.set_flow_path(k.to_flow_key(), {}).is_ok()) {
    ++counters_.dataplane_errors;
  }
  flows_.erase(k);
}

Status SiteRuntime::set_classes(const ClassSet& next, ClassesChanged* change) {
  if (auto s = validate(next); !s.is_ok()) return s;
  if (next.classes.size() > 255) return invalid_argument("classes: at most 255");
  std::vector<ScorerSlot> slots;
  std::vector<std::uint32_t> class_slot;
  if (auto s = scorer_slots(next, slots, class_slot); !s.is_ok()) return s;
  if (!running_) {
    config_.classes = next;
    return Status::ok();
  }
  // Old class index of each new class (-1: added).
  const ClassSet& was = config_.classes;
  std::vector<int> from(next.classes.size(), -1);
  for (std::size_t c = 0; c < next.classes.size(); ++c) {
    for (std::size_t o = 0; o < was.classes.size(); ++o) {
      if (was.classes[o].name == next.classes[c].name) from[c] = static_cast<int>(o);
    }
  }
  if (auto s = dataplane_.set_classes(next); !s.is_ok()) {
    return Status(s.code(), "dataplane: " + s.message());
  }
  Event ev;
  auto* changed = ev.mutable_classes_changed();
  for (std::size_t c = 0; c < next.classes.size(); ++c) {
    if (from[c] < 0) {
      changed->add_added(next.classes[c].name);
    } else if (!same_class(was.classes[static_cast<std::size_t>(from[c])], next.classes[c])) {
      changed->add_changed(next.classes[c].name);
    }
  }
  for (const auto& o : was.classes) {
    if (std::none_of(next.classes.begin(), next.classes.end(),
                     [&](const ClassSpec& c) { return c.name == o.name; })) {
      changed->add_removed(o.name);
    }
  }
  // Flows: kept when the rules classify as before (the same classes in the same order, so a
  // flow's class index stays), else forgotten; and forgotten when a class stops or starts
  // balancing (its flows' pins in the dataplane would be stale).
  const bool rules = !same_rules(was, next);
  bool balancing = false;
  for (std::size_t c = 0; !rules && c < next.classes.size(); ++c) {
    balancing = balancing || was.classes[c].balance != next.classes[c].balance;
  }
  changed->set_rules_changed(rules);
  if (rules || balancing) {
    changed->set_flows_forgotten(flows_.size());
    for (std::uint32_t i = flows_.size(); i-- > 0;) forget_flow(i);
  }
  // Selections: a kept class keeps its state; a removed class's path loses the selection.
  const std::size_t nold = was.classes.size();
  const std::size_t nnew = next.classes.size();
  std::vector<std::unique_ptr<Selection>> sel(sites_.size() * nnew);
  for (std::uint32_t s = 0; s < sites_.size(); ++s) {
    const std::vector<std::uint32_t> cand = selections_[s * nold]->cand;  // the same for all
    for (std::size_t c = 0; c < nnew; ++c) {
      auto& slot = sel[s * nnew + c];
      if (from[c] >= 0) {
        slot = std::move(selections_[s * nold + static_cast<std::size_t>(from[c])]);
      } else {
        slot = std::make_unique<Selection>();
        slot->cand = cand;
      }
      slot->site = s;
      slot->cls = static_cast<std::uint32_t>(c);
    }
    for (std::size_t o = 0; o < nold; ++o) {
      const auto& gone = selections_[s * nold + o];
      if (!gone) continue;  // moved: kept
      const auto cur = gone->current_path();
      if (cur != kNoPath) --paths_[cur]->selections;
    }
  }
  // Per path: scores per new slot (a kept scorer keeps its state), eligibility per new class.
  for (auto& p : paths_) {
    std::vector<Path::Score> scores(slots.size());
    for (std::size_t k = 0; k < slots.size(); ++k) {
      for (std::size_t j = 0; j < scorers_.size(); ++j) {
        if (scorers_[j].instance == slots[k].instance) scores[k] = p->scores[j];
      }
    }
    std::vector<std::int64_t> since(nnew, -1);
    for (std::size_t c = 0; c < nnew; ++c) {
      if (from[c] >= 0) since[c] = p->eligible_since[static_cast<std::size_t>(from[c])];
    }
    p->scores = std::move(scores);
    p->eligible_since = std::move(since);
  }
  config_.classes = next;
  scorers_ = std::move(slots);
  class_scorer_ = std::move(class_slot);
  selections_ = std::move(sel);
  if (change) *change = ev.classes_changed();
  emit_event(std::move(ev));
  // New scorers and thresholds: every path scored and judged again, then every class decided.
  for (auto& p : paths_) {
    if (!p->removed && p->spec.probed) rescore(*p);
  }
  evaluate_all();
  request_rate_update();
  return Status::ok();
}

Status SiteRuntime::watch_probe(const Path& p, std::uint32_t rate) {
  patronus_path_desc d = probe_desc(p);
  d.rate = rate;
  return router_.watch_path(config_.probe, d);
}

Status SiteRuntime::watch_gate(const Path& p, std::size_t i) {
  patronus_path_desc d = describe(p);
  d.rate = PATRONUS_PROBE_RATE_ACTIVE;
  return router_.watch_path(config_.liveness[i], d);
}

Status SiteRuntime::plugin_restarted(const std::string& instance) {
  if (!running_) return Status::ok();
  Status first = Status::ok();
  auto keep = [&](const Path& p, const Status& s) {
    if (!s.is_ok() && first.is_ok()) {
      first = Status(s.code(), "path '" + p.spec.name + "': " + s.message());
    }
  };
  for (auto& p : paths_) {
    if (p->removed) continue;
    if (tunnels() && p->spec.tunnel && transport_of(*p) == instance) keep(*p, bring_up_tunnel(*p));
    if (p->spec.probed && instance == config_.probe) keep(*p, watch_probe(*p, p->rate));
    for (std::size_t i = 0; i < config_.liveness.size() && i < p->gates.size(); ++i) {
      if (config_.liveness[i] == instance && p->gates[i].covered) keep(*p, watch_gate(*p, i));
    }
  }
  if (std::any_of(scorers_.begin(), scorers_.end(),
                  [&](const ScorerSlot& s) { return s.instance == instance; })) {
    for (auto& p : paths_) {
      if (!p->removed && p->spec.probed) rescore(*p);
    }
    evaluate_all();
  }
  return first;
}

Status SiteRuntime::start() {
  if (running_) return Status::ok();
  if (auto s = validate(config_.classes); !s.is_ok()) return s;
  if (config_.tick_ns < 1'000'000 || config_.tick_ns > 10'000'000'000) {
    return invalid_argument("tick: must be 1 ms .. 10 s");
  }
  if (config_.decision_log == 0 || config_.decision_log > 1'000'000) {
    return invalid_argument("decision_log: must be 1..1000000");
  }
  const auto names = router_.instance_names();
  auto has = [&](const std::string& n) {
    return std::find(names.begin(), names.end(), n) != names.end();
  };
  if (config_.probe.empty() || !has(config_.probe)) {
    return invalid_argument("probe: no plugin instance '" + config_.probe + "'");
  }
  for (std::size_t i = 0; i < config_.liveness.size(); ++i) {
    const auto& inst = config_.liveness[i];
    if (!has(inst)) {
      return invalid_argument("liveness[" + std::to_string(i) + "]: no plugin instance '" + inst +
                              "'");
    }
    if (inst == config_.probe ||
        std::count(config_.liveness.begin(), config_.liveness.end(), inst) > 1) {
      return invalid_argument("liveness[" + std::to_string(i) + "]: '" + inst +
                              "' is named twice (the probe's own liveness counts already)");
    }
  }
  if (!config_.transport.empty() && !has(config_.transport)) {
    return invalid_argument("transport: no plugin instance '" + config_.transport + "'");
  }
  for (const auto& [kind, inst] : config_.transports) {
    if (!has(inst)) {
      return invalid_argument("transports." + kind + ": no plugin instance '" + inst + "'");
    }
  }
  if (tunnels()) {
    for (const auto& p : paths_) {
      if (!p->spec.tunnel ||
          (p->spec.probed && (!p->spec.local_overlay || !p->spec.remote_overlay))) {
        return invalid_argument("transport: path '" + p->spec.name +
                                "' has no tunnel (interface, keys, overlay addresses)");
      }
      if (transport_of(*p).empty()) {
        return invalid_argument("transports: no instance for path '" + p->spec.name +
                                "' (its transport is " + p->spec.tunnel->transport + ")");
      }
    }
  }
  if (auto st = scorer_slots(config_.classes, scorers_, class_scorer_); !st.is_ok()) return st;
  const std::size_t nclasses = config_.classes.classes.size();
  for (auto& p : paths_) {
    p->scores.assign(scorers_.size(), {});
    p->eligible_since.assign(nclasses, -1);
  }
  // Prefix table, longest first (ties: site order) for longest-prefix match.
  prefixes_.clear();
  for (std::uint32_t s = 0; s < sites_.size(); ++s) {
    if (site_removed_[s]) continue;
    for (const auto& pr : sites_[s].prefixes) prefixes_.emplace_back(pr, s);
  }
  std::stable_sort(prefixes_.begin(), prefixes_.end(), [](const auto& a, const auto& b) {
    return a.first.length() > b.first.length();
  });
  // Candidates per remote site: its direct paths, else the paths to its relay sites.
  std::vector<std::vector<std::uint32_t>> cand(sites_.size());
  relayed_.assign(sites_.size(), {});
  for (std::uint32_t i = 0; i < paths_.size(); ++i) cand[paths_[i]->site].push_back(i);
  for (std::uint32_t s = 0; s < sites_.size(); ++s) {
    if (!cand[s].empty() || site_removed_[s]) continue;
    for (const auto& v : sites_[s].via) {
      std::uint32_t r = 0;
      while (r < sites_.size() && sites_[r].name != v) ++r;
      if (r == sites_.size()) {
        return invalid_argument("remote site '" + sites_[s].name + "': via '" + v +
                                "' is not a remote site");
      }
      for (std::uint32_t i = 0; i < paths_.size(); ++i) {
        if (paths_[i]->site == r) cand[s].push_back(i);
      }
      relayed_[r].push_back(s);
    }
  }
  selections_.clear();
  for (std::uint32_t s = 0; s < sites_.size(); ++s) {
    for (std::uint32_t c = 0; c < nclasses; ++c) {
      auto sel = std::make_unique<Selection>();
      sel->site = s;
      sel->cls = c;
      sel->cand = cand[s];
      selections_.push_back(std::move(sel));
    }
  }
  if (!router_.running()) {
    if (auto s = router_.start(); !s.is_ok()) return s;
  }
  // Tunnels first (a transport), then the probes: over the overlay addresses when there are
  // tunnels, so a probe reply proves the tunnel carries packets.
  if (tunnels()) {
    for (auto& p : paths_) {
      auto s = bring_up_tunnel(*p);
      if (!s.is_ok()) {
        for (auto& q : paths_) {
          if (q.get() == p.get()) break;
          (void)router_.path_down(transport_of(*q), q->spec.id.value());
        }
        return Status(s.code(), "path '" + p->spec.name + "': " + s.message());
      }
    }
  }
  for (auto& p : paths_) {
    if (!p->spec.probed) {
      p->live = true;  // nothing to hear from: the tunnel alone says whether it is usable
      continue;
    }
    auto s = watch_probe(*p, PATRONUS_PROBE_RATE_ACTIVE);  // warm-up: see update_rates()
    if (!s.is_ok()) {
      for (auto& q : paths_) {
        if (q.get() == p.get()) break;
        if (q->spec.probed) (void)router_.unwatch_path(config_.probe, q->spec.id.value());
      }
      return Status(s.code(), "path '" + p->spec.name + "': " + s.message());
    }
    p->rate = PATRONUS_PROBE_RATE_ACTIVE;
  }
  if (auto s = watch_liveness(); !s.is_ok()) {
    for (auto& p : paths_) {
      if (p->spec.probed) (void)router_.unwatch_path(config_.probe, p->spec.id.value());
    }
    return s;
  }
  running_ = true;
  next_metrics_ns_ = env_.now_ns() + config_.metrics_interval_ns;
  schedule_tick();
  {
    Event e;
    auto* st = e.mutable_started();
    st->set_paths(static_cast<std::uint32_t>(paths_.size()));
    st->set_sites(static_cast<std::uint32_t>(remote_site_names().size()));
    st->set_classes(static_cast<std::uint32_t>(nclasses));
    emit_event(std::move(e));
  }
  return Status::ok();
}

// What probes and transports are told of a path (strings point into the spec and the config).
patronus_path_desc SiteRuntime::describe(const Path& p) const {
  patronus_path_desc d{};
  d.struct_size = sizeof d;
  d.path_id = p.spec.id.value();
  d.local = p.spec.local_underlay.to_abi();
  d.remote = p.spec.remote_underlay.to_abi();
  d.local_site = config_.site.c_str();
  d.remote_site = p.spec.remote_site.c_str();
  d.local_endpoint = p.spec.local_endpoint.c_str();
  d.remote_endpoint = p.spec.remote_endpoint.c_str();
  if (p.spec.local_overlay)
    d.local_overlay = model::SocketAddress(*p.spec.local_overlay, 0).to_abi();
  if (p.spec.remote_overlay) {
    d.remote_overlay = model::SocketAddress(*p.spec.remote_overlay, 0).to_abi();
  }
  d.session_id = p.spec.session_id;
  return d;
}

patronus_path_desc SiteRuntime::probe_desc(const Path& p) const {
  patronus_path_desc d = describe(p);
  if (tunnels()) {  // through the tunnel
    d.local = d.local_overlay;
    d.remote = d.remote_overlay;
  }
  d.rate = p.rate;
  if (p.spec.has_key) {
    d.key_len = 32;
    std::memcpy(d.key, p.spec.probe_key.data(), 32);
  }
  return d;
}

// Every liveness instance watches every path over its underlay addresses; NOT_FOUND: not covered.
Status SiteRuntime::watch_liveness() {
  for (auto& p : paths_) p->gates.assign(config_.liveness.size(), {});
  for (std::size_t i = 0; i < config_.liveness.size(); ++i) {
    for (auto& p : paths_) {
      patronus_path_desc d = describe(*p);
      d.rate = PATRONUS_PROBE_RATE_ACTIVE;
      auto s = router_.watch_path(config_.liveness[i], d);
      if (s.code() == Code::kNotFound) continue;
      if (!s.is_ok()) {
        for (std::size_t j = 0; j <= i; ++j) {
          for (auto& q : paths_) {
            if (q->gates[j].covered)
              (void)router_.unwatch_path(config_.liveness[j], q->spec.id.value());
            q->gates[j] = {};
          }
        }
        return Status(s.code(), "liveness '" + config_.liveness[i] + "', path '" + p->spec.name +
                                    "': " + s.message());
      }
      p->gates[i].covered = true;
    }
  }
  return Status::ok();
}

Result<bool> SiteRuntime::update_path(const PathSpec& spec) {
  auto it = path_index_.find(spec.id.value());
  if (it == path_index_.end() || paths_[it->second]->removed) {
    return not_found("path " + std::to_string(spec.id.value()) + " ('" + spec.name +
                     "') is not a path of this runtime (add_path adds it)");
  }
  Path& p = *paths_[it->second];
  const PathSpec& old = p.spec;
  const bool tunnel_shape_same =
      old.tunnel.has_value() == spec.tunnel.has_value() &&
      (!old.tunnel || (old.tunnel->interface_name == spec.tunnel->interface_name &&
                       old.tunnel->interface_addresses == spec.tunnel->interface_addresses &&
                       old.tunnel->allowed_prefixes == spec.tunnel->allowed_prefixes));
  if (old.name != spec.name || old.remote_site != spec.remote_site ||
      old.local_underlay != spec.local_underlay || old.remote_underlay != spec.remote_underlay ||
      old.local_overlay != spec.local_overlay || old.remote_overlay != spec.remote_overlay ||
      old.session_id != spec.session_id || !tunnel_shape_same) {
    return failed_precondition("path '" + spec.name +
                               "': only its keys may change while running (its endpoints, "
                               "addresses or interface changed: restart to re-plan)");
  }
  const bool probe_key_changed = old.has_key != spec.has_key || old.probe_key != spec.probe_key;
  const bool tunnel_changed =
      spec.tunnel && (old.tunnel->local_public_key != spec.tunnel->local_public_key ||
                      old.tunnel->remote_public_key != spec.tunnel->remote_public_key ||
                      old.tunnel->remote_next_public_key != spec.tunnel->remote_next_public_key ||
                      old.tunnel->keepalive_s != spec.tunnel->keepalive_s);
  if (!probe_key_changed && !tunnel_changed) return false;
  const PathSpec before = p.spec;
  p.spec = spec;
  if (!running_) return true;
  p.rekey_at_ns = env_.now_ns();
  p.rekey_answered_ns = -1;
  if (tunnel_changed && tunnels()) {
    if (auto s = bring_up_tunnel(p); !s.is_ok()) {
      p.spec = before;
      return Status(s.code(), "path '" + spec.name + "': " + s.message());
    }
  }
  if (probe_key_changed && p.spec.probed) {
    // The probe replaces the key of a path it watches and keeps accepting the previous one for a
    // while: the far end switches at its own time.
    if (auto s = router_.watch_path(config_.probe, probe_desc(p)); !s.is_ok()) {
      return Status(s.code(), "path '" + spec.name + "': new probe key: " + s.message());
    }
  }
  Event e;
  auto* k = e.mutable_path_keys_changed();
  k->set_path(spec.id.value());
  k->set_tunnel(tunnel_changed);
  k->set_probe_key(probe_key_changed);
  emit_event(std::move(e));
  return true;
}

Status SiteRuntime::bring_up_tunnel(const Path& p) {
  const PathSpec::Tunnel& t = *p.spec.tunnel;
  std::vector<patronus_prefix> addrs, allowed;
  for (const auto& [ip, len] : t.interface_addresses) {
    patronus_prefix x{};
    x.addr = model::SocketAddress(ip, 0).to_abi();
    x.length = static_cast<std::uint8_t>(len);
    addrs.push_back(x);
  }
  for (const auto& pf : t.allowed_prefixes) {
    patronus_prefix x{};
    x.addr = model::SocketAddress(pf.network(), 0).to_abi();
    x.length = static_cast<std::uint8_t>(pf.length());
    allowed.push_back(x);
  }
  patronus_path_desc d = describe(p);
  d.interface_name = t.interface_name.c_str();
  d.interface_addresses = addrs.data();
  d.interface_address_count = static_cast<std::uint32_t>(addrs.size());
  d.allowed_prefixes = allowed.data();
  d.allowed_prefix_count = static_cast<std::uint32_t>(allowed.size());
  std::memcpy(d.local_public_key, t.local_public_key.data(), 32);
  std::memcpy(d.remote_public_key, t.remote_public_key.data(), 32);
  d.keepalive_s = t.keepalive_s;
  d.flags = PATRONUS_PATH_PUBLIC_KEYS;
  if (t.remote_next_public_key) {
    std::memcpy(d.remote_next_public_key, t.remote_next_public_key->data(), 32);
    d.flags |= PATRONUS_PATH_REMOTE_NEXT_KEY;
  }
  d.transport_params = t.params_json.empty() ? nullptr : t.params_json.c_str();
  d.transport_params_size = static_cast<std::uint32_t>(t.params_json.size());
  return router_.path_up(transport_of(p), d);
}

const std::string& SiteRuntime::transport_of(const PathSpec& spec) const {
  static const std::string none;
  if (!spec.tunnel) return none;
  auto it = config_.transports.find(spec.tunnel->transport);
  return it != config_.transports.end() ? it->second : config_.transport;
}

const std::string& SiteRuntime::transport_of(const Path& p) const {
  return transport_of(p.spec);
}

void SiteRuntime::stop() {
  if (!running_) return;
  running_ = false;
  if (tick_timer_) env_.cancel(tick_timer_);
  tick_timer_ = 0;
  if (rates_timer_) env_.cancel(rates_timer_);
  rates_timer_ = 0;
  for (auto& p : paths_) {
    if (p->spec.probed && !p->removed)
      (void)router_.unwatch_path(config_.probe, p->spec.id.value());
  }
  for (std::size_t i = 0; i < config_.liveness.size(); ++i) {
    for (auto& p : paths_) {
      if (!p->removed && i < p->gates.size() && p->gates[i].covered) {
        (void)router_.unwatch_path(config_.liveness[i], p->spec.id.value());
      }
    }
  }
  publish_metrics();
}

void SiteRuntime::emit_event(Event e) {
  if (e.instance().empty()) e.set_instance("runtime");
  for (auto* o : observers_) o->on_event(config_.site, e);
}

void SiteRuntime::warn(Event e) {
  const std::string msg = event_type(e) + " " + event_json(e);
  emit_event(std::move(e));
  for (auto* o : observers_) o->on_log(config_.site, "runtime", PATRONUS_LOG_WARN, msg);
}

void SiteRuntime::schedule_tick() {
  tick_timer_ = env_.schedule(config_.tick_ns, [this] {
    tick_timer_ = 0;
    if (!running_) return;
    tick();
    schedule_tick();
  });
  if (tick_timer_ == 0) {
    // Without a tick, hold-downs and expiry stop: say so loudly, and retry from the next sample.
    ++counters_.timers_refused;
    Event e;
    e.mutable_timer_refused()->set_count(counters_.timers_refused);
    warn(std::move(e));
  }
}

std::uint32_t SiteRuntime::now_ms() const {
  return static_cast<std::uint32_t>(env_.now_ns() / 1'000'000);
}

// ---- measurements ------------------------------------------------------------------------------

void SiteRuntime::on_sample(const std::string& instance, const patronus_path_sample& s) {
  for (auto* o : observers_) o->on_sample(config_.site, instance, s);
  if (instance != config_.probe || !running_) return;
  auto it = path_index_.find(s.path_id);
  if (it == path_index_.end()) {
    ++counters_.samples_unknown_path;
    return;
  }
  if (s.flags & PATRONUS_SAMPLE_LATE) {
    ++counters_.samples_late;  // already counted lost; its RTT would bias the window
    return;
  }
  Path& p = *paths_[it->second];
  if (p.removed) return;
  if (s.lost && p.first_answer_sent_ns >= 0 && s.sent_ns < p.first_answer_sent_ns) {
    ++counters_.samples_before_first_answer;
    return;
  }
  if (p.rekey_at_ns >= 0 && s.sent_ns >= p.rekey_at_ns) {
    // A loss is reported when the probe times out, after the answers to later probes: the gap
    // ends at the send time of the first probe answered after the rotation.
    if (!s.lost) {
      if (p.rekey_answered_ns < 0 || s.sent_ns < p.rekey_answered_ns) {
        p.rekey_answered_ns = s.sent_ns;
      }
    } else if (s.sent_ns < p.rekey_at_ns + kRekeyWindowNs &&
               (p.rekey_answered_ns < 0 || s.sent_ns < p.rekey_answered_ns)) {
      ++counters_.samples_during_rekey;
      return;
    }
  }
  if (!s.lost && p.first_answer_sent_ns == -1) {
    if (s.sequence > kAbsentProbes) {
      // The first answer came after several unanswered probes: the peer was not there yet (it
      // had not started or not learned the path), which says nothing of the path's quality.
      p.first_answer_sent_ns = s.sent_ns;
      counters_.samples_before_first_answer += p.window.stats().lost;
      p.window.clear();
    } else {
      p.first_answer_sent_ns = std::numeric_limits<std::int64_t>::min();  // answered from the start
    }
  }
  ++counters_.samples;
  p.window.add(s.sent_ns, s.rtt_ns, s.lost != 0);
  if (!s.lost) p.last_rx_ns = std::max(p.last_rx_ns, s.sent_ns + s.rtt_ns);
  rescore(p);
  evaluate_site(p.site);
  if (tick_timer_ == 0) schedule_tick();
}

void SiteRuntime::on_metric(const std::string& instance, const std::string& name, double value) {
  const auto key = std::make_pair(instance, name);
  auto it = plugin_metrics_.find(key);
  if (it == plugin_metrics_.end()) {
    if (plugin_metrics_.size() >= kMaxPluginMetrics) {
      if (is_pow2(++counters_.plugin_metrics_refused)) {
        Event e;
        auto* f = e.mutable_plugin_metrics_full();
        f->set_instance(instance);
        f->set_name(name);
        f->set_bound(static_cast<std::uint32_t>(kMaxPluginMetrics));
        f->set_count(counters_.plugin_metrics_refused);
        warn(std::move(e));
      }
      return;
    }
    it = plugin_metrics_.emplace(key, PluginMetric{}).first;
  }
  ++counters_.plugin_metrics;
  it->second.value = value;
  it->second.updated_wall_ns = env_.wall_ns();
}

void SiteRuntime::on_liveness(const std::string& instance, const patronus_path_liveness& l) {
  if (!running_) return;
  if (instance != config_.probe) {
    on_gate(instance, l);
    return;
  }
  auto it = path_index_.find(l.path_id);
  if (it == path_index_.end()) {
    ++counters_.samples_unknown_path;
    return;
  }
  Path& p = *paths_[it->second];
  if (p.removed) return;
  const bool up = l.state == PATRONUS_PATH_UP;
  if (l.last_rx_ns > 0) p.last_rx_ns = l.last_rx_ns;
  if (up == p.live) return;
  const bool was_alive = p.alive();
  p.live = up;
  ++counters_.liveness_changes;
  alive_changed(p, was_alive, instance, l);
  rescore(p);
  evaluate_site(p.site);
}

// path.up / path.down: the path's liveness as all its sources see it changed (`by`: the instance
// whose verdict changed it).
void SiteRuntime::alive_changed(const Path& p, bool was_alive, const std::string& by,
                                const patronus_path_liveness& l) {
  if (was_alive == p.alive()) return;
  Event e;
  auto* a = e.mutable_path();
  a->set_path(p.spec.id.value());
  a->set_name(p.spec.name);
  a->set_up(p.alive());
  a->set_by(by);
  a->set_diagnostic(l.diagnostic);
  a->set_detect_time_ns(l.detect_time_ns);
  emit_event(std::move(e));
}

// A verdict of a liveness instance (RuntimeConfig::liveness) on a path it covers.
void SiteRuntime::on_gate(const std::string& instance, const patronus_path_liveness& l) {
  const auto src = std::find(config_.liveness.begin(), config_.liveness.end(), instance);
  if (src == config_.liveness.end()) return;
  const auto i = static_cast<std::size_t>(src - config_.liveness.begin());
  auto it = path_index_.find(l.path_id);
  if (it == path_index_.end()) {
    ++counters_.samples_unknown_path;
    return;
  }
  Path& p = *paths_[it->second];
  if (p.removed || i >= p.gates.size() || !p.gates[i].covered) return;
  auto& g = p.gates[i];
  const bool up = l.state == PATRONUS_PATH_UP;
  g.diagnostic = l.diagnostic;
  g.detect_time_ns = l.detect_time_ns;
  if (up == g.up) return;
  const bool was_alive = p.alive();
  g.up = up;
  ++counters_.liveness_changes;
  {
    Event e;
    auto* v = e.mutable_liveness();
    v->set_path(p.spec.id.value());
    v->set_name(p.spec.name);
    v->set_up(up);
    v->set_instance(instance);
    v->set_diagnostic(l.diagnostic);
    v->set_detect_time_ns(l.detect_time_ns);
    emit_event(std::move(e));
  }
  if (was_alive == p.alive()) return;
  alive_changed(p, was_alive, instance, l);
  rescore(p);
  evaluate_site(p.site);
}

void SiteRuntime::on_tunnel(const std::string& instance, const patronus_tunnel_status& t) {
  if (!running_) return;
  auto it = path_index_.find(t.path_id);
  if (it == path_index_.end()) {
    if (tunnels()) ++counters_.tunnel_reports_unknown_path;
    return;
  }
  Path& p = *paths_[it->second];
  if (p.removed) return;                    // its tunnel was taken down with it
  if (instance != transport_of(p)) return;  // not the instance that builds this path's tunnel
  PathView::TunnelView v;
  v.up = t.state == PATRONUS_TUNNEL_UP;
  v.diagnostic = t.diagnostic;
  v.last_handshake_wall_ns = t.last_handshake_wall_ns;
  v.rx_bytes = t.rx_bytes;
  v.tx_bytes = t.tx_bytes;
  if (auto e = model::SocketAddress::from_abi(t.endpoint); e.is_ok()) v.endpoint = e.value();
  const bool changed = !p.tunnel || p.tunnel->up != v.up;
  const bool was_up = p.up();
  p.tunnel = v;
  if (!changed) return;
  ++counters_.tunnel_changes;
  {
    Event e;
    auto* tu = e.mutable_tunnel();
    tu->set_path(p.spec.id.value());
    tu->set_name(p.spec.name);
    tu->set_up(v.up);
    tu->set_diagnostic(t.diagnostic);
    emit_event(std::move(e));
  }
  if (was_up != p.up()) {
    rescore(p);
    evaluate_site(p.site);
  }
}

void SiteRuntime::on_event(const std::string& instance, const std::string& type,
                           const std::string& json) {
  Event e;
  e.set_instance(instance);
  e.mutable_plugin()->set_type(type);
  e.mutable_plugin()->set_json(json);
  for (auto* o : observers_) o->on_event(config_.site, e);
}

void SiteRuntime::on_log(const std::string& instance, std::uint32_t level, const std::string& msg) {
  for (auto* o : observers_) o->on_log(config_.site, instance, level, msg);
}

// A scorer that fails (throws, answers NaN or out of range) must not take its classes' paths
// away: for scorer_hold_ns after its last good score on the path that score stands, then the
// default scorer's (slot 0, scored first); only the default scorer failing past the hold leaves
// the path unscored. Each step is said once per path and scorer.
void SiteRuntime::score_failed(Path& p, std::size_t slot, const std::string& error) {
  auto& sc = p.scores[slot];
  const std::int64_t now = env_.now_ns();
  const bool first = sc.failing_since_ns == 0;
  if (first) sc.failing_since_ns = now;
  ++counters_.scorer_errors;
  const char* mode = nullptr;
  if (sc.good_at_ns >= 0 && now - sc.good_at_ns <= config_.scorer_hold_ns) {
    sc.valid = true;
    sc.score = sc.good_score;
    sc.state = sc.good_state;
    mode = "last good score";
  } else if (slot != 0 && p.scores[0].valid) {
    sc.valid = true;
    sc.score = p.scores[0].score;
    sc.state = p.scores[0].state;
    mode = "default scorer";
  } else {
    sc.valid = false;
    mode = "none";
  }
  const std::string m = mode;
  if (first || m != sc.said) {
    sc.said = m;
    ++counters_.scorer_fallbacks;
    Event e;
    auto* se = e.mutable_scorer_error();
    se->set_scorer(scorers_[slot].instance);
    se->set_path(p.spec.name);
    se->set_error(error);
    se->set_count(counters_.scorer_errors);
    se->set_standing_in(m == "none" ? "nothing: the path has no score" : m);
    se->set_hold_ms(config_.scorer_hold_ns / 1000000);
    se->set_default_scorer(scorers_[0].instance);
    warn(std::move(e));
  }
}

void SiteRuntime::rescore(Path& p) {
  p.window.expire(env_.now_ns());
  const WindowStats st = p.window.stats();
  for (std::size_t slot = 0; slot < scorers_.size(); ++slot) {
    auto& sc = p.scores[slot];
    if (st.samples < config_.window.min_samples) {
      sc.valid = false;  // not a measurement yet; nothing is invented in its place
      continue;
    }
    if (st.lost == st.samples) {
      // Nothing received in the window: there is no latency to score, and the path is down
      // by measurement. No score is invented.
      sc.valid = true;
      sc.score = 0;
      sc.state = PATRONUS_PATH_DOWN;
      continue;
    }
    patronus_metrics_window w{};
    w.struct_size = sizeof w;
    w.samples = st.samples;
    w.latency_ms = st.latency_ms;
    w.jitter_ms = st.jitter_ms;
    w.loss_pct = st.loss_pct;
    w.path_id = p.spec.id.value();
    w.window_ns = st.span_ns;
    w.lost = st.lost;
    if (p.spec.bandwidth_mbps) {
      w.bandwidth_mbps = *p.spec.bandwidth_mbps;
    } else {
      w.flags |= PATRONUS_WINDOW_BANDWIDTH_UNKNOWN;
    }
    // The class asking: the first class that uses this scorer (found once, at start).
    if (scorers_[slot].first_class >= 0) {
      const auto& cls = config_.classes.classes[scorers_[slot].first_class];
      w.priority = priority_of(cls.priority);
      w.class_name = cls.name.c_str();
    }
    auto r = router_.score(scorers_[slot].instance, w);
    if (!r.is_ok()) {
      score_failed(p, slot, r.status().message());
      continue;
    }
    if (sc.failing_since_ns != 0) {
      Event e;
      auto* r = e.mutable_scorer_recovered();
      r->set_scorer(scorers_[slot].instance);
      r->set_path(p.spec.name);
      r->set_failed_for_ms((env_.now_ns() - sc.failing_since_ns) / 1000000);
      warn(std::move(e));
      sc.failing_since_ns = 0;
      sc.said.clear();
    }
    sc.valid = true;
    sc.score = sc.good_score = r.value().score;
    sc.state = sc.good_state = r.value().state;
    sc.good_at_ns = env_.now_ns();
  }
  refresh_eligibility(p, st);
  model::PathStatus status = model::PathStatus::kDown;
  if (!p.spec.probed) {
    status = p.up() ? model::PathStatus::kUp : model::PathStatus::kDown;
  } else if (p.up() && p.scores[0].valid) {
    status = p.scores[0].state == PATRONUS_PATH_UP         ? model::PathStatus::kUp
             : p.scores[0].state == PATRONUS_PATH_DEGRADED ? model::PathStatus::kDegraded
                                                           : model::PathStatus::kDown;
  }
  // The first report waits for a measurement: a probed path without a valid score yet is not
  // "down", it has not been heard from (the start-up's "is down" before every "is up").
  const bool measured = !p.spec.probed || p.scores[0].valid;
  if (status != p.status || (!p.status_reported && measured)) {
    p.status = status;
    p.status_reported = true;
    notify_state(p);
  }
}

namespace {
// Why a path cannot carry a class ("" when it can).
std::string why_not(const PathView& v, bool valid, double score, const ClassSpec& c) {
  if (!v.live) return "down (no probe reply within the detection time)";
  for (const auto& g : v.liveness) {
    if (!g.up) {
      return "down (" + g.instance + " says so, diagnostic " + std::to_string(g.diagnostic) + ")";
    }
  }
  if (v.tunnel && !v.tunnel->up) {
    return std::string("tunnel down (") + tunnel_diagnostic_text(v.tunnel->diagnostic) + ")";
  }
  if (!v.probed) return v.tunnel ? "" : "tunnel not reported yet";
  if (!valid) return "not measured yet";
  if (score < c.min_score) return "score " + fmt(score) + " < " + fmt(c.min_score);
  if (c.max_loss_pct && loss_lower_bound_pct(v.stats.lost, v.stats.samples) > *c.max_loss_pct) {
    return "loss " + fmt(v.stats.loss_pct, 2) + " % (at least " +
           fmt(loss_lower_bound_pct(v.stats.lost, v.stats.samples), 2) +
           " % at 99.9 % confidence) > " + fmt(*c.max_loss_pct, 2) + " %";
  }
  if (c.max_loss_pct && v.stats.loss_pct > *c.max_loss_pct) {
    return "loss " + fmt(v.stats.loss_pct, 2) + " % > " + fmt(*c.max_loss_pct, 2) +
           " % (a path that broke the bound returns at or below it)";
  }
  if (c.max_latency_ms && v.stats.latency_ms > *c.max_latency_ms) {
    return "latency " + fmt(v.stats.latency_ms) + " ms > " + fmt(*c.max_latency_ms) + " ms";
  }
  if (c.max_jitter_ms && v.stats.jitter_ms > *c.max_jitter_ms) {
    return "jitter " + fmt(v.stats.jitter_ms) + " ms > " + fmt(*c.max_jitter_ms) + " ms";
  }
  return "";
}

// Loss has a band: an eligible path breaks the bound when the 99.9 % lower bound of its loss
// exceeds it; a path that broke it returns when its measured loss is at or below it (so a
// brownout near the bound does not make the path eligible again in the middle of it).
bool eligible_for(bool live, const WindowStats& st, double loss_bound, bool valid, double score,
                  std::uint32_t state, const ClassSpec& c, bool was_eligible) {
  (void)state;  // the scorer's verdict is the path's status; a class judges by its own thresholds
  const double loss = was_eligible ? loss_bound : st.loss_pct;
  return live && valid && score >= c.min_score && (!c.max_loss_pct || loss <= *c.max_loss_pct) &&
         (!c.max_latency_ms || st.latency_ms <= *c.max_latency_ms) &&
         (!c.max_jitter_ms || st.jitter_ms <= *c.max_jitter_ms);
}
}  // namespace

void SiteRuntime::refresh_eligibility(Path& p, const WindowStats& st) {
  const std::int64_t now = env_.now_ns();
  const bool was_confirming = p.confirming;
  // Once started, a confirmation runs until the window holds confirm_samples probes (a verdict
  // that flips with every probe must not toggle the rate), and ends when the path goes down.
  const bool few = st.samples < config_.window.confirm_samples &&
                   (!p.confirming || now - p.confirm_since_ns < config_.window.max_age_ns);
  p.confirming = p.confirming && few && p.up();
  const double loss_bound = loss_lower_bound_pct(st.lost, st.samples);
  for (std::size_t c = 0; c < p.eligible_since.size(); ++c) {
    const auto& sc = p.scores[class_scorer_[c]];
    // Unprobed: no measurement to hold against a class's thresholds; its tunnel decides.
    const bool ok = p.spec.probed
                        ? eligible_for(p.up(), st, loss_bound, sc.valid, sc.score, sc.state,
                                       config_.classes.classes[c], p.eligible_since[c] >= 0)
                        : p.up();
    if (!ok && p.eligible_since[c] >= 0 && p.up() && sc.valid && few) {
      if (!p.confirming) p.confirm_since_ns = now;
      p.confirming = true;  // too few probes to take the class away: measure faster first
    } else if (!ok) {
      p.eligible_since[c] = -1;
    } else if (p.eligible_since[c] < 0) {
      p.eligible_since[c] = now;
    }
  }
  if (p.confirming != was_confirming) request_rate_update();
}

void SiteRuntime::notify_state(Path& p) {
  const PathView v = view(p);
  for (auto* o : observers_) o->on_path_state(config_.site, v);
}

// ---- selection ---------------------------------------------------------------------------------

void SiteRuntime::evaluate_site(std::uint32_t site) {
  const std::size_t nclasses = config_.classes.classes.size();
  for (std::size_t c = 0; c < nclasses; ++c) evaluate(*selections_[site * nclasses + c]);
  for (const std::uint32_t r : relayed_[site]) {
    for (std::size_t c = 0; c < nclasses; ++c) evaluate(*selections_[r * nclasses + c]);
  }
}

void SiteRuntime::evaluate_all() {
  for (auto& s : selections_) evaluate(*s);
}

void SiteRuntime::evaluate(Selection& s) {
  const ClassSpec& cls = config_.classes.classes[s.cls];
  const std::uint32_t slot = class_scorer_[s.cls];
  // Reused between evaluations (one per sample and class): no allocation on the hot path.
  std::vector<CandidateInput>& in = scratch_;
  in.assign(s.cand.size(), CandidateInput{});
  for (std::size_t i = 0; i < s.cand.size(); ++i) {
    const Path& p = *paths_[s.cand[i]];
    const auto& sc = p.scores[slot];
    auto& c = in[i];
    c.path_id = p.spec.id.value();
    c.score = sc.valid ? sc.score : 0;
    c.live = p.up();
    c.usable = p.up() && (sc.valid || !p.spec.probed);
    c.eligible_since = p.eligible_since[s.cls];
    c.eligible = c.eligible_since >= 0;
    c.cost = p.spec.cost_per_gb;
  }
  // Fate sharing: when the current path is down, a candidate that shares one of its endpoints and
  // has not answered since the current path's last reply may be down for the same reason (a failed
  // access link); it is taken only when no other path will do.
  if (s.state.current >= 0 && s.state.current < static_cast<int>(s.cand.size())) {
    const Path& cur = *paths_[s.cand[s.state.current]];
    if (!cur.alive()) {
      for (std::size_t i = 0; i < s.cand.size(); ++i) {
        const Path& p = *paths_[s.cand[i]];
        const bool shares = p.spec.local_endpoint == cur.spec.local_endpoint ||
                            (p.spec.remote_site == cur.spec.remote_site &&
                             p.spec.remote_endpoint == cur.spec.remote_endpoint);
        in[i].suspect = &p != &cur && shares && p.last_rx_ns <= cur.last_rx_ns;
      }
    }
  }
  const int before = s.state.current;
  const SelectionResult r = select_path(cls, in, s.state, env_.now_ns());
  if (r.move == Move::kStay) {
    if (cls.balance) rebalance(s);
    return;
  }
  Reason reason = Reason::kInitial;
  std::int64_t fault_age = -1;
  switch (r.move) {
    case Move::kInitial:
      reason = Reason::kInitial;
      break;
    case Move::kFailover:
    case Move::kNone: {
      const Path& old = *paths_[s.cand[before]];
      reason = r.move == Move::kNone ? Reason::kNoPath
               : old.up()            ? Reason::kThreshold
                                     : Reason::kPathDown;
      if (old.last_rx_ns > 0) fault_age = env_.now_ns() - old.last_rx_ns;
      break;
    }
    case Move::kFailback:
      reason = Reason::kFailback;
      break;
    case Move::kBetter:
      reason = Reason::kBetter;
      break;
    case Move::kStay:
      break;
  }
  // select_path() updated home and settling; apply() moves `current` itself, accounting for the
  // path left and the path taken.
  s.state.current = before;
  apply(s, r.chosen, reason, fault_age, in);
  if (cls.balance) rebalance(s);
}

void SiteRuntime::apply(Selection& s, int chosen, Reason reason, std::int64_t fault_age,
                        const std::vector<CandidateInput>& in) {
  const ClassSpec& cls = config_.classes.classes[s.cls];
  const std::uint16_t from_idx = s.current_path();
  const std::uint16_t to_idx = chosen < 0 ? kNoPath : static_cast<std::uint16_t>(s.cand[chosen]);
  Decision d;
  d.wall_ns = env_.wall_ns();
  d.mono_ns = env_.now_ns();
  d.site = config_.site;
  d.cls = cls.name;
  d.dst_site = sites_[s.site].name;
  if (from_idx != kNoPath) d.from = paths_[from_idx]->spec.id;
  if (to_idx != kNoPath) d.to = paths_[to_idx]->spec.id;
  d.reason = reason;
  d.fault_age_ns = fault_age;
  std::size_t eligible = 0;
  const std::uint32_t slot = class_scorer_[s.cls];
  for (std::size_t i = 0; i < s.cand.size(); ++i) {
    const Path& p = *paths_[s.cand[i]];
    Candidate c;
    c.path = p.spec.id;
    c.score = in[i].score;
    c.eligible = in[i].eligible;
    if (!c.eligible) {
      const auto& sc = p.scores[slot];
      c.why_not = p.removed ? "removed from the plan" : why_not(view(p), sc.valid, sc.score, cls);
    }
    eligible += c.eligible;
    d.candidates.push_back(std::move(c));
  }
  // Why, in words.
  std::string why;
  if (from_idx != kNoPath) {
    const Path& f = *paths_[from_idx];
    const int fi =
        static_cast<int>(std::find(s.cand.begin(), s.cand.end(), from_idx) - s.cand.begin());
    switch (reason) {
      case Reason::kPathDown:
        why = f.removed
                  ? f.spec.name + " was removed from the plan"
                  : f.spec.name + " is down (last reply " + fmt(fault_age / 1e6, 0) + " ms ago)";
        break;
      case Reason::kThreshold:
      case Reason::kNoPath:
        why = f.spec.name + ": " +
              (d.candidates[fi].why_not.empty() ? "not usable" : d.candidates[fi].why_not);
        break;
      case Reason::kFailback:
        why = "failback from " + f.spec.name;
        break;
      case Reason::kBetter:
        why = "settling: better than " + f.spec.name + " (" + fmt(in[fi].score) +
              ") by more than " + fmt(cls.hysteresis) + " points";
        break;
      default:
        break;
    }
  } else {
    why = "no path to " + d.dst_site + " before";
  }
  if (to_idx != kNoPath) {
    const Path& t = *paths_[to_idx];
    const WindowStats st = t.window.stats();
    if (!t.spec.probed) {
      why += "; chose " + t.spec.name +
             ": not probed (the peer is not a Patronus site), its tunnel is up, " +
             std::to_string(eligible) + " of " + std::to_string(s.cand.size()) + " paths eligible";
    } else {
      why += "; chose " + t.spec.name + ": score " + fmt(in[chosen].score) + " (rtt " +
             fmt(st.latency_ms) + " ms, jitter " + fmt(st.jitter_ms) + " ms, loss " +
             fmt(st.loss_pct, 2) + " %), " + std::to_string(eligible) + " of " +
             std::to_string(s.cand.size()) + " paths eligible";
    }
    if (reason == Reason::kFailback) {
      why += ", good for the " + fmt(cls.hold_down_ns / 1e9, 1) + " s hold-down";
    }
  } else {
    why += "; no usable path to " + d.dst_site;
  }
  d.why = std::move(why);

  // Forwarding first, then the flows that follow the class.
  if (auto st = dataplane_.set_class_path(d.dst_site, cls.name, d.to); !st.is_ok()) {
    ++counters_.dataplane_errors;
    Event e;
    e.mutable_dataplane_error()->set_error(st.message());
    warn(std::move(e));
  }
  if (from_idx != kNoPath) --paths_[from_idx]->selections;
  if (to_idx != kNoPath) ++paths_[to_idx]->selections;
  if (!cls.balance) {
    for (std::uint32_t i = 0; i < flows_.size(); ++i) {
      FlowEntry& e = flows_.at(i);
      if (e.cls != s.cls || e.site != s.site || e.path != from_idx) continue;
      e.path = to_idx;
      if (from_idx != kNoPath) --paths_[from_idx]->flows;
      if (to_idx != kNoPath) ++paths_[to_idx]->flows;
      ++d.flows_moved;
    }
  }
  ++counters_.decisions;
  if (reason == Reason::kPathDown || reason == Reason::kThreshold || reason == Reason::kNoPath) {
    ++counters_.failovers;
  }
  if (reason == Reason::kFailback) ++counters_.failbacks;
  decisions_.push_back(d);
  while (decisions_.size() > config_.decision_log) {
    decisions_.pop_front();
    ++counters_.decisions_evicted;
  }
  for (auto* o : observers_) o->on_decision(config_.site, decisions_.back());
  s.state.current = chosen;
  request_rate_update();
}

std::uint16_t SiteRuntime::pick_balanced(const Selection& s, std::uint64_t h) const {
  if (s.balanced.empty()) return s.current_path();
  const std::uint32_t slot = class_scorer_[s.cls];
  double total = 0;
  for (auto i : s.balanced) total += std::max(1.0, paths_[i]->scores[slot].score);
  double x = static_cast<double>(h >> 11) / static_cast<double>(1ULL << 53) * total;
  for (auto i : s.balanced) {
    x -= std::max(1.0, paths_[i]->scores[slot].score);
    if (x < 0) return i;
  }
  return s.balanced.back();
}

void SiteRuntime::rebalance(Selection& s) {
  const ClassSpec& cls = config_.classes.classes[s.cls];
  const std::uint32_t slot = class_scorer_[s.cls];
  const std::int64_t now = env_.now_ns();
  double best = -1;
  for (auto i : s.cand) {
    if (paths_[i]->eligible_since[s.cls] >= 0) best = std::max(best, paths_[i]->scores[slot].score);
  }
  std::vector<std::uint16_t>& set = balance_scratch_;  // reused: this runs on every sample
  set.clear();
  for (auto i : s.cand) {
    const Path& p = *paths_[i];
    const std::int64_t since = p.eligible_since[s.cls];
    if (since < 0) continue;
    const bool member = std::find(s.balanced.begin(), s.balanced.end(), i) != s.balanced.end();
    const bool stable = now - since >= cls.hold_down_ns;
    if (member || (stable && p.scores[slot].score >= best - cls.balance_margin)) {
      set.push_back(static_cast<std::uint16_t>(i));
    }
  }
  const std::uint16_t cur = s.current_path();
  if (cur != kNoPath && std::find(set.begin(), set.end(), cur) == set.end()) set.push_back(cur);
  std::sort(set.begin(), set.end());
  if (set == s.balanced) return;
  const auto old = s.balanced;
  s.balanced = set;
  Decision d;
  d.wall_ns = env_.wall_ns();
  d.mono_ns = now;
  d.site = config_.site;
  d.cls = cls.name;
  d.dst_site = sites_[s.site].name;
  d.reason = Reason::kRebalance;
  if (cur != kNoPath) d.to = paths_[cur]->spec.id;
  std::string names;
  for (auto i : set) names += (names.empty() ? "" : ", ") + paths_[i]->spec.name;
  d.why = "balanced set is now {" + names + "} (eligible paths within " + fmt(cls.balance_margin) +
          " points of the best)";
  for (std::uint32_t i = 0; i < flows_.size(); ++i) {
    FlowEntry& e = flows_.at(i);
    if (e.cls != s.cls) continue;
    if (e.site != s.site) continue;
    if (e.path != kNoPath && std::find(set.begin(), set.end(), e.path) != set.end()) continue;
    const FlowKeyBytes k = e.key();
    const std::uint16_t np = pick_balanced(s, flows_.hash(k));
    if (np == e.path) continue;
    if (e.path != kNoPath) --paths_[e.path]->flows;
    if (np != kNoPath) ++paths_[np]->flows;
    e.path = np;
    ++d.flows_moved;
    if (auto st = dataplane_.set_flow_path(k.to_flow_key(),
                                           np == kNoPath ? model::PathId{} : paths_[np]->spec.id);
        !st.is_ok()) {
      ++counters_.dataplane_errors;
    }
  }
  if (old.empty() && d.flows_moved == 0) {
    request_rate_update();
    return;  // the first set of a class with no flows yet is not a decision worth a record
  }
  ++counters_.decisions;
  decisions_.push_back(d);
  while (decisions_.size() > config_.decision_log) {
    decisions_.pop_front();
    ++counters_.decisions_evicted;
  }
  for (auto* o : observers_) o->on_decision(config_.site, decisions_.back());
  request_rate_update();
}

// Decisions and verdicts are made inside the probe plugin's own reports (a sample, a liveness
// change): the rate changes they call for are applied after the report returns, so the host never
// calls into a plugin from inside that plugin's callback. Zero delay: same simulated instant.
void SiteRuntime::request_rate_update() {
  if (!running_ || rates_timer_ != 0) return;
  rates_timer_ = env_.schedule(0, [this] {
    rates_timer_ = 0;
    update_rates();
  });
  // Refused (the timer bound): the next tick applies them.
}

void SiteRuntime::update_rates() {
  if (!running_) return;
  const std::int64_t now = env_.now_ns();
  std::vector<bool> active(paths_.size(), false);
  for (const auto& s : selections_) {
    if (now - s->last_traffic_ns > config_.idle_after_ns) continue;
    if (s->state.current >= 0) active[s->cand[s->state.current]] = true;
    for (auto i : s->balanced) active[i] = true;
  }
  for (std::size_t i = 0; i < paths_.size(); ++i) {
    Path& p = *paths_[i];
    // Fast while it carries traffic, while its window is too small to be a measurement
    // (warm-up), so a new path is judged within min_samples active intervals, and while a class
    // verdict against it waits for confirm_samples probes.
    const bool warm_up = p.window.size() < config_.window.min_samples;
    const std::uint32_t want = active[i] || warm_up || p.confirming ? PATRONUS_PROBE_RATE_ACTIVE
                                                                    : PATRONUS_PROBE_RATE_IDLE;
    if (want == p.rate || !p.spec.probed || p.removed) continue;
    auto st = router_.set_path_rate(config_.probe, p.spec.id.value(), want);
    p.rate = want;  // an ABI 1.0 probe keeps its own rate; do not ask again every tick
    if (!st.is_ok() && is_pow2(++counters_.rate_errors)) {
      Event e;
      e.mutable_rate_error()->set_count(counters_.rate_errors);
      e.mutable_rate_error()->set_error(st.message());
      warn(std::move(e));
    }
  }
}

// ---- flows -------------------------------------------------------------------------------------

int SiteRuntime::class_index(const model::FlowKey& key, std::uint8_t dscp) const {
  return classify_index(config_.classes, key, dscp);
}

const std::string& SiteRuntime::classify(const model::FlowKey& key, std::uint8_t dscp) const {
  return config_.classes.classes[class_index(key, dscp)].name;
}

int SiteRuntime::site_of(const model::IpAddress& dst) const {
  for (const auto& [prefix, site] : prefixes_) {
    if (prefix.contains(dst)) return static_cast<int>(site);
  }
  return -1;
}

bool SiteRuntime::count_cached(FlowEntry& e, std::uint32_t bytes, std::int64_t now,
                               model::PathId* out) {
  if (e.path == kNoPath) return false;  // not steered yet: the caller treats it as new
  e.bytes += bytes;
  if (e.packets != UINT32_MAX) ++e.packets;
  e.last_seen = static_cast<std::uint32_t>(now / 1'000'000);
  Selection& s = *selections_[e.site * config_.classes.classes.size() + e.cls];
  const bool was_idle = now - s.last_traffic_ns > config_.idle_after_ns;
  s.last_traffic_ns = now;
  if (was_idle) update_rates();
  *out = paths_[e.path]->spec.id;
  return true;
}

void SiteRuntime::on_packets(const Packet* packets, std::size_t n, model::PathId* out) {
  if (!running_) {
    std::fill(out, out + n, model::PathId{});
    return;
  }
  const std::int64_t now = env_.now_ns();
  FlowKeyBytes keys[FlowTable::kBatch];
  FlowEntry* found[FlowTable::kBatch];
  bool done[FlowTable::kBatch];
  for (std::size_t base = 0; base < n; base += FlowTable::kBatch) {
    const std::size_t m = std::min(n - base, FlowTable::kBatch);
    for (std::size_t i = 0; i < m; ++i) keys[i] = FlowKeyBytes::of(packets[base + i].key);
    flows_.find_batch(keys, m, found);
    // Tracked flows first: nothing is inserted, so the entries found stay where they are.
    for (std::size_t i = 0; i < m; ++i) {
      done[i] = found[i] != nullptr &&
                count_cached(*found[i], packets[base + i].bytes, now, &out[base + i]);
      if (done[i]) ++counters_.packets;
    }
    // New flows (and tracked ones without a path) take the single-packet path.
    for (std::size_t i = 0; i < m; ++i) {
      if (done[i]) continue;
      const Packet& p = packets[base + i];
      out[base + i] = on_packet(p.key, p.dscp, p.bytes);
    }
  }
}

model::PathId SiteRuntime::on_packet(const model::FlowKey& key, std::uint8_t dscp,
                                     std::uint32_t bytes) {
  if (!running_) return {};
  ++counters_.packets;
  const std::int64_t now = env_.now_ns();
  const FlowKeyBytes kb = FlowKeyBytes::of(key);
  const std::uint64_t h = flows_.hash(kb);
  const std::size_t nclasses = config_.classes.classes.size();
  if (FlowEntry* e = flows_.find(kb, h)) {
    model::PathId out;
    if (count_cached(*e, bytes, now, &out)) return out;
  }
  const int site = site_of(key.dst);
  if (site < 0) {
    ++counters_.flows_unrouted;
    return {};
  }
  const int cls = class_index(key, dscp > 63 ? 0 : dscp);
  Selection& s = *selections_[static_cast<std::size_t>(site) * nclasses + cls];
  const bool was_idle = now - s.last_traffic_ns > config_.idle_after_ns;
  s.last_traffic_ns = now;
  const bool balanced = config_.classes.classes[cls].balance;
  const std::uint16_t path = balanced ? pick_balanced(s, h) : s.current_path();
  bool inserted = false;
  FlowEntry* e = flows_.insert(kb, &inserted);
  if (e == nullptr) {
    if (is_pow2(++counters_.flows_refused)) {
      Event e;
      e.mutable_flow_table_full()->set_count(counters_.flows_refused);
      e.mutable_flow_table_full()->set_max_flows(static_cast<std::uint32_t>(flows_.capacity()));
      warn(std::move(e));
    }
  } else {
    if (inserted) {
      ++counters_.flows_created;
      e->cls = static_cast<std::uint8_t>(cls);
      e->site = static_cast<std::uint16_t>(site);
      e->packets = 1;
      e->bytes = bytes;
    } else {  // tracked, but it had no path until now
      e->bytes += bytes;
      if (e->packets != UINT32_MAX) ++e->packets;
    }
    e->last_seen = now_ms();
    if (e->path != path) {
      if (e->path != kNoPath) --paths_[e->path]->flows;
      e->path = path;
      if (path != kNoPath) ++paths_[path]->flows;
      if (balanced && path != kNoPath) {
        if (!dataplane_.set_flow_path(key, paths_[path]->spec.id).is_ok()) {
          ++counters_.dataplane_errors;
        }
      }
    }
  }
  if (was_idle) update_rates();
  return path == kNoPath ? model::PathId{} : paths_[path]->spec.id;
}

void SiteRuntime::expire_flows() {
  const std::uint32_t now = now_ms();
  const auto idle_ms = static_cast<std::uint32_t>(
      std::min<std::int64_t>(config_.flow_idle_ns / 1'000'000, UINT32_MAX / 2));
  for (std::uint32_t i = flows_.size(); i-- > 0;) {
    const FlowEntry& e = flows_.at(i);
    if (now - e.last_seen <= idle_ms) continue;
    forget_flow(i);
    ++counters_.flows_expired;
  }
}

// ---- the tick ----------------------------------------------------------------------------------

void SiteRuntime::tick() {
  const std::int64_t now = env_.now_ns();
  for (auto& p : paths_) {
    const auto before = p->window.size();
    p->window.expire(now);
    if (p->window.size() != before) rescore(*p);
  }
  evaluate_all();
  update_rates();
  expire_flows();
  if (now >= next_metrics_ns_) {
    publish_metrics();
    next_metrics_ns_ = now + config_.metrics_interval_ns;
  }
}

void SiteRuntime::publish_metrics() {
  if (observers_.empty()) return;
  for (const auto& p : paths_) {
    if (p->removed) continue;
    const PathView v = view(*p);
    for (auto* o : observers_) o->on_path_metrics(config_.site, v);
  }
}

PathView SiteRuntime::view(const Path& p) const {
  PathView v;
  v.id = p.spec.id;
  v.name = p.spec.name;
  v.remote_site = p.spec.remote_site;
  v.status = p.status;
  v.live = p.live;
  v.probed = p.spec.probed;
  for (std::size_t i = 0; i < p.gates.size() && i < config_.liveness.size(); ++i) {
    if (!p.gates[i].covered) continue;
    v.liveness.push_back(
        {config_.liveness[i], p.gates[i].up, p.gates[i].diagnostic, p.gates[i].detect_time_ns});
  }
  if (!p.scores.empty()) {
    v.scored = p.scores[0].valid;
    v.score = p.scores[0].score;
  }
  v.stats = p.window.stats();
  v.rate = p.rate;
  v.selections = p.selections;
  v.flows = p.flows;
  v.tunnel = p.tunnel;
  return v;
}

std::vector<PathView> SiteRuntime::paths() const {
  std::vector<PathView> out;
  for (const auto& p : paths_) {
    if (!p->removed) out.push_back(view(*p));
  }
  return out;
}

std::optional<PathView> SiteRuntime::path(model::PathId id) const {
  auto it = path_index_.find(id.value());
  if (it == path_index_.end() || paths_[it->second]->removed) return std::nullopt;
  return view(*paths_[it->second]);
}

const PathSpec* SiteRuntime::spec(model::PathId id) const {
  auto it = path_index_.find(id.value());
  return it == path_index_.end() || paths_[it->second]->removed ? nullptr
                                                                : &paths_[it->second]->spec;
}

std::vector<std::string> SiteRuntime::remote_site_names() const {
  std::vector<std::string> out;
  out.reserve(sites_.size());
  for (std::size_t i = 0; i < sites_.size(); ++i) {
    if (!site_removed_[i]) out.push_back(sites_[i].name);
  }
  return out;
}

model::PathId SiteRuntime::class_path(const std::string& dst_site, const std::string& cls) const {
  const std::size_t nclasses = config_.classes.classes.size();
  for (std::size_t s = 0; s < sites_.size(); ++s) {
    if (sites_[s].name != dst_site || site_removed_[s]) continue;
    for (std::size_t c = 0; c < nclasses; ++c) {
      if (config_.classes.classes[c].name != cls) continue;
      if (selections_.empty()) return {};
      const auto idx = selections_[s * nclasses + c]->current_path();
      return idx == kNoPath ? model::PathId{} : paths_[idx]->spec.id;
    }
  }
  return {};
}

}  // namespace patronus::steering
