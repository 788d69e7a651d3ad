// The eBPF NetworkPolicy datapath (issue 12 targets), on the policy benchmarks' world (10,000
// random policies over 1,000 pods, tests/bench/policy_world.hpp), baselines in the same run:
//  - BM_PerPacketBpfVsNftables: the same IPv4 packets through a veth in a private network
//    namespace, received (1) with nothing attached, (2) with our tc program, (3) with an nftables
//    rule set generated from the same policies (netdev ingress: per-policy chains, peer and
//    named-port sets, per-pod dispatch maps). Per-packet cost = time over the bare path; counter
//    nft_over_bpf. Both are first checked packet by packet against the classifier (a rule set
//    that judged differently would be no baseline). Also the kernel's BPF_PROG_TEST_RUN time.
//  - BM_MapMemory: the live tables' kernel memory (memlock) per policy.
//  - BM_IncrementalVsReload: one policy changed, written incrementally vs a full reload (fresh
//    maps, generation switch), timed in the same loop; counter speedup.
// Root only (BPF, namespaces, nftables); a non-root run reports the reason and measures nothing.
#include <arpa/inet.h>
#include <benchmark/benchmark.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "patronus/policy/bpf_datapath.hpp"
#include "patronus/policy/classifier.hpp"
#include "policy_world.hpp"

namespace {

using namespace patronus;
using namespace patronus::policy;
using Clock = std::chrono::steady_clock;
using test::world;

bool can_run(benchmark::State& state) {
  if (const auto why = bpf::unavailable_reason(); !why.empty()) {
    state.SkipWithError(why.c_str());
    return false;
  }
  return true;
}

// IPv4 packets for tuples whose ends both have IPv4 addresses.
std::vector<bpf::Packet> v4_packets(std::size_t n) {
  std::vector<bpf::Packet> out;
  for (const auto& t : world().tuples) {
    if (!t.src.ip->is_v4() || !t.dst.ip->is_v4()) continue;
    bpf::Packet p;
    p.src = *t.src.ip;
    p.dst = *t.dst.ip;
    p.protocol = static_cast<std::uint8_t>(t.protocol);
    p.dport = static_cast<std::uint16_t>(t.port);
    out.push_back(p);
    if (out.size() == n) break;
  }
  return out;
}

// --- the nftables baseline -----------------------------------------------------------------------

std::string v4(const model::IpAddress& a) {
  return a.to_string();
}

// [lo, hi] ranges of an IPv4 block minus its excepts.
std::vector<std::pair<std::uint32_t, std::uint32_t>> block_ranges(const IpBlock& b) {
  auto span = [](const model::IpPrefix& p) {
    const std::uint32_t lo = p.network().v4_host_order();
    const std::uint32_t size_m1 =
        p.length() == 0 ? 0xffffffffu : (std::uint32_t{1} << (32 - p.length())) - 1;
    return std::make_pair(lo, lo + size_m1);
  };
  std::vector<std::pair<std::uint32_t, std::uint32_t>> out{span(b.cidr)};
  for (const auto& x : b.except) {
    if (!x.is_v4()) continue;
    const auto [xl, xh] = span(x);
    std::vector<std::pair<std::uint32_t, std::uint32_t>> next;
    for (const auto& [l, h] : out) {
      if (xh < l || xl > h) {
        next.emplace_back(l, h);
        continue;
      }
      if (xl > l) next.emplace_back(l, xl - 1);
      if (xh < h) next.emplace_back(xh + 1, h);
    }
    out = std::move(next);
  }
  return out;
}

std::string addr_text(std::uint32_t host) {
  return model::IpAddress::v4(host).to_string();
}

const char* proto_name(Protocol p) {
  return p == Protocol::kTcp ? "tcp" : p == Protocol::kUdp ? "udp" : "sctp";
}

void add_set(std::ostringstream& out, const std::string& name, const std::string& type,
             const std::set<std::string>& elems) {
  out << "  set " << name << " { type " << type << "; elements = { ";
  bool first = true;
  for (const auto& e : elems) {
    out << (first ? "" : ", ") << e;
    first = false;
  }
  out << " } }\n";
}

// The policies as an nftables netdev ingress rule set on `dev` (IPv4).
std::string nft_ruleset(const std::string& dev) {
  const auto& inv = world().inv;
  const auto& policies = world().policies;
  std::ostringstream out, sets, chains;
  std::map<int, std::vector<std::string>> in_chains, eg_chains;  // pod -> policy chains
  int set_id = 0;
  auto ns_labels = [&](const std::string& ns) { return inv.namespace_labels(ns); };
  auto peer_matches = [&](const Peer& peer, const std::string& policy_ns, const Pod& q) {
    if (peer.namespace_selector) {
      if (!peer.namespace_selector->matches(ns_labels(q.namespace_))) return false;
    } else if (q.namespace_ != policy_ns) {
      return false;
    }
    return !peer.pod_selector || peer.pod_selector->matches(q.labels);
  };
  auto first_v4 = [](const Pod& p) -> const model::IpAddress* {
    for (const auto& a : p.ips) {
      if (a.is_v4()) return &a;
    }
    return nullptr;
  };
  for (std::size_t i = 0; i < policies.size(); ++i) {
    const NetworkPolicy& np = policies[i];
    if (!np.enabled) continue;
    std::vector<int> selected;
    for (std::size_t p = 0; p < inv.pods.size(); ++p) {
      const Pod& pod = inv.pods[p];
      if (pod.namespace_ == np.namespace_ && np.pod_selector.matches(pod.labels) && first_v4(pod)) {
        selected.push_back(static_cast<int>(p));
      }
    }
    if (selected.empty()) continue;
    for (int d = 0; d < 2; ++d) {
      if (!(d == 0 ? np.affects_ingress : np.affects_egress)) continue;
      const std::string chain = std::string(d == 0 ? "in_p" : "eg_p") + std::to_string(i);
      const char* peer_field = d == 0 ? "ip saddr" : "ip daddr";
      const std::string action = d == 0 ? "accept" : "meta mark set 0x1 return";
      chains << "  chain " << chain << " {\n";
      for (const Rule& r : d == 0 ? np.ingress : np.egress) {
        std::string addr_match;
        if (!r.peers.empty()) {
          std::set<std::string> elems;
          for (const Peer& peer : r.peers) {
            if (peer.ip_block) {
              if (!peer.ip_block->cidr.is_v4()) continue;
              for (const auto& [l, h] : block_ranges(*peer.ip_block)) {
                elems.insert(l == h ? addr_text(l) : addr_text(l) + "-" + addr_text(h));
              }
            } else {
              for (const Pod& q : inv.pods) {
                const auto* a = first_v4(q);
                if (a && !q.name.empty() && peer_matches(peer, np.namespace_, q)) {
                  for (const auto& ip : q.ips) {
                    if (ip.is_v4()) elems.insert(v4(ip));
                  }
                }
              }
            }
          }
          if (elems.empty()) continue;
          const std::string s = "s" + std::to_string(set_id++);
          add_set(sets, s, "ipv4_addr; flags interval; auto-merge", elems);
          addr_match = std::string(peer_field) + " @" + s + " ";
        }
        if (r.ports.empty()) {
          chains << "    " << addr_match << action << "\n";
          continue;
        }
        for (const PolicyPort& pp : r.ports) {
          const std::string l4 = std::string("meta l4proto ") + proto_name(pp.protocol) + " ";
          if (!pp.port_name.empty()) {
            // Named: the destination pod's number for that name (pod address . port).
            std::set<std::string> elems;
            for (const Pod& q : inv.pods) {
              const auto port = q.named_port(pp.port_name, pp.protocol);
              if (!port || q.name.empty()) continue;
              for (const auto& ip : q.ips) {
                if (ip.is_v4()) elems.insert(v4(ip) + " . " + std::to_string(*port));
              }
            }
            if (elems.empty()) continue;
            const std::string s = "n" + std::to_string(set_id++);
            add_set(sets, s, "ipv4_addr . inet_service", elems);
            chains << "    " << addr_match << l4 << "ip daddr . th dport @" << s << " " << action
                   << "\n";
          } else if (pp.port) {
            chains << "    " << addr_match << l4 << "th dport " << *pp.port;
            if (pp.end_port) chains << "-" << *pp.end_port;
            chains << " " << action << "\n";
          } else {
            chains << "    " << addr_match << l4 << action << "\n";
          }
        }
      }
      chains << "  }\n";
      for (int p : selected) (d == 0 ? in_chains : eg_chains)[p].push_back(chain);
    }
  }
  // Per pod: every isolating policy's chain, then drop.
  std::ostringstream dispatch_in, dispatch_eg;
  for (int dir = 0; dir < 2; ++dir) {
    auto& m = dir == 0 ? in_chains : eg_chains;
    auto& dispatch = dir == 0 ? dispatch_in : dispatch_eg;
    bool first = true;
    for (const auto& [p, list] : m) {
      const std::string chain = std::string(dir == 0 ? "in_pod" : "eg_pod") + std::to_string(p);
      chains << "  chain " << chain << " {\n";
      for (const auto& c : list) {
        chains << "    jump " << c << "\n";
        if (dir == 1) chains << "    meta mark 0x1 return\n";
      }
      chains << "    drop\n  }\n";
      for (const auto& ip : inv.pods[static_cast<std::size_t>(p)].ips) {
        if (!ip.is_v4()) continue;
        dispatch << (first ? "" : ", ") << v4(ip) << " : jump " << chain;
        first = false;
      }
    }
  }
  out << "table netdev ptbench {\n" << sets.str();
  out << "  map egd { type ipv4_addr : verdict; elements = { " << dispatch_eg.str() << " } }\n";
  out << "  map ind { type ipv4_addr : verdict; elements = { " << dispatch_in.str() << " } }\n";
  out << chains.str();
  out << "  chain main {\n    type filter hook ingress device \"" << dev
      << "\" priority 0; policy accept;\n";
  out << "    ip saddr vmap @egd\n    ip daddr vmap @ind\n  }\n}\n";
  return out.str();
}

int sh(const std::string& cmd) {
  return std::system((cmd + " >/dev/null 2>&1").c_str());
}

// A veth pair in a private network namespace (gone with the process): frames written to `a`
// arrive at `b`'s ingress, where the program or the rule set judges them.
struct Wire {
  int sock = -1;
  bool ok = false;
  std::string error;
  Wire() {
    if (::unshare(CLONE_NEWNET) != 0) {
      error = "unshare(CLONE_NEWNET) failed";
      return;
    }
    if (sh("ip link add pta type veth peer name ptb") != 0 || sh("ip link set pta up") != 0 ||
        sh("ip link set ptb up") != 0) {
      error = "creating the veth pair failed";
      return;
    }
    sock = ::socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
    sockaddr_ll sll{};
    sll.sll_family = AF_PACKET;
    sll.sll_ifindex = static_cast<int>(::if_nametoindex("pta"));
    sll.sll_protocol = htons(ETH_P_ALL);
    if (sock < 0 || ::bind(sock, reinterpret_cast<sockaddr*>(&sll), sizeof(sll)) != 0) {
      error = "AF_PACKET socket on pta failed";
      return;
    }
    ok = true;
  }
  void send(const std::vector<std::uint8_t>& f) const { (void)::send(sock, f.data(), f.size(), 0); }
  // `frames` sent `rounds` times; wall time.
  double time_ns(const std::vector<std::vector<std::uint8_t>>& frames, int rounds) const {
    const auto t0 = Clock::now();
    for (int r = 0; r < rounds; ++r) {
      for (const auto& f : frames) send(f);
    }
    return double(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count());
  }
};

// Which of `pkts` reach a later ingress hook: an nftables set records the tuples that pass.
std::set<std::string> passed(const Wire& w, const std::vector<bpf::Packet>& pkts) {
  sh("nft delete table netdev ptseen");
  {
    std::ofstream f("/tmp/patronus-bench-seen.conf");
    f << "table netdev ptseen {\n"
         "  set seen { type ipv4_addr . ipv4_addr . inet_proto . inet_service; size 65535;\n"
         "    flags dynamic; }\n"
         "  chain after {\n"
         "    type filter hook ingress device \"ptb\" priority 10; policy accept;\n"
         "    add @seen { ip saddr . ip daddr . meta l4proto . th dport }\n"
         "  }\n"
         "}\n";
  }
  if (sh("nft -f /tmp/patronus-bench-seen.conf") != 0) return {"(nft refused the check table)"};
  ::unlink("/tmp/patronus-bench-seen.conf");
  for (const auto& p : pkts) w.send(p.frame());
  std::set<std::string> out;
  FILE* f = ::popen("nft list set netdev ptseen seen", "r");
  std::string text;
  char buf[4096];
  while (f && std::fgets(buf, sizeof(buf), f)) text += buf;
  if (f) ::pclose(f);
  sh("nft delete table netdev ptseen");
  // Elements look like "10.1.0.3 . 10.2.0.7 . tcp . 80".
  std::istringstream in(text);
  std::string tok;
  std::vector<std::string> parts;
  while (in >> tok) {
    if (tok == "." || tok == "{" || tok == "}" || tok == "=" || tok == "elements") continue;
    if (!tok.empty() && tok.back() == ',') tok.pop_back();
    parts.push_back(tok);
  }
  for (std::size_t i = 0; i + 3 < parts.size(); ++i) {
    const auto a = model::IpAddress::parse(parts[i]);
    const auto b = model::IpAddress::parse(parts[i + 1]);
    if (a.is_ok() && b.is_ok()) {
      out.insert(parts[i] + " " + parts[i + 1] + " " + parts[i + 2] + " " + parts[i + 3]);
      i += 3;
    }
  }
  return out;
}

std::string tuple_text(const bpf::Packet& p) {
  const char* proto = p.protocol == 6 ? "tcp" : p.protocol == 17 ? "udp" : "sctp";
  return p.src.to_string() + " " + p.dst.to_string() + " " + proto + " " + std::to_string(p.dport);
}

void BM_PerPacketBpfVsNftables(benchmark::State& state) {
  if (!can_run(state)) return;
  const auto& w = world();
  const Classifier cls(w.policies, w.inv);
  auto dp = bpf::Datapath::open(bpf::Options{false, "", {}}).value();
  if (auto s = dp->sync(cls); !s.is_ok()) return state.SkipWithError(s.message().c_str());
  // Distinct tuples (the verification set records tuples).
  std::vector<bpf::Packet> pkts;
  std::set<std::string> seen;
  for (const auto& p : v4_packets(20000)) {
    if (seen.insert(tuple_text(p)).second) pkts.push_back(p);
    if (pkts.size() == 2000) break;
  }
  std::set<std::string> want;
  for (const auto& p : pkts) {
    if (cls.allowed_ips(p.src, p.dst, static_cast<Protocol>(p.protocol), p.dport)) {
      want.insert(tuple_text(p));
    }
  }
  // The kernel's own time per run of the program.
  double test_run_ns = 0;
  for (const auto& p : pkts) test_run_ns += dp->time_run(p.frame(), 50).value().ns_per_run;
  test_run_ns /= double(pkts.size());

  static Wire wire;  // one namespace for the process (unshare once)
  if (!wire.ok) return state.SkipWithError(wire.error.c_str());
  const std::string rules = nft_ruleset("ptb");
  {
    std::ofstream f("/tmp/patronus-bench-nft.conf");
    f << rules;
  }
  const auto load0 = Clock::now();
  if (sh("nft -f /tmp/patronus-bench-nft.conf") != 0) {
    return state.SkipWithError("nft -f refused the generated rule set");
  }
  const double nft_load_ms =
      double(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - load0).count());
  const bool nft_agrees = passed(wire, pkts) == want;
  sh("nft delete table netdev ptbench");
  if (auto s = dp->attach("ptb"); !s.is_ok()) return state.SkipWithError(s.message().c_str());
  const bool bpf_agrees = passed(wire, pkts) == want;
  (void)dp->detach("ptb");
  if (!nft_agrees || !bpf_agrees) {
    return state.SkipWithError(nft_agrees ? "the BPF path disagrees with the classifier"
                                          : "the nftables baseline disagrees with the classifier");
  }
  std::vector<std::vector<std::uint8_t>> frames;
  for (const auto& p : pkts) frames.push_back(p.frame());
  const int rounds = 20;
  double bare = 1e300, with_bpf = 1e300, with_nft = 1e300;
  for (auto _ : state) {
    bare = std::min(bare, wire.time_ns(frames, rounds));
    (void)dp->attach("ptb");
    with_bpf = std::min(with_bpf, wire.time_ns(frames, rounds));
    (void)dp->detach("ptb");
    sh("nft -f /tmp/patronus-bench-nft.conf");
    with_nft = std::min(with_nft, wire.time_ns(frames, rounds));
    sh("nft delete table netdev ptbench");
  }
  ::unlink("/tmp/patronus-bench-nft.conf");
  const double n = double(frames.size()) * rounds;
  const double bpf_ns = std::max(1.0, (with_bpf - bare) / n);
  const double nft_ns = std::max(1.0, (with_nft - bare) / n);
  state.counters["bare_path_ns"] = bare / n;
  state.counters["bpf_ns"] = bpf_ns;
  state.counters["nft_ns"] = nft_ns;
  state.counters["nft_over_bpf"] = nft_ns / bpf_ns;
  state.counters["test_run_ns"] = test_run_ns;
  state.counters["nft_rules_bytes"] = double(rules.size());
  state.counters["nft_load_ms"] = nft_load_ms;
  state.counters["packets"] = double(frames.size());
  state.counters["allowed"] = double(want.size());
}
BENCHMARK(BM_PerPacketBpfVsNftables)->Unit(benchmark::kMillisecond)->Iterations(3);

void BM_MapMemory(benchmark::State& state) {
  if (!can_run(state)) return;
  const auto& w = world();
  const Classifier cls(w.policies, w.inv);
  auto dp = bpf::Datapath::open(bpf::Options{}).value();
  std::size_t bytes = 0, entries = 0;
  for (auto _ : state) {
    if (auto s = dp->reload(cls); !s.is_ok()) return state.SkipWithError(s.message().c_str());
    bytes = entries = 0;
    for (const auto& m : dp->maps()) {
      bytes += m.bytes;
      entries += m.entries;
      state.counters[m.name + "_entries"] = double(m.entries);
    }
  }
  std::size_t live = 0;
  for (const auto& p : w.policies) live += p.enabled;
  state.counters["bytes"] = double(bytes);
  state.counters["entries"] = double(entries);
  state.counters["bytes_per_policy"] = double(bytes) / double(live);
}
BENCHMARK(BM_MapMemory)->Unit(benchmark::kMillisecond)->Iterations(1);

void BM_IncrementalVsReload(benchmark::State& state) {
  if (!can_run(state)) return;
  const auto& w = world();
  Classifier cls(w.policies, w.inv);
  auto dp = bpf::Datapath::open(bpf::Options{false, "", {}}).value();
  if (auto s = dp->sync(cls); !s.is_ok()) return state.SkipWithError(s.message().c_str());
  test::PolicyGen gen(77, {});
  double inc_ns = 0, full_ns = 0;
  std::size_t written = 0, i = 0;
  bool incremental = true;
  for (auto _ : state) {
    // One existing policy replaced by a random one (same name and namespace).
    NetworkPolicy p = gen.policy(0);
    const auto& victim = w.policies[(i++ * 7919) % w.policies.size()];
    p.name = victim.name;
    p.namespace_ = victim.namespace_;
    cls.upsert_policy(p);
    const auto t0 = Clock::now();
    if (auto s = dp->sync(cls); !s.is_ok()) return state.SkipWithError(s.message().c_str());
    const auto t1 = Clock::now();
    incremental = incremental && !dp->last_sync().full;
    written += dp->last_sync().written + dp->last_sync().removed;
    if (auto s = dp->reload(cls); !s.is_ok()) return state.SkipWithError(s.message().c_str());
    const auto t2 = Clock::now();
    inc_ns += double(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count());
    full_ns += double(std::chrono::duration_cast<std::chrono::nanoseconds>(t2 - t1).count());
  }
  const double n = double(state.iterations());
  state.counters["incremental_ms"] = inc_ns / n / 1e6;
  state.counters["reload_ms"] = full_ns / n / 1e6;
  state.counters["speedup"] = full_ns / inc_ns;
  state.counters["entries_per_update"] = double(written) / n;
  state.counters["all_incremental"] = incremental ? 1 : 0;
}
BENCHMARK(BM_IncrementalVsReload)->Unit(benchmark::kMillisecond)->Iterations(10);

}  // namespace

BENCHMARK_MAIN();
