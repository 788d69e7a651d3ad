// `patronus score`: run a scorer plugin on a window. `patronus status`, `paths list`, `flows
// list` and `decisions`: a site's state, from its running daemon (the control socket) or, with
// --db, from the state database it wrote.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

namespace patronus::cli {

struct PathCommands {
  CLI::App* score = nullptr;
  CLI::App* paths_list = nullptr;
  CLI::App* decisions = nullptr;
  CLI::App* status = nullptr;
  CLI::App* flows_list = nullptr;
  bool verbose = false;
  std::string socket = "/run/patronus/patronusd.sock";
  int timeout_ms = 5000;
  bool json = false;
  double latency = -1, jitter = -1, loss = -1, bandwidth = -1;
  std::string scorer = "scoring";
  std::string plugin_dir;
  std::string config_yaml;  // --config: the scorer's configuration as YAML
  std::string db;           // --db: offline
  std::string sort_by = "score";
  std::size_t limit = 20;
};

void register_path_commands(CLI::App& app, PathCommands& p, const std::string& default_plugin_dir);
// Runs the parsed command and returns its exit code, or -1 if none of these commands was given.
int run_path_commands(PathCommands& p);

}  // namespace patronus::cli
