#include "server.hpp"

#include <openssl/ssl.h>

#include <algorithm>
#include <array>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cctype>
#include <chrono>
#include <deque>
#include <type_traits>

#include "patronus/model/address.hpp"

namespace patronus::http {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;
using std::chrono::milliseconds;
using Stream = beast::ssl_stream<beast::tcp_stream>;

std::optional<std::string> Request::header(const std::string& lower_name) const {
  const auto it = headers.find(lower_name);
  if (it == headers.end()) return std::nullopt;
  return it->second;
}

std::optional<std::string> Request::param(const std::string& name) const {
  for (const auto& [k, v] : query) {
    if (k == name) return v;
  }
  return std::nullopt;
}

std::string reason_phrase(int status) {
  return std::string(bhttp::obsolete_reason(static_cast<bhttp::status>(status)));
}

std::string percent_decode(const std::string& s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2])));
      i += 2;
    } else if (s[i] == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

namespace {

void split_target(const std::string& target, Request* r) {
  const auto q = target.find('?');
  r->path = percent_decode(target.substr(0, q), false);
  if (q == std::string::npos) return;
  std::string rest = target.substr(q + 1);
  std::size_t start = 0;
  while (start <= rest.size()) {
    const auto amp = rest.find('&', start);
    const std::string part = rest.substr(start, amp == std::string::npos ? amp : amp - start);
    if (!part.empty()) {
      const auto eq = part.find('=');
      r->query.emplace_back(
          percent_decode(part.substr(0, eq), true),
          eq == std::string::npos ? "" : percent_decode(part.substr(eq + 1), true));
    }
    if (amp == std::string::npos) break;
    start = amp + 1;
  }
}

std::string problem(int status, const std::string& detail) {
  // RFC 9457, for errors found before a handler sees the request.
  std::string escaped;
  for (char c : detail) {
    if (c == '"' || c == '\\') escaped.push_back('\\');
    escaped.push_back(c);
  }
  return "{\"type\":\"about:blank\",\"title\":\"" + reason_phrase(status) +
         "\",\"status\":" + std::to_string(status) + ",\"detail\":\"" + escaped + "\"}";
}

}  // namespace

// A connection as the hub sees it: TLS or plain underneath (BasicConnection).
struct Connection {
  virtual ~Connection() = default;
  virtual void enqueue(std::string bytes) = 0;
  virtual void close() = 0;
  virtual void fail() = 0;
  virtual void start() = 0;
  bool is_stream = false;
};

struct Server::Hub : std::enable_shared_from_this<Server::Hub> {
  Hub(net::io_context& io, std::unique_ptr<ssl::context> ctx, Handlers h, Limits l)
      : io(io), ctx(std::move(ctx)), acceptor(io), handlers(std::move(h)), limits(l) {}
  net::io_context& io;
  std::unique_ptr<ssl::context> ctx;
  tcp::acceptor acceptor;
  Handlers handlers;
  Limits limits;
  Counters counters;
  bool stopped = false;
  ConnectionId next = 1;
  std::map<ConnectionId, std::shared_ptr<Connection>> connections;
  std::size_t streams = 0;
  void accept();
};

template <bool kTls>
struct BasicConnection final : Connection, std::enable_shared_from_this<BasicConnection<kTls>> {
  using Stream = std::conditional_t<kTls, beast::ssl_stream<beast::tcp_stream>, beast::tcp_stream>;
  using std::enable_shared_from_this<BasicConnection<kTls>>::shared_from_this;
  static Stream make_stream(tcp::socket socket, Server::Hub& hub) {
    if constexpr (kTls) {
      return Stream(std::move(socket), *hub.ctx);
    } else {
      (void)hub;
      return Stream(std::move(socket));
    }
  }
  BasicConnection(std::shared_ptr<Server::Hub> hub, ConnectionId id, tcp::socket socket)
      : hub(std::move(hub)),
        id(id),
        stream(make_stream(std::move(socket), *this->hub)),
        first_byte(beast::get_lowest_layer(stream).socket().get_executor()) {
    boost::system::error_code ec;
    const auto ep = beast::get_lowest_layer(stream).socket().remote_endpoint(ec);
    if (!ec) peer = ep.address().to_string();
  }
  std::shared_ptr<Server::Hub> hub;
  ConnectionId id;
  Stream stream;
  net::steady_timer first_byte;
  bool waited = false;
  std::string peer;
  beast::flat_buffer buffer;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser;
  std::uint64_t generation = 0;  // of the request a pending Reply answers
  bool dead = false, writing = false, closing = false;
  std::deque<std::string> out;  // a stream's queue
  std::size_t queued = 0;
  char sink = 0;  // a stream's reads (a client sends nothing; its leaving ends the read)
  std::array<char, 4096> drained{};  // a closing plain connection's last bytes from the client

  void start() override {
    if constexpr (!kTls) {
      return read();  // the request timeout bounds a client that sends nothing
    }
    beast::get_lowest_layer(stream).expires_after(milliseconds(hub->limits.handshake_timeout_ms));
    // A client speaking plain HTTP to this TLS port is told so, instead of a failed handshake
    // (curl says only "Empty reply from server").
    auto& socket = beast::get_lowest_layer(stream).socket();
    // The wait is the socket's own, outside the stream's timer: a timer of its own bounds it (a
    // client that connects and sends nothing holds no slot for long).
    first_byte.expires_after(milliseconds(hub->limits.handshake_timeout_ms));
    first_byte.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (ec || self->dead || self->waited) return;
      ++self->hub->counters.timeouts;
      self->fail();
    });
    socket.async_wait(
        tcp::socket::wait_read, [self = shared_from_this()](boost::system::error_code ec) {
          self->waited = true;
          self->first_byte.cancel();
          if (self->dead) return;
          if (ec) return self->fail();
          char first[4] = {};
          boost::system::error_code pe;
          const auto n = beast::get_lowest_layer(self->stream)
                             .socket()
                             .receive(net::buffer(first), tcp::socket::message_peek, pe);
          if (!pe && n >= 3 && std::isupper(static_cast<unsigned char>(first[0])) &&
              std::isupper(static_cast<unsigned char>(first[1])) &&
              std::isupper(static_cast<unsigned char>(first[2]))) {
            ++self->hub->counters.handshakes_failed;
            return self->refuse_plain();
          }
          self->handshake();
        });
  }

  void refuse_plain() {
    const std::string body =
        "{\"type\":\"about:blank\",\"title\":\"Bad Request\",\"status\":400,\"detail\":"
        "\"this port speaks HTTPS only: use https://\"}";
    auto text = std::make_shared<std::string>(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: application/problem+json\r\nConnection: "
        "close\r\nContent-Length: " +
        std::to_string(body.size()) + "\r\n\r\n" + body);
    net::async_write(beast::get_lowest_layer(stream).socket(), net::buffer(*text),
                     [self = shared_from_this(), text](boost::system::error_code, std::size_t) {
                       self->fail();
                     });
  }

  void handshake() {
    if constexpr (kTls) {
      stream.async_handshake(ssl::stream_base::server,
                             [self = shared_from_this()](boost::system::error_code ec) {
                               if (self->dead) return;
                               if (ec) {
                                 ++self->hub->counters.handshakes_failed;
                                 return self->fail();
                               }
                               self->read();
                             });
    }
  }

  void read() {
    parser.emplace();
    parser->header_limit(static_cast<std::uint32_t>(hub->limits.max_header_bytes));
    parser->body_limit(hub->limits.max_body_bytes);
    beast::get_lowest_layer(stream).expires_after(milliseconds(hub->limits.request_timeout_ms));
    bhttp::async_read(stream, buffer, *parser,
                      [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                        self->on_read(ec);
                      });
  }

  void on_read(boost::system::error_code ec) {
    if (dead) return;
    if (ec == bhttp::error::end_of_stream || ec == net::error::eof ||
        ec == ssl::error::stream_truncated || ec == net::error::connection_reset) {
      return fail();
    }
    if (ec == beast::error::timeout) {
      // The stream's timer closed the socket: a slow (or idle keep-alive) client is dropped
      // without an answer, as nginx drops one past client_header_timeout.
      ++hub->counters.timeouts;
      return fail();
    }
    if (ec == bhttp::error::header_limit) {
      ++hub->counters.too_large;
      return answer_error(431, "the request's headers pass " +
                                   std::to_string(hub->limits.max_header_bytes) + " bytes");
    }
    if (ec == bhttp::error::body_limit) {
      ++hub->counters.too_large;
      return answer_error(413, "the request's body passes " +
                                   std::to_string(hub->limits.max_body_bytes) + " bytes");
    }
    if (ec) {
      ++hub->counters.bad_requests;
      return answer_error(400, "malformed HTTP: " + ec.message());
    }
    beast::get_lowest_layer(stream).expires_never();
    auto msg = parser->release();
    ++hub->counters.requests;
    Request r;
    r.method = std::string(msg.method_string());
    r.target = std::string(msg.target());
    split_target(r.target, &r);
    for (const auto& f : msg) {
      std::string name(f.name_string());
      std::transform(name.begin(), name.end(), name.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      auto [it, fresh] = r.headers.emplace(name, std::string(f.value()));
      if (!fresh) it->second += ", " + std::string(f.value());
    }
    r.body = std::move(msg.body());
    r.peer = peer;
    const bool keep_alive = msg.keep_alive();
    const std::uint64_t gen = ++generation;
    std::weak_ptr<BasicConnection> weak = shared_from_this();
    Reply reply = [weak, gen, keep_alive](Response resp) {
      auto self = weak.lock();
      if (!self || self->dead || self->generation != gen) return;
      ++self->generation;  // a second call is ignored
      self->respond(std::move(resp), keep_alive);
    };
    if (hub->stopped || !hub->handlers.request) return fail();
    hub->handlers.request(r, id, std::move(reply));
  }

  void answer_error(int status, const std::string& detail) {
    Response r;
    r.status = status;
    r.content_type = "application/problem+json";
    r.body = problem(status, detail);
    respond(std::move(r), false);
  }

  void respond(Response resp, bool keep_alive) {
    if (resp.stream) return open_stream(std::move(resp));
    auto res = std::make_shared<bhttp::response<bhttp::string_body>>(
        static_cast<bhttp::status>(resp.status), 11);
    if (resp.status != 204 && resp.status != 304) {
      res->set(bhttp::field::content_type, resp.content_type);
    }
    res->set(bhttp::field::cache_control, "no-store");
    for (const auto& [k, v] : resp.headers) res->set(k, v);
    res->body() = std::move(resp.body);
    res->keep_alive(keep_alive);
    res->prepare_payload();
    beast::get_lowest_layer(stream).expires_after(milliseconds(hub->limits.request_timeout_ms));
    bhttp::async_write(stream, *res,
                       [self = shared_from_this(), res](boost::system::error_code ec, std::size_t) {
                         if (self->dead) return;
                         if (ec) return self->fail();
                         if (!res->keep_alive()) return self->shut();
                         self->read();
                       });
  }

  void open_stream(Response resp) {
    if (hub->streams >= hub->limits.max_streams) {
      ++hub->counters.streams_refused;
      Response busy;
      busy.status = 503;
      busy.content_type = "application/problem+json";
      busy.body = problem(503, "the server has " + std::to_string(hub->limits.max_streams) +
                                   " streams open; try again later");
      busy.headers.emplace_back("Retry-After", "5");
      return respond(std::move(busy), false);
    }
    ++hub->streams;
    ++hub->counters.streams_opened;
    is_stream = true;
    // No length: the body is the stream, until the connection closes.
    std::string head = "HTTP/1.1 " + std::to_string(resp.status) + " " +
                       reason_phrase(resp.status) + "\r\nContent-Type: " + resp.content_type +
                       "\r\nCache-Control: no-store\r\nConnection: close\r\n";
    for (const auto& [k, v] : resp.headers) head += k + ": " + v + "\r\n";
    head += "\r\n" + resp.body;
    enqueue(std::move(head));
    watch();
  }

  // A stream's client sends nothing more: a read that ends says it left.
  void watch() {
    stream.async_read_some(net::buffer(&sink, 1),
                           [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                             if (self->dead) return;
                             if (ec) return self->fail();
                             self->watch();
                           });
  }

  void enqueue(std::string bytes) override {
    if (dead || closing) return;
    queued += bytes.size();
    if (queued > hub->limits.max_stream_queued) {
      ++hub->counters.streams_dropped;  // a client that does not read is dropped
      return fail();
    }
    out.push_back(std::move(bytes));
    if (!writing) write();
  }

  void write() {
    writing = true;
    beast::get_lowest_layer(stream).expires_after(milliseconds(hub->limits.request_timeout_ms));
    net::async_write(stream, net::buffer(out.front()),
                     [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                       self->writing = false;
                       if (self->dead) return;
                       self->queued -= self->out.front().size();
                       self->out.pop_front();
                       if (ec) {
                         if (ec == beast::error::timeout) ++self->hub->counters.streams_dropped;
                         return self->fail();
                       }
                       if (!self->out.empty()) return self->write();
                       beast::get_lowest_layer(self->stream).expires_never();
                       if (self->closing) self->shut();
                     });
  }

  void close() override {
    if (dead || closing) return;
    closing = true;
    if (!writing) shut();
  }

  void shut() {
    if constexpr (kTls) {
      beast::get_lowest_layer(stream).expires_after(milliseconds(1000));
      stream.async_shutdown(
          [self = shared_from_this()](boost::system::error_code) { self->fail(); });
    } else {
      // Our side ends; what the client still sends (the rest of a refused request) is read and
      // dropped for at most a second, so that closing does not reset the connection before the
      // client has read the answer (a close with unread data sends RST).
      boost::system::error_code ignored;
      beast::get_lowest_layer(stream).socket().shutdown(tcp::socket::shutdown_send, ignored);
      beast::get_lowest_layer(stream).expires_after(milliseconds(1000));
      drain();
    }
  }

  void drain() {
    stream.async_read_some(net::buffer(drained),
                           [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                             if (self->dead) return;
                             if (ec) return self->fail();
                             self->drain();
                           });
  }

  void fail() override {
    if (dead) return;
    dead = true;
    first_byte.cancel();
    boost::system::error_code ignored;
    beast::get_lowest_layer(stream).socket().shutdown(tcp::socket::shutdown_both, ignored);
    beast::get_lowest_layer(stream).socket().close(ignored);
    auto keep = shared_from_this();
    hub->connections.erase(id);
    if (is_stream) {
      --hub->streams;
      if (!hub->stopped && hub->handlers.stream_closed) hub->handlers.stream_closed(id);
    }
  }
};

void Server::Hub::accept() {
  acceptor.async_accept([hub = shared_from_this()](boost::system::error_code ec, tcp::socket s) {
    if (hub->stopped) return;
    if (!ec) {
      if (hub->connections.size() >= hub->limits.max_connections) {
        ++hub->counters.refused_full;
        boost::system::error_code ignored;
        s.close(ignored);
      } else {
        ++hub->counters.accepted;
        // A response is written as TLS records of its head and body: without this, Nagle's
        // algorithm holds the second until the client's delayed ACK (40 ms a request).
        boost::system::error_code ignored;
        s.set_option(tcp::no_delay(true), ignored);
        const ConnectionId id = hub->next++;
        std::shared_ptr<Connection> c;
        if (hub->ctx)
          c = std::make_shared<BasicConnection<true>>(hub, id, std::move(s));
        else
          c = std::make_shared<BasicConnection<false>>(hub, id, std::move(s));
        hub->connections[id] = c;
        c->start();
      }
    }
    hub->accept();
  });
}

Server::Server(std::shared_ptr<Hub> hub) : hub_(std::move(hub)) {}

namespace {

Result<std::unique_ptr<ssl::context>> tls_context(const Credentials& credentials) {
  auto ctx = std::make_unique<ssl::context>(ssl::context::tls_server);
  SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_compression);
  boost::system::error_code ec;
  ctx->use_certificate_chain(net::buffer(credentials.certificate_pem), ec);
  if (!ec) ctx->use_private_key(net::buffer(credentials.key_pem), ssl::context::pem, ec);
  if (ec) return invalid_argument("the API's TLS certificate and key: " + ec.message());
  if (SSL_CTX_check_private_key(ctx->native_handle()) != 1) {
    return invalid_argument("the API's TLS key is not the certificate's");
  }
  return ctx;
}

}  // namespace

Result<std::unique_ptr<Server>> Server::open(net::io_context& io, const std::string& address,
                                             std::unique_ptr<ssl::context> ctx, Handlers handlers,
                                             Limits limits) {
  auto addr = model::SocketAddress::parse(address);
  if (!addr.is_ok()) return invalid_argument("listen " + address + ": " + addr.status().message());
  auto hub = std::make_shared<Hub>(io, std::move(ctx), std::move(handlers), limits);
  boost::system::error_code ec;
  const tcp::endpoint ep(net::ip::make_address(addr.value().ip().to_string(), ec),
                         addr.value().port());
  if (!ec) hub->acceptor.open(ep.protocol(), ec);
  if (!ec) hub->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) hub->acceptor.bind(ep, ec);
  if (!ec) hub->acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) return unavailable("listen " + address + ": " + ec.message());
  hub->accept();
  return std::unique_ptr<Server>(new Server(std::move(hub)));
}

Result<std::unique_ptr<Server>> Server::listen(net::io_context& io, const std::string& address,
                                               const Credentials& credentials, Handlers handlers,
                                               Limits limits) {
  auto ctx = tls_context(credentials);
  if (!ctx.is_ok()) return ctx.status();
  return open(io, address, std::move(ctx).value(), std::move(handlers), limits);
}

Result<std::unique_ptr<Server>> Server::listen_plain(net::io_context& io,
                                                     const std::string& address, Handlers handlers,
                                                     Limits limits) {
  return open(io, address, nullptr, std::move(handlers), limits);
}

Server::~Server() {
  hub_->stopped = true;
  boost::system::error_code ignored;
  hub_->acceptor.close(ignored);
  auto connections = std::move(hub_->connections);
  for (auto& [id, c] : connections) c->fail();
}

void Server::send(ConnectionId stream, std::string bytes) {
  const auto it = hub_->connections.find(stream);
  if (it != hub_->connections.end() && it->second->is_stream) {
    auto keep = it->second;
    keep->enqueue(std::move(bytes));
  }
}

void Server::close(ConnectionId stream) {
  const auto it = hub_->connections.find(stream);
  if (it != hub_->connections.end()) {
    auto keep = it->second;
    keep->close();
  }
}

std::uint16_t Server::port() const {
  boost::system::error_code ec;
  return hub_->acceptor.local_endpoint(ec).port();
}
std::size_t Server::connections() const {
  return hub_->connections.size();
}
std::size_t Server::streams() const {
  return hub_->streams;
}
const Counters& Server::counters() const {
  return hub_->counters;
}

}  // namespace patronus::http
