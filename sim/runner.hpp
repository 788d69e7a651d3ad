// Runs a scenario in ns-3: builds the WAN and one SiteApp per site, plays the faults and the
// traffic, and reports, from what the simulated packets and the site runtimes did, how fast each
// fault was detected, how fast each flow failed over, what it lost, and which failovers no fault
// explains. The scenario runs once as written and once per variant, in the same process, with the
// same plugin binaries. Same scenario and seed: byte-identical report (but `wall_seconds`) and
// trace.
//
// No ns-3 header here: the CLI (C++20) includes it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "scenario.hpp"

namespace patronus::sim {

struct RunOptions {
  std::string plugin_dir;  // where the hosted plugins are (libpatronus-<name>.so, hosted_plugins())
  // Where else a scenario's third-party plugins are looked for (before plugin_dir), in order.
  std::vector<std::string> extra_plugin_dirs;
  std::optional<std::uint64_t> seed;   // overrides the scenario's
  std::optional<std::string> variant;  // run the scenario and only this variant
  bool trace = false;                  // keep the trace text
  bool plot = false;                   // sample path scores and flow paths for a plot
  bool progress = false;               // progress lines on stderr
};

// Time series for a plot of one run.
struct PlotData {
  std::vector<std::string> paths;  // names
  struct Sample {
    double t = 0;
    std::vector<double> score;  // by path; NaN while down
  };
  std::vector<Sample> samples;
  std::vector<std::string> flows;
  struct FlowStep {
    double t = 0;
    std::size_t flow = 0;
    int path = -1;  // index into paths, -1 none
  };
  std::vector<FlowStep> steps;
  std::vector<std::pair<double, std::string>> faults;
};

struct RunOutput {
  nlohmann::json report;        // the run as written, with "variants": [...]
  std::string trace;            // with RunOptions::trace
  std::vector<PlotData> plots;  // with RunOptions::plot: the base run, then each variant
  bool ok = true;               // every expectation held
};

Result<RunOutput> run_scenario(const Scenario& scenario, const RunOptions& options);

// The readable report: per run, faults and flows; with variants, a side-by-side table.
std::string text_report(const nlohmann::json& report);

// Writes a gnuplot script and data next to `png` and runs gnuplot (from apt) to draw the
// timeline: path scores and each flow's path over time, faults marked.
Status write_plot(const std::vector<PlotData>& plots, const nlohmann::json& report,
                  const std::string& png);

}  // namespace patronus::sim
