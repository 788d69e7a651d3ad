#include "patronus/mesh/analysis.hpp"

#include <algorithm>
#include <boost/graph/biconnected_components.hpp>
#include <boost/graph/breadth_first_search.hpp>
#include <boost/graph/connected_components.hpp>
#include <boost/graph/dijkstra_shortest_paths.hpp>
#include <boost/graph/edmonds_karp_max_flow.hpp>
#include <boost/graph/filtered_graph.hpp>
#include <boost/property_map/function_property_map.hpp>
#include <deque>
#include <iterator>
#include <limits>
#include <map>

namespace patronus::mesh {

namespace {

struct UpPaths {
  const SiteGraph* g = nullptr;
  bool operator()(const PathDescriptor& e) const { return (*g)[e].up; }
};
using UpGraph = boost::filtered_graph<SiteGraph, UpPaths>;

UpGraph up_graph(const MeshGraph& m) {
  return UpGraph(m.graph(), UpPaths{&m.graph()});
}

// The flow network for edge-disjoint path counts: one arc pair per connected site pair, each
// arc the other's reverse with capacity = number of up paths between the two sites (the standard
// construction for undirected capacities).
using FlowTraits = boost::adjacency_list_traits<boost::vecS, boost::vecS, boost::directedS>;
using FlowGraph = boost::adjacency_list<
    boost::vecS, boost::vecS, boost::directedS, boost::no_property,
    boost::property<
        boost::edge_capacity_t, long,
        boost::property<boost::edge_residual_capacity_t, long,
                        boost::property<boost::edge_reverse_t, FlowTraits::edge_descriptor>>>>;

FlowGraph flow_graph(const MeshGraph& m) {
  std::map<std::pair<std::uint32_t, std::uint32_t>, long> pairs;
  for (std::uint32_t id = 0; id < m.num_paths(); ++id) {
    if (!m.path(id).up) continue;
    auto a = m.path_src(id);
    auto b = m.path_dst(id);
    if (a > b) std::swap(a, b);
    ++pairs[{a, b}];
  }
  FlowGraph f(m.num_sites());
  auto cap = boost::get(boost::edge_capacity, f);
  auto rev = boost::get(boost::edge_reverse, f);
  for (const auto& [ab, count] : pairs) {
    const auto e1 = boost::add_edge(ab.first, ab.second, f).first;
    const auto e2 = boost::add_edge(ab.second, ab.first, f).first;
    cap[e1] = count;
    cap[e2] = count;
    rev[e1] = e2;
    rev[e2] = e1;
  }
  return f;
}

// Max flow s->t on `f`; `side` (if given) receives the sites reachable from s in the residual
// network: the s side of a minimum cut.
long max_flow(FlowGraph& f, std::uint32_t s, std::uint32_t t, std::vector<bool>* side) {
  const long value = boost::edmonds_karp_max_flow(f, s, t);
  if (side) {
    auto res = boost::get(boost::edge_residual_capacity, f);
    side->assign(boost::num_vertices(f), false);
    std::vector<std::uint32_t> stack{s};
    (*side)[s] = true;
    while (!stack.empty()) {
      const auto v = stack.back();
      stack.pop_back();
      for (auto [it, end] = boost::out_edges(v, f); it != end; ++it) {
        const auto w = static_cast<std::uint32_t>(boost::target(*it, f));
        if (res[*it] > 0 && !(*side)[w]) {
          (*side)[w] = true;
          stack.push_back(w);
        }
      }
    }
  }
  return value;
}

}  // namespace

Components connected_components(const MeshGraph& m) {
  Components c;
  c.of_site.assign(m.num_sites(), 0);
  if (m.num_sites() == 0) return c;
  const UpGraph g = up_graph(m);
  c.count = static_cast<std::uint32_t>(boost::connected_components(g, c.of_site.data()));
  return c;
}

std::vector<std::uint32_t> articulation_sites(const MeshGraph& m) {
  const UpGraph g = up_graph(m);
  std::vector<SiteVertex> out;
  // Multiplicity of edges does not change which vertices are cut vertices, so Boost's
  // articulation_points (which skips parallel edges back to the DFS parent) is exact here.
  boost::articulation_points(g, std::back_inserter(out));
  std::vector<std::uint32_t> r(out.begin(), out.end());
  std::sort(r.begin(), r.end());
  r.erase(std::unique(r.begin(), r.end()), r.end());
  return r;
}

// Tarjan's bridge finding, iterative, skipping the tree edge by its id rather than by the parent
// vertex so that a parallel path back to the parent counts as a back edge (Boost's
// biconnected_components compares vertices and would report doubled links as bridges).
std::vector<std::uint32_t> bridge_paths(const MeshGraph& m) {
  const SiteGraph& g = m.graph();
  const std::size_t n = m.num_sites();
  constexpr std::uint32_t kUnseen = std::numeric_limits<std::uint32_t>::max();
  std::vector<std::uint32_t> disc(n, kUnseen), low(n, 0);
  std::vector<std::uint32_t> out;
  struct Frame {
    std::size_t v;
    std::uint32_t via;  // path id of the tree edge into v (kUnseen for a root)
    boost::graph_traits<SiteGraph>::out_edge_iterator it, end;
  };
  std::uint32_t time = 0;
  std::vector<Frame> stack;
  for (std::size_t root = 0; root < n; ++root) {
    if (disc[root] != kUnseen) continue;
    disc[root] = low[root] = time++;
    auto [b, e] = boost::out_edges(root, g);
    stack.push_back({root, kUnseen, b, e});
    while (!stack.empty()) {
      Frame& f = stack.back();
      if (f.it != f.end) {
        const auto edge = *f.it++;
        const PathEdge& p = g[edge];
        if (!p.up || p.id == f.via) continue;
        const std::size_t w = boost::target(edge, g);
        if (disc[w] == kUnseen) {
          disc[w] = low[w] = time++;
          auto [wb, we] = boost::out_edges(w, g);
          stack.push_back({w, p.id, wb, we});
        } else {
          low[f.v] = std::min(low[f.v], disc[w]);
        }
        continue;
      }
      const Frame done = f;
      stack.pop_back();
      if (!stack.empty()) {
        Frame& parent = stack.back();
        low[parent.v] = std::min(low[parent.v], low[done.v]);
        if (low[done.v] > disc[parent.v]) out.push_back(done.via);
      }
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::uint32_t disjoint_paths(const MeshGraph& m, std::uint32_t s, std::uint32_t t,
                             std::vector<std::uint32_t>* cut) {
  if (s == t) return 0;
  FlowGraph f = flow_graph(m);
  std::vector<bool> side;
  const long value = max_flow(f, s, t, cut ? &side : nullptr);
  if (cut) {
    cut->clear();
    for (std::uint32_t id = 0; id < m.num_paths(); ++id) {
      if (m.path(id).up && side[m.path_src(id)] != side[m.path_dst(id)]) cut->push_back(id);
    }
  }
  return static_cast<std::uint32_t>(value);
}

// Gusfield's algorithm: n-1 max flows give a Gomory-Hu tree; the min cut between any two sites
// is the lightest tree edge on the tree path between them.
CutTree::CutTree(const MeshGraph& m) {
  const std::uint32_t n = static_cast<std::uint32_t>(m.num_sites());
  parent_.assign(n, 0);
  weight_.assign(n, 0);
  if (n < 2) return;
  FlowGraph f = flow_graph(m);
  std::vector<bool> side;
  for (std::uint32_t s = 1; s < n; ++s) {
    const std::uint32_t t = parent_[s];
    const auto value = static_cast<std::uint32_t>(max_flow(f, s, t, &side));
    weight_[s] = value;
    for (std::uint32_t i = 0; i < n; ++i) {
      if (i != s && side[i] && parent_[i] == t) parent_[i] = s;
    }
    if (side[parent_[t]] && t != parent_[t]) {
      parent_[s] = parent_[t];
      parent_[t] = s;
      weight_[s] = weight_[t];
      weight_[t] = value;
    }
  }
  global_min_ = std::numeric_limits<std::uint32_t>::max();
  for (std::uint32_t v = 0; v < n; ++v) {
    if (parent_[v] == v) continue;  // the root
    if (weight_[v] < global_min_) {
      global_min_ = weight_[v];
      weakest_ = {std::min(v, parent_[v]), std::max(v, parent_[v])};
    }
  }
}

std::uint32_t CutTree::min_cut(std::uint32_t a, std::uint32_t b) const {
  if (a == b || parent_.empty()) return 0;
  // Depth of each node on the way to the root (the tree is small; walk it).
  auto depth = [&](std::uint32_t v) {
    std::uint32_t d = 0;
    while (parent_[v] != v) {
      v = parent_[v];
      ++d;
    }
    return d;
  };
  std::uint32_t da = depth(a), db = depth(b);
  std::uint32_t best = std::numeric_limits<std::uint32_t>::max();
  while (da > db) {
    best = std::min(best, weight_[a]);
    a = parent_[a];
    --da;
  }
  while (db > da) {
    best = std::min(best, weight_[b]);
    b = parent_[b];
    --db;
  }
  while (a != b) {
    best = std::min({best, weight_[a], weight_[b]});
    a = parent_[a];
    b = parent_[b];
  }
  return best;
}

std::optional<std::uint32_t> hop_diameter(const MeshGraph& m) {
  const std::size_t n = m.num_sites();
  // Neighbour lists without parallel paths: hop counts only need one edge per site pair.
  std::vector<std::vector<std::uint32_t>> adj(n);
  for (std::uint32_t id = 0; id < m.num_paths(); ++id) {
    if (!m.path(id).up) continue;
    adj[m.path_src(id)].push_back(m.path_dst(id));
    adj[m.path_dst(id)].push_back(m.path_src(id));
  }
  for (auto& a : adj) {
    std::sort(a.begin(), a.end());
    a.erase(std::unique(a.begin(), a.end()), a.end());
  }
  std::uint32_t diameter = 0;
  std::vector<std::uint32_t> dist(n);
  std::deque<std::uint32_t> queue;
  for (std::uint32_t s = 0; s < n; ++s) {
    if (adj[s].size() + 1 == n) {  // adjacent to everyone: eccentricity 1 (or 0 alone)
      diameter = std::max<std::uint32_t>(diameter, n > 1 ? 1 : 0);
      continue;
    }
    std::fill(dist.begin(), dist.end(), std::numeric_limits<std::uint32_t>::max());
    dist[s] = 0;
    queue.assign(1, s);
    std::size_t seen = 1;
    while (!queue.empty()) {
      const auto v = queue.front();
      queue.pop_front();
      for (auto w : adj[v]) {
        if (dist[w] == std::numeric_limits<std::uint32_t>::max()) {
          dist[w] = dist[v] + 1;
          diameter = std::max(diameter, dist[w]);
          queue.push_back(w);
          ++seen;
        }
      }
    }
    if (seen != n) return std::nullopt;
  }
  return diameter;
}

std::optional<Route> best_route(const MeshGraph& m, std::uint32_t src, std::uint32_t dst) {
  const UpGraph g = up_graph(m);
  const std::size_t n = m.num_sites();
  if (src >= n || dst >= n) return std::nullopt;
  std::vector<std::uint64_t> dist(n);
  std::vector<PathDescriptor> via(n);
  std::vector<bool> has_via(n, false);
  const SiteGraph& sg = m.graph();
  auto weight = boost::make_function_property_map<PathDescriptor, std::uint64_t>(
      [&sg](const PathDescriptor& e) -> std::uint64_t { return weight_of_score(sg[e].score); });
  struct RecordVia : boost::default_dijkstra_visitor {
    std::vector<PathDescriptor>* via;
    std::vector<bool>* has;
    void edge_relaxed(const PathDescriptor& e, const UpGraph& g) const {
      const auto t = boost::target(e, g);
      (*via)[t] = e;
      (*has)[t] = true;
    }
  };
  RecordVia vis;
  vis.via = &via;
  vis.has = &has_via;
  boost::dijkstra_shortest_paths(g, src,
                                 boost::weight_map(weight)
                                     .distance_map(boost::make_iterator_property_map(
                                         dist.begin(), boost::get(boost::vertex_index, g)))
                                     .visitor(vis));
  if (src != dst && !has_via[dst]) return std::nullopt;
  Route r;
  r.weight = dist[dst];
  std::uint32_t v = dst;
  r.sites.push_back(v);
  while (v != src) {
    const PathDescriptor e = via[v];
    r.paths.push_back(sg[e].id);
    const auto a = static_cast<std::uint32_t>(boost::source(e, sg));
    const auto b = static_cast<std::uint32_t>(boost::target(e, sg));
    v = a == v ? b : a;
    r.sites.push_back(v);
  }
  std::reverse(r.sites.begin(), r.sites.end());
  std::reverse(r.paths.begin(), r.paths.end());
  return r;
}

}  // namespace patronus::mesh
