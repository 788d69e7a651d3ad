// The NetworkPolicy benchmarks' world: 10,000 random policies over 1,000 pods in 100 namespaces
// (tests/policy/random_policies.hpp, fixed seed) and 20,000 random tuples.
#pragma once

#include "../policy/random_policies.hpp"

namespace patronus::test {

struct World {
  policy::Inventory inv;
  std::vector<policy::NetworkPolicy> policies;
  std::vector<PolicyGen::Tuple> tuples;
};

inline const World& world() {
  static const World w = [] {
    RandomSpec spec;
    spec.namespaces = 100;
    spec.pods = 1000;
    spec.policies = 10000;
    spec.label_values = 4;
    PolicyGen gen(2026, spec);
    World out;
    out.inv = gen.inventory();
    out.policies = gen.policies();
    for (int i = 0; i < 20000; ++i) out.tuples.push_back(gen.tuple(out.inv));
    return out;
  }();
  return w;
}

}  // namespace patronus::test
