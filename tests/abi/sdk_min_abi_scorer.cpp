// A scorer written with the current SDK that uses nothing newer than ABI 1.0. Built twice
// (tests/plugins/CMakeLists.txt): once declaring MIN_ABI_MINOR 0, once with the default (the
// header's minor). tests/abi/old_host_1_0.c, a host built against the frozen 1.0 header, loads the
// first and refuses the second.
#include "patronus/sdk/plugin.hpp"

namespace {

class MinAbiScorer final : public patronus::sdk::ScorerPlugin {
 public:
  using ScorerPlugin::ScorerPlugin;
  patronus_score score(const patronus_metrics_window& w) override {
    // `flags` is a 1.1 field: from a 1.0 host's shorter window the SDK hands over zero.
    if (w.flags != 0) throw patronus::sdk::Error("flags should read as zero from a 1.0 host");
    host().info("scored");
    patronus_score s{};
    s.struct_size = sizeof s;
    s.score = 100 - w.latency_ms - w.loss_pct;
    s.state = PATRONUS_PATH_UP;
    return s;
  }
};

}  // namespace

PATRONUS_SDK_PLUGIN(MinAbiScorer, PLUGIN_NAME, "1.0.0", nullptr, nullptr, 0)
