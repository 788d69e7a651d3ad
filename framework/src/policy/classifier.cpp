#include "patronus/policy/classifier.hpp"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstring>
#include <set>

namespace patronus::policy {

namespace {

using Word = std::uint64_t;

// A fixed-capacity bitset over identities (or namespaces).
struct Bits {
  std::vector<Word> w;
  explicit Bits(std::size_t words = 0) : w(words, 0) {}
  void set(std::size_t i) { w[i / 64] |= Word{1} << (i % 64); }
  void reset(std::size_t i) { w[i / 64] &= ~(Word{1} << (i % 64)); }
  bool test(std::size_t i) const { return (w[i / 64] >> (i % 64)) & 1U; }
  void fill() { std::fill(w.begin(), w.end(), ~Word{0}); }
  void operator&=(const Bits& o) {
    for (std::size_t i = 0; i < w.size(); ++i) w[i] &= o.w[i];
  }
  void operator|=(const Bits& o) {
    for (std::size_t i = 0; i < w.size(); ++i) w[i] |= o.w[i];
  }
  void flip() {
    for (auto& x : w) x = ~x;
  }
  template <typename F>
  void for_each(std::size_t limit, F&& f) const {
    for (std::size_t i = 0; i < w.size(); ++i) {
      Word x = w[i];
      while (x) {
        const std::size_t b = i * 64 + static_cast<std::size_t>(__builtin_ctzll(x));
        if (b >= limit) return;
        f(b);
        x &= x - 1;
      }
    }
  }
};

// An index from labels to the set of items (identities or namespaces) that carry them.
struct LabelIndex {
  struct Key {
    Bits has;
    std::unordered_map<std::string, Bits> values;
  };
  std::unordered_map<std::string, Key> keys;
  std::size_t words = 0;

  void add(std::size_t item, const Labels& labels) {
    for (const auto& [k, v] : labels) {
      auto& key = keys.try_emplace(k, Key{Bits(words), {}}).first->second;
      key.has.set(item);
      key.values.try_emplace(v, Bits(words)).first->second.set(item);
    }
  }
  Bits value_bits(const std::string& k, const std::string& v) const {
    const auto it = keys.find(k);
    if (it == keys.end()) return Bits(words);
    const auto vit = it->second.values.find(v);
    return vit == it->second.values.end() ? Bits(words) : vit->second;
  }
  Bits key_bits(const std::string& k) const {
    const auto it = keys.find(k);
    return it == keys.end() ? Bits(words) : it->second.has;
  }
  // Items matching a selector (over `universe`).
  Bits select(const LabelSelector& s, const Bits& universe) const {
    Bits out = universe;
    for (const auto& [k, v] : s.match_labels) out &= value_bits(k, v);
    for (const auto& r : s.match_expressions) {
      Bits m(words);
      switch (r.op) {
        case Op::kIn:
        case Op::kNotIn:
          for (const auto& v : r.values) m |= value_bits(r.key, v);
          if (r.op == Op::kNotIn) m.flip();
          break;
        case Op::kExists:
          m = key_bits(r.key);
          break;
        case Op::kDoesNotExist:
          m = key_bits(r.key);
          m.flip();
          break;
      }
      out &= m;
    }
    return out;
  }
};

struct Range {
  std::uint8_t proto;
  std::uint16_t lo, hi;
  friend bool operator<(const Range& a, const Range& b) {
    return std::tie(a.proto, a.lo, a.hi) < std::tie(b.proto, b.lo, b.hi);
  }
  friend bool operator==(const Range& a, const Range& b) {
    return a.proto == b.proto && a.lo == b.lo && a.hi == b.hi;
  }
};
struct Named {
  std::uint8_t proto;
  std::string name;
  friend bool operator<(const Named& a, const Named& b) {
    return std::tie(a.proto, a.name) < std::tie(b.proto, b.name);
  }
  friend bool operator==(const Named& a, const Named& b) {
    return a.proto == b.proto && a.name == b.name;
  }
};
struct PortSet {
  bool all = false;
  std::vector<Range> ranges;  // sorted, merged per protocol
  std::vector<Named> names;   // sorted, unique
  friend bool operator<(const PortSet& a, const PortSet& b) {
    return std::tie(a.all, a.ranges, a.names) < std::tie(b.all, b.ranges, b.names);
  }
  void normalize() {
    if (all) {
      ranges.clear();
      names.clear();
      return;
    }
    std::sort(ranges.begin(), ranges.end());
    std::vector<Range> merged;
    for (const auto& r : ranges) {
      if (!merged.empty() && merged.back().proto == r.proto &&
          std::uint32_t{r.lo} <= std::uint32_t{merged.back().hi} + 1) {
        merged.back().hi = std::max(merged.back().hi, r.hi);
      } else {
        merged.push_back(r);
      }
    }
    ranges = std::move(merged);
    std::sort(names.begin(), names.end());
    names.erase(std::unique(names.begin(), names.end()), names.end());
  }
};

using PortSetId = std::uint32_t;  // 0: empty (nothing allowed)

struct V4Node {
  std::uint32_t net, mask;
  PortSetId ps;
};
struct V6Node {
  std::uint64_t net_hi, net_lo, mask_hi, mask_lo;
  PortSetId ps;
};

std::uint64_t load_be64(const std::uint8_t* p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | p[i];
  return v;
}

// Pod IP -> pod slot, open addressing with linear probing (the per-flow hot path: two lookups a
// verdict). Keys are the address's 16 bytes plus its family; the table is at most half full.
class IpTable {
 public:
  void clear() {
    slots_.assign(16, Slot{});
    size_ = 0;
  }
  void insert(const model::IpAddress& ip, std::uint32_t value) {
    if (slots_.empty()) clear();
    if (2 * (size_ + 1) > slots_.size()) grow();
    place(key_of(ip), value);
  }
  void erase(const model::IpAddress& ip) {
    if (slots_.empty()) return;
    const Key k = key_of(ip);
    std::size_t i = index(k);
    while (slots_[i].used) {
      if (slots_[i].key == k) {
        // Backward-shift deletion keeps every probe chain intact.
        std::size_t j = i;
        while (true) {
          slots_[i].used = false;
          while (true) {
            j = (j + 1) & (slots_.size() - 1);
            if (!slots_[j].used) return;
            const std::size_t home = index(slots_[j].key);
            const bool between = i <= j ? (i < home && home <= j) : (i < home || home <= j);
            if (!between) break;
          }
          slots_[i] = slots_[j];
          i = j;
        }
      }
      i = (i + 1) & (slots_.size() - 1);
    }
  }
  std::uint32_t find(const model::IpAddress& ip) const {
    if (slots_.empty()) return UINT32_MAX;
    const Key k = key_of(ip);
    for (std::size_t i = index(k);; i = (i + 1) & (slots_.size() - 1)) {
      const Slot& s = slots_[i];
      if (!s.used) return UINT32_MAX;
      if (s.key == k) return s.value;
    }
  }

 private:
  struct Key {
    std::uint64_t hi = 0, lo = 0;
    friend bool operator==(const Key& a, const Key& b) { return a.hi == b.hi && a.lo == b.lo; }
  };
  struct Slot {
    Key key;
    std::uint32_t value = 0;
    bool used = false;
  };
  static Key key_of(const model::IpAddress& ip) {
    const auto& b = ip.bytes();
    if (ip.is_v4()) return Key{~std::uint64_t{0}, ip.v4_host_order()};  // hi marks IPv4
    return Key{load_be64(b.data()), load_be64(b.data() + 8)};
  }
  std::size_t index(const Key& k) const {
    std::uint64_t h = (k.hi * 0x9E3779B97F4A7C15ULL) ^ (k.lo * 0xC2B2AE3D27D4EB4FULL);
    h ^= h >> 29;
    return static_cast<std::size_t>(h) & (slots_.size() - 1);
  }
  void place(const Key& k, std::uint32_t value) {
    std::size_t i = index(k);
    while (slots_[i].used && !(slots_[i].key == k)) i = (i + 1) & (slots_.size() - 1);
    if (!slots_[i].used) ++size_;
    slots_[i] = Slot{k, value, true};
  }
  void grow() {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(old.size() * 2, Slot{});
    size_ = 0;
    for (const auto& s : old) {
      if (s.used) place(s.key, s.value);
    }
  }
  std::vector<Slot> slots_;
  std::size_t size_ = 0;
};

struct CompiledRule {
  bool all_peers = false;
  Bits peers;  // identities matched by selector peers
  std::vector<IpBlock> ip_blocks;
  PortSetId ports = 0;
};

struct CompiledPolicy {
  bool live = false;
  std::uint32_t ns = 0;
  Bits selected;                       // identities the policy applies to
  std::vector<CompiledRule> rules[2];  // [0] ingress, [1] egress
};

struct Class {
  std::vector<std::uint32_t> key;  // policy slots
  std::vector<PortSetId> table;    // by peer identity
  std::vector<V4Node> v4;          // longest prefix first
  std::vector<V6Node> v6;
  std::vector<std::pair<model::IpPrefix, PortSetId>> prefixes;  // longest first (the datapath's)
  std::uint32_t refs = 0;
  std::uint64_t version = 0;
};

const model::IpPrefix kAnyV4(model::IpAddress::v4(0), 0);
const model::IpPrefix kAnyV6(model::IpAddress::v6({}), 0);

bool contains_prefix(const model::IpPrefix& outer, const model::IpPrefix& inner) {
  return outer.is_v4() == inner.is_v4() && outer.length() <= inner.length() &&
         outer.contains(inner.network());
}

}  // namespace

struct Classifier::Impl {
  // Namespaces (by index) and identities.
  std::vector<std::string> ns_names;
  std::unordered_map<std::string, std::uint32_t> ns_index;
  std::vector<Labels> ns_labels;
  LabelIndex ns_label_index;
  Bits all_namespaces;

  struct Identity {
    std::uint32_t ns;
    Labels labels;
  };
  std::vector<Identity> identities;
  std::map<std::pair<std::uint32_t, Labels>, std::uint32_t> identity_of;
  std::size_t words = 1;  // identity bitset words (capacity = 64 * words)
  LabelIndex label_index;
  std::vector<Bits> ns_members;  // identities per namespace
  Bits all_identities;

  std::vector<std::uint32_t> pod_identity;  // by pod slot; UINT32_MAX for an empty slot
  IpTable pod_by_ip;

  std::vector<CompiledPolicy> cp;  // by policy slot
  std::unordered_map<std::string, std::uint32_t> policy_slot;
  std::vector<std::vector<std::uint32_t>> ns_policies;  // policy slots per namespace

  std::vector<PortSet> port_sets{PortSet{}};  // id 0: empty
  std::map<PortSet, PortSetId> port_set_ids;
  std::unordered_map<std::uint64_t, PortSetId> union_cache;

  // Per direction: classes (0 = not isolated) and the class of each identity.
  std::vector<Class> classes[2];
  std::map<std::vector<std::uint32_t>, std::uint32_t> class_ids[2];
  std::vector<std::uint32_t> identity_class[2];
  std::vector<std::uint32_t> free_classes[2];
  std::size_t full_compiles = 0;
  std::uint64_t compile_id = 0;  // unique in the process (a datapath tells compilations apart)
  std::uint64_t next_version = 0;

  PortSetId intern(PortSet s) {
    s.normalize();
    if (!s.all && s.ranges.empty() && s.names.empty()) return 0;
    const auto it = port_set_ids.find(s);
    if (it != port_set_ids.end()) return it->second;
    const auto id = static_cast<PortSetId>(port_sets.size());
    port_sets.push_back(s);
    port_set_ids.emplace(std::move(s), id);
    return id;
  }

  PortSetId unite(PortSetId a, PortSetId b) {
    if (a == b || b == 0) return a;
    if (a == 0) return b;
    if (port_sets[a].all) return a;
    if (port_sets[b].all) return b;
    if (a > b) std::swap(a, b);
    const std::uint64_t key = (std::uint64_t{a} << 32) | b;
    const auto it = union_cache.find(key);
    if (it != union_cache.end()) return it->second;
    PortSet u = port_sets[a];
    const PortSet& o = port_sets[b];
    u.ranges.insert(u.ranges.end(), o.ranges.begin(), o.ranges.end());
    u.names.insert(u.names.end(), o.names.begin(), o.names.end());
    const PortSetId id = intern(std::move(u));
    union_cache.emplace(key, id);
    return id;
  }

  PortSetId rule_ports(const Rule& r) {
    PortSet s;
    if (r.ports.empty()) {
      s.all = true;
      return intern(s);
    }
    for (const auto& p : r.ports) {
      const auto proto = static_cast<std::uint8_t>(p.protocol);
      if (!p.port_name.empty()) {
        s.names.push_back({proto, p.port_name});
      } else if (!p.port) {
        s.ranges.push_back({proto, 0, 65535});
      } else {
        s.ranges.push_back({proto, static_cast<std::uint16_t>(*p.port),
                            static_cast<std::uint16_t>(p.end_port.value_or(*p.port))});
      }
    }
    return intern(std::move(s));
  }

  bool ports_allow(PortSetId id, Protocol protocol, std::int32_t port, const Pod* dst) const {
    if (id == 0) return false;
    const PortSet& s = port_sets[id];
    if (s.all) return true;
    const auto proto = static_cast<std::uint8_t>(protocol);
    for (const auto& r : s.ranges) {
      if (r.proto == proto && port >= r.lo && port <= r.hi) return true;
    }
    if (dst) {
      for (const auto& n : s.names) {
        if (n.proto != proto) continue;
        const auto resolved = dst->named_port(n.name, protocol);
        if (resolved && *resolved == port) return true;
      }
    }
    return false;
  }

  std::uint32_t ns_of(const std::string& name) const {
    const auto it = ns_index.find(name);
    return it == ns_index.end() ? UINT32_MAX : it->second;
  }

  // Identities a selector peer of a policy in namespace `ns` matches.
  Bits peer_bits(const Peer& peer, std::uint32_t ns) const {
    Bits in_ns(words);
    if (peer.namespace_selector) {
      const Bits nss = ns_label_index.select(*peer.namespace_selector, all_namespaces);
      nss.for_each(ns_names.size(), [&](std::size_t n) { in_ns |= ns_members[n]; });
    } else if (ns != UINT32_MAX) {
      in_ns = ns_members[ns];
    }
    if (peer.pod_selector) in_ns &= label_index.select(*peer.pod_selector, all_identities);
    return in_ns;
  }

  // Whether a selector peer matches one identity (for adding an identity incrementally).
  bool peer_matches_identity(const Peer& peer, std::uint32_t policy_ns, std::uint32_t id) const {
    const Identity& ident = identities[id];
    if (peer.namespace_selector) {
      if (!peer.namespace_selector->matches(ns_labels[ident.ns])) return false;
    } else if (ident.ns != policy_ns) {
      return false;
    }
    return !peer.pod_selector || peer.pod_selector->matches(ident.labels);
  }

  void compile_policy(std::uint32_t slot, const NetworkPolicy& p) {
    CompiledPolicy c;
    c.live = p.enabled;
    c.ns = ns_of(p.namespace_);
    c.selected = Bits(words);
    if (c.live && c.ns != UINT32_MAX) {
      c.selected = label_index.select(p.pod_selector, ns_members[c.ns]);
    }
    const bool types[2] = {p.affects_ingress, p.affects_egress};
    const std::vector<Rule>* rules[2] = {&p.ingress, &p.egress};
    for (int d = 0; d < 2; ++d) {
      if (!types[d]) continue;
      for (const auto& r : *rules[d]) {
        CompiledRule cr;
        cr.ports = rule_ports(r);
        cr.peers = Bits(words);
        cr.all_peers = r.peers.empty();
        for (const auto& peer : r.peers) {
          if (peer.ip_block) {
            cr.ip_blocks.push_back(*peer.ip_block);
          } else {
            cr.peers |= peer_bits(peer, c.ns);
          }
        }
        c.rules[d].push_back(std::move(cr));
      }
    }
    if (slot >= cp.size()) cp.resize(slot + 1);
    cp[slot] = std::move(c);
  }

  // The policies (slots) selecting an identity for a direction.
  std::vector<std::uint32_t> class_key(std::uint32_t id, int d,
                                       const std::vector<NetworkPolicy>& policies) const {
    std::vector<std::uint32_t> key;
    const std::uint32_t ns = identities[id].ns;
    if (ns >= ns_policies.size()) return key;
    for (auto slot : ns_policies[ns]) {
      const CompiledPolicy& c = cp[slot];
      const NetworkPolicy& p = policies[slot];
      if (!c.live || !(d == 0 ? p.affects_ingress : p.affects_egress)) continue;
      if (c.selected.test(id)) key.push_back(slot);
    }
    std::sort(key.begin(), key.end());
    return key;
  }

  void build_class(Class& cl, int d) {
    cl.version = ++next_version;
    cl.table.assign(64 * words, 0);
    cl.v4.clear();
    cl.v6.clear();
    cl.prefixes.clear();
    struct Entry {
      IpBlock block;
      PortSetId ps;
    };
    std::vector<Entry> entries;
    const std::size_t n = identities.size();
    for (auto slot : cl.key) {
      for (const auto& r : cp[slot].rules[d]) {
        if (r.all_peers) {
          for (std::size_t i = 0; i < n; ++i) cl.table[i] = unite(cl.table[i], r.ports);
          // No peers: every address too.
          entries.push_back({IpBlock{kAnyV4, {}}, r.ports});
          entries.push_back({IpBlock{kAnyV6, {}}, r.ports});
          continue;
        }
        r.peers.for_each(n, [&](std::size_t i) { cl.table[i] = unite(cl.table[i], r.ports); });
        for (const auto& b : r.ip_blocks) entries.push_back({b, r.ports});
      }
    }
    if (entries.empty()) return;
    // Flatten: every distinct prefix gets the union of the entries that cover it (cidr contains
    // it and no except does); for an address the longest containing prefix decides.
    std::set<model::IpPrefix> prefixes;
    for (const auto& e : entries) {
      prefixes.insert(e.block.cidr);
      for (const auto& x : e.block.except) prefixes.insert(x);
    }
    std::vector<std::pair<model::IpPrefix, PortSetId>> nodes;
    for (const auto& pfx : prefixes) {
      PortSetId ps = 0;
      for (const auto& e : entries) {
        if (!contains_prefix(e.block.cidr, pfx)) continue;
        bool excepted = false;
        for (const auto& x : e.block.except) excepted = excepted || contains_prefix(x, pfx);
        if (!excepted) ps = unite(ps, e.ps);
      }
      nodes.push_back({pfx, ps});
    }
    std::stable_sort(nodes.begin(), nodes.end(), [](const auto& a, const auto& b) {
      return a.first.length() > b.first.length();
    });
    cl.prefixes = nodes;
    for (const auto& [pfx, ps] : nodes) {
      const auto& b = pfx.network().bytes();
      if (pfx.is_v4()) {
        const std::uint32_t mask = pfx.length() == 0 ? 0 : ~std::uint32_t{0} << (32 - pfx.length());
        cl.v4.push_back({pfx.network().v4_host_order(), mask, ps});
      } else {
        const int len = pfx.length();
        const std::uint64_t mhi = len == 0 ? 0 : len >= 64 ? ~0ULL : ~0ULL << (64 - len);
        const std::uint64_t mlo = len <= 64 ? 0 : len == 128 ? ~0ULL : ~0ULL << (128 - len);
        cl.v6.push_back({load_be64(b.data()), load_be64(b.data() + 8), mhi, mlo, ps});
      }
    }
  }

  std::uint32_t intern_class(std::vector<std::uint32_t> key, int d) {
    if (key.empty()) return 0;
    const auto it = class_ids[d].find(key);
    if (it != class_ids[d].end()) {
      ++classes[d][it->second].refs;
      return it->second;
    }
    std::uint32_t id;
    if (!free_classes[d].empty()) {
      id = free_classes[d].back();
      free_classes[d].pop_back();
    } else {
      id = static_cast<std::uint32_t>(classes[d].size());
      classes[d].emplace_back();
    }
    Class& cl = classes[d][id];
    cl.key = key;
    cl.refs = 1;
    build_class(cl, d);
    class_ids[d].emplace(std::move(key), id);
    return id;
  }

  void release_class(std::uint32_t id, int d) {
    if (id == 0) return;
    Class& cl = classes[d][id];
    if (--cl.refs > 0) return;
    class_ids[d].erase(cl.key);
    cl = Class{};
    free_classes[d].push_back(id);
  }

  PortSetId lookup_cidr(const Class& cl, const model::IpAddress& ip) const {
    if (ip.is_v4()) {
      const std::uint32_t a = ip.v4_host_order();
      for (const auto& n : cl.v4) {
        if ((a & n.mask) == n.net) return n.ps;
      }
      return 0;
    }
    const std::uint64_t hi = load_be64(ip.bytes().data());
    const std::uint64_t lo = load_be64(ip.bytes().data() + 8);
    for (const auto& n : cl.v6) {
      if ((hi & n.mask_hi) == n.net_hi && (lo & n.mask_lo) == n.net_lo) return n.ps;
    }
    return 0;
  }

  // Whether `cls` (direction d) allows the other end `other` (pod identity or IP).
  bool class_allows(int d, std::uint32_t cls, const Endpoint& other, std::uint32_t other_id,
                    Protocol protocol, std::int32_t port, const Pod* dst) const {
    const Class& cl = classes[d][cls];
    if (other_id != UINT32_MAX && ports_allow(cl.table[other_id], protocol, port, dst)) {
      return true;
    }
    if (other.ip && !(cl.v4.empty() && cl.v6.empty())) {
      return ports_allow(lookup_cidr(cl, *other.ip), protocol, port, dst);
    }
    return false;
  }
};

Classifier::Classifier(std::vector<NetworkPolicy> policies, Inventory inventory)
    : impl_(std::make_unique<Impl>()), policies_(std::move(policies)), inv_(std::move(inventory)) {
  recompile();
}

Classifier::~Classifier() = default;

void Classifier::recompile() {
  inv_.complete_namespaces();
  auto fresh = std::make_unique<Impl>();
  Impl& m = *fresh;
  m.full_compiles = impl_->full_compiles + 1;
  static std::atomic<std::uint64_t> compile_ids{0};
  m.compile_id = ++compile_ids;
  // Namespaces.
  for (std::uint32_t i = 0; i < inv_.namespaces.size(); ++i) {
    m.ns_names.push_back(inv_.namespaces[i].name);
    m.ns_index[inv_.namespaces[i].name] = i;
    m.ns_labels.push_back(inv_.namespaces[i].labels);
  }
  const std::size_t ns_words = std::max<std::size_t>(1, (m.ns_names.size() + 63) / 64);
  m.ns_label_index.words = ns_words;
  m.all_namespaces = Bits(ns_words);
  for (std::uint32_t i = 0; i < m.ns_names.size(); ++i) {
    m.ns_label_index.add(i, m.ns_labels[i]);
    m.all_namespaces.set(i);
  }
  // Identities, with room to grow (a new identity beyond capacity recompiles).
  m.pod_identity.assign(inv_.pods.size(), UINT32_MAX);
  for (std::size_t p = 0; p < inv_.pods.size(); ++p) {
    const Pod& pod = inv_.pods[p];
    if (pod.name.empty()) continue;  // an emptied slot
    const std::uint32_t ns = m.ns_index.at(pod.namespace_);
    auto [it, fresh_id] = m.identity_of.try_emplace(
        {ns, pod.labels}, static_cast<std::uint32_t>(m.identities.size()));
    if (fresh_id) m.identities.push_back({ns, pod.labels});
    m.pod_identity[p] = it->second;
    for (const auto& ip : pod.ips) m.pod_by_ip.insert(ip, static_cast<std::uint32_t>(p));
  }
  m.words = std::max<std::size_t>(1, (2 * m.identities.size() + 63) / 64);
  m.label_index.words = m.words;
  m.all_identities = Bits(m.words);
  m.ns_members.assign(m.ns_names.size(), Bits(m.words));
  for (std::uint32_t id = 0; id < m.identities.size(); ++id) {
    m.label_index.add(id, m.identities[id].labels);
    m.ns_members[m.identities[id].ns].set(id);
    m.all_identities.set(id);
  }
  // Policies.
  m.ns_policies.assign(m.ns_names.size(), {});
  for (std::uint32_t slot = 0; slot < policies_.size(); ++slot) {
    m.policy_slot[policies_[slot].key()] = slot;
    m.compile_policy(slot, policies_[slot]);
    const auto ns = m.ns_of(policies_[slot].namespace_);
    if (ns != UINT32_MAX) m.ns_policies[ns].push_back(slot);
  }
  // Classes.
  for (int d = 0; d < 2; ++d) {
    m.classes[d].assign(1, Class{});
    m.identity_class[d].assign(64 * m.words, 0);
    for (std::uint32_t id = 0; id < m.identities.size(); ++id) {
      m.identity_class[d][id] = m.intern_class(m.class_key(id, d, policies_), d);
    }
  }
  impl_ = std::move(fresh);
}

bool Classifier::allowed(const Endpoint& src, const Endpoint& dst, Protocol protocol,
                         std::int32_t port) const {
  const Impl& m = *impl_;
  const std::uint32_t src_id =
      src.pod >= 0 ? m.pod_identity[static_cast<std::size_t>(src.pod)] : UINT32_MAX;
  const std::uint32_t dst_id =
      dst.pod >= 0 ? m.pod_identity[static_cast<std::size_t>(dst.pod)] : UINT32_MAX;
  const Pod* dst_pod = dst.pod >= 0 ? &inv_.pods[static_cast<std::size_t>(dst.pod)] : nullptr;
  if (src_id != UINT32_MAX) {
    const std::uint32_t c = m.identity_class[1][src_id];
    if (c != 0 && !m.class_allows(1, c, dst, dst_id, protocol, port, dst_pod)) return false;
  }
  if (dst_id != UINT32_MAX) {
    const std::uint32_t c = m.identity_class[0][dst_id];
    if (c != 0 && !m.class_allows(0, c, src, src_id, protocol, port, dst_pod)) return false;
  }
  return true;
}

bool Classifier::allowed_ips(const model::IpAddress& src, const model::IpAddress& dst,
                             Protocol protocol, std::int32_t port) const {
  const Impl& m = *impl_;
  Endpoint s, d;
  s.ip = src;
  d.ip = dst;
  if (const auto p = m.pod_by_ip.find(src); p != UINT32_MAX) s.pod = static_cast<int>(p);
  if (const auto p = m.pod_by_ip.find(dst); p != UINT32_MAX) d.pod = static_cast<int>(p);
  return allowed(s, d, protocol, port);
}

void Classifier::upsert_policy(NetworkPolicy policy) {
  Impl& m = *impl_;
  if (m.ns_of(policy.namespace_) == UINT32_MAX) {
    // A policy for a namespace without pods: it selects nothing yet; keep it for later.
    const auto it = m.policy_slot.find(policy.key());
    if (it != m.policy_slot.end()) {
      policies_[it->second] = std::move(policy);
    } else {
      policies_.push_back(std::move(policy));
    }
    recompile();
    return;
  }
  std::uint32_t slot;
  const auto it = m.policy_slot.find(policy.key());
  const bool existed = it != m.policy_slot.end();
  if (existed) {
    slot = it->second;
    policies_[slot] = std::move(policy);
  } else {
    slot = static_cast<std::uint32_t>(policies_.size());
    policies_.push_back(std::move(policy));
    m.policy_slot[policies_[slot].key()] = slot;
    m.ns_policies[m.ns_of(policies_[slot].namespace_)].push_back(slot);
  }
  m.compile_policy(slot, policies_[slot]);
  const std::uint32_t ns = m.cp[slot].ns;
  for (int d = 0; d < 2; ++d) {
    // Classes that contain the policy are stale; rebuild the ones still in use afterwards.
    std::vector<std::uint32_t> stale;
    for (std::uint32_t c = 1; c < m.classes[d].size(); ++c) {
      const auto& key = m.classes[d][c].key;
      if (m.classes[d][c].refs > 0 && std::binary_search(key.begin(), key.end(), slot)) {
        stale.push_back(c);
      }
    }
    for (auto c : stale) m.build_class(m.classes[d][c], d);
    // Re-classify the identities of the policy's namespace.
    m.ns_members[ns].for_each(m.identities.size(), [&](std::size_t id) {
      auto key = m.class_key(static_cast<std::uint32_t>(id), d, policies_);
      const std::uint32_t old = m.identity_class[d][id];
      if (old != 0 && m.classes[d][old].key == key) return;
      if (old == 0 && key.empty()) return;
      m.identity_class[d][id] = m.intern_class(std::move(key), d);
      m.release_class(old, d);
    });
  }
}

Status Classifier::remove_policy(const std::string& ns, const std::string& name) {
  const auto it = impl_->policy_slot.find(ns + "/" + name);
  if (it == impl_->policy_slot.end()) return not_found("no NetworkPolicy " + ns + "/" + name);
  NetworkPolicy tomb = policies_[it->second];
  tomb.enabled = false;  // a disabled policy has no effect: the slot stays as a tombstone
  upsert_policy(std::move(tomb));
  return Status::ok();
}

void Classifier::upsert_pod(Pod pod) {
  Impl& m = *impl_;
  const std::uint32_t ns = m.ns_of(pod.namespace_);
  if (ns == UINT32_MAX) {  // a new namespace changes every namespace bitset: recompile
    const int existing = inv_.find_pod(pod.namespace_, pod.name);
    if (existing >= 0) {
      inv_.pods[static_cast<std::size_t>(existing)] = std::move(pod);
    } else {
      inv_.pods.push_back(std::move(pod));
    }
    recompile();
    return;
  }
  int slot = inv_.find_pod(pod.namespace_, pod.name);
  if (slot >= 0) {
    for (const auto& ip : inv_.pods[static_cast<std::size_t>(slot)].ips) {
      m.pod_by_ip.erase(ip);
    }
    inv_.pods[static_cast<std::size_t>(slot)] = pod;
  } else {
    slot = static_cast<int>(inv_.pods.size());
    inv_.pods.push_back(pod);
    m.pod_identity.push_back(UINT32_MAX);
  }
  for (const auto& ip : pod.ips) m.pod_by_ip.insert(ip, static_cast<std::uint32_t>(slot));
  const auto found = m.identity_of.find({ns, pod.labels});
  if (found != m.identity_of.end()) {
    m.pod_identity[static_cast<std::size_t>(slot)] = found->second;
    return;
  }
  // A new identity.
  const auto id = static_cast<std::uint32_t>(m.identities.size());
  if (id >= 64 * m.words) {
    recompile();
    return;
  }
  m.identities.push_back({ns, pod.labels});
  m.identity_of.emplace(std::make_pair(ns, pod.labels), id);
  m.pod_identity[static_cast<std::size_t>(slot)] = id;
  m.label_index.add(id, pod.labels);
  m.ns_members[ns].set(id);
  m.all_identities.set(id);
  for (std::uint32_t s = 0; s < policies_.size(); ++s) {
    CompiledPolicy& c = m.cp[s];
    const NetworkPolicy& p = policies_[s];
    if (c.live && c.ns == ns && p.pod_selector.matches(pod.labels)) c.selected.set(id);
    const std::vector<Rule>* rules[2] = {&p.ingress, &p.egress};
    for (int d = 0; d < 2; ++d) {
      for (std::size_t r = 0; r < c.rules[d].size(); ++r) {
        CompiledRule& cr = c.rules[d][r];
        if (cr.all_peers) continue;
        for (const auto& peer : (*rules[d])[r].peers) {
          if (!peer.ip_block && m.peer_matches_identity(peer, c.ns, id)) {
            cr.peers.set(id);
            break;
          }
        }
      }
    }
  }
  for (int d = 0; d < 2; ++d) {
    // One new column in every class table.
    for (std::uint32_t c = 1; c < m.classes[d].size(); ++c) {
      Class& cl = m.classes[d][c];
      if (cl.refs == 0) continue;
      PortSetId ps = 0;
      for (auto s : cl.key) {
        for (const auto& r : m.cp[s].rules[d]) {
          if (r.all_peers || r.peers.test(id)) ps = m.unite(ps, r.ports);
        }
      }
      cl.table[id] = ps;
    }
    m.identity_class[d][id] = m.intern_class(m.class_key(id, d, policies_), d);
  }
}

Status Classifier::remove_pod(const std::string& ns, const std::string& name) {
  const int slot = inv_.find_pod(ns, name);
  if (slot < 0) return not_found("no Pod " + ns + "/" + name);
  Impl& m = *impl_;
  Pod& pod = inv_.pods[static_cast<std::size_t>(slot)];
  for (const auto& ip : pod.ips) m.pod_by_ip.erase(ip);
  pod = Pod{};  // the emptied slot (its identity stays until the next full compile)
  m.pod_identity[static_cast<std::size_t>(slot)] = UINT32_MAX;
  return Status::ok();
}

Classifier::Tables Classifier::tables() const {
  return Tables(impl_.get());
}

std::uint64_t Classifier::Tables::compilation() const {
  return m_->compile_id;
}
std::size_t Classifier::Tables::identities() const {
  return m_->identities.size();
}
std::uint32_t Classifier::Tables::pod_identity(std::size_t pod) const {
  return pod < m_->pod_identity.size() ? m_->pod_identity[pod] : UINT32_MAX;
}
std::uint32_t Classifier::Tables::identity_class(int d, std::uint32_t id) const {
  return m_->identity_class[d][id];
}
std::size_t Classifier::Tables::classes(int d) const {
  return m_->classes[d].size();
}
bool Classifier::Tables::live(int d, std::uint32_t c) const {
  return c != 0 && c < m_->classes[d].size() && m_->classes[d][c].refs > 0;
}
std::uint64_t Classifier::Tables::version(int d, std::uint32_t c) const {
  return m_->classes[d][c].version;
}
const std::vector<std::uint32_t>& Classifier::Tables::policies(int d, std::uint32_t c) const {
  return m_->classes[d][c].key;
}
std::uint32_t Classifier::Tables::peer_ports(int d, std::uint32_t c, std::uint32_t id) const {
  return m_->classes[d][c].table[id];
}
std::vector<std::pair<model::IpPrefix, std::uint32_t>> Classifier::Tables::prefixes(
    int d, std::uint32_t c) const {
  return m_->classes[d][c].prefixes;
}
std::size_t Classifier::Tables::port_sets() const {
  return m_->port_sets.size();
}
Classifier::PortSetView Classifier::Tables::port_set(std::uint32_t id) const {
  const PortSet& s = m_->port_sets[id];
  PortSetView v;
  v.all = s.all;
  for (const auto& r : s.ranges) v.ranges.push_back({r.proto, r.lo, r.hi});
  for (const auto& n : s.names) v.names.emplace_back(n.proto, n.name);
  return v;
}

Classifier::Stats Classifier::stats() const {
  Stats s;
  s.identities = impl_->identities.size();
  s.ingress_classes = impl_->class_ids[0].size();
  s.egress_classes = impl_->class_ids[1].size();
  s.port_sets = impl_->port_sets.size();
  s.full_compiles = impl_->full_compiles;
  return s;
}

Result<Probe> parse_probe(std::string_view text) {
  const std::string s(text);
  const auto slash = s.find('/');
  if (slash == std::string::npos) {
    return invalid_argument("probe '" + s + "': expected protocol/port, e.g. tcp/80");
  }
  std::string proto = s.substr(0, slash);
  std::transform(proto.begin(), proto.end(), proto.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  const auto p = parse_protocol(proto);
  if (!p) return invalid_argument("probe '" + s + "': protocol must be tcp, udp or sctp");
  Probe out{s, *p, 0, ""};
  const std::string port = s.substr(slash + 1);
  if (!port.empty() && port.size() <= 5 &&
      port.find_first_not_of("0123456789") == std::string::npos) {
    const int n = std::stoi(port);
    if (n < 1 || n > 65535) return invalid_argument("probe '" + s + "': port must be 1-65535");
    out.port = n;
  } else if (!port.empty() && port.size() <= 15 &&
             port.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-") == std::string::npos) {
    out.name = port;
  } else {
    return invalid_argument("probe '" + s + "': expected a port number (1-65535) or a port name");
  }
  return out;
}

int probe_port(const Probe& probe, const Pod& dst) {
  if (probe.name.empty()) return probe.port;
  return dst.named_port(probe.name, probe.protocol).value_or(0);
}

Reachability reachability(const Classifier& classifier, const Inventory& inventory,
                          const Probe& probe) {
  Reachability r;
  r.pods.resize(inventory.pods.size());
  for (std::size_t i = 0; i < r.pods.size(); ++i) r.pods[i] = static_cast<int>(i);
  std::sort(r.pods.begin(), r.pods.end(), [&](int a, int b) {
    return inventory.pods[static_cast<std::size_t>(a)].key() <
           inventory.pods[static_cast<std::size_t>(b)].key();
  });
  for (int s : r.pods) {
    std::vector<bool> row;
    row.reserve(r.pods.size());
    for (int d : r.pods) {
      const int port = probe_port(probe, inventory.pods[static_cast<std::size_t>(d)]);
      row.push_back(port > 0 &&
                    classifier.allowed(Endpoint::for_pod(inventory, s),
                                       Endpoint::for_pod(inventory, d), probe.protocol, port));
    }
    r.allowed.push_back(std::move(row));
  }
  return r;
}

}  // namespace patronus::policy
