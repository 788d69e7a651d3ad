// The router's lifecycle: plugin instances are created, configured, started and stopped here;
// the host-services table is in host_bridge.cpp, the kind-specific calls in router_calls.cpp.
#include <algorithm>
#include <cstring>

#include "patronus/env/virtual_world.hpp"
#include "router_internal.hpp"

namespace patronus::core {

RouterInstance::RouterInstance(env::Env& env, std::string site, RouterLimits limits)
    : env_(env), site_(std::move(site)), limits_(limits) {}

RouterInstance::~RouterInstance() {
  stop();
  for (auto it = instances_.rbegin(); it != instances_.rend(); ++it) {
    if ((*it)->handle != nullptr) destroy(**it);
  }
  instances_.clear();  // the libraries stay loaded while the registry holds them
}

RouterInstance::Instance* RouterInstance::find(const std::string& name) const {
  for (const auto& i : instances_) {
    if (i->name == name) return i.get();
  }
  return nullptr;
}

void RouterInstance::add_trace(const std::string& line) {
  if (!tracing()) return;
  if (trace_.size() >= limits_.max_trace_lines) {
    ++counters_.trace_dropped;
    return;
  }
  trace_.push_back(std::to_string(env_.now_ns()) + " " + line);
}

void RouterInstance::refused(Instance& inst, const char* what, std::uint64_t count) {
  add_trace(inst.name + " " + what);
  if (observer_ && (count & (count - 1)) == 0) {
    observer_->on_event(inst.name, what, "{\"count\":" + std::to_string(count) + "}");
  }
}

std::string RouterInstance::trace_text() const {
  std::string out;
  for (const auto& l : trace_) out += l + "\n";
  return out;
}

Result<std::unique_ptr<RouterInstance::Instance>> RouterInstance::make_instance(
    std::shared_ptr<const PluginLibrary> library, const std::string& instance,
    const std::string& config) {
  auto inst = std::make_unique<Instance>();
  inst->name = instance;
  inst->lib = std::move(library);
  inst->config = config;
  inst->ctx = patronus_host_ctx{this, inst.get()};
  fill_host_services(inst->services, &inst->ctx);
  const auto& d = inst->lib->descriptor();
  Instance* raw = inst.get();
  if (auto s = call_plugin(*raw, "create",
                           [&](char* err, std::uint32_t cap) {
                             return d.create(&raw->services, &raw->handle, err, cap);
                           });
      !s.is_ok()) {
    return s;
  }
  if (auto s = call_plugin(*raw, "configure",
                           [&](char* err, std::uint32_t cap) {
                             return d.configure(
                                 raw->handle, reinterpret_cast<const std::uint8_t*>(config.data()),
                                 static_cast<std::uint32_t>(config.size()), err, cap);
                           });
      !s.is_ok()) {
    destroy(*raw);
    return s;
  }
  return inst;
}

void RouterInstance::destroy(Instance& inst) {
  try {
    inst.lib->descriptor().destroy(inst.handle);
  } catch (...) {
    ++counters_.plugin_exceptions;
  }
  inst.handle = nullptr;
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
  const std::string plugin = library->info().name;
  auto inst = make_instance(std::move(library), instance, config);
  if (!inst.is_ok()) return inst.status();
  add_trace(instance + " created plugin=" + plugin);
  instances_.push_back(std::move(inst).value());
  return Status::ok();
}

Status RouterInstance::replace_plugin(const std::string& instance, const std::string& config) {
  auto it = std::find_if(instances_.begin(), instances_.end(),
                         [&](const auto& i) { return i->name == instance; });
  if (it == instances_.end()) return not_found("no plugin instance '" + instance + "'");
  close_handed_over();  // an earlier replacement's, never released
  auto fresh = make_instance((*it)->lib, instance, config);
  if (!fresh.is_ok()) return fresh.status();  // refused by the plugin: the old one runs on
  const bool run = running_ && (*it)->started;
  std::unique_ptr<Instance> old = std::move(*it);
  if (run) halt(*old, /*hand_over=*/true);
  destroy(*old);
  *it = std::move(fresh).value();
  add_trace(instance + " replaced");
  if (!run) return Status::ok();
  const Status started = start_instance(**it);
  if (started.is_ok()) return started;
  close_handed_over();
  halt(**it);
  destroy(**it);
  auto back = make_instance(old->lib, instance, old->config);
  if (!back.is_ok()) {
    *it = std::move(old);  // destroyed and stopped: no call reaches it (started is false)
    return Status(started.code(), started.message() +
                                      "; the previous config did not come back "
                                      "either: " +
                                      back.status().message());
  }
  *it = std::move(back).value();
  const Status again = start_instance(**it);
  return Status(started.code(),
                started.message() + (again.is_ok() ? "; the previous config runs again"
                                                   : "; the previous config did not start "
                                                     "again: " +
                                                         again.message()));
}

Status RouterInstance::start_instance(Instance& inst) {
  auto s = call_plugin(inst, "start", [&](char* err, std::uint32_t cap) {
    return inst.lib->descriptor().start(inst.handle, err, cap);
  });
  if (!s.is_ok()) return s;
  inst.started = true;
  add_trace(inst.name + " started");
  return Status::ok();
}

void RouterInstance::close_handed_over() {
  for (const auto id : handed_over_) {
    (void)env_.close_udp(id);
    endpoints_.erase(id);
  }
  handed_over_.clear();
}

void RouterInstance::halt(Instance& inst, bool hand_over) {
  if (inst.started) {
    (void)call_plugin(inst, "stop", [&](char*, std::uint32_t) {
      return inst.lib->descriptor().stop(inst.handle);
    });
    inst.started = false;
    add_trace(inst.name + " stopped");
  }
  for (auto id : inst.timers) env_.cancel(id);
  inst.timers.clear();
  for (auto id : inst.endpoints) {
    if (hand_over) {
      endpoints_.at(id)->ctx = nullptr;
      handed_over_.push_back(id);
    } else {
      (void)env_.close_udp(id);
      endpoints_.erase(id);
    }
  }
  inst.endpoints.clear();
  for (auto id : inst.watches) (void)env_.unwatch_fd(id);
  inst.watches.clear();
}

Status check_plugin_config(std::shared_ptr<const PluginLibrary> library,
                           const std::string& instance, const std::string& config) {
  env::VirtualWorld world(0);
  RouterInstance router(world.add_node("check", {}), "check");
  return router.add_plugin(std::move(library), instance, config);
}

Status RouterInstance::start() {
  if (running_) return Status::ok();
  for (auto& inst : instances_) {
    if (auto s = start_instance(*inst); !s.is_ok()) {
      running_ = true;  // so stop() unwinds the ones started
      stop();
      return s;
    }
  }
  running_ = true;
  return Status::ok();
}

void RouterInstance::stop() {
  close_handed_over();
  if (!running_) return;
  for (auto it = instances_.rbegin(); it != instances_.rend(); ++it) halt(**it);
  running_ = false;
}

std::vector<std::string> RouterInstance::instance_names() const {
  std::vector<std::string> out;
  for (const auto& i : instances_) out.push_back(i->name);
  return out;
}

std::optional<PluginInfo> RouterInstance::instance_info(const std::string& instance) const {
  const Instance* i = find(instance);
  if (!i) return std::nullopt;
  return i->lib->info();
}

InstanceCounters RouterInstance::instance_counters(const std::string& instance) const {
  const Instance* inst = find(instance);
  return inst ? inst->counters : InstanceCounters{};
}

std::size_t RouterInstance::live_timers(const std::string& instance) const {
  const Instance* i = find(instance);
  return i ? i->timers.size() : 0;
}

std::size_t RouterInstance::live_endpoints(const std::string& instance) const {
  const Instance* i = find(instance);
  return i ? i->endpoints.size() : 0;
}

std::size_t RouterInstance::live_watches(const std::string& instance) const {
  const Instance* i = find(instance);
  return i ? i->watches.size() : 0;
}

}  // namespace patronus::core
