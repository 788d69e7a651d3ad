// One site's part of a mesh plan (site::site_plan): its paths with probe keys both ends agree on,
// and the sites it reaches only through relays (spokes seen from a spoke).
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "patronus/mesh/keys.hpp"
#include "patronus/mesh/plan.hpp"
#include "patronus/site/plan_store.hpp"
#include "patronus/site/site_config.hpp"

namespace {

using namespace patronus;

TEST(SitePlan, SpokesReachSpokesThroughTheHubsAndBothEndsShareEachPathsKey) {
  auto file = mesh::parse_sites_yaml(R"(sites:
  - {name: hub1, subnets: [10.1.0.0/24], endpoints: [{name: e1, address: "192.0.2.1:51820", type: wan}]}
  - {name: hub2, subnets: [10.2.0.0/24], endpoints: [{name: e1, address: "192.0.2.2:51820", type: wan}]}
  - {name: s1, subnets: [10.3.0.0/24], endpoints: [{name: e1, address: "192.0.2.3:51820", type: wan}]}
  - {name: s2, subnets: [10.4.0.0/24], endpoints: [{name: e1, address: "192.0.2.4:51820", type: wan}]}
hubs: [hub1, hub2]
)",
                                     "t.yaml");
  ASSERT_TRUE(file.is_ok()) << file.status().to_string();
  auto keys = [](std::string_view site, std::string_view ep) {
    return mesh::seeded_keypair(7, std::string(site) + "/" + std::string(ep));
  };
  for (auto& s : file.value().sites) {
    s.public_keys.assign(1, mesh::key_to_base64(keys(s.site.name, "e1").value().public_key));
  }
  mesh::TopologyOptions topo;
  topo.kind = mesh::TopologyKind::kHubSpoke;
  auto g = mesh::MeshGraph::build(std::move(file.value()), topo);
  ASSERT_TRUE(g.is_ok()) << g.status().to_string();
  auto overlay = mesh::assign_overlay(g.value(), {});
  ASSERT_TRUE(overlay.is_ok());
  auto plan = mesh::make_plan(g.value(), overlay.value());
  ASSERT_TRUE(plan.is_ok());
  std::vector<model::PathId> ids;
  for (std::uint32_t i = 0; i < g.value().num_paths(); ++i) ids.emplace_back(i + 1);

  auto s1 = site::site_plan(g.value(), plan.value(), ids, "s1", keys);
  ASSERT_TRUE(s1.is_ok()) << s1.status().to_string();
  ASSERT_EQ(s1.value().paths.size(), 2u);  // to each hub
  const auto& remotes = s1.value().remote_sites;
  auto find = [&](const std::string& n) {
    return std::find_if(remotes.begin(), remotes.end(),
                        [&](const steering::RemoteSite& r) { return r.name == n; });
  };
  ASSERT_NE(find("hub1"), remotes.end());
  EXPECT_TRUE(find("hub1")->via.empty());
  ASSERT_NE(find("s2"), remotes.end());
  EXPECT_EQ(find("s2")->via, (std::vector<std::string>{"hub1", "hub2"}));
  EXPECT_TRUE(find("s2")->prefixes.front().contains(model::IpAddress::parse("10.4.0.9").value()));

  // The hub's view of the same path: same id, session and key.
  auto hub1 = site::site_plan(g.value(), plan.value(), ids, "hub1", keys);
  ASSERT_TRUE(hub1.is_ok());
  for (const auto& p : s1.value().paths) {
    if (p.remote_site != "hub1") continue;
    const auto q = std::find_if(hub1.value().paths.begin(), hub1.value().paths.end(),
                                [&](const steering::PathSpec& x) { return x.id == p.id; });
    ASSERT_NE(q, hub1.value().paths.end());
    EXPECT_EQ(q->session_id, p.session_id);
    EXPECT_EQ(q->probe_key, p.probe_key);
    EXPECT_EQ(q->remote_site, "s1");
    // The tunnel of each end: its own interface and key, the far end's key and what it carries
    // (the far end's overlay address and LAN subnet).
    ASSERT_TRUE(p.tunnel && q->tunnel);
    EXPECT_EQ(p.tunnel->interface_name, "wg-e1");
    EXPECT_EQ(p.tunnel->local_public_key, q->tunnel->remote_public_key);
    EXPECT_EQ(p.tunnel->remote_public_key, keys("hub1", "e1").value().public_key);
    // The overlay's keepalive at one end, a second more at the other (never in lock-step).
    EXPECT_EQ(std::min(p.tunnel->keepalive_s, q->tunnel->keepalive_s), 25u);
    EXPECT_EQ(std::max(p.tunnel->keepalive_s, q->tunnel->keepalive_s), 26u);
    ASSERT_EQ(p.tunnel->interface_addresses.size(), 2u);  // the overlay's IPv4 and IPv6
    EXPECT_EQ(p.tunnel->interface_addresses[0].first, *p.local_overlay);
    EXPECT_EQ(p.tunnel->interface_addresses[0].second, 16);
    const auto& carried = p.tunnel->allowed_prefixes;
    EXPECT_EQ(carried[0], model::IpPrefix(*p.remote_overlay, 32));
    EXPECT_NE(
        std::find(carried.begin(), carried.end(), model::IpPrefix::parse("10.1.0.0/24").value()),
        carried.end());
  }
  // Forwarding steers LAN subnets only (overlay addresses are routed per tunnel), relayed sites'
  // included.
  EXPECT_EQ(s1.value().subnets.at("hub1"),
            std::vector<model::IpPrefix>{model::IpPrefix::parse("10.1.0.0/24").value()});
  EXPECT_EQ(s1.value().subnets.at("s2"),
            std::vector<model::IpPrefix>{model::IpPrefix::parse("10.4.0.0/24").value()});
  // A hub reaches every spoke directly: nothing is relayed.
  for (const auto& r : hub1.value().remote_sites) EXPECT_TRUE(r.via.empty()) << r.name;
}

TEST(SeededKeys, TheSameSeedAndLabelGiveTheSameKeyAndOthersDoNot) {
  const auto a = mesh::seeded_keypair(1, "a/e1").value();
  EXPECT_EQ(a.private_key, mesh::seeded_keypair(1, "a/e1").value().private_key);
  EXPECT_EQ(a.public_key, mesh::public_key_of(a.private_key).value());
  EXPECT_NE(a.private_key, mesh::seeded_keypair(2, "a/e1").value().private_key);
  EXPECT_NE(a.private_key, mesh::seeded_keypair(1, "a/e2").value().private_key);
}

}  // namespace

namespace {

// A key rotation through the plan (ADR 0013), with one key directory for two sites as a lab keeps
// it: the staged key of b's endpoint reaches a's paths as the remote's next key while b's plan
// keeps its current key; after the commit both plans use the new key and nothing is staged. The
// sites file can give the next key instead; one that no staged key backs is an error.
TEST(SitePlan, AStagedKeyReachesThePeersAsTheNextKeyAndTheCommitMakesItTheKey) {
  const std::string dir = ::testing::TempDir() + "plan-rotation-" + std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string sites = dir + "/sites.yaml";
  auto write_sites = [&](const std::string& extra_b) {
    std::ofstream(sites) << "sites:\n"
                            "  - {name: a, subnets: [10.1.0.0/24], endpoints: [{name: e1, "
                            "address: \"192.0.2.1:51820\"}]}\n"
                            "  - {name: b, subnets: [10.2.0.0/24], endpoints: [{name: e1, "
                            "address: \"192.0.2.2:51820\"" +
                                extra_b + "}]}\n";
  };
  write_sites("");
  auto plan = [&](const std::string& site) {
    auto db = store::Store::open(dir + "/" + site + ".db");
    EXPECT_TRUE(db.is_ok());
    site::LocalPlanOptions o;
    o.site = site;
    o.sites_file = sites;
    o.keys_dir = dir + "/keys";
    auto share = site::plan_local_share(o, *db.value(), 1);
    if (!share.is_ok()) return Result<site::SitePlan>(share.status());
    auto keys = mesh::KeyDirectory::open(o.keys_dir);
    if (!keys.is_ok()) return Result<site::SitePlan>(keys.status());
    return site::realise_plan(share.value(), site, site::directory_keys(keys.value()));
  };
  auto kd = mesh::KeyDirectory::open(dir + "/keys");
  ASSERT_TRUE(kd.is_ok());
  // Every endpoint's key first, as `mesh plan --keys-dir` makes them for a lab.
  ASSERT_TRUE(kd.value().load_or_create("a", "e1").is_ok());
  ASSERT_TRUE(kd.value().load_or_create("b", "e1").is_ok());
  auto a0 = plan("a");
  ASSERT_TRUE(a0.is_ok()) << a0.status().to_string();
  ASSERT_EQ(a0.value().paths.size(), 1u);
  const auto old_key = a0.value().paths[0].tunnel->remote_public_key;
  EXPECT_FALSE(a0.value().paths[0].tunnel->remote_next_public_key.has_value());

  auto staged = kd.value().stage_next("b", "e1");
  ASSERT_TRUE(staged.is_ok()) << staged.status().to_string();
  EXPECT_EQ(kd.value().stage_next("b", "e1").value().public_key, staged.value().public_key)
      << "staging twice keeps the staged key";
  auto a1 = plan("a");
  ASSERT_TRUE(a1.is_ok()) << a1.status().to_string();
  const auto& t1 = *a1.value().paths[0].tunnel;
  EXPECT_EQ(t1.remote_public_key, old_key) << "the current key stays until the commit";
  ASSERT_TRUE(t1.remote_next_public_key.has_value());
  EXPECT_EQ(*t1.remote_next_public_key, staged.value().public_key);
  EXPECT_EQ(a1.value().paths[0].probe_key, a0.value().paths[0].probe_key);
  auto b1 = plan("b");
  ASSERT_TRUE(b1.is_ok());
  EXPECT_EQ(b1.value().paths[0].tunnel->local_public_key, old_key);

  ASSERT_TRUE(kd.value().commit_next("b", "e1").is_ok());
  EXPECT_EQ(kd.value().commit_next("b", "e1").status().code(), Code::kFailedPrecondition)
      << "nothing left to commit";
  auto a2 = plan("a");
  auto b2 = plan("b");
  ASSERT_TRUE(a2.is_ok() && b2.is_ok());
  EXPECT_EQ(a2.value().paths[0].tunnel->remote_public_key, staged.value().public_key);
  EXPECT_FALSE(a2.value().paths[0].tunnel->remote_next_public_key.has_value());
  EXPECT_EQ(b2.value().paths[0].tunnel->local_public_key, staged.value().public_key);
  // Both ends derive the same new probe key, and it is a new one.
  EXPECT_EQ(a2.value().paths[0].probe_key, b2.value().paths[0].probe_key);
  EXPECT_NE(a2.value().paths[0].probe_key, a0.value().paths[0].probe_key);

  // A next_public_key in the sites file that b has not staged: b's plan refuses it by name.
  write_sites(", next_public_key: \"" + mesh::key_to_base64(old_key) + "\"");
  auto bad = plan("b");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("no next key is staged"), std::string::npos)
      << bad.status().message();
  std::filesystem::remove_all(dir);
}

// Every endpoint's key pair seeded from its name; the sites file gets the public halves.
site::PrivateKeys seeded_keys(std::uint64_t seed) {
  return [seed](std::string_view site, std::string_view ep) {
    return mesh::seeded_keypair(seed, std::string(site) + "/" + std::string(ep));
  };
}

void give_public_keys(mesh::SitesFile& file, const site::PrivateKeys& keys) {
  for (auto& s : file.sites) {
    s.public_keys.clear();
    for (const auto& e : s.site.endpoints) {
      s.public_keys.push_back(mesh::key_to_base64(keys(s.site.name, e.name).value().public_key));
    }
  }
}

// A mixed site: a WireGuard endpoint and an IPsec endpoint to a remote site with both. Paths pair
// only endpoints of the same transport; each path names its transport, its interface (IPsec:
// ipsec0, the site's first IPsec endpoint) and, for IPsec, both ends' IKE settings for the plugin;
// each interface carries the remote LAN on its first path (so failover can move the LAN's traffic
// from one transport to the other).
TEST(SitePlan, MixedSitesPairEndpointsOfTheSameTransportAndTellThePluginTheirSettings) {
  auto file = mesh::parse_sites_yaml(R"(sites:
  - name: hq
    subnets: [10.1.0.0/24]
    endpoints:
      - {name: inet, address: "192.0.2.1:51820"}
      - name: corp
        address: "198.51.100.1:500"
        transport: ipsec
        ike: {id: hq.example, proposals: [aes256gcm16-prfsha384-x25519], dpd_s: 5}
  - name: br
    subnets: [10.2.0.0/24]
    endpoints:
      - {name: inet, address: "192.0.2.2:51820"}
      - {name: corp, address: "198.51.100.2:500", transport: ipsec}
)",
                                     "t.yaml");
  ASSERT_TRUE(file.is_ok()) << file.status().to_string();
  const auto keys = seeded_keys(9);
  give_public_keys(file.value(), keys);
  auto g = mesh::MeshGraph::build(std::move(file.value()), {});
  ASSERT_TRUE(g.is_ok()) << g.status().to_string();
  ASSERT_EQ(g.value().num_paths(), 2u);  // inet~inet and corp~corp, never inet~corp
  auto overlay = mesh::assign_overlay(g.value(), {});
  ASSERT_TRUE(overlay.is_ok());
  auto plan = mesh::make_plan(g.value(), overlay.value());
  ASSERT_TRUE(plan.is_ok());
  auto hq =
      site::site_plan(g.value(), plan.value(), {model::PathId(1), model::PathId(2)}, "hq", keys);
  ASSERT_TRUE(hq.is_ok()) << hq.status().to_string();
  ASSERT_EQ(hq.value().paths.size(), 2u);
  const auto lan = model::IpPrefix::parse("10.2.0.0/24").value();
  for (const auto& p : hq.value().paths) {
    ASSERT_TRUE(p.tunnel);
    EXPECT_EQ(p.local_endpoint, p.remote_endpoint);
    const auto& allowed = p.tunnel->allowed_prefixes;
    EXPECT_NE(std::find(allowed.begin(), allowed.end(), lan), allowed.end()) << p.name;
    if (p.local_endpoint == "inet") {
      EXPECT_EQ(p.tunnel->transport, "wireguard");
      EXPECT_EQ(p.tunnel->interface_name, "wg-inet");
      EXPECT_EQ(p.tunnel->params_json, "");
    } else {
      EXPECT_EQ(p.tunnel->transport, "ipsec");
      EXPECT_EQ(p.tunnel->interface_name, "ipsec0");
      EXPECT_EQ(p.tunnel->params_json,
                R"({"local":{"dpd_s":5,"id":"hq.example","proposals":)"
                R"(["aes256gcm16-prfsha384-x25519"]},"local_subnets":["10.1.0.0/24"],)"
                R"("remote":{},"transport":"ipsec"})");
    }
  }
  // The plan shows the IPsec path next to the WireGuard one.
  const std::string json = mesh::plan_to_json(g.value(), plan.value());
  EXPECT_NE(json.find(R"("dst_interface":"ipsec0")"), std::string::npos) << json;
  EXPECT_NE(json.find(R"("transport":"ipsec")"), std::string::npos);
  EXPECT_NE(json.find(R"("transport":"wireguard")"), std::string::npos);
}

// A peer that is not a Patronus site (`peers:`): only the sites that name it connect to it, over
// their IPsec endpoints; its path is unprobed, carries the peer's subnets, tells the plugin the
// peer's identity and key file, and nobody reaches the peer through a relay.
TEST(SitePlan, APeerThatIsNotOursIsReachedOnlyByTheSitesThatNameIt) {
  auto file = mesh::parse_sites_yaml(R"(sites:
  - name: hq
    subnets: [10.1.0.0/24]
    endpoints:
      - {name: inet, address: "192.0.2.1:51820"}
      - {name: corp, address: "198.51.100.1:500", transport: ipsec}
  - name: br
    subnets: [10.2.0.0/24]
    endpoints:
      - {name: inet, address: "192.0.2.2:51820"}
      - {name: corp, address: "198.51.100.2:500", transport: ipsec}
peers:
  - name: partner
    address: 203.0.113.9
    subnets: [172.16.0.0/16]
    ike: {id: gw.partner.example, psk_file: /etc/patronus/partner.psk}
    sites: [hq]
)",
                                     "t.yaml");
  ASSERT_TRUE(file.is_ok()) << file.status().to_string();
  ASSERT_EQ(file.value().peers.size(), 1u);
  EXPECT_EQ(file.value().peers[0].spec.site.endpoints[0].address.port(), 500);
  const auto keys = seeded_keys(3);
  give_public_keys(file.value(), keys);
  auto g = mesh::MeshGraph::build(std::move(file.value()), {});
  ASSERT_TRUE(g.is_ok()) << g.status().to_string();
  ASSERT_EQ(g.value().num_paths(), 3u);  // inet~inet, corp~corp, hq:corp~partner:gw
  auto overlay = mesh::assign_overlay(g.value(), {});
  ASSERT_TRUE(overlay.is_ok());
  EXPECT_EQ(overlay.value().count("partner/gw"), 0u);
  auto plan = mesh::make_plan(g.value(), overlay.value());
  ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
  std::vector<model::PathId> ids{model::PathId(1), model::PathId(2), model::PathId(3)};
  auto hq = site::site_plan(g.value(), plan.value(), ids, "hq", keys);
  ASSERT_TRUE(hq.is_ok()) << hq.status().to_string();
  const auto peer = std::find_if(hq.value().paths.begin(), hq.value().paths.end(),
                                 [](const auto& p) { return p.remote_site == "partner"; });
  ASSERT_NE(peer, hq.value().paths.end());
  EXPECT_FALSE(peer->probed);
  EXPECT_FALSE(peer->has_key);
  EXPECT_FALSE(peer->remote_overlay);
  ASSERT_TRUE(peer->tunnel);
  EXPECT_EQ(peer->tunnel->interface_name, "ipsec0");
  EXPECT_EQ(peer->tunnel->allowed_prefixes,
            std::vector<model::IpPrefix>{model::IpPrefix::parse("172.16.0.0/16").value()});
  EXPECT_NE(peer->tunnel->params_json.find(R"("remote":{"external":true,"id":"gw.partner.example",)"
                                           R"("psk_file":"/etc/patronus/partner.psk"})"),
            std::string::npos)
      << peer->tunnel->params_json;
  // br does not name the peer: no path to it, and no way round through hq.
  auto br = site::site_plan(g.value(), plan.value(), ids, "br", keys);
  ASSERT_TRUE(br.is_ok()) << br.status().to_string();
  for (const auto& r : br.value().remote_sites) EXPECT_NE(r.name, "partner");
  for (const auto& p : br.value().paths) EXPECT_NE(p.remote_site, "partner");
  const std::string json = mesh::plan_to_json(g.value(), plan.value());
  EXPECT_NE(json.find(R"("external":true)"), std::string::npos);
}

}  // namespace
