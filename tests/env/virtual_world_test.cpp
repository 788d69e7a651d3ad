// Virtual time: events ordered by (time, sequence); link delay/jitter/loss/down; bounds;
// the same seed gives the same trace.
#include <gtest/gtest.h>

#include "patronus/env/virtual_world.hpp"

namespace {

using namespace patronus;
using model::IpAddress;
using model::SocketAddress;

IpAddress ip(const char* s) {
  return IpAddress::parse(s).value();
}

TEST(VirtualWorld, TimersRunInTimeThenSequenceOrder) {
  env::VirtualWorld w(1);
  env::Env& n = w.add_node("a", {});
  std::vector<std::string> order;
  n.schedule(20, [&] { order.push_back("t20"); });
  n.schedule(10, [&] { order.push_back("t10-first"); });
  n.schedule(10, [&] { order.push_back("t10-second"); });
  const auto cancelled = n.schedule(15, [&] { order.push_back("cancelled"); });
  n.post([&] { order.push_back("posted"); });
  EXPECT_TRUE(n.cancel(cancelled));
  EXPECT_FALSE(n.cancel(cancelled));
  w.run(100);
  EXPECT_EQ(order, (std::vector<std::string>{"posted", "t10-first", "t10-second", "t20"}));
  EXPECT_EQ(w.now_ns(), 20);
}

TEST(VirtualWorld, DatagramsTakeTheLinkDelayAndRespectDownLinks) {
  env::VirtualWorld w(1);
  env::Env& a = w.add_node("a", {ip("10.0.0.1")});
  env::Env& b = w.add_node("b", {ip("10.0.0.2")});
  w.set_link(ip("10.0.0.1"), ip("10.0.0.2"), {7'000'000, 0, 0.0, true});
  std::vector<std::int64_t> arrivals;
  env::EndpointId ea = 0, eb = 0;
  SocketAddress bound;
  ASSERT_TRUE(a.open_udp(
                   SocketAddress(ip("10.0.0.1"), 0), [](auto&&...) {}, &ea, &bound)
                  .is_ok());
  EXPECT_GE(bound.port(), 49152);
  ASSERT_TRUE(b.open_udp(
                   SocketAddress(ip("10.0.0.2"), 9),
                   [&](const SocketAddress& from, const std::uint8_t*, std::size_t n) {
                     EXPECT_EQ(from, bound);
                     EXPECT_EQ(n, 3u);
                     arrivals.push_back(b.now_ns());
                   },
                   &eb, nullptr)
                  .is_ok());
  const std::uint8_t msg[3] = {1, 2, 3};
  ASSERT_TRUE(a.send_udp(ea, SocketAddress(ip("10.0.0.2"), 9), msg, 3).is_ok());
  w.run(100);
  w.set_link_up(ip("10.0.0.1"), ip("10.0.0.2"), false);
  ASSERT_TRUE(a.send_udp(ea, SocketAddress(ip("10.0.0.2"), 9), msg, 3).is_ok());
  // No route back: b -> a has no link.
  ASSERT_TRUE(b.send_udp(eb, bound, msg, 3).is_ok());
  w.run(100);
  EXPECT_EQ(arrivals, (std::vector<std::int64_t>{7'000'000}));
  EXPECT_EQ(w.counters().link_down, 1u);
  EXPECT_EQ(w.counters().no_route, 1u);
}

TEST(VirtualWorld, BindingIsCheckedAndBounded) {
  env::VirtualWorld w(1);
  env::EnvLimits limits;
  limits.max_endpoints = 2;
  env::Env& a = w.add_node("a", {ip("10.0.0.1")}, limits);
  env::EndpointId id = 0;
  EXPECT_FALSE(a.open_udp(SocketAddress(ip("10.9.9.9"), 1), {}, &id, nullptr).is_ok());
  ASSERT_TRUE(a.open_udp(SocketAddress(ip("10.0.0.1"), 1), {}, &id, nullptr).is_ok());
  EXPECT_EQ(a.open_udp(SocketAddress(ip("10.0.0.1"), 1), {}, &id, nullptr).code(),
            Code::kUnavailable);
  ASSERT_TRUE(a.open_udp(SocketAddress(ip("0.0.0.0"), 2), {}, &id, nullptr).is_ok());
  EXPECT_EQ(a.open_udp(SocketAddress(ip("10.0.0.1"), 3), {}, &id, nullptr).code(),
            Code::kResourceExhausted);
}

TEST(VirtualWorld, EventQueueIsBounded) {
  env::VirtualWorld::Limits limits;
  limits.max_events = 3;
  env::VirtualWorld w(1, limits);
  env::Env& a = w.add_node("a", {});
  EXPECT_NE(a.schedule(1, [] {}), 0u);
  EXPECT_NE(a.schedule(1, [] {}), 0u);
  EXPECT_NE(a.schedule(1, [] {}), 0u);
  EXPECT_EQ(a.schedule(1, [] {}), 0u) << "a full queue refuses, it does not grow";
  w.run(10);
  EXPECT_NE(a.schedule(1, [] {}), 0u);
}

std::string lossy_trace(std::uint64_t seed) {
  env::VirtualWorld::Limits traced;
  traced.max_trace_lines = 1u << 20;
  env::VirtualWorld w(seed, traced);
  env::Env& a = w.add_node("a", {ip("10.0.0.1")});
  env::Env& b = w.add_node("b", {ip("10.0.0.2")});
  w.set_link(ip("10.0.0.1"), ip("10.0.0.2"), {1'000'000, 500'000, 0.3, true});
  env::EndpointId ea = 0, eb = 0;
  (void)a.open_udp(SocketAddress(ip("10.0.0.1"), 1), {}, &ea, nullptr);
  (void)b.open_udp(
      SocketAddress(ip("10.0.0.2"), 2), [](auto&&...) {}, &eb, nullptr);
  const std::uint8_t m[1] = {0};
  for (int i = 0; i < 50; ++i) {
    a.schedule(i * 100'000, [&] { (void)a.send_udp(ea, SocketAddress(ip("10.0.0.2"), 2), m, 1); });
  }
  w.run(10000);
  return w.trace_text() + std::to_string(a.random_u64());
}

TEST(VirtualWorld, SameSeedSameTraceOtherSeedOtherTrace) {
  const auto t1 = lossy_trace(42);
  EXPECT_NE(t1.find(" drop-loss "), std::string::npos) << "the trace has the losses";
  EXPECT_EQ(t1, lossy_trace(42));
  EXPECT_NE(t1, lossy_trace(43));
  EXPECT_NE(t1.find("drop-loss"), std::string::npos);
}

TEST(Rng, UniformStaysInRangeAndIsReproducible) {
  env::Rng a(7), b(7);
  for (int i = 0; i < 1000; ++i) {
    const auto x = a.uniform(10);
    EXPECT_LT(x, 10u);
    EXPECT_EQ(x, b.uniform(10));
    const double d = a.uniform01();
    EXPECT_GE(d, 0.0);
    EXPECT_LT(d, 1.0);
    b.uniform01();
  }
}

}  // namespace
