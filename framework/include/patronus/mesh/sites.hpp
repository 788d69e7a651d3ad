// The sites file: sites with their endpoints, optional locations, LAN subnets and public keys,
// explicit links, endpoint-type rules and overlay settings. Parsed completely and validated before
// anything uses it; errors name the line and the field path.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "patronus/model/address.hpp"
#include "patronus/model/types.hpp"
#include "patronus/util/status.hpp"

namespace patronus::mesh {

struct GeoLocation {
  double lat = 0;  // degrees, -90..90
  double lon = 0;  // degrees, -180..180
};

using model::TransportKind;

// An IPsec endpoint's IKE settings (the sites file's `ike:` section). Everything is optional:
// between two Patronus sites the identities default to the endpoints' addresses and the
// authentication is a pre-shared key both ends derive from their X25519 keys (no secret to
// distribute); proposals default to the plugin's safe set. Secrets never appear here, only the
// file holding one.
struct IkeSettings {
  std::string id;                          // IKE identity ("" = the endpoint's address)
  std::vector<std::string> proposals;      // IKE proposals, e.g. aes256gcm16-prfsha384-x25519
  std::vector<std::string> esp_proposals;  // CHILD_SA proposals
  std::string psk_file;                    // a pre-shared key in an owner-only file
  std::uint32_t dpd_s = 0;                 // dead peer detection interval (0: the default)
  std::uint32_t rekey_s = 0;               // IKE_SA rekey time (0: the default)
  std::uint32_t child_rekey_s = 0;         // CHILD_SA rekey time (0: the default)
  std::uint32_t reauth_s = 0;  // IKE_SA reauthentication (0: none; rekeying keeps it fresh)
};

struct EndpointTransport {
  TransportKind kind = TransportKind::kWireGuard;
  IkeSettings ike;  // kIpsec only
};

struct SiteSpec {
  model::Site site;  // name, region, endpoints (validated with model::validate_site)
  std::optional<GeoLocation> location;
  std::vector<model::IpPrefix> subnets;  // LAN prefixes reachable through this site
  // Per endpoint (same index as site.endpoints): its WireGuard public key in base64, or "" when the
  // sites file does not give one.
  std::vector<std::string> public_keys;
  // Per endpoint: the next public key while a rotation is staged (ADR 0013), else "".
  std::vector<std::string> next_public_keys;
  // Per endpoint: its transport (`transport:` and `ike:`); WireGuard when the file says nothing.
  std::vector<EndpointTransport> transports;
  // A peer that is not a Patronus site (the file's `peers:`): one IPsec endpoint, "gw", no keys,
  // no overlay address, no plan of its own; our sites connect to it and never relay through it.
  bool external = false;
  TransportKind transport(std::size_t endpoint) const {
    return endpoint < transports.size() ? transports[endpoint].kind : TransportKind::kWireGuard;
  }
};

// One explicit link: two sites, optionally pinned to one endpoint on either side.
struct LinkSpec {
  std::string a_site, a_endpoint;  // endpoint "" = every compatible endpoint
  std::string b_site, b_endpoint;
};

// What one endpoint type may pair with. A pair is compatible only if both sides allow it.
struct TypeRule {
  std::uint8_t peers_mask = 0xFF;  // bit i set: may pair with InterfaceType(i)
  bool hubs_only = false;          // only to endpoints of hub sites (when hubs are defined)
};

constexpr int kInterfaceTypeCount = 5;

struct EndpointRules {
  std::array<TypeRule, kInterfaceTypeCount> by_type;
  // The defaults: mpls pairs only with mpls; lte never with lte (both sides behind carrier NAT) nor
  // mpls, and only with hubs when hubs are defined; every other type pairs with anything but mpls.
  static EndpointRules defaults();
  bool allows(model::InterfaceType self, model::InterfaceType other) const {
    return (by_type[static_cast<int>(self)].peers_mask >> static_cast<int>(other)) & 1U;
  }
};

struct OverlaySettings {
  model::IpPrefix ipv4;                     // default 10.200.0.0/16
  std::optional<model::IpPrefix> ipv6;      // default fd70:6174:726f:6e75::/64; "none" disables
  std::uint16_t persistent_keepalive = 25;  // seconds, 0 = off
  OverlaySettings();
};

// An IKEv2 peer we do not control (a cloud VPN gateway, a partner's firewall), from `peers:`:
//   - name: partner            # a DNS label, unique among sites and peers
//     address: 203.0.113.9     # its IKE address (port 500 unless given)
//     subnets: [172.16.0.0/16] # what is behind it (required)
//     ike: {id: gw.partner.example, psk_file: /etc/patronus/partner.psk, proposals: [...]}
//     sites: [hq]              # our sites that connect to it (default: every site with a
//                              # compatible IPsec endpoint)
struct PeerSpec {
  SiteSpec spec;                   // external, one endpoint "gw" with transport ipsec
  std::vector<std::string> sites;  // our sites that connect to it ("" = all that can)
};

struct SitesFile {
  std::vector<SiteSpec> sites;
  std::vector<PeerSpec> peers;
  std::vector<LinkSpec> links;
  std::vector<std::string> hubs;  // from the file's `hubs:`; the CLI may override
  EndpointRules rules = EndpointRules::defaults();
  OverlaySettings overlay;

  // Index of a site by name, or -1.
  int find_site(std::string_view name) const;
};

// Bounds (a sites file is operator input; these keep hostile files from exhausting memory).
constexpr std::size_t kMaxSites = 10000;
constexpr std::size_t kMaxEndpointsPerSite = 16;
constexpr std::size_t kMaxLinks = 1000000;
constexpr std::size_t kMaxSubnetsPerSite = 256;
constexpr std::size_t kMaxPeers = 1000;

// `origin` names the input in errors (a file name).
Result<SitesFile> parse_sites_yaml(const std::string& text, const std::string& origin);
// The fleet-wide part of a sites file alone (a controller's settings): `overlay:`, `rules:` and
// `links:` (an explicit topology), with the same checks and defaults; nothing else may be in the
// document. The links' sites are not checked here (the controller knows its sites).
struct MeshSettings {
  OverlaySettings overlay;
  EndpointRules rules = EndpointRules::defaults();
  std::vector<LinkSpec> links;
};
Result<MeshSettings> parse_mesh_settings_yaml(const std::string& text, const std::string& origin);
Result<SitesFile> load_sites_file(const std::string& path);

// Great-circle distance in km between two locations (haversine, mean Earth radius).
double distance_km(const GeoLocation& a, const GeoLocation& b);

}  // namespace patronus::mesh
