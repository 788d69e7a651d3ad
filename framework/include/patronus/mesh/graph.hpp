// The site mesh as a Boost.Graph: vertices are sites (bundled SiteSpec), edges are candidate
// paths (bundled PathEdge), one per compatible endpoint pair of two connected sites. Parallel
// edges are real: two sites with two WAN links each have up to four paths between them.
#pragma once

#include <boost/graph/adjacency_list.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "patronus/mesh/sites.hpp"
#include "patronus/util/status.hpp"

namespace patronus::mesh {

// Routing weight of a path with a given score (0..100, higher is better): 1000 for a perfect path
// plus 1000 per missing score point, so a relay through two perfect paths (2000) ties with one
// direct path of score 99.
std::uint32_t weight_of_score(double score);

struct PathEdge {
  std::uint32_t id = 0;        // dense index 0..num_paths-1 in creation order
  std::uint32_t src_site = 0;  // vertex index of the side listed first
  std::uint8_t src_endpoint = 0;
  std::uint8_t dst_endpoint = 0;
  bool up = true;
  float score = 100.0F;  // latest score (100 until measured)
};

using SiteGraph =
    boost::adjacency_list<boost::vecS, boost::vecS, boost::undirectedS, SiteSpec, PathEdge>;
using SiteVertex = boost::graph_traits<SiteGraph>::vertex_descriptor;
using PathDescriptor = boost::graph_traits<SiteGraph>::edge_descriptor;

enum class TopologyKind { kFullMesh, kHubSpoke, kPartial, kExplicit };
const char* to_string(TopologyKind k);
Result<TopologyKind> parse_topology(std::string_view text);

struct TopologyOptions {
  TopologyKind kind = TopologyKind::kFullMesh;
  std::vector<std::string> hubs;  // overrides the file's hubs when non-empty
  int k = 2;                      // partial: peers per site before repair
  // Hub-spoke only: what a spoke reaches through the hubs (the fleet's LAN supernets). With it,
  // a spoke's plan names its hubs and one summary entry relayed by them (kSummarySite), not every
  // other spoke, so adding a spoke changes the plans of the hubs and the new spoke only.
  std::vector<model::IpPrefix> spoke_summary;
};

// The remote-site name of a spoke's summary entry (not a DNS label: no site can be named so).
inline constexpr const char* kSummarySite = "~hubs";

class MeshGraph {
 public:
  // Builds the topology over the file's sites. Errors: hub-spoke without hubs, unknown hub,
  // explicit without links, k < 1, a link whose endpoints are incompatible.
  static Result<MeshGraph> build(SitesFile file, const TopologyOptions& options);

  // Move-only: path descriptors point into the graph, which Boost's adjacency_list cannot move
  // (it copies), so the graph lives on the heap and moves with its owner.
  MeshGraph(MeshGraph&&) noexcept = default;
  MeshGraph& operator=(MeshGraph&&) noexcept = default;
  MeshGraph(const MeshGraph&) = delete;
  MeshGraph& operator=(const MeshGraph&) = delete;

  const SiteGraph& graph() const { return *g_; }
  std::size_t num_sites() const { return boost::num_vertices(*g_); }
  std::size_t num_paths() const { return paths_.size(); }
  const SiteSpec& site(std::size_t v) const { return (*g_)[v]; }
  const PathEdge& path(std::uint32_t id) const { return (*g_)[paths_[id]]; }
  std::uint32_t path_src(std::uint32_t id) const { return path(id).src_site; }
  std::uint32_t path_dst(std::uint32_t id) const;
  // "src-site:src-endpoint~dst-site:dst-endpoint", unique and stable for the same sites file.
  std::string path_key(std::uint32_t id) const;
  const OverlaySettings& overlay() const { return overlay_; }
  const std::vector<std::string>& hubs() const { return hubs_; }
  const std::vector<model::IpPrefix>& spoke_summary() const { return spoke_summary_; }
  bool is_hub(std::size_t v) const { return is_hub_[v]; }
  TopologyKind topology() const { return kind_; }
  int find_site(std::string_view name) const;
  // Site-pair edges added by the partial topology's repair step (to reach 2-edge-connectivity).
  std::size_t repair_links() const { return repair_links_; }

  // Measurements arrive: update one path (routing tables listen through RelayRoutes).
  void set_path_score(std::uint32_t id, double score) {
    (*g_)[paths_[id]].score = static_cast<float>(score);
  }
  void set_path_up(std::uint32_t id, bool up) { (*g_)[paths_[id]].up = up; }
  // Public keys live with the sites (SiteSpec::public_keys); the plan fills the missing ones.
  std::string& public_key(std::size_t site, std::size_t endpoint) {
    return (*g_)[site].public_keys[endpoint];
  }
  std::string& next_public_key(std::size_t site, std::size_t endpoint) {
    auto& v = (*g_)[site].next_public_keys;
    if (v.size() <= endpoint) v.resize((*g_)[site].public_keys.size());
    return v[endpoint];
  }

  // Whether two endpoints may form a path (address family, type rules, hubs_only).
  bool compatible(std::size_t site_a, std::size_t ep_a, std::size_t site_b, std::size_t ep_b) const;
  // Adds every compatible endpoint pair of two sites (or of the pinned endpoints); returns how
  // many paths were added.
  std::size_t connect(std::size_t a, std::size_t b, int a_endpoint = -1, int b_endpoint = -1);

 private:
  MeshGraph() = default;
  Status build_partial(int k);

  std::unique_ptr<SiteGraph> g_;
  std::vector<PathDescriptor> paths_;
  std::vector<bool> is_hub_;
  std::vector<std::string> hubs_;
  std::vector<model::IpPrefix> spoke_summary_;
  EndpointRules rules_;
  OverlaySettings overlay_;
  TopologyKind kind_ = TopologyKind::kFullMesh;
  bool have_hubs_ = false;
  std::size_t repair_links_ = 0;
};

}  // namespace patronus::mesh
