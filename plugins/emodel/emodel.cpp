// emodel: the ITU-T G.107 E-model as a path scorer, the one a voice class uses. See emodel.proto
// for the formula and README.md for what is simplified.
#include <algorithm>
#include <cmath>

#include "patronus/emodel/v1/emodel.pb.h"
#include "patronus/sdk/plugin.hpp"

namespace {

using patronus::sdk::Error;

// G.107 defaults: No = -61.18 dBm0p (from the default noise sources), SLR 8, RLR 2.
constexpr double kRoe = -1.5 * (-61.18 + 2.0);         // 88.77
constexpr double kRo = 15.0 - 1.5 * (8.0 + (-61.18));  // 94.77

class EModel final : public patronus::sdk::ScorerPlugin {
 public:
  using ScorerPlugin::ScorerPlugin;

  void configure(const std::uint8_t* data, std::size_t size) override {
    patronus::emodel::v1::Config c;
    if (!c.ParseFromArray(data, static_cast<int>(size))) throw Error("config: not a valid message");
    r0_ = c.has_r0() ? c.r0() : 93.2;
    ie_ = c.has_ie() ? c.ie() : 0.0;
    bpl_ = c.has_bpl() ? c.bpl() : 25.1;
    burst_ = c.has_burst_ratio() ? c.burst_ratio() : 1.0;
    a_ = c.has_advantage() ? c.advantage() : 0.0;
    codec_ms_ = c.has_codec_delay_ms() ? c.codec_delay_ms() : 20.0;
    jb_factor_ = c.has_jitter_buffer_factor() ? c.jitter_buffer_factor() : 2.0;
    telr_ = c.has_telr_db() ? c.telr_db() : 65.0;
    wepl_ = c.has_wepl_db() ? c.wepl_db() : 110.0;
    degraded_mos_ = c.has_degraded_below_mos() ? c.degraded_below_mos() : 3.6;
    down_mos_ = c.has_down_below_mos() ? c.down_below_mos() : 2.6;
    auto finite = [](double v) { return std::isfinite(v); };
    if (!finite(r0_) || r0_ <= 0 || r0_ > 120) throw Error("r0: must be in (0, 120]");
    if (!finite(ie_) || ie_ < 0 || ie_ > 95) throw Error("ie: must be 0..95");
    if (!finite(bpl_) || bpl_ <= 0 || bpl_ > 100) throw Error("bpl: must be in (0, 100]");
    if (!finite(burst_) || burst_ < 1 || burst_ > 100) throw Error("burst_ratio: must be 1..100");
    if (!finite(a_) || a_ < 0 || a_ > 20) throw Error("advantage: must be 0..20 (G.107 Table 1)");
    if (!finite(codec_ms_) || codec_ms_ < 0 || codec_ms_ > 1000) {
      throw Error("codec_delay_ms: must be 0..1000");
    }
    if (!finite(jb_factor_) || jb_factor_ < 0 || jb_factor_ > 20) {
      throw Error("jitter_buffer_factor: must be 0..20");
    }
    if (!finite(telr_) || telr_ < 5 || telr_ > 65) throw Error("telr_db: must be 5..65");
    if (!finite(wepl_) || wepl_ < 5 || wepl_ > 110) throw Error("wepl_db: must be 5..110");
    if (!(down_mos_ >= 1 && down_mos_ <= degraded_mos_ && degraded_mos_ <= 4.5)) {
      throw Error("thresholds must satisfy 1 <= down_below_mos <= degraded_below_mos <= 4.5");
    }
  }

  patronus_score score(const patronus_metrics_window& w) override {
    for (double v : {w.latency_ms, w.jitter_ms, w.loss_pct}) {
      if (!std::isfinite(v) || v < 0) throw Error("window values must be finite and >= 0");
    }
    if (w.loss_pct > 100) throw Error("loss_pct must be 0..100");
    const double ta = w.latency_ms / 2.0 + jb_factor_ * w.jitter_ms + codec_ms_;
    const double r = rating(ta, w.loss_pct);
    const double mos = mos_of(r);
    patronus_score s{};
    s.struct_size = sizeof s;
    s.score = std::clamp((mos - 1.0) / 3.5 * 100.0, 0.0, 100.0);
    s.state = mos < down_mos_       ? PATRONUS_PATH_DOWN
              : mos < degraded_mos_ ? PATRONUS_PATH_DEGRADED
                                    : PATRONUS_PATH_UP;
    return s;
  }

 private:
  // G.107 (06/2015) 7.3-7.4 with T = Ta (one-way), Tr = 2T and the default echo parameters.
  double delay_impairment(double t) const {
    const double terv = telr_ - 40.0 * std::log10((1.0 + t / 10.0) / (1.0 + t / 150.0)) +
                        6.0 * std::exp(-0.3 * t * t);
    const double re = 80.0 + 2.5 * (terv - 14.0);
    const double idte =
        ((kRoe - re) / 2.0 + std::sqrt((kRoe - re) * (kRoe - re) / 4.0 + 100.0) - 1.0) *
        (1.0 - std::exp(-t));
    const double tr = 2.0 * t;
    const double rle = 10.5 * (wepl_ + 7.0) * std::pow(tr + 1.0, -0.25);
    const double idle = (kRo - rle) / 2.0 + std::sqrt((kRo - rle) * (kRo - rle) / 4.0 + 169.0);
    double idd = 0.0;
    if (t > 100.0) {
      const double x = std::log10(t / 100.0) / std::log10(2.0);
      idd = 25.0 * (std::pow(1.0 + std::pow(x, 6.0), 1.0 / 6.0) -
                    3.0 * std::pow(1.0 + std::pow(x / 3.0, 6.0), 1.0 / 6.0) + 2.0);
    }
    return idte + idle + idd;
  }

  double rating(double ta_ms, double loss_pct) const {
    const double ie_eff = ie_ + (95.0 - ie_) * loss_pct / (loss_pct / burst_ + bpl_);
    return r0_ - delay_impairment(ta_ms) - ie_eff + a_;
  }

  // G.107 Annex B.
  static double mos_of(double r) {
    if (r <= 0) return 1.0;
    if (r >= 100) return 4.5;
    return 1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6;
  }

  double r0_ = 93.2, ie_ = 0, bpl_ = 25.1, burst_ = 1, a_ = 0, codec_ms_ = 20, jb_factor_ = 2;
  double telr_ = 65, wepl_ = 110, degraded_mos_ = 3.6, down_mos_ = 2.6;
};

}  // namespace

PATRONUS_SDK_PLUGIN(EModel, "emodel", "1.0.0", "patronus.emodel.v1.Config",
                    patronus_embedded_schema, patronus_embedded_schema_size)
