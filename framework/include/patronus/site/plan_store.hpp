// A mesh plan meets a site's state: saving the plan to the store (stable path ids), writing the
// wg-quick files, and turning one site's part of the plan into the site runtime's paths (with the
// per-path probe keys derived from the site's private keys). Used by the CLI (`mesh plan`) and by
// patronusd; the simulator builds its paths the same way.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "patronus/mesh/graph.hpp"
#include "patronus/mesh/keys.hpp"
#include "patronus/mesh/plan.hpp"
#include "patronus/model/ids.hpp"
#include "patronus/steering/site_runtime.hpp"
#include "patronus/store/store.hpp"

namespace patronus::site::v1 {
class Plan;
}

namespace patronus::site {

// Overlay addresses the store already assigned (so re-plans keep them).
Result<mesh::OverlayAssignments> stored_overlay(store::Store& db);

// Saves sites, endpoints (public keys, overlay addresses) and paths in one transaction; returns
// the canonical PathId of each graph path, indexed by the graph's dense path index.
Result<std::vector<model::PathId>> save_plan(store::Store& db, const mesh::MeshGraph& g,
                                             const mesh::TunnelPlan& plan, std::int64_t now_unix);

// Writes DIR/<site>/<interface>.conf (0600 files in 0700 directories) for every site, or only
// `only_site`. With `keys`, configs carry the private key; else a PostUp loads it from
// key_path_on_site/<site>/<endpoint>.key. Returns how many files were written.
Result<std::size_t> write_wg_configs(const mesh::MeshGraph& g, const mesh::TunnelPlan& plan,
                                     const std::optional<mesh::KeyDirectory>& keys,
                                     const std::string& dir, const std::string& only_site,
                                     const std::string& key_path_on_site);

// One site's part of the plan, ready for a SiteRuntime.
struct SitePlan {
  std::vector<steering::RemoteSite> remote_sites;
  std::vector<steering::PathSpec> paths;
  // Each remote site's LAN subnets (its prefixes without the overlay addresses): what forwarding
  // steers onto the tunnels; overlay addresses are routed by the transport, per tunnel.
  std::map<std::string, std::vector<model::IpPrefix>> subnets;
};

// `ids` as save_plan returned them. The site's private keys come from `keys` (its endpoints must
// have keys there); the remote public keys from the graph. Errors name the site and endpoint.
// Sites the site has no path to but reaches through one relay (a spoke's view of the other
// spokes) come as remote sites with `via` set.
Result<SitePlan> site_plan(const mesh::MeshGraph& g, const mesh::TunnelPlan& plan,
                           const std::vector<model::PathId>& ids, const std::string& site,
                           const mesh::KeyDirectory& keys);
// The same with the private keys from a function (site, endpoint) -> key pair (the simulator's
// seeded keys).
using PrivateKeys =
    std::function<Result<mesh::KeyPair>(std::string_view site, std::string_view endpoint)>;
Result<SitePlan> site_plan(const mesh::MeshGraph& g, const mesh::TunnelPlan& plan,
                           const std::vector<model::PathId>& ids, const std::string& site,
                           const PrivateKeys& keys);
// A key directory's private keys as PrivateKeys (an error names a missing one).
PrivateKeys directory_keys(const mesh::KeyDirectory& keys);

// What a site needs to plan its own part of the mesh.
struct LocalPlanOptions {
  std::string site;        // this site
  std::string sites_file;  // the mesh
  std::string topology = "full-mesh";
  std::vector<std::string> hubs;  // overrides the file's hubs when non-empty
  int k = 2;                      // partial topology
  std::string keys_dir;           // DIR/<site>/<endpoint>.key
};

// The site's part of the mesh plan, on the site: its own keys are loaded from keys_dir (created
// when missing; private keys never leave it) and must match any public_key the sites file gives;
// other sites' public keys come from the file or, for a lab that keeps every site's keys in one
// directory, from keys_dir (public halves only). Overlay addresses and path ids are kept from the
// store, and the plan is saved to it. Returned as the config's share (public keys only;
// site_config.hpp's realise_plan makes the runtime's paths of it with directory_keys): what
// patronusd puts in its SiteConfig.
Result<v1::Plan> plan_local_share(const LocalPlanOptions& options, store::Store& db,
                                  std::int64_t now_unix);
// What `patronusd --check` can say of the plan without touching anything: the topology and the
// sites file parse, the mesh builds and names this site. No key is read or made, no store opened.
// On success, a one-line summary.
Result<std::string> check_local_site(const LocalPlanOptions& options);

// A new plan for a running runtime (patronusd's SIGHUP): remote sites and paths the runtime does
// not have join it (SiteRuntime::add_remote_site, add_path), paths it has that the plan no longer
// has leave it (remove_path), and every path whose keys changed (a key rotation,
// docs/adr/0013-key-rotation.md) is handed to SiteRuntime::update_path. Untouched paths stay as
// they are: no path.down, no class moved. A path whose endpoints, addresses or interface changed
// under the same id is refused and named in `errors` (the store gives a changed path a new id).
struct ReplanOutcome {
  std::size_t changed = 0;                 // known paths with new keys
  std::vector<std::string> sites_added;    // remote sites that joined
  std::vector<std::string> sites_removed;  // remote sites the plan no longer has
  std::vector<model::PathId> added;        // paths that joined
  std::vector<model::PathId> removed;      // paths the plan no longer has
  std::vector<std::string> errors;
};
ReplanOutcome apply_replan(steering::SiteRuntime& runtime, const SitePlan& plan);

}  // namespace patronus::site
