// `patronus policy ...` and the daemon's stored-policy reload, as a user runs them.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "patronus/store/store.hpp"
#include "test_support.hpp"

namespace {

using namespace patronus;
using nlohmann::json;
using test::run;

std::string cli() {
  return test::bin_dir() + "/patronus";
}

const char* kInventory = R"(apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Namespace, metadata: {name: x}}
- {apiVersion: v1, kind: Namespace, metadata: {name: y, labels: {team: b}}}
- apiVersion: v1
  kind: Pod
  metadata: {name: a, namespace: x, labels: {pod: a}}
  spec: {containers: [{name: c, ports: [{name: serve-80, containerPort: 80}]}]}
  status: {podIP: 10.1.0.1}
- apiVersion: v1
  kind: Pod
  metadata: {name: b, namespace: x, labels: {pod: b}}
  spec: {containers: [{name: c, ports: [{name: serve-80, containerPort: 8080}]}]}
  status: {podIP: 10.1.0.2}
- apiVersion: v1
  kind: Pod
  metadata: {name: a, namespace: y, labels: {pod: a}}
  status: {podIP: 10.2.0.1}
)";

const char* kPolicies = R"(apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-b, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from: [{podSelector: {matchLabels: {pod: b}}}]
    ports: [{port: 80}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-y, namespace: y}
spec: {podSelector: {}, policyTypes: [Ingress, Egress]}
)";

class PolicyCli : public ::testing::Test {
 protected:
  void SetUp() override {
    test::write_file(dir_.file("inv.yaml"), kInventory);
    test::write_file(dir_.file("pol.yaml"), kPolicies);
  }
  test::TempDir dir_;
};

TEST_F(PolicyCli, MatrixJsonHasExactlyTheDocumentedShape) {
  auto r = run({cli(), "policy", "matrix", "--policies", dir_.file("pol.yaml"), "--inventory",
                dir_.file("inv.yaml"), "--probe", "tcp/80", "--probe", "tcp/serve-80", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = json::parse(r.out);
  ASSERT_EQ(j.size(), 1u);
  ASSERT_TRUE(j.contains("probes"));
  ASSERT_EQ(j["probes"].size(), 2u);
  const json want80 = {
      {"x/a", {{"x/a", false}, {"x/b", true}, {"y/a", false}}},
      {"x/b", {{"x/a", true}, {"x/b", true}, {"y/a", false}}},
      {"y/a", {{"x/a", false}, {"x/b", false}, {"y/a", false}}},
  };
  EXPECT_EQ(j["probes"]["tcp/80"], want80);
  // By name: x/b's serve-80 is 8080 (allowed: x/b is not isolated); y/a has no such port.
  EXPECT_EQ(j["probes"]["tcp/serve-80"]["x/a"]["x/b"], true);
  EXPECT_EQ(j["probes"]["tcp/serve-80"]["x/b"]["x/a"], true);
  EXPECT_EQ(j["probes"]["tcp/serve-80"]["x/a"]["y/a"], false);
  // Text: a grid, one row per source pod.
  r = run({cli(), "policy", "matrix", "--policies", dir_.file("pol.yaml"), "--inventory",
           dir_.file("inv.yaml"), "--probe", "tcp/80"});
  ASSERT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("x/a    X   .   X"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("x/b    .   .   X"), std::string::npos) << r.out;
}

TEST_F(PolicyCli, CheckExplainsVerdicts) {
  auto r = run({cli(), "policy", "check", "--policies", dir_.file("pol.yaml"), "--inventory",
                dir_.file("inv.yaml"), "--from", "x/b", "--to", "x/a", "--protocol", "tcp",
                "--port", "80", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = json::parse(r.out);
  EXPECT_EQ(j["allowed"], true);
  EXPECT_EQ(j["ingress"]["isolated"], true);
  EXPECT_EQ(j["ingress"]["allowed_by"][0]["policy"], "x/allow-b");
  EXPECT_EQ(j["ingress"]["allowed_by"][0]["rule"], "ingress[0]");
  EXPECT_EQ(j["egress"]["isolated"], false);
  r = run({cli(), "policy", "check", "--policies", dir_.file("pol.yaml"), "--inventory",
           dir_.file("inv.yaml"), "--from", "x/b", "--to", "x/a", "--port", "81"});
  ASSERT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("DENIED: x/b -> x/a TCP/81"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("isolated by x/allow-b; no ingress rule"), std::string::npos) << r.out;
  // IP ends: a pod's IP is the pod; any other address is external.
  r = run({cli(), "policy", "check", "--policies", dir_.file("pol.yaml"), "--inventory",
           dir_.file("inv.yaml"), "--from", "10.1.0.2", "--to", "192.0.2.1", "--port", "443"});
  EXPECT_NE(r.out.find("ALLOWED: x/b -> 192.0.2.1"), std::string::npos) << r.out;
  r = run({cli(), "policy", "check", "--policies", dir_.file("pol.yaml"), "--inventory",
           dir_.file("inv.yaml"), "--from", "y/a", "--to", "192.0.2.1", "--port", "443"});
  EXPECT_NE(r.out.find("DENIED"), std::string::npos);
  EXPECT_NE(r.out.find("egress of y/a: DENIED: isolated by y/deny-y"), std::string::npos) << r.out;
  r = run({cli(), "policy", "check", "--policies", dir_.file("pol.yaml"), "--inventory",
           dir_.file("inv.yaml"), "--from", "x/zz", "--to", "x/a", "--port", "80"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--from 'x/zz': no such pod"), std::string::npos);
}

TEST_F(PolicyCli, ValidateNamesTheField) {
  auto r = run({cli(), "policy", "validate", dir_.file("pol.yaml"), dir_.file("inv.yaml")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("valid: 2 NetworkPolicy, 2 Namespace, 3 Pod"), std::string::npos);
  test::write_file(dir_.file("bad.yaml"), std::string(kPolicies) + R"(---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: ranges, namespace: x}
spec:
  podSelector: {}
  ingress:
  - ports:
    - port: 80
    - {port: 100, endPort: 90}
)");
  r = run({cli(), "policy", "validate", dir_.file("bad.yaml")});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("bad.yaml: document 3 (NetworkPolicy x/ranges): "
                       "spec.ingress[0].ports[1].endPort: must be greater than or equal to port"),
            std::string::npos)
      << r.err;
}

// spec.podSelector omitted: the API server defaults it to {}, so the policy selects (and here, with
// no ingress rule, isolates) every pod of its namespace. validate accepts it; check shows it.
TEST_F(PolicyCli, AnOmittedPodSelectorSelectsEveryPodOfTheNamespace) {
  test::write_file(dir_.file("nosel.yaml"), R"(apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: x}
spec:
  policyTypes: [Ingress]
)");
  auto r = run({cli(), "policy", "validate", dir_.file("nosel.yaml")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* to : {"x/a", "x/b"}) {
    r = run({cli(), "policy", "check", "--policies", dir_.file("nosel.yaml"), "--inventory",
             dir_.file("inv.yaml"), "--from", "y/a", "--to", to, "--port", "80", "--json"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto j = json::parse(r.out);
    EXPECT_EQ(j["allowed"], false) << to;
    EXPECT_EQ(j["ingress"]["isolated"], true) << to;
  }
  // A pod of another namespace is not selected.
  r = run({cli(), "policy", "check", "--policies", dir_.file("nosel.yaml"), "--inventory",
           dir_.file("inv.yaml"), "--from", "x/a", "--to", "y/a", "--port", "80", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["allowed"], true);
}

TEST_F(PolicyCli, ApplyStoresAndReloads) {
  const std::string db = dir_.file("s.db");
  // A bad file stores nothing (not even the good policies before the bad one).
  test::write_file(
      dir_.file("bad.yaml"),
      std::string(kPolicies) +
          "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: "
          "{name: bad, namespace: x}\nspec: {podSelector: {}, policyTypes: [Sideways]}\n");
  auto r = run({cli(), "policy", "apply", "--db", db, dir_.file("bad.yaml")});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_FALSE(test::file_exists(db));
  r = run({cli(), "policy", "apply", "--db", db, dir_.file("pol.yaml")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("stored 2 policies"), std::string::npos);
  r = run({cli(), "policy", "list", "--db", db, "--json"});
  ASSERT_EQ(r.exit_code, 0);
  auto j = json::parse(r.out);
  ASSERT_EQ(j["policies"].size(), 2u);
  EXPECT_EQ(j["policies"][0]["name"], "allow-b");
  EXPECT_EQ(j["policies"][0]["spec"]["policyTypes"], json::array({"Ingress"}));
  // The stored set gives the same matrix as the files.
  auto from_files = run({cli(), "policy", "matrix", "--policies", dir_.file("pol.yaml"),
                         "--inventory", dir_.file("inv.yaml"), "--probe", "tcp/80", "--json"});
  auto from_db = run({cli(), "policy", "matrix", "--db", db, "--inventory", dir_.file("inv.yaml"),
                      "--probe", "tcp/80", "--json"});
  ASSERT_EQ(from_db.exit_code, 0) << from_db.err;
  EXPECT_EQ(json::parse(from_files.out), json::parse(from_db.out));
  // Re-applying with the policy disabled replaces it (UNIQUE(name, namespace)).
  test::write_file(dir_.file("off.yaml"),
                   "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: "
                   "deny-y, namespace: y, annotations: {patronus.io/enabled: \"false\", "
                   "patronus.io/priority: \"5\"}}\nspec: {podSelector: {}, policyTypes: [Ingress, "
                   "Egress]}\n");
  ASSERT_EQ(run({cli(), "policy", "apply", "--db", db, dir_.file("off.yaml")}).exit_code, 0);
  auto st = store::Store::open(db);
  ASSERT_TRUE(st.is_ok());
  EXPECT_EQ(st.value()->count_rows("policies").value(), 2);
  auto rows = st.value()->list_policies().value();
  EXPECT_FALSE(rows[1].enabled);
  EXPECT_EQ(rows[1].priority, 5);
  r = run({cli(), "policy", "check", "--db", db, "--inventory", dir_.file("inv.yaml"), "--from",
           "y/a", "--to", "x/b", "--port", "80"});
  EXPECT_NE(r.out.find("ALLOWED"), std::string::npos) << r.out;
  // The same policy in a file and in the database is ambiguous: refused.
  r = run({cli(), "policy", "matrix", "--db", db, "--policies", dir_.file("pol.yaml"),
           "--inventory", dir_.file("inv.yaml"), "--probe", "tcp/80"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("is both in --policies and in the database"), std::string::npos);
  ASSERT_EQ(run({cli(), "policy", "delete", "--db", db, "y/deny-y"}).exit_code, 0);
  EXPECT_EQ(run({cli(), "policy", "delete", "--db", db, "y/deny-y"}).exit_code, 1);
}

TEST_F(PolicyCli, DaemonReloadsStoredPoliciesOnStart) {
  const std::string db = dir_.file("hq.db");
  ASSERT_EQ(run({cli(), "policy", "apply", "--db", db, dir_.file("pol.yaml")}).exit_code, 0);
  test::write_file(dir_.file("d.yaml"),
                   "site: hq\nstate_db: " + db +
                       "\ncontrol_socket: none\nplugin_dir: " + test::plugin_dir() +
                       "\npolicy_inventory: [inv.yaml]\nplugins:\n"
                       "  - plugin: netpolicy\n    name: k8s\n");
  // An unreadable inventory is a configuration error: nothing starts, nothing is recorded.
  test::write_file(dir_.file("bad.yaml"),
                   "site: hq\nstate_db: " + db +
                       "\ncontrol_socket: none\nplugin_dir: " + test::plugin_dir() +
                       "\npolicy_inventory: [missing.yaml]\nplugins:\n"
                       "  - plugin: netpolicy\n");
  auto bad = run({test::bin_dir() + "/patronusd", "--config", dir_.file("bad.yaml")});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("policy_inventory: " + dir_.file("missing.yaml") + ": cannot open"),
            std::string::npos)
      << bad.err;
  for (int start = 0; start < 2; ++start) {  // a restart reloads the same set
    auto r =
        run({test::bin_dir() + "/patronusd", "--config", dir_.file("d.yaml"), "--run-for", "0.2"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  auto r = run({cli(), "events", "--db", db, "--json", "--limit", "20"});
  ASSERT_EQ(r.exit_code, 0);
  const auto ev = json::parse(r.out)["events"];
  int loaded = 0;
  for (const auto& e : ev) {
    if (e["kind"] == "policy.loaded") {
      ++loaded;
      EXPECT_EQ(e["payload"], "{\"policies\":2,\"inventory_files\":1}");
    }
  }
  EXPECT_EQ(loaded, 2);
  // A stored spec that no longer validates stops the daemon with the field named.
  {
    auto st = store::Store::open(db);
    model::NetworkPolicyRecord bad;
    bad.name = "broken";
    bad.namespace_ = "x";
    bad.spec_json = R"({"podSelector": {}, "ingress": [{"ports": [{"port": 0}]}]})";
    ASSERT_TRUE(st.value()->save_policies({bad}).is_ok());
  }
  r = run({test::bin_dir() + "/patronusd", "--config", dir_.file("d.yaml"), "--run-for", "0.2"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("spec.ingress[0].ports[0].port: must be between 1 and 65535"),
            std::string::npos)
      << r.err;
}

// --- the eBPF datapath from the CLI
// ---------------------------------------------------------------

TEST_F(PolicyCli, MatrixThroughTheBpfDatapathEqualsTheUserspaceOne) {
  if (::geteuid() != 0) GTEST_SKIP() << "the eBPF datapath needs root";
  std::vector<std::string> argv = {cli(),
                                   "policy",
                                   "matrix",
                                   "--policies",
                                   dir_.file("pol.yaml"),
                                   "--inventory",
                                   dir_.file("inv.yaml"),
                                   "--probe",
                                   "tcp/80",
                                   "--probe",
                                   "tcp/serve-80",
                                   "--probe",
                                   "udp/80",
                                   "--json"};
  const auto user = run(argv);
  ASSERT_EQ(user.exit_code, 0) << user.err;
  argv.insert(argv.end(), {"--datapath", "bpf"});
  const auto bpf = run(argv);
  ASSERT_EQ(bpf.exit_code, 0) << bpf.err;
  EXPECT_EQ(json::parse(bpf.out), json::parse(user.out));
  // Not every cell is the same answer (the comparison means something).
  EXPECT_TRUE(json::parse(user.out)["probes"]["tcp/80"]["x/b"]["x/a"].get<bool>());
  EXPECT_FALSE(json::parse(user.out)["probes"]["tcp/80"]["y/a"]["x/a"].get<bool>());
}

TEST_F(PolicyCli, BpfDatapathWithoutCapabilitiesSaysWhatIsMissing) {
  // As root, the commands run without any capability (setpriv empties the bounding set); as
  // another user, as that user.
  std::vector<std::string> prefix;
  if (::geteuid() == 0) prefix = {"/usr/bin/setpriv", "--bounding-set=-all", "--"};
  auto as_user = [&](std::vector<std::string> args) {
    std::vector<std::string> argv = prefix;
    argv.push_back(cli());
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv);
  };
  const std::vector<std::string> matrix = {"policy",      "matrix",
                                           "--policies",  dir_.file("pol.yaml"),
                                           "--inventory", dir_.file("inv.yaml"),
                                           "--probe",     "tcp/80"};
  auto with_bpf = matrix;
  with_bpf.insert(with_bpf.end(), {"--datapath", "bpf"});
  const auto refused = as_user(with_bpf);
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("needs root (CAP_BPF and CAP_NET_ADMIN); this process lacks CAP_BPF "
                             "and CAP_NET_ADMIN"),
            std::string::npos)
      << refused.err;
  EXPECT_EQ(refused.out, "");
  // Userspace evaluation keeps working for the same user.
  const auto userspace = as_user(matrix);
  EXPECT_EQ(userspace.exit_code, 0) << userspace.err;
  const auto enforce = as_user({"policy", "enforce", "--interface", "lo", "--policies",
                                dir_.file("pol.yaml"), "--inventory", dir_.file("inv.yaml")});
  EXPECT_EQ(enforce.exit_code, 1);
  EXPECT_NE(enforce.err.find("needs root"), std::string::npos) << enforce.err;
}

TEST_F(PolicyCli, EnforceRefusesAMissingInterfaceAndLeavesNothing) {
  if (::geteuid() != 0) GTEST_SKIP() << "the eBPF datapath needs root";
  const std::string name = "cli-test-" + std::to_string(::getpid());
  // In a mount namespace of its own: where /sys/fs/bpf has no BPF filesystem the enforcer mounts
  // one, and a test must not change the machine's mounts.
  const auto r = run({"unshare", "--mount", "--propagation", "private", cli(), "policy", "enforce",
                      "--interface", "nope-" + std::to_string(::getpid() % 100000), "--policies",
                      dir_.file("pol.yaml"), "--inventory", dir_.file("inv.yaml"), "--name", name});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("interface 'nope-"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists("/sys/fs/bpf/patronus/" + name));
  EXPECT_FALSE(std::filesystem::exists("/run/patronus/policy/" + name + ".json"));
  const auto counters = run({cli(), "policy", "counters", "--name", name});
  EXPECT_EQ(counters.exit_code, 1);
  EXPECT_NE(counters.err.find("no running enforcer '" + name + "'"), std::string::npos)
      << counters.err;
  const auto bad_name = run({cli(), "policy", "counters", "--name", "../etc"});
  EXPECT_EQ(bad_name.exit_code, 2);
}

}  // namespace
