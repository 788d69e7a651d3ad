// The domain model: sites and their endpoints, paths between endpoints, path metrics, flows and
// network-policy records. Validation functions return a Status naming the offending field.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "patronus/model/address.hpp"
#include "patronus/model/ids.hpp"
#include "patronus/util/status.hpp"

namespace patronus::model {

enum class InterfaceType : std::uint8_t { kWan, kLte, kMpls, kBroadband, kSatellite };
const char* to_string(InterfaceType t);
Result<InterfaceType> parse_interface_type(std::string_view text);

// How an endpoint's tunnels are built: WireGuard (our sites only) or IPsec/IKEv2 (charon, driven
// by the ipsec transport plugin; also what a peer that is not a Patronus site speaks). The text
// forms ("wireguard", "ipsec") name the kinds in the sites file and in runtime.transports.
enum class TransportKind : std::uint8_t { kWireGuard, kIpsec };
const char* to_string(TransportKind k);
Result<TransportKind> parse_transport_kind(std::string_view text);

enum class Priority : std::uint8_t { kCritical, kHigh, kNormal, kLow, kBestEffort };
const char* to_string(Priority p);
Result<Priority> parse_priority(std::string_view text);

enum class SiteStatus : std::uint8_t { kActive, kInactive, kDegraded };
const char* to_string(SiteStatus s);
Result<SiteStatus> parse_site_status(std::string_view text);

enum class PathStatus : std::uint8_t { kUp, kDegraded, kDown };
const char* to_string(PathStatus s);
Result<PathStatus> parse_path_status(std::string_view text);

// An IP protocol as users write it: "tcp", "udp", "sctp" or its IANA number 0..255 in decimal.
std::optional<std::uint8_t> parse_ip_protocol(std::string_view text);

struct Endpoint {
  EndpointId id;
  std::string name;       // unique within its site, [a-z0-9-], 1..32
  SocketAddress address;  // where peers reach it
  InterfaceType type = InterfaceType::kWan;
  double cost_per_gb = 0.0;  // >= 0
  std::optional<double> bandwidth_mbps;
};

struct Site {
  SiteId id;
  std::string name;  // unique, DNS label: [a-z0-9-], 1..63, not starting/ending with '-'
  std::string region;
  SiteStatus status = SiteStatus::kActive;
  std::vector<Endpoint> endpoints;
};

// A candidate path: one local endpoint to one remote endpoint.
struct Path {
  PathId id;
  SiteId src_site;
  SiteId dst_site;
  std::string src_endpoint;
  std::string dst_endpoint;
  std::string wg_interface;
  PathStatus status = PathStatus::kDown;
};

// Aggregate of a probe window (units as the published schema: ms, percent, Mbit/s).
struct PathMetrics {
  double latency_ms = 0;
  double jitter_ms = 0;
  double packet_loss_pct = 0;
  double bandwidth_mbps = 0;
  std::uint32_t mtu = 0;
  double score = 0;
};

enum class IpProtocol : std::uint8_t { kTcp = 6, kUdp = 17, kSctp = 132 };

struct FlowKey {
  IpAddress src;
  IpAddress dst;
  std::uint16_t src_port = 0;
  std::uint16_t dst_port = 0;
  IpProtocol protocol = IpProtocol::kTcp;
  friend bool operator==(const FlowKey& a, const FlowKey& b) {
    return a.src == b.src && a.dst == b.dst && a.src_port == b.src_port &&
           a.dst_port == b.dst_port && a.protocol == b.protocol;
  }
};

struct Flow {
  FlowId id;
  FlowKey key;
  Priority priority = Priority::kNormal;
  PathId path;  // the path the flow is steered onto (invalid: not steered)
};

// A Kubernetes NetworkPolicy as stored: identity, the spec as JSON, and our own flags.
struct NetworkPolicyRecord {
  PolicyId id;
  std::string name;
  std::string namespace_;
  std::string spec_json;
  bool enabled = true;
  std::int32_t priority = 0;
};

// Validation: the returned Status names the field ("site.name", "endpoints[1].address", ...).
Status validate_name(std::string_view field, std::string_view name, std::size_t max_len);
Status validate_site(const Site& site);

}  // namespace patronus::model
