// patronusd: the Patronus router daemon. Reads a YAML config into the site's SiteConfig, hosts
// the site on the real network (plugins, the site runtime over its part of the mesh plan, Linux
// policy routing, the state database, the control socket), applies a re-read config on SIGHUP and
// stops cleanly on SIGTERM/SIGINT. A thin shell over framework/src/daemon.
#include <CLI/CLI.hpp>
#include <string>

#include "daemon.hpp"
#include "patronus/abi/plugin_abi.h"

int main(int argc, char** argv) {
  CLI::App app{"patronusd: the Patronus SD-WAN router daemon"};
  patronus::daemon::Options options;
  app.add_option("--config,-c", options.config_path, "YAML configuration file")->required();
  app.add_flag("--check", options.check_only,
               "validate the configuration (keys, plugins and their configs, classes, the sites "
               "file) and exit: 0 valid, 2 not; nothing is started, opened or written");
  app.add_option("--run-for", options.run_for_s,
                 "stop cleanly after this many seconds (0: until signalled)")
      ->check(CLI::Range(0.0, 1e7));
  app.set_version_flag("--version", std::string("patronusd ") + "0.1.0 (plugin ABI " +
                                        std::to_string(PATRONUS_ABI_VERSION_MAJOR) + "." +
                                        std::to_string(PATRONUS_ABI_VERSION_MINOR) + ")");
  CLI11_PARSE(app, argc, argv);
  return patronus::daemon::run(options);
}
