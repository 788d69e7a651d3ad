// NetworkPolicy semantics, one rule at a time, on both engines (reference and compiled).
#include <gtest/gtest.h>

#include "patronus/policy/classifier.hpp"
#include "patronus/policy/parse.hpp"
#include "patronus/policy/reference.hpp"

namespace patronus::policy {
namespace {

// Namespaces x (team a) and y (team b); pods x/a, x/b, y/a, y/b labelled pod=<name>, x/a also
// app=web; every pod serves "http" on TCP 8080 except y/b on 9090.
const char* kInventory = R"(
apiVersion: v1
kind: Namespace
metadata: {name: x, labels: {team: a}}
---
apiVersion: v1
kind: Namespace
metadata: {name: y, labels: {team: b}}
---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: x, labels: {pod: a, app: web}}
spec: {containers: [{name: c, ports: [{name: http, containerPort: 8080}]}]}
status: {podIP: 10.0.1.1}
---
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: x, labels: {pod: b}}
spec: {containers: [{name: c, ports: [{name: http, containerPort: 8080}]}]}
status: {podIP: 10.0.1.2}
---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: y, labels: {pod: a}}
spec: {containers: [{name: c, ports: [{name: http, containerPort: 8080}]}]}
status: {podIP: 10.0.2.1}
---
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: y, labels: {pod: b}}
spec: {containers: [{name: c, ports: [{name: http, containerPort: 9090}]}]}
status: {podIP: 10.0.2.2}
)";

class Semantics : public ::testing::Test {
 protected:
  void use(const std::string& policies) {
    auto p = parse_manifests(policies, "p");
    ASSERT_TRUE(p.is_ok()) << p.status().to_string();
    policies_ = p.value().policies;
    auto i = parse_manifests(kInventory, "i");
    ASSERT_TRUE(i.is_ok()) << i.status().to_string();
    inv_ = make_inventory(std::move(i).value());
  }
  Endpoint end(const std::string& s) const {
    const auto slash = s.find('/');
    if (slash != std::string::npos) {
      return Endpoint::for_pod(inv_, inv_.find_pod(s.substr(0, slash), s.substr(slash + 1)));
    }
    return Endpoint::for_ip(inv_, model::IpAddress::parse(s).value());
  }
  // Both engines must agree; returns their verdict.
  bool ok(const std::string& from, const std::string& to, int port,
          Protocol proto = Protocol::kTcp) {
    const ReferenceEvaluator ref(policies_, inv_);
    const Classifier cls(policies_, inv_);
    const bool r = ref.allowed(end(from), end(to), proto, port);
    EXPECT_EQ(cls.allowed(end(from), end(to), proto, port), r) << from << " -> " << to;
    return r;
  }
  std::vector<NetworkPolicy> policies_;
  Inventory inv_;
};

std::string np(const std::string& ns, const std::string& name, const std::string& spec,
               const std::string& annotations = "") {
  return "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: " + name +
         ", namespace: " + ns + annotations + "}\nspec:\n" + spec;
}

TEST_F(Semantics, NoPolicyAllowsEverything) {
  use("");
  EXPECT_TRUE(ok("x/a", "y/b", 1));
  EXPECT_TRUE(ok("192.0.2.1", "x/a", 80));
}

TEST_F(Semantics, IsolationIsPerDirection) {
  use(np("x", "deny-in", "  podSelector: {}\n  ingress: []\n"));
  EXPECT_FALSE(ok("y/a", "x/a", 80));
  EXPECT_FALSE(ok("x/b", "x/a", 80));
  EXPECT_TRUE(ok("x/a", "y/a", 80));  // egress of x is not isolated
  EXPECT_FALSE(ok("192.0.2.1", "x/a", 80));
}

TEST_F(Semantics, PolicyOnlyAppliesInItsNamespace) {
  use(np("y", "deny-in", "  podSelector: {matchLabels: {pod: a}}\n  ingress: []\n"));
  EXPECT_TRUE(ok("x/b", "x/a", 80));
  EXPECT_FALSE(ok("x/b", "y/a", 80));
}

TEST_F(Semantics, SelectorsInOnePeerIntersectInTwoPeersUnite) {
  // One peer: pods labelled pod=a in namespaces of team b -> only y/a.
  use(np("x", "one", R"(  podSelector: {matchLabels: {pod: b}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {team: b}}
      podSelector: {matchLabels: {pod: a}}
)"));
  EXPECT_TRUE(ok("y/a", "x/b", 80));
  EXPECT_FALSE(ok("y/b", "x/b", 80));
  EXPECT_FALSE(ok("x/a", "x/b", 80));
  // Two peers: every pod of team b, or pod=a in the policy's own namespace.
  use(np("x", "two", R"(  podSelector: {matchLabels: {pod: b}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {team: b}}
    - podSelector: {matchLabels: {pod: a}}
)"));
  EXPECT_TRUE(ok("y/a", "x/b", 80));
  EXPECT_TRUE(ok("y/b", "x/b", 80));
  EXPECT_TRUE(ok("x/a", "x/b", 80));
  EXPECT_FALSE(ok("192.0.2.9", "x/b", 80));  // selectors never match an external IP
}

TEST_F(Semantics, MatchExpressions) {
  use(np("x", "expr", R"(  podSelector: {matchLabels: {pod: b}}
  ingress:
  - from:
    - namespaceSelector: {}
      podSelector:
        matchExpressions:
        - {key: app, operator: NotIn, values: [web]}
)"));
  EXPECT_FALSE(ok("x/a", "x/b", 80));  // app=web
  EXPECT_TRUE(ok("y/a", "x/b", 80));   // no app label: NotIn matches
  use(np("x", "expr", R"(  podSelector: {matchLabels: {pod: b}}
  ingress:
  - from:
    - podSelector:
        matchExpressions: [{key: app, operator: Exists}]
)"));
  EXPECT_TRUE(ok("x/a", "x/b", 80));
  EXPECT_FALSE(ok("y/a", "x/b", 80));  // other namespace (no namespaceSelector)
}

TEST_F(Semantics, EgressAndIngressMustBothAllow) {
  use(np("x", "egress-a", R"(  podSelector: {matchLabels: {pod: a}}
  policyTypes: [Egress]
  egress:
  - to: [{namespaceSelector: {matchLabels: {team: b}}}]
)") + np("y", "ingress-b", R"(  podSelector: {matchLabels: {pod: b}}
  ingress:
  - from: [{namespaceSelector: {matchLabels: {team: a}}, podSelector: {matchLabels: {pod: b}}}]
)"));
  EXPECT_TRUE(ok("x/a", "y/a", 80));
  EXPECT_FALSE(ok("x/a", "y/b", 80));  // egress allows, ingress of y/b only from x/b
  EXPECT_TRUE(ok("x/b", "y/b", 80));
  EXPECT_FALSE(ok("x/a", "x/b", 80));  // egress of x/a denies
}

TEST_F(Semantics, IpBlockWithExcept) {
  use(np("x", "cidr", R"(  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from: [{ipBlock: {cidr: 10.0.0.0/16, except: [10.0.2.0/24]}}]
)"));
  EXPECT_TRUE(ok("x/b", "x/a", 80));   // pod IP 10.0.1.2 is inside
  EXPECT_FALSE(ok("y/a", "x/a", 80));  // 10.0.2.1 is excepted
  EXPECT_TRUE(ok("10.0.9.9", "x/a", 80));
  EXPECT_FALSE(ok("10.1.0.1", "x/a", 80));
  EXPECT_FALSE(ok("fd00::1", "x/a", 80));
}

TEST_F(Semantics, NamedPortsResolveAgainstTheDestination) {
  use(np("y", "named", R"(  podSelector: {}
  ingress:
  - ports: [{port: http}]
)"));
  EXPECT_TRUE(ok("x/a", "y/a", 8080));
  EXPECT_FALSE(ok("x/a", "y/a", 9090));
  EXPECT_TRUE(ok("x/a", "y/b", 9090));  // y/b's http is 9090
  EXPECT_FALSE(ok("x/a", "y/b", 8080));
  // Egress: resolved against the destination pod; an external destination never matches.
  use(np("x", "egress-named", R"(  podSelector: {matchLabels: {pod: a}}
  egress:
  - ports: [{port: http}]
)"));
  EXPECT_TRUE(ok("x/a", "y/b", 9090));
  EXPECT_FALSE(ok("x/a", "y/a", 9090));
  EXPECT_FALSE(ok("x/a", "192.0.2.1", 8080));
}

TEST_F(Semantics, ProtocolsAndEndPort) {
  use(np("x", "ports", R"(  podSelector: {}
  ingress:
  - ports:
    - {port: 1000, endPort: 1010}
    - {protocol: UDP}
    - {protocol: SCTP, port: 81}
)"));
  EXPECT_TRUE(ok("y/a", "x/a", 1000));
  EXPECT_TRUE(ok("y/a", "x/a", 1010));
  EXPECT_FALSE(ok("y/a", "x/a", 1011));
  EXPECT_TRUE(ok("y/a", "x/a", 5, Protocol::kUdp));
  EXPECT_TRUE(ok("y/a", "x/a", 81, Protocol::kSctp));
  EXPECT_FALSE(ok("y/a", "x/a", 81, Protocol::kTcp));  // SCTP is not TCP
  EXPECT_FALSE(ok("y/a", "x/a", 1000, Protocol::kSctp));
}

TEST_F(Semantics, RulesAreAdditiveAndEmptyListsDeny) {
  use(np("x", "deny", "  podSelector: {}\n  ingress: []\n") +
      np("x", "allow-b", R"(  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from: [{podSelector: {matchLabels: {pod: b}}}]
)"));
  EXPECT_TRUE(ok("x/b", "x/a", 80));
  EXPECT_FALSE(ok("y/a", "x/a", 80));
  EXPECT_FALSE(ok("x/a", "x/b", 80));
  // An empty rule allows everything, whatever else is there.
  use(np("x", "deny", "  podSelector: {}\n  ingress: []\n") +
      np("x", "all", "  podSelector: {}\n  ingress:\n  - {}\n"));
  EXPECT_TRUE(ok("y/b", "x/a", 1));
}

TEST_F(Semantics, DisabledPolicyHasNoEffect) {
  use(np("x", "deny", "  podSelector: {}\n  ingress: []\n",
         ", annotations: {patronus.io/enabled: \"false\"}"));
  EXPECT_TRUE(ok("y/a", "x/a", 80));
}

TEST_F(Semantics, EgressTypeOnlyWithEgressRulesWhenOmitted) {
  // policyTypes omitted and no egress rules: the policy does not isolate egress.
  use(np("x", "in-only", "  podSelector: {}\n  ingress: [{}]\n"));
  EXPECT_TRUE(ok("x/a", "192.0.2.1", 443));
  // Explicit Egress with no rules: egress denied.
  use(np("x", "out", "  podSelector: {}\n  policyTypes: [Egress]\n"));
  EXPECT_FALSE(ok("x/a", "192.0.2.1", 443));
  EXPECT_FALSE(ok("x/a", "y/a", 443));
  EXPECT_TRUE(ok("y/a", "x/a", 443));
}

}  // namespace
}  // namespace patronus::policy
