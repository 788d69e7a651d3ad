// Two patronusd daemons on loopback run their site runtimes over real UDP: authenticated probes
// both ways, paths come up, classes get paths; killing one daemon (its probe responder with it)
// makes the other's paths go down, and its decisions, read back with the CLI, record the move.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <regex>

#include <chrono>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "patronus/store/store.hpp"
#include "test_support.hpp"

namespace {

using namespace patronus;
using test::run;

struct Child {
  pid_t pid = -1;
  ~Child() {
    if (pid > 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  }
};

pid_t spawn(const std::string& config, const std::string& log) {
  const pid_t pid = fork();
  if (pid == 0) {
    const std::string d = test::bin_dir() + "/patronusd";
    if (FILE* f = freopen(log.c_str(), "w", stderr)) (void)f;
    execl(d.c_str(), d.c_str(), "--config", config.c_str(), nullptr);
    _exit(127);
  }
  return pid;
}

// Polls the database until `pred` holds (or ~20 s pass).
template <typename Pred>
bool wait_for(const std::string& db, Pred pred) {
  for (int i = 0; i < 200; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (!test::file_exists(db)) continue;
    auto st = store::Store::open(db);
    if (st.is_ok() && pred(*st.value())) return true;
  }
  return false;
}

bool has_decision(store::Store& s, const std::string& kind) {
  auto d = s.decisions(1000);
  if (!d.is_ok()) return false;
  for (const auto& e : d.value()) {
    if (e.kind == kind) return true;
  }
  return false;
}

// A site daemon on loopback: probes at 50 ms, the scoring and E-model scorers, the runtime over
// sites.yaml with one key directory for every site.
std::string site_config(const std::string& site, const std::string& port) {
  return "site: " + site + "\nstate_db: " + site + ".db\ncontrol_socket: " + site +
         ".sock\nplugin_dir: " + test::plugin_dir() +
         "\nlog_level: debug\nflush_interval_ms: 100\nplugins:\n"
         "  - plugin: probes\n    name: probe\n    config: {port: " +
         port +
         ", interval_ms: 50, idle_interval_ms: 100, detect_multiplier: 3}\n"
         "  - plugin: scoring\n  - plugin: emodel\n"
         "runtime:\n  sites_file: sites.yaml\n  keys_dir: keys\n  probe: probe\n"
         "  scorer: scoring\n  voice_scorer: emodel\n  metrics_interval_ms: 200\n";
}

TEST(DaemonRuntime, TwoSitesProbeEachOtherAndAKilledPeerIsFailedAway) {
  test::TempDir dir;
  const std::string port = std::to_string(test::free_udp_port());
  test::write_file(dir.file("sites.yaml"),
                   "sites:\n"
                   "  - name: hq\n    subnets: [192.168.10.0/24]\n    endpoints:\n"
                   "      - {name: wan0, address: 127.0.0.1:51820, type: wan}\n"
                   "      - {name: wan1, address: 127.0.0.3:51820, type: wan}\n"
                   "  - name: branch\n    subnets: [192.168.20.0/24]\n    endpoints:\n"
                   "      - {name: wan0, address: 127.0.0.2:51820, type: wan}\n");
  // One key directory for the lab: the plan creates every endpoint's key (private keys 0600).
  auto plan = run({test::bin_dir() + "/patronus", "mesh", "plan", "--sites", dir.file("sites.yaml"),
                   "--keys-dir", dir.file("keys")});
  ASSERT_EQ(plan.exit_code, 0) << plan.err;
  for (const std::string site : {"hq", "branch"}) {
    test::write_file(dir.file(site + ".yaml"), site_config(site, port));
  }
  Child hq, branch;
  hq.pid = spawn(dir.file("hq.yaml"), dir.file("hq.log"));
  branch.pid = spawn(dir.file("branch.yaml"), dir.file("branch.log"));
  // Both paths come up (authenticated probes answered both ways) and every class gets a path.
  ASSERT_TRUE(wait_for(dir.file("hq.db"), [](store::Store& s) {
    auto p = s.list_paths();
    if (!p.is_ok() || p.value().size() != 2) return false;
    for (const auto& r : p.value()) {
      if (r.status != model::PathStatus::kUp) return false;
    }
    return has_decision(s, "decision.initial");
  })) << test::read_file(dir.file("hq.log"));
  // The running daemon answers on its control socket, owner-only, with what it measures now.
  const std::string sock = dir.file("hq.sock");
  struct stat st {};
  ASSERT_EQ(::stat(sock.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto live = run({test::bin_dir() + "/patronus", "paths", "list", "--socket", sock, "--json"});
  ASSERT_EQ(live.exit_code, 0) << live.err;
  auto lj = nlohmann::json::parse(live.out);
  EXPECT_EQ(lj["source"], "daemon");
  ASSERT_EQ(lj["paths"].size(), 2u) << live.out;
  for (const auto& p : lj["paths"]) {
    EXPECT_EQ(p["state"], "up") << p.dump();
    EXPECT_EQ(p["live"], true) << p.dump();
    EXPECT_EQ(p["peer_site"], "branch");
    EXPECT_TRUE(p["score"].is_number()) << p.dump();
    EXPECT_TRUE(p["latency_ms"].is_number()) << p.dump();
    EXPECT_GT(p["samples"].get<int>(), 0);
    EXPECT_TRUE(p["tunnel"].is_null());  // no transport in this daemon
    EXPECT_TRUE(p["id"].is_number_unsigned());
  }
  live = run({test::bin_dir() + "/patronus", "status", "--socket", sock, "--json"});
  ASSERT_EQ(live.exit_code, 0) << live.err;
  lj = nlohmann::json::parse(live.out);
  EXPECT_EQ(lj["site"], "hq");
  EXPECT_EQ(lj["paths_up"], 2);
  EXPECT_EQ(lj["remote_sites"], 1);
  EXPECT_GT(lj["pid"].get<std::int64_t>(), 0);
  ASSERT_FALSE(lj["selections"].empty());
  for (const auto& s : lj["selections"]) EXPECT_NE(s["path_id"], 0) << s.dump();
  EXPECT_GT(lj["counters"]["runtime.samples"].get<std::uint64_t>(), 0u);
  live = run({test::bin_dir() + "/patronus", "status", "--socket", sock, "--verbose"});
  ASSERT_EQ(live.exit_code, 0) << live.err;
  EXPECT_NE(live.out.find("2 up"), std::string::npos) << live.out;
  EXPECT_NE(live.out.find("scoring"), std::string::npos) << live.out;
  live = run({test::bin_dir() + "/patronus", "decisions", "--socket", sock, "--json"});
  ASSERT_EQ(live.exit_code, 0) << live.err;
  lj = nlohmann::json::parse(live.out);
  ASSERT_FALSE(lj["decisions"].empty());
  EXPECT_EQ(lj["decisions"].back()["reason"], "initial");
  live = run({test::bin_dir() + "/patronus", "flows", "list", "--socket", sock, "--json"});
  ASSERT_EQ(live.exit_code, 0) << live.err;
  EXPECT_EQ(nlohmann::json::parse(live.out)["total"], 0);  // nothing sent traffic through it
  // A second daemon for the same site is refused by the site's lock, naming the first; one with
  // its own state but the same socket is refused by the socket. The first keeps both.
  live = run({test::bin_dir() + "/patronusd", "--config", dir.file("hq.yaml"), "--run-for", "1"});
  EXPECT_EQ(live.exit_code, 1);
  EXPECT_NE(live.err.find("another patronusd runs with this state"), std::string::npos) << live.err;
  std::string other_state = test::read_file(dir.file("hq.yaml"));
  other_state.replace(other_state.find("state_db: hq.db"), 15, "state_db: hq2.db");
  test::write_file(dir.file("hq2.yaml"), other_state);
  live = run({test::bin_dir() + "/patronusd", "--config", dir.file("hq2.yaml"), "--run-for", "1"});
  EXPECT_EQ(live.exit_code, 1);
  EXPECT_NE(live.err.find("another process is listening"), std::string::npos) << live.err;
  EXPECT_EQ(run({test::bin_dir() + "/patronus", "status", "--socket", sock}).exit_code, 0);

  // Kill branch outright: nothing answers hq's probes any more.
  kill(branch.pid, SIGKILL);
  waitpid(branch.pid, nullptr, 0);
  branch.pid = -1;
  ASSERT_TRUE(wait_for(dir.file("hq.db"), [](store::Store& s) {
    return has_decision(s, "decision.no-path");
  })) << test::read_file(dir.file("hq.log"));
  kill(hq.pid, SIGTERM);
  int status = 0;
  waitpid(hq.pid, &status, 0);
  hq.pid = -1;
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  // A clean stop removes the socket; asking then says nobody is there and how to read offline.
  EXPECT_NE(::stat(sock.c_str(), &st), 0);
  live = run({test::bin_dir() + "/patronus", "status", "--socket", sock});
  EXPECT_EQ(live.exit_code, 1);
  EXPECT_NE(live.err.find("no control socket at " + sock), std::string::npos) << live.err;
  EXPECT_NE(live.err.find("--db"), std::string::npos) << live.err;

  // Every decision: how many there are depends on timing (a second path may win while settling and
  // then fail too), and the default limit (20) can leave the first ones out.
  auto r = run({test::bin_dir() + "/patronus", "decisions", "--db", dir.file("hq.db"), "--limit",
                "1000", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["source"], "database");
  bool saw_down = false, saw_initial = false;
  for (const auto& x : j["decisions"]) {
    if (x["reason"] == "no-path" && x["class_name"] == "voice") {
      saw_down = true;
      EXPECT_NE(x["why"].get<std::string>().find("down"), std::string::npos) << x.dump();
      EXPECT_GT(x["fault_age_ms"].get<double>(), 0);
      EXPECT_EQ(x["to_path_id"], 0);
    }
    if (x["reason"] == "initial" && x["class_name"] == "voice") saw_initial = true;
  }
  EXPECT_TRUE(saw_initial) << r.out;
  EXPECT_TRUE(saw_down) << r.out;
  r = run({test::bin_dir() + "/patronus", "paths", "list", "--db", dir.file("hq.db"), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto paths = nlohmann::json::parse(r.out)["paths"];
  ASSERT_EQ(paths.size(), 2u);
  for (const auto& p : paths) {
    EXPECT_EQ(p["state"], "down") << p.dump();
    EXPECT_TRUE(p["live"].is_null()) << "the database does not keep liveness: " << p.dump();
    EXPECT_GT(p["samples"].get<int>(), 0);
  }
  // The probes were authenticated and nothing was refused.
  const std::string log = test::read_file(dir.file("hq.log"));
  EXPECT_NE(log.find("\"bad_tag\":0"), std::string::npos) << log;
}

TEST(DaemonRuntime, RuntimeConfigErrorsNameTheField) {
  test::TempDir dir;
  const std::string base = "site: hq\nstate_db: hq.db\nplugin_dir: " + test::plugin_dir() +
                           "\nplugins:\n  - plugin: probes\n    name: probe\n  - plugin: scoring\n";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"runtime:\n  sites_file: s.yaml\n  keys_dir: k\n  probe: nope\n  scorer: scoring\n",
       "runtime.probe: no plugin instance 'nope'"},
      {"runtime:\n  sites_file: s.yaml\n  keys_dir: k\n  probe: probe\n  scorer: scoring\n"
       "  tick_ms: 0\n",
       "runtime.tick_ms"},
      {"runtime:\n  sites_file: s.yaml\n  keys_dir: k\n  probe: probe\n  scorer: scoring\n"
       "  classes: {classes: [{name: Bad}]}\n",
       "classes[0].name"},
      {"runtime:\n  sites_file: missing.yaml\n  keys_dir: k\n  probe: probe\n  scorer: scoring\n",
       "missing.yaml"},
      {"runtime:\n  keys_dir: k\n  probe: probe\n  scorer: scoring\n", "sites_file"},
  };
  for (const auto& [rt, needle] : cases) {
    test::write_file(dir.file("d.yaml"), base + rt);
    auto r = run({test::bin_dir() + "/patronusd", "--config", dir.file("d.yaml")});
    EXPECT_EQ(r.exit_code, 2) << rt;
    EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
  }
}

// A sites file that gives this site an address the host does not have is accepted (it may come
// up later) but said at start: every probe from it would fail.
TEST(DaemonRuntime, AnOwnAddressTheHostDoesNotHaveIsWarnedAbout) {
  test::TempDir dir;
  test::write_file(dir.file("sites.yaml"),
                   "sites:\n"
                   "  - name: hq\n    subnets: [192.168.10.0/24]\n    endpoints:\n"
                   "      - {name: wan0, address: 127.0.0.1:51820, type: wan}\n"
                   "      - {name: wan1, address: 192.0.2.77:51820, type: wan}\n"
                   "  - name: branch\n    subnets: [192.168.20.0/24]\n    endpoints:\n"
                   "      - {name: wan0, address: 127.0.0.2:51820, type: wan}\n");
  auto plan = run({test::bin_dir() + "/patronus", "mesh", "plan", "--sites", dir.file("sites.yaml"),
                   "--keys-dir", dir.file("keys")});
  ASSERT_EQ(plan.exit_code, 0) << plan.err;
  test::write_file(dir.file("hq.yaml"), site_config("hq", std::to_string(test::free_udp_port())));
  auto r =
      run({test::bin_dir() + "/patronusd", "--config", dir.file("hq.yaml"), "--run-for", "0.3"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("endpoint hq/wan1: 192.0.2.77 is not an address of this host: every probe "
                       "from it fails"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(r.err.find("endpoint hq/wan0:"), std::string::npos) << "127.0.0.1 is local";
}

TEST(Cli, ScoreRunsTheScorerPlugins) {
  auto r = run({test::bin_dir() + "/patronus", "score", "--latency", "50", "--jitter", "5",
                "--loss", "0.1", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_DOUBLE_EQ(j["score"].get<double>(), 85.0);
  EXPECT_EQ(j["state"], "up");
  r = run({test::bin_dir() + "/patronus", "score", "--latency", "50", "--jitter", "5", "--loss",
           "0.1", "--bandwidth", "500", "--json"});
  EXPECT_DOUBLE_EQ(nlohmann::json::parse(r.out)["score"].get<double>(), 80.0);
  r = run({test::bin_dir() + "/patronus", "score", "--latency", "200", "--jitter", "50", "--loss",
           "5", "--json"});
  EXPECT_EQ(nlohmann::json::parse(r.out)["state"], "down");
  r = run({test::bin_dir() + "/patronus", "score", "--latency", "50", "--jitter", "5", "--loss",
           "0.1", "--scorer", "emodel", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  j = nlohmann::json::parse(r.out);
  EXPECT_GT(j["score"].get<double>(), 90.0);
  EXPECT_EQ(j["state"], "up");
  r = run({test::bin_dir() + "/patronus", "score", "--latency", "400", "--jitter", "40", "--loss",
           "20", "--scorer", "emodel", "--json"});
  EXPECT_EQ(nlohmann::json::parse(r.out)["state"], "down") << r.out;
  // Bad input: named, non-zero.
  r = run(
      {test::bin_dir() + "/patronus", "score", "--latency", "-1", "--jitter", "5", "--loss", "0"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--latency"), std::string::npos);
  r = run({test::bin_dir() + "/patronus", "score", "--latency", "1", "--jitter", "5", "--loss", "0",
           "--scorer", "probes"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("not a scorer"), std::string::npos) << r.err;
  r = run({test::bin_dir() + "/patronus", "score", "--latency", "1", "--jitter", "5", "--loss", "0",
           "--config", "latency_weight: -3"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("weights must be finite"), std::string::npos) << r.err;
}

}  // namespace

TEST(DaemonRuntime, KernelWireGuardWhereTheKernelHasNoneIsAClearStartError) {
  if (::access("/sys/module/wireguard", F_OK) == 0) GTEST_SKIP() << "this kernel has WireGuard";
  test::TempDir dir;
  test::write_file(
      dir.file("d.yaml"),
      "site: hq\nstate_db: hq.db\ncontrol_socket: none\nplugin_dir: " + test::plugin_dir() +
          "\nplugins:\n  - plugin: wireguard\n    name: wg\n"
          "    config: {backend: kernel, keys_dir: keys}\n");
  auto r = run({test::bin_dir() + "/patronusd", "--config", dir.file("d.yaml"), "--run-for", "1"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("backend: kernel: this kernel has no WireGuard"), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("use backend: userspace"), std::string::npos) << r.err;
}

namespace {

// `site`'s own paths in its database (the plan saved there has every site's): n of them, all up.
bool all_up(store::Store& s, const std::string& site, std::size_t n) {
  auto p = s.list_paths();
  if (!p.is_ok()) return false;
  std::size_t own = 0;
  for (const auto& r : p.value()) {
    if (r.src_site != site && r.dst_site != site) continue;
    ++own;
    if (r.status != model::PathStatus::kUp) return false;
  }
  return own == n;
}

// Growing the mesh: a third site added to the sites file joins two running daemons on SIGHUP.
// Its paths come up; the paths they had never go down and their classes do not move (a re-plan
// used to answer "a new path needs a restart").
TEST(DaemonRuntime, ASiteAddedToTheSitesFileJoinsRunningDaemonsOnSighup) {
  test::TempDir dir;
  const std::string port = std::to_string(test::free_udp_port());
  const std::string two =
      "sites:\n"
      "  - name: hq\n    subnets: [192.168.10.0/24]\n    endpoints:\n"
      "      - {name: wan0, address: 127.0.0.1:51820, type: wan}\n"
      "      - {name: wan1, address: 127.0.0.3:51820, type: wan}\n"
      "  - name: branch\n    subnets: [192.168.20.0/24]\n    endpoints:\n"
      "      - {name: wan0, address: 127.0.0.2:51820, type: wan}\n";
  test::write_file(dir.file("sites.yaml"), two);
  auto plan = run({test::bin_dir() + "/patronus", "mesh", "plan", "--sites", dir.file("sites.yaml"),
                   "--keys-dir", dir.file("keys")});
  ASSERT_EQ(plan.exit_code, 0) << plan.err;
  for (const std::string site : {"hq", "branch", "c"}) {
    test::write_file(dir.file(site + ".yaml"), site_config(site, port));
  }
  Child hq, branch, c;
  hq.pid = spawn(dir.file("hq.yaml"), dir.file("hq.log"));
  branch.pid = spawn(dir.file("branch.yaml"), dir.file("branch.log"));
  ASSERT_TRUE(wait_for(dir.file("hq.db"), [](store::Store& s) { return all_up(s, "hq", 2); }))
      << test::read_file(dir.file("hq.log"));

  ASSERT_TRUE(
      wait_for(dir.file("branch.db"), [](store::Store& s) { return all_up(s, "branch", 2); }));
  // Past the start-up settling (a path's first verdicts can flap; a separate defect).
  std::this_thread::sleep_for(std::chrono::seconds(5));
  // The operator adds c to the sites file (its key made as for the others), starts it and
  // signals the running daemons.
  test::write_file(dir.file("sites.yaml"),
                   two +
                       "  - name: c\n    subnets: [192.168.30.0/24]\n    endpoints:\n"
                       "      - {name: wan0, address: 127.0.0.4:51820, type: wan}\n");
  plan = run({test::bin_dir() + "/patronus", "mesh", "plan", "--sites", dir.file("sites.yaml"),
              "--keys-dir", dir.file("keys")});
  ASSERT_EQ(plan.exit_code, 0) << plan.err;
  c.pid = spawn(dir.file("c.yaml"), dir.file("c.log"));
  kill(hq.pid, SIGHUP);
  kill(branch.pid, SIGHUP);
  ASSERT_TRUE(wait_for(dir.file("hq.db"), [](store::Store& s) { return all_up(s, "hq", 4); }))
      << test::read_file(dir.file("hq.log"));
  ASSERT_TRUE(wait_for(dir.file("branch.db"), [](store::Store& s) {
    return all_up(s, "branch", 3);
  })) << test::read_file(dir.file("branch.log"));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));

  for (const std::string site : {"hq", "branch"}) {
    const std::string log = test::read_file(dir.file(site + ".log"));
    const auto replanned = log.find("reloaded (SIGHUP): 1 site(s) and ");
    ASSERT_NE(replanned, std::string::npos) << log;
    EXPECT_NE(log.find("0 removed, 0 with new keys", replanned), std::string::npos) << log;
    // After the re-plan nothing that existed went down or moved.
    std::size_t at = replanned;
    while ((at = log.find('\n', at + 1)) != std::string::npos) {
      const std::string line = log.substr(at + 1, log.find('\n', at + 1) - at - 1);
      const bool old_path = site == "hq" ? line.find("~branch:") != std::string::npos
                                         : line.find("~hq:") != std::string::npos;
      EXPECT_FALSE(old_path && line.find(" is down") != std::string::npos) << line;
      // A balanced class's set completes about 10 s after start whatever else happens (its
      // second path's eligibility hold): not a move of anything the re-plan touched.
      if (line.find(": rebalance: ") != std::string::npos) continue;
      EXPECT_EQ(line.find(site == "hq" ? "-> branch:" : "-> hq:"), std::string::npos) << line;
    }
  }
  auto live =
      run({test::bin_dir() + "/patronus", "status", "--socket", dir.file("hq.sock"), "--json"});
  ASSERT_EQ(live.exit_code, 0) << live.err;
  const auto lj = nlohmann::json::parse(live.out);
  EXPECT_EQ(lj["remote_sites"], 2);
  // The status names the config applied: the reload's, as its log line says.
  const std::string hash = lj["config_hash"];
  ASSERT_EQ(hash.size(), 64u) << live.out;
  EXPECT_NE(
      test::read_file(dir.file("hq.log")).find("0 with new keys, config " + hash.substr(0, 12)),
      std::string::npos)
      << hash;
  // Every path is live (answering its probes). Its score is not asserted here: the new paths'
  // windows still hold the probes hq sent before c's daemon answered (real losses), so for the
  // first 10 s their score may be anything.
  auto pl = run(
      {test::bin_dir() + "/patronus", "paths", "list", "--socket", dir.file("hq.sock"), "--json"});
  ASSERT_EQ(pl.exit_code, 0) << pl.err;
  const auto pj = nlohmann::json::parse(pl.out);
  ASSERT_EQ(pj["paths"].size(), 4u) << pl.out;
  for (const auto& p : pj["paths"]) EXPECT_EQ(p["live"], true) << p.dump();

  // The offline views say what the live ones say: the site's own paths, named from its side
  // (the database holds every site's paths, each once), and its remote sites.
  for (const std::string site : {"hq", "branch"}) {
    const std::string cli = test::bin_dir() + "/patronus";
    auto on = run({cli, "paths", "list", "--socket", dir.file(site + ".sock"), "--json"});
    auto off = run({cli, "paths", "list", "--db", dir.file(site + ".db"), "--json"});
    ASSERT_EQ(on.exit_code, 0) << on.err;
    ASSERT_EQ(off.exit_code, 0) << off.err;
    std::set<std::string> on_names, off_names;
    const auto on_json = nlohmann::json::parse(on.out), off_json = nlohmann::json::parse(off.out);
    for (const auto& p : on_json["paths"]) on_names.insert(p["name"]);
    for (const auto& p : off_json["paths"]) {
      off_names.insert(p["name"]);
      EXPECT_NE(p["peer_site"], site) << off.out;
    }
    EXPECT_EQ(on_names, off_names) << on.out << "\n" << off.out;
    auto st = run({cli, "status", "--db", dir.file(site + ".db"), "--json"});
    ASSERT_EQ(st.exit_code, 0) << st.err;
    const auto sj = nlohmann::json::parse(st.out);
    EXPECT_EQ(sj["site"], site);
    EXPECT_EQ(sj["remote_sites"], 2) << st.out;
    // Its own paths only (the database holds the whole mesh's 5).
    EXPECT_EQ(
        sj["paths_up"].get<int>() + sj["paths_degraded"].get<int>() + sj["paths_down"].get<int>(),
        site == "hq" ? 4 : 3)
        << st.out;
  }

  // A probe setting changed: the probe instance alone restarts with it and every path stays up.
  test::write_file(dir.file("hq.yaml"),
                   std::regex_replace(site_config("hq", port), std::regex("detect_multiplier: 3"),
                                      "detect_multiplier: 4"));
  ASSERT_EQ(kill(hq.pid, SIGHUP), 0);
  bool restarted = false;
  for (int i = 0; i < 100 && !restarted; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    restarted =
        test::read_file(dir.file("hq.log")).find("restarted [\"probe\"]") != std::string::npos;
  }
  ASSERT_TRUE(restarted) << test::read_file(dir.file("hq.log"));
  // The restarted probe watches every path again: samples keep arriving (4 paths at the idle
  // 100 ms: about 40 a second), and no path goes down.
  auto samples = [&] {
    auto st =
        run({test::bin_dir() + "/patronus", "status", "--socket", dir.file("hq.sock"), "--json"});
    EXPECT_EQ(st.exit_code, 0) << st.err;
    return st.exit_code == 0
               ? nlohmann::json::parse(st.out)["counters"]["runtime.samples"].get<std::int64_t>()
               : 0;
  };
  const std::int64_t before_wait = samples();
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  EXPECT_GE(samples() - before_wait, 20) << "the restarted probe no longer probes the paths";
  {
    const std::string log = test::read_file(dir.file("hq.log"));
    const auto at = log.find("restarted [\"probe\"]");
    EXPECT_EQ(log.find(" is down", at), std::string::npos) << log.substr(at);
  }

  // A daemon-level setting read once at start is refused by name, not called "unchanged".
  test::write_file(dir.file("hq.yaml"),
                   std::regex_replace(site_config("hq", port), std::regex("flush_interval_ms: 100"),
                                      "flush_interval_ms: 250"));
  ASSERT_EQ(kill(hq.pid, SIGHUP), 0);
  bool named = false;
  for (int i = 0; i < 100 && !named; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    named = test::read_file(dir.file("hq.log"))
                .find("refused, nothing changed: flush_interval_ms: changes with a restart") !=
            std::string::npos;
  }
  EXPECT_TRUE(named) << test::read_file(dir.file("hq.log"));

  // A reload that changes what needs a restart (here the tick) is refused before the new plan
  // is made, so the site the same file adds does not reach the state database either.
  test::write_file(dir.file("sites.yaml"),
                   test::read_file(dir.file("sites.yaml")) +
                       "  - name: d\n    subnets: [192.168.40.0/24]\n    endpoints:\n"
                       "      - {name: wan0, address: 127.0.0.5:51820, type: wan}\n");
  ASSERT_EQ(run({test::bin_dir() + "/patronus", "mesh", "plan", "--sites", dir.file("sites.yaml"),
                 "--keys-dir", dir.file("keys")})
                .exit_code,
            0);
  test::write_file(dir.file("hq.yaml"), site_config("hq", port) + "  tick_ms: 50\n");
  ASSERT_EQ(kill(hq.pid, SIGHUP), 0);
  bool refused = false;
  for (int i = 0; i < 100 && !refused; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    refused = test::read_file(dir.file("hq.log"))
                  .find(
                      "reload (SIGHUP) refused, nothing changed: runtime: modified: tick_ms: "
                      "100 -> 50") != std::string::npos;
  }
  ASSERT_TRUE(refused) << test::read_file(dir.file("hq.log"));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // a flush
  auto sites = run({test::bin_dir() + "/patronus", "site", "--db", dir.file("hq.db"), "list"});
  ASSERT_EQ(sites.exit_code, 0) << sites.err;
  EXPECT_EQ(sites.out.find("\nd "), std::string::npos) << sites.out;
  auto events = run({test::bin_dir() + "/patronus", "events", "--db", dir.file("hq.db"), "--json"});
  EXPECT_NE(events.out.find("daemon.reload_refused"), std::string::npos) << events.out;
  EXPECT_NE(events.out.find("tick_ms: 100 -> 50"), std::string::npos) << "the reason is stored";
}

}  // namespace

namespace {

// Two sites on loopback, neither key in the file (they come from keys_dir).
std::string hq_and_branch() {
  return "sites:\n"
         "  - name: hq\n    subnets: [192.168.10.0/24]\n    endpoints:\n"
         "      - {name: wan0, address: 127.0.0.1:51820, type: wan}\n"
         "  - name: branch\n    subnets: [192.168.20.0/24]\n    endpoints:\n"
         "      - {name: wan0, address: 127.0.0.2:51820, type: wan}\n";
}

// `patronusd --check`: everything a start would refuse is refused the same way (exit 2), and a
// valid configuration is said to be so, with nothing opened, created or written.
TEST(DaemonRuntime, CheckValidatesWithoutTouchingAnything) {
  test::TempDir dir;
  test::write_file(dir.file("sites.yaml"),
                   "sites:\n"
                   "  - name: hq\n    subnets: [192.168.10.0/24]\n    endpoints:\n"
                   "      - {name: wan0, address: 127.0.0.1:51820, type: wan}\n"
                   "  - name: branch\n    subnets: [192.168.20.0/24]\n    endpoints:\n"
                   "      - {name: wan0, address: 127.0.0.2:51820, type: wan,\n"
                   "         public_key: 'HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw='}\n");
  const std::string port = std::to_string(test::free_udp_port());
  test::write_file(dir.file("hq.yaml"), site_config("hq", port));
  const std::string daemon = test::bin_dir() + "/patronusd";
  auto ok = run({daemon, "--config", dir.file("hq.yaml"), "--check"});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_NE(ok.out.find("valid: 3 plugin instance(s) loaded and configured, site 'hq' with 1 "
                        "endpoint(s) in a full-mesh of 2 site(s)"),
            std::string::npos)
      << ok.out;
  for (const char* made : {"hq.db", "hq.db.lock", "hq.sock", "keys"}) {
    EXPECT_FALSE(test::file_exists(dir.file(made))) << made << " was created by --check";
  }
  // A site the sites file does not have; a class config that does not parse: exit 2, named.
  test::write_file(dir.file("x.yaml"), site_config("nowhere", port));
  auto bad = run({daemon, "--config", dir.file("x.yaml"), "--check"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("site 'nowhere' is not in"), std::string::npos) << bad.err;
  test::write_file(dir.file("c.yaml"), site_config("hq", port) +
                                           "  classes: {classes: [{name: voice, priority: "
                                           "urgent}]}\n");
  bad = run({daemon, "--config", dir.file("c.yaml"), "--check"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("runtime.classes"), std::string::npos) << bad.err;
  // A peer whose public key is nowhere: --check says so, and a start refuses it the same way
  // before it opens or writes anything (it used to create the database, the lock and the keys).
  test::write_file(dir.file("sites.yaml"), hq_and_branch());
  for (const bool check : {true, false}) {
    std::vector<std::string> argv = {daemon, "--config", dir.file("hq.yaml")};
    argv.push_back(check ? "--check" : "--run-for=1");
    bad = run(argv);
    EXPECT_EQ(bad.exit_code, 2) << bad.err;
    EXPECT_NE(bad.err.find("branch/wan0 has no public_key, and runtime.keys_dir"),
              std::string::npos)
        << bad.err;
  }
  for (const char* made : {"hq.db", "hq.db.lock", "hq.sock", "keys"}) {
    EXPECT_FALSE(test::file_exists(dir.file(made))) << made << " was created";
  }
}

// Keys a start would refuse are refused by --check too, with the reason, before anything is
// opened: this site's own key readable by others ("exposed"), and a peer's key in keys_dir that
// is refused is not reported as missing (it was "no key for it" before).
TEST(DaemonRuntime, CheckRefusesKeysAStartWouldRefuseAndSaysWhy) {
  test::TempDir dir;
  test::write_file(dir.file("sites.yaml"), hq_and_branch());
  auto plan = run({test::bin_dir() + "/patronus", "mesh", "plan", "--sites", dir.file("sites.yaml"),
                   "--keys-dir", dir.file("keys")});
  ASSERT_EQ(plan.exit_code, 0) << plan.err;
  const std::string port = std::to_string(test::free_udp_port());
  test::write_file(dir.file("hq.yaml"), site_config("hq", port));
  const std::string daemon = test::bin_dir() + "/patronusd";
  ASSERT_EQ(run({daemon, "--config", dir.file("hq.yaml"), "--check"}).exit_code, 0);
  ASSERT_EQ(::chmod(dir.file("keys/hq/wan0.key").c_str(), 0644), 0);
  auto bad = run({daemon, "--config", dir.file("hq.yaml"), "--check"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("exposed"), std::string::npos) << bad.err;
  bad = run({daemon, "--config", dir.file("hq.yaml"), "--run-for=1"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("exposed"), std::string::npos) << bad.err;
  for (const char* made : {"hq.db", "hq.db.lock", "hq.sock"}) {
    EXPECT_FALSE(test::file_exists(dir.file(made))) << made << " was created";
  }
  ASSERT_EQ(::chmod(dir.file("keys/hq/wan0.key").c_str(), 0600), 0);
  ASSERT_EQ(::chmod(dir.file("keys/branch/wan0.key").c_str(), 0644), 0);
  bad = run({daemon, "--config", dir.file("hq.yaml"), "--check"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("branch/wan0 has no public_key, and runtime.keys_dir's key for it was "
                         "refused"),
            std::string::npos)
      << bad.err;
  EXPECT_NE(bad.err.find("exposed"), std::string::npos) << bad.err;
}

}  // namespace
