/* Test plugins written in plain C against the ABI header (no SDK, no Boost): one source, built in
 * variants selected by -DVARIANT_*. The good variant runs a timer through the host table; the
 * others are each refused by the host for one reason. */
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

static void on_timer(void* user, patronus_timer_id id) {
  struct inst* in = (struct inst*)user;
  (void)id;
  in->fired++;
  char json[64];
  int n = 0;
  /* {"fired":N} without printf, to keep the plugin free of libc formatting */
  memcpy(json, "{\"fired\":", 9);
  n = 9;
  uint32_t v = in->fired;
  char digits[10];
  int d = 0;
  do {
    digits[d++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  while (d) json[n++] = digits[--d];
  json[n++] = '}';
  in->host->event(in->host->ctx, "timer.fired", 11, json, (uint32_t)n);
  if (in->fired < 3)
    in->host->schedule(in->host->ctx, (int64_t)in->delay_ms * 1000000, on_timer, in);
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
  in->host->log(in->host->ctx, PATRONUS_LOG_INFO, "started", 7);
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
static patronus_status watch(void* i, const struct patronus_path_desc* p, char* e, uint32_t c) {
  (void)i, (void)p, (void)e, (void)c;
  return PATRONUS_ERR_UNIMPLEMENTED;
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
