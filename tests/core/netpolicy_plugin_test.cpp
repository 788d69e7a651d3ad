// The netpolicy plugin through the policy kind of the ABI: load a document, classify flows by
// address; a bad document is refused with its field path and the previous set stays in force.
#include <gtest/gtest.h>

#include "patronus/core/plugin_host.hpp"
#include "patronus/core/router.hpp"
#include "patronus/env/virtual_world.hpp"
#include "patronus/model/address.hpp"
#include "test_support.hpp"

namespace {

using namespace patronus;

const char* kDoc = R"(apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web}}
spec: {containers: [{name: c, ports: [{name: http, containerPort: 8080}]}]}
status: {podIP: 10.0.0.10}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: shop, labels: {app: db}}
status: {podIP: 10.0.0.20}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-from-web, namespace: shop}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: web}}}]
    ports: [{port: 5432}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-from-lb, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{ipBlock: {cidr: 192.0.2.0/24}}]
    ports: [{port: http}]
)";

class NetpolicyPlugin : public ::testing::Test {
 protected:
  void SetUp() override {
    auto l = reg_.load_file(test::plugin_dir() + "/libpatronus-netpolicy.so");
    ASSERT_TRUE(l.is_ok()) << l.status().to_string();
    ASSERT_EQ(l.value()->info().kind, core::PluginKind::kPolicy);
    ASSERT_TRUE(router_.add_plugin(l.value(), "k8s", "").is_ok());
    ASSERT_TRUE(router_.start().is_ok());
  }
  Result<bool> flow(const std::string& src, const std::string& dst, std::uint8_t proto = 6) {
    patronus_flow_tuple t{};
    t.protocol = proto;
    t.src = model::SocketAddress::parse(src).value().to_abi();
    t.dst = model::SocketAddress::parse(dst).value().to_abi();
    return router_.evaluate_policy("k8s", t);
  }
  core::PluginRegistry reg_;
  env::VirtualWorld world_{1};
  core::RouterInstance router_{world_.add_node("a", {}), "a"};
};

TEST_F(NetpolicyPlugin, ClassifiesFlowsByAddress) {
  EXPECT_FALSE(flow("10.0.0.10:40000", "10.0.0.20:5432").is_ok());  // nothing loaded yet
  ASSERT_TRUE(router_.load_policy("k8s", kDoc).is_ok());
  EXPECT_TRUE(flow("10.0.0.10:40000", "10.0.0.20:5432").value());
  EXPECT_FALSE(flow("10.0.0.10:40000", "10.0.0.20:5433").value());
  EXPECT_FALSE(flow("192.0.2.7:40000", "10.0.0.20:5432").value());
  EXPECT_TRUE(flow("192.0.2.7:40000", "10.0.0.10:8080").value());  // named port http
  EXPECT_FALSE(flow("192.0.2.7:40000", "10.0.0.10:80").value());
  EXPECT_FALSE(flow("198.51.100.1:40000", "10.0.0.10:8080").value());
  EXPECT_TRUE(flow("10.0.0.20:40000", "198.51.100.1:443").value());  // egress not isolated
  auto icmp = flow("10.0.0.10:0", "10.0.0.20:0", 1);
  ASSERT_FALSE(icmp.is_ok());
  // Not TCP, UDP or SCTP: refused as an invalid argument (the ABI carries only the code).
  EXPECT_EQ(icmp.status().code(), Code::kInvalidArgument);
}

TEST_F(NetpolicyPlugin, BadDocumentKeepsThePreviousSet) {
  ASSERT_TRUE(router_.load_policy("k8s", kDoc).is_ok());
  const std::string bad = std::string(kDoc) +
                          "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: "
                          "{name: x, namespace: shop}\nspec: {podSelector: {}, ingress: [{from: "
                          "[{ipBlock: {cidr: nonsense}}]}]}\n";
  auto s = router_.load_policy("k8s", bad);
  ASSERT_FALSE(s.is_ok());
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_NE(s.message().find("spec.ingress[0].from[0].ipBlock.cidr: must be a valid CIDR"),
            std::string::npos)
      << s.message();
  EXPECT_TRUE(flow("10.0.0.10:40000", "10.0.0.20:5432").value());
  EXPECT_FALSE(flow("10.0.0.10:40000", "10.0.0.20:5433").value());
}

}  // namespace
