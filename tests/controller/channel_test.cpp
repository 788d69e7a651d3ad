// The site channel on loopback: both ends pinned, messages both ways, and its refusals (a wrong
// pin, an oversized message, a full server), each seen from both ends.
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "channel.hpp"
#include "tls_identity.hpp"

namespace patronus::channel {
namespace {

// Runs the loop until `done` (or 10 s: then the assertion after it fails).
bool run_until(boost::asio::io_context& io, const std::function<bool()>& done) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!done() && std::chrono::steady_clock::now() < end) {
    io.run_for(std::chrono::milliseconds(5));
    if (io.stopped()) io.restart();
  }
  return done();
}

TlsIdentity identity(const std::string& name) {
  auto id = make_identity(name);
  EXPECT_TRUE(id.is_ok()) << id.status().to_string();
  return id.value();
}

struct Ends {
  boost::asio::io_context io;
  TlsIdentity server_id = identity("controller");
  std::vector<std::pair<SessionId, PublicKey>> opened;
  std::vector<std::string> at_server;
  std::vector<SessionId> closed;
  std::unique_ptr<Server> server;

  explicit Ends(ServerLimits limits = {}) {
    Server::Handlers h;
    h.opened = [this](SessionId s, const PublicKey& k) { opened.emplace_back(s, k); };
    h.message = [this](SessionId, std::string_view m) { at_server.emplace_back(m); };
    h.closed = [this](SessionId s) { closed.push_back(s); };
    auto s = Server::listen(io, "127.0.0.1:0", server_id, std::move(h), limits);
    EXPECT_TRUE(s.is_ok()) << s.status().to_string();
    server = std::move(s).value();
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(server->port()); }
};

struct Site {
  std::unique_ptr<Client> client;
  bool connected = false;
  std::vector<std::string> received;
  std::vector<std::string> why;

  Site(Ends& e, const PublicKey& pin, const TlsIdentity& id) {
    Client::Handlers h;
    h.connected = [this] { connected = true; };
    h.message = [this](std::string_view m) { received.emplace_back(m); };
    h.disconnected = [this](const std::string& w, std::int64_t) {
      connected = false;
      why.push_back(w);
      client->hold();  // one attempt is enough to see the refusal
    };
    ClientOptions o;
    o.min_backoff_ms = 50;
    client = std::make_unique<Client>(e.io, e.address(), pin, id, std::move(h), o);
    client->start();
  }
};

TEST(Channel, PinnedEndsExchangeMessagesAndTheServerLearnsTheSitesKey) {
  Ends e;
  const TlsIdentity site_id = identity("site-a");
  Site a(e, e.server_id.public_key, site_id);
  ASSERT_TRUE(run_until(e.io, [&] { return a.connected && !e.opened.empty(); }));
  EXPECT_EQ(e.opened[0].second, site_id.public_key) << "the session's peer is the site's key";
  a.client->send("hello");
  ASSERT_TRUE(run_until(e.io, [&] { return !e.at_server.empty(); }));
  EXPECT_EQ(e.at_server[0], "hello");
  e.server->send(e.opened[0].first, "config");
  ASSERT_TRUE(run_until(e.io, [&] { return !a.received.empty(); }));
  EXPECT_EQ(a.received[0], "config");
  EXPECT_EQ(e.server->sessions(), 1u);
}

TEST(Channel, AServerWithAnotherKeyThanThePinIsRefused) {
  Ends e;
  const TlsIdentity other = identity("impostor");
  Site a(e, other.public_key, identity("site-a"));
  ASSERT_TRUE(run_until(e.io, [&] { return !a.why.empty(); }));
  EXPECT_FALSE(a.connected);
  EXPECT_TRUE(e.opened.empty()) << "no session was opened";
  EXPECT_NE(a.why[0].find("pin"), std::string::npos) << a.why[0];
}

TEST(Channel, AnOversizedMessageClosesItsSession) {
  ServerLimits limits;
  limits.max_message = 1024;
  Ends e(limits);
  Site a(e, e.server_id.public_key, identity("site-a"));
  ASSERT_TRUE(run_until(e.io, [&] { return a.connected && !e.opened.empty(); }));
  a.client->send(std::string(4096, 'x'));
  ASSERT_TRUE(run_until(e.io, [&] { return !e.closed.empty() && !a.why.empty(); }));
  EXPECT_TRUE(e.at_server.empty()) << "the message was not delivered";
  EXPECT_EQ(e.server->counters().oversized, 1u);
  EXPECT_FALSE(a.connected);
}

TEST(Channel, AFullServerRefusesTheNextSession) {
  ServerLimits limits;
  limits.max_sessions = 1;
  Ends e(limits);
  Site a(e, e.server_id.public_key, identity("site-a"));
  ASSERT_TRUE(run_until(e.io, [&] { return a.connected; }));
  Site b(e, e.server_id.public_key, identity("site-b"));
  ASSERT_TRUE(run_until(e.io, [&] { return !b.why.empty(); }));
  EXPECT_FALSE(b.connected);
  EXPECT_EQ(e.server->counters().refused_full, 1u);
  EXPECT_EQ(e.opened.size(), 1u);
  EXPECT_TRUE(a.connected) << "the first session is untouched";
}

}  // namespace
}  // namespace patronus::channel
