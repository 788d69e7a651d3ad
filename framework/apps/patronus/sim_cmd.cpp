#include "sim_cmd.hpp"

#include <unistd.h>

#include <fstream>
#include <iostream>

#include "cli_common.hpp"

#ifdef PATRONUS_HAVE_SIM
#include "runner.hpp"
#include "scenario.hpp"
#endif

namespace patronus::cli {

void register_sim_commands(CLI::App& app, SimCommands& s, const std::string& default_plugin_dir) {
  auto* sim = app.add_subcommand("sim", "simulate a multi-site WAN in ns-3");
  sim->require_subcommand(1);
  s.plugin_dir = default_plugin_dir;
  s.run = sim->add_subcommand("run", "run a scenario file (and its variants) and report");
  s.run->add_option("file", s.file, "scenario YAML (docs/guides/simulation.md)")->required();
  s.run->add_option("--seed", s.seed, "seed (default: the scenario's)");
  s.run->add_option("--variant", s.variant, "run the scenario and only this variant");
  s.run->add_option("--plugin-dir", s.plugin_dir, "directory of the plugin binaries")
      ->capture_default_str();
  s.run->add_option("--extra-plugin-dir", s.extra_plugin_dirs,
                    "also look here (first) for the third-party plugins a scenario names; "
                    "repeatable");
  s.run->add_flag("--json", s.json, "JSON report");
  s.run->add_option("--trace", s.trace_file, "write every path state change and decision here");
  s.run->add_option("--plot", s.plot_file, "draw a timeline PNG with gnuplot");
}

int run_sim_commands(SimCommands& s) {
  if (s.run == nullptr || !s.run->parsed()) return -1;
#ifndef PATRONUS_HAVE_SIM
  std::cerr << "patronus: sim: this build has no simulator (configure with "
               "-DPATRONUS_WITH_NS3=ON and ns-3 installed)"
            << std::endl;
  return kExitUsage;
#else
  auto scenario = sim::load_scenario(s.file);
  if (!scenario.is_ok()) return fail(kExitUsage, scenario.status().message());
  if (!s.plot_file.empty() && s.plot_file.find('\'') != std::string::npos) {
    return fail(kExitUsage, "--plot: the file name may not contain a quote");
  }
  sim::RunOptions o;
  o.plugin_dir = s.plugin_dir;
  o.extra_plugin_dirs = s.extra_plugin_dirs;
  if (s.run->count("--seed")) o.seed = s.seed;
  if (!s.variant.empty()) o.variant = s.variant;
  o.trace = !s.trace_file.empty();
  o.plot = !s.plot_file.empty();
  o.progress = ::isatty(STDERR_FILENO) != 0;
  auto out = sim::run_scenario(scenario.value(), o);
  if (!out.is_ok()) return fail(kExitUsage, out.status().message());
  if (o.trace) {
    std::ofstream t(s.trace_file);
    t << out.value().trace;
    if (!t) return fail(kExitUsage, "--trace: cannot write " + s.trace_file);
  }
  if (o.plot) {
    if (auto st = sim::write_plot(out.value().plots, out.value().report, s.plot_file);
        !st.is_ok()) {
      return fail(kExitUsage, st.message());
    }
  }
  if (s.json) {
    std::cout << out.value().report.dump(2) << std::endl;
  } else {
    std::cout << sim::text_report(out.value().report);
  }
  return out.value().ok ? 0 : 1;
#endif
}

}  // namespace patronus::cli
