// The operator API's request handlers fed hostile requests: any method, paths built from the
// route table's segments and the input's bytes, any headers (a valid admin token, a junk one or
// none), any body under any content type, in any order (a login, then writes with its token).
// Nothing may crash; every request is answered exactly once, with a status from 200 to 599, and a
// JSON content type carries a body that parses.
#include <sodium.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "api.hpp"
#include "auth.hpp"
#include "patronus/controller/core.hpp"
#include "patronus/env/virtual_world.hpp"

namespace {

using namespace patronus;

struct Reader {
  const std::uint8_t* p;
  std::size_t n;
  std::uint8_t byte() {
    if (n == 0) return 0;
    --n;
    return *p++;
  }
  std::string text(std::size_t max) {
    const std::size_t len = std::min<std::size_t>(byte() % (max + 1), n);
    std::string s(reinterpret_cast<const char*>(p), len);
    p += len;
    n -= len;
    return s;
  }
};

struct Null : controller::Outbox {
  void send(controller::SessionId, const controller::v1::ToSite&) override {}
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const bool once = sodium_init() >= 0;
  (void)once;
  boost::asio::io_context io;
  env::VirtualWorld world(1);
  env::Env& env = world.add_node("controller", {});
  Null outbox;
  auto store = controller::make_memory_fleet_store();
  controller::Core core(env, outbox, {}, store.get());
  controllerd::AuthOptions ao;
  ao.pwhash_ops = crypto_pwhash_OPSLIMIT_MIN;
  ao.pwhash_mem = crypto_pwhash_MEMLIMIT_MIN;
  std::array<std::uint8_t, 32> secret{};
  controllerd::Auth auth(env, store.get(), secret, ao);
  auto hash = controllerd::hash_password("correct horse battery", ao.pwhash_ops, ao.pwhash_mem);
  (void)auth.create_user("admin", controllerd::Role::kAdmin, hash.value(), {});
  auto a = auth.admit_login("admin", "127.0.0.1");
  const std::string admin = auth.finish_login(a.value(), true, "", {}).value().access_token;
  controllerd::Api api(io, env, core, auth, store.get());

  static const char* const kMethods[] = {"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "X"};
  static const char* const kTypes[] = {"application/json", "application/yaml", "text/plain", ""};
  std::vector<std::string> segments;
  for (const auto& r : api.routes()) {
    std::size_t start = 1;
    while (start < r.pattern.size()) {
      const auto slash = r.pattern.find('/', start);
      segments.push_back(
          r.pattern.substr(start, slash == std::string::npos ? slash : slash - start));
      if (slash == std::string::npos) break;
      start = slash + 1;
    }
  }
  Reader in{data, size};
  for (int i = 0; i < 16 && in.n > 0; ++i) {
    http::Request r;
    r.method = kMethods[in.byte() % 7];
    const int depth = in.byte() % 7;
    r.path = "/api/v1";
    for (int d = 0; d < depth; ++d) {
      const std::uint8_t pick = in.byte();
      r.path += "/" + (pick < 200 ? segments[pick % segments.size()] : in.text(12));
    }
    if (in.byte() % 2) r.query.emplace_back(in.text(8), in.text(16));
    const std::uint8_t auth_kind = in.byte() % 4;
    if (auth_kind == 0) r.headers["authorization"] = "Bearer " + admin;
    if (auth_kind == 1) r.headers["authorization"] = in.text(64);
    r.headers["content-type"] = kTypes[in.byte() % 4];
    if (in.byte() % 2) r.headers["if-match"] = in.text(40);
    r.body = in.text(255);
    r.peer = "192.0.2.1";
    int replies = 0;
    http::Response last;
    api.handle(r, static_cast<http::ConnectionId>(i + 1), [&](http::Response res) {
      ++replies;
      last = std::move(res);
    });
    for (int spin = 0; spin < 2000 && api.busy() > 0; ++spin) {
      io.run_one_for(std::chrono::milliseconds(5));
    }
    if (replies != 1 || last.status < 200 || last.status > 599) __builtin_trap();
    if (!last.stream && last.content_type.find("json") != std::string::npos && !last.body.empty() &&
        nlohmann::json::parse(last.body, nullptr, false).is_discarded()) {
      __builtin_trap();
    }
    if (last.stream) api.stream_closed(static_cast<http::ConnectionId>(i + 1));
    world.run_until(world.now_ns() + 1'000'000'000);
  }
  return 0;
}
