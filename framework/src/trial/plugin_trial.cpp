#include "patronus/trial/plugin_trial.hpp"

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "patronus/core/config_schema.hpp"
#include "patronus/core/plugin_host.hpp"
#include "patronus/core/router.hpp"
#include "patronus/env/asio_env.hpp"
#include "patronus/env/env.hpp"
#include "patronus/env/virtual_world.hpp"
#include "patronus/model/address.hpp"
#include "patronus/model/types.hpp"

namespace patronus::trial {

namespace {

// A configuration as `plugins try` shows it: the values of fields that name a secret (a key, a
// PSK, a password) are replaced, so that they reach neither a terminal nor a log.
bool names_a_secret(const std::string& k) {
  if (k == "key" || k == "psk" || k == "password" || k == "secret") return true;
  const bool ends_key = k.size() > 4 && k.compare(k.size() - 4, 4, "_key") == 0;
  return ends_key && k != "public_key";
}

void redact(nlohmann::json& v) {
  if (v.is_object()) {
    for (auto& [k, x] : v.items()) {
      if (names_a_secret(k) && x.is_string() && !x.get<std::string>().empty()) {
        x = "(redacted)";
      } else {
        redact(x);
      }
    }
  } else if (v.is_array()) {
    for (auto& x : v) redact(x);
  }
}

std::string redact_secrets(const std::string& config_json) {
  auto j = nlohmann::json::parse(config_json, nullptr, false);
  if (j.is_discarded()) return "{}";
  redact(j);
  return j.dump();
}

}  // namespace

namespace {

constexpr double kMaxSeconds = 3600;  // virtual time: an hour of probing is plenty
constexpr double kMaxRealSeconds = 600;
constexpr std::size_t kMaxSamples = 1'000'000;
constexpr std::size_t kMaxEvents = 100'000;

const char* state_name(std::uint32_t s) {
  switch (s) {
    case PATRONUS_PATH_UP:
      return "up";
    case PATRONUS_PATH_DEGRADED:
      return "degraded";
    case PATRONUS_PATH_DOWN:
      return "down";
  }
  return "unknown";
}

// "10.0.0.1", "10.0.0.1:80", "fd00::1", "[fd00::1]:80".
Result<model::SocketAddress> parse_host(const std::string& what, const std::string& text) {
  if (auto ip = model::IpAddress::parse(text); ip.is_ok())
    return model::SocketAddress(ip.value(), 0);
  auto sa = model::SocketAddress::parse(text);
  if (!sa.is_ok()) {
    return invalid_argument(what + " '" + text +
                            "': expected an address with an optional port (10.0.0.1:80, "
                            "[fd00::1]:80)");
  }
  return sa.value();
}

// Records what one probe instance reports, timed from the start of the run.
struct Recorder : core::RouterObserver {
  env::Env* env = nullptr;
  std::int64_t start_ns = 0;
  ProbeReport* report = nullptr;
  std::string self;  // the instance whose samples are the trial's ("near")
  double t_ms() const { return static_cast<double>(env->now_ns() - start_ns) / 1e6; }

  void on_sample(const std::string& instance, const patronus_path_sample& s) override {
    if (instance != self || report->samples.size() >= kMaxSamples) return;
    ProbeSample out;
    out.t_ms = t_ms();
    out.sequence = s.sequence;
    out.lost = s.lost != 0;
    out.rtt_ms = out.lost ? 0 : static_cast<double>(s.rtt_ns) / 1e6;
    out.reordered = (s.flags & PATRONUS_SAMPLE_REORDERED) != 0;
    out.late = (s.flags & PATRONUS_SAMPLE_LATE) != 0;
    report->samples.push_back(out);
  }
  void on_liveness(const std::string& instance, const patronus_path_liveness& l) override {
    if (instance != self || report->liveness.size() >= kMaxEvents) return;
    report->liveness.push_back({t_ms(), l.state == PATRONUS_PATH_UP ? "up" : "down", l.diagnostic,
                                static_cast<double>(l.detect_time_ns) / 1e6});
  }
  void on_event(const std::string& instance, const std::string& type,
                const std::string& json) override {
    if (report->events.size() < kMaxEvents)
      report->events.push_back({t_ms(), instance, type, json});
  }
  void on_log(const std::string& instance, std::uint32_t, const std::string& msg) override {
    if (report->logs.size() < kMaxEvents) report->logs.push_back(instance + ": " + msg);
  }
};

// The path each end watches: the same id, session and key on both ends, as a site plan gives.
patronus_path_desc trial_path(const model::IpAddress& local, const model::IpAddress& remote,
                              const char* local_site, const char* remote_site, std::uint64_t seed) {
  patronus_path_desc d{};
  d.struct_size = sizeof d;
  d.path_id = 1;
  d.local = model::SocketAddress(local, 0).to_abi();
  d.remote = model::SocketAddress(remote, 0).to_abi();
  d.local_site = local_site;
  d.remote_site = remote_site;
  d.local_endpoint = "trial";
  d.remote_endpoint = "trial";
  d.interface_name = "";
  d.session_id = static_cast<std::uint32_t>(0x7a1a0000u ^ (seed & 0xffffu));
  d.rate = PATRONUS_PROBE_RATE_ACTIVE;
  d.key_len = 32;
  env::Rng rng(seed);  // a key both ends share
  for (int i = 0; i < 4; ++i) {
    const std::uint64_t z = rng.next();
    std::memcpy(d.key + 8 * i, &z, 8);
  }
  return d;
}

void summarise(ProbeReport* r) {
  double sum = 0;
  r->rtt_min_ms = std::numeric_limits<double>::infinity();
  for (const auto& s : r->samples) {
    if (s.lost) {
      ++r->lost;
      continue;
    }
    ++r->received;
    sum += s.rtt_ms;
    r->rtt_min_ms = std::min(r->rtt_min_ms, s.rtt_ms);
    r->rtt_max_ms = std::max(r->rtt_max_ms, s.rtt_ms);
  }
  if (r->received == 0) {
    r->rtt_min_ms = 0;
  } else {
    r->rtt_avg_ms = sum / static_cast<double>(r->received);
  }
}

}  // namespace

struct PluginTrial::Impl {
  core::PluginRegistry registry;
  std::shared_ptr<const core::PluginLibrary> lib;
  std::string config;  // serialized config message
  PluginSummary summary;
  // Scorers and policy plugins: one started instance on a node of its own.
  env::VirtualWorld world{1};
  std::unique_ptr<core::RouterInstance> router;

  Status ensure_started() {
    if (router) return Status::ok();
    auto r = std::make_unique<core::RouterInstance>(
        world.add_node("trial", {model::IpAddress::parse("127.0.0.1").value()}), "trial");
    if (auto s = r->add_plugin(lib, "trial", config); !s.is_ok()) return s;
    if (auto s = r->start(); !s.is_ok()) return s;
    router = std::move(r);
    return Status::ok();
  }
  Status require(core::PluginKind kind) const {
    if (lib->info().kind == kind) return Status::ok();
    return failed_precondition(summary.file + ": plugin '" + summary.name + "' is a " +
                               summary.kind + ", not a " + core::to_string(kind));
  }
};

PluginTrial::PluginTrial() : impl_(std::make_unique<Impl>()) {}
PluginTrial::~PluginTrial() = default;

Result<std::unique_ptr<PluginTrial>> PluginTrial::load(const std::string& file) {
  std::unique_ptr<PluginTrial> t(new PluginTrial());
  auto& m = *t->impl_;
  auto lib = m.registry.load_file(file);
  if (!lib.is_ok()) return lib.status();
  m.lib = lib.value();
  const auto& info = m.lib->info();
  m.summary = {info.file,      info.name,      info.version,     core::to_string(info.kind),
               info.abi_major, info.abi_minor, info.config_type, "{}"};
  if (auto s = t->set_config(""); !s.is_ok()) return s;
  return t;
}

Result<std::unique_ptr<PluginTrial>> PluginTrial::open(const std::string& file,
                                                       const std::string& config_yaml) {
  auto t = load(file);
  if (!t.is_ok()) return t.status();
  if (auto s = t.value()->set_config(config_yaml); !s.is_ok()) return s;
  return t;
}

Status PluginTrial::set_config(const std::string& config_yaml) {
  auto& m = *impl_;
  const bool given = config_yaml.find_first_not_of(" \t\r\n") != std::string::npos;
  if (m.lib->schema() == nullptr) {
    if (!given) return Status::ok();
    return invalid_argument("plugin '" + m.summary.name +
                            "' takes no configuration, but one was given");
  }
  auto bytes = m.lib->schema()->text_to_bytes(config_yaml, "config");
  if (!bytes.is_ok()) return bytes.status();
  // The plugin's own verdict on a configuration given now, not at the first call (which would
  // blame that call). The defaults are judged when the plugin first runs.
  if (auto s = given ? core::check_plugin_config(m.lib, "trial", bytes.value()) : Status::ok();
      !s.is_ok()) {
    return invalid_argument("plugin '" + m.summary.name +
                            "' refused its configuration: " + s.message());
  }
  auto json = m.lib->schema()->bytes_to_json(bytes.value());
  m.config = bytes.value();
  m.router.reset();  // the next call creates an instance with this configuration
  m.summary.config_json = json.is_ok() ? redact_secrets(json.value()) : "{}";
  return Status::ok();
}

const PluginSummary& PluginTrial::summary() const {
  return impl_->summary;
}

Result<Score> PluginTrial::score(const Window& w) {
  if (auto s = impl_->require(core::PluginKind::kScorer); !s.is_ok()) return s;
  if (auto s = impl_->ensure_started(); !s.is_ok()) return s;
  patronus_metrics_window win{};
  win.struct_size = sizeof win;
  win.samples = w.samples;
  win.latency_ms = w.latency_ms;
  win.jitter_ms = w.jitter_ms;
  win.loss_pct = w.loss_pct;
  win.bandwidth_mbps = w.bandwidth_unknown ? 0 : w.bandwidth_mbps;
  win.path_id = 1;
  win.lost = w.lost;
  win.flags = w.bandwidth_unknown ? PATRONUS_WINDOW_BANDWIDTH_UNKNOWN : 0;
  win.priority = w.priority;
  win.class_name = w.class_name.empty() ? nullptr : w.class_name.c_str();
  auto r = impl_->router->score("trial", win);
  if (!r.is_ok()) return r.status();
  return Score{r.value().score, state_name(r.value().state)};
}

Status PluginTrial::load_policy(const std::string& document) {
  if (auto s = impl_->require(core::PluginKind::kPolicy); !s.is_ok()) return s;
  if (auto s = impl_->ensure_started(); !s.is_ok()) return s;
  return impl_->router->load_policy("trial", document);
}

Status PluginTrial::check(const Flow& flow) {
  if (!model::parse_ip_protocol(flow.protocol)) {
    return invalid_argument("protocol '" + flow.protocol +
                            "': expected tcp, udp, sctp or a number 0-255");
  }
  if (auto s = parse_host("source", flow.src); !s.is_ok()) return s.status();
  if (auto d = parse_host("destination", flow.dst); !d.is_ok()) return d.status();
  return Status::ok();
}

Result<bool> PluginTrial::allows(const Flow& flow) {
  if (auto s = impl_->require(core::PluginKind::kPolicy); !s.is_ok()) return s;
  if (auto s = check(flow); !s.is_ok()) return s;
  if (auto s = impl_->ensure_started(); !s.is_ok()) return s;
  patronus_flow_tuple t{};
  t.struct_size = sizeof t;
  t.protocol = *model::parse_ip_protocol(flow.protocol);
  t.src = parse_host("source", flow.src).value().to_abi();
  t.dst = parse_host("destination", flow.dst).value().to_abi();
  return impl_->router->evaluate_policy("trial", t);
}

Status PluginTrial::check(const ProbeRun& run) {
  const double limit = run.real_time ? kMaxRealSeconds : kMaxSeconds;
  if (!(run.seconds > 0 && run.seconds <= limit)) {
    return invalid_argument("seconds must be in (0, " + std::to_string(static_cast<int>(limit)) +
                            "] for a " + (run.real_time ? "real-time" : "virtual-time") + " run");
  }
  if (run.real_time && (run.one_way_delay_ms || run.loss_pct != 0 || run.cut_for_s != 0)) {
    return invalid_argument(
        "delay, loss and cuts exist only in virtual time; a real-time run uses the loopback "
        "interface as it is");
  }
  const double delay = run.one_way_delay_ms.value_or(0);
  if (!(delay >= 0 && delay <= 10000) || !(run.loss_pct >= 0 && run.loss_pct <= 100) ||
      !(run.cut_at_s >= 0) || !(run.cut_for_s >= 0)) {
    return invalid_argument("delay must be 0-10000 ms, loss 0-100 %, cut_at and cut_for >= 0 s");
  }
  return Status::ok();
}

Result<ProbeReport> PluginTrial::run_probe(const ProbeRun& run) {
  if (auto s = impl_->require(core::PluginKind::kProbe); !s.is_ok()) return s;
  if (auto s = check(run); !s.is_ok()) return s;
  if (impl_->lib->info().needs_real_network && !run.real_time) {
    return failed_precondition("plugin '" + impl_->summary.name +
                               "' needs the real network; try it in real time");
  }
  const auto near_ip = model::IpAddress::parse("127.0.0.1").value();
  const auto far_ip = model::IpAddress::parse("127.0.0.2").value();
  ProbeReport report;
  Recorder rec;
  rec.report = &report;
  rec.self = "near";
  auto watch = [&](core::RouterInstance& near, core::RouterInstance& far) -> Status {
    for (auto* r : {&near, &far}) {
      r->set_observer(&rec);
      const bool is_near = r == &near;
      if (auto s = r->add_plugin(impl_->lib, is_near ? "near" : "far", impl_->config); !s.is_ok()) {
        return s;
      }
      if (auto s = r->start(); !s.is_ok()) return s;
    }
    const auto a = trial_path(near_ip, far_ip, "near", "far", run.seed);
    const auto b = trial_path(far_ip, near_ip, "far", "near", run.seed);
    // The far end first: its socket must be open when the near end's first probe arrives (on
    // loopback that is at once), or that probe is lost to the trial's own set-up.
    if (auto s = far.watch_path("far", b); !s.is_ok()) return s;
    return near.watch_path("near", a);
  };
  const auto run_ns = static_cast<std::int64_t>(run.seconds * 1e9);
  if (run.real_time) {
    boost::asio::io_context io;
    env::AsioEnv near_env(io, run.seed), far_env(io, run.seed + 1);
    core::RouterInstance near(near_env, "near"), far(far_env, "far");
    rec.env = &near_env;
    rec.start_ns = near_env.now_ns();
    if (auto s = watch(near, far); !s.is_ok()) return s;
    io.run_for(std::chrono::nanoseconds(run_ns));
    near.stop();
    far.stop();
  } else {
    env::VirtualWorld world(run.seed);
    auto& near_env = world.add_node("near", {near_ip});
    auto& far_env = world.add_node("far", {far_ip});
    env::LinkParams link;
    link.delay_ns = static_cast<std::int64_t>(run.one_way_delay_ms.value_or(10) * 1e6);
    link.loss = run.loss_pct / 100.0;
    world.set_link(near_ip, far_ip, link);
    world.set_link(far_ip, near_ip, link);
    core::RouterInstance near(near_env, "near"), far(far_env, "far");
    rec.env = &near_env;
    rec.start_ns = world.now_ns();
    if (auto s = watch(near, far); !s.is_ok()) return s;
    if (run.cut_for_s > 0 && run.cut_at_s < run.seconds) {
      world.run_until(rec.start_ns + static_cast<std::int64_t>(run.cut_at_s * 1e9));
      world.set_link_up(near_ip, far_ip, false);
      world.set_link_up(far_ip, near_ip, false);
      const double cut_end_s = std::min(run.cut_at_s + run.cut_for_s, run.seconds);
      world.run_until(rec.start_ns + static_cast<std::int64_t>(cut_end_s * 1e9));
      world.set_link_up(near_ip, far_ip, true);
      world.set_link_up(far_ip, near_ip, true);
    }
    world.run_until(rec.start_ns + run_ns);
    near.stop();
    far.stop();
  }
  summarise(&report);
  return report;
}

}  // namespace patronus::trial
