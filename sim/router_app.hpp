// One site in an ns-3 simulation: an ns3::Application that owns one Patronus router instance
// (the same host kernel and plugin binaries patronusd runs) on an Ns3Env bound to its node.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "ns3/application.h"
#include "ns3_env.hpp"
#include "patronus/core/router.hpp"

namespace patronus::sim {

struct PluginPlan {
  std::shared_ptr<const core::PluginLibrary> library;
  std::string instance;
  std::string config;  // serialized config message
};

class RouterApp final : public ns3::Application {
 public:
  static ns3::TypeId GetTypeId();
  RouterApp() = default;
  ~RouterApp() override;

  void Setup(std::string site, std::uint64_t seed, std::vector<PluginPlan> plugins,
             core::RouterObserver* observer);
  // Valid between StartApplication and DoDispose.
  core::RouterInstance* router() { return router_.get(); }
  // The first error from starting the router, empty if none.
  const std::string& error() const { return error_; }
  // The router's trace, kept after the router is gone.
  const std::string& final_trace() const { return final_trace_; }

 private:
  void StartApplication() override;
  void StopApplication() override;
  void DoDispose() override;

  std::string site_;
  std::uint64_t seed_ = 0;
  std::vector<PluginPlan> plugins_;
  core::RouterObserver* observer_ = nullptr;
  std::unique_ptr<Ns3Env> env_;
  std::unique_ptr<core::RouterInstance> router_;
  std::string error_;
  std::string final_trace_;
};

}  // namespace patronus::sim
