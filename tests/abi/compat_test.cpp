// Plugins compiled against each frozen released header (1.0, 1.1) load and run in the current
// host, for each kind a later minor extended; the host reads only the tables they have and says
// clearly what they lack.
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include "patronus/core/plugin_host.hpp"
#include "patronus/core/router.hpp"
#include "patronus/env/asio_env.hpp"
#include "patronus/env/virtual_world.hpp"
#include "test_support.hpp"

namespace {

using namespace patronus;

std::string compat(const std::string& kind, int minor = 0) {
  return test::test_plugin_dir() + "/libpatronus-compat1" + std::to_string(minor) + "-" + kind +
         ".so";
}

struct Samples : core::RouterObserver {
  std::vector<patronus_path_sample> got;
  std::vector<patronus_path_liveness> liveness;
  void on_sample(const std::string&, const patronus_path_sample& s) override { got.push_back(s); }
  void on_liveness(const std::string&, const patronus_path_liveness& l) override {
    liveness.push_back(l);
  }
  std::vector<patronus_tunnel_status> tunnels;
  void on_tunnel(const std::string&, const patronus_tunnel_status& t) override {
    tunnels.push_back(t);
  }
};

TEST(AbiCompat, Abi10ProbeLoadsWatchesAndReportsUnderThe11Host) {
  core::PluginRegistry reg;
  auto lib = reg.load_file(compat("probe"));
  ASSERT_TRUE(lib.is_ok()) << lib.status().to_string();
  EXPECT_EQ(lib.value()->info().abi_minor, 0u);
  // The 1.1 additions read as absent.
  EXPECT_EQ(lib.value()->probe().set_path_rate, nullptr);
  EXPECT_EQ(lib.value()->probe().unwatch_path_ex, nullptr);
  env::VirtualWorld w(1);
  core::RouterInstance r(w.add_node("a", {}), "a");
  Samples s;
  r.set_observer(&s);
  ASSERT_TRUE(r.add_plugin(lib.value(), "p", "").is_ok());
  ASSERT_TRUE(r.start().is_ok());
  patronus_path_desc d{};
  d.path_id = 42;
  d.key_len = 32;  // 1.1 fields the 1.0 plugin never sees
  ASSERT_TRUE(r.watch_path("p", d).is_ok());
  w.run_until(10'000'000);
  ASSERT_EQ(s.got.size(), 1u);
  EXPECT_EQ(s.got[0].path_id, 42u);
  EXPECT_EQ(s.got[0].rtt_ns, 7'000'000);
  EXPECT_EQ(s.got[0].flags, 0u);  // zero-extended from the 40-byte 1.0 sample
  auto rate = r.set_path_rate("p", 42, PATRONUS_PROBE_RATE_ACTIVE);
  EXPECT_EQ(rate.code(), Code::kUnimplemented);
  EXPECT_NE(rate.message().find("ABI 1.0"), std::string::npos) << rate.message();
  auto bad = r.unwatch_path("p", 7);
  EXPECT_EQ(bad.code(), Code::kNotFound);  // the plugin's own status, not a guess
  EXPECT_NE(bad.message().find("unwatch_path failed"), std::string::npos) << bad.message();
  EXPECT_TRUE(r.unwatch_path("p", 42).is_ok());
}

TEST(AbiCompat, Abi10ScorerScoresAndItsErrorsNameTheCall) {
  core::PluginRegistry reg;
  auto lib = reg.load_file(compat("scorer"));
  ASSERT_TRUE(lib.is_ok()) << lib.status().to_string();
  EXPECT_EQ(lib.value()->scorer().score_ex, nullptr);
  env::VirtualWorld w(1);
  core::RouterInstance r(w.add_node("a", {}), "a");
  ASSERT_TRUE(r.add_plugin(lib.value(), "s", "").is_ok());
  patronus_metrics_window win{};
  win.latency_ms = 30;
  win.path_id = 9;  // 1.1 field
  auto ok = r.score("s", win);
  ASSERT_TRUE(ok.is_ok()) << ok.status().to_string();
  EXPECT_DOUBLE_EQ(ok.value().score, 70.0);
  win.latency_ms = 150;
  auto err = r.score("s", win);
  ASSERT_FALSE(err.is_ok());
  EXPECT_EQ(err.status().code(), Code::kInvalidArgument);
  EXPECT_NE(err.status().message().find("s (compat10-scorer): score failed"), std::string::npos)
      << err.status().message();
}

TEST(AbiCompat, Abi10PolicyEvaluates) {
  core::PluginRegistry reg;
  auto lib = reg.load_file(compat("policy"));
  ASSERT_TRUE(lib.is_ok()) << lib.status().to_string();
  EXPECT_EQ(lib.value()->policy().evaluate_ex, nullptr);
  env::VirtualWorld w(1);
  core::RouterInstance r(w.add_node("a", {}), "a");
  ASSERT_TRUE(r.add_plugin(lib.value(), "pol", "").is_ok());
  ASSERT_TRUE(r.load_policy("pol", "x").is_ok());
  patronus_flow_tuple f{};
  f.protocol = 6;
  EXPECT_TRUE(r.evaluate_policy("pol", f).value());
  f.protocol = 17;
  EXPECT_FALSE(r.evaluate_policy("pol", f).value());
  f.protocol = 0;
  auto err = r.evaluate_policy("pol", f);
  ASSERT_FALSE(err.is_ok());
  EXPECT_NE(err.status().message().find("evaluate failed"), std::string::npos);
}

TEST(AbiCompat, Abi11PluginsLoadAndTheir11CallsWork) {
  core::PluginRegistry reg;
  auto probe = reg.load_file(compat("probe", 1));
  ASSERT_TRUE(probe.is_ok()) << probe.status().to_string();
  EXPECT_EQ(probe.value()->info().abi_minor, 1u);
  env::VirtualWorld w(1);
  core::RouterInstance r(w.add_node("a", {}), "a");
  Samples s;
  r.set_observer(&s);
  ASSERT_TRUE(r.add_plugin(probe.value(), "p", "").is_ok());
  ASSERT_TRUE(r.start().is_ok());
  patronus_path_desc d{};
  d.path_id = 7;
  ASSERT_TRUE(r.watch_path("p", d).is_ok());
  w.run_until(10'000'000);
  ASSERT_EQ(s.got.size(), 1u);
  ASSERT_EQ(s.liveness.size(), 1u) << "the 1.1 liveness report reaches the host";
  EXPECT_EQ(s.liveness[0].path_id, 7u);
  EXPECT_EQ(s.liveness[0].state, PATRONUS_PATH_UP);
  auto scorer = reg.load_file(compat("scorer", 1));
  ASSERT_TRUE(scorer.is_ok()) << scorer.status().to_string();
  ASSERT_NE(scorer.value()->scorer().score_ex, nullptr);
  core::RouterInstance r2(w.add_node("b", {}), "b");
  ASSERT_TRUE(r2.add_plugin(scorer.value(), "s", "").is_ok());
  patronus_metrics_window win{};
  win.latency_ms = 150;
  auto err = r2.score("s", win);
  ASSERT_FALSE(err.is_ok());
  // score_ex carries the plugin's own words, where 1.0's score could only give a status.
  EXPECT_NE(err.status().message().find("score failed: latency above 100 ms"), std::string::npos)
      << err.status().message();
}

// Every frozen minor's plugins keep loading in this host (1.2 and 1.3 included), and none claims
// the real network but the transports.
TEST(AbiCompat, EveryFrozenMinorLoads) {
  for (int minor : {0, 1, 2, 3}) {
    for (const char* kind : {"probe", "scorer", "policy"}) {
      core::PluginRegistry reg;
      auto lib = reg.load_file(compat(kind, minor));
      ASSERT_TRUE(lib.is_ok()) << lib.status().to_string();
      EXPECT_EQ(lib.value()->info().abi_minor, static_cast<std::uint32_t>(minor));
      EXPECT_FALSE(lib.value()->info().needs_real_network);
    }
  }
}

// A 1.2 and a 1.3 transport: declare the real network, watch a descriptor through the host (real
// Asio loop), report their tunnel; the same plugin's watch is refused by a simulated host. The
// host's path description is 1.4's (transport settings appended): they read only their part.
class AbiCompatTransport : public ::testing::TestWithParam<int> {};

TEST_P(AbiCompatTransport, WatchesADescriptorAndReportsItsTunnel) {
  core::PluginRegistry reg;
  auto lib = reg.load_file(compat("transport", GetParam()));
  ASSERT_TRUE(lib.is_ok()) << lib.status().to_string();
  EXPECT_TRUE(lib.value()->info().needs_real_network);
  EXPECT_EQ(lib.value()->info().kind, core::PluginKind::kTransport);

  boost::asio::io_context io;
  env::AsioEnv env(io, 1);
  core::RouterInstance r(env, "a");
  Samples s;
  r.set_observer(&s);
  ASSERT_TRUE(r.add_plugin(lib.value(), "t", "").is_ok());
  ASSERT_TRUE(r.start().is_ok());
  patronus_path_desc d{};
  d.struct_size = sizeof d;
  d.path_id = 9;
  d.interface_name = "wg-x";
  const std::string params = R"({"transport":"wireguard"})";
  d.transport_params = params.c_str();
  d.transport_params_size = static_cast<std::uint32_t>(params.size());
  ASSERT_TRUE(r.path_up("t", d).is_ok());
  EXPECT_EQ(r.live_watches("t"), 1u);
  for (int i = 0; i < 100 && s.tunnels.empty(); ++i) io.run_one_for(std::chrono::milliseconds(10));
  ASSERT_EQ(s.tunnels.size(), 1u);
  EXPECT_EQ(s.tunnels[0].path_id, 9u);
  EXPECT_EQ(s.tunnels[0].state, PATRONUS_TUNNEL_UP);
  EXPECT_EQ(s.tunnels[0].rx_bytes, 4u) << "the bytes written into the pipe were read";
  EXPECT_EQ(r.live_watches("t"), 0u) << "unwatched from inside its own callback";
  EXPECT_TRUE(r.path_down("t", 9).is_ok());
  r.stop();

  env::VirtualWorld w(1);
  core::RouterInstance v(w.add_node("b", {}), "b");
  ASSERT_TRUE(v.add_plugin(lib.value(), "t", "").is_ok());
  ASSERT_TRUE(v.start().is_ok());
  auto st = v.path_up("t", d);
  ASSERT_FALSE(st.is_ok());
  EXPECT_EQ(st.code(), Code::kUnimplemented) << st.to_string();
}

INSTANTIATE_TEST_SUITE_P(Minors, AbiCompatTransport, ::testing::Values(2, 3));

TEST(AbiCompat, NonZeroReservedFieldsAreRefused) {
  for (const auto& [name, needle] :
       {std::pair<std::string, std::string>{"test-reserved-slot", "reserved[3] is not NULL"},
        std::pair<std::string, std::string>{"test-table-reserved", "table field reserved0 is 7"},
        std::pair<std::string, std::string>{"test-unknown-flag",
                                            "flags 0x80 include bits this host does not know"},
        std::pair<std::string, std::string>{"test-flags-reserved",
                                            "descriptor field reserved1 is not zero"}}) {
    core::PluginRegistry reg;
    auto lib = reg.load_file(test::test_plugin_dir() + "/libpatronus-" + name + ".so");
    ASSERT_FALSE(lib.is_ok()) << name;
    EXPECT_NE(lib.status().message().find(needle), std::string::npos) << lib.status().message();
  }
}

}  // namespace

namespace {

// The versioning rule as a vendor meets it. A plugin built against the current headers that uses
// nothing newer than 1.0 runs on a 1.0 host only if it says so (MIN_ABI_MINOR 0): by default it
// declares the header's minor, and a 1.0 host refuses it naming both versions. The 1.0 host here
// is built against the frozen 1.0 header and hands over 1.0-sized structs.
TEST(AbiVersioning, APluginDeclaringMinor0RunsOnA10HostAndTheDefaultIsRefused) {
  const std::string host = patronus::test::bin_dir() + "/../tests/old_host_1_0";
  const std::string dir = patronus::test::test_plugin_dir();
  auto ok = patronus::test::run({host, dir + "/libpatronus-test-sdk-min-abi0.so", "30", "2"});
  EXPECT_EQ(ok.exit_code, 0) << ok.out << ok.err;
  EXPECT_NE(ok.out.find("score 68.000 state 0"), std::string::npos) << ok.out;
  EXPECT_NE(ok.out.find("log 1 scored"), std::string::npos) << ok.out;
  auto refused =
      patronus::test::run({host, dir + "/libpatronus-test-sdk-default-abi.so", "30", "2"});
  EXPECT_EQ(refused.exit_code, 3) << refused.out << refused.err;
  EXPECT_NE(refused.err.find("plugin ABI 1." + std::to_string(PATRONUS_ABI_VERSION_MINOR) +
                             " is newer than host ABI 1.0"),
            std::string::npos)
      << refused.err;
  // The current host loads both; the declared minor is what it reports.
  patronus::core::PluginRegistry reg;
  auto a = reg.load_file(dir + "/libpatronus-test-sdk-min-abi0.so");
  auto b = reg.load_file(dir + "/libpatronus-test-sdk-default-abi.so");
  ASSERT_TRUE(a.is_ok() && b.is_ok());
  EXPECT_EQ(a.value()->info().abi_minor, 0u);
  EXPECT_EQ(b.value()->info().abi_minor, static_cast<std::uint32_t>(PATRONUS_ABI_VERSION_MINOR));
}

}  // namespace
