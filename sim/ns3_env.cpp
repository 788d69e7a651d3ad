#include "ns3_env.hpp"

#include <array>
#include <vector>

#include "ns3/inet-socket-address.h"
#include "ns3/inet6-socket-address.h"
#include "ns3/ipv4-address.h"
#include "ns3/ipv4-packet-info-tag.h"
#include "ns3/ipv4.h"
#include "ns3/ipv6-address.h"
#include "ns3/packet.h"
#include "ns3/simulator.h"
#include "ns3/udp-socket-factory.h"

namespace patronus::sim {

using model::IpAddress;
using model::SocketAddress;

namespace {

ns3::Address to_ns3(const SocketAddress& a) {
  if (a.ip().is_v4()) {
    return ns3::InetSocketAddress(ns3::Ipv4Address(a.ip().v4_host_order()), a.port());
  }
  std::array<std::uint8_t, 16> b = a.ip().bytes();
  return ns3::Inet6SocketAddress(ns3::Ipv6Address(b.data()), a.port());
}

bool from_ns3(const ns3::Address& addr, SocketAddress* out) {
  if (ns3::InetSocketAddress::IsMatchingType(addr)) {
    const auto in = ns3::InetSocketAddress::ConvertFrom(addr);
    *out = SocketAddress(IpAddress::v4(in.GetIpv4().Get()), in.GetPort());
    return true;
  }
  if (ns3::Inet6SocketAddress::IsMatchingType(addr)) {
    const auto in6 = ns3::Inet6SocketAddress::ConvertFrom(addr);
    std::array<std::uint8_t, 16> b{};
    in6.GetIpv6().GetBytes(b.data());
    *out = SocketAddress(IpAddress::v6(b), in6.GetPort());
    return true;
  }
  return false;
}

}  // namespace

Ns3Env::Ns3Env(ns3::Ptr<ns3::Node> node, std::uint64_t seed, std::string name,
               env::EnvLimits limits, DatagramNet* net)
    : node_(node), net_(net), rng_(seed), name_(std::move(name)), limits_(limits) {}

Ns3Env::~Ns3Env() {
  timers_.for_each_handle([](ns3::EventId& e) { ns3::Simulator::Cancel(e); });
  posts_.for_each_handle([](ns3::EventId& e) { ns3::Simulator::Cancel(e); });
  for (auto& [id, e] : endpoints_) {
    if (!e.socket) {
      net_->unbind(e.local);
      continue;
    }
    e.socket->SetRecvCallback(ns3::MakeNullCallback<void, ns3::Ptr<ns3::Socket>>());
    e.socket->Close();
  }
}

std::int64_t Ns3Env::now_ns() const {
  return ns3::Simulator::Now().GetNanoSeconds();
}

env::TimerId Ns3Env::schedule(std::int64_t delay_ns, std::function<void()> fn) {
  const auto delay = ns3::NanoSeconds(std::max<std::int64_t>(delay_ns, 0));
  return timers_.add(std::move(fn), [this, delay](env::TimerId id) {
    return std::optional<ns3::EventId>(ns3::Simulator::Schedule(delay, &Ns3Env::fire, this, id));
  });
}

void Ns3Env::fire(env::TimerId id) {
  timers_.fire(id);
}

bool Ns3Env::cancel(env::TimerId id) {
  const auto event = timers_.cancel(id);
  if (event) ns3::Simulator::Cancel(*event);
  return event.has_value();
}

void Ns3Env::post(std::function<void()> fn) {
  // ns-3's default simulator is not thread-safe: a post from another thread is refused.
  // Runs after the current event, in posting order; not a timer (its own table and bound,
  // max_posted).
  const bool here = std::this_thread::get_id() == thread_;
  if (!here || posts_.add(std::move(fn), [this](std::uint64_t id) {
        return std::optional<ns3::EventId>(
            ns3::Simulator::ScheduleNow(&Ns3Env::fire_post, this, id));
      }) == 0) {
    ++posts_refused_;
  }
}

void Ns3Env::fire_post(std::uint64_t id) {
  posts_.fire(id);
}

Status Ns3Env::open_udp(const SocketAddress& local, const env::UdpOptions& options,
                        env::DatagramInfoHandler handler, env::EndpointId* id,
                        SocketAddress* bound) {
  if (auto st = env::check_udp_options(options); !st.is_ok()) return st;
  const int ttl = options.send_ttl ? options.send_ttl : env::kDefaultTtl;
  if (endpoints_.size() >= limits_.max_endpoints) {
    return resource_exhausted(name_ + ": " + std::to_string(limits_.max_endpoints) +
                              " datagram endpoints are open already");
  }
  if (net_) {
    const env::EndpointId eid = next_endpoint_;
    auto at =
        net_->bind(local, [this, eid](const SocketAddress& from, int rx_ttl, const std::uint8_t* d,
                                      std::size_t n) { on_net_datagram(eid, from, rx_ttl, d, n); });
    if (!at.is_ok()) {
      return unavailable(name_ + ": cannot bind UDP " + local.to_string() + ": " +
                         at.status().message());
    }
    ++next_endpoint_;
    endpoints_.emplace(eid, Endpoint{nullptr, std::move(handler), at.value(), ttl});
    if (bound) *bound = at.value();
    *id = eid;
    return Status::ok();
  }
  ns3::Ptr<ns3::Socket> s = ns3::Socket::CreateSocket(node_, ns3::UdpSocketFactory::GetTypeId());
  if (s->Bind(to_ns3(local)) != 0) {
    s->Close();
    return unavailable(name_ + ": cannot bind UDP " + local.to_string());
  }
  const env::EndpointId eid = next_endpoint_++;
  // TTL on send; TTL, destination and interface of what arrives (an Ipv4PacketInfoTag).
  if (local.ip().is_v4()) {
    s->SetIpTtl(static_cast<std::uint8_t>(ttl));
  } else {
    s->SetIpv6HopLimit(static_cast<std::uint8_t>(ttl));
  }
  s->SetRecvPktInfo(true);
  s->SetIpRecvTtl(true);
  s->SetRecvCallback(ns3::MakeCallback(&Ns3Env::on_receive, this));
  // The address it is bound to (port 0 picked one): what arrivals report as their destination.
  SocketAddress at = local;
  {
    ns3::Address name;
    s->GetSockName(name);
    SocketAddress got;
    if (from_ns3(name, &got)) at = SocketAddress(local.ip(), got.port());
  }
  endpoints_.emplace(eid, Endpoint{s, std::move(handler), at, ttl});
  by_socket_.emplace(ns3::PeekPointer(s), eid);
  if (bound) *bound = at;
  *id = eid;
  return Status::ok();
}

void Ns3Env::on_net_datagram(env::EndpointId id, const SocketAddress& from, int ttl,
                             const std::uint8_t* data, std::size_t size) {
  auto ep = endpoints_.find(id);
  if (ep == endpoints_.end()) return;
  env::DatagramInfo info;
  info.ttl = ttl;
  info.local = ep->second.local;
  auto handler = ep->second.handler;  // it may close its own endpoint
  handler(from, info, data, size);
}

void Ns3Env::on_receive(ns3::Ptr<ns3::Socket> socket) {
  ns3::Address from;
  std::vector<std::uint8_t> buf;
  while (ns3::Ptr<ns3::Packet> p = socket->RecvFrom(from)) {
    auto it = by_socket_.find(ns3::PeekPointer(socket));
    if (it == by_socket_.end()) return;
    auto ep = endpoints_.find(it->second);
    buf.resize(p->GetSize());
    p->CopyData(buf.data(), buf.size());
    SocketAddress src;
    if (!from_ns3(from, &src)) continue;
    env::DatagramInfo info;
    ns3::SocketIpTtlTag ttl;
    if (p->PeekPacketTag(ttl)) info.ttl = ttl.GetTtl();
    ns3::Ipv4PacketInfoTag pi;
    if (p->PeekPacketTag(pi)) {
      info.local = SocketAddress(IpAddress::v4(pi.GetAddress().Get()), ep->second.local.port());
      // The node's IPv4 interface index (0 is its loopback, as on Linux indices start at 1),
      // not the device index (which starts at 0, the value meaning "unknown" here).
      ns3::Ptr<ns3::Ipv4> ipv4 = node_->GetObject<ns3::Ipv4>();
      const std::uint32_t dev = pi.GetRecvIf();
      if (ipv4 && dev < node_->GetNDevices()) {
        const std::int32_t i = ipv4->GetInterfaceForDevice(node_->GetDevice(dev));
        if (i > 0) info.ifindex = static_cast<std::uint32_t>(i);
      }
    }
    auto handler = ep->second.handler;  // it may close its own endpoint
    handler(src, info, buf.data(), buf.size());
  }
}

Status Ns3Env::send_udp(env::EndpointId id, const SocketAddress& to, const std::uint8_t* data,
                        std::size_t size) {
  auto it = endpoints_.find(id);
  if (it == endpoints_.end()) return not_found(name_ + ": endpoint " + std::to_string(id));
  if (size > limits_.max_datagram) {
    return invalid_argument("datagram of " + std::to_string(size) + " bytes exceeds " +
                            std::to_string(limits_.max_datagram));
  }
  if (!it->second.socket) {
    net_->send(it->second.local, to, it->second.ttl, data, size);
    return Status::ok();
  }
  ns3::Ptr<ns3::Packet> p = ns3::Create<ns3::Packet>(data, static_cast<std::uint32_t>(size));
  if (it->second.socket->SendTo(p, 0, to_ns3(to)) < 0) {
    return unavailable(name_ + ": send to " + to.to_string() + " failed");
  }
  return Status::ok();
}

Status Ns3Env::close_udp(env::EndpointId id) {
  auto it = endpoints_.find(id);
  if (it == endpoints_.end()) return not_found(name_ + ": endpoint " + std::to_string(id));
  if (!it->second.socket) {
    net_->unbind(it->second.local);
    endpoints_.erase(it);
    return Status::ok();
  }
  it->second.socket->SetRecvCallback(ns3::MakeNullCallback<void, ns3::Ptr<ns3::Socket>>());
  it->second.socket->Close();
  by_socket_.erase(ns3::PeekPointer(it->second.socket));
  endpoints_.erase(it);
  return Status::ok();
}

}  // namespace patronus::sim
