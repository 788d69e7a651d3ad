#include "patronus/site/site_config.hpp"

#include <yaml-cpp/yaml.h>

#include <set>

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <sodium.h>

#include <algorithm>
#include <set>

#include "patronus/mesh/keys.hpp"
#include "patronus/model/types.hpp"

namespace patronus::site {

namespace pb = v1;

namespace {

v1::Priority priority_to_proto(model::Priority p) {
  return static_cast<v1::Priority>(static_cast<int>(p));
}

std::string where(const std::string& path, std::size_t i) {
  return path + "[" + std::to_string(i) + "]";
}

Result<std::vector<model::IpPrefix>> prefixes(
    const google::protobuf::RepeatedPtrField<std::string>& in, const std::string& path) {
  std::vector<model::IpPrefix> out;
  for (int i = 0; i < in.size(); ++i) {
    auto p = model::IpPrefix::parse(in[i]);
    if (!p.is_ok()) {
      return invalid_argument(where(path, static_cast<std::size_t>(i)) + ": " +
                              p.status().message());
    }
    out.push_back(p.value());
  }
  return out;
}

void add_prefixes(const std::vector<model::IpPrefix>& in,
                  google::protobuf::RepeatedPtrField<std::string>* out) {
  for (const auto& p : in) *out->Add() = p.to_string();
}

Result<mesh::Key> key_field(const std::string& bytes, const std::string& path) {
  mesh::Key k{};
  if (bytes.size() != k.size()) {
    return invalid_argument(path + ": expected 32 bytes, got " + std::to_string(bytes.size()));
  }
  std::copy(bytes.begin(), bytes.end(), k.begin());
  return k;
}

std::string key_bytes(const mesh::Key& k) {
  return std::string(k.begin(), k.end());
}

// "address/length" with host bits (an interface's own address).
Result<std::pair<model::IpAddress, int>> interface_address(const std::string& text,
                                                           const std::string& path) {
  const auto slash = text.find('/');
  auto a = model::IpAddress::parse(text.substr(0, slash));
  if (slash == std::string::npos || !a.is_ok()) {
    return invalid_argument(path + ": '" + text + "' is not address/length");
  }
  auto p = model::IpPrefix::parse(text, true);
  if (!p.is_ok()) return invalid_argument(path + ": " + p.status().message());
  return std::make_pair(a.value(), p.value().length());
}

}  // namespace

v1::ClassSet classes_to_proto(const steering::ClassSet& set) {
  v1::ClassSet out;
  for (const auto& c : set.classes) {
    auto* t = out.add_classes();
    t->set_name(c.name);
    t->set_priority(priority_to_proto(c.priority));
    t->set_scorer(c.scorer);
    t->set_min_score(c.min_score);
    if (c.max_loss_pct) t->set_max_loss_pct(*c.max_loss_pct);
    if (c.max_latency_ms) t->set_max_latency_ms(*c.max_latency_ms);
    if (c.max_jitter_ms) t->set_max_jitter_ms(*c.max_jitter_ms);
    t->set_hysteresis(c.hysteresis);
    t->set_hold_down_ms(c.hold_down_ns / 1000000);
    t->set_balance(c.balance);
    t->set_balance_margin(c.balance_margin);
  }
  for (const auto& r : set.rules) {
    auto* o = out.add_rules();
    o->set_class_name(r.class_name);
    if (r.protocol) o->set_protocol(*r.protocol);
    if (r.dst_ports) {
      o->mutable_dst_ports()->set_first(r.dst_ports->first);
      o->mutable_dst_ports()->set_last(r.dst_ports->last);
    }
    if (r.src_ports) {
      o->mutable_src_ports()->set_first(r.src_ports->first);
      o->mutable_src_ports()->set_last(r.src_ports->last);
    }
    if (r.dscp) o->set_dscp(*r.dscp);
    add_prefixes(r.dst_prefixes, o->mutable_dst_prefixes());
    add_prefixes(r.src_prefixes, o->mutable_src_prefixes());
  }
  out.set_default_class(set.default_class);
  return out;
}

Result<steering::ClassSet> classes_from_proto(const v1::ClassSet& in) {
  steering::ClassSet set;
  for (int i = 0; i < in.classes_size(); ++i) {
    const auto& t = in.classes(i);
    steering::ClassSpec c;
    c.name = t.name();
    const int prio = static_cast<int>(t.priority());
    if (prio < 0 || prio > static_cast<int>(model::Priority::kBestEffort)) {
      return invalid_argument(where("classes", static_cast<std::size_t>(i)) +
                              ".priority: unknown value " + std::to_string(prio));
    }
    c.priority = static_cast<model::Priority>(prio);
    c.scorer = t.scorer();
    c.min_score = t.min_score();
    if (t.has_max_loss_pct()) c.max_loss_pct = t.max_loss_pct();
    if (t.has_max_latency_ms()) c.max_latency_ms = t.max_latency_ms();
    if (t.has_max_jitter_ms()) c.max_jitter_ms = t.max_jitter_ms();
    c.hysteresis = t.hysteresis();
    if (t.hold_down_ms() < 0 || t.hold_down_ms() > 86400000) {
      return invalid_argument(where("classes", static_cast<std::size_t>(i)) +
                              ".hold_down_ms: expected 0 to 86400000");
    }
    c.hold_down_ns = t.hold_down_ms() * 1000000;
    c.balance = t.balance();
    c.balance_margin = t.balance_margin();
    set.classes.push_back(std::move(c));
  }
  for (int i = 0; i < in.rules_size(); ++i) {
    const auto& o = in.rules(i);
    const std::string path = where("rules", static_cast<std::size_t>(i));
    steering::ClassRule r;
    r.class_name = o.class_name();
    if (o.has_protocol()) {
      if (o.protocol() > 255) return invalid_argument(path + ".protocol: expected 0 to 255");
      r.protocol = static_cast<std::uint8_t>(o.protocol());
    }
    auto ports = [&](const pb::PortRange& p, const char* name,
                     std::optional<steering::PortRange>& out) -> Status {
      if (p.first() > 65535 || p.last() > 65535 || p.first() > p.last()) {
        return invalid_argument(path + "." + name + ": expected first <= last <= 65535");
      }
      out = steering::PortRange{static_cast<std::uint16_t>(p.first()),
                                static_cast<std::uint16_t>(p.last())};
      return Status::ok();
    };
    if (o.has_dst_ports()) {
      if (auto s = ports(o.dst_ports(), "dst_ports", r.dst_ports); !s.is_ok()) return s;
    }
    if (o.has_src_ports()) {
      if (auto s = ports(o.src_ports(), "src_ports", r.src_ports); !s.is_ok()) return s;
    }
    if (o.has_dscp()) {
      if (o.dscp() > 63) return invalid_argument(path + ".dscp: expected 0 to 63");
      r.dscp = static_cast<std::uint8_t>(o.dscp());
    }
    auto dst = prefixes(o.dst_prefixes(), path + ".dst_prefixes");
    if (!dst.is_ok()) return dst.status();
    r.dst_prefixes = std::move(dst).value();
    auto src = prefixes(o.src_prefixes(), path + ".src_prefixes");
    if (!src.is_ok()) return src.status();
    r.src_prefixes = std::move(src).value();
    set.rules.push_back(std::move(r));
  }
  set.default_class = in.default_class();
  if (auto s = steering::validate(set); !s.is_ok()) return s;
  return set;
}

Result<steering::RuntimeConfig> runtime_config(const SiteConfig& config) {
  const auto& r = config.runtime();
  steering::RuntimeConfig rc;
  rc.site = config.site();
  rc.probe = r.probe();
  rc.liveness.assign(r.liveness().begin(), r.liveness().end());
  rc.default_scorer = r.scorer();
  auto classes = classes_from_proto(r.classes());
  if (!classes.is_ok()) return invalid_argument("runtime." + classes.status().message());
  rc.classes = std::move(classes).value();
  rc.tick_ns = r.tick_ms() * 1000000;
  rc.idle_after_ns = r.idle_after_ms() * 1000000;
  rc.flow_idle_ns = r.flow_idle_ms() * 1000000;
  rc.metrics_interval_ns = r.metrics_interval_ms() * 1000000;
  rc.max_flows = r.max_flows();
  rc.transport = r.transport();
  rc.transports.insert(r.transports().begin(), r.transports().end());
  return rc;
}

v1::Runtime runtime_to_proto(const steering::RuntimeConfig& c) {
  v1::Runtime r;
  r.set_probe(c.probe);
  for (const auto& l : c.liveness) r.add_liveness(l);
  r.set_scorer(c.default_scorer);
  *r.mutable_classes() = classes_to_proto(c.classes);
  r.set_transport(c.transport);
  r.mutable_transports()->insert(c.transports.begin(), c.transports.end());
  r.set_table_base(20000);
  r.set_tick_ms(c.tick_ns / 1000000);
  r.set_idle_after_ms(c.idle_after_ns / 1000000);
  r.set_flow_idle_ms(c.flow_idle_ns / 1000000);
  r.set_metrics_interval_ms(c.metrics_interval_ns / 1000000);
  r.set_max_flows(c.max_flows);
  return r;
}

v1::Plan plan_to_proto(const std::vector<steering::RemoteSite>& remote_sites,
                       const std::vector<steering::PathSpec>& paths) {
  v1::Plan out;
  for (const auto& in : remote_sites) {
    auto* r = out.add_remote_sites();
    r->set_name(in.name);
    add_prefixes(in.prefixes, r->mutable_prefixes());
    for (const auto& v : in.via) *r->add_via() = v;
    add_prefixes(in.subnets, r->mutable_subnets());
  }
  for (const auto& in : paths) {
    auto* p = out.add_paths();
    p->set_id(in.id.value());
    p->set_name(in.name);
    p->set_remote_site(in.remote_site);
    p->set_local_endpoint(in.local_endpoint);
    p->set_remote_endpoint(in.remote_endpoint);
    p->set_local_underlay(in.local_underlay.to_string());
    p->set_remote_underlay(in.remote_underlay.to_string());
    if (in.local_overlay) p->set_local_overlay(in.local_overlay->to_string());
    if (in.remote_overlay) p->set_remote_overlay(in.remote_overlay->to_string());
    p->set_session_id(in.session_id);
    p->set_probed(in.probed);
    if (in.bandwidth_mbps) p->set_bandwidth_mbps(*in.bandwidth_mbps);
    p->set_cost_per_gb(in.cost_per_gb);
    if (!in.tunnel) continue;
    const auto& t = *in.tunnel;
    auto* o = p->mutable_tunnel();
    o->set_interface_name(t.interface_name);
    for (const auto& [addr, len] : t.interface_addresses) {
      *o->add_interface_addresses() = addr.to_string() + "/" + std::to_string(len);
    }
    add_prefixes(t.allowed_prefixes, o->mutable_allowed_prefixes());
    p->set_local_public_key(key_bytes(t.local_public_key));
    p->set_remote_public_key(key_bytes(t.remote_public_key));
    if (t.remote_next_public_key) {
      p->set_remote_next_public_key(key_bytes(*t.remote_next_public_key));
    }
    o->set_keepalive_s(t.keepalive_s);
    o->set_transport(t.transport);
    o->set_params_json(t.params_json);
  }
  return out;
}

Result<v1::Plan> plan_for_site(const mesh::MeshGraph& g, const mesh::TunnelPlan& plan,
                               const std::vector<model::PathId>& ids, const std::string& site) {
  const int sv = g.find_site(site);
  if (sv < 0) return invalid_argument("site '" + site + "' is not in the sites file");
  if (ids.size() != g.num_paths()) {
    return invalid_argument("site plan: " + std::to_string(ids.size()) + " path ids for " +
                            std::to_string(g.num_paths()) + " paths");
  }
  auto overlay_of = [&](std::size_t s, std::size_t e) -> const mesh::OverlayAddress* {
    const auto it = plan.overlay.find(g.site(s).site.name + "/" + g.site(s).site.endpoints[e].name);
    return it == plan.overlay.end() ? nullptr : &it->second;
  };
  auto add_overlay_prefixes = [&](std::size_t s, pb::RemoteSite* r) {
    for (std::size_t e = 0; e < g.site(s).site.endpoints.size(); ++e) {
      if (const auto* o = overlay_of(s, e)) {
        *r->add_prefixes() = model::IpPrefix(o->ipv4, 32).to_string();
        if (o->ipv6) *r->add_prefixes() = model::IpPrefix(*o->ipv6, 128).to_string();
      }
    }
  };
  v1::Plan out;
  std::set<std::uint32_t> remote_known;
  // What each peer of this site's interfaces carries, computed once an interface.
  std::map<const mesh::InterfacePlan*, std::vector<std::vector<model::IpPrefix>>> carried;
  for (const auto& iface : plan.sites[static_cast<std::size_t>(sv)]) {
    carried[&iface] = mesh::peer_allowed_prefixes(g, plan, iface);
  }
  for (std::uint32_t id = 0; id < g.num_paths(); ++id) {
    const auto& pe = g.path(id);
    const std::uint32_t a = pe.src_site, b = g.path_dst(id);
    if (a != static_cast<std::uint32_t>(sv) && b != static_cast<std::uint32_t>(sv)) continue;
    const bool local_is_a = a == static_cast<std::uint32_t>(sv);
    const std::uint32_t rs = local_is_a ? b : a;
    const std::size_t le = local_is_a ? pe.src_endpoint : pe.dst_endpoint;
    const std::size_t re = local_is_a ? pe.dst_endpoint : pe.src_endpoint;
    const auto& lsite = g.site(sv);
    const auto& rsite = g.site(rs);
    const auto& lep = lsite.site.endpoints[le];
    const auto& rep = rsite.site.endpoints[re];
    pb::Path* p = out.add_paths();
    p->set_id(ids[id].value());
    p->set_name(site + ":" + lep.name + "~" + rsite.site.name + ":" + rep.name);
    p->set_remote_site(rsite.site.name);
    p->set_local_endpoint(lep.name);
    p->set_remote_endpoint(rep.name);
    p->set_local_underlay(lep.address.to_string());
    p->set_remote_underlay(rep.address.to_string());
    if (const auto* o = overlay_of(sv, le)) p->set_local_overlay(o->ipv4.to_string());
    if (const auto* o = overlay_of(rs, re)) p->set_remote_overlay(o->ipv4.to_string());
    p->set_session_id(mesh::probe_session_id(
        mesh::canonical_path_name(site, lep.name, rsite.site.name, rep.name)));
    // A peer that is not ours has no key and runs no probes: its tunnel (its LAN behind it) is all.
    p->set_probed(!rsite.external);
    std::optional<mesh::Key> remote_pub;
    if (!rsite.external) {
      if (rsite.public_keys[re].empty()) {
        return failed_precondition("no public key for " + rsite.site.name + "/" + rep.name +
                                   " (give public_key in the sites file, or plan with its keys)");
      }
      auto rp = mesh::key_from_base64(rsite.public_keys[re],
                                      rsite.site.name + "/" + rep.name + " public key");
      if (!rp.is_ok()) return rp.status();
      remote_pub = rp.value();
    }
    if (remote_pub) p->set_remote_public_key(key_bytes(*remote_pub));
    if (re < rsite.next_public_keys.size() && !rsite.next_public_keys[re].empty()) {
      auto next = mesh::key_from_base64(rsite.next_public_keys[re],
                                        rsite.site.name + "/" + rep.name + " next public key");
      if (!next.is_ok()) return next.status();
      p->set_remote_next_public_key(key_bytes(next.value()));
    }
    if (!lsite.public_keys[le].empty()) {
      auto lk = mesh::key_from_base64(lsite.public_keys[le], site + "/" + lep.name + " public key");
      if (!lk.is_ok()) return lk.status();
      p->set_local_public_key(key_bytes(lk.value()));
    }
    if (lep.bandwidth_mbps && rep.bandwidth_mbps) {
      p->set_bandwidth_mbps(std::min(*lep.bandwidth_mbps, *rep.bandwidth_mbps));
    }
    p->set_cost_per_gb(std::max(lep.cost_per_gb, rep.cost_per_gb));
    // The tunnel: the local endpoint's interface and this path's peer on it.
    for (const auto& iface : plan.sites[sv]) {
      if (iface.endpoint != le) continue;
      const auto peer = std::find(iface.peers.begin(), iface.peers.end(), id);
      if (peer == iface.peers.end()) break;
      pb::Tunnel* t = p->mutable_tunnel();
      t->set_interface_name(iface.name);
      *t->add_interface_addresses() =
          iface.address.ipv4.to_string() + "/" + std::to_string(g.overlay().ipv4.length());
      if (iface.address.ipv6 && g.overlay().ipv6) {
        *t->add_interface_addresses() =
            iface.address.ipv6->to_string() + "/" + std::to_string(g.overlay().ipv6->length());
      }
      add_prefixes(carried.at(&iface)[static_cast<std::size_t>(peer - iface.peers.begin())],
                   t->mutable_allowed_prefixes());
      // The two ends keep alive one second apart. With equal intervals, two ends whose first
      // handshake initiations crossed (each consumes the other's, so neither accepts the response
      // to its own) retry in lock-step forever: the keepalive fires exactly one interval after
      // each initiation, always before wireguard-go's jittered retransmission (the lab's a-b
      // tunnel once never came up this way, each end counting 13 initiations received and no
      // response).
      const std::uint32_t keepalive = g.overlay().persistent_keepalive;
      t->set_keepalive_s(keepalive == 0 ? 0 : keepalive + (local_is_a ? 0 : 1));
      t->set_transport(model::to_string(iface.transport));
      t->set_params_json(mesh::transport_params_json(g, sv, le, rs, re));
      break;
    }
    if (remote_known.insert(rs).second) {
      pb::RemoteSite* r = out.add_remote_sites();
      r->set_name(rsite.site.name);
      add_prefixes(rsite.subnets, r->mutable_prefixes());
      add_prefixes(rsite.subnets, r->mutable_subnets());
      add_overlay_prefixes(rs, r);
    }
  }
  if (out.paths().empty()) {
    return failed_precondition("site '" + site + "' has no paths in this topology");
  }
  // Sites without a direct path (spokes seen from a spoke, far sites of a partial mesh) are
  // reached through the neighbours that have paths to both (one relay, as mesh::RelayRoutes).
  // In a full mesh every other site is a peer: nothing to relay, no neighbour sets to build.
  bool all_known = true;
  for (std::uint32_t other = 0; other < g.num_sites() && all_known; ++other) {
    all_known = other == static_cast<std::uint32_t>(sv) || remote_known.count(other) != 0 ||
                g.site(other).external;
  }
  if (all_known) return out;
  std::vector<std::set<std::uint32_t>> neighbours(g.num_sites());
  for (std::uint32_t id = 0; id < g.num_paths(); ++id) {
    // A peer that is not ours relays nothing and is reached by no relay: its traffic selectors
    // name only the sites that connect to it.
    if (g.site(g.path_src(id)).external || g.site(g.path_dst(id)).external) continue;
    neighbours[g.path_src(id)].insert(g.path_dst(id));
    neighbours[g.path_dst(id)].insert(g.path_src(id));
  }
  const auto self = static_cast<std::uint32_t>(sv);
  if (!g.spoke_summary().empty() && !g.is_hub(self)) {
    // A spoke with a summary: the other spokes are one entry, relayed by its hubs (its plan does
    // not change when a spoke joins or leaves).
    pb::RemoteSite* r = out.add_remote_sites();
    r->set_name(mesh::kSummarySite);
    add_prefixes(g.spoke_summary(), r->mutable_prefixes());
    add_prefixes(g.spoke_summary(), r->mutable_subnets());
    for (const std::uint32_t relay : neighbours[self]) {
      if (g.is_hub(relay)) *r->add_via() = g.site(relay).site.name;
    }
    return out;
  }
  for (std::uint32_t other = 0; other < g.num_sites(); ++other) {
    if (other == self || remote_known.count(other) || g.site(other).external) continue;
    std::vector<std::string> via;
    for (const std::uint32_t relay : neighbours[self]) {
      if (neighbours[other].count(relay)) via.push_back(g.site(relay).site.name);
    }
    pb::RemoteSite* r = out.add_remote_sites();
    r->set_name(g.site(other).site.name);
    add_prefixes(g.site(other).subnets, r->mutable_subnets());
    if (via.empty()) continue;  // more than one relay away: unreachable (its subnets are known)
    for (auto& v : via) *r->add_via() = std::move(v);
    add_prefixes(g.site(other).subnets, r->mutable_prefixes());
    add_overlay_prefixes(other, r);
  }
  return out;
}

Result<SitePlan> realise_plan(const v1::Plan& plan, const std::string& site,
                              const PrivateKeys& keys) {
  SitePlan out;
  std::set<std::string> remote_names;
  for (int i = 0; i < plan.remote_sites_size(); ++i) {
    const auto& in = plan.remote_sites(i);
    const std::string path = where("plan.remote_sites", static_cast<std::size_t>(i));
    if (in.name().empty() || in.name() == site || !remote_names.insert(in.name()).second) {
      return invalid_argument(path + ".name: '" + in.name() +
                              "' is empty, this site or named twice");
    }
    auto subnets = prefixes(in.subnets(), path + ".subnets");
    if (!subnets.is_ok()) return subnets.status();
    out.subnets[in.name()] = subnets.value();
    // A site more than one relay away has no prefixes and no relay: known, not reachable.
    if (in.prefixes().empty() && in.via().empty()) continue;
    steering::RemoteSite r;
    r.name = in.name();
    auto matched = prefixes(in.prefixes(), path + ".prefixes");
    if (!matched.is_ok()) return matched.status();
    r.prefixes = std::move(matched).value();
    r.via.assign(in.via().begin(), in.via().end());
    r.subnets = std::move(subnets).value();
    out.remote_sites.push_back(std::move(r));
  }
  for (int i = 0; i < plan.paths_size(); ++i) {
    const auto& in = plan.paths(i);
    const std::string path = where("plan.paths", static_cast<std::size_t>(i));
    if (in.id() == 0) return invalid_argument(path + ".id: expected a path id above 0");
    if (!remote_names.count(in.remote_site())) {
      return invalid_argument(path + ".remote_site: '" + in.remote_site() +
                              "' is not in plan.remote_sites");
    }
    steering::PathSpec p;
    p.id = model::PathId(in.id());
    p.name = in.name();
    p.remote_site = in.remote_site();
    p.local_endpoint = in.local_endpoint();
    p.remote_endpoint = in.remote_endpoint();
    auto lu = model::SocketAddress::parse(in.local_underlay());
    if (!lu.is_ok()) return invalid_argument(path + ".local_underlay: " + lu.status().message());
    p.local_underlay = lu.value();
    auto ru = model::SocketAddress::parse(in.remote_underlay());
    if (!ru.is_ok()) return invalid_argument(path + ".remote_underlay: " + ru.status().message());
    p.remote_underlay = ru.value();
    for (const auto& [text, field, out_addr] :
         {std::make_tuple(&in.local_overlay(), "local_overlay", &p.local_overlay),
          std::make_tuple(&in.remote_overlay(), "remote_overlay", &p.remote_overlay)}) {
      if (text->empty()) continue;
      auto a = model::IpAddress::parse(*text);
      if (!a.is_ok()) return invalid_argument(path + "." + field + ": " + a.status().message());
      *out_addr = a.value();
    }
    p.session_id = in.session_id();
    p.probed = in.probed();
    if (in.has_bandwidth_mbps()) p.bandwidth_mbps = in.bandwidth_mbps();
    p.cost_per_gb = in.cost_per_gb();
    const std::string canonical =
        mesh::canonical_path_name(site, p.local_endpoint, p.remote_site, p.remote_endpoint);
    if (p.session_id != mesh::probe_session_id(canonical)) {
      return invalid_argument(path + ".session_id: not the session id of " + canonical);
    }
    auto kp = keys(site, p.local_endpoint);
    if (!kp.is_ok()) return kp.status();
    if (!in.local_public_key().empty() &&
        in.local_public_key() != key_bytes(kp.value().public_key)) {
      return failed_precondition(path + ".local_public_key: the plan names another key for " +
                                 site + "/" + p.local_endpoint +
                                 " than this site's own (it was made for other keys)");
    }
    std::optional<mesh::Key> remote_pub;
    if (!in.remote_public_key().empty()) {
      auto rp = key_field(in.remote_public_key(), path + ".remote_public_key");
      if (!rp.is_ok()) return rp.status();
      remote_pub = rp.value();
    }
    if (p.probed) {
      if (!remote_pub) {
        return invalid_argument(path +
                                ".remote_public_key: a probed path needs the peer's "
                                "public key");
      }
      auto key = mesh::derive_probe_key(kp.value().private_key, *remote_pub, canonical);
      if (!key.is_ok()) return key.status();
      std::copy(key.value().begin(), key.value().end(), p.probe_key.begin());
      p.has_key = true;
    }
    if (in.has_tunnel()) {
      const auto& t = in.tunnel();
      const std::string tp = path + ".tunnel";
      steering::PathSpec::Tunnel tun;
      tun.interface_name = t.interface_name();
      for (int j = 0; j < t.interface_addresses_size(); ++j) {
        auto a = interface_address(t.interface_addresses(j),
                                   where(tp + ".interface_addresses", static_cast<std::size_t>(j)));
        if (!a.is_ok()) return a.status();
        tun.interface_addresses.push_back(a.value());
      }
      auto allowed = prefixes(t.allowed_prefixes(), tp + ".allowed_prefixes");
      if (!allowed.is_ok()) return allowed.status();
      tun.allowed_prefixes = std::move(allowed).value();
      tun.local_public_key = kp.value().public_key;
      if (remote_pub) tun.remote_public_key = *remote_pub;
      if (!in.remote_next_public_key().empty()) {
        auto next = key_field(in.remote_next_public_key(), path + ".remote_next_public_key");
        if (!next.is_ok()) return next.status();
        tun.remote_next_public_key = next.value();
      }
      if (t.keepalive_s() > 65535) return invalid_argument(tp + ".keepalive_s: at most 65535");
      tun.keepalive_s = static_cast<std::uint16_t>(t.keepalive_s());
      tun.transport = t.transport();
      tun.params_json = t.params_json();
      p.tunnel = std::move(tun);
    }
    out.paths.push_back(std::move(p));
  }
  // No paths is a plan too: a site whose peers are still to come (a controller's new site).
  return out;
}

Status validate(const SiteConfig& c) {
  if (c.schema() != kSiteConfigSchema) {
    return invalid_argument("schema: version " + std::to_string(c.schema()) +
                            " is not one this host reads (" + std::to_string(kSiteConfigSchema) +
                            ")");
  }
  if (auto s = model::validate_name("site", c.site(), 63); !s.is_ok()) return s;
  std::set<std::string> instances;
  for (int i = 0; i < c.plugins_size(); ++i) {
    const auto& p = c.plugins(i);
    const std::string path = where("plugins", static_cast<std::size_t>(i));
    if (p.plugin().empty()) return invalid_argument(path + ".plugin: empty");
    if (auto s = model::validate_name(path + ".name", p.instance(), 64); !s.is_ok()) return s;
    if (!instances.insert(p.instance()).second) {
      return invalid_argument(path + ".name: instance '" + p.instance() + "' is configured twice");
    }
  }
  if (!c.has_runtime()) return Status::ok();
  const auto& r = c.runtime();
  auto known = [&](const std::string& field, const std::string& name, bool required) -> Status {
    if (name.empty() && !required) return Status::ok();
    if (instances.count(name)) return Status::ok();
    return invalid_argument("runtime." + field + ": no plugin instance '" + name + "' in plugins");
  };
  if (auto s = known("probe", r.probe(), true); !s.is_ok()) return s;
  if (auto s = known("scorer", r.scorer(), true); !s.is_ok()) return s;
  if (auto s = known("transport", r.transport(), false); !s.is_ok()) return s;
  for (int i = 0; i < r.liveness_size(); ++i) {
    if (auto s = known(where("liveness", static_cast<std::size_t>(i)), r.liveness(i), true);
        !s.is_ok()) {
      return s;
    }
  }
  for (const auto& [kind, inst] : r.transports()) {
    if (auto k = model::parse_transport_kind(kind); !k.is_ok()) {
      return invalid_argument("runtime.transports." + kind + ": " + k.status().message());
    }
    if (auto s = known("transports." + kind, inst, true); !s.is_ok()) return s;
  }
  if (r.dataplane() == pb::DATAPLANE_LINUX && r.transport().empty() && r.transports().empty()) {
    return invalid_argument(
        "runtime.dataplane: linux steers onto tunnels, so it needs runtime.transport or "
        "runtime.transports");
  }
  struct Range {
    const char* name;
    std::int64_t value, lo, hi;
  };
  for (const Range& f : {Range{"tick_ms", r.tick_ms(), 1, 10000},
                         Range{"idle_after_ms", r.idle_after_ms(), 0, 86400000},
                         Range{"flow_idle_ms", r.flow_idle_ms(), 1, 86400000},
                         Range{"metrics_interval_ms", r.metrics_interval_ms(), 100, 86400000},
                         Range{"max_flows", r.max_flows(), 1, 16777214},
                         Range{"table_base", r.table_base(), 256, 2000000000}}) {
    if (f.value < f.lo || f.value > f.hi) {
      return invalid_argument("runtime." + std::string(f.name) + ": expected " +
                              std::to_string(f.lo) + " to " + std::to_string(f.hi) + ", got " +
                              std::to_string(f.value));
    }
  }
  auto classes = classes_from_proto(r.classes());
  if (!classes.is_ok()) return invalid_argument("runtime." + classes.status().message());
  for (const auto& cls : classes.value().classes) {
    if (auto s = known("classes." + cls.name + ".scorer", cls.scorer, false); !s.is_ok()) return s;
  }
  return Status::ok();
}

std::string content_hash(const SiteConfig& config) {
  SiteConfig copy = config;
  copy.clear_generation();
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream raw(&bytes);
    google::protobuf::io::CodedOutputStream out(&raw);
    out.SetSerializationDeterministic(true);
    copy.SerializeToCodedStream(&out);
  }
  unsigned char digest[32];
  crypto_generichash(digest, sizeof digest, reinterpret_cast<const unsigned char*>(bytes.data()),
                     bytes.size(), nullptr, 0);
  static const char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned char b : digest) {
    hex += kHex[b >> 4];
    hex += kHex[b & 15];
  }
  return hex;
}

Result<SiteConfig> with_pushed(SiteConfig local, const SiteConfig& pushed, std::uint64_t version) {
  for (int i = 0; i < pushed.plugins_size(); ++i) {
    const auto& p = pushed.plugins(i);
    auto* ps = local.mutable_plugins();
    const auto it = std::find_if(ps->begin(), ps->end(),
                                 [&](const auto& x) { return x.instance() == p.instance(); });
    if (it == ps->end()) {
      return failed_precondition("plugins[" + std::to_string(i) + "]: the controller configures '" +
                                 p.instance() +
                                 "', which this site's file does not run (add the instance to "
                                 "the file, or remove the controller's setting)");
    }
    if (it->plugin() != p.plugin()) {
      return failed_precondition("plugins[" + std::to_string(i) + "]: the controller configures '" +
                                 p.instance() + "' as plugin '" + p.plugin() +
                                 "'; this site's file runs it from '" + it->plugin() + "'");
    }
    it->set_config(p.config());
  }
  *local.mutable_plan() = pushed.plan();
  local.set_fleet_policies(pushed.fleet_policies());
  if (local.has_runtime() && pushed.has_runtime() &&
      pushed.runtime().classes().classes_size() > 0) {
    *local.mutable_runtime()->mutable_classes() = pushed.runtime().classes();
  }
  local.set_generation(version);
  return local;
}

namespace {

// "kind/namespace/name" of each object of a multi-document YAML text (List items included);
// nothing for a text that does not parse (the plugin's load says what is wrong with it).
void object_keys(const YAML::Node& doc, std::vector<std::string>& out) {
  if (!doc.IsMap()) return;
  const std::string kind = doc["kind"] && doc["kind"].IsScalar() ? doc["kind"].Scalar() : "";
  if (kind == "List" && doc["items"] && doc["items"].IsSequence()) {
    for (const auto& item : doc["items"]) object_keys(item, out);
    return;
  }
  const YAML::Node meta = doc["metadata"];
  if (!meta || !meta.IsMap()) return;
  auto field = [&](const char* k) {
    return meta[k] && meta[k].IsScalar() ? meta[k].Scalar() : std::string();
  };
  std::string ns = field("namespace");
  if (ns.empty() && kind != "Namespace") ns = "default";
  out.push_back(kind + "/" + ns + "/" + field("name"));
}

std::vector<std::string> object_keys(const std::string& text) {
  std::vector<std::string> out;
  try {
    for (const auto& doc : YAML::LoadAll(text)) object_keys(doc, out);
  } catch (const YAML::Exception&) {
  }
  return out;
}

}  // namespace

std::string merge_policy_documents(const std::string& own, const std::string& fleet,
                                   std::vector<std::string>* shadowed) {
  if (fleet.empty()) return own;
  const auto mine = object_keys(own);
  const std::set<std::string> local(mine.begin(), mine.end());
  std::string kept;
  try {
    for (const auto& doc : YAML::LoadAll(fleet)) {
      std::vector<std::string> keys;
      object_keys(doc, keys);
      if (keys.size() == 1 && local.count(keys[0])) {
        if (shadowed) shadowed->push_back(keys[0]);
        continue;
      }
      YAML::Emitter out;
      out << doc;
      kept += "---\n" + std::string(out.c_str()) + "\n";
    }
  } catch (const YAML::Exception&) {
    kept = fleet;  // as it is: the plugin's load names the error
  }
  return own + kept;
}

}  // namespace patronus::site
