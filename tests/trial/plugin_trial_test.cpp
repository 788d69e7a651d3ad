// PluginTrial (patronus plugins try, a vendor's plugin test): each kind exercised through the
// daemon's loader, and every number is what the plugin itself computed or reported.
#include "patronus/trial/plugin_trial.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "test_support.hpp"

namespace {

using namespace patronus;
using patronus::trial::PluginTrial;

std::string shipped(const std::string& name) {
  return test::plugin_dir() + "/libpatronus-" + name + ".so";
}

// A key in a plugin's configuration is not shown by `plugins try` (security item 7): the summary
// has it redacted; the key id, the type and other fields stay.
TEST(PluginTrial, SecretsInTheConfigurationAreRedacted) {
  auto t = PluginTrial::open(shipped("bfd"),
                             "auth: {type: meticulous-keyed-sha1, key_id: 4, key: hunter2-s3cret}");
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  const std::string& c = t.value()->summary().config_json;
  EXPECT_EQ(c.find("hunter2"), std::string::npos) << c;
  EXPECT_NE(c.find("(redacted)"), std::string::npos) << c;
  EXPECT_NE(c.find("\"key_id\":4"), std::string::npos) << c;
}

TEST(PluginTrial, AScorerScoresEachWindowWithItsConfiguration) {
  auto t = PluginTrial::open(shipped("scoring"), "latency_weight: 80");
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  EXPECT_EQ(t.value()->summary().kind, "scorer");
  EXPECT_EQ(t.value()->summary().config_json, R"({"latency_weight":80})");
  trial::Window w;
  w.latency_ms = 40, w.jitter_ms = 2, w.loss_pct = 0.5, w.bandwidth_mbps = 100;
  auto s = t.value()->score(w);
  ASSERT_TRUE(s.is_ok()) << s.status().to_string();
  // 100 - (40/200*80 + 2/50*20 + 0.5*30 + (1000-100)/1000*10)
  EXPECT_DOUBLE_EQ(s.value().score, 100 - (16 + 0.8 + 15 + 9));
  EXPECT_EQ(s.value().state, "degraded");
  w.bandwidth_unknown = true;  // unknown capacity costs nothing
  EXPECT_DOUBLE_EQ(t.value()->score(w).value().score, 100 - (16 + 0.8 + 15));
  // A new configuration replaces the instance.
  ASSERT_TRUE(t.value()->set_config("").is_ok());
  EXPECT_DOUBLE_EQ(t.value()->score(w).value().score, 100 - (8 + 0.8 + 15));
}

TEST(PluginTrial, ConfigErrorsNameTheFieldAndTheLineAndChangeNothing) {
  auto t = PluginTrial::open(shipped("scoring"), "latency_weight: 80");
  ASSERT_TRUE(t.is_ok());
  auto s = t.value()->set_config("loss_weight: 3\nlatency_wieght: 3\n");
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("config.latency_wieght: unknown field"), std::string::npos)
      << s.message();
  EXPECT_NE(s.message().find("(line 2)"), std::string::npos) << s.message();
  EXPECT_EQ(t.value()->summary().config_json, R"({"latency_weight":80})");
  // The plugin's own refusal (its configure()) comes at once, not at the first call, and the
  // previous configuration stays.
  auto refused = t.value()->set_config("latency_weight: -1");
  ASSERT_FALSE(refused.is_ok());
  EXPECT_NE(refused.message().find("plugin 'scoring' refused its configuration"), std::string::npos)
      << refused.message();
  EXPECT_NE(refused.message().find("weights must be finite and >= 0"), std::string::npos)
      << refused.message();
  EXPECT_EQ(t.value()->summary().config_json, R"({"latency_weight":80})");
  EXPECT_TRUE(t.value()->score({}).is_ok());
  auto open = PluginTrial::open(shipped("scoring"), "latency_weight: -1");
  ASSERT_FALSE(open.is_ok());
  EXPECT_NE(open.status().message().find("weights must be finite"), std::string::npos);
}

TEST(PluginTrial, APolicyPluginAnswersFlowsFromItsDocument) {
  auto t = PluginTrial::open(shipped("netpolicy"));
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  ASSERT_TRUE(t.value()
                  ->load_policy(R"(apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web}}
status: {podIP: 10.0.0.10}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: shop, labels: {app: db}}
status: {podIP: 10.0.0.20}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-from-web, namespace: shop}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: web}}}]
    ports: [{port: 5432}]
)")
                  .is_ok());
  EXPECT_TRUE(t.value()->allows({"tcp", "10.0.0.10", "10.0.0.20:5432"}).value());
  EXPECT_FALSE(t.value()->allows({"tcp", "10.0.0.10", "10.0.0.20:80"}).value());
  EXPECT_FALSE(t.value()->allows({"udp", "10.0.0.10", "10.0.0.20:5432"}).value());
  auto bad = t.value()->allows({"icmpish", "10.0.0.10", "10.0.0.20:1"});
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("protocol 'icmpish'"), std::string::npos);
  EXPECT_FALSE(t.value()->load_policy("kind: [").is_ok());
}

TEST(PluginTrial, AProbeInVirtualTimeMeasuresTheLinkItWasGiven) {
  auto t = PluginTrial::open(shipped("probes"));
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  trial::ProbeRun run;
  run.seconds = 3;
  run.one_way_delay_ms = 12.5;
  run.loss_pct = 10;
  run.seed = 7;
  auto r = t.value()->run_probe(run);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  const auto& rep = r.value();
  ASSERT_GT(rep.received, 20u);
  EXPECT_GT(rep.lost, 0u);  // 10 % each way over ~60 probes
  EXPECT_DOUBLE_EQ(rep.rtt_min_ms, 25.0);
  EXPECT_DOUBLE_EQ(rep.rtt_max_ms, 25.0);
  ASSERT_FALSE(rep.liveness.empty());
  EXPECT_EQ(rep.liveness.front().state, "up");
  // The same seed gives the same run.
  auto again = t.value()->run_probe(run);
  ASSERT_TRUE(again.is_ok());
  ASSERT_EQ(again.value().samples.size(), rep.samples.size());
  for (std::size_t i = 0; i < rep.samples.size(); ++i) {
    EXPECT_EQ(again.value().samples[i].lost, rep.samples[i].lost) << i;
    EXPECT_EQ(again.value().samples[i].t_ms, rep.samples[i].t_ms) << i;
  }
}

TEST(PluginTrial, ACutShowsTheProbesLivenessGoingDownAndUp) {
  auto t = PluginTrial::open(shipped("bfd"), "desired_min_tx_ms: 50\nrequired_min_rx_ms: 50");
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  trial::ProbeRun run;
  run.seconds = 5;
  run.one_way_delay_ms = 1;
  run.cut_at_s = 2;
  run.cut_for_s = 1;
  auto r = t.value()->run_probe(run);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_TRUE(r.value().samples.empty());  // BFD reports liveness only, never latency
  std::vector<std::string> states;
  double down_at = 0;
  for (const auto& l : r.value().liveness) {
    states.push_back(l.state);
    if (l.state == "down") down_at = l.t_ms;
  }
  ASSERT_EQ(states, (std::vector<std::string>{"up", "down", "up"}));
  EXPECT_GT(down_at, 2000);
  EXPECT_LE(down_at, 2000 + 150 + 1);  // detection time 3 x 50 ms after the last packet
}

TEST(PluginTrial, AProbeInRealTimeRunsOnLoopback) {
  auto t = PluginTrial::open(shipped("probes"), "port: " + std::to_string(test::free_udp_port()));
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  trial::ProbeRun run;
  run.real_time = true;
  run.seconds = 0.5;
  auto r = t.value()->run_probe(run);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_GT(r.value().received, 3u);
  EXPECT_GT(r.value().rtt_min_ms, 0);
  run.one_way_delay_ms = 5;  // not on a real interface
  auto refused = t.value()->run_probe(run);
  ASSERT_FALSE(refused.is_ok());
  EXPECT_NE(refused.status().message().find("only in virtual time"), std::string::npos);
}

TEST(PluginTrial, WrongKindsAndRefusedFilesSayWhatIsWrong) {
  auto t = PluginTrial::open(shipped("scoring"));
  ASSERT_TRUE(t.is_ok());
  auto r = t.value()->run_probe({});
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("is a scorer, not a probe"), std::string::npos);
  auto refused = PluginTrial::open(test::test_plugin_dir() + "/libpatronus-test-newer-minor.so");
  ASSERT_FALSE(refused.is_ok());
  EXPECT_NE(refused.status().message().find("newer than host ABI"), std::string::npos);
  auto no_config = PluginTrial::open(test::test_plugin_dir() + "/libpatronus-test-good.so", "a: 1");
  ASSERT_FALSE(no_config.is_ok());
  EXPECT_NE(no_config.status().message().find("takes no configuration"), std::string::npos);
}

// The CLI: JSON on stdout, and exit codes 2 for what the user typed, 1 for what was refused.
TEST(PluginsTry, CliPrintsJsonAndUsesTheDocumentedExitCodes) {
  const std::string cli = test::bin_dir() + "/patronus";
  auto ok = test::run({cli, "plugins", "try", shipped("scoring"), "--window",
                       "latency=40,jitter=2,loss=0.5,bandwidth=100", "--json"});
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  auto j = nlohmann::json::parse(ok.out);
  EXPECT_EQ(j["plugin"]["name"], "scoring");
  EXPECT_DOUBLE_EQ(j["scores"][0]["score"].get<double>(), 67.2);
  EXPECT_EQ(j["scores"][0]["state"], "degraded");
  auto probe = test::run(
      {cli, "plugins", "try", shipped("probes"), "--seconds", "1", "--delay-ms", "20", "--json"});
  ASSERT_EQ(probe.exit_code, 0) << probe.err;
  auto p = nlohmann::json::parse(probe.out);
  EXPECT_DOUBLE_EQ(p["summary"]["rtt_avg_ms"].get<double>(), 40.0);
  EXPECT_EQ(p["run"]["time"], "virtual");
  EXPECT_EQ(
      test::run({cli, "plugins", "try", shipped("scoring"), "--window", "latency=x"}).exit_code, 2);
  EXPECT_EQ(test::run({cli, "plugins", "try", shipped("scoring"), "--config-text", "nope: 1",
                       "--window", "latency=1"})
                .exit_code,
            2);
  EXPECT_EQ(test::run({cli, "plugins", "try",
                       test::test_plugin_dir() + "/libpatronus-test-wrong-major.so"})
                .exit_code,
            1);
  // A configuration the plugin refuses (its configure() rejects the weight) is bad input, as a
  // bad option is: 2, before any window runs.
  auto refused_config = test::run({cli, "plugins", "try", shipped("scoring"), "--config-text",
                                   "latency_weight: -1", "--window", "latency=1"});
  EXPECT_EQ(refused_config.exit_code, 2) << refused_config.err;
  EXPECT_NE(refused_config.err.find("plugin 'scoring' refused its configuration"),
            std::string::npos);
  EXPECT_NE(refused_config.err.find("weights must be finite and >= 0"), std::string::npos);
  EXPECT_EQ(test::run({cli, "plugins", "try", shipped("probes"), "--loss", "200"}).exit_code, 2);
  EXPECT_EQ(test::run({cli, "plugins", "try", shipped("probes"), "--real-time", "--delay-ms", "5"})
                .exit_code,
            2);
  EXPECT_EQ(test::run({cli, "plugins", "try", shipped("netpolicy"), "--policy",
                       test::source_dir() + "/examples/netpol/policies.yaml", "--flow",
                       "icmpish,10.0.0.1,10.0.0.2:1"})
                .exit_code,
            2);
  auto transport = test::run({cli, "plugins", "try", shipped("wireguard")});
  EXPECT_EQ(transport.exit_code, 2);
  EXPECT_NE(transport.err.find("transports build real tunnels"), std::string::npos);
}

}  // namespace
