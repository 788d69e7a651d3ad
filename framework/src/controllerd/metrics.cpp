#include "metrics.hpp"

#include "exposition.hpp"
#include "patronus/abi/plugin_abi.h"

namespace patronus::controllerd {

namespace m = patronus::metrics;

std::string controller_metrics(const MetricsInputs& in) {
  m::Exposition e;
  // The families are fixed here, so a failure is a programming error: it shows in the text's
  // absence and in the tests that scrape it.
  auto family = [&e](const char* name, m::Type t, const char* help) {
    (void)e.family(name, t, help);
  };
  family("patronus_build_info", m::Type::kGauge, "1, labelled with the build's version and ABI.");
  (void)e.sample({{"component", "controller"},
                  {"version", in.version},
                  {"abi", std::to_string(PATRONUS_ABI_VERSION_MAJOR) + "." +
                              std::to_string(PATRONUS_ABI_VERSION_MINOR)}},
                 1);
  family("patronus_process_start_time_seconds", m::Type::kGauge,
         "When the controller started, in seconds since the epoch.");
  (void)e.sample({}, static_cast<double>(in.started_unix_s));
  if (in.api_certificate_not_after_s > 0) {
    family("patronus_certificate_expiry_timestamp_seconds", m::Type::kGauge,
           "When a certificate expires (notAfter), in seconds since the epoch.");
    (void)e.sample({{"certificate", "api"}}, static_cast<double>(in.api_certificate_not_after_s));
  }
  family("patronus_controller_event_loop_lag_seconds", m::Type::kGauge,
         "How late the event loop's last 100 ms heartbeat ran (a stuck loop makes /livez fail).");
  (void)e.sample({}, in.loop_lag_seconds);

  if (in.core != nullptr) {
    const auto sites = in.core->site_views();
    double connected = 0, disconnected = 0, pending = 0, not_enrolled = 0, drift = 0;
    double up = 0, degraded = 0, down = 0, failed = 0;
    for (const auto& s : sites.sites()) {
      if (!s.enrolled())
        ++not_enrolled;
      else if (!s.approved())
        ++pending;
      else if (s.connected())
        ++connected;
      else
        ++disconnected;
      if (s.drift()) ++drift;
      if (!s.last_error().empty()) ++failed;
      up += s.paths_up();
      degraded += s.paths_degraded();
      down += s.paths_down();
    }
    family(
        "patronus_controller_sites", m::Type::kGauge,
        "Sites of the fleet by state (connected, disconnected, pending approval, not enrolled).");
    (void)e.sample({{"state", "connected"}}, connected);
    (void)e.sample({{"state", "disconnected"}}, disconnected);
    (void)e.sample({{"state", "pending_approval"}}, pending);
    (void)e.sample({{"state", "not_enrolled"}}, not_enrolled);
    family("patronus_controller_sites_drifted", m::Type::kGauge,
           "Sites running another config than the one they were sent.");
    (void)e.sample({}, drift);
    family("patronus_controller_sites_apply_failed", m::Type::kGauge,
           "Sites whose last apply of a config failed.");
    (void)e.sample({}, failed);
    family("patronus_controller_paths", m::Type::kGauge,
           "Paths by state in the sites' last reports (each site reports its own side).");
    (void)e.sample({{"state", "up"}}, up);
    (void)e.sample({{"state", "degraded"}}, degraded);
    (void)e.sample({{"state", "down"}}, down);

    const auto& c = in.core->counters();
    family("patronus_controller_compiles_total", m::Type::kCounter,
           "Compiles of the fleet's configs (one per debounced change).");
    (void)e.sample({}, static_cast<double>(c.compiles));
    family("patronus_controller_configs_compiled_total", m::Type::kCounter,
           "Site configs compiled (only the sites a change reaches).");
    (void)e.sample({}, static_cast<double>(c.configs_compiled));
    family("patronus_controller_pushes_total", m::Type::kCounter, "Configs sent to sites.");
    (void)e.sample({}, static_cast<double>(c.pushes));
    family("patronus_controller_resends_total", m::Type::kCounter,
           "Configs sent again to a site that did not acknowledge them.");
    (void)e.sample({}, static_cast<double>(c.resends));
    family("patronus_controller_refused_total", m::Type::kCounter,
           "What the controller refused, by reason.");
    (void)e.sample({{"reason", "enrolment_token"}}, static_cast<double>(c.tokens_refused));
    (void)e.sample({{"reason", "enrolment_rate_limit"}},
                   static_cast<double>(c.tokens_rate_limited));
    (void)e.sample({{"reason", "connect"}}, static_cast<double>(c.connects_refused));
    (void)e.sample({{"reason", "message"}}, static_cast<double>(c.messages_refused));
    (void)e.sample({{"reason", "report_path_unknown"}},
                   static_cast<double>(c.report_paths_dropped));
    family("patronus_controller_store_errors_total", m::Type::kCounter,
           "Writes to the fleet store that failed (the change was refused).");
    (void)e.sample({}, static_cast<double>(c.store_errors));
  }
  family("patronus_api_event_streams", m::Type::kGauge, "Open event streams of the operator API.");
  (void)e.sample({}, static_cast<double>(in.api_streams));
  family("patronus_api_users", m::Type::kGauge, "Users of the operator API.");
  (void)e.sample({}, static_cast<double>(in.api_users));
  return e.text();
}

}  // namespace patronus::controllerd
