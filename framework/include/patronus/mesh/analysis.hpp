// Topology analysis over the mesh graph: connectivity, single points of failure (bridge paths and
// articulation sites), edge-disjoint path counts and minimum cuts between sites, the hop
// diameter, and the best relay route when paths are down (Dijkstra over score-derived weights).
// Paths that are down are left out of every analysis.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "patronus/mesh/graph.hpp"

namespace patronus::mesh {

// Connected components: component index per site, and the number of components.
struct Components {
  std::vector<std::uint32_t> of_site;
  std::uint32_t count = 0;
};
Components connected_components(const MeshGraph& m);

// Sites whose loss disconnects the rest of the mesh (sorted vertex indices).
std::vector<std::uint32_t> articulation_sites(const MeshGraph& m);

// Paths whose loss alone disconnects two sites (sorted path ids). Parallel paths between the same
// two sites protect each other: neither is a bridge.
std::vector<std::uint32_t> bridge_paths(const MeshGraph& m);

// Maximum number of edge-disjoint paths between two sites, which equals the size of a minimum
// path cut between them (Menger). When `cut` is given it receives one minimum cut (path ids).
std::uint32_t disjoint_paths(const MeshGraph& m, std::uint32_t s, std::uint32_t t,
                             std::vector<std::uint32_t>* cut = nullptr);

// All-pairs minimum cut values from n-1 max-flow runs (Gusfield's equivalent flow tree).
class CutTree {
 public:
  explicit CutTree(const MeshGraph& m);
  // Minimum number of paths whose loss separates a and b (0 if already disconnected).
  std::uint32_t min_cut(std::uint32_t a, std::uint32_t b) const;
  // The smallest min cut over all pairs (the mesh's edge connectivity) and a pair attaining it.
  std::uint32_t global_min() const { return global_min_; }
  std::pair<std::uint32_t, std::uint32_t> weakest_pair() const { return weakest_; }

 private:
  std::vector<std::uint32_t> parent_;
  std::vector<std::uint32_t> weight_;
  std::uint32_t global_min_ = 0;
  std::pair<std::uint32_t, std::uint32_t> weakest_{0, 0};
};

// Largest number of path hops between two connected sites; nullopt if a pair is disconnected.
std::optional<std::uint32_t> hop_diameter(const MeshGraph& m);

// The lowest-weight route between two sites over up paths, any number of relays.
struct Route {
  std::uint64_t weight = 0;
  std::vector<std::uint32_t> sites;  // src ... dst
  std::vector<std::uint32_t> paths;  // sites.size() - 1 path ids
};
std::optional<Route> best_route(const MeshGraph& m, std::uint32_t src, std::uint32_t dst);

}  // namespace patronus::mesh
