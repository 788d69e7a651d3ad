// Kubernetes manifest ingest on hostile bytes. Whatever parses must also compile, and the
// compiled classifier must agree with the reference evaluator on every pod pair it can form.
#include <cstdlib>
#include <string>

#include "patronus/policy/classifier.hpp"
#include "patronus/policy/parse.hpp"
#include "patronus/policy/reference.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace patronus::policy;
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto m = parse_manifests(text, "fuzz");
  if (!m.is_ok()) return 0;
  if (m.value().pods.size() > 16 || m.value().policies.size() > 32) return 0;
  auto policies = m.value().policies;
  for (const auto& p : policies) {
    // Stored form round trip must succeed for anything the parser accepted.
    if (!policy_from_spec_json(p.name, p.namespace_, p.spec_json, p.enabled, p.priority).is_ok()) {
      std::abort();
    }
  }
  const Inventory inv = make_inventory(std::move(m).value());
  const Classifier cls(policies, inv);
  const ReferenceEvaluator ref(policies, inv);
  const int n = static_cast<int>(inv.pods.size());
  for (int s = 0; s < n; ++s) {
    for (int d = 0; d < n; ++d) {
      for (int port : {80, 81, 443}) {
        const auto a = Endpoint::for_pod(inv, s), b = Endpoint::for_pod(inv, d);
        if (cls.allowed(a, b, Protocol::kTcp, port) != ref.allowed(a, b, Protocol::kTcp, port)) {
          std::abort();
        }
      }
    }
  }
  return 0;
}
