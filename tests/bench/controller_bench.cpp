// Controller compile benchmarks (the controller issue's targets), each with its baseline in the
// same run:
//  - BM_AddSpoke/1000: a spoke joins a 1000-site hub-spoke fleet (two hubs, a spoke summary): the
//    compile that says which sites to push to. Baseline BM_AddSpokeRecompileAll/1000: the same
//    change recompiling every site (what a controller without a dependency index does). The
//    counter `compiled` shows the work per change.
//  - BM_AddSiteFullMesh/200: a site joins a 200-site full mesh (every site's config changes).
//  - BM_FullCompile/1000: every site of the 1000-site hub-spoke fleet compiled from nothing
//    (target <= 1 s on the 2-core CI machine).
#include <benchmark/benchmark.h>

#include <set>
#include <string>
#include <vector>

#include "../controller/fleet_fixtures.hpp"
#include "patronus/controller/compiler.hpp"
#include "patronus/mesh/keys.hpp"

namespace {

using patronus::controller::Compiler;
using patronus::controller::FleetSettings;
using patronus::controller::FleetSite;
namespace mesh = patronus::mesh;
namespace model = patronus::model;

FleetSite site_of(int i) {
  return patronus::controller::test::fleet_site(i);
}

FleetSettings settings(bool hubs) {
  FleetSettings s;
  if (hubs) {
    s.topology.kind = mesh::TopologyKind::kHubSpoke;
    s.topology.hubs = {"s0", "s1"};
    s.topology.spoke_summary = {model::IpPrefix::parse("172.16.0.0/12").value()};
  }
  return s;
}

std::vector<FleetSite> fleet(int n) {
  std::vector<FleetSite> v;
  for (int i = 0; i < n; ++i) v.push_back(site_of(i));
  return v;
}

// One site joins (timed) and leaves again (not timed), `everyone` recompiling all sites.
void add_site(benchmark::State& state, bool hubs, bool everyone) {
  const int n = static_cast<int>(state.range(0));
  std::vector<FleetSite> sites = fleet(n);
  const FleetSettings s = settings(hubs);
  Compiler c;
  if (!c.update(sites, s, {}).is_ok()) return state.SkipWithError("initial compile failed");
  std::set<std::string> all;
  for (const auto& x : sites) all.insert(x.name);
  const FleetSite extra = site_of(n);
  all.insert(extra.name);
  std::size_t compiled = 0, changed = 0;
  double graph_ms = 0, compile_ms = 0;
  for (auto _ : state) {
    sites.push_back(extra);
    auto r = c.update(sites, s, everyone ? all : std::set<std::string>{extra.name});
    if (!r.is_ok()) return state.SkipWithError(r.status().message().c_str());
    compiled = c.stats().compiled;
    changed = r.value().size();
    graph_ms = static_cast<double>(c.stats().graph_ns) / 1e6;
    compile_ms = static_cast<double>(c.stats().compile_ns) / 1e6;
    state.PauseTiming();
    sites.pop_back();
    (void)c.update(sites, s, {extra.name});
    state.ResumeTiming();
  }
  state.counters["compiled"] = static_cast<double>(compiled);
  state.counters["changed"] = static_cast<double>(changed);
  state.counters["graph_ms"] = graph_ms;      // the mesh, overlay and tunnel plan
  state.counters["compile_ms"] = compile_ms;  // the affected sites' configs
}

void BM_AddSpoke(benchmark::State& state) {
  add_site(state, true, false);
}
void BM_AddSpokeRecompileAll(benchmark::State& state) {
  add_site(state, true, true);
}
void BM_AddSiteFullMesh(benchmark::State& state) {
  add_site(state, false, false);
}

void BM_FullCompile(benchmark::State& state) {
  const std::vector<FleetSite> sites = fleet(static_cast<int>(state.range(0)));
  const FleetSettings s = settings(true);
  for (auto _ : state) {
    Compiler c;
    auto r = c.update(sites, s, {});
    if (!r.is_ok()) return state.SkipWithError(r.status().message().c_str());
    benchmark::DoNotOptimize(r.value().size());
  }
}

}  // namespace

BENCHMARK(BM_AddSpoke)->Arg(1000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_AddSpokeRecompileAll)->Arg(1000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_AddSiteFullMesh)->Arg(200)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_FullCompile)->Arg(1000)->Unit(benchmark::kMillisecond);
BENCHMARK_MAIN();
