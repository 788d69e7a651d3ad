// Interop with FRR's bfdd (root, CI): our BFD plugin (loaded by a host in one namespace, on real
// sockets) against bfdd (frr 8.4, standalone in another namespace), one veth between them, 50 ms x
// 3 on both ends. The session comes Up on both; a cut link is Down on both within the detection
// time with diagnostic 1; the restored link comes back Up; FRR's intervals changed at run time
// (its poll) give our end the new detection time. Namespaces and bfdd are removed even when a
// check fails. Skipped, saying why, without root or without FRR.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <condition_variable>
#include <ctime>
#include <fstream>
#include <future>
#include <iomanip>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "netns.hpp"
#include "patronus/core/config_schema.hpp"
#include "patronus/core/plugin_host.hpp"
#include "patronus/core/router.hpp"
#include "patronus/env/asio_env.hpp"
#include "test_support.hpp"

namespace {

using namespace patronus;
using J = nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr const char* kBfdd = "/usr/lib/frr/bfdd";

std::int64_t wall_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

// bfdd, daemonised in a namespace; killed (by its pid file) on destruction.
class Bfdd {
 public:
  Bfdd(const std::string& ns, const std::string& dir, const std::string& conf) : dir_(dir) {
    // State changes go to a log with microsecond (local wall-clock) timestamps.
    std::ofstream(dir + "/bfdd.conf") << "log file " << dir
                                      << "/bfdd.log debugging\nlog timestamp precision 6\n"
                                         "debug bfd peer\n"
                                      << conf;
    test::run({"chown", "-R", "frr:frr", dir});
    auto r = test::run({"ip",           "netns",
                        "exec",         ns,
                        kBfdd,          "-d",
                        "-f",           dir + "/bfdd.conf",
                        "--vty_socket", dir,
                        "-i",           dir + "/bfdd.pid",
                        "--bfdctl",     dir + "/bfdd.sock",
                        "-z",           dir + "/zserv.api",
                        "-A",           "127.0.0.1",
                        "-P",           "0"});
    started_ = r.exit_code == 0;
    error_ = r.out + r.err;
  }
  ~Bfdd() {
    const auto text = test::read_file(dir_ + "/bfdd.pid");
    if (text.empty()) return;
    const pid_t pid = std::stoi(text);
    ::kill(pid, SIGTERM);
    // Gone before the namespace and the directory are (it is not our child: poll).
    for (int i = 0; i < 200 && ::kill(pid, 0) == 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ::kill(pid, SIGKILL);
  }
  bool started() const { return started_; }
  const std::string& error() const { return error_; }
  // `show bfd peers json`, the one peer.
  J peer() const {
    auto r = test::run({"vtysh", "--vty_socket", dir_, "-d", "bfdd", "-c", "show bfd peers json"});
    if (r.exit_code != 0) return J{};
    auto j = J::parse(r.out, nullptr, false);
    return j.is_array() && !j.empty() ? j[0] : J{};
  }
  // The wall-clock time (ns since the epoch) and line of the last state change the log holds that
  // contains `what` (e.g. "up -> down"); 0 when none.
  std::pair<std::int64_t, std::string> last_change(const std::string& what) const {
    std::istringstream log(test::read_file(dir_ + "/bfdd.log"));
    std::pair<std::int64_t, std::string> found{0, ""};
    for (std::string line; std::getline(log, line);) {
      if (line.find("state-change") == std::string::npos || line.find(what) == std::string::npos) {
        continue;
      }
      std::tm tm{};  // "2026/11/22 07:46:29.807985 BFD: ..."
      std::istringstream in(line);
      in >> std::get_time(&tm, "%Y/%m/%d %H:%M:%S");
      char dot = 0;
      long us = 0;
      in >> dot >> us;
      if (in.fail() || dot != '.') continue;
      tm.tm_isdst = -1;
      found = {std::int64_t{std::mktime(&tm)} * 1'000'000'000 + std::int64_t{us} * 1000, line};
    }
    return found;
  }
  bool vtysh(const std::vector<std::string>& commands) const {
    std::vector<std::string> argv = {"vtysh", "--vty_socket", dir_, "-d", "bfdd"};
    for (const auto& c : commands) {
      argv.push_back("-c");
      argv.push_back(c);
    }
    return test::run(argv).exit_code == 0;
  }

 private:
  std::string dir_;
  bool started_ = false;
  std::string error_;
};

struct Report {
  std::int64_t at_ns;
  patronus_path_liveness l;
};

// The plugin's host: an AsioEnv on a thread that lives in the namespace `ns`.
class Host : public core::RouterObserver {
 public:
  Host(const std::string& ns, std::shared_ptr<const core::PluginLibrary> lib, std::string config)
      : thread_([this, ns, lib, config] { run(ns, lib, config); }) {
    std::unique_lock<std::mutex> g(mu_);
    cv_.wait(g, [&] { return ready_; });
  }
  ~Host() {
    boost::asio::post(io_, [this] {
      if (router_) router_->stop();
      io_.stop();
    });
    thread_.join();
  }
  const std::string& error() const { return error_; }

  // Waits (real time, bounded) until pred holds over the reports so far.
  template <typename Pred>
  bool wait_for(Pred pred, std::chrono::milliseconds limit) {
    std::unique_lock<std::mutex> g(mu_);
    return cv_.wait_for(g, limit, [&] { return pred(reports_, sessions_); });
  }
  std::vector<Report> reports() {
    std::lock_guard<std::mutex> g(mu_);
    return reports_;
  }
  std::vector<J> sessions() {
    std::lock_guard<std::mutex> g(mu_);
    return sessions_;
  }
  J counters() {
    // The counters event comes from the plugin's thread; ask for it and wait.
    std::promise<void> done;
    boost::asio::post(io_, [this, &done] {
      router_->stop();
      done.set_value();
    });
    done.get_future().wait();
    std::lock_guard<std::mutex> g(mu_);
    return counters_;
  }

  void on_liveness(const std::string&, const patronus_path_liveness& l) override {
    std::lock_guard<std::mutex> g(mu_);
    reports_.push_back({now_ns(), l});
    cv_.notify_all();
  }
  void on_event(const std::string&, const std::string& type, const std::string& json) override {
    std::lock_guard<std::mutex> g(mu_);
    if (type == "bfd.session") sessions_.push_back(J::parse(json));
    if (type == "bfd.counters") counters_ = J::parse(json);
    cv_.notify_all();
  }

 private:
  void run(const std::string& ns, std::shared_ptr<const core::PluginLibrary> lib,
           const std::string& config) {
    const int fd = ::open(("/var/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || ::setns(fd, CLONE_NEWNET) != 0) {
      error_ = "setns " + ns + " failed";
    }
    if (fd >= 0) ::close(fd);
    env::AsioEnv env(io_, 7);
    if (error_.empty()) {
      router_ = std::make_unique<core::RouterInstance>(env, "a");
      router_->set_observer(this);
      auto s = router_->add_plugin(lib, "bfd", config);
      if (s.is_ok()) s = router_->start();
      patronus_path_desc d{};
      d.struct_size = sizeof d;
      d.path_id = 1;
      d.local = model::SocketAddress::parse("10.99.0.2:0").value().to_abi();
      d.remote = model::SocketAddress::parse("192.0.2.1:0").value().to_abi();  // a site far away
      if (s.is_ok()) s = router_->watch_path("bfd", d);
      if (!s.is_ok()) error_ = s.to_string();
    }
    {
      std::lock_guard<std::mutex> g(mu_);
      ready_ = true;
    }
    cv_.notify_all();
    if (error_.empty()) {
      auto guard = boost::asio::make_work_guard(io_);
      io_.run();
    }
    router_.reset();
  }

  boost::asio::io_context io_;
  std::unique_ptr<core::RouterInstance> router_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool ready_ = false;
  std::string error_;
  std::vector<Report> reports_;
  std::vector<J> sessions_;
  J counters_;
  std::thread thread_;
};

bool last_is(const std::vector<Report>& r, std::uint32_t state) {
  return !r.empty() && r.back().l.state == state;
}

TEST(BfdFrr, SessionUpCutDetectedRestoredAndFrrIntervalChangeApplied) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root for network namespaces (CI runs as root)";
  if (access(kBfdd, X_OK) != 0) {
    GTEST_SKIP() << kBfdd << " missing: install the Debian package frr (scripts/install-deps)";
  }
  const std::string tag = std::to_string(getpid());
  test::Netns ours("pbo" + tag), frr("pbf" + tag);
  ASSERT_TRUE(ours.ok() && frr.ok());
  const std::string va = "bo" + tag, vf = "bf" + tag;
  test::sh({"ip", "-n", ours.name(), "link", "add", va, "type", "veth", "peer", "name", vf, "netns",
            frr.name()});
  test::sh({"ip", "-n", ours.name(), "addr", "add", "10.99.0.2/24", "dev", va});
  test::sh({"ip", "-n", frr.name(), "addr", "add", "10.99.0.1/24", "dev", vf});
  for (const auto& [ns, dev] : {std::pair{ours.name(), va}, std::pair{frr.name(), vf}}) {
    test::sh({"ip", "-n", ns, "link", "set", "dev", dev, "up"});
    test::sh({"ip", "-n", ns, "link", "set", "dev", "lo", "up"});
  }
  test::TempDir dir;
  Bfdd bfdd(frr.name(), dir.path(),
            "bfd\n peer 10.99.0.2 local-address 10.99.0.1\n  receive-interval 50\n"
            "  transmit-interval 50\n  detect-multiplier 3\n  no shutdown\n !\n!\n");
  ASSERT_TRUE(bfdd.started()) << bfdd.error();

  core::PluginRegistry reg;
  auto lib = reg.load_file(test::plugin_dir() + "/libpatronus-bfd.so");
  ASSERT_TRUE(lib.is_ok()) << lib.status().to_string();
  auto cfg = lib.value()->schema()->text_to_bytes(
      "peers:\n  - {address: 10.99.0.1, local: 10.99.0.2, desired_min_tx_ms: 50,"
      " required_min_rx_ms: 50, detect_multiplier: 3}",
      "config");
  ASSERT_TRUE(cfg.is_ok()) << cfg.status().to_string();
  Host host(ours.name(), lib.value(), cfg.value());
  ASSERT_EQ(host.error(), "");

  // 1. Up on both ends, then 50 ms x 3 negotiated (FRR's poll answered, ours finalised).
  ASSERT_TRUE(host.wait_for([](const auto& r, const auto&) { return last_is(r, PATRONUS_PATH_UP); },
                            std::chrono::seconds(15)))
      << "our session never came up";
  auto settled = [&] {
    for (int i = 0; i < 100; ++i) {
      const J p = bfdd.peer();
      if (p.value("status", "") == "up" && p.value("remote-transmit-interval", 0) == 50) return p;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return bfdd.peer();
  };
  J p = settled();
  ASSERT_EQ(p.value("status", ""), "up") << p.dump();
  EXPECT_EQ(p["remote-receive-interval"], 50) << p.dump();
  EXPECT_EQ(p["remote-detect-multiplier"], 3);
  EXPECT_EQ(p["remote-echo-receive-interval"], 0) << "no echo";
  ASSERT_TRUE(host.wait_for(
      [](const auto&, const auto& s) {
        return !s.empty() && s.back()["state"] == "up" && s.back()["detect_time_ms"] == 150.0;
      },
      std::chrono::seconds(5)))
      << "detection time never reached 3 x 50 ms";
  // And it stays Up: two quiet seconds later neither end has been down once. (It flapped every
  // 180 ms when our transmit timer waited out FRR's 1 s pre-Up RequiredMinRx after FRR lowered
  // it to 50 ms on reaching Up.)
  std::this_thread::sleep_for(std::chrono::seconds(2));
  EXPECT_EQ(host.reports().size(), 1u) << "our end went down and up again before any cut";
  EXPECT_EQ(bfdd.last_change("up -> down").first, 0) << bfdd.last_change("up -> down").second;

  // 2. The link is cut: Down on both, diagnostic 1, within the detection time of the last packet.
  const std::int64_t cut_from = now_ns(), cut_from_wall = wall_ns();
  test::sh({"ip", "-n", ours.name(), "link", "set", "dev", va, "down"});
  const std::int64_t cut_done = now_ns();
  const std::int64_t cut_done_wall = wall_ns();
  // FRR's side, from its log: Down with "control-expired" by 150 ms after its last packet from
  // us, which left before the cut was done (plus 50 ms for its timers on a loaded machine).
  std::pair<std::int64_t, std::string> frr_down;
  for (int i = 0; i < 100 && frr_down.first == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    frr_down = bfdd.last_change("up -> down");
  }
  ASSERT_NE(frr_down.first, 0) << "FRR never logged the session going down";
  EXPECT_NE(frr_down.second.find("reason:control-expired"), std::string::npos) << frr_down.second;
  EXPECT_LT(frr_down.first - cut_done_wall, 150'000'000 + 50'000'000) << frr_down.second;
  EXPECT_EQ(bfdd.peer().value("diagnostic", ""), "control detection time expired");
  std::printf("frr: down %.1f ms after the cut began, %.1f ms after it was done (its log)\n",
              (frr_down.first - cut_from_wall) / 1e6, (frr_down.first - cut_done_wall) / 1e6);
  ASSERT_TRUE(
      host.wait_for([](const auto& r, const auto&) { return last_is(r, PATRONUS_PATH_DOWN); },
                    std::chrono::seconds(5)));
  const Report down = host.reports().back();
  EXPECT_EQ(down.l.diagnostic, PATRONUS_DIAG_DETECT_EXPIRED);
  EXPECT_EQ(down.l.detect_time_ns, 150'000'000);
  EXPECT_LE(down.l.last_rx_ns, cut_done) << "the last packet came before the cut";
  const std::int64_t after_last = down.at_ns - down.l.last_rx_ns;
  EXPECT_GE(after_last, 150'000'000);
  EXPECT_LT(after_last, 150'000'000 + 50'000'000) << "our detection timer fired late";
  std::printf("ours: down %.1f ms after the cut began, %.1f ms after the last packet\n",
              (down.at_ns - cut_from) / 1e6, after_last / 1e6);

  // 3. Restored: Up again on both.
  test::sh({"ip", "-n", ours.name(), "link", "set", "dev", va, "up"});
  ASSERT_TRUE(host.wait_for([](const auto& r, const auto&) { return last_is(r, PATRONUS_PATH_UP); },
                            std::chrono::seconds(15)))
      << "not up again after the link returned";
  EXPECT_EQ(settled().value("status", ""), "up");

  // 4. FRR slows its transmission to 200 ms at run time: its poll carries the new value, our
  // final answers it, and our detection time becomes 3 x max(50, 200) = 600 ms.
  ASSERT_TRUE(bfdd.vtysh({"configure terminal", "bfd", "peer 10.99.0.2 local-address 10.99.0.1",
                          "transmit-interval 200"}));
  ASSERT_TRUE(host.wait_for(
      [](const auto&, const auto& s) {
        return !s.empty() && s.back()["state"] == "up" && s.back()["detect_time_ms"] == 600.0;
      },
      std::chrono::seconds(5)))
      << "the new detection time was not applied: " << host.sessions().back().dump();
  EXPECT_EQ(host.sessions().back()["remote_desired_min_tx_ms"], 200.0);
  EXPECT_EQ(bfdd.peer().value("status", ""), "up") << "the session survived the change";
  const J c = host.counters();
  // FRR polled on reaching Up, again after the link returned, and for the change.
  EXPECT_GE(c["polls_received"].get<int>(), 3) << c.dump();
  EXPECT_GE(c["finals_received"].get<int>(), 1) << c.dump();
  EXPECT_EQ(c["discarded"]["ttl"], 0) << c.dump();
  EXPECT_EQ(c["discarded"]["unknown_discriminator"], 0) << c.dump();
}

}  // namespace
