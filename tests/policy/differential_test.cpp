// The compiled classifier against the reference evaluator: 1,000,000 random (source,
// destination, protocol, port) tuples over 100 random policy sets and inventories (fixed seeds),
// and the same agreement after random incremental updates.
#include <gtest/gtest.h>

#include <iostream>

#include "patronus/policy/classifier.hpp"
#include "patronus/policy/parse.hpp"
#include "patronus/policy/reference.hpp"
#include "random_policies.hpp"

namespace patronus::policy {
namespace {

std::string describe(const Inventory& inv, const Endpoint& e) {
  std::string s = e.pod >= 0 ? inv.pods[static_cast<std::size_t>(e.pod)].key() : "external";
  if (e.ip) s += "@" + e.ip->to_string();
  return s;
}

TEST(Differential, MillionTuplesAgree) {
  std::size_t allowed = 0, total = 0;
  for (std::uint64_t scenario = 0; scenario < 100; ++scenario) {
    test::PolicyGen gen(1000 + scenario, test::scenario_spec(scenario));
    const Inventory inv = gen.inventory();
    const std::vector<NetworkPolicy> policies = gen.policies();
    const ReferenceEvaluator ref(policies, inv);
    const Classifier cls(policies, inv);
    for (int i = 0; i < 10000; ++i) {
      const auto t = gen.tuple(inv);
      const bool want = ref.allowed(t.src, t.dst, t.protocol, t.port);
      const bool got = cls.allowed(t.src, t.dst, t.protocol, t.port);
      ASSERT_EQ(got, want) << "scenario " << scenario << " tuple " << i << ": "
                           << describe(inv, t.src) << " -> " << describe(inv, t.dst) << " "
                           << to_string(t.protocol) << "/" << t.port;
      allowed += want;
      ++total;
    }
  }
  EXPECT_EQ(total, 1000000u);
  std::cout << "allowed " << allowed << " of " << total << " tuples" << std::endl;
  // Both outcomes are well represented (a generator that only allows proves nothing).
  EXPECT_GT(allowed, total / 10);
  EXPECT_LT(allowed, total * 9 / 10);
}

TEST(Differential, StoredSpecRoundTripKeepsSemantics) {
  // Every random policy survives spec JSON -> store -> policy_from_spec_json with the same
  // verdicts (and the same canonical JSON).
  for (std::uint64_t scenario = 0; scenario < 30; ++scenario) {
    test::PolicyGen gen(5000 + scenario, {});
    const Inventory inv = gen.inventory();
    const std::vector<NetworkPolicy> policies = gen.policies();
    std::vector<NetworkPolicy> reloaded;
    for (const auto& p : policies) {
      const std::string j = spec_to_json(p);
      auto back = policy_from_spec_json(p.name, p.namespace_, j, p.enabled, p.priority);
      ASSERT_TRUE(back.is_ok()) << back.status().to_string() << "\n" << j;
      EXPECT_EQ(back.value().spec_json, j);
      reloaded.push_back(std::move(back).value());
    }
    const ReferenceEvaluator a(policies, inv), b(reloaded, inv);
    for (int i = 0; i < 2000; ++i) {
      const auto t = gen.tuple(inv);
      ASSERT_EQ(a.allowed(t.src, t.dst, t.protocol, t.port),
                b.allowed(t.src, t.dst, t.protocol, t.port))
          << "scenario " << scenario << " tuple " << i;
    }
  }
}

TEST(Differential, IncrementalUpdatesEqualAFreshCompile) {
  for (std::uint64_t scenario = 0; scenario < 30; ++scenario) {
    test::RandomSpec spec;
    spec.pods = 15;
    spec.policies = 10;
    test::PolicyGen gen(9000 + scenario, spec);
    Classifier inc(gen.policies(), gen.inventory());
    int next_policy = 100, next_pod = 100;
    for (int step = 0; step < 40; ++step) {
      gen.change(inc, next_policy, next_pod);
      const Classifier fresh(inc.policies(), inc.inventory());
      const ReferenceEvaluator ref(inc.policies(), inc.inventory());
      for (int i = 0; i < 300; ++i) {
        const auto t = gen.tuple(inc.inventory());
        const bool want = ref.allowed(t.src, t.dst, t.protocol, t.port);
        ASSERT_EQ(inc.allowed(t.src, t.dst, t.protocol, t.port), want)
            << "scenario " << scenario << " step " << step << ": "
            << describe(inc.inventory(), t.src) << " -> " << describe(inc.inventory(), t.dst) << " "
            << to_string(t.protocol) << "/" << t.port;
        ASSERT_EQ(fresh.allowed(t.src, t.dst, t.protocol, t.port), want);
      }
    }
    // The updates stayed incremental: a pod in a new namespace or identity overflow would
    // recompile, which this workload does not need often.
    EXPECT_LE(inc.stats().full_compiles, 10u);
  }
}

}  // namespace
}  // namespace patronus::policy
