// The default scorer plugin (the published formula) through the ABI.
#include <gtest/gtest.h>

#include "patronus/core/config_schema.hpp"
#include "patronus/core/plugin_host.hpp"
#include "patronus/core/router.hpp"
#include "patronus/env/virtual_world.hpp"
#include "test_support.hpp"

namespace {

using namespace patronus;

class Scoring : public ::testing::Test {
 protected:
  void SetUp() override {
    auto l = reg_.load_file(test::plugin_dir() + "/libpatronus-scoring.so");
    ASSERT_TRUE(l.is_ok()) << l.status().to_string();
    lib_ = l.value();
  }
  Status add(const std::string& yaml) {
    auto b = lib_->schema()->text_to_bytes(yaml, "config");
    if (!b.is_ok()) return b.status();
    return router_.add_plugin(lib_, "s", b.value());
  }
  patronus_score score(double lat, double jit, double loss, double bw) {
    patronus_metrics_window w{};
    w.latency_ms = lat, w.jitter_ms = jit, w.loss_pct = loss, w.bandwidth_mbps = bw;
    w.samples = 10;
    auto r = router_.score("s", w);
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    return r.is_ok() ? r.value() : patronus_score{};
  }
  core::PluginRegistry reg_;
  std::shared_ptr<const core::PluginLibrary> lib_;
  env::VirtualWorld world_{1};
  core::RouterInstance router_{world_.add_node("a", {}), "a"};
};

TEST_F(Scoring, PublishedFormula) {
  ASSERT_TRUE(add("").is_ok());
  // 100 - (50/200*40 + 10/50*20 + 0.5*30 + (1000-500)/1000*10) = 100 - (10+4+15+5) = 66
  auto s = score(50, 10, 0.5, 500);
  EXPECT_DOUBLE_EQ(s.score, 66.0);
  EXPECT_EQ(s.state, PATRONUS_PATH_DEGRADED);
  s = score(0, 0, 0, 1000);
  EXPECT_DOUBLE_EQ(s.score, 100.0);
  EXPECT_EQ(s.state, PATRONUS_PATH_UP);
  s = score(400, 100, 5, 0);  // far below zero before clamping
  EXPECT_DOUBLE_EQ(s.score, 0.0);
  EXPECT_EQ(s.state, PATRONUS_PATH_DOWN);
}

TEST_F(Scoring, WeightsAndThresholdsAreConfigurable) {
  ASSERT_TRUE(add("loss_weight: 3\ndegraded_below: 90\ndown_below: 50").is_ok());
  auto s = score(50, 10, 0.5, 500);  // 100 - (10 + 4 + 1.5 + 5) = 79.5
  EXPECT_DOUBLE_EQ(s.score, 79.5);
  EXPECT_EQ(s.state, PATRONUS_PATH_DEGRADED);
}

TEST_F(Scoring, BadConfigAndBadWindowsAreErrors) {
  const Status s = add("down_below: 80\ndegraded_below: 70");
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("thresholds must satisfy"), std::string::npos) << s.message();
  ASSERT_TRUE(add("").is_ok());
  patronus_metrics_window w{};
  w.latency_ms = -1;
  EXPECT_FALSE(router_.score("s", w).is_ok());
}

}  // namespace
