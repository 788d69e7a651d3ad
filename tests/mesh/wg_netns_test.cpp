// Interop with real WireGuard: `patronus mesh plan` writes two sites' configs, `wg-quick strip`
// and `wg setconf` apply them to wireguard-go interfaces in two network namespaces joined by a
// veth pair, and a ping crosses the tunnel (IPv4 and IPv6 overlay) after a real handshake.
// Needs root (CI runs as root), iproute2, wireguard-go and wireguard-tools. Every name carries
// the test's pid so parallel runs do not collide; everything is removed even when a check fails.
#include <gtest/gtest.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "netns.hpp"
#include "test_support.hpp"

namespace patronus {
namespace {

using test::run;

using test::Netns;
using test::sh;
using test::WireguardGo;

TEST(WireGuardInterop, GeneratedConfigsHandshakeAndCarryPingBetweenNamespaces) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root for network namespaces (CI runs as root)";
  const std::string id = std::to_string(getpid());
  Netns a("pnA" + id), b("pnB" + id);
  ASSERT_TRUE(a.ok() && b.ok()) << "ip netns add failed";
  const std::string va = "pvA" + id, vb = "pvB" + id;
  sh({"ip", "link", "add", va, "netns", a.name(), "type", "veth", "peer", "name", vb, "netns",
      b.name()});
  sh({"ip", "-n", a.name(), "addr", "add", "10.77.0.1/24", "dev", va});
  sh({"ip", "-n", b.name(), "addr", "add", "10.77.0.2/24", "dev", vb});
  for (const auto* ns : {&a, &b}) {
    sh({"ip", "-n", ns->name(), "link", "set", "lo", "up"});
  }
  sh({"ip", "-n", a.name(), "link", "set", va, "up"});
  sh({"ip", "-n", b.name(), "link", "set", vb, "up"});

  test::TempDir dir;
  test::write_file(dir.file("sites.yaml"), R"(sites:
  - name: alpha
    subnets: [192.168.71.0/24]
    endpoints: [{name: wan0, address: 10.77.0.1:51820, type: wan}]
  - name: beta
    endpoints: [{name: wan0, address: 10.77.0.2:51821, type: broadband}]
)");
  auto plan = run({test::bin_dir() + "/patronus", "mesh", "plan", "--sites", dir.file("sites.yaml"),
                   "--topology", "full-mesh", "--keys-dir", dir.file("keys"), "--wg-config-dir",
                   dir.file("wg"), "--json"});
  ASSERT_EQ(plan.exit_code, 0) << plan.err;
  const auto j = nlohmann::json::parse(plan.out);
  ASSERT_EQ(j["paths"].size(), 1u);

  struct Side {
    const Netns* ns;
    std::string site, ifname, v4, v6;
  };
  std::vector<Side> sides = {{&a, "alpha", "wgA" + id, "", ""}, {&b, "beta", "wgB" + id, "", ""}};
  for (std::size_t i = 0; i < 2; ++i) {
    const auto& addrs = j["sites"][i]["interfaces"][0]["addresses"];
    sides[i].v4 = addrs[0].get<std::string>();
    sides[i].v6 = addrs[1].get<std::string>();
  }
  WireguardGo wga(a.name(), sides[0].ifname), wgb(b.name(), sides[1].ifname);
  for (auto& s : sides) {
    ASSERT_TRUE(test::wait_for_wireguard(s.ns->name(), s.ifname))
        << "wireguard-go did not create " << s.ifname;
    const std::string conf = dir.file("wg/" + s.site + "/wg-wan0.conf");
    auto stripped = run({"wg-quick", "strip", conf});
    ASSERT_EQ(stripped.exit_code, 0) << stripped.err;
    test::write_file(dir.file(s.site + ".stripped"), stripped.out);
    sh({"ip", "netns", "exec", s.ns->name(), "wg", "setconf", s.ifname,
        dir.file(s.site + ".stripped")});
    sh({"ip", "-n", s.ns->name(), "addr", "add", s.v4, "dev", s.ifname});
    sh({"ip", "-n", s.ns->name(), "addr", "add", s.v6, "dev", s.ifname, "nodad"});
    sh({"ip", "-n", s.ns->name(), "link", "set", s.ifname, "up"});
  }
  const std::string b4 = sides[1].v4.substr(0, sides[1].v4.find('/'));
  const std::string b6 = sides[1].v6.substr(0, sides[1].v6.find('/'));
  auto ping4 = run({"ip", "netns", "exec", a.name(), "ping", "-c", "3", "-W", "2", b4});
  EXPECT_EQ(ping4.exit_code, 0) << ping4.out << ping4.err;
  EXPECT_NE(ping4.out.find("3 received"), std::string::npos) << ping4.out;
  auto ping6 = run({"ip", "netns", "exec", a.name(), "ping", "-6", "-c", "2", "-W", "2", b6});
  EXPECT_EQ(ping6.exit_code, 0) << ping6.out << ping6.err;
  // A real handshake happened, with the peer the plan named, at the planned endpoint.
  auto hs = run({"ip", "netns", "exec", a.name(), "wg", "show", sides[0].ifname, "dump"});
  ASSERT_EQ(hs.exit_code, 0) << hs.err;
  const std::string beta_key = j["sites"][1]["interfaces"][0]["public_key"];
  const auto line = hs.out.find(beta_key);
  ASSERT_NE(line, std::string::npos) << hs.out;
  // dump peer line: public-key preshared endpoint allowed-ips latest-handshake rx tx keepalive
  std::istringstream fields(hs.out.substr(line));
  std::string key, psk, endpoint, allowed, handshake;
  fields >> key >> psk >> endpoint >> allowed >> handshake;
  EXPECT_EQ(endpoint, "10.77.0.2:51821");
  EXPECT_NE(handshake, "0") << "no handshake recorded";
  EXPECT_NE(allowed.find(b4 + "/32"), std::string::npos) << allowed;
  // Beta's peer (alpha) carries alpha's LAN subnet.
  auto hb = run({"ip", "netns", "exec", b.name(), "wg", "show", sides[1].ifname, "allowed-ips"});
  EXPECT_NE(hb.out.find("192.168.71.0/24"), std::string::npos) << hb.out;
}

}  // namespace
}  // namespace patronus
