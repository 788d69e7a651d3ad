// A site's whole configuration as one typed message (patronus.site.v1.SiteConfig, in
// framework/src/api/site_config.proto) and its conversions: the runtime's classes to and from it,
// the mesh plan's share of one site to it (public keys only: a controller can compute it), and
// back to the runtime's paths on the site (the probe keys derived there from the site's private
// keys). See docs/adr/0021-site-host.md.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "patronus/site/plan_store.hpp"
#include "patronus/site/v1/site_config.pb.h"
#include "patronus/steering/classes.hpp"
#include "patronus/steering/site_runtime.hpp"
#include "patronus/util/status.hpp"

namespace patronus::site {

using SiteConfig = v1::SiteConfig;
constexpr std::uint32_t kSiteConfigSchema = 1;

v1::ClassSet classes_to_proto(const steering::ClassSet& set);
// Validated (steering::validate): the error names the field ("classes[2].min_score").
Result<steering::ClassSet> classes_from_proto(const v1::ClassSet& set);

// The runtime's settings from the config's runtime section (classes validated).
Result<steering::RuntimeConfig> runtime_config(const SiteConfig& config);

// The inverse: a runtime's settings as the config's runtime section (what the config carries:
// instances, classes, timers, bounds of the flow table; not the window sizes or other bounds,
// which a host may tune, see HostContext::tune).
v1::Runtime runtime_to_proto(const steering::RuntimeConfig& config);

// A plan made by hand (a test's, the simulator's) as the config's share: the probe keys are left
// out (the site derives them again from the public keys, which a PathSpec carries only in its
// tunnel: a caller with tunnel-less paths sets remote_public_key itself).
v1::Plan plan_to_proto(const std::vector<steering::RemoteSite>& remote_sites,
                       const std::vector<steering::PathSpec>& paths);

// One site's part of a mesh plan, with public keys only: what a controller sends. `ids` as
// save_plan returned them. Errors name the site and endpoint.
Result<v1::Plan> plan_for_site(const mesh::MeshGraph& g, const mesh::TunnelPlan& plan,
                               const std::vector<model::PathId>& ids, const std::string& site);

// The plan on the site: every path's probe key derived from the site's private key of its local
// endpoint (from `keys`) and the peer's public key. A plan that names another public key for one
// of this site's endpoints is refused (it was made for other keys), as is any malformed field,
// by its path ("plan.paths[3].remote_underlay: ...").
Result<SitePlan> realise_plan(const v1::Plan& plan, const std::string& site,
                              const PrivateKeys& keys);

// Checks what a host needs before it builds anything: the schema version, the site name, unique
// instance names, runtime references to configured instances, the classes. Errors name the field.
Status validate(const SiteConfig& config);

// A stable hash of the content (hex BLAKE2b-256 of the deterministic serialization, generation
// left out): equal configs hash equal, so a site and its controller can compare what is applied.
std::string content_hash(const SiteConfig& config);

// A controller-fed site's config: its own file's part (plugins, runtime settings, its own
// inventory) with the plan and the fleet's policies the controller pushed; when the push carries
// classes, those classes; when it carries plugin instances, their configs replace those of the
// file's instances of the same name (an instance the file does not run, or runs from another
// plugin, is an error naming it). `version` becomes the generation. patronusd and the
// simulator's sites apply exactly this.
Result<SiteConfig> with_pushed(SiteConfig local, const SiteConfig& pushed, std::uint64_t version);

// The document a site's policy plugins load: its own (stored policies, its inventory), then the
// fleet's without the objects the site defines itself (same kind, namespace and name: the site's
// copy applies; the fleet's are named in `shadowed` as "Kind/namespace/name").
std::string merge_policy_documents(const std::string& own, const std::string& fleet,
                                   std::vector<std::string>* shadowed = nullptr);

}  // namespace patronus::site
