// The SDK's address helpers (patronus/sdk/addr.hpp), which plugins use on every configured
// address: text with and without a port, both families, and what is refused.
#include <gtest/gtest.h>

#include "patronus/sdk/addr.hpp"

namespace {

using namespace patronus::sdk;

TEST(SdkAddr, ParsesAndFormatsAddressesWithAndWithoutPorts) {
  auto v4 = parse_addr("10.0.0.1:7000");
  ASSERT_TRUE(v4);
  EXPECT_EQ(v4->family, PATRONUS_AF_INET4);
  EXPECT_EQ(v4->port, 7000);
  EXPECT_EQ(format_addr(*v4), "10.0.0.1:7000");
  EXPECT_EQ(format_ip(*v4), "10.0.0.1");
  auto v6 = parse_addr("[fd00::1]:3784");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->family, PATRONUS_AF_INET6);
  EXPECT_EQ(format_addr(*v6), "[fd00::1]:3784");
  EXPECT_EQ(format_ip(*v6), "fd00::1");
  auto ip = parse_ip("fd00::1");
  ASSERT_TRUE(ip);
  EXPECT_EQ(ip->port, 0);
  EXPECT_TRUE(same_ip(*ip, *v6));
  EXPECT_FALSE(same_addr(*ip, *v6)) << "ports differ";
  EXPECT_FALSE(same_ip(*parse_ip("10.0.0.1"), *parse_ip("10.0.0.2")));
  for (const char* bad : {"10.0.0.1", "10.0.0.1:", "10.0.0.1:65536", "[fd00::1]", "x:1", ""}) {
    EXPECT_FALSE(parse_addr(bad)) << bad;
  }
  for (const char* bad : {"10.0.0.1:1", "10.0.0", "", "fd00::1::2"}) {
    EXPECT_FALSE(parse_ip(bad)) << bad;
  }
}

}  // namespace
