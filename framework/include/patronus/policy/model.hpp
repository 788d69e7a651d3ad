// Kubernetes NetworkPolicy (networking.k8s.io/v1) and the inventory it applies to (namespaces
// with labels, pods with labels, IPs and named container ports), as plain values.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "patronus/model/address.hpp"

namespace patronus::policy {

using Labels = std::map<std::string, std::string>;

enum class Op : std::uint8_t { kIn, kNotIn, kExists, kDoesNotExist };

struct Requirement {
  std::string key;
  Op op = Op::kExists;
  std::vector<std::string> values;
};

// matchLabels AND every matchExpression; an empty selector matches everything.
struct LabelSelector {
  Labels match_labels;
  std::vector<Requirement> match_expressions;
  bool matches(const Labels& labels) const;
  bool empty() const { return match_labels.empty() && match_expressions.empty(); }
};

enum class Protocol : std::uint8_t { kTcp = 6, kUdp = 17, kSctp = 132 };
const char* to_string(Protocol p);                              // "TCP", "UDP", "SCTP"
std::optional<Protocol> parse_protocol(std::string_view text);  // exact, upper case

struct IpBlock {
  model::IpPrefix cidr;
  std::vector<model::IpPrefix> except;
  bool contains(const model::IpAddress& ip) const;
};

// One entry of a rule's `ports`. No port and no name: every port of the protocol.
struct PolicyPort {
  Protocol protocol = Protocol::kTcp;
  std::optional<std::int32_t> port;  // numeric port
  std::string port_name;             // named port (resolved against the destination pod)
  std::optional<std::int32_t> end_port;
};

// One entry of `from` / `to`. Selectors without ipBlock; ipBlock alone.
struct Peer {
  std::optional<LabelSelector> pod_selector;
  std::optional<LabelSelector> namespace_selector;
  std::optional<IpBlock> ip_block;
};

// An ingress or egress rule. No peers: every source/destination. No ports: every port.
struct Rule {
  std::vector<Peer> peers;
  std::vector<PolicyPort> ports;
};

struct NetworkPolicy {
  std::string name;
  std::string namespace_;
  LabelSelector pod_selector;
  bool affects_ingress = true;  // from policyTypes (or its default)
  bool affects_egress = false;
  std::vector<Rule> ingress;
  std::vector<Rule> egress;
  // Ours, from annotations: patronus.io/enabled ("true"/"false"), patronus.io/priority (int).
  bool enabled = true;
  std::int32_t priority = 0;
  // The manifest's spec as canonical JSON (what the store keeps).
  std::string spec_json;
  std::string key() const { return namespace_ + "/" + name; }
};

struct ContainerPort {
  std::string name;  // "" if unnamed
  std::int32_t port = 0;
  Protocol protocol = Protocol::kTcp;
};

struct Pod {
  std::string name;
  std::string namespace_;
  Labels labels;
  std::vector<model::IpAddress> ips;  // status.podIPs (status.podIP first)
  std::vector<ContainerPort> ports;
  std::string key() const { return namespace_ + "/" + name; }
  // The port number a named port resolves to for `protocol`, or nullopt.
  std::optional<std::int32_t> named_port(std::string_view name, Protocol protocol) const;
};

// The label every namespace carries (set by the API server since Kubernetes 1.21).
inline constexpr const char* kNamespaceNameLabel = "kubernetes.io/metadata.name";

struct Namespace {
  std::string name;
  Labels labels;  // always includes kubernetes.io/metadata.name = name
};

struct Inventory {
  std::vector<Namespace> namespaces;
  std::vector<Pod> pods;
  // Namespace labels by name; a namespace no manifest defines (only named by pods) has just the
  // automatic kubernetes.io/metadata.name label.
  Labels namespace_labels(const std::string& name) const;
  // The labels of a defined namespace, or nullptr (no copy: the evaluators' path).
  const Labels* find_namespace_labels(const std::string& name) const;
  int find_pod(std::string_view ns, std::string_view name) const;
  int find_pod_by_ip(const model::IpAddress& ip) const;
  // Adds namespaces that pods name but no manifest defines.
  void complete_namespaces();
};

// A connection end: a pod (index into Inventory::pods) and/or an IP. A pod end uses `ip` for
// ipBlock matching (its first IP when built by for_pod); an external end has pod < 0.
struct Endpoint {
  int pod = -1;
  std::optional<model::IpAddress> ip;
  static Endpoint for_pod(const Inventory& inv, int pod);
  static Endpoint for_ip(const Inventory& inv, const model::IpAddress& ip);  // resolves pod IPs
};

}  // namespace patronus::policy
