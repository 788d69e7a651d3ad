// `patronus policy ...`: validate Kubernetes NetworkPolicy manifests, compute reachability
// matrices, explain one connection, and keep policies in the state database.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

namespace patronus::cli {

struct PolicyCommands {
  CLI::App* validate = nullptr;
  CLI::App* matrix = nullptr;
  CLI::App* check = nullptr;
  CLI::App* apply = nullptr;
  CLI::App* list = nullptr;
  CLI::App* remove = nullptr;
  CLI::App* enforce = nullptr;
  CLI::App* counters = nullptr;
  std::vector<std::string> files;  // validate / apply
  std::vector<std::string> policies;
  std::vector<std::string> inventory;
  std::vector<std::string> probes;
  std::string db;
  std::string from, to, protocol = "TCP", name;
  int port = 0;
  bool json = false;
  std::string datapath = "userspace";   // matrix: userspace | bpf
  std::vector<std::string> interfaces;  // enforce
  std::string enforcer = "default";     // enforce / counters: the pin name
  int poll_ms = 500;
};

void register_policy_commands(CLI::App& app, PolicyCommands& p);
// The parsed command's exit code, or -1 if none of these commands was given.
int run_policy_commands(PolicyCommands& p);

}  // namespace patronus::cli
