// The site runtime's parts alone: metric window, flow table (against std::unordered_map), class
// rules, selection policy, per-path probe keys, and the published scoring example.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <random>
#include <set>
#include <unordered_map>

#include "patronus/core/plugin_host.hpp"
#include "patronus/core/router.hpp"
#include "patronus/env/virtual_world.hpp"
#include "patronus/mesh/keys.hpp"
#include "patronus/steering/classes.hpp"
#include "patronus/steering/flow_table.hpp"
#include "patronus/steering/metric_window.hpp"
#include "patronus/steering/selection.hpp"
#include "test_support.hpp"

namespace {

using namespace patronus;
using namespace patronus::steering;
constexpr std::int64_t kMs = 1'000'000;

TEST(MetricWindow, MeanRttJitterAndLossOverCountAndTime) {
  MetricWindow w({4, 1000 * kMs, 0});
  w.add(0, 10 * kMs, false);
  w.add(100 * kMs, 20 * kMs, false);
  w.add(200 * kMs, 0, true);
  w.add(300 * kMs, 14 * kMs, false);
  auto s = w.stats();
  EXPECT_EQ(s.samples, 4u);
  EXPECT_EQ(s.lost, 1u);
  EXPECT_DOUBLE_EQ(s.loss_pct, 25.0);
  EXPECT_DOUBLE_EQ(s.latency_ms, (10 + 20 + 14) / 3.0);
  EXPECT_DOUBLE_EQ(s.jitter_ms, (10 + 6) / 2.0);  // |20-10|, |14-20| (the loss is skipped)
  EXPECT_EQ(s.span_ns, 300 * kMs);
  // The count bound evicts the oldest: its difference goes with it.
  w.add(400 * kMs, 15 * kMs, false);
  s = w.stats();
  EXPECT_EQ(s.samples, 4u);
  EXPECT_DOUBLE_EQ(s.latency_ms, (20 + 14 + 15) / 3.0);
  EXPECT_DOUBLE_EQ(s.jitter_ms, (6 + 1) / 2.0);
  // The time bound: everything older than 1 s before `now` goes.
  w.expire(1250 * kMs);
  s = w.stats();
  EXPECT_EQ(s.samples, 2u);
  EXPECT_EQ(s.lost, 0u);
  EXPECT_DOUBLE_EQ(s.jitter_ms, 1.0);
  w.expire(10'000 * kMs);
  EXPECT_EQ(w.stats().samples, 0u);
  EXPECT_DOUBLE_EQ(w.stats().latency_ms, 0.0);
}

TEST(MetricWindow, TheTimeBoundKeepsMinSamples) {
  // Probed once a second with a 10 s bound and 10 samples needed: the tick's expiry between two
  // probes must not leave 9 (the path would flicker to "not measured" and lose its classes).
  MetricWindow w({200, 10'000 * kMs, 10});
  for (int i = 0; i < 30; ++i) w.add(i * 1000 * kMs, 20 * kMs, false);
  w.expire(29'900 * kMs);
  EXPECT_EQ(w.stats().samples, 10u);
  w.expire(3'600'000 * kMs);  // a path silent for an hour keeps its last measurement
  EXPECT_EQ(w.stats().samples, 10u);
  EXPECT_EQ(w.stats().span_ns, 9000 * kMs);
}

TEST(MetricWindow, MatchesARecomputationOnRandomSamples) {
  std::mt19937_64 rng(5);
  MetricWindow w({50, 2000 * kMs, 0});
  std::vector<std::pair<std::int64_t, std::int64_t>> all;  // sent, rtt (-1 lost)
  std::int64_t t = 0;
  for (int i = 0; i < 5000; ++i) {
    t += static_cast<std::int64_t>(rng() % 100) * kMs;
    const bool lost = rng() % 10 == 0;
    const std::int64_t rtt = static_cast<std::int64_t>(rng() % 80) * kMs;
    w.add(t, rtt, lost);
    all.push_back({t, lost ? -1 : rtt});
    // Recompute over the same window.
    std::vector<std::pair<std::int64_t, std::int64_t>> win;
    for (auto it = all.rbegin(); it != all.rend() && win.size() < 50; ++it) {
      if (t - it->first > 2000 * kMs) break;
      win.insert(win.begin(), *it);
    }
    double sum = 0, diff = 0;
    int rx = 0, nd = 0, lostn = 0;
    std::int64_t prev = -1;
    for (auto [s, r] : win) {
      if (r < 0) {
        ++lostn;
        continue;
      }
      sum += r;
      ++rx;
      if (prev >= 0) {
        diff += std::abs(r - prev);
        ++nd;
      }
      prev = r;
    }
    const auto st = w.stats();
    ASSERT_EQ(st.samples, win.size()) << i;
    ASSERT_EQ(st.lost, static_cast<std::uint32_t>(lostn));
    ASSERT_NEAR(st.latency_ms, rx ? sum / rx / 1e6 : 0, 1e-9);
    ASSERT_NEAR(st.jitter_ms, nd ? diff / nd / 1e6 : 0, 1e-9);
  }
}

model::FlowKey random_key(std::mt19937_64& rng) {
  model::FlowKey k;
  if (rng() % 3 == 0) {
    std::array<std::uint8_t, 16> a{}, b{};
    for (auto& x : a) x = static_cast<std::uint8_t>(rng());
    for (auto& x : b) x = static_cast<std::uint8_t>(rng());
    k.src = model::IpAddress::v6(a);
    k.dst = model::IpAddress::v6(b);
  } else {
    k.src = model::IpAddress::v4(static_cast<std::uint32_t>(rng() % 4096));
    k.dst = model::IpAddress::v4(0x0A000000u | static_cast<std::uint32_t>(rng() % 64));
  }
  k.src_port = static_cast<std::uint16_t>(rng() % 64);
  k.dst_port = static_cast<std::uint16_t>(rng() % 8);
  k.protocol = rng() % 2 ? model::IpProtocol::kTcp : model::IpProtocol::kUdp;
  return k;
}

constexpr FlowHashKey kTestKey{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

struct KeyHash {
  std::size_t operator()(const FlowKeyBytes& k) const { return hash_flow(k, kTestKey); }
};

TEST(FlowTable, AgreesWithUnorderedMapUnderRandomInsertEraseAndBound) {
  std::mt19937_64 rng(9);
  FlowTable t(2000, kTestKey);
  std::unordered_map<FlowKeyBytes, std::uint64_t, KeyHash> ref;
  for (int i = 0; i < 200000; ++i) {
    const FlowKeyBytes k = FlowKeyBytes::of(random_key(rng));
    const int op = static_cast<int>(rng() % 10);
    if (op < 6) {
      bool inserted = false;
      FlowEntry* e = t.insert(k, &inserted);
      if (ref.count(k)) {
        ASSERT_NE(e, nullptr);
        ASSERT_FALSE(inserted);
        ASSERT_EQ(e->bytes, ref[k]);
        e->bytes += 1;
        ref[k] += 1;
      } else if (ref.size() >= 2000) {
        ASSERT_EQ(e, nullptr) << "the bound must hold";
      } else {
        ASSERT_NE(e, nullptr);
        ASSERT_TRUE(inserted);
        ASSERT_EQ(e->path, kNoPath);
        e->bytes = 7;
        ref[k] = 7;
      }
    } else if (op < 9) {
      ASSERT_EQ(t.erase(k), ref.erase(k) == 1);
    } else {
      FlowEntry* e = t.find(k);
      ASSERT_EQ(e != nullptr, ref.count(k) == 1);
      if (e) {
        ASSERT_EQ(e->key(), k);
      }
    }
    ASSERT_EQ(t.size(), ref.size());
  }
  for (std::uint32_t i = 0; i < t.size(); ++i) {
    const auto k = t.at(i).key();
    ASSERT_TRUE(ref.count(k));
    EXPECT_EQ(ref[k], t.at(i).bytes);
  }
  // Batched lookups give what single lookups give (present and absent keys mixed).
  std::vector<FlowKeyBytes> batch;
  for (std::size_t i = 0; i < FlowTable::kBatch; ++i)
    batch.push_back(FlowKeyBytes::of(random_key(rng)));
  FlowEntry* out[FlowTable::kBatch];
  t.find_batch(batch.data(), batch.size(), out);
  for (std::size_t i = 0; i < batch.size(); ++i) EXPECT_EQ(out[i], t.find(batch[i]));
}

// Hash flooding: flows someone chose to collide under one key (all in one home slot of a
// 64K-slot index) spread out under another key, so a sender who cannot learn the runtime's key
// cannot build a collision set for it.
TEST(FlowTable, FlowsChosenToCollideUnderOneKeySpreadUnderAnother) {
  constexpr FlowHashKey kOther{16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1};
  std::mt19937_64 rng(5);
  std::vector<FlowKeyBytes> colliding;
  while (colliding.size() < 64) {
    const FlowKeyBytes k = FlowKeyBytes::of(random_key(rng));
    if ((hash_flow(k, kTestKey) & 0xFFFF) == 0) colliding.push_back(k);
  }
  std::set<std::uint64_t> homes;
  for (const auto& k : colliding) homes.insert(hash_flow(k, kOther) & 0xFFFF);
  EXPECT_GE(homes.size(), 60u) << "keyed: a collision set for one key is not one for another";
}

TEST(FlowTable, KeysRoundTripForBothFamiliesAndTheMemoryBudgetHolds) {
  const model::FlowKey v4 = [] {
    model::FlowKey k;
    k.src = model::IpAddress::parse("10.1.2.3").value();
    k.dst = model::IpAddress::parse("192.168.0.9").value();
    k.src_port = 1234;
    k.dst_port = 443;
    return k;
  }();
  model::FlowKey v6 = v4;
  v6.src = model::IpAddress::parse("fd00::1").value();
  v6.dst = model::IpAddress::parse("fd00::2").value();
  EXPECT_EQ(FlowKeyBytes::of(v4).to_flow_key(), v4);
  EXPECT_EQ(FlowKeyBytes::of(v6).to_flow_key(), v6);
  EXPECT_NE(hash_flow(FlowKeyBytes::of(v4), kTestKey), hash_flow(FlowKeyBytes::of(v6), kTestKey));
  // The memory budget at 1M flows, measured full (entries grow as flows arrive).
  FlowTable big(1u << 20, kTestKey);
  for (std::uint32_t i = 0; i < (1u << 20); ++i) {
    model::FlowKey k = v4;
    k.src = model::IpAddress::v4(0x0A000000u + i);
    bool inserted = false;
    ASSERT_NE(big.insert(FlowKeyBytes::of(k), &inserted), nullptr);
    ASSERT_TRUE(inserted);
  }
  EXPECT_EQ(big.size(), 1u << 20);
  EXPECT_LE(big.memory_bytes() / double(1u << 20), 64.0);
  model::FlowKey one_more = v4;
  one_more.src = model::IpAddress::v4(0x0B000000u);
  EXPECT_EQ(big.insert(FlowKeyBytes::of(one_more), nullptr), nullptr) << "the bound holds";
}

TEST(Classes, DefaultRulesAndYamlErrorsNameTheField) {
  auto set = parse_classes_yaml("", "emodel");
  ASSERT_TRUE(set.is_ok());
  EXPECT_EQ(set.value().classes[0].name, "voice");
  EXPECT_EQ(set.value().classes[0].scorer, "emodel");
  EXPECT_TRUE(validate(set.value()).is_ok());
  auto custom = parse_classes_yaml(
      "classes:\n  - {name: gold, priority: critical, max_loss_pct: 1, hold_down_ms: 5000}\n"
      "  - {name: rest, priority: best-effort}\n"
      "rules:\n  - {class: gold, protocol: udp, dst_ports: 5000-5100, dscp: 46, dst: "
      "[10.0.0.0/8]}\n"
      "default_class: rest\n",
      "");
  ASSERT_TRUE(custom.is_ok()) << custom.status().to_string();
  EXPECT_EQ(custom.value().classes[0].hold_down_ns, 5'000'000'000);
  EXPECT_EQ(custom.value().rules[0].dst_ports->first, 5000);
  for (const auto& [yaml, needle] : std::vector<std::pair<std::string, std::string>>{
           {"classes:\n  - {name: Gold}\n", "classes[0].name"},
           {"classes:\n  - {name: a, min_score: 101}\n", "classes[0].min_score"},
           {"classes:\n  - {name: a}\n  - {name: a}\n", "defined twice"},
           {"classes:\n  - {name: a}\nrules:\n  - {class: b}\n", "rules[0].class: 'b'"},
           {"rules:\n  - {class: voice, dst_ports: 9-1}\n", "first port above last"},
           {"rules:\n  - {class: voice, dscp: 64}\n", "rules[0].dscp"},
           {"rules:\n  - {class: voice, protocol: icmpx}\n", "rules[0].protocol"},
           {"classes:\n  - {name: a, colour: red}\n", "colour"},
           {"default_class: nope\n", "default_class: 'nope'"},
       }) {
    auto r = parse_classes_yaml(yaml, "");
    ASSERT_FALSE(r.is_ok()) << yaml;
    EXPECT_NE(r.status().message().find(needle), std::string::npos) << r.status().message();
  }
  // Inside a larger document (the daemon's runtime.classes), errors carry the document's lines,
  // for what the reader checks and for what validation finds afterwards.
  const YAML::Node doc = YAML::Load(
      "site: a\nruntime:\n  classes:\n    classes:\n      - {name: a}\n"
      "      - {name: b, max_latency: 5}\n    rules:\n      - {class: a}\n      - {class: c}\n");
  auto unknown = parse_classes(doc["runtime"]["classes"], "");
  ASSERT_FALSE(unknown.is_ok());
  EXPECT_EQ(unknown.status().message().rfind("line 6: classes[1].max_latency", 0), 0u)
      << unknown.status().message();
  const YAML::Node doc2 = YAML::Load(
      "site: a\nruntime:\n  classes:\n    classes:\n      - {name: a}\n"
      "    rules:\n      - {class: a}\n      - {class: c}\n");
  auto undefined = parse_classes(doc2["runtime"]["classes"], "");
  ASSERT_FALSE(undefined.is_ok());
  EXPECT_EQ(undefined.status().message().rfind("line 8: rules[1].class: 'c'", 0), 0u)
      << undefined.status().message();
  auto twice = parse_classes_yaml("classes:\n  - {name: a, name: b}\n", "");
  ASSERT_FALSE(twice.is_ok());
  EXPECT_NE(twice.status().message().find("classes[0].name: given twice"), std::string::npos)
      << twice.status().message();
}

CandidateInput cand(std::uint64_t id, double score, std::int64_t since, bool live = true) {
  CandidateInput c;
  c.path_id = id;
  c.score = score;
  c.live = live;
  c.usable = live;
  c.eligible = live && since >= 0;
  c.eligible_since = c.eligible ? since : -1;
  return c;
}

TEST(Selection, AFailoverAvoidsPathsThatShareTheDeadPathsFate) {
  ClassSpec cls;
  cls.hold_down_ns = 10'000 * kMs;
  SelectionState st;
  auto r = select_path(cls, {cand(1, 95, 0), cand(2, 90, 0), cand(3, 70, 0)}, st, 20'000 * kMs);
  ASSERT_EQ(r.chosen, 0);
  // Path 1 goes down; path 2 shares its endpoint and has not answered since: the lower-scored
  // path 3 is taken.
  auto dead = cand(1, 95, -1, false);
  auto shared = cand(2, 90, 0);
  shared.suspect = true;
  r = select_path(cls, {dead, shared, cand(3, 70, 0)}, st, 21'000 * kMs);
  EXPECT_EQ(r.move, Move::kFailover);
  EXPECT_EQ(r.chosen, 2);
  // With nothing else left, a suspect path is still better than none.
  SelectionState st2;
  select_path(cls, {cand(1, 95, 0), cand(2, 90, 0)}, st2, 20'000 * kMs);
  r = select_path(cls, {dead, shared}, st2, 21'000 * kMs);
  EXPECT_EQ(r.move, Move::kFailover);
  EXPECT_EQ(r.chosen, 1);
}

TEST(Selection, StickyFailoverHomeAndHoldDown) {
  ClassSpec cls;
  cls.hysteresis = 10;
  cls.hold_down_ns = 10'000 * kMs;
  SelectionState st;
  // Initial: the best eligible.
  auto r = select_path(cls, {cand(1, 80, 0), cand(2, 90, 0)}, st, 0);
  EXPECT_EQ(r.move, Move::kInitial);
  EXPECT_EQ(r.chosen, 1);
  // While settling, a path better by more than the hysteresis is taken; by less, not.
  r = select_path(cls, {cand(1, 95, 0), cand(2, 90, 0)}, st, 1000 * kMs);
  EXPECT_EQ(r.move, Move::kStay);
  r = select_path(cls, {cand(1, 99, 0), cand(2, 85, 0)}, st, 2000 * kMs);
  EXPECT_EQ(r.move, Move::kBetter);
  EXPECT_EQ(r.chosen, 0);
  // Settled: a better path does not move the class (SLA-sticky).
  r = select_path(cls, {cand(1, 40, 0), cand(2, 99, 0)}, st, 20'000 * kMs);
  EXPECT_EQ(r.move, Move::kStay);
  // The current path breaks the thresholds: failover, and path 1 becomes home.
  r = select_path(cls, {cand(1, 40, -1), cand(2, 99, 0)}, st, 21'000 * kMs);
  EXPECT_EQ(r.move, Move::kFailover);
  EXPECT_EQ(r.chosen, 1);
  EXPECT_EQ(st.home, 0);
  // Home recovers at 22 s; not before the hold-down.
  r = select_path(cls, {cand(1, 95, 22'000 * kMs), cand(2, 99, 0)}, st, 31'999 * kMs);
  EXPECT_EQ(r.move, Move::kStay);
  r = select_path(cls, {cand(1, 95, 22'000 * kMs), cand(2, 99, 0)}, st, 32'000 * kMs);
  EXPECT_EQ(r.move, Move::kFailback);
  EXPECT_EQ(r.chosen, 0);
  EXPECT_EQ(st.home, -1);
  // Nothing eligible, nothing usable: no path; the next usable one is taken.
  r = select_path(cls, {cand(1, 0, -1, false), cand(2, 0, -1, false)}, st, 40'000 * kMs);
  EXPECT_EQ(r.move, Move::kNone);
  EXPECT_EQ(r.chosen, -1);
  auto usable_only = cand(2, 20, -1);
  r = select_path(cls, {cand(1, 0, -1, false), usable_only}, st, 41'000 * kMs);
  EXPECT_EQ(r.chosen, 1) << "a usable path beats no path";
}

TEST(Keys, ProbeKeysAgreeOnBothEndsAndDifferPerPath) {
  auto a = mesh::generate_keypair().value(), b = mesh::generate_keypair().value();
  const auto name = mesh::canonical_path_name("hq", "wan0", "b", "wan1");
  EXPECT_EQ(name, mesh::canonical_path_name("b", "wan1", "hq", "wan0"));
  EXPECT_EQ(name, "b:wan1~hq:wan0");
  auto ka = mesh::derive_probe_key(a.private_key, b.public_key, name);
  auto kb = mesh::derive_probe_key(b.private_key, a.public_key, name);
  ASSERT_TRUE(ka.is_ok() && kb.is_ok());
  EXPECT_EQ(ka.value(), kb.value());
  auto other = mesh::derive_probe_key(a.private_key, b.public_key, "b:wan0~hq:wan0");
  EXPECT_NE(other.value(), ka.value());
  EXPECT_EQ(mesh::probe_session_id(name), mesh::probe_session_id(name));
  EXPECT_NE(mesh::probe_session_id(name), mesh::probe_session_id("b:wan0~hq:wan0"));
  mesh::Key zero{};  // a low-order point: all-zero shared secret
  EXPECT_FALSE(mesh::derive_probe_key(a.private_key, zero, name).is_ok());
}

// The published example: (50 ms, 5 ms, 0.1 %) beats (200 ms, 50 ms, 5 %) for a critical flow and
// scores above 80 (bandwidth unknown: the default scorer charges nothing for it).
TEST(Scoring, PublishedExampleThroughThePluginAndTheSelector) {
  core::PluginRegistry reg;
  auto lib = reg.load_file(test::plugin_dir() + "/libpatronus-scoring.so");
  ASSERT_TRUE(lib.is_ok());
  env::VirtualWorld w(1);
  core::RouterInstance r(w.add_node("x", {}), "x");
  ASSERT_TRUE(r.add_plugin(lib.value(), "scoring", "").is_ok());
  auto score = [&](double lat, double jit, double loss) {
    patronus_metrics_window win{};
    win.samples = 100;
    win.latency_ms = lat;
    win.jitter_ms = jit;
    win.loss_pct = loss;
    win.flags = PATRONUS_WINDOW_BANDWIDTH_UNKNOWN;
    return r.score("scoring", win).value();
  };
  const auto good = score(50, 5, 0.1), bad = score(200, 50, 5);
  EXPECT_GT(good.score, 80.0);
  EXPECT_NEAR(good.score, 85.0, 1e-9);
  EXPECT_EQ(good.state, PATRONUS_PATH_UP);
  EXPECT_EQ(bad.state, PATRONUS_PATH_DOWN);
  const ClassSpec critical = default_classes("").classes[0];
  ASSERT_EQ(critical.priority, model::Priority::kCritical);
  CandidateInput g = cand(1, good.score, 0), b = cand(2, bad.score, 0);
  b.eligible = b.score >= critical.min_score;  // 0 < 60
  if (!b.eligible) b.eligible_since = -1;
  SelectionState st;
  EXPECT_EQ(select_path(critical, {b, g}, st, 0).chosen, 1);
}

}  // namespace
