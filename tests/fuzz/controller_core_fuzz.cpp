// The controller's core fed hostile site messages and operator calls in any order: enrolments
// with guessed, reused and valid tokens, connects with wrong identities, acknowledgements of
// versions never sent, disconnects of unknown sessions, time passing. Nothing may crash, and the
// core's tables stay within their bounds.
#include <cstdint>
#include <string>
#include <vector>

#include "../controller/fleet_fixtures.hpp"
#include "patronus/controller/core.hpp"
#include "patronus/env/virtual_world.hpp"

namespace {

using namespace patronus;

struct Sink : controller::Outbox {
  void send(controller::SessionId, const controller::v1::ToSite& m) override {
    bytes += m.ByteSizeLong();
  }
  std::size_t bytes = 0;
};

struct Reader {
  const std::uint8_t* p;
  std::size_t n;
  bool empty() const { return n == 0; }
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

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  env::VirtualWorld world(1);
  env::Env& env = world.add_node("controller", {});
  Sink sink;
  controller::CoreOptions options;
  options.max_sites = 8;
  options.max_tokens = 8;
  options.max_sessions = 8;
  controller::Core core(env, sink, options);
  std::vector<std::string> tokens;
  const std::string keys[] = {controller::test::fleet_site(1).public_keys[0], "", "not a key"};
  for (int i = 0; i < 3; ++i) {
    (void)core.add_site(controller::test::fleet_site(i, false));
    if (auto t = core.create_token("s" + std::to_string(i)); t.is_ok()) tokens.push_back(t.value());
  }
  Reader r{data, size};
  for (int steps = 0; steps < 256 && !r.empty(); ++steps) {
    const std::uint8_t op = r.byte() % 11;
    const std::string site = r.byte() % 4 == 0 ? r.text(8) : "s" + std::to_string(r.byte() % 4);
    std::array<std::uint8_t, 32> identity{};
    identity.fill(r.byte() % 3);
    switch (op) {
      case 0: {
        const std::uint8_t k = r.byte();
        const std::string token =
            k % 2 == 0 && !tokens.empty() ? tokens[k % tokens.size()] : r.text(48);
        std::vector<std::string> ek(r.byte() % 3, keys[r.byte() % 3]);
        (void)core.enrol(token, site, identity, ek);
        break;
      }
      case 1:
        (void)core.connect(r.byte(), site, identity, r.text(64));
        break;
      case 2:
        (void)core.acknowledge(r.byte(), r.byte(), r.text(64), r.byte() % 2 ? "" : "failed");
        break;
      case 3:
        core.disconnect(r.byte());
        break;
      case 4:
        world.run_until(world.now_ns() + static_cast<std::int64_t>(r.byte()) * 100'000'000);
        break;
      case 5:
        if (auto t = core.create_token(site, static_cast<std::int64_t>(r.byte()) * 1'000'000'000);
            t.is_ok() && tokens.size() < 32) {
          tokens.push_back(t.value());
        }
        break;
      case 6:
        (void)core.remove_site(site);
        break;
      case 8: {
        // A site's message as the channel hands it over: bytes that may or may not parse.
        controller::v1::FromSite m;
        const std::string bytes = r.text(200);
        if (m.ParseFromString(bytes)) (void)core.receive(r.byte(), identity, m);
        break;
      }
      case 9: {
        // A well-formed message with hostile content: keys for endpoints that do not exist,
        // reports of paths of other sites, acks of versions never sent.
        controller::v1::FromSite m;
        switch (r.byte() % 5) {
          case 0:
            m.mutable_enrol()->set_token(
                r.byte() % 2 && !tokens.empty() ? tokens[r.byte() % tokens.size()] : r.text(48));
            m.mutable_enrol()->set_site(site);
            break;
          case 1:
            m.mutable_hello()->set_site(site);
            m.mutable_hello()->set_have_hash(r.text(64));
            m.mutable_hello()->set_have_version(r.byte());
            break;
          case 2:
            for (int i = r.byte() % 4; i > 0; --i) {
              auto* k = m.mutable_keys()->add_keys();
              k->set_endpoint(r.byte() % 2 ? "wan0" : r.text(8));
              k->set_public_key(keys[r.byte() % 3]);
            }
            break;
          case 3:
            m.mutable_ack()->set_version(r.byte());
            m.mutable_ack()->set_hash(r.text(64));
            break;
          default:
            for (int i = r.byte() % 8; i > 0; --i) {
              auto* p = m.mutable_report()->add_paths();
              p->set_id(r.byte());
              p->set_state(r.text(8));
            }
        }
        (void)core.receive(r.byte() % 8, identity, m);
        break;
      }
      case 10: {
        // An operator's request as the admin socket parses it.
        fleet::v1::Request q;
        if (q.ParseFromString(r.text(200))) (void)core.handle(q);
        break;
      }
      default: {
        auto s = controller::test::fleet_site(r.byte() % 16, false);
        s.name = site;
        (void)core.add_site(s);
        break;
      }
    }
    if (core.statuses().size() > options.max_sites) __builtin_trap();
  }
  world.run_until(world.now_ns() + 10'000'000'000);
  return 0;
}
