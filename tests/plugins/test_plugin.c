/* Test plugins written in plain C against the ABI header (no SDK, no Boost): one source, built in
 * variants selected by -DVARIANT_*. The good variant runs a timer through the host table; the
 * others are each refused by the host for one reason. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "patronus/abi/plugin_abi.h"

#ifndef PLUGIN_NAME
#define PLUGIN_NAME "test-good"
#endif

struct inst {
  const struct patronus_host_services* host;
  uint32_t fired;
  uint32_t delay_ms;
};

/* Appends the decimal digits of v to buf at *n (no printf: the plugin stays free of libc
 * formatting). */
static void append_u32(char* buf, int* n, uint32_t v) {
  char digits[10];
  int d = 0;
  do {
    digits[d++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  while (d) buf[(*n)++] = digits[--d];
}

static void on_timer(void* user, patronus_timer_id id) {
  struct inst* in = (struct inst*)user;
  (void)id;
  in->fired++;
  char json[64];
  int n = 9;
  memcpy(json, "{\"fired\":", 9); /* {"fired":N} */
  append_u32(json, &n, in->fired);
  json[n++] = '}';
  in->host->event(in->host->ctx, "timer.fired", 11, json, (uint32_t)n);
  if (in->fired < 3)
    in->host->schedule(in->host->ctx, (int64_t)in->delay_ms * 1000000, on_timer, in);
}

/* A datagram on the endpoint watch() opened: {"ttl":T,"flags":F} as event "udp.info". */
static void on_datagram(void* user, patronus_endpoint_id ep, const struct patronus_addr* from,
                        const struct patronus_datagram_info* info, const uint8_t* data,
                        uint32_t size) {
  struct inst* in = (struct inst*)user;
  (void)ep, (void)from, (void)data, (void)size;
  char json[64];
  int n = 7;
  memcpy(json, "{\"ttl\":", 7);
  append_u32(json, &n, info->ttl);
  memcpy(json + n, ",\"flags\":", 9);
  n += 9;
  append_u32(json, &n, info->flags);
  json[n++] = '}';
  in->host->event(in->host->ctx, "udp.info", 8, json, (uint32_t)n);
}

static patronus_status create(const struct patronus_host_services* host, void** out, char* err,
                              uint32_t cap) {
  (void)err, (void)cap;
  struct inst* in = (struct inst*)calloc(1, sizeof *in);
  if (!in) return PATRONUS_ERR_RESOURCE_EXHAUSTED;
  in->host = host;
  in->delay_ms = 5;
  *out = in;
  return PATRONUS_OK;
}
static patronus_status configure(void* i, const uint8_t* c, uint32_t n, char* err, uint32_t cap) {
  (void)i, (void)c, (void)n, (void)err, (void)cap;
  return PATRONUS_OK;
}
__attribute__((unused)) static patronus_status start(void* i, char* err, uint32_t cap) {
  struct inst* in = (struct inst*)i;
  (void)err, (void)cap;
#ifdef VARIANT_HOSTILE_LOG
  {
    /* A line that would forge another one and drive a terminal, if the host printed it as is. */
    static const char forged[] =
        "started\n2026-01-01T00:00:00.000Z patronusd[hq] error: \x1b[31mboom";
    in->host->log(in->host->ctx, PATRONUS_LOG_INFO, forged, sizeof forged - 1);
  }
#else
  in->host->log(in->host->ctx, PATRONUS_LOG_INFO, "started", 7);
#endif
  return in->host->schedule(in->host->ctx, (int64_t)in->delay_ms * 1000000, on_timer, in)
             ? PATRONUS_OK
             : PATRONUS_ERR_RESOURCE_EXHAUSTED;
}
static patronus_status stop(void* i) {
  (void)i;
  return PATRONUS_OK;
}
static void destroy(void* i) {
  free(i);
}
/* Exercises the host's udp_open_ex (ABI 1.3) from plain C: the path's fields are the options
 * (session_id the TTL to send with, rate the options' flags, key_len its reserved field); the
 * endpoint binds `local` and sends one datagram to `remote`. The host's verdict is returned. */
static patronus_status watch(void* i, const struct patronus_path_desc* p, char* e, uint32_t c) {
  struct inst* in = (struct inst*)i;
  (void)e, (void)c;
  const struct patronus_host_services* h = in->host;
  if (h->struct_size < offsetof(struct patronus_host_services, udp_open_ex) + sizeof(void*) ||
      h->udp_open_ex == NULL) {
    return PATRONUS_ERR_UNIMPLEMENTED;
  }
  struct patronus_udp_options o;
  o.struct_size = sizeof o;
  o.send_ttl = p->session_id;
  o.flags = p->rate;
  o.reserved0 = p->key_len;
  patronus_endpoint_id id = 0;
  const patronus_status st = h->udp_open_ex(h->ctx, &p->local, &o, on_datagram, in, &id, NULL);
  if (st != PATRONUS_OK) return st;
  const uint8_t x = 1;
  return h->udp_send(h->ctx, id, &p->remote, &x, 1);
}
static patronus_status unwatch(void* i, uint64_t id) {
  (void)i, (void)id;
  return PATRONUS_OK;
}

#ifdef VARIANT_UNRESOLVED
extern int patronus_symbol_that_does_not_exist(void);
static patronus_status start_unresolved(void* i, char* e, uint32_t c) {
  (void)i, (void)e, (void)c;
  return patronus_symbol_that_does_not_exist();
}
#endif

static const struct patronus_probe_v1 probe_table = {
    .struct_size = sizeof(struct patronus_probe_v1), .watch_path = watch, .unwatch_path = unwatch};
#ifdef VARIANT_TABLE_RESERVED
static const struct patronus_probe_v1 probe_table_reserved = {
    .struct_size = sizeof(struct patronus_probe_v1),
    .reserved0 = 7,
    .watch_path = watch,
    .unwatch_path = unwatch};
#endif

#ifdef VARIANT_UNRESOLVED
#define START_FN start_unresolved
#else
#define START_FN start
#endif

static struct patronus_plugin_descriptor descriptor = {
    .struct_size = sizeof(struct patronus_plugin_descriptor),
    .abi_major = PATRONUS_ABI_VERSION_MAJOR,
    .abi_minor = PATRONUS_ABI_VERSION_MINOR,
    .kind = PATRONUS_KIND_PROBE,
    .name = PLUGIN_NAME,
    .version = "0.0.1",
    .create = create,
    .configure = configure,
    .start = START_FN,
    .stop = stop,
    .destroy = destroy,
    .kind_table = &probe_table,
};

static const struct patronus_plugin_descriptor* entry(void) {
#if defined(VARIANT_WRONG_MAJOR)
  descriptor.abi_major = PATRONUS_ABI_VERSION_MAJOR + 1;
#elif defined(VARIANT_NEWER_MINOR)
  descriptor.abi_minor = PATRONUS_ABI_VERSION_MINOR + 1;
#elif defined(VARIANT_SHORT_STRUCT)
  descriptor.struct_size = 40; /* the fixed header only: no lifecycle functions */
#elif defined(VARIANT_RESERVED_SLOT)
  descriptor.reserved[3] = (void*)&descriptor; /* reserved slots must be zero */
#elif defined(VARIANT_TABLE_RESERVED)
  descriptor.kind_table = &probe_table_reserved;
#elif defined(VARIANT_UNKNOWN_FLAG)
  descriptor.flags = 0x80u; /* a flag no 1.2 host knows */
#elif defined(VARIANT_FLAGS_RESERVED)
  descriptor.reserved1 = 1u; /* the 1.2 reserved field must be zero */
#endif
  return &descriptor;
}

#ifdef VARIANT_MISSING_ALIAS
/* Exports the function under its own name, but not the alias the host looks for. */
__attribute__((visibility("default"))) const struct patronus_plugin_descriptor* not_the_entry(
    void) {
  return entry();
}
#else
PATRONUS_PLUGIN_ENTRY(entry);
#endif
