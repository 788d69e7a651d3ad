// Topologies: path counts, endpoint-type rules, explicit links, partial repair.
#include <gtest/gtest.h>

#include <random>
#include <set>

#include "mesh_fixtures.hpp"
#include "patronus/mesh/analysis.hpp"
#include "patronus/mesh/graph.hpp"

namespace patronus::mesh {
namespace {

using model::InterfaceType;
using test::make_site;
using test::make_sites;

MeshGraph build(SitesFile f, TopologyKind kind, std::vector<std::string> hubs = {}, int k = 2) {
  TopologyOptions o;
  o.kind = kind;
  o.hubs = std::move(hubs);
  o.k = k;
  auto m = MeshGraph::build(std::move(f), o);
  EXPECT_TRUE(m.is_ok()) << m.status().to_string();
  return std::move(m).value();
}

TEST(Topology, FullMeshHasNChooseTwoPaths) {
  for (std::size_t n : {1u, 2u, 3u, 5u, 17u, 100u}) {
    const MeshGraph m = build(make_sites(n), TopologyKind::kFullMesh);
    EXPECT_EQ(m.num_sites(), n);
    EXPECT_EQ(m.num_paths(), n * (n - 1) / 2) << n;
    // Every pair exactly once.
    std::set<std::pair<std::uint32_t, std::uint32_t>> pairs;
    for (std::uint32_t id = 0; id < m.num_paths(); ++id) {
      auto a = m.path_src(id), b = m.path_dst(id);
      EXPECT_NE(a, b);
      EXPECT_TRUE(pairs.insert({std::min(a, b), std::max(a, b)}).second);
    }
  }
}

TEST(Topology, HubSpokeCount) {
  for (std::size_t h : {1u, 2u, 3u}) {
    for (std::size_t s : {0u, 1u, 4u, 10u}) {
      std::vector<std::string> hubs;
      for (std::size_t i = 0; i < h; ++i) hubs.push_back("s" + std::to_string(i));
      const MeshGraph m = build(make_sites(h + s), TopologyKind::kHubSpoke, hubs);
      EXPECT_EQ(m.num_paths(), h * s + h * (h - 1) / 2) << "h=" << h << " s=" << s;
      // Spokes never connect to each other.
      for (std::uint32_t id = 0; id < m.num_paths(); ++id) {
        EXPECT_TRUE(m.is_hub(m.path_src(id)) || m.is_hub(m.path_dst(id)));
      }
    }
  }
}

TEST(Topology, MultiEndpointSitesMultiplyByCompatiblePairs) {
  // Two wan-type endpoints per site: 4 paths per site pair.
  const MeshGraph two =
      build(make_sites(4, {{"a"}, {"b", InterfaceType::kBroadband}}), TopologyKind::kFullMesh);
  EXPECT_EQ(two.num_paths(), 6u * 4u);
  // wan + mpls per site: wan-wan and mpls-mpls only (mpls pairs only with mpls): 2 per pair.
  const MeshGraph mpls =
      build(make_sites(5, {{"wan0"}, {"mpls0", InterfaceType::kMpls}}), TopologyKind::kFullMesh);
  EXPECT_EQ(mpls.num_paths(), 10u * 2u);
  // wan + lte, no hubs: wan-wan, wan-lte, lte-wan (never lte-lte): 3 per pair.
  const MeshGraph lte =
      build(make_sites(4, {{"wan0"}, {"lte0", InterfaceType::kLte}}), TopologyKind::kFullMesh);
  EXPECT_EQ(lte.num_paths(), 6u * 3u);
}

TEST(Topology, LteOnlyToHubsWhenHubsExist) {
  // Full mesh of 4 sites with wan + lte, hub s0: lte endpoints pair only with s0's endpoints.
  const MeshGraph m = build(make_sites(4, {{"wan0"}, {"lte0", InterfaceType::kLte}}),
                            TopologyKind::kFullMesh, {"s0"});
  std::size_t lte_paths = 0;
  for (std::uint32_t id = 0; id < m.num_paths(); ++id) {
    const PathEdge& p = m.path(id);
    const auto a = m.path_src(id), b = m.path_dst(id);
    const auto ta = m.site(a).site.endpoints[p.src_endpoint].type;
    const auto tb = m.site(b).site.endpoints[p.dst_endpoint].type;
    if (ta == InterfaceType::kLte) {
      EXPECT_TRUE(m.is_hub(b)) << m.path_key(id);
    }
    if (tb == InterfaceType::kLte) {
      EXPECT_TRUE(m.is_hub(a)) << m.path_key(id);
    }
    lte_paths += (ta == InterfaceType::kLte) + (tb == InterfaceType::kLte);
  }
  // Pairs with s0: wan-wan and s0.wan-lte = 2 each (x3; s0's own lte would need a second hub);
  // other pairs: wan-wan only (x3).
  EXPECT_EQ(m.num_paths(), 3u * 2u + 3u * 1u);
  EXPECT_EQ(lte_paths, 3u);
}

TEST(Topology, AddressFamiliesDoNotMix) {
  SitesFile f;
  f.sites.push_back(make_site(0, {{"v4"}, {"v6", InterfaceType::kWan, true}}));
  f.sites.push_back(make_site(1, {{"v6", InterfaceType::kWan, true}}));
  const MeshGraph m = build(std::move(f), TopologyKind::kFullMesh);
  ASSERT_EQ(m.num_paths(), 1u);
  EXPECT_EQ(m.path_key(0), "s0:v6~s1:v6");
}

TEST(Topology, ExplicitLinks) {
  SitesFile f = make_sites(4, {{"wan0"}, {"wan1"}});
  f.links.push_back({"s0", "wan0", "s1", ""});  // s0/wan0 to both of s1's: 2 paths
  f.links.push_back({"s2", "wan1", "s3", "wan0"});
  const MeshGraph m = build(std::move(f), TopologyKind::kExplicit);
  ASSERT_EQ(m.num_paths(), 3u);
  EXPECT_EQ(m.path_key(0), "s0:wan0~s1:wan0");
  EXPECT_EQ(m.path_key(1), "s0:wan0~s1:wan1");
  EXPECT_EQ(m.path_key(2), "s2:wan1~s3:wan0");
}

TEST(Topology, Errors) {
  TopologyOptions o;
  o.kind = TopologyKind::kHubSpoke;
  auto no_hubs = MeshGraph::build(make_sites(3), o);
  ASSERT_FALSE(no_hubs.is_ok());
  EXPECT_NE(no_hubs.status().message().find("needs hubs"), std::string::npos);
  o.hubs = {"nope"};
  auto bad_hub = MeshGraph::build(make_sites(3), o);
  ASSERT_FALSE(bad_hub.is_ok());
  EXPECT_NE(bad_hub.status().message().find("'nope' is not a site"), std::string::npos);
  o.kind = TopologyKind::kExplicit;
  o.hubs.clear();
  EXPECT_FALSE(MeshGraph::build(make_sites(3), o).is_ok());  // no links
  SitesFile f;
  f.sites.push_back(make_site(0, {{"m", InterfaceType::kMpls}}));
  f.sites.push_back(make_site(1, {{"w"}}));
  f.links.push_back({"s0", "", "s1", ""});
  auto incompatible = MeshGraph::build(std::move(f), o);
  ASSERT_FALSE(incompatible.is_ok());
  EXPECT_NE(incompatible.status().message().find("links[0]: no compatible endpoint pair"),
            std::string::npos);
  EXPECT_FALSE(parse_topology("ring").is_ok());
}

TEST(Topology, PartialConnectsNearestThenRepairsToTwoEdgeConnected) {
  // 40 sites at random places (5 fixed seeds): after the repair no single path failure splits
  // the mesh, and the repair had work to do (k nearest alone is not enough).
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> lon(-120, 120), lat(-50, 50);
  std::size_t repairs = 0;
  for (int trial = 0; trial < 5; ++trial) {
    SitesFile f = make_sites(40);
    for (auto& s : f.sites) s.location = GeoLocation{lat(rng), lon(rng)};
    for (int k : {1, 2, 3}) {
      SitesFile copy = f;
      const MeshGraph m = build(std::move(copy), TopologyKind::kPartial, {}, k);
      EXPECT_EQ(connected_components(m).count, 1u);
      EXPECT_TRUE(bridge_paths(m).empty()) << "k=" << k;
      repairs += m.repair_links();
      // Each site has at least min(k, 2) neighbours, and far fewer than a full mesh.
      EXPECT_LT(m.num_paths(), 40u * 39u / 2u / 3u);
      for (std::uint32_t v = 0; v < 40; ++v) {
        EXPECT_GE(boost::out_degree(v, m.graph()), std::size_t(std::max(2, k)));
      }
    }
  }
  EXPECT_GT(repairs, 0u);
}

TEST(Topology, PartialPicksTheNearestPeers) {
  // Three sites in Europe, one in Australia; k = 1: every European site links to its nearest
  // European neighbour.
  SitesFile f = make_sites(4);
  f.sites[0].location = GeoLocation{48.14, 11.58};    // Munich
  f.sites[1].location = GeoLocation{48.21, 16.37};    // Vienna
  f.sites[2].location = GeoLocation{52.52, 13.40};    // Berlin
  f.sites[3].location = GeoLocation{-33.87, 151.21};  // Sydney
  TopologyOptions o;
  o.kind = TopologyKind::kPartial;
  o.k = 1;
  auto m = MeshGraph::build(std::move(f), o);
  ASSERT_TRUE(m.is_ok());
  std::set<std::string> keys;
  for (std::uint32_t id = 0; id < m.value().num_paths(); ++id) keys.insert(m.value().path_key(id));
  EXPECT_TRUE(keys.count("s0:wan0~s1:wan0"));  // Munich - Vienna (355 km)
  EXPECT_TRUE(keys.count("s1:wan0~s2:wan0") || keys.count("s0:wan0~s2:wan0"));
  EXPECT_TRUE(bridge_paths(m.value()).empty());
  EXPECT_GT(m.value().repair_links(), 0u);
}

TEST(Topology, PartialRepairStopsWhereEndpointsDoNotAllowIt) {
  // s3 has only an mpls endpoint and only s0 has mpls: the s0-s3 path stays a bridge.
  SitesFile f = make_sites(3, {{"wan0"}, {"mpls0", InterfaceType::kMpls}});
  f.sites[1].site.endpoints.pop_back();
  f.sites[1].public_keys.pop_back();
  f.sites[2].site.endpoints.pop_back();
  f.sites[2].public_keys.pop_back();
  f.sites.push_back(make_site(3, {{"mpls0", InterfaceType::kMpls}}));
  const MeshGraph m = build(std::move(f), TopologyKind::kPartial, {}, 1);
  EXPECT_EQ(connected_components(m).count, 1u);
  const auto bridges = bridge_paths(m);
  ASSERT_EQ(bridges.size(), 1u);
  EXPECT_EQ(m.path_key(bridges[0]), "s0:mpls0~s3:mpls0");
}

}  // namespace
}  // namespace patronus::mesh
