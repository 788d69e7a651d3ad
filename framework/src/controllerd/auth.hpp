// Who may use the operator API, and as what (docs/guides/api.md, docs/adr/0024-operator-api.md):
// users with Argon2id password hashes, API keys stored as a hash under a lookup id, logins that
// hand out short-lived access tokens (HMAC-signed, naming their login) and a refresh token
// (stored hashed, rotated at each use), roles, an optional TOTP second factor (RFC 6238), and the
// rate limits of logins. No I/O of its own: the fleet store holds the records, time comes from an
// Env; the slow half of a password check (Argon2id) is a free function a caller runs off its
// event loop. Every change is one store batch carrying its audit entry. Private.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "patronus/controller/fleet_store.hpp"
#include "patronus/env/env.hpp"
#include "patronus/util/status.hpp"

namespace patronus::controllerd {

namespace fleet = ::patronus::fleet::v1;

enum class Role { kViewer = 0, kOperator = 1, kAdmin = 2 };
std::optional<Role> parse_role(const std::string& name);
const char* role_name(Role role);

// Who a request is from.
struct Principal {
  std::string actor;  // "user:NAME" or "key:ID" (what the audit trail says)
  std::string user;   // the user, or the key's maker
  Role role = Role::kViewer;
  std::string session;  // the login an access token belongs to ("" for a key)
};

struct AuthOptions {
  std::int64_t access_ttl_ns = 15LL * 60 * 1'000'000'000;
  std::int64_t refresh_ttl_ns = 7LL * 24 * 3600 * 1'000'000'000;
  std::int64_t max_key_ttl_ns = 366LL * 24 * 3600 * 1'000'000'000;
  std::size_t max_users = 1000;
  std::size_t max_keys = 10000;      // kept, revoked ones too
  std::size_t max_sessions = 10000;  // logins; the oldest of a user past 20 goes
  std::size_t max_sessions_per_user = 20;
  // Logins and refreshes: attempts and failures per client address in a window, failures per
  // user in a window; past any, 429 until the window passes. The tables are bounded
  // (max_limited entries each).
  std::uint32_t attempts_per_address = 60;
  std::uint32_t failures_per_address = 20;
  std::uint32_t failures_per_user = 5;
  std::int64_t window_ns = 60'000'000'000;
  std::size_t max_limited = 10000;
  // Argon2id cost (libsodium's interactive level: 2 passes, 64 MiB).
  unsigned long long pwhash_ops = 2;
  std::size_t pwhash_mem = 64 * 1024 * 1024;
};

// What a login returns (the tokens are shown once).
struct Tokens {
  std::string access_token;
  std::int64_t access_expires_unix_ns = 0;
  std::string refresh_token;
  std::int64_t refresh_expires_unix_ns = 0;
  std::string user;
  Role role = Role::kViewer;
};

// A password's Argon2id hash, and its check: slow on purpose (run off the event loop).
Result<std::string> hash_password(const std::string& password, unsigned long long ops,
                                  std::size_t mem);
bool verify_password(const std::string& hash, const std::string& password);
// A password an operator may set: 12 to 1024 bytes.
Status check_password(const std::string& password);

// RFC 6238 (TOTP, HMAC-SHA1, 30 s steps): the code of `secret` at `unix_s`, `digits` long.
std::string totp_code(const std::string& secret, std::int64_t unix_s, int digits = 6);
std::string base32(const std::string& bytes);  // RFC 4648, no padding

// The audit entry a change goes with: who, from where, the route. The change fills the rest.
struct AuditContext {
  std::string actor, address, method, route, target;
  int status = 200;  // the response's
};

// An audit entry of `ctx` at `unix_ns` with the records before and after (JSON; "" none) and
// the RFC 6902 patch between them; past 256 KiB, before and after are left out (`truncated`).
fleet::AuditEntry make_audit_entry(std::int64_t unix_ns, const AuditContext& ctx,
                                   const std::string& before_json, const std::string& after_json);

// The records of a change, as the audit trail shows them (secrets and hashes left out).
std::string audit_json(const fleet::User& u);
std::string audit_json(const fleet::ApiKey& k);

class Auth {
 public:
  // `secret`: 32 bytes kept by the controller alone (its identity directory); access tokens are
  // signed with a key derived from it, TOTP secrets sealed with another.
  Auth(env::Env& env, controller::FleetStore* store, const std::array<std::uint8_t, 32>& secret,
       AuthOptions options = {});
  ~Auth();
  Auth(const Auth&) = delete;
  Auth& operator=(const Auth&) = delete;

  Status load(const controller::FleetSnapshot& snapshot);
  std::size_t users() const { return users_.size(); }
  const AuthOptions& options() const { return options_; }

  // ---- requests ----
  // The principal of an `Authorization: Bearer ...` value: an access token or an API key.
  // Errors are 401s: forged, expired, revoked, a user gone or whose password changed.
  Result<Principal> authenticate(const std::string& bearer);

  // A login in three steps: admit (rate limits; the user's hash, or a decoy's for a user that
  // does not exist, so both take as long), the caller's verify_password off the loop, finish.
  struct Attempt {
    std::string user, address, hash;
    bool exists = false;
  };
  // resource_exhausted when a rate limit is hit (the caller answers 429).
  Result<Attempt> admit_login(const std::string& user, const std::string& address);
  // `totp`: the code, when the user has a second factor. Errors are 401s (the message says
  // which, for the log; the client is told only that the login failed).
  Result<Tokens> finish_login(const Attempt& attempt, bool password_ok, const std::string& totp,
                              const AuditContext& audit);
  Result<Tokens> refresh(const std::string& refresh_token, const std::string& address);
  Status logout(const Principal& who, const AuditContext& audit);
  std::int64_t retry_after_s(const std::string& user, const std::string& address) const;

  // ---- users (admin) ----
  Result<fleet::User> create_user(const std::string& name, Role role,
                                  const std::string& password_hash, const AuditContext& audit);
  Status set_role(const std::string& name, Role role, const AuditContext& audit);
  // Ends every login of the user (their tokens stop working at once).
  Status set_password(const std::string& name, const std::string& password_hash,
                      const AuditContext& audit);
  Status delete_user(const std::string& name, const AuditContext& audit);
  std::vector<fleet::User> list_users() const;
  std::optional<fleet::User> user(const std::string& name) const;

  // TOTP: enrol (the secret, once, as base32, pending until confirmed with a code), confirm,
  // remove.
  Result<std::string> enrol_totp(const std::string& name, const AuditContext& audit);
  Status confirm_totp(const std::string& name, const std::string& code, const AuditContext& audit);
  Status remove_totp(const std::string& name, const AuditContext& audit);

  // ---- API keys ----
  // The key, shown once. Its role is at most its maker's.
  struct NewKey {
    fleet::ApiKey record;
    std::string key;
  };
  Result<NewKey> create_key(const Principal& maker, const std::string& name, Role role,
                            std::int64_t ttl_ns, const AuditContext& audit);
  Status revoke_key(const std::string& id, const AuditContext& audit);
  std::vector<fleet::ApiKey> list_keys() const;
  std::optional<fleet::ApiKey> key(const std::string& id) const;

  // Audit entries older than `before_unix_ns` are dropped (the retention).
  Status prune_audit(std::int64_t before_unix_ns);

  // Makes an audit entry of `ctx` with the records before and after (JSON, RFC 6902 patch).
  fleet::AuditEntry audit_entry(const AuditContext& ctx, const std::string& before_json,
                                const std::string& after_json) const;

 private:
  struct Window {
    std::int64_t start_ns = 0;
    std::uint32_t count = 0;
  };
  bool over(std::map<std::string, Window>& table, const std::string& key, std::uint32_t max,
            bool count);
  std::string sign(const std::string& payload) const;
  Result<Tokens> open_session(const fleet::User& u, const std::string& address,
                              controller::FleetBatch batch, std::string replaces);
  Status write(controller::FleetBatch batch);
  // An existing user's new record, with its audit entry, in one write.
  Status put_user(const fleet::User& next, const AuditContext& audit);
  std::string seal(const std::string& plain) const;
  Result<std::string> unseal(const std::string& sealed) const;
  bool totp_ok(const std::string& user, const std::string& secret, const std::string& code);

  env::Env& env_;
  controller::FleetStore* store_;
  AuthOptions options_;
  std::array<std::uint8_t, 32> token_key_{}, seal_key_{};
  std::string decoy_hash_;
  std::map<std::string, fleet::User> users_;
  std::map<std::string, fleet::ApiKey> keys_;
  std::map<std::string, fleet::AuthSession> sessions_;
  std::map<std::string, Window> by_address_, failed_by_address_, by_user_;
  void failed(const std::string& user, const std::string& address);
  std::map<std::string, std::int64_t> totp_last_step_;  // replay: a code counts once
};

}  // namespace patronus::controllerd
