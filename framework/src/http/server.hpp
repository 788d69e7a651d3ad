// An HTTP/1.1 server with Boost.Beast, on the caller's io_context (no thread of its own): over TLS,
// what the controller's operator API answers on; plain, a site daemon's metrics and health
// (loopback by default, as node_exporter's). Everything is bounded: connections, header and body
// bytes, the time a request may take to arrive, the bytes queued on a stream; past a bound the
// connection gets its error (431, 413, 503) or is closed, and a counter says so. A handler answers
// at once or later (a password hash on a worker thread): `Reply` may be called once, on the
// io_context's thread, and is ignored if the client has gone. A response marked `stream`
// (Server-Sent Events) keeps the connection open: the application adds to it with send() and ends
// it with close(). Private.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "patronus/util/status.hpp"

namespace boost::asio {
class io_context;
namespace ssl {
class context;
}
}  // namespace boost::asio

namespace patronus::http {

using ConnectionId = std::uint64_t;

struct Request {
  std::string method;                                      // "GET", "POST", ...
  std::string target;                                      // as sent
  std::string path;                                        // percent-decoded, without the query
  std::vector<std::pair<std::string, std::string>> query;  // decoded, in order
  std::map<std::string, std::string> headers;              // lower-case names
  std::string body;
  std::string peer;  // the client's address (no port)

  std::optional<std::string> header(const std::string& lower_name) const;
  std::optional<std::string> param(const std::string& name) const;  // the first of that name
};

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  // text/event-stream: the headers (and `body`, if any) are sent, then the connection is the
  // application's until close() or the client leaves (Handlers::stream_closed).
  bool stream = false;
};

using Reply = std::function<void(Response)>;

struct Limits {
  std::size_t max_connections = 1024;
  std::size_t max_header_bytes = 16 * 1024;
  std::size_t max_body_bytes = 8 * 1024 * 1024;
  // From the first byte awaited to the last byte of the request (a slow client is closed, with
  // no answer), and for writing a response.
  std::int64_t request_timeout_ms = 10000;
  std::int64_t handshake_timeout_ms = 10000;
  std::size_t max_streams = 512;
  std::size_t max_stream_queued = 256 * 1024;  // bytes waiting on one stream; past it, dropped
};

struct Counters {
  std::uint64_t accepted = 0, refused_full = 0, handshakes_failed = 0, requests = 0,
                bad_requests = 0, too_large = 0, timeouts = 0, streams_opened = 0,
                streams_refused = 0, streams_dropped = 0;
};

// A certificate chain and its key, PEM (the key is a secret held for the TLS context only).
struct Credentials {
  std::string certificate_pem;
  std::string key_pem;
};

class Server {
 public:
  struct Handlers {
    std::function<void(const Request&, ConnectionId, Reply)> request;
    std::function<void(ConnectionId)> stream_closed;  // not called from the destructor
  };
  // Listens on `address` ("host:port"; port 0 picks one). Errors name the address or the
  // credentials.
  static Result<std::unique_ptr<Server>> listen(boost::asio::io_context& io,
                                                const std::string& address,
                                                const Credentials& credentials, Handlers handlers,
                                                Limits limits = {});
  // The same without TLS (HTTP/1.1 in clear): for loopback or a management network.
  static Result<std::unique_ptr<Server>> listen_plain(boost::asio::io_context& io,
                                                      const std::string& address, Handlers handlers,
                                                      Limits limits = {});
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // On a stream: queued (dropped if the stream is gone); a stream past max_stream_queued is
  // closed (the client reconnects and resumes).
  void send(ConnectionId stream, std::string bytes);
  void close(ConnectionId stream);
  std::uint16_t port() const;
  std::size_t connections() const;
  std::size_t streams() const;
  const Counters& counters() const;

  struct Hub;

 private:
  explicit Server(std::shared_ptr<Hub> hub);
  static Result<std::unique_ptr<Server>> open(boost::asio::io_context& io,
                                              const std::string& address,
                                              std::unique_ptr<boost::asio::ssl::context> ctx,
                                              Handlers handlers, Limits limits);
  std::shared_ptr<Hub> hub_;
};

// "Mon, 07 Dec 2026 17:00:00 GMT"-free helpers for handlers.
std::string reason_phrase(int status);
std::string percent_decode(const std::string& s, bool plus_is_space);

// A self-signed ECDSA P-256 certificate for `names` (DNS names and IP addresses, its subject
// alternative names), as browsers and curl accept; made once in DIR/NAME.{key,crt} (the key
// 0600, the directory 0700) and loaded after. A certificate whose names differ from `names` is
// made again.
Result<Credentials> load_or_create_certificate(const std::string& dir, const std::string& name,
                                               const std::vector<std::string>& names);
// When a certificate (the first of a PEM chain) expires, in seconds since the epoch.
Result<std::int64_t> certificate_not_after(const std::string& certificate_pem);
// An operator's own certificate chain and key (from their CA): both files read and checked to
// belong together.
Result<Credentials> load_credentials(const std::string& certificate_path,
                                     const std::string& key_path);

}  // namespace patronus::http
