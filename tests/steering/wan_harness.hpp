// A virtual-time WAN of sites for tests: each site is a real SiteHost (the SiteRuntime hosting the
// real probes and scorer plugins, .so through the ABI) on a VirtualWorld node; paths are pairs of
// endpoint addresses whose links (delay, jitter, loss, up/down) the test controls. Keys are real
// X25519 keys; probe keys are derived exactly as patronusd derives them.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "patronus/core/config_schema.hpp"
#include "patronus/core/plugin_host.hpp"
#include "patronus/core/router.hpp"
#include "patronus/env/virtual_world.hpp"
#include "patronus/mesh/keys.hpp"
#include "patronus/site/site_host.hpp"
#include "patronus/steering/site_runtime.hpp"
#include "test_support.hpp"

namespace patronus::test {

struct HarnessEndpoint {
  std::string name;
  std::string ip;
};

struct HarnessSite {
  std::string name;
  std::vector<HarnessEndpoint> endpoints;
  std::string subnet;  // LAN prefix reached through the site
  // A peer that is not a Patronus site (a partner's gateway): no runtime of its own; paths to it
  // are unprobed (PathSpec::probed).
  bool external = false;
};

// Collects decisions, events and path states of one site.
struct Recorder : steering::RuntimeObserver {
  std::vector<steering::Decision> decisions;
  std::vector<std::pair<std::string, std::string>> events;  // type, json
  void on_decision(const std::string&, const steering::Decision& d) override {
    decisions.push_back(d);
  }
  void on_event(const std::string&, const steering::Event& e) override {
    events.emplace_back(steering::event_type(e), steering::event_json(e));
    typed.push_back(e);
  }
  std::vector<steering::Event> typed;
  void on_path_state(const std::string&, const steering::PathView& p) override {
    states.emplace_back(p.id, p.status);
  }
  std::vector<std::pair<model::PathId, model::PathStatus>> states;  // as reported, in order
  std::string last_event(const std::string& type) const {
    for (auto it = events.rbegin(); it != events.rend(); ++it) {
      if (it->first == type) return it->second;
    }
    return "";
  }
};

// Every site is a site::SiteHost built from a SiteConfig, as patronusd and the simulator build
// theirs; only the Env (a VirtualWorld node), the keys and the dataplane differ.
class Wan {
 public:
  struct Node {
    env::Env* env = nullptr;
    Recorder recorder;  // outlives the host that reports to it (members die in reverse)
    std::unique_ptr<steering::RecordingDataplane> dataplane;
    std::map<std::string, mesh::KeyPair> keys;  // endpoint -> key pair
    std::unique_ptr<site::SiteHost> host;
    core::RouterInstance* router = nullptr;    // the host's
    steering::SiteRuntime* runtime = nullptr;  // the host's
  };
  struct PathDef {
    std::string a_site, a_ep, b_site, b_ep;
    env::LinkParams link;
    std::string transport = "wireguard";  // the tunnel's kind (RuntimeConfig::transports)
  };

  // Hosts stop (and say their last metrics) while their observers still exist.
  ~Wan() { stop(); }
  Wan(const Wan&) = delete;
  Wan& operator=(const Wan&) = delete;

  explicit Wan(std::uint64_t seed) : world_(seed) {
    for (const char* n : {"probes", "scoring", "emodel"}) {
      auto lib = reg_.load_file(plugin_dir() + "/libpatronus-" + n + ".so");
      EXPECT_TRUE(lib.is_ok()) << lib.status().to_string();
      if (lib.is_ok()) libs_[n] = lib.value();
    }
  }

  env::VirtualWorld& world() { return world_; }

  // Before start(): a site's runtime drives `dp` instead of its recorder (e.g. the Linux one).
  void use_dataplane(const std::string& site, steering::Dataplane* dp) { external_dp_[site] = dp; }
  // Before start(): every site runs this transport plugin as instance "tunnel" and its paths get
  // tunnels. In virtual time the link is the tunnel: a path's overlay addresses are its endpoint
  // addresses, so probes through the "tunnel" cross the same link.
  void use_transport(std::shared_ptr<const core::PluginLibrary> lib,
                     std::vector<std::string> more_instances = {}) {
    libs_[lib->info().name] = lib;
    transport_ = std::move(lib);
    more_transports_ = std::move(more_instances);
  }

  // Before start(): every site also runs this scorer plugin as `instance` (a class names it in
  // start()'s tweak).
  void use_scorer(std::shared_ptr<const core::PluginLibrary> lib, const std::string& instance) {
    libs_[lib->info().name] = lib;
    extra_scorers_.emplace_back(std::move(lib), instance);
  }

  // Before start(): every site also runs this policy plugin as `instance`.
  void use_policy(std::shared_ptr<const core::PluginLibrary> lib, const std::string& instance) {
    libs_[lib->info().name] = lib;
    policies_.emplace_back(std::move(lib), instance);
  }
  core::PluginRegistry& registry() { return reg_; }

  void add_site(const HarnessSite& s) {
    sites_.push_back(s);
    auto n = std::make_unique<Node>();
    std::vector<model::IpAddress> ips;
    for (const auto& e : s.endpoints) {
      ips.push_back(model::IpAddress::parse(e.ip).value());
      n->keys[e.name] = mesh::generate_keypair().value();
    }
    n->env = &world_.add_node(s.name, ips);
    nodes_[s.name] = std::move(n);
  }

  std::size_t add_path(const PathDef& p) {
    paths_.push_back(p);
    auto ia = ip_of(p.a_site, p.a_ep), ib = ip_of(p.b_site, p.b_ep);
    world_.set_link(ia, ib, p.link);
    world_.set_link(ib, ia, p.link);
    return paths_.size();  // path id (1-based)
  }

  // Both directions of a path's link.
  void set_link(std::size_t path_id, env::LinkParams link) {
    const auto& p = paths_.at(path_id - 1);
    auto ia = ip_of(p.a_site, p.a_ep), ib = ip_of(p.b_site, p.b_ep);
    world_.set_link(ia, ib, link);
    world_.set_link(ib, ia, link);
  }
  void set_up(std::size_t path_id, bool up) {
    const auto& p = paths_.at(path_id - 1);
    auto ia = ip_of(p.a_site, p.a_ep), ib = ip_of(p.b_site, p.b_ep);
    world_.set_link_up(ia, ib, up);
    world_.set_link_up(ib, ia, up);
  }

  // Builds and starts every site. `probe_yaml` configures the probes plugin; `tweak` adjusts each
  // site's runtime settings (those a SiteConfig carries go into it, the rest are tuned).
  void start(const std::string& probe_yaml,
             const std::function<void(steering::RuntimeConfig&)>& tweak = {}) {
    probe_yaml_ = probe_yaml;
    tweak_ = tweak;
    for (const auto& s : sites_) {
      if (!s.external) start_site(s.name);
    }
  }

  // After start(): a site added since (add_site, add_path) starts, and every running site applies
  // its new config (the same with a larger plan), as patronusd does on SIGHUP.
  void grow() {
    for (const auto& s : sites_) {
      if (s.external) continue;
      Node& n = *nodes_.at(s.name);
      if (!n.host) {
        start_site(s.name);
        continue;
      }
      auto applied = n.host->apply(config(s.name));
      ASSERT_TRUE(applied.is_ok()) << applied.status().to_string();
      for (const auto& e : applied.value().errors) ADD_FAILURE() << s.name << ": " << e;
    }
  }

  // The site's whole configuration, as a controller would send it.
  site::SiteConfig config(const std::string& name) {
    site::SiteConfig c;
    c.set_schema(site::kSiteConfigSchema);
    c.set_site(name);
    add_plugin(c, "probes", "probe", probe_yaml_);
    add_plugin(c, "scoring", "scoring", "");
    add_plugin(c, "emodel", "emodel", "");
    for (const auto& [lib, instance] : extra_scorers_)
      add_plugin(c, lib->info().name, instance, "");
    for (const auto& [lib, instance] : policies_) add_plugin(c, lib->info().name, instance, "");
    if (transport_) {
      add_plugin(c, transport_->info().name, "tunnel", "");
      for (const auto& inst : more_transports_) add_plugin(c, transport_->info().name, inst, "");
    }
    *c.mutable_runtime() = site::runtime_to_proto(runtime_settings(name));
    std::vector<steering::RemoteSite> remotes;
    for (const auto& other : sites_) {
      if (other.name != name && connected(name, other.name)) remotes.push_back(remote(other));
    }
    std::vector<steering::PathSpec> specs;
    for (std::size_t i = 0; i < paths_.size(); ++i) {
      const auto& p = paths_[i];
      if (p.a_site == name || p.b_site == name) specs.push_back(spec(i + 1, p.a_site == name));
    }
    *c.mutable_plan() = site::plan_to_proto(remotes, specs);
    for (auto& p : *c.mutable_plan()->mutable_paths()) {
      const auto& key = nodes_.at(p.remote_site())->keys.at(p.remote_endpoint()).public_key;
      p.set_remote_public_key(std::string(key.begin(), key.end()));
    }
    return c;
  }

  void start_site(const std::string& name) {
    Node& n = *nodes_.at(name);
    n.dataplane = std::make_unique<steering::RecordingDataplane>(n.env);
    const auto ext = external_dp_.find(name);
    steering::Dataplane& dp =
        ext != external_dp_.end() ? *ext->second : static_cast<steering::Dataplane&>(*n.dataplane);
    site::HostContext ctx;
    ctx.env = n.env;
    ctx.plugins = [this](const std::string& plugin) -> std::shared_ptr<const core::PluginLibrary> {
      const auto it = libs_.find(plugin);
      return it == libs_.end() ? nullptr : it->second;
    };
    ctx.keys = [&n](std::string_view, std::string_view ep) -> Result<mesh::KeyPair> {
      const auto it = n.keys.find(std::string(ep));
      if (it == n.keys.end()) return not_found("no key for " + std::string(ep));
      return it->second;
    };
    ctx.dataplane =
        [&dp](const site::DataplaneRequest&) -> Result<std::unique_ptr<steering::Dataplane>> {
      return std::unique_ptr<steering::Dataplane>(std::make_unique<steering::DataplaneRef>(dp));
    };
    ctx.observers = {&n.recorder};
    const steering::RuntimeConfig tuned = runtime_settings(name);
    ctx.tune = [tuned](steering::RuntimeConfig& rc) {
      rc.window = tuned.window;
      rc.max_paths = tuned.max_paths;
      rc.max_remote_sites = tuned.max_remote_sites;
      rc.decision_log = tuned.decision_log;
      rc.scorer_hold_ns = tuned.scorer_hold_ns;
    };
    auto host = site::SiteHost::create(std::move(ctx), config(name));
    ASSERT_TRUE(host.is_ok()) << host.status().to_string();
    n.host = std::move(host).value();
    auto st = n.host->start();
    ASSERT_TRUE(st.is_ok()) << st.status().to_string();
    n.router = &n.host->router();
    n.runtime = n.host->runtime();
  }

  static steering::RemoteSite remote(const HarnessSite& other) {
    steering::RemoteSite r;
    r.name = other.name;
    r.prefixes.push_back(model::IpPrefix::parse(other.subnet).value());
    r.subnets = r.prefixes;
    return r;
  }

  steering::PathSpec spec(std::size_t id, bool from_a) const {
    const auto& p = paths_.at(id - 1);
    const std::string ls = from_a ? p.a_site : p.b_site, le = from_a ? p.a_ep : p.b_ep;
    const std::string rs = from_a ? p.b_site : p.a_site, re = from_a ? p.b_ep : p.a_ep;
    steering::PathSpec sp;
    sp.id = model::PathId(id);
    sp.name = ls + ":" + le + "~" + rs + ":" + re;
    sp.remote_site = rs;
    sp.local_endpoint = le;
    sp.remote_endpoint = re;
    sp.local_underlay = model::SocketAddress(ip_of(ls, le), 51820);
    sp.remote_underlay = model::SocketAddress(ip_of(rs, re), 51820);
    const std::string canonical = mesh::canonical_path_name(ls, le, rs, re);
    sp.session_id = mesh::probe_session_id(canonical);
    auto key = mesh::derive_probe_key(nodes_.at(ls)->keys.at(le).private_key,
                                      nodes_.at(rs)->keys.at(re).public_key, canonical);
    EXPECT_TRUE(key.is_ok());
    std::copy(key.value().begin(), key.value().end(), sp.probe_key.begin());
    sp.has_key = true;
    const bool external = site_def(rs).external;
    sp.probed = !external;
    if (transport_) {
      steering::PathSpec::Tunnel t;
      if (!external) {
        sp.local_overlay = ip_of(ls, le);
        sp.remote_overlay = ip_of(rs, re);
        t.interface_addresses = {{*sp.local_overlay, 32}};
        t.allowed_prefixes = {model::IpPrefix(*sp.remote_overlay, 32)};
      } else {
        t.allowed_prefixes = {model::IpPrefix::parse(site_def(rs).subnet).value()};
      }
      t.interface_name = p.transport == "ipsec" ? "ipsec0" : "wg-" + le;
      t.transport = p.transport;
      t.local_public_key = nodes_.at(ls)->keys.at(le).public_key;
      t.remote_public_key = nodes_.at(rs)->keys.at(re).public_key;
      t.keepalive_s = 25;
      sp.tunnel = std::move(t);
    }
    return sp;
  }

  Node& node(const std::string& site) { return *nodes_.at(site); }
  steering::SiteRuntime& rt(const std::string& site) { return *nodes_.at(site)->runtime; }

  void stop() {
    for (auto& [name, n] : nodes_) {
      if (n->host) n->host->stop();
    }
  }

 private:
  model::IpAddress ip_of(const std::string& site, const std::string& ep) const {
    for (const auto& s : sites_) {
      if (s.name != site) continue;
      for (const auto& e : s.endpoints) {
        if (e.name == ep) return model::IpAddress::parse(e.ip).value();
      }
    }
    ADD_FAILURE() << "no endpoint " << site << "/" << ep;
    return {};
  }
  std::map<std::string, steering::Dataplane*> external_dp_;
  std::string probe_yaml_;
  std::function<void(steering::RuntimeConfig&)> tweak_;
  std::vector<std::pair<std::shared_ptr<const core::PluginLibrary>, std::string>> extra_scorers_;
  std::vector<std::pair<std::shared_ptr<const core::PluginLibrary>, std::string>> policies_;
  std::shared_ptr<const core::PluginLibrary> transport_;
  std::vector<std::string> more_transports_;  // further instances of transport_
  const HarnessSite& site_def(const std::string& name) const {
    for (const auto& s : sites_) {
      if (s.name == name) return s;
    }
    ADD_FAILURE() << "no site " << name;
    return sites_.front();
  }
  bool connected(const std::string& a, const std::string& b) const {
    for (const auto& p : paths_) {
      if ((p.a_site == a && p.b_site == b) || (p.a_site == b && p.b_site == a)) return true;
    }
    return false;
  }
  void add_plugin(site::SiteConfig& c, const std::string& plugin, const std::string& instance,
                  const std::string& yaml) {
    const auto& lib = libs_.at(plugin);
    std::string bytes;
    if (lib->schema()) {
      auto b = lib->schema()->text_to_bytes(yaml, instance);
      ASSERT_TRUE(b.is_ok()) << b.status().to_string();
      bytes = b.value();
    }
    auto* p = c.add_plugins();
    p->set_plugin(plugin);
    p->set_instance(instance);
    p->set_config(bytes);
  }
  // The defaults every site runs, with the test's tweak.
  steering::RuntimeConfig runtime_settings(const std::string& name) const {
    steering::RuntimeConfig rc;
    if (transport_) rc.transport = "tunnel";
    rc.site = name;
    rc.probe = "probe";
    rc.default_scorer = "scoring";
    rc.classes = steering::default_classes("emodel");
    if (tweak_) tweak_(rc);
    return rc;
  }

  env::VirtualWorld world_;
  core::PluginRegistry reg_;
  std::map<std::string, std::shared_ptr<const core::PluginLibrary>> libs_;
  std::vector<HarnessSite> sites_;
  std::vector<PathDef> paths_;
  std::map<std::string, std::unique_ptr<Node>> nodes_;
};

inline model::FlowKey flow(const std::string& src, const std::string& dst, std::uint16_t sport,
                           std::uint16_t dport, model::IpProtocol proto = model::IpProtocol::kUdp) {
  model::FlowKey k;
  k.src = model::IpAddress::parse(src).value();
  k.dst = model::IpAddress::parse(dst).value();
  k.src_port = sport;
  k.dst_port = dport;
  k.protocol = proto;
  return k;
}

constexpr std::int64_t kMs = 1'000'000;
constexpr std::int64_t kSec = 1'000'000'000;

}  // namespace patronus::test
