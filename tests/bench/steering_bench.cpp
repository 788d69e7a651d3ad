// The path engine's hot paths, each against a baseline measured in the same run:
//  - a path decision (one window scored through the scorer plugin across the C ABI + selection
//    among the destination's candidates), against the naive design the descended project used:
//    load every candidate's metrics from the SQLite store and rescore them all, per decision;
//  - a cached flow -> path lookup in the flow table at 1M flows, against std::unordered_map over
//    the same keys and the same hash; the table's memory per flow is reported as a counter;
//  - probe packets: encode + authenticate (BLAKE2b-128 keyed) + parse + verify.
#include <benchmark/benchmark.h>

#include <filesystem>
#include <random>
#include <unordered_map>

#include "patronus/core/plugin_host.hpp"
#include "patronus/core/router.hpp"
#include "patronus/env/virtual_world.hpp"
#include "patronus/steering/classes.hpp"
#include "patronus/steering/flow_table.hpp"
#include "patronus/steering/selection.hpp"
#include "patronus/store/store.hpp"
#include "probe_packet.hpp"

namespace {

using namespace patronus;
constexpr int kCandidates = 4;

struct Scorer {
  core::PluginRegistry reg;
  env::VirtualWorld world{1};
  std::unique_ptr<core::RouterInstance> router;
  Scorer() {
    auto lib = reg.load_file(PATRONUS_BENCH_SCORING);
    if (!lib.is_ok()) std::abort();
    router = std::make_unique<core::RouterInstance>(world.add_node("b", {}), "b");
    if (!router->add_plugin(lib.value(), "scoring", "").is_ok()) std::abort();
  }
};

patronus_metrics_window window(std::uint64_t i) {
  patronus_metrics_window w{};
  w.struct_size = sizeof w;
  w.samples = 200;
  w.latency_ms = 20.0 + static_cast<double>(i % 50);
  w.jitter_ms = static_cast<double>(i % 7);
  w.loss_pct = static_cast<double>(i % 3) * 0.5;
  w.flags = PATRONUS_WINDOW_BANDWIDTH_UNKNOWN;
  return w;
}

// What the runtime does when a sample arrives: rescore that path, select among the candidates.
void BM_PathDecision(benchmark::State& state) {
  Scorer s;
  const steering::ClassSpec cls = steering::default_classes("").classes[0];
  std::vector<steering::CandidateInput> cands(kCandidates);
  for (int i = 0; i < kCandidates; ++i) {
    cands[i].path_id = static_cast<std::uint64_t>(i + 1);
    cands[i].live = cands[i].usable = cands[i].eligible = true;
    cands[i].eligible_since = 0;
    cands[i].score = 90 - i;
  }
  steering::SelectionState st;
  std::uint64_t i = 0;
  for (auto _ : state) {
    const int which = static_cast<int>(i % kCandidates);
    auto r = s.router->score("scoring", window(++i));
    cands[which].score = r.value().score;
    auto sel = steering::select_path(cls, cands, st, static_cast<std::int64_t>(i) * 1000);
    benchmark::DoNotOptimize(sel);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PathDecision);

// The baseline: per decision, read the candidates' latest metrics from the store and rescore all.
void BM_PathDecisionNaiveStore(benchmark::State& state) {
  Scorer s;
  const std::string file = (std::filesystem::temp_directory_path() /
                            ("patronus-bench-" + std::to_string(getpid()) + ".db"))
                               .string();
  {
    auto db = store::Store::open(file);
    if (!db.is_ok()) std::abort();
    std::vector<store::MeshSite> sites;
    for (const char* n : {"a", "b"}) {
      store::MeshSite ms;
      ms.site.name = n;
      sites.push_back(ms);
    }
    std::vector<store::PathRow> paths;
    for (int i = 0; i < kCandidates; ++i) {
      store::PathRow r;
      r.src_site = "a";
      r.dst_site = "b";
      r.src_endpoint = "e" + std::to_string(i);
      r.dst_endpoint = "e0";
      paths.push_back(r);
    }
    auto ids = db.value()->save_mesh(sites, {}, paths, 0);
    if (!ids.is_ok()) std::abort();
    std::vector<store::PathStateRow> rows;
    for (auto id : ids.value()) {
      store::PathStateRow r;
      r.path_id = id;
      r.live = r.scored = true;
      r.status = model::PathStatus::kUp;
      r.latency_ms = 30;
      r.samples = 200;
      rows.push_back(r);
    }
    if (!db.value()->write_batch({}, {}, rows).is_ok()) std::abort();
  }
  auto db = store::Store::open(file);
  const steering::ClassSpec cls = steering::default_classes("").classes[0];
  steering::SelectionState st;
  std::uint64_t i = 0;
  for (auto _ : state) {
    auto rows = db.value()->list_paths();
    std::vector<steering::CandidateInput> cands;
    for (const auto& r : rows.value()) {
      auto w = window(++i);
      w.latency_ms = r.latency_ms.value_or(0);
      auto sc = s.router->score("scoring", w);
      steering::CandidateInput c;
      c.path_id = r.path_id.value();
      c.score = sc.value().score;
      c.live = c.usable = c.eligible = true;
      c.eligible_since = 0;
      cands.push_back(c);
    }
    benchmark::DoNotOptimize(
        steering::select_path(cls, cands, st, static_cast<std::int64_t>(i) * 1000));
  }
  state.SetItemsProcessed(state.iterations());
  db.value().reset();
  std::filesystem::remove(file);
  std::filesystem::remove(file + "-wal");
  std::filesystem::remove(file + "-shm");
}
BENCHMARK(BM_PathDecisionNaiveStore);

constexpr std::uint32_t kFlows = 1u << 20;
constexpr steering::FlowHashKey kBenchKey{7, 1, 8, 2, 8, 1, 8, 2, 8, 4, 5, 9, 0, 4, 5, 2};

std::vector<steering::FlowKeyBytes> flow_keys() {
  std::mt19937_64 rng(42);
  std::vector<steering::FlowKeyBytes> keys;
  keys.reserve(kFlows);
  for (std::uint32_t i = 0; i < kFlows; ++i) {
    model::FlowKey k;
    if (i % 4 == 0) {
      std::array<std::uint8_t, 16> a{}, b{};
      for (auto& x : a) x = static_cast<std::uint8_t>(rng());
      for (auto& x : b) x = static_cast<std::uint8_t>(rng());
      k.src = model::IpAddress::v6(a);
      k.dst = model::IpAddress::v6(b);
    } else {
      k.src = model::IpAddress::v4(static_cast<std::uint32_t>(rng()));
      k.dst = model::IpAddress::v4(static_cast<std::uint32_t>(rng()));
    }
    k.src_port = static_cast<std::uint16_t>(rng());
    k.dst_port = static_cast<std::uint16_t>(rng());
    k.protocol = i % 3 ? model::IpProtocol::kTcp : model::IpProtocol::kUdp;
    keys.push_back(steering::FlowKeyBytes::of(k));
  }
  return keys;
}

const std::vector<steering::FlowKeyBytes>& keys() {
  static const auto k = flow_keys();
  return k;
}

std::vector<std::uint32_t> lookup_order() {
  std::mt19937_64 rng(7);
  std::vector<std::uint32_t> order(1u << 16);
  for (auto& o : order) o = static_cast<std::uint32_t>(rng() % kFlows);
  return order;
}

void BM_FlowLookupTable(benchmark::State& state) {
  steering::FlowTable t(kFlows, kBenchKey);
  for (std::uint32_t i = 0; i < kFlows; ++i) {
    bool ins = false;
    t.insert(keys()[i], &ins)->path = static_cast<std::uint16_t>(i % 8);
  }
  const auto order = lookup_order();
  std::size_t i = 0;
  for (auto _ : state) {
    const auto* e = t.find(keys()[order[i++ & 0xFFFF]]);
    benchmark::DoNotOptimize(e->path);
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["bytes_per_flow"] = static_cast<double>(t.memory_bytes()) / kFlows;
}
BENCHMARK(BM_FlowLookupTable);

// The same lookups a packet batch at a time (32 keys, prefetched): how a router uses the table.
void BM_FlowLookupTableBatch(benchmark::State& state) {
  steering::FlowTable t(kFlows, kBenchKey);
  for (std::uint32_t i = 0; i < kFlows; ++i) {
    bool ins = false;
    t.insert(keys()[i], &ins)->path = static_cast<std::uint16_t>(i % 8);
  }
  const auto order = lookup_order();
  std::vector<steering::FlowKeyBytes> batch_keys(order.size());
  for (std::size_t i = 0; i < order.size(); ++i) batch_keys[i] = keys()[order[i]];
  constexpr std::size_t kB = steering::FlowTable::kBatch;
  steering::FlowEntry* out[kB];
  std::size_t i = 0;
  for (auto _ : state) {
    t.find_batch(&batch_keys[i & 0xFFE0], kB, out);
    i += kB;
    for (auto* e : out) benchmark::DoNotOptimize(e->path);
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(kB));
}
BENCHMARK(BM_FlowLookupTableBatch);

struct KeyHash {
  std::size_t operator()(const steering::FlowKeyBytes& k) const {
    return steering::hash_flow(k, kBenchKey);
  }
};

void BM_FlowLookupUnorderedMap(benchmark::State& state) {
  std::unordered_map<steering::FlowKeyBytes, std::uint16_t, KeyHash> m;
  m.reserve(kFlows);
  for (std::uint32_t i = 0; i < kFlows; ++i)
    m.emplace(keys()[i], static_cast<std::uint16_t>(i % 8));
  const auto order = lookup_order();
  std::size_t i = 0;
  for (auto _ : state) {
    auto it = m.find(keys()[order[i++ & 0xFFFF]]);
    benchmark::DoNotOptimize(it->second);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_FlowLookupUnorderedMap);

void BM_ProbeEncodeAuthDecodeVerify(benchmark::State& state) {
  if (sodium_init() < 0) std::abort();
  probes::PathKey key{};
  key[0] = 1;
  probes::Packet p;
  p.session = 77;
  p.nonce = 5;
  std::uint8_t buf[probes::kHeaderSize];
  std::uint64_t seq = 0;
  for (auto _ : state) {
    p.sequence = ++seq;
    p.t1 = static_cast<std::int64_t>(seq);
    probes::encode(p, key, buf);
    probes::Packet q;
    if (probes::parse(buf, sizeof buf, &q) != probes::Reject::kNone || !probes::verify(buf, key)) {
      state.SkipWithError("round trip failed");
      break;
    }
    benchmark::DoNotOptimize(q.sequence);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ProbeEncodeAuthDecodeVerify);

}  // namespace

BENCHMARK_MAIN();
