// The scorer through the host's own loader and config conversion (libpatronus-trial).
#include <gtest/gtest.h>

#include "patronus/trial/plugin_trial.hpp"

using patronus::trial::PluginTrial;
using patronus::trial::Window;

TEST(AcmeLatency, ScoresRttAndLossAgainstTheBudget) {
  auto t = PluginTrial::open(PLUGIN_FILE, "budget_ms: 200");
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  Window w;
  w.latency_ms = 50;
  w.loss_pct = 1;
  auto s = t.value()->score(w);
  ASSERT_TRUE(s.is_ok()) << s.status().to_string();
  EXPECT_DOUBLE_EQ(s.value().score, 100 * (1 - 50.0 / 200) - 10);  // 65
  EXPECT_EQ(s.value().state, "up");
  w.latency_ms = 100;
  EXPECT_EQ(t.value()->score(w).value().state, "degraded");  // 40 points: under 60, not under 30
  w.latency_ms = 150;
  EXPECT_EQ(t.value()->score(w).value().state, "down");  // 15 points
  w.latency_ms = 400;
  EXPECT_EQ(t.value()->score(w).value().score, 0);
  EXPECT_EQ(t.value()->score(w).value().state, "down");
}

TEST(AcmeLatency, RefusesAnEmptyWindowAndBadConfig) {
  auto t = PluginTrial::open(PLUGIN_FILE);
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  Window empty;
  empty.samples = 0;
  auto s = t.value()->score(empty);
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.status().message().find("an empty window"), std::string::npos);
  // A field the schema does not have: named with its line, by the host, before the plugin runs.
  auto bad = t.value()->set_config("budget_ms: 100\nbudget: 3\n");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.message().find("config.budget: unknown field"), std::string::npos);
  EXPECT_NE(bad.message().find("(line 2)"), std::string::npos);
  // A value the plugin refuses: its own message, at once (its configure() ran on a throwaway
  // instance); the configuration before it stays.
  auto refused = t.value()->set_config("budget_ms: -1");
  ASSERT_FALSE(refused.is_ok());
  EXPECT_NE(refused.message().find("budget_ms must be > 0"), std::string::npos);
}
