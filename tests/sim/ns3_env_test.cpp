// The ns-3 backend's datagram TTLs on ns-3's own IPv4 stack: a -- r -- b over point-to-point
// links with global routing. What a sends with TTL 255 arrives at r (adjacent) with 255 and at b
// (one router on the way) with 254, with its destination and receiving interface; on the
// scenario WAN (a DatagramNet without routers) the TTL arrives unchanged.
#include <gtest/gtest.h>

#include "datagram_log.hpp"
#include "ns3/internet-stack-helper.h"
#include "ns3/ipv4-address-helper.h"
#include "ns3/ipv4-global-routing-helper.h"
#include "ns3/node-container.h"
#include "ns3/point-to-point-helper.h"
#include "ns3/simulator.h"
#include "ns3_env.hpp"
#include "wan.hpp"

namespace {

using namespace patronus;
using model::IpAddress;
using model::SocketAddress;

using test::Arrival;

TEST(Ns3Env, SocketsSendTheTtlAndRoutersDecrementIt) {
  ns3::NodeContainer nodes;
  nodes.Create(3);  // a, r, b
  ns3::PointToPointHelper p2p;
  auto ar = p2p.Install(nodes.Get(0), nodes.Get(1));
  auto rb = p2p.Install(nodes.Get(1), nodes.Get(2));
  ns3::InternetStackHelper stack;  // after the devices (it sets up their traffic control)
  stack.Install(nodes);
  ns3::Ipv4AddressHelper addr;
  addr.SetBase("10.1.0.0", "255.255.255.0");
  addr.Assign(ar);  // a 10.1.0.1, r 10.1.0.2
  addr.SetBase("10.2.0.0", "255.255.255.0");
  addr.Assign(rb);  // r 10.2.0.1, b 10.2.0.2
  ns3::Ipv4GlobalRoutingHelper::PopulateRoutingTables();
  {
    sim::Ns3Env a(nodes.Get(0), 1, "a"), r(nodes.Get(1), 2, "r"), b(nodes.Get(2), 3, "b");
    std::vector<Arrival> at_r, at_b;
    env::EndpointId ta = 0, rr = 0, rb_id = 0, bad = 0;
    const auto ip = [](const char* s) { return IpAddress::parse(s).value(); };
    ASSERT_TRUE(
        a.open_udp(SocketAddress(ip("10.1.0.1"), 49152), env::UdpOptions{255}, {}, &ta, nullptr)
            .is_ok());
    ASSERT_TRUE(r.open_udp(SocketAddress(ip("10.1.0.2"), 3784), env::UdpOptions{},
                           test::record_arrivals(&at_r), &rr, nullptr)
                    .is_ok());
    ASSERT_TRUE(b.open_udp(SocketAddress(ip("10.2.0.2"), 3784), env::UdpOptions{},
                           test::record_arrivals(&at_b), &rb_id, nullptr)
                    .is_ok());
    EXPECT_EQ(a.open_udp(SocketAddress(ip("10.1.0.1"), 0), env::UdpOptions{300}, {}, &bad, nullptr)
                  .code(),
              Code::kInvalidArgument);
    // Sent from inside the simulation: nodes (and their traffic control) initialise when it starts.
    const std::uint8_t x = 1;
    bool sent = false;
    a.schedule(1'000'000, [&] {
      sent = a.send_udp(ta, SocketAddress(ip("10.1.0.2"), 3784), &x, 1).is_ok() &&
             a.send_udp(ta, SocketAddress(ip("10.2.0.2"), 3784), &x, 1).is_ok();
    });
    ns3::Simulator::Stop(ns3::Seconds(1));
    ns3::Simulator::Run();
    EXPECT_TRUE(sent);
    ASSERT_EQ(at_r.size(), 1u);
    ASSERT_EQ(at_b.size(), 1u);
    EXPECT_EQ(at_r[0].info.ttl, 255);
    EXPECT_EQ(at_b[0].info.ttl, 254);
    EXPECT_EQ(at_b[0].from, SocketAddress(ip("10.1.0.1"), 49152));
    ASSERT_TRUE(at_b[0].info.local.has_value());
    EXPECT_EQ(*at_b[0].info.local, SocketAddress(ip("10.2.0.2"), 3784));
    EXPECT_EQ(at_b[0].info.ifindex, 1u) << "b's first IPv4 interface after its loopback";
  }
  ns3::Simulator::Destroy();
}

TEST(Ns3Env, TheScenarioWanCarriesTheTtlUnchanged) {
  sim::WanModel wan(1);
  wan.add_site_count(2);
  const auto a_ip = IpAddress::parse("100.64.0.1").value();
  const auto b_ip = IpAddress::parse("100.64.0.2").value();
  wan.add_endpoint(0, a_ip.v4_host_order(), sim::LinkSpec{});
  wan.add_endpoint(1, b_ip.v4_host_order(), sim::LinkSpec{});
  ns3::Ptr<ns3::Node> na = ns3::CreateObject<ns3::Node>(), nb = ns3::CreateObject<ns3::Node>();
  {
    sim::Ns3Env a(na, 1, "a", {}, &wan), b(nb, 2, "b", {}, &wan);
    std::vector<Arrival> got;
    env::EndpointId ta = 0, tb = 0;
    ASSERT_TRUE(
        a.open_udp(SocketAddress(a_ip, 50000), env::UdpOptions{255}, {}, &ta, nullptr).is_ok());
    ASSERT_TRUE(b.open_udp(SocketAddress(b_ip, 3784), env::UdpOptions{},
                           test::record_arrivals(&got), &tb, nullptr)
                    .is_ok());
    const std::uint8_t x = 1;
    ASSERT_TRUE(a.send_udp(ta, SocketAddress(b_ip, 3784), &x, 1).is_ok());
    ns3::Simulator::Stop(ns3::Seconds(1));
    ns3::Simulator::Run();
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].info.ttl, 255);
    ASSERT_TRUE(got[0].info.local.has_value());
    EXPECT_EQ(*got[0].info.local, SocketAddress(b_ip, 3784));
    EXPECT_EQ(got[0].info.ifindex, 0u) << "the WAN model has no interfaces";
  }
  ns3::Simulator::Destroy();
}

}  // namespace
