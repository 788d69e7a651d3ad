// One-relay route table: brute force on small meshes, and incremental updates that always equal
// a full recompute.
#include <gtest/gtest.h>

#include <random>

#include "mesh_fixtures.hpp"
#include "patronus/mesh/routes.hpp"

namespace patronus::mesh {
namespace {

MeshGraph full_mesh(std::size_t n, const std::vector<test::EndpointDef>& eps = {{"wan0"}}) {
  TopologyOptions o;
  auto m = MeshGraph::build(test::make_sites(n, eps), o);
  EXPECT_TRUE(m.is_ok());
  return std::move(m).value();
}

// The definition, spelled out.
RelayRoutes::Best brute(const MeshGraph& m, std::uint32_t a, std::uint32_t b) {
  const std::size_t n = m.num_sites();
  std::vector<std::uint32_t> w(n * n, RelayRoutes::kInf);
  for (std::uint32_t v = 0; v < n; ++v) w[v * n + v] = 0;
  for (std::uint32_t id = 0; id < m.num_paths(); ++id) {
    if (!m.path(id).up) continue;
    const auto x = m.path_src(id), y = m.path_dst(id);
    const auto c = weight_of_score(m.path(id).score);
    w[x * n + y] = std::min(w[x * n + y], c);
    w[y * n + x] = std::min(w[y * n + x], c);
  }
  RelayRoutes::Best best{w[a * n + b], RelayRoutes::kDirect};
  for (std::uint32_t r = 0; r < n; ++r) {
    if (r == a || r == b) continue;
    const std::uint32_t c = w[a * n + r] + w[r * n + b];
    if (c < RelayRoutes::kInf && c < best.cost) best = {c, r};
  }
  if (best.cost > RelayRoutes::kInf) best.cost = RelayRoutes::kInf;
  return best;
}

TEST(RelayRoutes, MatchesBruteForce) {
  std::mt19937 rng(3);
  MeshGraph m = full_mesh(12, {{"wan0"}, {"wan1"}});
  for (std::uint32_t id = 0; id < m.num_paths(); ++id) {
    m.set_path_score(id, rng() % 101);
    if (rng() % 3 == 0) m.set_path_up(id, false);
  }
  const RelayRoutes t(m);
  for (std::uint32_t a = 0; a < 12; ++a) {
    for (std::uint32_t b = 0; b < 12; ++b) {
      if (a == b) continue;
      const auto want = brute(m, a, b);
      const auto got = t.best(a, b);
      EXPECT_EQ(got.cost, want.cost) << a << "," << b;
      EXPECT_EQ(got.relay, want.relay) << a << "," << b;
    }
  }
}

TEST(RelayRoutes, DirectDownUsesOneRelay) {
  MeshGraph m = full_mesh(4);
  RelayRoutes t(m);
  EXPECT_EQ(t.best(0, 1).relay, RelayRoutes::kDirect);
  EXPECT_EQ(t.best(0, 1).cost, 1000u);
  m.set_path_up(0, false);  // s0-s1
  EXPECT_EQ(t.path_changed(m, 0) > 0, true);
  EXPECT_EQ(t.best(0, 1).relay, 2u);  // lowest relay index among equals
  EXPECT_EQ(t.best(0, 1).cost, 2000u);
  m.set_path_score(1, 50);  // s0-s2 degraded: relay s3 is now better
  t.path_changed(m, 1);
  EXPECT_EQ(t.best(0, 1).relay, 3u);
  m.set_path_up(0, true);
  t.path_changed(m, 0);
  EXPECT_EQ(t.best(0, 1).relay, RelayRoutes::kDirect);
}

TEST(RelayRoutes, IncrementalEqualsFullRecompute) {
  std::mt19937 rng(11);
  for (std::size_t n : {2u, 3u, 7u, 40u}) {
    MeshGraph m = full_mesh(n, {{"wan0"}, {"wan1"}});
    for (std::uint32_t id = 0; id < m.num_paths(); ++id) m.set_path_score(id, rng() % 101);
    RelayRoutes inc(m);
    for (int step = 0; step < 400; ++step) {
      const std::uint32_t id = rng() % m.num_paths();
      switch (rng() % 4) {
        case 0:
          m.set_path_up(id, !m.path(id).up);
          break;
        case 1:
          m.set_path_score(id, 100);
          break;
        default:
          m.set_path_score(id, rng() % 101);
      }
      inc.path_changed(m, id);
      const RelayRoutes full(m);
      ASSERT_TRUE(inc.same_as(full)) << "n=" << n << " step " << step;
    }
  }
}

TEST(RelayRoutes, IncrementalTouchesFewPairs) {
  MeshGraph m = full_mesh(200);
  RelayRoutes t(m);
  // Improving a path never forces a pair to be recomputed from scratch beyond (a, b) itself.
  m.set_path_score(17, 100);
  EXPECT_EQ(t.path_changed(m, 17), 0u);  // unchanged weight: nothing to do
  m.set_path_up(17, false);
  const std::size_t recomputed = t.path_changed(m, 17);
  EXPECT_GE(recomputed, 1u);
  EXPECT_LE(recomputed, 2u * 200u);
  EXPECT_TRUE(t.same_as(RelayRoutes(m)));
}

}  // namespace
}  // namespace patronus::mesh
