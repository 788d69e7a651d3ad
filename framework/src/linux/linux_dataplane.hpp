// The Linux Dataplane: the site runtime's decisions as kernel policy routing (policy_routing.hpp).
// At start the class rules go in and every class table sends every remote site's prefixes to
// "unreachable" (nothing leaks to the underlay before a path is chosen); each decision then
// replaces the routes of one site in one class table, in one batch. Stop removes everything.
//
// Which device (and next hop) carries a path is the transport's knowledge; it is given as a
// resolver. Per-flow pinning of balanced classes needs packet marks (a tc program at LAN
// ingress) and is refused here, counted by the runtime as a dataplane error.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "patronus/steering/dataplane.hpp"
#include "policy_routing.hpp"

namespace patronus::linuxnet {

struct LinuxDataplaneConfig {
  steering::ClassSet classes;
  PolicyLayout layout;
  std::map<std::string, std::vector<model::IpPrefix>> site_prefixes;  // remote site -> prefixes
  // The device and next hop of a path; an error when the path is unknown or its tunnel is down.
  std::function<Result<Nexthop>(model::PathId)> resolve;
  // A restart after a crash (SIGKILL, OOM) is hitless: where a previous instance left a class's
  // routes to a site through a device, they stay until a decision replaces them or settle()
  // drops them, instead of becoming unreachable while the new runtime measures its paths.
  bool adopt = false;
};

class LinuxDataplane final : public steering::Dataplane {
 public:
  // Probes whether the kernel matches DSCP in rules, installs the rules and the unreachable
  // tables. Refuses class rules the kernel cannot express, naming the rule.
  static Result<std::unique_ptr<LinuxDataplane>> start(Rtnl rtnl, LinuxDataplaneConfig config);
  // Removes every rule and route of ours unless stop() did: a host that fails after the
  // dataplane started (and returns, or throws) must not leave the remote sites unreachable.
  ~LinuxDataplane() override;

  Status set_class_path(const std::string& site, const std::string& cls,
                        model::PathId path) override;
  Status set_flow_path(const model::FlowKey& flow, model::PathId path) override;
  // Every class table gets the site's prefixes as unreachable routes.
  Status add_site(const std::string& site, const std::vector<model::IpPrefix>& prefixes) override;
  // Every class table drops the site's routes.
  Status remove_site(const std::string& site) override;
  // New class rules and tables: a class kept by name keeps its routes (moved to its new table
  // when its position changed), a new class starts on the routes of the previous default class
  // until the runtime decides (in the same call). Tables are written before the rules that lead
  // to them, stale tables go last. On error the previous set is put back.
  Status set_classes(const steering::ClassSet& next) override;
  // Removes every rule and route of ours.
  Status stop() override;
  // Adopted routes no decision replaced become unreachable (the start's grace is over).
  Status settle() override;
  // Leaves every rule and route as they are, as a process that is killed does (tests; a host
  // that hands the kernel state to its successor).
  void forget() { stopped_ = true; }
  // (class, site) entries adopted at start and not yet replaced or settled.
  std::size_t adopted() const;

  std::uint32_t table_of(const std::string& cls) const;  // 0: unknown class

 private:
  LinuxDataplane(PolicyRouting pr, LinuxDataplaneConfig config)
      : routing_(std::move(pr)), config_(std::move(config)) {}
  Status apply(std::size_t cls);
  Status install(const steering::ClassSet& set, const std::vector<Rule>& rules,
                 std::size_t old_tables);

  PolicyRouting routing_;
  LinuxDataplaneConfig config_;
  // Per class: the next hop of each remote site (absent: unreachable).
  std::vector<std::map<std::string, Nexthop>> via_;
  std::vector<std::set<std::string>> adopted_;  // per class: sites on a previous run's route
  bool stopped_ = false;
  bool dscp_ = false;  // the kernel matches DSCP in rules
};

// Whether rules can match DSCP here (FRA_DSCP, Linux 6.13): adds and removes a probe rule.
bool kernel_matches_dscp(Rtnl& rtnl);

}  // namespace patronus::linuxnet
