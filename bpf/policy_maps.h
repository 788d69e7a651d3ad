/* SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0 */
/* The map layouts shared by the eBPF programs (policy.bpf.c) and the loader
 * (framework/src/policy/bpf/datapath.cpp). Plain C, fixed-width types, no padding the compiler
 * chooses: the kernel compares keys byte for byte. */
#ifndef PATRONUS_BPF_POLICY_MAPS_H
#define PATRONUS_BPF_POLICY_MAPS_H

#ifdef __cplusplus
#include <cstdint>
typedef std::uint8_t pt_u8;
typedef std::uint16_t pt_u16;
typedef std::uint32_t pt_u32;
typedef std::uint64_t pt_u64;
#else
typedef __u8 pt_u8;
typedef __u16 pt_u16;
typedef __u32 pt_u32;
typedef __u64 pt_u64;
#endif

#define PT_MAX_CLASSES 65536
#define PT_MAX_EXT_HEADERS 4
#define PT_TCP_IDLE_NS (3600ULL * 1000000000ULL)
#define PT_OTHER_IDLE_NS (180ULL * 1000000000ULL)

/* Verdict counters (index into `verdicts`). */
#define PT_V_ALLOWED 0          /* the policy allows it */
#define PT_V_DENIED 1           /* the policy denies it and it is no reply: dropped */
#define PT_V_REPLY 2            /* denied by the policy, passed as a recorded connection's reply */
#define PT_V_NOT_IP 3           /* not IPv4 or IPv6 (ARP...): passed, no policy applies */
#define PT_V_MALFORMED 4        /* truncated or unparsable IP: dropped */
#define PT_V_FRAGMENT_PASSED 5  /* a later fragment of an allowed first fragment */
#define PT_V_FRAGMENT_DROPPED 6 /* a later fragment whose first was denied or not seen */
#define PT_V_NO_TABLES 7        /* no tables loaded yet: dropped (fail closed) */
#define PT_VERDICTS 8

/* An address: family 4 (first four bytes used, the rest zero) or 6. */
struct pt_addr_key {
  pt_u32 family;
  pt_u8 addr[16];
};

struct pt_pod {
  pt_u32 pod;      /* inventory slot (named ports are resolved per pod) */
  pt_u32 identity; /* classifier identity (namespace + labels) */
};

struct pt_idclass {
  pt_u32 ingress; /* datapath class ids; 0: not isolated in that direction */
  pt_u32 egress;
};

/* `peers` is an array: the port set a class allows a peer identity is at
 * cls * stride + identity (0: none). The stride (identities a class row holds) is the
 * generation's, in `state`. */

/* LPM: class (big-endian), family, address. A v4 prefix /n has prefixlen 40 + n. */
#define PT_CIDR_PREFIX_BASE 40
struct pt_cidr_key {
  pt_u32 prefixlen;
  pt_u32 cls; /* big-endian */
  pt_u8 family;
  pt_u8 addr[16];
  pt_u8 pad[3];
};

/* LPM: port set (big-endian), protocol, port (big-endian). Prefix 32: every protocol and port
 * (a rule without ports); 40: every port of the protocol; 40 + k: a port range's prefix. */
#define PT_PORT_PREFIX_SET 32
#define PT_PORT_PREFIX_PROTO 40
#define PT_PORT_PREFIX_FULL 56
struct pt_port_key {
  pt_u32 prefixlen;
  pt_u32 set; /* big-endian */
  pt_u8 proto;
  pt_u16 port; /* big-endian */
  pt_u8 pad;
} __attribute__((packed));

/* Named ports: a pod's (port, protocol) -> the names it gives that port (ids; 0 ends the list),
 * and (port set, protocol, name) -> 1 when the set names it. */
#define PT_MAX_NAMES_PER_PORT 4
struct pt_podport_key {
  pt_u32 pod;
  pt_u16 port;
  pt_u8 proto;
  pt_u8 pad;
};
struct pt_podport {
  pt_u32 names[PT_MAX_NAMES_PER_PORT];
};
struct pt_named_key {
  pt_u32 set;
  pt_u32 name;
  pt_u8 proto;
  pt_u8 pad[3];
};

struct pt_conn_key {
  pt_u8 family;
  pt_u8 proto;
  pt_u16 sport;
  pt_u16 dport;
  pt_u16 pad;
  pt_u8 src[16];
  pt_u8 dst[16];
};

struct pt_frag_key {
  pt_u8 family;
  pt_u8 proto;
  pt_u16 pad;
  pt_u32 id;
  pt_u8 src[16];
  pt_u8 dst[16];
};

struct pt_state {
  pt_u32 generation; /* the live slot of every table: generation & 1 */
  pt_u32 loaded;     /* 0 until the first tables are in */
  pt_u32 stride[2];  /* per slot: the peers array's row length */
};

struct pt_class_count {
  pt_u64 allowed;
  pt_u64 denied;
};

#endif
