// Typed plugin config (YAML -> the plugin's Protobuf message) and patronusd's config file.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include "patronus/core/config_schema.hpp"
#include "patronus/core/daemon_config.hpp"
#include "patronus/core/plugin_host.hpp"
#include "test_support.hpp"

namespace {

using namespace patronus;

class PingpongSchema : public ::testing::Test {
 protected:
  void SetUp() override {
    auto lib = reg_.load_file(patronus::test::test_plugin_dir() + "/libpatronus-pingpong.so");
    ASSERT_TRUE(lib.is_ok()) << lib.status().to_string();
    schema_ = lib.value()->schema();
    ASSERT_NE(schema_, nullptr);
  }
  std::string error_of(const std::string& yaml) {
    auto r = schema_->text_to_bytes(yaml, "plugins[0].config");
    EXPECT_FALSE(r.is_ok()) << yaml;
    return r.is_ok() ? "" : r.status().message();
  }
  core::PluginRegistry reg_;
  const core::ConfigSchema* schema_ = nullptr;
};

TEST_F(PingpongSchema, ValidYamlBecomesTheMessage) {
  auto bytes = schema_->text_to_bytes(
      "listen: 127.0.0.1:7000\npeer: '[::1]:7001'\ninterval_ms: 250\ncount: 3\npath_id: 9\n", "c");
  ASSERT_TRUE(bytes.is_ok()) << bytes.status().to_string();
  auto json = schema_->bytes_to_json(bytes.value());
  ASSERT_TRUE(json.is_ok());
  EXPECT_EQ(
      json.value(),
      "{\"listen\":\"127.0.0.1:7000\",\"peer\":\"[::1]:7001\",\"interval_ms\":250,\"count\":3,"
      "\"path_id\":\"9\"}");
}

TEST_F(PingpongSchema, FieldErrorsNameThePathReasonAndLine) {
  EXPECT_EQ(error_of("listen: a\npeer: b\ncount: 3\n\ntimeout_ms: [x]"),
            "plugins[0].config.timeout_ms: expected a uint32 value, got a list (line 5)");
  EXPECT_EQ(error_of("listen: a\nintervalms: 5"),
            "plugins[0].config.intervalms: unknown field (patronus.pingpong.v1.Config has: listen, "
            "peer, interval_ms, count, payload_size, timeout_ms, path_id) (line 2)");
  EXPECT_EQ(error_of("interval_ms: -5"),
            "plugins[0].config.interval_ms: expected an unsigned integer, got '-5' (line 1)");
  EXPECT_EQ(error_of("interval_ms: 99999999999"),
            "plugins[0].config.interval_ms: expected an unsigned integer in [0, 4294967295], got "
            "'99999999999' (line 1)");
  EXPECT_EQ(error_of("listen: [1, 2]"),
            "plugins[0].config.listen: expected a string value, got a list (line 1)");
  EXPECT_EQ(error_of("listen: a\ninterval_ms: 0\ninterval_ms: 5"),
            "plugins[0].config.interval_ms: given twice (first on line 2) (line 3)");
  EXPECT_EQ(
      error_of("- just\n- a list"),
      "plugins[0].config: expected a map with the fields of patronus.pingpong.v1.Config (line 1)");
}

TEST_F(PingpongSchema, NullMeansAllDefaults) {
  auto bytes = schema_->text_to_bytes("", "c");
  ASSERT_TRUE(bytes.is_ok());
  EXPECT_TRUE(bytes.value().empty());
}

TEST(ConfigSchema, RejectsGarbageDescriptorSets) {
  const std::uint8_t junk[] = {0xff, 0xff, 0xff, 0x01};
  auto s = core::ConfigSchema::build("x.Y", junk, sizeof junk);
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.status().message().find("FileDescriptorSet"), std::string::npos);
}

const char* kGood = R"(site: hq
state_db: state/hq.db
plugin_dir: /opt/patronus/plugins
log_level: warn
seed: 42
plugins:
  - plugin: pingpong
    name: probe-branch
    config:
      listen: 0.0.0.0:7000
  - plugin: scoring
)";

TEST(DaemonConfig, ParsesAndResolvesRelativePaths) {
  auto c = core::parse_daemon_config(kGood, "/etc/patronus");
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  EXPECT_EQ(c.value().site, "hq");
  EXPECT_EQ(c.value().state_db, "/etc/patronus/state/hq.db");
  EXPECT_EQ(c.value().plugin_dir, "/opt/patronus/plugins");
  EXPECT_EQ(c.value().log_level, "warn");
  EXPECT_EQ(c.value().seed, 42u);
  EXPECT_EQ(c.value().control_socket, "/run/patronus/patronusd.sock");  // the default
  auto off = core::parse_daemon_config(std::string(kGood) + "control_socket: none\n", "/etc");
  ASSERT_TRUE(off.is_ok()) << off.status().to_string();
  EXPECT_EQ(off.value().control_socket, "");
  auto rel =
      core::parse_daemon_config(std::string(kGood) + "control_socket: run/hq.sock\n", "/etc");
  ASSERT_TRUE(rel.is_ok()) << rel.status().to_string();
  EXPECT_EQ(rel.value().control_socket, "/etc/run/hq.sock");
  ASSERT_EQ(c.value().plugins.size(), 2u);
  EXPECT_EQ(c.value().plugins[0].instance, "probe-branch");
  EXPECT_EQ(c.value().plugins[1].instance, "scoring");
  EXPECT_EQ((*c.value().plugins[0].config)["listen"].as<std::string>(), "0.0.0.0:7000");
}

std::string daemon_error(const std::string& yaml) {
  auto c = core::parse_daemon_config(yaml, "/");
  EXPECT_FALSE(c.is_ok()) << yaml;
  return c.is_ok() ? "" : c.status().message();
}

TEST(DaemonConfig, ErrorsNameKeyAndLine) {
  EXPECT_EQ(daemon_error("site: hq\nstate_db: x\nplugin_dir: y\nsurprise: 1\n"),
            "line 4: surprise: unknown field (patronus.daemon.v1.DaemonFile has: site, state_db, "
            "plugin_dir, log_level, control_socket, flush_interval_ms, seed, plugins, "
            "policy_inventory, runtime, controller, http_listen, log_format)");
  EXPECT_EQ(daemon_error("site: a\nstate_db: x\nplugin_dir: y\ncontrol_socket: " +
                         std::string(120, 'x') + "\n"),
            "line 4: control_socket: '/" + std::string(120, 'x') +
                "' is longer than 107 bytes (a unix socket's limit)");
  EXPECT_EQ(daemon_error("state_db: x\nplugin_dir: y\n"), "line 1: site: required");
  EXPECT_EQ(daemon_error("site: a\nstate_db: x\nplugin_dir: y\npolicy_inventory: inv.yaml\n"),
            "line 4: policy_inventory: expected a list");
  EXPECT_EQ(daemon_error("site: a\nstate_db: x\nplugin_dir: y\npolicy_inventory: [[a]]\n"),
            "line 4: policy_inventory[0]: expected a string value, got a list");
  EXPECT_EQ(daemon_error("site: a\nstate_db: x\nplugin_dir: y\nflush_interval_ms: soon\n"),
            "line 4: flush_interval_ms: expected an integer, got 'soon'");
  EXPECT_EQ(daemon_error("site: a\nstate_db: x\nplugin_dir: y\nflush_interval_ms: 5\n"),
            "line 4: flush_interval_ms: expected an integer in [10, 60000], got 5");
  EXPECT_EQ(daemon_error("site: a\nstate_db: x\nplugin_dir: y\nseed: -1\n"),
            "line 4: seed: expected an unsigned integer, got '-1'");
  EXPECT_EQ(daemon_error("site: HQ!\nstate_db: x\nplugin_dir: y\n"),
            "line 1: site: 'HQ!' may contain only lowercase letters, digits and '-'");
  EXPECT_EQ(daemon_error("site: a\nstate_db: x\nplugin_dir: y\nlog_level: loud\n"),
            "line 4: log_level: 'loud' is not one of debug, info, warn, error");
  EXPECT_EQ(daemon_error("site: a\nstate_db: x\nplugin_dir: y\nplugins:\n  - plugin: p\n  - "
                         "plugin: p\n"),
            "line 6: plugins[1].name: instance 'p' is configured twice");
  EXPECT_EQ(
      daemon_error("site: a\nstate_db: x\nplugin_dir: y\nplugins:\n  - plugin: p\n    "
                   "colour: red\n"),
      "line 6: plugins[0].colour: unknown field (patronus.daemon.v1.Plugin has: plugin, name, "
      "config)");
  EXPECT_EQ(daemon_error("site: a\nstate_db: x\nplugin_dir: y\nplugins:\n  - plugin: p\n    "
                         "config: [1]\n"),
            "line 6: plugins[0].config: expected a map");
  EXPECT_EQ(daemon_error("site: a\nstate_db: x\nplugin_dir: y\nplugins:\n  - plugin: p\n"
                         "runtime:\n  sites_file: s\n  keys_dir: k\n  probe: p\n  scorer: p\n"
                         "  tick_ms: 0\n"),
            "line 11: runtime.tick_ms: expected an integer in [1, 10000], got 0");
  EXPECT_NE(daemon_error("site: [unclosed").find("not valid YAML"), std::string::npos);
  // A key given twice is refused, not silently overridden (here and in a plugin's config).
  EXPECT_EQ(daemon_error("site: a\nsite: b\nstate_db: x\nplugin_dir: y\n"),
            "line 2: site: given twice (first on line 1)");
  EXPECT_EQ(daemon_error("site: a\nstate_db: x\nplugin_dir: y\nruntime:\n  sites_file: s\n"
                         "  keys_dir: k\n  keys_dir: j\n"),
            "line 7: runtime.keys_dir: given twice (first on line 6)");
}

}  // namespace

namespace {

// runtime.liveness: further probe instances gating the paths (e.g. BFD), each a plugin instance
// named once, not the probe itself.
TEST(DaemonConfig, RuntimeLivenessNamesProbeInstances) {
  const std::string base = std::string(kGood) +
                           "  - plugin: probes\n  - plugin: bfd\n"
                           "runtime:\n  sites_file: s.yaml\n  keys_dir: k\n  probe: probes\n"
                           "  scorer: scoring\n";
  auto c = core::parse_daemon_config(base + "  liveness: [bfd]\n", "/");
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  EXPECT_EQ(c.value().runtime->liveness, std::vector<std::string>{"bfd"});
  EXPECT_NE(daemon_error(base + "  liveness: [nope]\n")
                .find("runtime.liveness[0]: no plugin "
                      "instance 'nope' in plugins"),
            std::string::npos);
  EXPECT_NE(daemon_error(base + "  liveness: [bfd, bfd]\n")
                .find("runtime.liveness[1]: 'bfd' is "
                      "named twice"),
            std::string::npos);
  EXPECT_NE(daemon_error(base + "  liveness: [probes]\n").find("named twice"), std::string::npos);
  EXPECT_NE(daemon_error(base + "  liveness: bfd\n").find("runtime.liveness: expected a list"),
            std::string::npos);
}

// runtime.transports: a transport kind per instance, for a site whose endpoints use several.
TEST(DaemonConfig, RuntimeTransportsMapKindsToInstances) {
  const std::string base = std::string(kGood) +
                           "  - plugin: probes\n  - {plugin: wireguard, name: wg}\n"
                           "  - {plugin: ipsec, name: ike}\n"
                           "runtime:\n  sites_file: s.yaml\n  keys_dir: k\n  probe: probes\n"
                           "  scorer: scoring\n";
  auto c = core::parse_daemon_config(base + "  transports: {wireguard: wg, ipsec: ike}\n", "/");
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  EXPECT_EQ(c.value().runtime->transports.at("ipsec"), "ike");
  EXPECT_EQ(c.value().runtime->dataplane, "linux");  // tunnels: steered by default
  EXPECT_NE(
      daemon_error(base + "  transports: {gre: wg}\n")
          .find("runtime.transports[gre]: 'gre' is not a transport (one of: wireguard, ipsec)"),
      std::string::npos);
  EXPECT_NE(daemon_error(base + "  transports: {ipsec: nope}\n")
                .find("runtime.transports[ipsec]: no plugin instance 'nope' in plugins (they are: "
                      "probe-branch, scoring, probes, wg, ike)"),
            std::string::npos);
  EXPECT_NE(daemon_error(base + "  transports: [wg]\n").find("runtime.transports: expected a map"),
            std::string::npos);
}

}  // namespace
