#include "linux_dataplane.hpp"

#include <algorithm>

namespace patronus::linuxnet {

namespace {

// A class's position in its set (its table is table_base + it), or -1.
std::ptrdiff_t index_of(const steering::ClassSet& set, const std::string& name) {
  for (std::size_t i = 0; i < set.classes.size(); ++i) {
    if (set.classes[i].name == name) return static_cast<std::ptrdiff_t>(i);
  }
  return -1;
}

}  // namespace

bool kernel_matches_dscp(Rtnl& rtnl) {
  // The last priority but one below "main" (32766), a table nothing uses: harmless for the
  // instant it exists.
  Rule probe;
  probe.priority = 32765;
  probe.table = 0x7fff'fffe;
  probe.dscp = 46;
  if (!rtnl.rule(Op::kAdd, probe).is_ok()) return false;
  (void)rtnl.rule(Op::kDelete, probe);
  return true;
}

Result<std::unique_ptr<LinuxDataplane>> LinuxDataplane::start(Rtnl rtnl,
                                                              LinuxDataplaneConfig config) {
  if (!config.resolve) return invalid_argument("linux dataplane: no path resolver");
  const bool dscp = kernel_matches_dscp(rtnl);
  auto rules = class_rules(config.classes, config.layout, dscp);
  if (!rules.is_ok()) return rules.status();
  PolicyRouting pr(std::move(rtnl));
  std::unique_ptr<LinuxDataplane> dp(new LinuxDataplane(std::move(pr), std::move(config)));
  dp->dscp_ = dscp;
  dp->via_.resize(dp->config_.classes.classes.size());
  dp->adopted_.resize(dp->via_.size());
  if (dp->config_.adopt) {
    for (std::size_t c = 0; c < dp->via_.size(); ++c) {
      const std::uint32_t table = dp->config_.layout.table_base + static_cast<std::uint32_t>(c);
      auto routes = dp->routing_.our_routes(table);
      if (!routes.is_ok()) return routes.status();
      for (const auto& [site, prefixes] : dp->config_.site_prefixes) {
        // Adopted only when every prefix of the site leaves by one device and next hop.
        std::optional<Nexthop> via;
        bool whole = !prefixes.empty();
        for (const auto& p : prefixes) {
          const auto r = std::find_if(routes.value().begin(), routes.value().end(),
                                      [&](const Route& x) { return x.dst == p && x.oif != 0; });
          if (r == routes.value().end()) {
            whole = false;
            break;
          }
          const Nexthop here{r->oif, r->gateway};
          if (via && !(*via == here)) {
            whole = false;
            break;
          }
          via = here;
        }
        if (!whole) continue;
        dp->via_[c][site] = *via;
        dp->adopted_[c].insert(site);
      }
    }
  }
  // Tables first (all unreachable), then the rules that lead to them: no packet meets a rule
  // whose table is not ready.
  for (std::size_t c = 0; c < dp->via_.size(); ++c) {
    if (auto st = dp->apply(c); !st.is_ok()) return st;
  }
  if (auto st = dp->routing_.apply_rules(rules.value()); !st.is_ok()) return st;
  return dp;
}

std::uint32_t LinuxDataplane::table_of(const std::string& cls) const {
  const auto i = index_of(config_.classes, cls);
  return i < 0 ? 0 : config_.layout.table_base + static_cast<std::uint32_t>(i);
}

Status LinuxDataplane::apply(std::size_t cls) {
  const std::uint32_t table = config_.layout.table_base + static_cast<std::uint32_t>(cls);
  std::vector<Route> desired;
  for (const auto& [site, prefixes] : config_.site_prefixes) {
    const auto it = via_[cls].find(site);
    const Nexthop via = it == via_[cls].end() ? Nexthop{} : it->second;
    for (const auto& p : prefixes) desired.push_back(class_route(table, p, via));
  }
  return routing_.apply_table(table, desired);
}

Status LinuxDataplane::set_class_path(const std::string& site, const std::string& cls,
                                      model::PathId path) {
  const std::uint32_t table = table_of(cls);
  if (table == 0) return invalid_argument("linux dataplane: unknown class '" + cls + "'");
  if (config_.site_prefixes.count(site) == 0) {
    return invalid_argument("linux dataplane: no prefixes for site '" + site + "'");
  }
  const std::size_t c = table - config_.layout.table_base;
  Nexthop via;  // an invalid path: unreachable
  if (path.valid()) {
    auto r = config_.resolve(path);
    if (!r.is_ok()) {
      // The path cannot be carried: do not leave the class on a stale route either.
      adopted_[c].erase(site);
      via_[c].erase(site);
      const Status st = apply(c);
      return st.is_ok() ? r.status() : st;
    }
    via = r.value();
  }
  adopted_[c].erase(site);  // decided: the previous run's route is no longer kept
  if (via.oif == 0) {
    via_[c].erase(site);
  } else {
    via_[c][site] = via;
  }
  return apply(c);
}

Status LinuxDataplane::add_site(const std::string& site,
                                const std::vector<model::IpPrefix>& prefixes) {
  if (config_.site_prefixes.count(site) != 0) {
    return invalid_argument("linux dataplane: site '" + site + "' is known already");
  }
  config_.site_prefixes[site] = prefixes;
  for (std::size_t c = 0; c < via_.size(); ++c) {
    if (auto st = apply(c); !st.is_ok()) {
      config_.site_prefixes.erase(site);
      for (std::size_t k = 0; k <= c; ++k) (void)apply(k);
      return st;
    }
  }
  return Status::ok();
}

Status LinuxDataplane::set_classes(const steering::ClassSet& next) {
  auto rules = class_rules(next, config_.layout, dscp_);
  if (!rules.is_ok()) return rules.status();
  const steering::ClassSet was = config_.classes;
  const auto was_via = via_;
  const auto was_adopted = adopted_;
  const std::size_t old_tables = via_.size();
  const auto def =
      index_of(was, was.default_class.empty() ? was.classes.at(0).name : was.default_class);
  std::vector<std::map<std::string, Nexthop>> via(next.classes.size());
  std::vector<std::set<std::string>> adopted(next.classes.size());
  for (std::size_t c = 0; c < next.classes.size(); ++c) {
    auto o = index_of(was, next.classes[c].name);
    if (o < 0) o = def;  // new: where its packets went before, until decided
    if (o < 0) continue;
    via[c] = was_via[static_cast<std::size_t>(o)];
    adopted[c] = was_adopted[static_cast<std::size_t>(o)];
  }
  config_.classes = next;
  via_ = std::move(via);
  adopted_ = std::move(adopted);
  if (auto st = install(next, rules.value(), old_tables); !st.is_ok()) {
    config_.classes = was;
    via_ = was_via;
    adopted_ = was_adopted;
    auto back = class_rules(was, config_.layout, dscp_);
    if (back.is_ok()) (void)install(was, back.value(), next.classes.size());
    return st;
  }
  return Status::ok();
}

// Tables of `set` (via_), then its rules, then the tables beyond it emptied.
Status LinuxDataplane::install(const steering::ClassSet& set, const std::vector<Rule>& rules,
                               std::size_t old_tables) {
  for (std::size_t c = 0; c < set.classes.size(); ++c) {
    if (auto st = apply(c); !st.is_ok()) return st;
  }
  if (auto st = routing_.apply_rules(rules); !st.is_ok()) return st;
  for (std::size_t c = set.classes.size(); c < old_tables; ++c) {
    const std::uint32_t table = config_.layout.table_base + static_cast<std::uint32_t>(c);
    if (auto st = routing_.apply_table(table, {}); !st.is_ok()) return st;
  }
  return Status::ok();
}

Status LinuxDataplane::remove_site(const std::string& site) {
  const auto it = config_.site_prefixes.find(site);
  if (it == config_.site_prefixes.end()) return Status::ok();
  const auto prefixes = it->second;
  config_.site_prefixes.erase(it);
  const auto was_via = via_;
  const auto was_adopted = adopted_;
  for (std::size_t c = 0; c < via_.size(); ++c) {
    via_[c].erase(site);
    adopted_[c].erase(site);
    if (auto st = apply(c); !st.is_ok()) {
      config_.site_prefixes[site] = prefixes;  // the tables written so far are put back
      via_ = was_via;
      adopted_ = was_adopted;
      for (std::size_t k = 0; k <= c; ++k) (void)apply(k);
      return st;
    }
  }
  return Status::ok();
}

Status LinuxDataplane::set_flow_path(const model::FlowKey&, model::PathId) {
  return failed_precondition(
      "linux dataplane: per-flow paths need packet marks set at LAN ingress (not built); the "
      "flow follows its class's path");
}

Status LinuxDataplane::settle() {
  Status first = Status::ok();
  for (std::size_t c = 0; c < adopted_.size(); ++c) {
    if (adopted_[c].empty()) continue;
    for (const auto& site : adopted_[c]) via_[c].erase(site);
    adopted_[c].clear();
    if (auto st = apply(c); !st.is_ok() && first.is_ok()) first = st;
  }
  return first;
}

std::size_t LinuxDataplane::adopted() const {
  std::size_t n = 0;
  for (const auto& a : adopted_) n += a.size();
  return n;
}

LinuxDataplane::~LinuxDataplane() {
  if (!stopped_) (void)stop();
}

Status LinuxDataplane::stop() {
  stopped_ = true;
  return routing_.remove_all();
}

}  // namespace patronus::linuxnet
