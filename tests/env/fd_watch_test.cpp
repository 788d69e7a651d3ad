// Readiness of file descriptors through the Env seam: the real backend calls back when a socket
// is readable or writable, keeps calling while it stays ready, stops when unwatched (also from
// inside the callback), never closes the caller's descriptor and is bounded; the simulated
// backend refuses, saying that this needs the real network. And UDP binds an address not
// configured yet.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>

#include <boost/asio/io_context.hpp>

#include "patronus/env/asio_env.hpp"
#include "patronus/env/virtual_world.hpp"

namespace {

using namespace patronus;

struct Pair {
  int fd[2] = {-1, -1};
  Pair() { EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fd), 0); }
  ~Pair() {
    for (int f : fd) {
      if (f >= 0) close(f);
    }
  }
};

TEST(FdWatch, ReadableAndWritableAreReportedUntilUnwatched) {
  boost::asio::io_context io;
  env::AsioEnv e(io, 1);
  Pair p;
  std::string got;
  env::WatchId rid = 0;
  ASSERT_TRUE(e.watch_fd(
                   p.fd[0], env::kFdReadable,
                   [&](std::uint32_t ready) {
                     EXPECT_EQ(ready, env::kFdReadable);
                     char buf[16];
                     const ssize_t n = read(p.fd[0], buf, sizeof buf);
                     if (n > 0) got.append(buf, static_cast<std::size_t>(n));
                     if (got == "hello") {
                       EXPECT_TRUE(e.unwatch_fd(rid).is_ok());  // from inside
                       io.stop();
                     }
                   },
                   &rid)
                  .is_ok());
  EXPECT_EQ(e.live_watches(), 1u);
  e.schedule(1'000'000, [&] { ASSERT_EQ(write(p.fd[1], "hel", 3), 3); });
  e.schedule(2'000'000, [&] { ASSERT_EQ(write(p.fd[1], "lo", 2), 2); });
  e.schedule(5'000'000'000, [&] { io.stop(); });  // a guard: failing, not timing
  io.run();
  EXPECT_EQ(got, "hello");
  EXPECT_EQ(e.live_watches(), 0u);
  // The descriptor is still the caller's: it works after the watch is gone.
  ASSERT_EQ(write(p.fd[1], "x", 1), 1);
  char c = 0;
  EXPECT_EQ(read(p.fd[0], &c, 1), 1);

  // A writable socket is reported writable, again and again while it stays so.
  io.restart();
  int calls = 0;
  env::WatchId wid = 0;
  ASSERT_TRUE(e.watch_fd(
                   p.fd[1], env::kFdWritable,
                   [&](std::uint32_t ready) {
                     EXPECT_EQ(ready, env::kFdWritable);
                     if (++calls == 3) io.stop();
                   },
                   &wid)
                  .is_ok());
  e.schedule(5'000'000'000, [&] { io.stop(); });
  io.run();
  EXPECT_EQ(calls, 3);
  EXPECT_TRUE(e.unwatch_fd(wid).is_ok());
  EXPECT_EQ(e.unwatch_fd(wid).code(), Code::kNotFound);
}

TEST(FdWatch, BadCallsAreRefusedAndWatchesBounded) {
  boost::asio::io_context io;
  env::EnvLimits limits;
  limits.max_watches = 1;
  env::AsioEnv e(io, 1, limits);
  Pair p;
  env::WatchId id = 0;
  auto noop = [](std::uint32_t) {};
  EXPECT_EQ(e.watch_fd(-1, env::kFdReadable, noop, &id).code(), Code::kInvalidArgument);
  EXPECT_EQ(e.watch_fd(p.fd[0], 0, noop, &id).code(), Code::kInvalidArgument);
  EXPECT_EQ(e.watch_fd(p.fd[0], 4, noop, &id).code(), Code::kInvalidArgument);
  EXPECT_EQ(e.watch_fd(p.fd[0], env::kFdReadable, nullptr, &id).code(), Code::kInvalidArgument);
  ASSERT_TRUE(e.watch_fd(p.fd[0], env::kFdReadable, noop, &id).is_ok());
  EXPECT_EQ(e.watch_fd(p.fd[1], env::kFdReadable, noop, &id).code(), Code::kResourceExhausted);
}

TEST(FdWatch, DestroyingTheEnvLeavesTheDescriptorOpen) {
  Pair p;
  {
    boost::asio::io_context io;
    env::AsioEnv e(io, 1);
    env::WatchId id = 0;
    ASSERT_TRUE(e.watch_fd(
                     p.fd[0], env::kFdReadable, [](std::uint32_t) {}, &id)
                    .is_ok());
  }
  ASSERT_EQ(write(p.fd[1], "y", 1), 1);
  char c = 0;
  EXPECT_EQ(read(p.fd[0], &c, 1), 1) << "the Env closed a descriptor it did not own";
}

TEST(FdWatch, SimulatedBackendsRefuseNamingThemselves) {
  env::VirtualWorld w(1);
  env::Env& e = w.add_node("a", {});
  Pair p;
  env::WatchId id = 0;
  const Status st = e.watch_fd(
      p.fd[0], env::kFdReadable, [](std::uint32_t) {}, &id);
  EXPECT_EQ(st.code(), Code::kUnimplemented);
  EXPECT_NE(st.message().find("virtual"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("real network"), std::string::npos) << st.message();
}

}  // namespace

namespace {

// A UDP endpoint binds an address the machine does not have (yet): a probe opens its socket on a
// tunnel's overlay address before the transport has configured it (IP_FREEBIND). 192.0.2.0/24 is
// TEST-NET-1, on no interface here; without free bind the kernel answers EADDRNOTAVAIL (unless
// net.ipv4.ip_nonlocal_bind is set, which the test checks).
TEST(AsioUdp, BindsAnAddressNotConfiguredYet) {
  std::FILE* f = std::fopen("/proc/sys/net/ipv4/ip_nonlocal_bind", "r");
  int nonlocal = 0;
  if (f != nullptr) {
    if (std::fscanf(f, "%d", &nonlocal) != 1) nonlocal = 0;
    std::fclose(f);
  }
  if (nonlocal != 0) GTEST_SKIP() << "net.ipv4.ip_nonlocal_bind=1: every bind would succeed";
  boost::asio::io_context io;
  env::AsioEnv env(io, 1);
  env::EndpointId id = 0;
  model::SocketAddress bound;
  auto st = env.open_udp(
      model::SocketAddress::parse("192.0.2.77:0").value(),
      [](const model::SocketAddress&, const std::uint8_t*, std::size_t) {}, &id, &bound);
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  EXPECT_EQ(bound.ip().to_string(), "192.0.2.77");
  EXPECT_NE(bound.port(), 0);
  EXPECT_TRUE(env.close_udp(id).is_ok());
}

}  // namespace
