// The sites file: what it accepts, and that every mistake is refused with its line and field.
#include <gtest/gtest.h>

#include "patronus/mesh/sites.hpp"
#include "patronus/model/address.hpp"
#include "patronus/util/file.hpp"
#include "test_support.hpp"

namespace patronus::mesh {
namespace {

const char* kGood = R"(sites:
  - name: hq
    region: eu-central
    location: {lat: 48.14, lon: 11.58}
    subnets: [192.168.10.0/24, "fd10::/64"]
    endpoints:
      - name: wan0
        address: 198.51.100.1:51820
        type: wan
        cost_per_gb: 0.01
        bandwidth_mbps: 1000
      - {name: v6, address: "[2001:db8::1]:51820", type: broadband}
  - name: br1
    endpoints:
      - {name: lte0, address: 203.0.113.7:51820, type: lte, cost_per_gb: 2.5,
         public_key: "YQR7nMvgt/H59Qina08ME5YgJjV4A9lssjvQKbJfBXg="}
hubs: [hq]
rules:
  lte: {peers: [wan, lte], hubs_only: false}
overlay:
  ipv4: 10.99.0.0/20
  ipv6: none
  persistent_keepalive: 0
links:
  - {a: hq/wan0, b: br1}
)";

TEST(SitesFile, ParsesEveryField) {
  auto f = parse_sites_yaml(kGood, "sites.yaml");
  ASSERT_TRUE(f.is_ok()) << f.status().to_string();
  const SitesFile& s = f.value();
  ASSERT_EQ(s.sites.size(), 2u);
  const SiteSpec& hq = s.sites[0];
  EXPECT_EQ(hq.site.name, "hq");
  EXPECT_EQ(hq.site.region, "eu-central");
  ASSERT_TRUE(hq.location.has_value());
  EXPECT_DOUBLE_EQ(hq.location->lat, 48.14);
  ASSERT_EQ(hq.subnets.size(), 2u);
  EXPECT_EQ(hq.subnets[1].to_string(), "fd10::/64");
  ASSERT_EQ(hq.site.endpoints.size(), 2u);
  EXPECT_EQ(hq.site.endpoints[0].address.to_string(), "198.51.100.1:51820");
  EXPECT_EQ(*hq.site.endpoints[0].bandwidth_mbps, 1000);
  EXPECT_EQ(hq.site.endpoints[1].address.to_string(), "[2001:db8::1]:51820");
  EXPECT_EQ(hq.site.endpoints[1].type, model::InterfaceType::kBroadband);
  EXPECT_EQ(s.sites[1].public_keys[0], "YQR7nMvgt/H59Qina08ME5YgJjV4A9lssjvQKbJfBXg=");
  EXPECT_EQ(s.hubs, std::vector<std::string>{"hq"});
  EXPECT_TRUE(s.rules.allows(model::InterfaceType::kLte, model::InterfaceType::kLte));
  EXPECT_FALSE(s.rules.allows(model::InterfaceType::kLte, model::InterfaceType::kMpls));
  EXPECT_FALSE(s.rules.by_type[static_cast<int>(model::InterfaceType::kLte)].hubs_only);
  EXPECT_EQ(s.overlay.ipv4.to_string(), "10.99.0.0/20");
  EXPECT_FALSE(s.overlay.ipv6.has_value());
  EXPECT_EQ(s.overlay.persistent_keepalive, 0);
  ASSERT_EQ(s.links.size(), 1u);
  EXPECT_EQ(s.links[0].a_endpoint, "wan0");
  EXPECT_EQ(s.links[0].b_endpoint, "");
}

TEST(SitesFile, DefaultRules) {
  const auto r = EndpointRules::defaults();
  using T = model::InterfaceType;
  EXPECT_TRUE(r.allows(T::kMpls, T::kMpls));
  EXPECT_FALSE(r.allows(T::kMpls, T::kWan));
  EXPECT_FALSE(r.allows(T::kWan, T::kMpls));
  EXPECT_FALSE(r.allows(T::kLte, T::kLte));
  EXPECT_TRUE(r.allows(T::kLte, T::kWan));
  EXPECT_TRUE(r.allows(T::kSatellite, T::kBroadband));
  EXPECT_TRUE(r.by_type[static_cast<int>(T::kLte)].hubs_only);
}

struct BadCase {
  const char* name;
  const char* yaml;
  const char* expect;  // substring of the error
};

class SitesFileErrors : public ::testing::TestWithParam<BadCase> {};

TEST_P(SitesFileErrors, NamesLineAndField) {
  auto f = parse_sites_yaml(GetParam().yaml, "x.yaml");
  ASSERT_FALSE(f.is_ok()) << GetParam().name;
  EXPECT_NE(f.status().message().find(GetParam().expect), std::string::npos)
      << f.status().message();
  EXPECT_EQ(f.status().message().rfind("x.yaml: ", 0), 0u) << f.status().message();
}

const BadCase kBad[] = {
    {"duplicate site",
     "sites:\n  - {name: a, endpoints: [{name: w, address: 1.1.1.1:1}]}\n"
     "  - {name: a, endpoints: [{name: w, address: 1.1.1.2:1}]}\n",
     "line 3: sites[1].name: duplicate site name 'a' (first defined at sites[0])"},
    {"bad address",
     "sites:\n  - name: a\n    endpoints:\n      - name: w\n        address: 1.2.3:51820\n",
     "line 5: sites[0].endpoints[0].address: '1.2.3' is not an IPv4 or IPv6 address"},
    {"v6 without brackets",
     "sites:\n  - {name: a, endpoints: [{name: w, address: 'fd00::1:80'}]}\n", "needs brackets"},
    {"unknown site key", "sites:\n  - name: a\n    colour: red\n    endpoints: []\n",
     "line 3: sites[0].colour: unknown key"},
    {"unknown endpoint key",
     "sites:\n  - name: a\n    endpoints:\n      - {name: w, address: 1.1.1.1:1, speed: 9}\n",
     "line 4: sites[0].endpoints[0].speed: unknown key"},
    {"unknown top key", "sitez: []\n", "line 1: sitez: unknown key"},
    {"duplicate endpoint",
     "sites:\n  - name: a\n    endpoints:\n      - {name: w, address: 1.1.1.1:1}\n"
     "      - {name: w, address: 1.1.1.2:1}\n",
     "duplicate endpoint name 'w'"},
    {"address reused across sites",
     "sites:\n  - {name: a, endpoints: [{name: w, address: 1.1.1.1:1}]}\n"
     "  - {name: b, endpoints: [{name: w, address: 1.1.1.1:1}]}\n",
     "line 3: sites[1].endpoints[0].address: 1.1.1.1:1 is already used by sites[0].endpoints[0]"},
    {"bad type", "sites:\n  - {name: a, endpoints: [{name: w, address: 1.1.1.1:1, type: dsl}]}\n",
     "sites[0].endpoints[0].type"},
    {"negative cost",
     "sites:\n  - {name: a, endpoints: [{name: w, address: 1.1.1.1:1, cost_per_gb: -1}]}\n",
     "sites[0].endpoints[0].cost_per_gb: expected a number"},
    {"bad name", "sites:\n  - {name: HQ, endpoints: [{name: w, address: 1.1.1.1:1}]}\n",
     "sites[0].name: 'HQ' may contain only"},
    {"no endpoints", "sites:\n  - {name: a}\n", "sites[0].endpoints: required"},
    {"port zero", "sites:\n  - {name: a, endpoints: [{name: w, address: 1.1.1.1:0}]}\n",
     "port must not be 0"},
    {"bad key",
     "sites:\n  - {name: a, endpoints: [{name: w, address: 1.1.1.1:1, public_key: abc}]}\n",
     "sites[0].endpoints[0].public_key: a WireGuard key is 44 characters"},
    {"latitude",
     "sites:\n  - {name: a, location: {lat: 91, lon: 0}, endpoints: [{name: w, address: "
     "1.1.1.1:1}]}\n",
     "sites[0].location.lat: expected a number from -90"},
    {"subnet host bits",
     "sites:\n  - {name: a, subnets: [10.0.0.1/24], endpoints: [{name: w, address: 1.1.1.1:1}]}\n",
     "sites[0].subnets[0]: '10.0.0.1/24': host bits are set"},
    {"link to unknown site",
     "sites:\n  - {name: a, endpoints: [{name: w, address: 1.1.1.1:1}]}\nlinks:\n  - {a: a, b: "
     "zz}\n",
     "line 4: links[0].b: unknown site 'zz'"},
    {"link to unknown endpoint",
     "sites:\n  - {name: a, endpoints: [{name: w, address: 1.1.1.1:1}]}\n"
     "  - {name: b, endpoints: [{name: w, address: 1.1.1.2:1}]}\nlinks:\n  - {a: a/x, b: b}\n",
     "links[0].a: site 'a' has no endpoint 'x'"},
    {"self link",
     "sites:\n  - {name: a, endpoints: [{name: w, address: 1.1.1.1:1}]}\nlinks:\n  - {a: a, b: "
     "a}\n",
     "links[0]: a link joins two different sites"},
    {"hub unknown",
     "sites:\n  - {name: a, endpoints: [{name: w, address: 1.1.1.1:1}]}\nhubs: [b]\n",
     "hubs[0]: not a site of this file"},
    {"overlay v4 too long",
     "sites:\n  - {name: a, endpoints: [{name: w, address: 1.1.1.1:1}]}\noverlay: {ipv4: "
     "10.0.0.0/31}\n",
     "overlay.ipv4: expected an IPv4 prefix of length 0-30"},
    {"rules bad type",
     "sites:\n  - {name: a, endpoints: [{name: w, address: 1.1.1.1:1}]}\nrules: {lte: {peers: "
     "[dsl]}}\n",
     "rules.lte.peers[0]"},
    {"not yaml", "sites: [\n", "not valid YAML"},
    // Found by the fuzz target: invalid UTF-8 reached the JSON plan and threw there.
    {"region not utf8",
     "sites:\n  - {name: a, region: \"\xc3\x28\", endpoints: [{name: w, address: 1.1.1.1:1}]}\n",
     "line 2: sites[0].region: not valid UTF-8 text"},
    {"empty", "", "expected a map with a 'sites' list"},
    {"unknown transport",
     "sites:\n  - {name: a, endpoints: [{name: w, address: 1.1.1.1:1, transport: gre}]}\n",
     "line 2: sites[0].endpoints[0].transport: 'gre' is not a transport (one of: wireguard, "
     "ipsec)"},
    {"ike on wireguard",
     "sites:\n  - {name: a, endpoints: [{name: w, address: 1.1.1.1:1, ike: {id: x}}]}\n",
     "sites[0].endpoints[0].ike: only for an endpoint with transport: ipsec"},
    {"ike unknown key",
     "sites:\n  - {name: a, endpoints: [{name: w, address: 1.1.1.1:500, transport: ipsec, ike: "
     "{psk: hunter2}}]}\n",
     "sites[0].endpoints[0].ike.psk: unknown key"},
    {"psk file relative",
     "sites:\n  - {name: a, endpoints: [{name: w, address: 1.1.1.1:500, transport: ipsec, ike: "
     "{psk_file: k.psk}}]}\n",
     "sites[0].endpoints[0].ike.psk_file: must be an absolute path"},
    {"proposals not a list",
     "sites:\n  - {name: a, endpoints: [{name: w, address: 1.1.1.1:500, transport: ipsec, ike: "
     "{proposals: aes256gcm16}}]}\n",
     "sites[0].endpoints[0].ike.proposals: expected a list of strings"},
    {"peer without psk file",
     "sites:\n  - {name: a, endpoints: [{name: w, address: 1.1.1.1:500, transport: ipsec}]}\n"
     "peers:\n  - {name: p, address: 2.2.2.2, subnets: [10.9.0.0/16], ike: {id: p}}\n",
     "line 4: peers[0].ike.psk_file: required"},
    {"peer without subnets",
     "sites:\n  - {name: a, endpoints: [{name: w, address: 1.1.1.1:500, transport: ipsec}]}\n"
     "peers:\n  - {name: p, address: 2.2.2.2, ike: {psk_file: /k}}\n",
     "peers[0].subnets: required"},
    {"peer named like a site",
     "sites:\n  - {name: a, endpoints: [{name: w, address: 1.1.1.1:500, transport: ipsec}]}\n"
     "peers:\n  - {name: a, address: 2.2.2.2, subnets: [10.9.0.0/16], ike: {psk_file: /k}}\n",
     "peers[0].name: 'a' is already the name of sites[0]"},
    {"peer unknown site",
     "sites:\n  - {name: a, endpoints: [{name: w, address: 1.1.1.1:500, transport: ipsec}]}\n"
     "peers:\n  - {name: p, address: 2.2.2.2, subnets: [10.9.0.0/16], ike: {psk_file: /k}, "
     "sites: [zz]}\n",
     "peers[0].sites[0]: 'zz' is not a site of this file"},
    {"peer bad address",
     "sites:\n  - {name: a, endpoints: [{name: w, address: 1.1.1.1:500, transport: ipsec}]}\n"
     "peers:\n  - {name: p, address: gw.example, subnets: [10.9.0.0/16], ike: {psk_file: /k}}\n",
     "peers[0].address"},
    {"dpd zero",
     "sites:\n  - {name: a, endpoints: [{name: w, address: 1.1.1.1:500, transport: ipsec, ike: "
     "{dpd_s: 0}}]}\n",
     "sites[0].endpoints[0].ike.dpd_s"},
};

INSTANTIATE_TEST_SUITE_P(All, SitesFileErrors, ::testing::ValuesIn(kBad), [](const auto& info) {
  std::string n = info.param.name;
  for (auto& c : n) {
    if (!isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return n;
});

TEST(SitesFile, LoadNamesTheFileAndBoundsItsSize) {
  test::TempDir dir;
  auto missing = load_sites_file(dir.file("nope.yaml"));
  ASSERT_FALSE(missing.is_ok());
  EXPECT_EQ(missing.status().code(), Code::kNotFound);
  EXPECT_NE(missing.status().message().find("nope.yaml: cannot open"), std::string::npos);
  test::write_file(dir.file("big.txt"), std::string(100, 'x'));
  auto big = read_text_file(dir.file("big.txt"), 10);
  ASSERT_FALSE(big.is_ok());
  EXPECT_NE(big.status().message().find("larger than 10 bytes"), std::string::npos);
  EXPECT_EQ(read_text_file(dir.file("big.txt"), 100).value().size(), 100u);
}

TEST(GeoDistance, KnownCities) {
  // Munich - Berlin is about 504 km great-circle.
  const double d = distance_km({48.1372, 11.5756}, {52.5200, 13.4050});
  EXPECT_NEAR(d, 504, 3);
  EXPECT_DOUBLE_EQ(distance_km({1, 2}, {1, 2}), 0);
}

TEST(IpPrefix, ParseContainsAt) {
  auto p = model::IpPrefix::parse("10.200.0.0/16");
  ASSERT_TRUE(p.is_ok());
  EXPECT_TRUE(p.value().contains(model::IpAddress::parse("10.200.255.1").value()));
  EXPECT_FALSE(p.value().contains(model::IpAddress::parse("10.201.0.1").value()));
  EXPECT_FALSE(p.value().contains(model::IpAddress::parse("::1").value()));
  EXPECT_EQ(p.value().at(258).to_string(), "10.200.1.2");
  auto v6 = model::IpPrefix::parse("fd00:1::/64");
  ASSERT_TRUE(v6.is_ok());
  EXPECT_EQ(v6.value().at(0x1234abcdULL).to_string(), "fd00:1::1234:abcd");
  EXPECT_FALSE(model::IpPrefix::parse("10.0.0.0/33").is_ok());
  EXPECT_FALSE(model::IpPrefix::parse("10.0.0.0").is_ok());
  EXPECT_TRUE(model::IpPrefix::parse("10.0.0.1/8", true).is_ok());
  EXPECT_EQ(model::IpPrefix::parse("10.9.9.9/8", true).value().to_string(), "10.0.0.0/8");
  EXPECT_EQ(model::IpPrefix::parse("0.0.0.0/0").value().to_string(), "0.0.0.0/0");
  EXPECT_TRUE(model::IpPrefix::parse("0.0.0.0/0")
                  .value()
                  .contains(model::IpAddress::parse("1.2.3.4").value()));
}

}  // namespace
}  // namespace patronus::mesh

namespace {

// A controller's fleet settings are the sites file's overlay: and rules: alone, read by the same
// code (same defaults, same errors).
TEST(MeshSettings, OverlayAndRulesAloneWithTheFilesChecks) {
  auto m = patronus::mesh::parse_mesh_settings_yaml(
      "overlay: {ipv4: 10.200.0.0/24, ipv6: none, persistent_keepalive: 5}\n"
      "rules:\n  wan: {peers: [wan]}\n",
      "mesh.yaml");
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  EXPECT_EQ(m.value().overlay.ipv4.to_string(), "10.200.0.0/24");
  EXPECT_FALSE(m.value().overlay.ipv6.has_value());
  EXPECT_EQ(m.value().overlay.persistent_keepalive, 5);
  const auto wan = static_cast<int>(patronus::model::InterfaceType::kWan);
  const auto lte = static_cast<int>(patronus::model::InterfaceType::kLte);
  EXPECT_TRUE(m.value().rules.allows(patronus::model::InterfaceType::kWan,
                                     patronus::model::InterfaceType::kWan));
  EXPECT_FALSE((m.value().rules.by_type[wan].peers_mask >> lte) & 1U);
  // Defaults when absent; a key of the sites file that is not a fleet setting is refused.
  auto d = patronus::mesh::parse_mesh_settings_yaml("{}", "x");
  ASSERT_TRUE(d.is_ok());
  EXPECT_EQ(d.value().overlay.ipv4.to_string(), "10.200.0.0/16");
  auto bad = patronus::mesh::parse_mesh_settings_yaml("sites: []\n", "mesh.yaml");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("mesh.yaml: "), std::string::npos);
  EXPECT_NE(bad.status().message().find("sites"), std::string::npos) << bad.status().message();
  auto v6 = patronus::mesh::parse_mesh_settings_yaml("overlay: {ipv4: 10.0.0.0/31}\n", "m");
  EXPECT_FALSE(v6.is_ok());
}

}  // namespace
