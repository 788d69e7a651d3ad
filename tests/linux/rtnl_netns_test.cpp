// rtnetlink against the kernel, in a network namespace of the test's own: routes and rules are
// installed, replaced, refused, dumped and removed, and `ip` (run only to check) sees exactly
// what we installed. Needs root (CI runs as root); names carry the pid; the namespace (and all
// it holds) is removed even when a check fails.
#include <gtest/gtest.h>
#include <unistd.h>

#include "netns.hpp"
#include "rtnl.hpp"
#include "test_support.hpp"

namespace patronus::linuxnet {
namespace {

using test::ifindex;
using test::run;
using test::sh;

class RtnlKernel : public test::NetnsTest {};

TEST_F(RtnlKernel, RoutesAndRulesInstalledDumpedAndRemoved) {
  add_veths({"v0"});
  sh({"ip", "-n", ns(), "addr", "add", "10.99.0.1/24", "dev", "v0"});
  const std::uint32_t v0 = ifindex(ns(), "v0");
  ASSERT_GT(v0, 0u);
  auto nl = Rtnl::open_in_netns(ns_path());
  ASSERT_TRUE(nl.is_ok()) << nl.status().message();
  Rtnl& k = nl.value();

  Route r;
  r.table = 100;
  r.dst = model::IpPrefix::parse("192.168.50.0/24").value();
  r.oif = v0;
  ASSERT_TRUE(k.route(Op::kAdd, r).is_ok());
  auto shown = run({"ip", "-n", ns(), "route", "show", "table", "100"});
  EXPECT_NE(shown.out.find("192.168.50.0/24 dev v0 proto 80"), std::string::npos) << shown.out;
  // Adding it again is the kernel's EEXIST, named.
  const Status again = k.route(Op::kAdd, r);
  ASSERT_FALSE(again.is_ok());
  EXPECT_NE(again.message().find("File exists"), std::string::npos) << again.message();
  // Replace moves it behind a gateway in one request.
  r.gateway = model::IpAddress::parse("10.99.0.2").value();
  ASSERT_TRUE(k.route(Op::kReplace, r).is_ok());
  shown = run({"ip", "-n", ns(), "route", "show", "table", "100"});
  EXPECT_NE(shown.out.find("192.168.50.0/24 via 10.99.0.2 dev v0 proto 80"), std::string::npos)
      << shown.out;
  Route v6;
  v6.table = 100;
  v6.dst = model::IpPrefix::parse("fd00:50::/64").value();
  v6.oif = v0;
  ASSERT_TRUE(k.route(Op::kAdd, v6).is_ok());

  auto dumped = k.routes(false, 100);
  ASSERT_TRUE(dumped.is_ok()) << dumped.status().message();
  ASSERT_EQ(dumped.value().size(), 1u);
  EXPECT_EQ(dumped.value()[0].dst, r.dst);
  EXPECT_EQ(dumped.value()[0].gateway, r.gateway);
  EXPECT_EQ(dumped.value()[0].oif, v0);
  EXPECT_EQ(dumped.value()[0].protocol, kRtprotPatronus);
  auto dumped6 = k.routes(true, 100);
  ASSERT_TRUE(dumped6.is_ok());
  ASSERT_EQ(dumped6.value().size(), 1u);
  EXPECT_EQ(dumped6.value()[0].dst, v6.dst);

  // A class's rules: UDP to the SIP ports marked for the class look up table 100; so does DSCP EF
  // (FRA_DSCP: kernels from 6.13, this machine's is 6.18).
  Rule rule;
  rule.priority = 1000;
  rule.table = 100;
  rule.ip_proto = 17;
  rule.dport = std::make_pair(std::uint16_t{5060}, std::uint16_t{5061});
  rule.fwmark = 0x100;
  rule.fwmask = 0xff00;
  const Status added = k.rule(Op::kAdd, rule);
  ASSERT_TRUE(added.is_ok()) << added.message();
  Rule ef;
  ef.priority = 1001;
  ef.table = 100;
  ef.dscp = 46;
  const Status ef_added = k.rule(Op::kAdd, ef);
  ASSERT_TRUE(ef_added.is_ok()) << ef_added.message();
  auto rules = run({"ip", "-n", ns(), "rule", "show"});
  EXPECT_NE(rules.out.find("1000:"), std::string::npos) << rules.out;
  EXPECT_NE(rules.out.find("ipproto udp"), std::string::npos) << rules.out;
  EXPECT_NE(rules.out.find("dport 5060-5061"), std::string::npos) << rules.out;
  EXPECT_NE(rules.out.find("fwmark 0x100/0xff00"), std::string::npos) << rules.out;
  EXPECT_NE(rules.out.find("lookup 100 proto 80"), std::string::npos) << rules.out;
  auto ours = k.rules(false);
  ASSERT_TRUE(ours.is_ok()) << ours.status().message();
  int found = 0;
  for (const auto& x : ours.value()) {
    if (x.protocol != kRtprotPatronus) continue;
    ++found;
    EXPECT_EQ(x.table, 100u);
    if (x.priority == 1000) {
      EXPECT_EQ(x.fwmark, rule.fwmark);
      EXPECT_EQ(x.fwmask, rule.fwmask);
      EXPECT_EQ(x.dport, rule.dport);
      EXPECT_EQ(x.ip_proto, rule.ip_proto);
      EXPECT_FALSE(x.dscp.has_value());
    } else {
      EXPECT_EQ(x.priority, 1001u);
      EXPECT_EQ(x.dscp, std::optional<std::uint8_t>(46)) << "the kernel kept the DSCP selector";
    }
  }
  EXPECT_EQ(found, 2) << "exactly our rules carry our protocol";

  // Clean stop: everything tagged as ours goes, in one batch; nothing else does.
  std::vector<std::vector<std::uint8_t>> removal = {
      encode_rule(Op::kDelete, rule, 0), encode_rule(Op::kDelete, ef, 0),
      encode_route(Op::kDelete, r, 0), encode_route(Op::kDelete, v6, 0)};
  ASSERT_TRUE(k.batch(removal).is_ok());
  dumped = k.routes(false, 100);
  ASSERT_TRUE(dumped.is_ok());
  EXPECT_TRUE(dumped.value().empty());
  ours = k.rules(false);
  ASSERT_TRUE(ours.is_ok());
  for (const auto& x : ours.value()) EXPECT_NE(x.protocol, kRtprotPatronus);
  auto main_table = run({"ip", "-n", ns(), "route", "show"});
  EXPECT_NE(main_table.out.find("10.99.0.0/24 dev v0"), std::string::npos) << main_table.out;
  // A batch reports the first failure (deleting what is gone).
  const Status gone = k.batch(removal);
  EXPECT_FALSE(gone.is_ok());
}

// A link created by kind (IFLA_LINKINFO nested, as the WireGuard plugin creates "wireguard"
// links): the kernel creates it, `ip` sees it; an existing name is EEXIST, a kind this kernel
// lacks is the kernel's refusal, named ("wireguard" on these machines).
TEST_F(RtnlKernel, LinksAreCreatedByKindAndRefusalsAreTheKernels) {
  auto nl = Rtnl::open_in_netns(ns_path());
  ASSERT_TRUE(nl.is_ok()) << nl.status().message();
  Rtnl& k = nl.value();
  ASSERT_TRUE(k.create_link("pk0", "veth").is_ok());  // veth: the peer gets a kernel name
  auto shown = run({"ip", "-n", ns(), "-d", "link", "show", "pk0"});
  EXPECT_NE(shown.out.find("veth"), std::string::npos) << shown.out;
  const Status again = k.create_link("pk0", "veth");
  ASSERT_FALSE(again.is_ok());
  EXPECT_NE(again.message().find("File exists"), std::string::npos) << again.message();
  const Status unknown = k.create_link("pk1", "no-such-kind");
  ASSERT_FALSE(unknown.is_ok());
  EXPECT_NE(unknown.message().find("the kernel refused"), std::string::npos) << unknown.message();
  EXPECT_EQ(run({"ip", "-n", ns(), "link", "show", "pk1"}).exit_code == 0, false);
}

}  // namespace
}  // namespace patronus::linuxnet
