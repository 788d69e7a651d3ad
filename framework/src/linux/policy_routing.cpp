#include "policy_routing.hpp"

#include <linux/rtnetlink.h>

#include <algorithm>

namespace patronus::linuxnet {

namespace {

std::vector<std::optional<model::IpPrefix>> or_any(const std::vector<model::IpPrefix>& v) {
  if (v.empty()) return {std::nullopt};
  return {v.begin(), v.end()};
}

// The kernel's identity of a route: table, destination and metric.
bool same_key(const Route& a, const Route& b) {
  return a.table == b.table && a.dst == b.dst && a.metric == b.metric;
}

}  // namespace

Result<std::vector<Rule>> class_rules(const steering::ClassSet& set, const PolicyLayout& layout,
                                      bool dscp_in_rules) {
  if (set.classes.empty()) return invalid_argument("classes: none given");
  std::vector<Rule> out;
  auto table_of = [&](const std::string& cls) -> std::optional<std::uint32_t> {
    for (std::size_t i = 0; i < set.classes.size(); ++i) {
      if (set.classes[i].name == cls) return layout.table_base + static_cast<std::uint32_t>(i);
    }
    return std::nullopt;
  };
  auto push = [&](Rule r) -> Status {
    if (out.size() >= layout.max_rules) {
      return resource_exhausted("the class rules need more than " +
                                std::to_string(layout.max_rules) + " kernel rules");
    }
    r.priority = layout.rule_priority + static_cast<std::uint32_t>(out.size());
    out.push_back(std::move(r));
    return Status::ok();
  };
  for (std::size_t i = 0; i < set.rules.size(); ++i) {
    const steering::ClassRule& cr = set.rules[i];
    const std::string where = "rules[" + std::to_string(i) + "]";
    const auto table = table_of(cr.class_name);
    if (!table) return invalid_argument(where + ": unknown class '" + cr.class_name + "'");
    if (cr.dscp && !dscp_in_rules) {
      return failed_precondition(where + ": matches DSCP " + std::to_string(*cr.dscp) +
                                 ", which this kernel's policy rules cannot (FRA_DSCP needs "
                                 "Linux 6.13); classify by marks instead");
    }
    for (const auto& dst : or_any(cr.dst_prefixes)) {
      for (const auto& src : or_any(cr.src_prefixes)) {
        if (dst && src && dst->is_v4() != src->is_v4()) continue;  // no packet has both
        for (const bool v6 : {false, true}) {
          if ((dst && dst->is_v4() == v6) || (src && src->is_v4() == v6)) continue;
          Rule r;
          r.ipv6 = v6;
          r.table = *table;
          r.dst = dst;
          r.src = src;
          r.ip_proto = cr.protocol;
          if (cr.dst_ports) r.dport = std::make_pair(cr.dst_ports->first, cr.dst_ports->last);
          if (cr.src_ports) r.sport = std::make_pair(cr.src_ports->first, cr.src_ports->last);
          r.dscp = cr.dscp;
          if (auto st = push(r); !st.is_ok()) return st;
        }
      }
    }
  }
  const auto def = table_of(set.default_class.empty() ? set.classes.at(0).name : set.default_class);
  if (!def) return invalid_argument("default_class: unknown class '" + set.default_class + "'");
  for (const bool v6 : {false, true}) {
    Rule r;
    r.ipv6 = v6;
    r.table = *def;
    if (auto st = push(r); !st.is_ok()) return st;
  }
  return out;
}

Route class_route(std::uint32_t table, const model::IpPrefix& prefix, const Nexthop& via) {
  Route r;
  r.table = table;
  r.dst = prefix;
  r.metric = kClassRouteMetric;  // explicit: the kernel gives IPv6 routes 1024 when none is set
  if (via.oif == 0) {
    r.type = RTN_UNREACHABLE;
    return r;
  }
  r.oif = via.oif;
  r.gateway = via.gateway;
  return r;
}

std::vector<std::vector<std::uint8_t>> route_changes(const std::vector<Route>& current,
                                                     const std::vector<Route>& desired) {
  std::vector<std::vector<std::uint8_t>> out;
  for (const auto& d : desired) {
    const auto it = std::find_if(current.begin(), current.end(),
                                 [&](const Route& c) { return same_key(c, d); });
    if (it == current.end() || !(*it == d)) out.push_back(encode_route(Op::kReplace, d, 0));
  }
  for (const auto& c : current) {
    const bool wanted =
        std::any_of(desired.begin(), desired.end(), [&](const Route& d) { return same_key(c, d); });
    if (!wanted) out.push_back(encode_route(Op::kDelete, c, 0));
  }
  return out;
}

std::vector<std::vector<std::uint8_t>> rule_changes(const std::vector<Rule>& current,
                                                    const std::vector<Rule>& desired) {
  std::vector<std::vector<std::uint8_t>> out;
  // Deletions first: a changed rule keeps its priority, and the new one must not sit beside it.
  for (const auto& c : current) {
    if (std::find(desired.begin(), desired.end(), c) == desired.end()) {
      out.push_back(encode_rule(Op::kDelete, c, 0));
    }
  }
  for (const auto& d : desired) {
    if (std::find(current.begin(), current.end(), d) == current.end()) {
      out.push_back(encode_rule(Op::kAdd, d, 0));
    }
  }
  return out;
}

Result<std::vector<Route>> PolicyRouting::our_routes(std::uint32_t table) {
  std::vector<Route> out;
  for (const bool v6 : {false, true}) {
    auto r = rtnl_.routes(v6, table);
    if (!r.is_ok()) return r.status();
    for (const auto& x : r.value()) {
      if (x.protocol == kRtprotPatronus) out.push_back(x);
    }
  }
  return out;
}

Result<std::vector<Rule>> PolicyRouting::our_rules() {
  std::vector<Rule> out;
  for (const bool v6 : {false, true}) {
    auto r = rtnl_.rules(v6);
    if (!r.is_ok()) return r.status();
    for (const auto& x : r.value()) {
      if (x.protocol == kRtprotPatronus) out.push_back(x);
    }
  }
  return out;
}

Status PolicyRouting::apply_rules(const std::vector<Rule>& desired) {
  auto current = our_rules();
  if (!current.is_ok()) return current.status();
  return rtnl_.batch(rule_changes(current.value(), desired));
}

Status PolicyRouting::apply_table(std::uint32_t table, const std::vector<Route>& desired) {
  for (const auto& d : desired) {
    if (d.table != table) {
      return invalid_argument("a route for table " + std::to_string(d.table) + " given for table " +
                              std::to_string(table));
    }
  }
  auto current = our_routes(table);
  if (!current.is_ok()) return current.status();
  return rtnl_.batch(route_changes(current.value(), desired));
}

Status PolicyRouting::remove_all() {
  auto rules = our_rules();
  if (!rules.is_ok()) return rules.status();
  auto routes = our_routes(0);
  if (!routes.is_ok()) return routes.status();
  auto changes = rule_changes(rules.value(), {});
  auto route_dels = route_changes(routes.value(), {});
  changes.insert(changes.end(), route_dels.begin(), route_dels.end());
  return rtnl_.batch(changes);
}

}  // namespace patronus::linuxnet
