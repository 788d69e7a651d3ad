// All-pairs best route with at most one relay site, kept current incrementally.
//
// For every site pair (a, b) the table holds the cheapest of the direct route (the best up path
// between a and b) and every one-relay route a -> r -> b, with weights from path scores
// (weight_of_score). Ties go to the direct route, then to the lowest relay index, so a full
// recompute and any sequence of incremental updates give identical tables.
//
// Incremental update after one path changes (score or up/down): only the site-pair weight w(a,b)
// can change, and it appears in the direct route of (a,b), in relay routes (a, y) via b and in
// (x, b) via a. Each of those pairs is fixed in O(1) unless its current best used the changed
// pair and got worse, in which case that one pair is recomputed in O(n).
#pragma once

#include <cstdint>
#include <vector>

#include "patronus/mesh/graph.hpp"

namespace patronus::mesh {

class RelayRoutes {
 public:
  static constexpr std::uint32_t kInf = 0x3FFFFFFF;  // unreachable; kInf + kInf fits in 32 bits
  static constexpr std::uint32_t kDirect = 0xFFFFFFFF;

  struct Best {
    std::uint32_t cost = kInf;
    std::uint32_t relay = kDirect;  // kDirect, or the relay site's vertex index
    friend bool operator==(const Best& a, const Best& b) {
      return a.cost == b.cost && a.relay == b.relay;
    }
  };

  explicit RelayRoutes(const MeshGraph& m);

  // Recomputes every pair from the graph (O(n^3 / 2) with a vectorisable inner loop).
  void recompute_all(const MeshGraph& m);
  // Brings the table up to date after path `id` changed in `m`. Returns the number of site pairs
  // whose best route was re-evaluated from scratch (O(n) each).
  std::size_t path_changed(const MeshGraph& m, std::uint32_t id);

  Best best(std::uint32_t a, std::uint32_t b) const { return best_[index(a, b)]; }
  std::size_t num_sites() const { return n_; }
  bool same_as(const RelayRoutes& other) const { return best_ == other.best_ && w_ == other.w_; }

 private:
  std::size_t index(std::uint32_t a, std::uint32_t b) const { return std::size_t{a} * n_ + b; }
  std::uint32_t pair_weight(const MeshGraph& m, std::uint32_t a, std::uint32_t b) const;
  Best compute_pair(std::uint32_t a, std::uint32_t b) const;
  void set_pair(std::uint32_t a, std::uint32_t b, Best v) {
    best_[index(a, b)] = v;
    best_[index(b, a)] = v;
  }
  // Offers the route a -> via -> b with `cost` to pair (a, b); returns true if it had to
  // recompute the pair.
  bool offer(std::uint32_t a, std::uint32_t b, std::uint32_t via, std::uint32_t cost);

  std::size_t n_ = 0;
  std::vector<std::uint32_t> w_;  // symmetric site-pair weights, 0 on the diagonal
  std::vector<Best> best_;        // symmetric
};

}  // namespace patronus::mesh
