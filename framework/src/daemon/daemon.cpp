#include "daemon.hpp"

#include <sys/prctl.h>
#include "controller_link.hpp"
#include "tls_identity.hpp"

#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>

#include "exposition.hpp"
#include "health.hpp"
#include "linux_dataplane.hpp"
#include "patronus/core/config_schema.hpp"
#include "patronus/core/router.hpp"
#include "patronus/env/asio_env.hpp"
#include "patronus/policy/bpf_datapath.hpp"
#include "patronus/policy/parse.hpp"
#include "patronus/site/plan_store.hpp"
#include "patronus/site/site_host.hpp"
#include "patronus/site/site_lock.hpp"
#include "patronus/steering/site_runtime.hpp"
#include "patronus/store/store.hpp"
#include "patronus/util/file.hpp"
#include "patronus/util/utc_time.hpp"
#include "server.hpp"
#include "site_metrics.hpp"
#include "socket.hpp"

#include <nlohmann/json.hpp>

namespace patronus::daemon {

namespace {

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

// The daemon's log (stderr, by level) and its own events in the state database; it observes the
// plugins (without a runtime section) and the runtime.
class Log final : public core::RouterObserver, public steering::RuntimeObserver {
 public:
  Log(std::string site, int min_level, store::BatchWriter& writer)
      : site_(std::move(site)), min_level_(min_level), writer_(writer) {}

  void set_level(int min_level) { min_level_ = min_level; }
  // text: "TIME patronusd[SITE] LEVEL: [COMPONENT: ]MESSAGE"; logfmt: ts= level= site= component=
  // msg=; json: one object a line. Every line carries the site and the component.
  void set_format(const std::string& format) { format_ = format; }
  void log(int level, const std::string& msg) { emit(level, "patronusd", msg); }
  void emit(int level, const std::string& component, const std::string& msg) {
    static const char* kNames[] = {"debug", "info", "warn", "error"};
    if (level < min_level_) return;
    level = std::clamp(level, 0, 3);
    // UTC with milliseconds: lines from several sites and the controller can be merged.
    const std::string ts = util::utc_time(wall_ns());
    std::string line;
    if (format_ == "json") {
      line = nlohmann::json{{"ts", ts},
                            {"level", kNames[level]},
                            {"site", site_},
                            {"component", component},
                            {"msg", msg}}
                 .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) +
             "\n";
    } else if (format_ == "logfmt") {
      line = "ts=" + ts + " level=" + kNames[level] + " site=" + site_ +
             " component=" + logfmt_value(component) + " msg=" + logfmt_value(msg) + "\n";
    } else {
      const bool named = component != "patronusd" && component != "runtime";
      line = ts + " patronusd[" + site_ + "] " + kNames[level] + ": " +
             (named ? component + ": " : std::string()) + msg + "\n";
    }
    std::cerr << line << std::flush;
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
    emit(1, instance, "event " + type + " " + json);
    record(instance, type, json);
  }
  void on_log(const std::string& instance, std::uint32_t level, const std::string& msg) override {
    emit(static_cast<int>(level), instance, msg);
  }
  // With the site runtime the store sink persists; this only logs. Events reach the log at debug,
  // anomalies as warnings (the runtime's warn()), decisions and path states at info.
  void on_log(const std::string&, const std::string& instance, std::uint32_t level,
              const std::string& msg) override {
    emit(static_cast<int>(level), instance, msg);
  }
  void on_event(const std::string&, const steering::Event& e) override {
    emit(0, e.instance(), "event " + steering::event_type(e) + " " + steering::event_json(e));
  }
  void on_decision(const std::string&, const steering::Decision& d) override {
    emit(1, "runtime",
         "decision " + d.cls + " -> " + d.dst_site + ": " + steering::to_string(d.reason) + ": " +
             d.why);
  }
  void on_path_state(const std::string&, const steering::PathView& p) override {
    emit(1, "runtime",
         "path " + p.name + " (" + std::to_string(p.id.value()) + ") is " +
             model::to_string(p.status) +
             (p.scored ? " score " + std::to_string(p.score) : std::string()));
    if (path_changed) path_changed();
  }
  std::function<void()> path_changed;  // the controller link's report on change

 private:
  void keep(const Status& s) {
    if (!s.is_ok()) log(3, "state database write failed (rows kept for retry): " + s.message());
  }
  static std::string logfmt_value(const std::string& v) {
    if (!v.empty() && v.find_first_of(" =\"\\\n\t") == std::string::npos) return v;
    std::string out = "\"";
    for (char c : v) {
      if (c == '"' || c == '\\')
        out += {'\\', c};
      else if (c == '\n')
        out += "\\n";
      else
        out += c;
    }
    return out + "\"";
  }
  std::string site_;
  int min_level_;
  std::string format_ = "text";
  store::BatchWriter& writer_;
};

// `dataplane: none`: a decision changes no forwarding (the paths' forwarding is someone else's, or
// this is a measurement-only site); the daemon logs what it would install, and says so.
class LoggingDataplane final : public steering::Dataplane {
 public:
  explicit LoggingDataplane(Log& log) : log_(log) {}
  Status set_class_path(const std::string& site, const std::string& cls,
                        model::PathId path) override {
    log_.log(1, "class " + cls + " to " + site + " -> path " +
                    (path.valid() ? std::to_string(path.value()) : "none") +
                    " (dataplane: none: the kernel's forwarding is not changed)");
    return Status::ok();
  }
  Status set_flow_path(const model::FlowKey&, model::PathId) override { return Status::ok(); }

 private:
  Log& log_;
};

// Policy routing onto the paths' tunnel interfaces (`dataplane: linux`), or the logging one.
site::DataplaneFactory dataplane_factory(Log& log) {
  return [&log](const site::DataplaneRequest& r) -> Result<std::unique_ptr<steering::Dataplane>> {
    if (r.kind != site::v1::DATAPLANE_LINUX) {
      return std::unique_ptr<steering::Dataplane>(std::make_unique<LoggingDataplane>(log));
    }
    linuxnet::LinuxDataplaneConfig dc;
    dc.classes = r.classes;
    dc.layout.table_base = r.table_base;
    dc.layout.rule_priority = r.table_base;
    dc.site_prefixes = r.site_prefixes;
    dc.adopt = true;  // a restart after a crash keeps forwarding until decisions replace it
    dc.resolve = [of = r.interface_of](model::PathId id) -> Result<linuxnet::Nexthop> {
      const auto name = of(id);
      if (!name) return not_found("path " + std::to_string(id.value()) + " has no tunnel here");
      const unsigned idx = ::if_nametoindex(name->c_str());
      if (idx == 0) return unavailable("interface " + *name + " does not exist");
      return linuxnet::Nexthop{idx, std::nullopt};
    };
    auto rt = linuxnet::Rtnl::open();
    if (!rt.is_ok()) return rt.status();
    auto ld = linuxnet::LinuxDataplane::start(std::move(rt).value(), std::move(dc));
    if (!ld.is_ok()) return ld.status();
    const std::size_t kept = ld.value()->adopted();
    log.log(1, "linux dataplane: class tables from " + std::to_string(r.table_base) +
                   (kept ? ", " + std::to_string(kept) +
                               " class route(s) a previous run left kept until a decision "
                               "replaces them (at most 30 s), the rest unreachable until a "
                               "path is chosen"
                         : ", every remote site unreachable until a path is chosen"));
    return std::unique_ptr<steering::Dataplane>(std::move(ld).value());
  };
}

// Whether this host can send from `a` (a UDP socket binds to it): an endpoint address that is
// not local makes every probe from it fail. Not an error: the address may come up later (DHCP, a
// PPP link), so the daemon warns and runs.
bool address_is_local(const model::IpAddress& a) {
  const int fd = ::socket(a.is_v4() ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return true;  // cannot tell
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (a.is_v4()) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
    sin->sin_family = AF_INET;
    std::memcpy(&sin->sin_addr, a.bytes().data(), 4);
    len = sizeof *sin;
  } else {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
    sin6->sin6_family = AF_INET6;
    std::memcpy(&sin6->sin6_addr, a.bytes().data(), 16);
    len = sizeof *sin6;
  }
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0 || errno != EADDRNOTAVAIL;
  ::close(fd);
  return ok;
}

using ControllerPush = ctl::ConfigPush;

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

struct Loaded {
  core::DaemonConfig daemon;
  site::SiteConfig site;  // without the plan
};

// Reads and converts the file; `registry` gets the plugins it names (refused and skipped files
// in `scan` when given).
Result<Loaded> load(const std::string& path, core::PluginRegistry& registry,
                    core::PluginRegistry::NamedLoad* scan) {
  auto text = read_text_file(path);
  if (!text.is_ok()) return invalid_argument("cannot read config file: " + text.status().message());
  const auto base = std::filesystem::absolute(path).parent_path().string();
  auto parsed = core::parse_daemon_config(text.value(), base);
  if (!parsed.is_ok()) return invalid_argument(path + ": " + parsed.status().message());
  Loaded out{std::move(parsed).value(), {}};
  if (out.daemon.controller) {
    if (auto pin = channel::parse_pin(out.daemon.controller->pin); !pin.is_ok()) {
      return invalid_argument(path + ": controller.pin: " + pin.status().message());
    }
  }
  std::vector<std::string> wanted;
  for (const auto& spec : out.daemon.plugins) {
    if (!registry.find(spec.plugin)) wanted.push_back(spec.plugin);
  }
  if (!wanted.empty()) {
    auto refused = registry.load_named(out.daemon.plugin_dir, wanted);
    if (!refused.is_ok()) return invalid_argument("plugins: " + refused.status().message());
    if (scan) *scan = std::move(refused).value();
  }
  auto sc = site_config_of(out.daemon, registry);
  if (!sc.is_ok()) return sc.status();
  out.site = std::move(sc).value();
  return out;
}

// The first daemon-level setting a running daemon cannot take on SIGHUP (they are read once at
// start), or "". log_level is applied; the site's own settings are SiteHost::check_apply's.
// How long ago each local endpoint's private key file was written (its last rotation).
std::vector<std::pair<std::string, double>> key_ages(const mesh::KeyDirectory& keys,
                                                     const std::string& site,
                                                     const site::v1::Plan& plan) {
  std::vector<std::pair<std::string, double>> out;
  std::set<std::string> seen;
  const double now = static_cast<double>(wall_ns()) / 1e9;
  for (const auto& p : plan.paths()) {
    if (!seen.insert(p.local_endpoint()).second) continue;
    struct stat st {};
    if (::stat(keys.key_path(site, p.local_endpoint()).c_str(), &st) != 0) continue;
    const double written = static_cast<double>(st.st_mtim.tv_sec) + st.st_mtim.tv_nsec / 1e9;
    out.emplace_back(p.local_endpoint(), std::max(0.0, now - written));
  }
  return out;
}

// The eBPF NetworkPolicy enforcers running on this host (`patronus policy enforce`), by the
// counters they pinned: at most 64, read at the scrape.
std::vector<SiteMetricsInputs::Enforcer> pinned_enforcers() {
  std::vector<SiteMetricsInputs::Enforcer> out;
  std::error_code ec;
  std::filesystem::directory_iterator it(policy::bpf::kPinRoot, ec), end;
  for (; !ec && it != end && out.size() < 64; it.increment(ec)) {
    if (!it->is_directory(ec)) continue;
    auto counts = policy::bpf::read_pinned(it->path().filename().string());
    if (!counts.is_ok()) continue;
    out.push_back({it->path().filename().string(), counts.value().verdicts.allowed,
                   counts.value().verdicts.denied});
  }
  return out;
}

std::string restart_only_change(const core::DaemonConfig& a, const core::DaemonConfig& b) {
  if (a.state_db != b.state_db) return "state_db";
  if (a.control_socket != b.control_socket) return "control_socket";
  if (a.plugin_dir != b.plugin_dir) return "plugin_dir";
  if (a.flush_interval_ms != b.flush_interval_ms) return "flush_interval_ms";
  if (a.seed != b.seed) return "seed";
  if (a.http_listen != b.http_listen) return "http_listen";
  if (a.runtime.has_value() != b.runtime.has_value()) return "runtime";
  if (a.runtime && a.runtime->keys_dir != b.runtime->keys_dir) return "runtime.keys_dir";
  if (a.controller.has_value() != b.controller.has_value()) return "controller";
  if (a.controller &&
      (a.controller->address != b.controller->address || a.controller->pin != b.controller->pin ||
       a.controller->token_file != b.controller->token_file ||
       a.controller->state_dir != b.controller->state_dir ||
       a.controller->report_interval_ms != b.controller->report_interval_ms)) {
    return "controller";
  }
  return "";
}

// The site's config from its file with the controller's part: the plan and, when the fleet
// sets them, the classes and rules.
Result<site::SiteConfig> with_controller(const site::SiteConfig& local,
                                         const ControllerPush* push) {
  return push == nullptr ? Result<site::SiteConfig>(local)
                         : site::with_pushed(local, push->config(), push->version());
}

// The controller's path ids in the state database (what measurements and decisions refer to).
Status save_controller_paths(store::Store& db, const std::string& site,
                             const site::v1::Plan& plan) {
  std::vector<store::PathRow> rows;
  for (const auto& p : plan.paths()) {
    store::PathRow r;
    r.path_id = model::PathId(p.id());
    r.src_site = site;
    r.src_endpoint = p.local_endpoint();
    r.dst_site = p.remote_site();
    r.dst_endpoint = p.remote_endpoint();
    r.wg_interface = p.tunnel().interface_name();
    rows.push_back(std::move(r));
  }
  return db.save_assigned_paths(rows, wall_ns() / 1000000000);
}

// What the site tells the controller: its paths' state and quality, each class's path, the
// decisions made since `*since_ns` (advanced; at most 64, the newest).
ctl::Report report_of(site::SiteHost& host, std::int64_t started_ns, std::int64_t* since_ns) {
  ctl::Report r;
  r.set_uptime_s((wall_ns() - started_ns) / 1000000000);
  const steering::SiteRuntime* rt = host.runtime();
  if (rt == nullptr) return r;
  const auto paths = control::paths_of(*rt, wall_ns());
  const auto views = rt->paths();  // the same paths, in the same order
  for (int i = 0; i < paths.paths_size(); ++i) {
    if (r.paths_size() >= 4096) break;
    const auto& p = paths.paths(i);
    auto* v = r.add_paths();
    v->set_id(p.id());
    v->set_name(p.name());
    v->set_state(p.state());
    if (p.has_score()) v->set_score(p.score());
    if (p.has_latency_ms()) v->set_rtt_ms(p.latency_ms());
    if (p.has_jitter_ms()) v->set_jitter_ms(p.jitter_ms());
    if (p.has_loss_pct()) v->set_loss_pct(p.loss_pct());
    v->set_peer_site(p.peer_site());
    v->set_local_endpoint(p.local_endpoint());
    v->set_remote_endpoint(p.remote_endpoint());
    if (p.has_tunnel()) {
      auto* t = v->mutable_tunnel();
      t->set_up(p.tunnel().up());
      t->set_diagnostic(p.tunnel().diagnostic());
      if (p.tunnel().has_handshake_age_s()) t->set_handshake_age_s(p.tunnel().handshake_age_s());
      t->set_rx_bytes(p.tunnel().rx_bytes());
      t->set_tx_bytes(p.tunnel().tx_bytes());
    }
    if (static_cast<std::size_t>(i) < views.size()) {
      for (const auto& l : views[static_cast<std::size_t>(i)].liveness) {
        if (v->liveness_size() >= 8) break;
        auto* x = v->add_liveness();
        x->set_instance(l.instance);
        x->set_up(l.up);
        x->set_diagnostic(l.up ? "" : steering::liveness_diagnostic_text(l.diagnostic));
        x->set_detect_time_ms(static_cast<double>(l.detect_time_ns) / 1e6);
      }
    }
  }
  const auto decisions = control::decisions_of(*rt, 64);              // newest first
  std::map<std::pair<std::string, std::string>, std::string> reason;  // the newest per class/site
  for (const auto& d : decisions.decisions()) {
    reason.emplace(std::make_pair(d.class_name(), d.dst_site()), d.reason());
  }
  for (int i = decisions.decisions_size() - 1; i >= 0; --i) {
    const auto& d = decisions.decisions(i);
    if (d.unix_ns() <= *since_ns) continue;
    auto* v = r.add_decisions();
    v->set_unix_ns(d.unix_ns());
    v->set_class_name(d.class_name());
    v->set_remote_site(d.dst_site());
    v->set_from_path(d.from_path_id());
    v->set_to_path(d.to_path_id());
    v->set_reason(d.reason());
    v->set_why(d.why());
    if (d.has_fault_age_ms()) v->set_fault_age_ms(d.fault_age_ms());
    v->set_flows_moved(d.flows_moved());
    for (const auto& c : d.candidates()) {
      if (v->candidates_size() >= 16) break;
      auto* k = v->add_candidates();
      k->set_path(c.path_id());
      k->set_score(c.score());
      k->set_eligible(c.eligible());
      k->set_why_not(c.why_not());
    }
    *since_ns = std::max(*since_ns, d.unix_ns());
  }
  const auto status = control::status_of({}, host.router(), rt, wall_ns());
  for (const auto& sel : status.selections()) {
    if (r.classes_size() >= 4096) break;
    auto* c = r.add_classes();
    c->set_class_name(sel.class_name());
    c->set_remote_site(sel.site());
    c->set_path(sel.path_id());
    if (const auto it = reason.find({sel.class_name(), sel.site()}); it != reason.end()) {
      c->set_reason(it->second);
    }
  }
  return r;
}

}  // namespace

Result<site::SiteConfig> site_config_of(const core::DaemonConfig& cfg,
                                        const core::PluginRegistry& registry) {
  site::SiteConfig sc;
  sc.set_schema(site::kSiteConfigSchema);
  sc.set_site(cfg.site);
  for (const auto& spec : cfg.plugins) {
    auto lib = registry.find(spec.plugin);
    if (!lib) return not_found(spec.path + ".plugin: '" + spec.plugin + "' is not loaded");
    const std::string where =
        spec.path + ".config" +
        (spec.config_line > 0 ? " (line " + std::to_string(spec.config_line) + ")" : "");
    std::string bytes;
    if (lib->schema()) {
      auto b = spec.config ? lib->schema()->yaml_to_bytes(*spec.config, spec.path + ".config")
                           : lib->schema()->text_to_bytes("", spec.path + ".config");
      if (!b.is_ok()) return b.status();
      bytes = b.value();
    } else if (spec.config && !spec.config->IsNull() && spec.config->size() > 0) {
      return invalid_argument(where + ": plugin '" + spec.plugin + "' takes no configuration");
    }
    if (auto s = core::check_plugin_config(lib, spec.instance, bytes); !s.is_ok()) {
      return invalid_argument(where + ": plugin '" + spec.plugin +
                              "' refused its configuration: " + s.message());
    }
    auto* p = sc.add_plugins();
    p->set_plugin(spec.plugin);
    p->set_instance(spec.instance);
    p->set_config(bytes);
  }
  // The inventory handed to policy plugins is part of the configuration.
  for (const auto& f : cfg.policy_inventory) {
    auto inv = read_text_file(f);
    if (!inv.is_ok()) return invalid_argument("policy_inventory: " + inv.status().message());
    sc.set_policy_inventory(sc.policy_inventory() + "---\n" + inv.value() + "\n");
  }
  if (!cfg.runtime) return sc;
  const auto& r = *cfg.runtime;
  auto classes = steering::parse_classes(r.classes ? *r.classes : YAML::Node(), r.voice_scorer);
  if (!classes.is_ok()) return invalid_argument("runtime.classes: " + classes.status().message());
  auto* rt = sc.mutable_runtime();
  rt->set_probe(r.probe);
  for (const auto& l : r.liveness) rt->add_liveness(l);
  rt->set_scorer(r.scorer);
  *rt->mutable_classes() = site::classes_to_proto(classes.value());
  rt->set_transport(r.transport);
  rt->mutable_transports()->insert(r.transports.begin(), r.transports.end());
  rt->set_dataplane(r.dataplane == "linux" ? site::v1::DATAPLANE_LINUX : site::v1::DATAPLANE_NONE);
  rt->set_table_base(r.table_base);
  rt->set_tick_ms(r.tick_ms);
  rt->set_idle_after_ms(r.idle_after_ms);
  rt->set_flow_idle_ms(r.flow_idle_ms);
  rt->set_metrics_interval_ms(r.metrics_interval_ms);
  rt->set_max_flows(r.max_flows);
  rt->set_store_samples(r.store_samples);
  if (auto s = site::validate(sc); !s.is_ok()) return s;
  return sc;
}

Status keep_secrets_out_of_dumps() {
  if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
    return unavailable(std::string("prctl(PR_SET_DUMPABLE, 0): ") + std::strerror(errno));
  }
  return Status::ok();
}

// What a start would refuse about this site's keys and its control socket's directory, found
// before anything is opened or written (and by --check, which promises it).
Status check_private_files(const core::DaemonConfig& cfg) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!cfg.control_socket.empty()) {
    const std::string dir = fs::path(cfg.control_socket).parent_path().string();
    if (!dir.empty() && fs::exists(dir, ec)) {
      if (auto s = closed_directory(dir, true); !s.is_ok()) {
        return Status(s.code(), "control_socket: " + s.message());
      }
    }
  }
  if (cfg.runtime && !cfg.runtime->keys_dir.empty() && fs::exists(cfg.runtime->keys_dir, ec)) {
    if (auto s = closed_directory(cfg.runtime->keys_dir); !s.is_ok()) {
      return Status(s.code(), "runtime.keys_dir: " + s.message());
    }
    auto kd = mesh::KeyDirectory::open(cfg.runtime->keys_dir);
    if (!kd.is_ok())
      return Status(kd.status().code(), "runtime.keys_dir: " + kd.status().message());
    const fs::path mine = fs::path(cfg.runtime->keys_dir) / cfg.site;
    if (fs::is_directory(mine, ec)) {
      for (const auto& e : fs::directory_iterator(mine, ec)) {
        const std::string name = e.path().filename().string();
        if (name.size() <= 4 || name.substr(name.size() - 4) != ".key") continue;
        const std::string stem = name.substr(0, name.size() - 4);
        auto kp = stem.size() > 5 && stem.substr(stem.size() - 5) == ".next"
                      ? kd.value().load_next(cfg.site, stem.substr(0, stem.size() - 5))
                      : kd.value().load(cfg.site, stem);
        if (!kp.is_ok()) {
          return Status(kp.status().code(), "runtime.keys_dir: " + kp.status().message());
        }
      }
    }
  }
  return Status::ok();
}

int run(const Options& opt) {
  if (auto s = keep_secrets_out_of_dumps(); !s.is_ok()) {
    std::cerr << "patronusd: " << s.message() << " (core dumps could hold private keys)"
              << std::endl;
  }
  core::PluginRegistry registry;
  core::PluginRegistry::NamedLoad scan;
  auto loaded = load(opt.config_path, registry, &scan);
  if (!loaded.is_ok()) {
    std::cerr << "patronusd: " << loaded.status().message() << std::endl;
    return kExitConfig;
  }
  const core::DaemonConfig& cfg = loaded.value().daemon;
  site::SiteConfig config = loaded.value().site;

  // The sites file and the peers' keys, checked before anything is opened or written.
  std::string plan = "no runtime";
  if (cfg.runtime && cfg.controller) {
    plan = "the plan from the controller at " + cfg.controller->address + ", " +
           std::to_string(config.runtime().classes().classes_size()) + " classes of its own";
  } else if (cfg.runtime) {
    auto checked = site::check_local_site(plan_options(cfg));
    if (!checked.is_ok()) {
      std::cerr << "patronusd: runtime: " << checked.status().message() << std::endl;
      return kExitConfig;
    }
    plan = checked.value() + ", " + std::to_string(config.runtime().classes().classes_size()) +
           " classes";
  }
  if (auto s = check_private_files(cfg); !s.is_ok()) {
    std::cerr << "patronusd: " << s.message() << std::endl;
    return kExitConfig;
  }
  if (opt.check_only) {
    if (cfg.seed) {
      std::cerr << "patronusd: warning: seed: " << *cfg.seed
                << " makes every start repeat its probe nonces and BFD sequences: for tests "
                   "and trials only"
                << std::endl;
    }
    std::cout << "patronusd: " << opt.config_path << ": valid: " << config.plugins_size()
              << " plugin instance(s) loaded and configured, " << plan << std::endl;
    return kExitOk;
  }

  // One site, one daemon: a second daemon for this state stops here, before it opens a socket,
  // the database or a tunnel (it used to adopt the first one's tunnels and remove its rules).
  auto site_lock = site::SiteLock::acquire(cfg.state_db, "site " + cfg.site);
  if (!site_lock.is_ok()) {
    std::cerr << "patronusd: " << site_lock.status().message() << std::endl;
    return kExitRuntime;
  }
  boost::asio::io_context io;
  // Probe nonces, BFD discriminators and sequences come from the Env: from the OS unless the
  // config fixes a seed (tests and trials), and then every start repeats them.
  env::AsioEnv env(io, cfg.seed);

  // The control API (`patronus status|paths list|flows list|decisions --socket PATH`) answers
  // "starting" until the site runs.
  std::unique_ptr<control::ControlServer> control_server;
  std::optional<control::Service> service;
  control::DaemonInfo info;
  info.site = cfg.site;
  info.version = PATRONUS_VERSION;
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
  if (!cfg.control_socket.empty()) {
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
  Log log(cfg.site, level_of(cfg.log_level), writer);
  log.set_format(cfg.log_format);
  metrics::Histogram store_write_seconds(
      {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5});
  writer.on_flush = [&store_write_seconds](double s) { store_write_seconds.observe(s); };
  if (cfg.seed) {
    log.log(2,
            "seed: " + std::to_string(*cfg.seed) +
                " fixes the probe nonces, BFD discriminators and sequence numbers, so every start "
                "repeats them (a peer drops a restarted site's probes as replays, and they can be "
                "predicted): for tests and trials only; remove it in production");
  }
  if (control_server) log.log(1, "control API on " + cfg.control_socket);
  for (const auto& r : scan.refused) {
    log.log(
        2, "plugin file " + r.file + " is not loadable (the config does not name it): " + r.reason);
  }
  for (const auto& r : scan.skipped)
    log.log(3, "skipped " + r.file + " in plugin_dir: " + r.reason);

  // The plan: this site's share of the mesh, from the sites file and the keys, saved to the store.
  std::optional<mesh::KeyDirectory> keys;
  // A controller-fed site starts from the config it last applied (or with no paths until the
  // controller sends one): the data plane never waits for the controller.
  std::optional<ControllerPush> controller_push;
  const site::SiteConfig file_config = config;  // the file's part, without a plan
  if (cfg.controller) {
    auto last = ControllerLink::load_last(cfg.controller->state_dir);
    if (!last.is_ok()) {
      std::cerr << "patronusd: controller: " << last.status().message() << std::endl;
      return kExitConfig;
    }
    controller_push = last.value();
    if (controller_push) {
      auto merged = with_controller(config, &*controller_push);
      if (!merged.is_ok()) {
        std::cerr << "patronusd: controller: the stored version " << controller_push->version()
                  << ": " << merged.status().message() << std::endl;
        return kExitConfig;
      }
      config = std::move(merged).value();
      if (auto s = save_controller_paths(db, cfg.site, config.plan()); !s.is_ok()) {
        std::cerr << "patronusd: " << s.message() << std::endl;
        return kExitRuntime;
      }
      log.log(1, "controller: starting from version " + std::to_string(controller_push->version()) +
                     " (" + controller_push->hash().substr(0, 12) + "), applied before");
    } else {
      log.log(1, "controller: no config yet; the site runs no path until " +
                     cfg.controller->address + " sends one");
    }
  }
  if (cfg.runtime && !cfg.controller) {
    auto share = site::plan_local_share(plan_options(cfg), db, wall_ns() / 1000000000);
    if (!share.is_ok()) {
      std::cerr << "patronusd: runtime: " << share.status().message() << std::endl;
      return kExitConfig;
    }
    *config.mutable_plan() = std::move(share).value();
    std::set<std::string> checked;
    for (const auto& p : config.plan().paths()) {
      if (!checked.insert(p.local_endpoint()).second) continue;
      auto addr = model::SocketAddress::parse(p.local_underlay());
      if (!addr.is_ok() || addr.value().ip().is_unspecified()) continue;
      if (!address_is_local(addr.value().ip())) {
        // With tunnels the probes run over the overlay and the transport listens on every
        // address, so a public address in front of a NAT is right; without, probes bind to it.
        const bool tunnels = !cfg.runtime->transport.empty() || !cfg.runtime->transports.empty();
        log.log(2, "endpoint " + cfg.site + "/" + p.local_endpoint() + ": " +
                       addr.value().ip().to_string() + " is not an address of this host" +
                       (tunnels ? " (right if the site is behind a NAT that peers reach it "
                                  "through; otherwise the sites file names the wrong address)"
                                : ": every probe from it fails until it is (does the sites file "
                                  "name the right address for this site?)"));
        log.record("patronusd", "daemon.address_not_local",
                   "{\"endpoint\":\"" + p.local_endpoint() + "\",\"address\":\"" +
                       addr.value().ip().to_string() + "\"}");
      }
    }
  }
  if (cfg.runtime) {
    auto kd = mesh::KeyDirectory::open(cfg.runtime->keys_dir);
    if (!kd.is_ok()) {
      std::cerr << "patronusd: runtime.keys_dir: " << kd.status().message() << std::endl;
      return kExitConfig;
    }
    keys = std::move(kd).value();
  }
  site::HostContext ctx;
  ctx.env = &env;
  ctx.plugins = [&registry](const std::string& name) { return registry.find(name); };
  if (keys) ctx.keys = site::directory_keys(*keys);
  ctx.dataplane = dataplane_factory(log);
  ctx.store = &db;
  // Counted for /metrics: probe outcomes per path, failovers per class and peer.
  SiteMetrics site_metrics(cfg.runtime ? cfg.runtime->probe : "");
  ctx.observers = {&log, &site_metrics};
  ctx.plugin_observer = &log;
  std::size_t stored_policies = 0;
  ctx.stored_policies = [&db, &stored_policies]() -> Result<std::string> {
    auto rows = db.list_policies();
    if (!rows.is_ok()) return rows.status();
    stored_policies = rows.value().size();
    return policy::stored_policies_document(rows.value());
  };
  auto created = site::SiteHost::create(std::move(ctx), config);
  if (!created.is_ok()) {
    std::cerr << "patronusd: " << created.status().message() << std::endl;
    return kExitConfig;
  }
  site::SiteHost& host = *created.value();
  std::unique_ptr<ControllerLink> link;  // the controller's, once started (below)
  // /metrics, /livez, /readyz. The loop's heartbeat also feeds systemd's watchdog (WatchdogSec=)
  // when run by it: a stuck loop is restarted, not only reported.
  const auto watchdog = http::sd_watchdog_interval();
  auto last_watchdog = std::chrono::steady_clock::now();
  http::Heartbeat heartbeat(io, [&] {
    const auto now = std::chrono::steady_clock::now();
    if (watchdog.count() > 0 && now - last_watchdog >= watchdog / 2) {
      last_watchdog = now;
      http::sd_notify("WATCHDOG=1");
    }
  });
  auto readiness = [&]() -> std::vector<http::HealthCheck> {
    std::vector<http::HealthCheck> checks;
    checks.push_back(
        {"event_loop", !heartbeat.late(), "late by " + std::to_string(heartbeat.lag_s()) + " s"});
    const bool fed = !cfg.controller || controller_push.has_value();
    std::string why;
    if (!host.running()) {
      why = "the site is not running";
    } else if (!fed) {
      why = "no config from the controller yet (" + cfg.controller->address + ")";
    }
    checks.push_back({"config_applied", host.running() && fed, why});
    checks.push_back({"plugins_started", host.router().running(), "the plugins are not running"});
    const auto* rt = host.runtime();
    const bool decided =
        rt == nullptr || rt->remote_site_names().empty() || rt->counters().decisions > 0;
    checks.push_back(
        {"first_decisions", decided, "no class has a path yet (no path to a peer has come up)"});
    return checks;
  };
  auto metrics_text = [&] {
    SiteMetricsInputs in;
    in.version = info.version;
    in.started_unix_s = info.started_unix_ns / 1000000000;
    in.loop_lag_seconds = heartbeat.lag_s();
    in.ready = true;
    for (const auto& c : readiness()) in.ready = in.ready && c.ok;
    auto* sink = host.sink();
    in.store_batches = writer.flushes() + (sink ? sink->writer().flushes() : 0);
    in.store_failed_batches =
        writer.failed_flushes() + (sink ? sink->writer().failed_flushes() : 0);
    in.store_rows_written = writer.rows_written() + (sink ? sink->rows_written() : 0);
    in.store_rows_pending = writer.pending() + (sink ? sink->writer().pending() : 0);
    in.store_rows_dropped = writer.dropped() + (sink ? sink->dropped() : 0);
    in.store_write_seconds = &store_write_seconds;
    if (cfg.controller) {
      in.controller_connected = link && link->connected();
      in.applied_version = controller_push ? controller_push->version() : 0;
    }
    if (keys) in.key_ages_s = key_ages(*keys, cfg.site, host.config().plan());
    in.ebpf = pinned_enforcers();
    return site_metrics.render(host.runtime(), host.router(), in);
  };
  std::unique_ptr<http::Server> http_server;
  if (!cfg.http_listen.empty()) {
    http::Server::Handlers hh;
    hh.request = [&](const http::Request& r, http::ConnectionId, http::Reply reply) {
      if (r.method != "GET") {
        auto res = http::text_response(405, "only GET: /metrics, /livez, /readyz\n");
        res.headers.emplace_back("Allow", "GET");
        return reply(std::move(res));
      }
      if (r.path == "/livez") {
        return reply(http::health_response(r, "livez", {readiness().front()}));
      }
      if (r.path == "/readyz") return reply(http::health_response(r, "readyz", readiness()));
      if (r.path == "/metrics") {
        http::Response res;
        res.content_type = metrics::kContentType;
        res.body = metrics_text();
        return reply(std::move(res));
      }
      return reply(http::text_response(
          404, "not found: this listener serves /metrics, /livez and /readyz\n"));
    };
    http::Limits hl;
    hl.max_connections = 64;  // Prometheus and a probe or two; more wait in the backlog
    hl.max_header_bytes = 8 * 1024;
    hl.max_body_bytes = 0;
    hl.request_timeout_ms = 5000;
    hl.max_streams = 0;
    auto srv = http::Server::listen_plain(io, cfg.http_listen, hh, hl);
    if (srv.is_ok()) {
      http_server = std::move(srv).value();
      log.log(1, "metrics and health on http://" + cfg.http_listen + " (port " +
                     std::to_string(http_server->port()) + ")");
    } else if (cfg.http_listen_default) {
      log.log(2, "http_listen: " + srv.status().message() +
                     ": running without /metrics and health (another daemon holds the default "
                     "port? give each its own http_listen, or none)");
    } else {
      // Before anything starts: a taken port changes nothing on the site.
      std::cerr << "patronusd: http_listen: " << srv.status().message() << std::endl;
      return kExitRuntime;
    }
  }
  log.record("patronusd", "daemon.start",
             "{\"plugins\":" + std::to_string(config.plugins_size()) +
                 ",\"paths\":" + std::to_string(config.plan().paths_size()) + ",\"config\":\"" +
                 host.config_hash() + "\"}");
  auto started = host.start();
  if (!started.is_ok()) {
    // The host took down what it had started: no rule, route or tunnel of this start is left.
    std::cerr << "patronusd: " << started.status().message() << std::endl;
    log.record("patronusd", "daemon.start_failed", "{}");
    (void)writer.flush();
    return kExitRuntime;
  }
  for (const auto& inst : started.value().policy_instances) {
    log.record(inst, "policy.loaded",
               "{\"policies\":" + std::to_string(stored_policies) +
                   ",\"inventory_files\":" + std::to_string(cfg.policy_inventory.size()) + "}");
    log.log(1, inst + ": loaded " + std::to_string(stored_policies) + " stored network policies");
  }
  if (!started.value().fleet_policies_shadowed.empty()) {
    log.log(2, "the fleet's " + nlohmann::json(started.value().fleet_policies_shadowed).dump() +
                   " are also defined on this site: its own copy applies");
  }
  log.log(1, "started " + std::to_string(started.value().plugins) + " plugin instance(s)" +
                 (host.runtime()
                      ? ", site runtime over " + std::to_string(started.value().paths) + " path(s)"
                      : std::string()) +
                 ", config " + host.config_hash().substr(0, 12) + ", state in " + cfg.state_db);
  // The control API answers with the applied config's hash (again after every accepted reload).
  auto serve = [&] {
    info.config_hash = host.config_hash();
    service.emplace(info, host.router(), host.runtime(), env);
  };
  serve();
  if (auto* sink = host.sink()) {
    sink->writer().on_flush = [&store_write_seconds](double s) { store_write_seconds.observe(s); };
  }

  // What an apply changed, said once in the log and recorded (SIGHUP and the controller's pushes).
  auto say_applied = [&](const std::string& what, const site::ApplyReport& a) {
    for (const auto& e : a.errors) log.log(3, what + ": " + e);
    log.log(1,
            a.unchanged
                ? what + ": the config is unchanged"
                : what + ": " + std::to_string(a.sites_added.size()) + " site(s) and " +
                      std::to_string(a.paths_added.size()) + " path(s) added, " +
                      std::to_string(a.paths_removed.size()) + " removed, " +
                      std::to_string(a.paths_rekeyed) + " with new keys" +
                      (a.sites_removed.empty()
                           ? std::string()
                           : ", sites removed " + nlohmann::json(a.sites_removed).dump()) +
                      (a.errors.empty() ? std::string()
                                        : ", " + std::to_string(a.errors.size()) + " refused") +
                      (a.classes_replaced
                           ? ", classes replaced (added " + nlohmann::json(a.classes_added).dump() +
                                 ", removed " + nlohmann::json(a.classes_removed).dump() + ")"
                           : "") +
                      (a.plugins_restarted.empty()
                           ? std::string()
                           : ", restarted " + nlohmann::json(a.plugins_restarted).dump()) +
                      (a.policies_reloaded ? ", the fleet's policies reloaded" : "") +
                      (a.fleet_policies_shadowed.empty()
                           ? std::string()
                           : " (this site's own copy applies for " +
                                 nlohmann::json(a.fleet_policies_shadowed).dump() + ")") +
                      ", config " + host.config_hash().substr(0, 12));
    log.record("patronusd", "daemon.replanned",
               "{\"changed\":" + std::to_string(a.paths_rekeyed) +
                   ",\"sites_added\":" + std::to_string(a.sites_added.size()) +
                   ",\"sites_removed\":" + std::to_string(a.sites_removed.size()) +
                   ",\"paths_added\":" + std::to_string(a.paths_added.size()) +
                   ",\"paths_removed\":" + std::to_string(a.paths_removed.size()) +
                   ",\"refused\":" + std::to_string(a.errors.size()) +
                   ",\"classes_replaced\":" + (a.classes_replaced ? "true" : "false") +
                   ",\"plugins_restarted\":" + nlohmann::json(a.plugins_restarted).dump() +
                   ",\"policies_reloaded\":" + (a.policies_reloaded ? "true" : "false") +
                   ",\"config\":\"" + host.config_hash() + "\"}");
  };

  // The controller: every config it pushes is applied like a SIGHUP's, on the file's current
  // wiring; what was applied is stored by the link for the next start.
  site::SiteConfig local_config = file_config;
  if (cfg.controller) {
    ControllerLink::Hooks hooks;
    hooks.apply = [&](const ControllerPush& push) -> Status {
      auto merged = with_controller(local_config, &push);
      if (!merged.is_ok()) return merged.status();
      const site::SiteConfig& next = merged.value();
      if (auto s = host.check_apply(next); !s.is_ok()) return s;
      if (auto s = save_controller_paths(db, cfg.site, next.plan()); !s.is_ok()) return s;
      auto r = host.apply(next);
      if (!r.is_ok()) return r.status();
      controller_push = push;
      serve();
      say_applied("controller version " + std::to_string(push.version()), r.value());
      return Status::ok();
    };
    const std::int64_t started = wall_ns();
    auto reported_until = std::make_shared<std::int64_t>(0);
    hooks.report = [&host, started, reported_until] {
      return report_of(host, started, reported_until.get());
    };
    hooks.log = [&log](int level, const std::string& m) { log.log(level, m); };
    auto l = ControllerLink::create(io, *cfg.controller, cfg.site, *keys, std::move(hooks),
                                    env.random_u64());
    if (!l.is_ok()) {
      std::cerr << "patronusd: " << l.status().message() << std::endl;
      for (const auto& e : host.stop()) log.log(3, e);
      (void)writer.flush();
      return kExitConfig;
    }
    link = std::move(l).value();
    link->start();
    log.path_changed = [&link] {
      if (link) link->report_soon();
    };
  }

  http::sd_notify("READY=1");

  bool stopping = false;
  std::function<void()> schedule_flush;
  schedule_flush = [&] {
    env.schedule(cfg.flush_interval_ms * 1000000, [&] {
      if (auto s = writer.flush(); !s.is_ok()) log.log(3, s.message());
      if (auto s = host.flush(); !s.is_ok()) log.log(3, s.message());
      if (!stopping) schedule_flush();
    });
  };
  schedule_flush();

  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  boost::asio::signal_set hup(io, SIGHUP);
  auto shutdown = [&](const std::string& why) {
    if (stopping) return;
    stopping = true;
    log.log(1, "stopping (" + why + ")");
    log.path_changed = nullptr;
    http::sd_notify("STOPPING=1");
    http_server.reset();
    link.reset();
    control_server.reset();
    service.reset();
    for (const auto& e : host.stop()) log.log(3, e);
    log.record("patronusd", "daemon.stop", "{\"reason\":\"" + why + "\"}");
    const auto pending = writer.pending();
    if (auto s = writer.flush(); !s.is_ok()) {
      log.log(3, "final flush failed: " + s.message());
    } else {
      const auto* sink = host.sink();
      log.log(1, "state flushed (" + std::to_string(pending) + " rows in the last batch, " +
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
  // SIGHUP: read the file again, plan again from the sites file and the keys, and apply: new
  // sites and paths join, paths no longer planned leave, re-keyed paths (ADR 0013) are handed to
  // the transport and the probe again; the others are not touched; a plugin instance whose config
  // changed restarts alone; new classes and rules are decided in one evaluation. A file that does
  // not validate, or changes what needs a restart, changes nothing.
  core::DaemonConfig running = cfg;  // the daemon-level settings in force
  std::function<void()> wait_hup;
  wait_hup = [&] {
    hup.async_wait([&](const boost::system::error_code& ec, int) {
      if (ec || stopping) return;
      auto next = load(opt.config_path, registry, nullptr);
      const site::SiteConfig next_file = next.is_ok() ? next.value().site : site::SiteConfig();
      if (next.is_ok()) {
        if (const std::string f = restart_only_change(running, next.value().daemon); !f.empty()) {
          next = failed_precondition(f +
                                     ": changes with a restart (read once at start); nothing "
                                     "was applied");
        }
      }
      // Refused before the new plan is made: making it saves it to the state database (and
      // creates keys missing from keys_dir), so the plan's inputs are checked first, writing
      // nothing, as --check does.
      const bool controlled = next.is_ok() && next.value().daemon.controller.has_value();
      if (next.is_ok() && next.value().daemon.runtime && !controlled) {
        if (auto c = site::check_local_site(plan_options(next.value().daemon)); !c.is_ok()) {
          next = Status(c.status().code(), "runtime: " + c.status().message());
        }
      }
      if (next.is_ok() && controlled) {
        // The plan (and the fleet's classes, policies, plugin settings) stay the controller's;
        // the file's wiring is new.
        auto merged =
            with_controller(next.value().site, controller_push ? &*controller_push : nullptr);
        if (merged.is_ok()) {
          next.value().site = std::move(merged).value();
          *next.value().site.mutable_plan() = host.config().plan();
        } else {
          next = Status(merged.status().code(), "the controller's version " +
                                                    std::to_string(controller_push->version()) +
                                                    ": " + merged.status().message());
        }
      }
      if (next.is_ok()) {
        site::SiteConfig without_plan = next.value().site;
        *without_plan.mutable_plan() = host.config().plan();
        if (auto s = host.check_apply(without_plan); !s.is_ok()) next = s;
      }
      if (next.is_ok() && !controlled && next.value().daemon.runtime) {
        auto share =
            site::plan_local_share(plan_options(next.value().daemon), db, wall_ns() / 1000000000);
        if (!share.is_ok()) {
          next = Status(share.status().code(), "runtime: " + share.status().message());
        } else {
          *next.value().site.mutable_plan() = std::move(share).value();
        }
      }
      auto r =
          next.is_ok() ? host.apply(next.value().site) : Result<site::ApplyReport>(next.status());
      if (!r.is_ok()) {
        log.log(3, "reload (SIGHUP) refused, nothing changed: " + r.status().message());
        log.record("patronusd", "daemon.reload_refused",
                   nlohmann::json{{"error", r.status().message()}}.dump());
      } else {
        const auto& d = next.value().daemon;
        if (d.log_format != running.log_format || d.log_level != running.log_level) {
          log.set_format(d.log_format);
          log.set_level(level_of(d.log_level));
          log.log(1, "logging changed: level " + d.log_level + ", format " + d.log_format);
        }
        running = next.value().daemon;
        local_config = next_file;
        serve();
        say_applied("reloaded (SIGHUP)", r.value());
      }
      wait_hup();
    });
  };
  wait_hup();
  if (opt.run_for_s > 0) {
    env.schedule(static_cast<std::int64_t>(opt.run_for_s * 1e9),
                 [&] { shutdown("run-for elapsed"); });
  }
  io.run();
  return kExitOk;
}

}  // namespace patronus::daemon
