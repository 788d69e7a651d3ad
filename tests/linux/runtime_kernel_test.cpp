// The real site runtime (real probes and scorers through the ABI, virtual time) driving the
// Linux Dataplane in a network namespace of the test's own: the kernel's own lookup follows the
// runtime's class decisions, and when the path voice uses is cut, voice's kernel route moves to
// the other tunnel device while the classes on the surviving path stay. Needs root.
#include <gtest/gtest.h>
#include <unistd.h>

#include "linux_dataplane.hpp"
#include "netns.hpp"
#include "wan_harness.hpp"

namespace patronus::linuxnet {
namespace {

using test::ifindex;
using test::kSec;
using test::run;
using test::sh;

TEST(RuntimeOnTheKernel, DecisionsBecomeRoutesAndACutMovesVoice) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root for network namespaces (CI runs as root)";
  const std::string id = std::to_string(getpid());
  test::Netns ns("prk" + id);
  ASSERT_TRUE(ns.ok());
  {
    auto probe = Rtnl::open_in_netns("/var/run/netns/" + ns.name());
    ASSERT_TRUE(probe.is_ok()) << probe.status().message();
    if (!kernel_matches_dscp(probe.value())) {
      GTEST_SKIP() << "this kernel's policy rules cannot match DSCP (FRA_DSCP: Linux 6.13); the "
                      "default classes need it (docs/adr/0010-linux-dataplane.md)";
    }
  }
  for (const char* dev : {"t0", "t1"}) {
    sh({"ip", "-n", ns.name(), "link", "add", dev, "type", "veth", "peer", "name",
        std::string(dev) + "p"});
    sh({"ip", "-n", ns.name(), "link", "set", dev, "up"});
  }
  const std::uint32_t t0 = ifindex(ns.name(), "t0"), t1 = ifindex(ns.name(), "t1");
  ASSERT_TRUE(t0 && t1);

  test::Wan w(21);
  w.add_site({"hq", {{"wan0", "10.0.0.1"}, {"wan1", "10.0.1.1"}}, "192.168.1.0/24"});
  w.add_site({"b", {{"wan0", "10.0.0.2"}}, "192.168.2.0/24"});
  const env::LinkParams link{25'000'000, 0, 0.0, true};
  const std::size_t p1 = w.add_path({"hq", "wan0", "b", "wan0", link});
  const std::size_t p2 = w.add_path({"hq", "wan1", "b", "wan0", link});
  const std::map<std::uint64_t, std::string> dev_of = {{p1, "t0"}, {p2, "t1"}};

  LinuxDataplaneConfig c;
  c.classes = steering::default_classes("emodel");  // what the harness gives the runtime
  c.site_prefixes["b"] = {model::IpPrefix::parse("192.168.2.0/24").value()};
  c.resolve = [&](model::PathId p) -> Result<Nexthop> {
    if (p.value() == p1) return Nexthop{t0, {}};
    if (p.value() == p2) return Nexthop{t1, {}};
    return not_found("path " + std::to_string(p.value()));
  };
  auto nl = Rtnl::open_in_netns("/var/run/netns/" + ns.name());
  ASSERT_TRUE(nl.is_ok()) << nl.status().message();
  auto dp = LinuxDataplane::start(std::move(nl).value(), c);
  ASSERT_TRUE(dp.is_ok()) << dp.status().message();
  w.use_dataplane("hq", dp.value().get());
  w.start("interval_ms: 50\nidle_interval_ms: 1000\ndetect_multiplier: 4\n");
  auto& hq = w.rt("hq");

  const std::vector<std::string> voice = {"192.168.2.20", "ipproto", "udp", "dport", "5060"};
  const std::vector<std::string> web = {"192.168.2.20", "ipproto", "tcp", "dport", "443"};
  EXPECT_EQ(test::route_device(ns.name(), voice), "unreachable") << "before any decision";
  w.world().run_until(12 * kSec);
  const model::PathId before = hq.class_path("b", "voice");
  ASSERT_TRUE(before.valid());
  EXPECT_EQ(test::route_device(ns.name(), voice), dev_of.at(before.value()));
  EXPECT_EQ(test::route_device(ns.name(), web), dev_of.at(hq.class_path("b", "default").value()));
  EXPECT_EQ(hq.counters().dataplane_errors, 0u);

  w.set_up(before.value(), false);
  w.world().run_until(20 * kSec);
  const model::PathId after = hq.class_path("b", "voice");
  ASSERT_TRUE(after.valid());
  ASSERT_NE(after, before) << "the runtime did not fail voice over";
  EXPECT_EQ(test::route_device(ns.name(), voice), dev_of.at(after.value()))
      << "the kernel still routes voice over the cut path";
  EXPECT_EQ(test::route_device(ns.name(), web), dev_of.at(hq.class_path("b", "default").value()));
  w.stop();
  EXPECT_TRUE(dp.value()->stop().is_ok());
  EXPECT_EQ(test::route_device(ns.name(), voice), "unreachable")
      << "no route of ours, no default route";
}

}  // namespace
}  // namespace patronus::linuxnet
