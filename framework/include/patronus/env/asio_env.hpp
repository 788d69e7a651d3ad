// Real backend: Boost.Asio io_context, steady_timer, UDP sockets on real interfaces.
// One AsioEnv is driven by one thread calling io_context::run(); post() is thread-safe.
#pragma once

#include <memory>
#include <optional>

#include "patronus/env/env.hpp"

namespace boost::asio {
class io_context;
}

namespace patronus::env {

class AsioEnv final : public Env {
 public:
  // Without a seed, random_u64() is the operating system's CSPRNG (libsodium's randombytes): what
  // a real daemon uses for probe nonces, BFD discriminators and sequence numbers, unpredictable
  // and different at every start. A seed makes the sequence repeatable, for tests and trials only.
  AsioEnv(boost::asio::io_context& io, std::optional<std::uint64_t> seed, EnvLimits limits = {});
  ~AsioEnv() override;

  std::int64_t now_ns() const override;
  std::int64_t wall_ns() const override;
  TimerId schedule(std::int64_t delay_ns, std::function<void()> fn) override;
  bool cancel(TimerId id) override;
  void post(std::function<void()> fn) override;
  using Env::open_udp;
  Status open_udp(const model::SocketAddress& local, const UdpOptions& options,
                  DatagramInfoHandler handler, EndpointId* id,
                  model::SocketAddress* bound) override;
  Status send_udp(EndpointId id, const model::SocketAddress& to, const std::uint8_t* data,
                  std::size_t size) override;
  Status close_udp(EndpointId id) override;
  Status watch_fd(int fd, std::uint32_t events, FdHandler fn, WatchId* id) override;
  Status unwatch_fd(WatchId id) override;
  std::uint64_t random_u64() override;
  std::string name() const override { return "real"; }
  std::uint64_t posts_refused() const override;

  std::size_t live_timers() const;
  std::size_t live_endpoints() const;
  std::size_t live_watches() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace patronus::env
