#include "patronus/site/plan_store.hpp"

#include "patronus/util/file.hpp"

#include "patronus/site/site_config.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <optional>
#include <set>

namespace patronus::site {

Result<mesh::OverlayAssignments> stored_overlay(store::Store& db) {
  auto rows = db.mesh_endpoints();
  if (!rows.is_ok()) return rows.status();
  mesh::OverlayAssignments previous;
  for (const auto& r : rows.value()) {
    if (r.overlay_ipv4.empty()) continue;
    auto v4 = model::IpAddress::parse(r.overlay_ipv4);
    if (!v4.is_ok()) continue;  // not ours to keep: it gets a fresh address
    mesh::OverlayAddress a{v4.value(), std::nullopt};
    if (auto v6 = model::IpAddress::parse(r.overlay_ipv6); v6.is_ok()) a.ipv6 = v6.value();
    previous.emplace(r.site + "/" + r.endpoint, a);
  }
  return previous;
}

Result<std::vector<model::PathId>> save_plan(store::Store& db, const mesh::MeshGraph& g,
                                             const mesh::TunnelPlan& plan, std::int64_t now_unix) {
  std::vector<store::MeshSite> sites;
  std::vector<store::MeshEndpointRow> endpoints;
  for (std::size_t s = 0; s < g.num_sites(); ++s) {
    const auto& spec = g.site(s);
    store::MeshSite ms{spec.site, std::nullopt, std::nullopt};
    if (spec.location) {
      ms.latitude = spec.location->lat;
      ms.longitude = spec.location->lon;
    }
    sites.push_back(ms);
    for (std::size_t e = 0; e < spec.site.endpoints.size(); ++e) {
      if (spec.external) {  // a peer's gateway: no key, no overlay address
        endpoints.push_back({spec.site.name, spec.site.endpoints[e].name, "", "", ""});
        continue;
      }
      const auto it = plan.overlay.find(spec.site.name + "/" + spec.site.endpoints[e].name);
      if (it == plan.overlay.end()) {
        return internal_error("save plan: no overlay address for " + spec.site.name + "/" +
                              spec.site.endpoints[e].name);
      }
      const auto& a = it->second;
      endpoints.push_back({spec.site.name, spec.site.endpoints[e].name, spec.public_keys[e],
                           a.ipv4.to_string(), a.ipv6 ? a.ipv6->to_string() : ""});
    }
  }
  std::vector<store::PathRow> paths;
  for (std::uint32_t id = 0; id < g.num_paths(); ++id) {
    const auto& p = g.path(id);
    const auto& a = g.site(p.src_site).site;
    const auto& b = g.site(g.path_dst(id)).site;
    store::PathRow r;
    r.src_site = a.name;
    r.src_endpoint = a.endpoints[p.src_endpoint].name;
    r.dst_site = b.name;
    r.dst_endpoint = b.endpoints[p.dst_endpoint].name;
    r.wg_interface = mesh::endpoint_interface(g, p.src_site, p.src_endpoint);
    paths.push_back(std::move(r));
  }
  return db.save_mesh(sites, endpoints, paths, now_unix);
}

Result<std::size_t> write_wg_configs(const mesh::MeshGraph& g, const mesh::TunnelPlan& plan,
                                     const std::optional<mesh::KeyDirectory>& keys,
                                     const std::string& dir, const std::string& only_site,
                                     const std::string& key_path_on_site) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return unavailable(dir + ": " + ec.message());
  std::size_t written = 0;
  for (std::uint32_t s = 0; s < g.num_sites(); ++s) {
    const auto& spec = g.site(s);
    if (!only_site.empty() && spec.site.name != only_site) continue;
    const std::string sdir = dir + "/" + spec.site.name;
    if (auto st = private_directory(sdir); !st.is_ok()) return st;
    for (const auto& iface : plan.sites[s]) {
      if (iface.transport != mesh::TransportKind::kWireGuard) continue;  // IPsec: charon's
      const std::string ep = spec.site.endpoints[iface.endpoint].name;
      std::optional<mesh::Key> priv;
      if (keys) {
        auto kp = keys->load(spec.site.name, ep);
        if (!kp.is_ok()) return kp.status();
        if (kp.value()) priv = kp.value()->private_key;
      }
      const std::string text = mesh::render_wg_quick(
          g, plan, iface, priv, key_path_on_site + "/" + spec.site.name + "/" + ep + ".key");
      if (auto st = write_file_atomic(sdir + "/" + iface.name + ".conf", text, 0600); !st.is_ok()) {
        return st;
      }
      ++written;
    }
  }
  return written;
}

PrivateKeys directory_keys(const mesh::KeyDirectory& keys) {
  return [keys](std::string_view s, std::string_view e) -> Result<mesh::KeyPair> {
    auto kp = keys.load(s, e);
    if (!kp.is_ok()) return kp.status();
    if (!kp.value()) {
      return failed_precondition("no private key for " + std::string(s) + "/" + std::string(e) +
                                 " in " + keys.dir() + " (mesh plan --keys-dir creates one)");
    }
    return *kp.value();
  };
}

Result<SitePlan> site_plan(const mesh::MeshGraph& g, const mesh::TunnelPlan& plan,
                           const std::vector<model::PathId>& ids, const std::string& site,
                           const mesh::KeyDirectory& keys) {
  return site_plan(g, plan, ids, site, directory_keys(keys));
}

Result<SitePlan> site_plan(const mesh::MeshGraph& g, const mesh::TunnelPlan& plan,
                           const std::vector<model::PathId>& ids, const std::string& site,
                           const PrivateKeys& keys) {
  auto share = plan_for_site(g, plan, ids, site);
  if (!share.is_ok()) return share.status();
  return realise_plan(share.value(), site, keys);
}

namespace {

// The mesh as the sites file and topology give it, and this site's vertex in it: what a plan and
// a check both start from. Errors name the file, the site or the topology.
struct LocalGraph {
  mesh::MeshGraph graph;
  int self = -1;
};
Result<LocalGraph> local_graph(const LocalPlanOptions& rt) {
  auto topo = mesh::parse_topology(rt.topology);
  if (!topo.is_ok()) return invalid_argument("topology: " + topo.status().message());
  auto file = mesh::load_sites_file(rt.sites_file);
  if (!file.is_ok()) return file.status();
  mesh::TopologyOptions opt;
  opt.kind = topo.value();
  opt.hubs = rt.hubs;
  opt.k = rt.k;
  auto built = mesh::MeshGraph::build(std::move(file).value(), opt);
  if (!built.is_ok()) return built.status();
  LocalGraph out{std::move(built).value(), -1};
  out.self = out.graph.find_site(rt.site);
  if (out.self < 0) return invalid_argument("site '" + rt.site + "' is not in " + rt.sites_file);
  if (out.graph.site(out.self).external) {
    return invalid_argument("'" + rt.site + "' is a peer in " + rt.sites_file +
                            " (peers:), not a Patronus site");
  }
  return out;
}

}  // namespace

// Every endpoint of another of our sites that has a path needs its public key: from the sites
// file, or (a lab keeping every site's keys in one directory) from keys_dir. The error says where
// to put it, in the daemon's terms.
Status other_keys_known(const mesh::MeshGraph& g, int self, const std::string& keys_dir,
                        const std::string& sites_file) {
  std::optional<mesh::KeyDirectory> keys;
  Status refused = Status::ok();  // why the directory or a key in it was not taken
  struct stat st {};
  if (!keys_dir.empty() && ::stat(keys_dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    auto kd = mesh::KeyDirectory::open(keys_dir);
    if (kd.is_ok())
      keys = std::move(kd).value();
    else
      refused = kd.status();
  }
  for (std::uint32_t id = 0; id < g.num_paths(); ++id) {
    const auto& p = g.path(id);
    for (auto [v, e] : {std::pair{p.src_site, p.src_endpoint},
                        std::pair{g.path_dst(id), static_cast<std::uint8_t>(p.dst_endpoint)}}) {
      if (static_cast<int>(v) == self || g.site(v).external) continue;
      if (!g.site(v).public_keys[e].empty()) continue;
      const auto& name = g.site(v).site.name;
      const auto& ep = g.site(v).site.endpoints[e].name;
      if (keys) {
        auto kp = keys->load(name, ep);
        if (kp.is_ok() && kp.value()) continue;
        if (!kp.is_ok()) refused = kp.status();
      }
      // A key that is there but was refused says why (a mode, an owner, a symlink), not that
      // there is none.
      if (!refused.is_ok()) {
        return failed_precondition(sites_file + ": " + name + "/" + ep +
                                   " has no public_key, and runtime.keys_dir's key for it was " +
                                   "refused: " + refused.message());
      }
      return failed_precondition(
          sites_file + ": " + name + "/" + ep + " has no public_key, and runtime.keys_dir (" +
          keys_dir + ") holds no key for it: give its public_key in the sites file (on that " +
          "site, `patronus keys public < KEYS_DIR/" + name + "/" + ep + ".key` prints it)");
    }
  }
  return Status::ok();
}

Result<std::string> check_local_site(const LocalPlanOptions& rt) {
  auto local = local_graph(rt);
  if (!local.is_ok()) return local.status();
  const mesh::MeshGraph& g = local.value().graph;
  if (auto s = other_keys_known(g, local.value().self, rt.keys_dir, rt.sites_file); !s.is_ok()) {
    return s;
  }
  return "site '" + rt.site + "' with " +
         std::to_string(g.site(local.value().self).site.endpoints.size()) + " endpoint(s) in a " +
         rt.topology + " of " + std::to_string(g.num_sites()) + " site(s) from " + rt.sites_file;
}

Result<v1::Plan> plan_local_share(const LocalPlanOptions& rt, store::Store& db,
                                  std::int64_t now_unix) {
  const std::string& self_name = rt.site;
  auto local = local_graph(rt);
  if (!local.is_ok()) return local.status();
  mesh::MeshGraph& g = local.value().graph;
  const int self = local.value().self;
  auto keys = mesh::KeyDirectory::open(rt.keys_dir);
  if (!keys.is_ok()) return keys.status();
  const auto& endpoints = g.site(self).site.endpoints;
  for (std::size_t e = 0; e < endpoints.size(); ++e) {
    auto kp = keys.value().load_or_create(self_name, endpoints[e].name);
    if (!kp.is_ok()) return kp.status();
    const std::string pub = mesh::key_to_base64(kp.value().public_key);
    std::string& in_file = g.public_key(self, e);
    if (!in_file.empty() && in_file != pub) {
      return failed_precondition(self_name + "/" + endpoints[e].name +
                                 ": the sites file's public_key does not match the private key "
                                 "in " +
                                 keys.value().key_path(self_name, endpoints[e].name));
    }
    in_file = pub;
    // A staged rotation: the next key's public half goes to the peers with the plan.
    auto next = keys.value().load_next(self_name, endpoints[e].name);
    if (!next.is_ok()) return next.status();
    std::string& next_in_file = g.next_public_key(self, e);
    if (next.value()) {
      const std::string npub = mesh::key_to_base64(next.value()->public_key);
      if (!next_in_file.empty() && next_in_file != npub) {
        return failed_precondition(self_name + "/" + endpoints[e].name +
                                   ": the sites file's next_public_key does not match " +
                                   keys.value().next_key_path(self_name, endpoints[e].name));
      }
      next_in_file = npub;
    } else if (!next_in_file.empty() && next_in_file != pub) {
      return failed_precondition(self_name + "/" + endpoints[e].name +
                                 ": the sites file gives a next_public_key but no next key is "
                                 "staged in " +
                                 keys.value().next_key_path(self_name, endpoints[e].name));
    } else {
      next_in_file.clear();  // committed: the sites file's next key is now the key
    }
  }
  // Other sites' public keys come from the sites file; a lab that keeps every site's keys in one
  // directory may leave them out, and they are read from there (public halves only).
  for (std::size_t v = 0; v < g.num_sites(); ++v) {
    if (static_cast<int>(v) == self || g.site(v).external) continue;
    const auto& eps = g.site(v).site.endpoints;
    for (std::size_t e = 0; e < eps.size(); ++e) {
      if (g.public_key(v, e).empty()) {
        auto kp = keys.value().load(g.site(v).site.name, eps[e].name);
        if (!kp.is_ok()) return kp.status();
        if (kp.value()) g.public_key(v, e) = mesh::key_to_base64(kp.value()->public_key);
      }
      if (g.next_public_key(v, e).empty()) {
        auto nk = keys.value().load_next(g.site(v).site.name, eps[e].name);
        if (!nk.is_ok()) return nk.status();
        if (nk.value()) g.next_public_key(v, e) = mesh::key_to_base64(nk.value()->public_key);
      }
      // A next key the file still names after the site committed it is the key itself now.
      if (g.next_public_key(v, e) == g.public_key(v, e)) g.next_public_key(v, e).clear();
    }
  }
  if (auto s = other_keys_known(g, self, rt.keys_dir, rt.sites_file); !s.is_ok()) return s;
  auto previous = stored_overlay(db);
  if (!previous.is_ok()) return previous.status();
  auto overlay = mesh::assign_overlay(g, previous.value());
  if (!overlay.is_ok()) return overlay.status();
  auto plan = mesh::make_plan(g, std::move(overlay).value());
  if (!plan.is_ok()) return plan.status();
  auto ids = save_plan(db, g, plan.value(), now_unix);
  if (!ids.is_ok()) return ids.status();
  return plan_for_site(g, plan.value(), ids.value(), self_name);
}

ReplanOutcome apply_replan(steering::SiteRuntime& runtime, const SitePlan& plan) {
  ReplanOutcome out;
  // New sites first (their paths need them), then paths: new ones join, known ones may have new
  // keys, and those the plan no longer has leave. Nothing else is touched.
  for (const auto& r : plan.remote_sites) {
    if (runtime.has_remote_site(r.name)) continue;
    if (auto s = runtime.add_remote_site(r); !s.is_ok()) {
      out.errors.push_back(s.message());
    } else {
      out.sites_added.push_back(r.name);
    }
  }
  std::set<std::uint64_t> planned;
  for (const auto& p : plan.paths) {
    planned.insert(p.id.value());
    if (runtime.spec(p.id) == nullptr) {
      if (auto s = runtime.add_path(p); !s.is_ok()) {
        out.errors.push_back(s.message());
      } else {
        out.added.push_back(p.id);
      }
      continue;
    }
    auto changed = runtime.update_path(p);
    if (!changed.is_ok()) {
      out.errors.push_back(changed.status().message());
    } else if (changed.value()) {
      ++out.changed;
    }
  }
  for (const auto& v : runtime.paths()) {
    if (planned.count(v.id.value())) continue;
    auto removed = runtime.remove_path(v.id);
    if (!removed.is_ok()) {
      out.errors.push_back(removed.status().message());
    } else if (removed.value()) {
      out.removed.push_back(v.id);
    }
  }
  // Sites the plan no longer has, once their paths are gone: those relayed through another
  // removed site first.
  std::set<std::string> planned_sites;
  for (const auto& r : plan.remote_sites) planned_sites.insert(r.name);
  std::vector<std::string> gone;
  for (const auto& name : runtime.remote_site_names()) {
    if (planned_sites.count(name) == 0) gone.push_back(name);
  }
  for (std::size_t pass = 0; pass < 2 && !gone.empty(); ++pass) {
    std::vector<std::string> left;
    for (const auto& name : gone) {
      auto removed = runtime.remove_remote_site(name);
      if (removed.is_ok()) {
        if (removed.value()) out.sites_removed.push_back(name);
      } else if (pass == 0) {
        left.push_back(name);  // a site relayed through it goes first; try again
      } else {
        out.errors.push_back(removed.status().message());
      }
    }
    gone = std::move(left);
  }
  return out;
}

}  // namespace patronus::site
