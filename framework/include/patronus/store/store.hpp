// Persistent state in SQLite (via SQLiteCpp): sites and endpoints, paths, policies, flows, path
// samples and metrics, decision events. WAL, busy timeout, foreign keys on, schema versions in
// PRAGMA user_version with forward-only migrations, batched writes in one transaction each.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "patronus/model/types.hpp"
#include "patronus/util/status.hpp"

namespace patronus::store {

// The schema version this build creates and understands.
int latest_schema_version();

struct StoreOptions {
  int busy_timeout_ms = 5000;
  // Migrate only up to this version (tests build older schemas with it). Default: latest.
  std::optional<int> target_version;
};

struct SampleRow {
  std::int64_t timestamp_ns = 0;  // when it was recorded (caller's clock)
  std::string source;             // plugin instance that measured it
  std::uint64_t path_id = 0;      // 0: not a host-managed path (diagnostics)
  std::uint64_t sequence = 0;
  bool lost = false;
  std::int64_t rtt_ns = 0;  // ignored when lost
};

struct EventRow {
  std::int64_t timestamp_ns = 0;
  std::string site;
  std::string source;   // "patronusd" or a plugin instance
  std::string kind;     // e.g. "daemon.start", "path.failover"
  std::string subject;  // what it is about (a path, a flow class...)
  std::string payload;  // JSON
};

struct SampleSummary {
  std::string source;
  std::uint64_t samples = 0;
  std::uint64_t lost = 0;
  double min_rtt_ms = 0, avg_rtt_ms = 0, max_rtt_ms = 0;  // over received samples
};

// One endpoint of a mesh plan as stored: its public key and overlay addresses.
struct MeshEndpointRow {
  std::string site;
  std::string endpoint;
  std::string public_key;    // base64, "" if unknown
  std::string overlay_ipv4;  // "" if none
  std::string overlay_ipv6;  // "" if none
};

struct PathRow {
  model::PathId path_id;  // assigned by the store, stable across re-plans: THE path id
  std::string src_site, src_endpoint, dst_site, dst_endpoint;
  std::string wg_interface;  // the source side's interface
  model::PathStatus status = model::PathStatus::kDown;
  // The latest measurement a site runtime wrote (schema 4); absent until one did.
  std::optional<double> score, latency_ms, jitter_ms, loss_pct;
  std::optional<std::int64_t> samples, updated_ns;
};

// What a site runtime measured on a path at one time (Env wall clock).
struct PathStateRow {
  model::PathId path_id;
  std::int64_t timestamp_ns = 0;
  model::PathStatus status = model::PathStatus::kDown;
  bool live = false;
  bool scored = false;  // false: score/latency/jitter are not written (nothing measured)
  double score = 0, latency_ms = 0, jitter_ms = 0, loss_pct = 0;
  std::uint32_t samples = 0, lost = 0;
};

// A flow as the runtime tracks it.
struct FlowRow {
  model::FlowKey key;
  model::Priority priority = model::Priority::kNormal;
  std::string cls;
  model::PathId path_id;  // invalid: not steered
  std::uint64_t bytes = 0, packets = 0;
  std::int64_t last_seen_unix = 0;
};

struct MeshSite {
  model::Site site;
  std::optional<double> latitude, longitude;
};

class Store {
 public:
  // Opens (creating if needed) and migrates. A database whose version is newer than this build
  // is refused unchanged.
  static Result<std::unique_ptr<Store>> open(const std::string& path, StoreOptions options = {});
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  int schema_version() const;
  const std::string& path() const;

  // Sites. add_site validates first and writes the site with its endpoints in one transaction;
  // a name that exists is an error. `now_unix` stamps created_at/last_seen.
  Result<model::SiteId> add_site(const model::Site& site, std::int64_t now_unix);
  // Inserts the site if it does not exist; returns its id either way.
  Result<model::SiteId> ensure_site(const std::string& name, std::int64_t now_unix);
  Result<std::vector<model::Site>> list_sites();
  Status remove_site(const std::string& name);

  // A mesh plan in one transaction: sites are inserted or updated (region, location), their
  // endpoints inserted or updated (address, type, cost, bandwidth, public key, overlay addresses);
  // endpoints no longer in a saved site are removed. The path set is replaced: paths of the plan
  // that exist keep their path_id, new ones are inserted (status down until probed), paths not in
  // the plan are deleted. Sites absent from the plan are kept. Returns the path ids in `paths`
  // order.
  Result<std::vector<model::PathId>> save_mesh(const std::vector<MeshSite>& sites,
                                               const std::vector<MeshEndpointRow>& endpoints,
                                               const std::vector<PathRow>& paths,
                                               std::int64_t now_unix);
  // Paths whose ids someone else assigned (a controller's fleet-wide ids): each row's path_id is
  // kept; sites are created by name; every other path leaves (with its measurements). One
  // transaction.
  Status save_assigned_paths(const std::vector<PathRow>& paths, std::int64_t now_unix);
  Result<std::vector<MeshEndpointRow>> mesh_endpoints();
  Result<std::vector<PathRow>> list_paths();

  // Network policies (UNIQUE(name, namespace)): inserted or replaced (spec, enabled, priority)
  // in one transaction; listed by namespace then name.
  Status save_policies(const std::vector<model::NetworkPolicyRecord>& policies);
  Result<std::vector<model::NetworkPolicyRecord>> list_policies();
  Status delete_policy(const std::string& ns, const std::string& name);

  // One transaction for all rows; either all are written or none. Path states update the path's
  // latest columns and append to path_windows; flows are upserted by their 5-tuple.
  Status write_batch(const std::vector<SampleRow>& samples, const std::vector<EventRow>& events,
                     const std::vector<PathStateRow>& path_states = {},
                     const std::vector<FlowRow>& flows = {});
  // Decision events (kind "decision.*"), newest first.
  Result<std::vector<EventRow>> decisions(std::size_t limit);
  // Flows as last written, most recently seen first.
  Result<std::vector<FlowRow>> list_flows(std::size_t limit);
  Result<std::vector<SampleSummary>> sample_summary();
  Result<std::vector<EventRow>> events(std::size_t limit);

  Result<std::int64_t> count_rows(const std::string& table);
  // "ok" when PRAGMA integrity_check finds nothing wrong.
  Result<std::string> integrity_check();

 private:
  Store();
  // decision_events rows (optionally filtered by a WHERE clause), newest first.
  Result<std::vector<EventRow>> event_rows(const char* what, const std::string& where,
                                           std::size_t limit);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Collects rows and writes them in batches. Bounded: when `max_pending` rows are queued, add()
// flushes first (back-pressure), so rows are never dropped silently.
class BatchWriter {
 public:
  // kFlush: a full queue is flushed by add() (back-pressure). kDrop: add() never touches the
  // database (callers on a hot path, e.g. probe callbacks); a full queue refuses the row, counts
  // it in dropped() and returns kResourceExhausted.
  enum class WhenFull { kFlush, kDrop };
  explicit BatchWriter(Store& store, std::size_t max_pending = 10000,
                       WhenFull when_full = WhenFull::kFlush);
  Status add(SampleRow row);
  Status add(EventRow row);
  Status add(PathStateRow row);
  Status add(FlowRow row);
  Status flush();
  std::size_t pending() const {
    return samples_.size() + events_.size() + states_.size() + flows_.size();
  }
  std::uint64_t flushes() const { return flushes_; }
  std::uint64_t rows_written() const { return rows_written_; }
  std::uint64_t dropped() const { return dropped_; }
  std::uint64_t failed_flushes() const { return failed_flushes_; }
  // Called after each batch written, with how long it took (seconds): the daemon's histogram.
  std::function<void(double)> on_flush;

 private:
  Status make_room();
  template <typename Row>
  Status queue(std::vector<Row>& rows, Row row);
  Store& store_;
  std::size_t max_pending_;
  WhenFull when_full_;
  std::uint64_t dropped_ = 0;
  std::vector<SampleRow> samples_;
  std::vector<EventRow> events_;
  std::vector<PathStateRow> states_;
  std::vector<FlowRow> flows_;
  std::uint64_t flushes_ = 0, failed_flushes_ = 0;
  std::uint64_t rows_written_ = 0;
};

}  // namespace patronus::store
