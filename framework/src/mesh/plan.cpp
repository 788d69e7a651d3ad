#include "patronus/mesh/plan.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <set>
#include <sstream>
#include <unordered_set>

namespace patronus::mesh {

namespace {

std::uint64_t fnv1a64(std::string_view s) {
  std::uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

std::string endpoint_key(const MeshGraph& m, std::size_t site, std::size_t ep) {
  return m.site(site).site.name + "/" + m.site(site).site.endpoints[ep].name;
}

// Usable host slots of a prefix: IPv4 excludes the network and broadcast addresses; IPv6
// excludes the subnet-router anycast address (offset 0). Capped at 2^63 (the hash width).
std::uint64_t slots(const model::IpPrefix& p) {
  const int bits = p.host_bits();
  if (p.is_v4()) return (std::uint64_t{1} << bits) - 2;
  return bits >= 63 ? (std::uint64_t{1} << 63) : (std::uint64_t{1} << bits) - 1;
}

std::uint64_t offset_of(const model::IpPrefix& p, const model::IpAddress& a) {
  std::uint64_t off = 0;
  const auto& b = a.bytes();
  const int n = p.max_length() / 8;
  for (int i = std::max(0, n - 8); i < n; ++i) off = (off << 8) | b[static_cast<std::size_t>(i)];
  if (p.host_bits() < 64) off &= (std::uint64_t{1} << p.host_bits()) - 1;
  return off;
}

class SlotAllocator {
 public:
  explicit SlotAllocator(model::IpPrefix prefix) : prefix_(prefix), slots_(slots(prefix)) {}
  // Keeps a previous address if it is usable and free.
  bool keep(const model::IpAddress& a) {
    if (!prefix_.contains(a)) return false;
    const std::uint64_t off = offset_of(prefix_, a);
    if (off == 0 || off > slots_) return false;
    return used_.insert(off).second;
  }
  Result<model::IpAddress> take(std::string_view key, const char* what) {
    if (used_.size() >= slots_) {
      return resource_exhausted(std::string(what) + " " + prefix_.to_string() + " has room for " +
                                std::to_string(slots_) + " endpoints; the mesh needs more");
    }
    std::uint64_t off = 1 + fnv1a64(key) % slots_;
    while (used_.count(off)) off = off == slots_ ? 1 : off + 1;
    used_.insert(off);
    return prefix_.at(off);
  }

 private:
  model::IpPrefix prefix_;
  std::uint64_t slots_;
  std::unordered_set<std::uint64_t> used_;
};

std::string with_length(const model::IpAddress& a, int length) {
  return a.to_string() + "/" + std::to_string(length);
}

}  // namespace

Result<OverlayAssignments> assign_overlay(const MeshGraph& m, const OverlayAssignments& previous) {
  const OverlaySettings& o = m.overlay();
  SlotAllocator v4(o.ipv4);
  std::optional<SlotAllocator> v6;
  if (o.ipv6) v6.emplace(*o.ipv6);
  std::vector<std::string> keys;
  for (std::size_t s = 0; s < m.num_sites(); ++s) {
    if (m.site(s).external) continue;  // a peer's side of the tunnel is not in our overlay
    for (std::size_t e = 0; e < m.site(s).site.endpoints.size(); ++e) {
      keys.push_back(endpoint_key(m, s, e));
    }
  }
  std::sort(keys.begin(), keys.end());
  OverlayAssignments out;
  std::vector<std::string> need_v4, need_v6;
  // Previous assignments first (in key order), so that they win over new endpoints.
  for (const auto& k : keys) {
    OverlayAddress a;
    const auto it = previous.find(k);
    bool have4 = false, have6 = false;
    if (it != previous.end()) {
      if (v4.keep(it->second.ipv4)) {
        a.ipv4 = it->second.ipv4;
        have4 = true;
      }
      if (v6 && it->second.ipv6 && v6->keep(*it->second.ipv6)) {
        a.ipv6 = it->second.ipv6;
        have6 = true;
      }
    }
    if (!have4) need_v4.push_back(k);
    if (v6 && !have6) need_v6.push_back(k);
    out.emplace(k, a);
  }
  for (const auto& k : need_v4) {
    auto a = v4.take(k, "overlay.ipv4");
    if (!a.is_ok()) return a.status();
    out[k].ipv4 = a.value();
  }
  for (const auto& k : need_v6) {
    auto a = v6->take(k, "overlay.ipv6");
    if (!a.is_ok()) return a.status();
    out[k].ipv6 = a.value();
  }
  return out;
}

std::string interface_name(std::string_view endpoint) {
  if (endpoint.size() <= 12) return "wg-" + std::string(endpoint);
  char hash[8];
  std::snprintf(hash, sizeof hash, "%04x", static_cast<unsigned>(fnv1a64(endpoint) & 0xFFFF));
  return "wg-" + std::string(endpoint.substr(0, 7)) + "-" + hash;
}

std::string endpoint_interface(const MeshGraph& m, std::size_t site, std::size_t endpoint) {
  const SiteSpec& s = m.site(site);
  if (s.transport(endpoint) != TransportKind::kIpsec) {
    return interface_name(s.site.endpoints[endpoint].name);
  }
  std::size_t n = 0;
  for (std::size_t e = 0; e < endpoint; ++e) n += s.transport(e) == TransportKind::kIpsec;
  return "ipsec" + std::to_string(n);
}

Status fill_public_keys(MeshGraph& m, const KeyDirectory& keys) {
  for (std::size_t s = 0; s < m.num_sites(); ++s) {
    if (m.site(s).external) continue;  // no X25519 key: it authenticates with its PSK
    const auto& site = m.site(s).site;
    for (std::size_t e = 0; e < site.endpoints.size(); ++e) {
      std::string& pub = m.public_key(s, e);
      auto existing = keys.load(site.name, site.endpoints[e].name);
      if (!existing.is_ok()) return existing.status();
      if (existing.value()) {
        const std::string have = key_to_base64(existing.value()->public_key);
        if (!pub.empty() && pub != have) {
          return failed_precondition(
              "site " + site.name + " endpoint " + site.endpoints[e].name +
              ": the sites file's public_key does not match the private key in " +
              keys.key_path(site.name, site.endpoints[e].name));
        }
        pub = have;
      } else if (pub.empty()) {
        auto kp = keys.load_or_create(site.name, site.endpoints[e].name);
        if (!kp.is_ok()) return kp.status();
        pub = key_to_base64(kp.value().public_key);
      }
    }
  }
  return Status::ok();
}

Result<TunnelPlan> make_plan(const MeshGraph& m, OverlayAssignments overlay) {
  TunnelPlan plan;
  plan.overlay = std::move(overlay);
  plan.sites.resize(m.num_sites());
  // Interface slot per (site, endpoint), created on first use.
  std::vector<std::vector<int>> slot(m.num_sites());
  for (std::size_t s = 0; s < m.num_sites(); ++s) {
    slot[s].assign(m.site(s).site.endpoints.size(), -1);
  }
  auto iface = [&](std::uint32_t s, std::uint8_t e) -> InterfacePlan& {
    int& idx = slot[s][e];
    if (idx < 0) {
      idx = static_cast<int>(plan.sites[s].size());
      InterfacePlan p;
      p.site = s;
      p.endpoint = e;
      const auto& ep = m.site(s).site.endpoints[e];
      p.transport = m.site(s).transport(e);
      p.name = endpoint_interface(m, s, e);
      p.listen_port = ep.address.port();
      p.address = plan.overlay.at(endpoint_key(m, s, e));
      plan.sites[s].push_back(std::move(p));
    }
    return plan.sites[s][static_cast<std::size_t>(idx)];
  };
  for (std::uint32_t id = 0; id < m.num_paths(); ++id) {
    const PathEdge& p = m.path(id);
    const std::uint32_t a = p.src_site;
    const std::uint32_t b = m.path_dst(id);
    for (auto [s, e] : {std::pair{a, p.src_endpoint}, std::pair{b, p.dst_endpoint}}) {
      if (m.site(s).public_keys[e].empty() && !m.site(s).external) {
        return failed_precondition("site " + m.site(s).site.name + " endpoint " +
                                   m.site(s).site.endpoints[e].name +
                                   ": no public key (give public_key in the sites file, or "
                                   "--keys-dir to keep the sites' keys)");
      }
    }
    // A peer that is not ours gets no interface plan: only our side of its paths is planned.
    if (!m.site(a).external) iface(a, p.src_endpoint).peers.push_back(id);
    if (!m.site(b).external) iface(b, p.dst_endpoint).peers.push_back(id);
  }
  // Interfaces in endpoint order, independent of path order.
  for (auto& ifs : plan.sites) {
    std::sort(ifs.begin(), ifs.end(), [](const InterfacePlan& x, const InterfacePlan& y) {
      return x.endpoint < y.endpoint;
    });
  }
  return plan;
}

namespace {

struct PeerView {
  std::uint32_t site;
  std::uint8_t endpoint;
};

PeerView remote_of(const MeshGraph& m, const InterfacePlan& iface, std::uint32_t path_id) {
  const PathEdge& p = m.path(path_id);
  if (p.src_site == iface.site && p.src_endpoint == iface.endpoint) {
    return {m.path_dst(path_id), p.dst_endpoint};
  }
  return {p.src_site, p.src_endpoint};
}

std::vector<std::vector<std::string>> allowed_ips(const MeshGraph& m, const TunnelPlan& plan,
                                                  const InterfacePlan& iface) {
  std::vector<std::vector<std::string>> out;
  for (const auto& prefixes : peer_allowed_prefixes(m, plan, iface)) {
    std::vector<std::string> ips;
    for (const auto& p : prefixes) ips.push_back(p.to_string());
    out.push_back(std::move(ips));
  }
  return out;
}

std::vector<std::string> interface_addresses(const MeshGraph& m, const InterfacePlan& iface) {
  std::vector<std::string> v{with_length(iface.address.ipv4, m.overlay().ipv4.length())};
  if (iface.address.ipv6) v.push_back(with_length(*iface.address.ipv6, m.overlay().ipv6->length()));
  return v;
}

}  // namespace

std::vector<std::vector<model::IpPrefix>> peer_allowed_prefixes(const MeshGraph& m,
                                                                const TunnelPlan& plan,
                                                                const InterfacePlan& iface) {
  std::vector<std::vector<model::IpPrefix>> out;
  std::set<std::uint32_t> sites_done;
  for (auto id : iface.peers) {
    const PeerView r = remote_of(m, iface, id);
    if (m.site(r.site).external) {  // no overlay address; its subnets on every path to it
      out.push_back(m.site(r.site).subnets);
      continue;
    }
    const OverlayAddress& a = plan.overlay.at(endpoint_key(m, r.site, r.endpoint));
    std::vector<model::IpPrefix> ips{model::IpPrefix(a.ipv4, 32)};
    if (a.ipv6) ips.emplace_back(*a.ipv6, 128);
    if (sites_done.insert(r.site).second) {
      for (const auto& sn : m.site(r.site).subnets) ips.push_back(sn);
    }
    out.push_back(std::move(ips));
  }
  return out;
}

namespace {
nlohmann::json ike_json(const SiteSpec& spec, std::size_t e) {
  const IkeSettings& k = spec.transports[e].ike;
  nlohmann::json j = nlohmann::json::object();
  if (!k.id.empty()) j["id"] = k.id;
  if (!k.proposals.empty()) j["proposals"] = k.proposals;
  if (!k.esp_proposals.empty()) j["esp_proposals"] = k.esp_proposals;
  if (!k.psk_file.empty()) j["psk_file"] = k.psk_file;
  if (k.dpd_s) j["dpd_s"] = k.dpd_s;
  if (k.rekey_s) j["rekey_s"] = k.rekey_s;
  if (k.child_rekey_s) j["child_rekey_s"] = k.child_rekey_s;
  if (k.reauth_s) j["reauth_s"] = k.reauth_s;
  if (spec.external) j["external"] = true;  // not ours: we start its IKE_SA, it has no probes
  return j;
}
}  // namespace

std::string transport_params_json(const MeshGraph& m, std::size_t local_site,
                                  std::size_t local_endpoint, std::size_t remote_site,
                                  std::size_t remote_endpoint) {
  const SiteSpec& l = m.site(local_site);
  if (l.transport(local_endpoint) != TransportKind::kIpsec) return "";
  const SiteSpec& r = m.site(remote_site);
  // What this end puts in its traffic selectors besides its overlay address: its LAN.
  nlohmann::json subnets = nlohmann::json::array();
  for (const auto& sn : l.subnets) subnets.push_back(sn.to_string());
  return nlohmann::json{{"transport", "ipsec"},
                        {"local", ike_json(l, local_endpoint)},
                        {"remote", ike_json(r, remote_endpoint)},
                        {"local_subnets", std::move(subnets)}}
      .dump();
}

namespace {
nlohmann::json plan_json(const MeshGraph& m, const TunnelPlan& plan) {
  using nlohmann::json;
  json out;
  out["topology"] = to_string(m.topology());
  json overlay = {{"ipv4", m.overlay().ipv4.to_string()},
                  {"persistent_keepalive", m.overlay().persistent_keepalive}};
  overlay["ipv6"] = m.overlay().ipv6 ? json(m.overlay().ipv6->to_string()) : json(nullptr);
  out["overlay"] = overlay;
  json sites = json::array();
  for (std::uint32_t s = 0; s < m.num_sites(); ++s) {
    const SiteSpec& spec = m.site(s);
    json site = {{"name", spec.site.name}, {"region", spec.site.region}, {"hub", m.is_hub(s)}};
    if (spec.external) site["external"] = true;
    json eps = json::array();
    for (std::size_t e = 0; e < spec.site.endpoints.size(); ++e) {
      const auto& ep = spec.site.endpoints[e];
      json j = {{"name", ep.name},
                {"address", ep.address.to_string()},
                {"type", model::to_string(ep.type)},
                {"cost_per_gb", ep.cost_per_gb},
                {"transport", model::to_string(spec.transport(e))},
                {"public_key", spec.public_keys[e]}};
      if (spec.transport(e) == TransportKind::kIpsec) j["ike"] = ike_json(spec, e);
      if (ep.bandwidth_mbps) j["bandwidth_mbps"] = *ep.bandwidth_mbps;
      eps.push_back(std::move(j));
    }
    site["endpoints"] = std::move(eps);
    json subnets = json::array();
    for (const auto& sn : spec.subnets) subnets.push_back(sn.to_string());
    site["subnets"] = std::move(subnets);
    json ifs = json::array();
    for (const auto& iface : plan.sites[s]) {
      json i = {{"name", iface.name},
                {"transport", model::to_string(iface.transport)},
                {"endpoint", spec.site.endpoints[iface.endpoint].name},
                {"listen_port", iface.listen_port},
                {"public_key", spec.public_keys[iface.endpoint]},
                {"addresses", interface_addresses(m, iface)}};
      json peers = json::array();
      const auto allowed = allowed_ips(m, plan, iface);
      for (std::size_t k = 0; k < iface.peers.size(); ++k) {
        const PeerView r = remote_of(m, iface, iface.peers[k]);
        const SiteSpec& rs = m.site(r.site);
        json peer = {{"path", m.path_key(iface.peers[k])},
                     {"site", rs.site.name},
                     {"endpoint", rs.site.endpoints[r.endpoint].name},
                     {"public_key", rs.public_keys[r.endpoint]},
                     {"endpoint_address", rs.site.endpoints[r.endpoint].address.to_string()},
                     {"allowed_ips", allowed[k]},
                     {"persistent_keepalive", m.overlay().persistent_keepalive}};
        peers.push_back(std::move(peer));
      }
      i["peers"] = std::move(peers);
      ifs.push_back(std::move(i));
    }
    site["interfaces"] = std::move(ifs);
    sites.push_back(std::move(site));
  }
  out["sites"] = std::move(sites);
  json paths = json::array();
  for (std::uint32_t id = 0; id < m.num_paths(); ++id) {
    const PathEdge& p = m.path(id);
    const SiteSpec& a = m.site(p.src_site);
    const SiteSpec& b = m.site(m.path_dst(id));
    paths.push_back(
        {{"id", m.path_key(id)},
         {"src_site", a.site.name},
         {"dst_site", b.site.name},
         {"src_endpoint", a.site.endpoints[p.src_endpoint].name},
         {"dst_endpoint", b.site.endpoints[p.dst_endpoint].name},
         {"transport", model::to_string(a.transport(p.src_endpoint))},
         {"src_interface", a.external ? "" : endpoint_interface(m, p.src_site, p.src_endpoint)},
         {"dst_interface",
          b.external ? "" : endpoint_interface(m, m.path_dst(id), p.dst_endpoint)}});
  }
  out["paths"] = std::move(paths);
  return out;
}
}  // namespace

std::string plan_to_json(const MeshGraph& m, const TunnelPlan& plan) {
  return plan_json(m, plan).dump();
}

std::string render_wg_quick(const MeshGraph& m, const TunnelPlan& plan, const InterfacePlan& iface,
                            const std::optional<Key>& private_key,
                            const std::string& private_key_file) {
  std::ostringstream o;
  const SiteSpec& spec = m.site(iface.site);
  const auto& ep = spec.site.endpoints[iface.endpoint];
  o << "# Generated by `patronus mesh plan` (" << to_string(m.topology()) << "): site "
    << spec.site.name << ", endpoint " << ep.name << " (" << model::to_string(ep.type) << ", "
    << ep.address.to_string() << ")\n";
  o << "[Interface]\n";
  if (private_key) {
    o << "PrivateKey = " << key_to_base64(*private_key) << "\n";
  } else {
    o << "PostUp = wg set %i private-key " << private_key_file << "\n";
  }
  o << "ListenPort = " << iface.listen_port << "\n";
  const auto addrs = interface_addresses(m, iface);
  o << "Address = ";
  for (std::size_t i = 0; i < addrs.size(); ++i) o << (i ? ", " : "") << addrs[i];
  o << "\n";
  o << "# patronusd steers traffic between paths; wg-quick must not install routes.\n";
  o << "Table = off\n";
  const auto allowed = allowed_ips(m, plan, iface);
  for (std::size_t k = 0; k < iface.peers.size(); ++k) {
    const PeerView r = remote_of(m, iface, iface.peers[k]);
    const SiteSpec& rs = m.site(r.site);
    o << "\n# path " << m.path_key(iface.peers[k]) << "\n";
    o << "[Peer]\n";
    o << "PublicKey = " << rs.public_keys[r.endpoint] << "\n";
    o << "Endpoint = " << rs.site.endpoints[r.endpoint].address.to_string() << "\n";
    o << "AllowedIPs = ";
    for (std::size_t i = 0; i < allowed[k].size(); ++i) o << (i ? ", " : "") << allowed[k][i];
    o << "\n";
    if (m.overlay().persistent_keepalive > 0) {
      o << "PersistentKeepalive = " << m.overlay().persistent_keepalive << "\n";
    }
  }
  return o.str();
}

}  // namespace patronus::mesh
