// The Env contract (framework/include/patronus/env/env.hpp), checked the same way against every
// backend: the real one (Boost.Asio), virtual time, and ns-3 (tests/sim). A backend is given as an
// EnvUnderTest; what a backend does not promise (post from another thread, file descriptors)
// must be refused the way the contract says. C++17 (the ns-3 instantiation is C++17).
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "patronus/env/env.hpp"

namespace patronus::test {

struct EnvUnderTest {
  virtual ~EnvUnderTest() = default;
  virtual env::Env& a() = 0;  // a node that owns a_ip()
  virtual env::Env& b() = 0;  // another that owns b_ip() (may be the same Env on the real one)
  virtual model::IpAddress a_ip() const = 0;
  virtual model::IpAddress b_ip() const = 0;
  // Lets the world run for this long (simulated) or until then (real).
  virtual void run_for(std::int64_t ns) = 0;
  virtual bool exact_time() const = 0;    // timers fire exactly at their time
  virtual bool post_threads() const = 0;  // post from another thread is promised
  virtual bool real_fds() const = 0;      // watch_fd works
};
using EnvFactory = std::function<std::unique_ptr<EnvUnderTest>(const env::EnvLimits&)>;

struct NamedFactory {
  std::string name;
  EnvFactory make;
};

constexpr std::int64_t kEnvMs = 1'000'000;

class EnvContract : public ::testing::TestWithParam<NamedFactory> {
 protected:
  std::unique_ptr<EnvUnderTest> make(env::EnvLimits limits = {}) { return GetParam().make(limits); }
};

TEST_P(EnvContract, TimersFireInTimeThenSchedulingOrder) {
  auto w = make();
  env::Env& e = w->a();
  const std::int64_t t0 = e.now_ns();
  std::vector<std::pair<int, std::int64_t>> fired;
  auto at = [&](int tag) { return [&, tag] { fired.emplace_back(tag, e.now_ns() - t0); }; };
  ASSERT_NE(e.schedule(30 * kEnvMs, at(30)), 0u);
  ASSERT_NE(e.schedule(10 * kEnvMs, at(10)), 0u);
  ASSERT_NE(e.schedule(20 * kEnvMs, at(20)), 0u);
  ASSERT_NE(e.schedule(10 * kEnvMs, at(11)), 0u);  // same time, scheduled later: runs later
  w->run_for(60 * kEnvMs);
  ASSERT_EQ(fired.size(), 4u);
  const std::vector<int> order = {fired[0].first, fired[1].first, fired[2].first, fired[3].first};
  EXPECT_EQ(order, (std::vector<int>{10, 11, 20, 30}));
  for (const auto& [tag, when] : fired) {
    const std::int64_t due = (tag == 11 ? 10 : tag) * kEnvMs;
    if (w->exact_time()) {
      EXPECT_EQ(when, due) << tag;
    } else {
      EXPECT_GE(when, due) << tag;
    }
  }
}

TEST_P(EnvContract, ACancelledTimerNeverRunsAndCancelSaysWhetherItWasPending) {
  auto w = make();
  env::Env& e = w->a();
  bool ran = false;
  const env::TimerId id = e.schedule(5 * kEnvMs, [&] { ran = true; });
  ASSERT_NE(id, 0u);
  EXPECT_TRUE(e.cancel(id));
  EXPECT_FALSE(e.cancel(id)) << "cancelled twice";
  EXPECT_FALSE(e.cancel(0));
  EXPECT_FALSE(e.cancel(id + 12345));
  bool fired = false;
  const env::TimerId other = e.schedule(1 * kEnvMs, [&] { fired = true; });
  w->run_for(20 * kEnvMs);
  EXPECT_FALSE(ran);
  EXPECT_TRUE(fired);
  EXPECT_FALSE(e.cancel(other)) << "a timer that ran is not pending";
}

TEST_P(EnvContract, TheTimerBoundRefusesAndFreesAndPostsAreNotTimers) {
  env::EnvLimits limits;
  limits.max_timers = 3;
  auto w = make(limits);
  env::Env& e = w->a();
  int fired = 0;
  std::vector<env::TimerId> ids;
  for (int i = 0; i < 3; ++i) ids.push_back(e.schedule((i + 1) * kEnvMs, [&] { ++fired; }));
  for (auto id : ids) EXPECT_NE(id, 0u);
  EXPECT_NE(ids[0], ids[1]);
  EXPECT_EQ(e.schedule(kEnvMs, [&] { ++fired; }), 0u) << "past max_timers";
  int posted = 0;
  e.post([&] { ++posted; });  // the timer table is full: a post is not a timer
  w->run_for(10 * kEnvMs);
  EXPECT_EQ(fired, 3);
  EXPECT_EQ(posted, 1);
  EXPECT_NE(e.schedule(kEnvMs, [&] { ++fired; }), 0u) << "fired timers free their slots";
  w->run_for(10 * kEnvMs);
  EXPECT_EQ(fired, 4);
}

TEST_P(EnvContract, PostsRunSoonInOrderAndThePostBoundRefusesCountably) {
  env::EnvLimits limits;
  limits.max_posted = 2;
  auto w = make(limits);
  env::Env& e = w->a();
  std::vector<int> ran;
  e.post([&] { ran.push_back(1); });
  e.post([&] { ran.push_back(2); });
  e.post([&] { ran.push_back(3); });  // past the bound: refused, counted
  EXPECT_EQ(e.posts_refused(), 1u);
  w->run_for(1 * kEnvMs);
  EXPECT_EQ(ran, (std::vector<int>{1, 2}));
  e.post([&] { ran.push_back(4); });  // room again once they ran
  w->run_for(1 * kEnvMs);
  EXPECT_EQ(ran, (std::vector<int>{1, 2, 4}));
}

TEST_P(EnvContract, PostFromAnotherThreadRunsWhereThatIsPromisedElseIsRefused) {
  auto w = make();
  env::Env& e = w->a();
  int ran = 0;
  std::thread t([&] {
    for (int i = 0; i < 100; ++i) e.post([&] { ++ran; });
  });
  t.join();
  w->run_for(5 * kEnvMs);
  if (w->post_threads()) {
    EXPECT_EQ(ran, 100);
    EXPECT_EQ(e.posts_refused(), 0u);
  } else {
    EXPECT_EQ(ran, 0);
    EXPECT_EQ(e.posts_refused(), 100u) << "refused, never run at an undefined time";
  }
}

TEST_P(EnvContract, DatagramsCarryTheirSenderAndDestinationAndBoundsHold) {
  env::EnvLimits limits;
  limits.max_endpoints = 2;
  limits.max_datagram = 1200;
  auto w = make(limits);
  env::Env& a = w->a();
  env::Env& b = w->b();
  struct Got {
    model::SocketAddress from;
    std::string data;
    std::optional<model::SocketAddress> local;
  };
  std::vector<Got> got;
  env::EndpointId rx = 0, tx = 0;
  model::SocketAddress rx_addr, tx_addr;
  ASSERT_TRUE(
      b.open_udp(
           model::SocketAddress(w->b_ip(), 0), env::UdpOptions{},
           [&](const model::SocketAddress& from, const env::DatagramInfo& info,
               const std::uint8_t* d, std::size_t n) {
             got.push_back({from, std::string(reinterpret_cast<const char*>(d), n), info.local});
           },
           &rx, &rx_addr)
          .is_ok());
  EXPECT_NE(rx_addr.port(), 0) << "port 0 binds a free port and says which";
  ASSERT_TRUE(
      a.open_udp(model::SocketAddress(w->a_ip(), 0), env::UdpOptions{}, {}, &tx, &tx_addr).is_ok());
  env::EndpointId bad = 0;
  EXPECT_EQ(a.open_udp(model::SocketAddress(w->a_ip(), 0), env::UdpOptions{300}, {}, &bad, nullptr)
                .code(),
            Code::kInvalidArgument);
  if (&a == &b) {
    // One Env holds both: the endpoint bound is reached.
    EXPECT_EQ(
        a.open_udp(model::SocketAddress(w->a_ip(), 0), env::UdpOptions{}, {}, &bad, nullptr).code(),
        Code::kResourceExhausted);
  } else {
    // The address the receiver holds is taken.
    EXPECT_FALSE(b.open_udp(rx_addr, env::UdpOptions{}, {}, &bad, nullptr).is_ok());
  }
  const std::string big(1201, 'x');
  bool sent_ok = false, big_refused = false;
  // Sent from inside the world (ns-3 starts its nodes with the simulation).
  a.schedule(1 * kEnvMs, [&] {
    sent_ok = a.send_udp(tx, rx_addr, reinterpret_cast<const std::uint8_t*>("hello"), 5).is_ok();
    big_refused =
        a.send_udp(tx, rx_addr, reinterpret_cast<const std::uint8_t*>(big.data()), big.size())
            .code() == Code::kInvalidArgument;
  });
  w->run_for(200 * kEnvMs);
  EXPECT_TRUE(sent_ok);
  EXPECT_TRUE(big_refused) << "a datagram past max_datagram";
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].data, "hello");
  EXPECT_EQ(got[0].from.to_string(), tx_addr.to_string());
  ASSERT_TRUE(got[0].local.has_value());
  EXPECT_EQ(got[0].local->to_string(), rx_addr.to_string());
  EXPECT_TRUE(a.close_udp(tx).is_ok());
  EXPECT_FALSE(a.close_udp(tx).is_ok()) << "closed twice";
  EXPECT_FALSE(a.send_udp(tx, rx_addr, reinterpret_cast<const std::uint8_t*>("x"), 1).is_ok());
}

TEST_P(EnvContract, FileDescriptorsAreWatchedOrClearlyRefused) {
  auto w = make();
  env::Env& e = w->a();
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
  int calls = 0;
  env::WatchId id = 0;
  const Status s = e.watch_fd(
      fds[0], env::kFdReadable,
      [&](std::uint32_t ready) {
        if (ready & env::kFdReadable) ++calls;
        char c;
        (void)!::read(fds[0], &c, 1);
        (void)e.unwatch_fd(id);
      },
      &id);
  if (w->real_fds()) {
    ASSERT_TRUE(s.is_ok()) << s.message();
    ASSERT_EQ(::write(fds[1], "x", 1), 1);
    w->run_for(50 * kEnvMs);
    EXPECT_EQ(calls, 1);
  } else {
    EXPECT_EQ(s.code(), Code::kUnimplemented);
    EXPECT_NE(s.message().find(e.name()), std::string::npos) << s.message();
  }
  ::close(fds[0]);
  ::close(fds[1]);
}

TEST_P(EnvContract, RandomnessIsSeededAndTheClockNeverGoesBack) {
  auto w = make();
  env::Env& e = w->a();
  const std::uint64_t r1 = e.random_u64(), r2 = e.random_u64();
  EXPECT_NE(r1, r2);
  std::int64_t last = e.now_ns();
  bool monotonic = true;
  for (int i = 1; i <= 5; ++i) {
    e.schedule(i * kEnvMs, [&] {
      monotonic = monotonic && e.now_ns() >= last;
      last = e.now_ns();
    });
  }
  w->run_for(10 * kEnvMs);
  EXPECT_TRUE(monotonic);
  EXPECT_GT(e.wall_ns(), 1'600'000'000LL * 1'000'000'000LL) << "wall clock in Unix time";
}

}  // namespace patronus::test
