// The control API's transport: a unix stream socket, one JSON request per line, one JSON response
// per line (control.hpp's to_json / from_json). The server runs on an Env (watch_fd, timers: no
// thread of its own, nothing blocks); the client is the CLI's, blocking with a deadline.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "control.hpp"
#include "patronus/env/env.hpp"

namespace patronus::control {

struct ServerLimits {
  std::size_t max_connections = 8;
  std::size_t max_request = 64 * 1024;        // bytes in one request line
  std::size_t max_output = 32 * 1024 * 1024;  // queued reply bytes on one connection
  std::int64_t idle_ns = 30'000'000'000;      // a connection silent this long is closed
};

struct ServerCounters {
  std::uint64_t accepted = 0, refused_full = 0, refused_peer = 0;
  std::uint64_t requests = 0, bad_requests = 0, oversized = 0, idle_closed = 0, overflowed = 0;
};

class ControlServer {
 public:
  using Handler = std::function<api::Response(const api::Request&)>;
  // Another protocol over the same socket (the controller's admin requests): one JSON line in,
  // one out; an error status is a request that does not parse (answered as {"error": ...}).
  using LineHandler = std::function<Result<std::string>(const std::string& line)>;
  // Creates the socket at `path` with owner-only permissions (0600; its directory is created 0755
  // if missing, one level only). A socket left by a dead daemon is replaced; a live one (something
  // accepts connections on it) or a path that is not a socket is refused, naming it, and left
  // alone. Connections from another user than this process's (or root) are refused.
  static Result<std::unique_ptr<ControlServer>> open(env::Env& env, const std::string& path,
                                                     Handler handler, ServerLimits limits = {});
  static Result<std::unique_ptr<ControlServer>> open_lines(env::Env& env, const std::string& path,
                                                           LineHandler handler,
                                                           ServerLimits limits = {});
  ~ControlServer();  // closes every connection and removes the socket file (if it is still ours)
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  const std::string& path() const { return path_; }
  std::size_t connections() const { return conns_.size(); }
  const ServerCounters& counters() const { return counters_; }

 private:
  struct Conn;
  ControlServer(env::Env& env, std::string path, LineHandler handler, ServerLimits limits);
  void on_accept();
  void on_ready(int fd, std::uint32_t ready);
  void serve_lines(Conn& c);
  void queue_reply(Conn& c, const api::Response& r);
  void queue_reply(Conn& c, const std::string& reply);
  void update_watch(Conn& c);
  void close_conn(int fd);
  void sweep();

  env::Env& env_;
  std::string path_;
  LineHandler handler_;
  ServerLimits limits_;
  int listen_fd_ = -1;
  std::uint64_t inode_ = 0;
  env::WatchId listen_watch_ = 0;
  env::TimerId sweep_timer_ = 0;
  std::map<int, std::unique_ptr<Conn>> conns_;
  ServerCounters counters_;
};

// One request to a daemon's socket, waiting at most timeout_ms for the whole exchange. Errors say
// what to do: no socket at the path, nothing listening (a stale socket), permission denied (run
// as the daemon's user), a timeout, a reply that does not parse.
Result<api::Response> call(const std::string& path, const api::Request& request,
                           int timeout_ms = 5000);
// The same for another protocol: one line out, the reply line back (without its newline).
// `daemon` names what should be listening, for the errors.
Result<std::string> call_line(const std::string& path, const std::string& line, int timeout_ms,
                              const std::string& daemon);

}  // namespace patronus::control
