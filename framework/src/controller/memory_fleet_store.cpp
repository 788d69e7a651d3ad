#include <deque>
#include <map>

#include "patronus/controller/fleet_store.hpp"

namespace patronus::controller {

namespace {

// The fleet in memory, with the SQLite store's contract: a batch applies whole; load() returns
// what the writes left (sites by name, tokens by hash).
class MemoryFleetStore final : public FleetStore {
 public:
  explicit MemoryFleetStore(FleetSnapshot initial) {
    for (auto& s : initial.sites) sites_[s.name()] = std::move(s);
    for (auto& t : initial.tokens) tokens_[t.hash()] = std::move(t);
    settings_ = std::move(initial.settings);
    compiler_ = std::move(initial.compiler);
    for (auto& u : initial.users) users_[u.name()] = std::move(u);
    for (auto& k : initial.api_keys) keys_[k.id()] = std::move(k);
    for (auto& x : initial.sessions) sessions_[x.id()] = std::move(x);
  }

  Result<FleetSnapshot> load() override {
    FleetSnapshot out;
    for (const auto& [name, s] : sites_) out.sites.push_back(s);
    for (const auto& [hash, t] : tokens_) out.tokens.push_back(t);
    out.settings = settings_;
    out.compiler = compiler_;
    for (const auto& [name, u] : users_) out.users.push_back(u);
    for (const auto& [id, k] : keys_) out.api_keys.push_back(k);
    for (const auto& [id, x] : sessions_) out.sessions.push_back(x);
    return out;
  }

  Status write(const FleetBatch& b) override {
    for (const auto& s : b.put_sites) sites_[s.name()] = s;
    for (const auto& name : b.delete_sites) sites_.erase(name);
    for (const auto& t : b.put_tokens) tokens_[t.hash()] = t;
    for (const auto& hash : b.delete_tokens) tokens_.erase(hash);
    if (b.settings) settings_ = b.settings;
    if (b.compiler) compiler_ = b.compiler;
    for (const auto& name : b.delete_users) users_.erase(name);
    for (const auto& u : b.put_users) users_[u.name()] = u;
    for (const auto& id : b.delete_api_keys) keys_.erase(id);
    for (const auto& k : b.put_api_keys) keys_[k.id()] = k;
    for (const auto& id : b.delete_sessions) sessions_.erase(id);
    for (const auto& x : b.put_sessions) sessions_[x.id()] = x;
    if (b.prune_audit_before_unix_ns) {
      while (!audit_.empty() && audit_.front().unix_ns() < *b.prune_audit_before_unix_ns) {
        audit_.pop_front();
      }
    }
    for (const auto& a : b.audit) {
      audit_.push_back(a);
      audit_.back().set_id(++last_audit_id_);
    }
    return Status::ok();
  }

  Result<std::vector<fleet::AuditEntry>> read_audit(const AuditQuery& q) override {
    std::vector<fleet::AuditEntry> out;
    for (auto it = audit_.rbegin(); it != audit_.rend() && out.size() < q.limit; ++it) {
      if (q.before_id != 0 && it->id() >= q.before_id) continue;
      if (!q.actor.empty() && it->actor() != q.actor) continue;
      if (it->target().compare(0, q.target_prefix.size(), q.target_prefix) != 0) continue;
      if (it->unix_ns() < q.since_unix_ns) break;
      out.push_back(*it);
    }
    return out;
  }

 private:
  std::map<std::string, fleet::Site> sites_;
  std::map<std::string, fleet::Token> tokens_;
  std::optional<fleet::Settings> settings_;
  std::optional<fleet::CompilerState> compiler_;
  std::map<std::string, fleet::User> users_;
  std::map<std::string, fleet::ApiKey> keys_;
  std::map<std::string, fleet::AuthSession> sessions_;
  std::deque<fleet::AuditEntry> audit_;
  std::uint64_t last_audit_id_ = 0;
};

}  // namespace

std::unique_ptr<FleetStore> make_memory_fleet_store(FleetSnapshot initial) {
  return std::make_unique<MemoryFleetStore>(std::move(initial));
}

}  // namespace patronus::controller
