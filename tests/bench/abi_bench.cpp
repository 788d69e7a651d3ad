// What crossing the plugin ABI costs: scoring one metrics window through the host
// (RouterInstance::score -> C function pointer -> SDK thunk -> plugin) against the same formula
// called directly (the baseline, same run). Also the cost of one virtual-time timer
// (schedule + fire on the Env), recorded for later comparison.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdlib>

#include "patronus/core/plugin_host.hpp"
#include "patronus/core/router.hpp"
#include "patronus/env/virtual_world.hpp"

namespace {

using namespace patronus;

patronus_metrics_window window(std::uint64_t i) {
  patronus_metrics_window w{};
  w.struct_size = sizeof w;
  w.latency_ms = static_cast<double>(i % 300);
  w.jitter_ms = static_cast<double>(i % 40);
  w.loss_pct = static_cast<double>(i % 3);
  w.bandwidth_mbps = 500;
  return w;
}

__attribute__((noinline)) double direct_score(const patronus_metrics_window& w) {
  const double p = w.latency_ms / 200 * 40 + w.jitter_ms / 50 * 20 + w.loss_pct * 30 +
                   (1000 - w.bandwidth_mbps) / 1000 * 10;
  return std::clamp(100.0 - p, 0.0, 100.0);
}

void BM_ScoreDirect(benchmark::State& state) {
  std::uint64_t i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(direct_score(window(++i)));
}
BENCHMARK(BM_ScoreDirect);

void BM_ScoreThroughAbi(benchmark::State& state) {
  core::PluginRegistry reg;
  auto lib = reg.load_file(PATRONUS_BENCH_SCORING);
  if (!lib.is_ok()) {
    state.SkipWithError(lib.status().message().c_str());
    return;
  }
  env::VirtualWorld world(1);
  core::RouterInstance router(world.add_node("a", {}), "a");
  if (!router.add_plugin(lib.value(), "s", "").is_ok()) std::abort();
  std::uint64_t i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(router.score("s", window(++i)).value().score);
}
BENCHMARK(BM_ScoreThroughAbi);

void BM_VirtualTimerDirect(benchmark::State& state) {
  env::VirtualWorld world(1);
  env::Env& env = world.add_node("a", {});
  std::uint64_t fired = 0;
  for (auto _ : state) {
    env.schedule(1000, [&] { ++fired; });
    world.run(1);
  }
  benchmark::DoNotOptimize(fired);
}
BENCHMARK(BM_VirtualTimerDirect);

}  // namespace

BENCHMARK_MAIN();
