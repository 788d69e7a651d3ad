// Runs the conformance cases of tests/policy/conformance/*.yaml through the CLI
// (`patronus policy validate` and `patronus policy matrix --json`) and compares every ordered
// pod pair with the expected reachability. One gtest per case, registered at start-up.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <unistd.h>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "test_support.hpp"

namespace {

using patronus::test::run;

const std::vector<std::string> kNamespaces = {"x", "y", "z"};
const std::vector<std::string> kPods = {"a", "b", "c"};

bool matches(const std::string& pattern, const std::string& pod) {
  if (pattern == "*") return true;
  if (pattern.size() > 2 && pattern.substr(pattern.size() - 2) == "/*") {
    return pod.rfind(pattern.substr(0, pattern.size() - 1), 0) == 0;
  }
  return pattern == pod;
}

std::string inventory_yaml(const YAML::Node& c) {
  YAML::Emitter out;
  for (std::size_t n = 0; n < kNamespaces.size(); ++n) {
    out << YAML::BeginDoc << YAML::BeginMap << YAML::Key << "apiVersion" << YAML::Value << "v1"
        << YAML::Key << "kind" << YAML::Value << "Namespace" << YAML::Key << "metadata"
        << YAML::Value << YAML::BeginMap << YAML::Key << "name" << YAML::Value << kNamespaces[n];
    if (c["namespace_labels"] && c["namespace_labels"][kNamespaces[n]]) {
      out << YAML::Key << "labels" << YAML::Value << c["namespace_labels"][kNamespaces[n]];
    }
    out << YAML::EndMap << YAML::EndMap;
  }
  for (const auto& p : c["pods"]) {
    const std::string key = p.as<std::string>();
    const std::string ns = key.substr(0, key.find('/')), name = key.substr(key.find('/') + 1);
    const auto ni = std::find(kNamespaces.begin(), kNamespaces.end(), ns) - kNamespaces.begin();
    const auto pi = std::find(kPods.begin(), kPods.end(), name) - kPods.begin();
    out << YAML::BeginDoc << YAML::BeginMap << YAML::Key << "apiVersion" << YAML::Value << "v1"
        << YAML::Key << "kind" << YAML::Value << "Pod" << YAML::Key << "metadata" << YAML::Value
        << YAML::BeginMap << YAML::Key << "name" << YAML::Value << name << YAML::Key << "namespace"
        << YAML::Value << ns << YAML::Key << "labels" << YAML::Value << YAML::BeginMap << YAML::Key
        << "pod" << YAML::Value << name;
    if (c["pod_labels"] && c["pod_labels"][key]) {
      for (const auto& kv : c["pod_labels"][key]) {
        out << YAML::Key << kv.first.as<std::string>() << YAML::Value
            << kv.second.as<std::string>();
      }
    }
    out << YAML::EndMap << YAML::EndMap;
    out << YAML::Key << "spec" << YAML::Value << YAML::BeginMap << YAML::Key << "containers"
        << YAML::Value << YAML::BeginSeq << YAML::BeginMap << YAML::Key << "name" << YAML::Value
        << "agnhost" << YAML::Key << "ports" << YAML::Value << YAML::BeginSeq;
    for (int port : {80, 81}) {
      for (const char* proto : {"TCP", "UDP", "SCTP"}) {
        std::string lower = proto;
        std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
        out << YAML::BeginMap << YAML::Key << "name" << YAML::Value
            << "serve-" + std::to_string(port) + "-" + lower << YAML::Key << "containerPort"
            << YAML::Value << port << YAML::Key << "protocol" << YAML::Value << proto
            << YAML::EndMap;
      }
    }
    out << YAML::EndSeq << YAML::EndMap << YAML::EndSeq << YAML::EndMap;
    out << YAML::Key << "status" << YAML::Value << YAML::BeginMap << YAML::Key << "podIP"
        << YAML::Value << "10." + std::to_string(ni + 1) + ".0." + std::to_string(pi + 1)
        << YAML::EndMap << YAML::EndMap;
  }
  return out.c_str();
}

std::string policies_yaml(const YAML::Node& c) {
  YAML::Emitter out;
  for (const auto& p : c["policies"]) {
    out << YAML::BeginDoc << YAML::BeginMap << YAML::Key << "apiVersion" << YAML::Value
        << "networking.k8s.io/v1" << YAML::Key << "kind" << YAML::Value << "NetworkPolicy"
        << YAML::Key << "metadata" << YAML::Value << p["metadata"] << YAML::Key << "spec"
        << YAML::Value << p["spec"] << YAML::EndMap;
  }
  return out.c_str();
}

void run_case(const YAML::Node& c, bool bpf) {
  if (bpf && ::geteuid() != 0) GTEST_SKIP() << "the eBPF datapath needs root";
  patronus::test::TempDir dir;
  patronus::test::write_file(dir.file("inventory.yaml"), inventory_yaml(c));
  patronus::test::write_file(dir.file("policies.yaml"), policies_yaml(c));
  const std::string cli = patronus::test::bin_dir() + "/patronus";
  auto v = run({cli, "policy", "validate", dir.file("policies.yaml"), dir.file("inventory.yaml")});
  ASSERT_EQ(v.exit_code, 0) << v.err;
  std::vector<std::string> argv = {cli,
                                   "policy",
                                   "matrix",
                                   "--policies",
                                   dir.file("policies.yaml"),
                                   "--inventory",
                                   dir.file("inventory.yaml"),
                                   "--json"};
  for (const auto& probe : c["probes"]) {
    argv.push_back("--probe");
    argv.push_back(probe.first.as<std::string>());
  }
  if (bpf) {
    argv.push_back("--datapath");
    argv.push_back("bpf");
  }
  auto m = run(argv);
  ASSERT_EQ(m.exit_code, 0) << m.err;
  const auto j = nlohmann::json::parse(m.out);
  std::vector<std::string> pods;
  for (const auto& p : c["pods"]) pods.push_back(p.as<std::string>());
  for (const auto& probe : c["probes"]) {
    const std::string name = probe.first.as<std::string>();
    ASSERT_TRUE(j["probes"].contains(name)) << name;
    const auto& grid = j["probes"][name];
    ASSERT_EQ(grid.size(), pods.size());
    for (const auto& from : pods) {
      for (const auto& to : pods) {
        if (from == to) continue;  // loopback is ignored, as upstream does
        bool want = true;
        for (const auto& e : probe.second) {
          if (matches(e["from"].as<std::string>(), from) &&
              matches(e["to"].as<std::string>(), to)) {
            want = e["allowed"].as<bool>();
          }
        }
        EXPECT_EQ(grid[from][to].get<bool>(), want) << name << " " << from << " -> " << to << "\n"
                                                    << m.out;
      }
    }
  }
}

class CaseTest : public ::testing::Test {
 public:
  CaseTest(YAML::Node c, bool bpf) : c_(std::move(c)), bpf_(bpf) {}
  void TestBody() override { run_case(c_, bpf_); }

 private:
  YAML::Node c_;
  bool bpf_;
};

int register_cases() {
  const std::string dir = patronus::test::source_dir() + "/tests/policy/conformance";
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".yaml") continue;
    for (const auto& c : YAML::LoadAllFromFile(entry.path().string())) {
      std::string name = c["name"].as<std::string>();
      for (auto& ch : name) {
        if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
      }
      // Each case through the compiled classifier, and as packets through the eBPF programs.
      for (const bool bpf : {false, true}) {
        ::testing::RegisterTest(bpf ? "NetpolConformanceBpf" : "NetpolConformance", name.c_str(),
                                nullptr, c["upstream"].as<std::string>().c_str(), __FILE__,
                                __LINE__,
                                [c, bpf]() -> ::testing::Test* { return new CaseTest(c, bpf); });
      }
    }
  }
  return 0;
}

const int kRegistered = register_cases();

}  // namespace
