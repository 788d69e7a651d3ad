// The controller's /metrics (Prometheus text 0.0.4): the fleet as the core knows it, the core's
// counters, the operator API's streams. Cardinality is the fleet's states, never per site.
#pragma once

#include <string>

#include "patronus/controller/core.hpp"

namespace patronus::controllerd {

struct MetricsInputs {
  const controller::Core* core = nullptr;
  std::size_t api_streams = 0;  // open event streams
  std::size_t api_users = 0;
  double loop_lag_seconds = 0;  // how late the event loop's heartbeat last ran
  std::int64_t started_unix_s = 0;
  std::string version;
  std::int64_t api_certificate_not_after_s = 0;  // 0: unknown
};

std::string controller_metrics(const MetricsInputs& in);

}  // namespace patronus::controllerd
