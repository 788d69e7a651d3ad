// In-process virtual time: a deterministic discrete-event world with several nodes (each an Env)
// joined by a simple link model (delay, jitter, loss, up/down). Events run in (time, sequence)
// order; the same seed gives the same event trace, byte for byte.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "patronus/env/env.hpp"

namespace patronus::env {

struct LinkParams {
  std::int64_t delay_ns = 0;   // one-way propagation delay
  std::int64_t jitter_ns = 0;  // extra delay, uniform in [0, jitter_ns]
  double loss = 0.0;           // probability a datagram is dropped, 0..1
  int hops = 0;                // routers on the link: each decrements the TTL (0: adjacent)
  bool up = true;
};

class VirtualWorld {
 public:
  struct Limits {
    std::size_t max_events = 1u << 20;  // pending events across all nodes
    // The text trace of every network event is opt-in (0 = none): formatting a line per packet
    // dominates long runs, and most users read counters and their own observers instead.
    std::size_t max_trace_lines = 0;
  };
  explicit VirtualWorld(std::uint64_t seed) : VirtualWorld(seed, Limits{}) {}
  VirtualWorld(std::uint64_t seed, Limits limits);
  ~VirtualWorld();
  VirtualWorld(const VirtualWorld&) = delete;
  VirtualWorld& operator=(const VirtualWorld&) = delete;

  // A node owning `addresses`; the returned Env lives as long as the world.
  Env& add_node(const std::string& name, const std::vector<model::IpAddress>& addresses,
                EnvLimits limits = {});
  // Directed link a -> b; set both directions for a symmetric link.
  void set_link(const model::IpAddress& from, const model::IpAddress& to, LinkParams params);
  void set_link_up(const model::IpAddress& from, const model::IpAddress& to, bool up);
  // While set, a send from `local` fails at once ("network is unreachable"), as from an interface
  // that has no address or route yet (a tunnel still coming up). Nothing is transmitted.
  void set_send_failing(const model::IpAddress& local, bool failing);
  bool send_failing(const model::IpAddress& local) const { return send_failing_.count(local) > 0; }

  std::int64_t now_ns() const { return now_; }
  // Wall clock of every node = this epoch + virtual time (default 2026-01-01T00:00:00Z).
  void set_wall_epoch_ns(std::int64_t epoch_ns) { wall_epoch_ns_ = epoch_ns; }
  // Runs events with time <= until_ns, then sets the clock to until_ns. Returns events run.
  std::size_t run_until(std::int64_t until_ns);
  // Runs until no event is pending or `max_events` ran. Returns events run.
  std::size_t run(std::size_t max_events);
  std::size_t pending() const { return queue_.size(); }

  // One line per network event: "<t_ns> <kind> <details>" (with Limits::max_trace_lines > 0).
  const std::vector<std::string>& trace() const { return trace_; }
  std::string trace_text() const;
  void add_trace(const std::string& line);
  std::uint64_t dropped_trace_lines() const { return dropped_trace_; }

  struct Counters {
    std::uint64_t sent = 0, delivered = 0, lost = 0, no_route = 0, link_down = 0,
                  port_unreachable = 0, ttl_expired = 0;
  };
  const Counters& counters() const { return counters_; }

 private:
  class Node;
  friend class Node;
  struct Key {
    std::int64_t t;
    std::uint64_t seq;
    bool operator<(const Key& o) const { return t != o.t ? t < o.t : seq < o.seq; }
  };
  // Returns 0 when the queue is full.
  std::uint64_t enqueue(std::int64_t at, std::function<void()> fn);
  // Posts (from any thread) wait here until the world's thread moves them into the queue, at the
  // current time, before it runs its next event.
  struct Posted {
    Node* node;
    std::function<void()> fn;
  };
  void post_from(Node& node, std::function<void()> fn);
  void drain_posts();
  std::mutex inbox_mutex_;
  std::vector<Posted> inbox_;
  std::atomic<bool> posted_{false};
  bool dequeue(std::uint64_t seq);
  void run_next();  // runs the earliest event; the queue must not be empty
  void transmit(Node& from, const model::SocketAddress& src, const model::SocketAddress& dst,
                int ttl, const std::uint8_t* data, std::size_t size);

  Limits limits_;
  Rng rng_;
  std::int64_t now_ = 0;
  std::int64_t wall_epoch_ns_ = 1767225600LL * 1000000000LL;
  std::uint64_t next_seq_ = 1;
  std::map<Key, std::function<void()>> queue_;
  std::unordered_map<std::uint64_t, std::int64_t> seq_time_;
  std::vector<std::unique_ptr<Node>> nodes_;
  std::map<model::IpAddress, Node*> owner_;
  std::map<std::pair<model::IpAddress, model::IpAddress>, LinkParams> links_;
  std::set<model::IpAddress> send_failing_;
  std::vector<std::string> trace_;
  std::uint64_t dropped_trace_ = 0;
  Counters counters_;
};

}  // namespace patronus::env
