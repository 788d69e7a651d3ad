// The site runtime's store sink: decisions, path states and windows, plugin events (and, if asked,
// every probe sample) queued in memory and written in batches by flush() (the daemon calls it on a
// timer). Nothing here touches SQLite inside a probe callback: a full queue drops the row and
// counts it, and the next flush reports the count as an event.
#pragma once

#include <cstdint>
#include <string>

#include "patronus/steering/site_runtime.hpp"
#include "patronus/store/store.hpp"

namespace patronus::site {

struct StoreSinkOptions {
  std::size_t max_pending = 100000;
  bool samples = false;  // every probe sample (many rows: 20 a second a path at 50 ms)
};

class StoreSink final : public steering::RuntimeObserver {
 public:
  StoreSink(store::Store& db, const env::Env& env, StoreSinkOptions options = {});
  void on_decision(const std::string& site, const steering::Decision& d) override;
  void on_path_state(const std::string& site, const steering::PathView& p) override;
  void on_path_metrics(const std::string& site, const steering::PathView& p) override;
  void on_sample(const std::string& site, const std::string& instance,
                 const patronus_path_sample& s) override;
  void on_event(const std::string& site, const steering::Event& e) override;
  // Snapshot of up to `max` flows of a runtime (the most recently seen first is not guaranteed).
  void add_flows(const steering::SiteRuntime& rt, std::size_t max);
  Status flush();
  std::uint64_t dropped() const { return writer_.dropped(); }
  std::uint64_t rows_written() const { return writer_.rows_written(); }
  store::BatchWriter& writer() { return writer_; }

 private:
  store::PathStateRow row_of(const steering::PathView& p) const;
  const env::Env& env_;
  store::BatchWriter writer_;
  StoreSinkOptions options_;
  std::uint64_t reported_drops_ = 0;
};

}  // namespace patronus::site
