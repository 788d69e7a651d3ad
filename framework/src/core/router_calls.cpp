// Kind-specific calls into plugin instances, each through RouterInstance::call_plugin, the one
// guard that contains exceptions and words errors the same way for every call.
#include <cstring>

#include "router_internal.hpp"

namespace patronus::core {

Result<RouterInstance::Instance*> RouterInstance::find_kind(const std::string& instance,
                                                            PluginKind kind) const {
  Instance* inst = find(instance);
  if (!inst) return not_found("no plugin instance '" + instance + "'");
  if (inst->lib->info().kind != kind) {
    return failed_precondition(instance + " is not a " + to_string(kind) + " plugin");
  }
  if (inst->handle == nullptr) {
    return unavailable(instance +
                       ": not running (a restart with a new config failed and the "
                       "previous config did not come back)");
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
  const auto& t = inst->lib->scorer();
  auto s = call_plugin(*inst, "score", [&](char* err, std::uint32_t cap) {
    return t.score_ex ? t.score_ex(inst->handle, &win, &out, err, cap)
                      : t.score(inst->handle, &win, &out);
  });
  if (!s.is_ok()) return s;
  if (!(out.score >= 0.0 && out.score <= 100.0) || out.state > PATRONUS_PATH_DOWN) {
    return internal_error(instance + " (" + inst->lib->info().name +
                          "): score returned an out-of-range result (score " +
                          std::to_string(out.score) + ", state " + std::to_string(out.state) + ")");
  }
  return out;
}

Status RouterInstance::load_policy(const std::string& instance, const std::string& document) {
  auto found = find_kind(instance, PluginKind::kPolicy);
  if (!found.is_ok()) return found.status();
  Instance* inst = found.value();
  if (document.size() > UINT32_MAX) return invalid_argument(instance + ": document too large");
  return call_plugin(*inst, "load", [&](char* err, std::uint32_t cap) {
    return inst->lib->policy().load(inst->handle, document.data(),
                                    static_cast<std::uint32_t>(document.size()), err, cap);
  });
}

Result<bool> RouterInstance::evaluate_policy(const std::string& instance,
                                             const patronus_flow_tuple& flow) {
  auto found = find_kind(instance, PluginKind::kPolicy);
  if (!found.is_ok()) return found.status();
  Instance* inst = found.value();
  patronus_flow_tuple f = flow;
  f.struct_size = sizeof f;
  std::uint32_t verdict = PATRONUS_VERDICT_DENY;
  const auto& t = inst->lib->policy();
  auto s = call_plugin(*inst, "evaluate", [&](char* err, std::uint32_t cap) {
    return t.evaluate_ex ? t.evaluate_ex(inst->handle, &f, &verdict, err, cap)
                         : t.evaluate(inst->handle, &f, &verdict);
  });
  if (!s.is_ok()) return s;
  ++(verdict == PATRONUS_VERDICT_ALLOW ? inst->counters.allowed : inst->counters.denied);
  return verdict == PATRONUS_VERDICT_ALLOW;
}

Status RouterInstance::watch_path(const std::string& instance, const patronus_path_desc& path) {
  auto found = find_kind(instance, PluginKind::kProbe);
  if (!found.is_ok()) return found.status();
  Instance* inst = found.value();
  patronus_path_desc p = path;
  p.struct_size = sizeof p;
  return call_plugin(*inst, "watch_path", [&](char* err, std::uint32_t cap) {
    return inst->lib->probe().watch_path(inst->handle, &p, err, cap);
  });
}

Status RouterInstance::path_up(const std::string& instance, const patronus_path_desc& path) {
  auto found = find_kind(instance, PluginKind::kTransport);
  if (!found.is_ok()) return found.status();
  Instance* inst = found.value();
  patronus_path_desc p = path;
  p.struct_size = sizeof p;
  return call_plugin(*inst, "path_up", [&](char* err, std::uint32_t cap) {
    return inst->lib->transport().path_up(inst->handle, &p, err, cap);
  });
}

Status RouterInstance::path_down(const std::string& instance, std::uint64_t path_id) {
  auto found = find_kind(instance, PluginKind::kTransport);
  if (!found.is_ok()) return found.status();
  Instance* inst = found.value();
  return call_plugin(*inst, "path_down", [&](char*, std::uint32_t) {
    return inst->lib->transport().path_down(inst->handle, path_id);
  });
}

Status RouterInstance::unwatch_path(const std::string& instance, std::uint64_t path_id) {
  auto found = find_kind(instance, PluginKind::kProbe);
  if (!found.is_ok()) return found.status();
  Instance* inst = found.value();
  const auto& t = inst->lib->probe();
  return call_plugin(*inst, "unwatch_path", [&](char* err, std::uint32_t cap) {
    return t.unwatch_path_ex ? t.unwatch_path_ex(inst->handle, path_id, err, cap)
                             : t.unwatch_path(inst->handle, path_id);
  });
}

Status RouterInstance::set_path_rate(const std::string& instance, std::uint64_t path_id,
                                     std::uint32_t rate) {
  auto found = find_kind(instance, PluginKind::kProbe);
  if (!found.is_ok()) return found.status();
  Instance* inst = found.value();
  const auto& t = inst->lib->probe();
  if (!t.set_path_rate) {
    return Status(Code::kUnimplemented,
                  instance + " (" + inst->lib->info().name + "): set_path_rate: the plugin (ABI " +
                      std::to_string(inst->lib->info().abi_major) + "." +
                      std::to_string(inst->lib->info().abi_minor) + ") has no such call");
  }
  return call_plugin(*inst, "set_path_rate", [&](char* err, std::uint32_t cap) {
    return t.set_path_rate(inst->handle, path_id, rate, err, cap);
  });
}

}  // namespace patronus::core
