// Datagram TTLs and receive information on every backend that has no ns-3 (tests/sim covers
// ns-3): the TTL an endpoint sends with, the TTL, destination and interface a datagram arrives
// with, and the refusal of a TTL that does not exist.
#include <gtest/gtest.h>
#include <net/if.h>

#include <boost/asio/io_context.hpp>
#include <optional>

#include "datagram_log.hpp"
#include "patronus/env/asio_env.hpp"
#include "patronus/env/virtual_world.hpp"

namespace {

using namespace patronus;
using model::IpAddress;
using model::SocketAddress;

IpAddress ip(const char* s) {
  return IpAddress::parse(s).value();
}

using test::Arrival;

TEST(DatagramInfo, VirtualLinksDecrementTheTtlOncePerRouter) {
  env::VirtualWorld w(1);
  env::Env& a = w.add_node("a", {ip("10.0.0.1")});
  env::Env& b = w.add_node("b", {ip("10.0.0.2")});
  env::LinkParams adjacent;
  w.set_link(ip("10.0.0.1"), ip("10.0.0.2"), adjacent);
  std::vector<Arrival> got;
  env::EndpointId ea = 0, ea_default = 0, eb = 0;
  ASSERT_TRUE(
      a.open_udp(SocketAddress(ip("10.0.0.1"), 49152), env::UdpOptions{255}, {}, &ea, nullptr)
          .is_ok());
  ASSERT_TRUE(
      a.open_udp(SocketAddress(ip("10.0.0.1"), 0), env::UdpOptions{}, {}, &ea_default, nullptr)
          .is_ok());
  ASSERT_TRUE(b.open_udp(SocketAddress(ip("10.0.0.2"), 3784), env::UdpOptions{},
                         test::record_arrivals(&got), &eb, nullptr)
                  .is_ok());
  const std::uint8_t x = 1;
  const SocketAddress to(ip("10.0.0.2"), 3784);
  ASSERT_TRUE(a.send_udp(ea, to, &x, 1).is_ok());
  ASSERT_TRUE(a.send_udp(ea_default, to, &x, 1).is_ok());
  w.run(100);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].info.ttl, 255);
  EXPECT_EQ(got[0].from, SocketAddress(ip("10.0.0.1"), 49152));
  ASSERT_TRUE(got[0].info.local.has_value());
  EXPECT_EQ(*got[0].info.local, to);
  EXPECT_EQ(got[0].info.ifindex, 0u) << "a virtual node has no interfaces: not invented";
  EXPECT_EQ(got[1].info.ttl, env::kDefaultTtl);

  // Two routers on the link: 253 arrives; a TTL the routers use up is dropped and counted.
  env::LinkParams routed;
  routed.hops = 2;
  w.set_link(ip("10.0.0.1"), ip("10.0.0.2"), routed);
  env::EndpointId ea2 = 0;
  ASSERT_TRUE(
      a.open_udp(SocketAddress(ip("10.0.0.1"), 0), env::UdpOptions{2}, {}, &ea2, nullptr).is_ok());
  ASSERT_TRUE(a.send_udp(ea, to, &x, 1).is_ok());
  ASSERT_TRUE(a.send_udp(ea2, to, &x, 1).is_ok());
  w.run(100);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[2].info.ttl, 253);
  EXPECT_EQ(w.counters().ttl_expired, 1u);
}

TEST(DatagramInfo, TtlsThatDoNotExistAreRefused) {
  env::VirtualWorld w(1);
  env::Env& a = w.add_node("a", {ip("10.0.0.1")});
  boost::asio::io_context io;
  env::AsioEnv real(io, 1);
  for (env::Env* e : {&a, static_cast<env::Env*>(&real)}) {
    for (int ttl : {-1, 256}) {
      env::EndpointId id = 0;
      const auto local =
          e == &a ? SocketAddress(ip("10.0.0.1"), 0) : SocketAddress(ip("127.0.0.1"), 0);
      auto s = e->open_udp(local, env::UdpOptions{ttl}, {}, &id, nullptr);
      EXPECT_EQ(s.code(), Code::kInvalidArgument) << e->name() << " ttl " << ttl;
      EXPECT_NE(s.message().find("send_ttl"), std::string::npos) << s.message();
    }
  }
  EXPECT_EQ(real.live_endpoints(), 0u);
}

// The kernel's own numbers: what the socket sent with (IP_TTL), what arrived (IP_RECVTTL), the
// destination and the interface (IP_PKTINFO: loopback).
TEST(DatagramInfo, RealSocketsSendAndReportTheTtlDestinationAndInterface) {
  boost::asio::io_context io;
  env::AsioEnv env(io, 1);
  std::vector<Arrival> got;
  env::EndpointId rx = 0, tx255 = 0, tx7 = 0;
  SocketAddress rx_at, tx_at;
  ASSERT_TRUE(env.open_udp(SocketAddress(ip("127.0.0.1"), 0), env::UdpOptions{},
                           test::record_arrivals(&got), &rx, &rx_at)
                  .is_ok());
  ASSERT_TRUE(
      env.open_udp(SocketAddress(ip("127.0.0.1"), 0), env::UdpOptions{255}, {}, &tx255, &tx_at)
          .is_ok());
  ASSERT_TRUE(env.open_udp(SocketAddress(ip("127.0.0.1"), 0), env::UdpOptions{7}, {}, &tx7, nullptr)
                  .is_ok());
  const std::uint8_t x = 1;
  ASSERT_TRUE(env.send_udp(tx255, rx_at, &x, 1).is_ok());
  ASSERT_TRUE(env.send_udp(tx7, rx_at, &x, 1).is_ok());
  for (int i = 0; i < 200 && got.size() < 2; ++i) io.run_for(std::chrono::milliseconds(10));
  ASSERT_EQ(got.size(), 2u);
  const auto first = got[0].from == tx_at ? 0 : 1;
  EXPECT_EQ(got[first].info.ttl, 255);
  EXPECT_EQ(got[1 - first].info.ttl, 7);
  ASSERT_TRUE(got[0].info.local.has_value());
  EXPECT_EQ(*got[0].info.local, rx_at);
  EXPECT_EQ(got[0].info.ifindex, if_nametoindex("lo"));
  EXPECT_NE(got[0].info.ifindex, 0u);
}

}  // namespace
