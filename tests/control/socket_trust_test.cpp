// Secrets go only to sockets of root or this user (security item 4): a listener run by another
// uid is refused before anything is written to it (SO_PEERCRED), by the check itself and by
// the VICI client that sends charon its PSKs; socket directories others can write are refused;
// the control socket's directory must be closed (or /tmp's sticky kind), and what ends up at its
// path is checked without following a link. Needs root to listen as another uid (CI is root).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <cstring>
#include <filesystem>
#include <string>

#include "patronus/env/asio_env.hpp"
#include "patronus/util/file.hpp"
#include "socket.hpp"
#include "vici_client.hpp"

namespace {

using namespace patronus;
constexpr uid_t kNobody = 65534;

std::string scratch(const std::string& tag) {
  std::string t = "/tmp/patronus-trust-" + tag + "-" + std::to_string(::getpid()) + "-XXXXXX";
  if (::mkdtemp(t.data()) == nullptr) return "";
  return t;
}

// A child that listens on `path` as `uid` until killed; returns its pid (0 on failure).
pid_t listen_as(uid_t uid, const std::string& path) {
  int ready[2];
  if (::pipe(ready) != 0) return 0;
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(ready[0]);
    if (::setgid(uid) != 0 || ::setuid(uid) != 0) ::_exit(1);
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::strncpy(sa.sun_path, path.c_str(), sizeof sa.sun_path - 1);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || ::listen(fd, 4) != 0) {
      ::_exit(2);
    }
    const char ok = 1;
    (void)!::write(ready[1], &ok, 1);
    for (;;) {
      const int c = ::accept(fd, nullptr, nullptr);
      if (c >= 0) ::close(c);
    }
  }
  ::close(ready[1]);
  char ok = 0;
  const bool up = ::read(ready[0], &ok, 1) == 1;
  ::close(ready[0]);
  if (!up) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return 0;
  }
  return pid;
}

struct Listener {
  pid_t pid = 0;
  ~Listener() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
};

int connect_to(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::strncpy(sa.sun_path, path.c_str(), sizeof sa.sun_path - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

TEST(SocketTrust, AListenerOfAnotherUidIsRefusedAndOneOfOursAccepted) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to listen as another uid";
  const std::string dir = scratch("peer");
  ASSERT_FALSE(dir.empty());
  ASSERT_EQ(::chown(dir.c_str(), kNobody, kNobody), 0);
  const std::string theirs = dir + "/theirs.sock";
  Listener l;
  l.pid = listen_as(kNobody, theirs);
  ASSERT_GT(l.pid, 0);
  const int fd = connect_to(theirs);
  ASSERT_GE(fd, 0);
  const Status st = peer_is_trusted(fd, theirs);
  ::close(fd);
  EXPECT_EQ(st.code(), Code::kFailedPrecondition);
  EXPECT_NE(st.message().find("uid 65534"), std::string::npos) << st.message();
  // The VICI client (what carries the PSKs to charon) refuses it before sending anything.
  auto vici = vici::BlockingClient::connect(theirs, std::chrono::milliseconds(1000));
  ASSERT_FALSE(vici.is_ok());
  EXPECT_NE(vici.status().message().find("no secret is sent"), std::string::npos);

  // Ours (root's): accepted.
  const std::string mine_dir = scratch("mine");
  const std::string mine = mine_dir + "/mine.sock";
  Listener m;
  m.pid = listen_as(0, mine);
  ASSERT_GT(m.pid, 0);
  const int fd2 = connect_to(mine);
  ASSERT_GE(fd2, 0);
  EXPECT_TRUE(peer_is_trusted(fd2, mine).is_ok());
  ::close(fd2);
  std::filesystem::remove_all(dir);
  std::filesystem::remove_all(mine_dir);
}

TEST(SocketTrust, ADirectoryOthersCanWriteIsRefusedUnlessStickyAndRoots) {
  const std::string dir = scratch("dir");
  ASSERT_FALSE(dir.empty());
  EXPECT_TRUE(closed_directory(dir).is_ok());
  ASSERT_EQ(::chmod(dir.c_str(), 0777), 0);
  const Status open = closed_directory(dir);
  EXPECT_EQ(open.code(), Code::kFailedPrecondition);
  EXPECT_NE(open.message().find("writable by group or others"), std::string::npos);
  EXPECT_FALSE(closed_directory(dir, /*sticky_ok=*/true).is_ok());  // not sticky
  if (::geteuid() == 0) {
    ASSERT_EQ(::chmod(dir.c_str(), 01777), 0);
    EXPECT_TRUE(closed_directory(dir, /*sticky_ok=*/true).is_ok());  // /tmp's kind
    EXPECT_FALSE(closed_directory(dir).is_ok());
  }
  const std::string link = dir + "-link";
  ASSERT_EQ(::symlink(dir.c_str(), link.c_str()), 0);
  EXPECT_EQ(closed_directory(link).code(), Code::kInvalidArgument);  // a symlink
  ::unlink(link.c_str());
  std::filesystem::remove_all(dir);
}

TEST(SocketTrust, TheControlSocketRefusesADirectoryOthersCanWrite) {
  boost::asio::io_context io;
  env::AsioEnv env(io, std::nullopt);
  const std::string dir = scratch("ctl");
  ASSERT_FALSE(dir.empty());
  ASSERT_EQ(::chmod(dir.c_str(), 0777), 0);
  auto refused = control::ControlServer::open_lines(
      env, dir + "/c.sock", [](const std::string& l) -> Result<std::string> { return l; });
  ASSERT_FALSE(refused.is_ok());
  EXPECT_NE(refused.status().message().find("its directory"), std::string::npos)
      << refused.status().message();
  EXPECT_FALSE(std::filesystem::exists(dir + "/c.sock"));
  ASSERT_EQ(::chmod(dir.c_str(), 0700), 0);
  auto ok = control::ControlServer::open_lines(
      env, dir + "/c.sock", [](const std::string& l) -> Result<std::string> { return l; });
  ASSERT_TRUE(ok.is_ok()) << ok.status().message();
  struct stat st {};
  ASSERT_EQ(::lstat((dir + "/c.sock").c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 077, 0u);
  ok.value().reset();
  std::filesystem::remove_all(dir);
}

}  // namespace
