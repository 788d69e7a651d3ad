// The control API: its JSON (64-bit integers as numbers, unset optionals as null, parsed back
// defensively), sorting of path lists, and the unix-socket server on the real Env: owner-only,
// one reply per request line, bounded (request size, connections), refusing a live socket or a
// path that is not a socket, replacing a dead daemon's socket, and removing its own on close.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "control.hpp"
#include "patronus/env/asio_env.hpp"
#include "patronus/site/v1/site_config.pb.h"
#include "socket.hpp"
#include "test_support.hpp"

namespace {

using namespace patronus;
namespace api = control::api;

TEST(ControlJson, SixtyFourBitIntegersAreNumbersAndUnsetOptionalsNull) {
  api::Response r;
  auto* p = r.mutable_paths()->add_paths();
  p->set_id(1ull << 40);
  p->set_name("hq:wan0~branch:wan0");
  p->set_score(87.5);
  const auto j = nlohmann::json::parse(control::to_json(r));
  // Only the oneof member that is set; every field of it, unset optionals as null.
  EXPECT_FALSE(j.contains("error"));
  const auto& x = j["paths"]["paths"][0];
  EXPECT_EQ(x["id"].get<std::uint64_t>(), 1ull << 40);
  EXPECT_EQ(x["score"].get<double>(), 87.5);
  EXPECT_TRUE(x["latency_ms"].is_null());
  EXPECT_TRUE(x["tunnel"].is_null());
  EXPECT_EQ(x["samples"], 0);
  EXPECT_EQ(x["state"], "");
  // And back: the same message.
  api::Response back;
  ASSERT_TRUE(control::from_json(control::to_json(r), &back).is_ok());
  EXPECT_EQ(back.SerializeAsString(), r.SerializeAsString());
  // The standard mapping (64-bit integers as strings) parses too; unknown fields are a newer
  // peer's and are ignored.
  api::Request q;
  ASSERT_TRUE(control::from_json(R"({"flows": {"limit": "7"}, "future": 1})", &q).is_ok());
  EXPECT_EQ(q.flows().limit(), 7u);
  // Maps render as objects.
  api::StatusReply s;
  (*s.mutable_counters())["runtime.samples"] = 5;
  EXPECT_EQ(nlohmann::json::parse(control::to_json(s))["counters"]["runtime.samples"], 5);
}

// Bytes fields are base64 both ways (protobuf's JSON mapping), whatever their length and bytes.
TEST(ControlJson, BytesFieldsRoundTripAsBase64) {
  for (const std::string& bytes :
       {std::string(), std::string("\0", 1), std::string("\x08\xff"), std::string("\x10\x32\x18"),
        std::string("\xe8\x07\x20\x03"), std::string(257, '\x80')}) {
    site::v1::PluginInstance p;
    p.set_instance("probe");
    p.set_config(bytes);
    const std::string text = control::to_json(p);
    site::v1::PluginInstance back;
    ASSERT_TRUE(control::from_json(text, &back).is_ok()) << text;
    EXPECT_EQ(back.config(), bytes) << text;
  }
  site::v1::PluginInstance p;
  p.set_config("\x10\x32\x18");
  EXPECT_EQ(nlohmann::json::parse(control::to_json(p))["config"], "EDIY");
}

TEST(ControlJson, MalformedInputIsRefusedNamingTheMessage) {
  api::Request q;
  for (const char* bad : {"", "{", "[1,2]", R"({"flows": {"limit": -1}})",
                          R"({"flows": {"limit": "x"}})", R"({"status": 3})", "\xff\xfe"}) {
    auto s = control::from_json(bad, &q);
    ASSERT_FALSE(s.is_ok()) << bad;
    EXPECT_EQ(s.code(), Code::kInvalidArgument);
    EXPECT_NE(s.message().find("Request"), std::string::npos) << s.message();
    EXPECT_EQ(q.what_case(), api::Request::WHAT_NOT_SET);  // nothing half-parsed is kept
  }
}

TEST(ControlPaths, SortedBestFirstUnmeasuredLast) {
  api::PathsReply r;
  auto add = [&](std::uint64_t id, std::optional<double> score, std::optional<double> rtt,
                 std::optional<double> loss) {
    auto* p = r.add_paths();
    p->set_id(id);
    if (score) p->set_score(*score);
    if (rtt) p->set_latency_ms(*rtt);
    if (loss) p->set_loss_pct(*loss);
  };
  add(1, std::nullopt, std::nullopt, std::nullopt);
  add(2, 50, 30, 1);
  add(3, 90, 40, 0);
  add(4, 90, 10, 2);
  auto ids = [&] {
    std::vector<std::uint64_t> v;
    for (const auto& p : r.paths()) v.push_back(p.id());
    return v;
  };
  ASSERT_TRUE(control::sort_paths(r, "score").is_ok());
  EXPECT_EQ(ids(), (std::vector<std::uint64_t>{3, 4, 2, 1}));  // ties by id
  ASSERT_TRUE(control::sort_paths(r, "latency").is_ok());
  EXPECT_EQ(ids(), (std::vector<std::uint64_t>{4, 2, 3, 1}));
  ASSERT_TRUE(control::sort_paths(r, "loss").is_ok());
  EXPECT_EQ(ids(), (std::vector<std::uint64_t>{3, 2, 4, 1}));
  EXPECT_EQ(control::sort_paths(r, "jitter").code(), Code::kInvalidArgument);
}

// A daemon-like host: a router without a runtime, its Env run on a thread.
class ControlServerTest : public ::testing::Test {
 protected:
  void SetUp() override { sock_ = dir_.file("d.sock"); }
  void TearDown() override { stop(); }
  Status open(control::ServerLimits limits = {}) {
    auto s = control::ControlServer::open(
        env_, sock_, [this](const api::Request& q) { return service_.handle(q); }, limits);
    if (!s.is_ok()) return s.status();
    server_ = std::move(s).value();
    return Status::ok();
  }
  void run() {
    thread_ = std::thread([this] { io_.run(); });
  }
  void stop() {
    io_.stop();
    if (thread_.joinable()) thread_.join();
    server_.reset();
  }
  // A raw connection: sends `text`, returns what comes back until the server closes or `lines`
  // lines arrived. A server that refuses the connection answers and closes it at once, possibly
  // before `text` is written: then the send fails (EPIPE) and the answer is still there to read.
  std::string raw(const std::string& text, int lines = 1, bool may_be_refused = false) {
    const int fd = connect_raw();
    EXPECT_GE(fd, 0);
    const ssize_t sent = ::send(fd, text.data(), text.size(), MSG_NOSIGNAL);
    if (!(may_be_refused && sent < 0 && (errno == EPIPE || errno == ECONNRESET))) {
      EXPECT_EQ(sent, static_cast<ssize_t>(text.size())) << std::strerror(errno);
    }
    std::string got;
    char buf[4096];
    timeval tv{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    while (std::count(got.begin(), got.end(), '\n') < lines) {
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      got.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return got;
  }
  int connect_raw() {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, sock_.c_str(), sizeof a.sun_path - 1);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      ::close(fd);
      return -1;
    }
    return fd;
  }

  test::TempDir dir_;
  std::string sock_;
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_ =
      boost::asio::make_work_guard(io_);
  env::AsioEnv env_{io_, 1};
  core::RouterInstance router_{env_, "hq"};
  control::Service service_{control::DaemonInfo{"hq", "9.9.9", "hq.db", "", "none", 42, 1000, ""},
                            router_, nullptr, env_};
  std::unique_ptr<control::ControlServer> server_;
  std::thread thread_;
};

TEST_F(ControlServerTest, AnswersOverAnOwnerOnlySocketAndRemovesItOnClose) {
  ASSERT_TRUE(open().is_ok());
  struct stat st {};
  ASSERT_EQ(::stat(sock_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  run();
  api::Request q;
  q.mutable_status();
  auto r = control::call(sock_, q);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_TRUE(r.value().has_status());
  EXPECT_EQ(r.value().status().site(), "hq");
  EXPECT_EQ(r.value().status().pid(), 42);
  EXPECT_EQ(r.value().status().source(), "daemon");
  // Without a runtime, the path calls say why.
  q.mutable_paths();
  r = control::call(sock_, q);
  ASSERT_TRUE(r.is_ok());
  ASSERT_TRUE(r.value().has_error());
  EXPECT_EQ(r.value().error().code(), "FAILED_PRECONDITION");
  EXPECT_NE(r.value().error().message().find("no site runtime"), std::string::npos);
  // Several requests on one connection, answered in order; blank lines are skipped.
  const auto got = raw("{\"status\":{}}\n\n{}\n", 2);
  const auto nl = got.find('\n');
  ASSERT_NE(nl, std::string::npos) << got;
  EXPECT_TRUE(nlohmann::json::parse(got.substr(0, nl)).contains("status")) << got;
  EXPECT_EQ(nlohmann::json::parse(got.substr(nl + 1))["error"]["code"], "INVALID_ARGUMENT");
  stop();
  EXPECT_NE(::stat(sock_.c_str(), &st), 0);  // removed
  r = control::call(sock_, q);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("no control socket at " + sock_), std::string::npos);
}

TEST_F(ControlServerTest, HostileRequestsGetAnErrorAndChangeNothing) {
  control::ServerLimits lim;
  lim.max_request = 1024;
  ASSERT_TRUE(open(lim).is_ok());
  run();
  // Not JSON, the wrong JSON: an error naming it, and the connection still serves.
  auto got = raw("this is not json\n{\"status\":{}}\n", 2);
  auto j = nlohmann::json::parse(got.substr(0, got.find('\n')));
  EXPECT_EQ(j["error"]["code"], "INVALID_ARGUMENT") << got;
  EXPECT_TRUE(nlohmann::json::parse(got.substr(got.find('\n') + 1)).contains("status"));
  // Too long (with or without its newline): refused and closed.
  got = raw(std::string(2000, 'x') + "\n");
  EXPECT_NE(got.find("longer than 1024 bytes"), std::string::npos) << got;
  got = raw(std::string(5000, '{'), 1);
  EXPECT_NE(got.find("longer than 1024 bytes"), std::string::npos) << got;
  // Binary garbage with newlines in it.
  std::string junk;
  for (int i = 0; i < 512; ++i) junk.push_back(static_cast<char>((i * 73) & 0xff));
  const int junk_lines = static_cast<int>(std::count(junk.begin(), junk.end(), '\n')) + 1;
  got = raw(junk + "\n{\"status\":{}}\n", junk_lines + 1);
  EXPECT_NE(got.find("\"status\""), std::string::npos);
  EXPECT_EQ(server_->counters().oversized, 2u);
  EXPECT_GE(server_->counters().bad_requests, 1u);
  // The server is still whole.
  api::Request q;
  q.mutable_status();
  ASSERT_TRUE(control::call(sock_, q).is_ok());
}

TEST_F(ControlServerTest, ConnectionsAreBoundedAndTheExtraOneIsToldWhy) {
  control::ServerLimits lim;
  lim.max_connections = 2;
  ASSERT_TRUE(open(lim).is_ok());
  run();
  const int a = connect_raw(), b = connect_raw();
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  // Both accepted before the third arrives.
  for (int i = 0; i < 500 && server_->connections() < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  const auto got = raw("{\"status\":{}}\n", 1, true);
  EXPECT_NE(got.find("RESOURCE_EXHAUSTED"), std::string::npos) << got;
  EXPECT_NE(got.find("too many control connections (2)"), std::string::npos) << got;
  ::close(a);
  ::close(b);
  // Once they are gone, a new client is served.
  api::Request q;
  q.mutable_status();
  Result<api::Response> r = Status(Code::kInternal, "not tried");
  for (int i = 0; i < 500; ++i) {
    r = control::call(sock_, q);
    if (r.is_ok() && r.value().has_status()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ASSERT_TRUE(r.is_ok() && r.value().has_status());
}

TEST_F(ControlServerTest, ALiveSocketOrANonSocketIsLeftAloneAStaleOneReplaced) {
  // A path that is a regular file: refused, the file untouched.
  test::write_file(sock_, "precious");
  auto s = open();
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("is not a socket"), std::string::npos) << s.message();
  EXPECT_EQ(test::read_file(sock_), "precious");
  ::unlink(sock_.c_str());
  // A socket nobody listens on (a daemon that died): replaced.
  {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, sock_.c_str(), sizeof a.sun_path - 1);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    ::close(fd);
  }
  ASSERT_TRUE(open().is_ok());
  // A live one: the second server is refused and the first keeps serving.
  auto second = control::ControlServer::open(env_, sock_,
                                             [](const api::Request&) { return api::Response(); });
  ASSERT_FALSE(second.is_ok());
  EXPECT_NE(second.status().message().find("another process is listening"), std::string::npos);
  run();
  api::Request q;
  q.mutable_status();
  ASSERT_TRUE(control::call(sock_, q).is_ok());
  // Too long a path is refused before anything is created.
  auto longp = control::ControlServer::open(env_, dir_.file(std::string(120, 'x')),
                                            [](const api::Request&) { return api::Response(); });
  ASSERT_FALSE(longp.is_ok());
  EXPECT_NE(longp.status().message().find("a unix socket's limit"), std::string::npos);
}

}  // namespace
