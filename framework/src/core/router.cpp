#include "patronus/core/router.hpp"

#include <algorithm>
#include <cstring>
#include <set>

#include "patronus/model/address.hpp"

// The opaque context behind every host-services table: which router, which plugin instance.
struct patronus_host_ctx {
  patronus::core::RouterInstance* router;
  patronus::core::RouterInstance::Instance* instance;
};

namespace patronus::core {

struct RouterInstance::Instance {
  std::string name;
  std::shared_ptr<const PluginLibrary> lib;
  patronus_host_ctx ctx{};
  patronus_host_services services{};
  void* handle = nullptr;
  bool started = false;
  std::set<env::TimerId> timers;
  std::set<env::EndpointId> endpoints;
};

namespace {

constexpr std::uint32_t kErrCap = 512;

patronus_status to_abi(const Status& s) {
  return static_cast<patronus_status>(s.code());
}

Code from_abi(patronus_status st) {
  return (st < 0 && st >= -7) ? static_cast<Code>(st) : Code::kInternal;
}

}  // namespace

// The C functions of the host-services table. None of them lets an exception escape.
struct HostBridge {
  static RouterInstance& router(patronus_host_ctx* c) { return *c->router; }

  static int64_t now_ns(patronus_host_ctx* c) noexcept { return router(c).env_.now_ns(); }

  static patronus_timer_id schedule(patronus_host_ctx* c, int64_t delay_ns, patronus_timer_fn fn,
                                    void* user) noexcept {
    try {
      RouterInstance& r = router(c);
      auto* inst = c->instance;
      if (fn == nullptr || inst->timers.size() >= r.limits_.max_timers_per_instance) {
        ++r.counters_.timers_refused;
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
          rr.add_trace(std::to_string(rr.env_.now_ns()) + " " + c->instance->name +
                       " exception-in-timer");
        }
      });
      if (id == 0) {
        ++r.counters_.timers_refused;
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

  static patronus_status udp_open(patronus_host_ctx* c, const patronus_addr* local,
                                  patronus_datagram_fn fn, void* user, patronus_endpoint_id* out_id,
                                  patronus_addr* out_bound) noexcept {
    try {
      RouterInstance& r = router(c);
      auto* inst = c->instance;
      if (local == nullptr || fn == nullptr || out_id == nullptr) {
        return PATRONUS_ERR_INVALID_ARGUMENT;
      }
      if (inst->endpoints.size() >= r.limits_.max_endpoints_per_instance) {
        return PATRONUS_ERR_RESOURCE_EXHAUSTED;
      }
      auto addr = model::SocketAddress::from_abi(*local);
      if (!addr.is_ok()) return PATRONUS_ERR_INVALID_ARGUMENT;
      auto slot = std::make_shared<env::EndpointId>(0);
      env::EndpointId id = 0;
      model::SocketAddress bound;
      Status s = r.env_.open_udp(
          addr.value(),
          [c, fn, user, slot](const model::SocketAddress& from, const std::uint8_t* data,
                              std::size_t size) {
            const patronus_addr a = from.to_abi();
            try {
              fn(user, *slot, &a, data, static_cast<std::uint32_t>(size));
            } catch (...) {
              ++router(c).counters_.plugin_exceptions;
            }
          },
          &id, &bound);
      if (!s.is_ok()) {
        r.add_trace(std::to_string(r.env_.now_ns()) + " " + inst->name + " udp-open-failed " +
                    s.message());
        return to_abi(s);
      }
      *slot = id;
      inst->endpoints.insert(id);
      *out_id = id;
      if (out_bound) *out_bound = bound.to_abi();
      return PATRONUS_OK;
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
    return to_abi(router(c).env_.close_udp(id));
  }

  static void log(patronus_host_ctx* c, uint32_t level, const char* msg, uint32_t len) noexcept {
    try {
      RouterInstance& r = router(c);
      ++r.counters_.logs;
      if (msg == nullptr) len = 0;
      const std::string m(msg ? msg : "", std::min<std::size_t>(len, r.limits_.max_log_bytes));
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
      r.add_trace(std::to_string(r.env_.now_ns()) + " " + c->instance->name + " event " + t + " " +
                  j);
      if (r.observer_) r.observer_->on_event(c->instance->name, t, j);
    } catch (...) {
    }
  }

  static uint64_t random_u64(patronus_host_ctx* c) noexcept { return router(c).env_.random_u64(); }

  static void report_sample(patronus_host_ctx* c, const patronus_path_sample* sample) noexcept {
    try {
      if (sample == nullptr || sample->struct_size < sizeof(std::uint32_t) * 2) return;
      RouterInstance& r = router(c);
      patronus_path_sample s{};
      std::memcpy(&s, sample, std::min<std::size_t>(sample->struct_size, sizeof s));
      s.struct_size = sizeof s;
      ++r.counters_.samples;
      r.add_trace(std::to_string(r.env_.now_ns()) + " " + c->instance->name + " sample path=" +
                  std::to_string(s.path_id) + " seq=" + std::to_string(s.sequence) +
                  (s.lost ? " lost" : " rtt_ns=" + std::to_string(s.rtt_ns)));
      if (r.observer_) r.observer_->on_sample(c->instance->name, s);
    } catch (...) {
    }
  }
};

RouterInstance::RouterInstance(env::Env& env, std::string site, RouterLimits limits)
    : env_(env), site_(std::move(site)), limits_(limits) {}

RouterInstance::~RouterInstance() {
  stop();
  for (auto it = instances_.rbegin(); it != instances_.rend(); ++it) {
    try {
      (*it)->lib->descriptor().destroy((*it)->handle);
    } catch (...) {
      ++counters_.plugin_exceptions;
    }
  }
  instances_.clear();  // the libraries stay loaded while the registry holds them
}

RouterInstance::Instance* RouterInstance::find(const std::string& name) const {
  for (const auto& i : instances_) {
    if (i->name == name) return i.get();
  }
  return nullptr;
}

void RouterInstance::add_trace(std::string line) {
  if (trace_.size() >= limits_.max_trace_lines) {
    ++counters_.trace_dropped;
    return;
  }
  trace_.push_back(std::move(line));
}

std::string RouterInstance::trace_text() const {
  std::string out;
  for (const auto& l : trace_) out += l + "\n";
  return out;
}

Status RouterInstance::add_plugin(std::shared_ptr<const PluginLibrary> library,
                                  const std::string& instance, const std::string& config) {
  if (!library) return invalid_argument(instance + ": no plugin library");
  if (find(instance)) return invalid_argument(instance + ": instance name is used already");
  if (instances_.size() >= limits_.max_plugins) {
    return resource_exhausted(instance + ": " + std::to_string(limits_.max_plugins) +
                              " plugin instances exist already");
  }
  if (running_) return failed_precondition(instance + ": cannot add a plugin while running");
  auto inst = std::make_unique<Instance>();
  inst->name = instance;
  inst->lib = library;
  inst->ctx = patronus_host_ctx{this, inst.get()};
  auto& s = inst->services;
  s.struct_size = sizeof(patronus_host_services);
  s.abi_minor = PATRONUS_ABI_VERSION_MINOR;
  s.ctx = &inst->ctx;
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

  const auto& d = library->descriptor();
  char err[kErrCap] = {};
  patronus_status st;
  try {
    st = d.create(&inst->services, &inst->handle, err, kErrCap);
  } catch (...) {
    ++counters_.plugin_exceptions;
    return internal_error(instance + " (" + library->info().name +
                          "): create threw an exception across the C ABI");
  }
  if (st != PATRONUS_OK) {
    return Status(from_abi(st),
                  instance + " (" + library->info().name + "): create failed: " + err);
  }
  try {
    st = d.configure(inst->handle, reinterpret_cast<const std::uint8_t*>(config.data()),
                     static_cast<std::uint32_t>(config.size()), err, kErrCap);
  } catch (...) {
    ++counters_.plugin_exceptions;
    std::strcpy(err, "configure threw an exception across the C ABI");
    st = PATRONUS_ERR_INTERNAL;
  }
  if (st != PATRONUS_OK) {
    d.destroy(inst->handle);
    return Status(from_abi(st),
                  instance + " (" + library->info().name + "): configure failed: " + err);
  }
  add_trace(std::to_string(env_.now_ns()) + " " + instance +
            " created plugin=" + library->info().name);
  instances_.push_back(std::move(inst));
  return Status::ok();
}

Status RouterInstance::start() {
  if (running_) return Status::ok();
  for (auto& inst : instances_) {
    char err[kErrCap] = {};
    patronus_status st;
    try {
      st = inst->lib->descriptor().start(inst->handle, err, kErrCap);
    } catch (...) {
      ++counters_.plugin_exceptions;
      std::strcpy(err, "start threw an exception across the C ABI");
      st = PATRONUS_ERR_INTERNAL;
    }
    if (st != PATRONUS_OK) {
      running_ = true;  // so stop() unwinds the ones started
      stop();
      return Status(from_abi(st),
                    inst->name + " (" + inst->lib->info().name + "): start failed: " + err);
    }
    inst->started = true;
    add_trace(std::to_string(env_.now_ns()) + " " + inst->name + " started");
  }
  running_ = true;
  return Status::ok();
}

void RouterInstance::stop() {
  if (!running_) return;
  for (auto it = instances_.rbegin(); it != instances_.rend(); ++it) {
    Instance& inst = **it;
    if (inst.started) {
      try {
        inst.lib->descriptor().stop(inst.handle);
      } catch (...) {
        ++counters_.plugin_exceptions;
      }
      inst.started = false;
      add_trace(std::to_string(env_.now_ns()) + " " + inst.name + " stopped");
    }
    for (auto id : inst.timers) env_.cancel(id);
    inst.timers.clear();
    for (auto id : inst.endpoints) (void)env_.close_udp(id);
    inst.endpoints.clear();
  }
  running_ = false;
}

Result<RouterInstance::Instance*> RouterInstance::find_kind(const std::string& instance,
                                                            PluginKind kind) const {
  Instance* inst = find(instance);
  if (!inst) return not_found("no plugin instance '" + instance + "'");
  if (inst->lib->info().kind != kind) {
    return failed_precondition(instance + " is not a " + to_string(kind) + " plugin");
  }
  return inst;
}

Result<patronus_score> RouterInstance::score(const std::string& instance,
                                             const patronus_metrics_window& w) {
  auto found = find_kind(instance, PluginKind::kScorer);
  if (!found.is_ok()) return found.status();
  Instance* inst = found.value();
  patronus_metrics_window win = w;
  win.struct_size = sizeof win;
  patronus_score out{};
  out.struct_size = sizeof out;
  patronus_status st;
  try {
    st = inst->lib->scorer().score(inst->handle, &win, &out);
  } catch (...) {
    ++counters_.plugin_exceptions;
    st = PATRONUS_ERR_INTERNAL;
  }
  if (st != PATRONUS_OK)
    return internal_error(instance + ": score failed (" + std::to_string(st) + ")");
  return out;
}

Status RouterInstance::load_policy(const std::string& instance, const std::string& document) {
  auto found = find_kind(instance, PluginKind::kPolicy);
  if (!found.is_ok()) return found.status();
  Instance* inst = found.value();
  if (document.size() > UINT32_MAX) return invalid_argument(instance + ": document too large");
  char err[kErrCap] = {};
  patronus_status st;
  try {
    st = inst->lib->policy().load(inst->handle, document.data(),
                                  static_cast<std::uint32_t>(document.size()), err, kErrCap);
  } catch (...) {
    ++counters_.plugin_exceptions;
    st = PATRONUS_ERR_INTERNAL;
  }
  if (st != PATRONUS_OK) {
    return Status(from_abi(st), instance + ": " + (err[0] ? err : "load failed"));
  }
  return Status::ok();
}

Result<bool> RouterInstance::evaluate_policy(const std::string& instance,
                                             const patronus_flow_tuple& flow) {
  auto found = find_kind(instance, PluginKind::kPolicy);
  if (!found.is_ok()) return found.status();
  Instance* inst = found.value();
  patronus_flow_tuple f = flow;
  f.struct_size = sizeof f;
  std::uint32_t verdict = PATRONUS_VERDICT_DENY;
  patronus_status st;
  try {
    st = inst->lib->policy().evaluate(inst->handle, &f, &verdict);
  } catch (...) {
    ++counters_.plugin_exceptions;
    st = PATRONUS_ERR_INTERNAL;
  }
  if (st != PATRONUS_OK) {
    // The ABI's evaluate has no message buffer: the status code says what kind of refusal.
    return Status(from_abi(st),
                  instance + ": evaluate refused the flow (" + code_name(from_abi(st)) + ")");
  }
  return verdict == PATRONUS_VERDICT_ALLOW;
}

Status RouterInstance::watch_path(const std::string& instance, const patronus_path_desc& path) {
  auto found = find_kind(instance, PluginKind::kProbe);
  if (!found.is_ok()) return found.status();
  Instance* inst = found.value();
  char err[kErrCap] = {};
  patronus_path_desc p = path;
  p.struct_size = sizeof p;
  patronus_status st;
  try {
    st = inst->lib->probe().watch_path(inst->handle, &p, err, kErrCap);
  } catch (...) {
    ++counters_.plugin_exceptions;
    st = PATRONUS_ERR_INTERNAL;
  }
  if (st != PATRONUS_OK) {
    return Status(from_abi(st), instance + ": watch_path: " + err);
  }
  return Status::ok();
}

Status RouterInstance::unwatch_path(const std::string& instance, std::uint64_t path_id) {
  auto found = find_kind(instance, PluginKind::kProbe);
  if (!found.is_ok()) return found.status();
  Instance* inst = found.value();
  const patronus_status st = inst->lib->probe().unwatch_path(inst->handle, path_id);
  if (st != PATRONUS_OK) return not_found(instance + ": unwatch_path " + std::to_string(path_id));
  return Status::ok();
}

std::vector<std::string> RouterInstance::instance_names() const {
  std::vector<std::string> out;
  for (const auto& i : instances_) out.push_back(i->name);
  return out;
}

std::size_t RouterInstance::live_timers(const std::string& instance) const {
  const Instance* i = find(instance);
  return i ? i->timers.size() : 0;
}

std::size_t RouterInstance::live_endpoints(const std::string& instance) const {
  const Instance* i = find(instance);
  return i ? i->endpoints.size() : 0;
}

}  // namespace patronus::core
