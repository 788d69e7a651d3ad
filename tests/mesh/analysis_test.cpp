// Topology analysis on small graphs with answers worked out by hand, plus a brute-force check of
// the all-pairs cut tree.
#include <gtest/gtest.h>

#include <random>

#include "mesh_fixtures.hpp"
#include "patronus/mesh/analysis.hpp"

namespace patronus::mesh {
namespace {

using test::make_sites;

// Sites s0..s(n-1) with endpoints e0, e1; links "a-b" (via e0) or "a=b" (two parallel paths:
// e0-e0 and e1-e1).
MeshGraph graph_of(std::size_t n, const std::vector<std::string>& links) {
  SitesFile f = make_sites(n, {{"e0"}, {"e1"}});
  for (const auto& l : links) {
    const auto sep = l.find_first_of("-=");
    const std::string a = "s" + l.substr(0, sep), b = "s" + l.substr(sep + 1);
    f.links.push_back({a, "e0", b, "e0"});
    if (l[sep] == '=') f.links.push_back({a, "e1", b, "e1"});
  }
  TopologyOptions o;
  o.kind = TopologyKind::kExplicit;
  auto m = MeshGraph::build(std::move(f), o);
  EXPECT_TRUE(m.is_ok()) << m.status().to_string();
  return std::move(m).value();
}

std::vector<std::string> keys(const MeshGraph& m, const std::vector<std::uint32_t>& ids) {
  std::vector<std::string> out;
  for (auto id : ids) out.push_back(m.path_key(id));
  return out;
}

TEST(Analysis, LineOfThree) {
  // s0 - s1 - s2: both paths are bridges, s1 is the articulation site, diameter 2.
  const MeshGraph m = graph_of(3, {"0-1", "1-2"});
  EXPECT_EQ(connected_components(m).count, 1u);
  EXPECT_EQ(articulation_sites(m), std::vector<std::uint32_t>{1});
  EXPECT_EQ(keys(m, bridge_paths(m)), (std::vector<std::string>{"s0:e0~s1:e0", "s1:e0~s2:e0"}));
  EXPECT_EQ(hop_diameter(m), 2u);
  std::vector<std::uint32_t> cut;
  EXPECT_EQ(disjoint_paths(m, 0, 2, &cut), 1u);
  EXPECT_EQ(cut.size(), 1u);
}

TEST(Analysis, SquareHasNoSinglePointOfFailure) {
  const MeshGraph m = graph_of(4, {"0-1", "1-2", "2-3", "3-0"});
  EXPECT_TRUE(articulation_sites(m).empty());
  EXPECT_TRUE(bridge_paths(m).empty());
  EXPECT_EQ(hop_diameter(m), 2u);
  for (std::uint32_t a = 0; a < 4; ++a) {
    for (std::uint32_t b = a + 1; b < 4; ++b) EXPECT_EQ(disjoint_paths(m, a, b), 2u);
  }
  const CutTree t(m);
  EXPECT_EQ(t.global_min(), 2u);
}

TEST(Analysis, BowtieCentreIsArticulationButNoBridges) {
  // Triangles s0 s1 s2 and s2 s3 s4 sharing s2.
  const MeshGraph m = graph_of(5, {"0-1", "1-2", "2-0", "2-3", "3-4", "4-2"});
  EXPECT_EQ(articulation_sites(m), std::vector<std::uint32_t>{2});
  EXPECT_TRUE(bridge_paths(m).empty());
  EXPECT_EQ(disjoint_paths(m, 0, 4), 2u);
  EXPECT_EQ(hop_diameter(m), 2u);
}

TEST(Analysis, ParallelPathsProtectEachOther) {
  // s0 = s1 (two paths), s1 - s2 (one): only s1-s2 is a bridge; s0..s1 has 2 disjoint paths.
  const MeshGraph m = graph_of(3, {"0=1", "1-2"});
  EXPECT_EQ(m.num_paths(), 3u);
  EXPECT_EQ(keys(m, bridge_paths(m)), std::vector<std::string>{"s1:e0~s2:e0"});
  EXPECT_EQ(articulation_sites(m), std::vector<std::uint32_t>{1});
  std::vector<std::uint32_t> cut;
  EXPECT_EQ(disjoint_paths(m, 0, 1, &cut), 2u);
  EXPECT_EQ(keys(m, cut), (std::vector<std::string>{"s0:e0~s1:e0", "s0:e1~s1:e1"}));
  EXPECT_EQ(disjoint_paths(m, 0, 2), 1u);
}

TEST(Analysis, DownPathsAreLeftOut) {
  MeshGraph m = graph_of(4, {"0-1", "1-2", "2-3", "3-0"});
  m.set_path_up(0, false);  // s0-s1 down: the square becomes a line s1-s2-s3-s0
  EXPECT_EQ(keys(m, bridge_paths(m)).size(), 3u);
  EXPECT_EQ(articulation_sites(m), (std::vector<std::uint32_t>{2, 3}));
  EXPECT_EQ(hop_diameter(m), 3u);
  m.set_path_up(2, false);  // s2-s3 down too: two components
  EXPECT_EQ(connected_components(m).count, 2u);
  EXPECT_FALSE(hop_diameter(m).has_value());
  EXPECT_EQ(disjoint_paths(m, 0, 1), 0u);
}

TEST(Analysis, DumbbellCut) {
  // Two squares joined by two paths s1-s4 and s2-s7: min cut between the squares is 2. Between
  // s1 and s7 (degree 3 each) the only minimum cut is exactly those two paths.
  const MeshGraph m =
      graph_of(8, {"0-1", "1-2", "2-3", "3-0", "4-5", "5-6", "6-7", "7-4", "1-4", "2-7"});
  std::vector<std::uint32_t> cut;
  EXPECT_EQ(disjoint_paths(m, 0, 6, &cut), 2u);
  EXPECT_EQ(cut.size(), 2u);
  EXPECT_EQ(disjoint_paths(m, 1, 7, &cut), 2u);
  EXPECT_EQ(keys(m, cut), (std::vector<std::string>{"s1:e0~s4:e0", "s2:e0~s7:e0"}));
  const CutTree t(m);
  EXPECT_EQ(t.min_cut(0, 6), 2u);
  EXPECT_EQ(t.min_cut(0, 2), 2u);
  EXPECT_EQ(t.global_min(), 2u);
}

TEST(Analysis, CutTreeMatchesPairwiseMaxFlow) {
  std::mt19937 rng(42);
  for (int trial = 0; trial < 30; ++trial) {
    const std::size_t n = 3 + rng() % 10;
    std::vector<std::string> links;
    for (std::size_t a = 0; a < n; ++a) {
      for (std::size_t b = a + 1; b < n; ++b) {
        const auto r = rng() % 10;
        if (r < 3) links.push_back(std::to_string(a) + "-" + std::to_string(b));
        if (r == 3) links.push_back(std::to_string(a) + "=" + std::to_string(b));
      }
    }
    if (links.empty()) continue;
    MeshGraph m = graph_of(n, links);
    for (std::uint32_t id = 0; id < m.num_paths(); ++id) {
      if (rng() % 8 == 0) m.set_path_up(id, false);
    }
    const CutTree t(m);
    std::uint32_t global = ~0u;
    for (std::uint32_t a = 0; a < n; ++a) {
      for (std::uint32_t b = a + 1; b < n; ++b) {
        const auto direct = disjoint_paths(m, a, b);
        ASSERT_EQ(t.min_cut(a, b), direct) << "trial " << trial << " pair " << a << "," << b;
        ASSERT_EQ(t.min_cut(b, a), direct);
        global = std::min(global, direct);
      }
    }
    EXPECT_EQ(t.global_min(), global);
    const auto [wa, wb] = t.weakest_pair();
    EXPECT_EQ(disjoint_paths(m, wa, wb), global);
  }
}

TEST(Analysis, BestRouteUsesScoresAndAvoidsDownPaths) {
  // Square s0-s1-s2-s3-s0 plus diagonal s0-s2.
  MeshGraph m = graph_of(4, {"0-1", "1-2", "2-3", "3-0", "0-2"});
  auto r = best_route(m, 0, 2);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->sites, (std::vector<std::uint32_t>{0, 2}));
  EXPECT_EQ(r->weight, weight_of_score(100));
  // The diagonal goes down: one relay, through s1 (tie with s3 broken by lower weight below).
  m.set_path_up(4, false);
  m.set_path_score(2, 90);  // s2-s3 worse
  r = best_route(m, 0, 2);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->sites, (std::vector<std::uint32_t>{0, 1, 2}));
  EXPECT_EQ(keys(m, r->paths), (std::vector<std::string>{"s0:e0~s1:e0", "s1:e0~s2:e0"}));
  EXPECT_EQ(r->weight, 2u * weight_of_score(100));
  // s1-s2 badly degraded: the route goes through s3 instead.
  m.set_path_score(1, 10);
  r = best_route(m, 0, 2);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->sites, (std::vector<std::uint32_t>{0, 3, 2}));
  EXPECT_EQ(r->weight, weight_of_score(100) + weight_of_score(90));
  // Cut s2 off entirely.
  m.set_path_up(1, false);
  m.set_path_up(2, false);
  EXPECT_FALSE(best_route(m, 0, 2).has_value());
}

TEST(Analysis, WeightOfScore) {
  EXPECT_EQ(weight_of_score(100), 1000u);
  EXPECT_EQ(weight_of_score(99), 2000u);
  EXPECT_EQ(weight_of_score(0), 101000u);
  EXPECT_EQ(weight_of_score(-5), 101000u);
  EXPECT_EQ(weight_of_score(250), 1000u);
}

}  // namespace
}  // namespace patronus::mesh
