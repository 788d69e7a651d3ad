// The ns-3 discrete-event backend of the Env seam: time is Simulator::Now, timers are
// Simulator::Schedule events (EventIds kept for cancel), datagrams are ns-3 UDP sockets on the
// node, or, given a DatagramNet (the scenario runner's WAN model), datagrams of that network,
// which carries them as ns-3 events without ns-3's IPv4/UDP stack. Deterministic: same scenario
// and seed, same event order.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <thread>
#include <unordered_map>

#include "ns3/event-id.h"
#include "ns3/node.h"
#include "ns3/ptr.h"
#include "ns3/socket.h"
#include "patronus/env/env.hpp"
#include "patronus/env/timer_table.hpp"

namespace patronus::sim {

// A network of UDP-like datagrams between socket addresses, driven by ns-3 events.
class DatagramNet {
 public:
  // `ttl`: what the datagram arrived with.
  using Receiver = std::function<void(const model::SocketAddress& from, int ttl,
                                      const std::uint8_t*, std::size_t)>;
  virtual ~DatagramNet() = default;
  // The bound address (port 0: a free ephemeral port, as a socket would); fails when the address
  // is not on the network or the port is taken.
  virtual Result<model::SocketAddress> bind(const model::SocketAddress& local,
                                            Receiver receiver) = 0;
  virtual void unbind(const model::SocketAddress& local) = 0;
  virtual void send(const model::SocketAddress& from, const model::SocketAddress& to, int ttl,
                    const std::uint8_t* data, std::size_t size) = 0;
};

class Ns3Env final : public env::Env {
 public:
  // Datagrams are ns-3 UDP sockets on `node` (which needs an Internet stack), or, with `net`,
  // datagrams of that network.
  Ns3Env(ns3::Ptr<ns3::Node> node, std::uint64_t seed, std::string name, env::EnvLimits limits = {},
         DatagramNet* net = nullptr);
  ~Ns3Env() override;

  std::int64_t now_ns() const override;
  // A fixed epoch (2026-01-01T00:00:00Z) plus simulation time: deterministic logs.
  std::int64_t wall_ns() const override { return 1767225600LL * 1000000000LL + now_ns(); }
  env::TimerId schedule(std::int64_t delay_ns, std::function<void()> fn) override;
  bool cancel(env::TimerId id) override;
  // From the simulation's thread (the one that built this Env) only; see env.hpp.
  void post(std::function<void()> fn) override;
  std::uint64_t posts_refused() const override { return posts_refused_.load(); }
  using env::Env::open_udp;
  Status open_udp(const model::SocketAddress& local, const env::UdpOptions& options,
                  env::DatagramInfoHandler handler, env::EndpointId* id,
                  model::SocketAddress* bound) override;
  Status send_udp(env::EndpointId id, const model::SocketAddress& to, const std::uint8_t* data,
                  std::size_t size) override;
  Status close_udp(env::EndpointId id) override;
  std::uint64_t random_u64() override { return rng_.next(); }
  std::string name() const override { return "ns3:" + name_; }

 private:
  struct Endpoint {
    ns3::Ptr<ns3::Socket> socket;  // null on a DatagramNet
    env::DatagramInfoHandler handler;
    model::SocketAddress local;
    int ttl = env::kDefaultTtl;  // of what it sends
  };
  void on_net_datagram(env::EndpointId id, const model::SocketAddress& from, int ttl,
                       const std::uint8_t* data, std::size_t size);
  void fire(env::TimerId id);
  void on_receive(ns3::Ptr<ns3::Socket> socket);

  ns3::Ptr<ns3::Node> node_;
  DatagramNet* net_ = nullptr;
  env::Rng rng_;
  std::string name_;
  env::EnvLimits limits_;
  env::EndpointId next_endpoint_ = 1;
  env::TimerTable<ns3::EventId> timers_{limits_.max_timers};
  env::TimerTable<ns3::EventId> posts_{limits_.max_posted};  // posted, not run yet (not timers)
  std::atomic<std::uint64_t> posts_refused_{0};
  std::thread::id thread_ = std::this_thread::get_id();
  void fire_post(std::uint64_t id);
  std::map<env::EndpointId, Endpoint> endpoints_;
  std::map<ns3::Socket*, env::EndpointId> by_socket_;
};

}  // namespace patronus::sim
