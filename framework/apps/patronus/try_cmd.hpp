// `patronus plugins try FILE`: loads one plugin through the daemon's checks and exercises it by
// kind (patronus::trial::PluginTrial does the work).
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <vector>

namespace patronus::cli {

struct TryCommand {
  CLI::App* cmd = nullptr;
  std::string file, config_file, config_text, policy_file;
  std::vector<std::string> windows, flows;
  double seconds = 5, delay_ms = 0, loss_pct = 0, cut_at_s = 0, cut_for_s = 0;
  bool real_time = false, json = false;
  std::uint64_t seed = 1;
};

void register_try_command(CLI::App& plugins, TryCommand& t);
// Runs the parsed command and returns its exit code, or -1 if it was not given.
int run_try_command(TryCommand& t);

}  // namespace patronus::cli
