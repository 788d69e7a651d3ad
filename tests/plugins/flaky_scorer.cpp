// A vendor scorer that breaks mid-run (tests/steering/runtime_test.cpp) and counts what it scored
// through the metric host service (tests/control/control_runtime_test.cpp): it scores
// 100 - RTT/4 until the host clock passes 20 s, then answers NaN for every window (what a scorer
// with a division by zero does). The runtime must keep its classes on a path.
#include <cmath>
#include <limits>

#include "patronus/sdk/plugin.hpp"

namespace {

constexpr std::int64_t kBreaksAtNs = 20'000'000'000;

class Flaky final : public patronus::sdk::ScorerPlugin {
 public:
  using ScorerPlugin::ScorerPlugin;
  patronus_score score(const patronus_metrics_window& w) override {
    // What it has done, through the host's metric service (the control API shows it).
    host().metric("windows_scored", static_cast<double>(++scored_));
    patronus_score s{};
    s.struct_size = sizeof s;
    if (host().now_ns() >= kBreaksAtNs) {
      s.score = std::numeric_limits<double>::quiet_NaN();
      return s;
    }
    s.score = std::max(0.0, 100.0 - w.latency_ms / 4);
    s.state = s.score >= 50 ? PATRONUS_PATH_UP : PATRONUS_PATH_DOWN;
    return s;
  }

 private:
  std::uint64_t scored_ = 0;
};

}  // namespace

PATRONUS_SDK_PLUGIN(Flaky, "test-flaky-scorer", "1.0.0", nullptr, nullptr, 0)
