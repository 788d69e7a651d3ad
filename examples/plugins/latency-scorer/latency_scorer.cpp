// acme-latency: a scorer for interactive traffic. Score = 100 x (1 - RTT / budget) minus
// loss_weight points per percent of loss, clamped to 0..100.
//
// What the host hands a scorer (units of patronus_metrics_window): latency_ms and jitter_ms in
// milliseconds over the received probes of the window, loss_pct in percent 0-100, bandwidth_mbps
// in Mbit/s (with PATRONUS_WINDOW_BANDWIDTH_UNKNOWN when no capacity is configured). The site
// runtime only asks when the window holds at least its minimum of samples and one was received,
// so samples == 0 means the caller is not the runtime (a test, `plugins try`): we refuse it.
#include <algorithm>
#include <cmath>

#include "acme/latency/v1/config.pb.h"
#include "patronus/sdk/plugin.hpp"

namespace {

using patronus::sdk::Error;

class LatencyScorer final : public patronus::sdk::ScorerPlugin {
 public:
  using ScorerPlugin::ScorerPlugin;

  void configure(const std::uint8_t* data, std::size_t size) override {
    acme::latency::v1::Config c;
    if (!c.ParseFromArray(data, static_cast<int>(size))) throw Error("config: not a valid message");
    budget_ms_ = c.has_budget_ms() ? c.budget_ms() : 150;
    loss_weight_ = c.has_loss_weight() ? c.loss_weight() : 10;
    degraded_below_ = c.has_degraded_below() ? c.degraded_below() : 60;
    if (!(budget_ms_ > 0) || !std::isfinite(budget_ms_)) throw Error("budget_ms must be > 0");
    if (!(loss_weight_ >= 0) || !std::isfinite(loss_weight_)) {
      throw Error("loss_weight must be >= 0");
    }
    if (!(degraded_below_ >= 0 && degraded_below_ <= 100)) {
      throw Error("degraded_below must be 0..100");
    }
  }

  patronus_score score(const patronus_metrics_window& w) override {
    if (w.samples == 0) throw Error("an empty window has nothing to score");
    if (!(w.latency_ms >= 0) || !(w.loss_pct >= 0 && w.loss_pct <= 100)) {
      throw Error("latency_ms must be >= 0 and loss_pct 0..100");
    }
    patronus_score s{};
    s.struct_size = sizeof s;
    s.score = std::clamp(100.0 * (1.0 - w.latency_ms / budget_ms_) - loss_weight_ * w.loss_pct,
                         0.0, 100.0);
    s.state = s.score < degraded_below_ / 2 ? PATRONUS_PATH_DOWN
              : s.score < degraded_below_   ? PATRONUS_PATH_DEGRADED
                                            : PATRONUS_PATH_UP;
    return s;
  }

 private:
  double budget_ms_ = 150, loss_weight_ = 10, degraded_below_ = 60;
};

}  // namespace

PATRONUS_SDK_PLUGIN(LatencyScorer, "acme-latency", "1.0.0", "acme.latency.v1.Config",
                    patronus_embedded_schema, patronus_embedded_schema_size)
