// The real site runtime (real probes and scorers through the ABI, virtual time) driving the
// Linux Dataplane in a network namespace of the test's own: the kernel's own lookup follows the
// runtime's class decisions, and when the path voice uses is cut, voice's kernel route moves to
// the other tunnel device while the classes on the surviving path stay. Needs root.
#include <gtest/gtest.h>
#include <unistd.h>

#include "kernel_test.hpp"
#include "wan_harness.hpp"

namespace patronus::linuxnet {
namespace {

using test::ifindex;
using test::kSec;

class RuntimeOnTheKernel : public DscpKernelTest {};

TEST_F(RuntimeOnTheKernel, DecisionsBecomeRoutesAndACutMovesVoice) {
  add_veths({"t0", "t1"});
  const std::uint32_t t0 = ifindex(ns(), "t0"), t1 = ifindex(ns(), "t1");
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
  auto nl = Rtnl::open_in_netns(ns_path());
  ASSERT_TRUE(nl.is_ok()) << nl.status().message();
  auto dp = LinuxDataplane::start(std::move(nl).value(), c);
  ASSERT_TRUE(dp.is_ok()) << dp.status().message();
  w.use_dataplane("hq", dp.value().get());
  w.start("interval_ms: 50\nidle_interval_ms: 1000\ndetect_multiplier: 4\n");
  auto& hq = w.rt("hq");

  const std::vector<std::string> voice = {"192.168.2.20", "ipproto", "udp", "dport", "5060"};
  const std::vector<std::string> web = {"192.168.2.20", "ipproto", "tcp", "dport", "443"};
  EXPECT_EQ(test::route_device(ns(), voice), "unreachable") << "before any decision";
  w.world().run_until(12 * kSec);
  const model::PathId before = hq.class_path("b", "voice");
  ASSERT_TRUE(before.valid());
  EXPECT_EQ(test::route_device(ns(), voice), dev_of.at(before.value()));
  EXPECT_EQ(test::route_device(ns(), web), dev_of.at(hq.class_path("b", "default").value()));
  EXPECT_EQ(hq.counters().dataplane_errors, 0u);

  w.set_up(before.value(), false);
  w.world().run_until(20 * kSec);
  const model::PathId after = hq.class_path("b", "voice");
  ASSERT_TRUE(after.valid());
  ASSERT_NE(after, before) << "the runtime did not fail voice over";
  EXPECT_EQ(test::route_device(ns(), voice), dev_of.at(after.value()))
      << "the kernel still routes voice over the cut path";
  EXPECT_EQ(test::route_device(ns(), web), dev_of.at(hq.class_path("b", "default").value()));
  w.stop();
  EXPECT_TRUE(dp.value()->stop().is_ok());
  EXPECT_EQ(test::route_device(ns(), voice), "unreachable") << "no route of ours, no default route";
}

}  // namespace
}  // namespace patronus::linuxnet
