#include "try_cmd.hpp"

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <iomanip>
#include <iostream>

#include "cli_common.hpp"
#include "patronus/trial/plugin_trial.hpp"
#include "patronus/util/file.hpp"

namespace patronus::cli {

namespace {

using json = nlohmann::json;
using trial::PluginTrial;

Result<double> number(const std::string& key, const std::string& v) {
  errno = 0;
  char* end = nullptr;
  const double d = std::strtod(v.c_str(), &end);
  if (v.empty() || *end != '\0' || errno == ERANGE || !std::isfinite(d)) {
    return invalid_argument(key + "=" + v + ": expected a number");
  }
  return d;
}

// "latency=40,jitter=2,loss=0.5,bandwidth=100[,samples=20,lost=0,class=voice,priority=0]".
Result<trial::Window> parse_window(const std::string& spec) {
  trial::Window w;
  bool have_latency = false;
  std::size_t pos = 0;
  while (pos <= spec.size()) {
    const std::size_t comma = std::min(spec.find(',', pos), spec.size());
    const std::string item = spec.substr(pos, comma - pos);
    pos = comma + 1;
    const auto eq = item.find('=');
    if (eq == std::string::npos) {
      return invalid_argument("--window '" + spec + "': '" + item + "' is not key=value");
    }
    const std::string key = item.substr(0, eq), value = item.substr(eq + 1);
    if (key == "class") {
      w.class_name = value;
      continue;
    }
    if (key == "bandwidth" && value == "unknown") {
      w.bandwidth_unknown = true;
      continue;
    }
    auto v = number(key, value);
    if (!v.is_ok()) return invalid_argument("--window '" + spec + "': " + v.status().message());
    const double d = v.value();
    auto count = [&](std::uint32_t* out, double hi) -> Status {
      if (!(d >= 0 && d <= hi && d == std::floor(d))) {
        return invalid_argument("--window '" + spec + "': " + key + " must be a whole number 0-" +
                                std::to_string(static_cast<long long>(hi)));
      }
      *out = static_cast<std::uint32_t>(d);
      return Status::ok();
    };
    Status s;
    if (key == "latency") {
      w.latency_ms = d;
      have_latency = true;
    } else if (key == "jitter") {
      w.jitter_ms = d;
    } else if (key == "loss") {
      if (d < 0 || d > 100) return invalid_argument("--window '" + spec + "': loss is 0-100 %");
      w.loss_pct = d;
    } else if (key == "bandwidth") {
      w.bandwidth_mbps = d;
    } else if (key == "samples") {
      s = count(&w.samples, 1e9);
    } else if (key == "lost") {
      s = count(&w.lost, 1e9);
    } else if (key == "priority") {
      s = count(&w.priority, 4);
    } else {
      return invalid_argument("--window '" + spec + "': unknown key '" + key +
                              "' (latency, jitter, loss, bandwidth, samples, lost, class, "
                              "priority)");
    }
    if (!s.is_ok()) return s;
    if (key != "loss" && d < 0) {
      return invalid_argument("--window '" + spec + "': " + key + " must be >= 0");
    }
  }
  if (!have_latency) return invalid_argument("--window '" + spec + "': latency= is required");
  if (w.lost > w.samples) return invalid_argument("--window '" + spec + "': lost > samples");
  return w;
}

// "tcp,10.0.0.1,10.0.0.2:80"
Result<trial::Flow> parse_flow(const std::string& spec) {
  const auto a = spec.find(',');
  const auto b = a == std::string::npos ? a : spec.find(',', a + 1);
  if (b == std::string::npos || spec.find(',', b + 1) != std::string::npos) {
    return invalid_argument("--flow '" + spec + "': expected PROTOCOL,SOURCE,DESTINATION:PORT");
  }
  return trial::Flow{spec.substr(0, a), spec.substr(a + 1, b - a - 1), spec.substr(b + 1)};
}

json summary_json(const trial::PluginSummary& s) {
  json out = {{"file", s.file},
              {"name", s.name},
              {"version", s.version},
              {"kind", s.kind},
              {"abi", std::to_string(s.abi_major) + "." + std::to_string(s.abi_minor)},
              {"config_type", s.config_type}};
  out["config"] = json::parse(s.config_json, nullptr, false);
  return out;
}

int try_scorer(TryCommand& t, PluginTrial& trial, json& out) {
  if (t.windows.empty()) return fail(kExitUsage, "a scorer is tried on --window (repeatable)");
  std::vector<trial::Window> windows;
  for (const auto& spec : t.windows) {
    auto w = parse_window(spec);
    if (!w.is_ok()) return fail(kExitUsage, w.status().message());
    windows.push_back(w.value());
  }
  out["scores"] = json::array();
  for (std::size_t i = 0; i < windows.size(); ++i) {
    auto s = trial.score(windows[i]);
    if (!s.is_ok())
      return fail(kExitFailure, "window " + t.windows[i] + ": " + s.status().message());
    out["scores"].push_back(
        {{"window", t.windows[i]}, {"score", s.value().score}, {"state", s.value().state}});
    if (!t.json) {
      std::cout << std::fixed << std::setprecision(2) << std::setw(8) << s.value().score << "  "
                << std::left << std::setw(9) << s.value().state << std::right << t.windows[i]
                << "\n";
    }
  }
  return 0;
}

int try_policy(TryCommand& t, PluginTrial& trial, json& out) {
  if (t.policy_file.empty() || t.flows.empty()) {
    return fail(kExitUsage, "a policy plugin is tried with --policy FILE and --flow (repeatable)");
  }
  std::vector<trial::Flow> flows;
  for (const auto& spec : t.flows) {
    auto f = parse_flow(spec);
    if (!f.is_ok()) return fail(kExitUsage, f.status().message());
    if (auto s = PluginTrial::check(f.value()); !s.is_ok()) {
      return fail(kExitUsage, "--flow " + spec + ": " + s.message());
    }
    flows.push_back(f.value());
  }
  auto doc = read_text_file(t.policy_file);
  if (!doc.is_ok()) return fail(kExitUsage, "--policy: " + doc.status().message());
  if (auto s = trial.load_policy(doc.value()); !s.is_ok()) {
    return fail(kExitFailure, "--policy " + t.policy_file + ": " + s.message());
  }
  out["flows"] = json::array();
  for (std::size_t i = 0; i < flows.size(); ++i) {
    auto v = trial.allows(flows[i]);
    if (!v.is_ok()) return fail(kExitFailure, "--flow " + t.flows[i] + ": " + v.status().message());
    out["flows"].push_back({{"flow", t.flows[i]}, {"verdict", v.value() ? "allow" : "deny"}});
    if (!t.json) std::cout << (v.value() ? "allow  " : "deny   ") << t.flows[i] << "\n";
  }
  return 0;
}

int try_probe(TryCommand& t, PluginTrial& trial, json& out) {
  trial::ProbeRun run;
  run.seconds = t.seconds;
  run.real_time = t.real_time;
  if (t.cmd->count("--delay-ms")) run.one_way_delay_ms = t.delay_ms;
  run.loss_pct = t.loss_pct;
  run.seed = t.seed;
  run.cut_at_s = t.cut_at_s;
  run.cut_for_s = t.cut_for_s;
  if (auto s = PluginTrial::check(run); !s.is_ok()) return fail(kExitUsage, s.message());
  auto r = trial.run_probe(run);
  if (!r.is_ok()) return fail(kExitFailure, r.status().message());
  const auto& rep = r.value();
  json samples = json::array(), liveness = json::array(), events = json::array();
  for (const auto& s : rep.samples) {
    json j = {{"t_ms", s.t_ms}, {"sequence", s.sequence}, {"lost", s.lost}};
    if (!s.lost) j["rtt_ms"] = s.rtt_ms;
    if (s.reordered) j["reordered"] = true;
    if (s.late) j["late"] = true;
    samples.push_back(j);
  }
  for (const auto& l : rep.liveness) {
    liveness.push_back({{"t_ms", l.t_ms},
                        {"state", l.state},
                        {"diagnostic", l.diagnostic},
                        {"detect_time_ms", l.detect_time_ms}});
  }
  for (const auto& e : rep.events) {
    events.push_back({{"t_ms", e.t_ms},
                      {"instance", e.instance},
                      {"type", e.type},
                      {"data", json::parse(e.json, nullptr, false)}});
  }
  out["run"] = {{"seconds", run.seconds},
                {"time", run.real_time ? "real" : "virtual"},
                {"one_way_delay_ms", run.real_time ? 0.0 : run.one_way_delay_ms.value_or(10)},
                {"loss_pct", run.loss_pct},
                {"seed", run.seed}};
  out["summary"] = {{"samples", rep.samples.size()},
                    {"received", rep.received},
                    {"lost", rep.lost},
                    {"rtt_min_ms", rep.rtt_min_ms},
                    {"rtt_avg_ms", rep.rtt_avg_ms},
                    {"rtt_max_ms", rep.rtt_max_ms}};
  out["samples"] = samples;
  out["liveness"] = liveness;
  out["events"] = events;
  out["logs"] = rep.logs;
  if (t.json) return 0;
  std::cout << std::fixed << std::setprecision(3);
  for (const auto& s : rep.samples) {
    std::cout << std::setw(11) << s.t_ms << " ms  seq " << s.sequence << "  ";
    if (s.lost) {
      std::cout << "lost";
    } else {
      std::cout << "rtt " << s.rtt_ms << " ms";
    }
    std::cout << (s.reordered ? " reordered" : "") << (s.late ? " late" : "") << "\n";
  }
  for (const auto& l : rep.liveness) {
    std::cout << std::setw(11) << l.t_ms << " ms  liveness " << l.state << " (diagnostic "
              << l.diagnostic << ", detection time " << l.detect_time_ms << " ms)\n";
  }
  for (const auto& e : rep.events) {
    std::cout << std::setw(11) << e.t_ms << " ms  " << e.instance << " event " << e.type << " "
              << e.json << "\n";
  }
  for (const auto& l : rep.logs) std::cout << "log " << l << "\n";
  std::cout << rep.samples.size() << " samples in " << run.seconds << " s ("
            << (run.real_time ? "real" : "virtual") << " time): " << rep.received << " received, "
            << rep.lost << " lost";
  if (rep.received > 0) {
    std::cout << ", rtt min/avg/max " << rep.rtt_min_ms << "/" << rep.rtt_avg_ms << "/"
              << rep.rtt_max_ms << " ms";
  }
  std::cout << "\n";
  if (rep.samples.empty() && rep.liveness.empty()) {
    std::cout << "the plugin reported no sample and no liveness verdict\n";
  }
  return 0;
}

}  // namespace

void register_try_command(CLI::App& plugins, TryCommand& t) {
  t.cmd = plugins.add_subcommand(
      "try", "load one plugin through the daemon's checks and exercise it (by its kind)");
  t.cmd->add_option("file", t.file, "plugin shared object")->required();
  t.cmd->add_option("--config", t.config_file, "the plugin's configuration (YAML or JSON file)");
  t.cmd->add_option("--config-text", t.config_text, "the plugin's configuration, inline");
  t.cmd->add_option("--window", t.windows,
                    "scorer: latency=MS,jitter=MS,loss=PCT,bandwidth=MBPS|unknown"
                    "[,samples=N,lost=N,class=NAME,priority=0-4] (repeatable)");
  t.cmd->add_option("--policy", t.policy_file, "policy: the document to load");
  t.cmd->add_option("--flow", t.flows, "policy: PROTOCOL,SOURCE,DESTINATION:PORT (repeatable)");
  t.cmd->add_option("--seconds", t.seconds, "probe: how long to run")->capture_default_str();
  t.cmd->add_flag("--real-time", t.real_time,
                  "probe: real sockets on the loopback interface (default: virtual time)");
  t.cmd->add_option("--delay-ms", t.delay_ms, "probe, virtual time: one-way delay (default 10)");
  t.cmd->add_option("--loss", t.loss_pct, "probe, virtual time: loss in percent, each way");
  t.cmd->add_option("--cut-at", t.cut_at_s, "probe, virtual time: cut the link at this second");
  t.cmd->add_option("--cut-for", t.cut_for_s, "probe, virtual time: for this many seconds");
  t.cmd->add_option("--seed", t.seed,
                    "the trial's seed: nonces, BFD discriminators and, in virtual time, timings "
                    "repeat for the same seed (also with --real-time)");
  t.cmd->add_flag("--json", t.json, "JSON output");
}

int run_try_command(TryCommand& t) {
  if (t.cmd == nullptr || !t.cmd->parsed()) return -1;
  if (!t.config_file.empty() && !t.config_text.empty()) {
    return fail(kExitUsage, "give --config or --config-text, not both");
  }
  std::string config = t.config_text;
  if (!t.config_file.empty()) {
    auto text = read_text_file(t.config_file);
    if (!text.is_ok()) return fail(kExitUsage, "--config: " + text.status().message());
    config = text.value();
  }
  auto trial = PluginTrial::load(t.file);
  if (!trial.is_ok()) return fail(kExitFailure, "refused: " + trial.status().message());
  if (auto s = trial.value()->set_config(config); !s.is_ok()) {
    return fail(kExitUsage,
                (t.config_file.empty() ? "--config-text: " : t.config_file + ": ") + s.message());
  }
  auto& tr = *trial.value();
  json out = {{"plugin", summary_json(tr.summary())}};
  const std::string& kind = tr.summary().kind;
  if (!t.json) {
    std::cout << tr.summary().name << " " << tr.summary().version << " (" << kind << ", ABI "
              << tr.summary().abi_major << "." << tr.summary().abi_minor << ") config "
              << tr.summary().config_json << "\n";
  }
  int rc = 0;
  if (kind == "scorer") {
    rc = try_scorer(t, tr, out);
  } else if (kind == "policy") {
    rc = try_policy(t, tr, out);
  } else if (kind == "probe") {
    rc = try_probe(t, tr, out);
  } else {
    return fail(kExitUsage, "plugin '" + tr.summary().name + "' is a " + kind +
                                ": transports build real tunnels and are tried in a lab "
                                "(docs/guides/user-guide.md), not here");
  }
  if (rc == 0 && t.json) std::cout << out.dump(2) << std::endl;
  return rc;
}

}  // namespace patronus::cli
