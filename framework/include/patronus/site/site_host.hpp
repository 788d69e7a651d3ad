// The site host: one site built from its SiteConfig, the same way in patronusd, in every node of
// the simulator and in the tests. It owns the router with the plugin instances, the site runtime,
// the dataplane and the store sink; start() brings them up in order and, when any step fails,
// takes down what it started in reverse order (no forwarding state is left behind), stop() does
// the same, and apply() reconciles a running site to a new config. What differs between hosts
// comes in a HostContext: the Env, where plugins and private keys come from, the dataplane.
// See docs/adr/0021-site-host.md.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "patronus/core/plugin_host.hpp"
#include "patronus/core/router.hpp"
#include "patronus/env/env.hpp"
#include "patronus/site/plan_store.hpp"
#include "patronus/site/site_config.hpp"
#include "patronus/site/store_sink.hpp"
#include "patronus/steering/dataplane.hpp"
#include "patronus/steering/site_runtime.hpp"
#include "patronus/store/store.hpp"

namespace patronus::site {

// What a dataplane is made from when a site starts.
struct DataplaneRequest {
  v1::Dataplane kind = v1::DATAPLANE_NONE;
  steering::ClassSet classes;
  std::uint32_t table_base = 20000;
  // Each remote site's LAN subnets (what is steered per class).
  std::map<std::string, std::vector<model::IpPrefix>> site_prefixes;
  // The interface carrying a path's tunnel, as the plan says (follows every apply); nullopt for
  // a path the host does not know or that has no tunnel.
  std::function<std::optional<std::string>(model::PathId)> interface_of;
};
using DataplaneFactory =
    std::function<Result<std::unique_ptr<steering::Dataplane>>(const DataplaneRequest&)>;

// Where a host runs: everything a site needs that is not configuration.
struct HostContext {
  env::Env* env = nullptr;
  // The loaded plugin named by an instance's `plugin` (nullptr: not loaded here).
  std::function<std::shared_ptr<const core::PluginLibrary>(const std::string& plugin)> plugins;
  PrivateKeys keys;               // this site's private keys (never leave the host)
  DataplaneFactory dataplane;     // with a runtime section
  store::Store* store = nullptr;  // the site's state (optional: no sink without it)
  StoreSinkOptions sink;          // `samples` is taken from the config
  // Further observers of the runtime (logs, the simulator's recorder) and of the plugins when the
  // config has no runtime section.
  std::vector<steering::RuntimeObserver*> observers;
  core::RouterObserver* plugin_observer = nullptr;
  // The NetworkPolicies the site enforces (the stored ones, as YAML documents); the config's
  // inventory is added. Called at start when a policy plugin is configured.
  std::function<Result<std::string>()> stored_policies;
  core::RouterLimits limits;
  // Settings the config does not carry (metric window sizes, table bounds, the decision log's
  // length, the scorer hold): a test or the simulator may set them; patronusd keeps the defaults.
  std::function<void(steering::RuntimeConfig&)> tune;
  // How long forwarding state a previous run left (a restart after a crash) may carry traffic
  // before the dataplane drops what no decision replaced (Dataplane::settle).
  std::int64_t settle_after_ns = 30'000'000'000;
};

// What start() brought up.
struct StartSummary {
  std::size_t plugins = 0, paths = 0, remote_sites = 0;
  std::vector<std::string> policy_instances;         // policy plugins that loaded the document
  std::vector<std::string> fleet_policies_shadowed;  // as in ApplyReport
};

// What apply() changed. Refused changes leave everything as it was and say why.
struct ApplyReport {
  std::vector<std::string> sites_added, sites_removed;
  std::vector<model::PathId> paths_added, paths_removed;
  std::size_t paths_rekeyed = 0;
  bool classes_replaced = false;  // new classes or rules, decided in one evaluation
  std::vector<std::string> classes_added, classes_removed;  // by name
  std::vector<std::string> plugins_restarted;  // instances restarted alone with a new config
  bool policies_reloaded = false;  // the fleet's policies changed: every policy instance reloaded
  // The fleet's objects the site defines itself ("NetworkPolicy/shop/db-deny"): its own apply.
  std::vector<std::string> fleet_policies_shadowed;
  std::vector<std::string> errors;  // parts of the plan the runtime refused (the rest applied)
  bool unchanged = false;           // the same content hash: nothing to do
};

class SiteHost {
 public:
  // Validates the config, resolves its plugins, realises its plan with the context's keys and
  // configures every plugin instance. Nothing is started and no forwarding state is touched, so a
  // refused config costs nothing.
  static Result<std::unique_ptr<SiteHost>> create(HostContext context, SiteConfig config);
  ~SiteHost();
  SiteHost(const SiteHost&) = delete;
  SiteHost& operator=(const SiteHost&) = delete;

  // The dataplane, the runtime with its paths, the plugins, then the policies. On failure,
  // everything started is stopped in reverse order and the error names the step.
  Result<StartSummary> start();
  // Everything in reverse order; the store sink is flushed last. Errors (a rule that could not
  // be removed, a failed final write) are returned, the rest still stops. Idempotent; the stopped
  // runtime and router stay readable until the host is destroyed, and it cannot start again.
  std::vector<std::string> stop();
  bool running() const { return running_; }

  // Reconciles the running site to `next`: remote sites and paths added, removed or re-keyed,
  // the untouched ones left alone (no path.down, no class moved); a plugin instance whose config
  // changed is restarted alone (the plugin judges the config first; the paths it watched or
  // carried are registered with the new instance, a policy instance loads its policies again);
  // new classes and rules replace the running ones in one evaluation (SiteRuntime::
  // set_classes). A config that does not validate, names another site, or changes what a
  // running site cannot take (plugin instances added, removed or renamed, runtime settings
  // other than classes, the inventory: a restart applies those) changes nothing, and the error
  // says what.
  Result<ApplyReport> apply(const SiteConfig& next);
  // What apply() would refuse before it looks at the plan (validation, another site, a change a
  // running site cannot take): a host that makes the plan with side effects (patronusd saves it
  // to the state database) asks first.
  Status check_apply(const SiteConfig& next) const;

  const SiteConfig& config() const { return config_; }
  const std::string& config_hash() const { return hash_; }
  core::RouterInstance& router() { return *router_; }
  steering::SiteRuntime* runtime() { return runtime_.get(); }
  StoreSink* sink() { return sink_.get(); }
  // Writes what is queued for the store (with the flow table's current state).
  Status flush(std::size_t max_flows = 10000);

 private:
  SiteHost(HostContext context, SiteConfig config);
  std::string config_change(int plugin, const SiteConfig& next) const;
  bool is_policy(const std::string& instance) const;
  Result<std::string> policy_document(std::vector<std::string>* shadowed = nullptr) const;
  Status restart_plugins(const SiteConfig& from, const SiteConfig& next, ApplyReport& report);
  Status reload_policies(const std::string& instance);
  Status load_all_policies(std::vector<std::string>* shadowed = nullptr,
                           std::vector<std::string>* loaded = nullptr);
  void learn_interfaces(const SitePlan& plan);

  HostContext ctx_;
  SiteConfig config_;
  std::string hash_;
  std::optional<SitePlan> plan_;
  std::optional<steering::RuntimeConfig> runtime_config_;
  std::map<std::uint64_t, std::string> interfaces_;  // path id -> tunnel interface
  std::unique_ptr<core::RouterInstance> router_;
  std::unique_ptr<steering::Dataplane> dataplane_;
  std::unique_ptr<steering::SiteRuntime> runtime_;
  std::unique_ptr<StoreSink> sink_;
  env::TimerId settle_timer_ = 0;
  bool running_ = false;
  bool stopped_ = false;  // stop() ran (or a start failed): the host is done
};

}  // namespace patronus::site
