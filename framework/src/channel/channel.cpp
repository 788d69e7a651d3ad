#include "channel.hpp"

#include "patronus/util/backoff.hpp"

#include <openssl/ssl.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <chrono>
#include <deque>
#include <map>

#include "patronus/model/address.hpp"

namespace patronus::channel {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace websocket = boost::beast::websocket;
using tcp = boost::asio::ip::tcp;
using Stream = websocket::stream<beast::ssl_stream<beast::tcp_stream>>;
using std::chrono::milliseconds;

namespace {

constexpr const char* kTarget = "/patronus/v1/site";
constexpr std::size_t kReadChunk = 64 * 1024;  // bytes a server session reads at a time

Result<std::unique_ptr<ssl::context>> make_context(const TlsIdentity& id, bool server) {
  auto ctx = std::make_unique<ssl::context>(ssl::context::tls);
  SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_3_VERSION);
  boost::system::error_code ec;
  ctx->use_certificate_chain(net::buffer(id.certificate_pem), ec);
  if (!ec) ctx->use_private_key(net::buffer(id.key_pem), ssl::context::pem, ec);
  if (ec) return invalid_argument("TLS identity: " + ec.message());
  // Both ends present self-signed certificates; the keys are checked after the handshake
  // (the server against its enrolled sites, the client against its pin), not against a CA.
  ctx->set_verify_mode(ssl::verify_peer | (server ? ssl::verify_fail_if_no_peer_cert : 0));
  ctx->set_verify_callback([](bool, ssl::verify_context&) { return true; });
  return ctx;
}

std::string reason(const boost::system::error_code& ec) {
  // A peer that stops (a controller restarting) closes TCP under TLS without close_notify.
  if (ec == ssl::error::stream_truncated || ec == websocket::error::closed ||
      ec == net::error::eof || ec == net::error::connection_reset) {
    return "the other end closed it (" + ec.message() + ")";
  }
  return ec.message();
}

}  // namespace

// ---- server ---------------------------------------------------------------------------------

struct Session;

struct Server::Hub : std::enable_shared_from_this<Server::Hub> {
  Hub(net::io_context& io, std::unique_ptr<ssl::context> ctx, Handlers h, ServerLimits l)
      : io(io), ctx(std::move(ctx)), acceptor(io), handlers(std::move(h)), limits(l) {}
  net::io_context& io;
  std::unique_ptr<ssl::context> ctx;
  tcp::acceptor acceptor;
  Handlers handlers;
  ServerLimits limits;
  ServerCounters counters;
  bool stopped = false;
  SessionId next = 1;
  std::map<SessionId, std::shared_ptr<Session>> sessions;
  void accept();
};

struct Session : std::enable_shared_from_this<Session> {
  Session(std::shared_ptr<Server::Hub> hub, SessionId id, tcp::socket socket)
      : hub(std::move(hub)), id(id), ws(std::move(socket), *this->hub->ctx) {}
  std::shared_ptr<Server::Hub> hub;
  SessionId id;
  Stream ws;
  beast::flat_buffer buffer;
  std::deque<std::string> out;
  std::size_t queued = 0;
  bool writing = false, closing = false, open = false, dead = false;

  void start() {
    beast::get_lowest_layer(ws).expires_after(milliseconds(hub->limits.handshake_timeout_ms));
    ws.next_layer().async_handshake(
        ssl::stream_base::server,
        [self = shared_from_this()](boost::system::error_code ec) { self->on_tls(ec); });
  }
  void on_tls(boost::system::error_code ec) {
    if (dead) return;
    if (ec) return fail(true);
    auto key = peer_key(ws.next_layer().native_handle());
    if (!key.is_ok()) return fail(true);
    beast::get_lowest_layer(ws).expires_never();
    websocket::stream_base::timeout t;
    t.handshake_timeout = milliseconds(hub->limits.handshake_timeout_ms);
    t.idle_timeout = milliseconds(hub->limits.idle_timeout_ms);
    t.keep_alive_pings = true;
    ws.set_option(t);
    // Beast's own bound is a backstop: read() counts a message's bytes itself, because an
    // oversized message surfaces from Beast as the TLS teardown's error, not as too big.
    ws.read_message_max(hub->limits.max_message + kReadChunk);
    ws.async_accept([self = shared_from_this(), k = key.value()](boost::system::error_code e) {
      if (self->dead) return;
      if (e) return self->fail(true);
      self->open = true;
      if (!self->hub->stopped && self->hub->handlers.opened)
        self->hub->handlers.opened(self->id, k);
      if (!self->dead) self->read();
    });
  }
  void read() {
    ws.async_read_some(buffer, kReadChunk,
                       [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                         if (self->dead) return;
                         if (ec == websocket::error::message_too_big ||
                             (!ec && self->buffer.size() > self->hub->limits.max_message)) {
                           ++self->hub->counters.oversized;
                           return self->fail(false);
                         }
                         if (ec) return self->fail(false);
                         if (!self->ws.is_message_done()) return self->read();
                         const std::string message = beast::buffers_to_string(self->buffer.data());
                         self->buffer.consume(self->buffer.size());
                         if (!self->hub->stopped && self->hub->handlers.message) {
                           self->hub->handlers.message(self->id, message);
                         }
                         if (!self->dead) self->read();
                       });
  }
  void send(std::string m) {
    if (dead || closing || !open) return;
    queued += m.size();
    if (queued > hub->limits.max_queued) {
      ++hub->counters.overflowed;  // a site that does not read is dropped, not buffered
      return fail(false);
    }
    out.push_back(std::move(m));
    if (!writing) write();
  }
  void write() {
    writing = true;
    ws.binary(true);
    ws.async_write(net::buffer(out.front()),
                   [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                     self->writing = false;
                     if (self->dead) return;
                     self->queued -= self->out.front().size();
                     self->out.pop_front();
                     if (ec) return self->fail(false);
                     if (!self->out.empty()) return self->write();
                     if (self->closing) self->shut();
                   });
  }
  void close() {
    if (dead || closing) return;
    closing = true;
    if (!open) return fail(false);
    if (!writing) shut();
  }
  void shut() {
    ws.async_close(websocket::close_code::normal,
                   [self = shared_from_this()](boost::system::error_code) { self->fail(false); });
  }
  void fail(bool handshake) {
    if (dead) return;
    dead = true;
    if (handshake) ++hub->counters.handshakes_failed;
    boost::system::error_code ignored;
    beast::get_lowest_layer(ws).socket().close(ignored);
    ++hub->counters.closed;
    const bool was_open = open;
    auto keep = shared_from_this();
    hub->sessions.erase(id);
    if (was_open && !hub->stopped && hub->handlers.closed) hub->handlers.closed(id);
  }
};

void Server::Hub::accept() {
  acceptor.async_accept([hub = shared_from_this()](boost::system::error_code ec, tcp::socket s) {
    if (hub->stopped) return;
    if (!ec) {
      if (hub->sessions.size() >= hub->limits.max_sessions) {
        ++hub->counters.refused_full;
        boost::system::error_code ignored;
        s.close(ignored);
      } else {
        ++hub->counters.accepted;
        const SessionId id = hub->next++;
        auto session = std::make_shared<Session>(hub, id, std::move(s));
        hub->sessions[id] = session;
        session->start();
      }
    }
    hub->accept();
  });
}

Server::Server(std::shared_ptr<Hub> hub) : hub_(std::move(hub)) {}

Result<std::unique_ptr<Server>> Server::listen(net::io_context& io, const std::string& address,
                                               const TlsIdentity& identity, Handlers handlers,
                                               ServerLimits limits) {
  auto addr = model::SocketAddress::parse(address);
  if (!addr.is_ok()) return invalid_argument("listen " + address + ": " + addr.status().message());
  auto ctx = make_context(identity, true);
  if (!ctx.is_ok()) return ctx.status();
  auto hub = std::make_shared<Hub>(io, std::move(ctx).value(), std::move(handlers), limits);
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

Server::~Server() {
  hub_->stopped = true;
  boost::system::error_code ignored;
  hub_->acceptor.close(ignored);
  auto sessions = std::move(hub_->sessions);
  for (auto& [id, s] : sessions) s->fail(false);
}

void Server::send(SessionId session, std::string message) {
  const auto it = hub_->sessions.find(session);
  if (it != hub_->sessions.end()) {
    auto keep = it->second;
    keep->send(std::move(message));
  }
}

void Server::close(SessionId session) {
  const auto it = hub_->sessions.find(session);
  if (it != hub_->sessions.end()) {
    auto keep = it->second;
    keep->close();
  }
}

std::uint16_t Server::port() const {
  boost::system::error_code ec;
  return hub_->acceptor.local_endpoint(ec).port();
}
std::size_t Server::sessions() const {
  return hub_->sessions.size();
}
const ServerCounters& Server::counters() const {
  return hub_->counters;
}

// ---- client ---------------------------------------------------------------------------------

struct Client::State : std::enable_shared_from_this<Client::State> {
  State(net::io_context& io, std::string address, PublicKey pin, TlsIdentity identity,
        Handlers handlers, ClientOptions options)
      : io(io),
        address(std::move(address)),
        pin(pin),
        identity(std::move(identity)),
        handlers(std::move(handlers)),
        options(options),
        resolver(io),
        retry(io),
        rng(options.seed ^ 0x9E3779B97F4A7C15ULL) {}
  net::io_context& io;
  std::string address;
  PublicKey pin;
  TlsIdentity identity;
  Handlers handlers;
  ClientOptions options;
  std::unique_ptr<ssl::context> ctx;
  std::unique_ptr<Stream> ws;
  tcp::resolver resolver;
  net::steady_timer retry;
  beast::flat_buffer buffer;
  std::deque<std::string> out;
  std::size_t queued = 0;
  bool writing = false, running = false, held = false, up = false;
  std::uint64_t generation = 0, rng;
  int failures = 0;

  std::uint64_t next_random() {  // xorshift
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
  }

  void attempt() {
    const std::uint64_t gen = ++generation;
    if (!ctx) {
      auto c = make_context(identity, false);
      if (!c.is_ok()) return lost(gen, c.status().message());
      ctx = std::move(c).value();
    }
    ws = std::make_unique<Stream>(io, *ctx);
    buffer.consume(buffer.size());
    out.clear();
    queued = 0;
    writing = false;
    const auto colon = address.rfind(':');
    if (colon == std::string::npos) return lost(gen, "the address has no port: " + address);
    std::string host = address.substr(0, colon);
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
      host = host.substr(1, host.size() - 2);
    }
    const std::string port = address.substr(colon + 1);
    resolver.async_resolve(
        host, port,
        [self = shared_from_this(), gen, host](boost::system::error_code ec,
                                               tcp::resolver::results_type results) {
          if (gen != self->generation) return;
          if (ec) return self->lost(gen, "resolve " + self->address + ": " + reason(ec));
          auto& tcp_layer = beast::get_lowest_layer(*self->ws);
          tcp_layer.expires_after(milliseconds(self->options.connect_timeout_ms));
          tcp_layer.async_connect(
              results, [self, gen, host](boost::system::error_code e, const tcp::endpoint&) {
                if (gen != self->generation) return;
                if (e) return self->lost(gen, "connect " + self->address + ": " + reason(e));
                self->ws->next_layer().async_handshake(
                    ssl::stream_base::client, [self, gen, host](boost::system::error_code e2) {
                      if (gen != self->generation) return;
                      if (e2)
                        return self->lost(gen, "TLS with " + self->address + ": " + reason(e2));
                      auto key = peer_key(self->ws->next_layer().native_handle());
                      if (!key.is_ok()) return self->lost(gen, key.status().message());
                      if (key.value() != self->pin) {
                        return self->lost(gen, "the controller at " + self->address +
                                                   " has the key " + pin_of(key.value()) +
                                                   ", not the pinned " + pin_of(self->pin));
                      }
                      beast::get_lowest_layer(*self->ws).expires_never();
                      websocket::stream_base::timeout t;
                      t.handshake_timeout = milliseconds(self->options.connect_timeout_ms);
                      t.idle_timeout = milliseconds(self->options.idle_timeout_ms);
                      t.keep_alive_pings = true;
                      self->ws->set_option(t);
                      self->ws->read_message_max(self->options.max_message);
                      self->ws->async_handshake(
                          host, kTarget, [self, gen](boost::system::error_code e3) {
                            if (gen != self->generation) return;
                            if (e3)
                              return self->lost(
                                  gen, "WebSocket with " + self->address + ": " + reason(e3));
                            self->up = true;
                            self->failures = 0;
                            if (self->handlers.connected) self->handlers.connected();
                            if (gen == self->generation) self->read(gen);
                          });
                    });
              });
        });
  }

  void read(std::uint64_t gen) {
    ws->async_read(
        buffer, [self = shared_from_this(), gen](boost::system::error_code ec, std::size_t) {
          if (gen != self->generation) return;
          if (ec)
            return self->lost(gen, "the session with " + self->address + " ended: " + reason(ec));
          const std::string m = beast::buffers_to_string(self->buffer.data());
          self->buffer.consume(self->buffer.size());
          if (self->handlers.message) self->handlers.message(m);
          if (gen == self->generation) self->read(gen);
        });
  }

  void send(std::string m) {
    if (!up) return;
    queued += m.size();
    if (queued > options.max_queued) {
      return lost(generation, "the send queue to " + address + " passed " +
                                  std::to_string(options.max_queued) + " bytes");
    }
    out.push_back(std::move(m));
    if (!writing) write(generation);
  }
  void write(std::uint64_t gen) {
    writing = true;
    ws->binary(true);
    ws->async_write(net::buffer(out.front()),
                    [self = shared_from_this(), gen](boost::system::error_code ec, std::size_t) {
                      if (gen != self->generation) return;
                      self->writing = false;
                      self->queued -= self->out.front().size();
                      self->out.pop_front();
                      if (ec)
                        return self->lost(gen, "write to " + self->address + ": " + reason(ec));
                      if (!self->out.empty()) self->write(gen);
                    });
  }

  void drop_connection() {
    up = false;
    boost::system::error_code ignored;
    if (ws) beast::get_lowest_layer(*ws).socket().close(ignored);
    resolver.cancel();
  }

  void lost(std::uint64_t gen, const std::string& why) {
    if (gen != generation) return;
    ++generation;  // every handler of this attempt is stale from here
    drop_connection();
    std::int64_t delay = -1;
    if (running && !held) {
      delay = backoff_ms(failures, options.min_backoff_ms, options.max_backoff_ms, next_random());
      ++failures;
    }
    if (handlers.disconnected) handlers.disconnected(why, delay);
    if (delay < 0 || !running || held) return;
    const std::uint64_t at = generation;
    retry.expires_after(milliseconds(delay));
    retry.async_wait([self = shared_from_this(), at](boost::system::error_code ec) {
      if (ec || at != self->generation || !self->running || self->held) return;
      self->attempt();
    });
  }
};

Client::Client(net::io_context& io, std::string address, PublicKey pin, TlsIdentity identity,
               Handlers handlers, ClientOptions options)
    : state_(std::make_shared<State>(io, std::move(address), pin, std::move(identity),
                                     std::move(handlers), options)) {}

Client::~Client() {
  stop();
}

void Client::start() {
  if (state_->running && !state_->held) return;
  state_->running = true;
  state_->held = false;
  state_->failures = 0;
  state_->attempt();
}

void Client::stop() {
  state_->running = false;
  ++state_->generation;
  state_->retry.cancel();
  state_->drop_connection();
}

void Client::hold() {
  state_->held = true;
  ++state_->generation;
  state_->retry.cancel();
  state_->drop_connection();
}

bool Client::connected() const {
  return state_->up;
}
void Client::send(std::string message) {
  state_->send(std::move(message));
}

}  // namespace patronus::channel
