// Internals shared by the router's three translation units: host_bridge.cpp (the C trampolines of
// the host-services table), router.cpp (lifecycle) and router_calls.cpp (kind-specific calls).
#pragma once

#include <cstdio>
#include <set>
#include <string>
#include <unordered_set>

#include "patronus/core/router.hpp"

// The opaque context behind every host-services table: which router, which plugin instance.
struct patronus_host_ctx {
  patronus::core::RouterInstance* router;
  patronus::core::RouterInstance::Instance* instance;
};

namespace patronus::core {

struct RouterInstance::Instance {
  std::string name;
  std::shared_ptr<const PluginLibrary> lib;
  std::string config;  // as configured (a failed replacement comes back to it)
  patronus_host_ctx ctx{};
  patronus_host_services services{};
  void* handle = nullptr;
  bool started = false;
  std::unordered_set<env::TimerId> timers;  // O(1): a probe plugin arms one a probe
  std::set<env::EndpointId> endpoints;
  std::set<env::WatchId> watches;  // ABI 1.2 watch_fd
  InstanceCounters counters;
};

// An open endpoint and where its datagrams go. When an instance is replaced (a new config), its
// successor opening the same address takes the endpoint over: the socket and the datagrams
// queued on it carry over, so a peer's probe that arrived during the restart is answered.
struct RouterInstance::Endpoint {
  model::SocketAddress local, bound;
  int send_ttl = -1;
  patronus_host_ctx* ctx = nullptr;  // null between the two instances: dropped
  patronus_datagram_fn fn = nullptr;
  patronus_datagram_info_fn info_fn = nullptr;
  void* user = nullptr;
};

constexpr std::uint32_t kErrCap = 512;

inline patronus_status to_abi(const Status& s) {
  return static_cast<patronus_status>(s.code());
}

// A plugin's status as ours; anything outside the ABI's codes is INTERNAL.
inline Code from_abi(patronus_status st) {
  return (st < 0 && st >= -7) ? static_cast<Code>(st) : Code::kInternal;
}

template <typename Fn>
Status RouterInstance::call_plugin(Instance& inst, const char* call, Fn&& fn) {
  char err[kErrCap] = {};
  patronus_status st;
  ++inst.counters.calls;
  try {
    st = fn(err, kErrCap);
  } catch (...) {
    ++counters_.plugin_exceptions;
    std::snprintf(err, kErrCap, "%s threw an exception across the C ABI", call);
    st = PATRONUS_ERR_INTERNAL;
  }
  if (st == PATRONUS_OK) return Status::ok();
  ++inst.counters.errors;
  err[kErrCap - 1] = '\0';
  const Code code = from_abi(st);
  std::string why = err[0] != '\0'
                        ? std::string(err)
                        : std::string("the plugin gave no reason (status ") + code_name(code) + ")";
  return Status(code, inst.name + " (" + inst.lib->info().name + "): " + call + " failed: " + why);
}

// Fills an instance's host-services table (host_bridge.cpp).
void fill_host_services(patronus_host_services& s, patronus_host_ctx* ctx);

}  // namespace patronus::core
