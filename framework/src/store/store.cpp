#include "patronus/store/store.hpp"

#include <SQLiteCpp/SQLiteCpp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <limits>
#include <map>

#include "migrations.hpp"

namespace patronus::store {

using model::Site;
using model::SiteId;

int latest_schema_version() {
  return static_cast<int>(migrations().size());
}

struct Store::Impl {
  std::string path;
  std::unique_ptr<SQLite::Database> db;
  int version = 0;
};

Store::Store() : impl_(std::make_unique<Impl>()) {}
Store::~Store() = default;

namespace {

template <typename Fn>
auto guarded(const std::string& what, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const SQLite::Exception& e) {
    return unavailable(what + ": " + e.what());
  } catch (const std::exception& e) {
    return internal_error(what + ": " + e.what());
  }
}

int user_version(SQLite::Database& db) {
  return db.execAndGet("PRAGMA user_version").getInt();
}

}  // namespace

Result<std::unique_ptr<Store>> Store::open(const std::string& path, StoreOptions options) {
  const int target = options.target_version.value_or(latest_schema_version());
  if (target < 0 || target > latest_schema_version()) {
    return invalid_argument("schema version " + std::to_string(target) + " does not exist");
  }
  return guarded("state database " + path, [&]() -> Result<std::unique_ptr<Store>> {
    std::unique_ptr<Store> s(new Store());
    s->impl_->path = path;
    s->impl_->db = std::make_unique<SQLite::Database>(
        path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE, options.busy_timeout_ms);
    auto& db = *s->impl_->db;
    const int current = user_version(db);
    if (current > latest_schema_version()) {
      return failed_precondition("state database " + path + " has schema version " +
                                 std::to_string(current) + ", newer than this build's " +
                                 std::to_string(latest_schema_version()) +
                                 "; it was left unchanged");
    }
    db.exec("PRAGMA journal_mode=WAL");
    db.exec("PRAGMA synchronous=NORMAL");
    db.exec("PRAGMA foreign_keys=ON");
    // Another process may open the same new file at the same time (a daemon and a CLI): each
    // step takes the write lock first and reads the version again under it, so a step is applied
    // once.
    for (int v = current; v < target; ++v) {
      SQLite::Transaction t(db, SQLite::TransactionBehavior::IMMEDIATE);
      if (user_version(db) > v) continue;
      db.exec(migrations()[static_cast<std::size_t>(v)]);
      db.exec("PRAGMA user_version=" + std::to_string(v + 1));
      t.commit();
    }
    s->impl_->version = user_version(db);
    return s;
  });
}

int Store::schema_version() const {
  return impl_->version;
}
const std::string& Store::path() const {
  return impl_->path;
}

Result<SiteId> Store::add_site(const Site& site, std::int64_t now_unix) {
  if (auto s = model::validate_site(site); !s.is_ok()) return s;
  return guarded("add site", [&]() -> Result<SiteId> {
    auto& db = *impl_->db;
    SQLite::Transaction t(db, SQLite::TransactionBehavior::IMMEDIATE);
    SQLite::Statement exists(db, "SELECT 1 FROM sites WHERE site_name = ?");
    exists.bind(1, site.name);
    if (exists.executeStep()) {
      return failed_precondition("site '" + site.name + "' exists already");
    }
    SQLite::Statement ins(db,
                          "INSERT INTO sites (site_name, region, created_at, last_seen, status) "
                          "VALUES (?, ?, ?, ?, ?)");
    ins.bind(1, site.name);
    ins.bind(2, site.region);
    ins.bind(3, static_cast<std::int64_t>(now_unix));
    ins.bind(4, static_cast<std::int64_t>(now_unix));
    ins.bind(5, model::to_string(site.status));
    ins.exec();
    const auto id = db.getLastInsertRowid();
    for (const auto& e : site.endpoints) {
      SQLite::Statement ep(db,
                           "INSERT INTO endpoints (site_id, name, address, interface_type, "
                           "cost_per_gb, bandwidth_mbps) VALUES (?, ?, ?, ?, ?, ?)");
      ep.bind(1, static_cast<std::int64_t>(id));
      ep.bind(2, e.name);
      ep.bind(3, e.address.to_string());
      ep.bind(4, model::to_string(e.type));
      ep.bind(5, e.cost_per_gb);
      if (e.bandwidth_mbps) {
        ep.bind(6, *e.bandwidth_mbps);
      } else {
        ep.bind(6);
      }
      ep.exec();
    }
    t.commit();
    return SiteId(static_cast<std::uint64_t>(id));
  });
}

Result<SiteId> Store::ensure_site(const std::string& name, std::int64_t now_unix) {
  if (auto s = model::validate_name("site", name, 63); !s.is_ok()) return s;
  return guarded("ensure site", [&]() -> Result<SiteId> {
    auto& db = *impl_->db;
    {
      // One write transaction from the start: reading first and then writing would have to
      // upgrade a read snapshot, which fails at once (no busy wait) when another connection
      // wrote in between.
      SQLite::Transaction t(db, SQLite::TransactionBehavior::IMMEDIATE);
      SQLite::Statement q(db, "SELECT site_id FROM sites WHERE site_name = ?");
      q.bind(1, name);
      if (q.executeStep()) {
        const SiteId id(static_cast<std::uint64_t>(q.getColumn(0).getInt64()));
        q.reset();
        SQLite::Statement u(db, "UPDATE sites SET last_seen = ? WHERE site_name = ?");
        u.bind(1, static_cast<std::int64_t>(now_unix));
        u.bind(2, name);
        u.exec();
        t.commit();
        return id;
      }
    }
    Site s;
    s.name = name;
    auto added = add_site(s, now_unix);
    if (added.is_ok() || added.status().code() != Code::kFailedPrecondition) return added;
    // Another connection added it between our look and our insert.
    SQLite::Statement again(db, "SELECT site_id FROM sites WHERE site_name = ?");
    again.bind(1, name);
    if (again.executeStep())
      return SiteId(static_cast<std::uint64_t>(again.getColumn(0).getInt64()));
    return added;
  });
}

Result<std::vector<Site>> Store::list_sites() {
  return guarded("list sites", [&]() -> Result<std::vector<Site>> {
    auto& db = *impl_->db;
    std::vector<Site> out;
    SQLite::Statement q(db,
                        "SELECT site_id, site_name, region, status FROM sites ORDER BY site_name");
    while (q.executeStep()) {
      Site s;
      s.id = SiteId(static_cast<std::uint64_t>(q.getColumn(0).getInt64()));
      s.name = q.getColumn(1).getString();
      s.region = q.getColumn(2).getString();
      auto st = model::parse_site_status(q.getColumn(3).getString());
      if (st.is_ok()) s.status = st.value();
      SQLite::Statement e(db,
                          "SELECT endpoint_id, name, address, interface_type, cost_per_gb, "
                          "bandwidth_mbps FROM endpoints WHERE site_id = ? ORDER BY name");
      e.bind(1, static_cast<std::int64_t>(s.id.value()));
      while (e.executeStep()) {
        model::Endpoint ep;
        ep.id = model::EndpointId(static_cast<std::uint64_t>(e.getColumn(0).getInt64()));
        ep.name = e.getColumn(1).getString();
        auto addr = model::SocketAddress::parse(e.getColumn(2).getString());
        if (!addr.is_ok()) {
          return internal_error("endpoint " + s.name + "/" + ep.name +
                                " has a corrupt address: " + addr.status().message());
        }
        ep.address = addr.value();
        auto type = model::parse_interface_type(e.getColumn(3).getString());
        if (!type.is_ok())
          return internal_error("endpoint " + s.name + "/" + ep.name + ": " +
                                type.status().message());
        ep.type = type.value();
        ep.cost_per_gb = e.getColumn(4).getDouble();
        if (!e.getColumn(5).isNull()) ep.bandwidth_mbps = e.getColumn(5).getDouble();
        s.endpoints.push_back(std::move(ep));
      }
      out.push_back(std::move(s));
    }
    return out;
  });
}

Status Store::remove_site(const std::string& name) {
  return guarded("remove site", [&]() -> Status {
    auto& db = *impl_->db;
    SQLite::Transaction t(db, SQLite::TransactionBehavior::IMMEDIATE);
    SQLite::Statement q(db, "SELECT site_id FROM sites WHERE site_name = ?");
    q.bind(1, name);
    if (!q.executeStep()) return not_found("no site named '" + name + "'");
    const auto id = q.getColumn(0).getInt64();
    SQLite::Statement used(db,
                           "SELECT COUNT(*) FROM paths WHERE src_site_id = ? OR dst_site_id = ?");
    used.bind(1, static_cast<std::int64_t>(id));
    used.bind(2, static_cast<std::int64_t>(id));
    used.executeStep();
    if (const auto n = used.getColumn(0).getInt64(); n > 0) {
      return failed_precondition("site '" + name + "' is used by " + std::to_string(n) +
                                 " path(s); remove them first");
    }
    SQLite::Statement del(db, "DELETE FROM sites WHERE site_id = ?");
    del.bind(1, static_cast<std::int64_t>(id));
    del.exec();
    t.commit();
    return Status::ok();
  });
}

namespace {

void bind_optional(SQLite::Statement& st, int index, const std::optional<double>& v) {
  if (v) {
    st.bind(index, *v);
  } else {
    st.bind(index);
  }
}

void bind_text_or_null(SQLite::Statement& st, int index, const std::string& v) {
  if (v.empty()) {
    st.bind(index);
  } else {
    st.bind(index, v);
  }
}

std::string column_text(SQLite::Statement& q, int i) {
  return q.getColumn(i).isNull() ? std::string() : q.getColumn(i).getString();
}

}  // namespace

Result<std::vector<model::PathId>> Store::save_mesh(const std::vector<MeshSite>& sites,
                                                    const std::vector<MeshEndpointRow>& endpoints,
                                                    const std::vector<PathRow>& paths,
                                                    std::int64_t now_unix) {
  for (const auto& s : sites) {
    if (auto st = model::validate_site(s.site); !st.is_ok()) return st;
  }
  return guarded("save mesh", [&]() -> Result<std::vector<model::PathId>> {
    auto& db = *impl_->db;
    SQLite::Transaction t(db, SQLite::TransactionBehavior::IMMEDIATE);
    std::map<std::string, std::int64_t> site_ids;
    for (const auto& ms : sites) {
      const Site& site = ms.site;
      SQLite::Statement up(db,
                           "INSERT INTO sites (site_name, region, created_at, last_seen, status, "
                           "latitude, longitude) VALUES (?, ?, ?, ?, 'active', ?, ?) "
                           "ON CONFLICT (site_name) DO UPDATE SET region = excluded.region, "
                           "latitude = excluded.latitude, longitude = excluded.longitude");
      up.bind(1, site.name);
      up.bind(2, site.region);
      up.bind(3, now_unix);
      up.bind(4, now_unix);
      bind_optional(up, 5, ms.latitude);
      bind_optional(up, 6, ms.longitude);
      up.exec();
      SQLite::Statement id(db, "SELECT site_id FROM sites WHERE site_name = ?");
      id.bind(1, site.name);
      id.executeStep();
      const std::int64_t site_id = id.getColumn(0).getInt64();
      site_ids[site.name] = site_id;
      // Endpoints no longer listed go away (their paths are replaced below anyway).
      std::string keep = "''";
      for (std::size_t i = 0; i < site.endpoints.size(); ++i) keep += ", ?";
      SQLite::Statement del(
          db, "DELETE FROM endpoints WHERE site_id = ? AND name NOT IN (" + keep + ")");
      del.bind(1, site_id);
      for (std::size_t i = 0; i < site.endpoints.size(); ++i) {
        del.bind(static_cast<int>(i) + 2, site.endpoints[i].name);
      }
      del.exec();
      for (const auto& e : site.endpoints) {
        SQLite::Statement ep(
            db,
            "INSERT INTO endpoints (site_id, name, address, interface_type, cost_per_gb, "
            "bandwidth_mbps) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (site_id, name) DO UPDATE SET "
            "address = excluded.address, interface_type = excluded.interface_type, "
            "cost_per_gb = excluded.cost_per_gb, bandwidth_mbps = excluded.bandwidth_mbps");
        ep.bind(1, site_id);
        ep.bind(2, e.name);
        ep.bind(3, e.address.to_string());
        ep.bind(4, model::to_string(e.type));
        ep.bind(5, e.cost_per_gb);
        bind_optional(ep, 6, e.bandwidth_mbps);
        ep.exec();
      }
    }
    for (const auto& row : endpoints) {
      SQLite::Statement u(db,
                          "UPDATE endpoints SET public_key = ?, overlay_ipv4 = ?, overlay_ipv6 = ? "
                          "WHERE name = ? AND site_id = (SELECT site_id FROM sites WHERE "
                          "site_name = ?)");
      bind_text_or_null(u, 1, row.public_key);
      bind_text_or_null(u, 2, row.overlay_ipv4);
      bind_text_or_null(u, 3, row.overlay_ipv6);
      u.bind(4, row.endpoint);
      u.bind(5, row.site);
      if (u.exec() != 1) {
        return invalid_argument("save mesh: endpoint " + row.site + "/" + row.endpoint +
                                " is not part of the saved sites");
      }
    }
    db.exec("CREATE TEMP TABLE IF NOT EXISTS plan_paths (path_id INTEGER PRIMARY KEY)");
    db.exec("DELETE FROM plan_paths");
    std::vector<model::PathId> ids;
    ids.reserve(paths.size());
    for (const auto& p : paths) {
      const auto a = site_ids.find(p.src_site);
      const auto b = site_ids.find(p.dst_site);
      if (a == site_ids.end() || b == site_ids.end()) {
        return invalid_argument("save mesh: path " + p.src_site + " - " + p.dst_site +
                                " names a site that is not part of the saved sites");
      }
      SQLite::Statement ins(db,
                            "INSERT INTO paths (src_site_id, dst_site_id, src_endpoint, "
                            "dst_endpoint, wg_interface, status) VALUES (?, ?, ?, ?, ?, ?) "
                            "ON CONFLICT (src_site_id, dst_site_id, src_endpoint, dst_endpoint) "
                            "DO UPDATE SET wg_interface = excluded.wg_interface");
      ins.bind(1, a->second);
      ins.bind(2, b->second);
      ins.bind(3, p.src_endpoint);
      ins.bind(4, p.dst_endpoint);
      ins.bind(5, p.wg_interface);
      ins.bind(6, model::to_string(p.status));
      ins.exec();
      SQLite::Statement id(db,
                           "SELECT path_id FROM paths WHERE src_site_id = ? AND dst_site_id = ? "
                           "AND src_endpoint = ? AND dst_endpoint = ?");
      id.bind(1, a->second);
      id.bind(2, b->second);
      id.bind(3, p.src_endpoint);
      id.bind(4, p.dst_endpoint);
      id.executeStep();
      ids.emplace_back(static_cast<std::uint64_t>(id.getColumn(0).getInt64()));
      SQLite::Statement mark(db, "INSERT OR IGNORE INTO plan_paths (path_id) VALUES (?)");
      mark.bind(1, static_cast<std::int64_t>(ids.back().value()));
      mark.exec();
    }
    db.exec("DELETE FROM paths WHERE path_id NOT IN (SELECT path_id FROM plan_paths)");
    db.exec("DELETE FROM plan_paths");
    t.commit();
    return ids;
  });
}

Status Store::save_assigned_paths(const std::vector<PathRow>& paths, std::int64_t now_unix) {
  return guarded("save paths", [&]() -> Status {
    auto& db = *impl_->db;
    SQLite::Transaction t(db, SQLite::TransactionBehavior::IMMEDIATE);
    auto site_id = [&](const std::string& name) -> std::int64_t {
      SQLite::Statement up(db,
                           "INSERT INTO sites (site_name, created_at, last_seen, status) "
                           "VALUES (?, ?, ?, 'active') ON CONFLICT (site_name) DO NOTHING");
      up.bind(1, name);
      up.bind(2, now_unix);
      up.bind(3, now_unix);
      up.exec();
      SQLite::Statement id(db, "SELECT site_id FROM sites WHERE site_name = ?");
      id.bind(1, name);
      id.executeStep();
      return id.getColumn(0).getInt64();
    };
    db.exec("CREATE TEMP TABLE IF NOT EXISTS plan_paths (path_id INTEGER PRIMARY KEY)");
    db.exec("DELETE FROM plan_paths");
    for (const auto& p : paths) {
      const std::int64_t a = site_id(p.src_site), b = site_id(p.dst_site);
      const auto id = static_cast<std::int64_t>(p.path_id.value());
      // The same ends under another id (an earlier plan's numbering) give way.
      SQLite::Statement clash(db,
                              "DELETE FROM paths WHERE src_site_id = ? AND dst_site_id = ? AND "
                              "src_endpoint = ? AND dst_endpoint = ? AND path_id != ?");
      clash.bind(1, a);
      clash.bind(2, b);
      clash.bind(3, p.src_endpoint);
      clash.bind(4, p.dst_endpoint);
      clash.bind(5, id);
      clash.exec();
      SQLite::Statement ins(
          db,
          "INSERT INTO paths (path_id, src_site_id, dst_site_id, src_endpoint, "
          "dst_endpoint, wg_interface, status) VALUES (?, ?, ?, ?, ?, ?, ?) "
          "ON CONFLICT (path_id) DO UPDATE SET src_site_id = excluded.src_site_id, "
          "dst_site_id = excluded.dst_site_id, src_endpoint = "
          "excluded.src_endpoint, dst_endpoint = excluded.dst_endpoint, "
          "wg_interface = excluded.wg_interface");
      ins.bind(1, id);
      ins.bind(2, a);
      ins.bind(3, b);
      ins.bind(4, p.src_endpoint);
      ins.bind(5, p.dst_endpoint);
      ins.bind(6, p.wg_interface);
      ins.bind(7, model::to_string(p.status));
      ins.exec();
      SQLite::Statement mark(db, "INSERT OR IGNORE INTO plan_paths (path_id) VALUES (?)");
      mark.bind(1, id);
      mark.exec();
    }
    db.exec("DELETE FROM paths WHERE path_id NOT IN (SELECT path_id FROM plan_paths)");
    db.exec("DELETE FROM plan_paths");
    t.commit();
    return Status::ok();
  });
}

Result<std::vector<MeshEndpointRow>> Store::mesh_endpoints() {
  return guarded("mesh endpoints", [&]() -> Result<std::vector<MeshEndpointRow>> {
    SQLite::Statement q(*impl_->db,
                        "SELECT s.site_name, e.name, e.public_key, e.overlay_ipv4, "
                        "e.overlay_ipv6 FROM endpoints e JOIN sites s USING (site_id) "
                        "ORDER BY s.site_name, e.name");
    std::vector<MeshEndpointRow> out;
    while (q.executeStep()) {
      out.push_back({column_text(q, 0), column_text(q, 1), column_text(q, 2), column_text(q, 3),
                     column_text(q, 4)});
    }
    return out;
  });
}

Result<std::vector<PathRow>> Store::list_paths() {
  return guarded("list paths", [&]() -> Result<std::vector<PathRow>> {
    SQLite::Statement q(*impl_->db,
                        "SELECT p.path_id, a.site_name, p.src_endpoint, b.site_name, "
                        "p.dst_endpoint, p.wg_interface, p.status, p.score, p.latency_ms, "
                        "p.jitter_ms, p.loss_pct, p.samples, p.updated_ns FROM paths p "
                        "JOIN sites a ON a.site_id = p.src_site_id "
                        "JOIN sites b ON b.site_id = p.dst_site_id ORDER BY p.path_id");
    std::vector<PathRow> out;
    while (q.executeStep()) {
      PathRow r;
      r.path_id = model::PathId(static_cast<std::uint64_t>(q.getColumn(0).getInt64()));
      r.src_site = column_text(q, 1);
      r.src_endpoint = column_text(q, 2);
      r.dst_site = column_text(q, 3);
      r.dst_endpoint = column_text(q, 4);
      r.wg_interface = column_text(q, 5);
      auto st = model::parse_path_status(column_text(q, 6));
      if (!st.is_ok()) return internal_error("paths.status: " + st.status().message());
      r.status = st.value();
      auto opt = [&](int i) -> std::optional<double> {
        return q.getColumn(i).isNull() ? std::nullopt
                                       : std::optional<double>(q.getColumn(i).getDouble());
      };
      auto opt64 = [&](int i) -> std::optional<std::int64_t> {
        return q.getColumn(i).isNull() ? std::nullopt
                                       : std::optional<std::int64_t>(q.getColumn(i).getInt64());
      };
      r.score = opt(7);
      r.latency_ms = opt(8);
      r.jitter_ms = opt(9);
      r.loss_pct = opt(10);
      r.samples = opt64(11);
      r.updated_ns = opt64(12);
      out.push_back(std::move(r));
    }
    return out;
  });
}

Status Store::save_policies(const std::vector<model::NetworkPolicyRecord>& policies) {
  return guarded("save policies", [&]() -> Status {
    auto& db = *impl_->db;
    SQLite::Transaction t(db, SQLite::TransactionBehavior::IMMEDIATE);
    for (const auto& p : policies) {
      SQLite::Statement up(db,
                           "INSERT INTO policies (name, namespace, priority, spec, enabled) "
                           "VALUES (?, ?, ?, ?, ?) ON CONFLICT (name, namespace) DO UPDATE SET "
                           "priority = excluded.priority, spec = excluded.spec, "
                           "enabled = excluded.enabled");
      up.bind(1, p.name);
      up.bind(2, p.namespace_);
      up.bind(3, p.priority);
      up.bind(4, p.spec_json);
      up.bind(5, p.enabled ? 1 : 0);
      up.exec();
    }
    t.commit();
    return Status::ok();
  });
}

Result<std::vector<model::NetworkPolicyRecord>> Store::list_policies() {
  return guarded("list policies", [&]() -> Result<std::vector<model::NetworkPolicyRecord>> {
    SQLite::Statement q(*impl_->db,
                        "SELECT policy_id, name, namespace, priority, spec, enabled FROM policies "
                        "ORDER BY namespace, name");
    std::vector<model::NetworkPolicyRecord> out;
    while (q.executeStep()) {
      model::NetworkPolicyRecord r;
      r.id = model::PolicyId(static_cast<std::uint64_t>(q.getColumn(0).getInt64()));
      r.name = column_text(q, 1);
      r.namespace_ = column_text(q, 2);
      r.priority = q.getColumn(3).getInt();
      r.spec_json = column_text(q, 4);
      r.enabled = q.getColumn(5).getInt() != 0;
      out.push_back(std::move(r));
    }
    return out;
  });
}

Status Store::delete_policy(const std::string& ns, const std::string& name) {
  return guarded("delete policy", [&]() -> Status {
    SQLite::Statement d(*impl_->db, "DELETE FROM policies WHERE namespace = ? AND name = ?");
    d.bind(1, ns);
    d.bind(2, name);
    if (d.exec() == 0) return not_found("no stored policy " + ns + "/" + name);
    return Status::ok();
  });
}

Status Store::write_batch(const std::vector<SampleRow>& samples,
                          const std::vector<EventRow>& events,
                          const std::vector<PathStateRow>& path_states,
                          const std::vector<FlowRow>& flows) {
  return guarded("write batch", [&]() -> Status {
    auto& db = *impl_->db;
    SQLite::Transaction t(db, SQLite::TransactionBehavior::IMMEDIATE);
    if (!samples.empty()) {
      SQLite::Statement ins(db,
                            "INSERT INTO path_samples (timestamp_ns, source, path_id, sequence, "
                            "lost, rtt_ns) VALUES (?, ?, ?, ?, ?, ?)");
      for (const auto& s : samples) {
        ins.bind(1, static_cast<std::int64_t>(s.timestamp_ns));
        ins.bind(2, s.source);
        ins.bind(3, static_cast<std::int64_t>(s.path_id));
        ins.bind(4, static_cast<std::int64_t>(s.sequence));
        ins.bind(5, s.lost ? 1 : 0);
        if (s.lost) {
          ins.bind(6);
        } else {
          ins.bind(6, static_cast<std::int64_t>(s.rtt_ns));
        }
        ins.exec();
        ins.reset();
      }
    }
    if (!events.empty()) {
      SQLite::Statement ins(db,
                            "INSERT INTO decision_events (timestamp_ns, site, source, kind, "
                            "subject, payload) VALUES (?, ?, ?, ?, ?, ?)");
      for (const auto& e : events) {
        ins.bind(1, static_cast<std::int64_t>(e.timestamp_ns));
        ins.bind(2, e.site);
        ins.bind(3, e.source);
        ins.bind(4, e.kind);
        ins.bind(5, e.subject);
        ins.bind(6, e.payload.empty() ? std::string("{}") : e.payload);
        ins.exec();
        ins.reset();
      }
    }
    if (!path_states.empty()) {
      SQLite::Statement up(db,
                           "UPDATE paths SET status = ?, score = ?, latency_ms = ?, jitter_ms = ?, "
                           "loss_pct = ?, samples = ?, updated_ns = ? WHERE path_id = ?");
      SQLite::Statement ins(db,
                            "INSERT INTO path_windows (path_id, timestamp_ns, status, live, score, "
                            "latency_ms, jitter_ms, loss_pct, samples, lost) "
                            "SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ? "
                            "WHERE EXISTS (SELECT 1 FROM paths WHERE path_id = ?)");
      for (const auto& r : path_states) {
        const auto id = static_cast<std::int64_t>(r.path_id.value());
        up.bind(1, model::to_string(r.status));
        ins.bind(1, id);
        ins.bind(2, static_cast<std::int64_t>(r.timestamp_ns));
        ins.bind(3, model::to_string(r.status));
        ins.bind(4, r.live ? 1 : 0);
        if (r.scored) {
          up.bind(2, r.score);
          up.bind(3, r.latency_ms);
          up.bind(4, r.jitter_ms);
          ins.bind(5, r.score);
          ins.bind(6, r.latency_ms);
          ins.bind(7, r.jitter_ms);
        } else {
          for (int i : {2, 3, 4}) up.bind(i);
          for (int i : {5, 6, 7}) ins.bind(i);
        }
        if (r.samples > 0) {
          up.bind(5, r.loss_pct);
          ins.bind(8, r.loss_pct);
        } else {
          up.bind(5);
          ins.bind(8);
        }
        up.bind(6, static_cast<std::int64_t>(r.samples));
        up.bind(7, static_cast<std::int64_t>(r.timestamp_ns));
        up.bind(8, id);
        ins.bind(9, static_cast<std::int64_t>(r.samples));
        ins.bind(10, static_cast<std::int64_t>(r.lost));
        ins.bind(11, id);
        up.exec();
        up.reset();
        ins.exec();
        ins.reset();
      }
    }
    if (!flows.empty()) {
      SQLite::Statement ins(
          db,
          "INSERT INTO flows (src_ip, dst_ip, src_port, dst_port, protocol, priority, path_id, "
          "created_at, last_seen, class, bytes, packets) VALUES (?, ?, ?, ?, ?, ?, "
          "(SELECT path_id FROM paths WHERE path_id = ?), ?, ?, ?, ?, ?) "
          "ON CONFLICT (src_ip, dst_ip, src_port, dst_port, protocol) DO UPDATE SET "
          "priority = excluded.priority, path_id = excluded.path_id, last_seen = "
          "excluded.last_seen, class = excluded.class, bytes = excluded.bytes, "
          "packets = excluded.packets");
      for (const auto& f : flows) {
        ins.bind(1, f.key.src.to_string());
        ins.bind(2, f.key.dst.to_string());
        ins.bind(3, static_cast<int>(f.key.src_port));
        ins.bind(4, static_cast<int>(f.key.dst_port));
        ins.bind(5, static_cast<int>(f.key.protocol));
        ins.bind(6, model::to_string(f.priority));
        ins.bind(7, static_cast<std::int64_t>(f.path_id.value()));
        ins.bind(8, static_cast<std::int64_t>(f.last_seen_unix));
        ins.bind(9, static_cast<std::int64_t>(f.last_seen_unix));
        ins.bind(10, f.cls);
        ins.bind(11, static_cast<std::int64_t>(f.bytes));
        ins.bind(12, static_cast<std::int64_t>(f.packets));
        ins.exec();
        ins.reset();
      }
    }
    t.commit();
    return Status::ok();
  });
}

Result<std::vector<FlowRow>> Store::list_flows(std::size_t limit) {
  return guarded("list flows", [&]() -> Result<std::vector<FlowRow>> {
    SQLite::Statement q(*impl_->db,
                        "SELECT src_ip, dst_ip, src_port, dst_port, protocol, priority, "
                        "COALESCE(class, ''), COALESCE(path_id, 0), bytes, packets, last_seen "
                        "FROM flows ORDER BY last_seen DESC, flow_id DESC LIMIT ?");
    q.bind(1, static_cast<std::int64_t>(
                  std::min<std::size_t>(limit, std::numeric_limits<std::int64_t>::max())));
    std::vector<FlowRow> out;
    while (q.executeStep()) {
      FlowRow f;
      auto src = model::IpAddress::parse(column_text(q, 0));
      auto dst = model::IpAddress::parse(column_text(q, 1));
      auto prio = model::parse_priority(column_text(q, 5));
      if (!src.is_ok() || !dst.is_ok() || !prio.is_ok()) {
        return internal_error("flows: a row that this build did not write (" + column_text(q, 0) +
                              " -> " + column_text(q, 1) + ")");
      }
      f.key.src = src.value();
      f.key.dst = dst.value();
      f.key.src_port = static_cast<std::uint16_t>(q.getColumn(2).getInt());
      f.key.dst_port = static_cast<std::uint16_t>(q.getColumn(3).getInt());
      f.key.protocol = static_cast<model::IpProtocol>(q.getColumn(4).getInt());
      f.priority = prio.value();
      f.cls = column_text(q, 6);
      f.path_id = model::PathId(static_cast<std::uint64_t>(q.getColumn(7).getInt64()));
      f.bytes = static_cast<std::uint64_t>(q.getColumn(8).getInt64());
      f.packets = static_cast<std::uint64_t>(q.getColumn(9).getInt64());
      f.last_seen_unix = q.getColumn(10).getInt64();
      out.push_back(std::move(f));
    }
    return out;
  });
}

Result<std::vector<EventRow>> Store::decisions(std::size_t limit) {
  return event_rows("decisions", "WHERE kind LIKE 'decision.%'", limit);
}

Result<std::vector<SampleSummary>> Store::sample_summary() {
  return guarded("sample summary", [&]() -> Result<std::vector<SampleSummary>> {
    SQLite::Statement q(*impl_->db,
                        "SELECT source, COUNT(*), SUM(lost), MIN(rtt_ns), AVG(rtt_ns), "
                        "MAX(rtt_ns) FROM path_samples GROUP BY source ORDER BY source");
    std::vector<SampleSummary> out;
    while (q.executeStep()) {
      SampleSummary s;
      s.source = q.getColumn(0).getString();
      s.samples = static_cast<std::uint64_t>(q.getColumn(1).getInt64());
      s.lost = static_cast<std::uint64_t>(q.getColumn(2).getInt64());
      s.min_rtt_ms = q.getColumn(3).getDouble() / 1e6;
      s.avg_rtt_ms = q.getColumn(4).getDouble() / 1e6;
      s.max_rtt_ms = q.getColumn(5).getDouble() / 1e6;
      out.push_back(s);
    }
    return out;
  });
}

Result<std::vector<EventRow>> Store::events(std::size_t limit) {
  return event_rows("events", "", limit);
}

Result<std::vector<EventRow>> Store::event_rows(const char* what, const std::string& where,
                                                std::size_t limit) {
  return guarded(what, [&]() -> Result<std::vector<EventRow>> {
    SQLite::Statement q(*impl_->db,
                        "SELECT timestamp_ns, site, source, kind, subject, payload FROM "
                        "decision_events " +
                            where + " ORDER BY event_id DESC LIMIT ?");
    q.bind(1, static_cast<std::int64_t>(std::min<std::size_t>(limit, 1000000)));
    std::vector<EventRow> out;
    while (q.executeStep()) {
      out.push_back({q.getColumn(0).getInt64(), q.getColumn(1).getString(),
                     q.getColumn(2).getString(), q.getColumn(3).getString(),
                     q.getColumn(4).getString(), q.getColumn(5).getString()});
    }
    return out;
  });
}

Result<std::int64_t> Store::count_rows(const std::string& table) {
  static const char* kTables[] = {"sites",        "endpoints",       "paths",
                                  "policies",     "flows",           "path_metrics",
                                  "path_samples", "decision_events", "path_windows"};
  bool known = false;
  for (const char* t : kTables) known = known || table == t;
  if (!known) return invalid_argument("no table named '" + table + "'");
  return guarded("count " + table, [&]() -> Result<std::int64_t> {
    return static_cast<std::int64_t>(
        impl_->db->execAndGet("SELECT COUNT(*) FROM " + table).getInt64());
  });
}

Result<std::string> Store::integrity_check() {
  return guarded("integrity check", [&]() -> Result<std::string> {
    SQLite::Statement q(*impl_->db, "PRAGMA integrity_check");
    std::string out;
    while (q.executeStep()) out += (out.empty() ? "" : "\n") + q.getColumn(0).getString();
    return out;
  });
}

BatchWriter::BatchWriter(Store& store, std::size_t max_pending, WhenFull when_full)
    : store_(store), max_pending_(max_pending == 0 ? 1 : max_pending), when_full_(when_full) {}

Status BatchWriter::make_room() {
  if (pending() < max_pending_) return Status::ok();
  if (when_full_ == WhenFull::kDrop) {
    ++dropped_;
    return resource_exhausted("state database queue full (" + std::to_string(max_pending_) +
                              " rows); row dropped");
  }
  return flush();
}

template <typename Row>
Status BatchWriter::queue(std::vector<Row>& rows, Row row) {
  if (auto s = make_room(); !s.is_ok()) return s;
  rows.push_back(std::move(row));
  return Status::ok();
}

Status BatchWriter::add(SampleRow row) {
  return queue(samples_, std::move(row));
}
Status BatchWriter::add(EventRow row) {
  return queue(events_, std::move(row));
}
Status BatchWriter::add(PathStateRow row) {
  return queue(states_, std::move(row));
}
Status BatchWriter::add(FlowRow row) {
  return queue(flows_, std::move(row));
}

Status BatchWriter::flush() {
  if (pending() == 0) return Status::ok();
  const auto start = std::chrono::steady_clock::now();
  auto s = store_.write_batch(samples_, events_, states_, flows_);
  if (!s.is_ok()) {
    ++failed_flushes_;
    return s;  // rows stay queued; the caller may retry
  }
  rows_written_ += pending();
  ++flushes_;
  if (on_flush) {
    on_flush(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  samples_.clear();
  events_.clear();
  states_.clear();
  flows_.clear();
  return Status::ok();
}

}  // namespace patronus::store
