// The controller's compiler: the fleet (its sites with the public keys they reported, the
// topology, the settings every site shares) made into one SiteConfig per site, as patronusd would
// apply it. A change recompiles only the sites whose configuration it can change (the sites it
// touches and their neighbours in the mesh; every site when the topology makes every site list
// every other), and says which sites' content hashes changed: those are the sites to push to.
// No I/O: the controller's core drives it (docs/adr/0022-controller-core.md).
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "patronus/mesh/graph.hpp"
#include "patronus/mesh/plan.hpp"
#include "patronus/model/types.hpp"
#include "patronus/site/site_config.hpp"
#include "patronus/util/status.hpp"

namespace patronus::controller {

// One site as the controller knows it.
struct FleetSite {
  std::string name;
  std::vector<model::Endpoint> endpoints;  // name, address, type, cost, bandwidth
  std::vector<model::IpPrefix> subnets;
  // Per endpoint: the WireGuard public key the site reported (base64), "" until it has. A site is
  // compiled into the mesh once every endpoint has one (the keys are made on the site).
  std::vector<std::string> public_keys;
  // Per endpoint: a staged next key ("" none), carried to the peers as their standby key.
  std::vector<std::string> next_public_keys;
  bool ready() const;
};

struct FleetSettings {
  mesh::TopologyOptions topology;
  // Explicit topology: the pairs that have paths (a link naming a site not in the mesh yet is
  // left out until it joins).
  std::vector<mesh::LinkSpec> links;
  mesh::EndpointRules rules = mesh::EndpointRules::defaults();
  mesh::OverlaySettings overlay;
  // What every site's config carries besides its identity and plan: plugin instances' configs,
  // classes, the fleet's policies (site and plan are set per site).
  site::SiteConfig base;
  // Per site: plugin instances' configs that replace (or add to) the base's for that site.
  std::map<std::string, std::vector<site::v1::PluginInstance>> site_plugins;
};

struct CompileStats {
  std::size_t sites = 0;                      // in the mesh (ready)
  std::size_t compiled = 0;                   // SiteConfigs computed by this update
  std::size_t changed = 0;                    // of those, with a new content hash
  std::int64_t graph_ns = 0, compile_ns = 0;  // wall time of the mesh build and the compile
};

// What keeps compiled configs the same across a controller restart: the fleet-wide path ids and
// the overlay addresses handed out so far (the controller stores them with the fleet).
struct CompilerMemory {
  std::map<std::string, std::uint64_t> path_ids;  // canonical path name -> id
  std::uint64_t next_path_id = 1;
  mesh::OverlayAssignments overlay;
};

class Compiler {
 public:
  // The fleet as it is now. `touched` names the sites that changed since the last call (added,
  // removed, other endpoints, subnets or keys); a change of the settings recompiles every site.
  // Returns the sites whose config changed (new, or another content hash), sorted; a site that
  // left the mesh is in `removed()`. On error (a topology that cannot be built) nothing changes.
  Result<std::vector<std::string>> update(const std::vector<FleetSite>& sites,
                                          const FleetSettings& settings,
                                          const std::set<std::string>& touched);

  // The current config of a site in the mesh, or nullptr.
  const site::SiteConfig* config(const std::string& site) const;
  const std::string* hash(const std::string& site) const;
  const std::vector<std::string>& removed() const { return removed_; }
  const CompileStats& stats() const { return stats_; }
  // The fleet-wide id of a path (both of its ends and the controller use it), by the canonical
  // name of its two endpoints (mesh::canonical_path_name); 0 if unknown.
  std::uint64_t path_id(const std::string& canonical_name) const;
  CompilerMemory memory() const { return {path_ids_, next_path_id_, overlay_}; }
  // The sites `site` has a path to in the last mesh.
  std::set<std::string> neighbours(const std::string& site) const {
    const auto it = neighbours_.find(site);
    return it == neighbours_.end() ? std::set<std::string>() : it->second;
  }
  // Before the first update: ids and addresses handed out by a previous run.
  void restore(CompilerMemory memory);
  // The next update compiles every site (a resynchronisation; a benchmark's baseline).
  void invalidate() { settings_key_cache_.clear(); }

 private:
  // Which sites a change of `touched` can change: the touched sites and their neighbours, old
  // (`neighbours_`) and new (`now`). update() compiles every site instead when a site's plan
  // lists sites it has no path to (partial and explicit meshes, hub-spoke without a summary).
  std::set<std::string> affected(const std::map<std::string, std::set<std::string>>& now,
                                 const std::set<std::string>& touched) const;

  struct Entry {
    site::SiteConfig config;
    std::string hash;
  };
  std::map<std::string, Entry> compiled_;
  std::map<std::string, std::set<std::string>> neighbours_;  // of the last mesh
  std::map<std::string, std::uint64_t> path_ids_;            // canonical path name -> id
  std::uint64_t next_path_id_ = 1;
  mesh::OverlayAssignments overlay_;
  std::string settings_key_cache_;  // the settings compiled last (compared, not parsed)
  std::vector<std::string> removed_;
  CompileStats stats_;
};

}  // namespace patronus::controller
