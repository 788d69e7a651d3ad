#include "site_app.hpp"

#include "patronus/util/backoff.hpp"

#include <algorithm>

#include "ns3/simulator.h"

namespace patronus::sim {

// ---- Ns3Dataplane ------------------------------------------------------------------------------

Status Ns3Dataplane::set_class_path(const std::string& site, const std::string& cls,
                                    model::PathId path) {
  class_paths_[{site, cls}] = path;
  return Status::ok();
}

Status Ns3Dataplane::set_flow_path(const model::FlowKey& flow, model::PathId path) {
  if (path.valid()) {
    flow_paths_[key_of(flow)] = path;
  } else {
    flow_paths_.erase(key_of(flow));
  }
  return Status::ok();
}

void Ns3Dataplane::add_route(const model::IpPrefix& prefix, const std::string& site) {
  routes_.emplace_back(prefix, site);
  std::stable_sort(routes_.begin(), routes_.end(), [](const auto& a, const auto& b) {
    return a.first.length() > b.first.length();
  });
}

Ns3Dataplane::Key Ns3Dataplane::key_of(const model::FlowKey& k) {
  return {k.src.bytes(), k.dst.bytes(), k.src_port, k.dst_port,
          static_cast<std::uint8_t>(k.protocol)};
}

const std::string* Ns3Dataplane::site_of(const model::IpAddress& dst) const {
  for (const auto& [prefix, site] : routes_) {
    if (prefix.contains(dst)) return &site;
  }
  return nullptr;
}

model::PathId Ns3Dataplane::lookup(const model::FlowKey& key, const std::string& cls) const {
  if (!flow_paths_.empty()) {
    if (auto it = flow_paths_.find(key_of(key)); it != flow_paths_.end()) return it->second;
  }
  const std::string* site = site_of(key.dst);
  if (site == nullptr) return {};
  auto it = class_paths_.find({*site, cls});
  return it == class_paths_.end() ? model::PathId{} : it->second;
}

// ---- the tunnel header -------------------------------------------------------------------------

namespace {

constexpr std::uint32_t kMagic = 0x5054554e;  // "PTUN"
constexpr std::size_t kHeader = 40;
constexpr std::uint8_t kTtl = 4;

struct Tunnelled {
  std::uint8_t ttl = kTtl, dscp = 0, protocol = 17;
  std::uint32_t flow = 0;
  std::uint64_t seq = 0;
  std::int64_t sent_ns = 0;
  std::uint32_t src = 0, dst = 0;
  std::uint16_t sport = 0, dport = 0;
};

template <typename T>
void put(std::uint8_t* p, T v) {
  for (std::size_t i = 0; i < sizeof(T); ++i) {
    p[i] = static_cast<std::uint8_t>(static_cast<std::uint64_t>(v) >> (8 * (sizeof(T) - 1 - i)));
  }
}

template <typename T>
T get(const std::uint8_t* p) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < sizeof(T); ++i) v = v << 8 | p[i];
  return static_cast<T>(v);
}

std::vector<std::uint8_t> encode(const Tunnelled& t, std::size_t size) {
  std::vector<std::uint8_t> b(std::max(size, kHeader), 0);
  put<std::uint32_t>(&b[0], kMagic);
  b[4] = t.ttl;
  b[5] = t.dscp;
  b[6] = t.protocol;
  put<std::uint32_t>(&b[8], t.flow);
  put<std::uint64_t>(&b[12], t.seq);
  put<std::uint64_t>(&b[20], static_cast<std::uint64_t>(t.sent_ns));
  put<std::uint32_t>(&b[28], t.src);
  put<std::uint32_t>(&b[32], t.dst);
  put<std::uint16_t>(&b[36], t.sport);
  put<std::uint16_t>(&b[38], t.dport);
  return b;
}

bool decode(const std::uint8_t* p, std::size_t n, Tunnelled* t) {
  if (n < kHeader || get<std::uint32_t>(p) != kMagic) return false;
  t->ttl = p[4];
  t->dscp = p[5];
  t->protocol = p[6];
  t->flow = get<std::uint32_t>(p + 8);
  t->seq = get<std::uint64_t>(p + 12);
  t->sent_ns = static_cast<std::int64_t>(get<std::uint64_t>(p + 20));
  t->src = get<std::uint32_t>(p + 28);
  t->dst = get<std::uint32_t>(p + 32);
  t->sport = get<std::uint16_t>(p + 36);
  t->dport = get<std::uint16_t>(p + 38);
  return true;
}

model::FlowKey key_of(const Tunnelled& t) {
  model::FlowKey k;
  k.src = model::IpAddress::v4(t.src);
  k.dst = model::IpAddress::v4(t.dst);
  k.src_port = t.sport;
  k.dst_port = t.dport;
  k.protocol = static_cast<model::IpProtocol>(t.protocol);
  return k;
}

}  // namespace

// ---- SiteApp -----------------------------------------------------------------------------------

ns3::TypeId SiteApp::GetTypeId() {
  static ns3::TypeId tid = ns3::TypeId("patronus::sim::SiteApp")
                               .SetParent<ns3::Application>()
                               .SetGroupName("Patronus")
                               .AddConstructor<SiteApp>();
  return tid;
}

SiteApp::~SiteApp() {
  shut_down();
}

void SiteApp::Setup(SiteSetup setup) {
  setup_ = std::move(setup);
  flow_state_.assign(setup_.flows.size(), {});
}

void SiteApp::StartApplication() {
  env::EnvLimits limits;
  limits.max_endpoints = 64;
  env_ = std::make_unique<Ns3Env>(GetNode(), setup_.seed, setup_.site, limits, setup_.net);
  for (const auto& [prefix, site] : setup_.routes) dataplane_.add_route(prefix, site);
  site::HostContext ctx;
  ctx.env = env_.get();
  ctx.plugins = setup_.plugins;
  ctx.keys = setup_.keys;
  ctx.dataplane =
      [this](const site::DataplaneRequest&) -> Result<std::unique_ptr<steering::Dataplane>> {
    return std::unique_ptr<steering::Dataplane>(
        std::make_unique<steering::DataplaneRef>(dataplane_));
  };
  ctx.observers = {this};
  ctx.observers.insert(ctx.observers.end(), setup_.observers.begin(), setup_.observers.end());
  ctx.tune = setup_.tune;
  auto host = site::SiteHost::create(std::move(ctx), setup_.config);
  if (!host.is_ok()) {
    error_ = setup_.site + ": " + host.status().message();
    return;
  }
  host_ = std::move(host).value();
  for (const auto& ip : setup_.endpoint_ips) {
    env::EndpointId id = 0;
    auto s = env_->open_udp(
        model::SocketAddress(ip, kTunnelPort),
        [this](const model::SocketAddress& from, const std::uint8_t* d, std::size_t n) {
          on_tunnel(from, d, n);
        },
        &id, nullptr);
    if (!s.is_ok()) {
      error_ = setup_.site + ": " + s.message();
      return;
    }
    tunnel_sockets_[ip] = id;
  }
  if (auto s = host_->start(); !s.is_ok()) {
    error_ = setup_.site + ": " + s.status().message();
    return;
  }
  runtime_ = host_->runtime();
  learn_paths();
  if (setup_.controller) {
    // The site's identity key and its reconnect jitter come from its Env (seeded per site).
    for (std::size_t i = 0; i < identity_.size(); i += 8) {
      const std::uint64_t v = env_->random_u64();
      for (std::size_t b = 0; b < 8; ++b)
        identity_[i + b] = static_cast<std::uint8_t>(v >> (8 * b));
    }
    setup_.controller->add_site(setup_.fleet_site, [this](Result<std::string> token) {
      if (!token.is_ok()) {
        error_ = setup_.site + ": sites add: " + token.status().message();
        return;
      }
      token_ = std::move(token).value();
      link_open();
    });
  }
  for (std::size_t i = 0; i < setup_.flows.size(); ++i) {
    const auto* f = setup_.flows[i].spec;
    const std::int64_t now = ns3::Simulator::Now().GetNanoSeconds();
    flow_state_[i].next =
        ns3::Simulator::Schedule(ns3::NanoSeconds(std::max<std::int64_t>(0, f->start_ns - now)),
                                 &SiteApp::start_flow, this, i);
  }
}

void SiteApp::learn_paths() {
  path_ends_.clear();
  for (const auto& v : runtime_->paths()) {
    const auto* p = runtime_->spec(v.id);
    path_ends_[v.id.value()] = {p->local_underlay.ip(), p->remote_underlay.ip()};
  }
}

// ---- the controller link ------------------------------------------------------------------------

namespace ctl = controller::v1;

void SiteApp::link_open() {
  session_ = setup_.controller->open(this);
  if (!session_) return link_retry();
  ctl::FromSite m;
  if (!enrolled_) {
    m.mutable_enrol()->set_token(token_);
    m.mutable_enrol()->set_site(setup_.site);
  } else {
    m.mutable_hello()->set_site(setup_.site);
    m.mutable_hello()->set_have_version(applied_version_);
    m.mutable_hello()->set_have_hash(applied_hash_);
  }
  link_send(m);
}

// The daemon's channel's backoff (patronus/util/backoff.hpp), jittered from the site's Env.
void SiteApp::link_retry() {
  const std::int64_t ms =
      backoff_ms(failures_++, kReconnectMinMs, kReconnectMaxMs, env_->random_u64());
  retry_ = ns3::Simulator::Schedule(ns3::MilliSeconds(ms), &SiteApp::link_open, this);
}

void SiteApp::link_send(const ctl::FromSite& m) {
  if (session_) setup_.controller->send(*session_, identity_, m);
}

void SiteApp::closed() {
  if (!session_) return;
  session_.reset();
  setup_.listener->controller_link(setup_.site, ns3::Simulator::Now().GetNanoSeconds(), false);
  if (host_ && host_->running()) link_retry();
}

void SiteApp::deliver(const ctl::ToSite& m) {
  if (!host_ || !host_->running()) return;
  switch (m.what_case()) {
    case ctl::ToSite::kWelcome: {
      enrolled_ = true;
      failures_ = 0;
      setup_.listener->controller_link(setup_.site, ns3::Simulator::Now().GetNanoSeconds(), true);
      ctl::FromSite k;
      for (std::size_t e = 0; e < setup_.fleet_site.endpoints.size(); ++e) {
        auto* key = k.mutable_keys()->add_keys();
        key->set_endpoint(setup_.fleet_site.endpoints[e].name);
        key->set_public_key(setup_.public_keys.at(e));
      }
      link_send(k);
      break;
    }
    case ctl::ToSite::kConfig:
      on_push(m.config());
      break;
    case ctl::ToSite::kRefused:
      // The simulated sites speak the protocol correctly: a refusal is the run's error.
      if (m.refused().permanent() && error_.empty()) {
        error_ = setup_.site + ": the controller refused the site: " + m.refused().reason();
      }
      break;
    default:
      break;  // key rotation is not simulated
  }
}

void SiteApp::on_push(const ctl::ConfigPush& push) {
  ctl::FromSite ack;
  ack.mutable_ack()->set_version(push.version());
  Status st = controller::check_push(push, setup_.site);
  if (st.is_ok() && push.hash() != applied_hash_) {
    auto merged = site::with_pushed(setup_.config, push.config(), push.version());
    auto r =
        merged.is_ok() ? host_->apply(merged.value()) : Result<site::ApplyReport>(merged.status());
    st = r.is_ok() ? Status::ok() : r.status();
    if (r.is_ok()) {
      runtime_ = host_->runtime();
      learn_paths();
    }
  }
  std::vector<std::string> remote;
  if (st.is_ok()) {
    applied_version_ = push.version();
    applied_hash_ = push.hash();
    ack.mutable_ack()->set_hash(push.hash());
    for (const auto& p : push.config().plan().paths()) {
      if (std::find(remote.begin(), remote.end(), p.remote_site()) == remote.end()) {
        remote.push_back(p.remote_site());
      }
    }
  } else {
    ack.mutable_ack()->set_hash(applied_hash_);
    ack.mutable_ack()->set_error(st.message());
  }
  setup_.listener->config_applied(setup_.site, ns3::Simulator::Now().GetNanoSeconds(),
                                  push.version(), remote, st.message());
  link_send(ack);
}

void SiteApp::start_flow(std::size_t i) {
  FlowState& st = flow_state_[i];
  st.active = true;
  const LocalFlow& f = setup_.flows[i];
  st.path = dataplane_.lookup(f.key, f.cls);
  setup_.listener->flow_path(f.index, ns3::Simulator::Now().GetNanoSeconds(), {}, st.path,
                             std::nullopt);
  send(i);
}

void SiteApp::send(std::size_t i) {
  FlowState& st = flow_state_[i];
  const LocalFlow& f = setup_.flows[i];
  const std::int64_t now = ns3::Simulator::Now().GetNanoSeconds();
  if (now >= f.spec->stop_ns) {
    st.active = false;
    return;
  }
  Tunnelled t;
  t.dscp = f.spec->dscp;
  t.protocol = f.spec->protocol;
  t.flow = static_cast<std::uint32_t>(f.index);
  t.seq = st.seq++;
  t.sent_ns = now;
  t.src = f.key.src.v4_host_order();
  t.dst = f.key.dst.v4_host_order();
  t.sport = f.key.src_port;
  t.dport = f.key.dst_port;
  const model::PathId path = forward(f.key, f.spec->dscp, f.spec->size_bytes, f.cls, f.index);
  if (!(path == st.path)) {  // changed outside a decision (a balanced flow's first pin)
    setup_.listener->flow_path(f.index, now, st.path, path, steering::Reason::kRebalance);
    st.path = path;
  }
  const bool ok = path.valid() && tunnel(path, encode(t, f.spec->size_bytes));
  setup_.listener->packet_sent(f.index, ok);
  const auto gap = static_cast<std::int64_t>(1e9 / f.spec->rate_pps);
  st.next = ns3::Simulator::Schedule(ns3::NanoSeconds(std::max<std::int64_t>(1, gap)),
                                     &SiteApp::send, this, i);
}

model::PathId SiteApp::forward(const model::FlowKey& key, std::uint8_t dscp, std::uint32_t bytes,
                               const std::string& cls, std::size_t flow) {
  const model::PathId steered = runtime_->on_packet(key, dscp, bytes);
  const model::PathId path = dataplane_.lookup(key, cls);
  if (!(steered == path)) setup_.listener->steering_mismatch(flow);
  return path;
}

bool SiteApp::tunnel(model::PathId path, const std::vector<std::uint8_t>& bytes) {
  auto it = path_ends_.find(path.value());
  if (it == path_ends_.end()) return false;
  auto sock = tunnel_sockets_.find(it->second.first);
  if (sock == tunnel_sockets_.end()) return false;
  return env_
      ->send_udp(sock->second, model::SocketAddress(it->second.second, kTunnelPort), bytes.data(),
                 bytes.size())
      .is_ok();
}

void SiteApp::on_tunnel(const model::SocketAddress&, const std::uint8_t* data, std::size_t size) {
  Tunnelled t;
  if (!decode(data, size, &t)) return;
  const std::int64_t now = ns3::Simulator::Now().GetNanoSeconds();
  const model::FlowKey key = key_of(t);
  if (setup_.lan.contains(key.dst)) {
    setup_.listener->packet_delivered(t.flow, t.sent_ns, now);
    return;
  }
  // Transit (this site relays for others): steer it on like local traffic.
  if (t.ttl <= 1 || runtime_ == nullptr) {
    setup_.listener->packet_dropped_at_relay(t.flow);
    return;
  }
  --t.ttl;
  const std::string& cls = runtime_->classify(key, t.dscp);
  const model::PathId path = forward(key, t.dscp, static_cast<std::uint32_t>(size), cls, t.flow);
  if (!path.valid() || !tunnel(path, encode(t, size))) {
    setup_.listener->packet_dropped_at_relay(t.flow);
  }
}

void SiteApp::on_decision(const std::string&, const steering::Decision& d) {
  refresh_flows(d.reason);
}

void SiteApp::refresh_flows(steering::Reason reason) {
  const std::int64_t now = ns3::Simulator::Now().GetNanoSeconds();
  for (std::size_t i = 0; i < setup_.flows.size(); ++i) {
    FlowState& st = flow_state_[i];
    if (!st.active) continue;
    const LocalFlow& f = setup_.flows[i];
    const model::PathId p = dataplane_.lookup(f.key, f.cls);
    if (p == st.path) continue;
    setup_.listener->flow_path(f.index, now, st.path, p, reason);
    st.path = p;
  }
}

void SiteApp::StopApplication() {
  shut_down();
}

void SiteApp::shut_down() {
  ns3::Simulator::Cancel(retry_);
  session_.reset();
  for (auto& st : flow_state_) {
    ns3::Simulator::Cancel(st.next);
    st.active = false;
  }
  runtime_ = nullptr;
  host_.reset();  // stops the runtime, then the plugins, in that order
  env_.reset();
}

void SiteApp::DoDispose() {
  shut_down();
  ns3::Application::DoDispose();
}

}  // namespace patronus::sim
