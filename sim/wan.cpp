#include "wan.hpp"

#include <algorithm>

#include "ns3/ipv4-header.h"
#include "ns3/simulator.h"

namespace patronus::sim {

// ---- WanDevice ---------------------------------------------------------------------------------

ns3::TypeId WanDevice::GetTypeId() {
  static ns3::TypeId tid = ns3::TypeId("patronus::sim::WanDevice")
                               .SetParent<ns3::NetDevice>()
                               .SetGroupName("Patronus")
                               .AddConstructor<WanDevice>();
  return tid;
}

WanDevice::WanDevice() : mac_(ns3::Mac48Address::Allocate()) {}

void WanDevice::SetAddress(ns3::Address address) {
  mac_ = ns3::Mac48Address::ConvertFrom(address);
}

bool WanDevice::SetMtu(const uint16_t mtu) {
  mtu_ = mtu;
  return true;
}

bool WanDevice::Send(ns3::Ptr<ns3::Packet> packet, const ns3::Address&, uint16_t protocol) {
  if (model_ == nullptr) return false;
  model_->transmit(packet, protocol);
  return true;
}

bool WanDevice::SendFrom(ns3::Ptr<ns3::Packet> packet, const ns3::Address&,
                         const ns3::Address& dest, uint16_t protocol) {
  return Send(packet, dest, protocol);
}

void WanDevice::Deliver(ns3::Ptr<ns3::Packet> p, std::uint16_t protocol) {
  if (!rx_.IsNull()) rx_(this, p, protocol, mac_);
}

void WanDevice::DoDispose() {
  node_ = nullptr;
  rx_ = ns3::MakeNullCallback<bool, ns3::Ptr<ns3::NetDevice>, ns3::Ptr<const ns3::Packet>, uint16_t,
                              const ns3::Address&>();
  model_ = nullptr;
  ns3::NetDevice::DoDispose();
}

// ---- WanModel ----------------------------------------------------------------------------------

std::size_t WanModel::add_endpoint(std::size_t site, std::uint32_t ipv4, const LinkSpec& access,
                                   ns3::Ptr<WanDevice> device) {
  Endpoint e;
  e.site = site;
  e.base = e.link = access;
  e.device = device;
  endpoints_.push_back(e);
  by_ip_[ipv4] = endpoints_.size() - 1;
  return endpoints_.size() - 1;
}

void WanModel::set_path_link(std::size_t a, std::size_t b, const LinkSpec& link) {
  Pair& p = pair(a, b);
  p.base = p.link = link;
  p.has_link = true;
}

WanModel::Pair* WanModel::find_pair(std::size_t a, std::size_t b) {
  auto it = pairs_.find(pair_key(a, b));
  return it == pairs_.end() ? nullptr : &it->second;
}

void WanModel::set_endpoint_up(std::size_t ep, bool up) {
  endpoints_.at(ep).up = up;
}

void WanModel::set_endpoint_link(std::size_t ep, const LinkSpec& link) {
  endpoints_.at(ep).link = link;
}

void WanModel::restore_endpoint_link(std::size_t ep) {
  endpoints_.at(ep).link = endpoints_.at(ep).base;
}

void WanModel::set_path_up(std::size_t a, std::size_t b, bool up) {
  pair(a, b).up = up;
}

void WanModel::set_path_degraded(std::size_t a, std::size_t b, const LinkChange& change) {
  Pair& p = pair(a, b);
  p.link = change.applied_to(p.link);
  p.has_link = true;
}

void WanModel::restore_path_link(std::size_t a, std::size_t b) {
  if (Pair* p = find_pair(a, b)) p->link = p->base;
}

std::int64_t WanModel::delay_of(const LinkSpec& l) {
  if (l.jitter_ns <= 0) return l.delay_ns;
  const auto span = static_cast<std::uint64_t>(2 * l.jitter_ns + 1);
  return std::max<std::int64_t>(
      0, l.delay_ns - l.jitter_ns + static_cast<std::int64_t>(rng_.uniform(span)));
}

namespace {

// Serialises `bits` on a link of `bps` whose transmitter is busy until *busy: returns when the
// packet has left, or -1 when the queue in front of it holds more than WanModel::kQueueNs.
std::int64_t serialise(std::int64_t now, std::int64_t* busy, double bps, std::uint64_t bits) {
  if (bps <= 0) return now;
  const std::int64_t start = std::max(now, *busy);
  if (start - now > WanModel::kQueueNs) return -1;
  *busy = start + static_cast<std::int64_t>(static_cast<double>(bits) * 1e9 / bps);
  return *busy;
}

}  // namespace

void WanModel::transmit(ns3::Ptr<ns3::Packet> p, std::uint16_t protocol) {
  ++counters_.sent;
  ns3::Ipv4Header h;
  if (protocol != 0x0800 || p->PeekHeader(h) == 0) {
    ++counters_.dropped_unroutable;
    return;
  }
  const auto si = by_ip_.find(h.GetSource().Get());
  const auto di = by_ip_.find(h.GetDestination().Get());
  if (si == by_ip_.end() || di == by_ip_.end()) {
    ++counters_.dropped_unroutable;
    return;
  }
  const std::size_t src = si->second, dst = di->second;
  Endpoint& a = endpoints_[src];
  Endpoint& b = endpoints_[dst];
  Pair* pr = find_pair(src, dst);
  if (!usable(a) || !usable(b) || (pr && !pr->up)) {
    ++counters_.dropped_down;
    return;
  }
  const std::int64_t now = ns3::Simulator::Now().GetNanoSeconds();
  const std::uint64_t bits = std::uint64_t{p->GetSize()} * 8;
  std::int64_t left = serialise(now, &a.up_busy_ns, a.link.bandwidth_bps, bits);
  if (left >= 0 && pr && pr->has_link) {
    left = serialise(left, &pr->busy_ns, pr->link.bandwidth_bps, bits);
  }
  if (left < 0) {
    ++counters_.dropped_queue;
    return;
  }
  double keep = (1 - a.link.loss) * (1 - b.link.loss);
  std::int64_t delay = delay_of(a.link) + delay_of(b.link);
  if (pr && pr->has_link) {
    keep *= 1 - pr->link.loss;
    delay += delay_of(pr->link);
  }
  if (keep < 1 && rng_.uniform01() >= keep) {
    ++counters_.dropped_loss;
    return;
  }
  ns3::Simulator::Schedule(ns3::NanoSeconds(left - now + delay), &WanModel::arrive, this, src, dst,
                           p, protocol);
}

void WanModel::arrive(std::size_t src, std::size_t dst, ns3::Ptr<ns3::Packet> p,
                      std::uint16_t protocol) {
  Endpoint& a = endpoints_[src];
  Endpoint& b = endpoints_[dst];
  const Pair* pr = find_pair(src, dst);
  if (!usable(a) || !usable(b) || (pr && !pr->up)) {  // went down while the packet was on it
    ++counters_.dropped_down;
    return;
  }
  const std::int64_t now = ns3::Simulator::Now().GetNanoSeconds();
  const std::int64_t done =
      serialise(now, &b.down_busy_ns, b.link.bandwidth_bps, std::uint64_t{p->GetSize()} * 8);
  if (done < 0) {
    ++counters_.dropped_queue;
    return;
  }
  ++counters_.delivered;
  ns3::Ptr<WanDevice> dev = b.device;
  if (done == now) {
    dev->Deliver(p, protocol);
  } else {
    ns3::Simulator::Schedule(ns3::NanoSeconds(done - now), &WanDevice::Deliver, dev, p, protocol);
  }
}

}  // namespace patronus::sim
