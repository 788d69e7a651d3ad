// Trying one plugin without a deployment: loaded through the daemon's own checks (file, entry
// point, Protobuf names, descriptor, config schema) and exercised by kind. This is what
// `patronus plugins try` runs and what a vendor's plugin test links (installed as
// libpatronus-trial, `Patronus::trial` / `pkg-config patronus-sdk`).
//
//   auto trial = patronus::trial::PluginTrial::open("libacme-scorer.so", "latency_ref_ms: 150");
//   auto s = trial.value()->score({/*latency_ms*/ 40, /*jitter_ms*/ 2, /*loss_pct*/ 0.5});
//
// Units are the ABI's: milliseconds, percent 0-100, Mbit/s. Nothing here is invented: a probe
// trial reports what the plugin itself reported, and nothing when it reported nothing.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "patronus/util/status.hpp"

#if defined(PATRONUS_TRIAL_BUILD)
#define PATRONUS_TRIAL_API __attribute__((visibility("default")))
#else
#define PATRONUS_TRIAL_API
#endif

namespace patronus::trial {

struct PluginSummary {
  std::string file;
  std::string name;
  std::string version;
  std::string kind;  // "transport", "probe", "scorer", "policy"
  std::uint32_t abi_major = 0;
  std::uint32_t abi_minor = 0;
  std::string config_type;  // empty: takes no configuration
  std::string config_json;  // the configuration the plugin was given, as JSON
};

// A scorer's input: one metrics window (patronus_metrics_window).
struct Window {
  double latency_ms = 0;      // mean round-trip time of the received probes
  double jitter_ms = 0;       // mean |difference| of consecutive round-trip times
  double loss_pct = 0;        // 0-100
  double bandwidth_mbps = 0;  // the path's capacity
  bool bandwidth_unknown = false;
  std::uint32_t samples = 20;  // probes in the window, lost ones included (0: no data yet)
  std::uint32_t lost = 0;      // lost probes among `samples`
  std::string class_name;      // the class asking ("" none)
  std::uint32_t priority = 2;  // PATRONUS_PRIORITY_* (0 critical .. 4 best effort)
};

struct Score {
  double score = 0;   // 0-100
  std::string state;  // "up", "degraded", "down"
};

// A policy plugin's input: protocol "tcp", "udp", "sctp" or an IANA number; addresses as
// "10.0.0.1" or "10.0.0.1:80" / "[fd00::1]:80" (the destination port matters to NetworkPolicy).
struct Flow {
  std::string protocol = "tcp";
  std::string src;
  std::string dst;
};

// A probe trial: two instances of the plugin, on 127.0.0.1 ("near") and 127.0.0.2 ("far"), each
// watching the path to the other, so the far one answers the near one's probes as it would on a
// remote site. Virtual time (the default) runs on an in-process simulated link with the given
// delay and loss, as fast as the CPU allows and the same for the same seed; real time runs on the
// loopback interface with real sockets (no delay, loss or cut can be added there: asking for one
// is an error).
struct ProbeRun {
  double seconds = 5;
  bool real_time = false;
  std::optional<double> one_way_delay_ms;  // virtual time only; unset: 10 ms
  double loss_pct = 0;                     // virtual time only, each direction
  std::uint64_t seed = 1;
  // Cut the link (both directions) from cut_at_s for cut_for_s seconds (virtual time only;
  // cut_for_s 0: no cut). Shows the plugin's liveness verdicts going down and up.
  double cut_at_s = 0;
  double cut_for_s = 0;
};

struct ProbeSample {
  double t_ms = 0;  // when the near instance reported it, from the start of the run
  std::uint64_t sequence = 0;
  bool lost = false;
  double rtt_ms = 0;  // 0 when lost
  bool reordered = false;
  bool late = false;
};

struct ProbeLiveness {
  double t_ms = 0;
  std::string state;  // "up" or "down"
  std::uint32_t diagnostic = 0;
  double detect_time_ms = 0;
};

struct ProbeEvent {
  double t_ms = 0;
  std::string instance;  // "near" or "far"
  std::string type;
  std::string json;
};

struct ProbeReport {
  std::vector<ProbeSample> samples;  // the near instance's, in order
  std::vector<ProbeLiveness> liveness;
  std::vector<ProbeEvent> events;  // both instances'
  std::vector<std::string> logs;   // "near: ..." / "far: ..."
  std::uint64_t received = 0, lost = 0;
  double rtt_min_ms = 0, rtt_avg_ms = 0, rtt_max_ms = 0;  // over received samples
};

class PATRONUS_TRIAL_API PluginTrial {
 public:
  // Loads `file` and converts `config_yaml` (YAML or JSON text; empty: all defaults) through the
  // plugin's schema. Errors name the file, or the config field (and its line) that is wrong.
  static Result<std::unique_ptr<PluginTrial>> open(const std::string& file,
                                                   const std::string& config_yaml = "");
  // open() in two steps: the file alone (its configuration: all defaults), then a configuration.
  // set_config() fails, changing nothing, when the text does not fit the schema. Otherwise the
  // scorer's or policy's instance is replaced by one with the new configuration at the next call
  // (a policy document loaded before must be loaded again).
  static Result<std::unique_ptr<PluginTrial>> load(const std::string& file);
  Status set_config(const std::string& config_yaml);
  ~PluginTrial();
  PluginTrial(const PluginTrial&) = delete;
  PluginTrial& operator=(const PluginTrial&) = delete;

  const PluginSummary& summary() const;

  // Scorers: one instance, configured and started once, scores each window.
  Result<Score> score(const Window& window);
  // Policy plugins: replace the policy set with a document, then classify flows.
  Status load_policy(const std::string& document);
  Result<bool> allows(const Flow& flow);
  // Probe plugins: see ProbeRun.
  Result<ProbeReport> run_probe(const ProbeRun& run);

  // What the calls above check of their input before the plugin is involved (INVALID_ARGUMENT
  // naming the field): a caller can tell its own mistakes from the plugin's refusals.
  static Status check(const Flow& flow);
  static Status check(const ProbeRun& run);

 private:
  PluginTrial();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace patronus::trial
