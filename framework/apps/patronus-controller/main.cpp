// patronus-controller: the fleet's controller. Sites enrol with one-time tokens and dial in over
// WebSocket/TLS; each gets its SiteConfig and every new version of it; operators change the fleet
// with `patronus controller ...` over the local admin socket. A thin shell over
// framework/src/controllerd.
#include <CLI/CLI.hpp>
#include <iostream>
#include <string>

#include "controllerd.hpp"

int main(int argc, char** argv) {
  CLI::App app{"patronus-controller: the Patronus fleet controller"};
  patronus::controllerd::Options options;
  app.add_option("--config,-c", options.config_path, "YAML configuration file");
  app.add_flag("--routes", options.print_routes,
               "print the operator API's routes (method, path, least role) and exit");
  app.add_flag("--check", options.check_only,
               "validate the configuration and exit: 0 valid, 2 not");
  app.add_option("--run-for", options.run_for_s,
                 "stop cleanly after this many seconds (0: until signalled)")
      ->check(CLI::Range(0.0, 1e7));
  auto* init = app.add_subcommand(
      "init", "create the operator API's first admin (the password from stdin or a file)");
  init->add_option("--admin", options.init_admin, "the admin's user name")->required();
  init->add_option("--password-file", options.password_file,
                   "a file (owner-only) holding the password; '-' or none: standard input");
  app.set_version_flag("--version", "patronus-controller 0.1.0");
  CLI11_PARSE(app, argc, argv);
  if (options.config_path.empty() && !options.print_routes) {
    std::cerr << "patronus-controller: --config is required" << std::endl;
    return patronus::controllerd::kExitConfig;
  }
  return patronus::controllerd::run(options);
}
