// The site host on the kernel, in a network namespace of the test's own: a start that fails after
// the Linux dataplane installed its rules and unreachable routes (a policy plugin refusing the
// inventory: the last step of a start) takes them all down again, so the site is not left
// black-holed; a start that succeeds steers, and stop() leaves nothing. The real probes, scorer
// and netpolicy plugins run through the ABI in virtual time. Needs root.
#include <gtest/gtest.h>

#include "kernel_test.hpp"
#include "patronus/core/config_schema.hpp"
#include "patronus/env/virtual_world.hpp"
#include "patronus/mesh/keys.hpp"
#include "patronus/site/site_host.hpp"
#include "test_support.hpp"

namespace patronus::linuxnet {
namespace {

constexpr std::int64_t kSec = 1'000'000'000;

class SiteHostKernel : public DscpKernelTest {
 protected:
  void SetUp() override {
    DscpKernelTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    for (const char* n : {"probes", "scoring", "netpolicy"}) {
      auto lib = reg_.load_file(test::plugin_dir() + "/libpatronus-" + n + ".so");
      ASSERT_TRUE(lib.is_ok()) << lib.status().to_string();
    }
    add_veths({"t0"});
  }

  // hq with one path to b (whose LAN is 10.20.0.0/16) over the tunnel device t0 of the namespace.
  site::SiteConfig config(const std::string& inventory) {
    site::SiteConfig c;
    c.set_schema(site::kSiteConfigSchema);
    c.set_site("hq");
    auto* probe = c.add_plugins();
    probe->set_plugin("probes");
    probe->set_instance("probe");
    probe->set_config(
        reg_.find("probes")->schema()->text_to_bytes("interval_ms: 50\n", "probe").value());
    for (const char* p : {"scoring", "netpolicy"}) {
      auto* i = c.add_plugins();
      i->set_plugin(p);
      i->set_instance(p);
      i->set_config(reg_.find(p)->schema()->text_to_bytes("", p).value());
    }
    steering::RuntimeConfig rc;
    rc.probe = "probe";
    rc.default_scorer = "scoring";
    rc.classes = steering::default_classes("");
    *c.mutable_runtime() = site::runtime_to_proto(rc);
    c.set_policy_inventory(inventory);
    auto* b = c.mutable_plan()->add_remote_sites();
    b->set_name("b");
    *b->add_prefixes() = "10.20.0.0/16";
    *b->add_subnets() = "10.20.0.0/16";
    auto* p = c.mutable_plan()->add_paths();
    p->set_id(1);
    p->set_name("hq:wan~b:wan");
    p->set_remote_site("b");
    p->set_local_endpoint("wan");
    p->set_remote_endpoint("wan");
    p->set_local_underlay("10.0.0.1:7410");
    p->set_remote_underlay("10.0.0.2:7410");
    p->set_session_id(mesh::probe_session_id(mesh::canonical_path_name("hq", "wan", "b", "wan")));
    p->set_probed(true);
    p->set_remote_public_key(std::string(b_key_.public_key.begin(), b_key_.public_key.end()));
    p->mutable_tunnel()->set_interface_name("t0");
    return c;
  }

  site::HostContext context(env::Env& env) {
    site::HostContext ctx;
    ctx.env = &env;
    ctx.plugins = [this](const std::string& n) { return reg_.find(n); };
    ctx.keys = [this](std::string_view, std::string_view) -> Result<mesh::KeyPair> {
      return hq_key_;
    };
    const std::string path = ns_path();
    const std::string name = ns();
    ctx.dataplane =
        [path,
         name](const site::DataplaneRequest& r) -> Result<std::unique_ptr<steering::Dataplane>> {
      LinuxDataplaneConfig c;
      c.classes = r.classes;
      c.site_prefixes = r.site_prefixes;
      c.resolve = [name, of = r.interface_of](model::PathId id) -> Result<Nexthop> {
        const auto dev = of(id);
        if (!dev) return not_found("no tunnel");
        return Nexthop{test::ifindex(name, *dev), {}};
      };
      auto nl = Rtnl::open_in_netns(path);
      if (!nl.is_ok()) return nl.status();
      auto dp = LinuxDataplane::start(std::move(nl).value(), c);
      if (!dp.is_ok()) return dp.status();
      return std::unique_ptr<steering::Dataplane>(std::move(dp).value());
    };
    return ctx;
  }

  core::PluginRegistry reg_{core::ScanOptions{false, {}, ""}};
  mesh::KeyPair hq_key_ = mesh::generate_keypair().value();
  mesh::KeyPair b_key_ = mesh::generate_keypair().value();
};

TEST_F(SiteHostKernel, AStartThatFailsAfterTheDataplaneLeavesNoForwardingState) {
  auto probe = Rtnl::open_in_netns(ns_path());
  ASSERT_TRUE(probe.is_ok());
  env::VirtualWorld world(5);
  auto& env = world.add_node("hq", {model::IpAddress::parse("10.0.0.1").value()});
  // Not a Kubernetes manifest: the policy plugin refuses the document, after the dataplane, the
  // runtime and every plugin started.
  auto host = site::SiteHost::create(context(env), config("kind: [unclosed\n"));
  ASSERT_TRUE(host.is_ok()) << host.status().to_string();
  const auto started = host.value()->start();
  ASSERT_FALSE(started.is_ok());
  EXPECT_EQ(started.status().message().rfind("policies: ", 0), 0u) << started.status().message();
  EXPECT_FALSE(host.value()->running());
  EXPECT_EQ(count_ours(probe.value()), 0u) << "a failed start left rules or routes behind";
  EXPECT_EQ(test::route_device(ns(), {"10.20.3.4"}), "unreachable")
      << "no route of ours and no default route: the main table's answer";
  EXPECT_FALSE(host.value()->router().running()) << "the plugins were stopped too";
}

TEST_F(SiteHostKernel, AStartedSiteSteersAndStopLeavesNothing) {
  auto probe = Rtnl::open_in_netns(ns_path());
  ASSERT_TRUE(probe.is_ok());
  env::VirtualWorld world(5);
  auto& env = world.add_node("hq", {model::IpAddress::parse("10.0.0.1").value()});
  auto host = site::SiteHost::create(context(env), config(""));
  ASSERT_TRUE(host.is_ok()) << host.status().to_string();
  const auto started = host.value()->start();
  ASSERT_TRUE(started.is_ok()) << started.status().to_string();
  EXPECT_EQ(started.value().paths, 1u);
  EXPECT_EQ(started.value().policy_instances, std::vector<std::string>{"netpolicy"});
  EXPECT_GT(count_ours(probe.value()), 0u);
  // b runs no responder: the path never comes up and b stays unreachable (nothing leaks).
  world.run_until(3 * kSec);
  EXPECT_EQ(test::route_device(ns(), {"10.20.3.4", "tos", "0xb8"}), "unreachable");
  EXPECT_TRUE(host.value()->stop().empty());
  EXPECT_EQ(count_ours(probe.value()), 0u);
}

// A config the host cannot build is refused before anything exists (nothing to take down).
TEST_F(SiteHostKernel, ARefusedConfigTouchesNothing) {
  auto probe = Rtnl::open_in_netns(ns_path());
  ASSERT_TRUE(probe.is_ok());
  env::VirtualWorld world(5);
  auto& env = world.add_node("hq", {model::IpAddress::parse("10.0.0.1").value()});
  auto bad = config("");
  bad.mutable_plan()->mutable_paths(0)->set_local_public_key(
      std::string(b_key_.public_key.begin(), b_key_.public_key.end()));
  auto host = site::SiteHost::create(context(env), bad);
  ASSERT_FALSE(host.is_ok());
  EXPECT_NE(host.status().message().find("plan.paths[0].local_public_key"), std::string::npos)
      << host.status().message();
  EXPECT_EQ(count_ours(probe.value()), 0u);
}

}  // namespace
}  // namespace patronus::linuxnet
