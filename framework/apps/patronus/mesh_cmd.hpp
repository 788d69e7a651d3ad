// `patronus keys ...` and `patronus mesh ...`: WireGuard keys, tunnel plans and topology analysis.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

namespace patronus::cli {

struct MeshCommands {
  CLI::App* keys_generate = nullptr;
  CLI::App* keys_public = nullptr;
  CLI::App* keys_rotate = nullptr;
  std::string rotate_site, rotate_endpoint;
  bool rotate_commit = false;
  CLI::App* plan = nullptr;
  CLI::App* analyze = nullptr;
  bool json = false;
  std::string sites_file;
  std::string topology = "full-mesh";
  std::string hubs;  // comma-separated
  int k = 2;
  std::string db;
  std::string keys_dir;
  std::string wg_config_dir;
  std::string only_site;
  std::string key_path_on_site = "/etc/patronus/keys";
  std::vector<std::string> pairs;  // "a,b"
  std::vector<std::string> routes;
  std::vector<std::string> down;
};

void register_mesh_commands(CLI::App& app, MeshCommands& m);
// Runs the parsed command and returns its exit code, or -1 if none of these commands was given.
int run_mesh_commands(MeshCommands& m);

}  // namespace patronus::cli
