#include "patronus/env/asio_env.hpp"

#include <sodium.h>

#include "patronus/env/timer_table.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstring>

#include <array>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <unordered_map>

namespace patronus::env {

namespace asio = boost::asio;
using asio::ip::udp;
using model::IpAddress;
using model::SocketAddress;

namespace {

udp::endpoint to_asio(const SocketAddress& a) {
  if (a.ip().is_v4()) {
    return {asio::ip::address_v4(a.ip().v4_host_order()), a.port()};
  }
  asio::ip::address_v6::bytes_type b;
  std::copy(a.ip().bytes().begin(), a.ip().bytes().end(), b.begin());
  return {asio::ip::address_v6(b), a.port()};
}

SocketAddress from_asio(const udp::endpoint& e) {
  const auto addr = e.address();
  if (addr.is_v4()) return {IpAddress::v4(addr.to_v4().to_uint()), e.port()};
  if (addr.to_v6().is_v4_mapped()) {
    return {IpAddress::v4(asio::ip::make_address_v4(asio::ip::v4_mapped, addr.to_v6()).to_uint()),
            e.port()};
  }
  const auto b = addr.to_v6().to_bytes();
  std::array<std::uint8_t, 16> bytes{};
  std::copy(b.begin(), b.end(), bytes.begin());
  return {IpAddress::v6(bytes), e.port()};
}

// One datagram from a non-blocking socket with its TTL, destination and interface (the socket has
// IP_RECVTTL and IP_PKTINFO, or their IPv6 counterparts). Returns the payload size, or -1 with
// errno (EAGAIN: nothing left).
ssize_t receive_with_info(int fd, std::uint8_t* buf, std::size_t cap, SocketAddress* from,
                          DatagramInfo* info, std::uint16_t local_port) {
  sockaddr_storage src{};
  iovec iov{buf, cap};
  alignas(cmsghdr) std::array<char, 256> control{};
  msghdr msg{};
  msg.msg_name = &src;
  msg.msg_namelen = sizeof src;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.data();
  msg.msg_controllen = control.size();
  const ssize_t n = ::recvmsg(fd, &msg, MSG_DONTWAIT);
  if (n < 0) return n;
  *info = DatagramInfo{};
  if (src.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&src);
    *from = SocketAddress(IpAddress::v4(ntohl(in->sin_addr.s_addr)), ntohs(in->sin_port));
  } else {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&src);
    std::array<std::uint8_t, 16> b{};
    std::memcpy(b.data(), in6->sin6_addr.s6_addr, 16);
    *from = from_asio(udp::endpoint(asio::ip::address_v6(b), ntohs(in6->sin6_port)));
  }
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TTL) {
      int ttl = 0;
      std::memcpy(&ttl, CMSG_DATA(c), sizeof ttl);
      info->ttl = ttl;
    } else if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
      in_pktinfo pi{};
      std::memcpy(&pi, CMSG_DATA(c), sizeof pi);
      info->ifindex = static_cast<std::uint32_t>(pi.ipi_ifindex);
      info->local = SocketAddress(IpAddress::v4(ntohl(pi.ipi_addr.s_addr)), local_port);
    } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_HOPLIMIT) {
      int hops = 0;
      std::memcpy(&hops, CMSG_DATA(c), sizeof hops);
      info->ttl = hops;
    } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
      in6_pktinfo pi{};
      std::memcpy(&pi, CMSG_DATA(c), sizeof pi);
      info->ifindex = pi.ipi6_ifindex;
      std::array<std::uint8_t, 16> b{};
      std::memcpy(b.data(), pi.ipi6_addr.s6_addr, 16);
      info->local = from_asio(udp::endpoint(asio::ip::address_v6(b), local_port));
    }
  }
  return n;
}

}  // namespace

struct AsioEnv::Impl {
  struct Socket {
    explicit Socket(asio::io_context& io) : sock(io) {}
    udp::socket sock;
    DatagramInfoHandler handler;
    std::uint16_t port = 0;  // bound
    std::array<std::uint8_t, 65536> buf{};
  };

  Impl(asio::io_context& io_, std::optional<std::uint64_t> seed_, EnvLimits limits_)
      : io(io_), rng(seed_.value_or(0)), seeded(seed_.has_value()), limits(limits_) {
    // Idempotent. randombytes draws from the OS (getrandom) even when it fails, so its result
    // changes nothing here.
    if (!seeded) {
      [[maybe_unused]] const int rc = sodium_init();
    }
  }

  // Posts waiting to run (shared with the handlers, which may outlive this Env in the loop's
  // queue) and posts refused at the bound; both touched from any thread.
  std::shared_ptr<std::atomic<std::size_t>> posted = std::make_shared<std::atomic<std::size_t>>(0);
  std::atomic<std::uint64_t> posts_refused{0};

  // Waits for readability, then drains the socket with recvmsg (asio's receive has no control
  // messages) and waits again.
  void receive(EndpointId id, std::shared_ptr<Socket> s) {
    s->sock.async_wait(udp::socket::wait_read, [this, id, s](const boost::system::error_code& ec) {
      if (ec == asio::error::operation_aborted || !s->sock.is_open()) return;
      for (int i = 0; !ec && i < 64 && sockets.count(id); ++i) {
        SocketAddress from;
        DatagramInfo info;
        const ssize_t n = receive_with_info(s->sock.native_handle(), s->buf.data(), s->buf.size(),
                                            &from, &info, s->port);
        if (n < 0) break;  // EAGAIN, or an error queued on the socket (e.g. ICMP unreachable)
        auto handler = s->handler;  // the handler may close this endpoint
        handler(from, info, s->buf.data(), static_cast<std::size_t>(n));
      }
      if (sockets.count(id)) receive(id, s);
    });
  }

  // A watched descriptor: asio's descriptor wrapper is released, never closed (the caller owns
  // the fd). Waits are re-armed after each callback while the watch lives.
  struct Watch {
    explicit Watch(asio::io_context& io, int fd) : desc(io, fd) {}
    asio::posix::stream_descriptor desc;
    FdHandler handler;
    bool live = true;
  };

  void wait(WatchId id, std::shared_ptr<Watch> w, std::uint32_t which) {
    const auto type = which == kFdReadable ? asio::posix::stream_descriptor::wait_read
                                           : asio::posix::stream_descriptor::wait_write;
    w->desc.async_wait(type, [this, id, w, which](const boost::system::error_code& ec) {
      if (ec == asio::error::operation_aborted || !w->live) return;
      if (!ec) {
        auto handler = w->handler;  // the handler may unwatch
        handler(which);
      }
      if (w->live && watches.count(id)) wait(id, w, which);
    });
  }

  asio::io_context& io;
  Rng rng;
  bool seeded = false;  // else random_u64() is the OS's CSPRNG
  EnvLimits limits;
  EndpointId next_endpoint = 1;
  TimerTable<std::unique_ptr<asio::steady_timer>> timers{limits.max_timers};
  std::unordered_map<EndpointId, std::shared_ptr<Socket>> sockets;
  WatchId next_watch = 1;
  std::unordered_map<WatchId, std::shared_ptr<Watch>> watches;
};

AsioEnv::AsioEnv(asio::io_context& io, std::optional<std::uint64_t> seed, EnvLimits limits)
    : impl_(std::make_unique<Impl>(io, seed, limits)) {}

AsioEnv::~AsioEnv() {
  for (auto& [id, w] : impl_->watches) {
    w->live = false;
    boost::system::error_code ec;
    w->desc.cancel(ec);
    (void)w->desc.release();  // never the caller's descriptor
  }
  impl_->timers.for_each_handle([](auto& t) { t->cancel(); });
  for (auto& [id, s] : impl_->sockets) {
    boost::system::error_code ec;
    s->sock.close(ec);
  }
}

std::int64_t AsioEnv::wall_ns() const {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::int64_t AsioEnv::now_ns() const {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

TimerId AsioEnv::schedule(std::int64_t delay_ns, std::function<void()> fn) {
  const auto after = std::chrono::nanoseconds(std::max<std::int64_t>(delay_ns, 0));
  return impl_->timers.add(std::move(fn), [this, after](TimerId id) {
    auto timer = std::make_unique<asio::steady_timer>(impl_->io);
    timer->expires_after(after);
    timer->async_wait([this, id](const boost::system::error_code& ec) {
      if (ec != asio::error::operation_aborted) impl_->timers.fire(id);
    });
    return std::optional<std::unique_ptr<asio::steady_timer>>(std::move(timer));
  });
}

bool AsioEnv::cancel(TimerId id) {
  auto timer = impl_->timers.cancel(id);
  if (timer) (*timer)->cancel();
  return timer.has_value();
}

void AsioEnv::post(std::function<void()> fn) {
  if (impl_->posted->load() >= impl_->limits.max_posted) {
    ++impl_->posts_refused;
    return;
  }
  ++*impl_->posted;
  asio::post(impl_->io, [waiting = impl_->posted, fn = std::move(fn)] {
    --*waiting;
    fn();
  });
}

std::uint64_t AsioEnv::posts_refused() const {
  return impl_->posts_refused.load();
}

Status AsioEnv::open_udp(const SocketAddress& local, const UdpOptions& options,
                         DatagramInfoHandler handler, EndpointId* id, SocketAddress* bound) {
  if (auto st = check_udp_options(options); !st.is_ok()) return st;
  if (impl_->sockets.size() >= impl_->limits.max_endpoints) {
    return resource_exhausted(std::to_string(impl_->limits.max_endpoints) +
                              " datagram endpoints are open already");
  }
  auto s = std::make_shared<Impl::Socket>(impl_->io);
  boost::system::error_code ec;
  const auto ep = to_asio(local);
  s->sock.open(ep.protocol(), ec);
  // Free bind: an address not (yet) configured binds, e.g. a tunnel's overlay address before the
  // transport has brought its interface up; datagrams flow once the address exists.
  if (!ec) {
    const int one = 1;
    const bool v4 = ep.protocol() == boost::asio::ip::udp::v4();
    const int fd = s->sock.native_handle();
    const int level = v4 ? IPPROTO_IP : IPPROTO_IPV6;
    // The TTL and destination of every datagram (DatagramInfo), and the TTL of what it sends.
    const int ttl = options.send_ttl;
    if (::setsockopt(fd, level, v4 ? IP_FREEBIND : IPV6_FREEBIND, &one, sizeof one) != 0 ||
        ::setsockopt(fd, level, v4 ? IP_RECVTTL : IPV6_RECVHOPLIMIT, &one, sizeof one) != 0 ||
        ::setsockopt(fd, level, v4 ? IP_PKTINFO : IPV6_RECVPKTINFO, &one, sizeof one) != 0 ||
        (ttl > 0 &&
         ::setsockopt(fd, level, v4 ? IP_TTL : IPV6_UNICAST_HOPS, &ttl, sizeof ttl) != 0)) {
      ec = boost::system::error_code(errno, boost::system::system_category());
    }
  }
  if (!ec) s->sock.bind(ep, ec);
  if (ec) return unavailable("cannot bind UDP " + local.to_string() + ": " + ec.message());
  s->handler = std::move(handler);
  const EndpointId eid = impl_->next_endpoint++;
  const SocketAddress at = from_asio(s->sock.local_endpoint(ec));
  s->port = at.port();
  if (bound) *bound = at;
  impl_->sockets.emplace(eid, s);
  impl_->receive(eid, s);
  *id = eid;
  return Status::ok();
}

Status AsioEnv::send_udp(EndpointId id, const SocketAddress& to, const std::uint8_t* data,
                         std::size_t size) {
  auto it = impl_->sockets.find(id);
  if (it == impl_->sockets.end()) return not_found("endpoint " + std::to_string(id));
  if (size > impl_->limits.max_datagram) {
    return invalid_argument("datagram of " + std::to_string(size) + " bytes exceeds " +
                            std::to_string(impl_->limits.max_datagram));
  }
  boost::system::error_code ec;
  // Non-blocking best effort, like a datagram socket: a full buffer drops the datagram.
  it->second->sock.non_blocking(true, ec);
  it->second->sock.send_to(asio::buffer(data, size), to_asio(to), 0, ec);
  if (ec) return unavailable("send to " + to.to_string() + ": " + ec.message());
  return Status::ok();
}

Status AsioEnv::close_udp(EndpointId id) {
  auto it = impl_->sockets.find(id);
  if (it == impl_->sockets.end()) return not_found("endpoint " + std::to_string(id));
  boost::system::error_code ec;
  it->second->sock.close(ec);
  impl_->sockets.erase(it);
  return Status::ok();
}

Status AsioEnv::watch_fd(int fd, std::uint32_t events, FdHandler fn, WatchId* id) {
  if (fd < 0) return invalid_argument("watch_fd: descriptor " + std::to_string(fd));
  if ((events & (kFdReadable | kFdWritable)) == 0 || (events & ~(kFdReadable | kFdWritable))) {
    return invalid_argument("watch_fd: events must be readable and/or writable");
  }
  if (!fn) return invalid_argument("watch_fd: no handler");
  if (impl_->watches.size() >= impl_->limits.max_watches) {
    return resource_exhausted(std::to_string(impl_->limits.max_watches) +
                              " descriptors are watched already");
  }
  for (const auto& [wid, w] : impl_->watches) {
    if (w->desc.native_handle() == fd) {
      return invalid_argument("watch_fd: descriptor " + std::to_string(fd) +
                              " is watched already (watch " + std::to_string(wid) + ")");
    }
  }
  auto w = std::make_shared<Impl::Watch>(impl_->io, fd);
  w->handler = std::move(fn);
  const WatchId wid = impl_->next_watch++;
  impl_->watches.emplace(wid, w);
  if (events & kFdReadable) impl_->wait(wid, w, kFdReadable);
  if (events & kFdWritable) impl_->wait(wid, w, kFdWritable);
  *id = wid;
  return Status::ok();
}

Status AsioEnv::unwatch_fd(WatchId id) {
  auto it = impl_->watches.find(id);
  if (it == impl_->watches.end()) return not_found("watch " + std::to_string(id));
  auto w = it->second;
  impl_->watches.erase(it);
  w->live = false;
  boost::system::error_code ec;
  w->desc.cancel(ec);
  (void)w->desc.release();  // the caller's descriptor stays open
  return Status::ok();
}

std::size_t AsioEnv::live_watches() const {
  return impl_->watches.size();
}

std::uint64_t AsioEnv::random_u64() {
  if (impl_->seeded) return impl_->rng.next();
  std::uint64_t v = 0;
  randombytes_buf(&v, sizeof v);
  return v;
}
std::size_t AsioEnv::live_timers() const {
  return impl_->timers.size();
}
std::size_t AsioEnv::live_endpoints() const {
  return impl_->sockets.size();
}

}  // namespace patronus::env
