// The C functions of the host-services table every plugin instance receives. None of them lets an
// exception escape into the plugin; every refusal is counted (RouterCounters) and reported to the
// observer as an event, never silent.
#include <algorithm>
#include <cstring>

#include "patronus/model/address.hpp"
#include "patronus/util/printable.hpp"
#include "router_internal.hpp"

namespace patronus::core {

// A report a plugin hands the host: refused when shorter than the frozen size of the ABI version
// that introduced the struct (never the host's sizeof, so older plugins keep being heard), else
// copied zero-extended.
template <typename Report>
bool read_report(const Report* in, std::size_t frozen_size, Report* out) {
  if (in == nullptr || in->struct_size < frozen_size) return false;
  std::memcpy(out, in, std::min<std::size_t>(in->struct_size, sizeof(Report)));
  out->struct_size = sizeof(Report);
  return true;
}

struct HostBridge {
  static RouterInstance& router(patronus_host_ctx* c) { return *c->router; }

  static int64_t now_ns(patronus_host_ctx* c) noexcept { return router(c).env_.now_ns(); }
  static int64_t wall_ns(patronus_host_ctx* c) noexcept { return router(c).env_.wall_ns(); }

  static patronus_timer_id schedule(patronus_host_ctx* c, int64_t delay_ns, patronus_timer_fn fn,
                                    void* user) noexcept {
    try {
      RouterInstance& r = router(c);
      auto* inst = c->instance;
      if (fn == nullptr || inst->timers.size() >= r.limits_.max_timers_per_instance) {
        ++inst->counters.timers_refused;
        r.refused(*inst, "host.timer_refused", ++r.counters_.timers_refused);
        return 0;
      }
      auto slot = std::make_shared<env::TimerId>(0);
      const env::TimerId id = r.env_.schedule(delay_ns, [c, fn, user, slot] {
        RouterInstance& rr = router(c);
        c->instance->timers.erase(*slot);
        try {
          fn(user, *slot);
        } catch (...) {
          ++rr.counters_.plugin_exceptions;
          rr.add_trace(c->instance->name + " exception-in-timer");
        }
      });
      if (id == 0) {
        ++inst->counters.timers_refused;
        r.refused(*inst, "host.timer_refused", ++r.counters_.timers_refused);
        return 0;
      }
      *slot = id;
      inst->timers.insert(id);
      return id;
    } catch (...) {
      return 0;
    }
  }

  static patronus_status cancel(patronus_host_ctx* c, patronus_timer_id id) noexcept {
    auto* inst = c->instance;
    if (inst->timers.erase(id) == 0) return PATRONUS_ERR_NOT_FOUND;
    router(c).env_.cancel(id);
    return PATRONUS_OK;
  }

  // udp_open and udp_open_ex: the plugin's callback gets the sender, and with udp_open_ex what the
  // backend knows of the datagram.
  static patronus_status open_endpoint(patronus_host_ctx* c, const patronus_addr* local,
                                       const env::UdpOptions& options, patronus_datagram_fn fn,
                                       patronus_datagram_info_fn info_fn, void* user,
                                       patronus_endpoint_id* out_id, patronus_addr* out_bound) {
    RouterInstance& r = router(c);
    auto* inst = c->instance;
    if (local == nullptr || (fn == nullptr && info_fn == nullptr) || out_id == nullptr) {
      return PATRONUS_ERR_INVALID_ARGUMENT;
    }
    if (inst->endpoints.size() >= r.limits_.max_endpoints_per_instance) {
      r.refused(*inst, "host.endpoint_refused", ++r.counters_.endpoints_refused);
      return PATRONUS_ERR_RESOURCE_EXHAUSTED;
    }
    auto addr = model::SocketAddress::from_abi(*local);
    if (!addr.is_ok()) return PATRONUS_ERR_INVALID_ARGUMENT;
    // The socket of the instance this one replaces, on the same address: taken over.
    if (addr.value().port() != 0) {
      for (auto h = r.handed_over_.begin(); h != r.handed_over_.end(); ++h) {
        auto& e = *r.endpoints_.at(*h);
        if (!(e.local == addr.value()) || e.send_ttl != options.send_ttl) continue;
        e.ctx = c;
        e.fn = fn;
        e.info_fn = info_fn;
        e.user = user;
        inst->endpoints.insert(*h);
        *out_id = *h;
        if (out_bound) *out_bound = e.bound.to_abi();
        r.handed_over_.erase(h);
        r.add_trace(inst->name + " took over " + addr.value().to_string());
        return PATRONUS_OK;
      }
    }
    auto e = std::make_shared<RouterInstance::Endpoint>();
    e->local = addr.value();
    e->send_ttl = options.send_ttl;
    e->ctx = c;
    e->fn = fn;
    e->info_fn = info_fn;
    e->user = user;
    auto slot = std::make_shared<env::EndpointId>(0);
    env::EndpointId id = 0;
    model::SocketAddress bound;
    Status s = r.env_.open_udp(
        addr.value(), options,
        [e, slot](const model::SocketAddress& from, const env::DatagramInfo& in,
                  const std::uint8_t* data, std::size_t size) {
          if (e->ctx == nullptr) return;  // between a replaced instance and its successor
          const patronus_addr a = from.to_abi();
          try {
            if (e->info_fn == nullptr) {
              e->fn(e->user, *slot, &a, data, static_cast<std::uint32_t>(size));
              return;
            }
            patronus_datagram_info info{};
            info.struct_size = sizeof info;
            if (in.ttl >= 0) {
              info.flags |= PATRONUS_DGRAM_TTL;
              info.ttl = static_cast<std::uint32_t>(in.ttl);
            }
            if (in.ifindex != 0) {
              info.flags |= PATRONUS_DGRAM_IFINDEX;
              info.ifindex = in.ifindex;
            }
            if (in.local) {
              info.flags |= PATRONUS_DGRAM_LOCAL;
              info.local = in.local->to_abi();
            }
            e->info_fn(e->user, *slot, &a, &info, data, static_cast<std::uint32_t>(size));
          } catch (...) {
            ++router(e->ctx).counters_.plugin_exceptions;
          }
        },
        &id, &bound);
    if (!s.is_ok()) {
      r.add_trace(inst->name + " udp-open-failed " + s.message());
      // The plugin only gets a status code: the host says which address failed and why.
      if (r.observer_) {
        r.observer_->on_log(inst->name, PATRONUS_LOG_WARN,
                            "opening UDP " + addr.value().to_string() + " failed: " + s.message());
      }
      return to_abi(s);
    }
    *slot = id;
    e->bound = bound;
    r.endpoints_[id] = e;
    inst->endpoints.insert(id);
    *out_id = id;
    if (out_bound) *out_bound = bound.to_abi();
    return PATRONUS_OK;
  }

  static patronus_status udp_open(patronus_host_ctx* c, const patronus_addr* local,
                                  patronus_datagram_fn fn, void* user, patronus_endpoint_id* out_id,
                                  patronus_addr* out_bound) noexcept {
    try {
      if (fn == nullptr) return PATRONUS_ERR_INVALID_ARGUMENT;
      return open_endpoint(c, local, env::UdpOptions{}, fn, nullptr, user, out_id, out_bound);
    } catch (...) {
      return PATRONUS_ERR_INTERNAL;
    }
  }

  // ABI 1.3
  static patronus_status udp_open_ex(patronus_host_ctx* c, const patronus_addr* local,
                                     const patronus_udp_options* options,
                                     patronus_datagram_info_fn fn, void* user,
                                     patronus_endpoint_id* out_id,
                                     patronus_addr* out_bound) noexcept {
    try {
      env::UdpOptions o;
      if (options != nullptr) {
        patronus_udp_options v{};
        if (!read_report(options, PATRONUS_SIZE_1_3_UDP_OPTIONS, &v) || v.flags != 0 ||
            v.reserved0 != 0 || v.send_ttl > 255) {
          return PATRONUS_ERR_INVALID_ARGUMENT;
        }
        o.send_ttl = static_cast<int>(v.send_ttl);
      }
      if (fn == nullptr) return PATRONUS_ERR_INVALID_ARGUMENT;
      return open_endpoint(c, local, o, nullptr, fn, user, out_id, out_bound);
    } catch (...) {
      return PATRONUS_ERR_INTERNAL;
    }
  }

  static patronus_status udp_send(patronus_host_ctx* c, patronus_endpoint_id id,
                                  const patronus_addr* to, const uint8_t* data,
                                  uint32_t size) noexcept {
    try {
      if (!c->instance->endpoints.count(id)) return PATRONUS_ERR_NOT_FOUND;
      if (to == nullptr || (data == nullptr && size != 0)) return PATRONUS_ERR_INVALID_ARGUMENT;
      auto addr = model::SocketAddress::from_abi(*to);
      if (!addr.is_ok()) return PATRONUS_ERR_INVALID_ARGUMENT;
      return to_abi(router(c).env_.send_udp(id, addr.value(), data, size));
    } catch (...) {
      return PATRONUS_ERR_INTERNAL;
    }
  }

  static patronus_status udp_close(patronus_host_ctx* c, patronus_endpoint_id id) noexcept {
    if (c->instance->endpoints.erase(id) == 0) return PATRONUS_ERR_NOT_FOUND;
    router(c).endpoints_.erase(id);
    return to_abi(router(c).env_.close_udp(id));
  }

  static void log(patronus_host_ctx* c, uint32_t level, const char* msg, uint32_t len) noexcept {
    try {
      RouterInstance& r = router(c);
      ++r.counters_.logs;
      if (msg == nullptr) len = 0;
      // A plugin's text (and what it relays, charon's messages) cannot forge log lines: control
      // characters are escaped.
      const std::string m = util::printable(
          std::string_view(msg ? msg : "", std::min<std::size_t>(len, r.limits_.max_log_bytes)),
          r.limits_.max_log_bytes);
      if (r.observer_) r.observer_->on_log(c->instance->name, std::min<uint32_t>(level, 3), m);
    } catch (...) {
    }
  }

  static void metric(patronus_host_ctx* c, const char* name, uint32_t len, double value) noexcept {
    try {
      RouterInstance& r = router(c);
      if (name == nullptr || len == 0 || len > 256) return;
      ++r.counters_.metrics;
      if (r.observer_) r.observer_->on_metric(c->instance->name, std::string(name, len), value);
    } catch (...) {
    }
  }

  static void event(patronus_host_ctx* c, const char* type, uint32_t type_len, const char* json,
                    uint32_t json_len) noexcept {
    try {
      RouterInstance& r = router(c);
      if (type == nullptr || type_len == 0 || type_len > 256 || (json == nullptr && json_len) ||
          json_len > r.limits_.max_event_bytes) {
        ++r.counters_.events_dropped;
        return;
      }
      ++r.counters_.events;
      const std::string t(type, type_len);
      const std::string j(json ? json : "", json_len);
      if (r.tracing()) r.add_trace(c->instance->name + " event " + t + " " + j);
      if (r.observer_) r.observer_->on_event(c->instance->name, t, j);
    } catch (...) {
    }
  }

  static uint64_t random_u64(patronus_host_ctx* c) noexcept { return router(c).env_.random_u64(); }

  static void report_sample(patronus_host_ctx* c, const patronus_path_sample* sample) noexcept {
    try {
      RouterInstance& r = router(c);
      patronus_path_sample s{};
      if (!read_report(sample, PATRONUS_SIZE_1_0_PATH_SAMPLE, &s) || s.reserved1 != 0) {
        r.refused(*c->instance, "host.report_malformed", ++r.counters_.reports_malformed);
        return;
      }
      ++r.counters_.samples;
      if (r.tracing()) {
        r.add_trace(c->instance->name + " sample path=" + std::to_string(s.path_id) +
                    " seq=" + std::to_string(s.sequence) +
                    (s.lost ? " lost" : " rtt_ns=" + std::to_string(s.rtt_ns)));
      }
      if (r.observer_) r.observer_->on_sample(c->instance->name, s);
    } catch (...) {
    }
  }

  static void report_liveness(patronus_host_ctx* c, const patronus_path_liveness* l) noexcept {
    try {
      RouterInstance& r = router(c);
      patronus_path_liveness v{};
      if (!read_report(l, PATRONUS_SIZE_1_1_PATH_LIVENESS, &v) || v.reserved0 != 0 ||
          (v.state != PATRONUS_PATH_UP && v.state != PATRONUS_PATH_DOWN)) {
        r.refused(*c->instance, "host.report_malformed", ++r.counters_.reports_malformed);
        return;
      }
      ++r.counters_.liveness;
      if (r.tracing()) {
        r.add_trace(c->instance->name + " liveness path=" + std::to_string(v.path_id) +
                    (v.state == PATRONUS_PATH_UP ? " up" : " down") +
                    " diag=" + std::to_string(v.diagnostic));
      }
      if (r.observer_) r.observer_->on_liveness(c->instance->name, v);
    } catch (...) {
    }
  }

  // ABI 1.2
  static patronus_status watch_fd(patronus_host_ctx* c, int32_t fd, uint32_t events,
                                  patronus_fd_fn fn, void* user,
                                  patronus_watch_id* out_id) noexcept {
    try {
      RouterInstance& r = router(c);
      auto* inst = c->instance;
      if (fd < 0 || fn == nullptr || out_id == nullptr || events == 0 ||
          (events & ~(PATRONUS_FD_READABLE | PATRONUS_FD_WRITABLE)) != 0) {
        return PATRONUS_ERR_INVALID_ARGUMENT;
      }
      if (inst->watches.size() >= r.limits_.max_watches_per_instance) {
        r.refused(*inst, "host.watch_refused", ++r.counters_.watches_refused);
        return PATRONUS_ERR_RESOURCE_EXHAUSTED;
      }
      static_assert(PATRONUS_FD_READABLE == env::kFdReadable &&
                    PATRONUS_FD_WRITABLE == env::kFdWritable);
      auto slot = std::make_shared<env::WatchId>(0);
      env::WatchId id = 0;
      Status s = r.env_.watch_fd(
          fd, events,
          [c, fn, user, fd, slot](std::uint32_t ready) {
            try {
              fn(user, *slot, fd, ready);
            } catch (...) {
              ++router(c).counters_.plugin_exceptions;
            }
          },
          &id);
      if (!s.is_ok()) {
        r.add_trace(inst->name + " watch-failed " + s.message());
        return to_abi(s);
      }
      *slot = id;
      inst->watches.insert(id);
      *out_id = id;
      return PATRONUS_OK;
    } catch (...) {
      return PATRONUS_ERR_INTERNAL;
    }
  }

  static patronus_status unwatch_fd(patronus_host_ctx* c, patronus_watch_id id) noexcept {
    try {
      if (c->instance->watches.erase(id) == 0) return PATRONUS_ERR_NOT_FOUND;
      return to_abi(router(c).env_.unwatch_fd(id));
    } catch (...) {
      return PATRONUS_ERR_INTERNAL;
    }
  }

  static void report_tunnel(patronus_host_ctx* c, const patronus_tunnel_status* t) noexcept {
    try {
      RouterInstance& r = router(c);
      patronus_tunnel_status v{};
      if (!read_report(t, PATRONUS_SIZE_1_2_TUNNEL_STATUS, &v) ||
          (v.state != PATRONUS_TUNNEL_UP && v.state != PATRONUS_TUNNEL_DOWN) ||
          v.diagnostic > PATRONUS_TUNNEL_DIAG_NEGOTIATION_FAILED) {
        r.refused(*c->instance, "host.report_malformed", ++r.counters_.reports_malformed);
        return;
      }
      ++r.counters_.tunnel_reports;
      if (r.tracing()) {
        r.add_trace(c->instance->name + " tunnel path=" + std::to_string(v.path_id) +
                    (v.state == PATRONUS_TUNNEL_UP ? " up" : " down") +
                    " diag=" + std::to_string(v.diagnostic));
      }
      if (r.observer_) r.observer_->on_tunnel(c->instance->name, v);
    } catch (...) {
    }
  }
};

void fill_host_services(patronus_host_services& s, patronus_host_ctx* ctx) {
  s = patronus_host_services{};
  s.struct_size = sizeof(patronus_host_services);
  s.abi_minor = PATRONUS_ABI_VERSION_MINOR;
  s.ctx = ctx;
  s.now_ns = &HostBridge::now_ns;
  s.schedule = &HostBridge::schedule;
  s.cancel = &HostBridge::cancel;
  s.udp_open = &HostBridge::udp_open;
  s.udp_send = &HostBridge::udp_send;
  s.udp_close = &HostBridge::udp_close;
  s.log = &HostBridge::log;
  s.metric = &HostBridge::metric;
  s.event = &HostBridge::event;
  s.random_u64 = &HostBridge::random_u64;
  s.report_sample = &HostBridge::report_sample;
  s.wall_ns = &HostBridge::wall_ns;
  s.report_liveness = &HostBridge::report_liveness;
  s.watch_fd = &HostBridge::watch_fd;
  s.unwatch_fd = &HostBridge::unwatch_fd;
  s.report_tunnel = &HostBridge::report_tunnel;
  s.udp_open_ex = &HostBridge::udp_open_ex;
}

}  // namespace patronus::core
