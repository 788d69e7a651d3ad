// patronus-controller as a library: its YAML config, the fleet store, the controller's TLS
// identity, the controller core bound to the site channel (WebSocket over TLS) and to the admin
// socket that `patronus controller ...` speaks. The executable only parses its command line.
// Private to the project.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

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
  // The operator API (HTTPS): off unless `api:` gives where it listens.
  struct Api {
    std::string listen;                                        // "" off
    std::vector<std::string> names{"localhost", "127.0.0.1"};  // the made certificate's
    std::string tls_cert, tls_key;  // an operator's own (both or neither)
    std::int64_t audit_retention_days = 90;
    std::int64_t access_token_ttl_s = 900;
    std::int64_t refresh_token_ttl_s = 7 * 24 * 3600;
    std::uint32_t max_connections = 1024;
    std::uint32_t max_streams = 512;
    std::int64_t request_timeout_ms = 10000;  // a request must arrive whole within this
    // The dashboard's files: "" the ones beside bin/ (share/patronus/ui, installed or built)
    // when present; "none" no dashboard.
    std::string ui_dir;
  } api;
};

// Unknown keys, wrong types and bad values are errors naming the key and line. Relative paths
// resolve against `base_dir`.
Result<Config> parse_config(const std::string& yaml_text, const std::string& base_dir);

struct Options {
  std::string config_path;
  bool check_only = false;
  double run_for_s = 0;
  // `init`: the first admin of the operator API, with a password read from `password_file`
  // ("-" or "": standard input), never from the command line.
  std::string init_admin;
  std::string password_file;
  // Print the operator API's routes (method, path, least role) as JSON lines and exit.
  bool print_routes = false;
};

constexpr int kExitOk = 0, kExitRuntime = 1, kExitConfig = 2;
int run(const Options& options);

}  // namespace patronus::controllerd
