// Interop with real WireGuard: `patronus mesh plan` writes two sites' configs, `wg-quick strip`
// and `wg setconf` apply them to wireguard-go interfaces in two network namespaces joined by a
// veth pair, and a ping crosses the tunnel (IPv4 and IPv6 overlay) after a real handshake.
// Needs root (CI runs as root), iproute2, wireguard-go and wireguard-tools. Every name carries
// the test's pid so parallel runs do not collide; everything is removed even when a check fails.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>

#include "test_support.hpp"

namespace patronus {
namespace {

using test::run;

class Netns {
 public:
  explicit Netns(std::string name) : name_(std::move(name)) {
    ok_ = run({"ip", "netns", "add", name_}).exit_code == 0;
  }
  ~Netns() {
    if (ok_) run({"ip", "netns", "del", name_});
  }
  bool ok() const { return ok_; }
  const std::string& name() const { return name_; }

 private:
  std::string name_;
  bool ok_ = false;
};

// wireguard-go in the foreground inside a namespace; stopped (and its socket removed) on exit.
class WireguardGo {
 public:
  WireguardGo(const std::string& ns, const std::string& ifname) : ifname_(ifname) {
    pid_ = fork();
    if (pid_ == 0) {
      const int devnull = open("/dev/null", O_RDWR);
      dup2(devnull, 0);
      dup2(devnull, 1);
      dup2(devnull, 2);
      execlp("ip", "ip", "netns", "exec", ns.c_str(), "wireguard-go", "-f", ifname.c_str(),
             static_cast<char*>(nullptr));
      _exit(127);
    }
  }
  ~WireguardGo() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      int status = 0;
      waitpid(pid_, &status, 0);
    }
    unlink(("/var/run/wireguard/" + ifname_ + ".sock").c_str());
  }

 private:
  std::string ifname_;
  pid_t pid_ = -1;
};

bool wait_for_link(const std::string& ns, const std::string& ifname) {
  for (int i = 0; i < 100; ++i) {
    if (run({"ip", "-n", ns, "link", "show", ifname}).exit_code == 0) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

void sh(const std::vector<std::string>& argv) {
  auto r = run(argv);
  std::string cmd;
  for (const auto& a : argv) cmd += a + " ";
  ASSERT_EQ(r.exit_code, 0) << cmd << "\n" << r.out << r.err;
}

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
    ASSERT_TRUE(wait_for_link(s.ns->name(), s.ifname))
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
