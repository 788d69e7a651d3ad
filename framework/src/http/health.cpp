#include "health.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdlib>
#include <cstring>

namespace patronus::http {

using Clock = std::chrono::steady_clock;

struct Heartbeat::Impl {
  explicit Impl(boost::asio::io_context& io) : timer(io) {}
  boost::asio::steady_timer timer;
  Clock::time_point due;
  double lag_s = 0;
  std::function<void()> on_beat;
  void arm() {
    due = Clock::now() + std::chrono::milliseconds(100);
    timer.expires_at(due);
    timer.async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;
      lag_s = std::chrono::duration<double>(Clock::now() - due).count();
      if (on_beat) on_beat();
      arm();
    });
  }
};

Heartbeat::Heartbeat(boost::asio::io_context& io, std::function<void()> on_beat)
    : impl_(std::make_unique<Impl>(io)) {
  impl_->on_beat = std::move(on_beat);
  impl_->arm();
}

Heartbeat::~Heartbeat() {
  impl_->timer.cancel();
}

double Heartbeat::lag_s() const {
  const double overdue = std::chrono::duration<double>(Clock::now() - impl_->due).count();
  return std::max(impl_->lag_s, overdue);
}

Response text_response(int status, std::string body) {
  Response res;
  res.status = status;
  res.content_type = "text/plain; charset=utf-8";
  res.body = std::move(body);
  return res;
}

Response health_response(const Request& r, const std::string& what,
                         const std::vector<HealthCheck>& checks) {
  Response res;
  res.content_type = "text/plain; charset=utf-8";
  const HealthCheck* failed = nullptr;
  for (const auto& c : checks) {
    if (!c.ok && failed == nullptr) failed = &c;
  }
  res.status = failed ? 503 : 200;
  if (r.param("verbose")) {
    for (const auto& c : checks) {
      res.body += (c.ok ? "[+]" : "[-]") + c.name + (c.ok ? " ok" : " failed: " + c.detail) + "\n";
    }
    res.body += what + (failed ? " check failed\n" : " check passed\n");
  } else {
    res.body = failed ? failed->name + " failed: " + failed->detail + "\n" : "ok\n";
  }
  return res;
}

bool sd_notify(const std::string& state) {
  const char* path = std::getenv("NOTIFY_SOCKET");
  if (path == nullptr || path[0] == '\0') return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::size_t len = std::strlen(path);
  if (len >= sizeof addr.sun_path) return false;
  std::memcpy(addr.sun_path, path, len);
  if (addr.sun_path[0] == '@') addr.sun_path[0] = '\0';  // an abstract socket
  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return false;
  const auto n = ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL,
                          reinterpret_cast<const sockaddr*>(&addr),
                          static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + len));
  ::close(fd);
  return n == static_cast<ssize_t>(state.size());
}

std::chrono::microseconds sd_watchdog_interval() {
  const char* usec = std::getenv("WATCHDOG_USEC");
  if (usec == nullptr) return std::chrono::microseconds(0);
  if (const char* pid = std::getenv("WATCHDOG_PID")) {
    if (std::strtoll(pid, nullptr, 10) != ::getpid()) return std::chrono::microseconds(0);
  }
  const long long v = std::strtoll(usec, nullptr, 10);
  return std::chrono::microseconds(v > 0 ? v : 0);
}

}  // namespace patronus::http
