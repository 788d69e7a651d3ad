#include "site_metrics.hpp"

#include <algorithm>
#include <ctime>
#include <set>

#include "patronus/abi/plugin_abi.h"

namespace patronus::daemon {

namespace m = patronus::metrics;

namespace {

constexpr const char* kFailoverReasons[] = {"path_down", "threshold", "no_path"};

const char* failover_reason(steering::Reason r) {
  switch (r) {
    case steering::Reason::kPathDown:
      return "path_down";
    case steering::Reason::kThreshold:
      return "threshold";
    case steering::Reason::kNoPath:
      return "no_path";
    default:
      return nullptr;
  }
}

}  // namespace

const std::vector<double>& SiteMetrics::rtt_bounds() {
  static const std::vector<double> b{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                     0.05,   0.1,   0.25,   0.5,   1.0};
  return b;
}

void SiteMetrics::on_sample(const std::string&, const std::string& instance,
                            const patronus_path_sample& s) {
  if (instance != probe_) return;  // liveness instances' samples do not measure the path
  auto& c = paths_[s.path_id];
  ++c.sent;
  if (s.lost != 0) {
    ++c.lost;
  } else {
    ++c.received;
    c.rtt.observe(static_cast<double>(s.rtt_ns) / 1e9);
  }
}

void SiteMetrics::on_decision(const std::string&, const steering::Decision& d) {
  if (d.reason == steering::Reason::kFailback) {
    ++failbacks_[{d.cls, d.dst_site}];
  } else if (const char* why = failover_reason(d.reason)) {
    ++failovers_[{d.cls, d.dst_site, why}];
  }
}

std::string SiteMetrics::render(const steering::SiteRuntime* rt, const core::RouterInstance& router,
                                const SiteMetricsInputs& in) {
  m::Exposition e;
  // The families are fixed here: a refused one is a programming error that the tests' promtool
  // check would show.
  auto family = [&e](const char* name, m::Type t, const char* help) {
    (void)e.family(name, t, help);
  };
  auto sample = [&e](const m::Labels& l, double v) { (void)e.sample(l, v); };

  family("patronus_build_info", m::Type::kGauge, "1, labelled with the build's version and ABI.");
  sample({{"component", "patronusd"},
          {"version", in.version},
          {"abi", std::to_string(PATRONUS_ABI_VERSION_MAJOR) + "." +
                      std::to_string(PATRONUS_ABI_VERSION_MINOR)}},
         1);
  family("patronus_process_start_time_seconds", m::Type::kGauge,
         "When the daemon started, in seconds since the epoch.");
  sample({}, static_cast<double>(in.started_unix_s));
  family("patronus_event_loop_lag_seconds", m::Type::kGauge,
         "How late the event loop's 100 ms heartbeat ran (past 5 s /livez fails).");
  sample({}, in.loop_lag_seconds);
  family("patronus_site_ready", m::Type::kGauge,
         "1 when the site is ready (/readyz): config applied, plugins started, first decisions "
         "made.");
  sample({}, in.ready ? 1 : 0);

  if (rt != nullptr) {
    const auto views = rt->paths();
    std::vector<m::Labels> labels(views.size());
    std::set<std::uint64_t> live;
    for (std::size_t i = 0; i < views.size(); ++i) {
      const auto& v = views[i];
      live.insert(v.id.value());
      const steering::PathSpec* spec = rt->spec(v.id);
      labels[i] = {{"path_id", std::to_string(v.id.value())},
                   {"path", v.name},
                   {"peer_site", v.remote_site},
                   {"local_endpoint", spec ? spec->local_endpoint : ""},
                   {"remote_endpoint", spec ? spec->remote_endpoint : ""},
                   {"transport", spec ? rt->transport_of(*spec) : ""}};
    }
    // Paths that left the plan take their series with them.
    for (auto it = paths_.begin(); it != paths_.end();) {
      it = live.count(it->first) ? std::next(it) : paths_.erase(it);
    }
    auto per_path = [&](const char* name, m::Type t, const char* help, auto value) {
      family(name, t, help);
      for (std::size_t i = 0; i < views.size(); ++i) {
        if (auto v = value(views[i])) sample(labels[i], *v);
      }
    };
    using V = std::optional<double>;
    per_path("patronus_path_up", m::Type::kGauge, "1 when the path is up, else 0.",
             [](const steering::PathView& p) -> V {
               return p.status == model::PathStatus::kUp ? 1 : 0;
             });
    family("patronus_path_state", m::Type::kGauge,
           "The path's state: 1 on the series of its current state (up, degraded, down).");
    for (std::size_t i = 0; i < views.size(); ++i) {
      for (auto st :
           {model::PathStatus::kUp, model::PathStatus::kDegraded, model::PathStatus::kDown}) {
        m::Labels l = labels[i];
        l.emplace_back("state", model::to_string(st));
        sample(l, views[i].status == st ? 1 : 0);
      }
    }
    per_path("patronus_path_score", m::Type::kGauge,
             "The default scorer's score of the path, 0 to 100 (absent until scored).",
             [](const steering::PathView& p) -> V { return p.scored ? V(p.score) : std::nullopt; });
    per_path("patronus_path_rtt_seconds", m::Type::kGauge,
             "Mean round-trip time of the answered probes in the path's window.",
             [](const steering::PathView& p) -> V {
               return p.probed && p.stats.samples > p.stats.lost ? V(p.stats.latency_ms / 1e3)
                                                                 : std::nullopt;
             });
    per_path("patronus_path_jitter_seconds", m::Type::kGauge,
             "Mean difference of consecutive probe RTTs in the path's window.",
             [](const steering::PathView& p) -> V {
               return p.probed && p.stats.samples > p.stats.lost ? V(p.stats.jitter_ms / 1e3)
                                                                 : std::nullopt;
             });
    per_path("patronus_path_loss_ratio", m::Type::kGauge,
             "Share of the probes in the path's window that were lost (0 to 1).",
             [](const steering::PathView& p) -> V {
               return p.probed && p.stats.samples > 0 ? V(p.stats.loss_pct / 100) : std::nullopt;
             });
    family("patronus_path_probe_rtt_seconds", m::Type::kHistogram,
           "Round-trip times of the path's answered probes.");
    for (std::size_t i = 0; i < views.size(); ++i) {
      const auto it = paths_.find(views[i].id.value());
      if (it == paths_.end()) continue;
      const auto& h = it->second.rtt;
      (void)e.histogram(labels[i], h.bounds(), h.counts(), h.over(), h.sum());
    }
    auto counter = [&](const char* name, const char* help, std::uint64_t PathCounters::*field) {
      family(name, m::Type::kCounter, help);
      for (std::size_t i = 0; i < views.size(); ++i) {
        if (!views[i].probed) continue;
        const auto it = paths_.find(views[i].id.value());
        sample(labels[i], it == paths_.end() ? 0.0 : static_cast<double>(it->second.*field));
      }
    };
    counter("patronus_path_probes_sent_total",
            "Probes on the path whose outcome is known (answered or lost).", &PathCounters::sent);
    counter("patronus_path_probes_received_total", "Probes on the path that were answered.",
            &PathCounters::received);
    counter("patronus_path_probes_lost_total", "Probes on the path that were lost.",
            &PathCounters::lost);

    // Tunnels and liveness sessions (BFD), as their plugins last reported them.
    per_path("patronus_tunnel_up", m::Type::kGauge,
             "1 when the transport reports the path's tunnel up.",
             [](const steering::PathView& p) -> V {
               return p.tunnel ? V(p.tunnel->up ? 1 : 0) : std::nullopt;
             });
    const double now_s = static_cast<double>(std::time(nullptr));
    per_path("patronus_tunnel_handshake_age_seconds", m::Type::kGauge,
             "Seconds since the tunnel's last handshake (absent before the first).",
             [now_s](const steering::PathView& p) -> V {
               if (!p.tunnel || p.tunnel->last_handshake_wall_ns <= 0) return std::nullopt;
               return std::max(0.0,
                               now_s - static_cast<double>(p.tunnel->last_handshake_wall_ns) / 1e9);
             });
    per_path("patronus_tunnel_receive_bytes_total", m::Type::kCounter,
             "Bytes received through the path's tunnel (as the transport counts them).",
             [](const steering::PathView& p) -> V {
               return p.tunnel ? V(static_cast<double>(p.tunnel->rx_bytes)) : std::nullopt;
             });
    per_path("patronus_tunnel_transmit_bytes_total", m::Type::kCounter,
             "Bytes sent through the path's tunnel (as the transport counts them).",
             [](const steering::PathView& p) -> V {
               return p.tunnel ? V(static_cast<double>(p.tunnel->tx_bytes)) : std::nullopt;
             });
    family("patronus_liveness_session_up", m::Type::kGauge,
           "1 when a liveness instance (BFD) covering the path says it is up.");
    for (std::size_t i = 0; i < views.size(); ++i) {
      for (const auto& lv : views[i].liveness) {
        m::Labels l = labels[i];
        l.emplace_back("plugin_instance", lv.instance);
        sample(l, lv.up ? 1 : 0);
      }
    }

    // Classes: where each class's traffic to each peer goes, and how often it moved.
    family("patronus_class_selected_path", m::Type::kGauge,
           "1 on the path a class's traffic to a peer site takes now.");
    std::vector<std::pair<std::string, std::string>> pairs;
    std::vector<bool> has_path;
    for (const auto& peer : rt->remote_site_names()) {
      for (const auto& cls : rt->config().classes.classes) {
        pairs.emplace_back(cls.name, peer);
        const auto id = rt->class_path(peer, cls.name);
        has_path.push_back(id.valid());
        if (!id.valid()) continue;
        const steering::PathSpec* spec = rt->spec(id);
        sample({{"class", cls.name},
                {"peer_site", peer},
                {"path_id", std::to_string(id.value())},
                {"path", spec ? spec->name : ""}},
               1);
      }
    }
    family("patronus_class_has_path", m::Type::kGauge,
           "1 when a class has a usable path to a peer site, 0 when its traffic has none.");
    for (std::size_t i = 0; i < pairs.size(); ++i) {
      sample({{"class", pairs[i].first}, {"peer_site", pairs[i].second}}, has_path[i] ? 1 : 0);
    }
    family("patronus_class_failovers_total", m::Type::kCounter,
           "Moves of a class's traffic to a peer site away from a failing path, by reason.");
    for (const auto& [cls, peer] : pairs) {
      for (const char* why : kFailoverReasons) {
        const auto it = failovers_.find({cls, peer, why});
        sample({{"class", cls}, {"peer_site", peer}, {"reason", why}},
               it == failovers_.end() ? 0.0 : static_cast<double>(it->second));
      }
    }
    family("patronus_class_failbacks_total", m::Type::kCounter,
           "Returns of a class's traffic to a peer site to the path it failed over from.");
    for (const auto& [cls, peer] : pairs) {
      const auto it = failbacks_.find({cls, peer});
      sample({{"class", cls}, {"peer_site", peer}},
             it == failbacks_.end() ? 0.0 : static_cast<double>(it->second));
    }

    // Flows.
    const auto& rc = rt->counters();
    family("patronus_flows", m::Type::kGauge, "Flows in the flow table.");
    sample({}, rt->flows().size());
    family("patronus_flow_table_capacity", m::Type::kGauge, "The flow table's bound.");
    sample({}, rt->flows().capacity());
    family("patronus_flows_created_total", m::Type::kCounter, "Flows added to the table.");
    sample({}, static_cast<double>(rc.flows_created));
    family("patronus_flows_expired_total", m::Type::kCounter,
           "Flows forgotten after their idle time.");
    sample({}, static_cast<double>(rc.flows_expired));
    family("patronus_flows_refused_total", m::Type::kCounter,
           "Flows not tracked because the table was full (steered by class, not pinned).");
    sample({}, static_cast<double>(rc.flows_refused));
  }

  // Plugins: calls through the router, and what they report themselves.
  const auto instances = router.instance_names();
  auto per_instance = [&](const char* name, const char* help,
                          std::uint64_t core::InstanceCounters::*field) {
    family(name, m::Type::kCounter, help);
    for (const auto& inst : instances) {
      const auto info = router.instance_info(inst);
      sample({{"plugin_instance", inst}, {"plugin", info ? info->name : ""}},
             static_cast<double>(router.instance_counters(inst).*field));
    }
  };
  per_instance("patronus_plugin_calls_total", "Calls into a plugin instance.",
               &core::InstanceCounters::calls);
  per_instance("patronus_plugin_call_errors_total",
               "Calls into a plugin instance that failed (an error status or an exception).",
               &core::InstanceCounters::errors);
  per_instance("patronus_plugin_timers_refused_total",
               "Timers a plugin instance asked for and was refused (at its bound).",
               &core::InstanceCounters::timers_refused);
  family("patronus_policy_verdicts_total", m::Type::kCounter,
         "Flows judged by a NetworkPolicy enforcer: a userspace policy instance or an eBPF "
         "enforcer pinned on this host.");
  for (const auto& inst : instances) {
    const auto info = router.instance_info(inst);
    if (!info || info->kind != core::PluginKind::kPolicy) continue;
    const auto c = router.instance_counters(inst);
    sample({{"datapath", "userspace"}, {"plugin_instance", inst}, {"verdict", "allowed"}},
           static_cast<double>(c.allowed));
    sample({{"datapath", "userspace"}, {"plugin_instance", inst}, {"verdict", "denied"}},
           static_cast<double>(c.denied));
  }
  for (const auto& en : in.ebpf) {
    sample({{"datapath", "ebpf"}, {"plugin_instance", en.name}, {"verdict", "allowed"}},
           static_cast<double>(en.allowed));
    sample({{"datapath", "ebpf"}, {"plugin_instance", en.name}, {"verdict", "denied"}},
           static_cast<double>(en.denied));
  }
  if (rt != nullptr) {
    // The `metric` host service: each name (with its own labels) is a family of its own under
    // patronus_plugin_, a gauge unless it ends in _total, labelled with the reporting instance.
    std::map<std::string, std::vector<std::pair<m::Labels, double>>> families;
    std::uint64_t unusable = 0;
    for (const auto& [key, metric] : rt->plugin_metrics()) {
      auto series = m::parse_series(key.second);
      if (!series.is_ok()) {
        ++unusable;
        continue;
      }
      m::Labels l{{"plugin_instance", key.first}};
      for (auto& kv : series.value().labels) l.push_back(std::move(kv));
      families["patronus_plugin_" + series.value().name].emplace_back(std::move(l), metric.value);
    }
    for (const auto& [name, rows] : families) {
      const bool total = name.size() > 6 && name.compare(name.size() - 6, 6, "_total") == 0;
      if (!e.family(name, total ? m::Type::kCounter : m::Type::kGauge,
                    "Reported by a plugin instance (the metric host service).")
               .is_ok()) {
        ++unusable;  // it collides with one of ours
        continue;
      }
      for (const auto& [l, v] : rows) sample(l, v);
    }
    family("patronus_plugin_metrics_refused_total", m::Type::kCounter,
           "Plugin metric names refused: past the table's bound, or not a Prometheus name.");
    sample({}, static_cast<double>(rt->counters().plugin_metrics_refused + unusable));
  }

  // The state database.
  family("patronus_store_write_batches_total", m::Type::kCounter,
         "Batches written to the state database.");
  sample({}, static_cast<double>(in.store_batches));
  family("patronus_store_write_failures_total", m::Type::kCounter,
         "Batches the state database refused (their rows stay queued and are retried).");
  sample({}, static_cast<double>(in.store_failed_batches));
  family("patronus_store_rows_written_total", m::Type::kCounter,
         "Rows written to the state database.");
  sample({}, static_cast<double>(in.store_rows_written));
  family("patronus_store_rows_pending", m::Type::kGauge, "Rows queued for the next batch.");
  sample({}, static_cast<double>(in.store_rows_pending));
  family("patronus_store_rows_dropped_total", m::Type::kCounter,
         "Rows dropped because the queue was full.");
  sample({}, static_cast<double>(in.store_rows_dropped));
  if (in.store_write_seconds) {
    family("patronus_store_write_duration_seconds", m::Type::kHistogram,
           "How long one batch took to write.");
    const auto& h = *in.store_write_seconds;
    (void)e.histogram({}, h.bounds(), h.counts(), h.over(), h.sum());
  }

  if (in.controller_connected) {
    family("patronus_controller_connected", m::Type::kGauge,
           "1 while the site's link to its controller is up.");
    sample({}, *in.controller_connected ? 1 : 0);
    family("patronus_config_applied_version", m::Type::kGauge,
           "The controller's config version the site runs (0: none yet).");
    sample({}, static_cast<double>(in.applied_version));
  }
  if (!in.key_ages_s.empty()) {
    family("patronus_endpoint_key_age_seconds", m::Type::kGauge,
           "Seconds since an endpoint's private key file was written (its last rotation).");
    for (const auto& [ep, age] : in.key_ages_s) sample({{"endpoint", ep}}, age);
  }
  family("patronus_scrape_series_dropped", m::Type::kGauge,
         "Series left out of this scrape because it reached its bound.");
  sample({}, static_cast<double>(e.dropped()));
  return e.text();
}

}  // namespace patronus::daemon
