// The reference evaluator: the NetworkPolicy rules applied directly, one policy and one rule at a
// time, written to be read against the Kubernetes documentation. It is the oracle the compiled
// classifier is tested against, and it explains its verdicts (`patronus policy check`).
//
// A connection from `src` to `dst` on (protocol, port) is allowed when the source's egress AND
// the destination's ingress allow it:
//  - a direction is checked only for a pod end (an external IP has no policies);
//  - a pod is isolated for a direction only if an enabled policy of its own namespace selects it
//    (spec.podSelector) and has that policy type; a pod that is not isolated allows everything
//    that way;
//  - an isolated pod allows what any rule of any such policy allows (rules are additive); a rule
//    matches when a peer matches the other end (or the rule has no peers) and a port matches (or
//    the rule has no ports);
//  - peers: ipBlock matches the other end's IP (cidr minus except); selectors match pods only:
//    podSelector alone selects in the policy's namespace, namespaceSelector alone selects every
//    pod of matching namespaces, both together select matching pods in matching namespaces;
//  - ports: the protocol must be equal; a numeric port (with endPort: a range) or a named port
//    resolved against the destination pod's container ports of that protocol (never matches an
//    external destination); no port: every port of the protocol.
#pragma once

#include <string>
#include <vector>

#include "patronus/policy/model.hpp"

namespace patronus::policy {

struct RuleRef {
  int policy = -1;  // index into the policy list
  int rule = -1;    // index into its ingress or egress rules
};

struct DirectionResult {
  bool checked = false;   // false: the end is not a pod
  bool isolated = false;  // some enabled policy selects the pod for this direction
  bool allowed = true;
  std::vector<int> policies;        // the isolating policies
  std::vector<RuleRef> allowed_by;  // every rule that allows the connection
};

struct Verdict {
  bool allowed = false;
  DirectionResult egress;   // of the source
  DirectionResult ingress;  // of the destination
};

class ReferenceEvaluator {
 public:
  ReferenceEvaluator(const std::vector<NetworkPolicy>& policies, const Inventory& inventory)
      : policies_(policies), inv_(inventory) {}
  Verdict evaluate(const Endpoint& src, const Endpoint& dst, Protocol protocol,
                   std::int32_t port) const;
  bool allowed(const Endpoint& src, const Endpoint& dst, Protocol protocol,
               std::int32_t port) const {
    return evaluate(src, dst, protocol, port).allowed;
  }

  bool peer_matches(const NetworkPolicy& p, const Peer& peer, const Endpoint& other) const;
  static bool port_matches(const PolicyPort& pp, Protocol protocol, std::int32_t port,
                           const Pod* dst_pod);

 private:
  DirectionResult direction(const Endpoint& self, const Endpoint& other, bool ingress,
                            Protocol protocol, std::int32_t port, const Pod* dst_pod) const;
  const std::vector<NetworkPolicy>& policies_;
  const Inventory& inv_;
};

}  // namespace patronus::policy
