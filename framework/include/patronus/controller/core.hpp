// The controller's core: the fleet's state machine, with no I/O of its own. Operators' commands
// (sites, settings, enrolment tokens) and sites' messages (enrol, connect, acknowledge) come in
// as calls; time comes from an Env (the debounce, token expiry); what goes to a site goes out
// through an Outbox as a typed message. The daemon binds it to the network; tests and the
// simulator bind it to in-process sites (docs/adr/0022-controller-core.md).
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "patronus/controller/compiler.hpp"
#include "patronus/controller/fleet_store.hpp"
#include "patronus/controller/v1/controller.pb.h"
#include "patronus/env/env.hpp"
#include "patronus/util/status.hpp"

namespace patronus::policy {
struct NetworkPolicy;
}

namespace patronus::controller {

using SessionId = std::uint64_t;

// Where the core's messages go (a connection, an in-process site).
class Outbox {
 public:
  virtual ~Outbox() = default;
  virtual void send(SessionId session, const v1::ToSite& message) = 0;
  // The session is over (refused): the channel closes it after what was sent.
  virtual void close(SessionId session) { (void)session; }
};

using Identity = std::array<std::uint8_t, 32>;

// Bounds of the fleet's policies (every site's config carries them).
inline constexpr std::size_t kMaxPolicies = 10000;
inline constexpr std::size_t kMaxInventoryBytes = 4 * 1024 * 1024;
// Bounds of the plugin settings (fleet-wide and per site).
inline constexpr std::size_t kMaxPluginSettings = 1000;
inline constexpr std::size_t kMaxPluginConfigBytes = 1024 * 1024;

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
  // Enrolled sites wait for `approve` before they get a config.
  bool require_approval = false;
  // A site's report: at most this many paths and classes are kept (the rest is refused).
  std::size_t max_report_items = 4096;
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
  bool approved = false;
  std::string last_error;  // the site's last failed apply ("" none)
};

struct CoreCounters {
  std::uint64_t compiles = 0, configs_compiled = 0, pushes = 0, resends = 0;
  std::uint64_t tokens_refused = 0, tokens_rate_limited = 0, connects_refused = 0;
  std::uint64_t messages_refused = 0, store_errors = 0;
  std::uint64_t report_paths_dropped = 0;  // reported paths not in the site's current config
};

// What a site checks before it applies a push (patronusd and the simulator's sites): the config
// is for `site` and hashes to what the controller says it does.
Status check_push(const v1::ConfigPush& push, const std::string& site);

// A site's fields from its record (an operator's `sites add`, a stored row), validated; errors
// name the field under `where` ("sites[0].endpoints[1].address").
Result<FleetSite> fleet_site_of(const fleet::Site& record, const std::string& where);

// A NetworkPolicy as the fleet stores one (`patronus policy apply`, the API's POST /policies).
fleet::Policy policy_record(const policy::NetworkPolicy& np);

class Core {
 public:
  // With a store, every change is written through (an operator's change that cannot be written
  // is refused and changes nothing); without one the fleet lives in memory (tests).
  Core(env::Env& env, Outbox& outbox, CoreOptions options = {}, FleetStore* store = nullptr);
  ~Core();
  Core(const Core&) = delete;
  Core& operator=(const Core&) = delete;

  // ---- operators ----
  // A site the fleet expects: its endpoints and subnets (its keys come at enrolment). Errors name
  // the field; a name in use is refused.
  Status add_site(FleetSite site);
  Status remove_site(const std::string& name);
  // New addresses, types, costs, bandwidths and subnets for a site's endpoints (the same
  // endpoint names in the same order: the site's own file names them); its enrolment and keys
  // stay.
  Status update_site(FleetSite site);
  void set_settings(FleetSettings settings);
  // Every site's config compiled again at the next flush (only those whose hash changed are
  // sent).
  void recompile_all();
  // The fleet as the store had it (call once, before anything else): sites, tokens, settings,
  // path ids and overlay addresses; the configs are compiled again and, being the same, not
  // pushed again.
  Status load();
  // The same from a snapshot the caller read (the controller reads the store once at start for
  // the core and the API's users).
  Status load(const FleetSnapshot& snapshot);
  Status approve(const std::string& site);
  // Rotates an endpoint's key of a connected site without dropping its paths: stage (the site
  // makes its next key and reports it; the peers get it on standby), then, once every peer has
  // acknowledged a config with it, commit (the site switches; the peers promote). Progress is in
  // the site's view (`rotation`).
  Status rotate_key(const std::string& site, const std::string& endpoint);
  // An operator's request from the admin socket (fleet.proto), answered.
  fleet::Response handle(const fleet::Request& request);
  // A one-time token for `site` (which must exist and not be enrolled), valid for `ttl_ns`
  // (0: the default). Only its hash is kept; the token itself is returned once.
  Result<std::string> create_token(const std::string& site, std::int64_t ttl_ns = 0,
                                   std::int64_t* expires_unix_ns = nullptr);

  // ---- sites ----
  // First contact: the token (burnt on success), the site's identity public key (made on the
  // site) and each endpoint's WireGuard public key (base64), in the order of its endpoints.
  // `endpoint_keys` may be empty: the site reports them later (report_keys).
  Status enrol(const std::string& token, const std::string& site,
               const std::array<std::uint8_t, 32>& identity,
               const std::vector<std::string>& endpoint_keys);
  // One message of a site's session whose TLS peer is `identity`. A message the core refuses is
  // answered with Refused and the session is closed (Outbox::close).
  Status receive(SessionId session, const Identity& identity, const v1::FromSite& message);
  // The public keys of the session's site's endpoints, by endpoint name (a subset is fine).
  Status report_keys(SessionId session, const v1::Keys& keys);
  Status report(SessionId session, const v1::Report& report);
  // A session of an enrolled site, authenticated by its identity (the channel proves possession
  // of the key). `have_hash` is what the site runs ("" none): its current config is sent only if
  // it differs.
  Status connect(SessionId session, const std::string& site,
                 const std::array<std::uint8_t, 32>& identity, const std::string& have_hash,
                 std::uint64_t have_version = 0);
  // The site applied `version` and runs a config of `hash` (or failed to apply it: `error`).
  Status acknowledge(SessionId session, std::uint64_t version, const std::string& hash,
                     const std::string& error = "");
  void disconnect(SessionId session);

  // ---- views ----
  std::optional<SiteStatus> status(const std::string& site) const;
  std::vector<SiteStatus> statuses() const;
  // The site a session speaks for (after its enrol or hello), if any.
  std::optional<std::string> session_site(SessionId session) const;
  // The fleet view: every site with its state and path counts; every path the sites reported.
  fleet::Sites site_views() const;
  std::optional<fleet::SiteView> site_view(const std::string& site) const;
  // Every site's reported paths, or one site's ("" every site).
  fleet::Paths path_views(const std::string& site = "") const;
  // Each (class, remote site)'s path at the site's last report (nullopt: no such site).
  std::optional<std::vector<v1::ClassReport>> selections(const std::string& site) const;
  // The recent quality of a site's paths, from its reports (nullopt: no such site).
  std::optional<std::vector<fleet::PathHistory>> path_history(const std::string& site) const;
  fleet::Decisions decision_views(const std::string& site, std::uint32_t limit) const;
  const CoreCounters& counters() const { return counters_; }
  // The stored record of a site and the fleet's settings (the API's representations).
  std::optional<fleet::Site> site_record(const std::string& site) const;
  const fleet::Settings& settings_record() const { return settings_record_; }

  // ---- the operator API's hooks ----
  // While set, every write of an operator's change goes through `auditor` first, with the
  // records it replaces (`before`: the sites' and the settings' stored records); what the auditor
  // adds to the batch (its audit entry) is written in the same transaction.
  using Auditor = std::function<void(FleetBatch& batch, const FleetBatch& before)>;
  void set_auditor(Auditor auditor) { auditor_ = std::move(auditor); }
  // What happens in the fleet, as it happens: sites connecting and leaving, drift, applies,
  // path state changes and the decisions sites report. Called on the core's thread.
  using EventSink = std::function<void(const fleet::FleetEvent&)>;
  void set_event_sink(EventSink sink) { events_ = std::move(sink); }
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
    bool approved = false;
    std::string last_error;
    std::optional<v1::Report> report;          // the latest
    std::deque<fleet::PathCounts> history;     // bounded: kHistory
    std::deque<v1::DecisionReport> decisions;  // bounded: kDecisions, oldest first
    // Per path id, its quality in the last reports (telemetry: in memory only).
    struct Sample {
      std::int64_t unix_ns = 0;
      float score = 0, rtt_ms = 0, jitter_ms = 0, loss_pct = 0;  // NaN: not measured
      std::uint8_t state = 0;                                    // 0 down, 1 degraded, 2 up
    };
    std::map<std::uint64_t, std::deque<Sample>> path_samples;
  };
  static constexpr std::size_t kHistory = 120, kDecisions = 256;
  // Path samples kept fleet-wide (about 32 bytes each): with many paths, each keeps fewer than
  // kHistory, at least kMinPathSamples.
  static constexpr std::size_t kPathSampleBudget = 2'000'000, kMinPathSamples = 10;
  std::size_t reported_paths_ = 0;  // paths in every site's latest report
  // A rotation between its stage and its commit: the peers' versions that carry the next key.
  struct Rotation {
    std::string endpoint;
    bool staged = false;                         // the site reported the next key
    std::map<std::string, std::uint64_t> peers;  // peer -> version to acknowledge
    bool recorded = false;                       // `peers` taken from the compile after the stage
    bool committing = false;
  };
  std::map<std::string, Rotation> rotations_;  // by site
  void advance_rotations();
  struct Token {
    std::string site;
    std::int64_t expires_ns = 0;  // Env wall clock (stored across restarts)
  };
  void touch(const std::string& site);
  void push(Site& s);
  Site* site_of(SessionId session);
  // `settings_before`: the settings this batch replaces when they are no longer in
  // settings_record_ (change_settings applies before it writes).
  Status persist(const FleetBatch& batch, const fleet::Settings* settings_before = nullptr);
  void emit(fleet::FleetEvent e);
  void record_samples(Site& s);
  static fleet::DecisionView decision_view(const std::string& site, const v1::DecisionReport& d);
  Auditor auditor_;
  EventSink events_;
  fleet::Site record(const Site& s) const;
  fleet::Settings settings_record_;
  Status apply_settings(const fleet::Settings& record);
  // Validated, stored, then in force (all or nothing).
  Status change_settings(const fleet::Settings& next);
  void welcome(SessionId session, const Site& s);
  std::int64_t to_unix(std::int64_t mono_ns) const;

  env::Env& env_;
  Outbox& outbox_;
  CoreOptions options_;
  FleetStore* store_;
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
