// The probe against a second instance of itself (the far end), in virtual time: the round trips
// it reports are the link's, and a cut is seen as loss and as liveness down, then up.
#include <gtest/gtest.h>

#include "patronus/trial/plugin_trial.hpp"

using patronus::trial::PluginTrial;
using patronus::trial::ProbeRun;

TEST(AcmeEcho, MeasuresTheRoundTripOfTheLink) {
  auto t = PluginTrial::open(PLUGIN_FILE, "interval_ms: 50");
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  ProbeRun run;
  run.seconds = 2;
  run.one_way_delay_ms = 12;
  auto r = t.value()->run_probe(run);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_GE(r.value().received, 35u);  // one per 50 ms, less the last few in flight
  EXPECT_EQ(r.value().lost, 0u);
  EXPECT_DOUBLE_EQ(r.value().rtt_min_ms, 24.0);
  EXPECT_DOUBLE_EQ(r.value().rtt_max_ms, 24.0);
  ASSERT_EQ(r.value().liveness.size(), 1u);
  EXPECT_EQ(r.value().liveness[0].state, "up");
  EXPECT_DOUBLE_EQ(r.value().liveness[0].t_ms, 24.0);  // the first reply
}

TEST(AcmeEcho, ACutIsLossThenDownThenUp) {
  auto t = PluginTrial::open(PLUGIN_FILE, "interval_ms: 50\ntimeout_ms: 200");
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  ProbeRun run;
  run.seconds = 4;
  run.one_way_delay_ms = 5;
  run.cut_at_s = 1;
  run.cut_for_s = 1;
  auto r = t.value()->run_probe(run);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_GE(r.value().lost, 18u);  // a second of probes every 50 ms
  std::vector<std::string> states;
  for (const auto& l : r.value().liveness) states.push_back(l.state);
  EXPECT_EQ(states, (std::vector<std::string>{"up", "down", "up"}));
}

TEST(AcmeEcho, RefusesABadInterval) {
  auto t = PluginTrial::open(PLUGIN_FILE, "interval_ms: 1");
  ASSERT_FALSE(t.is_ok());
  EXPECT_NE(t.status().message().find("interval_ms must be >= 10"), std::string::npos);
}
