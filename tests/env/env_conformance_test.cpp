// The Env contract against the real backend (Boost.Asio on loopback) and virtual time; the ns-3
// backend runs the same checks in tests/sim/ns3_env_conformance_test.cpp.
#include <boost/asio/io_context.hpp>
#include <chrono>

#include "env_conformance.hpp"
#include "patronus/env/asio_env.hpp"
#include "patronus/env/virtual_world.hpp"

namespace patronus::test {
namespace {

class VirtualUnderTest final : public EnvUnderTest {
 public:
  explicit VirtualUnderTest(const env::EnvLimits& limits) : world_(7) {
    a_ = &world_.add_node("a", {a_ip()}, limits);
    b_ = &world_.add_node("b", {b_ip()}, limits);
    const env::LinkParams link{1 * kEnvMs, 0, 0.0, true};
    world_.set_link(a_ip(), b_ip(), link);
    world_.set_link(b_ip(), a_ip(), link);
  }
  env::Env& a() override { return *a_; }
  env::Env& b() override { return *b_; }
  model::IpAddress a_ip() const override { return model::IpAddress::parse("10.0.0.1").value(); }
  model::IpAddress b_ip() const override { return model::IpAddress::parse("10.0.0.2").value(); }
  void run_for(std::int64_t ns) override { world_.run_until(world_.now_ns() + ns); }
  bool exact_time() const override { return true; }
  bool post_threads() const override { return true; }
  bool real_fds() const override { return false; }

 private:
  env::VirtualWorld world_;
  env::Env* a_ = nullptr;
  env::Env* b_ = nullptr;
};

class AsioUnderTest final : public EnvUnderTest {
 public:
  explicit AsioUnderTest(const env::EnvLimits& limits) : env_(io_, 7, limits) {}
  env::Env& a() override { return env_; }
  env::Env& b() override { return env_; }
  model::IpAddress a_ip() const override { return model::IpAddress::parse("127.0.0.1").value(); }
  model::IpAddress b_ip() const override { return a_ip(); }
  void run_for(std::int64_t ns) override {
    io_.restart();
    io_.run_for(std::chrono::nanoseconds(ns));
  }
  bool exact_time() const override { return false; }
  bool post_threads() const override { return true; }
  bool real_fds() const override { return true; }

 private:
  boost::asio::io_context io_;
  env::AsioEnv env_;
};

INSTANTIATE_TEST_SUITE_P(
    Backends, EnvContract,
    ::testing::Values(NamedFactory{"virtual",
                                   [](const env::EnvLimits& l) -> std::unique_ptr<EnvUnderTest> {
                                     return std::make_unique<VirtualUnderTest>(l);
                                   }},
                      NamedFactory{"asio",
                                   [](const env::EnvLimits& l) -> std::unique_ptr<EnvUnderTest> {
                                     return std::make_unique<AsioUnderTest>(l);
                                   }}),
    [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace patronus::test
