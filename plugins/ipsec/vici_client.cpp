#include "vici_client.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

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
  return BlockingClient(fd, timeout);
}

BlockingClient::BlockingClient(BlockingClient&& o) noexcept
    : fd_(o.fd_), timeout_(o.timeout_), framer_(std::move(o.framer_)) {
  o.fd_ = -1;
}

BlockingClient& BlockingClient::operator=(BlockingClient&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.fd_;
    timeout_ = o.timeout_;
    framer_ = std::move(o.framer_);
    o.fd_ = -1;
  }
  return *this;
}

BlockingClient::~BlockingClient() {
  if (fd_ >= 0) ::close(fd_);
}

Status BlockingClient::send(const Packet& p) {
  auto bytes = encode(p);
  if (!bytes.is_ok()) return bytes.status();
  std::size_t done = 0;
  while (done < bytes.value().size()) {
    const ssize_t n =
        ::send(fd_, bytes.value().data() + done, bytes.value().size() - done, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error("send", errno);
    }
    done += static_cast<std::size_t>(n);
  }
  return Status::ok();
}

Result<Packet> BlockingClient::receive(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    auto seg = framer_.next();
    if (!seg.is_ok()) return seg.status();
    if (seg.value()) return decode(*seg.value());
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return Status(Code::kUnavailable, "vici: no answer within the timeout");
    pollfd pfd{fd_, POLLIN, 0};
    const int r = ::poll(&pfd, 1, static_cast<int>(left.count()));
    if (r < 0 && errno != EINTR) return io_error("poll", errno);
    if (r <= 0) continue;
    char buf[65536];
    const ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
    if (n == 0) return Status(Code::kUnavailable, "vici: charon closed the socket");
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error("recv", errno);
    }
    framer_.feed(std::string_view(buf, static_cast<std::size_t>(n)));
  }
}

Result<Message> BlockingClient::call(const std::string& command, const Message& args,
                                     const std::function<void(const Packet&)>& on_event) {
  Packet req;
  req.type = PacketType::kCmdRequest;
  req.name = command;
  req.message = args;
  if (auto s = send(req); !s.is_ok()) return s;
  while (true) {
    auto p = receive(timeout_);
    if (!p.is_ok()) return Status(p.status().code(), command + ": " + p.status().message());
    switch (p.value().type) {
      case PacketType::kCmdResponse:
        return std::move(p.value().message);
      case PacketType::kCmdUnknown:
        return Status(Code::kUnimplemented, "vici: charon does not know the command " + command);
      case PacketType::kEvent:
        if (on_event) on_event(p.value());
        break;
      default:
        return invalid_argument(std::string("vici: unexpected ") + to_string(p.value().type) +
                                " while waiting for the answer to " + command);
    }
  }
}

Status BlockingClient::subscribe(const std::string& event) {
  Packet req;
  req.type = PacketType::kEventRegister;
  req.name = event;
  if (auto s = send(req); !s.is_ok()) return s;
  while (true) {
    auto p = receive(timeout_);
    if (!p.is_ok()) return p.status();
    if (p.value().type == PacketType::kEventConfirm) return Status::ok();
    if (p.value().type == PacketType::kEventUnknown) {
      return Status(Code::kUnimplemented, "vici: charon has no event " + event);
    }
    if (p.value().type != PacketType::kEvent) {
      return invalid_argument(std::string("vici: unexpected ") + to_string(p.value().type) +
                              " while registering " + event);
    }
  }
}

Result<Packet> BlockingClient::next_event(std::chrono::milliseconds timeout) {
  while (true) {
    auto p = receive(timeout);
    if (!p.is_ok()) return p.status();
    if (p.value().type == PacketType::kEvent) return p;
  }
}

Status check_success(const std::string& command, const Message& response) {
  if (response.get("success") == std::optional<std::string>("yes")) return Status::ok();
  return Status(Code::kFailedPrecondition, "charon refused " + command + ": " +
                                               response.get("errmsg").value_or("no reason given"));
}

}  // namespace patronus::vici
