#include "patronus/steering/metric_window.hpp"

#include <algorithm>

namespace patronus::steering {

MetricWindow::MetricWindow(WindowLimits limits) : limits_(limits) {
  limits_.max_samples = std::max<std::uint32_t>(1, limits_.max_samples);
  ring_.resize(limits_.max_samples);
}

void MetricWindow::clear() {
  head_ = count_ = lost_ = received_ = diffs_ = 0;
  sum_rtt_ = sum_diff_ = 0;
  last_rtt_ = -1;
}

void MetricWindow::pop_front() {
  const Entry front = at(0);
  head_ = (head_ + 1) % static_cast<std::uint32_t>(ring_.size());
  --count_;
  if (front.rtt_ns < 0) {
    --lost_;
    return;
  }
  --received_;
  sum_rtt_ -= front.rtt_ns;
  if (front.diff_ns >= 0) {
    sum_diff_ -= front.diff_ns;
    --diffs_;
  }
  // The next received probe's difference was taken against the one leaving: it has none now.
  for (std::uint32_t i = 0; i < count_; ++i) {
    Entry& e = at(i);
    if (e.rtt_ns < 0) continue;
    if (e.diff_ns >= 0) {
      sum_diff_ -= e.diff_ns;
      --diffs_;
      e.diff_ns = -1;
    }
    break;
  }
  if (received_ == 0) last_rtt_ = -1;
}

void MetricWindow::add(std::int64_t sent_ns, std::int64_t rtt_ns, bool lost) {
  if (count_ == ring_.size()) pop_front();
  Entry e{sent_ns, lost ? -1 : std::max<std::int64_t>(0, rtt_ns), -1};
  if (!lost) {
    if (last_rtt_ >= 0) {
      e.diff_ns = e.rtt_ns > last_rtt_ ? e.rtt_ns - last_rtt_ : last_rtt_ - e.rtt_ns;
      sum_diff_ += e.diff_ns;
      ++diffs_;
    }
    last_rtt_ = e.rtt_ns;
    sum_rtt_ += e.rtt_ns;
    ++received_;
  } else {
    ++lost_;
  }
  ring_[(head_ + count_) % ring_.size()] = e;
  ++count_;
  expire(sent_ns);
}

void MetricWindow::expire(std::int64_t now_ns) {
  while (count_ > limits_.min_samples && now_ns - at(0).sent_ns > limits_.max_age_ns) pop_front();
}

WindowStats MetricWindow::stats() const {
  WindowStats s;
  s.samples = count_;
  s.lost = lost_;
  if (count_ == 0) return s;
  s.loss_pct = 100.0 * lost_ / count_;
  s.latency_ms = received_ ? static_cast<double>(sum_rtt_) / received_ / 1e6 : 0.0;
  s.jitter_ms = diffs_ ? static_cast<double>(sum_diff_) / diffs_ / 1e6 : 0.0;
  s.span_ns = at(count_ - 1).sent_ns - at(0).sent_ns;
  if (s.span_ns < 0) s.span_ns = 0;
  return s;
}

}  // namespace patronus::steering
