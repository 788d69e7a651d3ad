// Kubernetes manifests in: accepted forms, defaults, and API-server-style field-path errors.
#include <gtest/gtest.h>

#include "patronus/policy/parse.hpp"

namespace patronus::policy {
namespace {

Result<Manifests> parse(const std::string& yaml) {
  return parse_manifests(yaml, "in.yaml");
}

std::string np(const std::string& spec, const std::string& meta = "{name: p, namespace: x}") {
  return "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: " + meta + "\nspec:\n" +
         spec;
}

TEST(PolicyParse, DefaultsAndForms) {
  auto m = parse(np("  podSelector: {}\n  egress:\n  - {}\n") + "---\n" +
                 np("  podSelector: {}\n", "{name: q}") + "---\n" +
                 np("  podSelector: {}\n  policyTypes: [Egress]\n  ingress: [{}]\n",
                    "{name: r, namespace: x}") +
                 "---\n");
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  ASSERT_EQ(m.value().policies.size(), 3u);
  const auto& p = m.value().policies[0];
  EXPECT_TRUE(p.affects_ingress);  // always, when policyTypes is omitted
  EXPECT_TRUE(p.affects_egress);   // because it has egress rules
  ASSERT_EQ(p.egress.size(), 1u);
  EXPECT_TRUE(p.egress[0].peers.empty());
  EXPECT_TRUE(p.egress[0].ports.empty());
  const auto& q = m.value().policies[1];
  EXPECT_EQ(q.namespace_, "default");
  EXPECT_TRUE(q.affects_ingress);
  EXPECT_FALSE(q.affects_egress);
  const auto& r = m.value().policies[2];
  EXPECT_FALSE(r.affects_ingress);  // explicit policyTypes win
  EXPECT_TRUE(r.affects_egress);
  EXPECT_EQ(r.spec_json,
            R"({"egress":[],"ingress":[{}],"podSelector":{},"policyTypes":["Egress"]})");
  // spec.podSelector omitted: the API server's default, the empty selector (every pod of the
  // namespace), stored as such.
  auto d = parse(np("  ingress: []\n"));
  ASSERT_TRUE(d.is_ok()) << d.status().to_string();
  EXPECT_TRUE(d.value().policies[0].pod_selector.match_labels.empty());
  EXPECT_TRUE(d.value().policies[0].pod_selector.match_expressions.empty());
  EXPECT_EQ(d.value().policies[0].spec_json,
            R"({"ingress":[],"podSelector":{},"policyTypes":["Ingress"]})");
}

TEST(PolicyParse, PortsPeersAndAnnotations) {
  auto m = parse(np(R"(  podSelector:
    matchExpressions:
    - {key: app, operator: In, values: [web, api]}
    - {key: canary, operator: DoesNotExist}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {team: a}}
      podSelector: {matchLabels: {role: client}}
    - ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}
    - ipBlock: {cidr: "fd00::/8"}
    ports:
    - port: 80
    - {protocol: UDP, port: dns}
    - {protocol: SCTP, port: 1000, endPort: 2000}
    - protocol: UDP
)",
                    "{name: p, namespace: x, annotations: {patronus.io/enabled: \"false\", "
                    "patronus.io/priority: \"7\"}}"));
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  const auto& p = m.value().policies[0];
  EXPECT_FALSE(p.enabled);
  EXPECT_EQ(p.priority, 7);
  ASSERT_EQ(p.pod_selector.match_expressions.size(), 2u);
  EXPECT_EQ(p.pod_selector.match_expressions[1].op, Op::kDoesNotExist);
  const auto& rule = p.ingress.at(0);
  ASSERT_EQ(rule.peers.size(), 3u);
  EXPECT_TRUE(rule.peers[0].namespace_selector && rule.peers[0].pod_selector);
  EXPECT_EQ(rule.peers[1].ip_block->except.at(0).to_string(), "10.1.0.0/16");
  EXPECT_FALSE(rule.peers[2].ip_block->cidr.is_v4());
  ASSERT_EQ(rule.ports.size(), 4u);
  EXPECT_EQ(rule.ports[0].protocol, Protocol::kTcp);  // default
  EXPECT_EQ(*rule.ports[0].port, 80);
  EXPECT_EQ(rule.ports[1].port_name, "dns");
  EXPECT_EQ(*rule.ports[2].end_port, 2000);
  EXPECT_FALSE(rule.ports[3].port.has_value());
}

TEST(PolicyParse, ListsNamespacesAndPods) {
  auto m = parse(R"(apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Namespace
  metadata: {name: x, labels: {team: a}}
- apiVersion: v1
  kind: Pod
  metadata: {name: a, namespace: x, labels: {pod: a}, uid: 1234, resourceVersion: "9"}
  spec:
    nodeName: n1
    containers:
    - name: c
      image: nginx
      ports:
      - {name: serve-80-tcp, containerPort: 80}
      - {name: serve-81-udp, containerPort: 81, protocol: UDP}
  status:
    phase: Running
    podIP: 10.0.0.5
    podIPs: [{ip: 10.0.0.5}, {ip: "fd00::5"}]
)");
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  ASSERT_EQ(m.value().namespaces.size(), 1u);
  EXPECT_EQ(m.value().namespaces[0].labels.at("kubernetes.io/metadata.name"), "x");
  EXPECT_EQ(m.value().namespaces[0].labels.at("team"), "a");
  ASSERT_EQ(m.value().pods.size(), 1u);
  const Pod& pod = m.value().pods[0];
  ASSERT_EQ(pod.ips.size(), 2u);  // podIP and podIPs, deduplicated
  EXPECT_EQ(pod.ips[1].to_string(), "fd00::5");
  EXPECT_EQ(pod.named_port("serve-81-udp", Protocol::kUdp), 81);
  EXPECT_FALSE(pod.named_port("serve-81-udp", Protocol::kTcp).has_value());
  // A pod's namespace without a manifest gets the automatic label.
  Manifests only_pod;
  only_pod.pods.push_back(pod);
  only_pod.pods[0].namespace_ = "y";
  const Inventory inv = make_inventory(only_pod);
  EXPECT_EQ(inv.namespace_labels("y").at("kubernetes.io/metadata.name"), "y");
}

struct Bad {
  const char* spec;
  const char* expect;
};

class PolicyParseErrors : public ::testing::TestWithParam<Bad> {};

TEST_P(PolicyParseErrors, FieldPathAndMessage) {
  auto m = parse(np(GetParam().spec));
  ASSERT_FALSE(m.is_ok()) << GetParam().spec;
  EXPECT_NE(m.status().message().find(GetParam().expect), std::string::npos)
      << m.status().message();
  EXPECT_EQ(m.status().message().rfind("in.yaml: document 1 (NetworkPolicy x/p): ", 0), 0u)
      << m.status().message();
}

const Bad kBad[] = {
    {"  podSelector: {}\n  ingress:\n  - ports:\n    - port: 80\n    - {port: 90, endPort: 80}\n",
     "spec.ingress[0].ports[1].endPort: must be greater than or equal to port"},
    {"  podSelector: {}\n  ingress:\n  - ports: [{port: http, endPort: 90}]\n",
     "spec.ingress[0].ports[0].endPort: may not be specified when `port` is non-numeric"},
    {"  podSelector: {}\n  egress:\n  - ports: [{endPort: 90}]\n",
     "spec.egress[0].ports[0].endPort: may not be specified when `port` is not specified"},
    {"  podSelector: {}\n  ingress:\n  - ports: [{port: 70000}]\n",
     "spec.ingress[0].ports[0].port: must be between 1 and 65535, inclusive"},
    {"  podSelector: {}\n  ingress:\n  - ports: [{port: \"80\"}]\n",
     "spec.ingress[0].ports[0].port: '80': a named port"},
    {"  podSelector: {}\n  ingress:\n  - ports: [{protocol: ICMP}]\n",
     "spec.ingress[0].ports[0].protocol: Unsupported value: \"ICMP\""},
    {"  podSelector: {}\n  ingress:\n  - from: [{}]\n",
     "spec.ingress[0].from[0]: must specify a peer"},
    {"  podSelector: {}\n  ingress:\n  - from:\n    - ipBlock: {cidr: 10.0.0.0/8}\n      "
     "podSelector: {}\n",
     "spec.ingress[0].from[0]: may not specify more than 1 peer"},
    {"  podSelector: {}\n  ingress:\n  - from: [{ipBlock: {cidr: 10.0.0.0/33}}]\n",
     "spec.ingress[0].from[0].ipBlock.cidr: must be a valid CIDR"},
    {"  podSelector: {}\n  ingress:\n  - from: [{ipBlock: {except: [10.0.0.0/9]}}]\n",
     "spec.ingress[0].from[0].ipBlock.cidr: Required value"},
    {"  podSelector: {}\n  egress:\n  - to: [{ipBlock: {cidr: 10.0.0.0/8, except: "
     "[10.0.0.0/8]}}]\n",
     "spec.egress[0].to[0].ipBlock.except[0]: must be a strict subset of `cidr`"},
    {"  podSelector: {}\n  egress:\n  - to: [{ipBlock: {cidr: 10.0.0.0/8, except: "
     "[11.0.0.0/16]}}]\n",
     "spec.egress[0].to[0].ipBlock.except[0]: must be a strict subset of `cidr`"},
    {"  podSelector:\n    matchExpressions: [{key: a, operator: In}]\n",
     "spec.podSelector.matchExpressions[0].values: must be specified when `operator` is 'In' or "
     "'NotIn'"},
    {"  podSelector:\n    matchExpressions: [{key: a, operator: Exists, values: [x]}]\n",
     "spec.podSelector.matchExpressions[0].values: may not be specified when `operator` is "
     "'Exists' or 'DoesNotExist'"},
    {"  podSelector:\n    matchExpressions: [{key: a, operator: Equals, values: [x]}]\n",
     "spec.podSelector.matchExpressions[0].operator: 'Equals' is not a valid selector operator"},
    {"  podSelector: {matchLabels: {\"-bad\": x}}\n", "spec.podSelector.matchLabels.-bad: '-bad'"},
    {"  podSelector: {matchLabels: {app: \"x y\"}}\n", "spec.podSelector.matchLabels.app: 'x y'"},
    {"  podSelector: {}\n  policyTypes: [Ingress, Outgress]\n",
     "spec.policyTypes[1]: Unsupported value: \"Outgress\""},
    {"  podSelector: {}\n  ingres: []\n", "spec.ingres: unknown field"},
    {"  podSelector: {}\n  ingress:\n  - fromm: []\n", "spec.ingress[0].fromm: unknown field"},
    {"  podSelector: []\n", "spec.podSelector"},
};

INSTANTIATE_TEST_SUITE_P(All, PolicyParseErrors, ::testing::ValuesIn(kBad));

TEST(PolicyParse, DocumentLevelErrors) {
  auto e = parse("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n");
  ASSERT_FALSE(e.is_ok());
  EXPECT_NE(e.status().message().find("document 1: kind Deployment is not accepted here"),
            std::string::npos)
      << e.status().message();
  e = parse(np("  podSelector: {}\n") + "---\n" + np("  podSelector: {}\n"));
  ASSERT_FALSE(e.is_ok());
  EXPECT_NE(e.status().message().find("document 2 (NetworkPolicy x/p): defined twice"),
            std::string::npos);
  e = parse(np("  podSelector: {}\n", "{name: Bad_Name, namespace: x}"));
  ASSERT_FALSE(e.is_ok());
  EXPECT_NE(e.status().message().find("metadata.name: 'Bad_Name': must be a DNS-1123 subdomain"),
            std::string::npos);
  e = parse(
      "apiVersion: networking.k8s.io/v1beta1\nkind: NetworkPolicy\nmetadata: {name: p}\n"
      "spec: {podSelector: {}}\n");
  ASSERT_FALSE(e.is_ok());
  EXPECT_NE(e.status().message().find("needs \"networking.k8s.io/v1\""), std::string::npos);
  e = parse_manifests(np("  podSelector: {}\n"), "f", Accept::kInventory);
  ASSERT_FALSE(e.is_ok());
  EXPECT_NE(e.status().message().find("(Namespace, Pod, List)"), std::string::npos);
  e = parse("apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nstatus: {podIP: 10.0.0.300}\n");
  ASSERT_FALSE(e.is_ok());
  EXPECT_NE(e.status().message().find("status.podIP: must be a valid IP address"),
            std::string::npos);
  e = parse(
      "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers:\n  - ports:\n"
      "    - {name: web, containerPort: 80}\n    - {name: web, containerPort: 81}\n");
  ASSERT_FALSE(e.is_ok());
  EXPECT_NE(e.status().message().find("spec.containers[0].ports[1].name: Duplicate value"),
            std::string::npos);
  // Alias amplification is bounded: 1000 rules x 1000 peers x 1000 expressions written with
  // 3000 aliases would be 10^9 items; refused by the element budget, quickly.
  auto repeat = [](const std::string& first, const std::string& again) {
    std::string out = first;
    for (int i = 1; i < 1000; ++i) out += ", " + again;
    return out;
  };
  const std::string bomb =
      np("  podSelector: {}\n  egress: [" +
         repeat("&r {to: [" +
                    repeat("&p {podSelector: {matchExpressions: [" +
                               repeat("&e {key: k, operator: In, values: [a]}", "*e") + "]}}",
                           "*p") +
                    "]}",
                "*r") +
         "]\n");
  e = parse(bomb);
  ASSERT_FALSE(e.is_ok());
  EXPECT_NE(e.status().message().find("list items in all"), std::string::npos)
      << e.status().message().substr(0, 300);
  e = parse("kind: [\n");
  ASSERT_FALSE(e.is_ok());
  EXPECT_NE(e.status().message().find("not valid YAML"), std::string::npos);
}

}  // namespace
}  // namespace patronus::policy
