// Patronus plugin SDK: header-only C++ helpers over the C ABI (patronus/abi/plugin_abi.h).
//
// A plugin author derives from one of ScorerPlugin, ProbePlugin, TransportPlugin or PolicyPlugin,
// overrides what it needs and writes one macro:
//
//   class MyScorer : public patronus::sdk::ScorerPlugin {
//    public:
//     using ScorerPlugin::ScorerPlugin;
//     void configure(const std::uint8_t* data, std::size_t size) override { ... }
//     patronus_score score(const patronus_metrics_window& w) override { ... }
//   };
//   PATRONUS_SDK_PLUGIN(MyScorer, "my-scorer", "1.0.0", "acme.scorer.v1.Config",
//                       patronus_embedded_schema, patronus_embedded_schema_size)
//
// Exceptions never cross the boundary: every entry from the host is wrapped, and an exception
// becomes an error status whose message is the exception's what(). C++17, so plugins need not
// use the host's language level.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "patronus/abi/plugin_abi.h"

// The oldest host ABI minor this plugin runs on, written into its descriptor's abi_minor (the host
// refuses a plugin whose abi_minor is newer than its own). By default the minor of the header the
// plugin is built against: nothing can check that a plugin uses nothing newer, so claiming an
// older host is the author's decision. Define it lower (or patronus_add_plugin(... MIN_ABI_MINOR
// n)) when the plugin uses nothing newer than 1.n. The SDK keeps that safe on an older host: the
// structs the host hands over are zero-extended to this header's size (fields the host does not
// know read as zero), wrappers of newer host services fall back or throw sdk::Error
// (UNIMPLEMENTED), and descriptor flags, which a host before 1.2 cannot see, need 1.2.
#ifndef PATRONUS_SDK_MIN_ABI_MINOR
#define PATRONUS_SDK_MIN_ABI_MINOR PATRONUS_ABI_VERSION_MINOR
#endif
static_assert(PATRONUS_SDK_MIN_ABI_MINOR >= 0 &&
                  PATRONUS_SDK_MIN_ABI_MINOR <= PATRONUS_ABI_VERSION_MINOR,
              "PATRONUS_SDK_MIN_ABI_MINOR must be between 0 and this header's minor");

namespace patronus::sdk {

// Thrown by plugin code to report a failure with a message; any std::exception works too.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what, patronus_status code = PATRONUS_ERR_INVALID_ARGUMENT)
      : std::runtime_error(what), code_(code) {}
  patronus_status code() const { return code_; }

 private:
  patronus_status code_;
};

// The host services, wrapped. Owns the std::function callbacks the plugin registered; everything
// runs on the instance's thread, so no locking.
class Host {
 public:
  using DatagramFn =
      std::function<void(const patronus_addr& from, const std::uint8_t* data, std::size_t size)>;

  explicit Host(const patronus_host_services* services) : s_(services) {}
  Host(const Host&) = delete;
  Host& operator=(const Host&) = delete;

  // Fields added after ABI 1.0 must be checked with has() before use.
  template <typename Member>
  bool has(Member patronus_host_services::*member) const {
    const auto offset = reinterpret_cast<std::size_t>(
        &(static_cast<const patronus_host_services*>(nullptr)->*member));
    return offset + sizeof(Member) <= s_->struct_size && s_->*member != nullptr;
  }

  std::int64_t now_ns() const { return s_->now_ns(s_->ctx); }

  // Returns 0 when the host's timer bound is reached.
  patronus_timer_id schedule(std::int64_t delay_ns, std::function<void()> fn) {
    auto holder = std::make_unique<std::function<void()>>(std::move(fn));
    const patronus_timer_id id = s_->schedule(s_->ctx, delay_ns, &Host::on_timer, this);
    if (id != 0) timers_.emplace(id, std::move(holder));
    return id;
  }
  bool cancel(patronus_timer_id id) {
    timers_.erase(id);
    return s_->cancel(s_->ctx, id) == PATRONUS_OK;
  }

  // Opens a UDP endpoint; throws sdk::Error with the host's reason on failure.
  patronus_endpoint_id udp_open(const patronus_addr& local, DatagramFn fn,
                                patronus_addr* bound = nullptr) {
    auto holder = std::make_unique<Endpoint>(Endpoint{this, 0, std::move(fn), nullptr});
    patronus_endpoint_id id = 0;
    patronus_addr out{};
    const patronus_status st =
        s_->udp_open(s_->ctx, &local, &Host::on_datagram, holder.get(), &id, &out);
    if (st != PATRONUS_OK) throw Error("udp_open failed (status " + std::to_string(st) + ")", st);
    holder->id = id;
    endpoints_.emplace(id, std::move(holder));
    if (bound) *bound = out;
    return id;
  }
  patronus_status udp_send(patronus_endpoint_id id, const patronus_addr& to,
                           const std::uint8_t* data, std::size_t size) {
    return s_->udp_send(s_->ctx, id, &to, data, static_cast<std::uint32_t>(size));
  }
  void udp_close(patronus_endpoint_id id) {
    s_->udp_close(s_->ctx, id);
    endpoints_.erase(id);
  }

  void log(std::uint32_t level, const std::string& msg) {
    s_->log(s_->ctx, level, msg.data(), static_cast<std::uint32_t>(msg.size()));
  }
  void info(const std::string& msg) { log(PATRONUS_LOG_INFO, msg); }
  void warn(const std::string& msg) { log(PATRONUS_LOG_WARN, msg); }
  void metric(const std::string& name, double value) {
    s_->metric(s_->ctx, name.data(), static_cast<std::uint32_t>(name.size()), value);
  }
  void event(const std::string& type, const std::string& json) {
    s_->event(s_->ctx, type.data(), static_cast<std::uint32_t>(type.size()), json.data(),
              static_cast<std::uint32_t>(json.size()));
  }
  std::uint64_t random_u64() { return s_->random_u64(s_->ctx); }
  void report_sample(const patronus_path_sample& sample) { s_->report_sample(s_->ctx, &sample); }
  // ABI 1.1 services, with a fallback on a 1.0 host: wall_ns() returns 0 there (no wall clock
  // is invented) and report_liveness() returns false (the host cannot take it).
  std::int64_t wall_ns() const {
    return has(&patronus_host_services::wall_ns) ? s_->wall_ns(s_->ctx) : 0;
  }
  bool report_liveness(const patronus_path_liveness& l) {
    if (!has(&patronus_host_services::report_liveness)) return false;
    s_->report_liveness(s_->ctx, &l);
    return true;
  }

  // ABI 1.2 services. On an older host watch_fd throws sdk::Error (UNIMPLEMENTED) and
  // report_tunnel() returns false.
  using FdFn = std::function<void(std::uint32_t ready)>;
  // Level-triggered readiness of `fd` (PATRONUS_FD_READABLE | PATRONUS_FD_WRITABLE); throws
  // sdk::Error with the host's status (the simulator answers UNIMPLEMENTED). The callback may
  // unwatch its own descriptor.
  patronus_watch_id watch_fd(int fd, std::uint32_t events, FdFn fn) {
    if (!has(&patronus_host_services::watch_fd)) {
      throw Error(
          "this host (ABI 1." + std::to_string(s_->abi_minor) + ") cannot watch file descriptors",
          PATRONUS_ERR_UNIMPLEMENTED);
    }
    auto holder = std::make_shared<FdFn>(std::move(fn));
    patronus_watch_id id = 0;
    const patronus_status st = s_->watch_fd(s_->ctx, fd, events, &Host::on_fd, this, &id);
    if (st != PATRONUS_OK) {
      throw Error(
          "watch_fd(" + std::to_string(fd) + ") refused (status " + std::to_string(st) + ")", st);
    }
    watches_.emplace(id, std::move(holder));
    return id;
  }
  void unwatch_fd(patronus_watch_id id) {
    if (watches_.erase(id) && has(&patronus_host_services::unwatch_fd)) s_->unwatch_fd(s_->ctx, id);
  }
  bool report_tunnel(const patronus_tunnel_status& t) {
    if (!has(&patronus_host_services::report_tunnel)) return false;
    s_->report_tunnel(s_->ctx, &t);
    return true;
  }

  // ABI 1.3: an endpoint sending with `send_ttl` (1..255; 0: the default) whose callback also gets
  // what the host knows of each datagram (patronus_datagram_info: its TTL, destination and
  // interface, each flagged when known). Throws sdk::Error (UNIMPLEMENTED) on an older host: a
  // protocol that must check TTLs cannot run there.
  using DatagramInfoFn =
      std::function<void(const patronus_addr& from, const patronus_datagram_info& info,
                         const std::uint8_t* data, std::size_t size)>;
  patronus_endpoint_id udp_open_ex(const patronus_addr& local, std::uint32_t send_ttl,
                                   DatagramInfoFn fn, patronus_addr* bound = nullptr) {
    if (!has(&patronus_host_services::udp_open_ex)) {
      throw Error("this host (ABI 1." + std::to_string(s_->abi_minor) +
                      ") cannot set or report datagram TTLs (needs ABI 1.3)",
                  PATRONUS_ERR_UNIMPLEMENTED);
    }
    auto holder = std::make_unique<Endpoint>(Endpoint{this, 0, nullptr, std::move(fn)});
    patronus_udp_options o{};
    o.struct_size = sizeof o;
    o.send_ttl = send_ttl;
    patronus_endpoint_id id = 0;
    patronus_addr out{};
    const patronus_status st =
        s_->udp_open_ex(s_->ctx, &local, &o, &Host::on_datagram_info, holder.get(), &id, &out);
    if (st != PATRONUS_OK) {
      throw Error("udp_open_ex failed (status " + std::to_string(st) + ")", st);
    }
    holder->id = id;
    endpoints_.emplace(id, std::move(holder));
    if (bound) *bound = out;
    return id;
  }

  const patronus_host_services* raw() const { return s_; }

 private:
  struct Endpoint {
    Host* host;
    patronus_endpoint_id id;
    DatagramFn fn;
    DatagramInfoFn info_fn;
  };
  static void on_datagram_info(void* user, patronus_endpoint_id, const patronus_addr* from,
                               const patronus_datagram_info* info, const std::uint8_t* data,
                               std::uint32_t size) noexcept {
    auto* ep = static_cast<Endpoint*>(user);
    try {
      auto fn = ep->info_fn;  // the callback may close its own endpoint
      fn(*from, *info, data, size);
    } catch (const std::exception& e) {
      ep->host->log(PATRONUS_LOG_ERROR, std::string("datagram callback threw: ") + e.what());
    } catch (...) {
      ep->host->log(PATRONUS_LOG_ERROR, "datagram callback threw a non-standard exception");
    }
  }
  static void on_timer(void* user, patronus_timer_id id) noexcept {
    auto* self = static_cast<Host*>(user);
    auto it = self->timers_.find(id);
    if (it == self->timers_.end()) return;
    auto fn = std::move(it->second);
    self->timers_.erase(it);
    try {
      (*fn)();
    } catch (const std::exception& e) {
      self->log(PATRONUS_LOG_ERROR, std::string("timer callback threw: ") + e.what());
    } catch (...) {
      self->log(PATRONUS_LOG_ERROR, "timer callback threw a non-standard exception");
    }
  }
  static void on_datagram(void* user, patronus_endpoint_id, const patronus_addr* from,
                          const std::uint8_t* data, std::uint32_t size) noexcept {
    auto* ep = static_cast<Endpoint*>(user);
    try {
      auto fn = ep->fn;  // the callback may close its own endpoint
      fn(*from, data, size);
    } catch (const std::exception& e) {
      ep->host->log(PATRONUS_LOG_ERROR, std::string("datagram callback threw: ") + e.what());
    } catch (...) {
      ep->host->log(PATRONUS_LOG_ERROR, "datagram callback threw a non-standard exception");
    }
  }

  // Like on_timer: the host hands back this Host and the id; the callback is looked up, so a
  // watch released by an earlier callback is never reached.
  static void on_fd(void* user, patronus_watch_id id, std::int32_t, std::uint32_t ready) noexcept {
    auto* self = static_cast<Host*>(user);
    auto it = self->watches_.find(id);
    if (it == self->watches_.end()) return;
    auto keep = it->second;  // the callback may unwatch (and so release) its own watch
    try {
      (*keep)(ready);
    } catch (const std::exception& e) {
      self->log(PATRONUS_LOG_ERROR, std::string("descriptor callback threw: ") + e.what());
    } catch (...) {
      self->log(PATRONUS_LOG_ERROR, "descriptor callback threw a non-standard exception");
    }
  }

  const patronus_host_services* s_;
  std::map<patronus_watch_id, std::shared_ptr<FdFn>> watches_;
  std::map<patronus_timer_id, std::unique_ptr<std::function<void()>>> timers_;
  std::map<patronus_endpoint_id, std::unique_ptr<Endpoint>> endpoints_;
};

// Base of every SDK plugin. The constructor receives the host; configure/start/stop may throw.
class PluginBase {
 public:
  explicit PluginBase(const patronus_host_services* services) : host_(services) {}
  virtual ~PluginBase() = default;
  PluginBase(const PluginBase&) = delete;
  PluginBase& operator=(const PluginBase&) = delete;

  // Descriptor flags (PATRONUS_PLUGIN_*); transports declare the real network.
  static constexpr std::uint32_t kFlags = 0;

  // The serialized config message (empty when the user gave none).
  virtual void configure(const std::uint8_t* /*data*/, std::size_t /*size*/) {}
  virtual void start() {}
  virtual void stop() {}

 protected:
  Host& host() { return host_; }

 private:
  Host host_;
};

class ScorerPlugin : public PluginBase {
 public:
  using PluginBase::PluginBase;
  static constexpr std::uint32_t kKind = PATRONUS_KIND_SCORER;
  virtual patronus_score score(const patronus_metrics_window& window) = 0;
};

class ProbePlugin : public PluginBase {
 public:
  using PluginBase::PluginBase;
  static constexpr std::uint32_t kKind = PATRONUS_KIND_PROBE;
  virtual void watch_path(const patronus_path_desc& /*path*/) {
    throw Error("this probe does not watch host-managed paths", PATRONUS_ERR_UNIMPLEMENTED);
  }
  virtual void unwatch_path(std::uint64_t /*path_id*/) {}
  // PATRONUS_PROBE_RATE_ACTIVE / _IDLE (ABI 1.1).
  virtual void set_path_rate(std::uint64_t /*path_id*/, std::uint32_t /*rate*/) {
    throw Error("this probe has no probe rates", PATRONUS_ERR_UNIMPLEMENTED);
  }
};

class TransportPlugin : public PluginBase {
 public:
  using PluginBase::PluginBase;
  static constexpr std::uint32_t kKind = PATRONUS_KIND_TRANSPORT;
  static constexpr std::uint32_t kFlags = PATRONUS_PLUGIN_NEEDS_REAL_NETWORK;
  // Builds the path's tunnel, or updates it when the id is known.
  virtual void path_up(const patronus_path_desc& path) = 0;
  virtual void path_down(std::uint64_t path_id) = 0;
};

class PolicyPlugin : public PluginBase {
 public:
  using PluginBase::PluginBase;
  static constexpr std::uint32_t kKind = PATRONUS_KIND_POLICY;
  virtual void load(const char* document, std::size_t size) = 0;
  virtual std::uint32_t evaluate(const patronus_flow_tuple& flow) = 0;
};

namespace detail {

inline void write_error(char* err, std::uint32_t cap, const char* msg) {
  if (err == nullptr || cap == 0) return;
  const std::size_t n = std::min<std::size_t>(std::strlen(msg), cap - 1);
  std::memcpy(err, msg, n);
  err[n] = '\0';
}

// Runs fn, turning any exception into a status and a message.
template <typename Fn>
patronus_status guarded(char* err, std::uint32_t cap, Fn&& fn) noexcept {
  try {
    fn();
    return PATRONUS_OK;
  } catch (const Error& e) {
    write_error(err, cap, e.what());
    return e.code();
  } catch (const std::exception& e) {
    write_error(err, cap, e.what());
    return PATRONUS_ERR_INTERNAL;
  } catch (...) {
    write_error(err, cap, "unknown exception");
    return PATRONUS_ERR_INTERNAL;
  }
}

template <typename T>
struct Thunks {
  static patronus_status create(const patronus_host_services* host, void** out, char* err,
                                std::uint32_t cap) noexcept {
    return guarded(err, cap, [&] { *out = new T(host); });
  }
  static patronus_status configure(void* inst, const std::uint8_t* data, std::uint32_t size,
                                   char* err, std::uint32_t cap) noexcept {
    return guarded(err, cap, [&] { static_cast<T*>(inst)->configure(data, size); });
  }
  static patronus_status start(void* inst, char* err, std::uint32_t cap) noexcept {
    return guarded(err, cap, [&] { static_cast<T*>(inst)->start(); });
  }
  static patronus_status stop(void* inst) noexcept {
    return guarded(nullptr, 0, [&] { static_cast<T*>(inst)->stop(); });
  }
  static void destroy(void* inst) noexcept {
    try {
      delete static_cast<T*>(inst);
    } catch (...) {
    }
  }

  // scorer
  static patronus_status score(void* inst, const patronus_metrics_window* w,
                               patronus_score* out) noexcept {
    return score_ex(inst, w, out, nullptr, 0);
  }
  static patronus_status score_ex(void* inst, const patronus_metrics_window* w, patronus_score* out,
                                  char* err, std::uint32_t cap) noexcept {
    return guarded(err, cap, [&] {
      patronus_metrics_window win{};
      std::memcpy(&win, w, std::min<std::size_t>(w->struct_size, sizeof win));
      patronus_score s = static_cast<T*>(inst)->score(win);
      s.struct_size = sizeof(patronus_score);
      std::memcpy(out, &s, std::min<std::size_t>(out->struct_size, sizeof s));
    });
  }
  // probe
  static patronus_status watch_path(void* inst, const patronus_path_desc* p, char* err,
                                    std::uint32_t cap) noexcept {
    return guarded(err, cap, [&] {
      // A 1.0 host passes a shorter description: the 1.1 fields read as zero (no key).
      patronus_path_desc path{};
      std::memcpy(&path, p, std::min<std::size_t>(p->struct_size, sizeof path));
      static_cast<T*>(inst)->watch_path(path);
    });
  }
  static patronus_status unwatch_path(void* inst, std::uint64_t id) noexcept {
    return unwatch_path_ex(inst, id, nullptr, 0);
  }
  static patronus_status unwatch_path_ex(void* inst, std::uint64_t id, char* err,
                                         std::uint32_t cap) noexcept {
    return guarded(err, cap, [&] { static_cast<T*>(inst)->unwatch_path(id); });
  }
  static patronus_status set_path_rate(void* inst, std::uint64_t id, std::uint32_t rate, char* err,
                                       std::uint32_t cap) noexcept {
    return guarded(err, cap, [&] { static_cast<T*>(inst)->set_path_rate(id, rate); });
  }
  // transport
  static patronus_status path_up(void* inst, const patronus_path_desc* p, char* err,
                                 std::uint32_t cap) noexcept {
    return guarded(err, cap, [&] {
      // An older host passes a shorter description: the newer fields read as zero.
      patronus_path_desc path{};
      std::memcpy(&path, p, std::min<std::size_t>(p->struct_size, sizeof path));
      static_cast<T*>(inst)->path_up(path);
    });
  }
  static patronus_status path_down(void* inst, std::uint64_t id) noexcept {
    return guarded(nullptr, 0, [&] { static_cast<T*>(inst)->path_down(id); });
  }
  // policy
  static patronus_status load(void* inst, const char* doc, std::uint32_t size, char* err,
                              std::uint32_t cap) noexcept {
    return guarded(err, cap, [&] { static_cast<T*>(inst)->load(doc, size); });
  }
  static patronus_status evaluate(void* inst, const patronus_flow_tuple* f,
                                  std::uint32_t* verdict) noexcept {
    return evaluate_ex(inst, f, verdict, nullptr, 0);
  }
  static patronus_status evaluate_ex(void* inst, const patronus_flow_tuple* f,
                                     std::uint32_t* verdict, char* err,
                                     std::uint32_t cap) noexcept {
    return guarded(err, cap, [&] {
      patronus_flow_tuple flow{};
      std::memcpy(&flow, f, std::min<std::size_t>(f->struct_size, sizeof flow));
      *verdict = static_cast<T*>(inst)->evaluate(flow);
    });
  }

  static const void* kind_table() {
    if constexpr (std::is_base_of_v<ScorerPlugin, T>) {
      static const patronus_scorer_v1 t{sizeof(patronus_scorer_v1), 0, &score, &score_ex};
      return &t;
    } else if constexpr (std::is_base_of_v<ProbePlugin, T>) {
      static const patronus_probe_v1 t{
          sizeof(patronus_probe_v1), 0, &watch_path, &unwatch_path, &set_path_rate,
          &unwatch_path_ex};
      return &t;
    } else if constexpr (std::is_base_of_v<TransportPlugin, T>) {
      static const patronus_transport_v1 t{sizeof(patronus_transport_v1), 0, &path_up, &path_down};
      return &t;
    } else {
      static_assert(std::is_base_of_v<PolicyPlugin, T>,
                    "a plugin class derives from ScorerPlugin, ProbePlugin, TransportPlugin or "
                    "PolicyPlugin");
      static const patronus_policy_v1 t{sizeof(patronus_policy_v1), 0, &load, &evaluate,
                                        &evaluate_ex};
      return &t;
    }
  }

  static const patronus_plugin_descriptor* describe(const char* name, const char* version,
                                                    const char* config_type,
                                                    const std::uint8_t* schema,
                                                    std::uint32_t schema_size) {
    static_assert(T::kFlags == 0 || PATRONUS_SDK_MIN_ABI_MINOR >= 2,
                  "descriptor flags (e.g. a transport's NEEDS_REAL_NETWORK) need ABI 1.2: a "
                  "plugin with flags cannot declare PATRONUS_SDK_MIN_ABI_MINOR below 2");
    static const patronus_plugin_descriptor d = [&] {
      patronus_plugin_descriptor x{};
      x.struct_size = sizeof(patronus_plugin_descriptor);
      x.abi_major = PATRONUS_ABI_VERSION_MAJOR;
      x.abi_minor = PATRONUS_SDK_MIN_ABI_MINOR;
      x.kind = T::kKind;
      x.name = name;
      x.version = version;
      x.config_type = config_type;
      x.config_schema = schema;
      x.config_schema_size = schema_size;
      x.create = &create;
      x.configure = &configure;
      x.start = &start;
      x.stop = &stop;
      x.destroy = &destroy;
      x.kind_table = kind_table();
      x.flags = T::kFlags;
      return x;
    }();
    return &d;
  }
};

}  // namespace detail
}  // namespace patronus::sdk

// Declares the plugin's descriptor and exports the entry point. CONFIG_TYPE may be nullptr (then
// SCHEMA nullptr and SCHEMA_SIZE 0). With patronus_add_plugin(... PROTO x.proto), the schema is
// `patronus_embedded_schema` / `patronus_embedded_schema_size`.
#define PATRONUS_SDK_PLUGIN(CLASS, NAME, VERSION, CONFIG_TYPE, SCHEMA, SCHEMA_SIZE)             \
  static const patronus_plugin_descriptor* patronus_sdk_entry_() {                              \
    return ::patronus::sdk::detail::Thunks<CLASS>::describe(NAME, VERSION, CONFIG_TYPE, SCHEMA, \
                                                            SCHEMA_SIZE);                       \
  }                                                                                             \
  PATRONUS_PLUGIN_ENTRY(patronus_sdk_entry_);

// Declarations for the schema that patronus_add_plugin(... PROTO ...) embeds.
extern "C" {
extern const std::uint8_t patronus_embedded_schema[];
extern const std::uint32_t patronus_embedded_schema_size;
}
