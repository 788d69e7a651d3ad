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
  }

  Result<FleetSnapshot> load() override {
    FleetSnapshot out;
    for (const auto& [name, s] : sites_) out.sites.push_back(s);
    for (const auto& [hash, t] : tokens_) out.tokens.push_back(t);
    out.settings = settings_;
    out.compiler = compiler_;
    return out;
  }

  Status write(const FleetBatch& b) override {
    for (const auto& s : b.put_sites) sites_[s.name()] = s;
    for (const auto& name : b.delete_sites) sites_.erase(name);
    for (const auto& t : b.put_tokens) tokens_[t.hash()] = t;
    for (const auto& hash : b.delete_tokens) tokens_.erase(hash);
    if (b.settings) settings_ = b.settings;
    if (b.compiler) compiler_ = b.compiler;
    return Status::ok();
  }

 private:
  std::map<std::string, fleet::Site> sites_;
  std::map<std::string, fleet::Token> tokens_;
  std::optional<fleet::Settings> settings_;
  std::optional<fleet::CompilerState> compiler_;
};

}  // namespace

std::unique_ptr<FleetStore> make_memory_fleet_store(FleetSnapshot initial) {
  return std::make_unique<MemoryFleetStore>(std::move(initial));
}

}  // namespace patronus::controller
