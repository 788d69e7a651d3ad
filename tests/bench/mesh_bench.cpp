// Mesh benchmarks (issue 3 targets), each with its baseline in the same run:
//  - BM_BuildAndPlan/1000: full mesh of 1000 single-endpoint sites (499,500 paths): Boost graph
//    + overlay addresses + tunnel plan (target <= 50 ms). Baseline BM_BaselineAdjacency: the
//    least any graph representation must do, the same pairs into vector<vector<uint32_t>>.
//  - BM_RelayRoutesFull/1000: all-pairs best route, direct or one relay (target <= 1 s).
//  - BM_RelayIncrementalVsFull/1000: one path score change applied incrementally against a full
//    recompute of the same table, timed in the same loop (target >= 100x), with a check that both
//    give the same table (counter same_answer = 1).
//  - BM_Memory/1000: live heap bytes (counting operator new) per site and per path (targets
//    <= 1 KB per site, <= 256 B per path).
#include <benchmark/benchmark.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <new>
#include <random>

#include "../mesh/mesh_fixtures.hpp"
#include "patronus/mesh/graph.hpp"
#include "patronus/mesh/keys.hpp"
#include "patronus/mesh/plan.hpp"
#include "patronus/mesh/routes.hpp"

// ---- counting allocator: every global new/delete goes through here ----
namespace {
std::atomic<std::int64_t> g_live_bytes{0};
constexpr std::size_t kHeader = alignof(std::max_align_t);

void* counted_alloc(std::size_t n) {
  void* p = std::malloc(n + kHeader);
  if (!p) throw std::bad_alloc();
  *static_cast<std::size_t*>(p) = n;
  g_live_bytes.fetch_add(static_cast<std::int64_t>(n), std::memory_order_relaxed);
  return static_cast<char*>(p) + kHeader;
}
void counted_free(void* p) noexcept {
  if (!p) return;
  char* base = static_cast<char*>(p) - kHeader;
  g_live_bytes.fetch_sub(static_cast<std::int64_t>(*reinterpret_cast<std::size_t*>(base)),
                         std::memory_order_relaxed);
  std::free(base);
}
}  // namespace

void* operator new(std::size_t n) {
  return counted_alloc(n);
}
void* operator new[](std::size_t n) {
  return counted_alloc(n);
}
void operator delete(void* p) noexcept {
  counted_free(p);
}
void operator delete[](void* p) noexcept {
  counted_free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  counted_free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
  counted_free(p);
}

namespace {

using namespace patronus;
using namespace patronus::mesh;

// Sites with public keys already assigned (key generation is per endpoint, once, not per plan).
SitesFile sites_with_keys(std::size_t n) {
  SitesFile f = test::make_sites(n);
  const std::string key = key_to_base64(generate_keypair().value().public_key);
  for (auto& s : f.sites) s.public_keys[0] = key;
  return f;
}

MeshGraph build(SitesFile f, TopologyKind kind = TopologyKind::kFullMesh) {
  TopologyOptions o;
  o.kind = kind;
  auto m = MeshGraph::build(std::move(f), o);
  if (!m.is_ok()) std::abort();
  return std::move(m).value();
}

void BM_BaselineAdjacency(benchmark::State& state) {
  const auto n = static_cast<std::uint32_t>(state.range(0));
  for (auto _ : state) {
    std::vector<std::vector<std::uint32_t>> adj(n);
    for (std::uint32_t a = 0; a < n; ++a) {
      for (std::uint32_t b = a + 1; b < n; ++b) {
        adj[a].push_back(b);
        adj[b].push_back(a);
      }
    }
    benchmark::DoNotOptimize(adj.data());
  }
  state.counters["paths"] = double(n) * (n - 1) / 2;
}
BENCHMARK(BM_BaselineAdjacency)->Arg(1000)->Unit(benchmark::kMillisecond);

void BM_BuildAndPlan(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const SitesFile sites = sites_with_keys(n);
  std::size_t paths = 0;
  for (auto _ : state) {
    state.PauseTiming();
    SitesFile copy = sites;
    state.ResumeTiming();
    MeshGraph m = build(std::move(copy));
    auto overlay = assign_overlay(m, {});
    auto plan = make_plan(m, std::move(overlay).value());
    if (!plan.is_ok()) std::abort();
    paths = m.num_paths();
    benchmark::DoNotOptimize(plan.value().sites.data());
    state.PauseTiming();  // destruction is not part of building
    { auto drop = std::move(m); }
    state.ResumeTiming();
  }
  state.counters["paths"] = double(paths);
}
BENCHMARK(BM_BuildAndPlan)->Arg(1000)->Unit(benchmark::kMillisecond);

void randomize_scores(MeshGraph& m, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  for (std::uint32_t id = 0; id < m.num_paths(); ++id) {
    m.set_path_score(id, 50 + static_cast<double>(rng() % 51));
    if (rng() % 50 == 0) m.set_path_up(id, false);
  }
}

void BM_RelayRoutesFull(benchmark::State& state) {
  MeshGraph m = build(sites_with_keys(static_cast<std::size_t>(state.range(0))));
  randomize_scores(m, 1);
  RelayRoutes t(m);
  for (auto _ : state) {
    t.recompute_all(m);
    benchmark::DoNotOptimize(t.best(0, 1));
  }
  const double n = double(state.range(0));
  state.counters["candidates"] = n * (n - 1) / 2 * n;
}
BENCHMARK(BM_RelayRoutesFull)->Arg(1000)->Unit(benchmark::kMillisecond);

void BM_RelayIncrementalVsFull(benchmark::State& state) {
  MeshGraph m = build(sites_with_keys(static_cast<std::size_t>(state.range(0))));
  randomize_scores(m, 2);
  RelayRoutes inc(m);
  RelayRoutes full(m);
  std::mt19937_64 rng(3);
  double inc_ns = 0, full_ns = 0;
  std::int64_t changes = 0;
  bool same = true;
  using clock = std::chrono::steady_clock;
  for (auto _ : state) {
    const auto id = static_cast<std::uint32_t>(rng() % m.num_paths());
    const auto r = rng() % 10;
    if (r == 0) {
      m.set_path_up(id, !m.path(id).up);
    } else {
      m.set_path_score(id, static_cast<double>(rng() % 101));
    }
    const auto t0 = clock::now();
    inc.path_changed(m, id);
    const auto t1 = clock::now();
    full.recompute_all(m);
    const auto t2 = clock::now();
    inc_ns += std::chrono::duration<double, std::nano>(t1 - t0).count();
    full_ns += std::chrono::duration<double, std::nano>(t2 - t1).count();
    same = same && inc.same_as(full);
    ++changes;
  }
  state.counters["incremental_us"] = inc_ns / double(changes) / 1e3;
  state.counters["full_ms"] = full_ns / double(changes) / 1e6;
  state.counters["speedup"] = full_ns / inc_ns;
  state.counters["same_answer"] = same ? 1 : 0;
  if (!same) state.SkipWithError("incremental table differs from a full recompute");
}
BENCHMARK(BM_RelayIncrementalVsFull)->Arg(1000)->Unit(benchmark::kMillisecond)->Iterations(20);

// Live bytes of the mesh model (graph with bundled sites and paths, overlay addresses, tunnel
// plan) for n sites: with one path only (the per-site part) and as a full mesh (the rest is per
// path). The one-relay route table is reported separately: it is n x n by nature.
void BM_Memory(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  auto measure = [&](bool full) {
    SitesFile f = sites_with_keys(n);
    if (!full) f.links.push_back({"s0", "", "s1", ""});
    const std::int64_t before = g_live_bytes.load();
    MeshGraph m = build(std::move(f), full ? TopologyKind::kFullMesh : TopologyKind::kExplicit);
    auto plan = make_plan(m, assign_overlay(m, {}).value());
    if (!plan.is_ok()) std::abort();
    const std::int64_t after = g_live_bytes.load();
    return std::make_pair(after - before, m.num_paths());
  };
  double per_site = 0, per_path = 0, table_per_pair = 0;
  for (auto _ : state) {
    const auto [sites_bytes, one] = measure(false);
    const auto [mesh_bytes, paths] = measure(true);
    per_site = double(sites_bytes) / double(n);
    per_path = double(mesh_bytes - sites_bytes) / double(paths - one);
    MeshGraph m = build(sites_with_keys(n));
    const std::int64_t before = g_live_bytes.load();
    RelayRoutes t(m);
    table_per_pair = double(g_live_bytes.load() - before) / (double(n) * double(n - 1) / 2);
  }
  state.counters["bytes_per_site"] = per_site;
  state.counters["bytes_per_path"] = per_path;
  state.counters["route_table_bytes_per_site_pair"] = table_per_pair;
}
BENCHMARK(BM_Memory)->Arg(1000)->Iterations(1)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
