// Random NetworkPolicy sets and inventories (fixed seeds) for the differential tests and the
// benchmarks. Everything the semantics distinguish shows up: empty and non-empty selectors, all
// four operators, selector peers alone and together, ipBlocks with excepts over both families,
// named and numeric ports with endPort, every protocol, explicit and defaulted policyTypes, empty
// rule lists, disabled policies, policies in namespaces without pods.
#pragma once

#include <random>
#include <string>
#include <vector>

#include "patronus/policy/classifier.hpp"
#include "patronus/policy/model.hpp"

namespace patronus::test {

struct RandomSpec {
  int namespaces = 5;
  int pods = 20;
  int policies = 12;
  int label_values = 3;  // values per label key
};

// The million-tuple workloads' scenario `s` of 100: 3-6 namespaces, 8-30 pods, 1-17 policies.
inline RandomSpec scenario_spec(std::uint64_t s) {
  RandomSpec spec;
  spec.namespaces = 3 + static_cast<int>(s % 4);
  spec.pods = 8 + static_cast<int>(s % 23);
  spec.policies = 1 + static_cast<int>(s % 17);
  return spec;
}

class PolicyGen {
 public:
  PolicyGen(std::uint64_t seed, RandomSpec spec) : rng_(seed), spec_(spec) {}

  std::uint32_t below(std::uint32_t n) { return static_cast<std::uint32_t>(rng_() % n); }
  bool chance(int percent) { return below(100) < static_cast<std::uint32_t>(percent); }

  std::string ns_name(int i) const { return "ns" + std::to_string(i); }
  std::string value(int i) const { return "v" + std::to_string(i); }

  policy::Labels labels(const std::vector<std::string>& keys) {
    policy::Labels l;
    for (const auto& k : keys) {
      if (chance(60)) l[k] = value(static_cast<int>(below(spec_.label_values)));
    }
    return l;
  }

  policy::Inventory inventory() {
    policy::Inventory inv;
    for (int n = 0; n < spec_.namespaces; ++n) {
      policy::Namespace ns{ns_name(n), labels({"team", "env"})};
      ns.labels[policy::kNamespaceNameLabel] = ns.name;
      inv.namespaces.push_back(ns);
    }
    for (int i = 0; i < spec_.pods; ++i) inv.pods.push_back(pod(i));
    return inv;
  }

  policy::Pod pod(int i) {
    policy::Pod p;
    p.name = "p" + std::to_string(i);
    p.namespace_ = ns_name(static_cast<int>(below(spec_.namespaces)));
    p.labels = labels({"app", "tier", "role"});
    const int n = std::stoi(p.namespace_.substr(2));
    p.ips.push_back(model::IpAddress::v4((10u << 24) | (static_cast<std::uint32_t>(n) << 16) |
                                         static_cast<std::uint32_t>(i + 1)));
    if (chance(30)) {
      std::array<std::uint8_t, 16> b{0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
      b[2] = static_cast<std::uint8_t>(n);
      b[15] = static_cast<std::uint8_t>(i + 1);
      p.ips.push_back(model::IpAddress::v6(b));
    }
    static const struct {
      const char* name;
      int port;
      policy::Protocol proto;
    } kPorts[] = {{"http", 80, policy::Protocol::kTcp},   {"dns", 53, policy::Protocol::kUdp},
                  {"https", 443, policy::Protocol::kTcp}, {"pg", 5432, policy::Protocol::kTcp},
                  {"sig", 80, policy::Protocol::kSctp},   {"alt", 8080, policy::Protocol::kTcp}};
    for (const auto& k : kPorts) {
      if (chance(50)) {
        // The same name may map to different numbers on different pods.
        const int port = chance(20) ? k.port + 1 : k.port;
        p.ports.push_back({k.name, port, k.proto});
      }
    }
    return p;
  }

  policy::LabelSelector selector(const std::vector<std::string>& keys) {
    policy::LabelSelector s;
    if (chance(30)) return s;  // empty: everything
    for (const auto& k : keys) {
      if (chance(35)) s.match_labels[k] = value(static_cast<int>(below(spec_.label_values)));
    }
    const int exprs = static_cast<int>(below(3));
    for (int e = 0; e < exprs; ++e) {
      policy::Requirement r;
      r.key = keys[below(static_cast<std::uint32_t>(keys.size()))];
      r.op = static_cast<policy::Op>(below(4));
      if (r.op == policy::Op::kIn || r.op == policy::Op::kNotIn) {
        const int nv = 1 + static_cast<int>(below(2));
        for (int v = 0; v < nv; ++v) r.values.push_back(value(static_cast<int>(below(4))));
      }
      s.match_expressions.push_back(r);
    }
    return s;
  }

  model::IpPrefix prefix() {
    switch (below(6)) {
      case 0:
        return model::IpPrefix(model::IpAddress::v4(10u << 24), 8);
      case 1:
        return model::IpPrefix(model::IpAddress::v4((10u << 24) | (below(spec_.namespaces) << 16)),
                               16);
      case 2:
        return model::IpPrefix(model::IpAddress::v4((10u << 24) | (below(spec_.namespaces) << 16) |
                                                    (1 + below(spec_.pods))),
                               32);
      case 3:
        return model::IpPrefix(model::IpAddress::v4((10u << 24) | (below(spec_.namespaces) << 16) |
                                                    (below(spec_.pods) & ~3u)),
                               30);
      case 4: {
        std::array<std::uint8_t, 16> b{0xfd};
        return model::IpPrefix(model::IpAddress::v6(b), 8);
      }
      default: {
        std::array<std::uint8_t, 16> b{0xfd, 0, static_cast<std::uint8_t>(below(spec_.namespaces))};
        return model::IpPrefix(model::IpAddress::v6(b), 24);
      }
    }
  }

  policy::IpBlock ip_block() {
    policy::IpBlock b;
    b.cidr = prefix();
    const int ex = chance(50) ? static_cast<int>(below(3)) : 0;
    for (int i = 0; i < ex; ++i) {
      // A strict subset: lengthen the cidr and pick host bits.
      const int len =
          std::min(b.cidr.max_length(), b.cidr.length() + 1 + static_cast<int>(below(24)));
      if (len <= b.cidr.length()) continue;
      model::IpAddress a = b.cidr.at(b.cidr.is_v4() ? below(1u << std::min(20, b.cidr.host_bits()))
                                                    : below(1u << 20));
      b.except.push_back(model::IpPrefix(a, len));
    }
    return b;
  }

  policy::Rule rule() {
    policy::Rule r;
    if (chance(75)) {
      const int peers = 1 + static_cast<int>(below(3));
      for (int i = 0; i < peers; ++i) {
        policy::Peer p;
        switch (below(4)) {
          case 0:
            p.pod_selector = selector({"app", "tier", "role"});
            break;
          case 1:
            p.namespace_selector = selector({"team", "env", policy::kNamespaceNameLabel});
            if (p.namespace_selector->match_labels.empty() && chance(40)) {
              p.namespace_selector->match_labels[policy::kNamespaceNameLabel] =
                  ns_name(static_cast<int>(below(spec_.namespaces)));
            }
            break;
          case 2:
            p.pod_selector = selector({"app", "tier", "role"});
            p.namespace_selector = selector({"team", "env"});
            break;
          default:
            p.ip_block = ip_block();
        }
        r.peers.push_back(p);
      }
    }
    if (chance(65)) {
      const int ports = 1 + static_cast<int>(below(3));
      static const char* kNames[] = {"http", "dns", "https", "pg", "sig", "nope"};
      static const int kNums[] = {80, 53, 443, 5432, 8080, 81};
      for (int i = 0; i < ports; ++i) {
        policy::PolicyPort pp;
        pp.protocol = chance(60) ? policy::Protocol::kTcp
                                 : (chance(50) ? policy::Protocol::kUdp : policy::Protocol::kSctp);
        const auto kind = below(10);
        if (kind < 5) {
          pp.port = kNums[below(6)];
          if (chance(25)) pp.end_port = *pp.port + static_cast<int>(below(500));
        } else if (kind < 8) {
          pp.port_name = kNames[below(6)];
        }
        r.ports.push_back(pp);
      }
    }
    return r;
  }

  policy::NetworkPolicy policy(int i) {
    policy::NetworkPolicy p;
    p.name = "np" + std::to_string(i);
    // Sometimes a namespace that has no pods.
    p.namespace_ =
        ns_name(static_cast<int>(below(static_cast<std::uint32_t>(spec_.namespaces + 1))));
    p.pod_selector = selector({"app", "tier", "role"});
    const int ni = chance(15) ? 0 : static_cast<int>(below(3));
    const int ne = chance(15) ? 0 : static_cast<int>(below(3));
    for (int k = 0; k < ni; ++k) p.ingress.push_back(rule());
    for (int k = 0; k < ne; ++k) p.egress.push_back(rule());
    switch (below(4)) {
      case 0:  // policyTypes omitted
        p.affects_ingress = true;
        p.affects_egress = !p.egress.empty();
        break;
      case 1:
        p.affects_ingress = true;
        p.affects_egress = false;
        break;
      case 2:
        p.affects_ingress = false;
        p.affects_egress = true;
        break;
      default:
        p.affects_ingress = p.affects_egress = true;
    }
    p.enabled = !chance(10);
    return p;
  }

  std::vector<policy::NetworkPolicy> policies() {
    std::vector<policy::NetworkPolicy> out;
    for (int i = 0; i < spec_.policies; ++i) out.push_back(policy(i));
    return out;
  }

  struct Tuple {
    policy::Endpoint src, dst;
    policy::Protocol protocol;
    std::int32_t port;
  };

  policy::Endpoint end(const policy::Inventory& inv) {
    policy::Endpoint e;
    if (chance(80)) {
      int pod = -1;
      for (int tries = 0; tries < 8 && pod < 0; ++tries) {
        const auto i = static_cast<int>(below(static_cast<std::uint32_t>(inv.pods.size())));
        if (!inv.pods[static_cast<std::size_t>(i)].name.empty()) pod = i;
      }
      if (pod >= 0) {
        const auto& ips = inv.pods[static_cast<std::size_t>(pod)].ips;
        e.pod = pod;
        e.ip = ips[below(static_cast<std::uint32_t>(ips.size()))];
        return e;
      }
    }
    // External: inside or outside the pod ranges, never a pod's address.
    if (chance(70)) {
      e.ip = model::IpAddress::v4((10u << 24) | (below(8) << 16) | (200 + below(50)));
    } else if (chance(50)) {
      std::array<std::uint8_t, 16> b{0xfd, 0, static_cast<std::uint8_t>(below(8))};
      b[15] = static_cast<std::uint8_t>(200 + below(50));
      e.ip = model::IpAddress::v6(b);
    } else {
      e.ip = model::IpAddress::v4((192u << 24) | (168u << 16) | below(65536));
    }
    return e;
  }

  // One random change to a classifier, through its incremental operations: a policy changed,
  // added or removed, a pod relabelled (losing its named ports `drop_ports_percent` of the time),
  // added or removed.
  void change(policy::Classifier& c, int& next_policy, int& next_pod, int drop_ports_percent = 0) {
    const auto& pols = c.policies();
    const auto& pods = c.inventory().pods;
    switch (below(6)) {
      case 0: {
        policy::NetworkPolicy p = policy(0);
        const auto& victim = pols[below(static_cast<std::uint32_t>(pols.size()))];
        p.name = victim.name;
        p.namespace_ = victim.namespace_;
        c.upsert_policy(p);
        break;
      }
      case 1:
        c.upsert_policy(policy(next_policy++));
        break;
      case 2: {
        const auto& victim = pols[below(static_cast<std::uint32_t>(pols.size()))];
        const std::string ns = victim.namespace_, name = victim.name;
        (void)c.remove_policy(ns, name);
        break;
      }
      case 3: {
        const auto& victim = pods[below(static_cast<std::uint32_t>(pods.size()))];
        if (victim.name.empty()) break;
        policy::Pod p = victim;
        p.labels = labels({"app", "tier", "role"});
        if (drop_ports_percent > 0 && chance(drop_ports_percent)) p.ports.clear();
        c.upsert_pod(p);
        break;
      }
      case 4:
        c.upsert_pod(pod(next_pod++));
        break;
      default: {
        const auto& victim = pods[below(static_cast<std::uint32_t>(pods.size()))];
        if (victim.name.empty()) break;
        const std::string ns = victim.namespace_, name = victim.name;
        (void)c.remove_pod(ns, name);
      }
    }
  }

  Tuple tuple(const policy::Inventory& inv) {
    static const int kPorts[] = {80, 81, 53, 54, 443, 5432, 5433, 8080, 8081, 600, 1000};
    Tuple t{end(inv), end(inv), policy::Protocol::kTcp, kPorts[below(11)]};
    const auto p = below(10);
    t.protocol =
        p < 6 ? policy::Protocol::kTcp : (p < 8 ? policy::Protocol::kUdp : policy::Protocol::kSctp);
    return t;
  }

 private:
  std::mt19937_64 rng_;
  RandomSpec spec_;
};

}  // namespace patronus::test
