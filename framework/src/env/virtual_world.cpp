#include "patronus/env/virtual_world.hpp"

#include <algorithm>
#include <cstdio>
#include <optional>
#include <utility>

#include "patronus/env/timer_table.hpp"

namespace patronus::env {

using model::IpAddress;
using model::SocketAddress;

class VirtualWorld::Node final : public Env {
 public:
  Node(VirtualWorld& world, std::string name, std::vector<IpAddress> addresses, EnvLimits limits,
       std::uint64_t seed)
      : world_(world),
        name_(std::move(name)),
        addresses_(std::move(addresses)),
        limits_(limits),
        rng_(seed) {}

  std::int64_t now_ns() const override { return world_.now_; }
  std::int64_t wall_ns() const override { return world_.wall_epoch_ns_ + world_.now_; }

  TimerId schedule(std::int64_t delay_ns, std::function<void()> fn) override {
    const std::int64_t at = world_.now_ + std::max<std::int64_t>(delay_ns, 0);
    return timers_.add(std::move(fn), [this, at](TimerId id) -> std::optional<std::uint64_t> {
      const std::uint64_t seq = world_.enqueue(at, [this, id] { timers_.fire(id); });
      if (seq == 0) return std::nullopt;
      return seq;
    });
  }

  bool cancel(TimerId id) override {
    const auto seq = timers_.cancel(id);
    if (seq) world_.dequeue(*seq);
    return seq.has_value();
  }

  void post(std::function<void()> fn) override {
    if (waiting_.load() >= limits_.max_posted) {
      ++posts_refused_;
      return;
    }
    ++waiting_;
    world_.post_from(*this, std::move(fn));
  }
  std::uint64_t posts_refused() const override { return posts_refused_.load(); }
  std::atomic<std::size_t> waiting_{0};  // posted, not yet in the world's queue
  std::atomic<std::uint64_t> posts_refused_{0};

  using Env::open_udp;
  Status open_udp(const SocketAddress& local, const UdpOptions& options,
                  DatagramInfoHandler handler, EndpointId* id, SocketAddress* bound) override {
    if (auto s = check_udp_options(options); !s.is_ok()) return s;
    if (endpoints_.size() >= limits_.max_endpoints) {
      return resource_exhausted(name_ + ": " + std::to_string(limits_.max_endpoints) +
                                " datagram endpoints are open already");
    }
    IpAddress ip = local.ip();
    if (ip.is_unspecified()) {
      // Any address: the node's first address of that family.
      bool found = false;
      for (const auto& a : addresses_) {
        if (a.family() == ip.family()) {
          ip = a;
          found = true;
          break;
        }
      }
      if (!found) return invalid_argument(name_ + ": no address of that family to bind");
    } else {
      bool owned = false;
      for (const auto& a : addresses_) owned = owned || a == ip;
      if (!owned) {
        return invalid_argument(name_ + ": cannot bind " + ip.to_string() +
                                ": not an address of this node");
      }
    }
    std::uint16_t port = local.port();
    if (port == 0) {
      for (std::uint32_t tries = 0; tries < 16384; ++tries) {
        const auto candidate = static_cast<std::uint16_t>(49152 + (next_port_++ % 16384));
        if (!bound_.count(SocketAddress(ip, candidate))) {
          port = candidate;
          break;
        }
      }
      if (port == 0) return resource_exhausted(name_ + ": no free ephemeral port");
    }
    const SocketAddress addr(ip, port);
    if (bound_.count(addr)) return unavailable(name_ + ": " + addr.to_string() + " is in use");
    const EndpointId eid = next_endpoint_++;
    endpoints_.emplace(
        eid, Endpoint{addr, std::move(handler), options.send_ttl ? options.send_ttl : kDefaultTtl});
    bound_.emplace(addr, eid);
    *id = eid;
    if (bound) *bound = addr;
    return Status::ok();
  }

  Status send_udp(EndpointId id, const SocketAddress& to, const std::uint8_t* data,
                  std::size_t size) override {
    auto it = endpoints_.find(id);
    if (it == endpoints_.end()) return not_found(name_ + ": endpoint " + std::to_string(id));
    if (size > limits_.max_datagram) {
      return invalid_argument("datagram of " + std::to_string(size) + " bytes exceeds " +
                              std::to_string(limits_.max_datagram));
    }
    if (world_.send_failing(it->second.addr.ip())) {
      return unavailable(name_ + ": sending from " + it->second.addr.to_string() +
                         ": network is unreachable");
    }
    world_.transmit(*this, it->second.addr, to, it->second.ttl, data, size);
    return Status::ok();
  }

  Status close_udp(EndpointId id) override {
    auto it = endpoints_.find(id);
    if (it == endpoints_.end()) return not_found(name_ + ": endpoint " + std::to_string(id));
    bound_.erase(it->second.addr);
    endpoints_.erase(it);
    return Status::ok();
  }

  std::uint64_t random_u64() override { return rng_.next(); }
  std::string name() const override { return "virtual:" + name_; }

  // Delivery from the world. Returns false when no endpoint is bound to dst.
  bool deliver(const SocketAddress& src, const SocketAddress& dst, int ttl,
               const std::vector<std::uint8_t>& bytes) {
    auto b = bound_.find(dst);
    if (b == bound_.end()) return false;
    auto e = endpoints_.find(b->second);
    DatagramInfo info;
    info.ttl = ttl;
    info.local = dst;
    // Copy the handler: it may close its own endpoint.
    auto handler = e->second.handler;
    handler(src, info, bytes.data(), bytes.size());
    return true;
  }

  const std::string& node_name() const { return name_; }

 private:
  struct Endpoint {
    SocketAddress addr;
    DatagramInfoHandler handler;
    int ttl = kDefaultTtl;  // of what it sends
  };
  VirtualWorld& world_;
  std::string name_;
  std::vector<IpAddress> addresses_;
  EnvLimits limits_;
  Rng rng_;
  EndpointId next_endpoint_ = 1;
  std::uint32_t next_port_ = 0;
  TimerTable<std::uint64_t> timers_{limits_.max_timers};  // handle: the world's queue entry
  std::unordered_map<EndpointId, Endpoint> endpoints_;
  std::map<SocketAddress, EndpointId> bound_;
};

VirtualWorld::VirtualWorld(std::uint64_t seed, Limits limits) : limits_(limits), rng_(seed) {}
VirtualWorld::~VirtualWorld() = default;

Env& VirtualWorld::add_node(const std::string& name, const std::vector<IpAddress>& addresses,
                            EnvLimits limits) {
  const std::uint64_t node_seed = rng_.next();
  nodes_.push_back(std::make_unique<Node>(*this, name, addresses, limits, node_seed));
  for (const auto& a : addresses) owner_[a] = nodes_.back().get();
  return *nodes_.back();
}

void VirtualWorld::set_link(const IpAddress& from, const IpAddress& to, LinkParams params) {
  links_[{from, to}] = params;
}

void VirtualWorld::set_send_failing(const IpAddress& local, bool failing) {
  if (failing) {
    send_failing_.insert(local);
  } else {
    send_failing_.erase(local);
  }
}

void VirtualWorld::set_link_up(const IpAddress& from, const IpAddress& to, bool up) {
  links_[{from, to}].up = up;
  add_trace(std::to_string(now_) + " link " + from.to_string() + ">" + to.to_string() +
            (up ? " up" : " down"));
}

void VirtualWorld::post_from(Node& node, std::function<void()> fn) {
  std::lock_guard<std::mutex> lock(inbox_mutex_);
  inbox_.push_back({&node, std::move(fn)});
  posted_.store(true, std::memory_order_release);
}

void VirtualWorld::drain_posts() {
  if (!posted_.load(std::memory_order_acquire)) return;
  std::vector<Posted> batch;
  {
    std::lock_guard<std::mutex> lock(inbox_mutex_);
    batch.swap(inbox_);
    posted_.store(false, std::memory_order_release);
  }
  for (auto& p : batch) {
    --p.node->waiting_;
    if (enqueue(now_, std::move(p.fn)) == 0) ++p.node->posts_refused_;  // the queue is full
  }
}

std::uint64_t VirtualWorld::enqueue(std::int64_t at, std::function<void()> fn) {
  if (queue_.size() >= limits_.max_events) return 0;
  const std::uint64_t seq = next_seq_++;
  queue_.emplace(Key{at, seq}, std::move(fn));
  seq_time_.emplace(seq, at);
  return seq;
}

bool VirtualWorld::dequeue(std::uint64_t seq) {
  auto it = seq_time_.find(seq);
  if (it == seq_time_.end()) return false;
  queue_.erase(Key{it->second, seq});
  seq_time_.erase(it);
  return true;
}

void VirtualWorld::add_trace(const std::string& line) {
  if (limits_.max_trace_lines == 0) return;  // off: nothing is lost, nothing is counted
  if (trace_.size() >= limits_.max_trace_lines) {
    ++dropped_trace_;
    return;
  }
  trace_.push_back(line);
}

std::string VirtualWorld::trace_text() const {
  std::string out;
  for (const auto& l : trace_) {
    out += l;
    out += '\n';
  }
  return out;
}

void VirtualWorld::transmit(Node& from, const SocketAddress& src, const SocketAddress& dst, int ttl,
                            const std::uint8_t* data, std::size_t size) {
  ++counters_.sent;
  // Lines are only formatted while the trace is on and has room.
  const bool tracing = trace_.size() < limits_.max_trace_lines;
  const std::string what =
      tracing ? src.to_string() + ">" + dst.to_string() + " " + std::to_string(size) : "";
  const std::string t = tracing ? std::to_string(now_) : "";
  (void)from;
  auto link = links_.find({src.ip(), dst.ip()});
  auto dst_node = owner_.find(dst.ip());
  if (link == links_.end() || dst_node == owner_.end()) {
    ++counters_.no_route;
    add_trace(t + " drop-noroute " + what);
    return;
  }
  const LinkParams& p = link->second;
  if (!p.up) {
    ++counters_.link_down;
    add_trace(t + " drop-linkdown " + what);
    return;
  }
  // Randomness is drawn in a fixed order (loss, then jitter) so traces are reproducible.
  if (p.loss > 0 && rng_.uniform01() < p.loss) {
    ++counters_.lost;
    add_trace(t + " drop-loss " + what);
    return;
  }
  // Each router on the link decrements the TTL; one that reaches zero is dropped there.
  if (p.hops >= ttl) {
    ++counters_.ttl_expired;
    add_trace(t + " drop-ttl " + what);
    return;
  }
  ttl -= p.hops;
  std::int64_t delay = p.delay_ns;
  if (p.jitter_ns > 0) {
    delay += static_cast<std::int64_t>(rng_.uniform(static_cast<std::uint64_t>(p.jitter_ns) + 1));
  }
  if (tracing) add_trace(t + " send " + what + " arrive=" + std::to_string(now_ + delay));
  Node* to = dst_node->second;
  std::vector<std::uint8_t> bytes(data, data + size);
  const std::uint64_t seq =
      enqueue(now_ + delay, [this, to, src, dst, ttl, bytes = std::move(bytes), what] {
        if (to->deliver(src, dst, ttl, bytes)) {
          ++counters_.delivered;
          if (!what.empty()) add_trace(std::to_string(now_) + " recv " + what);
        } else {
          ++counters_.port_unreachable;
          if (!what.empty()) add_trace(std::to_string(now_) + " drop-unreachable " + what);
        }
      });
  if (seq == 0) add_trace(t + " drop-queuefull " + what);
}

void VirtualWorld::run_next() {
  auto it = queue_.begin();
  now_ = it->first.t;
  auto fn = std::move(it->second);
  seq_time_.erase(it->first.seq);
  queue_.erase(it);
  fn();
}

std::size_t VirtualWorld::run_until(std::int64_t until_ns) {
  std::size_t ran = 0;
  for (drain_posts(); !queue_.empty() && queue_.begin()->first.t <= until_ns; ++ran) {
    run_next();
    drain_posts();
  }
  if (until_ns > now_) now_ = until_ns;
  return ran;
}

std::size_t VirtualWorld::run(std::size_t max_events) {
  std::size_t ran = 0;
  for (drain_posts(); !queue_.empty() && ran < max_events; ++ran) {
    run_next();
    drain_posts();
  }
  return ran;
}

}  // namespace patronus::env
