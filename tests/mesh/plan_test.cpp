// Tunnel plans: overlay addresses (unique, inside the prefixes, stable across re-plans),
// interface names, peers, JSON shape and wg-quick files that `wg-quick strip` accepts.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <set>

#include "mesh_fixtures.hpp"
#include "patronus/mesh/plan.hpp"
#include "test_support.hpp"

namespace patronus::mesh {
namespace {

MeshGraph build(SitesFile f, TopologyKind kind = TopologyKind::kFullMesh) {
  TopologyOptions o;
  o.kind = kind;
  if (kind == TopologyKind::kHubSpoke) o.hubs = {"s0"};
  auto m = MeshGraph::build(std::move(f), o);
  EXPECT_TRUE(m.is_ok()) << m.status().to_string();
  return std::move(m).value();
}

void give_keys(MeshGraph& m) {
  for (std::size_t s = 0; s < m.num_sites(); ++s) {
    for (std::size_t e = 0; e < m.site(s).site.endpoints.size(); ++e) {
      m.public_key(s, e) = key_to_base64(generate_keypair().value().public_key);
    }
  }
}

TEST(Overlay, UniqueInsidePrefixesAndIndependentOfOrder) {
  SitesFile f = test::make_sites(300, {{"wan0"}, {"lte0", model::InterfaceType::kLte}});
  f.overlay.ipv4 = model::IpPrefix::parse("10.50.0.0/22").value();  // 1022 slots for 600
  const MeshGraph m = build(f);
  auto a = assign_overlay(m, {});
  ASSERT_TRUE(a.is_ok()) << a.status().to_string();
  std::set<model::IpAddress> v4, v6;
  for (const auto& [key, addr] : a.value()) {
    EXPECT_TRUE(m.overlay().ipv4.contains(addr.ipv4)) << key;
    EXPECT_NE(addr.ipv4, m.overlay().ipv4.network());
    EXPECT_NE(addr.ipv4.to_string(), "10.50.3.255");  // broadcast
    ASSERT_TRUE(addr.ipv6.has_value());
    EXPECT_TRUE(m.overlay().ipv6->contains(*addr.ipv6));
    EXPECT_TRUE(v4.insert(addr.ipv4).second) << "duplicate " << addr.ipv4.to_string();
    EXPECT_TRUE(v6.insert(*addr.ipv6).second);
  }
  EXPECT_EQ(v4.size(), 600u);
  // The same sites in reverse order get the same addresses.
  SitesFile rev = f;
  std::reverse(rev.sites.begin(), rev.sites.end());
  const MeshGraph m2 = build(rev);
  auto b = assign_overlay(m2, {});
  ASSERT_TRUE(b.is_ok());
  for (const auto& [key, addr] : a.value()) {
    EXPECT_EQ(b.value().at(key).ipv4, addr.ipv4) << key;
  }
}

TEST(Overlay, StableAcrossReplansWithPreviousAssignments) {
  // A small prefix forces collisions; with the previous assignments, adding and removing sites
  // never moves an existing endpoint.
  SitesFile f = test::make_sites(40);
  f.overlay.ipv4 = model::IpPrefix::parse("10.9.9.0/26").value();  // 62 slots
  f.overlay.ipv6.reset();
  auto first = assign_overlay(build(f), {});
  ASSERT_TRUE(first.is_ok());
  SitesFile grown = f;
  for (std::size_t i = 40; i < 60; ++i) grown.sites.push_back(test::make_site(i, {{"wan0"}}));
  grown.sites.erase(grown.sites.begin() + 3);  // s3 leaves
  auto second = assign_overlay(build(grown), first.value());
  ASSERT_TRUE(second.is_ok());
  std::set<model::IpAddress> seen;
  for (const auto& [key, addr] : second.value()) {
    if (first.value().count(key)) {
      EXPECT_EQ(addr.ipv4, first.value().at(key).ipv4) << key;
    }
    EXPECT_TRUE(seen.insert(addr.ipv4).second);
    EXPECT_FALSE(addr.ipv6.has_value());
  }
  // Too many endpoints for the prefix: a clear error.
  SitesFile big = test::make_sites(70);
  big.overlay.ipv4 = model::IpPrefix::parse("10.9.9.0/26").value();
  auto full = assign_overlay(build(big), {});
  ASSERT_FALSE(full.is_ok());
  EXPECT_NE(full.status().message().find("overlay.ipv4 10.9.9.0/26 has room for 62 endpoints"),
            std::string::npos);
}

TEST(Plan, InterfaceNames) {
  EXPECT_EQ(interface_name("wan0"), "wg-wan0");
  EXPECT_EQ(interface_name("abcdefghijkl"), "wg-abcdefghijkl");
  const std::string longer = interface_name("abcdefghijklmnop");
  EXPECT_EQ(longer.size(), 15u);
  EXPECT_EQ(longer.rfind("wg-abcdefg-", 0), 0u);
  EXPECT_NE(interface_name("abcdefghijklmnop"), interface_name("abcdefghijklmnoq"));
}

TEST(Plan, PeersPerInterfaceAndJson) {
  SitesFile f = test::make_sites(5, {{"wan0"}, {"mpls0", model::InterfaceType::kMpls}});
  f.sites[1].subnets.push_back(model::IpPrefix::parse("192.168.1.0/24").value());
  MeshGraph m = build(std::move(f), TopologyKind::kHubSpoke);
  auto missing = make_plan(m, assign_overlay(m, {}).value());
  ASSERT_FALSE(missing.is_ok());
  EXPECT_NE(missing.status().message().find("no public key"), std::string::npos);
  give_keys(m);
  auto plan = make_plan(m, assign_overlay(m, {}).value());
  ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
  // Hub s0: two interfaces, 4 peers each (one per spoke per compatible endpoint).
  ASSERT_EQ(plan.value().sites[0].size(), 2u);
  EXPECT_EQ(plan.value().sites[0][0].name, "wg-wan0");
  EXPECT_EQ(plan.value().sites[0][0].peers.size(), 4u);
  EXPECT_EQ(plan.value().sites[0][1].name, "wg-mpls0");
  EXPECT_EQ(plan.value().sites[0][1].peers.size(), 4u);
  EXPECT_EQ(plan.value().sites[2][0].peers.size(), 1u);
  const auto j = nlohmann::json::parse(plan_to_json(m, plan.value()));
  EXPECT_EQ(j["topology"], "hub-spoke");
  ASSERT_EQ(j["paths"].size(), 8u);
  for (const auto& p : j["paths"]) {
    for (const char* k : {"id", "src_site", "dst_site", "src_endpoint", "dst_endpoint"}) {
      EXPECT_TRUE(p.contains(k)) << k;
    }
  }
  EXPECT_EQ(j["paths"][0]["id"], "s0:wan0~s1:wan0");
  ASSERT_EQ(j["sites"].size(), 5u);
  const auto& hub_if = j["sites"][0]["interfaces"][0];
  EXPECT_EQ(hub_if["listen_port"], 51820);
  EXPECT_EQ(hub_if["addresses"].size(), 2u);
  // The peer towards s1 carries s1's subnet, on one interface's first peer only.
  const auto& peer = hub_if["peers"][0];
  EXPECT_EQ(peer["site"], "s1");
  EXPECT_EQ(peer["endpoint_address"], "10.0.1.1:51820");
  EXPECT_EQ(peer["allowed_ips"].size(), 3u);
  EXPECT_EQ(peer["allowed_ips"][2], "192.168.1.0/24");
  EXPECT_EQ(peer["persistent_keepalive"], 25);
  // Only public keys in the plan.
  const std::string text = j.dump();
  EXPECT_EQ(text.find("private"), std::string::npos);
}

TEST(Plan, WgQuickConfigIsAcceptedByWgQuickStrip) {
  SitesFile f = test::make_sites(3);
  MeshGraph m = build(std::move(f));
  test::TempDir dir;
  auto kd = KeyDirectory::open(dir.file("keys"));
  ASSERT_TRUE(kd.is_ok());
  ASSERT_TRUE(fill_public_keys(m, kd.value()).is_ok());
  auto plan = make_plan(m, assign_overlay(m, {}).value());
  ASSERT_TRUE(plan.is_ok());
  const auto& iface = plan.value().sites[0][0];
  const auto priv = kd.value().load("s0", "wan0").value()->private_key;
  const std::string conf = render_wg_quick(m, plan.value(), iface, priv, "");
  EXPECT_NE(conf.find("PrivateKey = " + key_to_base64(priv)), std::string::npos);
  EXPECT_NE(conf.find("ListenPort = 51820"), std::string::npos);
  EXPECT_NE(conf.find("Table = off"), std::string::npos);
  test::write_file(dir.file("wg-wan0.conf"), conf);
  auto r = test::run({"wg-quick", "strip", dir.file("wg-wan0.conf")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.find("Address"), std::string::npos);  // wg-quick-only keys are stripped
  EXPECT_EQ(r.out.find("Table"), std::string::npos);
  EXPECT_NE(r.out.find("PrivateKey"), std::string::npos);
  std::size_t peers = 0;
  for (auto pos = r.out.find("[Peer]"); pos != std::string::npos;
       pos = r.out.find("[Peer]", pos + 1)) {
    ++peers;
  }
  EXPECT_EQ(peers, 2u);
  // Without a private key: a PostUp line loads it on the site.
  const std::string keyless =
      render_wg_quick(m, plan.value(), iface, std::nullopt, "/etc/patronus/keys/s0/wan0.key");
  EXPECT_EQ(keyless.find("PrivateKey"), std::string::npos);
  EXPECT_NE(keyless.find("PostUp = wg set %i private-key /etc/patronus/keys/s0/wan0.key"),
            std::string::npos);
}

TEST(Plan, FillPublicKeysRefusesAMismatch) {
  SitesFile f = test::make_sites(2);
  f.sites[0].public_keys[0] = key_to_base64(generate_keypair().value().public_key);
  MeshGraph m = build(std::move(f));
  test::TempDir dir;
  auto kd = KeyDirectory::open(dir.path()).value();
  ASSERT_TRUE(kd.load_or_create("s0", "wan0").is_ok());  // a different key on disk
  auto s = fill_public_keys(m, kd);
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("does not match the private key"), std::string::npos);
}

}  // namespace
}  // namespace patronus::mesh
