// One site of a simulated WAN: an ns3::Application that owns one site::SiteHost (the same object
// patronusd hosts, built from the site's SiteConfig) with the real plugins loaded through the ABI,
// on an Ns3Env bound to the site's node. Its Dataplane forwards the site's traffic: flow generators
// hand each packet to the runtime (flow accounting, as a router's data path would) and send it,
// tunnelled in UDP, from the local to the remote endpoint of the path the Dataplane's tables name
// for it; received packets for the site's LAN are counted, others are relayed on (a hub). Nothing
// in the runtime or the plugins knows it is simulated.
//
// C++17 (includes ns-3 headers).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "controller_app.hpp"
#include "ns3/application.h"
#include "ns3/event-id.h"
#include "ns3_env.hpp"
#include "patronus/core/router.hpp"
#include "patronus/site/plan_store.hpp"
#include "patronus/site/site_host.hpp"
#include "patronus/steering/site_runtime.hpp"
#include "router_app.hpp"
#include "scenario.hpp"

namespace patronus::sim {

// The Dataplane of a simulated site: the forwarding tables the runtime sets (class x site -> path,
// pinned flows of balanced classes) and the destination-prefix table of the site's routes.
class Ns3Dataplane final : public steering::Dataplane {
 public:
  Status set_class_path(const std::string& site, const std::string& cls,
                        model::PathId path) override;
  Status set_flow_path(const model::FlowKey& flow, model::PathId path) override;
  void add_route(const model::IpPrefix& prefix, const std::string& site);
  // The path a packet takes now (invalid: none). `cls` is the class the site's rules put it in.
  model::PathId lookup(const model::FlowKey& key, const std::string& cls) const;
  const std::string* site_of(const model::IpAddress& dst) const;

 private:
  using Key = std::tuple<std::array<std::uint8_t, 16>, std::array<std::uint8_t, 16>, std::uint16_t,
                         std::uint16_t, std::uint8_t>;
  static Key key_of(const model::FlowKey& k);
  std::map<std::pair<std::string, std::string>, model::PathId> class_paths_;
  std::map<Key, model::PathId> flow_paths_;
  std::vector<std::pair<model::IpPrefix, std::string>> routes_;  // longest prefix first
};

// What a site reports to the run (the runner's collector implements it).
class SiteListener {
 public:
  virtual ~SiteListener() = default;
  virtual void flow_path(std::size_t flow, std::int64_t now, model::PathId from, model::PathId to,
                         std::optional<steering::Reason> reason) = 0;  // none: started
  virtual void packet_sent(std::size_t flow, bool has_path) = 0;
  virtual void packet_delivered(std::size_t flow, std::int64_t sent_ns, std::int64_t now) = 0;
  virtual void packet_dropped_at_relay(std::size_t flow) = 0;
  virtual void steering_mismatch(std::size_t flow) = 0;
  // With a controller: the site's session came up (welcomed) or went down.
  virtual void controller_link(const std::string& site, std::int64_t now, bool up) = 0;
  // The site applied a pushed config (`error` empty) or refused it; `remote_sites` are the
  // sites its plan has paths to.
  virtual void config_applied(const std::string& site, std::int64_t now, std::uint64_t version,
                              const std::vector<std::string>& remote_sites,
                              const std::string& error) = 0;
};

struct LocalFlow {
  std::size_t index = 0;  // in the scenario
  const FlowSpec* spec = nullptr;
  model::FlowKey key;
  std::string cls;  // what the site's rules make of it
};

struct SiteSetup {
  std::string site;
  std::uint64_t seed = 0;
  // The site as patronusd would host it: its config (plugins, runtime, its share of the plan),
  // where its plugins and private keys come from, and what the config does not carry (the
  // scenario's exact tick).
  site::SiteConfig config;
  std::function<std::shared_ptr<const core::PluginLibrary>(const std::string&)> plugins;
  site::PrivateKeys keys;
  std::function<void(steering::RuntimeConfig&)> tune;
  std::vector<model::IpAddress> endpoint_ips;
  DatagramNet* net = nullptr;  // the WAN the endpoints are on (outlives the app)
  model::IpPrefix lan;
  std::vector<std::pair<model::IpPrefix, std::string>> routes;  // remote LANs -> site
  std::vector<LocalFlow> flows;
  std::vector<steering::RuntimeObserver*> observers;
  SiteListener* listener = nullptr;
  // With a controller: `config` has no plan; at its start the site is added to the fleet (the
  // operator's `sites add` and `token create`), enrols with the token, reports its endpoints'
  // public keys and applies every config it is pushed, as patronusd does.
  SimController* controller = nullptr;
  controller::FleetSite fleet_site;
  std::vector<std::string> public_keys;  // per endpoint, base64
};

class SiteApp final : public ns3::Application,
                      private steering::RuntimeObserver,
                      private ControllerPeer {
 public:
  static constexpr std::uint16_t kTunnelPort = 51820;
  static ns3::TypeId GetTypeId();
  SiteApp() = default;
  ~SiteApp() override;

  void Setup(SiteSetup setup);
  // Valid between StartApplication and StopApplication; null if the site failed to start.
  steering::SiteRuntime* runtime() {
    return host_ && host_->running() ? host_->runtime() : nullptr;
  }
  const std::string& error() const { return error_; }
  const std::string& site() const { return setup_.site; }

 private:
  void StartApplication() override;
  void StopApplication() override;
  void DoDispose() override;

  // steering::RuntimeObserver: a decision changed the Dataplane; flows follow it.
  void on_decision(const std::string& site, const steering::Decision& d) override;

  // The controller link (backoff with jitter between attempts, as the daemon's channel).
  void link_open();
  void link_retry();
  void link_send(const controller::v1::FromSite& m);
  void deliver(const controller::v1::ToSite& message) override;
  void closed() override;
  void on_push(const controller::v1::ConfigPush& push);
  void learn_paths();

  void start_flow(std::size_t i);
  void send(std::size_t i);
  void refresh_flows(steering::Reason reason);
  // Runtime accounting and the Dataplane's forwarding decision for one packet.
  model::PathId forward(const model::FlowKey& key, std::uint8_t dscp, std::uint32_t bytes,
                        const std::string& cls, std::size_t flow);
  bool tunnel(model::PathId path, const std::vector<std::uint8_t>& bytes);
  void on_tunnel(const model::SocketAddress& from, const std::uint8_t* data, std::size_t size);
  void shut_down();

  SiteSetup setup_;
  std::unique_ptr<Ns3Env> env_;
  Ns3Dataplane dataplane_;
  std::unique_ptr<site::SiteHost> host_;      // after what it uses: destroyed first
  steering::SiteRuntime* runtime_ = nullptr;  // the host's, while it runs
  std::map<std::uint64_t, std::pair<model::IpAddress, model::IpAddress>> path_ends_;  // id -> ends
  std::map<model::IpAddress, env::EndpointId> tunnel_sockets_;
  struct FlowState {
    bool active = false;
    std::uint64_t seq = 0;
    model::PathId path;
    ns3::EventId next;
  };
  std::vector<FlowState> flow_state_;
  std::string error_;
  // The controller link.
  std::optional<controller::SessionId> session_;
  controller::Identity identity_{};
  std::string token_;
  bool enrolled_ = false;
  std::uint64_t applied_version_ = 0;
  std::string applied_hash_;
  int failures_ = 0;
  ns3::EventId retry_;
};

}  // namespace patronus::sim
