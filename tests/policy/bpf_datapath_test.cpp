// The eBPF datapath against the compiled classifier, through BPF_PROG_TEST_RUN: 1,000,000 random
// tuples over random policy sets (fixed seeds); incremental syncs against a full reload at every
// step; connection tracking, fragments, malformed and non-IP frames, counters. Needs root (CI runs
// it as root); skipped with the reason otherwise.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <iostream>

#include "patronus/policy/bpf_datapath.hpp"
#include "patronus/policy/classifier.hpp"
#include "patronus/policy/parse.hpp"
#include "random_policies.hpp"

namespace patronus::policy {
namespace {

using bpf::Datapath;
using bpf::Packet;

#define REQUIRE_BPF()                                               \
  do {                                                              \
    if (const auto why = bpf::unavailable_reason(); !why.empty()) { \
      GTEST_SKIP() << why;                                          \
    }                                                               \
  } while (0)

std::unique_ptr<Datapath> open_dp(bool conntrack) {
  bpf::Options o;
  o.conntrack = conntrack;
  auto dp = Datapath::open(o);
  EXPECT_TRUE(dp.is_ok()) << dp.status().to_string();
  return dp.is_ok() ? std::move(dp).value() : nullptr;
}

// A tuple whose ends share an address family (a packet has one).
test::PolicyGen::Tuple packet_tuple(test::PolicyGen& gen, const Inventory& inv) {
  while (true) {
    auto t = gen.tuple(inv);
    if (t.src.ip->is_v4() == t.dst.ip->is_v4()) return t;
  }
}

Packet packet_of(const test::PolicyGen::Tuple& t) {
  Packet p;
  p.src = *t.src.ip;
  p.dst = *t.dst.ip;
  p.protocol = static_cast<std::uint8_t>(t.protocol);
  p.dport = static_cast<std::uint16_t>(t.port);
  return p;
}

bool run(Datapath& dp, const Packet& p) {
  auto r = dp.test_run(p.frame());
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  return r.is_ok() && r.value();
}

TEST(BpfDatapath, MillionTuplesAgreeWithTheClassifier) {
  REQUIRE_BPF();
  auto dp = open_dp(false);
  ASSERT_NE(dp, nullptr);
  std::size_t allowed = 0, total = 0;
  for (std::uint64_t scenario = 0; scenario < 100; ++scenario) {
    test::PolicyGen gen(1000 + scenario, test::scenario_spec(scenario));
    const Inventory inv = gen.inventory();
    const Classifier cls(gen.policies(), inv);
    ASSERT_TRUE(dp->reload(cls).is_ok());
    for (int i = 0; i < 10000; ++i) {
      const auto t = packet_tuple(gen, inv);
      const bool want = cls.allowed_ips(*t.src.ip, *t.dst.ip, t.protocol, t.port);
      const bool got = run(*dp, packet_of(t));
      ASSERT_EQ(got, want) << "scenario " << scenario << " tuple " << i << ": "
                           << t.src.ip->to_string() << " -> " << t.dst.ip->to_string() << " "
                           << to_string(t.protocol) << "/" << t.port;
      allowed += want;
      ++total;
    }
  }
  EXPECT_EQ(total, 1000000u);
  std::cout << "allowed " << allowed << " of " << total << " packets" << std::endl;
  EXPECT_GT(allowed, total / 10);
  EXPECT_LT(allowed, total * 9 / 10);
}

TEST(BpfDatapath, IncrementalSyncsAgreeWithAFullReloadAtEveryStep) {
  REQUIRE_BPF();
  auto inc_dp = open_dp(false);
  auto fresh_dp = open_dp(false);
  ASSERT_NE(inc_dp, nullptr);
  ASSERT_NE(fresh_dp, nullptr);
  std::size_t incremental = 0, steps = 0;
  // Each full reload waits for the kernel's RCU grace periods (map-in-map updates): ~0.1 s.
  for (std::uint64_t scenario = 0; scenario < 8; ++scenario) {
    test::RandomSpec spec;
    spec.pods = 15;
    spec.policies = 10;
    test::PolicyGen gen(9000 + scenario, spec);
    Classifier inc(gen.policies(), gen.inventory());
    ASSERT_TRUE(inc_dp->sync(inc).is_ok());
    int next_policy = 100, next_pod = 100;
    for (int step = 0; step < 25; ++step) {
      gen.change(inc, next_policy, next_pod, 30);
      ASSERT_TRUE(inc_dp->sync(inc).is_ok());
      incremental += !inc_dp->last_sync().full;
      ++steps;
      const Classifier fresh(inc.policies(), inc.inventory());
      ASSERT_TRUE(fresh_dp->reload(fresh).is_ok());
      for (int i = 0; i < 300; ++i) {
        const auto t = packet_tuple(gen, inc.inventory());
        const bool want = fresh.allowed_ips(*t.src.ip, *t.dst.ip, t.protocol, t.port);
        const Packet p = packet_of(t);
        ASSERT_EQ(run(*inc_dp, p), want)
            << "scenario " << scenario << " step " << step
            << " (incremental): " << t.src.ip->to_string() << " -> " << t.dst.ip->to_string() << " "
            << to_string(t.protocol) << "/" << t.port;
        ASSERT_EQ(run(*fresh_dp, p), want) << "scenario " << scenario << " step " << step;
      }
    }
  }
  std::cout << incremental << " of " << steps << " syncs were incremental" << std::endl;
  // Most changes are written in place (a pod in a new namespace or identity overflow reloads).
  EXPECT_GT(incremental, steps * 3 / 4);
}

// Two pods: x/client may reach x/server on TCP 80 (server isolated for ingress); the server may
// not open connections to the client (client isolated for ingress with no rule).
const char* kTwoPods = R"(
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: x, labels: {app: client}}
status: {podIP: 10.9.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: server, namespace: x, labels: {app: server}}
status: {podIP: 10.9.0.2}
)";
// The client is isolated for ingress with no rule: its traffic in passes only as replies.
const std::string kClientClosed = R"(
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: client-closed, namespace: x}
spec:
  podSelector: {matchLabels: {app: client}}
  policyTypes: [Ingress]
)";
const std::string kServerPolicy = R"(
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: server-80, namespace: x}
spec:
  podSelector: {matchLabels: {app: server}}
  ingress: [{from: [{podSelector: {matchLabels: {app: client}}}], ports: [{port: 80}]}]
)" + kClientClosed;

std::unique_ptr<Classifier> two_pods() {
  auto inv = parse_manifests(kTwoPods, "pods.yaml", Accept::kInventory);
  auto pols = parse_manifests(kServerPolicy, "policies.yaml", Accept::kPolicies);
  EXPECT_TRUE(inv.is_ok() && pols.is_ok());
  return std::make_unique<Classifier>(pols.value().policies, make_inventory(inv.value()));
}

model::IpAddress ip(const char* s) {
  return model::IpAddress::parse(s).value();
}

TEST(BpfDatapath, RepliesOfAllowedConnectionsPassAndNewOnesDoNot) {
  REQUIRE_BPF();
  auto dp = open_dp(true);
  ASSERT_NE(dp, nullptr);
  auto cls = two_pods();
  ASSERT_TRUE(dp->sync(*cls).is_ok());
  Packet syn{ip("10.9.0.1"), ip("10.9.0.2"), 6, 40001, 80};
  Packet reply{ip("10.9.0.2"), ip("10.9.0.1"), 6, 80, 40001};
  Packet back{ip("10.9.0.2"), ip("10.9.0.1"), 6, 40002, 22};
  // Before the connection, the "reply" is a new connection into the closed client.
  EXPECT_FALSE(run(*dp, reply));
  EXPECT_TRUE(run(*dp, syn));
  EXPECT_TRUE(run(*dp, reply));
  EXPECT_FALSE(run(*dp, back));
  Packet udp_req{ip("10.9.0.1"), ip("10.9.0.2"), 17, 5353, 80};
  Packet udp_other_port{ip("10.9.0.1"), ip("10.9.0.2"), 17, 5353, 81};
  EXPECT_FALSE(run(*dp, udp_req)) << "the policy allows TCP 80 only";
  EXPECT_FALSE(run(*dp, udp_other_port));
  const auto v = dp->verdicts();
  ASSERT_TRUE(v.is_ok());
  EXPECT_EQ(v.value().allowed, 1u);
  EXPECT_EQ(v.value().reply, 1u);
  EXPECT_EQ(v.value().denied, 4u);
  const auto pc = dp->policy_counts();
  ASSERT_TRUE(pc.is_ok());
  std::map<std::string, std::pair<std::uint64_t, std::uint64_t>> by;
  for (const auto& c : pc.value()) by[c.policy + " " + c.direction] = {c.allowed, c.denied};
  // server-80 isolates the server: the syn was allowed, two UDP packets denied. client-closed
  // isolates the client: the reply and the server's connection were denied there (the reply
  // then passed as a reply).
  EXPECT_EQ(by["x/server-80 ingress"], std::make_pair(std::uint64_t{1}, std::uint64_t{2}));
  EXPECT_EQ(by["x/client-closed ingress"], std::make_pair(std::uint64_t{0}, std::uint64_t{3}));
}

// ICMP has no ports: only a rule without `ports` allows it; an echo reply answers its request.
TEST(BpfDatapath, EchoRepliesAnswerTheirRequestAndOtherIcmpNeedsARuleWithoutPorts) {
  REQUIRE_BPF();
  auto inv = parse_manifests(kTwoPods, "pods.yaml", Accept::kInventory);
  auto pols = parse_manifests(R"(
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: server-open-to-client, namespace: x}
spec:
  podSelector: {matchLabels: {app: server}}
  ingress: [{from: [{podSelector: {matchLabels: {app: client}}}]}]
)" + kClientClosed,
                              "policies.yaml", Accept::kPolicies);
  ASSERT_TRUE(inv.is_ok() && pols.is_ok());
  const Classifier cls(pols.value().policies, make_inventory(inv.value()));
  auto dp = open_dp(true);
  ASSERT_NE(dp, nullptr);
  ASSERT_TRUE(dp->sync(cls).is_ok());
  // type 8 request / 0 reply, identifier at bytes 4-5 of the ICMP header (after 14 + 20 bytes).
  auto icmp = [](const char* src, const char* dst, std::uint8_t type, std::uint16_t id) {
    auto f = Packet{ip(src), ip(dst), 1, 0, 0}.frame();
    f[34] = type;
    f[38] = static_cast<std::uint8_t>(id >> 8);
    f[39] = static_cast<std::uint8_t>(id);
    return f;
  };
  EXPECT_FALSE(dp->test_run(icmp("10.9.0.2", "10.9.0.1", 8, 7)).value()) << "client closed";
  EXPECT_TRUE(dp->test_run(icmp("10.9.0.1", "10.9.0.2", 8, 7)).value()) << "rule without ports";
  EXPECT_TRUE(dp->test_run(icmp("10.9.0.2", "10.9.0.1", 0, 7)).value()) << "its reply";
  EXPECT_FALSE(dp->test_run(icmp("10.9.0.2", "10.9.0.1", 0, 8)).value()) << "no request 8";
  const auto v = dp->verdicts().value();
  EXPECT_EQ(v.allowed, 1u);
  EXPECT_EQ(v.reply, 1u);
  EXPECT_EQ(v.denied, 2u);
}

TEST(BpfDatapath, StatelessModeJudgesEveryPacketAlone) {
  REQUIRE_BPF();
  auto dp = open_dp(false);
  ASSERT_NE(dp, nullptr);
  auto cls = two_pods();
  ASSERT_TRUE(dp->sync(*cls).is_ok());
  EXPECT_TRUE(run(*dp, Packet{ip("10.9.0.1"), ip("10.9.0.2"), 6, 40001, 80}));
  EXPECT_FALSE(run(*dp, Packet{ip("10.9.0.2"), ip("10.9.0.1"), 6, 80, 40001}));
}

std::vector<std::uint8_t> fragment(const Packet& p, std::uint16_t id, std::uint16_t offset8,
                                   bool more) {
  auto f = p.frame();
  f[14 + 4] = static_cast<std::uint8_t>(id >> 8);
  f[14 + 5] = static_cast<std::uint8_t>(id);
  const std::uint16_t v = static_cast<std::uint16_t>((more ? 0x2000 : 0) | offset8);
  f[14 + 6] = static_cast<std::uint8_t>(v >> 8);
  f[14 + 7] = static_cast<std::uint8_t>(v);
  return f;
}

TEST(BpfDatapath, LaterFragmentsFollowTheirFirstFragment) {
  REQUIRE_BPF();
  auto dp = open_dp(true);
  ASSERT_NE(dp, nullptr);
  auto cls = two_pods();
  ASSERT_TRUE(dp->sync(*cls).is_ok());
  const Packet ok{ip("10.9.0.1"), ip("10.9.0.2"), 17, 5000, 80};
  const Packet tcp_ok{ip("10.9.0.1"), ip("10.9.0.2"), 6, 5000, 80};
  const Packet denied{ip("10.9.0.1"), ip("10.9.0.2"), 6, 5000, 81};
  EXPECT_TRUE(dp->test_run(fragment(tcp_ok, 7, 0, true)).value());
  EXPECT_TRUE(dp->test_run(fragment(tcp_ok, 7, 185, false)).value());
  EXPECT_FALSE(dp->test_run(fragment(denied, 8, 0, true)).value());
  EXPECT_FALSE(dp->test_run(fragment(denied, 8, 185, false)).value());
  EXPECT_FALSE(dp->test_run(fragment(ok, 9, 185, false)).value()) << "first fragment unseen";
  const auto v = dp->verdicts().value();
  EXPECT_EQ(v.fragment_passed, 1u);
  EXPECT_EQ(v.fragment_dropped, 2u);
}

TEST(BpfDatapath, HostileFramesGetAVerdict) {
  REQUIRE_BPF();
  auto dp = open_dp(true);
  ASSERT_NE(dp, nullptr);
  auto cls = two_pods();
  ASSERT_TRUE(dp->sync(*cls).is_ok());
  // Non-IP (ARP) passes; a truncated IPv4 header and a wrong version are dropped as malformed.
  std::vector<std::uint8_t> arp(60, 0);
  arp[12] = 0x08;
  arp[13] = 0x06;
  EXPECT_TRUE(dp->test_run(arp).value());
  auto good = Packet{ip("10.9.0.1"), ip("10.9.0.2"), 6, 1, 80}.frame();
  std::vector<std::uint8_t> cut(good.begin(), good.begin() + 14 + 20 + 2);  // ports cut off
  const auto cut_verdict = dp->test_run(cut);
  ASSERT_TRUE(cut_verdict.is_ok()) << cut_verdict.status().to_string();
  EXPECT_FALSE(cut_verdict.value());
  auto bad = good;
  bad[14] = 0x44;  // IHL 4: shorter than a header
  EXPECT_FALSE(dp->test_run(bad).value());
  // Random bytes behind an IPv4 or IPv6 ethertype: the programs give a verdict (the kernel
  // refuses to build some of them into a test skb at all, which is no verdict of ours).
  test::PolicyGen gen(77, {});
  int judged = 0;
  for (int i = 0; i < 2000; ++i) {
    std::vector<std::uint8_t> f(15 + gen.below(120));
    for (auto& b : f) b = static_cast<std::uint8_t>(gen.below(256));
    f[12] = gen.chance(50) ? 0x08 : 0x86;
    f[13] = f[12] == 0x08 ? 0x00 : 0xdd;
    judged += dp->test_run(f).is_ok();
  }
  EXPECT_GT(judged, 1000);
  const auto v = dp->verdicts().value();
  EXPECT_EQ(v.not_ip, 1u);
  EXPECT_GE(v.malformed, 2u);
}

// An L3 device (wireguard-go's kind: a TUN, packets start at the IP header) gets the raw
// program: packets written into a TUN are received by the kernel on it, through tc ingress.
TEST(BpfDatapath, EnforcesOnAnL3TunDevice) {
  REQUIRE_BPF();
  ASSERT_EQ(::unshare(CLONE_NEWNET), 0) << "a private network namespace for this test";
  const int tun = ::open("/dev/net/tun", O_RDWR | O_CLOEXEC);
  if (tun < 0) GTEST_SKIP() << "no /dev/net/tun";
  ifreq req{};
  req.ifr_flags = IFF_TUN | IFF_NO_PI;
  std::strncpy(req.ifr_name, "pttun0", IFNAMSIZ - 1);
  ASSERT_EQ(::ioctl(tun, TUNSETIFF, &req), 0);
  const int sock = ::socket(AF_INET, SOCK_DGRAM, 0);
  ASSERT_EQ(::ioctl(sock, SIOCGIFFLAGS, &req), 0);
  req.ifr_flags |= IFF_UP;
  ASSERT_EQ(::ioctl(sock, SIOCSIFFLAGS, &req), 0);
  ::close(sock);
  auto dp = open_dp(true);
  ASSERT_NE(dp, nullptr);
  auto cls = two_pods();
  ASSERT_TRUE(dp->sync(*cls).is_ok());
  ASSERT_TRUE(dp->attach("pttun0").is_ok());
  auto send = [&](const Packet& p) {
    const auto f = p.frame();
    ASSERT_EQ(::write(tun, f.data() + 14, f.size() - 14), static_cast<ssize_t>(f.size() - 14));
  };
  send(Packet{ip("10.9.0.1"), ip("10.9.0.2"), 6, 40001, 80});   // allowed
  send(Packet{ip("10.9.0.2"), ip("10.9.0.1"), 6, 80, 40001});   // its reply
  send(Packet{ip("10.9.0.1"), ip("10.9.0.2"), 6, 40001, 443});  // denied
  send(Packet{ip("10.9.0.2"), ip("10.9.0.1"), 17, 53, 53});     // denied
  const auto v = dp->verdicts().value();
  EXPECT_EQ(v.allowed, 1u);
  EXPECT_EQ(v.reply, 1u);
  EXPECT_EQ(v.denied, 2u);
  EXPECT_EQ(v.malformed, 0u) << "the raw program read the packets at the IP header";
  EXPECT_TRUE(dp->detach("pttun0").is_ok());
  ::close(tun);
}

TEST(BpfDatapath, NothingPassesBeforeTheFirstLoad) {
  REQUIRE_BPF();
  auto dp = open_dp(true);
  ASSERT_NE(dp, nullptr);
  EXPECT_FALSE(run(*dp, Packet{ip("10.9.0.1"), ip("10.9.0.2"), 6, 40001, 80}));
  EXPECT_EQ(dp->verdicts().value().no_tables, 1u);
}

}  // namespace
}  // namespace patronus::policy
