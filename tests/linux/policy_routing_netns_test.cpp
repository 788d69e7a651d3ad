// Class-based policy routing in the kernel of a network namespace of the test's own: the class
// rules and tables are installed, the kernel's own route lookup (`ip route get` with protocol,
// port and DSCP) sends each class where its table says, a failover is one batch in one table,
// a second apply changes nothing, no path is unreachable (nothing leaks to the main table), and
// a clean stop leaves no trace. Needs root (CI runs as root) and Linux >= 6.13 for DSCP rules.
#include <gtest/gtest.h>
#include <unistd.h>

#include "kernel_test.hpp"
#include "policy_routing.hpp"
#include "test_support.hpp"

namespace patronus::linuxnet {
namespace {

using test::ifindex;
using test::sh;

class PolicyRoutingKernel : public DscpKernelTest {};

TEST_F(PolicyRoutingKernel, ClassesAreRoutedByTheirTablesAndFailOverInOneBatch) {
  // Two "tunnels" (veth pairs stand in: routing does not care what the device is) and an uplink
  // with a default route, which private traffic must never take.
  add_veths({"t0", "t1", "wan"});
  sh({"ip", "-n", ns(), "addr", "add", "100.64.0.1/30", "dev", "t0"});
  sh({"ip", "-n", ns(), "addr", "add", "100.64.1.1/30", "dev", "t1"});
  sh({"ip", "-n", ns(), "addr", "add", "198.51.100.2/24", "dev", "wan"});
  sh({"ip", "-n", ns(), "route", "add", "default", "via", "198.51.100.1"});
  const std::uint32_t t0 = ifindex(ns(), "t0"), t1 = ifindex(ns(), "t1");
  ASSERT_TRUE(t0 && t1);

  auto nl = Rtnl::open_in_netns(ns_path());
  ASSERT_TRUE(nl.is_ok()) << nl.status().message();
  PolicyRouting pr(std::move(nl).value());
  const steering::ClassSet classes = steering::default_classes("");
  const PolicyLayout layout;
  auto rules = class_rules(classes, layout, /*dscp_in_rules=*/true);
  ASSERT_TRUE(rules.is_ok()) << rules.status().message();
  const Status applied = pr.apply_rules(rules.value());
  ASSERT_TRUE(applied.is_ok()) << applied.message();

  // Site B's LAN. Voice (class 0) goes over t0, every other class over t1.
  const auto site_b = model::IpPrefix::parse("10.20.0.0/16").value();
  auto table = [&](std::size_t cls) { return layout.table_base + static_cast<std::uint32_t>(cls); };
  for (std::size_t c = 0; c < classes.classes.size(); ++c) {
    const Status st =
        pr.apply_table(table(c), {class_route(table(c), site_b, {c == 0 ? t0 : t1, {}})});
    ASSERT_TRUE(st.is_ok()) << classes.classes[c].name << ": " << st.message();
  }
  const std::string b_host = "10.20.3.4";
  EXPECT_EQ(test::route_device(ns(), {b_host, "ipproto", "udp", "dport", "5060"}), "t0") << "SIP";
  EXPECT_EQ(test::route_device(ns(), {b_host, "tos", "0xb8"}), "t0") << "DSCP EF";
  EXPECT_EQ(test::route_device(ns(), {b_host, "ipproto", "tcp", "dport", "22"}), "t1") << "SSH";
  EXPECT_EQ(test::route_device(ns(), {b_host, "ipproto", "tcp", "dport", "443"}), "t1")
      << "default";
  EXPECT_EQ(test::route_device(ns(), {"203.0.113.9", "ipproto", "udp", "dport", "5060"}), "wan")
      << "not a site prefix: the class tables have no route, the main table decides";

  // Applying the same state again sends nothing.
  auto now = pr.rtnl().rules(false);
  ASSERT_TRUE(now.is_ok());
  std::vector<Rule> ours4;
  for (const auto& r : now.value()) {
    if (r.protocol == kRtprotPatronus) ours4.push_back(r);
  }
  std::vector<Rule> want4;
  for (const auto& r : rules.value()) {
    if (!r.ipv6) want4.push_back(r);
  }
  EXPECT_TRUE(rule_changes(ours4, want4).empty()) << "the kernel kept the rules as we wrote them";
  auto voice_now = pr.rtnl().routes(false, table(0));
  ASSERT_TRUE(voice_now.is_ok());
  EXPECT_TRUE(route_changes(voice_now.value(), {class_route(table(0), site_b, {t0, {}})}).empty());

  // Failover of voice: one batch in voice's table; the others untouched.
  ASSERT_TRUE(pr.apply_table(table(0), {class_route(table(0), site_b, {t1, {}})}).is_ok());
  EXPECT_EQ(test::route_device(ns(), {b_host, "ipproto", "udp", "dport", "5060"}), "t1");
  EXPECT_EQ(test::route_device(ns(), {b_host, "ipproto", "tcp", "dport", "22"}), "t1");
  // No path for voice: unreachable, not the default route through the uplink.
  ASSERT_TRUE(pr.apply_table(table(0), {class_route(table(0), site_b, {})}).is_ok());
  const std::string none = test::route_device(ns(), {b_host, "ipproto", "udp", "dport", "5060"});
  EXPECT_EQ(none, "unreachable");
  EXPECT_EQ(test::route_device(ns(), {b_host, "ipproto", "tcp", "dport", "22"}), "t1");

  // Clean stop: nothing of ours remains; the main table and the uplink are untouched.
  ASSERT_TRUE(pr.remove_all().is_ok());
  for (const bool v6 : {false, true}) {
    auto rs = pr.rtnl().rules(v6);
    ASSERT_TRUE(rs.is_ok());
    for (const auto& r : rs.value()) EXPECT_NE(r.protocol, kRtprotPatronus);
    auto routes = pr.rtnl().routes(v6, 0);
    ASSERT_TRUE(routes.is_ok());
    for (const auto& r : routes.value()) EXPECT_NE(r.protocol, kRtprotPatronus);
  }
  EXPECT_EQ(test::route_device(ns(), {b_host}), "wan");
}

}  // namespace
}  // namespace patronus::linuxnet
