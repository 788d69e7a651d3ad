#include "socket.hpp"

#include "patronus/util/file.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

namespace patronus::control {

namespace {

std::string errno_text(int e) {
  return std::strerror(e);
}

Result<sockaddr_un> unix_address(const std::string& path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.empty()) return invalid_argument("control socket: empty path");
  if (path.size() >= sizeof a.sun_path) {
    return invalid_argument("control socket " + path + ": longer than " +
                            std::to_string(sizeof a.sun_path - 1) +
                            " bytes (a unix socket's limit)");
  }
  std::memcpy(a.sun_path, path.data(), path.size());
  return a;
}

}  // namespace

struct ControlServer::Conn {
  int fd = -1;
  env::WatchId watch = 0;
  std::uint32_t events = 0;
  std::string in, out;
  std::int64_t last_ns = 0;
  bool closing = false;  // close once `out` is written
};

ControlServer::ControlServer(env::Env& env, std::string path, LineHandler handler,
                             ServerLimits limits)
    : env_(env), path_(std::move(path)), handler_(std::move(handler)), limits_(limits) {}

Result<std::unique_ptr<ControlServer>> ControlServer::open(env::Env& env, const std::string& path,
                                                           Handler handler, ServerLimits limits) {
  return open_lines(
      env, path,
      [h = std::move(handler)](const std::string& line) -> Result<std::string> {
        api::Request q;
        if (auto s = from_json(line, &q); !s.is_ok()) return s;
        return to_json(h(q));
      },
      limits);
}

Result<std::unique_ptr<ControlServer>> ControlServer::open_lines(env::Env& env,
                                                                 const std::string& path,
                                                                 LineHandler handler,
                                                                 ServerLimits limits) {
  auto addr = unix_address(path);
  if (!addr.is_ok()) return addr.status();
  const std::string where = "control socket " + path;
  // The directory: created (one level) when missing, so /run/patronus works on a fresh boot.
  // It must be ours (or root's) and writable by nobody else: another user who could write there
  // could swap the socket for a symlink between our bind and our checks.
  const auto dir = std::filesystem::path(path).parent_path();
  if (!dir.empty()) {
    std::error_code ec;
    if (!std::filesystem::is_directory(dir, ec)) {
      if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
        return unavailable(where + ": cannot create its directory " + dir.string() + ": " +
                           errno_text(errno));
      }
    }
    if (auto c = closed_directory(dir.string(), /*sticky_ok=*/true); !c.is_ok()) {
      return Status(c.code(), where + ": its directory " + c.message());
    }
  }
  // Something already there: a socket nobody accepts on is a dead daemon's and is replaced.
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return Status(Code::kFailedPrecondition, where + ": exists and is not a socket (left alone)");
    }
    const int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe < 0) return unavailable(where + ": socket: " + errno_text(errno));
    const bool live = ::connect(probe, reinterpret_cast<const sockaddr*>(&addr.value()),
                                sizeof(sockaddr_un)) == 0;
    ::close(probe);
    if (live) {
      return Status(Code::kFailedPrecondition,
                    where +
                        ": another process is listening on it (is another daemon already "
                        "running with this socket?)");
    }
    if (::unlink(path.c_str()) != 0) {
      return unavailable(where + ": cannot remove the stale socket: " + errno_text(errno));
    }
  }
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return unavailable(where + ": socket: " + errno_text(errno));
  // Owner-only from the moment the file exists: bind under a umask, then say it again with chmod.
  const mode_t old = ::umask(0177);
  const int b = ::bind(fd, reinterpret_cast<const sockaddr*>(&addr.value()), sizeof(sockaddr_un));
  const int bind_errno = errno;
  ::umask(old);
  if (b != 0) {
    ::close(fd);
    return unavailable(where + ": bind: " + errno_text(bind_errno));
  }
  // The umask made it 0600 as it was created; what is at the path now is checked without
  // following a link (no chmod by path, which would follow one).
  if (::listen(fd, 16) != 0 || ::lstat(path.c_str(), &st) != 0) {
    const int e = errno;
    ::close(fd);
    ::unlink(path.c_str());
    return unavailable(where + ": " + errno_text(e));
  }
  if (!S_ISSOCK(st.st_mode) || st.st_uid != ::geteuid() || (st.st_mode & 077) != 0) {
    ::close(fd);
    return Status(Code::kFailedPrecondition,
                  where + ": not the owner-only socket just made (replaced under us?)");
  }
  std::unique_ptr<ControlServer> s(new ControlServer(env, path, std::move(handler), limits));
  s->listen_fd_ = fd;
  s->inode_ = st.st_ino;
  auto* self = s.get();
  if (auto w = env.watch_fd(
          fd, env::kFdReadable, [self](std::uint32_t) { self->on_accept(); }, &s->listen_watch_);
      !w.is_ok()) {
    return Status(w.code(), where + ": " + w.message());  // the destructor closes and unlinks
  }
  s->sweep();
  return s;
}

ControlServer::~ControlServer() {
  if (sweep_timer_) env_.cancel(sweep_timer_);
  while (!conns_.empty()) close_conn(conns_.begin()->first);
  if (listen_watch_) (void)env_.unwatch_fd(listen_watch_);
  if (listen_fd_ >= 0) {
    ::close(listen_fd_);
    // Only our own file: a successor daemon may have replaced it already.
    struct stat st {};
    if (::lstat(path_.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) && st.st_ino == inode_) {
      ::unlink(path_.c_str());
    }
  }
}

void ControlServer::on_accept() {
  for (;;) {
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;  // EAGAIN: all taken; anything else: nothing to do for this one
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
        (cred.uid != ::geteuid() && cred.uid != 0)) {
      ++counters_.refused_peer;
      ::close(fd);
      continue;
    }
    auto c = std::make_unique<Conn>();
    c->fd = fd;
    c->last_ns = env_.now_ns();
    if (conns_.size() >= limits_.max_connections) {
      // Told why, then closed (best effort: the reply is small and the socket buffer empty).
      ++counters_.refused_full;
      const std::string line =
          to_json(error_response(Status(
              Code::kResourceExhausted,
              "too many control connections (" + std::to_string(limits_.max_connections) + ")"))) +
          "\n";
      (void)!::send(fd, line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      ::close(fd);
      continue;
    }
    auto* conn = c.get();
    conns_[fd] = std::move(c);
    ++counters_.accepted;
    update_watch(*conn);
    if (!conn->watch) close_conn(fd);  // the Env's watch bound: refused, closed
  }
}

void ControlServer::update_watch(Conn& c) {
  std::uint32_t want = c.closing ? 0 : env::kFdReadable;
  if (!c.out.empty()) want |= env::kFdWritable;
  if (want == c.events && c.watch) return;
  if (c.watch) (void)env_.unwatch_fd(c.watch);
  c.watch = 0;
  c.events = want;
  if (want == 0) return;
  const int fd = c.fd;
  if (!env_.watch_fd(
               fd, want, [this, fd](std::uint32_t ready) { on_ready(fd, ready); }, &c.watch)
           .is_ok()) {
    c.watch = 0;
  }
}

void ControlServer::on_ready(int fd, std::uint32_t ready) {
  auto it = conns_.find(fd);
  if (it == conns_.end()) return;
  Conn& c = *it->second;
  c.last_ns = env_.now_ns();
  if (ready & env::kFdReadable) {
    char buf[16384];
    for (;;) {
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n > 0) {
        c.in.append(buf, static_cast<std::size_t>(n));
        if (c.in.size() > limits_.max_request + sizeof buf) break;  // serve_lines refuses it
        continue;
      }
      if (n == 0)
        c.closing = true;  // the client is done sending; answer what it asked
      else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        close_conn(fd);
        return;
      }
      break;
    }
    serve_lines(c);
  }
  if ((ready & env::kFdWritable) && !c.out.empty()) {
    const ssize_t n = ::send(fd, c.out.data(), c.out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      close_conn(fd);
      return;
    }
    if (n > 0) c.out.erase(0, static_cast<std::size_t>(n));
  }
  if (c.closing && c.out.empty()) {
    close_conn(fd);
    return;
  }
  update_watch(c);
  if (!c.watch) close_conn(fd);
}

void ControlServer::serve_lines(Conn& c) {
  std::size_t start = 0;
  for (;;) {
    const auto nl = c.in.find('\n', start);
    if (nl == std::string::npos) break;
    const std::string line = c.in.substr(start, nl - start);
    start = nl + 1;
    if (line.size() > limits_.max_request) {
      ++counters_.oversized;
      queue_reply(c, error_response(invalid_argument(
                         "request longer than " + std::to_string(limits_.max_request) + " bytes")));
      c.closing = true;
      break;
    }
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    ++counters_.requests;
    auto reply = handler_(line);
    if (!reply.is_ok()) {
      ++counters_.bad_requests;
      queue_reply(c, to_json(error_response(reply.status())));
      continue;
    }
    queue_reply(c, reply.value());
  }
  c.in.erase(0, start);
  if (c.in.size() > limits_.max_request && !c.closing) {
    ++counters_.oversized;
    queue_reply(c, error_response(invalid_argument("request longer than " +
                                                   std::to_string(limits_.max_request) +
                                                   " bytes (or no newline at its end)")));
    c.closing = true;
  }
  if (c.closing) c.in.clear();
}

void ControlServer::queue_reply(Conn& c, const api::Response& r) {
  queue_reply(c, to_json(r));
}

void ControlServer::queue_reply(Conn& c, const std::string& reply) {
  const std::string line = reply + "\n";
  if (c.out.size() + line.size() > limits_.max_output) {
    // A client that asks without reading: it loses the connection, the daemon keeps its memory.
    ++counters_.overflowed;
    c.out.clear();
    c.closing = true;
    return;
  }
  c.out += line;
}

void ControlServer::close_conn(int fd) {
  auto it = conns_.find(fd);
  if (it == conns_.end()) return;
  if (it->second->watch) (void)env_.unwatch_fd(it->second->watch);
  ::close(fd);
  conns_.erase(it);
}

void ControlServer::sweep() {
  const std::int64_t now = env_.now_ns();
  std::vector<int> idle;
  for (const auto& [fd, c] : conns_) {
    if (now - c->last_ns >= limits_.idle_ns) idle.push_back(fd);
  }
  for (int fd : idle) {
    ++counters_.idle_closed;
    close_conn(fd);
  }
  sweep_timer_ =
      env_.schedule(std::min<std::int64_t>(limits_.idle_ns, 1'000'000'000), [this] { sweep(); });
}

// ---- client ------------------------------------------------------------------------------------

Result<api::Response> call(const std::string& path, const api::Request& request, int timeout_ms) {
  auto line = call_line(path, to_json(request), timeout_ms, "patronusd");
  if (!line.is_ok()) return line.status();
  api::Response r;
  if (auto s = from_json(line.value(), &r); !s.is_ok()) {
    return Status(Code::kInternal, "the daemon's reply does not parse: " + s.message());
  }
  return r;
}

Result<std::string> call_line(const std::string& path, const std::string& request_line,
                              int timeout_ms, const std::string& daemon) {
  auto addr = unix_address(path);
  if (!addr.is_ok()) return addr.status();
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return unavailable("socket: " + errno_text(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr.value()), sizeof(sockaddr_un)) != 0) {
    const int e = errno;
    if (e == ENOENT) {
      return unavailable("no control socket at " + path +
                         (daemon == "patronusd"
                              ? std::string(" (is patronusd running? its config's control_socket "
                                            "names the path; or read its state database with --db)")
                              : " (is " + daemon + " running? its config names the socket)"));
    }
    if (e == ECONNREFUSED) {
      return unavailable("nothing listens on " + path +
                         " (a socket left by a daemon that is not running)");
    }
    if (e == EACCES || e == EPERM) {
      return unavailable("permission denied on " + path +
                         " (the socket is owner-only: run as the daemon's user)");
    }
    return unavailable("connect " + path + ": " + errno_text(e));
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  auto wait = [&](short events) -> Status {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
    if (left <= 0) {
      return unavailable("no reply from " + path + " within " + std::to_string(timeout_ms) + " ms");
    }
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, static_cast<int>(left));
    if (n < 0 && errno != EINTR) return unavailable("poll: " + errno_text(errno));
    return Status::ok();
  };
  const std::string line = request_line + "\n";
  for (std::size_t sent = 0; sent < line.size();) {
    if (auto s = wait(POLLOUT); !s.is_ok()) return s;
    const ssize_t n =
        ::send(fd, line.data() + sent, line.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) {
      // The server stopped reading (a request over its limit): its reply says why, if it sent
      // one before it closed.
      const int e = errno;
      char buf[4096];
      const ssize_t r = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
      const std::string got = r > 0 ? std::string(buf, static_cast<std::size_t>(r)) : "";
      const auto nl = got.find('\n');
      if (nl != std::string::npos) return got.substr(0, nl);
      return unavailable("send to " + path + ": " + errno_text(e) + " (the request is " +
                         std::to_string(line.size()) + " bytes; the server may limit its size)");
    }
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
      return unavailable("send to " + path + ": " + errno_text(errno));
    }
    if (n > 0) sent += static_cast<std::size_t>(n);
  }
  std::string in;
  constexpr std::size_t kMaxReply = 64 * 1024 * 1024;
  for (;;) {
    const auto nl = in.find('\n');
    if (nl != std::string::npos) return in.substr(0, nl);
    if (in.size() > kMaxReply) return Status(Code::kInternal, "reply larger than 64 MiB");
    if (auto s = wait(POLLIN); !s.is_ok()) return s;
    char buf[65536];
    const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0) return unavailable(path + ": the daemon closed the connection without a reply");
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      return unavailable("recv from " + path + ": " + errno_text(errno));
    }
    in.append(buf, static_cast<std::size_t>(n));
  }
}

}  // namespace patronus::control
