// `patronus sim run FILE`: runs a simulation scenario in ns-3 (sim/) and prints its report.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <vector>

namespace patronus::cli {

struct SimCommands {
  CLI::App* run = nullptr;
  std::string file;
  std::string plugin_dir;
  std::vector<std::string> extra_plugin_dirs;
  std::uint64_t seed = 0;
  std::string variant, trace_file, plot_file;
  bool json = false;
};

void register_sim_commands(CLI::App& app, SimCommands& s, const std::string& default_plugin_dir);
// Runs the parsed command and returns its exit code, or -1 if it was not given.
int run_sim_commands(SimCommands& s);

}  // namespace patronus::cli
