// The Env seam: the only way framework and plugin code touches time, timers, the network and
// randomness. Three backends: AsioEnv (real), VirtualWorld nodes (in-process virtual time) and
// the ns-3 backend in sim/. See docs/adr/0002-env-seam.md.
//
// C++17-clean: included by the ns-3 backend, which is compiled as C++17.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "patronus/model/address.hpp"
#include "patronus/util/status.hpp"

namespace patronus::env {

using TimerId = std::uint64_t;     // 0 is never valid
using EndpointId = std::uint64_t;  // 0 is never valid
using DatagramHandler =
    std::function<void(const model::SocketAddress& from, const std::uint8_t* data, std::size_t)>;
// How an endpoint sends: the TTL (IPv4) or hop limit (IPv6) of every datagram, 1..255 (0: the
// backend's default, 64).
struct UdpOptions {
  int send_ttl = 0;
};
// What the backend knows of a received datagram; what it cannot know is absent, never invented.
struct DatagramInfo {
  int ttl = -1;  // the TTL / hop limit it arrived with (-1: unknown)
  // The interface it arrived on (0: unknown): the kernel's ifindex on the real network, the node's
  // IPv4 interface index on ns-3's stack; the virtual world and the scenario WAN have none.
  std::uint32_t ifindex = 0;
  std::optional<model::SocketAddress> local;  // the address and port it was sent to
};
using DatagramInfoHandler =
    std::function<void(const model::SocketAddress& from, const DatagramInfo& info,
                       const std::uint8_t* data, std::size_t)>;
using WatchId = std::uint64_t;  // 0 is never valid
// Readiness of a watched descriptor: kFdReadable | kFdWritable.
inline constexpr std::uint32_t kFdReadable = 1, kFdWritable = 2;
using FdHandler = std::function<void(std::uint32_t ready)>;

// Bounds every backend enforces (per Env instance).
struct EnvLimits {
  std::size_t max_timers = 65536;
  std::size_t max_endpoints = 256;
  std::size_t max_datagram = 65507;  // largest UDP payload over IPv4
  std::size_t max_watches = 64;      // watched file descriptors
  std::size_t max_posted = 65536;    // posts waiting to run
};

class Env {
 public:
  virtual ~Env() = default;

  // Monotonic nanoseconds. Real: steady clock. Simulated: simulation time.
  virtual std::int64_t now_ns() const = 0;
  // Wall clock, nanoseconds since the Unix epoch, for timestamps people read (decision logs,
  // stored rows). Real: the system clock. Simulated: a fixed epoch plus simulation time, so logs
  // are deterministic.
  virtual std::int64_t wall_ns() const = 0;

  // One-shot timer. Returns 0 when EnvLimits::max_timers live timers exist.
  virtual TimerId schedule(std::int64_t delay_ns, std::function<void()> fn) = 0;
  // True if the timer was pending and is now cancelled.
  virtual bool cancel(TimerId id) = 0;
  // Runs fn on this Env's thread soon: after what runs now, in the order posted, at the current
  // time (simulated) or as soon as the loop gets to it (real). Not a timer: it does not count
  // against max_timers. The one call that is safe from another thread, on the real and the
  // virtual-time backends; ns-3 is a discrete-event simulation with no other thread, and there
  // post is for the simulation's own thread only (a post from another thread is refused and
  // counted, never run at an undefined time). Each backend bounds the posts waiting to run
  // (EnvLimits::max_posted); a post past the bound is refused and counted, never silently lost.
  virtual void post(std::function<void()> fn) = 0;
  // Posts refused so far (the bound, or the wrong thread on ns-3).
  virtual std::uint64_t posts_refused() const { return 0; }

  // UDP endpoints. `local` port 0 binds any port; *bound receives the bound address. Every
  // backend sends with options.send_ttl and reports each datagram's TTL and destination (the
  // real one also its interface). A send_ttl outside 0..255 is INVALID_ARGUMENT.
  virtual Status open_udp(const model::SocketAddress& local, const UdpOptions& options,
                          DatagramInfoHandler handler, EndpointId* id,
                          model::SocketAddress* bound) = 0;
  // The same with default options, for handlers that need only the sender.
  Status open_udp(const model::SocketAddress& local, DatagramHandler handler, EndpointId* id,
                  model::SocketAddress* bound) {
    return open_udp(
        local, UdpOptions{},
        [h = std::move(handler)](const model::SocketAddress& from, const DatagramInfo&,
                                 const std::uint8_t* data, std::size_t size) {
          if (h) h(from, data, size);
        },
        id, bound);
  }
  virtual Status send_udp(EndpointId id, const model::SocketAddress& to, const std::uint8_t* data,
                          std::size_t size) = 0;
  virtual Status close_udp(EndpointId id) = 0;

  // Readiness of a file descriptor the caller owns and keeps open while watched (a unix or
  // netlink socket): `fn` runs on this Env's thread whenever it is ready for `events`
  // (level-triggered: again and again while it stays ready, until unwatched; unwatching from
  // inside `fn` is allowed). Simulated Envs have no real descriptors and refuse with
  // UNIMPLEMENTED, naming themselves: what needs this needs the real network.
  virtual Status watch_fd(int fd, std::uint32_t events, FdHandler fn, WatchId* id) {
    (void)fd, (void)events, (void)fn, (void)id;
    return Status(Code::kUnimplemented,
                  name() + ": no real file descriptors to watch (this needs the real network)");
  }
  virtual Status unwatch_fd(WatchId id) {
    return not_found(name() + ": watch " + std::to_string(id));
  }

  // Seeded, deterministic in simulation.
  virtual std::uint64_t random_u64() = 0;

  // A label for logs and traces ("real", "virtual:hq", "ns3:hq").
  virtual std::string name() const = 0;
};

// SplitMix64-seeded xoshiro256**: identical sequence on every platform for a given seed.
// Checks UdpOptions (every backend's open_udp does).
inline Status check_udp_options(const UdpOptions& o) {
  if (o.send_ttl < 0 || o.send_ttl > 255) {
    return Status(Code::kInvalidArgument,
                  "send_ttl " + std::to_string(o.send_ttl) + ": must be 0 (default) or 1..255");
  }
  return Status::ok();
}
inline constexpr int kDefaultTtl = 64;

class Rng {
 public:
  explicit Rng(std::uint64_t seed);
  std::uint64_t next();
  // Uniform in [0, bound) without modulo bias; bound 0 returns 0.
  std::uint64_t uniform(std::uint64_t bound);
  // Uniform double in [0, 1).
  double uniform01();

 private:
  std::uint64_t s_[4];
};

}  // namespace patronus::env
