// patronusd: the Patronus router daemon. Reads a YAML config, opens the state database, loads
// and starts the configured plugins on the real (Boost.Asio) Env and, with a `runtime:` section,
// runs the site runtime (path engine) over its site's part of the mesh plan: authenticated probes
// on every path, scores, per-class selection, failover, decisions. Persists what happens in
// batches and stops cleanly on SIGTERM/SIGINT (plugins stopped, state flushed). A thin shell: the
// logic lives in the libraries (steering, site, mesh, store).
#include <net/if.h>
#include <yaml-cpp/yaml.h>
#include <CLI/CLI.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <random>
#include <sstream>

#include <unistd.h>

#include "linux_dataplane.hpp"
#include "patronus/core/config_schema.hpp"
#include "patronus/core/daemon_config.hpp"
#include "patronus/core/plugin_host.hpp"
#include "patronus/core/router.hpp"
#include "patronus/env/asio_env.hpp"
#include "patronus/policy/parse.hpp"
#include "patronus/site/plan_store.hpp"
#include "patronus/site/site_lock.hpp"
#include "patronus/site/store_sink.hpp"
#include "patronus/steering/site_runtime.hpp"
#include "patronus/store/store.hpp"
#include "patronus/util/file.hpp"
#include "socket.hpp"

namespace {

using namespace patronus;

constexpr int kExitConfig = 2;
constexpr int kExitRuntime = 1;

std::int64_t wall_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int level_of(const std::string& name) {
  if (name == "debug") return 0;
  if (name == "info") return 1;
  if (name == "warn") return 2;
  return 3;
}

class Daemon final : public core::RouterObserver, public steering::RuntimeObserver {
 public:
  Daemon(std::string site, int min_level, store::BatchWriter& writer)
      : site_(std::move(site)), min_level_(min_level), writer_(writer) {}

  void log(int level, const std::string& msg) {
    static const char* kNames[] = {"debug", "info", "warn", "error"};
    if (level >= min_level_) {
      const std::string line = "patronusd[" + site_ + "] " + kNames[level] + ": " + msg + "\n";
      std::cerr << line << std::flush;
    }
  }
  void record(const std::string& source, const std::string& kind, const std::string& payload) {
    keep(writer_.add(store::EventRow{wall_ns(), site_, source, kind, "", payload}));
  }

  void on_sample(const std::string& instance, const patronus_path_sample& s) override {
    keep(writer_.add(
        store::SampleRow{wall_ns(), instance, s.path_id, s.sequence, s.lost != 0, s.rtt_ns}));
  }
  void on_event(const std::string& instance, const std::string& type,
                const std::string& json) override {
    log(1, instance + " event " + type + " " + json);
    record(instance, type, json);
  }
  void on_log(const std::string& instance, std::uint32_t level, const std::string& msg) override {
    log(static_cast<int>(level), instance + ": " + msg);
  }
  // With the site runtime: it is the router's observer and forwards to these; the store sink
  // persists, this only logs.
  void on_log(const std::string&, const std::string& instance, std::uint32_t level,
              const std::string& msg) override {
    log(static_cast<int>(level), instance + ": " + msg);
  }
  // Events are in the database (patronus events); the log shows them at debug. Anomalies reach the
  // log as warnings through on_log (the runtime's warn()), decisions and path states at info.
  void on_event(const std::string&, const std::string& instance, const std::string& type,
                const std::string& json) override {
    log(0, instance + " event " + type + " " + json);
  }
  void on_decision(const std::string&, const steering::Decision& d) override {
    log(1, "decision " + d.cls + " -> " + d.dst_site + ": " + steering::to_string(d.reason) + ": " +
               d.why);
  }
  void on_path_state(const std::string&, const steering::PathView& p) override {
    log(1, "path " + p.name + " (" + std::to_string(p.id.value()) + ") is " +
               model::to_string(p.status) +
               (p.scored ? " score " + std::to_string(p.score) : std::string()));
  }

 private:
  void keep(const Status& s) {
    if (!s.is_ok()) log(3, "state database write failed (rows kept for retry): " + s.message());
  }
  std::string site_;
  int min_level_;
  store::BatchWriter& writer_;
};

// `dataplane: none`: a decision changes no forwarding (the paths' forwarding is someone else's, or
// this is a measurement-only site); the daemon logs what it would install, and says so.
class LoggingDataplane final : public steering::Dataplane {
 public:
  explicit LoggingDataplane(Daemon& d) : d_(d) {}
  Status set_class_path(const std::string& site, const std::string& cls,
                        model::PathId path) override {
    d_.log(1, "forwarding unchanged (dataplane: none): class " + cls + " to " + site + " -> path " +
                  (path.valid() ? std::to_string(path.value()) : "none"));
    return Status::ok();
  }
  Status set_flow_path(const model::FlowKey&, model::PathId) override { return Status::ok(); }

 private:
  Daemon& d_;
};

// What the site's part of the mesh plan is made from (the config has a runtime section).
site::LocalPlanOptions plan_options(const core::DaemonConfig& cfg) {
  site::LocalPlanOptions lp;
  lp.site = cfg.site;
  lp.sites_file = cfg.runtime->sites_file;
  lp.topology = cfg.runtime->topology;
  lp.hubs = cfg.runtime->hubs;
  lp.k = cfg.runtime->k;
  lp.keys_dir = cfg.runtime->keys_dir;
  return lp;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"patronusd: the Patronus SD-WAN router daemon"};
  std::string config_path;
  double run_for = 0;
  bool check_only = false;
  app.add_option("--config,-c", config_path, "YAML configuration file")->required();
  app.add_flag("--check", check_only,
               "validate the configuration (keys, plugins and their configs, classes, the sites "
               "file) and exit: 0 valid, 2 not; nothing is started, opened or written");
  app.add_option("--run-for", run_for, "stop cleanly after this many seconds (0: until signalled)")
      ->check(CLI::Range(0.0, 1e7));
  app.set_version_flag("--version", std::string("patronusd ") + "0.1.0 (plugin ABI " +
                                        std::to_string(PATRONUS_ABI_VERSION_MAJOR) + "." +
                                        std::to_string(PATRONUS_ABI_VERSION_MINOR) + ")");
  CLI11_PARSE(app, argc, argv);

  auto text = read_text_file(config_path);
  if (!text.is_ok()) {
    std::cerr << "patronusd: cannot read config file: " << text.status().message() << std::endl;
    return kExitConfig;
  }
  const auto base = std::filesystem::absolute(config_path).parent_path().string();
  auto parsed = core::parse_daemon_config(text.value(), base);
  if (!parsed.is_ok()) {
    std::cerr << "patronusd: " << config_path << ": " << parsed.status().message() << std::endl;
    return kExitConfig;
  }
  const core::DaemonConfig& cfg = parsed.value();
  // The inventory handed to policy plugins is part of the configuration: read it now, before
  // anything starts.
  std::string inventory_text;
  for (const auto& f : cfg.policy_inventory) {
    auto inv = read_text_file(f);
    if (!inv.is_ok()) {
      std::cerr << "patronusd: policy_inventory: " << inv.status().message() << std::endl;
      return kExitConfig;
    }
    inventory_text += "---\n" + inv.value() + "\n";
  }

  // Plugins: load those the config names (each first screened in a scanner process), then
  // convert every instance's config and let the plugin itself judge it, before anything starts.
  // Other files in the directory are reported, never fatal.
  core::PluginRegistry registry;
  std::vector<std::string> wanted;
  for (const auto& spec : cfg.plugins) wanted.push_back(spec.plugin);
  auto refused = registry.load_named(cfg.plugin_dir, wanted);
  if (!refused.is_ok()) {
    std::cerr << "patronusd: plugins: " << refused.status().message() << std::endl;
    return kExitConfig;
  }
  struct Planned {
    std::shared_ptr<const core::PluginLibrary> lib;
    std::string instance;
    std::string config;
  };
  std::vector<Planned> planned;
  for (const auto& spec : cfg.plugins) {
    auto lib = registry.find(spec.plugin);
    const std::string where =
        spec.path + ".config" +
        (spec.config_line > 0 ? " (line " + std::to_string(spec.config_line) + ")" : "");
    std::string bytes;
    if (lib->schema()) {
      auto b = spec.config ? lib->schema()->yaml_to_bytes(*spec.config, spec.path + ".config")
                           : lib->schema()->text_to_bytes("", spec.path + ".config");
      if (!b.is_ok()) {
        std::cerr << "patronusd: " << b.status().message() << std::endl;
        return kExitConfig;
      }
      bytes = b.value();
    } else if (spec.config && !spec.config->IsNull() && spec.config->size() > 0) {
      std::cerr << "patronusd: " << where << ": plugin '" << spec.plugin
                << "' takes no configuration" << std::endl;
      return kExitConfig;
    }
    if (auto s = core::check_plugin_config(lib, spec.instance, bytes); !s.is_ok()) {
      std::cerr << "patronusd: " << where << ": plugin '" << spec.plugin
                << "' refused its configuration: " << s.message() << std::endl;
      return kExitConfig;
    }
    planned.push_back({lib, spec.instance, bytes});
  }

  if (check_only) {
    std::string plan = "no runtime";
    if (cfg.runtime) {
      auto cs = steering::parse_classes_yaml(cfg.runtime->classes_yaml, cfg.runtime->voice_scorer);
      if (!cs.is_ok()) {
        std::cerr << "patronusd: runtime.classes: " << cs.status().message() << std::endl;
        return kExitConfig;
      }
      const site::LocalPlanOptions lp = plan_options(cfg);
      auto checked = site::check_local_site(lp);
      if (!checked.is_ok()) {
        std::cerr << "patronusd: runtime: " << checked.status().message() << std::endl;
        return kExitConfig;
      }
      plan = checked.value() + ", " + std::to_string(cs.value().classes.size()) + " classes";
    }
    std::cout << "patronusd: " << config_path << ": valid: " << planned.size()
              << " plugin instance(s) loaded and configured, " << plan << std::endl;
    return 0;
  }

  // One site, one daemon: a second daemon for this state stops here, before it opens a socket,
  // the database or a tunnel (it used to adopt the first one's tunnels and remove its rules).
  auto site_lock = site::SiteLock::acquire(cfg.state_db, cfg.site);
  if (!site_lock.is_ok()) {
    std::cerr << "patronusd: " << site_lock.status().message() << std::endl;
    return kExitRuntime;
  }

  boost::asio::io_context io;
  const std::uint64_t seed = cfg.seed ? *cfg.seed : std::random_device{}();
  env::AsioEnv env(io, seed);
  // The control API (`patronus status|paths list|flows list|decisions --socket PATH`), opened
  // before anything else: a second daemon with the same socket stops here, before it writes to
  // the state database or could disturb the first one's tunnels or routes. It answers
  // "starting" until the runtime runs.
  std::unique_ptr<control::ControlServer> control_server;
  std::optional<control::Service> service;
  std::optional<control::DaemonInfo> service_info;
  if (!cfg.control_socket.empty()) {
    control::DaemonInfo info;
    info.site = cfg.site;
    info.version = "0.1.0";
    info.state_db = cfg.state_db;
    info.pid = ::getpid();
    info.started_unix_ns = wall_ns();
    if (cfg.runtime) {
      info.transport = cfg.runtime->transport;
      for (const auto& [kind, inst] : cfg.runtime->transports) {
        info.transport += (info.transport.empty() ? "" : ", ") + kind + ": " + inst;
      }
      info.dataplane = cfg.runtime->dataplane;
    }
    service_info = info;
    auto srv = control::ControlServer::open(
        env, cfg.control_socket, [&service](const control::api::Request& q) {
          if (!service) return control::error_response(unavailable("the daemon is starting"));
          return service->handle(q);
        });
    if (!srv.is_ok()) {
      std::cerr << "patronusd: control_socket: " << srv.status().message() << std::endl;
      return kExitRuntime;
    }
    control_server = std::move(srv).value();
  }

  auto opened = store::Store::open(cfg.state_db);
  if (!opened.is_ok()) {
    std::cerr << "patronusd: " << opened.status().message() << std::endl;
    return kExitRuntime;
  }
  auto& db = *opened.value();
  if (auto s = db.ensure_site(cfg.site, wall_ns() / 1000000000); !s.is_ok()) {
    std::cerr << "patronusd: " << s.status().message() << std::endl;
    return kExitRuntime;
  }
  store::BatchWriter writer(db);
  Daemon daemon(cfg.site, level_of(cfg.log_level), writer);
  if (control_server) daemon.log(1, "control API on " + cfg.control_socket);
  for (const auto& r : refused.value().refused) {
    daemon.log(
        2, "plugin file " + r.file + " is not loadable (the config does not name it): " + r.reason);
  }
  for (const auto& r : refused.value().skipped) {
    daemon.log(3, "skipped " + r.file + " in plugin_dir: " + r.reason);
  }

  std::optional<site::SitePlan> site_plan;
  std::optional<steering::ClassSet> classes;
  site::LocalPlanOptions lp;
  if (cfg.runtime) {
    auto cs = steering::parse_classes_yaml(cfg.runtime->classes_yaml, cfg.runtime->voice_scorer);
    if (!cs.is_ok()) {
      std::cerr << "patronusd: runtime.classes: " << cs.status().message() << std::endl;
      return kExitConfig;
    }
    classes = std::move(cs).value();
    lp = plan_options(cfg);
    auto sp = site::plan_local_site(lp, db, wall_ns() / 1000000000);
    if (!sp.is_ok()) {
      std::cerr << "patronusd: runtime: " << sp.status().message() << std::endl;
      return kExitConfig;
    }
    site_plan = std::move(sp).value();
  }

  core::RouterInstance router(env, cfg.site);
  router.set_observer(&daemon);
  LoggingDataplane logging_dataplane(daemon);
  std::unique_ptr<linuxnet::LinuxDataplane> linux_dataplane;
  std::unique_ptr<steering::SiteRuntime> runtime;
  std::unique_ptr<site::StoreSink> sink;
  // Each path leaves by its local endpoint's tunnel interface (updated by every re-plan).
  auto device_of = std::make_shared<std::map<std::uint64_t, std::string>>();
  auto learn_devices = [device_of](const site::SitePlan& plan) {
    for (const auto& p : plan.paths) {
      if (p.tunnel) (*device_of)[p.id.value()] = p.tunnel->interface_name;
    }
  };
  for (const auto& p : planned) {
    if (auto s = router.add_plugin(p.lib, p.instance, p.config); !s.is_ok()) {
      std::cerr << "patronusd: " << s.message() << std::endl;
      return kExitRuntime;
    }
  }
  if (site_plan) {
    steering::RuntimeConfig rc;
    rc.site = cfg.site;
    rc.probe = cfg.runtime->probe;
    rc.liveness = cfg.runtime->liveness;
    rc.default_scorer = cfg.runtime->scorer;
    rc.classes = *classes;
    rc.tick_ns = cfg.runtime->tick_ms * 1000000;
    rc.idle_after_ns = cfg.runtime->idle_after_ms * 1000000;
    rc.flow_idle_ns = cfg.runtime->flow_idle_ms * 1000000;
    rc.metrics_interval_ns = cfg.runtime->metrics_interval_ms * 1000000;
    rc.max_flows = cfg.runtime->max_flows;
    rc.transport = cfg.runtime->transport;
    rc.transports = cfg.runtime->transports;
    steering::Dataplane* dataplane = &logging_dataplane;
    if (cfg.runtime->dataplane == "linux") {
      learn_devices(*site_plan);
      linuxnet::LinuxDataplaneConfig dc;
      dc.classes = rc.classes;
      dc.layout.table_base = cfg.runtime->table_base;
      dc.layout.rule_priority = cfg.runtime->table_base;
      dc.site_prefixes = site_plan->subnets;
      dc.resolve = [device_of](model::PathId id) -> Result<linuxnet::Nexthop> {
        auto it = device_of->find(id.value());
        if (it == device_of->end()) return not_found("path " + std::to_string(id.value()));
        const unsigned idx = ::if_nametoindex(it->second.c_str());
        if (idx == 0) return unavailable("interface " + it->second + " does not exist");
        return linuxnet::Nexthop{idx, std::nullopt};
      };
      auto rt = linuxnet::Rtnl::open();
      if (!rt.is_ok()) {
        std::cerr << "patronusd: runtime.dataplane: " << rt.status().message() << std::endl;
        return kExitRuntime;
      }
      auto ld = linuxnet::LinuxDataplane::start(std::move(rt).value(), std::move(dc));
      if (!ld.is_ok()) {
        std::cerr << "patronusd: runtime.dataplane: " << ld.status().message() << std::endl;
        return kExitRuntime;
      }
      linux_dataplane = std::move(ld).value();
      dataplane = linux_dataplane.get();
      daemon.log(1, "linux dataplane: class tables from " +
                        std::to_string(cfg.runtime->table_base) +
                        ", every remote site unreachable "
                        "until a path is chosen");
    }
    runtime = std::make_unique<steering::SiteRuntime>(env, router, rc, *dataplane);
    site::StoreSinkOptions so;
    so.samples = cfg.runtime->store_samples;
    sink = std::make_unique<site::StoreSink>(db, env, so);
    runtime->add_observer(sink.get());
    runtime->add_observer(&daemon);
    for (const auto& r : site_plan->remote_sites) {
      if (auto s = runtime->add_remote_site(r); !s.is_ok()) {
        std::cerr << "patronusd: runtime: " << s.message() << std::endl;
        return kExitConfig;
      }
    }
    for (const auto& p : site_plan->paths) {
      if (auto s = runtime->add_path(p); !s.is_ok()) {
        std::cerr << "patronusd: runtime: " << s.message() << std::endl;
        return kExitConfig;
      }
    }
  }
  daemon.record("patronusd", "daemon.start",
                "{\"plugins\":" + std::to_string(planned.size()) +
                    ",\"paths\":" + std::to_string(site_plan ? site_plan->paths.size() : 0) + "}");
  if (auto s = runtime ? runtime->start() : router.start(); !s.is_ok()) {
    std::cerr << "patronusd: " << s.message() << std::endl;
    daemon.record("patronusd", "daemon.start_failed", "{}");
    if (linux_dataplane) (void)linux_dataplane->stop();
    (void)writer.flush();
    return kExitRuntime;
  }
  daemon.log(1, "started " + std::to_string(planned.size()) + " plugin instance(s)" +
                    (runtime ? ", site runtime over " + std::to_string(site_plan->paths.size()) +
                                   " path(s)"
                             : std::string()) +
                    ", state in " + cfg.state_db);

  // Policy plugins get the stored NetworkPolicies (as they were at the last apply, so a restart
  // enforces the same set) plus the configured inventory: one document, built once.
  std::optional<std::string> policy_document;
  std::size_t stored_policies = 0;
  for (const auto& p : planned) {
    if (p.lib->info().kind != core::PluginKind::kPolicy) continue;
    if (!policy_document) {
      auto rows = db.list_policies();
      if (!rows.is_ok()) {
        std::cerr << "patronusd: " << rows.status().message() << std::endl;
        return kExitRuntime;
      }
      stored_policies = rows.value().size();
      policy_document = policy::stored_policies_document(rows.value()) + inventory_text;
    }
    if (auto s = router.load_policy(p.instance, *policy_document); !s.is_ok()) {
      std::cerr << "patronusd: " << s.message() << std::endl;
      daemon.record("patronusd", "policy.load_failed", "{}");
      router.stop();
      (void)writer.flush();
      return kExitRuntime;
    }
    daemon.record(p.instance, "policy.loaded",
                  "{\"policies\":" + std::to_string(stored_policies) +
                      ",\"inventory_files\":" + std::to_string(cfg.policy_inventory.size()) + "}");
    daemon.log(
        1, p.instance + ": loaded " + std::to_string(stored_policies) + " stored network policies");
  }

  if (service_info) {
    service.emplace(*service_info, router, runtime.get(), env);
  }

  bool stopping = false;
  std::function<void()> schedule_flush;
  schedule_flush = [&] {
    env.schedule(cfg.flush_interval_ms * 1000000, [&] {
      if (auto s = writer.flush(); !s.is_ok()) daemon.log(3, s.message());
      if (sink) {
        sink->add_flows(*runtime, 10000);
        if (auto s = sink->flush(); !s.is_ok()) daemon.log(3, s.message());
      }
      if (!stopping) schedule_flush();
    });
  };
  schedule_flush();

  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  boost::asio::signal_set hup(io, SIGHUP);
  auto shutdown = [&](const std::string& why) {
    if (stopping) return;
    stopping = true;
    daemon.log(1, "stopping (" + why + ")");
    control_server.reset();
    if (runtime) runtime->stop();
    router.stop();
    if (linux_dataplane) {
      if (auto s = linux_dataplane->stop(); !s.is_ok()) {
        daemon.log(3, "removing the policy routing failed: " + s.message());
      }
    }
    if (sink) {
      sink->add_flows(*runtime, 10000);
      if (auto s = sink->flush(); !s.is_ok()) daemon.log(3, "final flush failed: " + s.message());
    }
    daemon.record("patronusd", "daemon.stop", "{\"reason\":\"" + why + "\"}");
    const auto pending = writer.pending();
    if (auto s = writer.flush(); !s.is_ok()) {
      daemon.log(3, "final flush failed: " + s.message());
    } else {
      daemon.log(1, "state flushed (" + std::to_string(pending) + " rows in the last batch, " +
                        std::to_string(writer.rows_written() + (sink ? sink->rows_written() : 0)) +
                        " rows in all" +
                        (sink && sink->dropped()
                             ? ", " + std::to_string(sink->dropped()) + " dropped at a full queue"
                             : std::string()) +
                        ")");
    }
    signals.cancel();
    hup.cancel();
    io.stop();
  };
  signals.async_wait([&](const boost::system::error_code& ec, int sig) {
    if (!ec) shutdown(sig == SIGTERM ? "SIGTERM" : "SIGINT");
  });
  // SIGHUP: plan again from the sites file and the key directory, and apply the difference: new
  // sites and paths join, paths no longer planned leave, paths with new keys (a rotation, ADR
  // 0013) are handed to the transport and the probe again; the others are not touched.
  std::function<void()> wait_hup;
  wait_hup = [&] {
    hup.async_wait([&](const boost::system::error_code& ec, int) {
      if (ec || stopping) return;
      if (runtime) {
        auto sp = site::plan_local_site(lp, db, wall_ns() / 1000000000);
        if (!sp.is_ok()) {
          daemon.log(3, "re-plan (SIGHUP) failed, nothing changed: " + sp.status().message());
        } else {
          learn_devices(sp.value());
          const auto r = site::apply_replan(*runtime, sp.value());
          for (const auto& e : r.errors) daemon.log(3, "re-plan (SIGHUP): " + e);
          const std::size_t changed = r.changed, refused = r.errors.size();
          daemon.log(
              1, "re-planned (SIGHUP): " + std::to_string(r.sites_added.size()) + " site(s) and " +
                     std::to_string(r.added.size()) + " path(s) added, " +
                     std::to_string(r.removed.size()) + " removed, " + std::to_string(changed) +
                     " with new keys" +
                     (refused ? ", " + std::to_string(refused) + " refused" : std::string()));
          daemon.record("patronusd", "daemon.replanned",
                        "{\"changed\":" + std::to_string(changed) +
                            ",\"sites_added\":" + std::to_string(r.sites_added.size()) +
                            ",\"paths_added\":" + std::to_string(r.added.size()) +
                            ",\"paths_removed\":" + std::to_string(r.removed.size()) +
                            ",\"refused\":" + std::to_string(refused) + "}");
        }
      }
      wait_hup();
    });
  };
  wait_hup();
  if (run_for > 0) {
    env.schedule(static_cast<std::int64_t>(run_for * 1e9), [&] { shutdown("run-for elapsed"); });
  }
  io.run();
  return 0;
}
