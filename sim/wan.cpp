#include "wan.hpp"

#include <algorithm>

#include "ns3/simulator.h"

namespace patronus::sim {

// ---- WanModel ----------------------------------------------------------------------------------

std::size_t WanModel::add_endpoint(std::size_t site, std::uint32_t ipv4, const LinkSpec& access) {
  Endpoint e;
  e.site = site;
  e.base = e.link = access;
  endpoints_.push_back(e);
  ip_of_.push_back(ipv4);
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

Result<model::SocketAddress> WanModel::bind(const model::SocketAddress& local, Receiver receiver) {
  if (!local.ip().is_v4() || by_ip_.count(local.ip().v4_host_order()) == 0) {
    return invalid_argument(local.ip().to_string() + " is not an endpoint address of the WAN");
  }
  const std::uint32_t ip = local.ip().v4_host_order();
  std::uint16_t port = local.port();
  if (port == 0) {  // the Linux ephemeral range, first free from the low end (deterministic)
    for (std::uint32_t p = 32768; p <= 60999 && port == 0; ++p) {
      if (sockets_.count(socket_key(ip, static_cast<std::uint16_t>(p))) == 0) {
        port = static_cast<std::uint16_t>(p);
      }
    }
    if (port == 0) return resource_exhausted(local.ip().to_string() + ": no free port");
  }
  if (!sockets_.emplace(socket_key(ip, port), std::move(receiver)).second) {
    return unavailable(model::SocketAddress(local.ip(), port).to_string() + " is bound already");
  }
  return model::SocketAddress(local.ip(), port);
}

void WanModel::unbind(const model::SocketAddress& local) {
  if (local.ip().is_v4()) sockets_.erase(socket_key(local.ip().v4_host_order(), local.port()));
}

void WanModel::send(const model::SocketAddress& from, const model::SocketAddress& to, int ttl,
                    const std::uint8_t* data, std::size_t size) {
  ++counters_.sent;
  if (!from.ip().is_v4() || !to.ip().is_v4()) {
    ++counters_.dropped_unroutable;
    return;
  }
  const auto si = by_ip_.find(from.ip().v4_host_order());
  const auto di = by_ip_.find(to.ip().v4_host_order());
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
  const std::uint64_t bits = (std::uint64_t{size} + kHeaderBytes) * 8;
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
  std::uint32_t slot;
  if (!free_.empty()) {
    slot = free_.back();
    free_.pop_back();
  } else {
    slot = static_cast<std::uint32_t>(flight_.size());
    flight_.emplace_back();
  }
  InFlight& f = flight_[slot];
  f.src = src;
  f.dst = dst;
  f.src_port = from.port();
  f.dst_port = to.port();
  f.ttl = ttl;
  f.data.assign(data, data + size);
  ns3::Simulator::Schedule(ns3::NanoSeconds(left - now + delay), &WanModel::arrive, this, slot);
}

void WanModel::release(std::uint32_t slot) {
  free_.push_back(slot);
}

void WanModel::arrive(std::uint32_t slot) {
  InFlight& f = flight_[slot];
  Endpoint& a = endpoints_[f.src];
  Endpoint& b = endpoints_[f.dst];
  const Pair* pr = find_pair(f.src, f.dst);
  if (!usable(a) || !usable(b) || (pr && !pr->up)) {  // went down while the packet was on it
    ++counters_.dropped_down;
    release(slot);
    return;
  }
  const std::int64_t now = ns3::Simulator::Now().GetNanoSeconds();
  const std::int64_t done = serialise(now, &b.down_busy_ns, b.link.bandwidth_bps,
                                      (std::uint64_t{f.data.size()} + kHeaderBytes) * 8);
  if (done < 0) {
    ++counters_.dropped_queue;
    release(slot);
    return;
  }
  if (done == now) {
    downlink_done(slot);
  } else {
    ns3::Simulator::Schedule(ns3::NanoSeconds(done - now), &WanModel::downlink_done, this, slot);
  }
}

void WanModel::downlink_done(std::uint32_t slot) {
  ++counters_.delivered;
  InFlight& f = flight_[slot];
  const auto it = sockets_.find(socket_key(ip_of_[f.dst], f.dst_port));
  if (it == sockets_.end()) {
    ++counters_.no_listener;
    release(slot);
    return;
  }
  // The receiver may send (and so reuse slots, or grow flight_): hand it a stable copy.
  rx_.swap(f.data);
  const model::SocketAddress from(model::IpAddress::v4(ip_of_[f.src]), f.src_port);
  const int ttl = f.ttl;
  release(slot);
  const Receiver receiver = it->second;  // it may unbind itself
  receiver(from, ttl, rx_.data(), rx_.size());
}

}  // namespace patronus::sim
