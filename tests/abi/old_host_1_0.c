/* A host as ABI 1.0 defined one, in miniature, compiled against the frozen 1.0 header
 * (tests/abi/frozen/v1_0): it applies 1.0's version rule, hands the plugin a 1.0-sized host table
 * and a 1.0-sized metrics window, and scores one window.
 *   old_host_1_0 PLUGIN.so LATENCY_MS LOSS_PCT   -> prints "score S", exit 0
 * exit 3: refused by the version rule (the message names both versions); 4: other failure. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "patronus/abi/plugin_abi.h"

static int64_t now_ns(patronus_host_ctx* ctx) {
  (void)ctx;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}
static patronus_timer_id schedule(patronus_host_ctx* c, int64_t d, patronus_timer_fn f, void* u) {
  (void)c, (void)d, (void)f, (void)u;
  return 0; /* no timers in this host */
}
static patronus_status cancel(patronus_host_ctx* c, patronus_timer_id id) {
  (void)c, (void)id;
  return PATRONUS_ERR_NOT_FOUND;
}
static patronus_status udp_open(patronus_host_ctx* c, const struct patronus_addr* l,
                                patronus_datagram_fn f, void* u, patronus_endpoint_id* id,
                                struct patronus_addr* b) {
  (void)c, (void)l, (void)f, (void)u, (void)id, (void)b;
  return PATRONUS_ERR_UNAVAILABLE;
}
static patronus_status udp_send(patronus_host_ctx* c, patronus_endpoint_id id,
                                const struct patronus_addr* to, const uint8_t* d, uint32_t n) {
  (void)c, (void)id, (void)to, (void)d, (void)n;
  return PATRONUS_ERR_UNAVAILABLE;
}
static patronus_status udp_close(patronus_host_ctx* c, patronus_endpoint_id id) {
  (void)c, (void)id;
  return PATRONUS_ERR_NOT_FOUND;
}
static void log_fn(patronus_host_ctx* c, uint32_t level, const char* m, uint32_t n) {
  (void)c;
  printf("log %u %.*s\n", level, (int)n, m);
}
static void metric(patronus_host_ctx* c, const char* n, uint32_t l, double v) {
  (void)c, (void)n, (void)l, (void)v;
}
static void event(patronus_host_ctx* c, const char* t, uint32_t tl, const char* j, uint32_t jl) {
  (void)c, (void)t, (void)tl, (void)j, (void)jl;
}
static uint64_t random_u64(patronus_host_ctx* c) {
  (void)c;
  return 4;
}
static void report_sample(patronus_host_ctx* c, const struct patronus_path_sample* s) {
  (void)c, (void)s;
}

int main(int argc, char** argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: old_host_1_0 PLUGIN.so LATENCY_MS LOSS_PCT\n");
    return 4;
  }
  void* h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    fprintf(stderr, "%s\n", dlerror());
    return 4;
  }
  const void* const* entry = (const void* const*)dlsym(h, PATRONUS_PLUGIN_ENTRY_NAME);
  if (!entry) return 4;
  typedef const struct patronus_plugin_descriptor* (*entry_fn)(void);
  const struct patronus_plugin_descriptor* d = ((entry_fn)(*entry))();
  if (d->abi_major != PATRONUS_ABI_VERSION_MAJOR || d->abi_minor > PATRONUS_ABI_VERSION_MINOR) {
    fprintf(stderr, "%s: plugin ABI %u.%u is newer than host ABI %u.%u\n", argv[1], d->abi_major,
            d->abi_minor, PATRONUS_ABI_VERSION_MAJOR, PATRONUS_ABI_VERSION_MINOR);
    return 3;
  }
  if (d->struct_size < sizeof(struct patronus_plugin_descriptor) ||
      d->kind != PATRONUS_KIND_SCORER) {
    return 4;
  }
  struct patronus_scorer_v1 scorer;
  memset(&scorer, 0, sizeof scorer);
  const uint32_t table_size = *(const uint32_t*)d->kind_table;
  memcpy(&scorer, d->kind_table, table_size < sizeof scorer ? table_size : sizeof scorer);

  struct patronus_host_services hs;
  memset(&hs, 0, sizeof hs);
  hs.struct_size = sizeof hs; /* the 1.0 size */
  hs.abi_minor = PATRONUS_ABI_VERSION_MINOR;
  hs.now_ns = now_ns;
  hs.schedule = schedule;
  hs.cancel = cancel;
  hs.udp_open = udp_open;
  hs.udp_send = udp_send;
  hs.udp_close = udp_close;
  hs.log = log_fn;
  hs.metric = metric;
  hs.event = event;
  hs.random_u64 = random_u64;
  hs.report_sample = report_sample;

  char err[256] = "";
  void* inst = NULL;
  if (d->create(&hs, &inst, err, sizeof err) != PATRONUS_OK ||
      d->configure(inst, NULL, 0, err, sizeof err) != PATRONUS_OK ||
      d->start(inst, err, sizeof err) != PATRONUS_OK) {
    fprintf(stderr, "lifecycle failed: %s\n", err);
    return 4;
  }
  /* A 1.0 window, and past its end bytes that a plugin must not read as 1.1 fields. */
  struct {
    struct patronus_metrics_window w;
    unsigned char poison[64];
  } in;
  memset(&in, 0xff, sizeof in);
  memset(&in.w, 0, sizeof in.w);
  in.w.struct_size = sizeof in.w;
  in.w.samples = 10;
  in.w.latency_ms = atof(argv[2]);
  in.w.loss_pct = atof(argv[3]);
  struct patronus_score out;
  memset(&out, 0, sizeof out);
  out.struct_size = sizeof out;
  const patronus_status st = scorer.score(inst, &in.w, &out);
  d->stop(inst);
  d->destroy(inst);
  if (st != PATRONUS_OK) {
    fprintf(stderr, "score failed: %d\n", st);
    return 4;
  }
  printf("score %.3f state %u\n", out.score, out.state);
  return 0;
}
