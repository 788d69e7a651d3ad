// The table of pending timers every Env backend keeps: ids to the backend's handle (an Asio timer,
// a virtual-time queue entry, an ns-3 event) and the function to run, with the bound
// (EnvLimits::max_timers) checked in one place. The backend schedules; the table says what runs.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <unordered_map>
#include <utility>

#include "patronus/env/env.hpp"

namespace patronus::env {

template <typename Handle>
class TimerTable {
 public:
  explicit TimerTable(std::size_t bound) : bound_(bound) {}

  // A new timer: `make(id)` asks the backend to call fire(id) when it is due and returns its
  // handle (nullopt: the backend refused). 0 when the table is full or the backend refused.
  template <typename Make>
  TimerId add(std::function<void()> fn, Make&& make) {
    if (entries_.size() >= bound_) return 0;
    const TimerId id = next_++;
    std::optional<Handle> handle = make(id);
    if (!handle) return 0;
    entries_.emplace(id, Entry{std::move(*handle), std::move(fn)});
    return id;
  }

  // The timer is due: it is forgotten, then its function runs (nothing if it was cancelled).
  void fire(TimerId id) {
    auto it = entries_.find(id);
    if (it == entries_.end()) return;
    auto fn = std::move(it->second.fn);
    entries_.erase(it);
    fn();
  }

  // Forgets a pending timer and hands back its handle for the backend to cancel (nullopt: it
  // fired or was cancelled already).
  std::optional<Handle> cancel(TimerId id) {
    auto it = entries_.find(id);
    if (it == entries_.end()) return std::nullopt;
    Handle h = std::move(it->second.handle);
    entries_.erase(it);
    return h;
  }

  // Every pending handle (a backend cancels them all when it goes).
  template <typename F>
  void for_each_handle(F&& f) {
    for (auto& [id, e] : entries_) f(e.handle);
  }

  std::size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    Handle handle;
    std::function<void()> fn;
  };
  std::size_t bound_;
  TimerId next_ = 1;
  std::unordered_map<TimerId, Entry> entries_;
};

}  // namespace patronus::env
