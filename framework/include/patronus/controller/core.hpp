// The controller's core: the fleet's state machine, with no I/O of its own. Operators' commands
// (sites, settings, enrolment tokens) and sites' messages (enrol, connect, acknowledge) come in
// as calls; time comes from an Env (the debounce, token expiry); what goes to a site goes out
// through an Outbox as a typed message. The daemon binds it to the network; tests and the
// simulator bind it to in-process sites (docs/adr/0022-controller-core.md).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "patronus/controller/compiler.hpp"
#include "patronus/controller/v1/controller.pb.h"
#include "patronus/env/env.hpp"
#include "patronus/util/status.hpp"

namespace patronus::controller {

using SessionId = std::uint64_t;

// Where the core's messages go (a connection, an in-process site).
class Outbox {
 public:
  virtual ~Outbox() = default;
  virtual void send(SessionId session, const v1::ToSite& message) = 0;
};

struct CoreOptions {
  // A change waits this long for more (a burst is one compile), but never longer than max_wait
  // after the first change of the burst.
  std::int64_t debounce_ns = 500'000'000;
  std::int64_t max_wait_ns = 3'000'000'000;
  std::int64_t default_token_ttl_ns = 24LL * 3600 * 1'000'000'000;
  std::size_t max_sites = 10000;
  std::size_t max_tokens = 10000;  // outstanding (unused, unexpired) tokens
  std::size_t max_sessions = 20000;
  // Enrolment attempts with a wrong token: at most this many per window, then every attempt is
  // refused until the window passes (token guessing is rate limited).
  std::uint32_t max_bad_tokens = 20;
  std::int64_t bad_token_window_ns = 60'000'000'000;
  // A site whose acknowledged hash differs from what was sent is sent the config again, at most
  // this many times; then it is reported as drifting and left alone until its config changes.
  std::uint32_t max_resends = 3;
};

// What the controller knows of a site's connection and configuration.
struct SiteStatus {
  std::string name;
  bool enrolled = false;
  bool in_mesh = false;  // every endpoint's key known: it has a config
  bool connected = false;
  std::uint64_t version = 0;  // of its current config (0: none yet)
  std::string hash;           // of its current config
  std::uint64_t applied_version = 0;
  std::string applied_hash;       // what it acknowledged running
  bool drift = false;             // resent max_resends times, still another hash
  std::int64_t last_seen_ns = 0;  // Env monotonic; 0: never
};

struct CoreCounters {
  std::uint64_t compiles = 0, configs_compiled = 0, pushes = 0, resends = 0;
  std::uint64_t tokens_refused = 0, tokens_rate_limited = 0, connects_refused = 0;
};

class Core {
 public:
  Core(env::Env& env, Outbox& outbox, CoreOptions options = {});
  ~Core();
  Core(const Core&) = delete;
  Core& operator=(const Core&) = delete;

  // ---- operators ----
  // A site the fleet expects: its endpoints and subnets (its keys come at enrolment). Errors name
  // the field; a name in use is refused.
  Status add_site(FleetSite site);
  Status remove_site(const std::string& name);
  void set_settings(FleetSettings settings);
  // A one-time token for `site` (which must exist and not be enrolled), valid for `ttl_ns`
  // (0: the default). Only its hash is kept; the token itself is returned once.
  Result<std::string> create_token(const std::string& site, std::int64_t ttl_ns = 0);

  // ---- sites ----
  // First contact: the token (burnt on success), the site's identity public key (made on the
  // site) and each endpoint's WireGuard public key (base64), in the order of its endpoints.
  Status enrol(const std::string& token, const std::string& site,
               const std::array<std::uint8_t, 32>& identity,
               const std::vector<std::string>& endpoint_keys);
  // A session of an enrolled site, authenticated by its identity (the channel proves possession
  // of the key). `have_hash` is what the site runs ("" none): its current config is sent only if
  // it differs.
  Status connect(SessionId session, const std::string& site,
                 const std::array<std::uint8_t, 32>& identity, const std::string& have_hash);
  // The site applied `version` and runs a config of `hash` (or failed to apply it: `error`).
  Status acknowledge(SessionId session, std::uint64_t version, const std::string& hash,
                     const std::string& error = "");
  void disconnect(SessionId session);

  // ---- views ----
  std::optional<SiteStatus> status(const std::string& site) const;
  std::vector<SiteStatus> statuses() const;
  const CoreCounters& counters() const { return counters_; }
  const Compiler& compiler() const { return compiler_; }
  // Compiles now what is pending (tests; the debounce timer calls it).
  void flush();

 private:
  struct Site {
    FleetSite fleet;
    bool enrolled = false;
    std::array<std::uint8_t, 32> identity{};
    std::uint64_t version = 0;
    std::string hash;
    std::uint64_t applied_version = 0;
    std::string applied_hash;
    std::uint32_t resends = 0;
    bool drift = false;
    std::optional<SessionId> session;
    std::int64_t last_seen_ns = 0;
  };
  struct Token {
    std::string site;
    std::int64_t expires_ns = 0;
  };
  void touch(const std::string& site);
  void push(Site& s);
  Site* site_of(SessionId session);

  env::Env& env_;
  Outbox& outbox_;
  CoreOptions options_;
  Compiler compiler_;
  FleetSettings settings_;
  std::map<std::string, Site> sites_;
  std::map<std::string, Token> tokens_;  // hex BLAKE2b of the token -> what it enrols
  std::map<SessionId, std::string> sessions_;
  std::set<std::string> touched_;
  env::TimerId flush_timer_ = 0;
  std::int64_t burst_started_ns_ = -1;
  std::int64_t bad_window_start_ns_ = 0;
  std::uint32_t bad_tokens_ = 0;
  CoreCounters counters_;
};

}  // namespace patronus::controller
