// The operator API (api/openapi.yaml is its contract; docs/guides/api.md): REST/JSON resources
// over the controller core and the auth store, RFC 9457 problem details, cursor pagination, ETags,
// an audit entry in the same store transaction as every write, and the fleet's events, listed and
// streamed (Server-Sent Events, resumable). Binds to an http::Server; runs on the controller's
// io_context. Private.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "auth.hpp"
#include "patronus/controller/core.hpp"
#include "server.hpp"

namespace boost::asio {
class io_context;
class thread_pool;
}  // namespace boost::asio

namespace patronus::controllerd {

// Who may call a route: nobody signed in (login), or at least this role.
enum class Access { kPublic, kViewer, kOperator, kAdmin };
const char* access_name(Access a);

struct ApiOptions {
  std::size_t max_events = 10000;  // kept for listing and resuming
  std::int64_t audit_retention_ns = 90LL * 24 * 3600 * 1'000'000'000;
  std::int64_t heartbeat_ns = 15'000'000'000;  // an SSE comment when nothing else is sent
  std::size_t max_password_checks = 4;         // Argon2id runs in flight (64 MiB each)
};

// An auditor for the core's writes on behalf of `ctx` (the API's requests, the admin socket's):
// each batch gets its entry, with the records before and after and their patch; `written`
// collects them for the event stream.
controller::Core::Auditor core_auditor(const env::Env& env, const AuditContext& ctx,
                                       std::vector<fleet::AuditEntry>* written);

class Api {
 public:
  struct Route {
    std::string method;
    std::string pattern;  // "/api/v1/sites/{name}"
    Access access;
    // The request, the caller (empty for public routes), the path's parameters, the reply.
    std::function<void(const http::Request&, const Principal&,
                       const std::map<std::string, std::string>&, http::Reply)>
        handle;
  };

  Api(boost::asio::io_context& io, env::Env& env, controller::Core& core, Auth& auth,
      controller::FleetStore* store, ApiOptions options = {});
  ~Api();
  Api(const Api&) = delete;
  Api& operator=(const Api&) = delete;

  // What the server calls.
  void handle(const http::Request& request, http::ConnectionId connection, http::Reply reply);
  void stream_closed(http::ConnectionId connection);
  void attach(http::Server* server) { server_ = server; }

  // Every route served (the contract test walks them all).
  const std::vector<Route>& routes() const { return routes_; }
  // A fleet event (from the core, or an audit entry) into the log and the streams.
  void publish(fleet::FleetEvent event);
  std::size_t streams() const { return streams_.size(); }
  // An audit entry written (by the API or the admin socket) onto the event log and streams.
  void audited(const fleet::AuditEntry& entry);
  // Password checks and hashes running on the worker thread (their replies come later).
  std::size_t busy() const { return checks_in_flight_; }
  // A log line for each refused login and failed request (no secrets).
  std::function<void(int level, const std::string&)> log;

 private:
  void build_routes();
  void add(std::string method, std::string pattern, Access access,
           std::function<void(const http::Request&, const Principal&,
                              const std::map<std::string, std::string>&, http::Reply)>
               handle);
  // A change through the core, audited; answered with `then` (or its problem).
  http::Response core_change(const http::Request& r, const Principal& who, const std::string& route,
                             const std::string& target, const fleet::Request& q, int ok_status,
                             const std::function<http::Response()>& then);
  // The same, answered from the core's response (an enrolment token).
  http::Response core_change_with(
      const http::Request& r, const Principal& who, const std::string& route,
      const std::string& target, const fleet::Request& q, int ok_status,
      const std::function<http::Response(const fleet::Response&)>& then);
  // `status`: what the request answers when it succeeds (the trail records only those).
  AuditContext context(const http::Request& r, const Principal& who, const std::string& route,
                       const std::string& target, int status) const;
  void heartbeat();
  void refusal(const std::string& line);
  std::int64_t refusals_logged_ns_ = 0;
  std::uint64_t refusals_quiet_ = 0;
  void start_stream(const http::Request& r, const Principal& who, http::ConnectionId c,
                    http::Reply reply);
  // A stream whose credential ended: told why, then closed.
  void end_stream(http::ConnectionId c, const std::string& why);
  static bool visible(const fleet::FleetEvent& e, const Principal& who);
  void password_job(std::string hash, std::string password, std::function<void(bool ok)> done);
  void hash_job(std::string password, std::function<void(Result<std::string>)> done);

  boost::asio::io_context& io_;
  env::Env& env_;
  controller::Core& core_;
  Auth& auth_;
  controller::FleetStore* store_;
  ApiOptions options_;
  http::Server* server_ = nullptr;
  std::vector<Route> routes_;
  std::deque<fleet::FleetEvent> events_;
  std::uint64_t next_event_ = 1;
  struct StreamFilter {
    std::string kind, site;
    std::string bearer;  // checked again before each event and heartbeat
  };
  std::map<http::ConnectionId, StreamFilter> streams_;
  std::unique_ptr<boost::asio::thread_pool> pool_;
  std::shared_ptr<bool> alive_;
  std::size_t checks_in_flight_ = 0;
  env::TimerId heartbeat_timer_ = 0;
  std::int64_t last_prune_ns_ = 0;
};

}  // namespace patronus::controllerd
