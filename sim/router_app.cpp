#include "router_app.hpp"

#include "ns3/log.h"

namespace patronus::sim {

ns3::TypeId RouterApp::GetTypeId() {
  static ns3::TypeId tid = ns3::TypeId("patronus::sim::RouterApp")
                               .SetParent<ns3::Application>()
                               .SetGroupName("Patronus")
                               .AddConstructor<RouterApp>();
  return tid;
}

RouterApp::~RouterApp() = default;

void RouterApp::Setup(std::string site, std::uint64_t seed, std::vector<PluginPlan> plugins,
                      core::RouterObserver* observer) {
  site_ = std::move(site);
  seed_ = seed;
  plugins_ = std::move(plugins);
  observer_ = observer;
}

void RouterApp::StartApplication() {
  env_ = std::make_unique<Ns3Env>(GetNode(), seed_, site_);
  core::RouterLimits limits;
  limits.max_trace_lines = 1u << 20;  // the seam demo compares traces byte for byte
  router_ = std::make_unique<core::RouterInstance>(*env_, site_, limits);
  router_->set_observer(observer_);
  for (const auto& p : plugins_) {
    if (auto s = router_->add_plugin(p.library, p.instance, p.config); !s.is_ok()) {
      error_ = s.message();
      return;
    }
  }
  if (auto s = router_->start(); !s.is_ok()) error_ = s.message();
}

void RouterApp::StopApplication() {
  if (router_) router_->stop();
}

void RouterApp::DoDispose() {
  if (router_) {
    router_->stop();
    final_trace_ = router_->trace_text();
  }
  router_.reset();
  env_.reset();
  ns3::Application::DoDispose();
}

}  // namespace patronus::sim
