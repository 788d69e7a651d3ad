// `patronus score`, `patronus paths list` and `patronus decisions`: run a scorer plugin on a
// window, and read a site's path states and decisions back from its state database.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

namespace patronus::cli {

struct PathCommands {
  CLI::App* score = nullptr;
  CLI::App* paths_list = nullptr;
  CLI::App* decisions = nullptr;
  bool json = false;
  double latency = -1, jitter = -1, loss = -1, bandwidth = -1;
  std::string scorer = "scoring";
  std::string plugin_dir;
  std::string config_yaml;  // --config: the scorer's configuration as YAML
  std::string db = "patronus.db";
  std::string sort_by = "score";
  std::size_t limit = 20;
};

void register_path_commands(CLI::App& app, PathCommands& p, const std::string& default_plugin_dir);
// Runs the parsed command and returns its exit code, or -1 if none of these commands was given.
int run_path_commands(PathCommands& p);

}  // namespace patronus::cli
