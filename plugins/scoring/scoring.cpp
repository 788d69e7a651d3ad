// scoring: the default path scorer (the published Patronus formula, every constant configurable).
#include <algorithm>
#include <cmath>

#include "patronus/scoring/v1/scoring.pb.h"
#include "patronus/sdk/plugin.hpp"

namespace {

using patronus::sdk::Error;

class DefaultScorer final : public patronus::sdk::ScorerPlugin {
 public:
  using ScorerPlugin::ScorerPlugin;

  void configure(const std::uint8_t* data, std::size_t size) override {
    patronus::scoring::v1::Config c;
    if (!c.ParseFromArray(data, static_cast<int>(size))) throw Error("config: not a valid message");
    latency_weight_ = c.has_latency_weight() ? c.latency_weight() : 40;
    latency_ref_ = c.has_latency_ref_ms() ? c.latency_ref_ms() : 200;
    jitter_weight_ = c.has_jitter_weight() ? c.jitter_weight() : 20;
    jitter_ref_ = c.has_jitter_ref_ms() ? c.jitter_ref_ms() : 50;
    loss_weight_ = c.has_loss_weight() ? c.loss_weight() : 30;
    bw_weight_ = c.has_bandwidth_weight() ? c.bandwidth_weight() : 10;
    bw_ref_ = c.has_bandwidth_ref_mbps() ? c.bandwidth_ref_mbps() : 1000;
    degraded_below_ = c.has_degraded_below() ? c.degraded_below() : 70;
    down_below_ = c.has_down_below() ? c.down_below() : 30;
    for (double w : {latency_weight_, jitter_weight_, loss_weight_, bw_weight_}) {
      if (!(w >= 0) || !std::isfinite(w)) throw Error("weights must be finite and >= 0");
    }
    if (!(latency_ref_ > 0) || !(jitter_ref_ > 0) || !(bw_ref_ > 0)) {
      throw Error("latency_ref_ms, jitter_ref_ms and bandwidth_ref_mbps must be > 0");
    }
    if (!(down_below_ >= 0 && down_below_ <= degraded_below_ && degraded_below_ <= 100)) {
      throw Error("thresholds must satisfy 0 <= down_below <= degraded_below <= 100");
    }
  }

  patronus_score score(const patronus_metrics_window& w) override {
    for (double v : {w.latency_ms, w.jitter_ms, w.loss_pct, w.bandwidth_mbps}) {
      if (!std::isfinite(v) || v < 0) throw Error("window values must be finite and >= 0");
    }
    if (w.loss_pct > 100) throw Error("loss_pct must be 0..100");
    // Unknown capacity (ABI 1.1 windows say so) costs nothing: the score ranks paths by what was
    // measured, and an unconfigured capacity is not a measurement.
    const bool bw_unknown = (w.flags & PATRONUS_WINDOW_BANDWIDTH_UNKNOWN) != 0;
    const double bw_term = bw_unknown ? 0.0 : (bw_ref_ - w.bandwidth_mbps) / bw_ref_ * bw_weight_;
    const double penalty = w.latency_ms / latency_ref_ * latency_weight_ +
                           w.jitter_ms / jitter_ref_ * jitter_weight_ + w.loss_pct * loss_weight_ +
                           bw_term;
    patronus_score s{};
    s.struct_size = sizeof s;
    s.score = std::clamp(100.0 - penalty, 0.0, 100.0);
    s.state = s.score < down_below_       ? PATRONUS_PATH_DOWN
              : s.score < degraded_below_ ? PATRONUS_PATH_DEGRADED
                                          : PATRONUS_PATH_UP;
    return s;
  }

 private:
  double latency_weight_ = 40, latency_ref_ = 200, jitter_weight_ = 20, jitter_ref_ = 50;
  double loss_weight_ = 30, bw_weight_ = 10, bw_ref_ = 1000;
  double degraded_below_ = 70, down_below_ = 30;
};

}  // namespace

PATRONUS_SDK_PLUGIN(DefaultScorer, "scoring", "1.0.0", "patronus.scoring.v1.Config",
                    patronus_embedded_schema, patronus_embedded_schema_size)
