#include "path_cmd.hpp"

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli_common.hpp"
#include "patronus/core/config_schema.hpp"
#include "patronus/core/plugin_host.hpp"
#include "patronus/core/router.hpp"
#include "patronus/env/virtual_world.hpp"
#include "patronus/store/store.hpp"

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

  auto* paths = app.add_subcommand("paths", "a site's paths as its runtime last measured them");
  paths->require_subcommand(1);
  p.paths_list = paths->add_subcommand("list", "list paths with state, score and metrics");
  p.paths_list->add_option("--db", p.db, "state database file")->capture_default_str();
  p.paths_list->add_option("--sort-by", p.sort_by, "score, latency or loss")
      ->check(CLI::IsMember({"score", "latency", "loss"}))
      ->capture_default_str();
  p.paths_list->add_flag("--json", p.json, "JSON output");

  p.decisions = app.add_subcommand("decisions", "the newest path decisions (why this path)");
  p.decisions->add_option("--db", p.db, "state database file")->capture_default_str();
  p.decisions->add_option("--limit", p.limit, "how many")->check(CLI::Range(1, 1000000));
  p.decisions->add_flag("--json", p.json, "JSON output");
}

namespace {

const char* state_name(std::uint32_t s) {
  return s == PATRONUS_PATH_UP ? "up" : s == PATRONUS_PATH_DEGRADED ? "degraded" : "down";
}

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
  core::PluginRegistry reg;
  const std::string file = p.plugin_dir + "/libpatronus-" + p.scorer + ".so";
  auto lib = reg.load_file(file);
  if (!lib.is_ok()) return fail(kExitUsage, "--scorer: " + lib.status().message());
  if (lib.value()->info().kind != core::PluginKind::kScorer) {
    return fail(kExitUsage, "--scorer: " + p.scorer + " is a " +
                                to_string(lib.value()->info().kind) + " plugin, not a scorer");
  }
  std::string config;
  if (lib.value()->schema()) {
    auto b = lib.value()->schema()->text_to_bytes(p.config_yaml, "--config");
    if (!b.is_ok()) return fail(kExitUsage, b.status().message());
    config = b.value();
  } else if (!p.config_yaml.empty()) {
    return fail(kExitUsage, "--config: " + p.scorer + " takes no configuration");
  }
  env::VirtualWorld world(0);  // a scorer needs no time; the world only hosts the instance
  core::RouterInstance router(world.add_node("cli", {}), "cli");
  if (auto s = router.add_plugin(lib.value(), p.scorer, config); !s.is_ok()) {
    return fail(kExitUsage, s.message());
  }
  patronus_metrics_window w{};
  w.struct_size = sizeof w;
  w.samples = 1;
  w.latency_ms = p.latency;
  w.jitter_ms = p.jitter;
  w.loss_pct = p.loss;
  if (p.score->count("--bandwidth")) {
    w.bandwidth_mbps = p.bandwidth;
  } else {
    w.flags = PATRONUS_WINDOW_BANDWIDTH_UNKNOWN;
  }
  auto r = router.score(p.scorer, w);
  if (!r.is_ok()) return fail(kExitUsage, r.status().message());
  const double score = std::round(r.value().score * 100) / 100;
  if (p.json) {
    std::cout << json{{"score", score}, {"state", state_name(r.value().state)}}.dump() << std::endl;
  } else {
    std::cout << std::fixed << std::setprecision(2) << score << " " << state_name(r.value().state)
              << " (" << p.scorer << ")" << std::endl;
  }
  return 0;
}

Result<std::unique_ptr<store::Store>> open_db(const std::string& db) {
  std::error_code ec;
  if (!std::filesystem::exists(db, ec)) return not_found("no state database at " + db);
  return store::Store::open(db);
}

json opt(const std::optional<double>& v) {
  return v ? json(*v) : json(nullptr);
}

int run_paths(PathCommands& p) {
  auto st = open_db(p.db);
  if (!st.is_ok()) return fail(kExitFailure, st.status().message());
  auto rows = st.value()->list_paths();
  if (!rows.is_ok()) return fail(kExitFailure, rows.status().message());
  auto v = rows.value();
  // Unmeasured paths last, whatever the order.
  auto key = [&](const store::PathRow& r) -> std::optional<double> {
    if (p.sort_by == "latency") return r.latency_ms;
    if (p.sort_by == "loss") return r.loss_pct;
    return r.score ? std::optional<double>(-*r.score) : std::nullopt;
  };
  std::stable_sort(v.begin(), v.end(), [&](const store::PathRow& a, const store::PathRow& b) {
    const auto ka = key(a), kb = key(b);
    if (ka.has_value() != kb.has_value()) return ka.has_value();
    return ka && *ka < *kb;
  });
  if (p.json) {
    json out = json::array();
    for (const auto& r : v) {
      out.push_back({{"path_id", r.path_id.value()},
                     {"src", r.src_site + ":" + r.src_endpoint},
                     {"dst", r.dst_site + ":" + r.dst_endpoint},
                     {"status", model::to_string(r.status)},
                     {"score", opt(r.score)},
                     {"latency_ms", opt(r.latency_ms)},
                     {"jitter_ms", opt(r.jitter_ms)},
                     {"loss_pct", opt(r.loss_pct)},
                     {"samples", r.samples ? json(*r.samples) : json(nullptr)},
                     {"updated_ns", r.updated_ns ? json(*r.updated_ns) : json(nullptr)}});
    }
    std::cout << json{{"paths", out}}.dump(2) << std::endl;
    return 0;
  }
  std::cout << std::left << std::setw(6) << "ID" << std::setw(36) << "PATH" << std::setw(10)
            << "STATUS" << std::setw(8) << "SCORE" << std::setw(10) << "RTT ms" << std::setw(10)
            << "JITTER"
            << "LOSS %\n";
  auto num = [](const std::optional<double>& x, int prec) {
    if (!x) return std::string("-");
    std::ostringstream o;
    o << std::fixed << std::setprecision(prec) << *x;
    return o.str();
  };
  for (const auto& r : v) {
    std::cout << std::left << std::setw(6) << r.path_id.value() << std::setw(36)
              << (r.src_site + ":" + r.src_endpoint + "~" + r.dst_site + ":" + r.dst_endpoint)
              << std::setw(10) << model::to_string(r.status) << std::setw(8) << num(r.score, 1)
              << std::setw(10) << num(r.latency_ms, 2) << std::setw(10) << num(r.jitter_ms, 2)
              << num(r.loss_pct, 2) << "\n";
  }
  return 0;
}

int run_decisions(PathCommands& p) {
  auto st = open_db(p.db);
  if (!st.is_ok()) return fail(kExitFailure, st.status().message());
  auto rows = st.value()->decisions(p.limit);
  if (!rows.is_ok()) return fail(kExitFailure, rows.status().message());
  if (p.json) {
    json out = json::array();
    for (const auto& e : rows.value()) {
      json payload = json::parse(e.payload, nullptr, /*allow_exceptions=*/false);
      out.push_back({{"timestamp_ns", e.timestamp_ns},
                     {"site", e.site},
                     {"kind", e.kind},
                     {"subject", e.subject},
                     {"decision", payload.is_discarded() ? json(e.payload) : payload}});
    }
    std::cout << json{{"decisions", out}}.dump(2) << std::endl;
    return 0;
  }
  for (const auto& e : rows.value()) {
    json payload = json::parse(e.payload, nullptr, false);
    const std::string why =
        payload.is_object() && payload.contains("why") && payload["why"].is_string()
            ? payload["why"].get<std::string>()
            : "";
    std::cout << utc_time(e.timestamp_ns) << " " << e.site << " " << e.subject << " "
              << e.kind.substr(std::string("decision.").size()) << ": " << why << "\n";
  }
  return 0;
}

}  // namespace

int run_path_commands(PathCommands& p) {
  if (p.score->parsed()) return run_score(p);
  if (p.paths_list->parsed()) return run_paths(p);
  if (p.decisions->parsed()) return run_decisions(p);
  return -1;
}

}  // namespace patronus::cli
