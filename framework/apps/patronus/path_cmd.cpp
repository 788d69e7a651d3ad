#include "path_cmd.hpp"

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli_common.hpp"
#include "patronus/store/store.hpp"
#include "patronus/trial/plugin_trial.hpp"
#include "socket.hpp"

namespace patronus::cli {

using nlohmann::json;

void register_path_commands(CLI::App& app, PathCommands& p, const std::string& default_plugin_dir) {
  p.plugin_dir = default_plugin_dir;
  p.score = app.add_subcommand("score", "score a path window with a scorer plugin");
  p.score->add_option("--latency", p.latency, "round-trip latency, ms")->required();
  p.score->add_option("--jitter", p.jitter, "jitter, ms")->required();
  p.score->add_option("--loss", p.loss, "loss, percent (0-100)")->required();
  p.score->add_option("--bandwidth", p.bandwidth,
                      "path capacity, Mbit/s (omit: unknown, the scorer says what it does)");
  p.score->add_option("--scorer", p.scorer, "scorer plugin name (scoring, emodel, ...)")
      ->capture_default_str();
  p.score->add_option("--plugin-dir", p.plugin_dir, "directory of lib*.so plugins");
  p.score->add_option("--config", p.config_yaml, "the scorer's configuration (YAML)");
  p.score->add_flag("--json", p.json, "JSON: {\"score\": N, \"state\": \"up|degraded|down\"}");

  // Each reads from the daemon's socket, or with --db from its state database.
  auto source = [&p](CLI::App* c) {
    c->add_option("--socket", p.socket, "the daemon's control socket")->capture_default_str();
    c->add_option("--db", p.db, "read this state database instead of asking the daemon");
    c->add_option("--timeout-ms", p.timeout_ms, "how long to wait for the daemon")
        ->check(CLI::Range(1, 600000));
    c->add_flag("--json", p.json, "JSON output (the control API's JSON)");
  };
  p.status = app.add_subcommand("status", "a site daemon's state: paths, selections, counters");
  source(p.status);
  p.status->add_flag("--verbose,-v", p.verbose, "plugins, every selection and every counter");

  auto* paths = app.add_subcommand("paths", "a site's paths as its runtime measures them");
  paths->require_subcommand(1);
  p.paths_list = paths->add_subcommand("list", "list paths with state, score, metrics, tunnel");
  source(p.paths_list);
  p.paths_list->add_option("--sort-by", p.sort_by, "score, latency or loss")
      ->check(CLI::IsMember({"score", "latency", "loss"}))
      ->capture_default_str();

  auto* flows = app.add_subcommand("flows", "the flows a site's runtime tracks");
  flows->require_subcommand(1);
  p.flows_list = flows->add_subcommand("list", "list flows with class, path and counters");
  source(p.flows_list);
  p.flows_list->add_option("--limit", p.limit, "how many (default 1000)")
      ->check(CLI::Range(1, 100000));

  p.decisions = app.add_subcommand("decisions", "the newest path decisions (why this path)");
  source(p.decisions);
  p.decisions->add_option("--limit", p.limit, "how many")->check(CLI::Range(1, 1000000));
}

namespace {

int run_score(PathCommands& p) {
  for (const auto& [name, v, hi] :
       {std::tuple{"--latency", p.latency, 1e6}, std::tuple{"--jitter", p.jitter, 1e6},
        std::tuple{"--loss", p.loss, 100.0}}) {
    if (!(v >= 0 && v <= hi)) {
      return fail(kExitUsage, std::string(name) + ": must be 0.." + (hi == 100.0 ? "100" : "1e6"));
    }
  }
  if (p.score->count("--bandwidth") && !(p.bandwidth > 0 && p.bandwidth <= 1e7)) {
    return fail(kExitUsage, "--bandwidth: must be > 0 and <= 1e7 Mbit/s");
  }
  // The same loader, config conversion and call as `plugins try` (patronus::trial).
  const std::string file = p.plugin_dir + "/libpatronus-" + p.scorer + ".so";
  auto trial = trial::PluginTrial::load(file);
  if (!trial.is_ok()) return fail(kExitUsage, "--scorer: " + trial.status().message());
  const std::string& kind = trial.value()->summary().kind;
  if (kind != "scorer") {
    return fail(kExitUsage, "--scorer: " + p.scorer + " is a " + kind + " plugin, not a scorer");
  }
  if (auto s = trial.value()->set_config(p.config_yaml); !s.is_ok()) {
    return fail(kExitUsage, "--config: " + s.message());
  }
  trial::Window w;
  w.samples = 1;
  w.latency_ms = p.latency;
  w.jitter_ms = p.jitter;
  w.loss_pct = p.loss;
  if (p.score->count("--bandwidth")) {
    w.bandwidth_mbps = p.bandwidth;
  } else {
    w.bandwidth_unknown = true;
  }
  auto r = trial.value()->score(w);
  if (!r.is_ok()) return fail(kExitUsage, r.status().message());
  const double score = std::round(r.value().score * 100) / 100;
  if (p.json) {
    std::cout << json{{"score", score}, {"state", r.value().state}}.dump() << std::endl;
  } else {
    std::cout << std::fixed << std::setprecision(2) << score << " " << r.value().state << " ("
              << p.scorer << ")" << std::endl;
  }
  return 0;
}

Result<std::unique_ptr<store::Store>> open_db(const std::string& db) {
  std::error_code ec;
  if (!std::filesystem::exists(db, ec)) return not_found("no state database at " + db);
  return store::Store::open(db);
}

// The reply to one request, from the daemon or (--db) built from the database the same way.
Result<control::api::Response> fetch(const PathCommands& p, const control::api::Request& q) {
  if (p.db.empty()) {
    auto r = control::call(p.socket, q, p.timeout_ms);
    if (!r.is_ok()) return r.status();
    if (r.value().has_error()) {
      return Status(Code::kFailedPrecondition, "the daemon answered: " + r.value().error().code() +
                                                   ": " + r.value().error().message());
    }
    return r;
  }
  auto st = open_db(p.db);
  if (!st.is_ok()) return st.status();
  return control::answer_from_store(*st.value(), q);
}

std::string num(bool has, double v, int prec) {
  if (!has) return "-";
  std::ostringstream o;
  o << std::fixed << std::setprecision(prec) << v;
  return o.str();
}

std::string path_label(std::uint64_t id) {
  return id ? std::to_string(id) : "none";
}

int run_status(PathCommands& p) {
  control::api::Request q;
  q.mutable_status();
  auto r = fetch(p, q);
  if (!r.is_ok()) return fail(kExitFailure, r.status().message());
  const auto& s = r.value().status();
  if (p.json) {
    std::cout << control::to_json(s, 2) << std::endl;
    return 0;
  }
  std::cout << "site " << (s.site().empty() ? "?" : s.site()) << " ("
            << (s.source() == "daemon"
                    ? "patronusd " + s.version() + ", pid " + std::to_string(s.pid()) + ", up " +
                          num(s.has_uptime_s(), s.uptime_s(), 0) + " s"
                    : "offline, from " + s.state_db())
            << ")\n";
  std::cout << "paths: " << s.paths_up() << " up, " << s.paths_degraded() << " degraded, "
            << s.paths_down() << " down; " << s.remote_sites() << " remote sites; " << s.flows()
            << " flows\n";
  if (s.source() == "daemon") {
    std::cout << "transport: " << (s.transport().empty() ? "none" : s.transport())
              << "; dataplane: " << s.dataplane() << "; state: " << s.state_db() << "\n";
    if (!s.config_hash().empty()) std::cout << "config: " << s.config_hash() << "\n";
  }
  if (s.has_last_decision_unix_ns()) {
    std::cout << "last decision: " << utc_time(s.last_decision_unix_ns()) << "\n";
  }
  std::size_t unrouted = 0;
  for (const auto& sel : s.selections()) unrouted += sel.path_id() == 0;
  if (!s.selections().empty()) {
    std::cout << "selections: " << s.selections_size() - unrouted << " of " << s.selections_size()
              << " (class, site) pairs have a path\n";
  }
  if (!p.verbose) return 0;
  std::cout << "\nplugins:\n";
  for (const auto& pl : s.plugins()) {
    std::cout << "  " << std::left << std::setw(14) << pl.instance() << std::setw(10) << pl.kind()
              << pl.plugin() << " " << pl.version() << " (ABI " << pl.abi() << ") " << pl.file()
              << "\n";
  }
  std::cout << "\nselections:\n";
  for (const auto& sel : s.selections()) {
    std::cout << "  " << std::left << std::setw(12) << sel.site() << std::setw(14)
              << sel.class_name()
              << (sel.path_id() ? std::to_string(sel.path_id()) + " " + sel.path() : "no path")
              << "\n";
  }
  if (s.metrics_size() > 0) {
    std::cout << "\nplugin metrics:\n";
    for (const auto& m : s.metrics()) {
      std::cout << "  " << std::left << std::setw(14) << m.instance() << std::setw(28) << m.name()
                << m.value() << " (" << m.age_s() << " s ago)\n";
    }
  }
  std::cout << "\ncounters:\n";
  std::map<std::string, std::uint64_t> sorted(s.counters().begin(), s.counters().end());
  for (const auto& [k, v] : sorted)
    std::cout << "  " << std::left << std::setw(36) << k << v << "\n";
  return 0;
}

int run_paths(PathCommands& p) {
  control::api::Request q;
  q.mutable_paths();
  auto r = fetch(p, q);
  if (!r.is_ok()) return fail(kExitFailure, r.status().message());
  auto v = r.value().paths();
  if (auto s = control::sort_paths(v, p.sort_by); !s.is_ok()) return fail(kExitUsage, s.message());
  if (p.json) {
    std::cout << control::to_json(v, 2) << std::endl;
    return 0;
  }
  std::cout << std::left << std::setw(5) << "ID" << std::setw(34) << "PATH" << std::setw(9)
            << "STATE" << std::setw(7) << "SCORE" << std::setw(9) << "RTT ms" << std::setw(8)
            << "JITTER" << std::setw(8) << "LOSS %"
            << "TUNNEL\n";
  for (const auto& x : v.paths()) {
    std::string tunnel = "-";
    if (x.has_tunnel()) {
      tunnel = x.tunnel().up() ? "up" : "down";
      tunnel += x.tunnel().has_handshake_age_s()
                    ? ", handshake " + num(true, x.tunnel().handshake_age_s(), 0) + " s ago"
                    : ", no handshake";
    }
    std::cout << std::left << std::setw(5) << x.id() << std::setw(34) << x.name() << std::setw(9)
              << x.state() << std::setw(7) << num(x.has_score(), x.score(), 1) << std::setw(9)
              << num(x.has_latency_ms(), x.latency_ms(), 2) << std::setw(8)
              << num(x.has_jitter_ms(), x.jitter_ms(), 2) << std::setw(8)
              << num(x.has_loss_pct(), x.loss_pct(), 2) << tunnel << "\n";
  }
  return 0;
}

int run_flows(PathCommands& p) {
  const auto limit = static_cast<std::uint32_t>(p.flows_list->count("--limit") ? p.limit : 1000);
  control::api::Request q;
  q.mutable_flows()->set_limit(limit);
  auto r = fetch(p, q);
  if (!r.is_ok()) return fail(kExitFailure, r.status().message());
  const auto& v = r.value().flows();
  if (p.json) {
    std::cout << control::to_json(v, 2) << std::endl;
    return 0;
  }
  std::cout << std::left << std::setw(48) << "FLOW" << std::setw(12) << "CLASS" << std::setw(7)
            << "PATH" << std::setw(10) << "PACKETS"
            << "BYTES\n";
  for (const auto& f : v.flows()) {
    const std::string proto = f.protocol() == 6    ? "tcp"
                              : f.protocol() == 17 ? "udp"
                                                   : std::to_string(f.protocol());
    std::cout << std::left << std::setw(48)
              << (proto + " " + f.src() + ":" + std::to_string(f.src_port()) + " > " + f.dst() +
                  ":" + std::to_string(f.dst_port()))
              << std::setw(12) << f.class_name() << std::setw(7) << path_label(f.path_id())
              << std::setw(10) << f.packets() << f.bytes() << "\n";
  }
  std::cout << v.flows_size() << " of " << v.total() << " flows\n";
  return 0;
}

int run_decisions(PathCommands& p) {
  const auto limit = static_cast<std::uint32_t>(std::min<std::size_t>(p.limit, 1000000));
  control::api::Request q;
  q.mutable_decisions()->set_limit(limit);
  auto r = fetch(p, q);
  if (!r.is_ok()) return fail(kExitFailure, r.status().message());
  const auto& v = r.value().decisions();
  if (p.json) {
    std::cout << control::to_json(v, 2) << std::endl;
    return 0;
  }
  for (const auto& d : v.decisions()) {
    std::cout << utc_time(d.unix_ns()) << " " << d.site() << " " << d.class_name() << "->"
              << d.dst_site() << " " << d.reason() << " " << path_label(d.from_path_id()) << " -> "
              << path_label(d.to_path_id()) << ": " << d.why() << "\n";
  }
  return 0;
}

}  // namespace

int run_path_commands(PathCommands& p) {
  if (p.score->parsed()) return run_score(p);
  if (p.paths_list->parsed()) return run_paths(p);
  if (p.decisions->parsed()) return run_decisions(p);
  if (p.status->parsed()) return run_status(p);
  if (p.flows_list->parsed()) return run_flows(p);
  return -1;
}

}  // namespace patronus::cli
