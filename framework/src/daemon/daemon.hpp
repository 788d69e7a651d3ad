// patronusd as a library: read the daemon's YAML file into a SiteConfig, host the site on the real
// network (SiteHost over Boost.Asio, Linux policy routing, the state database, the control
// socket), apply a re-read file on SIGHUP, stop on SIGTERM/SIGINT. The executable only parses its
// command line. Private to the project.
#pragma once

#include <string>

#include "patronus/core/daemon_config.hpp"
#include "patronus/core/plugin_host.hpp"
#include "patronus/site/site_config.hpp"

namespace patronus::daemon {

constexpr int kExitOk = 0;
constexpr int kExitRuntime = 1;
constexpr int kExitConfig = 2;

// The daemon file's content as a SiteConfig without the plan (the plan is made with the state
// database): every plugin instance's YAML converted to its typed config and judged by the plugin
// itself (a throwaway instance), the classes validated, the inventory files read. The plugins must
// be loaded in `registry`. Errors name the field and line.
Result<site::SiteConfig> site_config_of(const core::DaemonConfig& config,
                                        const core::PluginRegistry& registry);

struct Options {
  std::string config_path;
  bool check_only = false;  // validate, print a summary, start nothing
  double run_for_s = 0;     // stop after this long (0: until signalled)
};

// The process holds private keys and PSKs: no core dump of it, and no ptrace or /proc reading of
// it by another user (PR_SET_DUMPABLE 0). run() calls it first.
Status keep_secrets_out_of_dumps();

// Runs the daemon; returns the process exit code (kExit*). Messages go to stderr.
int run(const Options& options);

}  // namespace patronus::daemon
