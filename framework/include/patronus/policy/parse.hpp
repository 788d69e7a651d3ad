// Kubernetes YAML in: multi-document files of NetworkPolicy, Namespace and Pod manifests (and
// `kind: List` of them), validated like the API server validates them. Errors name the input,
// the object and the field path ("spec.ingress[0].ports[1].endPort: must be greater than or
// equal to port"); nothing is returned on error.
#pragma once

#include <string>
#include <vector>

#include "patronus/model/types.hpp"
#include "patronus/policy/model.hpp"
#include "patronus/util/status.hpp"

namespace patronus::policy {

struct Manifests {
  std::vector<NetworkPolicy> policies;
  std::vector<Namespace> namespaces;
  std::vector<Pod> pods;
};

enum class Accept { kPolicies, kInventory, kAny };

// Bounds on hostile input.
constexpr std::size_t kMaxDocuments = 200000;
constexpr std::size_t kMaxListItems = 10000;   // rules, peers, ports, values, ... per list
constexpr std::size_t kMaxEvents = 50000000;   // YAML events (scalars, maps, ...) per input
constexpr std::size_t kMaxAliases = 10000;     // YAML aliases per input
constexpr std::size_t kMaxElements = 2000000;  // list items in all, aliases counted each time

// `origin` names the input in errors. Duplicate objects (same kind, namespace and name) are
// errors.
Result<Manifests> parse_manifests(const std::string& text, const std::string& origin,
                                  Accept accept = Accept::kAny);
// Reads and merges several files (duplicates across files are errors too).
Result<Manifests> load_manifests(const std::vector<std::string>& files, Accept accept);
// An inventory (namespaces completed with the ones pods name) from manifests.
Inventory make_inventory(Manifests m);

// The canonical spec JSON of a policy (defaults made explicit: policyTypes, protocol).
std::string spec_to_json(const NetworkPolicy& policy);

// The stored form: the canonical spec JSON of a policy, and a policy rebuilt from it (as when
// the store is reloaded; validated again).
Result<NetworkPolicy> policy_from_spec_json(const std::string& name, const std::string& ns,
                                            const std::string& spec_json, bool enabled,
                                            std::int32_t priority);

// Stored policies as one multi-document YAML text of NetworkPolicy manifests (enabled and
// priority as patronus.io/ annotations): what patronusd hands a policy plugin on start.
std::string stored_policies_document(const std::vector<model::NetworkPolicyRecord>& rows);

}  // namespace patronus::policy
