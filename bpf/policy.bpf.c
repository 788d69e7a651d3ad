// SPDX-License-Identifier: GPL-2.0-only
// Kubernetes NetworkPolicy at tc (clsact ingress): the compiled classifier's tables as maps.
//
// A packet's verdict is the userspace classifier's (framework/src/policy/classifier.cpp):
//   source pod (by address) -> identity -> egress class; destination pod -> identity -> ingress
//   class; class 0 is "not isolated". An isolated end allows the other end when the class's table
//   gives the other end's identity a port set containing (protocol, port), or, failing that, when
//   the class's longest matching prefix for the other end's address does. Port sets are an LPM
//   trie over (set, protocol, port) (ranges become prefixes); named ports were resolved per
//   destination pod in userspace (`named`).
// Stateful: an allowed packet records its connection (LRU `conns`); a packet the policy denies
// still passes when it is the reply of a recorded connection. Non-first fragments take the
// verdict of their first fragment (LRU `frags`) and are dropped when it was not seen.
//
// Generations: every table is an ARRAY_OF_MAPS with two slots; `state.generation` says which
// slot is live. A full reload fills the other slot's maps and flips the generation with one
// write, so a packet never sees a half-built table set. Incremental updates write the live maps
// in an order that keeps every intermediate state a verdict of the old or the new policy (see
// framework/src/policy/bpf/datapath.cpp).
//
// The programs read only the __sk_buff context (a stable UAPI that the verifier rewrites) and the
// packet's bytes: nothing needs CO-RE relocation, so they are built against the UAPI headers.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/pkt_cls.h>

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "policy_maps.h"

char LICENSE[] SEC("license") = "GPL";

// Set before load (rodata): record connections and let replies pass (off for stateless test runs).
const volatile __u32 cfg_conntrack = 1;

#define GEN_TABLE(name, map_type, key_t, value_t, flags)     \
  struct name##_inner {                                      \
    __uint(type, map_type);                                  \
    __uint(max_entries, 1);                                  \
    __uint(map_flags, flags);                                \
    __uint(key_size, sizeof(key_t));                         \
    __uint(value_size, sizeof(value_t));                     \
  };                                                         \
  struct {                                                   \
    __uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);                \
    __uint(max_entries, 2);                                  \
    __type(key, __u32);                                      \
    __array(values, struct name##_inner);                    \
  } name SEC(".maps")

// Hash tables are not preallocated: their memory follows their entries, not their capacity.
GEN_TABLE(pods, BPF_MAP_TYPE_HASH, struct pt_addr_key, struct pt_pod, BPF_F_NO_PREALLOC);
GEN_TABLE(idclass, BPF_MAP_TYPE_HASH, __u32, struct pt_idclass, BPF_F_NO_PREALLOC);
// BPF_F_INNER_MAP: inner arrays of any size (the peers rows grow with the policies).
GEN_TABLE(peers, BPF_MAP_TYPE_ARRAY, __u32, __u32, BPF_F_INNER_MAP);
GEN_TABLE(cidrs, BPF_MAP_TYPE_LPM_TRIE, struct pt_cidr_key, __u32, BPF_F_NO_PREALLOC);
GEN_TABLE(ports, BPF_MAP_TYPE_LPM_TRIE, struct pt_port_key, __u8, BPF_F_NO_PREALLOC);
GEN_TABLE(podports, BPF_MAP_TYPE_HASH, struct pt_podport_key, struct pt_podport,
          BPF_F_NO_PREALLOC);
GEN_TABLE(named, BPF_MAP_TYPE_HASH, struct pt_named_key, __u8, BPF_F_NO_PREALLOC);

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct pt_state);
} state SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 65536);
  __type(key, struct pt_conn_key);
  __type(value, __u64);  // last packet, ns (bpf_ktime_get_ns)
} conns SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 8192);
  __type(key, struct pt_frag_key);
  __type(value, __u32);  // PT_PASS or PT_DROP
} frags SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, PT_VERDICTS);
  __type(key, __u32);
  __type(value, __u64);
} verdicts SEC(".maps");

// Per class: [0] allowed, [1] denied (packets evaluated under that class).
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, PT_MAX_CLASSES);
  __type(key, __u32);
  __type(value, struct pt_class_count);
} class_counts SEC(".maps");

#define PT_PASS 1
#define PT_DROP 2

struct tables {
  void *pods, *idclass, *peers, *cidrs, *ports, *podports, *named;
  __u32 stride;
};

struct pkt {
  struct pt_addr_key src, dst;
  __u8 proto;
  __u16 sport, dport;  // host order; ICMP echo: id in sport
  __u8 fragment;       // 0 whole, 1 first fragment, 2 later fragment
  __u32 frag_id;
  __u8 icmp_reply;     // an ICMP echo reply (matched against the request's connection)
};

static __always_inline void count(__u32 v) {
  __u64* c = bpf_map_lookup_elem(&verdicts, &v);
  if (c) *c += 1;
}

static __always_inline void count_class(__u32 cls, int allowed) {
  struct pt_class_count* c = bpf_map_lookup_elem(&class_counts, &cls);
  if (!c) return;
  if (allowed)
    c->allowed += 1;
  else
    c->denied += 1;
}

static __always_inline int tables_of(struct tables* t, __u32 g) {
  t->pods = bpf_map_lookup_elem(&pods, &g);
  t->idclass = bpf_map_lookup_elem(&idclass, &g);
  t->peers = bpf_map_lookup_elem(&peers, &g);
  t->cidrs = bpf_map_lookup_elem(&cidrs, &g);
  t->ports = bpf_map_lookup_elem(&ports, &g);
  t->podports = bpf_map_lookup_elem(&podports, &g);
  t->named = bpf_map_lookup_elem(&named, &g);
  return t->pods && t->idclass && t->peers && t->cidrs && t->ports && t->podports && t->named;
}

// The live generation's tables, all from one generation. A reload empties the old slots right
// after the switch: a packet that read the old number and finds a slot empty takes the new
// generation whole.
static __always_inline int load_tables(struct tables* t) {
  __u32 zero = 0;
  struct pt_state* st = bpf_map_lookup_elem(&state, &zero);
  if (!st || !st->loaded) return 0;
  const __u32 g = st->generation & 1;
  if (tables_of(t, g)) {
    t->stride = st->stride[g];
    return 1;
  }
  if (tables_of(t, g ^ 1)) {
    t->stride = st->stride[g ^ 1];
    return 1;
  }
  return 0;
}

static __always_inline int ports_allow(struct tables* t, __u32 ps, __u8 proto, __u16 port,
                                       const struct pt_pod* dst) {
  if (ps == 0) return 0;
  struct pt_port_key k = {};
  k.prefixlen = PT_PORT_PREFIX_FULL;
  k.set = bpf_htonl(ps);
  k.proto = proto;
  k.port = bpf_htons(port);
  if (bpf_map_lookup_elem(t->ports, &k)) return 1;
  if (!dst) return 0;
  // A named port: the names the destination pod gives this port, each checked against the set.
  struct pt_podport_key pk = {};
  pk.pod = dst->pod;
  pk.port = port;
  pk.proto = proto;
  const struct pt_podport* names = bpf_map_lookup_elem(t->podports, &pk);
  if (!names) return 0;
#pragma unroll
  for (int i = 0; i < PT_MAX_NAMES_PER_PORT; ++i) {
    if (names->names[i] == 0) break;
    struct pt_named_key n = {};
    n.set = ps;
    n.name = names->names[i];
    n.proto = proto;
    if (bpf_map_lookup_elem(t->named, &n)) return 1;
  }
  return 0;
}

// Whether class `cls` allows the other end (its identity when it is a pod, and its address).
static __always_inline int class_allows(struct tables* t, __u32 cls, const struct pt_pod* other,
                                        const struct pt_addr_key* other_addr, struct pkt* p,
                                        const struct pt_pod* dst) {
  if (other && other->identity < t->stride) {
    __u32 idx = cls * t->stride + other->identity;
    __u32* ps = bpf_map_lookup_elem(t->peers, &idx);
    if (ps && ports_allow(t, *ps, p->proto, p->dport, dst)) return 1;
  }
  struct pt_cidr_key ck = {};
  ck.prefixlen = other_addr->family == 4 ? PT_CIDR_PREFIX_BASE + 32 : PT_CIDR_PREFIX_BASE + 128;
  ck.cls = bpf_htonl(cls);
  ck.family = (__u8)other_addr->family;
  __builtin_memcpy(ck.addr, other_addr->addr, 16);
  __u32* ps = bpf_map_lookup_elem(t->cidrs, &ck);
  return ps && ports_allow(t, *ps, p->proto, p->dport, dst);
}

static __always_inline int policy_allows(struct tables* t, struct pkt* p) {
  const struct pt_pod* src = bpf_map_lookup_elem(t->pods, &p->src);
  const struct pt_pod* dst = bpf_map_lookup_elem(t->pods, &p->dst);
  if (src) {
    struct pt_idclass* c = bpf_map_lookup_elem(t->idclass, &src->identity);
    if (c && c->egress) {
      int ok = class_allows(t, c->egress, dst, &p->dst, p, dst);
      count_class(c->egress, ok);
      if (!ok) return 0;
    }
  }
  if (dst) {
    struct pt_idclass* c = bpf_map_lookup_elem(t->idclass, &dst->identity);
    if (c && c->ingress) {
      int ok = class_allows(t, c->ingress, src, &p->src, p, dst);
      count_class(c->ingress, ok);
      if (!ok) return 0;
    }
  }
  return 1;
}

static __always_inline void conn_key(struct pt_conn_key* k, const struct pkt* p, int reverse) {
  __builtin_memset(k, 0, sizeof(*k));
  k->family = (__u8)p->src.family;
  k->proto = p->proto;
  if (!reverse) {
    __builtin_memcpy(k->src, p->src.addr, 16);
    __builtin_memcpy(k->dst, p->dst.addr, 16);
    k->sport = p->sport;
    k->dport = p->dport;
  } else {
    __builtin_memcpy(k->src, p->dst.addr, 16);
    __builtin_memcpy(k->dst, p->src.addr, 16);
    k->sport = p->dport;
    k->dport = p->sport;
  }
}

static __always_inline int is_reply(const struct pkt* p) {
  struct pt_conn_key k;
  if (p->icmp_reply) {
    // An echo reply answers the request (dst -> src, id in sport, dport 0).
    conn_key(&k, p, 1);
    k.sport = p->sport;
    k.dport = 0;
  } else {
    conn_key(&k, p, 1);
  }
  __u64* seen = bpf_map_lookup_elem(&conns, &k);
  if (!seen) return 0;
  const __u64 now = bpf_ktime_get_ns();
  const __u64 idle = p->proto == IPPROTO_TCP ? PT_TCP_IDLE_NS : PT_OTHER_IDLE_NS;
  if (now - *seen > idle) return 0;
  *seen = now;
  return 1;
}

static __always_inline void remember(const struct pkt* p) {
  struct pt_conn_key k;
  conn_key(&k, p, 0);
  __u64 now = bpf_ktime_get_ns();
  bpf_map_update_elem(&conns, &k, &now, BPF_ANY);
}

static __always_inline void frag_key(struct pt_frag_key* k, const struct pkt* p) {
  __builtin_memset(k, 0, sizeof(*k));
  k->family = (__u8)p->src.family;
  k->proto = p->proto;
  k->id = p->frag_id;
  __builtin_memcpy(k->src, p->src.addr, 16);
  __builtin_memcpy(k->dst, p->dst.addr, 16);
}

// Ports of TCP, UDP and SCTP; the echo identifier of ICMP echo (request or reply).
static __always_inline int read_l4(struct __sk_buff* skb, __u32 off, struct pkt* p) {
  if (p->fragment == 2) return 0;
  if (p->proto == IPPROTO_TCP || p->proto == IPPROTO_UDP || p->proto == IPPROTO_SCTP) {
    __be16 ports[2];
    if (bpf_skb_load_bytes(skb, off, ports, sizeof(ports)) < 0) return -1;
    p->sport = bpf_ntohs(ports[0]);
    p->dport = bpf_ntohs(ports[1]);
  } else if (p->proto == IPPROTO_ICMP || p->proto == IPPROTO_ICMPV6) {
    __u8 hdr[6];
    if (bpf_skb_load_bytes(skb, off, hdr, sizeof(hdr)) < 0) return -1;
    const __u8 request = p->proto == IPPROTO_ICMP ? 8 : 128;
    const __u8 reply = p->proto == IPPROTO_ICMP ? 0 : 129;
    if (hdr[0] == request || hdr[0] == reply) {
      p->sport = (__u16)((hdr[4] << 8) | hdr[5]);
      p->icmp_reply = hdr[0] == reply;
    }
  }
  return 0;
}

static __always_inline int parse_v4(struct __sk_buff* skb, __u32 off, struct pkt* p) {
  __u8 h[20];
  if (bpf_skb_load_bytes(skb, off, h, sizeof(h)) < 0) return -1;
  if ((h[0] >> 4) != 4) return -1;
  const __u32 ihl = (__u32)(h[0] & 0x0f) * 4;
  if (ihl < 20) return -1;
  p->src.family = 4;
  p->dst.family = 4;
  __builtin_memcpy(p->src.addr, &h[12], 4);
  __builtin_memcpy(p->dst.addr, &h[16], 4);
  p->proto = h[9];
  const __u16 frag = (__u16)((h[6] << 8) | h[7]);
  const __u16 offset = frag & 0x1fff;
  const int more = (frag & 0x2000) != 0;
  if (offset != 0) {
    p->fragment = 2;
  } else if (more) {
    p->fragment = 1;
  }
  p->frag_id = (__u32)((h[4] << 8) | h[5]);
  return read_l4(skb, off + ihl, p);
}

static __always_inline int parse_v6(struct __sk_buff* skb, __u32 off, struct pkt* p) {
  __u8 h[40];
  if (bpf_skb_load_bytes(skb, off, h, sizeof(h)) < 0) return -1;
  if ((h[0] >> 4) != 6) return -1;
  p->src.family = 6;
  p->dst.family = 6;
  __builtin_memcpy(p->src.addr, &h[8], 16);
  __builtin_memcpy(p->dst.addr, &h[24], 16);
  __u8 next = h[6];
  off += 40;
  // Extension headers before the transport header (bounded).
#pragma unroll
  for (int i = 0; i < PT_MAX_EXT_HEADERS; ++i) {
    if (next == IPPROTO_HOPOPTS || next == IPPROTO_ROUTING || next == IPPROTO_DSTOPTS) {
      __u8 e[2];
      if (bpf_skb_load_bytes(skb, off, e, sizeof(e)) < 0) return -1;
      next = e[0];
      off += ((__u32)e[1] + 1) * 8;
    } else if (next == IPPROTO_FRAGMENT) {
      __u8 f[8];
      if (bpf_skb_load_bytes(skb, off, f, sizeof(f)) < 0) return -1;
      next = f[0];
      const __u16 fo = (__u16)((f[2] << 8) | f[3]);
      if ((fo >> 3) != 0) {
        p->fragment = 2;
      } else if (fo & 1) {
        p->fragment = 1;
      }
      p->frag_id = ((__u32)f[4] << 24) | ((__u32)f[5] << 16) | ((__u32)f[6] << 8) | f[7];
      off += 8;
    } else {
      break;
    }
  }
  if (next == IPPROTO_HOPOPTS || next == IPPROTO_ROUTING || next == IPPROTO_DSTOPTS ||
      next == IPPROTO_FRAGMENT) {
    return -1;  // more extension headers than we read
  }
  p->proto = next;
  return read_l4(skb, off, p);
}

static __always_inline int classify(struct __sk_buff* skb, __u32 l3, __u16 ethertype) {
  struct pkt p = {};
  int r;
  if (ethertype == ETH_P_IP) {
    r = parse_v4(skb, l3, &p);
  } else if (ethertype == ETH_P_IPV6) {
    r = parse_v6(skb, l3, &p);
  } else {
    count(PT_V_NOT_IP);
    return TC_ACT_OK;
  }
  if (r < 0) {
    count(PT_V_MALFORMED);
    return TC_ACT_SHOT;
  }
  struct tables t;
  if (!load_tables(&t)) {
    count(PT_V_NO_TABLES);
    return TC_ACT_SHOT;
  }
  if (p.fragment == 2) {
    struct pt_frag_key fk;
    frag_key(&fk, &p);
    __u32* v = bpf_map_lookup_elem(&frags, &fk);
    if (v && *v == PT_PASS) {
      count(PT_V_FRAGMENT_PASSED);
      return TC_ACT_OK;
    }
    count(PT_V_FRAGMENT_DROPPED);
    return TC_ACT_SHOT;
  }
  int pass = policy_allows(&t, &p);
  if (pass) {
    count(PT_V_ALLOWED);
    if (cfg_conntrack) remember(&p);
  } else if (cfg_conntrack && is_reply(&p)) {
    pass = 1;
    count(PT_V_REPLY);
  } else {
    count(PT_V_DENIED);
  }
  if (p.fragment == 1) {
    struct pt_frag_key fk;
    frag_key(&fk, &p);
    __u32 v = pass ? PT_PASS : PT_DROP;
    bpf_map_update_elem(&frags, &fk, &v, BPF_ANY);
  }
  return pass ? TC_ACT_OK : TC_ACT_SHOT;
}

// Both programs take the network protocol the kernel already read (skb->protocol, from the
// Ethernet header or the TUN's packet information). An 802.1Q-tagged frame is not IP here: it is
// counted as not_ip and passes (enforce on the VLAN's own interface).

// Devices with an Ethernet header (veth, bridges' ports, physical NICs, loopback).
SEC("tc")
int policy_eth(struct __sk_buff* skb) {
  return classify(skb, ETH_HLEN, bpf_ntohs((__be16)skb->protocol));
}

// L3 devices (wireguard-go's TUN, ipsec0): the packet starts at the IP header.
SEC("tc")
int policy_raw(struct __sk_buff* skb) {
  return classify(skb, 0, bpf_ntohs((__be16)skb->protocol));
}
