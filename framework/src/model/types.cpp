#include "patronus/model/types.hpp"

#include "patronus/util/enum_table.hpp"

#include <array>
#include <cmath>
#include <set>
#include <utility>

namespace patronus::model {
namespace {

constexpr EnumTable<InterfaceType, 5> kInterfaceTypes{{
    {"wan", InterfaceType::kWan},
    {"lte", InterfaceType::kLte},
    {"mpls", InterfaceType::kMpls},
    {"broadband", InterfaceType::kBroadband},
    {"satellite", InterfaceType::kSatellite},
}};
constexpr EnumTable<Priority, 5> kPriorities{{
    {"critical", Priority::kCritical},
    {"high", Priority::kHigh},
    {"normal", Priority::kNormal},
    {"low", Priority::kLow},
    {"best-effort", Priority::kBestEffort},
}};
constexpr EnumTable<SiteStatus, 3> kSiteStatuses{{
    {"active", SiteStatus::kActive},
    {"inactive", SiteStatus::kInactive},
    {"degraded", SiteStatus::kDegraded},
}};
constexpr EnumTable<TransportKind, 2> kTransportKinds{{
    {"wireguard", TransportKind::kWireGuard},
    {"ipsec", TransportKind::kIpsec},
}};
constexpr EnumTable<PathStatus, 3> kPathStatuses{{
    {"up", PathStatus::kUp},
    {"degraded", PathStatus::kDegraded},
    {"down", PathStatus::kDown},
}};

}  // namespace

std::optional<std::uint8_t> parse_ip_protocol(std::string_view text) {
  if (text == "tcp") return std::uint8_t{6};
  if (text == "udp") return std::uint8_t{17};
  if (text == "sctp") return std::uint8_t{132};
  if (text.empty() || text.size() > 3) return std::nullopt;
  unsigned v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<unsigned>(c - '0');
  }
  if (v > 255) return std::nullopt;
  return static_cast<std::uint8_t>(v);
}

const char* to_string(InterfaceType t) {
  return enum_name(t, kInterfaceTypes);
}
Result<InterfaceType> parse_interface_type(std::string_view text) {
  return parse_enum("interface type", text, kInterfaceTypes);
}
const char* to_string(TransportKind k) {
  return enum_name(k, kTransportKinds);
}
Result<TransportKind> parse_transport_kind(std::string_view text) {
  return parse_enum("transport", text, kTransportKinds);
}
const char* to_string(Priority p) {
  return enum_name(p, kPriorities);
}
Result<Priority> parse_priority(std::string_view text) {
  return parse_enum("priority", text, kPriorities);
}
const char* to_string(SiteStatus s) {
  return enum_name(s, kSiteStatuses);
}
Result<SiteStatus> parse_site_status(std::string_view text) {
  return parse_enum("site status", text, kSiteStatuses);
}
const char* to_string(PathStatus s) {
  return enum_name(s, kPathStatuses);
}
Result<PathStatus> parse_path_status(std::string_view text) {
  return parse_enum("path status", text, kPathStatuses);
}

Status validate_name(std::string_view field, std::string_view name, std::size_t max_len) {
  const std::string f(field);
  if (name.empty()) return invalid_argument(f + ": must not be empty");
  if (name.size() > max_len) {
    return invalid_argument(f + ": '" + std::string(name) + "' is longer than " +
                            std::to_string(max_len) + " characters");
  }
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
    if (!ok) {
      return invalid_argument(f + ": '" + std::string(name) +
                              "' may contain only lowercase letters, digits and '-'");
    }
  }
  if (name.front() == '-' || name.back() == '-') {
    return invalid_argument(f + ": '" + std::string(name) + "' must not start or end with '-'");
  }
  return Status::ok();
}

Status validate_site(const Site& site) {
  if (auto s = validate_name("site.name", site.name, 63); !s.is_ok()) return s;
  std::set<std::string> names;
  std::set<SocketAddress> addresses;
  for (std::size_t i = 0; i < site.endpoints.size(); ++i) {
    const auto& e = site.endpoints[i];
    const std::string f = "endpoints[" + std::to_string(i) + "]";
    if (auto s = validate_name(f + ".name", e.name, 32); !s.is_ok()) return s;
    if (!names.insert(e.name).second) {
      return invalid_argument(f + ".name: duplicate endpoint name '" + e.name + "'");
    }
    if (e.address.port() == 0) return invalid_argument(f + ".address: port must not be 0");
    if (e.address.ip().is_unspecified()) {
      return invalid_argument(f + ".address: " + e.address.ip().to_string() +
                              " is unspecified; peers need a reachable address");
    }
    if (!addresses.insert(e.address).second) {
      return invalid_argument(f + ".address: " + e.address.to_string() +
                              " is used by another endpoint of this site");
    }
    if (!std::isfinite(e.cost_per_gb) || e.cost_per_gb < 0) {
      return invalid_argument(f + ".cost_per_gb: must be a finite number >= 0");
    }
    if (e.bandwidth_mbps && (!std::isfinite(*e.bandwidth_mbps) || *e.bandwidth_mbps <= 0)) {
      return invalid_argument(f + ".bandwidth_mbps: must be a finite number > 0");
    }
  }
  return Status::ok();
}

}  // namespace patronus::model
