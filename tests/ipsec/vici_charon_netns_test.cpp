// Our VICI codec and client against real charon (strongSwan 5.9, kernel-libipsec: userspace ESP
// over a TUN, as this kernel has no ESP): two charon instances in two network namespaces, each
// with its own strongswan.conf, VICI socket and private /run (PLATFORM.md's recipe). Configured
// only over VICI: the version, a PSK, a connection each side; initiated, the SAs listed, a ping
// between the two LANs carried by the tunnel, then a wrong PSK refused with the reason in
// charon's answer. Root (namespaces); everything is removed also when a check fails.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "proposals.hpp"
#include "test_support.hpp"
#include "vici_client.hpp"

namespace patronus::vici {
namespace {

using namespace std::chrono_literals;
using test::run;

bool have_charon() {
  return std::filesystem::exists("/usr/lib/ipsec/charon");
}

struct Charon {
  std::string ns, dir;
  pid_t launcher = -1;
  std::string socket() const { return dir + "/charon.vici"; }
};

// Two namespaces joined by a veth (192.0.2.1 / .2), a "LAN" address in each (10.71.1.1 in
// 10.71.1.0/24, 10.71.2.1 in 10.71.2.0/24), a charon in each.
class TwoCharons : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces)";
    if (!have_charon()) GTEST_SKIP() << "no /usr/lib/ipsec/charon (strongswan-charon)";
    tok_ = std::to_string(::getpid() % 100000);
    for (int i = 0; i < 2; ++i) {
      c_[i].ns = "pv" + tok_ + (i == 0 ? "a" : "b");
      c_[i].dir = dir_.path() + (i == 0 ? "/a" : "/b");
      std::filesystem::create_directories(c_[i].dir + "/run");
      must({"ip", "netns", "add", c_[i].ns});
      must({"ip", "-n", c_[i].ns, "link", "set", "lo", "up"});
    }
    must({"ip", "link", "add", "pv" + tok_ + "x", "netns", c_[0].ns, "type", "veth", "peer", "name",
          "pv" + tok_ + "y", "netns", c_[1].ns});
    for (int i = 0; i < 2; ++i) {
      const std::string dev = "pv" + tok_ + (i == 0 ? "x" : "y");
      must({"ip", "-n", c_[i].ns, "addr", "add", wan(i) + "/24", "dev", dev});
      must({"ip", "-n", c_[i].ns, "link", "set", dev, "up"});
      // The LAN address on lo (this kernel has no dummy interfaces).
      must({"ip", "-n", c_[i].ns, "addr", "add", lan(i) + "/32", "dev", "lo"});
      start(c_[i]);
    }
  }

  void TearDown() override {
    for (auto& c : c_) {
      if (c.launcher > 0) {
        // charon's pid file is in its private /run (our directory).
        std::ifstream pidf(c.dir + "/run/charon.pid");
        pid_t pid = 0;
        if (pidf >> pid && pid > 0) ::kill(pid, SIGKILL);
        ::kill(c.launcher, SIGKILL);
        ::waitpid(c.launcher, nullptr, 0);
      }
      if (!c.ns.empty()) run({"ip", "netns", "del", c.ns});
    }
  }

  static std::string wan(int i) { return i == 0 ? "192.0.2.1" : "192.0.2.2"; }
  static std::string lan(int i) { return i == 0 ? "10.71.1.1" : "10.71.2.1"; }
  static std::string lan_net(int i) { return i == 0 ? "10.71.1.0/24" : "10.71.2.0/24"; }

  void must(const std::vector<std::string>& argv) {
    const auto r = run(argv);
    ASSERT_EQ(r.exit_code, 0) << argv[0] << " " << argv[1] << ": " << r.err;
  }

  void start(Charon& c) {
    test::write_file(c.dir + "/strongswan.conf",
                     "charon {\n"
                     "  load_modular = yes\n"
                     "  plugins {\n"
                     "    include /etc/strongswan.d/charon/*.conf\n"
                     "    kernel-libipsec { load = yes }\n"
                     "    vici { socket = unix://" +
                         c.socket() +
                         " }\n"
                         "  }\n"
                         "  filelog { log { path = " +
                         c.dir +
                         "/charon.log\n default = 1 } }\n"
                         "}\n");
    c.launcher = ::fork();
    if (c.launcher == 0) {
      const std::string cmd = "mount --bind " + c.dir +
                              "/run /run && exec env STRONGSWAN_CONF=" + c.dir +
                              "/strongswan.conf /usr/lib/ipsec/charon";
      ::execlp("ip", "ip", "netns", "exec", c.ns.c_str(), "sh", "-c", cmd.c_str(),
               static_cast<char*>(nullptr));
      ::_exit(127);
    }
    for (int i = 0; i < 100 && !std::filesystem::exists(c.socket()); ++i) {
      std::this_thread::sleep_for(50ms);
    }
    ASSERT_TRUE(std::filesystem::exists(c.socket())) << "charon did not open " << c.socket();
  }

  BlockingClient client(int i) {
    auto cl = BlockingClient::connect(c_[i].socket(), 10s);
    EXPECT_TRUE(cl.is_ok()) << cl.status().to_string();
    return std::move(cl).value();
  }

  // One side's connection "site" to the other: PSK, IKEv2, our default proposals (AES-GCM first,
  // X25519).
  static Message conn(int i, const std::string& name) {
    Message m;
    Message& c = m.section(name);
    c.set("version", "2");
    c.set_list("local_addrs", {wan(i)});
    c.set_list("remote_addrs", {wan(1 - i)});
    c.set_list("proposals", ipsec::default_proposals(ipsec::ProposalKind::kIke));
    Message& local = c.section("local");
    local.set("auth", "psk").set("id", i == 0 ? "site-a" : "site-b");
    Message& remote = c.section("remote");
    remote.set("auth", "psk").set("id", i == 0 ? "site-b" : "site-a");
    Message& child = c.section("children").section("lan");
    child.set_list("local_ts", {lan_net(i)});
    child.set_list("remote_ts", {lan_net(1 - i)});
    child.set_list("esp_proposals", ipsec::default_proposals(ipsec::ProposalKind::kEsp));
    return m;
  }

  static Message psk(const std::string& secret) {
    Message m;
    m.set("type", "IKE").set("data", secret).set_list("owners", {"site-a", "site-b"});
    return m;
  }

  test::TempDir dir_;
  std::string tok_;
  Charon c_[2];
};

TEST_F(TwoCharons, ConfiguredOverViciTheTunnelComesUpAndCarriesTraffic) {
  auto a = client(0);
  auto b = client(1);
  const auto version = a.call("version", {});
  ASSERT_TRUE(version.is_ok()) << version.status().to_string();
  EXPECT_EQ(version.value().get("daemon"), "charon");
  for (int i = 0; i < 2; ++i) {
    auto& cl = i == 0 ? a : b;
    auto r = cl.call("load-shared", psk("correct horse battery staple"));
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    ASSERT_TRUE(check_success("load-shared", r.value()).is_ok());
    r = cl.call("load-conn", conn(i, "site"));
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    ASSERT_TRUE(check_success("load-conn", r.value()).is_ok()) << describe(r.value());
  }
  ASSERT_TRUE(b.subscribe("child-updown").is_ok());
  Message init;
  init.set("child", "lan").set("ike", "site").set("timeout", "10000");
  int logs = 0;
  const auto r = a.call("initiate", init, [&](const Packet&) { ++logs; });
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_TRUE(check_success("initiate", r.value()).is_ok()) << describe(r.value());
  // The responder reports its CHILD_SA up.
  const auto ev = b.next_event(10s);
  ASSERT_TRUE(ev.is_ok()) << ev.status().to_string();
  EXPECT_EQ(ev.value().name, "child-updown");
  EXPECT_EQ(ev.value().message.get("up"), "yes");
  // list-sas streams one list-sa event per IKE_SA before its response.
  ASSERT_TRUE(a.subscribe("list-sa").is_ok());
  std::vector<Message> sas;
  const auto listed = a.call("list-sas", {}, [&](const Packet& p) {
    if (p.name == "list-sa") sas.push_back(p.message);
  });
  ASSERT_TRUE(listed.is_ok()) << listed.status().to_string();
  ASSERT_EQ(sas.size(), 1u);
  const Message* ike = sas[0].child("site");
  ASSERT_NE(ike, nullptr) << describe(sas[0]);
  EXPECT_EQ(ike->get("state"), "ESTABLISHED");
  EXPECT_EQ(ike->get("remote-id"), "site-b");
  EXPECT_EQ(ike->get("encr-alg"), "AES_GCM_16");
  EXPECT_EQ(ike->get("dh-group"), "CURVE_25519");
  const Message* children = ike->child("child-sas");
  ASSERT_NE(children, nullptr);
  ASSERT_FALSE(children->items.empty());
  const Message* child = children->items[0].second.section.get();
  ASSERT_NE(child, nullptr);
  EXPECT_EQ(child->get("state"), "INSTALLED");
  // A packet from one LAN to the other crosses the tunnel (userspace ESP over UDP 4500).
  const auto ping =
      run({"ip", "netns", "exec", c_[0].ns, "ping", "-c", "3", "-W", "2", "-I", lan(0), lan(1)});
  EXPECT_EQ(ping.exit_code, 0) << ping.out << ping.err;
  const auto again = a.call("list-sas", {}, [&](const Packet& p) {
    if (p.name == "list-sa") sas.push_back(p.message);
  });
  ASSERT_TRUE(again.is_ok());
  ASSERT_EQ(sas.size(), 2u);
  const Message* after = sas[1].child("site")->child("child-sas")->items[0].second.section.get();
  EXPECT_GE(std::stoull(after->get("packets-out").value_or("0")), 3u) << describe(*after);
  EXPECT_GE(std::stoull(after->get("packets-in").value_or("0")), 3u) << describe(*after);
}

TEST_F(TwoCharons, AWrongPskIsRefusedWithTheReason) {
  auto a = client(0);
  auto b = client(1);
  ASSERT_TRUE(
      check_success("load-shared", a.call("load-shared", psk("one secret")).value()).is_ok());
  ASSERT_TRUE(
      check_success("load-shared", b.call("load-shared", psk("another secret")).value()).is_ok());
  ASSERT_TRUE(check_success("load-conn", a.call("load-conn", conn(0, "site")).value()).is_ok());
  ASSERT_TRUE(check_success("load-conn", b.call("load-conn", conn(1, "site")).value()).is_ok());
  // initiate streams charon's log of the attempt to a client registered for control-log.
  ASSERT_TRUE(a.subscribe("control-log").is_ok());
  Message init;
  init.set("child", "lan").set("ike", "site").set("timeout", "10000");
  std::string log;
  const auto r = a.call("initiate", init, [&](const Packet& p) {
    if (auto msg = p.message.get("msg")) log += *msg + "\n";
  });
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  const Status s = check_success("initiate", r.value());
  EXPECT_FALSE(s.is_ok());
  // charon's control log says why: the peer's authentication failed.
  EXPECT_NE(log.find("AUTHENTICATION_FAILED"), std::string::npos) << log << describe(r.value());
}

}  // namespace
}  // namespace patronus::vici
