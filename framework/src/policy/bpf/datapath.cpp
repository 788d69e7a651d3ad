#include "patronus/policy/bpf_datapath.hpp"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/capability.h>
#include <linux/magic.h>
#include <linux/pkt_cls.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>

#include "policy.skel.h"
#include "policy_maps.h"

namespace patronus::policy::bpf {

namespace {

using json = nlohmann::json;

std::string errno_text(int err) {
  return std::strerror(err < 0 ? -err : err);
}

Status sys_error(const std::string& what, int err) {
  return Status(Code::kUnavailable, what + ": " + errno_text(err));
}

constexpr const char* kStateRoot = "/run/patronus/policy";

// The generation tables, by index.
enum Table { kPods, kIdclass, kPeers, kCidrs, kPorts, kPodports, kNamed, kTables };
const char* const kTableNames[kTables] = {"pods",  "idclass",  "peers", "cidrs",
                                          "ports", "podports", "named"};
struct TableShape {
  bpf_map_type type;
  std::uint32_t key_size, value_size, flags;
};
const TableShape kShapes[kTables] = {
    {BPF_MAP_TYPE_HASH, sizeof(pt_addr_key), sizeof(pt_pod), BPF_F_NO_PREALLOC},
    {BPF_MAP_TYPE_HASH, sizeof(std::uint32_t), sizeof(pt_idclass), BPF_F_NO_PREALLOC},
    {BPF_MAP_TYPE_ARRAY, sizeof(std::uint32_t), sizeof(std::uint32_t), BPF_F_INNER_MAP},
    {BPF_MAP_TYPE_LPM_TRIE, sizeof(pt_cidr_key), sizeof(std::uint32_t), BPF_F_NO_PREALLOC},
    {BPF_MAP_TYPE_LPM_TRIE, sizeof(pt_port_key), sizeof(std::uint8_t), BPF_F_NO_PREALLOC},
    {BPF_MAP_TYPE_HASH, sizeof(pt_podport_key), sizeof(pt_podport), BPF_F_NO_PREALLOC},
    {BPF_MAP_TYPE_HASH, sizeof(pt_named_key), sizeof(std::uint8_t), BPF_F_NO_PREALLOC},
};
constexpr std::size_t kMinEntries = 64;

pt_addr_key addr_key(const model::IpAddress& ip) {
  pt_addr_key k{};
  k.family = ip.is_v4() ? 4 : 6;
  std::memcpy(k.addr, ip.bytes().data(), ip.is_v4() ? 4 : 16);
  return k;
}

pt_cidr_key cidr_key(std::uint32_t cls, const model::IpPrefix& p) {
  pt_cidr_key k{};
  k.prefixlen = PT_CIDR_PREFIX_BASE + static_cast<std::uint32_t>(p.length());
  k.cls = htonl(cls);
  k.family = p.is_v4() ? 4 : 6;
  std::memcpy(k.addr, p.network().bytes().data(), p.is_v4() ? 4 : 16);
  return k;
}

pt_port_key port_key(std::uint32_t set, std::uint32_t prefixlen, std::uint8_t proto,
                     std::uint16_t port) {
  pt_port_key k{};
  k.prefixlen = prefixlen;
  k.set = htonl(set);
  k.proto = proto;
  k.port = htons(port);
  return k;
}

// A port range as the fewest aligned prefixes (at most 30 for 16 bits).
std::vector<std::pair<std::uint16_t, int>> range_prefixes(std::uint32_t lo, std::uint32_t hi) {
  std::vector<std::pair<std::uint16_t, int>> out;
  while (lo <= hi) {
    int bits = 0;  // host bits of the block
    while (bits < 16 && (lo & ((1U << (bits + 1)) - 1)) == 0 && lo + (1U << (bits + 1)) - 1 <= hi) {
      ++bits;
    }
    out.emplace_back(static_cast<std::uint16_t>(lo), 16 - bits);
    lo += 1U << bits;
  }
  return out;
}

template <typename K>
std::string key_bytes(const K& k) {
  return std::string(reinterpret_cast<const char*>(&k), sizeof(K));
}

// Per-CPU counters summed over the CPUs.
VerdictCounts sum_verdicts(int fd) {
  VerdictCounts v;
  const int ncpu = libbpf_num_possible_cpus();
  std::vector<std::uint64_t> per(static_cast<std::size_t>(ncpu > 0 ? ncpu : 1));
  std::uint64_t* fields[PT_VERDICTS] = {&v.allowed,          &v.denied,    &v.reply,
                                        &v.not_ip,           &v.malformed, &v.fragment_passed,
                                        &v.fragment_dropped, &v.no_tables};
  for (std::uint32_t i = 0; i < PT_VERDICTS; ++i) {
    if (bpf_map_lookup_elem(fd, &i, per.data()) != 0) continue;
    for (auto x : per) *fields[i] += x;
  }
  return v;
}

std::pair<std::uint64_t, std::uint64_t> class_sum(int fd, std::uint32_t id) {
  const int ncpu = libbpf_num_possible_cpus();
  std::vector<pt_class_count> v(static_cast<std::size_t>(ncpu > 0 ? ncpu : 1));
  std::pair<std::uint64_t, std::uint64_t> s{0, 0};
  if (bpf_map_lookup_elem(fd, &id, v.data()) == 0) {
    for (const auto& c : v) {
      s.first += c.allowed;
      s.second += c.denied;
    }
  }
  return s;
}

}  // namespace

std::vector<std::uint8_t> Packet::frame() const {
  std::vector<std::uint8_t> f(14, 0);
  const bool v4 = src.is_v4();
  f[12] = v4 ? 0x08 : 0x86;
  f[13] = v4 ? 0x00 : 0xdd;
  std::size_t l4 = 0;
  switch (protocol) {
    case 6:
      l4 = 20;
      break;
    case 17:
      l4 = 8;
      break;
    case 132:
      l4 = 12;
      break;
    default:
      l4 = 8;
      break;
  }
  const std::size_t l3 = v4 ? 20 : 40;
  const std::size_t total = l3 + l4;
  std::vector<std::uint8_t> ip(l3, 0);
  if (v4) {
    ip[0] = 0x45;
    ip[2] = static_cast<std::uint8_t>(total >> 8);
    ip[3] = static_cast<std::uint8_t>(total);
    ip[8] = 64;
    ip[9] = protocol;
    std::memcpy(&ip[12], src.bytes().data(), 4);
    std::memcpy(&ip[16], dst.bytes().data(), 4);
    std::uint32_t sum = 0;
    for (std::size_t i = 0; i < 20; i += 2) sum += (std::uint32_t{ip[i]} << 8) | ip[i + 1];
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    ip[10] = static_cast<std::uint8_t>(~sum >> 8);
    ip[11] = static_cast<std::uint8_t>(~sum);
  } else {
    ip[0] = 0x60;
    ip[4] = static_cast<std::uint8_t>(l4 >> 8);
    ip[5] = static_cast<std::uint8_t>(l4);
    ip[6] = protocol;
    ip[7] = 64;
    std::memcpy(&ip[8], src.bytes().data(), 16);
    std::memcpy(&ip[24], dst.bytes().data(), 16);
  }
  f.insert(f.end(), ip.begin(), ip.end());
  std::vector<std::uint8_t> t(l4, 0);
  if (protocol == 6 || protocol == 17 || protocol == 132) {
    t[0] = static_cast<std::uint8_t>(sport >> 8);
    t[1] = static_cast<std::uint8_t>(sport);
    t[2] = static_cast<std::uint8_t>(dport >> 8);
    t[3] = static_cast<std::uint8_t>(dport);
    if (protocol == 6) {
      t[12] = 0x50;  // data offset 5
      t[13] = 0x02;  // SYN
    }
    if (protocol == 17) t[5] = 8;
  }
  f.insert(f.end(), t.begin(), t.end());
  return f;
}

struct Datapath::Impl {
  Options options;
  policy_bpf* skel = nullptr;
  int outer[kTables] = {};
  int inner[kTables] = {-1, -1, -1, -1, -1, -1, -1};  // the live generation's maps (our fds)
  std::size_t capacity[kTables] = {};
  std::size_t count[kTables] = {};
  std::uint32_t generation = 0;
  bool loaded = false;
  // The peers array: row `cls` holds `stride` identities; class ids below `class_cap`.
  std::uint32_t stride[2] = {0, 0};
  std::uint32_t class_cap = 0;
  SyncReport report;
  std::vector<std::pair<std::string, int>> attached;  // interface, ifindex
  std::set<int> created_hooks;                        // ifindexes whose clsact we created
  std::vector<std::string> pins;

  // What is in the live maps (the mirror the incremental sync diffs against).
  std::uint64_t compilation = UINT64_MAX;
  std::size_t identities = 0;
  std::size_t port_sets = 1;
  struct BClass {
    int direction = 0;
    std::uint64_t version = 0;
    std::vector<std::string> policies;
    std::vector<std::uint32_t> peers;  // identities with an entry
    std::vector<pt_cidr_key> cidrs;
  };
  std::map<std::uint32_t, BClass> bclasses;                        // by datapath class id
  std::map<std::pair<int, std::uint32_t>, std::uint32_t> current;  // (direction, class) -> id
  std::vector<std::uint32_t> free_ids;
  std::uint32_t next_id = 1;
  std::vector<pt_idclass> idclass;  // by identity
  struct PodRec {
    std::uint32_t identity = UINT32_MAX;
    std::vector<pt_addr_key> addrs;
    std::map<std::string, pt_podport> ports;  // pt_podport_key bytes -> its names
  };
  std::map<std::string, std::uint32_t> name_ids;  // port names, 1-based
  std::vector<PodRec> pods;
  // Counters of retired classes, by (policy, direction).
  std::map<std::pair<std::string, std::string>, std::pair<std::uint64_t, std::uint64_t>> retired;

  ~Impl() {
    for (const auto& [name, idx] : attached) detach_index(idx);
    for (const auto& p : pins) ::unlink(p.c_str());
    if (!options.pin_name.empty()) {
      ::rmdir((std::string(kPinRoot) + "/" + options.pin_name).c_str());
      ::unlink(state_file().c_str());
    }
    for (int fd : inner) {
      if (fd >= 0) ::close(fd);
    }
    if (skel) policy_bpf::destroy(skel);
  }

  std::string state_file() const {
    return std::string(kStateRoot) + "/" + options.pin_name + ".json";
  }

  void detach_index(int idx) {
    bpf_tc_hook hook{};
    hook.sz = sizeof(hook);
    hook.ifindex = idx;
    hook.attach_point = BPF_TC_INGRESS;
    bpf_tc_opts o{};
    o.sz = sizeof(o);
    o.handle = 1;
    o.priority = 1;
    bpf_tc_detach(&hook, &o);
    if (created_hooks.count(idx)) {
      hook.attach_point = static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS);
      bpf_tc_hook_destroy(&hook);
      created_hooks.erase(idx);
    }
  }

  // --- map writes ------------------------------------------------------------------------------

  struct Full {};  // thrown when a table is full: the caller reloads with room

  // While a reload fills fresh maps nothing reads them yet: entries are gathered and written in
  // batches (BPF_MAP_UPDATE_BATCH), one syscall per few thousand entries.
  bool batching = false;
  std::vector<char> batch_keys[kTables], batch_values[kTables];

  template <typename K, typename V>
  void put(Table t, const K& k, const V& v, bool fresh) {
    if (fresh && count[t] >= capacity[t]) throw Full{};
    if (batching) {
      const char* kp = reinterpret_cast<const char*>(&k);
      const char* vp = reinterpret_cast<const char*>(&v);
      batch_keys[t].insert(batch_keys[t].end(), kp, kp + sizeof(K));
      batch_values[t].insert(batch_values[t].end(), vp, vp + sizeof(V));
      if (fresh) ++count[t];
      ++report.written;
      return;
    }
    if (bpf_map_update_elem(inner[t], &k, &v, BPF_ANY) != 0) {
      if (errno == E2BIG || errno == ENOMEM || errno == ENOSPC) throw Full{};
      throw Status(sys_error(std::string("writing map ") + kTableNames[t], errno));
    }
    if (fresh) ++count[t];
    ++report.written;
  }
  std::uint32_t peer_index(std::uint32_t cls, std::uint32_t identity) const {
    if (cls >= class_cap || identity >= stride[generation & 1]) throw Full{};
    return cls * stride[generation & 1] + identity;
  }

  template <typename K>
  void erase(Table t, const K& k) {
    if (kShapes[t].type == BPF_MAP_TYPE_ARRAY) {  // an array entry is cleared, not deleted
      const std::uint32_t zero = 0;
      if (bpf_map_update_elem(inner[t], &k, &zero, BPF_ANY) == 0) {
        --count[t];
        ++report.removed;
      }
      return;
    }
    if (bpf_map_delete_elem(inner[t], &k) == 0) {
      --count[t];
      ++report.removed;
    }
  }

  void flush_batches() {
    for (int t = 0; t < kTables; ++t) {
      const std::size_t ks = kShapes[t].key_size, vs = kShapes[t].value_size;
      const std::size_t n = batch_keys[t].size() / ks;
      std::size_t done = 0;
      while (done < n) {
        std::uint32_t chunk = static_cast<std::uint32_t>(std::min<std::size_t>(n - done, 4096));
        LIBBPF_OPTS(bpf_map_batch_opts, o, .elem_flags = BPF_ANY);
        const char* keys = batch_keys[t].data() + done * ks;
        const char* values = batch_values[t].data() + done * vs;
        if (bpf_map_update_batch(inner[t], keys, values, &chunk, &o) == 0) {
          done += chunk;
          continue;
        }
        if (errno != EINVAL && errno != ENOTSUP && errno != EOPNOTSUPP) {
          throw Status(sys_error(std::string("writing map ") + kTableNames[t], errno));
        }
        // No batch operations for this map type on this kernel: one entry at a time.
        for (; done < n; ++done) {
          if (bpf_map_update_elem(inner[t], batch_keys[t].data() + done * ks,
                                  batch_values[t].data() + done * vs, BPF_ANY) != 0) {
            throw Status(sys_error(std::string("writing map ") + kTableNames[t], errno));
          }
        }
      }
      batch_keys[t].clear();
      batch_values[t].clear();
      batch_keys[t].shrink_to_fit();
      batch_values[t].shrink_to_fit();
    }
  }

  std::uint32_t new_id() {
    if (!free_ids.empty()) {
      const auto id = free_ids.back();
      free_ids.pop_back();
      return id;
    }
    if (next_id >= PT_MAX_CLASSES) {
      throw Status(Code::kResourceExhausted,
                   "more than " + std::to_string(PT_MAX_CLASSES - 1) +
                       " policy classes: the datapath's counters cannot hold them");
    }
    return next_id++;
  }

  // Port set entries: the set's ranges as prefixes ("all": one /32 entry).
  void write_port_set(const Classifier::Tables& t, std::uint32_t id) {
    const auto ps = t.port_set(id);
    const std::uint8_t one = 1;
    if (ps.all) {
      put(kPorts, port_key(id, PT_PORT_PREFIX_SET, 0, 0), one, true);
      return;
    }
    for (const auto& r : ps.ranges) {
      if (r.first == 0 && r.last == 65535) {
        put(kPorts, port_key(id, PT_PORT_PREFIX_PROTO, r.protocol, 0), one, true);
        continue;
      }
      for (const auto& [lo, len] : range_prefixes(r.first, r.last)) {
        put(kPorts,
            port_key(id, PT_PORT_PREFIX_PROTO + static_cast<std::uint32_t>(len), r.protocol, lo),
            one, true);
      }
    }
  }

  std::uint32_t name_id(const std::string& name) {
    const auto [it, fresh] =
        name_ids.try_emplace(name, static_cast<std::uint32_t>(name_ids.size() + 1));
    (void)fresh;
    return it->second;
  }

  // A pod's named ports: (pod, port, protocol) -> the names it gives them.
  std::map<std::string, pt_podport> podports_of(const Pod& pod, std::size_t slot) {
    std::map<std::string, pt_podport> out;
    if (pod.name.empty()) return out;
    for (const auto& cp : pod.ports) {
      if (cp.name.empty()) continue;
      pt_podport_key k{};
      k.pod = static_cast<std::uint32_t>(slot);
      k.port = static_cast<std::uint16_t>(cp.port);
      k.proto = static_cast<std::uint8_t>(cp.protocol);
      pt_podport& v = out[key_bytes(k)];
      int n = 0;
      while (n < PT_MAX_NAMES_PER_PORT && v.names[n] != 0) ++n;
      if (n == PT_MAX_NAMES_PER_PORT) {
        throw Status(Code::kInvalidArgument, "pod " + pod.key() + " gives port " +
                                                 std::to_string(cp.port) + " more than " +
                                                 std::to_string(PT_MAX_NAMES_PER_PORT) + " names");
      }
      v.names[n] = name_id(cp.name);
    }
    return out;
  }

  // A new port set's named entries: (set, protocol, name).
  void write_named(const Classifier::Tables& t, std::uint32_t id) {
    const std::uint8_t one = 1;
    for (const auto& [proto, name] : t.port_set(id).names) {
      pt_named_key k{};
      k.set = id;
      k.name = name_id(name);
      k.proto = proto;
      put(kNamed, k, one, true);
    }
  }

  std::uint32_t build_class(const Classifier& c, const Classifier::Tables& t, int d,
                            std::uint32_t cls) {
    const std::uint32_t id = new_id();
    BClass b;
    b.direction = d;
    b.version = t.version(d, cls);
    for (auto slot : t.policies(d, cls)) b.policies.push_back(c.policies()[slot].key());
    for (std::uint32_t i = 0; i < t.identities(); ++i) {
      const std::uint32_t ps = t.peer_ports(d, cls, i);
      if (ps == 0) continue;
      put(kPeers, peer_index(id, i), ps, true);
      b.peers.push_back(i);
    }
    for (const auto& [prefix, ps] : t.prefixes(d, cls)) {
      const auto k = cidr_key(id, prefix);
      put(kCidrs, k, ps, true);
      b.cidrs.push_back(k);
    }
    bclasses[id] = std::move(b);
    current[{d, cls}] = id;
    reset_counts(id);
    return id;
  }

  void reset_counts(std::uint32_t id) {
    const int ncpu = libbpf_num_possible_cpus();
    std::vector<pt_class_count> zero(static_cast<std::size_t>(ncpu > 0 ? ncpu : 1));
    bpf_map_update_elem(bpf_map__fd(skel->maps.class_counts), &id, zero.data(), BPF_ANY);
  }

  std::pair<std::uint64_t, std::uint64_t> read_counts(std::uint32_t id) const {
    return class_sum(bpf_map__fd(skel->maps.class_counts), id);
  }

  // A class no identity points at any more: its counters go to its policies' totals.
  void retire(std::uint32_t id, bool delete_entries) {
    auto it = bclasses.find(id);
    if (it == bclasses.end()) return;
    const auto counts = read_counts(id);
    for (const auto& p : it->second.policies) {
      auto& r = retired[{p, it->second.direction == 0 ? "ingress" : "egress"}];
      r.first += counts.first;
      r.second += counts.second;
    }
    if (delete_entries) {
      for (auto i : it->second.peers) erase(kPeers, peer_index(id, i));
      for (const auto& k : it->second.cidrs) erase(kCidrs, k);
    }
    bclasses.erase(it);
    free_ids.push_back(id);
  }

  pt_idclass wanted_idclass(const Classifier::Tables& t, std::uint32_t i) const {
    pt_idclass v{};
    const std::uint32_t ci = t.identity_class(0, i), ce = t.identity_class(1, i);
    if (ci != 0) v.ingress = current.at({0, ci});
    if (ce != 0) v.egress = current.at({1, ce});
    return v;
  }

  PodRec wanted_pod(const Classifier& c, const Classifier::Tables& t, std::size_t slot) {
    PodRec r;
    r.identity = t.pod_identity(slot);
    if (r.identity == UINT32_MAX) return r;
    const Pod& pod = c.inventory().pods[slot];
    for (const auto& ip : pod.ips) r.addrs.push_back(addr_key(ip));
    r.ports = podports_of(pod, slot);
    return r;
  }

  static bool same_podport(const pt_podport& a, const pt_podport& b) {
    return std::memcmp(&a, &b, sizeof(a)) == 0;
  }

  void write_pod(std::size_t slot, const PodRec& r, const PodRec* old) {
    for (const auto& [kb, v] : r.ports) {
      const auto had = old ? old->ports.find(kb) : r.ports.end();
      const bool existed = old && had != old->ports.end();
      if (existed && same_podport(had->second, v)) continue;
      pt_podport_key k;
      std::memcpy(&k, kb.data(), sizeof(k));
      put(kPodports, k, v, !existed);
    }
    for (const auto& a : r.addrs) {
      const bool had = old && std::any_of(old->addrs.begin(), old->addrs.end(), [&](const auto& o) {
                         return std::memcmp(&o, &a, sizeof(a)) == 0;
                       });
      if (had && old->identity == r.identity) continue;
      put(kPods, a, pt_pod{static_cast<std::uint32_t>(slot), r.identity}, !had);
    }
  }

  void remove_pod_leftovers(const PodRec& old, const PodRec& now) {
    for (const auto& a : old.addrs) {
      const bool kept = std::any_of(now.addrs.begin(), now.addrs.end(), [&](const auto& n) {
        return std::memcmp(&n, &a, sizeof(a)) == 0;
      });
      if (!kept) erase(kPods, a);
    }
    for (const auto& [kb, v] : old.ports) {
      if (now.ports.count(kb)) continue;
      pt_podport_key k;
      std::memcpy(&k, kb.data(), sizeof(k));
      erase(kPodports, k);
    }
  }

  // --- incremental sync ------------------------------------------------------------------------

  void incremental(const Classifier& c) {
    const auto t = c.tables();
    // 1. New port sets (additive: nothing refers to them yet).
    for (auto id = static_cast<std::uint32_t>(port_sets); id < t.port_sets(); ++id) {
      write_port_set(t, id);
      write_named(t, id);
    }
    port_sets = t.port_sets();
    // 2. Classes that are new or rebuilt: written under a fresh id (identities still point at
    // the old one). Classes kept get the columns of new identities (additive).
    std::vector<std::uint32_t> replaced;
    for (int d = 0; d < 2; ++d) {
      for (std::uint32_t cls = 1; cls < t.classes(d); ++cls) {
        if (!t.live(d, cls)) continue;
        const auto it = current.find({d, cls});
        if (it != current.end() && bclasses.at(it->second).version == t.version(d, cls)) {
          BClass& b = bclasses.at(it->second);
          for (auto i = static_cast<std::uint32_t>(identities); i < t.identities(); ++i) {
            const std::uint32_t ps = t.peer_ports(d, cls, i);
            if (ps == 0) continue;
            put(kPeers, peer_index(it->second, i), ps, true);
            b.peers.push_back(i);
          }
          continue;
        }
        if (it != current.end()) replaced.push_back(it->second);
        build_class(c, t, d, cls);
      }
    }
    // Classes the classifier no longer uses.
    for (auto it = current.begin(); it != current.end();) {
      if (!t.live(it->first.first, it->first.second)) {
        if (std::find(replaced.begin(), replaced.end(), it->second) == replaced.end()) {
          replaced.push_back(it->second);
        }
        it = current.erase(it);
      } else {
        ++it;
      }
    }
    // 3. Identities switch to their (new) classes: one write each.
    idclass.resize(t.identities());
    for (std::uint32_t i = 0; i < t.identities(); ++i) {
      const pt_idclass want = wanted_idclass(t, i);
      const bool fresh = i >= identities;
      if (!fresh && want.ingress == idclass[i].ingress && want.egress == idclass[i].egress)
        continue;
      put(kIdclass, i, want, fresh);
      idclass[i] = want;
    }
    identities = t.identities();
    // 4. Pods: addresses and named ports (new entries now, stale ones after).
    const std::size_t npods = c.inventory().pods.size();
    std::vector<std::pair<PodRec, PodRec>> leftovers;
    if (pods.size() < npods) pods.resize(npods);
    for (std::size_t s = 0; s < npods; ++s) {
      PodRec want = wanted_pod(c, t, s);
      PodRec& have = pods[s];
      const bool same = want.identity == have.identity && want.ports.size() == have.ports.size() &&
                        std::equal(want.ports.begin(), want.ports.end(), have.ports.begin(),
                                   [](const auto& a, const auto& b) {
                                     return a.first == b.first && same_podport(a.second, b.second);
                                   }) &&
                        want.addrs.size() == have.addrs.size() &&
                        std::equal(want.addrs.begin(), want.addrs.end(), have.addrs.begin(),
                                   [](const auto& a, const auto& b) {
                                     return std::memcmp(&a, &b, sizeof(a)) == 0;
                                   });
      if (same) continue;
      write_pod(s, want, &have);
      leftovers.emplace_back(have, want);
      have = std::move(want);
    }
    // 5. Removals last: stale pod entries, then the classes nobody points at.
    for (const auto& [old, now] : leftovers) remove_pod_leftovers(old, now);
    for (auto id : replaced) retire(id, true);
  }

  // --- full reload -----------------------------------------------------------------------------

  Status reload(const Classifier& c, const std::string& why) {
    const auto t = c.tables();
    // Sizes: what the tables hold now, twice (room for incremental growth).
    std::size_t need[kTables] = {};
    for (const auto& p : c.inventory().pods) {
      need[kPods] += p.ips.size();
      need[kPodports] += p.ports.size();
    }
    need[kIdclass] = t.identities();
    std::size_t live_classes = 0;
    for (int d = 0; d < 2; ++d) {
      for (std::uint32_t cls = 1; cls < t.classes(d); ++cls) {
        if (!t.live(d, cls)) continue;
        ++live_classes;
        need[kCidrs] += t.prefixes(d, cls).size();
      }
    }
    if (live_classes >= PT_MAX_CLASSES) {
      return Status(Code::kResourceExhausted, std::to_string(live_classes) +
                                                  " policy classes: the datapath holds at most " +
                                                  std::to_string(PT_MAX_CLASSES - 1));
    }
    for (std::uint32_t id = 1; id < t.port_sets(); ++id) {
      const auto ps = t.port_set(id);
      need[kPorts] += ps.all ? 1 : ps.ranges.size() * 30;
      need[kNamed] += ps.names.size();
    }
    // New maps for the other generation. The peers array (preallocated, 4 bytes an entry): rows
    // for a quarter more classes than live, each a quarter longer than the identities; growing
    // past either reloads.
    const std::uint32_t next = generation + 1;
    const auto new_stride = static_cast<std::uint32_t>(t.identities() + t.identities() / 4 + 16);
    const std::uint32_t new_class_cap = static_cast<std::uint32_t>(
        std::min<std::size_t>(PT_MAX_CLASSES, live_classes + live_classes / 4 + 16));
    if (std::uint64_t{new_class_cap} * new_stride > 0xffffffffULL / 4) {
      return Status(Code::kResourceExhausted,
                    std::to_string(live_classes) + " classes over " +
                        std::to_string(t.identities()) +
                        " identities: the peers table would exceed 4 GiB");
    }
    need[kPeers] = std::size_t{new_class_cap} * new_stride / 2;
    int fresh[kTables];
    std::size_t cap[kTables];
    for (int m = 0; m < kTables; ++m) {
      cap[m] = std::max(kMinEntries, 2 * need[m]);
      LIBBPF_OPTS(bpf_map_create_opts, o, .map_flags = kShapes[m].flags);
      const std::string name = std::string("pt_") + kTableNames[m];
      fresh[m] = bpf_map_create(kShapes[m].type, name.c_str(), kShapes[m].key_size,
                                kShapes[m].value_size, static_cast<std::uint32_t>(cap[m]), &o);
      if (fresh[m] < 0) {
        const int err = errno;
        for (int k = 0; k < m; ++k) ::close(fresh[k]);
        return sys_error(std::string("creating map ") + kTableNames[m] + " (" +
                             std::to_string(cap[m]) + " entries)",
                         err);
      }
    }
    // Fill them, with the mirror rebuilt from scratch.
    const std::uint32_t old_stride = stride[next & 1], old_class_cap = class_cap;
    const std::uint32_t old_generation = generation;
    stride[next & 1] = new_stride;
    class_cap = new_class_cap;
    generation = next;  // peer_index() uses the new generation's stride while filling
    int old_inner[kTables];
    std::size_t old_cap[kTables], old_count[kTables];
    for (int m = 0; m < kTables; ++m) {
      old_inner[m] = inner[m];
      old_cap[m] = capacity[m];
      old_count[m] = count[m];
      inner[m] = fresh[m];
      capacity[m] = cap[m];
      count[m] = 0;
    }
    // Counters of the classes going away are kept per policy.
    std::vector<std::uint32_t> old_ids;
    for (const auto& [id, b] : bclasses) old_ids.push_back(id);
    for (auto id : old_ids) retire(id, false);
    bclasses.clear();
    current.clear();
    free_ids.clear();
    next_id = 1;
    pods.clear();
    idclass.clear();
    name_ids.clear();
    report = SyncReport{};
    report.full = true;
    report.why = why;
    batching = true;
    try {
      for (std::uint32_t id = 1; id < t.port_sets(); ++id) {
        write_port_set(t, id);
        write_named(t, id);
      }
      for (int d = 0; d < 2; ++d) {
        for (std::uint32_t cls = 1; cls < t.classes(d); ++cls) {
          if (t.live(d, cls)) build_class(c, t, d, cls);
        }
      }
      idclass.resize(t.identities());
      for (std::uint32_t i = 0; i < t.identities(); ++i) {
        idclass[i] = wanted_idclass(t, i);
        put(kIdclass, i, idclass[i], true);
      }
      pods.resize(c.inventory().pods.size());
      for (std::size_t s = 0; s < pods.size(); ++s) {
        pods[s] = wanted_pod(c, t, s);
        write_pod(s, pods[s], nullptr);
      }
      flush_batches();
      batching = false;
    } catch (const Full&) {
      stride[next & 1] = old_stride;
      class_cap = old_class_cap;
      generation = old_generation;
      abandon_reload(old_inner, old_cap, old_count);
      return Status(Code::kInternal, "a freshly sized table filled up during a reload");
    } catch (const Status& s) {
      stride[next & 1] = old_stride;
      class_cap = old_class_cap;
      generation = old_generation;
      abandon_reload(old_inner, old_cap, old_count);
      return s;
    }
    // The other generation's slots get the new maps, then one write makes them live.
    const std::uint32_t slot = next & 1;
    for (int m = 0; m < kTables; ++m) {
      if (bpf_map_update_elem(outer[m], &slot, &inner[m], BPF_ANY) != 0) {
        const Status err = sys_error(std::string("installing map ") + kTableNames[m], errno);
        stride[next & 1] = old_stride;
        class_cap = old_class_cap;
        generation = old_generation;
        abandon_reload(old_inner, old_cap, old_count);
        return err;
      }
    }
    // The new slot's stride first (the live generation does not read it), then the switch.
    const std::uint32_t zero = 0;
    pt_state st{old_generation, loaded ? 1u : 0u, {stride[0], stride[1]}};
    if (bpf_map_update_elem(bpf_map__fd(skel->maps.state), &zero, &st, BPF_ANY) != 0) {
      return sys_error("writing the new generation's stride", errno);
    }
    st.generation = next;
    st.loaded = 1;
    if (bpf_map_update_elem(bpf_map__fd(skel->maps.state), &zero, &st, BPF_ANY) != 0) {
      return sys_error("switching the generation", errno);
    }
    // The old generation's maps leave their slots; a packet that read the old generation number
    // and finds a slot empty takes the new one whole (see load_tables in policy.bpf.c).
    if (loaded) {
      const std::uint32_t old_slot = old_generation & 1;
      for (int m = 0; m < kTables; ++m) bpf_map_delete_elem(outer[m], &old_slot);
    }
    for (int m = 0; m < kTables; ++m) {
      if (old_inner[m] >= 0) ::close(old_inner[m]);
    }
    loaded = true;
    compilation = t.compilation();
    identities = t.identities();
    port_sets = t.port_sets();
    return Status::ok();
  }

  // A reload that failed half way: the fresh maps go, the live ones stay; the mirror no longer
  // matches them, so the next sync reloads.
  void abandon_reload(const int* old_inner, const std::size_t* old_cap,
                      const std::size_t* old_count) {
    batching = false;
    for (int m = 0; m < kTables; ++m) {
      batch_keys[m].clear();
      batch_values[m].clear();
      ::close(inner[m]);
      inner[m] = old_inner[m];
      capacity[m] = old_cap[m];
      count[m] = old_count[m];
    }
    compilation = UINT64_MAX;
  }

  Status sync(const Classifier& c) {
    const auto t = c.tables();
    if (!loaded) return reload(c, "first load");
    if (t.compilation() != compilation) return reload(c, "the classifier recompiled everything");
    report = SyncReport{};
    try {
      incremental(c);
    } catch (const Full&) {
      return reload(c, "a table is full: reloading with room");
    } catch (const Status& s) {
      return reload(c, "an incremental write failed (" + s.message() + ")");
    }
    return Status::ok();
  }

  Status write_state() const {
    if (options.pin_name.empty()) return Status::ok();
    json classes = json::object();
    for (const auto& [id, b] : bclasses) {
      classes[std::to_string(id)] = {{"direction", b.direction == 0 ? "ingress" : "egress"},
                                     {"policies", b.policies}};
    }
    json ret = json::array();
    for (const auto& [k, v] : retired) {
      ret.push_back({{"policy", k.first},
                     {"direction", k.second},
                     {"allowed", v.first},
                     {"denied", v.second}});
    }
    const std::string path = state_file(), tmp = path + ".tmp";
    {
      std::ofstream f(tmp, std::ios::trunc);
      f << json{{"classes", classes}, {"retired", ret}}.dump();
      if (!f) return Status(Code::kUnavailable, "writing " + tmp);
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) return sys_error("renaming " + tmp, errno);
    return Status::ok();
  }
};

namespace {

std::vector<PolicyCount> to_list(const std::map<std::pair<std::string, std::string>,
                                                std::pair<std::uint64_t, std::uint64_t>>& m) {
  std::vector<PolicyCount> out;
  for (const auto& [k, v] : m) out.push_back({k.first, k.second, v.first, v.second});
  return out;
}

int silent_print(libbpf_print_level, const char*, va_list) {
  return 0;
}

}  // namespace

std::string unavailable_reason() {
  // Effective capabilities, not the user id: root in a container or under setpriv may lack them.
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  if (::syscall(SYS_capget, &hdr, data) != 0) return "cannot read this process's capabilities";
  auto has = [&](int cap) { return (data[cap / 32].effective >> (cap % 32)) & 1U; };
  const bool bpf = has(CAP_BPF) || has(CAP_SYS_ADMIN);
  const bool net = has(CAP_NET_ADMIN);
  if (!bpf || !net) {
    std::string missing = !bpf ? "CAP_BPF" : "";
    if (!net) missing += std::string(missing.empty() ? "" : " and ") + "CAP_NET_ADMIN";
    return "the eBPF datapath needs root (CAP_BPF and CAP_NET_ADMIN); this process lacks " +
           missing + "; userspace evaluation (without --datapath bpf) works as any user";
  }
  return "";
}

Datapath::Datapath(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Datapath::~Datapath() = default;

namespace {

bool bpffs_mounted(const char* dir) {
  struct statfs fs {};
  return ::statfs(dir, &fs) == 0 && fs.f_type == BPF_FS_MAGIC;
}

// The enforcer pins its counters in the BPF filesystem. A machine that has none mounted (a bare
// Debian boots without it unless systemd mounted it) gets one from a root enforcer, as Cilium's
// agent does; the mount outlives the process, as /sys/fs/bpf is meant to.
Status ensure_bpffs(const std::function<void(const std::string&)>& log) {
  constexpr const char* kDir = "/sys/fs/bpf";
  if (bpffs_mounted(kDir)) return Status::ok();
  const std::string need = "the enforcer keeps its counters there for 'patronus policy counters'";
  if (::geteuid() != 0) {
    return Status(Code::kFailedPrecondition,
                  std::string("no BPF filesystem mounted at ") + kDir +
                      " and only root can mount one (as root: mount -t bpf bpf " + kDir + "); " +
                      need);
  }
  if (::mount("bpf", kDir, "bpf", 0, "mode=0700") != 0) {
    const int err = errno;
    return Status(Code::kFailedPrecondition,
                  std::string("no BPF filesystem mounted at ") + kDir +
                      ", and mounting one failed (" + std::strerror(err) +
                      (err == ENOENT ? ": the kernel's sysfs has no fs/bpf directory"
                       : err == EPERM || err == EACCES
                           ? ": this process lacks CAP_SYS_ADMIN in its mount namespace"
                           : "") +
                      "); " + need);
  }
  if (!bpffs_mounted(kDir)) {
    return Status(Code::kFailedPrecondition, std::string("mounted a BPF filesystem at ") + kDir +
                                                 " but statfs does not see it there; " + need);
  }
  if (log) {
    log(std::string("no BPF filesystem was mounted at ") + kDir +
        ": mounted one (mount -t bpf bpf " + kDir + ", mode 0700); it stays mounted");
  }
  return Status::ok();
}

}  // namespace

Result<std::unique_ptr<Datapath>> Datapath::open(const Options& options) {
  if (const auto why = unavailable_reason(); !why.empty()) {
    return Status(Code::kFailedPrecondition, why);
  }
  libbpf_set_print(silent_print);
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->skel = policy_bpf::open();
  if (!impl->skel) return sys_error("opening the eBPF object", errno);
  impl->skel->rodata->cfg_conntrack = options.conntrack ? 1 : 0;
  if (const int err = policy_bpf::load(impl->skel); err != 0) {
    return Status(Code::kFailedPrecondition,
                  "loading the eBPF programs failed (" + errno_text(err) +
                      "): the kernel lacks BPF support, refused the programs, or this process "
                      "lacks CAP_BPF/CAP_SYS_ADMIN");
  }
  bpf_map* outers[kTables] = {impl->skel->maps.pods,  impl->skel->maps.idclass,
                              impl->skel->maps.peers, impl->skel->maps.cidrs,
                              impl->skel->maps.ports, impl->skel->maps.podports,
                              impl->skel->maps.named};
  for (int m = 0; m < kTables; ++m) impl->outer[m] = bpf_map__fd(outers[m]);
  if (!options.pin_name.empty()) {
    if (auto s = ensure_bpffs(options.log); !s.is_ok()) return s;
    const std::string dir = std::string(kPinRoot) + "/" + options.pin_name;
    for (const std::string& d : {dir, std::string(kStateRoot)}) {
      std::error_code ec;
      std::filesystem::create_directories(d, ec);
      if (ec) return Status(Code::kUnavailable, "creating " + d + ": " + ec.message());
    }
    for (auto* m : {impl->skel->maps.verdicts, impl->skel->maps.class_counts}) {
      const std::string path = dir + "/" + bpf_map__name(m);
      ::unlink(path.c_str());  // a previous enforcer's stale pin
      if (bpf_obj_pin(bpf_map__fd(m), path.c_str()) != 0) {
        return sys_error("pinning " + path, errno);
      }
      impl->pins.push_back(path);
    }
  }
  return std::unique_ptr<Datapath>(new Datapath(std::move(impl)));
}

Status Datapath::sync(const Classifier& c) {
  Status s = impl_->sync(c);
  if (s.is_ok()) s = impl_->write_state();
  return s;
}

Status Datapath::reload(const Classifier& c) {
  Status s = impl_->reload(c, "asked");
  if (s.is_ok()) s = impl_->write_state();
  return s;
}

const SyncReport& Datapath::last_sync() const {
  return impl_->report;
}

Result<bool> Datapath::test_run(const std::vector<std::uint8_t>& frame) {
  auto r = time_run(frame, 1);
  if (!r.is_ok()) return r.status();
  return r.value().passed;
}

Result<Datapath::TimedRun> Datapath::time_run(const std::vector<std::uint8_t>& frame, int repeat) {
  LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = frame.data(),
              .data_size_in = static_cast<std::uint32_t>(frame.size()),
              .repeat = repeat < 1 ? 1 : repeat);
  if (bpf_prog_test_run_opts(bpf_program__fd(impl_->skel->progs.policy_eth), &o) != 0) {
    return sys_error("BPF_PROG_TEST_RUN", errno);
  }
  return TimedRun{o.retval == TC_ACT_OK, o.duration};
}

Status Datapath::attach(const std::string& interface) {
  const int idx = static_cast<int>(::if_nametoindex(interface.c_str()));
  if (idx == 0) return sys_error("interface '" + interface + "'", errno);
  // Ethernet or an L3 device (ARPHRD_NONE: wireguard-go's TUN; the packet starts at the IP
  // header). Asked of this network namespace's kernel, not of /sys (which may be another's).
  ifreq req{};
  std::strncpy(req.ifr_name, interface.c_str(), IFNAMSIZ - 1);
  const int sock = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sock < 0) return sys_error("socket", errno);
  const int rc = ::ioctl(sock, SIOCGIFHWADDR, &req);
  const int err = errno;
  ::close(sock);
  if (rc != 0) return sys_error("link type of '" + interface + "'", err);
  const bool ethernet =
      req.ifr_hwaddr.sa_family == ARPHRD_ETHER || req.ifr_hwaddr.sa_family == ARPHRD_LOOPBACK;
  bpf_program* prog = ethernet ? impl_->skel->progs.policy_eth : impl_->skel->progs.policy_raw;
  bpf_tc_hook hook{};
  hook.sz = sizeof(hook);
  hook.ifindex = idx;
  hook.attach_point = BPF_TC_INGRESS;
  const int created = bpf_tc_hook_create(&hook);
  if (created != 0 && created != -EEXIST) return sys_error("clsact on " + interface, created);
  if (created == 0) impl_->created_hooks.insert(idx);
  bpf_tc_opts o{};
  o.sz = sizeof(o);
  o.handle = 1;
  o.priority = 1;
  o.prog_fd = bpf_program__fd(prog);
  o.flags = BPF_TC_F_REPLACE;
  if (const int err = bpf_tc_attach(&hook, &o); err != 0) {
    return sys_error("attaching to " + interface + " ingress", err);
  }
  impl_->attached.emplace_back(interface, idx);
  return Status::ok();
}

Status Datapath::detach(const std::string& interface) {
  auto& a = impl_->attached;
  const auto it =
      std::find_if(a.begin(), a.end(), [&](const auto& p) { return p.first == interface; });
  if (it == a.end()) return not_found("not attached to " + interface);
  impl_->detach_index(it->second);
  a.erase(it);
  return Status::ok();
}

Result<VerdictCounts> Datapath::verdicts() const {
  return sum_verdicts(bpf_map__fd(impl_->skel->maps.verdicts));
}

Result<std::vector<PolicyCount>> Datapath::policy_counts() const {
  auto totals = impl_->retired;
  for (const auto& [id, b] : impl_->bclasses) {
    const auto s = impl_->read_counts(id);
    for (const auto& p : b.policies) {
      auto& r = totals[{p, b.direction == 0 ? "ingress" : "egress"}];
      r.first += s.first;
      r.second += s.second;
    }
  }
  return to_list(totals);
}

std::vector<MapUsage> Datapath::maps() const {
  std::vector<MapUsage> out;
  for (int m = 0; m < kTables; ++m) {
    MapUsage u;
    u.name = kTableNames[m];
    u.entries = impl_->count[m];
    u.max_entries = impl_->capacity[m];
    if (impl_->inner[m] >= 0) {
      std::ifstream f("/proc/self/fdinfo/" + std::to_string(impl_->inner[m]));
      std::string line;
      while (std::getline(f, line)) {
        if (line.rfind("memlock:", 0) == 0) u.bytes = std::stoull(line.substr(8));
      }
    }
    out.push_back(u);
  }
  return out;
}

Result<PinnedCounts> read_pinned(const std::string& pin_name) {
  if (pin_name.empty() || pin_name.find('/') != std::string::npos || pin_name[0] == '.') {
    return invalid_argument("enforcer name '" + pin_name + "': expected a plain name");
  }
  const std::string dir = std::string(kPinRoot) + "/" + pin_name;
  // Read-only: a reader needs no write access to the maps (patronusd's unit mounts /sys
  // read-only, where a read-write open of a pinned map fails with EROFS).
  LIBBPF_OPTS(bpf_obj_get_opts, ro, .file_flags = BPF_F_RDONLY);
  const int vfd = bpf_obj_get_opts((dir + "/verdicts").c_str(), &ro);
  if (vfd < 0) {
    return Status(Code::kNotFound, "no running enforcer '" + pin_name + "' (" + dir +
                                       "/verdicts: " + errno_text(errno) + ")");
  }
  const int cfd = bpf_obj_get_opts((dir + "/class_counts").c_str(), &ro);
  if (cfd < 0) {
    const int err = errno;
    ::close(vfd);
    return sys_error(dir + "/class_counts", err);
  }
  PinnedCounts out;
  out.verdicts = sum_verdicts(vfd);
  std::map<std::pair<std::string, std::string>, std::pair<std::uint64_t, std::uint64_t>> totals;
  // The enforcer's class -> policies attribution (written by it, read defensively: a file that is
  // not what it writes is an error, never a crash).
  const std::string state_path = std::string(kStateRoot) + "/" + pin_name + ".json";
  std::ifstream f(state_path);
  const json state = json::parse(f, nullptr, false);
  try {
    if (!state.is_object()) throw std::invalid_argument("not a JSON object");
    const json retired = state.value("retired", json::array());
    for (const auto& r : retired) {
      auto& t = totals[{r.at("policy").get<std::string>(), r.at("direction").get<std::string>()}];
      t.first += r.at("allowed").get<std::uint64_t>();
      t.second += r.at("denied").get<std::uint64_t>();
    }
    const json classes = state.value("classes", json::object());
    for (const auto& [id, cl] : classes.items()) {
      const auto s = class_sum(cfd, static_cast<std::uint32_t>(std::stoul(id)));
      const std::string direction = cl.at("direction").get<std::string>();
      for (const auto& p : cl.at("policies")) {
        auto& t = totals[{p.get<std::string>(), direction}];
        t.first += s.first;
        t.second += s.second;
      }
    }
  } catch (const std::exception& e) {
    ::close(vfd);
    ::close(cfd);
    return Status(Code::kFailedPrecondition,
                  state_path + " is not an enforcer's attribution: " + e.what());
  }
  ::close(vfd);
  ::close(cfd);
  out.policies = to_list(totals);
  return out;
}

}  // namespace patronus::policy::bpf
