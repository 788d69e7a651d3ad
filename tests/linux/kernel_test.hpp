// Kernel tests of the Linux Dataplane: a namespace of the test's own, on a kernel whose policy
// rules can match DSCP (the default classes need it); skipped, saying why, elsewhere.
#pragma once

#include "linux_dataplane.hpp"
#include "netns.hpp"

namespace patronus::linuxnet {

// Rules and routes of ours (protocol kRtprotPatronus) in the kernel `k` speaks to, both families.
inline std::size_t count_ours(Rtnl& k) {
  std::size_t n = 0;
  for (const bool v6 : {false, true}) {
    auto rules = k.rules(v6);
    auto routes = k.routes(v6, 0);
    if (!rules.is_ok() || !routes.is_ok()) return 0;
    for (const auto& r : rules.value()) n += r.protocol == kRtprotPatronus;
    for (const auto& r : routes.value()) n += r.protocol == kRtprotPatronus;
  }
  return n;
}

class DscpKernelTest : public test::NetnsTest {
 protected:
  void SetUp() override {
    test::NetnsTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    auto probe = Rtnl::open_in_netns(ns_path());
    ASSERT_TRUE(probe.is_ok()) << probe.status().message();
    if (!kernel_matches_dscp(probe.value())) {
      GTEST_SKIP() << "this kernel's policy rules cannot match DSCP (FRA_DSCP: Linux 6.13); the "
                      "default classes need it (docs/adr/0010-linux-dataplane.md)";
    }
  }
};

}  // namespace patronus::linuxnet
