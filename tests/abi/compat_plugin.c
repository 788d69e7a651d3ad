/* A plugin exactly as a vendor built it against an older released ABI: compiled with
 * tests/abi/frozen/v1_<COMPAT_MINOR> on the include path (a frozen header), never the current one.
 * Built for each frozen minor as a probe, a scorer and a policy plugin (the kinds ABI 1.1
 * extended) and loaded by the current host in tests/abi/compat_test.cpp. Against 1.1 it also uses
 * what 1.1 added (liveness reports, error text); against 1.2 it is also a transport that watches
 * a pipe (watch_fd), reports its tunnel (report_tunnel) and declares it needs the real network. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "patronus/abi/plugin_abi.h"

#if !defined(COMPAT_NAME_PREFIX)
#error "COMPAT_NAME_PREFIX (e.g. \"compat10\") must be defined"
#endif
#if !defined(COMPAT_MINOR) || PATRONUS_ABI_VERSION_MINOR != COMPAT_MINOR
#error "compat_plugin.c must be compiled against the frozen header of ABI 1.COMPAT_MINOR"
#endif

struct inst {
  const struct patronus_host_services* host;
  uint64_t path_id;
  uint64_t seq;
  int pipe_fd[2];
};

static patronus_status create(const struct patronus_host_services* host, void** out, char* err,
                              uint32_t cap) {
  (void)err, (void)cap;
  struct inst* in = (struct inst*)calloc(1, sizeof *in);
  if (!in) return PATRONUS_ERR_RESOURCE_EXHAUSTED;
  in->host = host;
  in->pipe_fd[0] = in->pipe_fd[1] = -1;
  *out = in;
  return PATRONUS_OK;
}
static patronus_status configure(void* i, const uint8_t* c, uint32_t n, char* e, uint32_t cap) {
  (void)i, (void)c, (void)n, (void)e, (void)cap;
  return PATRONUS_OK;
}
static patronus_status start(void* i, char* e, uint32_t cap) {
  (void)i, (void)e, (void)cap;
  return PATRONUS_OK;
}
static patronus_status stop(void* i) {
  (void)i;
  return PATRONUS_OK;
}
static void destroy(void* i) {
  struct inst* in = (struct inst*)i;
  if (in->pipe_fd[0] >= 0) close(in->pipe_fd[0]);
  if (in->pipe_fd[1] >= 0) close(in->pipe_fd[1]);
  free(i);
}

/* probe: on watch_path, report one sample through the 1.0 host table (its 40-byte sample). */
static void on_timer(void* user, patronus_timer_id id) {
  struct inst* in = (struct inst*)user;
  struct patronus_path_sample s;
  (void)id;
  memset(&s, 0, sizeof s);
  s.struct_size = sizeof s;
  s.path_id = in->path_id;
  s.sent_ns = in->host->now_ns(in->host->ctx);
  s.rtt_ns = 7000000;
  s.sequence = ++in->seq;
  in->host->report_sample(in->host->ctx, &s);
#if COMPAT_MINOR >= 1
  if (in->host->struct_size >= offsetof(struct patronus_host_services, report_liveness) +
                                   sizeof(in->host->report_liveness)) {
    struct patronus_path_liveness l;
    memset(&l, 0, sizeof l);
    l.struct_size = sizeof l;
    l.state = PATRONUS_PATH_UP;
    l.path_id = in->path_id;
    in->host->report_liveness(in->host->ctx, &l);
  }
#endif
}
static patronus_status watch(void* i, const struct patronus_path_desc* p, char* e, uint32_t cap) {
  struct inst* in = (struct inst*)i;
  (void)e, (void)cap;
  if (p->struct_size < sizeof *p) return PATRONUS_ERR_INVALID_ARGUMENT;
  in->path_id = p->path_id;
  return in->host->schedule(in->host->ctx, 1000000, on_timer, in) ? PATRONUS_OK
                                                                  : PATRONUS_ERR_RESOURCE_EXHAUSTED;
}
static patronus_status unwatch(void* i, uint64_t id) {
  struct inst* in = (struct inst*)i;
  return id == in->path_id ? PATRONUS_OK : PATRONUS_ERR_NOT_FOUND;
}
/* scorer: 100 - latency, and an error (without text: 1.0 has no error buffer) on NaN-ish input. */
static patronus_status score(void* i, const struct patronus_metrics_window* w,
                             struct patronus_score* out) {
  (void)i;
  if (w->latency_ms > 100) return PATRONUS_ERR_INVALID_ARGUMENT;
  out->score = 100.0 - w->latency_ms;
  out->state = PATRONUS_PATH_UP;
  return PATRONUS_OK;
}
/* policy: allows TCP only. */
static patronus_status load(void* i, const char* d, uint32_t n, char* e, uint32_t cap) {
  (void)i, (void)d, (void)n, (void)e, (void)cap;
  return PATRONUS_OK;
}
static patronus_status evaluate(void* i, const struct patronus_flow_tuple* f, uint32_t* v) {
  (void)i;
  if (f->protocol == 0) return PATRONUS_ERR_INVALID_ARGUMENT;
  *v = f->protocol == 6 ? PATRONUS_VERDICT_ALLOW : PATRONUS_VERDICT_DENY;
  return PATRONUS_OK;
}

#if COMPAT_MINOR >= 1
static patronus_status score_ex(void* i, const struct patronus_metrics_window* w,
                                struct patronus_score* out, char* err, uint32_t cap) {
  patronus_status st = score(i, w, out);
  if (st != PATRONUS_OK && cap > 0) {
    strncpy(err, "latency above 100 ms", cap - 1);
    err[cap - 1] = '\0';
  }
  return st;
}
#endif

#if COMPAT_MINOR >= 2
/* transport: path_up writes one byte into a pipe and watches it; when the byte is readable the
 * tunnel is reported UP (with the byte count as rx_bytes) and the watch ends. */
static void on_ready(void* user, patronus_watch_id id, int32_t fd, uint32_t ready) {
  struct inst* in = (struct inst*)user;
  char b[8];
  ssize_t n = (ready & PATRONUS_FD_READABLE) ? read(fd, b, sizeof b) : 0;
  struct patronus_tunnel_status t;
  memset(&t, 0, sizeof t);
  t.struct_size = sizeof t;
  t.state = n > 0 ? PATRONUS_TUNNEL_UP : PATRONUS_TUNNEL_DOWN;
  t.path_id = in->path_id;
  t.rx_bytes = n > 0 ? (uint64_t)n : 0;
  t.last_handshake_wall_ns = in->host->wall_ns(in->host->ctx);
  in->host->unwatch_fd(in->host->ctx, id);
  in->host->report_tunnel(in->host->ctx, &t);
}
static patronus_status path_up(void* i, const struct patronus_path_desc* p, char* e, uint32_t cap) {
  struct inst* in = (struct inst*)i;
  patronus_watch_id id = 0;
  patronus_status st;
  if (p->struct_size < sizeof *p) {
    strncpy(e, "path description shorter than ABI 1.2's", cap - 1);
    return PATRONUS_ERR_INVALID_ARGUMENT;
  }
  if (in->pipe_fd[0] < 0 && pipe(in->pipe_fd) != 0) return PATRONUS_ERR_INTERNAL;
  in->path_id = p->path_id;
  st = in->host->watch_fd(in->host->ctx, in->pipe_fd[0], PATRONUS_FD_READABLE, on_ready, in, &id);
  if (st != PATRONUS_OK) {
    strncpy(e, "watch_fd refused", cap - 1);
    return st;
  }
  if (write(in->pipe_fd[1], p->interface_name, strlen(p->interface_name)) < 0) {
    return PATRONUS_ERR_INTERNAL;
  }
  return PATRONUS_OK;
}
static patronus_status path_down(void* i, uint64_t id) {
  struct inst* in = (struct inst*)i;
  return id == in->path_id ? PATRONUS_OK : PATRONUS_ERR_NOT_FOUND;
}
static const struct patronus_transport_v1 transport_table = {
    .struct_size = sizeof transport_table, .path_up = path_up, .path_down = path_down};
#endif

static const struct patronus_probe_v1 probe_table = {
    .struct_size = sizeof probe_table, .watch_path = watch, .unwatch_path = unwatch};
static const struct patronus_scorer_v1 scorer_table = {
    .struct_size = sizeof scorer_table,
    .score = score,
#if COMPAT_MINOR >= 1
    .score_ex = score_ex,
#endif
};
static const struct patronus_policy_v1 policy_table = {
    .struct_size = sizeof policy_table, .load = load, .evaluate = evaluate};

static const struct patronus_plugin_descriptor descriptor = {
    .struct_size = sizeof(struct patronus_plugin_descriptor),
    .abi_major = PATRONUS_ABI_VERSION_MAJOR,
    .abi_minor = PATRONUS_ABI_VERSION_MINOR,
#if defined(COMPAT_PROBE)
    .kind = PATRONUS_KIND_PROBE,
    .name = COMPAT_NAME_PREFIX "-probe",
    .kind_table = &probe_table,
#elif defined(COMPAT_TRANSPORT)
    .kind = PATRONUS_KIND_TRANSPORT,
    .name = COMPAT_NAME_PREFIX "-transport",
    .kind_table = &transport_table,
    .flags = PATRONUS_PLUGIN_NEEDS_REAL_NETWORK,
#elif defined(COMPAT_SCORER)
    .kind = PATRONUS_KIND_SCORER,
    .name = COMPAT_NAME_PREFIX "-scorer",
    .kind_table = &scorer_table,
#else
    .kind = PATRONUS_KIND_POLICY,
    .name = COMPAT_NAME_PREFIX "-policy",
    .kind_table = &policy_table,
#endif
    .version = "1.0.0",
    .create = create,
    .configure = configure,
    .start = start,
    .stop = stop,
    .destroy = destroy,
};

static const struct patronus_plugin_descriptor* entry(void) {
  return &descriptor;
}
PATRONUS_PLUGIN_ENTRY(entry);
