// `patronus controller ...`: the fleet, through the operator API with the stored login
// (`patronus login`) or an API key from the environment, or through the controller's local
// admin socket with --socket (owner-only: root on the controller's machine): sites
// list|add|remove|approve, token create, topology set, classes set, policy
// apply|delete|list|inventory, plugins set|unset|list, keys rotate, fleet status|paths|decisions.
// --json prints the API's own JSON (the admin protocol's with --socket).
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <vector>

namespace patronus::cli {

struct ControllerCommands {
  CLI::App* root = nullptr;
  CLI::App *sites_list = nullptr, *sites_add = nullptr, *sites_remove = nullptr,
           *sites_approve = nullptr, *token_create = nullptr, *topology_set = nullptr,
           *classes_set = nullptr, *fleet_status = nullptr, *fleet_paths = nullptr,
           *keys_rotate = nullptr, *fleet_decisions = nullptr, *policy_apply = nullptr,
           *policy_delete = nullptr, *policy_list = nullptr, *policy_inventory = nullptr,
           *plugins_set = nullptr, *plugins_unset = nullptr, *plugins_list = nullptr;
  std::string socket = "/run/patronus/controller.sock";
  bool socket_given = false;  // --socket: the local admin socket instead of the API
  int timeout_ms = 10000;
  bool json = false;
  std::string file;  // -f
  std::string name;
  std::string site;
  std::string endpoint;
  std::string ttl = "24h";
  std::string out;  // token create --out FILE
  std::string topology;
  std::vector<std::string> hubs, summary;
  int k = 0;
  std::string mesh_file;                     // topology set -f: overlay: and rules:
  std::vector<std::string> files;            // policy apply|inventory -f (repeatable)
  std::string instance, plugin, plugin_dir;  // plugins set
  bool clear = false;
  std::uint32_t limit = 50;
};

void register_controller_commands(CLI::App& app, ControllerCommands& c,
                                  const std::string& default_plugin_dir);
// Runs the parsed command and returns its exit code, or -1 if none of these commands was given.
int run_controller_commands(ControllerCommands& c);

}  // namespace patronus::cli
