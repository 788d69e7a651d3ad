// The apps as a user runs them: patronus (CLI) and patronusd (daemon). Bad input exits non-zero
// with a message naming what is wrong and changes nothing.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <filesystem>

#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>

#include "patronus/abi/plugin_abi.h"
#include "patronus/store/store.hpp"
#include "test_support.hpp"

namespace {

using namespace patronus;
using test::run;

std::string cli() {
  return test::bin_dir() + "/patronus";
}
std::string daemon() {
  return test::bin_dir() + "/patronusd";
}

TEST(Cli, VersionNamesTheAbi) {
  auto r = run({cli(), "--version"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("plugin ABI 1." + std::to_string(PATRONUS_ABI_VERSION_MINOR)),
            std::string::npos)
      << r.out;
}

TEST(Cli, SiteAddListRemove) {
  test::TempDir dir;
  const auto db = dir.file("state.db");
  auto r = run({cli(), "site", "--db", db, "add", "hq", "--region", "eu", "--endpoint",
                "name=wan1,address=203.0.113.1:51820,type=wan,cost=0.02", "--endpoint",
                "name=lte1,address=[2001:db8::1]:51820,type=lte,cost=2.5,bandwidth=50"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run({cli(), "site", "--db", db, "list", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["sites"].size(), 1u);
  EXPECT_EQ(j["sites"][0]["name"], "hq");
  EXPECT_EQ(j["sites"][0]["region"], "eu");
  ASSERT_EQ(j["sites"][0]["endpoints"].size(), 2u);
  EXPECT_EQ(j["sites"][0]["endpoints"][0]["address"], "[2001:db8::1]:51820");
  EXPECT_EQ(j["sites"][0]["endpoints"][0]["bandwidth_mbps"], 50.0);
  r = run({cli(), "site", "--db", db, "remove", "hq"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run({cli(), "site", "--db", db, "list", "--json"});
  EXPECT_EQ(nlohmann::json::parse(r.out)["sites"].size(), 0u);
}

struct BadCase {
  std::vector<std::string> args;
  std::string message;
};

TEST(Cli, BadInputIsAnErrorAndChangesNothing) {
  test::TempDir dir;
  const auto db = dir.file("state.db");
  // Nothing exists yet: a bad add must not even create the database.
  auto r = run({cli(), "site", "--db", db, "add", "hq", "--endpoint", "name=w,address=nowhere"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--endpoint #1 address: 'nowhere': expected host:port"), std::string::npos)
      << r.err;
  EXPECT_FALSE(test::file_exists(db));

  ASSERT_EQ(run({cli(), "site", "--db", db, "add", "hq", "--endpoint",
                 "name=wan1,address=203.0.113.1:51820"})
                .exit_code,
            0);
  const std::vector<BadCase> cases = {
      {{"add", "Bad_Name"}, "site.name: 'Bad_Name' may contain only lowercase"},
      {{"add", "br", "--endpoint", "name=w,address=1.2.3.4:1,type=carrier-pigeon"},
       "'carrier-pigeon' is not a interface type"},
      {{"add", "br", "--endpoint", "name=w,address=1.2.3.4:1,cost=-1"},
       "endpoints[0].cost_per_gb: must be a finite number >= 0"},
      {{"add", "br", "--endpoint", "name=w,address=1.2.3.4:1,colour=red"}, "'colour': unknown key"},
      {{"add", "br", "--endpoint", "name=w,address=1.2.3.4:1", "--endpoint",
        "name=w,address=1.2.3.5:1"},
       "duplicate endpoint name 'w'"},
      {{"add", "hq"}, "site 'hq' exists already"},
      {{"remove", "nope"}, "no site named 'nope'"},
  };
  for (const auto& c : cases) {
    const auto before = test::read_file(db);
    std::vector<std::string> argv = {cli(), "site", "--db", db};
    argv.insert(argv.end(), c.args.begin(), c.args.end());
    r = run(argv);
    EXPECT_NE(r.exit_code, 0) << c.message;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << "stderr: " << r.err;
    auto st = store::Store::open(db);
    ASSERT_TRUE(st.is_ok());
    EXPECT_EQ(st.value()->count_rows("sites").value(), 1) << c.message;
    EXPECT_EQ(st.value()->count_rows("endpoints").value(), 1) << c.message;
  }
  r = run({cli(), "site", "--db", dir.file("missing.db"), "list"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no state database at"), std::string::npos);
  EXPECT_FALSE(test::file_exists(dir.file("missing.db")));
}

TEST(Cli, PluginsListShowsRefusalsWithReasons) {
  auto r = run({cli(), "plugins", "list", "--plugin-dir", test::test_plugin_dir(), "--json"});
  ASSERT_EQ(r.exit_code, 1) << "files were refused: " << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["plugins"].size(), 24u);
  EXPECT_EQ(j["plugins"][0]["name"], "acme-latency");  // the SDK example, built as a test plugin
  EXPECT_EQ(j["plugins"][0]["kind"], "scorer");
  EXPECT_EQ(j["plugins"][1]["name"], "compat10-policy");
  EXPECT_EQ(j["plugins"][1]["abi"], "1.0");
  EXPECT_EQ(j["plugins"][4]["name"], "compat11-policy");
  EXPECT_EQ(j["plugins"][4]["abi"], "1.1");
  EXPECT_EQ(j["plugins"][10]["name"], "compat12-transport");
  EXPECT_EQ(j["plugins"][10]["abi"], "1.2");
  EXPECT_EQ(j["plugins"][14]["name"], "compat13-transport");
  EXPECT_EQ(j["plugins"][14]["abi"], "1.3");
  EXPECT_EQ(j["plugins"][17]["name"], "test-good");
  EXPECT_EQ(j["plugins"][17]["kind"], "probe");
  ASSERT_EQ(j["refused"].size(), 9u);
  EXPECT_TRUE(j["skipped"].is_array());
  bool saw_major = false;
  for (const auto& x : j["refused"]) {
    saw_major =
        saw_major || x["reason"].get<std::string>().find("plugin ABI 2.") != std::string::npos;
  }
  EXPECT_TRUE(saw_major);
  r = run({cli(), "plugins", "list", "--plugin-dir", test::plugin_dir()});
  ASSERT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("patronus.probes.v1.Config"), std::string::npos);
  EXPECT_NE(r.out.find("patronus.emodel.v1.Config"), std::string::npos);
  EXPECT_EQ(r.out.find("pingpong"), std::string::npos) << "a test plugin is shipped";
}

// The vendor's report: two plugins from one .proto (no schema section) beside a shipped one used
// to kill `plugins list` with SIGABRT. Now the second is refused by name, hostile initialisers
// too, and a second run with the same cache starts no scanner process.
TEST(Cli, PluginsListSurvivesHostileFilesAndCachesVerdicts) {
  test::TempDir dir;
  for (const char* w : {"twin-a", "twin-b", "segv", "abort"}) {
    std::filesystem::create_symlink(
        test::hostile_plugin_dir() + "/libpatronus-hostile-" + w + ".so",
        dir.file(std::string("libvendor-") + w + ".so"));
  }
  std::filesystem::create_symlink(test::plugin_dir() + "/libpatronus-scoring.so",
                                  dir.file("libpatronus-scoring.so"));
  const std::string cache = "PATRONUS_PLUGIN_CACHE=" + dir.file("cache");
  for (int round = 0; round < 2; ++round) {
    auto r = run({"env", cache, cli(), "plugins", "list", "--plugin-dir", dir.path(), "--json"});
    ASSERT_EQ(r.exit_code, 1) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    ASSERT_EQ(j["plugins"].size(), 2u) << r.out;
    EXPECT_EQ(j["plugins"][0]["name"], "scoring");
    EXPECT_EQ(j["plugins"][1]["name"], "hostile-twin-a");
    ASSERT_EQ(j["refused"].size(), 3u) << r.out;
    EXPECT_NE(j["refused"].dump().find("SIGABRT"), std::string::npos) << r.out;
    EXPECT_NE(j["refused"].dump().find("SIGSEGV"), std::string::npos) << r.out;
    EXPECT_EQ(j["scanner"]["scanned"], round == 0 ? 5 : 0) << r.out;
    EXPECT_EQ(j["scanner"]["cached"], round == 0 ? 0 : 5) << r.out;
  }
}

TEST(Cli, PluginsInspect) {
  auto r =
      run({cli(), "plugins", "inspect", test::plugin_dir() + "/libpatronus-scoring.so", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["name"], "scoring");
  EXPECT_EQ(j["exported_aliases"], nlohmann::json::array({"patronus_plugin_entry"}));
  EXPECT_EQ(j["config_fields"][0], "latency_weight: double");
  r = run(
      {cli(), "plugins", "inspect", test::test_plugin_dir() + "/libpatronus-test-newer-minor.so"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("newer than host ABI 1." + std::to_string(PATRONUS_ABI_VERSION_MINOR)),
            std::string::npos)
      << r.err;
}

std::string daemon_config(const test::TempDir& dir, const std::string& plugins) {
  return "site: hq\nstate_db: " + dir.file("hq.db") + "\ncontrol_socket: " + dir.file("hq.sock") +
         "\nplugin_dir: " + test::test_plugin_dir() + "\nflush_interval_ms: 100\nplugins:\n" +
         plugins;
}

TEST(Daemon, ConfigErrorsExitNonZeroBeforeTouchingState) {
  test::TempDir dir;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"  - plugin: no-such-plugin\n", "no plugin named 'no-such-plugin'"},
      // The line is the file's, not the config subtree's.
      {"  - plugin: pingpong\n    config:\n      listen: 127.0.0.1:1\n      count: many\n",
       "plugins[0].config.count: expected an unsigned integer, got 'many' (line 10)"},
      // The plugin's own verdict, before anything starts (the state database is not created).
      {"  - plugin: pingpong\n    config:\n      listen: 127.0.0.1:1\n      interval_ms: 0\n",
       "plugins[0].config (line 9): plugin 'pingpong' refused its configuration: "},
  };
  for (const auto& [plugins, message] : cases) {
    test::write_file(dir.file("d.yaml"), daemon_config(dir, plugins));
    auto r = run({daemon(), "--config", dir.file("d.yaml")});
    EXPECT_EQ(r.exit_code, 2) << message;
    EXPECT_NE(r.err.find(message), std::string::npos) << r.err;
    EXPECT_FALSE(test::file_exists(dir.file("hq.db"))) << message;
    EXPECT_FALSE(test::file_exists(dir.file("hq.sock"))) << message;
  }
  // The first two fail before the database is opened.
  auto r = run({daemon(), "--config", dir.file("nope.yaml")});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("cannot read config file"), std::string::npos);
}

TEST(Daemon, RunsPluginsAndFlushesStateOnSigterm) {
  test::TempDir dir;
  const auto port = std::to_string(test::free_udp_port());
  // The probe pings its own listening socket: it answers itself, over real loopback UDP.
  test::write_file(
      dir.file("d.yaml"),
      daemon_config(dir,
                    "  - plugin: pingpong\n    name: self\n    config:\n"
                    "      listen: 127.0.0.1:" +
                        port + "\n      peer: 127.0.0.1:" + port + "\n      interval_ms: 20\n"));
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    execl(daemon().c_str(), daemon().c_str(), "--config", dir.file("d.yaml").c_str(), nullptr);
    _exit(127);
  }
  // Wait until it has persisted samples, then ask it to stop.
  bool have_samples = false;
  for (int i = 0; i < 300 && !have_samples; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (!test::file_exists(dir.file("hq.db"))) continue;
    auto st = store::Store::open(dir.file("hq.db"));
    have_samples = st.is_ok() && st.value()->count_rows("path_samples").value() > 0;
  }
  // One site, one daemon: a second one for the same state, on another socket, is refused before
  // it touches anything, naming the first; the first runs on (it stops cleanly below).
  std::string second = test::read_file(dir.file("d.yaml"));
  second.replace(second.find(dir.file("hq.sock")), dir.file("hq.sock").size(), dir.file("b.sock"));
  test::write_file(dir.file("second.yaml"), second);
  auto refused = run({daemon(), "--config", dir.file("second.yaml")});
  EXPECT_EQ(refused.exit_code, 1) << refused.err;
  EXPECT_NE(refused.err.find("another patronusd runs with this state"), std::string::npos)
      << refused.err;
  EXPECT_NE(refused.err.find("pid " + std::to_string(pid) + " (site hq)"), std::string::npos)
      << refused.err;
  EXPECT_FALSE(test::file_exists(dir.file("b.sock")));
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(have_samples) << "the daemon never persisted a sample";
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  auto st = store::Store::open(dir.file("hq.db"));
  ASSERT_TRUE(st.is_ok());
  auto events = st.value()->events(10);
  ASSERT_TRUE(events.is_ok());
  ASSERT_GE(events.value().size(), 3u);
  EXPECT_EQ(events.value()[0].kind, "daemon.stop");
  EXPECT_EQ(events.value()[0].payload, "{\"reason\":\"SIGTERM\"}");
  EXPECT_EQ(events.value()[1].kind, "pingpong.stopped");
  auto sum = st.value()->sample_summary();
  ASSERT_TRUE(sum.is_ok());
  ASSERT_EQ(sum.value().size(), 1u);
  EXPECT_EQ(sum.value()[0].source, "self");
  EXPECT_GT(sum.value()[0].samples, 0u);
  EXPECT_GT(sum.value()[0].min_rtt_ms, 0.0);
}

}  // namespace
