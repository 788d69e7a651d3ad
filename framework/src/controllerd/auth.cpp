#include "auth.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sodium.h>

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "patronus/model/types.hpp"

namespace patronus::controllerd {

using json = nlohmann::json;

namespace {

constexpr std::int64_t kSecond = 1'000'000'000;
constexpr std::size_t kAuditBound = 256 * 1024;  // bytes of before/after kept per entry

std::string b64url(const unsigned char* p, std::size_t n) {
  std::string out(sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING), '\0');
  sodium_bin2base64(out.data(), out.size(), p, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  out.resize(std::strlen(out.c_str()));
  return out;
}
std::string b64url(const std::string& s) {
  return b64url(reinterpret_cast<const unsigned char*>(s.data()), s.size());
}
std::optional<std::string> from_b64url(const std::string& s) {
  std::string out(s.size(), '\0');
  std::size_t n = 0;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), s.data(),
                        s.size(), nullptr, &n, nullptr,
                        sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0) {
    return std::nullopt;
  }
  out.resize(n);
  return out;
}

std::string random_text(std::size_t bytes) {
  std::string raw(bytes, '\0');
  randombytes_buf(raw.data(), raw.size());
  std::string t = b64url(raw);
  sodium_memzero(raw.data(), raw.size());
  return t;
}

std::string random_hex(std::size_t bytes) {
  std::vector<unsigned char> raw(bytes);
  randombytes_buf(raw.data(), raw.size());
  std::string out(bytes * 2 + 1, '\0');
  sodium_bin2hex(out.data(), out.size(), raw.data(), raw.size());
  out.resize(bytes * 2);
  return out;
}

// BLAKE2b-256, hex: what is stored of a key or a refresh token (both are long random strings,
// so a fast hash is enough).
std::string digest(const std::string& s) {
  unsigned char h[32];
  crypto_generichash(h, sizeof h, reinterpret_cast<const unsigned char*>(s.data()), s.size(),
                     nullptr, 0);
  char hex[65];
  sodium_bin2hex(hex, sizeof hex, h, sizeof h);
  return hex;
}

bool same(const std::string& a, const std::string& b) {
  return a.size() == b.size() && sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (true) {
    const auto p = s.find(sep, start);
    out.push_back(s.substr(start, p == std::string::npos ? p : p - start));
    if (p == std::string::npos) return out;
    start = p + 1;
  }
}

}  // namespace

std::optional<Role> parse_role(const std::string& name) {
  if (name == "admin") return Role::kAdmin;
  if (name == "operator") return Role::kOperator;
  if (name == "viewer") return Role::kViewer;
  return std::nullopt;
}

const char* role_name(Role role) {
  switch (role) {
    case Role::kAdmin:
      return "admin";
    case Role::kOperator:
      return "operator";
    default:
      return "viewer";
  }
}

Result<std::string> hash_password(const std::string& password, unsigned long long ops,
                                  std::size_t mem) {
  char out[crypto_pwhash_STRBYTES];
  if (crypto_pwhash_str(out, password.data(), password.size(), ops, mem) != 0) {
    return resource_exhausted("cannot hash the password (out of memory)");
  }
  return std::string(out);
}

bool verify_password(const std::string& hash, const std::string& password) {
  if (hash.empty() || hash.size() >= crypto_pwhash_STRBYTES) return false;
  char h[crypto_pwhash_STRBYTES] = {};
  std::memcpy(h, hash.data(), hash.size());
  return crypto_pwhash_str_verify(h, password.data(), password.size()) == 0;
}

Status check_password(const std::string& password) {
  if (password.size() < 12) return invalid_argument("password: at least 12 characters");
  if (password.size() > 1024) return invalid_argument("password: at most 1024 bytes");
  return Status::ok();
}

std::string totp_code(const std::string& secret, std::int64_t unix_s, int digits) {
  const std::uint64_t step = static_cast<std::uint64_t>(unix_s / 30);
  unsigned char msg[8];
  for (int i = 7; i >= 0; --i) msg[7 - i] = static_cast<unsigned char>(step >> (i * 8));
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha1(), secret.data(), static_cast<int>(secret.size()), msg, sizeof msg, mac, &len);
  const int offset = mac[len - 1] & 0x0f;
  const std::uint32_t bin = (static_cast<std::uint32_t>(mac[offset] & 0x7f) << 24) |
                            (static_cast<std::uint32_t>(mac[offset + 1]) << 16) |
                            (static_cast<std::uint32_t>(mac[offset + 2]) << 8) |
                            static_cast<std::uint32_t>(mac[offset + 3]);
  std::uint32_t mod = 1;
  for (int i = 0; i < digits; ++i) mod *= 10;
  std::string code = std::to_string(bin % mod);
  return std::string(static_cast<std::size_t>(digits) - code.size(), '0') + code;
}

std::string base32(const std::string& bytes) {
  static const char* const kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  std::string out;
  std::uint32_t buffer = 0;
  int bits = 0;
  for (unsigned char c : bytes) {
    buffer = (buffer << 8) | c;
    bits += 8;
    while (bits >= 5) {
      out.push_back(kAlphabet[(buffer >> (bits - 5)) & 31]);
      bits -= 5;
    }
  }
  if (bits > 0) out.push_back(kAlphabet[(buffer << (5 - bits)) & 31]);
  return out;
}

std::string audit_json(const fleet::User& u) {
  return json{{"name", u.name()},
              {"role", u.role()},
              {"password_generation", u.generation()},
              {"totp", u.totp_sealed().empty() ? "none"
                       : u.totp_pending()      ? "pending"
                                               : "on"}}
      .dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string audit_json(const fleet::ApiKey& k) {
  return json{{"id", k.id()},
              {"name", k.name()},
              {"user", k.user()},
              {"role", k.role()},
              {"expires_unix_ns", k.expires_unix_ns()},
              {"revoked", k.revoked()}}
      .dump(-1, ' ', false, json::error_handler_t::replace);
}

Auth::Auth(env::Env& env, controller::FleetStore* store, const std::array<std::uint8_t, 32>& secret,
           AuthOptions options)
    : env_(env), store_(store), options_(options) {
  crypto_kdf_derive_from_key(token_key_.data(), token_key_.size(), 1, "patrtokn", secret.data());
  crypto_kdf_derive_from_key(seal_key_.data(), seal_key_.size(), 2, "patrseal", secret.data());
  // A user that does not exist is checked against this, so that it takes as long as one that
  // does (the login's timing does not say which names exist).
  auto decoy = hash_password(random_text(24), options_.pwhash_ops, options_.pwhash_mem);
  if (decoy.is_ok()) decoy_hash_ = decoy.value();
}

Auth::~Auth() {
  sodium_memzero(token_key_.data(), token_key_.size());
  sodium_memzero(seal_key_.data(), seal_key_.size());
}

Status Auth::load(const controller::FleetSnapshot& snap) {
  for (const auto& u : snap.users) users_[u.name()] = u;
  for (const auto& k : snap.api_keys) keys_[k.id()] = k;
  const std::int64_t now = env_.wall_ns();
  for (const auto& x : snap.sessions) {
    if (x.expires_unix_ns() > now) sessions_[x.id()] = x;
  }
  return Status::ok();
}

Status Auth::write(controller::FleetBatch batch) {
  if (store_ == nullptr || batch.empty()) return Status::ok();
  if (auto st = store_->write(batch); !st.is_ok()) {
    return unavailable("the fleet store refused the change, nothing changed: " + st.message());
  }
  return Status::ok();
}

fleet::AuditEntry Auth::audit_entry(const AuditContext& ctx, const std::string& before_json,
                                    const std::string& after_json) const {
  return make_audit_entry(env_.wall_ns(), ctx, before_json, after_json);
}

fleet::AuditEntry make_audit_entry(std::int64_t unix_ns, const AuditContext& ctx,
                                   const std::string& before_json, const std::string& after_json) {
  fleet::AuditEntry e;
  e.set_unix_ns(unix_ns);
  e.set_actor(ctx.actor);
  e.set_address(ctx.address);
  e.set_method(ctx.method);
  e.set_route(ctx.route);
  e.set_target(ctx.target);
  e.set_status(ctx.status);
  const json before =
      before_json.empty() ? json(nullptr) : json::parse(before_json, nullptr, false);
  const json after = after_json.empty() ? json(nullptr) : json::parse(after_json, nullptr, false);
  std::string patch =
      json::diff(before, after).dump(-1, ' ', false, json::error_handler_t::replace);
  if (before_json.size() + after_json.size() + patch.size() > kAuditBound) {
    e.set_truncated(true);
    e.set_before_json("null");
    e.set_after_json("null");
    if (patch.size() > kAuditBound) patch = "[]";
    e.set_patch_json(patch);
    return e;
  }
  e.set_before_json(before.dump(-1, ' ', false, json::error_handler_t::replace));
  e.set_after_json(after.dump(-1, ' ', false, json::error_handler_t::replace));
  e.set_patch_json(patch);
  return e;
}

std::string Auth::sign(const std::string& payload) const {
  unsigned char mac[crypto_auth_hmacsha256_BYTES];
  crypto_auth_hmacsha256(mac, reinterpret_cast<const unsigned char*>(payload.data()),
                         payload.size(), token_key_.data());
  return b64url(mac, sizeof mac);
}

Result<Principal> Auth::authenticate(const std::string& bearer) {
  const std::int64_t now = env_.wall_ns();
  if (bearer.rfind("pak_", 0) == 0) {
    // "pak_" + 16 hex digits of id + "_" + the secret (base64url, which has '_' too).
    if (bearer.size() < 22 || bearer[20] != '_') return unauthenticated("not an API key");
    const auto it = keys_.find(bearer.substr(4, 16));
    if (it == keys_.end() || !same(digest(bearer), it->second.hash())) {
      return unauthenticated("an unknown API key");
    }
    const auto& k = it->second;
    if (k.revoked()) return unauthenticated("API key " + k.id() + " is revoked");
    if (k.expires_unix_ns() <= now) return unauthenticated("API key " + k.id() + " has expired");
    const auto u = users_.find(k.user());
    if (u == users_.end()) return unauthenticated("API key " + k.id() + ": its user is gone");
    const Role role = std::min(*parse_role(k.role()), *parse_role(u->second.role()));
    return Principal{"key:" + k.id(), k.user(), role, ""};
  }
  if (bearer.rfind("pat_", 0) != 0) return unauthenticated("not an access token or an API key");
  const auto dot = bearer.find('.');
  if (dot == std::string::npos) return unauthenticated("a malformed access token");
  const std::string body = bearer.substr(4, dot - 4);
  const std::string mac = bearer.substr(dot + 1);
  if (!same(sign(body), mac)) return unauthenticated("an access token with a wrong signature");
  const auto payload = from_b64url(body);
  if (!payload) return unauthenticated("a malformed access token");
  const auto f = split(*payload, '|');
  if (f.size() != 5 || f[0] != "v1") return unauthenticated("a malformed access token");
  std::int64_t expires = 0;
  std::uint64_t generation = 0;
  try {
    expires = std::stoll(f[4]);
    generation = std::stoull(f[3]);
  } catch (const std::exception&) {
    return unauthenticated("a malformed access token");
  }
  if (expires <= now) return unauthenticated("the access token has expired");
  const auto s = sessions_.find(f[2]);
  if (s == sessions_.end() || s->second.user() != f[1]) {
    return unauthenticated("the access token's login has ended");
  }
  const auto u = users_.find(f[1]);
  if (u == users_.end()) return unauthenticated("the access token's user is gone");
  if (u->second.generation() != generation) {
    return unauthenticated("the password changed after the access token was issued");
  }
  return Principal{"user:" + u->second.name(), u->second.name(), *parse_role(u->second.role()),
                   f[2]};
}

bool Auth::over(std::map<std::string, Window>& table, const std::string& key, std::uint32_t max,
                bool count) {
  const std::int64_t now = env_.now_ns();
  auto it = table.find(key);
  if (it != table.end() && now - it->second.start_ns >= options_.window_ns) {
    table.erase(it);
    it = table.end();
  }
  if (it == table.end()) {
    if (!count) return false;
    if (table.size() >= options_.max_limited) {
      for (auto i = table.begin(); i != table.end();) {
        i = now - i->second.start_ns >= options_.window_ns ? table.erase(i) : std::next(i);
      }
      if (table.size() >= options_.max_limited) return true;  // a flood: everyone waits
    }
    it = table.emplace(key, Window{now, 0}).first;
  }
  if (it->second.count >= max) return true;
  if (count) ++it->second.count;
  return false;
}

std::int64_t Auth::retry_after_s(const std::string& user, const std::string& address) const {
  const std::int64_t now = env_.now_ns();
  std::int64_t wait = 1;
  for (const auto* t : {&by_address_, &failed_by_address_, &by_user_}) {
    const auto it = t->find(t == &by_user_ ? user : address);
    if (it != t->end()) {
      wait = std::max(wait, (it->second.start_ns + options_.window_ns - now) / kSecond + 1);
    }
  }
  return wait;
}

Result<Auth::Attempt> Auth::admit_login(const std::string& user, const std::string& address) {
  if (over(failed_by_address_, address, options_.failures_per_address, false)) {
    return resource_exhausted("too many failed logins from " + address);
  }
  if (over(by_address_, address, options_.attempts_per_address, true)) {
    return resource_exhausted("too many logins from " + address);
  }
  if (over(by_user_, user, options_.failures_per_user, false)) {
    return resource_exhausted("too many failed logins as '" + user + "'");
  }
  Attempt a;
  a.user = user;
  a.address = address;
  const auto u = users_.find(user);
  a.exists = u != users_.end();
  a.hash = a.exists ? u->second.password_hash() : decoy_hash_;
  return a;
}

Result<Tokens> Auth::finish_login(const Attempt& a, bool password_ok, const std::string& totp,
                                  const AuditContext& audit) {
  const auto u = users_.find(a.user);
  if (!a.exists || !password_ok || u == users_.end()) {
    failed(a.user, a.address);
    return unauthenticated(!a.exists ? "no such user" : "a wrong password");
  }
  if (!u->second.totp_sealed().empty() && !u->second.totp_pending()) {
    auto secret = unseal(u->second.totp_sealed());
    if (!secret.is_ok()) return secret.status();
    if (totp.empty()) {
      return unauthenticated("totp: the user has a second factor: give its code");
    }
    if (!totp_ok(a.user, secret.value(), totp)) {
      failed(a.user, a.address);
      return unauthenticated("a wrong second-factor code");
    }
  }
  controller::FleetBatch b;
  b.audit.push_back(audit_entry(audit, "", ""));
  return open_session(u->second, a.address, std::move(b), "");
}

Result<Tokens> Auth::open_session(const fleet::User& u, const std::string& address,
                                  controller::FleetBatch b, std::string replaces) {
  const std::int64_t now = env_.wall_ns();
  // Bounds: expired logins go; past the per-user or global bound, the oldest goes.
  std::vector<std::string> gone;
  std::vector<std::pair<std::int64_t, std::string>> mine;
  for (const auto& [id, x] : sessions_) {
    if (x.expires_unix_ns() <= now || id == replaces) {
      gone.push_back(id);
    } else if (x.user() == u.name()) {
      mine.emplace_back(x.created_unix_ns(), id);
    }
  }
  std::sort(mine.begin(), mine.end());
  for (std::size_t i = 0; i + options_.max_sessions_per_user <= mine.size(); ++i) {
    gone.push_back(mine[i].second);
  }
  if (sessions_.size() - gone.size() >= options_.max_sessions) {
    return resource_exhausted("logins: " + std::to_string(options_.max_sessions) + " are open");
  }
  fleet::AuthSession x;
  x.set_id(random_hex(12));
  const std::string refresh = "prt_" + x.id() + "_" + random_text(32);
  x.set_user(u.name());
  x.set_refresh_hash(digest(refresh));
  x.set_expires_unix_ns(now + options_.refresh_ttl_ns);
  x.set_generation(u.generation());
  x.set_created_unix_ns(now);
  x.set_address(address);
  b.put_sessions.push_back(x);
  b.delete_sessions.insert(b.delete_sessions.end(), gone.begin(), gone.end());
  if (auto st = write(std::move(b)); !st.is_ok()) return st;
  for (const auto& g : gone) sessions_.erase(g);
  sessions_[x.id()] = x;
  Tokens t;
  t.user = u.name();
  t.role = *parse_role(u.role());
  t.access_expires_unix_ns = now + options_.access_ttl_ns;
  const std::string body =
      b64url("v1|" + u.name() + "|" + x.id() + "|" + std::to_string(u.generation()) + "|" +
             std::to_string(t.access_expires_unix_ns));
  t.access_token = "pat_" + body + "." + sign(body);
  t.refresh_token = refresh;
  t.refresh_expires_unix_ns = x.expires_unix_ns();
  return t;
}

void Auth::failed(const std::string& user, const std::string& address) {
  if (!user.empty()) over(by_user_, user, options_.failures_per_user, true);
  over(failed_by_address_, address, options_.failures_per_address, true);
}

Result<Tokens> Auth::refresh(const std::string& token, const std::string& address) {
  if (over(failed_by_address_, address, options_.failures_per_address, false) ||
      over(by_address_, address, options_.attempts_per_address, true)) {
    return resource_exhausted("too many attempts from " + address);
  }
  // "prt_" + 24 hex digits of the login's id + "_" + the secret.
  const bool shaped = token.size() > 29 && token.rfind("prt_", 0) == 0 && token[28] == '_';
  const auto it = shaped ? sessions_.find(token.substr(4, 24)) : sessions_.end();
  if (it == sessions_.end() || !same(digest(token), it->second.refresh_hash())) {
    failed("", address);
    return unauthenticated("an unknown or used refresh token");
  }
  if (it->second.expires_unix_ns() <= env_.wall_ns()) {
    return unauthenticated("the refresh token has expired");
  }
  const auto u = users_.find(it->second.user());
  if (u == users_.end() || u->second.generation() != it->second.generation()) {
    return unauthenticated("the login ended (the user is gone or changed password)");
  }
  // Rotated: the old refresh token is spent.
  return open_session(u->second, address, {}, it->first);
}

Status Auth::logout(const Principal& who, const AuditContext& audit) {
  if (who.session.empty()) return invalid_argument("an API key has no login to end (revoke it)");
  controller::FleetBatch b;
  b.delete_sessions.push_back(who.session);
  b.audit.push_back(audit_entry(audit, "", ""));
  if (auto st = write(std::move(b)); !st.is_ok()) return st;
  sessions_.erase(who.session);
  return Status::ok();
}

Result<fleet::User> Auth::create_user(const std::string& name, Role role,
                                      const std::string& password_hash, const AuditContext& audit) {
  if (auto st = model::validate_name("name", name, 63); !st.is_ok()) return st;
  if (users_.count(name)) return already_exists("user '" + name + "' exists already");
  if (users_.size() >= options_.max_users) {
    return resource_exhausted("users: the bound of " + std::to_string(options_.max_users) +
                              " is reached");
  }
  fleet::User u;
  u.set_name(name);
  u.set_role(role_name(role));
  u.set_password_hash(password_hash);
  u.set_generation(1);
  u.set_created_unix_ns(env_.wall_ns());
  controller::FleetBatch b;
  b.put_users.push_back(u);
  b.audit.push_back(audit_entry(audit, "", audit_json(u)));
  if (auto st = write(std::move(b)); !st.is_ok()) return st;
  users_[name] = u;
  return u;
}

Status Auth::set_role(const std::string& name, Role role, const AuditContext& audit) {
  const auto it = users_.find(name);
  if (it == users_.end()) return not_found("no user '" + name + "'");
  if (it->second.role() == role_name(Role::kAdmin) && role != Role::kAdmin) {
    const auto admins = std::count_if(users_.begin(), users_.end(), [](const auto& kv) {
      return kv.second.role() == role_name(Role::kAdmin);
    });
    if (admins <= 1) return failed_precondition("user '" + name + "' is the last admin");
  }
  fleet::User u = it->second;
  u.set_role(role_name(role));
  if (auto st = put_user(u, audit); !st.is_ok()) return st;
  return Status::ok();
}

Status Auth::set_password(const std::string& name, const std::string& password_hash,
                          const AuditContext& audit) {
  const auto it = users_.find(name);
  if (it == users_.end()) return not_found("no user '" + name + "'");
  fleet::User u = it->second;
  u.set_password_hash(password_hash);
  u.set_generation(u.generation() + 1);
  controller::FleetBatch b;
  b.put_users.push_back(u);
  for (const auto& [id, x] : sessions_) {
    if (x.user() == name) b.delete_sessions.push_back(id);
  }
  b.audit.push_back(audit_entry(audit, audit_json(it->second), audit_json(u)));
  const auto ended = b.delete_sessions;
  if (auto st = write(std::move(b)); !st.is_ok()) return st;
  it->second = u;
  for (const auto& id : ended) sessions_.erase(id);
  return Status::ok();
}

Status Auth::delete_user(const std::string& name, const AuditContext& audit) {
  const auto it = users_.find(name);
  if (it == users_.end()) return not_found("no user '" + name + "'");
  if (it->second.role() == role_name(Role::kAdmin)) {
    const auto admins = std::count_if(users_.begin(), users_.end(), [](const auto& kv) {
      return kv.second.role() == role_name(Role::kAdmin);
    });
    if (admins <= 1) return failed_precondition("user '" + name + "' is the last admin");
  }
  controller::FleetBatch b;
  b.delete_users.push_back(name);
  for (const auto& [id, x] : sessions_) {
    if (x.user() == name) b.delete_sessions.push_back(id);
  }
  std::vector<std::string> revoked;
  for (const auto& [id, k] : keys_) {
    if (k.user() == name && !k.revoked()) {
      fleet::ApiKey r = k;
      r.set_revoked(true);
      b.put_api_keys.push_back(r);
      revoked.push_back(id);
    }
  }
  b.audit.push_back(audit_entry(audit, audit_json(it->second), ""));
  const auto ended = b.delete_sessions;
  if (auto st = write(std::move(b)); !st.is_ok()) return st;
  users_.erase(it);
  for (const auto& id : ended) sessions_.erase(id);
  for (const auto& id : revoked) keys_[id].set_revoked(true);
  return Status::ok();
}

Status Auth::put_user(const fleet::User& next, const AuditContext& audit) {
  auto& current = users_.at(next.name());
  controller::FleetBatch b;
  b.put_users.push_back(next);
  b.audit.push_back(audit_entry(audit, audit_json(current), audit_json(next)));
  if (auto st = write(std::move(b)); !st.is_ok()) return st;
  current = next;
  return Status::ok();
}

std::vector<fleet::User> Auth::list_users() const {
  std::vector<fleet::User> out;
  for (const auto& [n, u] : users_) out.push_back(u);
  return out;
}

std::optional<fleet::User> Auth::user(const std::string& name) const {
  const auto it = users_.find(name);
  if (it == users_.end()) return std::nullopt;
  return it->second;
}

std::string Auth::seal(const std::string& plain) const {
  std::string out(crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + plain.size(), '\0');
  auto* p = reinterpret_cast<unsigned char*>(out.data());
  randombytes_buf(p, crypto_secretbox_NONCEBYTES);
  crypto_secretbox_easy(p + crypto_secretbox_NONCEBYTES,
                        reinterpret_cast<const unsigned char*>(plain.data()), plain.size(), p,
                        seal_key_.data());
  return out;
}

Result<std::string> Auth::unseal(const std::string& sealed) const {
  if (sealed.size() < crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES) {
    return internal_error("a sealed TOTP secret is too short");
  }
  const auto* p = reinterpret_cast<const unsigned char*>(sealed.data());
  std::string out(sealed.size() - crypto_secretbox_NONCEBYTES - crypto_secretbox_MACBYTES, '\0');
  if (crypto_secretbox_open_easy(
          reinterpret_cast<unsigned char*>(out.data()), p + crypto_secretbox_NONCEBYTES,
          sealed.size() - crypto_secretbox_NONCEBYTES, p, seal_key_.data()) != 0) {
    return internal_error(
        "a TOTP secret does not open with this controller's key (was the identity directory "
        "replaced?)");
  }
  return out;
}

bool Auth::totp_ok(const std::string& user, const std::string& secret, const std::string& code) {
  const std::int64_t now_s = env_.wall_ns() / kSecond;
  for (std::int64_t d : {0, -1, 1}) {
    const std::int64_t t = now_s + d * 30;
    const std::int64_t step = t / 30;
    if (same(totp_code(secret, t), code)) {
      auto& last = totp_last_step_[user];
      if (step <= last) return false;  // that code was used already
      last = step;
      return true;
    }
  }
  return false;
}

Result<std::string> Auth::enrol_totp(const std::string& name, const AuditContext& audit) {
  const auto it = users_.find(name);
  if (it == users_.end()) return not_found("no user '" + name + "'");
  std::string secret(20, '\0');
  randombytes_buf(secret.data(), secret.size());
  fleet::User u = it->second;
  u.set_totp_sealed(seal(secret));
  u.set_totp_pending(true);
  std::string text = base32(secret);
  sodium_memzero(secret.data(), secret.size());
  if (auto st = put_user(u, audit); !st.is_ok()) {
    sodium_memzero(text.data(), text.size());
    return st;
  }
  return text;
}

Status Auth::confirm_totp(const std::string& name, const std::string& code,
                          const AuditContext& audit) {
  const auto it = users_.find(name);
  if (it == users_.end()) return not_found("no user '" + name + "'");
  if (it->second.totp_sealed().empty() || !it->second.totp_pending()) {
    return failed_precondition("user '" + name + "' has no second factor waiting to be confirmed");
  }
  auto secret = unseal(it->second.totp_sealed());
  if (!secret.is_ok()) return secret.status();
  if (!totp_ok(name, secret.value(), code)) return invalid_argument("code: not the current code");
  fleet::User u = it->second;
  u.set_totp_pending(false);
  if (auto st = put_user(u, audit); !st.is_ok()) return st;
  return Status::ok();
}

Status Auth::remove_totp(const std::string& name, const AuditContext& audit) {
  const auto it = users_.find(name);
  if (it == users_.end()) return not_found("no user '" + name + "'");
  if (it->second.totp_sealed().empty()) {
    return not_found("user '" + name + "' has no second factor");
  }
  fleet::User u = it->second;
  u.clear_totp_sealed();
  u.set_totp_pending(false);
  if (auto st = put_user(u, audit); !st.is_ok()) return st;
  return Status::ok();
}

Result<Auth::NewKey> Auth::create_key(const Principal& maker, const std::string& name, Role role,
                                      std::int64_t ttl_ns, const AuditContext& audit) {
  if (auto st = model::validate_name("name", name, 63); !st.is_ok()) return st;
  if (role > maker.role) {
    return permission_denied(std::string("role: a key's role is at most its maker's (") +
                             role_name(maker.role) + ")");
  }
  if (ttl_ns <= 0 || ttl_ns > options_.max_key_ttl_ns) {
    return invalid_argument("expires_in_days: between 1 and 366");
  }
  if (keys_.size() >= options_.max_keys) {
    return resource_exhausted("API keys: the bound of " + std::to_string(options_.max_keys) +
                              " is reached (delete revoked ones)");
  }
  NewKey k;
  k.record.set_id(random_hex(8));
  k.key = "pak_" + k.record.id() + "_" + random_text(32);
  k.record.set_hash(digest(k.key));
  k.record.set_name(name);
  k.record.set_user(maker.user);
  k.record.set_role(role_name(role));
  k.record.set_created_unix_ns(env_.wall_ns());
  k.record.set_expires_unix_ns(env_.wall_ns() + ttl_ns);
  controller::FleetBatch b;
  b.put_api_keys.push_back(k.record);
  AuditContext ctx = audit;
  ctx.target = "api-keys/" + k.record.id();
  b.audit.push_back(audit_entry(ctx, "", audit_json(k.record)));
  if (auto st = write(std::move(b)); !st.is_ok()) return st;
  keys_[k.record.id()] = k.record;
  return k;
}

Status Auth::revoke_key(const std::string& id, const AuditContext& audit) {
  const auto it = keys_.find(id);
  if (it == keys_.end()) return not_found("no API key '" + id + "'");
  if (it->second.revoked()) return Status::ok();
  fleet::ApiKey k = it->second;
  k.set_revoked(true);
  controller::FleetBatch b;
  b.put_api_keys.push_back(k);
  b.audit.push_back(audit_entry(audit, audit_json(it->second), audit_json(k)));
  if (auto st = write(std::move(b)); !st.is_ok()) return st;
  it->second = k;
  return Status::ok();
}

std::vector<fleet::ApiKey> Auth::list_keys() const {
  std::vector<fleet::ApiKey> out;
  for (const auto& [id, k] : keys_) out.push_back(k);
  return out;
}

std::optional<fleet::ApiKey> Auth::key(const std::string& id) const {
  const auto it = keys_.find(id);
  if (it == keys_.end()) return std::nullopt;
  return it->second;
}

Status Auth::prune_audit(std::int64_t before_unix_ns) {
  controller::FleetBatch b;
  b.prune_audit_before_unix_ns = before_unix_ns;
  return write(std::move(b));
}

}  // namespace patronus::controllerd
