// The tunnel plan: per site, one WireGuard interface per local endpoint (name, listen port,
// overlay addresses), and on it one peer per path that uses the endpoint (public key, endpoint,
// allowed IPs, persistent keepalive). Rendered as JSON and as wg-quick configuration files.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "patronus/mesh/graph.hpp"
#include "patronus/mesh/keys.hpp"
#include "patronus/model/address.hpp"

namespace patronus::mesh {

struct OverlayAddress {
  model::IpAddress ipv4;
  std::optional<model::IpAddress> ipv6;
};

// Overlay addresses keyed by "site/endpoint". Previous assignments (from the store) are kept when
// they still fit the prefixes and do not collide; new endpoints get a slot derived from a hash of
// their key (probing forward on collision), so addresses do not depend on file order.
using OverlayAssignments = std::map<std::string, OverlayAddress>;
Result<OverlayAssignments> assign_overlay(const MeshGraph& m, const OverlayAssignments& previous);

// "wg-<endpoint>" when it fits Linux's 15-character limit, else "wg-<first 7>-<4 hex of a hash>".
std::string interface_name(std::string_view endpoint);
// The interface carrying an endpoint's tunnels: interface_name() for WireGuard; for IPsec
// "ipsec<N>", N counting the site's IPsec endpoints in file order (userspace ESP has one TUN per
// charon, ipsec0; route-based kernel ESP has one XFRM interface per endpoint).
std::string endpoint_interface(const MeshGraph& m, std::size_t site, std::size_t endpoint);

struct InterfacePlan {
  std::uint32_t site = 0;
  std::uint8_t endpoint = 0;
  TransportKind transport = TransportKind::kWireGuard;
  std::string name;
  std::uint16_t listen_port = 0;
  OverlayAddress address;
  std::vector<std::uint32_t> peers;  // path ids; the remote side of each path is the peer
};

struct TunnelPlan {
  std::vector<std::vector<InterfacePlan>> sites;  // by site vertex, one per endpoint with paths
  OverlayAssignments overlay;
};

// Builds the plan. Every endpoint that has a path needs a public key in the graph (from the sites
// file or filled in from a KeyDirectory before); the error names the first that does not.
Result<TunnelPlan> make_plan(const MeshGraph& m, OverlayAssignments overlay);

// Fills the graph's missing public keys from the key directory, creating keys for endpoints that
// have none (private keys never leave the directory). Sites without a key file and with a key
// in the sites file keep the file's key.
Status fill_public_keys(MeshGraph& m, const KeyDirectory& keys);

// What each peer of an interface carries, in the order of iface.peers: the remote endpoint's
// overlay addresses, plus the remote site's subnets on the first peer (lowest path id) towards
// that site (WireGuard allows a prefix on one peer per interface).
std::vector<std::vector<model::IpPrefix>> peer_allowed_prefixes(const MeshGraph& m,
                                                                const TunnelPlan& plan,
                                                                const InterfacePlan& iface);

// What a transport plugin is told of a path's transport settings (patronus_path_desc's
// transport_params, ABI 1.4): {"transport": "ipsec", "local": {ike...}, "remote": {ike...},
// "local_subnets": [the local site's LAN]} for an IPsec endpoint (IKE traffic selectors name both
// sides), "" for WireGuard (its settings are the plan's keys and addresses).
std::string transport_params_json(const MeshGraph& m, std::size_t local_site,
                                  std::size_t local_endpoint, std::size_t remote_site,
                                  std::size_t remote_endpoint);

// The plan as JSON text: {"topology", "sites": [{name, region, endpoints, interfaces: [...]}],
// "paths": [...]} (the `mesh plan --json` format).
std::string plan_to_json(const MeshGraph& m, const TunnelPlan& plan);

// wg-quick configuration of one interface. With a private key it is complete for `wg setconf`
// (after `wg-quick strip`); without, it carries a PostUp line that loads the key from
// `private_key_file` on the site.
std::string render_wg_quick(const MeshGraph& m, const TunnelPlan& plan, const InterfacePlan& iface,
                            const std::optional<Key>& private_key,
                            const std::string& private_key_file);

}  // namespace patronus::mesh
