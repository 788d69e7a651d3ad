#include "patronus/mesh/sites.hpp"

#include <cmath>
#include <map>
#include <set>

#include "patronus/mesh/keys.hpp"
#include "patronus/util/file.hpp"
#include "yaml_fields.hpp"

namespace patronus::mesh {

using yamlf::at;
using yamlf::join;

EndpointRules EndpointRules::defaults() {
  EndpointRules r;
  const auto bit = [](model::InterfaceType t) {
    return static_cast<std::uint8_t>(1U << static_cast<int>(t));
  };
  const std::uint8_t all = (1U << kInterfaceTypeCount) - 1;
  for (auto& rule : r.by_type) rule.peers_mask = all & ~bit(model::InterfaceType::kMpls);
  r.by_type[static_cast<int>(model::InterfaceType::kMpls)].peers_mask =
      bit(model::InterfaceType::kMpls);
  auto& lte = r.by_type[static_cast<int>(model::InterfaceType::kLte)];
  lte.peers_mask = all & ~bit(model::InterfaceType::kMpls) & ~bit(model::InterfaceType::kLte);
  lte.hubs_only = true;
  return r;
}

OverlaySettings::OverlaySettings()
    : ipv4(model::IpPrefix::parse("10.200.0.0/16").value()),
      ipv6(model::IpPrefix::parse("fd70:6174:726f:6e75::/64").value()) {}

int SitesFile::find_site(std::string_view name) const {
  for (std::size_t i = 0; i < sites.size(); ++i) {
    if (sites[i].site.name == name) return static_cast<int>(i);
  }
  return -1;
}

double distance_km(const GeoLocation& a, const GeoLocation& b) {
  constexpr double kPi = 3.14159265358979323846;
  constexpr double kEarthRadiusKm = 6371.0088;
  const double rad = kPi / 180.0;
  const double dlat = (b.lat - a.lat) * rad;
  const double dlon = (b.lon - a.lon) * rad;
  const double h =
      std::sin(dlat / 2) * std::sin(dlat / 2) +
      std::cos(a.lat * rad) * std::cos(b.lat * rad) * std::sin(dlon / 2) * std::sin(dlon / 2);
  return 2 * kEarthRadiusKm * std::asin(std::min(1.0, std::sqrt(h)));
}

namespace {

Result<model::InterfaceType> type_at(const YAML::Node& n, const std::string& path) {
  if (!n.IsScalar()) return invalid_argument(at(n) + path + ": expected an endpoint type");
  auto t = model::parse_interface_type(n.Scalar());
  if (!t.is_ok()) return invalid_argument(at(n) + path + ": " + t.status().message());
  return t.value();
}

Result<std::string> key_field(const YAML::Node& e, const char* name, const std::string& path) {
  if (!e[name]) return std::string();
  auto k = yamlf::string_field(e, name, path, false);
  if (!k.is_ok()) return k.status();
  auto key = key_from_base64(k.value(), at(e[name]) + join(path, name));
  if (!key.is_ok()) return key.status();
  return key_to_base64(key.value());
}

Result<std::vector<std::string>> string_list(const YAML::Node& n, const std::string& path,
                                             std::size_t max) {
  if (!n.IsSequence()) return invalid_argument(at(n) + path + ": expected a list of strings");
  if (n.size() > max) {
    return invalid_argument(at(n) + path + ": at most " + std::to_string(max) + " entries");
  }
  std::vector<std::string> out;
  for (std::size_t i = 0; i < n.size(); ++i) {
    const std::string pi = path + "[" + std::to_string(i) + "]";
    if (!n[i].IsScalar() || n[i].Scalar().empty() || n[i].Scalar().size() > 256) {
      return invalid_argument(at(n[i]) + pi + ": expected a string of 1-256 characters");
    }
    out.push_back(n[i].Scalar());
  }
  return out;
}

// `ike:` of an IPsec endpoint. Proposals are checked by the plugin (it knows what charon accepts
// and which algorithms we refuse); here only their shape.
Status parse_ike(const YAML::Node& n, const std::string& path, IkeSettings& out) {
  if (!n.IsMap()) return invalid_argument(at(n) + path + ": expected a map");
  if (auto s = yamlf::check_keys(n,
                                 {"id", "proposals", "esp_proposals", "psk_file", "dpd_s",
                                  "rekey_s", "child_rekey_s", "reauth_s"},
                                 path);
      !s.is_ok()) {
    return s;
  }
  auto id = yamlf::string_field(n, "id", path, false);
  if (!id.is_ok()) return id.status();
  out.id = id.value();
  if (out.id.size() > 255) return invalid_argument(at(n["id"]) + join(path, "id") + ": too long");
  for (const char* key : {"proposals", "esp_proposals"}) {
    if (!n[key]) continue;
    auto l = string_list(n[key], join(path, key), 16);
    if (!l.is_ok()) return l.status();
    (std::string(key) == "proposals" ? out.proposals : out.esp_proposals) = l.value();
  }
  auto psk = yamlf::string_field(n, "psk_file", path, false);
  if (!psk.is_ok()) return psk.status();
  out.psk_file = psk.value();
  if (!out.psk_file.empty() && out.psk_file.front() != '/') {
    return invalid_argument(at(n["psk_file"]) + join(path, "psk_file") +
                            ": must be an absolute path");
  }
  struct Timer {
    const char* key;
    std::uint32_t* v;
    std::int64_t min;
  };
  for (const Timer& t :
       {Timer{"dpd_s", &out.dpd_s, 1}, Timer{"rekey_s", &out.rekey_s, 60},
        Timer{"child_rekey_s", &out.child_rekey_s, 60}, Timer{"reauth_s", &out.reauth_s, 300}}) {
    if (!n[t.key]) continue;
    auto v = yamlf::integer(n[t.key], join(path, t.key), t.min, 7 * 24 * 3600);
    if (!v.is_ok()) return v.status();
    *t.v = static_cast<std::uint32_t>(v.value());
  }
  return Status::ok();
}

Status parse_transport(const YAML::Node& e, const std::string& path, EndpointTransport& out) {
  if (const auto t = e["transport"]) {
    auto kind = model::parse_transport_kind(t.IsScalar() ? t.Scalar() : "");
    if (!kind.is_ok()) {
      return invalid_argument(at(t) + join(path, "transport") + ": " + kind.status().message());
    }
    out.kind = kind.value();
  }
  if (const auto ike = e["ike"]) {
    if (out.kind != TransportKind::kIpsec) {
      return invalid_argument(at(ike) + join(path, "ike") +
                              ": only for an endpoint with transport: ipsec");
    }
    return parse_ike(ike, join(path, "ike"), out.ike);
  }
  return Status::ok();
}

Status parse_endpoint(const YAML::Node& e, const std::string& path, model::Endpoint& out,
                      std::string& public_key, std::string& next_public_key,
                      EndpointTransport& transport) {
  if (!e.IsMap()) return invalid_argument(at(e) + path + ": expected a map");
  if (auto s = yamlf::check_keys(e,
                                 {"name", "address", "type", "cost_per_gb", "bandwidth_mbps",
                                  "public_key", "next_public_key", "transport", "ike"},
                                 path);
      !s.is_ok()) {
    return s;
  }
  auto name = yamlf::string_field(e, "name", path, true);
  if (!name.is_ok()) return name.status();
  out.name = name.value();
  if (auto s = model::validate_name(at(e["name"]) + join(path, "name"), out.name, 32); !s.is_ok()) {
    return s;
  }
  auto addr = yamlf::string_field(e, "address", path, true);
  if (!addr.is_ok()) return addr.status();
  auto sa = model::SocketAddress::parse(addr.value());
  if (!sa.is_ok()) {
    return invalid_argument(at(e["address"]) + join(path, "address") + ": " +
                            sa.status().message());
  }
  out.address = sa.value();
  if (auto s = parse_transport(e, path, transport); !s.is_ok()) return s;
  if (transport.kind == TransportKind::kIpsec && out.address.port() == 0) {
    out.address = model::SocketAddress(out.address.ip(), 500);  // IKE
  }
  if (e["type"]) {
    auto t = type_at(e["type"], join(path, "type"));
    if (!t.is_ok()) return t.status();
    out.type = t.value();
  }
  if (e["cost_per_gb"]) {
    auto c = yamlf::number(e["cost_per_gb"], join(path, "cost_per_gb"), 0, 1e9);
    if (!c.is_ok()) return c.status();
    out.cost_per_gb = c.value();
  }
  if (e["bandwidth_mbps"]) {
    auto b = yamlf::number(e["bandwidth_mbps"], join(path, "bandwidth_mbps"), 1e-3, 1e9);
    if (!b.is_ok()) return b.status();
    out.bandwidth_mbps = b.value();
  }
  auto pk = key_field(e, "public_key", path);
  if (!pk.is_ok()) return pk.status();
  public_key = pk.value();
  auto nk = key_field(e, "next_public_key", path);
  if (!nk.is_ok()) return nk.status();
  next_public_key = nk.value();
  if (!next_public_key.empty() && next_public_key == public_key) {
    return invalid_argument(at(e["next_public_key"]) + join(path, "next_public_key") +
                            ": the same as public_key (a rotation needs a new key)");
  }
  return Status::ok();
}

// `peers:`: IKEv2 gateways that are not Patronus sites. Each needs its identity's secret in a
// file (psk_file) and the prefixes behind it; it may name the sites that connect to it.
Status parse_peers(const YAML::Node& n, SitesFile& f, std::map<std::string, std::string>& names,
                   std::map<model::SocketAddress, std::string>& addresses) {
  if (!n.IsSequence()) return invalid_argument(at(n) + "peers: expected a list");
  if (n.size() > kMaxPeers) {
    return invalid_argument(at(n) + "peers: at most " + std::to_string(kMaxPeers));
  }
  for (std::size_t i = 0; i < n.size(); ++i) {
    const std::string p = "peers[" + std::to_string(i) + "]";
    const YAML::Node& e = n[i];
    if (!e.IsMap()) return invalid_argument(at(e) + p + ": expected a map");
    if (auto s = yamlf::check_keys(e, {"name", "address", "subnets", "ike", "sites", "type"}, p);
        !s.is_ok()) {
      return s;
    }
    PeerSpec peer;
    SiteSpec& spec = peer.spec;
    spec.external = true;
    auto name = yamlf::string_field(e, "name", p, true);
    if (!name.is_ok()) return name.status();
    spec.site.name = name.value();
    if (auto s = model::validate_name(at(e["name"]) + join(p, "name"), spec.site.name, 63);
        !s.is_ok()) {
      return s;
    }
    if (auto [it, fresh] = names.emplace(spec.site.name, p); !fresh) {
      return invalid_argument(at(e["name"]) + p + ".name: '" + spec.site.name +
                              "' is already the name of " + it->second);
    }
    auto addr = yamlf::string_field(e, "address", p, true);
    if (!addr.is_ok()) return addr.status();
    // host:port, or a bare address (IKE's port 500)
    auto sa = model::SocketAddress::parse(addr.value());
    if (!sa.is_ok()) {
      if (auto ip = model::IpAddress::parse(addr.value()); ip.is_ok()) {
        sa = model::SocketAddress(ip.value(), 500);
      }
    }
    if (!sa.is_ok()) {
      return invalid_argument(at(e["address"]) + join(p, "address") + ": " + sa.status().message());
    }
    model::Endpoint gw;
    gw.name = "gw";
    gw.address = sa.value();
    if (e["type"]) {
      auto t = type_at(e["type"], join(p, "type"));
      if (!t.is_ok()) return t.status();
      gw.type = t.value();
    }
    if (auto [it, fresh] = addresses.emplace(gw.address, p); !fresh) {
      return invalid_argument(at(e["address"]) + join(p, "address") + ": " +
                              gw.address.to_string() + " is already used by " + it->second);
    }
    const auto subnets = e["subnets"];
    if (!subnets || !subnets.IsSequence() || subnets.size() == 0) {
      return invalid_argument(at(subnets ? subnets : e) + join(p, "subnets") +
                              ": required, a non-empty list (what is behind the peer)");
    }
    auto list = string_list(subnets, join(p, "subnets"), kMaxSubnetsPerSite);
    if (!list.is_ok()) return list.status();
    for (std::size_t j = 0; j < list.value().size(); ++j) {
      auto prefix = model::IpPrefix::parse(list.value()[j]);
      if (!prefix.is_ok()) {
        return invalid_argument(at(subnets[j]) + join(p, "subnets") + "[" + std::to_string(j) +
                                "]: " + prefix.status().message());
      }
      spec.subnets.push_back(prefix.value());
    }
    EndpointTransport t;
    t.kind = TransportKind::kIpsec;
    if (!e["ike"]) {
      return invalid_argument(at(e) + join(p, "ike") +
                              ": required (at least psk_file: the key shared with the peer)");
    }
    if (auto s = parse_ike(e["ike"], join(p, "ike"), t.ike); !s.is_ok()) return s;
    if (t.ike.psk_file.empty()) {
      return invalid_argument(at(e["ike"]) + join(p, "ike.psk_file") +
                              ": required (a peer that is not ours shares a key with us)");
    }
    if (const auto sites = e["sites"]) {
      auto l = string_list(sites, join(p, "sites"), kMaxSites);
      if (!l.is_ok()) return l.status();
      for (std::size_t j = 0; j < l.value().size(); ++j) {
        const int idx = f.find_site(l.value()[j]);
        if (idx < 0) {
          return invalid_argument(at(sites[j]) + join(p, "sites") + "[" + std::to_string(j) +
                                  "]: '" + l.value()[j] + "' is not a site of this file");
        }
      }
      peer.sites = l.value();
    }
    spec.site.endpoints.push_back(std::move(gw));
    spec.public_keys.emplace_back();
    spec.next_public_keys.emplace_back();
    spec.transports.push_back(std::move(t));
    f.peers.push_back(std::move(peer));
  }
  return Status::ok();
}

Status parse_site(const YAML::Node& n, const std::string& path, SiteSpec& out) {
  if (!n.IsMap()) return invalid_argument(at(n) + path + ": expected a map");
  if (auto s = yamlf::check_keys(n, {"name", "region", "location", "subnets", "endpoints"}, path);
      !s.is_ok()) {
    return s;
  }
  auto name = yamlf::string_field(n, "name", path, true);
  if (!name.is_ok()) return name.status();
  out.site.name = name.value();
  if (auto s = model::validate_name(at(n["name"]) + join(path, "name"), out.site.name, 63);
      !s.is_ok()) {
    return s;
  }
  auto region = yamlf::string_field(n, "region", path, false);
  if (!region.is_ok()) return region.status();
  out.site.region = region.value();
  if (out.site.region.size() > 64) {
    return invalid_argument(at(n["region"]) + join(path, "region") + ": at most 64 characters");
  }
  if (const auto loc = n["location"]) {
    const std::string p = join(path, "location");
    if (!loc.IsMap()) return invalid_argument(at(loc) + p + ": expected {lat: .., lon: ..}");
    if (auto s = yamlf::check_keys(loc, {"lat", "lon"}, p); !s.is_ok()) return s;
    if (!loc["lat"] || !loc["lon"]) {
      return invalid_argument(at(loc) + p + ": needs both lat and lon");
    }
    auto lat = yamlf::number(loc["lat"], join(p, "lat"), -90, 90);
    if (!lat.is_ok()) return lat.status();
    auto lon = yamlf::number(loc["lon"], join(p, "lon"), -180, 180);
    if (!lon.is_ok()) return lon.status();
    out.location = GeoLocation{lat.value(), lon.value()};
  }
  if (const auto subnets = n["subnets"]) {
    const std::string p = join(path, "subnets");
    if (!subnets.IsSequence()) return invalid_argument(at(subnets) + p + ": expected a list");
    if (subnets.size() > kMaxSubnetsPerSite) {
      return invalid_argument(at(subnets) + p + ": at most " + std::to_string(kMaxSubnetsPerSite) +
                              " subnets");
    }
    for (std::size_t i = 0; i < subnets.size(); ++i) {
      const std::string pi = p + "[" + std::to_string(i) + "]";
      if (!subnets[i].IsScalar())
        return invalid_argument(at(subnets[i]) + pi + ": expected a CIDR");
      auto prefix = model::IpPrefix::parse(subnets[i].Scalar());
      if (!prefix.is_ok()) {
        return invalid_argument(at(subnets[i]) + pi + ": " + prefix.status().message());
      }
      out.subnets.push_back(prefix.value());
    }
  }
  const auto eps = n["endpoints"];
  const std::string ep = join(path, "endpoints");
  if (!eps) return invalid_argument(at(n) + ep + ": required (a site needs at least one)");
  if (!eps.IsSequence() || eps.size() == 0) {
    return invalid_argument(at(eps) + ep + ": expected a non-empty list");
  }
  if (eps.size() > kMaxEndpointsPerSite) {
    return invalid_argument(at(eps) + ep + ": at most " + std::to_string(kMaxEndpointsPerSite) +
                            " endpoints per site");
  }
  for (std::size_t i = 0; i < eps.size(); ++i) {
    model::Endpoint e;
    std::string key, next;
    EndpointTransport transport;
    if (auto s =
            parse_endpoint(eps[i], ep + "[" + std::to_string(i) + "]", e, key, next, transport);
        !s.is_ok()) {
      return s;
    }
    out.transports.push_back(std::move(transport));
    out.site.endpoints.push_back(std::move(e));
    out.public_keys.push_back(std::move(key));
    out.next_public_keys.push_back(std::move(next));
  }
  // Cross-field checks (duplicate endpoint names and addresses) with model's own validation.
  if (auto s = model::validate_site(out.site); !s.is_ok()) {
    return invalid_argument(at(n) + path + "." + s.message());
  }
  return Status::ok();
}

Status parse_rules(const YAML::Node& n, EndpointRules& rules) {
  if (!n.IsMap()) return invalid_argument(at(n) + "rules: expected a map of endpoint types");
  for (const auto& kv : n) {
    const std::string type_name = kv.first.IsScalar() ? kv.first.Scalar() : "";
    const std::string p = "rules." + type_name;
    auto t = type_at(kv.first, p);
    if (!t.is_ok()) return t.status();
    const YAML::Node r = kv.second;
    if (!r.IsMap()) return invalid_argument(at(r) + p + ": expected {peers: [...], hubs_only: ..}");
    if (auto s = yamlf::check_keys(r, {"peers", "hubs_only"}, p); !s.is_ok()) return s;
    TypeRule rule = rules.by_type[static_cast<int>(t.value())];
    if (const auto peers = r["peers"]) {
      if (!peers.IsSequence()) return invalid_argument(at(peers) + p + ".peers: expected a list");
      rule.peers_mask = 0;
      for (std::size_t i = 0; i < peers.size(); ++i) {
        auto pt = type_at(peers[i], p + ".peers[" + std::to_string(i) + "]");
        if (!pt.is_ok()) return pt.status();
        rule.peers_mask |= static_cast<std::uint8_t>(1U << static_cast<int>(pt.value()));
      }
    }
    if (r["hubs_only"]) {
      auto b = yamlf::boolean(r["hubs_only"], p + ".hubs_only");
      if (!b.is_ok()) return b.status();
      rule.hubs_only = b.value();
    }
    rules.by_type[static_cast<int>(t.value())] = rule;
  }
  return Status::ok();
}

Status parse_overlay(const YAML::Node& n, OverlaySettings& o) {
  if (!n.IsMap()) return invalid_argument(at(n) + "overlay: expected a map");
  if (auto s = yamlf::check_keys(n, {"ipv4", "ipv6", "persistent_keepalive"}, "overlay");
      !s.is_ok()) {
    return s;
  }
  if (n["ipv4"]) {
    auto v = yamlf::string_field(n, "ipv4", "overlay", false);
    if (!v.is_ok()) return v.status();
    auto p = model::IpPrefix::parse(v.value());
    if (!p.is_ok() || !p.value().is_v4() || p.value().length() > 30) {
      return invalid_argument(at(n["ipv4"]) + "overlay.ipv4: expected an IPv4 prefix of length " +
                              "0-30 (" + (p.is_ok() ? "got " + v.value() : p.status().message()) +
                              ")");
    }
    o.ipv4 = p.value();
  }
  if (n["ipv6"]) {
    auto v = yamlf::string_field(n, "ipv6", "overlay", false);
    if (!v.is_ok()) return v.status();
    if (v.value() == "none") {
      o.ipv6.reset();
    } else {
      auto p = model::IpPrefix::parse(v.value());
      if (!p.is_ok() || p.value().is_v4() || p.value().length() > 120) {
        return invalid_argument(at(n["ipv6"]) +
                                "overlay.ipv6: expected an IPv6 prefix of length 0-120 or "
                                "'none' (" +
                                (p.is_ok() ? "got " + v.value() : p.status().message()) + ")");
      }
      o.ipv6 = p.value();
    }
  }
  if (n["persistent_keepalive"]) {
    auto k = yamlf::integer(n["persistent_keepalive"], "overlay.persistent_keepalive", 0, 65535);
    if (!k.is_ok()) return k.status();
    o.persistent_keepalive = static_cast<std::uint16_t>(k.value());
  }
  return Status::ok();
}

// "site" or "site/endpoint", checked against the sites.
// `f` null: the sites are not known here (a controller's settings; it checks them itself).
Status parse_link_end(const YAML::Node& n, const std::string& path, const SitesFile* f,
                      std::string& site, std::string& endpoint) {
  if (!n || !n.IsScalar() || n.Scalar().empty()) {
    return invalid_argument(at(n) + path + ": expected 'site' or 'site/endpoint'");
  }
  const std::string v = n.Scalar();
  const auto slash = v.find('/');
  site = v.substr(0, slash);
  endpoint = slash == std::string::npos ? "" : v.substr(slash + 1);
  if (f == nullptr) {
    if (auto s = model::validate_name(at(n) + path, site, 63); !s.is_ok()) return s;
    if (endpoint.empty()) return Status::ok();
    return model::validate_name(at(n) + path, endpoint, 32);
  }
  const int idx = f->find_site(site);
  if (idx < 0) return invalid_argument(at(n) + path + ": unknown site '" + site + "'");
  if (!endpoint.empty()) {
    for (const auto& e : f->sites[static_cast<std::size_t>(idx)].site.endpoints) {
      if (e.name == endpoint) return Status::ok();
    }
    return invalid_argument(at(n) + path + ": site '" + site + "' has no endpoint '" + endpoint +
                            "'");
  }
  return Status::ok();
}

Status parse_links(const YAML::Node& n, const SitesFile* sites, std::vector<LinkSpec>& out) {
  if (!n.IsSequence()) return invalid_argument(at(n) + "links: expected a list");
  if (n.size() > kMaxLinks) {
    return invalid_argument(at(n) + "links: at most " + std::to_string(kMaxLinks) + " links");
  }
  std::set<std::pair<std::string, std::string>> seen;
  for (std::size_t i = 0; i < n.size(); ++i) {
    const std::string p = "links[" + std::to_string(i) + "]";
    const YAML::Node l = n[i];
    if (!l.IsMap()) return invalid_argument(at(l) + p + ": expected {a: site[/endpoint], b: ...}");
    if (auto s = yamlf::check_keys(l, {"a", "b"}, p); !s.is_ok()) return s;
    LinkSpec link;
    if (auto s = parse_link_end(l["a"], p + ".a", sites, link.a_site, link.a_endpoint);
        !s.is_ok()) {
      return s;
    }
    if (auto s = parse_link_end(l["b"], p + ".b", sites, link.b_site, link.b_endpoint);
        !s.is_ok()) {
      return s;
    }
    if (link.a_site == link.b_site) {
      return invalid_argument(at(l) + p + ": a link joins two different sites ('" + link.a_site +
                              "' twice)");
    }
    const std::string a = link.a_site + "/" + link.a_endpoint;
    const std::string b = link.b_site + "/" + link.b_endpoint;
    if (!seen.insert(a < b ? std::make_pair(a, b) : std::make_pair(b, a)).second) {
      return invalid_argument(at(l) + p + ": duplicate link " + a + " - " + b);
    }
    out.push_back(std::move(link));
  }
  return Status::ok();
}

}  // namespace

namespace {

// The document of a sites file (or of its fleet-wide sections); `o` prefixes errors.
Result<YAML::Node> load_document(const std::string& text, const std::string& o) {
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return invalid_argument(o + "not valid YAML: " + e.what());
  }
}

}  // namespace

Result<MeshSettings> parse_mesh_settings_yaml(const std::string& text, const std::string& origin) {
  const std::string o = origin.empty() ? "" : origin + ": ";
  auto doc = load_document(text, o);
  if (!doc.is_ok()) return doc.status();
  const YAML::Node root = doc.value();
  try {
    MeshSettings m;
    if (!root.IsMap()) {
      return invalid_argument(o + "expected a map with overlay:, rules: or links:");
    }
    if (auto s = yamlf::check_keys(root, {"rules", "overlay", "links"}, ""); !s.is_ok()) {
      return Status(s.code(), o + s.message());
    }
    if (root["rules"]) {
      if (auto s = parse_rules(root["rules"], m.rules); !s.is_ok()) {
        return Status(s.code(), o + s.message());
      }
    }
    if (root["overlay"]) {
      if (auto s = parse_overlay(root["overlay"], m.overlay); !s.is_ok()) {
        return Status(s.code(), o + s.message());
      }
    }
    if (root["links"]) {
      if (auto s = parse_links(root["links"], nullptr, m.links); !s.is_ok()) {
        return Status(s.code(), o + s.message());
      }
    }
    return m;
  } catch (const YAML::Exception& e) {
    return invalid_argument(o + e.what());
  }
}

Result<SitesFile> parse_sites_yaml(const std::string& text, const std::string& origin) {
  const std::string o = origin.empty() ? "" : origin + ": ";
  auto doc = load_document(text, o);
  if (!doc.is_ok()) return doc.status();
  const YAML::Node root = doc.value();
  try {
    SitesFile f;
    auto fail = [&](const Status& s) -> Result<SitesFile> {
      return Status(s.code(), o + s.message());
    };
    if (!root.IsMap()) return fail(invalid_argument("expected a map with a 'sites' list"));
    if (auto s =
            yamlf::check_keys(root, {"sites", "links", "hubs", "rules", "overlay", "peers"}, "");
        !s.is_ok()) {
      return fail(s);
    }
    const auto sites = root["sites"];
    if (!sites) return fail(invalid_argument("sites: required"));
    if (!sites.IsSequence() || sites.size() == 0) {
      return fail(invalid_argument(at(sites) + "sites: expected a non-empty list"));
    }
    if (sites.size() > kMaxSites) {
      return fail(invalid_argument(at(sites) + "sites: at most " + std::to_string(kMaxSites)));
    }
    std::map<std::string, std::string> names;               // site name -> path of first definition
    std::map<model::SocketAddress, std::string> addresses;  // across all sites
    for (std::size_t i = 0; i < sites.size(); ++i) {
      const std::string p = "sites[" + std::to_string(i) + "]";
      SiteSpec spec;
      if (auto s = parse_site(sites[i], p, spec); !s.is_ok()) return fail(s);
      if (auto [it, fresh] = names.emplace(spec.site.name, p); !fresh) {
        return fail(invalid_argument(at(sites[i]["name"]) + p + ".name: duplicate site name '" +
                                     spec.site.name + "' (first defined at " + it->second + ")"));
      }
      for (std::size_t j = 0; j < spec.site.endpoints.size(); ++j) {
        const auto& e = spec.site.endpoints[j];
        const std::string ep = p + ".endpoints[" + std::to_string(j) + "]";
        if (auto [it, fresh] = addresses.emplace(e.address, ep); !fresh) {
          return fail(invalid_argument(at(sites[i]["endpoints"][j]["address"]) + ep +
                                       ".address: " + e.address.to_string() +
                                       " is already used by " + it->second));
        }
      }
      f.sites.push_back(std::move(spec));
    }
    if (root["rules"]) {
      if (auto s = parse_rules(root["rules"], f.rules); !s.is_ok()) return fail(s);
    }
    if (root["overlay"]) {
      if (auto s = parse_overlay(root["overlay"], f.overlay); !s.is_ok()) return fail(s);
    }
    if (const auto hubs = root["hubs"]) {
      if (!hubs.IsSequence()) return fail(invalid_argument(at(hubs) + "hubs: expected a list"));
      for (std::size_t i = 0; i < hubs.size(); ++i) {
        const std::string p = "hubs[" + std::to_string(i) + "]";
        if (!hubs[i].IsScalar() || f.find_site(hubs[i].Scalar()) < 0) {
          return fail(invalid_argument(at(hubs[i]) + p + ": not a site of this file"));
        }
        f.hubs.push_back(hubs[i].Scalar());
      }
    }
    if (root["links"]) {
      if (auto s = parse_links(root["links"], &f, f.links); !s.is_ok()) return fail(s);
    }
    if (root["peers"]) {
      if (auto s = parse_peers(root["peers"], f, names, addresses); !s.is_ok()) return fail(s);
    }
    return f;
  } catch (const YAML::Exception& e) {
    return invalid_argument(o + e.what());
  }
}

Result<SitesFile> load_sites_file(const std::string& path) {
  auto text = read_text_file(path);
  if (!text.is_ok()) return Status(text.status().code(), "sites file " + text.status().message());
  return parse_sites_yaml(text.value(), path);
}

}  // namespace patronus::mesh
