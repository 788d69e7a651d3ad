// Linux policy routing for traffic classes: one routing table per class and, in the order of
// the class rules, one kernel rule per (rule, prefix) that sends matching packets to its class's
// table. A class table holds a route for each remote site's prefixes through the path the class
// uses to that site (or an unreachable route when it has none: private traffic must not fall
// through to the underlay's default route). Packets to anything else find no route in a class
// table and go on to the main table.
//
// State is applied as a difference against what the kernel holds (dumped, ours only: protocol
// kRtprotPatronus), in one batch per change, so a restart reconciles instead of duplicating, and
// a failover is one batch of replaced routes in one table.
#pragma once

#include <map>
#include <optional>
#include <vector>

#include "patronus/steering/classes.hpp"
#include "rtnl.hpp"

namespace patronus::linuxnet {

struct PolicyLayout {
  std::uint32_t table_base = 20000;     // class i uses table table_base + i
  std::uint32_t rule_priority = 20000;  // the first class rule; the rest follow in order
  std::uint32_t max_rules = 10000;      // the block of priorities is bounded
};

// Kernel rules for a class set, in order (the default class last, unconditionally). A class rule
// with prefixes becomes one kernel rule per (destination, source) pair of one family; one
// without prefixes becomes one per family. `dscp_in_rules`: the kernel matches FRA_DSCP (6.13+);
// without it a rule naming a DSCP is refused with its index.
Result<std::vector<Rule>> class_rules(const steering::ClassSet& set, const PolicyLayout& layout,
                                      bool dscp_in_rules);

struct Nexthop {
  std::uint32_t oif = 0;  // 0: unreachable
  std::optional<model::IpAddress> gateway;
  friend bool operator==(const Nexthop& a, const Nexthop& b) {
    return a.oif == b.oif && a.gateway == b.gateway;
  }
};

// The requests that turn `current` into `desired` (routes of one table, or rules): new and
// changed entries replaced, stale ones deleted, equal ones left alone.
std::vector<std::vector<std::uint8_t>> route_changes(const std::vector<Route>& current,
                                                     const std::vector<Route>& desired);
std::vector<std::vector<std::uint8_t>> rule_changes(const std::vector<Rule>& current,
                                                    const std::vector<Rule>& desired);

inline constexpr std::uint32_t kClassRouteMetric = 1024;

// The route of one prefix in a class table.
Route class_route(std::uint32_t table, const model::IpPrefix& prefix, const Nexthop& via);

class PolicyRouting {
 public:
  explicit PolicyRouting(Rtnl rtnl) : rtnl_(std::move(rtnl)) {}
  // Makes the kernel's rules of ours (both families) exactly `desired`.
  Status apply_rules(const std::vector<Rule>& desired);
  // Makes the routes of ours in `table` (both families) exactly `desired`.
  Status apply_table(std::uint32_t table, const std::vector<Route>& desired);
  // Removes every rule and route of ours (a clean stop).
  Status remove_all();
  Rtnl& rtnl() { return rtnl_; }
  // The routes of ours in `table` (both families), as the kernel holds them.
  Result<std::vector<Route>> our_routes(std::uint32_t table);

 private:
  Result<std::vector<Rule>> our_rules();
  Rtnl rtnl_;
};

}  // namespace patronus::linuxnet
