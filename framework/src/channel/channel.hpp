// The site channel's transport (docs/adr/0023-site-channel.md): WebSocket over TLS 1.3 with
// Boost.Beast, on the caller's io_context (no thread of its own). Both ends present an Ed25519
// self-signed certificate (tls_identity.hpp): the server learns each session's peer key from the
// handshake; the client accepts the server only if its key is the pinned one. One binary
// WebSocket message carries one message of the protocol (the caller's bytes). Keepalives: a
// WebSocket ping after half the idle timeout without traffic; a session silent for the whole of
// it is closed (the watchdog). Everything is bounded: sessions, message size, queued bytes per
// session. Private.
#pragma once

#include "patronus/util/backoff.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "tls_identity.hpp"

namespace boost::asio {
class io_context;
}

namespace patronus::channel {

using SessionId = std::uint64_t;

struct ServerLimits {
  std::size_t max_sessions = 20000;
  std::size_t max_message = 8 * 1024 * 1024;  // bytes of one received message
  std::size_t max_queued = 64 * 1024 * 1024;  // bytes waiting to be sent on one session
  std::int64_t handshake_timeout_ms = 10000;
  std::int64_t idle_timeout_ms = 30000;
};

struct ServerCounters {
  std::uint64_t accepted = 0, refused_full = 0, handshakes_failed = 0, closed = 0, overflowed = 0,
                oversized = 0;
};

class Server {
 public:
  struct Handlers {
    std::function<void(SessionId, const PublicKey& peer)> opened;
    std::function<void(SessionId, std::string_view message)> message;
    std::function<void(SessionId)> closed;  // not called for sessions closed by the destructor
  };
  // Listens on `address` ("host:port"; port 0 picks one). Errors name the address.
  static Result<std::unique_ptr<Server>> listen(boost::asio::io_context& io,
                                                const std::string& address,
                                                const TlsIdentity& identity, Handlers handlers,
                                                ServerLimits limits = {});
  ~Server();  // closes every session
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Queued on the session (dropped if it is gone); a session past max_queued is closed.
  void send(SessionId session, std::string message);
  // After what is queued has been written.
  void close(SessionId session);
  std::uint16_t port() const;
  std::size_t sessions() const;
  const ServerCounters& counters() const;

  struct Hub;

 private:
  explicit Server(std::shared_ptr<Hub> hub);
  std::shared_ptr<Hub> hub_;
};

struct ClientOptions {
  std::int64_t min_backoff_ms = kReconnectMinMs;  // the first retry; doubled per failure
  std::int64_t max_backoff_ms = kReconnectMaxMs;
  std::int64_t connect_timeout_ms = 10000;
  std::int64_t idle_timeout_ms = 30000;
  std::size_t max_message = 8 * 1024 * 1024;
  std::size_t max_queued = 64 * 1024 * 1024;  // bytes waiting to be sent: past it, reconnect
  std::uint64_t seed = 0;  // the jitter's (a restarted controller is not stormed in lock-step)
};

class Client {
 public:
  struct Handlers {
    std::function<void()> connected;
    std::function<void(std::string_view message)> message;
    // Every failed attempt and every lost session, with the reason; the client retries after
    // `retry_in_ms` unless stop() or hold() was called.
    std::function<void(const std::string& why, std::int64_t retry_in_ms)> disconnected;
  };
  // `address` "host:port"; `pin` the server's key.
  Client(boost::asio::io_context& io, std::string address, PublicKey pin, TlsIdentity identity,
         Handlers handlers, ClientOptions options = {});
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  void start();
  void stop();
  // Closes the session and does not retry until start() (a refusal another attempt cannot
  // change).
  void hold();
  bool connected() const;
  void send(std::string message);

  struct State;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace patronus::channel
