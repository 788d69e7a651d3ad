/*
 * Patronus plugin ABI: the one header a plugin needs.
 *
 * Rules (see docs/adr/0001-plugin-abi.md):
 *  - C only. Fixed-width integers, `const char*` + length, opaque handles, function pointers.
 *    No C++ type, exception or allocation crosses this boundary.
 *  - Every table begins with `uint32_t struct_size`. Tables only ever grow at the end; a reader
 *    uses min(struct_size, sizeof(what it knows)) bytes of a table.
 *  - A plugin whose abi_major differs from the host's, or whose abi_minor is newer than the
 *    host's, is refused. Adding to the end of a table is a minor bump; anything else is a major
 *    one. ABI 1.1 (docs/adr/0006-abi-1-1.md) appended fields to tables 1.0 defined; ABI 1.2
 *    (docs/adr/0011-abi-1-2.md) appended what a transport needs; ABI 1.3 (docs/adr/0014-abi-1-3.md)
 *    what a protocol with TTL rules needs (BFD); ABI 1.4 (docs/adr/0017-ipsec-transport.md) a
 *    path's transport settings from the sites file and two tunnel diagnostics (IPsec). 1.0, 1.1,
 *    1.2 and 1.3 plugins keep loading.
 *  - Reserved fields and slots must be zero.
 *  - Each plugin exports exactly one entry point, through Boost.DLL's alias mechanism, under the
 *    name `patronus_plugin_entry` (see PATRONUS_PLUGIN_ENTRY below).
 *
 * Changing this file changes the hash pinned in tests/abi/abi_hash_test.cpp: bump the version.
 */
#ifndef PATRONUS_ABI_PLUGIN_ABI_H
#define PATRONUS_ABI_PLUGIN_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PATRONUS_ABI_VERSION_MAJOR 1
#define PATRONUS_ABI_VERSION_MINOR 4

/* ---------------------------------------------------------------------------------------------
 * Frozen sizes (LP64) of every table and struct as the ABI version that introduced it defined
 * them. The host never accepts a table shorter than its frozen 1.0 size, and reads only
 * min(struct_size, sizeof(what it knows)) bytes: a plugin built against 1.0 keeps loading in every
 * 1.x host. Fields added in 1.1 ... 1.4 are marked "ABI 1.1" ... "ABI 1.4"; a reader checks
 * struct_size before using them (the host reads the descriptor's 1.2 flags only from a plugin
 * built against 1.2 or later). Reserved fields must be zero (the host refuses a plugin whose
 * reserved fields are not).
 */
#define PATRONUS_SIZE_1_0_PATH_SAMPLE 40u
#define PATRONUS_SIZE_1_0_PATH_DESC 72u
#define PATRONUS_SIZE_1_0_METRICS_WINDOW 40u
#define PATRONUS_SIZE_1_0_SCORE 16u
#define PATRONUS_SIZE_1_0_FLOW_TUPLE 48u
#define PATRONUS_SIZE_1_0_HOST_SERVICES 104u
#define PATRONUS_SIZE_1_0_TRANSPORT 24u
#define PATRONUS_SIZE_1_0_PROBE 24u
#define PATRONUS_SIZE_1_0_SCORER 16u
#define PATRONUS_SIZE_1_0_POLICY 24u
#define PATRONUS_SIZE_1_0_DESCRIPTOR 168u
/* Introduced in 1.1: its lower bound is its 1.1 size. */
#define PATRONUS_SIZE_1_1_PATH_LIVENESS 40u
/* Introduced in 1.2. */
#define PATRONUS_SIZE_1_2_TUNNEL_STATUS 64u
#define PATRONUS_SIZE_1_2_PREFIX 24u
/* Introduced in 1.3. */
#define PATRONUS_SIZE_1_3_UDP_OPTIONS 16u
#define PATRONUS_SIZE_1_3_DATAGRAM_INFO 36u

/* The alias every plugin exports (a Boost.DLL alias: a `const void*` in section "boostdll"). */
#define PATRONUS_PLUGIN_ENTRY_NAME "patronus_plugin_entry"

/* ---------------------------------------------------------------------------------------------
 * Status codes. Zero is success; every error is negative.
 */
typedef int32_t patronus_status;
#define PATRONUS_OK 0
#define PATRONUS_ERR_INVALID_ARGUMENT (-1)
#define PATRONUS_ERR_NOT_FOUND (-2)
#define PATRONUS_ERR_RESOURCE_EXHAUSTED (-3) /* a bound was hit (timers, endpoints, queue) */
#define PATRONUS_ERR_UNAVAILABLE (-4)        /* e.g. network unreachable, endpoint closed */
#define PATRONUS_ERR_FAILED_PRECONDITION (-5)
#define PATRONUS_ERR_INTERNAL (-6) /* includes an exception caught at the boundary */
#define PATRONUS_ERR_UNIMPLEMENTED (-7)

/* ---------------------------------------------------------------------------------------------
 * Plugin kinds.
 */
#define PATRONUS_KIND_TRANSPORT 1u
#define PATRONUS_KIND_PROBE 2u
#define PATRONUS_KIND_SCORER 3u
#define PATRONUS_KIND_POLICY 4u

/* Log levels for host->log. */
#define PATRONUS_LOG_DEBUG 0u
#define PATRONUS_LOG_INFO 1u
#define PATRONUS_LOG_WARN 2u
#define PATRONUS_LOG_ERROR 3u

/* ---------------------------------------------------------------------------------------------
 * Plain data crossing the boundary.
 */

/* A socket address: IPv4 (family 4, bytes[0..3]) or IPv6 (family 6, bytes[0..15]), network
 * byte order in `bytes`, host byte order in `port`. */
#define PATRONUS_AF_INET4 4u
#define PATRONUS_AF_INET6 6u
struct patronus_addr {
  uint8_t family;
  uint8_t reserved0;
  uint16_t port;
  uint8_t bytes[16];
};

/* A prefix (ABI 1.2): an address (port 0) and its length in bits. Passed in arrays, so its size is
 * fixed for every 1.x (it has no struct_size and never grows). */
struct patronus_prefix {
  struct patronus_addr addr;
  uint8_t length; /* 0..32 (IPv4), 0..128 (IPv6) */
  uint8_t reserved0[3];
};

typedef uint64_t patronus_timer_id;    /* 0 is never a valid id */
typedef uint64_t patronus_endpoint_id; /* 0 is never a valid id */
typedef uint64_t patronus_watch_id;    /* 0 is never a valid id (ABI 1.2) */

/* Where a probe's measurement of one path is reported (host_services.report_sample). */
struct patronus_path_sample {
  uint32_t struct_size;
  uint32_t lost;     /* 1: the probe timed out (no rtt); 0: rtt_ns is a measurement */
  uint64_t path_id;  /* the path id the host gave the probe (0 for unmanaged diagnostics) */
  int64_t sent_ns;   /* host clock when the probe left */
  int64_t rtt_ns;    /* measured round trip; undefined when lost */
  uint64_t sequence; /* probe sequence number, per path */
  /* ABI 1.1 */
  uint32_t flags; /* PATRONUS_SAMPLE_* */
  uint32_t reserved1;
};
#define PATRONUS_SAMPLE_REORDERED 1u /* the reply arrived after a reply to a later probe */
#define PATRONUS_SAMPLE_LATE 2u      /* the reply arrived after its probe was reported lost */

/* A probe's liveness verdict on one path (host_services.report_liveness, ABI 1.1), BFD-like:
 * DOWN when nothing valid was received for the detection time, UP again on recovery. */
struct patronus_path_liveness {
  uint32_t struct_size;
  uint32_t state; /* PATRONUS_PATH_UP or PATRONUS_PATH_DOWN */
  uint64_t path_id;
  int64_t detect_time_ns; /* the detection time in force (multiplier x interval) */
  int64_t last_rx_ns;     /* host clock of the last valid packet on the path (0: never) */
  uint32_t diagnostic;    /* PATRONUS_DIAG_* */
  uint32_t reserved0;
};
#define PATRONUS_DIAG_NONE 0u
#define PATRONUS_DIAG_DETECT_EXPIRED 1u /* control detection time expired (as BFD diag 1) */
#define PATRONUS_DIAG_NEIGHBOR_DOWN 3u  /* the far end said it is down (as BFD diag 3) */
#define PATRONUS_DIAG_ADMIN_DOWN 7u     /* as BFD diag 7 */

/* A path the host asks a transport to bring up or a probe to watch. */
struct patronus_path_desc {
  uint32_t struct_size;
  uint32_t reserved0;
  uint64_t path_id;
  struct patronus_addr local;  /* local endpoint (port 0: let the plugin choose) */
  struct patronus_addr remote; /* remote endpoint */
  const char* local_site;      /* NUL-terminated, valid for the duration of the call */
  const char* remote_site;
  /* ABI 1.1 */
  struct patronus_addr local_overlay; /* tunnel (overlay) addresses; family 0: none */
  struct patronus_addr remote_overlay;
  uint32_t session_id; /* identifies the path on the wire; both ends compute the same value */
  uint32_t rate;       /* PATRONUS_PROBE_RATE_*: how often to probe at first */
  uint32_t key_len;    /* 32, or 0: no key (an authenticating probe refuses such a path) */
  uint32_t reserved1;
  /* Per-path probe key, derived by the host from the two endpoints' X25519 keys; the same on
   * both ends, different for every path. Private keys never cross the ABI. */
  uint8_t key[32];
  /* ABI 1.2: what a transport needs to build the tunnel (probes ignore these). The transport finds
   * its private key itself (e.g. in its key directory, by local_public_key): private keys never
   * cross the ABI. Arrays and strings are valid for the duration of the call. */
  const char* local_endpoint; /* endpoint names within their sites, NUL-terminated */
  const char* remote_endpoint;
  const char* interface_name; /* the interface carrying the local endpoint's tunnels ("": none) */
  const struct patronus_prefix* interface_addresses; /* the local overlay addresses to assign */
  const struct patronus_prefix* allowed_prefixes;    /* what the remote end carries */
  uint32_t interface_address_count;
  uint32_t allowed_prefix_count;
  uint8_t local_public_key[32]; /* X25519 public keys (PATRONUS_PATH_PUBLIC_KEYS) */
  uint8_t remote_public_key[32];
  uint32_t keepalive_s; /* persistent keepalive in seconds, 0: off */
  uint32_t flags;       /* PATRONUS_PATH_* */
  /* Key rotation: the remote endpoint's next public key (PATRONUS_PATH_REMOTE_NEXT_KEY), staged
   * before the far end switches to it. A transport accepts the far end under this key too, so the
   * switch costs one handshake. */
  uint8_t remote_next_public_key[32];
  /* ABI 1.4: the path's transport settings from the sites file, as a NUL-terminated JSON object
   * of `transport_params_size` bytes (without the NUL), valid for the duration of the call:
   * {"transport": "ipsec", "local": {...}, "remote": {...}, "local_subnets": [...]} with each
   * endpoint's settings for its transport (e.g. its `ike` section; "remote" has "external": true
   * for a peer that is not a Patronus site) and the local site's LAN prefixes. NULL (size 0) when
   * the sites file gives none. Secrets are never in it, only where to find them. */
  const char* transport_params;
  uint32_t transport_params_size;
  uint32_t reserved2;
};
#define PATRONUS_PATH_PUBLIC_KEYS 1u     /* local_public_key and remote_public_key are set */
#define PATRONUS_PATH_REMOTE_NEXT_KEY 2u /* remote_next_public_key is set */
#define PATRONUS_PROBE_RATE_ACTIVE 0u    /* the path carries flows: fast interval */
#define PATRONUS_PROBE_RATE_IDLE 1u      /* nothing on it: slow interval */

/* A transport's report on the tunnel of one path (host_services.report_tunnel, ABI 1.2), sent on
 * every change of state and periodically with fresh counters. A path whose tunnel is DOWN is not
 * used for traffic. */
struct patronus_tunnel_status {
  uint32_t struct_size;
  uint32_t state; /* PATRONUS_TUNNEL_UP or PATRONUS_TUNNEL_DOWN */
  uint64_t path_id;
  int64_t last_handshake_wall_ns; /* wall clock of the last completed handshake; 0: never */
  uint64_t rx_bytes;
  uint64_t tx_bytes;
  struct patronus_addr endpoint; /* the remote endpoint in use now (family 0: none) */
  uint32_t diagnostic;           /* PATRONUS_TUNNEL_DIAG_* */
};
#define PATRONUS_TUNNEL_UP 0u
#define PATRONUS_TUNNEL_DOWN 1u
#define PATRONUS_TUNNEL_DIAG_NONE 0u
#define PATRONUS_TUNNEL_DIAG_NO_HANDSHAKE 1u /* none within the protocol's reject window */
#define PATRONUS_TUNNEL_DIAG_DEVICE_ERROR 2u /* the device refused its configuration */
#define PATRONUS_TUNNEL_DIAG_DEVICE_GONE 3u  /* the device (or its control socket) went away */
/* ABI 1.4 */
#define PATRONUS_TUNNEL_DIAG_AUTH_FAILED 4u        /* authentication failed (either side's) */
#define PATRONUS_TUNNEL_DIAG_NEGOTIATION_FAILED 5u /* no proposal or traffic selector agreed */

/* Metrics window handed to a scorer. Units: milliseconds, percent (0-100), megabits/s. */
struct patronus_metrics_window {
  uint32_t struct_size;
  uint32_t samples;  /* probes in the window, lost ones included */
  double latency_ms; /* mean round-trip time of the received probes */
  double jitter_ms;  /* mean absolute difference of consecutive round-trip times */
  double loss_pct;
  double bandwidth_mbps; /* the path's capacity; 0 with PATRONUS_WINDOW_BANDWIDTH_UNKNOWN */
  /* ABI 1.1 */
  uint64_t path_id;
  int64_t window_ns; /* time between the oldest and the newest probe in the window */
  uint32_t lost;     /* lost probes among `samples` */
  uint32_t flags;    /* PATRONUS_WINDOW_* */
  uint32_t priority; /* PATRONUS_PRIORITY_* of the class asking */
  uint32_t reserved1;
  const char* class_name; /* NUL-terminated class name, valid for the call; NULL: none */
};
#define PATRONUS_WINDOW_BANDWIDTH_UNKNOWN 1u /* no capacity configured for the path */
#define PATRONUS_PRIORITY_CRITICAL 0u
#define PATRONUS_PRIORITY_HIGH 1u
#define PATRONUS_PRIORITY_NORMAL 2u
#define PATRONUS_PRIORITY_LOW 3u
#define PATRONUS_PRIORITY_BEST_EFFORT 4u

struct patronus_score {
  uint32_t struct_size;
  uint32_t state; /* PATRONUS_PATH_UP / DEGRADED / DOWN */
  double score;   /* 0..100 */
};
#define PATRONUS_PATH_UP 0u
#define PATRONUS_PATH_DEGRADED 1u
#define PATRONUS_PATH_DOWN 2u

/* A flow tuple handed to a policy plugin. */
struct patronus_flow_tuple {
  uint32_t struct_size;
  uint8_t protocol; /* IANA protocol number: 6 TCP, 17 UDP, 132 SCTP */
  uint8_t reserved0[3];
  struct patronus_addr src;
  struct patronus_addr dst;
};
#define PATRONUS_VERDICT_DENY 0u
#define PATRONUS_VERDICT_ALLOW 1u

/* ---------------------------------------------------------------------------------------------
 * Host services: the only way a plugin touches time, timers or the network. Given to each plugin
 * instance at create(); valid until destroy() returns. Calls are made from the instance's own
 * thread only (one instance is single-threaded); callbacks arrive on that thread too.
 */
typedef struct patronus_host_ctx patronus_host_ctx; /* opaque */

typedef void (*patronus_timer_fn)(void* user, patronus_timer_id id);
typedef void (*patronus_datagram_fn)(void* user, patronus_endpoint_id endpoint,
                                     const struct patronus_addr* from, const uint8_t* data,
                                     uint32_t size);
/* ABI 1.2: a watched descriptor is ready (`ready`: PATRONUS_FD_READABLE | PATRONUS_FD_WRITABLE). */
typedef void (*patronus_fd_fn)(void* user, patronus_watch_id id, int32_t fd, uint32_t ready);
#define PATRONUS_FD_READABLE 1u
#define PATRONUS_FD_WRITABLE 2u

/* ABI 1.3: how a datagram endpoint sends (host_services.udp_open_ex). */
struct patronus_udp_options {
  uint32_t struct_size;
  uint32_t send_ttl; /* 1..255: TTL (IPv4) or hop limit (IPv6) of every datagram; 0: the default */
  uint32_t flags;    /* zero (none defined yet) */
  uint32_t reserved0;
};

/* ABI 1.3: what the host knows of a received datagram. `flags` says which fields are set: a field
 * the host cannot know (a network model without interfaces has no ifindex) is absent, never
 * invented. */
struct patronus_datagram_info {
  uint32_t struct_size;
  uint32_t flags;   /* PATRONUS_DGRAM_* */
  uint32_t ttl;     /* the TTL (IPv4) or hop limit (IPv6) it arrived with (PATRONUS_DGRAM_TTL) */
  uint32_t ifindex; /* the interface it arrived on (PATRONUS_DGRAM_IFINDEX) */
  struct patronus_addr local; /* the address and port it was sent to (PATRONUS_DGRAM_LOCAL) */
};
#define PATRONUS_DGRAM_TTL 1u
#define PATRONUS_DGRAM_IFINDEX 2u
#define PATRONUS_DGRAM_LOCAL 4u
typedef void (*patronus_datagram_info_fn)(void* user, patronus_endpoint_id endpoint,
                                          const struct patronus_addr* from,
                                          const struct patronus_datagram_info* info,
                                          const uint8_t* data, uint32_t size);

struct patronus_host_services {
  uint32_t struct_size; /* sizeof(struct patronus_host_services) as the host knows it */
  uint32_t abi_minor;   /* the host's PATRONUS_ABI_VERSION_MINOR */
  patronus_host_ctx* ctx;

  /* Monotonic time in nanoseconds (real clock or simulated clock, the plugin cannot tell). */
  int64_t (*now_ns)(patronus_host_ctx* ctx);

  /* One-shot timer firing after delay_ns (>= 0). Returns 0 when the per-instance bound on live
   * timers is reached. cancel returns PATRONUS_ERR_NOT_FOUND for an unknown or fired timer. */
  patronus_timer_id (*schedule)(patronus_host_ctx* ctx, int64_t delay_ns, patronus_timer_fn fn,
                                void* user);
  patronus_status (*cancel)(patronus_host_ctx* ctx, patronus_timer_id id);

  /* Datagram (UDP) endpoints. open binds `local` (port 0: any port) and writes the id and the
   * bound address. Each received datagram calls fn on the instance's thread. */
  patronus_status (*udp_open)(patronus_host_ctx* ctx, const struct patronus_addr* local,
                              patronus_datagram_fn fn, void* user, patronus_endpoint_id* out_id,
                              struct patronus_addr* out_bound);
  patronus_status (*udp_send)(patronus_host_ctx* ctx, patronus_endpoint_id id,
                              const struct patronus_addr* to, const uint8_t* data, uint32_t size);
  patronus_status (*udp_close)(patronus_host_ctx* ctx, patronus_endpoint_id id);

  /* Logging, metrics and events. Strings are (pointer, length) and need not be NUL-terminated. */
  void (*log)(patronus_host_ctx* ctx, uint32_t level, const char* msg, uint32_t msg_len);
  void (*metric)(patronus_host_ctx* ctx, const char* name, uint32_t name_len, double value);
  void (*event)(patronus_host_ctx* ctx, const char* type, uint32_t type_len, const char* json,
                uint32_t json_len);

  /* Seeded randomness (deterministic under simulation). */
  uint64_t (*random_u64)(patronus_host_ctx* ctx);

  /* A probe's measurement of one path. */
  void (*report_sample)(patronus_host_ctx* ctx, const struct patronus_path_sample* sample);

  /* ABI 1.1 */
  /* Wall-clock time, nanoseconds since the Unix epoch (simulated under simulation). For
   * timestamps people read; measure intervals with now_ns. */
  int64_t (*wall_ns)(patronus_host_ctx* ctx);
  /* A probe's liveness verdict on a path (sent on every change of state). */
  void (*report_liveness)(patronus_host_ctx* ctx, const struct patronus_path_liveness* liveness);

  /* ABI 1.2 */
  /* Readiness of a descriptor the plugin owns (a unix or netlink socket; set it non-blocking):
   * fn runs on the instance's thread whenever fd is ready for `events`, level-triggered, until
   * unwatch_fd (allowed from inside fn). The plugin keeps fd open while it is watched. A host
   * without real descriptors (the simulator) answers PATRONUS_ERR_UNIMPLEMENTED; a bound on
   * watches per instance answers PATRONUS_ERR_RESOURCE_EXHAUSTED. */
  patronus_status (*watch_fd)(patronus_host_ctx* ctx, int32_t fd, uint32_t events,
                              patronus_fd_fn fn, void* user, patronus_watch_id* out_id);
  patronus_status (*unwatch_fd)(patronus_host_ctx* ctx, patronus_watch_id id);
  /* A transport's report on a path's tunnel. */
  void (*report_tunnel)(patronus_host_ctx* ctx, const struct patronus_tunnel_status* status);

  /* ABI 1.3 */
  /* udp_open with options (the TTL of what it sends; NULL: defaults) whose receive callback also
   * gets what the host knows of each datagram (the TTL it arrived with, its destination address,
   * the interface). Every backend reports TTL and destination; the real network also the
   * interface. A send_ttl outside 0..255 or a non-zero reserved field is
   * PATRONUS_ERR_INVALID_ARGUMENT. */
  patronus_status (*udp_open_ex)(patronus_host_ctx* ctx, const struct patronus_addr* local,
                                 const struct patronus_udp_options* options,
                                 patronus_datagram_info_fn fn, void* user,
                                 patronus_endpoint_id* out_id, struct patronus_addr* out_bound);
};

/* ---------------------------------------------------------------------------------------------
 * Kind-specific tables. Each begins with struct_size; functions a plugin does not provide are
 * NULL. `inst` is the pointer create() returned.
 */
/* A transport builds the tunnel a path describes. path_up on a path id it already has updates that
 * path (a changed key, endpoint or prefix) without disturbing the transport's other paths. */
struct patronus_transport_v1 {
  uint32_t struct_size;
  uint32_t reserved0;
  patronus_status (*path_up)(void* inst, const struct patronus_path_desc* path, char* err,
                             uint32_t err_cap);
  patronus_status (*path_down)(void* inst, uint64_t path_id);
};

struct patronus_probe_v1 {
  uint32_t struct_size;
  uint32_t reserved0;
  patronus_status (*watch_path)(void* inst, const struct patronus_path_desc* path, char* err,
                                uint32_t err_cap);
  patronus_status (*unwatch_path)(void* inst, uint64_t path_id);
  /* ABI 1.1 (each may be NULL) */
  /* How often to probe a watched path from now on (PATRONUS_PROBE_RATE_*). */
  patronus_status (*set_path_rate)(void* inst, uint64_t path_id, uint32_t rate, char* err,
                                   uint32_t err_cap);
  /* unwatch_path with an error message; preferred over unwatch_path when present. */
  patronus_status (*unwatch_path_ex)(void* inst, uint64_t path_id, char* err, uint32_t err_cap);
};

struct patronus_scorer_v1 {
  uint32_t struct_size;
  uint32_t reserved0;
  patronus_status (*score)(void* inst, const struct patronus_metrics_window* window,
                           struct patronus_score* out);
  /* ABI 1.1 (may be NULL): score with an error message; preferred over score when present. */
  patronus_status (*score_ex)(void* inst, const struct patronus_metrics_window* window,
                              struct patronus_score* out, char* err, uint32_t err_cap);
};

struct patronus_policy_v1 {
  uint32_t struct_size;
  uint32_t reserved0;
  /* Replace the policy set with `document` (format named by the plugin's docs). */
  patronus_status (*load)(void* inst, const char* document, uint32_t size, char* err,
                          uint32_t err_cap);
  patronus_status (*evaluate)(void* inst, const struct patronus_flow_tuple* flow,
                              uint32_t* out_verdict);
  /* ABI 1.1 (may be NULL): evaluate with an error message; preferred when present. */
  patronus_status (*evaluate_ex)(void* inst, const struct patronus_flow_tuple* flow,
                                 uint32_t* out_verdict, char* err, uint32_t err_cap);
};

/* ---------------------------------------------------------------------------------------------
 * The descriptor. The first six fields are fixed forever (the host reads them to decide whether
 * it may read the rest).
 */
struct patronus_plugin_descriptor {
  uint32_t struct_size; /* sizeof(struct patronus_plugin_descriptor) as the plugin knows it */
  uint32_t abi_major;   /* PATRONUS_ABI_VERSION_MAJOR the plugin was built with */
  uint32_t abi_minor;   /* PATRONUS_ABI_VERSION_MINOR the plugin was built with */
  uint32_t kind;        /* PATRONUS_KIND_* */
  const char* name;     /* [a-z0-9-]+, unique among loaded plugins */
  const char* version;  /* the plugin's own version, free form */

  /* Typed configuration: the full name of a Protobuf message (e.g. "acme.scorer.v1.Config") and
   * a serialized google.protobuf.FileDescriptorSet that defines it (with its imports). The host
   * converts the user's YAML into that message and hands the plugin its serialized bytes. A plugin
   * without configuration sets all three to NULL/0. */
  const char* config_type;
  const uint8_t* config_schema;
  uint32_t config_schema_size;
  uint32_t reserved0;

  /* Lifecycle. create() returns PATRONUS_OK and sets *out_inst; the host calls configure() once,
   * then start(), later stop() and finally destroy(). Errors are written NUL-terminated into
   * err (capacity err_cap). */
  patronus_status (*create)(const struct patronus_host_services* host, void** out_inst, char* err,
                            uint32_t err_cap);
  patronus_status (*configure)(void* inst, const uint8_t* config, uint32_t config_size, char* err,
                               uint32_t err_cap);
  patronus_status (*start)(void* inst, char* err, uint32_t err_cap);
  patronus_status (*stop)(void* inst);
  void (*destroy)(void* inst);

  /* Points to the table for `kind`: struct patronus_transport_v1 / _probe_v1 / _scorer_v1 /
   * _policy_v1. */
  const void* kind_table;

  void* reserved[8];

  /* ABI 1.2 */
  uint32_t flags; /* PATRONUS_PLUGIN_* */
  uint32_t reserved1;
};
/* The plugin configures real interfaces or sockets (a transport): a host without the real network
 * (the simulator) refuses it by name instead of loading it. */
#define PATRONUS_PLUGIN_NEEDS_REAL_NETWORK 1u

typedef const struct patronus_plugin_descriptor* (*patronus_plugin_entry_fn)(void);

/* Exports `fn` (a patronus_plugin_entry_fn) as the plugin's one entry point, laid out exactly as
 * Boost.DLL's BOOST_DLL_ALIAS does (a default-visibility `const void*` named
 * patronus_plugin_entry in section "boostdll"), so plugins written in plain C need no Boost. */
#if defined(__GNUC__) && defined(__ELF__)
#ifdef __cplusplus
#define PATRONUS_PLUGIN_ENTRY(fn)                                                      \
  extern "C" __attribute__((visibility("default"))) const void* patronus_plugin_entry; \
  __attribute__((section("boostdll"), weak, visibility("default")))                    \
  const void* patronus_plugin_entry =                                                  \
      reinterpret_cast<const void*>(reinterpret_cast<intptr_t>(&(fn)))
#else
#define PATRONUS_PLUGIN_ENTRY(fn)                                   \
  __attribute__((section("boostdll"), weak, visibility("default"))) \
  const void* patronus_plugin_entry = (const void*)(&(fn))
#endif
#else
#error "Patronus plugins are built for ELF targets with GCC or Clang"
#endif

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* PATRONUS_ABI_PLUGIN_ABI_H */
