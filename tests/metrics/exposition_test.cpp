// The Prometheus text exposition: names and labels checked, values and escapes as Prometheus
// parses them, histograms cumulative with +Inf, _sum and _count, the series bound.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "exposition.hpp"

namespace patronus::metrics {
namespace {

TEST(Exposition, WritesHelpTypeAndSamplesWithEscapedLabels) {
  Exposition e;
  ASSERT_TRUE(
      e.family("patronus_probes_sent_total", Type::kCounter, "Probes sent.\nPer path.").is_ok());
  ASSERT_TRUE(e.sample({{"path", "a:inet~b:\"x\"\\y\n"}}, 42).is_ok());
  ASSERT_TRUE(e.family("patronus_path_up", Type::kGauge, "1 when up").is_ok());
  ASSERT_TRUE(e.sample({}, 1).is_ok());
  EXPECT_EQ(e.text(),
            "# HELP patronus_probes_sent_total Probes sent.\\nPer path.\n"
            "# TYPE patronus_probes_sent_total counter\n"
            "patronus_probes_sent_total{path=\"a:inet~b:\\\"x\\\"\\\\y\\n\"} 42\n"
            "# HELP patronus_path_up 1 when up\n"
            "# TYPE patronus_path_up gauge\n"
            "patronus_path_up 1\n");
}

TEST(Exposition, RefusesBadNamesCountersWithoutTotalAndRepeatedFamilies) {
  Exposition e;
  EXPECT_FALSE(e.family("9lives", Type::kGauge, "").is_ok());
  EXPECT_FALSE(e.family("patronus-probes", Type::kGauge, "").is_ok());
  EXPECT_FALSE(e.family("patronus_probes_sent", Type::kCounter, "").is_ok());
  ASSERT_TRUE(e.family("patronus_x", Type::kGauge, "").is_ok());
  EXPECT_FALSE(e.family("patronus_x", Type::kGauge, "").is_ok());
  EXPECT_FALSE(e.sample({{"__name__", "y"}}, 1).is_ok());
  EXPECT_FALSE(e.sample({{"bad-label", "y"}}, 1).is_ok());
  EXPECT_FALSE(e.histogram({}, {1}, {1}, 0, 1).is_ok()) << "not a histogram family";
}

TEST(Exposition, FormatsValuesAsPrometheusParsesThem) {
  EXPECT_EQ(format_value(0.1), "0.1");
  EXPECT_EQ(format_value(1e-9), "1e-09");
  EXPECT_EQ(format_value(3), "3");
  EXPECT_EQ(format_value(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(format_value(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(format_value(std::nan("")), "NaN");
}

TEST(Exposition, HistogramsAreCumulativeWithInfSumAndCount) {
  Exposition e;
  ASSERT_TRUE(e.family("patronus_probe_rtt_seconds", Type::kHistogram, "RTT").is_ok());
  ASSERT_TRUE(e.histogram({{"path", "1"}}, {0.001, 0.01}, {2, 3}, 1, 0.05).is_ok());
  EXPECT_NE(e.text().find("patronus_probe_rtt_seconds_bucket{path=\"1\",le=\"0.001\"} 2\n"),
            std::string::npos);
  EXPECT_NE(e.text().find("patronus_probe_rtt_seconds_bucket{path=\"1\",le=\"0.01\"} 5\n"),
            std::string::npos);
  EXPECT_NE(e.text().find("patronus_probe_rtt_seconds_bucket{path=\"1\",le=\"+Inf\"} 6\n"),
            std::string::npos);
  EXPECT_NE(e.text().find("patronus_probe_rtt_seconds_sum{path=\"1\"} 0.05\n"), std::string::npos);
  EXPECT_NE(e.text().find("patronus_probe_rtt_seconds_count{path=\"1\"} 6\n"), std::string::npos);
  EXPECT_FALSE(e.histogram({}, {0.01, 0.001}, {1, 1}, 0, 0).is_ok()) << "bounds must ascend";
  EXPECT_FALSE(e.histogram({{"le", "x"}}, {1}, {1}, 0, 0).is_ok());
}

TEST(Exposition, StopsAtItsSeriesBoundAndCountsWhatItLeftOut) {
  Exposition e(3);
  ASSERT_TRUE(e.family("patronus_x", Type::kGauge, "").is_ok());
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(e.sample({{"i", std::to_string(i)}}, i).is_ok());
  EXPECT_EQ(e.dropped(), 2u);
  EXPECT_EQ(e.text().find("i=\"3\""), std::string::npos);
}

TEST(PluginSeries, ANameWithItsOwnLabelsParsesAndBadOnesSayWhy) {
  auto s = parse_series("probe_dropped_total{reason=\"forged\",dir=\"a\\\"b\"}");
  ASSERT_TRUE(s.is_ok()) << s.status().message();
  EXPECT_EQ(s.value().name, "probe_dropped_total");
  ASSERT_EQ(s.value().labels.size(), 2u);
  EXPECT_EQ(s.value().labels[0], (std::pair<std::string, std::string>{"reason", "forged"}));
  EXPECT_EQ(s.value().labels[1].second, "a\"b");
  auto plain = parse_series("queue_depth");
  ASSERT_TRUE(plain.is_ok());
  EXPECT_TRUE(plain.value().labels.empty());
  const std::pair<const char*, const char*> bad[] = {
      {"9lives", "not a Prometheus name"},
      {"a:b", "not a Prometheus name"},
      {"x{a=b}", "quoted value"},
      {"x{a=\"b\"", "end with '}'"},
      {"x{a=\"b}", "not closed"},
      {"x{instance=\"y\"}", "is the host's"},
      {"x{plugin_instance=\"y\"}", "is the host's"},
      {"x{a=\"1\",a=\"2\"}", "twice"},
      {"x{a=\"1\" b=\"2\"}", "separated by ','"},
      {"x{a=\"\\q\"}", "bad escape"},
      {"x y", "not a Prometheus name"},
  };
  for (const auto& [text, why] : bad) {
    auto r = parse_series(text);
    ASSERT_FALSE(r.is_ok()) << text;
    EXPECT_NE(r.status().message().find(why), std::string::npos)
        << text << ": " << r.status().message();
  }
  std::string many = "x{";
  for (int i = 0; i < 9; ++i) many += (i ? ",l" : "l") + std::to_string(i) + "=\"v\"";
  EXPECT_FALSE(parse_series(many + "}").is_ok()) << "more than kMaxPluginLabels";
  EXPECT_FALSE(parse_series("x{a=\"" + std::string(600, 'v') + "\"}").is_ok());
}

TEST(Histogram, CountsEachObservationInItsFirstBucketAndTheRestAbove) {
  Histogram h({0.001, 0.01});
  for (double v : {0.0005, 0.001, 0.002, 0.5}) h.observe(v);
  EXPECT_EQ(h.counts(), (std::vector<std::uint64_t>{2, 1}));
  EXPECT_EQ(h.over(), 1u);
  EXPECT_DOUBLE_EQ(h.sum(), 0.5035);
}

}  // namespace
}  // namespace patronus::metrics
