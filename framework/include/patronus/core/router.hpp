// A router instance: one site's host kernel. Owns the plugin instances it created, gives each a
// host-services table bridged to its Env, and forwards what plugins report (samples, events,
// metrics, logs) to an observer. Single-threaded: everything runs on the Env's thread.
// C++17-clean (used by the ns-3 backend).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "patronus/abi/plugin_abi.h"
#include "patronus/core/plugin_host.hpp"
#include "patronus/env/env.hpp"
#include "patronus/util/status.hpp"

namespace patronus::core {

// What plugins report. Default implementations ignore everything.
class RouterObserver {
 public:
  virtual ~RouterObserver() = default;
  virtual void on_sample(const std::string& instance, const patronus_path_sample& sample) {
    (void)instance, (void)sample;
  }
  virtual void on_event(const std::string& instance, const std::string& type,
                        const std::string& json) {
    (void)instance, (void)type, (void)json;
  }
  virtual void on_metric(const std::string& instance, const std::string& name, double value) {
    (void)instance, (void)name, (void)value;
  }
  virtual void on_log(const std::string& instance, std::uint32_t level, const std::string& msg) {
    (void)instance, (void)level, (void)msg;
  }
  // A probe's liveness verdict on a path (ABI 1.1 host service).
  // ABI 1.2: a transport's report on a path's tunnel.
  virtual void on_tunnel(const std::string& instance, const patronus_tunnel_status& status) {
    (void)instance, (void)status;
  }
  virtual void on_liveness(const std::string& instance, const patronus_path_liveness& liveness) {
    (void)instance, (void)liveness;
  }
};

struct RouterLimits {
  std::size_t max_plugins = 64;
  std::size_t max_timers_per_instance = 4096;
  std::size_t max_endpoints_per_instance = 64;
  std::size_t max_watches_per_instance = 16;  // watched file descriptors (ABI 1.2)
  std::size_t max_log_bytes = 4096;           // longer messages are truncated
  std::size_t max_event_bytes = 65536;        // larger events are dropped and counted
  // The router's own text trace (lifecycle, samples, events) is opt-in: 0 keeps none. Tests and
  // the seam demo turn it on to compare runs byte for byte.
  std::size_t max_trace_lines = 0;
};

// One instance's calls through the router (its /metrics): calls into it, those that failed
// (error status or exception), host timers refused to it, and a policy instance's verdicts.
struct InstanceCounters {
  std::uint64_t calls = 0, errors = 0, timers_refused = 0, allowed = 0, denied = 0;
};

struct RouterCounters {
  std::uint64_t samples = 0;
  std::uint64_t events = 0;
  std::uint64_t events_dropped = 0;
  std::uint64_t metrics = 0;
  std::uint64_t logs = 0;
  std::uint64_t timers_refused = 0;
  std::uint64_t endpoints_refused = 0;
  std::uint64_t liveness = 0;
  std::uint64_t tunnel_reports = 0;
  std::uint64_t watches_refused = 0;
  std::uint64_t reports_malformed = 0;  // samples/liveness reports refused (short, bad fields)
  std::uint64_t trace_dropped = 0;
  std::uint64_t plugin_exceptions = 0;
};

class RouterInstance {
 public:
  RouterInstance(env::Env& env, std::string site, RouterLimits limits = {});
  ~RouterInstance();  // stops and destroys every plugin instance
  RouterInstance(const RouterInstance&) = delete;
  RouterInstance& operator=(const RouterInstance&) = delete;

  void set_observer(RouterObserver* observer) { observer_ = observer; }

  // create() and configure() a plugin instance. `config` is the serialized config message (see
  // ConfigSchema). On error nothing is kept and the message names the instance.
  Status add_plugin(std::shared_ptr<const PluginLibrary> library, const std::string& instance,
                    const std::string& config);
  // A new config for one instance, which is restarted alone: a new instance is created and
  // configured with it (a config the plugin refuses changes nothing), then, running, the old one
  // is stopped (its timers and watches go; its sockets wait for the new one, see
  // close_handed_over) and destroyed and the new one started in its place. If the new one does not
  // start, the old config is created and started again and the error is returned. Whoever
  // registered paths with the instance registers them again.
  Status replace_plugin(const std::string& instance, const std::string& config);
  // A replaced instance's sockets stay open until this call, for its successor to take over
  // when it opens the same address (a probe plugin opens its sockets when its paths are watched
  // again, after replace_plugin): call it once the successor has its paths. What it did not take
  // is closed.
  void close_handed_over();
  // start() every instance in the order added; if one fails, the started ones are stopped.
  Status start();
  // stop() in reverse order; then the instance's remaining timers are cancelled and its
  // endpoints closed, so no callback reaches a stopped plugin. Idempotent.
  void stop();
  bool running() const { return running_; }

  // Kind-specific calls, by instance name. Every call goes through one guard: an exception is
  // contained and counted, and the error names the instance, the plugin, the call and the
  // plugin's own message (ABI 1.1 `_ex` calls) or the status code (ABI 1.0 plugins).
  Result<patronus_score> score(const std::string& instance, const patronus_metrics_window& w);
  Status watch_path(const std::string& instance, const patronus_path_desc& path);
  // Transports: build (or update, for a known id) and remove the tunnel of a path.
  Status path_up(const std::string& instance, const patronus_path_desc& path);
  Status path_down(const std::string& instance, std::uint64_t path_id);
  Status unwatch_path(const std::string& instance, std::uint64_t path_id);
  // ABI 1.1 probes: how often to probe a path. An ABI 1.0 probe has no such call: the result is
  // kUnimplemented (the path keeps the rate the probe chose).
  Status set_path_rate(const std::string& instance, std::uint64_t path_id, std::uint32_t rate);
  // Policy plugins: replace the policy set with a document (the plugin defines its format; the
  // plugin's error message is returned), and classify one flow.
  Status load_policy(const std::string& instance, const std::string& document);
  Result<bool> evaluate_policy(const std::string& instance, const patronus_flow_tuple& flow);

  const std::string& site() const { return site_; }
  env::Env& env() { return env_; }
  std::vector<std::string> instance_names() const;
  // The plugin an instance was created from (nullopt: no such instance).
  std::optional<PluginInfo> instance_info(const std::string& instance) const;
  // Live timers / endpoints the instance holds through its host table.
  std::size_t live_timers(const std::string& instance) const;
  std::size_t live_endpoints(const std::string& instance) const;
  std::size_t live_watches(const std::string& instance) const;
  // Zeros for an unknown instance. A replaced instance starts again from zero (a counter reset,
  // as Prometheus understands one).
  InstanceCounters instance_counters(const std::string& instance) const;

  // "<t_ns> <instance> <what>" for samples, events and lifecycle: the router's own trace (only
  // with RouterLimits::max_trace_lines > 0).
  const std::vector<std::string>& trace() const { return trace_; }
  std::string trace_text() const;
  const RouterCounters& counters() const { return counters_; }

  struct Instance;  // internal, public for the C trampolines
  struct Endpoint;

 private:
  friend struct HostBridge;
  Instance* find(const std::string& name) const;
  // create() and configure(): the instance, not yet added.
  Result<std::unique_ptr<Instance>> make_instance(std::shared_ptr<const PluginLibrary> library,
                                                  const std::string& instance,
                                                  const std::string& config);
  Status start_instance(Instance& inst);
  // stop() and what the plugin still holds (timers, endpoints, watches); then destroy(). With
  // `hand_over`, its endpoints stay open for the instance that replaces it (close_handed_over()
  // closes those it did not take).
  void halt(Instance& inst, bool hand_over = false);
  void destroy(Instance& inst);
  // The instance, if it exists and is of `kind` (errors name which it is not).
  Result<Instance*> find_kind(const std::string& name, PluginKind kind) const;
  bool tracing() const { return limits_.max_trace_lines > 0; }
  // Prefixes the time; a no-op when tracing is off.
  void add_trace(const std::string& line);
  // A refused host request (timer, endpoint, malformed report): reported to the observer as an
  // event when the count is a power of two, so a plugin stuck at a bound is visible without a
  // flood.
  void refused(Instance& inst, const char* what, std::uint64_t count);
  // Runs a call into a plugin: contains exceptions, turns a status into an error naming the call.
  template <typename Fn>
  Status call_plugin(Instance& inst, const char* call, Fn&& fn);

  env::Env& env_;
  std::string site_;
  RouterLimits limits_;
  RouterObserver* observer_ = nullptr;
  bool running_ = false;
  std::map<env::EndpointId, std::shared_ptr<Endpoint>> endpoints_;  // every instance's
  std::vector<env::EndpointId> handed_over_;  // a replaced instance's, not yet taken
  std::vector<std::unique_ptr<Instance>> instances_;
  std::vector<std::string> trace_;
  RouterCounters counters_;
};

// The plugin's own verdict on a configuration, before anything starts: a throwaway instance is
// created and configured (never started) on a private virtual clock, then destroyed. The error is
// the plugin's message, naming `instance`.
Status check_plugin_config(std::shared_ptr<const PluginLibrary> library,
                           const std::string& instance, const std::string& config);

}  // namespace patronus::core
