// Where the controller keeps the fleet: sites (with the keys and identities they enrolled with),
// enrolment tokens (their hashes), the shared settings and what keeps compiled configs stable
// across restarts (path ids, overlay addresses). Records are the typed messages of
// framework/src/api/fleet.proto, so a backend stores bytes it need not understand. SQLite is the
// default (one file, WAL); a replicated backend implements the same interface.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "patronus/fleet/v1/fleet.pb.h"
#include "patronus/util/status.hpp"

namespace patronus::controller {

namespace fleet = ::patronus::fleet::v1;

struct FleetSnapshot {
  std::vector<fleet::Site> sites;
  std::vector<fleet::Token> tokens;
  std::optional<fleet::Settings> settings;
  std::optional<fleet::CompilerState> compiler;
  // The operator API's identities (the audit trail is read a page at a time: read_audit).
  std::vector<fleet::User> users;
  std::vector<fleet::ApiKey> api_keys;
  std::vector<fleet::AuthSession> sessions;
};

// One write: applied whole or not at all.
struct FleetBatch {
  std::vector<fleet::Site> put_sites;
  std::vector<std::string> delete_sites;
  std::vector<fleet::Token> put_tokens;
  std::vector<std::string> delete_tokens;  // by hash
  std::optional<fleet::Settings> settings;
  std::optional<fleet::CompilerState> compiler;
  std::vector<fleet::User> put_users;
  std::vector<std::string> delete_users;  // by name
  std::vector<fleet::ApiKey> put_api_keys;
  std::vector<std::string> delete_api_keys;  // by id
  std::vector<fleet::AuthSession> put_sessions;
  std::vector<std::string> delete_sessions;  // by id
  // Appended (the store gives each its id), in the same transaction as the change they describe.
  std::vector<fleet::AuditEntry> audit;
  std::optional<std::int64_t> prune_audit_before_unix_ns;  // entries older than this go
  bool empty() const {
    return put_sites.empty() && delete_sites.empty() && put_tokens.empty() &&
           delete_tokens.empty() && !settings && !compiler && put_users.empty() &&
           delete_users.empty() && put_api_keys.empty() && delete_api_keys.empty() &&
           put_sessions.empty() && delete_sessions.empty() && audit.empty() &&
           !prune_audit_before_unix_ns;
  }
};

// A page of the audit trail, newest first.
struct AuditQuery {
  std::uint64_t before_id = 0;  // 0: from the newest
  std::uint32_t limit = 50;
  std::string actor;          // "" any
  std::string target_prefix;  // "" any
  std::int64_t since_unix_ns = 0;
};

class FleetStore {
 public:
  virtual ~FleetStore() = default;
  virtual Result<FleetSnapshot> load() = 0;
  virtual Status write(const FleetBatch& batch) = 0;
  virtual Result<std::vector<fleet::AuditEntry>> read_audit(const AuditQuery& query) = 0;
};

// The SQLite backend: `path` is created (0600) with its schema when missing; a newer schema than
// this build knows is refused by name. WAL, synchronous=FULL: a write returned is on disk.
Result<std::unique_ptr<FleetStore>> open_sqlite_fleet_store(const std::string& path);

// In memory (the simulator, tests): the same whole-batch writes, gone with the object. `initial`
// is what the first load() returns (a simulation seeds the path ids it reports by).
std::unique_ptr<FleetStore> make_memory_fleet_store(FleetSnapshot initial = {});

}  // namespace patronus::controller
