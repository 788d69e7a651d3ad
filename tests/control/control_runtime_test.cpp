// The control API's replies built from a running site runtime (virtual time, the real probes and
// scorers): paths with their measurements, flows with class and path, decisions newest first,
// status with every (class, site) selection; and the same requests through Service.
#include <gtest/gtest.h>

#include "control.hpp"
#include "patronus/site/store_sink.hpp"
#include "test_support.hpp"
#include "wan_harness.hpp"

namespace {

using namespace patronus;
using test::flow;
using test::kMs;
using test::kSec;

TEST(ControlReplies, ComeFromTheRunningRuntime) {
  test::Wan w(5);
  w.add_site({"hq", {{"wan0", "10.0.0.1"}, {"wan1", "10.0.1.1"}}, "192.168.1.0/24"});
  w.add_site({"b", {{"wan0", "10.0.0.2"}}, "192.168.2.0/24"});
  w.add_path({"hq", "wan0", "b", "wan0", {10 * kMs, 0, 0.0, true}});
  w.add_path({"hq", "wan1", "b", "wan0", {30 * kMs, 0, 0.0, true}});
  w.start("interval_ms: 50\nidle_interval_ms: 1000\ndetect_multiplier: 4\n");
  auto& hq = w.rt("hq");
  w.world().run_until(3 * kSec);
  const auto voice = flow("192.168.1.10", "192.168.2.20", 20000, 20002);
  const auto web = flow("192.168.1.11", "192.168.2.21", 40000, 443);
  for (int i = 0; i < 3; ++i) hq.on_packet(voice, 46, 200);
  hq.on_packet(web, 0, 1500);
  w.world().run_until(4 * kSec);

  const auto paths = control::paths_of(hq, w.node("hq").env->wall_ns());
  EXPECT_EQ(paths.source(), "daemon");
  ASSERT_EQ(paths.paths_size(), 2);
  for (const auto& p : paths.paths()) {
    EXPECT_EQ(p.peer_site(), "b");
    EXPECT_EQ(p.state(), "up");
    ASSERT_TRUE(p.has_latency_ms());
    // 10 ms or 30 ms each way: the measured round trip is read from the simulator.
    EXPECT_NEAR(p.latency_ms(), p.local_endpoint() == "wan0" ? 20.0 : 60.0, 0.5) << p.name();
    EXPECT_TRUE(p.has_score());
    EXPECT_EQ(p.remote_underlay(), "10.0.0.2:51820");
    EXPECT_FALSE(p.has_tunnel());  // no transport here
  }

  const auto flows = control::flows_of(hq, 10);
  EXPECT_EQ(flows.total(), 2u);
  ASSERT_EQ(flows.flows_size(), 2);
  bool saw_voice = false;
  for (const auto& f : flows.flows()) {
    EXPECT_NE(f.path_id(), 0u) << "steered onto a path";
    EXPECT_FALSE(f.path().empty());
    ASSERT_TRUE(f.has_idle_s());
    EXPECT_NEAR(f.idle_s(), 1.0, 0.01);  // the last packet was a second ago, simulated
    if (f.dst_port() == 20002) {
      saw_voice = true;
      EXPECT_EQ(f.class_name(), "voice");
      EXPECT_EQ(f.packets(), 3u);
      EXPECT_EQ(f.bytes(), 600u);
      EXPECT_EQ(f.protocol(), 17u);
    }
  }
  EXPECT_TRUE(saw_voice);
  EXPECT_EQ(control::flows_of(hq, 1).flows_size(), 1);

  // Offline: the store sink writes each flow with the time of its last packet (a second ago, in
  // simulated wall time), and the database's reply reads it back.
  {
    test::TempDir dir;
    auto db = store::Store::open(dir.file("hq.db"));
    ASSERT_TRUE(db.is_ok());
    ASSERT_TRUE(db.value()->ensure_site("hq", 0).is_ok());
    site::StoreSink sink(*db.value(), *w.node("hq").env);
    sink.add_flows(hq, 10);
    ASSERT_TRUE(sink.flush().is_ok());
    auto stored = control::flows_from_store(*db.value(), 10);
    ASSERT_TRUE(stored.is_ok()) << stored.status().to_string();
    EXPECT_EQ(stored.value().total(), 2u);
    const std::int64_t last_packet_unix = (w.node("hq").env->wall_ns() - kSec) / kSec;
    for (const auto& f : stored.value().flows()) {
      ASSERT_TRUE(f.has_last_seen_unix());
      EXPECT_EQ(f.last_seen_unix(), last_packet_unix) << f.dst_port();
    }
  }

  const auto ds = control::decisions_of(hq, 100);
  ASSERT_GT(ds.decisions_size(), 0);
  for (int i = 1; i < ds.decisions_size(); ++i) {
    EXPECT_GE(ds.decisions(i - 1).unix_ns(), ds.decisions(i).unix_ns()) << "newest first";
  }
  EXPECT_EQ(ds.decisions(ds.decisions_size() - 1).reason(), "initial");

  control::DaemonInfo info{"hq", "9.9.9", "hq.db", "", "none", 7, w.node("hq").env->wall_ns(), ""};
  control::Service svc(info, *w.node("hq").router, &hq, *w.node("hq").env);
  control::api::Request q;
  q.mutable_status();
  const auto st = svc.handle(q);
  ASSERT_TRUE(st.has_status());
  EXPECT_EQ(st.status().paths_up(), 2u);
  EXPECT_EQ(st.status().flows(), 2u);
  EXPECT_EQ(st.status().remote_sites(), 1u);
  EXPECT_EQ(st.status().selections_size(), static_cast<int>(hq.config().classes.classes.size()));
  for (const auto& s : st.status().selections()) EXPECT_NE(s.path_id(), 0u) << s.class_name();
  EXPECT_EQ(st.status().plugins_size(), 3);  // probe, scoring, emodel
  EXPECT_GT(st.status().counters().at("runtime.samples"), 0u);
  q.mutable_flows()->set_limit(control::kMaxFlows + 1);
  const auto big = svc.handle(q);
  ASSERT_TRUE(big.has_error());
  EXPECT_NE(big.error().message().find("flows.limit"), std::string::npos);
  q.mutable_decisions()->set_limit(1);
  EXPECT_EQ(svc.handle(q).decisions().decisions_size(), 1);
  w.stop();
}

// The ABI's metric host service reaches the control API: what a plugin reports is in `status`,
// with its instance, the last value and its age, read from the simulator's clock.
TEST(ControlReplies, PluginMetricsReachTheStatus) {
  core::PluginRegistry reg;
  auto flaky = reg.load_file(test::test_plugin_dir() + "/libpatronus-test-flaky-scorer.so");
  ASSERT_TRUE(flaky.is_ok()) << flaky.status().to_string();
  test::Wan w(5);
  w.add_site({"hq", {{"wan0", "10.0.0.1"}}, "192.168.1.0/24"});
  w.add_site({"b", {{"wan0", "10.0.0.2"}}, "192.168.2.0/24"});
  w.add_path({"hq", "wan0", "b", "wan0", {10 * kMs, 0, 0.0, true}});
  w.use_scorer(flaky.value(), "vendor");
  w.start("interval_ms: 50\nidle_interval_ms: 1000\ndetect_multiplier: 4\n",
          [](steering::RuntimeConfig& rc) {
            for (auto& c : rc.classes.classes) {
              if (c.name == "voice") c.scorer = "vendor";
            }
          });
  w.world().run_until(3 * kSec);
  auto& hq = w.rt("hq");
  control::DaemonInfo info;
  info.site = "hq";
  const auto st = control::status_of(info, *w.node("hq").router, &hq, w.node("hq").env->wall_ns());
  // The vendor scorer's one metric, and the probe plugin's drop counters (one per reason, at
  // zero from its start).
  int vendor = -1, dropped = 0;
  for (int i = 0; i < st.metrics_size(); ++i) {
    if (st.metrics(i).instance() == "vendor") vendor = i;
    if (st.metrics(i).instance() == "probe" &&
        st.metrics(i).name().rfind("probe_dropped_total{reason=", 0) == 0) {
      ++dropped;
      EXPECT_EQ(st.metrics(i).value(), 0.0) << st.metrics(i).name();
    }
  }
  EXPECT_EQ(dropped, 6) << st.DebugString();
  ASSERT_GE(vendor, 0) << st.DebugString();
  EXPECT_EQ(st.metrics_size(), 7) << st.DebugString();
  EXPECT_EQ(st.metrics(vendor).name(), "windows_scored");
  EXPECT_GE(st.metrics(vendor).value(), 1.0);
  // Scored at the path's last probe: an idle path's come a second apart (idle_interval_ms).
  EXPECT_LE(st.metrics(vendor).age_s(), 1.0);
  w.stop();
}

}  // namespace
