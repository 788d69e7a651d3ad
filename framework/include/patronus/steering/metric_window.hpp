// A path's sliding measurement window: the last N probe outcomes, none older than T. Mean RTT,
// jitter (mean absolute difference of consecutive round trips) and loss are kept incrementally, so
// adding a sample and reading the window are O(1) amortised.
#pragma once

#include <cstdint>
#include <vector>

namespace patronus::steering {

struct WindowLimits {
  std::uint32_t max_samples = 200;           // count bound
  std::int64_t max_age_ns = 10'000'000'000;  // time bound (against the newest probe)
  // Below this many probes a window is not a measurement (two probes, one lost, is not "50 %
  // loss"): the path is not scored, and it is probed at the active rate until it has them. The
  // time bound never takes a window below it: a path probed at the idle rate (about min_samples
  // probes per max_age) stays measured instead of flickering in and out of "not measured"; a path
  // that stops answering is judged by its liveness, not by an emptied window.
  std::uint32_t min_samples = 10;
  // A verdict on measurements (score, loss, latency, jitter) that would take a path from a class
  // is confirmed on at least this many probes: a path probed at the idle rate (10 probes in its
  // window, where one lost probe reads as 10 % loss) is probed at the active rate until it has
  // them, or for max_age if the window cannot hold them, and keeps the class meanwhile. A full
  // window, so that the probes that raised the doubt weigh little in the verdict. Liveness is
  // never delayed by this.
  std::uint32_t confirm_samples = 200;
};

struct WindowStats {
  std::uint32_t samples = 0;  // lost ones included
  std::uint32_t lost = 0;
  double latency_ms = 0;  // mean RTT of the received probes
  double jitter_ms = 0;   // mean |RTT(i) - RTT(i-1)| over consecutive received probes
  double loss_pct = 0;
  std::int64_t span_ns = 0;  // newest minus oldest probe's send time
};

class MetricWindow {
 public:
  explicit MetricWindow(WindowLimits limits = {});
  // A probe sent at sent_ns: rtt_ns >= 0 when answered, lost otherwise. Samples are expected in
  // send order; an out-of-order one is placed as if it were the newest (its RTT still counts).
  void add(std::int64_t sent_ns, std::int64_t rtt_ns, bool lost);
  // Drops probes older than now_ns - max_age, keeping at least min_samples.
  void expire(std::int64_t now_ns);
  WindowStats stats() const;
  std::uint32_t size() const { return count_; }
  void clear();
  const WindowLimits& limits() const { return limits_; }

 private:
  struct Entry {
    std::int64_t sent_ns;
    std::int64_t rtt_ns;   // -1: lost
    std::int64_t diff_ns;  // |rtt - previous received rtt| in the window, -1: none
  };
  void pop_front();
  Entry& at(std::uint32_t i) { return ring_[(head_ + i) % ring_.size()]; }
  const Entry& at(std::uint32_t i) const { return ring_[(head_ + i) % ring_.size()]; }

  WindowLimits limits_;
  std::vector<Entry> ring_;
  std::uint32_t head_ = 0, count_ = 0, lost_ = 0, received_ = 0, diffs_ = 0;
  std::int64_t sum_rtt_ = 0, sum_diff_ = 0;
  std::int64_t last_rtt_ = -1;  // newest received RTT in the window
};

}  // namespace patronus::steering
