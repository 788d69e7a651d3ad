// Network namespaces and wireguard-go for root tests (CI runs as root). Every name a test passes
// should carry its pid so that parallel runs do not collide; everything is removed by the
// destructors, also when a check fails.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "test_support.hpp"

namespace patronus::test {

class Netns {
 public:
  explicit Netns(std::string name) : name_(std::move(name)) {
    ok_ = run({"ip", "netns", "add", name_}).exit_code == 0;
  }
  ~Netns() {
    if (ok_) run({"ip", "netns", "del", name_});
  }
  Netns(const Netns&) = delete;
  Netns& operator=(const Netns&) = delete;
  bool ok() const { return ok_; }
  const std::string& name() const { return name_; }

 private:
  std::string name_;
  bool ok_ = false;
};

// wireguard-go in the foreground inside a namespace; stopped (and its socket removed) on exit.
class WireguardGo {
 public:
  WireguardGo(const std::string& ns, const std::string& ifname) : ifname_(ifname) {
    pid_ = fork();
    if (pid_ == 0) {
      const int devnull = open("/dev/null", O_RDWR);
      dup2(devnull, 0);
      dup2(devnull, 1);
      dup2(devnull, 2);
      execlp("ip", "ip", "netns", "exec", ns.c_str(), "wireguard-go", "-f", ifname.c_str(),
             static_cast<char*>(nullptr));
      _exit(127);
    }
  }
  ~WireguardGo() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      int status = 0;
      waitpid(pid_, &status, 0);
    }
    unlink(socket_path().c_str());
  }
  WireguardGo(const WireguardGo&) = delete;
  WireguardGo& operator=(const WireguardGo&) = delete;
  std::string socket_path() const { return "/var/run/wireguard/" + ifname_ + ".sock"; }

 private:
  std::string ifname_;
  pid_t pid_ = -1;
};

// wireguard-go creates the link before its UAPI socket: wait for both.
inline bool wait_for_wireguard(const std::string& ns, const std::string& ifname) {
  const std::string sock = "/var/run/wireguard/" + ifname + ".sock";
  for (int i = 0; i < 100; ++i) {
    if (run({"ip", "-n", ns, "link", "show", ifname}).exit_code == 0 &&
        access(sock.c_str(), F_OK) == 0) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

// The index of a device in a namespace (0 when there is none).
inline std::uint32_t ifindex(const std::string& ns, const std::string& dev) {
  auto r = run({"ip", "netns", "exec", ns, "cat", "/sys/class/net/" + dev + "/ifindex"});
  if (r.exit_code != 0) return 0;
  return static_cast<std::uint32_t>(std::stoul(r.out));
}

// The device the kernel of a namespace routes a packet to (`ip route get ARGS`), or
// "unreachable" when it has no route.
inline std::string route_device(const std::string& ns, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"ip", "-n", ns, "route", "get"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = run(argv);
  if (r.exit_code != 0) return "unreachable";
  const auto dev = r.out.find(" dev ");
  if (dev == std::string::npos) return r.out;
  return r.out.substr(dev + 5, r.out.find(' ', dev + 5) - dev - 5);
}

// A test that runs as root in a network namespace of its own, created before and removed after
// each test (skipped, saying why, when not root).
class NetnsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root for network namespaces (CI runs as root)";
    static int n = 0;
    ns_ = std::make_unique<Netns>("pt" + std::to_string(getpid()) + "x" + std::to_string(++n));
    ASSERT_TRUE(ns_->ok()) << "ip netns add " << ns_->name() << " failed";
  }
  const std::string& ns() const { return ns_->name(); }
  std::string ns_path() const { return "/var/run/netns/" + ns(); }
  // Veth pairs DEV / DEVp inside the namespace, both ends up.
  void add_veths(const std::vector<std::string>& devs);

 private:
  std::unique_ptr<Netns> ns_;
};

// Runs a command and fails the test (with its output) when it does not exit 0.
inline void sh(const std::vector<std::string>& argv) {
  auto r = run(argv);
  std::string cmd;
  for (const auto& a : argv) cmd += a + " ";
  ASSERT_EQ(r.exit_code, 0) << cmd << "\n" << r.out << r.err;
}

inline void NetnsTest::add_veths(const std::vector<std::string>& devs) {
  for (const auto& dev : devs) {
    sh({"ip", "-n", ns(), "link", "add", dev, "type", "veth", "peer", "name", dev + "p"});
    sh({"ip", "-n", ns(), "link", "set", dev, "up"});
    sh({"ip", "-n", ns(), "link", "set", dev + "p", "up"});
  }
}

}  // namespace patronus::test
