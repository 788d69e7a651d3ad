// The controller in a simulated WAN: the controller's core (the state machine patronus-controller
// runs, docs/adr/0022-controller-core.md) on an Ns3Env of its own node, with its fleet in a store
// that outlives it, so that a `controller: down` fault stops the core (every session drops) and
// `up` starts a new one from the store, as a restarted daemon would. Sites reach it through a
// message link with the scenario's one-way latency: what either side sends is handled that much
// later, and not at all if the session ended in between.
//
// C++17 (the runner includes it).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ns3_env.hpp"
#include "patronus/controller/core.hpp"
#include "patronus/controller/fleet_store.hpp"
#include "scenario.hpp"

namespace patronus::sim {

// A site's end of the link (SiteApp).
class ControllerPeer {
 public:
  virtual ~ControllerPeer() = default;
  virtual void deliver(const controller::v1::ToSite& message) = 0;
  // The session is over (the controller stopped, or refused the site).
  virtual void closed() = 0;
};

class SimController final : private controller::Outbox {
 public:
  // `initial` is the store's content at the start: the fleet's settings (topology) and the path
  // ids the run reports by, so that the controller's fleet-wide ids are the scenario's.
  SimController(ns3::Ptr<ns3::Node> node, std::uint64_t seed, const ControllerSpec& spec,
                controller::FleetSnapshot initial);
  ~SimController() override;
  SimController(const SimController&) = delete;
  SimController& operator=(const SimController&) = delete;

  // Starts the core (loads the store). Errors: the store's content is refused.
  Status up();
  // Stops the core: every session is closed (the sites see it after the latency).
  void down();
  bool is_up() const { return core_ != nullptr; }

  // The operator's `sites add` and `token create`: `done` gets the one-time token the site
  // enrols with (or the refusal), at once, or once the controller is up again (the operator
  // retries a command the controller did not answer).
  void add_site(controller::FleetSite site, std::function<void(Result<std::string>)> done);
  // A new session for `peer`; none while the controller is down.
  std::optional<controller::SessionId> open(ControllerPeer* peer);
  // The site's message, handled by the core after the latency (if the session still exists).
  void send(controller::SessionId session, const controller::Identity& identity,
            const controller::v1::FromSite& message);

  // Counters of every core that ran, summed.
  controller::CoreCounters counters() const;
  std::uint64_t restarts() const { return restarts_; }

 private:
  void send(controller::SessionId session, const controller::v1::ToSite& message) override;
  void close(controller::SessionId session) override;
  void add(controller::CoreCounters& into, const controller::CoreCounters& c) const;

  ControllerSpec spec_;
  std::unique_ptr<Ns3Env> env_;
  std::unique_ptr<controller::FleetStore> store_;
  std::unique_ptr<controller::Core> core_;
  std::map<controller::SessionId, ControllerPeer*> sessions_;
  std::vector<std::pair<controller::FleetSite, std::function<void(Result<std::string>)>>> waiting_;
  controller::SessionId next_session_ = 1;
  controller::CoreCounters past_;  // of the cores that stopped
  std::uint64_t restarts_ = 0;
};

}  // namespace patronus::sim
