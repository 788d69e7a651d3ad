// The simulated WAN: a DatagramNet under the sites' Ns3Envs that plays the access links and the
// transport networks. A datagram from endpoint A to endpoint B is serialised on A's access uplink
// (its bandwidth, a bounded queue), crosses A's access link, the A-B path (an optional per-path
// override) and B's access link (delay, jitter, loss each), and is serialised on B's downlink
// before it is delivered to the socket bound at B. Sizes on the links include IPv4 and UDP
// headers (28 bytes). Endpoints are found by their IPv4 addresses. Faults switch endpoints
// (access links), site pairs of endpoints (paths) and whole sites down and up, or change their
// link parameters; packets in flight when their link goes down are lost.
//
// The datagrams are ns-3 events, not ns-3 packets through ns-3's IPv4/UDP stack: the WAN is a
// point-to-point model without routing, where that stack added no behaviour and took 60 % of the
// run time (docs/adr/0009-simulator.md).
//
// C++17 (includes ns-3 headers).
#pragma once

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "ns3_env.hpp"
#include "patronus/env/env.hpp"
#include "scenario.hpp"

namespace patronus::sim {

struct WanCounters {
  std::uint64_t sent = 0, delivered = 0;
  std::uint64_t dropped_down = 0;        // an access link, path or site was down
  std::uint64_t dropped_loss = 0;        // random loss of a link
  std::uint64_t dropped_queue = 0;       // an access or path queue was full
  std::uint64_t dropped_unroutable = 0;  // no endpoint with that address
  std::uint64_t no_listener = 0;         // arrived, but no socket bound to the port
};

class WanModel final : public DatagramNet {
 public:
  // A queue holds at most this much transmission time (a bufferbloated access router).
  static constexpr std::int64_t kQueueNs = 100'000'000;
  static constexpr std::size_t kHeaderBytes = 28;  // IPv4 and UDP

  explicit WanModel(std::uint64_t seed) : rng_(seed) {}

  // Endpoints, in the order of the scenario (site by site); returns the endpoint index.
  std::size_t add_endpoint(std::size_t site, std::uint32_t ipv4, const LinkSpec& access);
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

  // DatagramNet.
  Result<model::SocketAddress> bind(const model::SocketAddress& local, Receiver receiver) override;
  void unbind(const model::SocketAddress& local) override;
  // The TTL arrives unchanged: the model has no routers (a path is one layer-3 hop).
  void send(const model::SocketAddress& from, const model::SocketAddress& to, int ttl,
            const std::uint8_t* data, std::size_t size) override;

 private:
  struct Endpoint {
    std::size_t site = 0;
    LinkSpec base, link;
    bool up = true;
    std::int64_t up_busy_ns = 0, down_busy_ns = 0;
  };
  // A datagram on its way (payload in a reused buffer; the event carries its index).
  struct InFlight {
    std::size_t src = 0, dst = 0;
    std::uint16_t src_port = 0, dst_port = 0;
    int ttl = 0;
    std::vector<std::uint8_t> data;
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
  static std::uint64_t socket_key(std::uint32_t ip, std::uint16_t port) {
    return std::uint64_t{ip} << 16 | port;
  }
  void arrive(std::uint32_t slot);
  void downlink_done(std::uint32_t slot);
  void release(std::uint32_t slot);

  env::Rng rng_;
  std::vector<Endpoint> endpoints_;
  std::unordered_map<std::uint32_t, std::size_t> by_ip_;
  std::vector<std::uint32_t> ip_of_;  // by endpoint index
  std::vector<std::uint8_t> rx_;      // the datagram being delivered
  std::unordered_map<std::uint64_t, Pair> pairs_;
  std::unordered_map<std::uint64_t, Receiver> sockets_;  // socket_key -> receiver
  std::vector<InFlight> flight_;
  std::vector<std::uint32_t> free_;
  std::vector<bool> site_up_;
  WanCounters counters_;
};

}  // namespace patronus::sim
