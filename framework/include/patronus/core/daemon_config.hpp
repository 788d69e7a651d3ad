// patronusd's configuration file (YAML). Unknown keys, wrong types and bad values are errors
// naming the key path and line; nothing is started on error.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "patronus/util/status.hpp"

namespace YAML {
class Node;
}

namespace patronus::core {

struct PluginSpec {
  std::string plugin;    // the plugin's descriptor name
  std::string instance;  // unique instance name (defaults to the plugin name)
  // The `config:` subtree as parsed, with its marks (errors name the file's lines); null if
  // absent.
  std::shared_ptr<const YAML::Node> config;
  int config_line = 0;  // 1-based line of `config:` (0: absent)
  std::string path;     // "plugins[2]" for error messages
};

// The site runtime (path engine) section. Absent: the daemon only runs its plugins.
struct RuntimeSection {
  std::string sites_file;  // resolved against the config file's directory
  std::string topology = "full-mesh";
  std::vector<std::string> hubs;      // overrides the sites file's hubs
  int k = 2;                          // partial topology
  std::string keys_dir;               // this site's private keys (DIR/<site>/<endpoint>.key)
  std::string probe;                  // probe plugin instance
  std::vector<std::string> liveness;  // further probe instances gating paths (e.g. BFD)
  std::string scorer;                 // default scorer instance
  std::string voice_scorer;           // scorer of the default voice class ("" = scorer)
  // The `classes:` subtree as written, with its lines (null: the default classes).
  std::shared_ptr<const YAML::Node> classes;
  std::string transport;  // transport plugin instance ("" = none: paths exist already)
  // Per transport kind ("wireguard", "ipsec"): the instance building those paths' tunnels, for a
  // site whose endpoints use several (`transports: {wireguard: wg, ipsec: ike}`).
  std::map<std::string, std::string> transports;
  std::string dataplane = "none";    // "linux": policy routing onto the tunnels; "none": log only
  std::uint32_t table_base = 20000;  // first class routing table (and rule priority)
  std::int64_t tick_ms = 100;
  std::int64_t idle_after_ms = 30000;
  std::int64_t flow_idle_ms = 60000;
  std::int64_t metrics_interval_ms = 10000;
  std::uint32_t max_flows = 65536;
  bool store_samples = false;
};

// A site fed by a controller: the plan comes from it, not from a sites file.
struct ControllerSection {
  std::string address;     // host:port
  std::string pin;         // "ed25519:<base64>", checked by the channel
  std::string token_file;  // enrolment token ("" once enrolled, or for a site enrolled before)
  std::string state_dir;   // identity and last config
  std::int64_t report_interval_ms = 5000;
};

inline constexpr const char* kDefaultHttpListen = "127.0.0.1:9474";

struct DaemonConfig {
  std::string site;        // site name (DNS label)
  std::string state_db;    // SQLite file
  std::string plugin_dir;  // directory scanned for lib*.so
  std::string log_level = "info";
  // The control API's unix socket (owner-only); "" runs without one (config: `none`).
  std::string control_socket = "/run/patronus/patronusd.sock";
  std::int64_t flush_interval_ms = 1000;  // batched writes to the state database
  // /metrics, /livez and /readyz over plain HTTP ("" runs without; config: `none`). The default
  // is loopback only; a default port another daemon holds is a warning, a configured one an error.
  std::string http_listen = kDefaultHttpListen;
  bool http_listen_default = true;
  std::string log_format = "text";    // text, logfmt (key=value) or json: a line each, to stderr
  std::optional<std::uint64_t> seed;  // randomness seed (default: from the OS)
  std::vector<PluginSpec> plugins;
  // Namespace and Pod manifests handed to policy plugins with the stored NetworkPolicies.
  std::vector<std::string> policy_inventory;
  std::optional<RuntimeSection> runtime;
  std::optional<ControllerSection> controller;
};

// `base_dir` resolves relative state_db / plugin_dir paths (the config file's directory).
Result<DaemonConfig> parse_daemon_config(const std::string& yaml_text, const std::string& base_dir);

}  // namespace patronus::core
