#include "patronus/mesh/graph.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <tuple>

#include "patronus/mesh/analysis.hpp"
#include "patronus/util/enum_table.hpp"

namespace patronus::mesh {

std::uint32_t weight_of_score(double score) {
  const double s = std::isfinite(score) ? std::clamp(score, 0.0, 100.0) : 0.0;
  return 1000U + static_cast<std::uint32_t>(std::lround((100.0 - s) * 1000.0));
}

namespace {
constexpr EnumTable<TopologyKind, 4> kTopologies{{
    {"full-mesh", TopologyKind::kFullMesh},
    {"hub-spoke", TopologyKind::kHubSpoke},
    {"partial", TopologyKind::kPartial},
    {"explicit", TopologyKind::kExplicit},
}};
}  // namespace

const char* to_string(TopologyKind k) {
  return enum_name(k, kTopologies);
}

Result<TopologyKind> parse_topology(std::string_view text) {
  return parse_enum("topology", text, kTopologies);
}

std::uint32_t MeshGraph::path_dst(std::uint32_t id) const {
  const auto e = paths_[id];
  const auto s = static_cast<std::uint32_t>(boost::source(e, *g_));
  const auto t = static_cast<std::uint32_t>(boost::target(e, *g_));
  return s == (*g_)[e].src_site ? t : s;
}

std::string MeshGraph::path_key(std::uint32_t id) const {
  const PathEdge& p = path(id);
  const SiteSpec& a = (*g_)[p.src_site];
  const SiteSpec& b = (*g_)[path_dst(id)];
  return a.site.name + ":" + a.site.endpoints[p.src_endpoint].name + "~" + b.site.name + ":" +
         b.site.endpoints[p.dst_endpoint].name;
}

int MeshGraph::find_site(std::string_view name) const {
  for (std::size_t v = 0; v < num_sites(); ++v) {
    if ((*g_)[v].site.name == name) return static_cast<int>(v);
  }
  return -1;
}

bool MeshGraph::compatible(std::size_t site_a, std::size_t ep_a, std::size_t site_b,
                           std::size_t ep_b) const {
  const auto& ea = (*g_)[site_a].site.endpoints[ep_a];
  const auto& eb = (*g_)[site_b].site.endpoints[ep_b];
  if (ea.address.ip().is_v4() != eb.address.ip().is_v4()) return false;
  // Both ends speak the same protocol: a WireGuard endpoint never pairs with an IPsec one.
  if ((*g_)[site_a].transport(ep_a) != (*g_)[site_b].transport(ep_b)) return false;
  if (!rules_.allows(ea.type, eb.type) || !rules_.allows(eb.type, ea.type)) return false;
  if (have_hubs_) {
    if (rules_.by_type[static_cast<int>(ea.type)].hubs_only && !is_hub_[site_b]) return false;
    if (rules_.by_type[static_cast<int>(eb.type)].hubs_only && !is_hub_[site_a]) return false;
  }
  return true;
}

std::size_t MeshGraph::connect(std::size_t a, std::size_t b, int a_endpoint, int b_endpoint) {
  std::size_t added = 0;
  const std::size_t na = (*g_)[a].site.endpoints.size();
  const std::size_t nb = (*g_)[b].site.endpoints.size();
  for (std::size_t i = 0; i < na; ++i) {
    if (a_endpoint >= 0 && static_cast<std::size_t>(a_endpoint) != i) continue;
    for (std::size_t j = 0; j < nb; ++j) {
      if (b_endpoint >= 0 && static_cast<std::size_t>(b_endpoint) != j) continue;
      if (!compatible(a, i, b, j)) continue;
      PathEdge p;
      p.id = static_cast<std::uint32_t>(paths_.size());
      p.src_site = static_cast<std::uint32_t>(a);
      p.src_endpoint = static_cast<std::uint8_t>(i);
      p.dst_endpoint = static_cast<std::uint8_t>(j);
      paths_.push_back(boost::add_edge(a, b, p, *g_).first);
      ++added;
    }
  }
  return added;
}

namespace {

int endpoint_index(const SiteSpec& s, const std::string& name) {
  if (name.empty()) return -1;
  for (std::size_t i = 0; i < s.site.endpoints.size(); ++i) {
    if (s.site.endpoints[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

}  // namespace

Result<MeshGraph> MeshGraph::build(SitesFile file, const TopologyOptions& options) {
  MeshGraph m;
  m.kind_ = options.kind;
  m.rules_ = file.rules;
  m.overlay_ = file.overlay;
  m.hubs_ = options.hubs.empty() ? file.hubs : options.hubs;
  const std::size_t n = file.sites.size();
  m.is_hub_.assign(n, false);
  for (const auto& h : m.hubs_) {
    const int idx = file.find_site(h);
    if (idx < 0) return invalid_argument("hubs: '" + h + "' is not a site of the sites file");
    m.is_hub_[static_cast<std::size_t>(idx)] = true;
  }
  m.have_hubs_ = !m.hubs_.empty();
  if (!options.spoke_summary.empty() && options.kind != TopologyKind::kHubSpoke) {
    return invalid_argument("spoke summary: only a hub-spoke topology has spokes");
  }
  m.spoke_summary_ = options.spoke_summary;
  m.g_ = std::make_unique<SiteGraph>(n);
  for (std::size_t v = 0; v < n; ++v) (*m.g_)[v] = std::move(file.sites[v]);

  switch (options.kind) {
    case TopologyKind::kFullMesh: {
      std::size_t endpoints = 0;
      for (std::size_t v = 0; v < n; ++v) endpoints += (*m.g_)[v].site.endpoints.size();
      m.paths_.reserve(endpoints == n ? n * (n - 1) / 2 : 0);
      for (std::size_t a = 0; a < n; ++a) {
        for (std::size_t b = a + 1; b < n; ++b) m.connect(a, b);
      }
      break;
    }
    case TopologyKind::kHubSpoke: {
      if (!m.have_hubs_) {
        return invalid_argument(
            "topology hub-spoke needs hubs (--hubs a,b or 'hubs:' in the file)");
      }
      for (std::size_t a = 0; a < n; ++a) {
        for (std::size_t b = a + 1; b < n; ++b) {
          if (m.is_hub_[a] || m.is_hub_[b]) m.connect(a, b);
        }
      }
      break;
    }
    case TopologyKind::kPartial: {
      if (options.k < 1) return invalid_argument("--k: must be at least 1");
      if (auto s = m.build_partial(options.k); !s.is_ok()) return s;
      break;
    }
    case TopologyKind::kExplicit: {
      if (file.links.empty()) {
        return invalid_argument("topology explicit needs 'links:' in the sites file");
      }
      for (std::size_t i = 0; i < file.links.size(); ++i) {
        const LinkSpec& l = file.links[i];
        const int ai = m.find_site(l.a_site);
        const int bi = m.find_site(l.b_site);
        if (ai < 0 || bi < 0 || ai == bi) {
          return invalid_argument("links[" + std::to_string(i) + "]: '" +
                                  (ai < 0 ? l.a_site : l.b_site) +
                                  (ai == bi ? "' is linked to itself" : "' is not a site"));
        }
        const auto a = static_cast<std::size_t>(ai);
        const auto b = static_cast<std::size_t>(bi);
        const int ea = endpoint_index((*m.g_)[a], l.a_endpoint);
        const int eb = endpoint_index((*m.g_)[b], l.b_endpoint);
        if (m.connect(a, b, ea, eb) == 0) {
          return invalid_argument("links[" + std::to_string(i) + "]: no compatible endpoint pair " +
                                  "between " + l.a_site +
                                  (l.a_endpoint.empty() ? "" : "/" + l.a_endpoint) + " and " +
                                  l.b_site + (l.b_endpoint.empty() ? "" : "/" + l.b_endpoint) +
                                  " (address family or endpoint-type rules)");
        }
      }
      break;
    }
  }
  // Peers that are not ours come last: the topology is among our sites; each peer is connected
  // to the sites that name it (or every site that can reach it), never to another peer.
  for (std::size_t i = 0; i < file.peers.size(); ++i) {
    PeerSpec& peer = file.peers[i];
    const std::size_t v = boost::add_vertex(std::move(peer.spec), *m.g_);
    m.is_hub_.push_back(false);
    std::size_t added = 0;
    for (std::size_t s = 0; s < n; ++s) {
      const std::string& name = (*m.g_)[s].site.name;
      const bool named = std::find(peer.sites.begin(), peer.sites.end(), name) != peer.sites.end();
      if (!peer.sites.empty() && !named) continue;
      const std::size_t here = m.connect(s, v);
      if (here == 0 && named) {
        return invalid_argument("peers[" + std::to_string(i) + "].sites: " + name +
                                " has no IPsec endpoint that can reach peer '" +
                                (*m.g_)[v].site.name + "' (transport, address family, type rules)");
      }
      added += here;
    }
    if (added == 0) {
      return invalid_argument("peers[" + std::to_string(i) + "]: no site has an IPsec endpoint " +
                              "that can reach peer '" + (*m.g_)[v].site.name + "'");
    }
  }
  return m;
}

// Each site first connects to its k best peers: nearest by great-circle distance when both sites
// have a location, otherwise cheapest (sum of cost_per_gb of the cheapest compatible endpoint
// pair). Then the repair step adds the best-ranked compatible site pair across every split
// (disconnected components, then bridges) until the graph is 2-edge-connected or no compatible
// pair can fix what is left.
Status MeshGraph::build_partial(int k) {
  const std::size_t n = num_sites();
  using Rank = std::tuple<int, double, double, std::size_t>;  // no-distance, km, cost, peer
  auto pair_rank = [&](std::size_t a, std::size_t b) -> std::optional<Rank> {
    double best_cost = std::numeric_limits<double>::infinity();
    const auto& ea = (*g_)[a].site.endpoints;
    const auto& eb = (*g_)[b].site.endpoints;
    for (std::size_t i = 0; i < ea.size(); ++i) {
      for (std::size_t j = 0; j < eb.size(); ++j) {
        if (compatible(a, i, b, j)) {
          best_cost = std::min(best_cost, ea[i].cost_per_gb + eb[j].cost_per_gb);
        }
      }
    }
    if (!std::isfinite(best_cost)) return std::nullopt;
    const auto& la = (*g_)[a].location;
    const auto& lb = (*g_)[b].location;
    if (la && lb) return Rank{0, distance_km(*la, *lb), best_cost, b};
    return Rank{1, 0.0, best_cost, b};
  };
  std::set<std::pair<std::size_t, std::size_t>> linked;
  auto link = [&](std::size_t a, std::size_t b) {
    if (a > b) std::swap(a, b);
    if (linked.insert({a, b}).second) connect(a, b);
  };
  for (std::size_t a = 0; a < n; ++a) {
    std::vector<Rank> cands;
    for (std::size_t b = 0; b < n; ++b) {
      if (b == a) continue;
      if (auto r = pair_rank(a, b)) cands.push_back(*r);
    }
    const std::size_t take = std::min(cands.size(), static_cast<std::size_t>(k));
    std::partial_sort(cands.begin(), cands.begin() + static_cast<std::ptrdiff_t>(take),
                      cands.end());
    for (std::size_t i = 0; i < take; ++i) link(a, std::get<3>(cands[i]));
  }
  // Best-ranked compatible, not yet linked pair with one site in `side` and one outside.
  auto best_across =
      [&](const std::vector<bool>& side) -> std::optional<std::pair<std::size_t, std::size_t>> {
    std::optional<Rank> best;
    std::size_t best_a = 0;
    for (std::size_t a = 0; a < n; ++a) {
      if (!side[a]) continue;
      for (std::size_t b = 0; b < n; ++b) {
        if (side[b] || linked.count({std::min(a, b), std::max(a, b)})) continue;
        auto r = pair_rank(a, b);
        if (r && (!best || *r < *best)) {
          best = r;
          best_a = a;
        }
      }
    }
    if (!best) return std::nullopt;
    return std::make_pair(best_a, std::get<3>(*best));
  };
  // 1. Join components.
  for (;;) {
    const Components c = connected_components(*this);
    if (c.count <= 1) break;
    bool joined = false;
    for (std::uint32_t comp = 0; comp < c.count && !joined; ++comp) {
      std::vector<bool> side(n);
      for (std::size_t v = 0; v < n; ++v) side[v] = c.of_site[v] == comp;
      if (auto p = best_across(side)) {
        link(p->first, p->second);
        ++repair_links_;
        joined = true;
      }
    }
    if (!joined) break;  // nothing compatible joins what is left
  }
  // 2. Remove bridges: for a bridge, add the best pair across the split it guards.
  std::set<std::uint32_t> hopeless;  // bridges no compatible pair can protect
  for (;;) {
    std::optional<std::uint32_t> bridge;
    for (auto id : bridge_paths(*this)) {
      if (!hopeless.count(id)) {
        bridge = id;
        break;
      }
    }
    if (!bridge) break;
    // The side of the bridge's source without the bridge.
    std::vector<bool> side(n);
    std::vector<std::size_t> stack{path_src(*bridge)};
    side[path_src(*bridge)] = true;
    while (!stack.empty()) {
      const std::size_t v = stack.back();
      stack.pop_back();
      for (auto [it, end] = boost::out_edges(v, *g_); it != end; ++it) {
        if ((*g_)[*it].id == *bridge || !(*g_)[*it].up) continue;
        const std::size_t w = boost::target(*it, *g_);
        if (!side[w]) {
          side[w] = true;
          stack.push_back(w);
        }
      }
    }
    if (auto p = best_across(side)) {
      link(p->first, p->second);
      ++repair_links_;
    } else {
      hopeless.insert(*bridge);
    }
  }
  return Status::ok();
}

}  // namespace patronus::mesh
