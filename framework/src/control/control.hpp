// The control API's replies (framework/src/api/control.proto), built from a running site runtime
// (patronusd answers its socket with these) or from a state database (the CLI's `--db`), so both
// print the same way; the JSON form both speak; sorting of path lists. Private to the project:
// the daemon, the CLI and the tests include it.
#pragma once

#include <cstdint>
#include <string>

#include "patronus/api/v1/control.pb.h"
#include "patronus/core/router.hpp"
#include "patronus/steering/site_runtime.hpp"
#include "patronus/store/store.hpp"
#include "patronus/util/status.hpp"

namespace patronus::control {

namespace api = ::patronus::api::v1;

inline constexpr std::uint32_t kDefaultFlows = 1000, kMaxFlows = 100000;
inline constexpr std::uint32_t kDefaultDecisions = 20;

// What the daemon knows about itself, for status.
struct DaemonInfo {
  std::string site, version, state_db, transport, dataplane;
  std::int64_t pid = 0;
  std::int64_t started_unix_ns = 0;
  std::string config_hash;  // the applied SiteConfig's (site::content_hash)
};

// Live: from the daemon's objects (`runtime` may be null: a daemon without a runtime section).
api::StatusReply status_of(const DaemonInfo& info, const core::RouterInstance& router,
                           const steering::SiteRuntime* runtime, std::int64_t now_wall_ns);
api::PathsReply paths_of(const steering::SiteRuntime& runtime, std::int64_t now_wall_ns);
// At most `limit` flows.
api::FlowsReply flows_of(const steering::SiteRuntime& runtime, std::uint32_t limit);
api::DecisionsReply decisions_of(const steering::SiteRuntime& runtime, std::uint32_t limit);

// Offline: the last state a daemon wrote to its database.
Result<api::StatusReply> status_from_store(store::Store& db);
Result<api::PathsReply> paths_from_store(store::Store& db);
Result<api::FlowsReply> flows_from_store(store::Store& db, std::uint32_t limit);
Result<api::DecisionsReply> decisions_from_store(store::Store& db, std::uint32_t limit);
// One request answered from a database, as the daemon would answer it live (limits defaulted
// and bounded the same way).
Result<api::Response> answer_from_store(store::Store& db, const api::Request& request);

// Answers one request from a daemon's objects; errors become Response.error.
class Service {
 public:
  Service(DaemonInfo info, const core::RouterInstance& router, const steering::SiteRuntime* runtime,
          const env::Env& env)
      : info_(std::move(info)), router_(router), runtime_(runtime), env_(env) {}
  api::Response handle(const api::Request& request) const;

 private:
  DaemonInfo info_;
  const core::RouterInstance& router_;
  const steering::SiteRuntime* runtime_;
  const env::Env& env_;
};

api::Response error_response(const Status& s);

// Paths best first by "score" (highest), "latency" or "loss" (lowest); unmeasured paths last,
// ties by id. Anything else is INVALID_ARGUMENT.
Status sort_paths(api::PathsReply& reply, const std::string& by);

// JSON as the socket carries it: the Protobuf JSON mapping with the proto field names, 64-bit
// integers as numbers, unset optional fields as null, every field present. One line unless
// `indent` > 0.
std::string to_json(const google::protobuf::Message& m, int indent = 0);
// Parses that JSON (also the standard mapping: 64-bit integers as strings); unknown fields are
// ignored (a newer peer), anything else malformed is INVALID_ARGUMENT naming what.
Status from_json(const std::string& text, google::protobuf::Message* m);

}  // namespace patronus::control
