// Kernel tests of the Linux Dataplane: a namespace of the test's own, on a kernel whose policy
// rules can match DSCP (the default classes need it); skipped, saying why, elsewhere.
#pragma once

#include "linux_dataplane.hpp"
#include "netns.hpp"

namespace patronus::linuxnet {

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
