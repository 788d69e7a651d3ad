// The seam proof: one plugin binary (libpatronus-pingpong.so), unchanged, through the C ABI,
// on the virtual-time backend and the real Boost.Asio backend (loopback). The ns-3 backend runs
// the same .so in tests/sim/ns3_seam_test.cpp.
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include "patronus/core/config_schema.hpp"
#include "patronus/core/plugin_host.hpp"
#include "patronus/core/router.hpp"
#include "patronus/env/asio_env.hpp"
#include "patronus/env/virtual_world.hpp"
#include "test_support.hpp"

namespace {

using namespace patronus;
using model::IpAddress;

struct Samples : core::RouterObserver {
  std::vector<patronus_path_sample> got;
  std::vector<std::string> events;
  void on_sample(const std::string&, const patronus_path_sample& s) override { got.push_back(s); }
  void on_event(const std::string&, const std::string& type, const std::string&) override {
    events.push_back(type);
  }
  std::size_t received() const {
    std::size_t n = 0;
    for (const auto& s : got) n += s.lost ? 0 : 1;
    return n;
  }
};

class Seam : public ::testing::Test {
 protected:
  void SetUp() override {
    auto l = reg_.load_file(test::test_plugin_dir() + "/libpatronus-pingpong.so");
    ASSERT_TRUE(l.is_ok()) << l.status().to_string();
    lib_ = l.value();
  }
  std::string config(const std::string& listen, const std::string& peer, int count,
                     int interval_ms) {
    auto b = lib_->schema()->text_to_bytes(
        "listen: " + listen + "\n" + (peer.empty() ? "" : "peer: " + peer + "\n") +
            "count: " + std::to_string(count) + "\ninterval_ms: " + std::to_string(interval_ms),
        "config");
    EXPECT_TRUE(b.is_ok()) << b.status().to_string();
    return b.is_ok() ? b.value() : "";
  }
  // Two sites in virtual time; a pings b `count` times; returns every trace concatenated.
  std::string run_virtual(std::uint64_t seed, env::LinkParams link, int count, Samples* out) {
    env::VirtualWorld::Limits world_traced;
    world_traced.max_trace_lines = 1u << 20;
    env::VirtualWorld w(seed, world_traced);
    const auto ia = IpAddress::parse("10.0.0.1").value(), ib = IpAddress::parse("10.0.0.2").value();
    core::RouterLimits traced;
    traced.max_trace_lines = 1u << 20;
    core::RouterInstance a(w.add_node("a", {ia}), "a", traced);
    core::RouterInstance b(w.add_node("b", {ib}), "b", traced);
    w.set_link(ia, ib, link);
    w.set_link(ib, ia, link);
    a.set_observer(out);
    EXPECT_TRUE(
        a.add_plugin(lib_, "probe", config("10.0.0.1:7000", "10.0.0.2:7000", count, 100)).is_ok());
    EXPECT_TRUE(b.add_plugin(lib_, "responder", config("10.0.0.2:7000", "", 0, 100)).is_ok());
    EXPECT_TRUE(a.start().is_ok());
    EXPECT_TRUE(b.start().is_ok());
    w.run_until(std::int64_t{count} * 100'000'000 + 5'000'000'000);
    a.stop();
    b.stop();
    return w.trace_text() + a.trace_text() + b.trace_text();
  }

  core::PluginRegistry reg_;
  std::shared_ptr<const core::PluginLibrary> lib_;
};

TEST_F(Seam, VirtualTimeGivesTheExactRoundTripTheLinkImplies) {
  Samples s;
  run_virtual(1, {10'000'000, 0, 0.0, true}, 10, &s);
  ASSERT_EQ(s.got.size(), 10u);
  for (std::size_t i = 0; i < s.got.size(); ++i) {
    EXPECT_EQ(s.got[i].lost, 0u);
    EXPECT_EQ(s.got[i].sequence, i + 1);
    EXPECT_EQ(s.got[i].rtt_ns, 20'000'000) << "2 x 10 ms one-way delay";
    EXPECT_EQ(s.got[i].sent_ns, static_cast<std::int64_t>(i + 1) * 100'000'000);
  }
  EXPECT_EQ(s.events, (std::vector<std::string>{"pingpong.done", "pingpong.stopped"}));
}

TEST_F(Seam, VirtualTimeLossIsReportedNotInvented) {
  Samples s;
  run_virtual(3, {5'000'000, 0, 1.0, true}, 5, &s);  // every datagram dropped
  ASSERT_EQ(s.got.size(), 5u);
  for (const auto& x : s.got) EXPECT_EQ(x.lost, 1u) << "a lost probe has no rtt";
}

TEST_F(Seam, VirtualTimeTraceIsByteIdenticalForAFixedSeed) {
  const env::LinkParams lossy{10'000'000, 3'000'000, 0.2, true};
  Samples s1, s2, s3;
  const std::string t1 = run_virtual(99, lossy, 40, &s1);
  const std::string t2 = run_virtual(99, lossy, 40, &s2);
  const std::string t3 = run_virtual(100, lossy, 40, &s3);
  EXPECT_EQ(t1, t2);
  EXPECT_NE(t1, t3) << "the seed must matter";
  EXPECT_GT(s1.received(), 0u);
  EXPECT_LT(s1.received(), 40u);
}

TEST_F(Seam, RealBackendOverLoopback) {
  boost::asio::io_context io;
  env::AsioEnv env(io, 1);
  core::RouterInstance a(env, "a");
  core::RouterInstance b(env, "b");
  const auto pa = test::free_udp_port(), pb = test::free_udp_port();
  const std::string la = "127.0.0.1:" + std::to_string(pa), lb = "127.0.0.1:" + std::to_string(pb);
  Samples s;
  a.set_observer(&s);
  ASSERT_TRUE(a.add_plugin(lib_, "probe", config(la, lb, 10, 10)).is_ok());
  ASSERT_TRUE(b.add_plugin(lib_, "responder", config(lb, "", 0, 10)).is_ok());
  ASSERT_TRUE(a.start().is_ok());
  ASSERT_TRUE(b.start().is_ok());
  // Stop when the probe reports done; a generous guard ends a hung run (a failure, not a timing).
  std::function<void()> poll = [&] {
    if (!s.events.empty() && s.events.back() == "pingpong.done") {
      io.stop();
      return;
    }
    env.schedule(5'000'000, poll);
  };
  env.schedule(5'000'000, poll);
  env.schedule(30'000'000'000, [&] { io.stop(); });
  io.run();
  a.stop();
  b.stop();
  ASSERT_EQ(s.got.size(), 10u);
  EXPECT_EQ(s.received(), 10u) << "loopback must not lose datagrams";
  for (const auto& x : s.got) EXPECT_GT(x.rtt_ns, 0);
  EXPECT_EQ(env.live_endpoints(), 0u);
}

// The real Env's randomness: without a seed, the OS's CSPRNG (two daemons, or two starts of one,
// draw unrelated nonces); a seed repeats the sequence (tests, trials).
TEST(RealEnvRandomness, UnseededDrawsComeFromTheOsAndSeededOnesRepeat) {
  boost::asio::io_context io;
  patronus::env::AsioEnv a(io, std::nullopt), b(io, std::nullopt);
  const std::uint64_t a1 = a.random_u64(), a2 = a.random_u64(), b1 = b.random_u64();
  EXPECT_NE(a1, b1);
  EXPECT_NE(a1, a2);
  patronus::env::AsioEnv s1(io, 42), s2(io, 42);
  EXPECT_EQ(s1.random_u64(), s2.random_u64());
}

}  // namespace
