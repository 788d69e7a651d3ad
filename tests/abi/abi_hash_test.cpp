// Pins plugin_abi.h: any change to the header changes this hash. If you changed the header on
// purpose, bump PATRONUS_ABI_VERSION_MINOR (append-only change) or MAJOR (anything else), update
// docs/adr/0001-plugin-abi.md, then update kPinned* below.
#include <gtest/gtest.h>

#include <cstddef>

#include <cstring>
#include <string>

#include "patronus/abi/plugin_abi.h"
#include "test_support.hpp"

extern "C" {
struct layout_entry {
  const char* what;
  size_t value;
};
extern const layout_entry patronus_frozen_1_0[];
extern const layout_entry patronus_frozen_1_1[];
extern const layout_entry patronus_current_1_0[];
extern const layout_entry patronus_current_1_1[];
extern const layout_entry patronus_frozen_1_2[];
extern const layout_entry patronus_current_1_2[];
extern const layout_entry patronus_frozen_1_3[];
extern const layout_entry patronus_current_1_3[];
extern const layout_entry patronus_frozen_1_4[];
extern const layout_entry patronus_current_1_4[];
}

namespace {

constexpr std::uint64_t kPinnedHash = 0x8ebda29fc31e3383ULL;  // FNV-1a 64 of the header bytes
constexpr int kPinnedMajor = 1;
constexpr int kPinnedMinor = 4;

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

namespace {

// Every field a released minor defined sits at the same offset in the current header; every
// struct is at least as large as then (1.x only appends). Returns how many entries were compared.
std::size_t expect_unchanged(const layout_entry* frozen, const layout_entry* current) {
  std::size_t n = 0;
  for (; frozen[n].what != nullptr; ++n) {
    const auto& f = frozen[n];
    const auto& c = current[n];
    EXPECT_NE(c.what, nullptr);
    if (c.what == nullptr) return n;
    EXPECT_STREQ(f.what, c.what);
    if (std::strncmp(f.what, "sizeof ", 7) == 0) {
      EXPECT_GE(c.value, f.value) << f.what << " shrank";
    } else {
      EXPECT_EQ(c.value, f.value) << f.what << " moved";
    }
  }
  EXPECT_EQ(current[n].what, nullptr);
  return n;
}

TEST(AbiHeader, EveryAbi10OffsetAndSizeIsUnchanged) {
  EXPECT_GT(expect_unchanged(patronus_frozen_1_0, patronus_current_1_0), 60u);
}

TEST(AbiHeader, EveryAbi11OffsetAndSizeIsUnchanged) {
  EXPECT_GT(expect_unchanged(patronus_frozen_1_1, patronus_current_1_1), 30u);
}

TEST(AbiHeader, EveryAbi12OffsetAndSizeIsUnchanged) {
  EXPECT_GT(expect_unchanged(patronus_frozen_1_2, patronus_current_1_2), 25u);
}

TEST(AbiHeader, EveryAbi13OffsetAndSizeIsUnchanged) {
  EXPECT_GT(expect_unchanged(patronus_frozen_1_3, patronus_current_1_3), 10u);
}

TEST(AbiHeader, EveryAbi14OffsetAndSizeIsUnchanged) {
  EXPECT_GE(expect_unchanged(patronus_frozen_1_4, patronus_current_1_4), 4u);
}

// The frozen-size constants the host uses as lower bounds are the sizes of the version that
// introduced each struct, measured from that version's frozen header.
std::size_t frozen(const layout_entry* table, const std::string& what) {
  for (std::size_t i = 0; table[i].what; ++i) {
    if (what == table[i].what) return table[i].value;
  }
  ADD_FAILURE() << what << " missing";
  return 0;
}

TEST(AbiHeader, FrozenSizeConstantsAreTheSizesOfTheIntroducingVersion) {
  const layout_entry* v10 = patronus_frozen_1_0;
  EXPECT_EQ(PATRONUS_SIZE_1_0_PATH_SAMPLE, frozen(v10, "sizeof patronus_path_sample"));
  EXPECT_EQ(PATRONUS_SIZE_1_0_PATH_DESC, frozen(v10, "sizeof patronus_path_desc"));
  EXPECT_EQ(PATRONUS_SIZE_1_0_METRICS_WINDOW, frozen(v10, "sizeof patronus_metrics_window"));
  EXPECT_EQ(PATRONUS_SIZE_1_0_SCORE, frozen(v10, "sizeof patronus_score"));
  EXPECT_EQ(PATRONUS_SIZE_1_0_FLOW_TUPLE, frozen(v10, "sizeof patronus_flow_tuple"));
  EXPECT_EQ(PATRONUS_SIZE_1_0_HOST_SERVICES, frozen(v10, "sizeof patronus_host_services"));
  EXPECT_EQ(PATRONUS_SIZE_1_0_TRANSPORT, frozen(v10, "sizeof patronus_transport_v1"));
  EXPECT_EQ(PATRONUS_SIZE_1_0_PROBE, frozen(v10, "sizeof patronus_probe_v1"));
  EXPECT_EQ(PATRONUS_SIZE_1_0_SCORER, frozen(v10, "sizeof patronus_scorer_v1"));
  EXPECT_EQ(PATRONUS_SIZE_1_0_POLICY, frozen(v10, "sizeof patronus_policy_v1"));
  EXPECT_EQ(PATRONUS_SIZE_1_0_DESCRIPTOR, frozen(v10, "sizeof patronus_plugin_descriptor"));
  EXPECT_EQ(PATRONUS_SIZE_1_1_PATH_LIVENESS,
            frozen(patronus_frozen_1_1, "sizeof patronus_path_liveness"));
  EXPECT_EQ(PATRONUS_SIZE_1_2_TUNNEL_STATUS,
            frozen(patronus_frozen_1_2, "sizeof patronus_tunnel_status"));
  EXPECT_EQ(PATRONUS_SIZE_1_2_PREFIX, frozen(patronus_frozen_1_2, "sizeof patronus_prefix"));
  EXPECT_EQ(PATRONUS_SIZE_1_3_UDP_OPTIONS,
            frozen(patronus_frozen_1_3, "sizeof patronus_udp_options"));
  EXPECT_EQ(PATRONUS_SIZE_1_3_DATAGRAM_INFO,
            frozen(patronus_frozen_1_3, "sizeof patronus_datagram_info"));
}

}  // namespace
