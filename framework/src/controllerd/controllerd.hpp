// patronus-controller as a library: its YAML config, the fleet store, the controller's TLS
// identity, the controller core bound to the site channel (WebSocket over TLS) and to the admin
// socket that `patronus controller ...` speaks. The executable only parses its command line.
// Private to the project.
#pragma once

#include <cstdint>
#include <string>

#include "patronus/util/status.hpp"

namespace patronus::controllerd {

struct Config {
  std::string listen = "0.0.0.0:7443";  // the site channel
  std::string state_db;                 // the fleet store (SQLite)
  std::string identity_dir;             // controller.key / controller.crt (made at first start)
  std::string admin_socket = "/run/patronus/controller.sock";  // owner-only
  bool require_approval = false;
  std::int64_t debounce_ms = 500;
  std::int64_t max_wait_ms = 3000;
  std::int64_t idle_timeout_ms = 30000;  // a silent site session is closed after this
  std::uint32_t max_sites = 10000;
  std::string log_level = "info";
};

// Unknown keys, wrong types and bad values are errors naming the key and line. Relative paths
// resolve against `base_dir`.
Result<Config> parse_config(const std::string& yaml_text, const std::string& base_dir);

struct Options {
  std::string config_path;
  bool check_only = false;
  double run_for_s = 0;
};

constexpr int kExitOk = 0, kExitRuntime = 1, kExitConfig = 2;
int run(const Options& options);

}  // namespace patronus::controllerd
