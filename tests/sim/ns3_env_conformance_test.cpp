// The Env contract against the ns-3 backend: two nodes on ns-3's own IPv4 stack over a
// point-to-point link (the same checks as tests/env/env_conformance_test.cpp).
#include "env_conformance.hpp"
#include "ns3/internet-stack-helper.h"
#include "ns3/ipv4-address-helper.h"
#include "ns3/node-container.h"
#include "ns3/point-to-point-helper.h"
#include "ns3/simulator.h"
#include "ns3_env.hpp"

namespace patronus::test {
namespace {

class Ns3UnderTest final : public EnvUnderTest {
 public:
  explicit Ns3UnderTest(const env::EnvLimits& limits) {
    nodes_.Create(2);
    ns3::PointToPointHelper p2p;
    auto devices = p2p.Install(nodes_.Get(0), nodes_.Get(1));
    ns3::InternetStackHelper stack;
    stack.Install(nodes_);
    ns3::Ipv4AddressHelper addr;
    addr.SetBase("10.1.0.0", "255.255.255.0");
    addr.Assign(devices);  // a 10.1.0.1, b 10.1.0.2
    a_ = std::make_unique<sim::Ns3Env>(nodes_.Get(0), 7, "a", limits);
    b_ = std::make_unique<sim::Ns3Env>(nodes_.Get(1), 8, "b", limits);
  }
  ~Ns3UnderTest() override {
    a_.reset();
    b_.reset();
    ns3::Simulator::Destroy();
  }
  env::Env& a() override { return *a_; }
  env::Env& b() override { return *b_; }
  model::IpAddress a_ip() const override { return model::IpAddress::parse("10.1.0.1").value(); }
  model::IpAddress b_ip() const override { return model::IpAddress::parse("10.1.0.2").value(); }
  void run_for(std::int64_t ns) override {
    ns3::Simulator::Stop(ns3::NanoSeconds(ns));
    ns3::Simulator::Run();
  }
  bool exact_time() const override { return true; }
  bool post_threads() const override { return false; }  // a discrete-event simulation
  bool real_fds() const override { return false; }

 private:
  ns3::NodeContainer nodes_;
  std::unique_ptr<sim::Ns3Env> a_, b_;
};

INSTANTIATE_TEST_SUITE_P(Backends, EnvContract,
                         ::testing::Values(NamedFactory{
                             "ns3",
                             [](const env::EnvLimits& l) -> std::unique_ptr<EnvUnderTest> {
                               return std::make_unique<Ns3UnderTest>(l);
                             }}),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace patronus::test
