#include <gtest/gtest.h>

#include "patronus/trial/plugin_trial.hpp"

using patronus::trial::PluginTrial;

TEST(AcmeAllowlist, AllowsWhatARuleMatchesAndDeniesTheRest) {
  auto t = PluginTrial::open(PLUGIN_FILE);
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  ASSERT_TRUE(t.value()
                  ->load_policy("# web and dns\nallow tcp 10.20.0.0/16 443\n"
                                "allow udp 0.0.0.0/0 53-54\nallow any fd00::/8 *\n")
                  .is_ok());
  auto& p = *t.value();
  EXPECT_TRUE(p.allows({"tcp", "192.0.2.1", "10.20.3.4:443"}).value());
  EXPECT_FALSE(p.allows({"tcp", "192.0.2.1", "10.21.3.4:443"}).value());
  EXPECT_FALSE(p.allows({"udp", "192.0.2.1", "10.20.3.4:443"}).value());
  EXPECT_TRUE(p.allows({"udp", "192.0.2.1", "198.51.100.7:54"}).value());
  EXPECT_FALSE(p.allows({"udp", "192.0.2.1", "198.51.100.7:55"}).value());
  EXPECT_TRUE(p.allows({"sctp", "fd00::1", "[fd12::9]:9"}).value());
}

TEST(AcmeAllowlist, ABadLineIsRefusedByNumberAndTheOldListStays) {
  auto t = PluginTrial::open(PLUGIN_FILE);
  ASSERT_TRUE(t.is_ok());
  ASSERT_TRUE(t.value()->load_policy("allow tcp 10.0.0.0/8 22\n").is_ok());
  auto bad = t.value()->load_policy("allow tcp 10.0.0.0/8 22\nallow tcp 10.0.0.0/33 22\n");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.message().find("line 2: '10.0.0.0/33' is not an address/length prefix"),
            std::string::npos)
      << bad.message();
  EXPECT_TRUE(t.value()->allows({"tcp", "10.1.1.1", "10.2.2.2:22"}).value());
}
