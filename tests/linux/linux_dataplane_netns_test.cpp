// The Linux Dataplane in a network namespace of the test's own: before any decision a remote
// site is unreachable for every class (nothing leaks to the uplink), each decision moves one
// class in the kernel's own lookup, a path the transport cannot carry is refused and leaves
// the class unreachable, a restart reconciles without duplicates, and stop leaves no trace.
// Needs root (CI runs as root).
#include <gtest/gtest.h>

#include <unistd.h>
#include <algorithm>

#include "kernel_test.hpp"
#include "test_support.hpp"

namespace patronus::linuxnet {
namespace {

using test::ifindex;
using test::sh;

class LinuxDataplaneKernel : public DscpKernelTest {};

TEST_F(LinuxDataplaneKernel, DecisionsMoveClassesAndNothingLeaks) {
  add_veths({"t0", "t1", "wan"});
  sh({"ip", "-n", ns(), "addr", "add", "198.51.100.2/24", "dev", "wan"});
  sh({"ip", "-n", ns(), "route", "add", "default", "via", "198.51.100.1"});
  const std::uint32_t t0 = ifindex(ns(), "t0"), t1 = ifindex(ns(), "t1");
  ASSERT_TRUE(t0 && t1);

  auto make = [&]() {
    LinuxDataplaneConfig c;
    c.classes = steering::default_classes("");
    c.site_prefixes["b"] = {model::IpPrefix::parse("10.20.0.0/16").value(),
                            model::IpPrefix::parse("fd00:20::/64").value()};
    c.resolve = [t0, t1](model::PathId p) -> Result<Nexthop> {
      if (p.value() == 1) return Nexthop{t0, {}};
      if (p.value() == 2) return Nexthop{t1, {}};
      return unavailable("path " + std::to_string(p.value()) + ": its tunnel is down");
    };
    auto nl = Rtnl::open_in_netns(ns_path());
    EXPECT_TRUE(nl.is_ok()) << nl.status().message();
    return LinuxDataplane::start(std::move(nl).value(), c);
  };
  auto started = make();
  ASSERT_TRUE(started.is_ok()) << started.status().message();
  LinuxDataplane& dp = *started.value();
  const std::vector<std::string> sip = {"10.20.3.4", "ipproto", "udp", "dport", "5060"};
  const std::vector<std::string> web = {"10.20.3.4", "ipproto", "tcp", "dport", "443"};
  EXPECT_EQ(test::route_device(ns(), sip), "unreachable") << "no decision yet: nothing leaks";
  EXPECT_EQ(test::route_device(ns(), web), "unreachable");
  EXPECT_EQ(test::route_device(ns(), {"203.0.113.9"}), "wan") << "not a site: the main table";

  ASSERT_TRUE(dp.set_class_path("b", "voice", model::PathId(1)).is_ok());
  ASSERT_TRUE(dp.set_class_path("b", "default", model::PathId(2)).is_ok());
  EXPECT_EQ(test::route_device(ns(), sip), "t0");
  EXPECT_EQ(test::route_device(ns(), {"10.20.3.4", "tos", "0xb8"}), "t0") << "DSCP EF is voice";
  EXPECT_EQ(test::route_device(ns(), web), "t1");
  EXPECT_EQ(test::route_device(ns(), {"fd00:20::9", "ipproto", "udp", "dport", "5060"}), "t0");
  // Failover of voice.
  ASSERT_TRUE(dp.set_class_path("b", "voice", model::PathId(2)).is_ok());
  EXPECT_EQ(test::route_device(ns(), sip), "t1");
  // A path the transport cannot carry: refused, and voice is unreachable, not stale.
  const Status down = dp.set_class_path("b", "voice", model::PathId(3));
  ASSERT_FALSE(down.is_ok());
  EXPECT_NE(down.message().find("tunnel is down"), std::string::npos) << down.message();
  EXPECT_EQ(test::route_device(ns(), sip), "unreachable");
  EXPECT_EQ(test::route_device(ns(), web), "t1");
  // Bad calls change nothing.
  EXPECT_FALSE(dp.set_class_path("nowhere", "voice", model::PathId(1)).is_ok());
  EXPECT_FALSE(dp.set_class_path("b", "nope", model::PathId(1)).is_ok());
  EXPECT_FALSE(dp.set_flow_path(model::FlowKey{}, model::PathId(1)).is_ok());
  EXPECT_EQ(test::route_device(ns(), web), "t1");

  // A restart (a second instance over the same kernel state) reconciles: no duplicates.
  auto probe = Rtnl::open_in_netns(ns_path());
  ASSERT_TRUE(probe.is_ok());
  const std::size_t before = count_ours(probe.value());
  auto again = make();
  ASSERT_TRUE(again.is_ok()) << again.status().message();
  EXPECT_EQ(count_ours(probe.value()), before);
  EXPECT_EQ(test::route_device(ns(), web), "unreachable") << "a new runtime has not decided yet";

  ASSERT_TRUE(again.value()->stop().is_ok());
  EXPECT_EQ(count_ours(probe.value()), 0u);
  EXPECT_EQ(test::route_device(ns(), web), "wan");
}

// New classes on a running dataplane: a kept class keeps its route (in its new table when its
// position changed), a new class starts where the default class went, removed classes' rules
// and stale tables go, and a set the kernel cannot take changes nothing; a removed site's routes
// leave every table.
TEST_F(LinuxDataplaneKernel, NewClassesKeepTheRoutesOfTheKeptOnes) {
  add_veths({"t0", "t1", "wan"});
  sh({"ip", "-n", ns(), "addr", "add", "198.51.100.2/24", "dev", "wan"});
  sh({"ip", "-n", ns(), "route", "add", "default", "via", "198.51.100.1"});
  const std::uint32_t t0 = ifindex(ns(), "t0"), t1 = ifindex(ns(), "t1");
  ASSERT_TRUE(t0 && t1);
  LinuxDataplaneConfig c;
  c.classes = steering::default_classes("");
  c.site_prefixes["b"] = {model::IpPrefix::parse("10.20.0.0/16").value()};
  c.resolve = [t0, t1](model::PathId p) -> Result<Nexthop> {
    return Nexthop{p.value() == 1 ? t0 : t1, {}};
  };
  auto nl = Rtnl::open_in_netns(ns_path());
  ASSERT_TRUE(nl.is_ok()) << nl.status().message();
  auto started = LinuxDataplane::start(std::move(nl).value(), c);
  ASSERT_TRUE(started.is_ok()) << started.status().message();
  LinuxDataplane& dp = *started.value();
  ASSERT_TRUE(dp.set_class_path("b", "voice", model::PathId(1)).is_ok());
  ASSERT_TRUE(dp.set_class_path("b", "default", model::PathId(2)).is_ok());
  const std::vector<std::string> sip = {"10.20.3.4", "ipproto", "udp", "dport", "5060"};
  const std::vector<std::string> ssh = {"10.20.3.4", "ipproto", "tcp", "dport", "22"};
  const std::vector<std::string> game = {"10.20.3.4", "ipproto", "udp", "dport", "27015"};
  EXPECT_EQ(test::route_device(ns(), ssh), "unreachable") << "interactive is not decided";

  // Without video and interactive, with gaming before them: voice stays at table 0, default
  // moves from table 4 to 3.
  steering::ClassSet next = steering::default_classes("");
  next.classes.erase(std::remove_if(next.classes.begin(), next.classes.end(),
                                    [](const steering::ClassSpec& k) {
                                      return k.name == "video" || k.name == "interactive";
                                    }),
                     next.classes.end());
  next.rules.erase(std::remove_if(next.rules.begin(), next.rules.end(),
                                  [](const steering::ClassRule& r) {
                                    return r.class_name == "video" || r.class_name == "interactive";
                                  }),
                   next.rules.end());
  steering::ClassSpec gaming;
  gaming.name = "gaming";
  next.classes.insert(next.classes.begin() + 1, gaming);
  steering::ClassRule r;
  r.class_name = "gaming";
  r.protocol = 17;
  r.dst_ports = steering::PortRange{27015, 27015};
  next.rules.insert(next.rules.begin(), r);
  ASSERT_EQ(next.classes.size(), 4u);

  auto probe = Rtnl::open_in_netns(ns_path());
  ASSERT_TRUE(probe.is_ok());
  ASSERT_TRUE(dp.set_classes(next).is_ok());
  EXPECT_EQ(test::route_device(ns(), sip), "t0") << "voice kept its route";
  EXPECT_EQ(test::route_device(ns(), game), "t1") << "a new class starts on the default's route";
  EXPECT_EQ(test::route_device(ns(), ssh), "t1") << "interactive's flows fall to default";
  EXPECT_EQ(dp.table_of("default"), PolicyLayout{}.table_base + 3);
  EXPECT_EQ(dp.table_of("interactive"), 0u);
  for (const bool v6 : {false, true}) {
    auto stale = probe.value().routes(v6, PolicyLayout{}.table_base + 4);
    ASSERT_TRUE(stale.is_ok());
    EXPECT_TRUE(stale.value().empty()) << "the fifth table was left behind";
  }
  ASSERT_TRUE(dp.set_class_path("b", "gaming", model::PathId(1)).is_ok());
  EXPECT_EQ(test::route_device(ns(), game), "t0");

  // A set the dataplane cannot express changes nothing.
  steering::ClassSet bad = next;
  bad.rules.front().class_name = "nobody";
  EXPECT_FALSE(dp.set_classes(bad).is_ok());
  EXPECT_EQ(test::route_device(ns(), game), "t0");
  EXPECT_EQ(test::route_device(ns(), sip), "t0");
  EXPECT_EQ(test::route_device(ns(), ssh), "t1");
  // The site leaves the plan: its routes leave every class table (the main table has it now).
  ASSERT_TRUE(dp.remove_site("b").is_ok());
  EXPECT_EQ(test::route_device(ns(), sip), "wan");
  EXPECT_EQ(test::route_device(ns(), game), "wan");
  EXPECT_FALSE(dp.set_class_path("b", "voice", model::PathId(1)).is_ok());
  ASSERT_TRUE(dp.stop().is_ok());
  EXPECT_EQ(count_ours(probe.value()), 0u);
}

// A host whose start fails after the dataplane started drops it without stop(): that must
// leave no rule or route behind (it used to leave every remote site unreachable).
TEST_F(LinuxDataplaneKernel, DroppedWithoutStopLeavesNothingBehind) {
  add_veths({"t0", "wan"});
  sh({"ip", "-n", ns(), "addr", "add", "198.51.100.2/24", "dev", "wan"});
  sh({"ip", "-n", ns(), "route", "add", "default", "via", "198.51.100.1"});
  const std::uint32_t t0 = ifindex(ns(), "t0");
  ASSERT_TRUE(t0);
  LinuxDataplaneConfig c;
  c.classes = steering::default_classes("");
  c.site_prefixes["b"] = {model::IpPrefix::parse("10.20.0.0/16").value()};
  c.resolve = [t0](model::PathId) -> Result<Nexthop> { return Nexthop{t0, {}}; };
  auto nl = Rtnl::open_in_netns(ns_path());
  ASSERT_TRUE(nl.is_ok()) << nl.status().message();
  auto probe = Rtnl::open_in_netns(ns_path());
  ASSERT_TRUE(probe.is_ok());
  {
    auto dp = LinuxDataplane::start(std::move(nl).value(), c);
    ASSERT_TRUE(dp.is_ok()) << dp.status().message();
    ASSERT_TRUE(dp.value()->set_class_path("b", "voice", model::PathId(1)).is_ok());
    EXPECT_GT(count_ours(probe.value()), 0u);
    EXPECT_EQ(test::route_device(ns(), {"10.20.3.4", "tos", "0xb8"}), "t0");
  }
  EXPECT_EQ(count_ours(probe.value()), 0u);
  EXPECT_EQ(test::route_device(ns(), {"10.20.3.4", "tos", "0xb8"}), "wan") << "the main table";
}

// A restart after a crash is hitless: the routes a killed instance left through a device stay
// (adopted) until a decision replaces them or settle() drops them; sites it left unreachable
// stay unreachable; nothing is duplicated.
TEST_F(LinuxDataplaneKernel, ARestartAfterACrashKeepsTheRoutesUntilDecided) {
  add_veths({"t0", "t1", "wan"});
  sh({"ip", "-n", ns(), "addr", "add", "198.51.100.2/24", "dev", "wan"});
  sh({"ip", "-n", ns(), "route", "add", "default", "via", "198.51.100.1"});
  const std::uint32_t t0 = ifindex(ns(), "t0"), t1 = ifindex(ns(), "t1");
  ASSERT_TRUE(t0 && t1);
  auto make = [&](bool adopt) {
    LinuxDataplaneConfig c;
    c.classes = steering::default_classes("");
    c.site_prefixes["b"] = {model::IpPrefix::parse("10.20.0.0/16").value(),
                            model::IpPrefix::parse("fd00:20::/64").value()};
    c.site_prefixes["c"] = {model::IpPrefix::parse("10.30.0.0/16").value()};
    c.resolve = [t0, t1](model::PathId p) -> Result<Nexthop> {
      return Nexthop{p.value() == 1 ? t0 : t1, {}};
    };
    c.adopt = adopt;
    auto nl = Rtnl::open_in_netns(ns_path());
    EXPECT_TRUE(nl.is_ok()) << nl.status().message();
    return LinuxDataplane::start(std::move(nl).value(), c);
  };
  const std::vector<std::string> sip = {"10.20.3.4", "ipproto", "udp", "dport", "5060"};
  const std::vector<std::string> web = {"10.20.3.4", "ipproto", "tcp", "dport", "443"};
  const std::vector<std::string> to_c = {"10.30.3.4", "ipproto", "udp", "dport", "5060"};
  auto probe = Rtnl::open_in_netns(ns_path());
  ASSERT_TRUE(probe.is_ok());
  {
    auto first = make(false);
    ASSERT_TRUE(first.is_ok()) << first.status().message();
    ASSERT_TRUE(first.value()->set_class_path("b", "voice", model::PathId(1)).is_ok());
    ASSERT_TRUE(first.value()->set_class_path("b", "default", model::PathId(2)).is_ok());
    first.value()->forget();  // killed: nothing removed
  }
  const std::size_t before = count_ours(probe.value());
  auto second = make(true);
  ASSERT_TRUE(second.is_ok()) << second.status().message();
  LinuxDataplane& dp = *second.value();
  EXPECT_EQ(dp.adopted(), 2u) << "voice and default to b";
  EXPECT_EQ(count_ours(probe.value()), before) << "nothing duplicated";
  EXPECT_EQ(test::route_device(ns(), sip), "t0") << "voice keeps forwarding across the restart";
  EXPECT_EQ(test::route_device(ns(), web), "t1");
  EXPECT_EQ(test::route_device(ns(), to_c), "unreachable") << "c had no path: still none";
  // A decision replaces an adopted route; settle() drops the ones no decision replaced.
  ASSERT_TRUE(dp.set_class_path("b", "voice", model::PathId(2)).is_ok());
  EXPECT_EQ(test::route_device(ns(), sip), "t1");
  EXPECT_EQ(dp.adopted(), 1u);
  ASSERT_TRUE(dp.settle().is_ok());
  EXPECT_EQ(dp.adopted(), 0u);
  EXPECT_EQ(test::route_device(ns(), web), "unreachable") << "default was never decided";
  EXPECT_EQ(test::route_device(ns(), sip), "t1") << "a decided route stays";
  ASSERT_TRUE(dp.stop().is_ok());
  EXPECT_EQ(count_ours(probe.value()), 0u);
}

}  // namespace
}  // namespace patronus::linuxnet
