// The fleet store on SQLite: one row per record, the record's bytes as the row's value (the
// typed messages of fleet.proto), one transaction per batch.
#include <SQLiteCpp/SQLiteCpp.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "patronus/controller/fleet_store.hpp"

namespace patronus::controller {

namespace {

// Schema steps; PRAGMA user_version counts the steps applied.
const char* const kMigrations[] = {
    "CREATE TABLE sites (name TEXT PRIMARY KEY, record BLOB NOT NULL);"
    "CREATE TABLE tokens (hash TEXT PRIMARY KEY, site TEXT NOT NULL, record BLOB NOT NULL);"
    "CREATE TABLE singletons (name TEXT PRIMARY KEY, record BLOB NOT NULL);",
    // The operator API: users, API keys, logins and the audit trail.
    "CREATE TABLE users (name TEXT PRIMARY KEY, record BLOB NOT NULL);"
    "CREATE TABLE api_keys (id TEXT PRIMARY KEY, record BLOB NOT NULL);"
    "CREATE TABLE auth_sessions (id TEXT PRIMARY KEY, record BLOB NOT NULL);"
    "CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT, unix_ns INTEGER NOT NULL,"
    " actor TEXT NOT NULL, target TEXT NOT NULL, record BLOB NOT NULL);"
    "CREATE INDEX audit_time ON audit (unix_ns);",
};
constexpr int kSchema = sizeof kMigrations / sizeof kMigrations[0];

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

template <typename M>
Status parse_row(const SQLite::Column& c, M* m, const std::string& what) {
  const auto* p = static_cast<const char*>(c.getBlob());
  if (!m->ParseFromArray(p, c.getBytes())) {
    return internal_error("fleet store: the record of " + what + " does not parse");
  }
  return Status::ok();
}

template <typename M>
Status rows(SQLite::Database& db, const char* table, std::vector<M>* out) {
  SQLite::Statement q(db, std::string("SELECT record FROM ") + table);
  while (q.executeStep()) {
    M m;
    if (auto st = parse_row(q.getColumn(0), &m, std::string("a row of ") + table); !st.is_ok()) {
      return st;
    }
    out->push_back(std::move(m));
  }
  return Status::ok();
}

class SqliteFleetStore final : public FleetStore {
 public:
  explicit SqliteFleetStore(std::string path) : path_(std::move(path)) {}

  Status open() {
    return guarded("fleet store " + path_, [&]() -> Status {
      // Created owner-only before SQLite opens it (it holds the fleet's identities).
      const int fd = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
      if (fd < 0) return unavailable("fleet store " + path_ + ": cannot open it");
      ::close(fd);
      db_ = std::make_unique<SQLite::Database>(path_, SQLite::OPEN_READWRITE, 5000);
      const int current = db_->execAndGet("PRAGMA user_version").getInt();
      if (current > kSchema) {
        return failed_precondition("fleet store " + path_ + " has schema version " +
                                   std::to_string(current) + ", newer than this build's " +
                                   std::to_string(kSchema) + "; it was left unchanged");
      }
      db_->exec("PRAGMA journal_mode=WAL");
      db_->exec("PRAGMA synchronous=FULL");
      for (int v = current; v < kSchema; ++v) {
        SQLite::Transaction t(*db_, SQLite::TransactionBehavior::IMMEDIATE);
        if (db_->execAndGet("PRAGMA user_version").getInt() > v) continue;
        db_->exec(kMigrations[v]);
        db_->exec("PRAGMA user_version=" + std::to_string(v + 1));
        t.commit();
      }
      return Status::ok();
    });
  }

  Result<FleetSnapshot> load() override {
    return guarded("fleet store " + path_, [&]() -> Result<FleetSnapshot> {
      FleetSnapshot snap;
      SQLite::Statement sites(*db_, "SELECT name, record FROM sites ORDER BY name");
      while (sites.executeStep()) {
        fleet::Site s;
        if (auto st = parse_row(sites.getColumn(1), &s, "site " + sites.getColumn(0).getString());
            !st.is_ok()) {
          return st;
        }
        snap.sites.push_back(std::move(s));
      }
      SQLite::Statement tokens(*db_, "SELECT hash, record FROM tokens");
      while (tokens.executeStep()) {
        fleet::Token t;
        if (auto st = parse_row(tokens.getColumn(1), &t, "a token"); !st.is_ok()) return st;
        snap.tokens.push_back(std::move(t));
      }
      SQLite::Statement one(*db_, "SELECT name, record FROM singletons");
      while (one.executeStep()) {
        const std::string name = one.getColumn(0).getString();
        if (name == "settings") {
          fleet::Settings s;
          if (auto st = parse_row(one.getColumn(1), &s, "the settings"); !st.is_ok()) return st;
          snap.settings = std::move(s);
        } else if (name == "compiler") {
          fleet::CompilerState c;
          if (auto st = parse_row(one.getColumn(1), &c, "the compiler state"); !st.is_ok()) {
            return st;
          }
          snap.compiler = std::move(c);
        }
      }
      if (auto st = rows(*db_, "users", &snap.users); !st.is_ok()) return st;
      if (auto st = rows(*db_, "api_keys", &snap.api_keys); !st.is_ok()) return st;
      if (auto st = rows(*db_, "auth_sessions", &snap.sessions); !st.is_ok()) return st;
      return snap;
    });
  }

  Result<std::vector<fleet::AuditEntry>> read_audit(const AuditQuery& q) override {
    return guarded("fleet store " + path_, [&]() -> Result<std::vector<fleet::AuditEntry>> {
      SQLite::Statement s(*db_,
                          "SELECT id, record FROM audit WHERE (?1 = 0 OR id < ?1) AND"
                          " (?2 = '' OR actor = ?2) AND substr(target, 1, length(?3)) = ?3 AND"
                          " unix_ns >= ?4 ORDER BY id DESC LIMIT ?5");
      s.bind(1, static_cast<std::int64_t>(q.before_id));
      s.bind(2, q.actor);
      s.bind(3, q.target_prefix);
      s.bind(4, q.since_unix_ns);
      s.bind(5, static_cast<std::int64_t>(q.limit));
      std::vector<fleet::AuditEntry> out;
      while (s.executeStep()) {
        fleet::AuditEntry e;
        if (auto st = parse_row(s.getColumn(1), &e, "an audit entry"); !st.is_ok()) return st;
        e.set_id(static_cast<std::uint64_t>(s.getColumn(0).getInt64()));
        out.push_back(std::move(e));
      }
      return out;
    });
  }

  Status write(const FleetBatch& b) override {
    if (b.empty()) return Status::ok();
    return guarded("fleet store " + path_, [&]() -> Status {
      SQLite::Transaction t(*db_, SQLite::TransactionBehavior::IMMEDIATE);
      for (const auto& name : b.delete_sites) {
        SQLite::Statement q(*db_, "DELETE FROM sites WHERE name = ?");
        q.bind(1, name);
        q.exec();
      }
      for (const auto& s : b.put_sites) {
        SQLite::Statement q(*db_, "INSERT OR REPLACE INTO sites (name, record) VALUES (?, ?)");
        q.bind(1, s.name());
        const std::string bytes = s.SerializeAsString();
        q.bind(2, bytes.data(), static_cast<int>(bytes.size()));
        q.exec();
      }
      for (const auto& h : b.delete_tokens) {
        SQLite::Statement q(*db_, "DELETE FROM tokens WHERE hash = ?");
        q.bind(1, h);
        q.exec();
      }
      for (const auto& tok : b.put_tokens) {
        SQLite::Statement q(*db_,
                            "INSERT OR REPLACE INTO tokens (hash, site, record) VALUES (?, ?, ?)");
        q.bind(1, tok.hash());
        q.bind(2, tok.site());
        const std::string bytes = tok.SerializeAsString();
        q.bind(3, bytes.data(), static_cast<int>(bytes.size()));
        q.exec();
      }
      auto singleton = [&](const char* name, const std::string& bytes) {
        SQLite::Statement q(*db_, "INSERT OR REPLACE INTO singletons (name, record) VALUES (?, ?)");
        q.bind(1, name);
        q.bind(2, bytes.data(), static_cast<int>(bytes.size()));
        q.exec();
      };
      if (b.settings) singleton("settings", b.settings->SerializeAsString());
      if (b.compiler) singleton("compiler", b.compiler->SerializeAsString());
      auto put = [&](const char* table, const char* key_column, const std::string& key,
                     const std::string& bytes) {
        SQLite::Statement q(*db_, std::string("INSERT OR REPLACE INTO ") + table + " (" +
                                      key_column + ", record) VALUES (?, ?)");
        q.bind(1, key);
        q.bind(2, bytes.data(), static_cast<int>(bytes.size()));
        q.exec();
      };
      auto erase = [&](const char* table, const char* key_column, const std::string& key) {
        SQLite::Statement q(*db_,
                            std::string("DELETE FROM ") + table + " WHERE " + key_column + " = ?");
        q.bind(1, key);
        q.exec();
      };
      for (const auto& n : b.delete_users) erase("users", "name", n);
      for (const auto& u : b.put_users) put("users", "name", u.name(), u.SerializeAsString());
      for (const auto& id : b.delete_api_keys) erase("api_keys", "id", id);
      for (const auto& k : b.put_api_keys) put("api_keys", "id", k.id(), k.SerializeAsString());
      for (const auto& id : b.delete_sessions) erase("auth_sessions", "id", id);
      for (const auto& x : b.put_sessions) {
        put("auth_sessions", "id", x.id(), x.SerializeAsString());
      }
      if (b.prune_audit_before_unix_ns) {
        SQLite::Statement q(*db_, "DELETE FROM audit WHERE unix_ns < ?");
        q.bind(1, *b.prune_audit_before_unix_ns);
        q.exec();
      }
      for (const auto& a : b.audit) {
        SQLite::Statement q(
            *db_, "INSERT INTO audit (unix_ns, actor, target, record) VALUES (?, ?, ?, ?)");
        q.bind(1, a.unix_ns());
        q.bind(2, a.actor());
        q.bind(3, a.target());
        const std::string bytes = a.SerializeAsString();
        q.bind(4, bytes.data(), static_cast<int>(bytes.size()));
        q.exec();
      }
      t.commit();
      return Status::ok();
    });
  }

 private:
  std::string path_;
  std::unique_ptr<SQLite::Database> db_;
};

}  // namespace

Result<std::unique_ptr<FleetStore>> open_sqlite_fleet_store(const std::string& path) {
  auto s = std::make_unique<SqliteFleetStore>(path);
  if (auto st = s->open(); !st.is_ok()) return st;
  return std::unique_ptr<FleetStore>(std::move(s));
}

}  // namespace patronus::controller
