// The plugin host: a good plugin (plain C) runs a timer through the host table; every refusal
// case names the file and the reason; exceptions never escape a plugin into the host.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <map>

#include "patronus/core/config_schema.hpp"
#include "patronus/core/plugin_host.hpp"
#include "patronus/core/router.hpp"
#include "patronus/env/virtual_world.hpp"
#include "test_support.hpp"

namespace {

using namespace patronus;
using patronus::test::test_plugin_dir;

using namespace patronus;

std::string tp(const std::string& name) {
  return test_plugin_dir() + "/libpatronus-" + name + ".so";
}

struct Events : core::RouterObserver {
  std::vector<std::pair<std::int64_t, std::string>> seen;
  env::Env* env = nullptr;
  std::vector<std::string> logs;
  void on_event(const std::string&, const std::string& type, const std::string& json) override {
    seen.emplace_back(env->now_ns(), type + " " + json);
  }
  void on_log(const std::string& i, std::uint32_t, const std::string& m) override {
    logs.push_back(i + ": " + m);
  }
};

TEST(PluginHost, GoodCPluginRunsTimersThroughTheHostTable) {
  core::PluginRegistry reg;
  auto lib = reg.load_file(tp("test-good"));
  ASSERT_TRUE(lib.is_ok()) << lib.status().to_string();
  EXPECT_EQ(lib.value()->info().name, "test-good");
  EXPECT_EQ(lib.value()->info().kind, core::PluginKind::kProbe);

  env::VirtualWorld world(1);
  env::Env& node = world.add_node("a", {model::IpAddress::parse("10.0.0.1").value()});
  core::RouterInstance router(node, "a");
  Events ev;
  ev.env = &node;
  router.set_observer(&ev);
  ASSERT_TRUE(router.add_plugin(lib.value(), "t", "").is_ok());
  ASSERT_TRUE(router.start().is_ok());
  world.run_until(1'000'000'000);
  // The plugin re-arms a 5 ms timer until it fired three times.
  ASSERT_EQ(ev.seen.size(), 3u);
  EXPECT_EQ(ev.seen[0],
            std::make_pair(std::int64_t{5'000'000}, std::string("timer.fired {\"fired\":1}")));
  EXPECT_EQ(ev.seen[1].first, 10'000'000);
  EXPECT_EQ(ev.seen[2],
            std::make_pair(std::int64_t{15'000'000}, std::string("timer.fired {\"fired\":3}")));
  ASSERT_EQ(ev.logs.size(), 1u);
  EXPECT_EQ(ev.logs[0], "t: started");
  EXPECT_EQ(router.live_timers("t"), 0u);
}

// A plugin's log text cannot forge a line of the daemon's log or send terminal escapes: control
// characters arrive escaped (security item 8).
TEST(PluginHost, APluginsLogLineCannotForgeAnotherOne) {
  core::PluginRegistry reg;
  auto lib = reg.load_file(tp("test-hostile-log"));
  ASSERT_TRUE(lib.is_ok()) << lib.status().to_string();
  env::VirtualWorld world(1);
  env::Env& node = world.add_node("a", {model::IpAddress::parse("10.0.0.1").value()});
  core::RouterInstance router(node, "a");
  Events ev;
  ev.env = &node;
  router.set_observer(&ev);
  ASSERT_TRUE(router.add_plugin(lib.value(), "t", "").is_ok());
  ASSERT_TRUE(router.start().is_ok());
  ASSERT_EQ(ev.logs.size(), 1u);
  EXPECT_EQ(ev.logs[0].find('\n'), std::string::npos);
  EXPECT_EQ(ev.logs[0].find('\x1b'), std::string::npos);
  EXPECT_NE(ev.logs[0].find("started\\x0a2026"), std::string::npos) << ev.logs[0];
  EXPECT_NE(ev.logs[0].find("\\x1b[31mboom"), std::string::npos) << ev.logs[0];
}

// udp_open_ex (ABI 1.3) across the C boundary: a plain-C plugin opens an endpoint with options;
// the host refuses a TTL above 255, unknown flags and a non-zero reserved field, sends with the
// TTL asked for and hands the plugin each datagram's TTL with its flags.
TEST(PluginHost, UdpOpenExChecksOptionsSendsTheTtlAndReportsWhatArrived) {
  core::PluginRegistry reg;
  auto lib = reg.load_file(tp("test-good"));
  ASSERT_TRUE(lib.is_ok()) << lib.status().to_string();
  env::VirtualWorld world(1);
  const auto ia = model::IpAddress::parse("10.0.0.1").value();
  const auto ib = model::IpAddress::parse("10.0.0.2").value();
  env::Env& a = world.add_node("a", {ia});
  env::Env& b = world.add_node("b", {ib});
  world.set_link(ia, ib, {});
  world.set_link(ib, ia, {});
  core::RouterInstance router(a, "a");
  Events ev;
  ev.env = &a;
  router.set_observer(&ev);
  ASSERT_TRUE(router.add_plugin(lib.value(), "t", "").is_ok());
  ASSERT_TRUE(router.start().is_ok());
  std::vector<int> ttls;
  env::EndpointId rx = 0;
  ASSERT_TRUE(b.open_udp(
                   model::SocketAddress(ib, 9000), env::UdpOptions{},
                   [&](const model::SocketAddress&, const env::DatagramInfo& info,
                       const std::uint8_t*, std::size_t) { ttls.push_back(info.ttl); },
                   &rx, nullptr)
                  .is_ok());
  auto path = [&](std::uint16_t port, std::uint32_t ttl, std::uint32_t flags,
                  std::uint32_t reserved) {
    patronus_path_desc d{};
    d.struct_size = sizeof d;
    d.path_id = port;
    d.local = model::SocketAddress(ia, port).to_abi();
    d.remote = model::SocketAddress(ib, 9000).to_abi();
    d.session_id = ttl;
    d.rate = flags;
    d.key_len = reserved;
    return d;
  };
  EXPECT_EQ(router.watch_path("t", path(7001, 256, 0, 0)).code(), Code::kInvalidArgument);
  EXPECT_EQ(router.watch_path("t", path(7002, 255, 1, 0)).code(), Code::kInvalidArgument);
  EXPECT_EQ(router.watch_path("t", path(7003, 255, 0, 1)).code(), Code::kInvalidArgument);
  EXPECT_EQ(router.live_endpoints("t"), 0u) << "nothing opened on a refusal";
  ASSERT_TRUE(router.watch_path("t", path(7004, 200, 0, 0)).is_ok());
  ASSERT_TRUE(router.watch_path("t", path(7005, 0, 0, 0)).is_ok());
  const std::uint8_t x = 1;
  env::EndpointId tx = 0;
  ASSERT_TRUE(
      b.open_udp(model::SocketAddress(ib, 0), env::UdpOptions{33}, {}, &tx, nullptr).is_ok());
  ASSERT_TRUE(b.send_udp(tx, model::SocketAddress(ia, 7004), &x, 1).is_ok());
  world.run_until(10'000'000);
  EXPECT_EQ(ttls, (std::vector<int>{200, env::kDefaultTtl}));
  bool seen = false;
  for (const auto& [t, e] : ev.seen) {
    if (e.rfind("udp.info ", 0) == 0) {
      EXPECT_EQ(e, "udp.info {\"ttl\":33,\"flags\":5}");  // TTL and LOCAL known, no ifindex
      seen = true;
    }
  }
  EXPECT_TRUE(seen);
}

void expect_refused(const std::string& name, const std::vector<std::string>& needles) {
  core::PluginRegistry reg;
  auto lib = reg.load_file(tp(name));
  ASSERT_FALSE(lib.is_ok()) << name << " was accepted";
  const std::string msg = lib.status().message();
  EXPECT_NE(msg.find(tp(name)), std::string::npos) << "message does not name the file: " << msg;
  for (const auto& n : needles) {
    EXPECT_NE(msg.find(n), std::string::npos) << "'" << n << "' not in: " << msg;
  }
  EXPECT_TRUE(reg.plugins().empty());
}

TEST(PluginHost, RefusesDifferentMajorNamingBothVersions) {
  const std::string minor = std::to_string(PATRONUS_ABI_VERSION_MINOR);
  expect_refused("test-wrong-major", {"plugin ABI 2." + minor, "host ABI 1." + minor, "major"});
}

TEST(PluginHost, RefusesNewerMinorNamingBothVersions) {
  const int minor = PATRONUS_ABI_VERSION_MINOR;
  expect_refused("test-newer-minor", {"plugin ABI 1." + std::to_string(minor + 1),
                                      "newer than host ABI 1." + std::to_string(minor)});
}

TEST(PluginHost, RefusesShortDescriptor) {
  expect_refused("test-short-struct", {"struct_size 40", "shorter than"});
}

TEST(PluginHost, RefusesMissingAliasWithoutLoading) {
  expect_refused("test-missing-alias", {"does not export the entry point 'patronus_plugin_entry'"});
}

TEST(PluginHost, RefusesUnresolvedSymbolAtLoad) {
  expect_refused("test-unresolved", {"cannot be loaded", "patronus_symbol_that_does_not_exist"});
}

TEST(PluginHost, RefusesNonPluginFilesAndMissingFiles) {
  patronus::test::TempDir dir;
  patronus::test::write_file(dir.file("libjunk.so"), "not an ELF file at all");
  core::PluginRegistry reg;
  auto junk = reg.load_file(dir.file("libjunk.so"));
  ASSERT_FALSE(junk.is_ok());
  EXPECT_NE(junk.status().message().find("not a loadable shared object"), std::string::npos);
  auto missing = reg.load_file(dir.file("libnothing.so"));
  ASSERT_FALSE(missing.is_ok());
  EXPECT_EQ(missing.status().code(), Code::kNotFound);
}

// As sshd's StrictModes: a plugin file or directory another user could write, or a file owned by
// another user, is refused before anything maps it (not even the screening child).
TEST(PluginHost, PluginFilesOthersCouldWriteAreRefused) {
  patronus::test::TempDir dir;
  const std::string file = dir.file("libpatronus-pingpong.so");
  patronus::test::write_file(file, patronus::test::read_file(patronus::test::test_plugin_dir() +
                                                             "/libpatronus-pingpong.so"));
  ASSERT_EQ(::chmod(file.c_str(), 0666), 0);
  core::PluginRegistry reg;
  auto writable = reg.load_file(file);
  ASSERT_FALSE(writable.is_ok());
  EXPECT_NE(writable.status().message().find("plugin file " + file +
                                             " is writable by group or others (mode 666)"),
            std::string::npos)
      << writable.status().message();
  ASSERT_EQ(::chmod(file.c_str(), 0755), 0);
  ASSERT_EQ(::chmod(dir.path().c_str(), 0777), 0);
  auto open_dir = reg.load_file(file);
  ASSERT_FALSE(open_dir.is_ok());
  EXPECT_NE(open_dir.status().message().find("plugin directory"), std::string::npos)
      << open_dir.status().message();
  ASSERT_EQ(::chmod(dir.path().c_str(), 0700), 0);
  if (::geteuid() == 0) {
    ASSERT_EQ(::chown(file.c_str(), 65534, 65534), 0);
    auto foreign = reg.load_file(file);
    ASSERT_FALSE(foreign.is_ok());
    EXPECT_NE(foreign.status().message().find("owned by uid 65534"), std::string::npos)
        << foreign.status().message();
    ASSERT_EQ(::chown(file.c_str(), 0, 0), 0);
  }
  auto ok = reg.load_file(file);
  EXPECT_TRUE(ok.is_ok()) << ok.status().to_string();
}

// Every distribution package strips its shared objects (dh_strip, cpack's CPACK_STRIP_FILES),
// which removes .symtab. The entry point is read from the dynamic symbol table, which stays: the
// packaged plugins were refused as "does not export the entry point" before.
TEST(PluginHost, AStrippedPluginLoads) {
  patronus::test::TempDir dir;
  ASSERT_EQ(::chmod(dir.path().c_str(), 0700), 0);
  const std::string file = dir.file("libpatronus-scoring.so");
  auto strip = patronus::test::run({"/usr/bin/strip", "--strip-unneeded", "-o", file,
                                    patronus::test::plugin_dir() + "/libpatronus-scoring.so"});
  ASSERT_EQ(strip.exit_code, 0) << strip.err;
  auto symtab = patronus::test::run({"/usr/bin/readelf", "-S", file});
  ASSERT_EQ(symtab.out.find(".symtab"), std::string::npos) << "the copy still has .symtab";
  ASSERT_EQ(::chmod(file.c_str(), 0755), 0);
  // In another process: a scorer loaded here would hold its Protobuf names in this process's pool
  // and refuse the real one to the tests after this one.
  auto listed = patronus::test::run(
      {patronus::test::bin_dir() + "/patronus", "plugins", "list", "--plugin-dir", dir.path()});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_EQ(listed.out.find("refused"), std::string::npos) << listed.out;
  EXPECT_NE(listed.out.find("\nscoring "), std::string::npos) << listed.out;
}

TEST(PluginHost, SdkPluginExceptionBecomesAnError) {
  core::PluginRegistry reg;
  auto lib = reg.load_file(tp("test-throws-sdk"));
  ASSERT_TRUE(lib.is_ok()) << lib.status().to_string();
  env::VirtualWorld world(1);
  core::RouterInstance router(world.add_node("a", {}), "a");
  const Status s = router.add_plugin(lib.value(), "x", "");
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("configure failed: boom in configure"), std::string::npos)
      << s.message();
  EXPECT_TRUE(router.instance_names().empty()) << "a failed instance must not be kept";
}

TEST(PluginHost, RawPluginExceptionIsContainedByTheHost) {
  core::PluginRegistry reg;
  auto lib = reg.load_file(tp("test-throws-raw"));
  ASSERT_TRUE(lib.is_ok()) << lib.status().to_string();
  env::VirtualWorld world(1);
  core::RouterInstance router(world.add_node("a", {}), "a");
  ASSERT_TRUE(router.add_plugin(lib.value(), "x", "").is_ok());
  const Status s = router.start();
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("start threw an exception across the C ABI"), std::string::npos)
      << s.message();
  EXPECT_FALSE(router.running());
  EXPECT_EQ(router.counters().plugin_exceptions, 1u);
}

TEST(PluginHost, DirectoryScanListsRefusalsWithReasons) {
  core::PluginRegistry reg;
  auto scan = reg.load_directory(test_plugin_dir());
  ASSERT_TRUE(scan.is_ok());
  const auto& refused = scan.value().refused;
  std::vector<std::string> names;
  for (const auto& p : reg.plugins()) names.push_back(p->info().name);
  EXPECT_EQ(
      names,
      (std::vector<std::string>{
          "acme-latency",      "compat10-policy", "compat10-probe",     "compat10-scorer",
          "compat11-policy",   "compat11-probe",  "compat11-scorer",    "compat12-policy",
          "compat12-probe",    "compat12-scorer", "compat12-transport", "compat13-policy",
          "compat13-probe",    "compat13-scorer", "compat13-transport", "pingpong",
          "test-flaky-scorer", "test-good",       "test-hostile-log",   "test-sdk-default-abi",
          "test-sdk-min-abi0", "test-throws-raw", "test-throws-sdk",    "test-transport"}));
  EXPECT_EQ(refused.size(), 9u);
  for (const auto& r : refused) EXPECT_FALSE(r.reason.empty()) << r.file;
}

// Only lib<name>.so files (or symlinks to them) are candidates; everything else is reported as
// skipped with the reason, and never opened.
TEST(PluginHost, DirectoryScanReportsWhatItSkipsAndWhy) {
  patronus::test::TempDir dir;
  const std::string good = test_plugin_dir() + "/libpatronus-test-good.so";
  ASSERT_EQ(symlink(good.c_str(), dir.file("libacme.so").c_str()), 0);
  ASSERT_EQ(symlink(good.c_str(), dir.file("libacme.so.1").c_str()), 0);
  patronus::test::write_file(dir.file("README.txt"), "not a plugin");
  patronus::test::write_file(dir.file("libbroken.so"), "not an ELF file");
  ASSERT_EQ(mkdir(dir.file("libsub.so").c_str(), 0700), 0);
  ASSERT_EQ(symlink("/nonexistent", dir.file("libdangling.so").c_str()), 0);
  core::PluginRegistry reg;
  auto scan = reg.load_directory(dir.path());
  ASSERT_TRUE(scan.is_ok()) << scan.status().message();
  ASSERT_EQ(reg.plugins().size(), 1u);
  EXPECT_EQ(reg.plugins()[0]->info().name, "test-good");
  ASSERT_EQ(scan.value().refused.size(), 1u);
  EXPECT_NE(scan.value().refused[0].file.find("libbroken.so"), std::string::npos);
  std::map<std::string, std::string> skipped;
  for (const auto& r : scan.value().skipped) {
    skipped[r.file.substr(r.file.rfind('/') + 1)] = r.reason;
  }
  EXPECT_EQ(skipped.size(), 4u);
  EXPECT_NE(skipped["libacme.so.1"].find("versioned name"), std::string::npos);
  EXPECT_NE(skipped["README.txt"].find("not named lib<name>.so"), std::string::npos);
  EXPECT_EQ(skipped["libsub.so"], "a directory");
  EXPECT_EQ(skipped["libdangling.so"], "not a regular file");
}

TEST(PluginHost, DuplicateNameIsRefused) {
  core::PluginRegistry reg;
  ASSERT_TRUE(reg.load_file(patronus::test::plugin_dir() + "/libpatronus-scoring.so").is_ok());
  // A built-in with the same name goes through the same checks and is refused.
  const auto* d = &reg.plugins()[0]->descriptor();
  auto again = reg.register_builtin(d, "copy");
  ASSERT_FALSE(again.is_ok());
  EXPECT_NE(again.status().message().find("already loaded"), std::string::npos);
}

TEST(PluginHost, BuiltinsGoThroughTheSameVersionRule) {
  core::PluginRegistry reg;
  ASSERT_TRUE(reg.load_file(patronus::test::plugin_dir() + "/libpatronus-scoring.so").is_ok());
  patronus_plugin_descriptor d = reg.plugins()[0]->descriptor();
  d.name = "other-scorer";
  d.abi_major = 7;
  auto r = reg.register_builtin(&d, "test");
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("builtin:test"), std::string::npos);
  d.abi_major = PATRONUS_ABI_VERSION_MAJOR;
  EXPECT_TRUE(reg.register_builtin(&d, "test").is_ok());
}

TEST(PluginHost, StopCancelsTimersAndClosesEndpoints) {
  core::PluginRegistry reg;
  auto lib = reg.load_file(patronus::test::test_plugin_dir() + "/libpatronus-pingpong.so");
  ASSERT_TRUE(lib.is_ok());
  env::VirtualWorld world(1);
  auto ip = model::IpAddress::parse("10.0.0.1").value();
  core::RouterInstance router(world.add_node("a", {ip}), "a");
  auto cfg =
      lib.value()->schema()->text_to_bytes("listen: 10.0.0.1:7000\npeer: 10.0.0.2:7000", "c");
  ASSERT_TRUE(cfg.is_ok());
  ASSERT_TRUE(router.add_plugin(lib.value(), "p", cfg.value()).is_ok());
  ASSERT_TRUE(router.start().is_ok());
  world.run_until(350'000'000);
  EXPECT_EQ(router.live_endpoints("p"), 1u);
  EXPECT_GT(router.live_timers("p"), 0u);
  router.stop();
  EXPECT_EQ(router.live_endpoints("p"), 0u);
  EXPECT_EQ(router.live_timers("p"), 0u);
  EXPECT_EQ(world.pending(), 0u) << "a stopped plugin left events in the queue";
}

// One instance restarted with a new config: a config the plugin refuses changes nothing, a good
// one replaces the running instance (its socket and timers go with it), and one that fails to
// start brings the previous config back, running.
TEST(PluginHost, ReplacingAnInstanceRestartsItAloneAndComesBackOnFailure) {
  core::PluginRegistry reg;
  auto lib = reg.load_file(patronus::test::test_plugin_dir() + "/libpatronus-pingpong.so");
  ASSERT_TRUE(lib.is_ok());
  env::VirtualWorld world(1);
  auto ip = model::IpAddress::parse("10.0.0.1").value();
  core::RouterLimits limits;
  limits.max_trace_lines = 100;
  core::RouterInstance router(world.add_node("a", {ip}), "a", limits);
  auto bytes = [&](const std::string& text) {
    auto b = lib.value()->schema()->text_to_bytes(text, "c");
    EXPECT_TRUE(b.is_ok()) << b.status().to_string();
    return b.is_ok() ? b.value() : std::string();
  };
  ASSERT_TRUE(
      router.add_plugin(lib.value(), "p", bytes("listen: 10.0.0.1:7000\npeer: 10.0.0.2:7000"))
          .is_ok());
  ASSERT_TRUE(router.add_plugin(lib.value(), "q", bytes("listen: 10.0.0.1:7100")).is_ok());
  ASSERT_TRUE(router.start().is_ok());
  world.run_until(350'000'000);
  ASSERT_EQ(router.live_endpoints("p"), 1u);

  const Status refused = router.replace_plugin("p", bytes("listen: 10.0.0.1:7000\ninterval_ms: 0"));
  ASSERT_FALSE(refused.is_ok());
  EXPECT_NE(refused.message().find("interval_ms: must be 1..60000"), std::string::npos)
      << refused.message();
  EXPECT_EQ(router.live_endpoints("p"), 1u) << "a refused config stopped the running instance";
  EXPECT_EQ(router.trace_text().find("p stopped"), std::string::npos);

  // The same address: the new instance takes the old one's socket over (what is queued on it
  // carries over) once its owner says the successor has its paths.
  ASSERT_TRUE(
      router.replace_plugin("p", bytes("listen: 10.0.0.1:7000\npeer: 10.0.0.2:7000")).is_ok());
  router.close_handed_over();
  EXPECT_NE(router.trace_text().find("p took over 10.0.0.1:7000"), std::string::npos)
      << router.trace_text();
  EXPECT_EQ(router.live_endpoints("p"), 1u);

  ASSERT_TRUE(router.replace_plugin("p", bytes("listen: 10.0.0.1:7001")).is_ok());
  router.close_handed_over();  // 7000 is not taken: closed
  EXPECT_EQ(router.live_endpoints("p"), 1u);
  EXPECT_EQ(router.live_timers("p"), 0u) << "the old instance's ping timer outlived it";
  EXPECT_EQ(router.live_endpoints("q"), 1u);
  EXPECT_EQ(router.trace_text().find("q stopped"), std::string::npos) << "q was restarted too";

  // 10.0.0.9 is not this node's: the new instance cannot bind, the previous config comes back.
  const Status failed = router.replace_plugin("p", bytes("listen: 10.0.0.9:7001"));
  ASSERT_FALSE(failed.is_ok());
  EXPECT_NE(failed.message().find("the previous config runs again"), std::string::npos)
      << failed.message();
  EXPECT_EQ(router.live_endpoints("p"), 1u);
  EXPECT_FALSE(router.replace_plugin("nobody", "").is_ok());
  router.stop();
  EXPECT_EQ(world.pending(), 0u);
}

}  // namespace

namespace {

// A plugin whose registry is gone is still mapped (never unloaded before exit), so a second
// registry in the same process loads it again without re-running its static initialisers (which
// would register its Protobuf descriptors twice and abort).
TEST(PluginHost, ReloadingAfterTheRegistryIsGoneWorks) {
  for (const char* name : {"probes", "scoring", "probes", "scoring"}) {
    core::PluginRegistry reg;
    auto lib = reg.load_file(patronus::test::plugin_dir() + "/libpatronus-" + name + ".so");
    ASSERT_TRUE(lib.is_ok()) << name << ": " << lib.status().to_string();
    auto cfg = lib.value()->schema()->text_to_bytes(
        std::string(name) == "probes" ? "port: 7000" : "loss_weight: 3", "c");
    ASSERT_TRUE(cfg.is_ok());
    env::VirtualWorld world(1);
    core::RouterInstance router(world.add_node("a", {}), "a");
    ASSERT_TRUE(router.add_plugin(lib.value(), "p", cfg.value()).is_ok());
  }
}

}  // namespace
