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
  fill_host_services(inst->services, &inst->ctx);

  const auto& d = library->descriptor();
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
    d.destroy(raw->handle);
    return s;
  }
  add_trace(instance + " created plugin=" + library->info().name);
  instances_.push_back(std::move(inst));
  return Status::ok();
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
    Instance* raw = inst.get();
    auto s = call_plugin(*raw, "start", [&](char* err, std::uint32_t cap) {
      return raw->lib->descriptor().start(raw->handle, err, cap);
    });
    if (!s.is_ok()) {
      running_ = true;  // so stop() unwinds the ones started
      stop();
      return s;
    }
    inst->started = true;
    add_trace(inst->name + " started");
  }
  running_ = true;
  return Status::ok();
}

void RouterInstance::stop() {
  if (!running_) return;
  for (auto it = instances_.rbegin(); it != instances_.rend(); ++it) {
    Instance& inst = **it;
    if (inst.started) {
      (void)call_plugin(inst, "stop", [&](char*, std::uint32_t) {
        return inst.lib->descriptor().stop(inst.handle);
      });
      inst.started = false;
      add_trace(inst.name + " stopped");
    }
    for (auto id : inst.timers) env_.cancel(id);
    inst.timers.clear();
    for (auto id : inst.endpoints) (void)env_.close_udp(id);
    inst.endpoints.clear();
    for (auto id : inst.watches) (void)env_.unwatch_fd(id);
    inst.watches.clear();
  }
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
