#include "controller_app.hpp"

#include <utility>

#include "ns3/simulator.h"

namespace patronus::sim {

SimController::SimController(ns3::Ptr<ns3::Node> node, std::uint64_t seed,
                             const ControllerSpec& spec, controller::FleetSnapshot initial)
    : spec_(spec),
      env_(std::make_unique<Ns3Env>(node, seed, "controller")),
      store_(controller::make_memory_fleet_store(std::move(initial))) {}

SimController::~SimController() {
  core_.reset();  // cancels its timers on env_ first
}

Status SimController::up() {
  if (core_) return Status::ok();
  controller::CoreOptions options;
  options.debounce_ns = spec_.debounce_ns;
  options.max_wait_ns = spec_.max_wait_ns;
  controller::Outbox& outbox = *this;
  auto core = std::make_unique<controller::Core>(*env_, outbox, options, store_.get());
  if (auto s = core->load(); !s.is_ok()) return Status(s.code(), "controller: " + s.message());
  core_ = std::move(core);
  auto waiting = std::move(waiting_);
  waiting_.clear();
  for (auto& [site, done] : waiting) add_site(std::move(site), std::move(done));
  return Status::ok();
}

void SimController::down() {
  if (!core_) return;
  add(past_, core_->counters());
  ++restarts_;
  core_.reset();
  // Each site's connection breaks; the site learns it one latency later.
  for (const auto& [session, peer] : sessions_) {
    ns3::Simulator::Schedule(ns3::NanoSeconds(spec_.latency_ns), [peer] { peer->closed(); });
  }
  sessions_.clear();
}

void SimController::add_site(controller::FleetSite site,
                             std::function<void(Result<std::string>)> done) {
  if (!core_) {
    waiting_.emplace_back(std::move(site), std::move(done));
    return;
  }
  const std::string name = site.name;
  if (auto s = core_->add_site(std::move(site)); !s.is_ok()) return done(s);
  done(core_->create_token(name));
}

std::optional<controller::SessionId> SimController::open(ControllerPeer* peer) {
  if (!core_) return std::nullopt;
  const controller::SessionId id = next_session_++;
  sessions_[id] = peer;
  return id;
}

void SimController::send(controller::SessionId session, const controller::Identity& identity,
                         const controller::v1::FromSite& message) {
  ns3::Simulator::Schedule(ns3::NanoSeconds(spec_.latency_ns), [this, session, identity, message] {
    if (!core_ || !sessions_.count(session)) return;
    (void)core_->receive(session, identity, message);  // a refusal is answered to the site
  });
}

void SimController::send(controller::SessionId session, const controller::v1::ToSite& message) {
  ns3::Simulator::Schedule(ns3::NanoSeconds(spec_.latency_ns), [this, session, message] {
    const auto it = sessions_.find(session);
    if (it != sessions_.end()) it->second->deliver(message);
  });
}

// The core closes a session after what it sent on it (a refusal): both arrive, in that order.
void SimController::close(controller::SessionId session) {
  ns3::Simulator::Schedule(ns3::NanoSeconds(spec_.latency_ns), [this, session] {
    const auto it = sessions_.find(session);
    if (it == sessions_.end()) return;
    ControllerPeer* peer = it->second;
    sessions_.erase(it);
    peer->closed();
  });
}

void SimController::add(controller::CoreCounters& into, const controller::CoreCounters& c) const {
  into.compiles += c.compiles;
  into.configs_compiled += c.configs_compiled;
  into.pushes += c.pushes;
  into.resends += c.resends;
  into.tokens_refused += c.tokens_refused;
  into.tokens_rate_limited += c.tokens_rate_limited;
  into.connects_refused += c.connects_refused;
  into.messages_refused += c.messages_refused;
  into.store_errors += c.store_errors;
  into.report_paths_dropped += c.report_paths_dropped;
}

controller::CoreCounters SimController::counters() const {
  controller::CoreCounters out = past_;
  if (core_) add(out, core_->counters());
  return out;
}

}  // namespace patronus::sim
