#include "migrations.hpp"

namespace patronus::store {

// Forward-only. Never edit a migration that has shipped: add a new one.
const std::vector<const char*>& migrations() {
  static const std::vector<const char*> kMigrations = {
      // 0 -> 1: the seed schema (the published columns of sites, endpoints, paths, policies,
      // flows).
      R"sql(
CREATE TABLE sites (
  site_id     INTEGER PRIMARY KEY AUTOINCREMENT,
  site_name   TEXT NOT NULL UNIQUE,
  region      TEXT NOT NULL DEFAULT '',
  public_key  BLOB,
  created_at  INTEGER NOT NULL,
  last_seen   INTEGER NOT NULL,
  status      TEXT NOT NULL CHECK (status IN ('active', 'inactive', 'degraded'))
);
CREATE TABLE endpoints (
  endpoint_id    INTEGER PRIMARY KEY AUTOINCREMENT,
  site_id        INTEGER NOT NULL REFERENCES sites(site_id) ON DELETE CASCADE,
  name           TEXT NOT NULL,
  address        TEXT NOT NULL,
  interface_type TEXT NOT NULL,
  cost_per_gb    REAL NOT NULL,
  reachable      INTEGER NOT NULL DEFAULT 1,
  UNIQUE (site_id, name)
);
CREATE TABLE paths (
  path_id       INTEGER PRIMARY KEY AUTOINCREMENT,
  src_site_id   INTEGER NOT NULL REFERENCES sites(site_id),
  dst_site_id   INTEGER NOT NULL REFERENCES sites(site_id),
  src_endpoint  TEXT NOT NULL,
  dst_endpoint  TEXT NOT NULL,
  wg_interface  TEXT,
  status        TEXT NOT NULL CHECK (status IN ('up', 'down', 'degraded')),
  UNIQUE (src_site_id, dst_site_id, src_endpoint, dst_endpoint)
);
CREATE TABLE policies (
  policy_id  INTEGER PRIMARY KEY AUTOINCREMENT,
  name       TEXT NOT NULL,
  namespace  TEXT NOT NULL,
  priority   INTEGER NOT NULL DEFAULT 0,
  spec       TEXT NOT NULL,
  enabled    INTEGER NOT NULL DEFAULT 1,
  UNIQUE (name, namespace)
);
CREATE TABLE flows (
  flow_id     INTEGER PRIMARY KEY AUTOINCREMENT,
  src_ip      TEXT NOT NULL,
  dst_ip      TEXT NOT NULL,
  src_port    INTEGER NOT NULL,
  dst_port    INTEGER NOT NULL,
  protocol    INTEGER NOT NULL,
  priority    TEXT NOT NULL
              CHECK (priority IN ('critical', 'high', 'normal', 'low', 'best-effort')),
  path_id     INTEGER REFERENCES paths(path_id) ON DELETE SET NULL,
  created_at  INTEGER NOT NULL,
  last_seen   INTEGER NOT NULL,
  UNIQUE (src_ip, dst_ip, src_port, dst_port, protocol)
);
)sql",
      // 1 -> 2: measurements and decisions.
      R"sql(
ALTER TABLE endpoints ADD COLUMN bandwidth_mbps REAL;
CREATE TABLE path_metrics (
  metric_id        INTEGER PRIMARY KEY AUTOINCREMENT,
  path_id          INTEGER NOT NULL REFERENCES paths(path_id) ON DELETE CASCADE,
  timestamp        INTEGER NOT NULL,
  latency_ms       REAL NOT NULL,
  jitter_ms        REAL NOT NULL,
  packet_loss_pct  REAL NOT NULL,
  bandwidth_mbps   REAL NOT NULL,
  mtu              INTEGER NOT NULL,
  score            REAL NOT NULL
);
CREATE INDEX idx_path_metrics_time ON path_metrics (path_id, timestamp);
CREATE TABLE path_samples (
  sample_id     INTEGER PRIMARY KEY AUTOINCREMENT,
  timestamp_ns  INTEGER NOT NULL,
  source        TEXT NOT NULL,
  path_id       INTEGER NOT NULL,
  sequence      INTEGER NOT NULL,
  lost          INTEGER NOT NULL CHECK (lost IN (0, 1)),
  rtt_ns        INTEGER
);
CREATE INDEX idx_path_samples_source ON path_samples (source, timestamp_ns);
CREATE TABLE decision_events (
  event_id      INTEGER PRIMARY KEY AUTOINCREMENT,
  timestamp_ns  INTEGER NOT NULL,
  site          TEXT NOT NULL,
  source        TEXT NOT NULL,
  kind          TEXT NOT NULL,
  subject       TEXT NOT NULL DEFAULT '',
  payload       TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX idx_decision_events_time ON decision_events (timestamp_ns);
)sql",
      // 2 -> 3: the mesh plan: endpoint public keys (never private ones) and overlay addresses
      // (kept across re-plans), site locations.
      R"sql(
ALTER TABLE endpoints ADD COLUMN public_key TEXT;
ALTER TABLE endpoints ADD COLUMN overlay_ipv4 TEXT;
ALTER TABLE endpoints ADD COLUMN overlay_ipv6 TEXT;
ALTER TABLE sites ADD COLUMN latitude REAL;
ALTER TABLE sites ADD COLUMN longitude REAL;
)sql",
      // 3 -> 4: what the site runtime measures and decides: the latest window of every path, a
      // history of windows, flows with their class and counters, decisions found by kind.
      R"sql(
ALTER TABLE paths ADD COLUMN score REAL;
ALTER TABLE paths ADD COLUMN latency_ms REAL;
ALTER TABLE paths ADD COLUMN jitter_ms REAL;
ALTER TABLE paths ADD COLUMN loss_pct REAL;
ALTER TABLE paths ADD COLUMN samples INTEGER;
ALTER TABLE paths ADD COLUMN updated_ns INTEGER;
CREATE TABLE path_windows (
  window_id     INTEGER PRIMARY KEY AUTOINCREMENT,
  path_id       INTEGER NOT NULL REFERENCES paths(path_id) ON DELETE CASCADE,
  timestamp_ns  INTEGER NOT NULL,
  status        TEXT NOT NULL CHECK (status IN ('up', 'down', 'degraded')),
  live          INTEGER NOT NULL CHECK (live IN (0, 1)),
  score         REAL,
  latency_ms    REAL,
  jitter_ms     REAL,
  loss_pct      REAL,
  samples       INTEGER NOT NULL,
  lost          INTEGER NOT NULL
);
CREATE INDEX idx_path_windows_time ON path_windows (path_id, timestamp_ns);
ALTER TABLE flows ADD COLUMN class TEXT;
ALTER TABLE flows ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE flows ADD COLUMN packets INTEGER NOT NULL DEFAULT 0;
CREATE INDEX idx_decision_events_kind ON decision_events (kind, timestamp_ns);
)sql",
  };
  return kMigrations;
}

}  // namespace patronus::store
