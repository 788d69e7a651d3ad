// patronusd's process hardening: what run() does first, checked in this process.
#include <gtest/gtest.h>
#include <sys/prctl.h>

#include "daemon.hpp"

namespace {

// A process that holds private keys is not dumpable: no core file, and no ptrace or /proc reading
// by another user.
TEST(DaemonHardening, TheProcessIsNotDumpable) {
  ASSERT_EQ(::prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), 1) << "a test process starts dumpable";
  ASSERT_TRUE(patronus::daemon::keep_secrets_out_of_dumps().is_ok());
  EXPECT_EQ(::prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), 0);
}

}  // namespace
