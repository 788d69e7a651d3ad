// The simulated WAN. Every site node has one WanDevice carrying the IPv4 addresses of all its
// endpoints; the WanModel behind the devices plays the access links and the transport networks:
// a packet from endpoint A to endpoint B is serialised on A's access uplink (its bandwidth, a
// bounded queue), crosses A's access link, the A-B path (an optional per-path override) and B's
// access link (delay, jitter, loss each), and is serialised on B's downlink before B's node
// receives it. Endpoints are found by the packet's IPv4 addresses. Faults switch endpoints
// (access links), site pairs of endpoints (paths) and whole sites down and up, or change their
// link parameters; packets in flight when their link goes down are lost.
//
// C++17 (includes ns-3 headers).
#pragma once

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "ns3/channel.h"
#include "ns3/mac48-address.h"
#include "ns3/net-device.h"
#include "ns3/node.h"
#include "ns3/packet.h"
#include "patronus/env/env.hpp"
#include "scenario.hpp"

namespace patronus::sim {

class WanModel;

class WanDevice final : public ns3::NetDevice {
 public:
  static ns3::TypeId GetTypeId();
  WanDevice();
  void Attach(WanModel* model) { model_ = model; }
  // Hands a packet that crossed the WAN to the node.
  void Deliver(ns3::Ptr<ns3::Packet> p, std::uint16_t protocol);

  void SetIfIndex(const uint32_t index) override { if_index_ = index; }
  uint32_t GetIfIndex() const override { return if_index_; }
  ns3::Ptr<ns3::Channel> GetChannel() const override { return nullptr; }
  void SetAddress(ns3::Address address) override;
  ns3::Address GetAddress() const override { return mac_; }
  bool SetMtu(const uint16_t mtu) override;
  uint16_t GetMtu() const override { return mtu_; }
  bool IsLinkUp() const override { return true; }
  void AddLinkChangeCallback(ns3::Callback<void>) override {}
  bool IsBroadcast() const override { return false; }
  ns3::Address GetBroadcast() const override { return ns3::Mac48Address::GetBroadcast(); }
  bool IsMulticast() const override { return false; }
  ns3::Address GetMulticast(ns3::Ipv4Address) const override { return mac_; }
  ns3::Address GetMulticast(ns3::Ipv6Address) const override { return mac_; }
  bool IsBridge() const override { return false; }
  bool IsPointToPoint() const override { return true; }
  bool Send(ns3::Ptr<ns3::Packet> packet, const ns3::Address& dest,
            uint16_t protocolNumber) override;
  bool SendFrom(ns3::Ptr<ns3::Packet> packet, const ns3::Address& source, const ns3::Address& dest,
                uint16_t protocolNumber) override;
  ns3::Ptr<ns3::Node> GetNode() const override { return node_; }
  void SetNode(ns3::Ptr<ns3::Node> node) override { node_ = node; }
  bool NeedsArp() const override { return false; }
  void SetReceiveCallback(ns3::NetDevice::ReceiveCallback cb) override { rx_ = cb; }
  void SetPromiscReceiveCallback(ns3::NetDevice::PromiscReceiveCallback) override {}
  bool SupportsSendFrom() const override { return false; }

 protected:
  void DoDispose() override;

 private:
  WanModel* model_ = nullptr;
  ns3::Ptr<ns3::Node> node_;
  ns3::Mac48Address mac_;
  std::uint32_t if_index_ = 0;
  std::uint16_t mtu_ = 1500;
  ns3::NetDevice::ReceiveCallback rx_;
};

struct WanCounters {
  std::uint64_t sent = 0, delivered = 0;
  std::uint64_t dropped_down = 0;        // an access link, path or site was down
  std::uint64_t dropped_loss = 0;        // random loss of a link
  std::uint64_t dropped_queue = 0;       // an access or path queue was full
  std::uint64_t dropped_unroutable = 0;  // no endpoint with that address
};

class WanModel {
 public:
  // A queue holds at most this much transmission time (a bufferbloated access router).
  static constexpr std::int64_t kQueueNs = 100'000'000;

  explicit WanModel(std::uint64_t seed) : rng_(seed) {}

  // Endpoints, in the order of the scenario (site by site); returns the endpoint index.
  std::size_t add_endpoint(std::size_t site, std::uint32_t ipv4, const LinkSpec& access,
                           ns3::Ptr<WanDevice> device);
  void add_site_count(std::size_t n) { site_up_.assign(n, true); }
  // Per-path parameters (a core link between two endpoints).
  void set_path_link(std::size_t ep_a, std::size_t ep_b, const LinkSpec& link);

  // Faults.
  void set_endpoint_up(std::size_t ep, bool up);
  void set_endpoint_link(std::size_t ep, const LinkSpec& link);
  void restore_endpoint_link(std::size_t ep);
  void set_path_up(std::size_t ep_a, std::size_t ep_b, bool up);
  void set_path_degraded(std::size_t ep_a, std::size_t ep_b, const LinkChange& change);
  void restore_path_link(std::size_t ep_a, std::size_t ep_b);
  void set_site_up(std::size_t site, bool up) { site_up_.at(site) = up; }

  const LinkSpec& endpoint_link(std::size_t ep) const { return endpoints_.at(ep).link; }
  const WanCounters& counters() const { return counters_; }

  // From a WanDevice.
  void transmit(ns3::Ptr<ns3::Packet> p, std::uint16_t protocol);

 private:
  struct Endpoint {
    std::size_t site = 0;
    LinkSpec base, link;
    bool up = true;
    std::int64_t up_busy_ns = 0, down_busy_ns = 0;
    ns3::Ptr<WanDevice> device;
  };
  struct Pair {
    LinkSpec base, link;
    bool has_link = false, up = true;
    std::int64_t busy_ns = 0;
  };
  static std::uint64_t pair_key(std::size_t a, std::size_t b) {
    return a < b ? (std::uint64_t{a} << 32 | b) : (std::uint64_t{b} << 32 | a);
  }
  Pair* find_pair(std::size_t a, std::size_t b);
  Pair& pair(std::size_t a, std::size_t b) { return pairs_[pair_key(a, b)]; }
  bool usable(const Endpoint& e) const { return e.up && site_up_[e.site]; }
  std::int64_t delay_of(const LinkSpec& l);
  void arrive(std::size_t src, std::size_t dst, ns3::Ptr<ns3::Packet> p, std::uint16_t protocol);

  env::Rng rng_;
  std::vector<Endpoint> endpoints_;
  std::unordered_map<std::uint32_t, std::size_t> by_ip_;
  std::unordered_map<std::uint64_t, Pair> pairs_;
  std::vector<bool> site_up_;
  WanCounters counters_;
};

}  // namespace patronus::sim
