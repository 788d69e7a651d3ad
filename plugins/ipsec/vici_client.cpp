#include "vici_client.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "patronus/util/file.hpp"

namespace patronus::vici {

namespace {

Status io_error(const std::string& what, int err) {
  return Status(Code::kUnavailable, "vici: " + what + ": " + std::strerror(err));
}

}  // namespace

Result<BlockingClient> BlockingClient::connect(const std::string& socket_path,
                                               std::chrono::milliseconds timeout) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof(addr.sun_path)) {
    return invalid_argument("vici: socket path too long: " + socket_path);
  }
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return io_error("socket", errno);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    const int err = errno;
    ::close(fd);
    return io_error("connecting to " + socket_path, err);
  }
  if (auto trusted = peer_is_trusted(fd, "vici: " + socket_path); !trusted.is_ok()) {
    ::close(fd);
    return trusted;
  }
  return BlockingClient(fd, timeout);
}

namespace {
constexpr std::size_t kMaxQueuedEvents = 1024;
}

BlockingClient::BlockingClient(int fd, std::chrono::milliseconds timeout)
    : fd_(fd), timeout_(timeout), st_(std::make_unique<State>()) {
  State* st = st_.get();
  st->session = Session([st](const Packet& p) {
    if (st->on_event) {
      st->on_event(p);
    } else if (st->events.size() < kMaxQueuedEvents) {
      st->events.push_back(p);
    }
  });
}

BlockingClient::BlockingClient(BlockingClient&& o) noexcept
    : fd_(o.fd_), timeout_(o.timeout_), st_(std::move(o.st_)) {
  o.fd_ = -1;
}

BlockingClient& BlockingClient::operator=(BlockingClient&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.fd_;
    timeout_ = o.timeout_;
    st_ = std::move(o.st_);
    o.fd_ = -1;
  }
  return *this;
}

BlockingClient::~BlockingClient() {
  if (fd_ >= 0) ::close(fd_);
}

Status BlockingClient::pump(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  // Any failure ends the connection: the waiting requests get the error (their callbacks point
  // into frames that are about to return) and a late answer can no longer be misread.
  auto broken = [&](Status s) {
    st_->session.fail_all(s);
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    return s;
  };
  if (fd_ < 0) return broken(Status(Code::kUnavailable, "vici: the connection is closed"));
  const std::string out = st_->session.take_output();
  std::size_t sent = 0;
  while (sent < out.size()) {
    const ssize_t n = ::send(fd_, out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return broken(io_error("send", errno));
    }
    sent += static_cast<std::size_t>(n);
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return broken(Status(Code::kUnavailable, "vici: no answer within the timeout"));
    }
    pollfd pfd{fd_, POLLIN, 0};
    const int r = ::poll(&pfd, 1, static_cast<int>(left.count()));
    if (r < 0 && errno != EINTR) return broken(io_error("poll", errno));
    if (r <= 0) continue;
    char buf[65536];
    const ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
    if (n == 0) return broken(Status(Code::kUnavailable, "vici: charon closed the socket"));
    if (n < 0) {
      if (errno == EINTR) continue;
      return broken(io_error("recv", errno));
    }
    if (auto s = st_->session.feed(std::string_view(buf, static_cast<std::size_t>(n)));
        !s.is_ok()) {
      return broken(s);
    }
  }
  return Status::ok();
}

Result<Message> BlockingClient::call(const std::string& command, const Message& args,
                                     const std::function<void(const Packet&)>& on_event) {
  bool answered = false;
  Result<Message> result = Status(Code::kInternal, "vici: no answer");
  if (auto s = st_->session.command(command, args,
                                    [&](Result<Message> r) {
                                      answered = true;
                                      result = std::move(r);
                                    });
      !s.is_ok()) {
    return s;
  }
  st_->on_event = on_event;
  const Status pumped = pump([&] { return answered; }, timeout_);
  st_->on_event = nullptr;
  if (!pumped.is_ok()) return Status(pumped.code(), command + ": " + pumped.message());
  return result;
}

Status BlockingClient::subscribe(const std::string& event) {
  bool answered = false;
  Status result = Status::ok();
  if (auto s = st_->session.subscribe(event,
                                      [&](Status r) {
                                        answered = true;
                                        result = std::move(r);
                                      });
      !s.is_ok()) {
    return s;
  }
  if (auto s = pump([&] { return answered; }, timeout_); !s.is_ok()) return s;
  return result;
}

Result<Packet> BlockingClient::next_event(std::chrono::milliseconds timeout) {
  if (auto s = pump([&] { return !st_->events.empty(); }, timeout); !s.is_ok()) return s;
  Packet p = std::move(st_->events.front());
  st_->events.pop_front();
  return p;
}

Status check_success(const std::string& command, const Message& response) {
  if (response.get("success") == std::optional<std::string>("yes")) return Status::ok();
  return Status(Code::kFailedPrecondition, "charon refused " + command + ": " +
                                               response.get("errmsg").value_or("no reason given"));
}

}  // namespace patronus::vici
