#include "patronus/controller/compiler.hpp"

#include <algorithm>
#include <chrono>

#include "patronus/mesh/keys.hpp"
#include "patronus/mesh/sites.hpp"

namespace patronus::controller {

namespace {

std::int64_t since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0)
      .count();
}

// Everything of the settings a site's config depends on, as one string (compared, not parsed).
std::string settings_key(const FleetSettings& s) {
  std::string k = site::content_hash(s.base);  // deterministic (maps in any order)
  k += "|" + std::string(mesh::to_string(s.topology.kind)) + "|" + std::to_string(s.topology.k);
  for (const auto& h : s.topology.hubs) k += "|h:" + h;
  for (const auto& p : s.topology.spoke_summary) k += "|s:" + p.to_string();
  for (const auto& l : s.links) {
    k += "|l:" + l.a_site + "/" + l.a_endpoint + "-" + l.b_site + "/" + l.b_endpoint;
  }
  for (const auto& r : s.rules.by_type) {
    k += "|r:" + std::to_string(r.peers_mask) + (r.hubs_only ? "h" : "");
  }
  for (const auto& [site, plugins] : s.site_plugins) {
    site::SiteConfig c;
    *c.mutable_plugins() = {plugins.begin(), plugins.end()};
    k += "|p:" + site + "=" + site::content_hash(c);
  }
  k += "|o:" + s.overlay.ipv4.to_string() + (s.overlay.ipv6 ? s.overlay.ipv6->to_string() : "") +
       "/" + std::to_string(s.overlay.persistent_keepalive);
  return k;
}

}  // namespace

bool FleetSite::ready() const {
  if (endpoints.empty() || public_keys.size() != endpoints.size()) return false;
  return std::none_of(public_keys.begin(), public_keys.end(),
                      [](const std::string& k) { return k.empty(); });
}

const site::SiteConfig* Compiler::config(const std::string& site) const {
  const auto it = compiled_.find(site);
  return it == compiled_.end() ? nullptr : &it->second.config;
}

const std::string* Compiler::hash(const std::string& site) const {
  const auto it = compiled_.find(site);
  return it == compiled_.end() ? nullptr : &it->second.hash;
}

std::uint64_t Compiler::path_id(const std::string& canonical_name) const {
  const auto it = path_ids_.find(canonical_name);
  return it == path_ids_.end() ? 0 : it->second;
}

void Compiler::restore(CompilerMemory memory) {
  path_ids_ = std::move(memory.path_ids);
  next_path_id_ = std::max<std::uint64_t>(memory.next_path_id, 1);
  for (const auto& [name, id] : path_ids_) next_path_id_ = std::max(next_path_id_, id + 1);
  overlay_ = std::move(memory.overlay);
}

std::set<std::string> Compiler::affected(const std::map<std::string, std::set<std::string>>& now,
                                         const std::set<std::string>& touched) const {
  std::set<std::string> out;
  for (const auto& t : touched) {
    out.insert(t);
    for (const auto* m : {&neighbours_, &now}) {
      if (const auto it = m->find(t); it != m->end()) {
        out.insert(it->second.begin(), it->second.end());
      }
    }
  }
  return out;
}

Result<std::vector<std::string>> Compiler::update(const std::vector<FleetSite>& sites,
                                                  const FleetSettings& settings,
                                                  const std::set<std::string>& touched) {
  const auto t0 = std::chrono::steady_clock::now();
  mesh::SitesFile file;
  file.rules = settings.rules;
  file.overlay = settings.overlay;
  std::vector<const FleetSite*> ready;
  for (const auto& s : sites) {
    if (s.ready()) ready.push_back(&s);
  }
  std::sort(ready.begin(), ready.end(),
            [](const FleetSite* a, const FleetSite* b) { return a->name < b->name; });
  for (const FleetSite* s : ready) {
    mesh::SiteSpec spec;
    spec.site.name = s->name;
    spec.site.endpoints = s->endpoints;
    spec.subnets = s->subnets;
    spec.public_keys = s->public_keys;
    spec.next_public_keys = s->next_public_keys;
    spec.next_public_keys.resize(s->endpoints.size());
    file.sites.push_back(std::move(spec));
  }
  for (const auto& l : settings.links) {
    if (file.find_site(l.a_site) >= 0 && file.find_site(l.b_site) >= 0) file.links.push_back(l);
  }
  // Hubs that have not joined yet are not hubs of this mesh (with none, a hub-spoke fleet cannot
  // be built: the update fails and the sites keep their configs).
  mesh::TopologyOptions topology = settings.topology;
  topology.hubs.erase(std::remove_if(topology.hubs.begin(), topology.hubs.end(),
                                     [&](const std::string& h) { return file.find_site(h) < 0; }),
                      topology.hubs.end());
  auto built = mesh::MeshGraph::build(std::move(file), topology);
  if (!built.is_ok()) return built.status();
  const mesh::MeshGraph& g = built.value();
  auto overlay = mesh::assign_overlay(g, overlay_);
  if (!overlay.is_ok()) return overlay.status();
  auto plan = mesh::make_plan(g, overlay.value());
  if (!plan.is_ok()) return plan.status();
  // Fleet-wide path ids: the same path has the same id at both ends and across updates.
  auto path_ids = path_ids_;
  std::uint64_t next = next_path_id_;
  std::vector<model::PathId> ids(g.num_paths());
  std::map<std::string, std::set<std::string>> neighbours;
  for (std::uint32_t id = 0; id < g.num_paths(); ++id) {
    const auto& pe = g.path(id);
    const auto& a = g.site(pe.src_site);
    const auto& b = g.site(g.path_dst(id));
    const std::string name =
        mesh::canonical_path_name(a.site.name, a.site.endpoints[pe.src_endpoint].name, b.site.name,
                                  b.site.endpoints[pe.dst_endpoint].name);
    auto [it, fresh] = path_ids.emplace(name, next);
    if (fresh) ++next;
    ids[id] = model::PathId(it->second);
    neighbours[a.site.name].insert(b.site.name);
    neighbours[b.site.name].insert(a.site.name);
  }
  stats_ = {};
  stats_.sites = g.num_sites();
  stats_.graph_ns = since(t0);
  const auto t1 = std::chrono::steady_clock::now();

  const std::string key = settings_key(settings);
  const bool lists_everyone =
      topology.kind == mesh::TopologyKind::kPartial ||
      topology.kind == mesh::TopologyKind::kExplicit ||
      (topology.kind == mesh::TopologyKind::kHubSpoke && topology.spoke_summary.empty());
  // A hub's arrival or departure changes every spoke's relays.
  bool hubs_touched = false;
  for (const auto& h : settings.topology.hubs) hubs_touched = hubs_touched || touched.count(h);
  std::set<std::string> todo;
  if (key != settings_key_cache_ || lists_everyone || hubs_touched) {
    for (std::size_t v = 0; v < g.num_sites(); ++v) todo.insert(g.site(v).site.name);
  } else {
    todo = affected(neighbours, touched);
  }

  std::map<std::string, Entry> compiled;
  std::vector<std::string> changed;
  for (const auto& name : todo) {
    const int v = g.find_site(name);
    if (v < 0) continue;  // not (or no longer) in the mesh
    Entry e;
    e.config = settings.base;
    e.config.set_schema(site::kSiteConfigSchema);
    e.config.set_site(name);
    e.config.clear_plan();
    if (const auto it = settings.site_plugins.find(name); it != settings.site_plugins.end()) {
      for (const auto& p : it->second) {
        auto* ps = e.config.mutable_plugins();
        const auto same = std::find_if(ps->begin(), ps->end(),
                                       [&](const auto& x) { return x.instance() == p.instance(); });
        *(same != ps->end() ? &*same : ps->Add()) = p;
      }
    }
    if (!neighbours[name].empty()) {
      auto share = site::plan_for_site(g, plan.value(), ids, name);
      if (!share.is_ok()) return share.status();
      *e.config.mutable_plan() = std::move(share).value();
    }
    e.hash = site::content_hash(e.config);
    ++stats_.compiled;
    const auto old = compiled_.find(name);
    if (old == compiled_.end() || old->second.hash != e.hash) {
      changed.push_back(name);
      ++stats_.changed;
    }
    compiled.emplace(name, std::move(e));
  }
  stats_.compile_ns = since(t1);

  // Commit.
  removed_.clear();
  for (auto it = compiled_.begin(); it != compiled_.end();) {
    if (g.find_site(it->first) < 0) {
      removed_.push_back(it->first);
      it = compiled_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto& [name, e] : compiled) compiled_[name] = std::move(e);
  neighbours_ = std::move(neighbours);
  path_ids_ = std::move(path_ids);
  next_path_id_ = next;
  overlay_ = std::move(overlay).value();
  settings_key_cache_ = key;
  return changed;
}

}  // namespace patronus::controller
