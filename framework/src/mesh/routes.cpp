#include "patronus/mesh/routes.hpp"

#include <algorithm>

namespace patronus::mesh {

RelayRoutes::RelayRoutes(const MeshGraph& m) {
  recompute_all(m);
}

std::uint32_t RelayRoutes::pair_weight(const MeshGraph& m, std::uint32_t a, std::uint32_t b) const {
  std::uint32_t best = kInf;
  const SiteGraph& g = m.graph();
  // Scan the endpoint with fewer paths.
  const auto da = boost::out_degree(a, g);
  const auto db = boost::out_degree(b, g);
  const std::uint32_t from = da <= db ? a : b;
  const std::uint32_t to = da <= db ? b : a;
  for (auto [it, end] = boost::out_edges(from, g); it != end; ++it) {
    if (boost::target(*it, g) != to) continue;
    const PathEdge& p = g[*it];
    if (p.up) best = std::min(best, std::min(weight_of_score(p.score), kInf));
  }
  return best;
}

RelayRoutes::Best RelayRoutes::compute_pair(std::uint32_t a, std::uint32_t b) const {
  const std::uint32_t* ra = &w_[index(a, 0)];
  const std::uint32_t* rb = &w_[index(b, 0)];
  // Pass 1: the minimum over relays (branch-free, vectorises).
  std::uint32_t m = kInf + kInf;
  for (std::size_t r = 0; r < n_; ++r) {
    const std::uint32_t c = ra[r] + rb[r];
    m = c < m ? c : m;
  }
  Best out{ra[b], kDirect};  // w(a,a) = 0, so r = a or r = b reproduce the direct cost
  if (m >= kInf || m >= out.cost) return out;
  // Pass 2: the lowest relay index reaching it.
  for (std::uint32_t r = 0; r < n_; ++r) {
    if (ra[r] + rb[r] == m) return Best{m, r};
  }
  return out;
}

void RelayRoutes::recompute_all(const MeshGraph& m) {
  n_ = m.num_sites();
  w_.assign(n_ * n_, kInf);
  best_.assign(n_ * n_, Best{});
  for (std::uint32_t v = 0; v < n_; ++v) w_[index(v, v)] = 0;
  for (std::uint32_t id = 0; id < m.num_paths(); ++id) {
    const PathEdge& p = m.path(id);
    if (!p.up) continue;
    const std::uint32_t a = p.src_site;
    const std::uint32_t b = m.path_dst(id);
    const std::uint32_t w = std::min(weight_of_score(p.score), kInf);
    if (w < w_[index(a, b)]) {
      w_[index(a, b)] = w;
      w_[index(b, a)] = w;
    }
  }
  for (std::uint32_t a = 0; a < n_; ++a) {
    best_[index(a, a)] = Best{0, kDirect};
    for (std::uint32_t b = a + 1; b < n_; ++b) set_pair(a, b, compute_pair(a, b));
  }
}

bool RelayRoutes::offer(std::uint32_t a, std::uint32_t b, std::uint32_t via, std::uint32_t cost) {
  if (a == b) return false;
  const Best cur = best_[index(a, b)];
  const bool cur_uses_via = cur.relay == via;
  // Rank: (cost, direct first, then relay index).
  auto better = [](std::uint32_t c1, std::uint32_t r1, std::uint32_t c2, std::uint32_t r2) {
    if (c1 != c2) return c1 < c2;
    if (r1 == kDirect || r2 == kDirect) return r1 == kDirect && r2 != kDirect;
    return r1 < r2;
  };
  if (cur_uses_via) {
    if (cost <= cur.cost) {
      // The best route got cheaper (or stayed): still the best, everything else is unchanged.
      set_pair(a, b, Best{cost, via});
      return false;
    }
    set_pair(a, b, compute_pair(a, b));  // it got worse: another route may win now
    return true;
  }
  if (cost < kInf && better(cost, via, cur.cost, cur.relay)) set_pair(a, b, Best{cost, via});
  return false;
}

std::size_t RelayRoutes::path_changed(const MeshGraph& m, std::uint32_t id) {
  const std::uint32_t a = m.path_src(id);
  const std::uint32_t b = m.path_dst(id);
  const std::uint32_t old_w = w_[index(a, b)];
  const std::uint32_t new_w = pair_weight(m, a, b);
  if (old_w == new_w) return 0;
  w_[index(a, b)] = new_w;
  w_[index(b, a)] = new_w;
  std::size_t recomputed = 1;
  // The direct route of (a, b) changed: recompute that pair.
  set_pair(a, b, compute_pair(a, b));
  // Relay routes through the changed pair: (a, y) via b and (x, b) via a.
  for (std::uint32_t y = 0; y < n_; ++y) {
    if (y == a || y == b) continue;
    recomputed += offer(a, y, b, new_w + w_[index(b, y)]);
    recomputed += offer(y, b, a, w_[index(y, a)] + new_w);
  }
  return recomputed;
}

}  // namespace patronus::mesh
