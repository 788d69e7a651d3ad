// patronusd's configuration file (YAML). Unknown keys, wrong types and bad values are errors
// naming the key path and line; nothing is started on error.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "patronus/util/status.hpp"

namespace patronus::core {

struct PluginSpec {
  std::string plugin;       // the plugin's descriptor name
  std::string instance;     // unique instance name (defaults to the plugin name)
  std::string config_yaml;  // the `config:` subtree re-emitted as YAML ("" if absent)
  std::string path;         // "plugins[2]" for error messages
};

struct DaemonConfig {
  std::string site;        // site name (DNS label)
  std::string state_db;    // SQLite file
  std::string plugin_dir;  // directory scanned for lib*.so
  std::string log_level = "info";
  std::int64_t flush_interval_ms = 1000;  // batched writes to the state database
  std::optional<std::uint64_t> seed;      // randomness seed (default: from the OS)
  std::vector<PluginSpec> plugins;
  // Namespace and Pod manifests handed to policy plugins with the stored NetworkPolicies.
  std::vector<std::string> policy_inventory;
};

// `base_dir` resolves relative state_db / plugin_dir paths (the config file's directory).
Result<DaemonConfig> parse_daemon_config(const std::string& yaml_text, const std::string& base_dir);

}  // namespace patronus::core
