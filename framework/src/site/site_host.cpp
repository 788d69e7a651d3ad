#include "patronus/site/site_host.hpp"

#include <google/protobuf/util/message_differencer.h>

#include <algorithm>

#include "patronus/core/config_schema.hpp"

namespace patronus::site {

namespace {

std::string where(const char* field, int i) {
  return std::string(field) + "[" + std::to_string(i) + "]";
}

// The first difference between two messages, as protobuf's differencer words it
// ("modified: tick_ms: 100 -> 200"), cut to one line.
std::string first_difference(const google::protobuf::Message& a,
                             const google::protobuf::Message& b) {
  std::string out;
  google::protobuf::util::MessageDifferencer d;
  d.ReportDifferencesToString(&out);
  d.Compare(a, b);
  const auto nl = out.find('\n');
  return nl == std::string::npos ? out : out.substr(0, nl);
}

}  // namespace

bool SiteHost::is_policy(const std::string& instance) const {
  const auto info = router_->instance_info(instance);
  return info && info->kind == core::PluginKind::kPolicy;
}

// The site's own policies and inventory, then the fleet's without what the site defines itself
// (same kind, namespace and name): the site's own copy applies, and the shadowed ones are named.
Result<std::string> SiteHost::policy_document(std::vector<std::string>* shadowed) const {
  auto stored = ctx_.stored_policies ? ctx_.stored_policies() : Result<std::string>("");
  if (!stored.is_ok()) return stored.status();
  return merge_policy_documents(stored.value() + config_.policy_inventory(),
                                config_.fleet_policies(), shadowed);
}

// Every policy instance loads the current document, built once (the instances that loaded it
// are added to `loaded`); the first refusal is returned (those loaded before it keep the new
// document: the caller puts the old one back).
Status SiteHost::load_all_policies(std::vector<std::string>* shadowed,
                                   std::vector<std::string>* loaded) {
  std::optional<std::string> document;
  for (const auto& p : config_.plugins()) {
    if (!is_policy(p.instance())) continue;
    if (!document) {
      auto d = policy_document(shadowed);
      if (!d.is_ok()) return d.status();
      document = std::move(d).value();
    }
    if (auto s = router_->load_policy(p.instance(), *document); !s.is_ok()) {
      return Status(s.code(), "'" + p.instance() + "': " + s.message());
    }
    if (loaded) loaded->push_back(p.instance());
  }
  return Status::ok();
}

SiteHost::SiteHost(HostContext context, SiteConfig config)
    : ctx_(std::move(context)), config_(std::move(config)), hash_(content_hash(config_)) {}

SiteHost::~SiteHost() {
  (void)stop();
  runtime_.reset();  // it observes the sink and drives the dataplane
  sink_.reset();
  dataplane_.reset();
  router_.reset();
}

Result<std::unique_ptr<SiteHost>> SiteHost::create(HostContext context, SiteConfig config) {
  if (context.env == nullptr) return invalid_argument("site host: no Env");
  if (auto s = validate(config); !s.is_ok()) return s;
  std::unique_ptr<SiteHost> host(new SiteHost(std::move(context), std::move(config)));
  const SiteConfig& c = host->config_;
  host->router_ =
      std::make_unique<core::RouterInstance>(*host->ctx_.env, c.site(), host->ctx_.limits);
  host->router_->set_observer(host->ctx_.plugin_observer);
  for (int i = 0; i < c.plugins_size(); ++i) {
    const auto& p = c.plugins(i);
    auto lib = host->ctx_.plugins ? host->ctx_.plugins(p.plugin()) : nullptr;
    if (!lib) {
      return not_found(where("plugins", i) + ".plugin: no plugin '" + p.plugin() +
                       "' is loaded on this host");
    }
    if (auto s = host->router_->add_plugin(lib, p.instance(), p.config()); !s.is_ok()) {
      return Status(s.code(), where("plugins", i) + ": " + s.message());
    }
  }
  if (c.has_runtime()) {
    auto rc = runtime_config(c);
    if (!rc.is_ok()) return rc.status();
    host->runtime_config_ = std::move(rc).value();
    if (host->ctx_.tune) host->ctx_.tune(*host->runtime_config_);
    if (!host->ctx_.keys) return invalid_argument("site host: no private keys for the plan");
    auto plan = realise_plan(c.plan(), c.site(), host->ctx_.keys);
    if (!plan.is_ok()) return plan.status();
    host->plan_ = std::move(plan).value();
    host->learn_interfaces(*host->plan_);
  }
  return host;
}

void SiteHost::learn_interfaces(const SitePlan& plan) {
  interfaces_.clear();  // the current plan's paths only (a removed path is never chosen)
  for (const auto& p : plan.paths) {
    if (p.tunnel) interfaces_[p.id.value()] = p.tunnel->interface_name;
  }
}

Result<StartSummary> SiteHost::start() {
  if (running_) return failed_precondition("site '" + config_.site() + "' is running already");
  if (stopped_) return failed_precondition("site '" + config_.site() + "' was stopped");
  StartSummary summary;
  summary.plugins = static_cast<std::size_t>(config_.plugins_size());
  auto fail = [this](const std::string& step, const Status& s) -> Status {
    (void)stop();  // what was started goes, in reverse order
    return Status(s.code(), step + ": " + s.message());
  };
  if (plan_) {
    if (!ctx_.dataplane) return fail("runtime.dataplane", invalid_argument("no dataplane here"));
    DataplaneRequest req;
    req.kind = config_.runtime().dataplane();
    req.classes = runtime_config_->classes;
    req.table_base = config_.runtime().table_base();
    req.site_prefixes = plan_->subnets;
    req.interface_of = [this](model::PathId id) -> std::optional<std::string> {
      const auto it = interfaces_.find(id.value());
      if (it == interfaces_.end()) return std::nullopt;
      return it->second;
    };
    auto dp = ctx_.dataplane(req);
    if (!dp.is_ok()) return fail("runtime.dataplane", dp.status());
    dataplane_ = std::move(dp).value();
    runtime_ =
        std::make_unique<steering::SiteRuntime>(*ctx_.env, *router_, *runtime_config_, *dataplane_);
    if (ctx_.store) {
      StoreSinkOptions so = ctx_.sink;
      so.samples = config_.runtime().store_samples();
      sink_ = std::make_unique<StoreSink>(*ctx_.store, *ctx_.env, so);
      runtime_->add_observer(sink_.get());
    }
    for (auto* o : ctx_.observers) runtime_->add_observer(o);
    for (const auto& r : plan_->remote_sites) {
      if (auto s = runtime_->add_remote_site(r); !s.is_ok()) return fail("runtime", s);
    }
    for (const auto& p : plan_->paths) {
      if (auto s = runtime_->add_path(p); !s.is_ok()) return fail("runtime", s);
    }
    if (auto s = runtime_->start(); !s.is_ok()) return fail("start", s);
    summary.paths = plan_->paths.size();
    summary.remote_sites = plan_->remote_sites.size();
  } else if (auto s = router_->start(); !s.is_ok()) {
    return fail("start", s);
  }
  // Policy plugins get the stored NetworkPolicies (as they were at the last apply, so a restart
  // enforces the same set), the configured inventory and the fleet's: one document.
  if (auto s = load_all_policies(&summary.fleet_policies_shadowed, &summary.policy_instances);
      !s.is_ok()) {
    return fail("policies", s);
  }
  running_ = true;
  if (dataplane_) {
    settle_timer_ = ctx_.env->schedule(ctx_.settle_after_ns, [this] {
      settle_timer_ = 0;
      if (!running_) return;
      if (auto s = dataplane_->settle(); !s.is_ok()) {
        for (auto* o : ctx_.observers) {
          o->on_log(config_.site(), "host", PATRONUS_LOG_WARN,
                    "dropping the routes a previous run left failed: " + s.message());
        }
      }
    });
  }
  return summary;
}

std::vector<std::string> SiteHost::stop() {
  std::vector<std::string> errors;
  if (stopped_ || !router_) return errors;
  stopped_ = true;
  running_ = false;
  if (settle_timer_ != 0) ctx_.env->cancel(settle_timer_);
  settle_timer_ = 0;
  // The objects stay (stopped) until the host goes: what they counted and decided can still be
  // read.
  if (runtime_) runtime_->stop();
  router_->stop();
  if (dataplane_) {
    if (auto s = dataplane_->stop(); !s.is_ok()) {
      errors.push_back("removing the forwarding state failed: " + s.message());
    }
  }
  if (sink_) {
    if (runtime_) sink_->add_flows(*runtime_, 10000);
    if (auto s = sink_->flush(); !s.is_ok()) errors.push_back("final flush: " + s.message());
  }
  return errors;
}

Status SiteHost::flush(std::size_t max_flows) {
  if (!sink_) return Status::ok();
  if (runtime_) sink_->add_flows(*runtime_, max_flows);
  return sink_->flush();
}

// " config: {old} -> {new}" when only plugin i's config changed and its schema can show both.
std::string SiteHost::config_change(int i, const SiteConfig& next) const {
  if (i >= config_.plugins_size() || i >= next.plugins_size()) return "";
  const auto& a = config_.plugins(i);
  const auto& b = next.plugins(i);
  if (a.plugin() != b.plugin() || a.instance() != b.instance() || !ctx_.plugins) return "";
  const auto lib = ctx_.plugins(a.plugin());
  if (!lib || !lib->schema()) return "";
  auto was = lib->schema()->bytes_to_json(a.config());
  auto now = lib->schema()->bytes_to_json(b.config());
  if (!was.is_ok() || !now.is_ok()) return "";
  return " config: " + was.value() + " -> " + now.value();
}

Status SiteHost::check_apply(const SiteConfig& next) const {
  if (auto s = validate(next); !s.is_ok()) return s;
  if (next.site() != config_.site()) {
    return invalid_argument("site: the config is for '" + next.site() + "', this is '" +
                            config_.site() + "'");
  }
  if (!running_) return failed_precondition("site '" + config_.site() + "' is not running");
  // Instances are added, removed or renamed with a restart; a changed config restarts its
  // instance alone, so the plugin judges it here first.
  using google::protobuf::util::MessageDifferencer;
  for (int i = 0; i < std::max(config_.plugins_size(), next.plugins_size()); ++i) {
    if (i >= config_.plugins_size() || i >= next.plugins_size() ||
        config_.plugins(i).plugin() != next.plugins(i).plugin() ||
        config_.plugins(i).instance() != next.plugins(i).instance()) {
      const auto& name =
          i < next.plugins_size() ? next.plugins(i).instance() : config_.plugins(i).instance();
      return failed_precondition(where("plugins", i) + " ('" + name +
                                 "'): plugin instances are added, removed or renamed with a "
                                 "restart; nothing was applied");
    }
    if (config_.plugins(i).config() == next.plugins(i).config()) continue;
    const auto lib = ctx_.plugins ? ctx_.plugins(next.plugins(i).plugin()) : nullptr;
    if (!lib) {
      return not_found(where("plugins", i) + ".plugin: no plugin '" + next.plugins(i).plugin() +
                       "' is loaded on this host");
    }
    if (auto s =
            core::check_plugin_config(lib, next.plugins(i).instance(), next.plugins(i).config());
        !s.is_ok()) {
      return Status(s.code(), where("plugins", i) + " ('" + next.plugins(i).instance() + "')" +
                                  config_change(i, next) + ": " + s.message() +
                                  "; nothing was applied");
    }
  }
  // Classes and rules are replaced in one evaluation; the other runtime settings need a restart.
  if (config_.has_runtime() != next.has_runtime()) {
    return failed_precondition(
        "runtime: a site with paths and one without change with a "
        "restart; nothing was applied");
  }
  {
    v1::Runtime a = config_.runtime();
    v1::Runtime b = next.runtime();
    a.clear_classes();
    b.clear_classes();
    if (!MessageDifferencer::Equals(a, b)) {
      return failed_precondition("runtime: " + first_difference(a, b) +
                                 ": runtime settings other than classes change with a restart; "
                                 "nothing was applied");
    }
  }
  if (next.policy_inventory() != config_.policy_inventory()) {
    return failed_precondition(
        "policy_inventory: the inventory changes with a restart (`patronus policy apply` changes "
        "the policies of a running site); nothing was applied");
  }
  return Status::ok();
}

// Every instance whose config differs between `from` (what runs) and `next` is restarted alone
// and what the runtime and the policies registered with it is registered again. All or nothing:
// when one fails, those restarted before it go back to their configs in `from`.
Status SiteHost::restart_plugins(const SiteConfig& from, const SiteConfig& next,
                                 ApplyReport& report) {
  std::vector<int> done;
  auto undo = [&] {
    for (auto it = done.rbegin(); it != done.rend(); ++it) {
      const auto& p = from.plugins(*it);
      (void)router_->replace_plugin(p.instance(), p.config());
      if (runtime_) (void)runtime_->plugin_restarted(p.instance());
      (void)reload_policies(p.instance());
      router_->close_handed_over();
    }
  };
  for (int i = 0; i < next.plugins_size() && i < from.plugins_size(); ++i) {
    const auto& p = next.plugins(i);
    if (p.config() == from.plugins(i).config()) continue;
    Status s = router_->replace_plugin(p.instance(), p.config());
    if (s.is_ok()) {
      done.push_back(i);
      if (runtime_) s = runtime_->plugin_restarted(p.instance());
      if (s.is_ok()) s = reload_policies(p.instance());
    }
    // The paths are registered again: the sockets the new instance opened on the old one's
    // addresses were taken over (with what is queued on them); the rest close.
    router_->close_handed_over();
    if (!s.is_ok()) {
      undo();
      return Status(s.code(), where("plugins", i) + " ('" + p.instance() + "')" +
                                  config_change(i, next) + ": " + s.message() +
                                  "; nothing was applied");
    }
    report.plugins_restarted.push_back(p.instance());
  }
  return Status::ok();
}

Status SiteHost::reload_policies(const std::string& instance) {
  if (!is_policy(instance)) return Status::ok();
  auto d = policy_document();
  if (!d.is_ok()) return d.status();
  return router_->load_policy(instance, d.value());
}

Result<ApplyReport> SiteHost::apply(const SiteConfig& next) {
  ApplyReport report;
  const std::string next_hash = content_hash(next);
  if (next_hash == hash_ && running_) {
    report.unchanged = true;
    config_.set_generation(next.generation());
    return report;
  }
  if (auto s = check_apply(next); !s.is_ok()) return s;
  // Everything that can be refused first: the plan is realised (keys), the plugins restart (all
  // or nothing), the classes go in (the plugins come back if the runtime refuses them), then the
  // plan's difference.
  std::optional<SitePlan> plan;
  if (plan_) {
    auto realised = realise_plan(next.plan(), next.site(), ctx_.keys);
    if (!realised.is_ok()) return realised.status();
    plan = std::move(realised).value();
  }
  if (auto s = restart_plugins(config_, next, report); !s.is_ok()) return s;
  // The fleet's policies: every policy instance loads the new document, or all go back.
  const std::string old_policies = config_.fleet_policies();
  auto undo_policies = [&] {
    if (!report.policies_reloaded) return;
    config_.set_fleet_policies(old_policies);
    (void)load_all_policies();
  };
  if (next.fleet_policies() != old_policies) {
    config_.set_fleet_policies(next.fleet_policies());
    report.policies_reloaded = true;
    if (auto s = load_all_policies(&report.fleet_policies_shadowed); !s.is_ok()) {
      undo_policies();
      ApplyReport undo;
      (void)restart_plugins(next, config_, undo);
      return Status(s.code(), "fleet_policies: " + s.message() + "; nothing was applied");
    }
  }
  if (plan) {
    using google::protobuf::util::MessageDifferencer;
    if (!MessageDifferencer::Equals(config_.runtime().classes(), next.runtime().classes())) {
      auto classes = classes_from_proto(next.runtime().classes());
      steering::ClassesChanged change;
      Status s =
          classes.is_ok() ? runtime_->set_classes(classes.value(), &change) : classes.status();
      if (!s.is_ok()) {
        undo_policies();
        ApplyReport undo;
        (void)restart_plugins(next, config_, undo);  // back to the configs that ran
        return Status(s.code(), "runtime.classes: " + s.message() + "; nothing was applied");
      }
      report.classes_added.assign(change.added().begin(), change.added().end());
      report.classes_removed.assign(change.removed().begin(), change.removed().end());
      runtime_config_->classes = std::move(classes).value();
      report.classes_replaced = true;
    }
    learn_interfaces(*plan);
    const ReplanOutcome r = apply_replan(*runtime_, *plan);
    report.sites_added = r.sites_added;
    report.sites_removed = r.sites_removed;
    report.paths_added = r.added;
    report.paths_removed = r.removed;
    report.paths_rekeyed = r.changed;
    report.errors = r.errors;
    plan_ = std::move(plan);
  }
  config_ = next;
  hash_ = next_hash;
  return report;
}

}  // namespace patronus::site
