// Pins plugin_abi.h: any change to the header changes this hash. If you changed the header on
// purpose, bump PATRONUS_ABI_VERSION_MINOR (append-only change) or MAJOR (anything else), update
// docs/adr/0001-plugin-abi.md, then update kPinned* below.
#include <gtest/gtest.h>

#include <cstddef>

#include "patronus/abi/plugin_abi.h"
#include "test_support.hpp"

namespace {

constexpr std::uint64_t kPinnedHash = 0xc45f26375b8bcf22ULL;  // FNV-1a 64 of the header bytes
constexpr int kPinnedMajor = 1;
constexpr int kPinnedMinor = 0;

std::uint64_t fnv1a(const std::string& s) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

TEST(AbiHeader, HashIsPinnedToTheVersion) {
  const auto text = patronus::test::read_file(patronus::test::source_dir() +
                                              "/framework/include/patronus/abi/plugin_abi.h");
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(PATRONUS_ABI_VERSION_MAJOR, kPinnedMajor);
  EXPECT_EQ(PATRONUS_ABI_VERSION_MINOR, kPinnedMinor);
  EXPECT_EQ(fnv1a(text), kPinnedHash)
      << "plugin_abi.h changed: bump the ABI version and re-pin (hash is 0x" << std::hex
      << fnv1a(text) << ")";
}

// The fixed header every host reads before anything else must never move.
TEST(AbiHeader, DescriptorFixedHeaderLayout) {
  EXPECT_EQ(offsetof(patronus_plugin_descriptor, struct_size), 0u);
  EXPECT_EQ(offsetof(patronus_plugin_descriptor, abi_major), 4u);
  EXPECT_EQ(offsetof(patronus_plugin_descriptor, abi_minor), 8u);
  EXPECT_EQ(offsetof(patronus_plugin_descriptor, kind), 12u);
  EXPECT_EQ(offsetof(patronus_plugin_descriptor, name), 16u);
  EXPECT_EQ(offsetof(patronus_plugin_descriptor, version), 24u);
  EXPECT_EQ(sizeof(patronus_addr), 20u);
  EXPECT_EQ(offsetof(patronus_host_services, struct_size), 0u);
}

}  // namespace
