#include "patronus/policy/model.hpp"

#include "patronus/util/enum_table.hpp"

#include <algorithm>
#include <set>

namespace patronus::policy {

bool LabelSelector::matches(const Labels& labels) const {
  for (const auto& [k, v] : match_labels) {
    const auto it = labels.find(k);
    if (it == labels.end() || it->second != v) return false;
  }
  for (const auto& r : match_expressions) {
    const auto it = labels.find(r.key);
    const bool has = it != labels.end();
    switch (r.op) {
      case Op::kIn:
        if (!has || std::find(r.values.begin(), r.values.end(), it->second) == r.values.end()) {
          return false;
        }
        break;
      case Op::kNotIn:
        if (has && std::find(r.values.begin(), r.values.end(), it->second) != r.values.end()) {
          return false;
        }
        break;
      case Op::kExists:
        if (!has) return false;
        break;
      case Op::kDoesNotExist:
        if (has) return false;
        break;
    }
  }
  return true;
}

namespace {
constexpr EnumTable<Protocol, 3> kProtocols{{
    {"TCP", Protocol::kTcp},
    {"UDP", Protocol::kUdp},
    {"SCTP", Protocol::kSctp},
}};
}  // namespace

const char* to_string(Protocol p) {
  return enum_name(p, kProtocols);
}

std::optional<Protocol> parse_protocol(std::string_view text) {
  return find_enum(text, kProtocols);
}

bool IpBlock::contains(const model::IpAddress& ip) const {
  if (!cidr.contains(ip)) return false;
  for (const auto& e : except) {
    if (e.contains(ip)) return false;
  }
  return true;
}

std::optional<std::int32_t> Pod::named_port(std::string_view n, Protocol protocol) const {
  for (const auto& p : ports) {
    if (p.name == n && p.protocol == protocol) return p.port;
  }
  return std::nullopt;
}

const Labels* Inventory::find_namespace_labels(const std::string& name) const {
  for (const auto& ns : namespaces) {
    if (ns.name == name) return &ns.labels;
  }
  return nullptr;
}

Labels Inventory::namespace_labels(const std::string& name) const {
  const Labels* l = find_namespace_labels(name);
  return l ? *l : Labels{{kNamespaceNameLabel, name}};
}

int Inventory::find_pod(std::string_view ns, std::string_view name) const {
  for (std::size_t i = 0; i < pods.size(); ++i) {
    if (pods[i].namespace_ == ns && pods[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

int Inventory::find_pod_by_ip(const model::IpAddress& ip) const {
  for (std::size_t i = 0; i < pods.size(); ++i) {
    for (const auto& a : pods[i].ips) {
      if (a == ip) return static_cast<int>(i);
    }
  }
  return -1;
}

void Inventory::complete_namespaces() {
  std::set<std::string> known;
  for (const auto& ns : namespaces) known.insert(ns.name);
  for (const auto& p : pods) {
    if (known.insert(p.namespace_).second) {
      namespaces.push_back(Namespace{p.namespace_, Labels{{kNamespaceNameLabel, p.namespace_}}});
    }
  }
}

Endpoint Endpoint::for_pod(const Inventory& inv, int pod) {
  Endpoint e;
  e.pod = pod;
  const auto& ips = inv.pods[static_cast<std::size_t>(pod)].ips;
  if (!ips.empty()) e.ip = ips.front();
  return e;
}

Endpoint Endpoint::for_ip(const Inventory& inv, const model::IpAddress& ip) {
  Endpoint e;
  e.pod = inv.find_pod_by_ip(ip);
  e.ip = ip;
  return e;
}

}  // namespace patronus::policy
