// patronusd's /metrics (Prometheus text 0.0.4): the site as its runtime, router and store know it
// at the moment of the scrape, plus the counters only an observer can keep (probe outcomes and
// RTTs per path, failovers and failbacks per class and peer site). Cardinality is this site's own
// paths, classes and peer sites (never pairs of the fleet) and the plugins' metric table, which
// the runtime bounds. The families are listed in docs/guides/operations.md. Private to the daemon.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include "exposition.hpp"
#include "patronus/core/router.hpp"
#include "patronus/steering/site_runtime.hpp"

namespace patronus::daemon {

// What the daemon knows beyond the runtime and the router, read at the scrape.
struct SiteMetricsInputs {
  std::string version;
  std::int64_t started_unix_s = 0;
  double loop_lag_seconds = 0;
  bool ready = false;
  // The state database's writers (the site's and the daemon's own events), summed.
  std::uint64_t store_batches = 0, store_failed_batches = 0, store_rows_written = 0,
                store_rows_pending = 0, store_rows_dropped = 0;
  const metrics::Histogram* store_write_seconds = nullptr;
  std::optional<bool> controller_connected;  // a controller-fed site only
  std::uint64_t applied_version = 0;
  std::vector<std::pair<std::string, double>> key_ages_s;  // local endpoint -> key file's age
  struct Enforcer {
    std::string name;
    std::uint64_t allowed = 0, denied = 0;
  };
  std::vector<Enforcer> ebpf;  // eBPF policy enforcers pinned on this host
};

class SiteMetrics final : public steering::RuntimeObserver {
 public:
  // The RTT buckets, in seconds: 0.5 ms to 1 s.
  static const std::vector<double>& rtt_bounds();
  // `probe`: the instance whose samples are the paths' measurements (RuntimeConfig::probe).
  explicit SiteMetrics(std::string probe) : probe_(std::move(probe)) {}

  void on_sample(const std::string& site, const std::string& instance,
                 const patronus_path_sample& s) override;
  void on_decision(const std::string& site, const steering::Decision& d) override;

  // The whole exposition. `runtime` may be null (a daemon without a runtime section).
  std::string render(const steering::SiteRuntime* runtime, const core::RouterInstance& router,
                     const SiteMetricsInputs& in);

 private:
  struct PathCounters {
    std::uint64_t sent = 0, received = 0, lost = 0;
    metrics::Histogram rtt{rtt_bounds()};
  };
  std::string probe_;
  std::unordered_map<std::uint64_t, PathCounters> paths_;
  // (class, peer site, reason) -> failovers; (class, peer site) -> failbacks.
  std::map<std::tuple<std::string, std::string, std::string>, std::uint64_t> failovers_;
  std::map<std::pair<std::string, std::string>, std::uint64_t> failbacks_;
};

}  // namespace patronus::daemon
