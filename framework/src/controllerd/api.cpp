#include "api.hpp"

#include <sodium.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <limits>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "control.hpp"
#include "patronus/policy/classifier.hpp"
#include "patronus/policy/parse.hpp"
#include "patronus/util/printable.hpp"
#include "proto_json.hpp"

namespace patronus::controllerd {

using json = nlohmann::json;
using Params = std::map<std::string, std::string>;
namespace fleetv1 = ::patronus::fleet::v1;

const char* access_name(Access a) {
  switch (a) {
    case Access::kPublic:
      return "public";
    case Access::kViewer:
      return "viewer";
    case Access::kOperator:
      return "operator";
    default:
      return "admin";
  }
}

namespace {

constexpr std::size_t kDefaultLimit = 50, kMaxLimit = 500;
constexpr std::size_t kMaxMatrixPods = 300;  // 90,000 verdicts: well under a second

json pj(const google::protobuf::Message& m) {
  return json::parse(proto_to_json(m));
}

http::Response respond(int status, const json& body, const std::string& etag = "") {
  http::Response r;
  r.status = status;
  r.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
  if (!etag.empty()) r.headers.emplace_back("ETag", etag);
  return r;
}

http::Response no_content() {
  http::Response r;
  r.status = 204;
  r.content_type = "application/json";
  return r;
}

// RFC 9457. `field`: the request's field at fault (a validation error).
http::Response problem(int status, const std::string& detail, const std::string& field = "") {
  json p{{"type", "about:blank"},
         {"title", http::reason_phrase(status)},
         {"status", status},
         {"detail", detail}};
  if (status == 422) {
    p["type"] = "urn:patronus:problem:validation";
    p["errors"] = json::array({{{"field", field}, {"message", detail}}});
  } else if (status == 409) {
    p["type"] = "urn:patronus:problem:conflict";
  } else if (status == 412) {
    p["type"] = "urn:patronus:problem:etag-mismatch";
  } else if (status == 401) {
    p["type"] = "urn:patronus:problem:unauthenticated";
  } else if (status == 403) {
    p["type"] = "urn:patronus:problem:forbidden";
  } else if (status == 429) {
    p["type"] = "urn:patronus:problem:rate-limited";
  }
  http::Response r;
  r.status = status;
  r.content_type = "application/problem+json";
  r.body = p.dump(-1, ' ', false, json::error_handler_t::replace);
  return r;
}

// The field a validation message names: its last "a.b[0].c: " segment ("body: document 1
// (NetworkPolicy default/p): spec.ingress[0].ports[0].endPort: ..." names the policy's field).
std::string field_of(const std::string& message) {
  static const std::regex kField(
      R"(^[A-Za-z_][A-Za-z0-9_]*(\[[0-9]+\])*(\.[A-Za-z_][A-Za-z0-9_]*(\[[0-9]+\])*)*$)");
  std::string field;
  std::size_t start = 0;
  while (start < message.size()) {
    const auto colon = message.find(": ", start);
    if (colon == std::string::npos) break;
    const std::string part = message.substr(start, colon - start);
    if (std::regex_match(part, kField)) field = part;
    start = colon + 2;
  }
  return field;
}

http::Response from_status(const Status& st) {
  switch (st.code()) {
    case Code::kInvalidArgument:
      return problem(422, st.message(), field_of(st.message()));
    case Code::kNotFound:
      return problem(404, st.message());
    case Code::kFailedPrecondition:
      if (st.message().rfind("Content-Type:", 0) == 0) return problem(415, st.message());
      return problem(409, st.message());
    case Code::kAlreadyExists:
    case Code::kResourceExhausted:
      return problem(409, st.message());
    case Code::kUnauthenticated:
      return problem(401, st.message());
    case Code::kPermissionDenied:
      return problem(403, st.message());
    case Code::kUnavailable:
      return problem(503, st.message());
    default:
      return problem(500, st.message());
  }
}

http::Response from_error(const fleetv1::Error& e) {
  static const std::map<std::string, Code> kCodes = {
      {"INVALID_ARGUMENT", Code::kInvalidArgument},       {"NOT_FOUND", Code::kNotFound},
      {"RESOURCE_EXHAUSTED", Code::kResourceExhausted},   {"UNAVAILABLE", Code::kUnavailable},
      {"FAILED_PRECONDITION", Code::kFailedPrecondition}, {"ALREADY_EXISTS", Code::kAlreadyExists}};
  const auto it = kCodes.find(e.code());
  return from_status(Status(it == kCodes.end() ? Code::kInternal : it->second, e.message()));
}

std::string etag_of(const std::string& representation) {
  unsigned char h[16];
  crypto_generichash(h, sizeof h, reinterpret_cast<const unsigned char*>(representation.data()),
                     representation.size(), nullptr, 0);
  char hex[33];
  sodium_bin2hex(hex, sizeof hex, h, sizeof h);
  return std::string("\"") + hex + "\"";
}

// If-Match: a write names the version it read; another one is refused (412), so two operators
// cannot overwrite each other unseen.
std::optional<http::Response> precondition(const http::Request& r, const std::string& current) {
  const auto m = r.header("if-match");
  if (!m || *m == "*") return std::nullopt;
  std::string list = *m;
  std::size_t start = 0;
  while (start <= list.size()) {
    auto comma = list.find(',', start);
    std::string one = list.substr(start, comma == std::string::npos ? comma : comma - start);
    one.erase(0, one.find_first_not_of(" \t"));
    one.erase(one.find_last_not_of(" \t") + 1);
    if (one.rfind("W/", 0) == 0) one = one.substr(2);
    if (one == current || "\"" + one + "\"" == current) return std::nullopt;
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return problem(412, "the resource changed since it was read (its ETag is now " + current +
                          "); read it again and retry");
}

Result<json> body_json(const http::Request& r) {
  const auto ct = r.header("content-type").value_or("");
  if (ct.rfind("application/json", 0) != 0) {
    return failed_precondition("Content-Type: application/json (this route takes a JSON object)");
  }
  json j = json::parse(r.body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return invalid_argument("the body is not a JSON object");
  }
  return j;
}

// Protobuf's JSON parser says "(endpoints): invalid value ... for type type.googleapis.com/...":
// the field, and that its value has the wrong type, without the message's internals.
std::string type_error(const std::string& message) {
  const auto open = message.find('(');
  const auto close = message.find(')', open == std::string::npos ? 0 : open);
  if (open == std::string::npos || close == std::string::npos) {
    return "the body does not fit this resource's schema (see api/openapi.yaml)";
  }
  const std::string field = message.substr(open + 1, close - open - 1);
  return field + ": a value of the wrong type (see api/openapi.yaml)";
}

Status only_keys(const json& j, std::initializer_list<const char*> keys, const std::string& at) {
  for (const auto& [k, v] : j.items()) {
    if (std::none_of(keys.begin(), keys.end(), [&](const char* x) { return k == x; })) {
      return invalid_argument((at.empty() ? "" : at + ".") + k + ": not a field of this resource");
    }
  }
  return Status::ok();
}

Result<std::string> string_field(const json& j, const char* key, bool required) {
  if (!j.contains(key)) {
    if (required) return invalid_argument(std::string(key) + ": required");
    return std::string();
  }
  if (!j[key].is_string()) return invalid_argument(std::string(key) + ": a string");
  return j[key].get<std::string>();
}

// A body checked to have only `keys`, parsed into `m` by Protobuf's JSON mapping.
Status proto_body(const json& j, std::initializer_list<const char*> keys,
                  google::protobuf::Message* m) {
  if (auto st = only_keys(j, keys, ""); !st.is_ok()) return st;
  if (auto st = control::from_json(j.dump(-1, ' ', false, json::error_handler_t::replace), m);
      !st.is_ok()) {
    return invalid_argument(type_error(st.message()));
  }
  return Status::ok();
}

struct Page {
  std::string after;  // the last key of the previous page ("" first page)
  std::size_t limit = kDefaultLimit;
};

Result<Page> page_of(const http::Request& r) {
  Page p;
  if (auto l = r.param("limit")) {
    char* end = nullptr;
    const long v = std::strtol(l->c_str(), &end, 10);
    if (l->empty() || *end != '\0' || v < 1 || v > static_cast<long>(kMaxLimit)) {
      return invalid_argument("limit: between 1 and " + std::to_string(kMaxLimit));
    }
    p.limit = static_cast<std::size_t>(v);
  }
  if (auto c = r.param("cursor"); c && !c->empty()) {
    std::string out(c->size(), '\0');
    std::size_t n = 0;
    if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), c->data(),
                          c->size(), nullptr, &n, nullptr,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0) {
      return invalid_argument("cursor: not a cursor this API returned");
    }
    out.resize(n);
    p.after = out;
  }
  return p;
}

std::string cursor_of(const std::string& key) {
  std::string out(sodium_base64_ENCODED_LEN(key.size(), sodium_base64_VARIANT_URLSAFE_NO_PADDING),
                  '\0');
  sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(key.data()),
                    key.size(), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  out.resize(std::strlen(out.c_str()));
  return out;
}

// A page of `items` (sorted by `key`), after the cursor's key.
template <typename T, typename Key, typename Show>
json paged(const std::vector<T>& items, const Page& page, Key key, Show show) {
  json out{{"items", json::array()}, {"next_cursor", nullptr}};
  std::size_t taken = 0;
  for (const auto& it : items) {
    const std::string k = key(it);
    if (!page.after.empty() && k <= page.after) continue;
    if (taken == page.limit) {
      out["next_cursor"] = cursor_of(key(items[&it - &items[0] - 1]));
      break;
    }
    out["items"].push_back(show(it));
    ++taken;
  }
  return out;
}

json tokens_json(const Tokens& v) {
  return json{{"access_token", v.access_token},
              {"access_expires_unix_ns", v.access_expires_unix_ns},
              {"refresh_token", v.refresh_token},
              {"refresh_expires_unix_ns", v.refresh_expires_unix_ns},
              {"user", v.user},
              {"role", role_name(v.role)}};
}

json user_json(const fleetv1::User& u) {
  return json{{"name", u.name()},
              {"role", u.role()},
              {"created_unix_ns", u.created_unix_ns()},
              {"totp", u.totp_sealed().empty() ? "none"
                       : u.totp_pending()      ? "pending"
                                               : "on"}};
}

json key_json(const fleetv1::ApiKey& k) {
  return json{{"id", k.id()},
              {"name", k.name()},
              {"user", k.user()},
              {"role", k.role()},
              {"created_unix_ns", k.created_unix_ns()},
              {"expires_unix_ns", k.expires_unix_ns()},
              {"revoked", k.revoked()}};
}

json audit_json_of(const fleetv1::AuditEntry& e, bool full) {
  json j{{"unix_ns", e.unix_ns()}, {"actor", e.actor()},        {"address", e.address()},
         {"method", e.method()},   {"route", e.route()},        {"target", e.target()},
         {"status", e.status()},   {"truncated", e.truncated()}};
  if (e.id() != 0) j["id"] = e.id();  // given by the store; an event's summary has none
  if (full) {
    j["before"] = json::parse(e.before_json().empty() ? "null" : e.before_json(), nullptr, false);
    j["after"] = json::parse(e.after_json().empty() ? "null" : e.after_json(), nullptr, false);
    j["patch"] = json::parse(e.patch_json().empty() ? "[]" : e.patch_json(), nullptr, false);
  }
  return j;
}

json event_json(const fleetv1::FleetEvent& e) {
  json j{{"id", e.id()}, {"unix_ns", e.unix_ns()}, {"kind", e.kind()}, {"site", e.site()}};
  if (!e.path().empty()) j["path"] = e.path();
  if (!e.state().empty()) j["state"] = e.state();
  if (!e.previous().empty()) j["previous"] = e.previous();
  if (!e.message().empty()) j["message"] = e.message();
  if (e.has_decision()) j["decision"] = pj(e.decision());
  if (e.has_audit()) j["audit"] = audit_json_of(e.audit(), false);
  return j;
}

bool known_kind(const std::string& k) {
  static const std::set<std::string> kKinds = {
      "site.connected",    "site.disconnected", "site.drift", "site.applied",
      "site.apply_failed", "path.state",        "decision",   "audit"};
  return kKinds.count(k) > 0;
}

std::string sse(const fleetv1::FleetEvent& e) {
  return "id: " + std::to_string(e.id()) + "\nevent: " + e.kind() +
         "\ndata: " + event_json(e).dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
}

// The records a batch writes, as the audit trail shows them.
json batch_json(const controller::FleetBatch& b, bool after) {
  json out = json::object();
  for (const auto& s : b.put_sites) out["sites"][s.name()] = pj(s);
  if (after) {
    for (const auto& n : b.delete_sites) out["sites"][n] = nullptr;
    for (const auto& t : b.put_tokens) {
      out["enrolment_tokens"].push_back(
          {{"site", t.site()}, {"expires_unix_ns", t.expires_unix_ns()}});
    }
  }
  if (b.settings) out["settings"] = pj(*b.settings);
  return out;
}

json site_json(const fleetv1::SiteView& v) {
  return pj(v);
}

json settings_topology(const fleetv1::Settings& s) {
  json j{{"topology", s.topology().empty() ? "full-mesh" : s.topology()},
         {"hubs", s.hubs()},
         {"k", s.k()},
         {"overlay_ipv4", s.overlay_ipv4()},
         {"overlay_ipv6", s.overlay_ipv6()},
         {"persistent_keepalive",
          s.has_persistent_keepalive() ? json(s.persistent_keepalive()) : json(nullptr)},
         {"rules", json::array()},
         {"links", json::array()}};
  for (const auto& r : s.rules()) {
    j["rules"].push_back({{"type", r.type()}, {"peers", r.peers()}, {"hubs_only", r.hubs_only()}});
  }
  for (const auto& l : s.links()) {
    j["links"].push_back({{"a_site", l.a_site()},
                          {"a_endpoint", l.a_endpoint()},
                          {"b_site", l.b_site()},
                          {"b_endpoint", l.b_endpoint()}});
  }
  return j;
}

json classes_json(const fleetv1::Settings& s) {
  json j = pj(s.classes());
  j["given"] = s.classes_given();
  return j;
}

json policies_json(const fleetv1::Settings& s) {
  json j{{"items", json::array()}};
  for (const auto& p : s.policies()) {
    j["items"].push_back({{"namespace", p.ns()},
                          {"name", p.name()},
                          {"spec", json::parse(p.spec_json(), nullptr, false)},
                          {"enabled", p.enabled()},
                          {"priority", p.priority()}});
  }
  return j;
}

json plugins_json(const fleetv1::Settings& s) {
  json j{{"items", json::array()}};
  for (const auto& p : s.plugins()) j["items"].push_back(pj(p));
  return j;
}

Result<fleetv1::Site> site_from_json(const json& j) {
  if (auto st = only_keys(j, {"name", "endpoints", "subnets"}, ""); !st.is_ok()) return st;
  if (j.contains("endpoints") && j["endpoints"].is_array()) {
    for (std::size_t i = 0; i < j["endpoints"].size(); ++i) {
      const auto& e = j["endpoints"][i];
      if (!e.is_object()) {
        return invalid_argument("endpoints[" + std::to_string(i) + "]: an object");
      }
      if (auto st = only_keys(e, {"name", "address", "type", "cost_per_gb", "bandwidth_mbps"},
                              "endpoints[" + std::to_string(i) + "]");
          !st.is_ok()) {
        return st;
      }
    }
  }
  fleetv1::Site s;
  if (auto st = control::from_json(j.dump(-1, ' ', false, json::error_handler_t::replace), &s);
      !st.is_ok()) {
    return invalid_argument(type_error(st.message()));
  }
  return s;
}

// What a client sent, fit for a log line: control characters escaped, at most 64 bytes.
std::string printable(const std::string& s) {
  return util::printable(s, 64);
}

std::string strip_prefix(const std::string& m, const std::string& prefix) {
  return m.rfind(prefix, 0) == 0 ? m.substr(prefix.size()) : m;
}

}  // namespace

Api::Api(boost::asio::io_context& io, env::Env& env, controller::Core& core, Auth& auth,
         controller::FleetStore* store, ApiOptions options)
    : io_(io),
      env_(env),
      core_(core),
      auth_(auth),
      store_(store),
      options_(options),
      pool_(std::make_unique<boost::asio::thread_pool>(1)),
      alive_(std::make_shared<bool>(true)) {
  build_routes();
  // Event ids go on increasing across restarts (milliseconds since the epoch, times 1024): a
  // client resuming with an id from before a restart gets `reset`, not silence.
  next_event_ =
      static_cast<std::uint64_t>(std::max<std::int64_t>(env_.wall_ns(), 0) / 1'000'000) * 1024 + 1;
  core_.set_event_sink([this](const fleetv1::FleetEvent& e) { publish(e); });
  heartbeat_timer_ = env_.schedule(options_.heartbeat_ns, [this] { heartbeat(); });
}

Api::~Api() {
  *alive_ = false;
  core_.set_event_sink(nullptr);
  core_.set_auditor(nullptr);
  if (heartbeat_timer_ != 0) env_.cancel(heartbeat_timer_);
  pool_->join();
}

void Api::heartbeat() {
  heartbeat_timer_ = env_.schedule(options_.heartbeat_ns, [this] { heartbeat(); });
  if (server_ != nullptr) {
    std::vector<http::ConnectionId> ended, alive;
    for (const auto& [c, f] : streams_) {
      (auth_.authenticate(f.bearer).is_ok() ? alive : ended).push_back(c);
    }
    for (const auto c : alive) {
      if (streams_.count(c)) server_->send(c, ": keepalive\n\n");
    }
    for (const auto c : ended) end_stream(c, "the stream's credential is no longer valid");
  }
  // The audit trail's retention, once an hour.
  const std::int64_t now = env_.wall_ns();
  if (now - last_prune_ns_ > 3600LL * 1'000'000'000) {
    last_prune_ns_ = now;
    if (auto st = auth_.prune_audit(now - options_.audit_retention_ns); !st.is_ok() && log) {
      log(2, "audit retention: " + st.message());
    }
  }
}

void Api::publish(fleetv1::FleetEvent e) {
  e.set_id(next_event_++);
  if (e.unix_ns() == 0) e.set_unix_ns(env_.wall_ns());
  events_.push_back(e);
  while (events_.size() > options_.max_events) events_.pop_front();
  if (server_ == nullptr) return;
  const std::string text = sse(e);
  // Sending can close a stream (its queue full): that erases it from streams_, so the streams
  // are chosen first and written to after.
  std::vector<http::ConnectionId> ended, to;
  for (const auto& [c, f] : streams_) {
    if (!f.kind.empty() && f.kind != e.kind()) continue;
    if (!f.site.empty() && f.site != e.site()) continue;
    // The stream's credential is checked again for every event it would get: a logout, a
    // revoked key or a password change ends the stream too.
    auto who = auth_.authenticate(f.bearer);
    if (!who.is_ok()) {
      ended.push_back(c);
      continue;
    }
    if (!visible(e, who.value())) continue;
    to.push_back(c);
  }
  for (const auto c : to) {
    if (streams_.count(c)) server_->send(c, text);
  }
  for (const auto c : ended) end_stream(c, "the stream's credential is no longer valid");
}

bool Api::visible(const fleetv1::FleetEvent& e, const Principal& who) {
  // The audit trail is the operators' (GET /audit), on the stream as in the list.
  return e.kind() != "audit" || who.role >= Role::kOperator;
}

void Api::end_stream(http::ConnectionId c, const std::string& why) {
  if (streams_.erase(c) == 0) return;
  if (server_ == nullptr) return;
  json reason{{"reason", why}};
  server_->send(c, "event: end\ndata: " +
                       reason.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n");
  server_->close(c);
}

void Api::refusal(const std::string& line) {
  // At most one line per 10 s: a flood of bad logins does not flood the log.
  const std::int64_t now = env_.now_ns();
  if (refusals_logged_ns_ != 0 && now - refusals_logged_ns_ < 10'000'000'000) {
    ++refusals_quiet_;
    return;
  }
  if (log) {
    log(2, line + (refusals_quiet_ > 0
                       ? " (and " + std::to_string(refusals_quiet_) + " refusals not logged)"
                       : std::string()));
  }
  refusals_logged_ns_ = now;
  refusals_quiet_ = 0;
}

void Api::audited(const fleetv1::AuditEntry& entry) {
  fleetv1::FleetEvent e;
  e.set_kind("audit");
  e.set_site(entry.target().rfind("sites/", 0) == 0
                 ? entry.target().substr(6, entry.target().find('/', 6) - 6)
                 : "");
  *e.mutable_audit() = entry;
  e.mutable_audit()->clear_before_json();
  e.mutable_audit()->clear_after_json();
  e.mutable_audit()->clear_patch_json();
  publish(std::move(e));
}

AuditContext Api::context(const http::Request& r, const Principal& who, const std::string& route,
                          const std::string& target, int status) const {
  return AuditContext{who.actor, r.peer, r.method, route, target, status};
}

void Api::add(
    std::string method, std::string pattern, Access access,
    std::function<void(const http::Request&, const Principal&, const Params&, http::Reply)>
        handle) {
  routes_.push_back(Route{std::move(method), std::move(pattern), access, std::move(handle)});
}

void Api::handle(const http::Request& r, http::ConnectionId connection, http::Reply reply) {
  // The route: the pattern's literal segments match, {name} segments bind.
  auto segments = [](const std::string& p) {
    std::vector<std::string> out;
    std::size_t start = 1;
    while (start <= p.size()) {
      const auto slash = p.find('/', start);
      out.push_back(p.substr(start, slash == std::string::npos ? slash : slash - start));
      if (slash == std::string::npos) break;
      start = slash + 1;
    }
    return out;
  };
  const auto want = segments(r.path);
  const Route* found = nullptr;
  Params params;
  std::set<std::string> allowed;
  for (const auto& route : routes_) {
    const auto have = segments(route.pattern);
    if (have.size() != want.size()) continue;
    Params p;
    bool match = true;
    for (std::size_t i = 0; i < have.size() && match; ++i) {
      if (have[i].size() > 2 && have[i].front() == '{') {
        if (want[i].empty()) match = false;
        p[have[i].substr(1, have[i].size() - 2)] = want[i];
      } else {
        match = have[i] == want[i];
      }
    }
    if (!match) continue;
    allowed.insert(route.method);
    if (route.method == r.method) {
      found = &route;
      params = std::move(p);
    }
  }
  if (found == nullptr) {
    if (allowed.empty()) return reply(problem(404, "no route " + r.path));
    auto res = problem(405, r.method + " is not a method of " + r.path);
    std::string list;
    for (const auto& m : allowed) list += (list.empty() ? "" : ", ") + m;
    res.headers.emplace_back("Allow", list);
    return reply(res);
  }
  Principal who;
  if (found->access != Access::kPublic) {
    const auto h = r.header("authorization").value_or("");
    if (h.rfind("Bearer ", 0) != 0) {
      auto res = problem(401, "sign in: Authorization: Bearer <access token or API key>");
      res.headers.emplace_back("WWW-Authenticate", "Bearer");
      return reply(res);
    }
    auto p = auth_.authenticate(h.substr(7));
    if (!p.is_ok()) {
      refusal("request " + printable(r.method) + " " + printable(r.path) + " from " + r.peer +
              " refused: " + p.status().message());
      auto res = problem(401, p.status().message());
      res.headers.emplace_back("WWW-Authenticate", "Bearer error=\"invalid_token\"");
      return reply(res);
    }
    who = p.value();
    const int need = static_cast<int>(found->access) - 1;  // kViewer -> 0
    if (static_cast<int>(who.role) < need) {
      return reply(problem(403, std::string("this needs the ") + access_name(found->access) +
                                    " role; " + who.actor + " is " + role_name(who.role)));
    }
  }
  if (!found->handle) return start_stream(r, who, connection, std::move(reply));  // the stream
  found->handle(r, who, params, std::move(reply));
}

controller::Core::Auditor core_auditor(const env::Env& env, const AuditContext& ctx,
                                       std::vector<fleet::AuditEntry>* written) {
  return [&env, ctx, written](controller::FleetBatch& batch, const controller::FleetBatch& before) {
    auto e = make_audit_entry(
        env.wall_ns(), ctx,
        batch_json(before, false).dump(-1, ' ', false, json::error_handler_t::replace),
        batch_json(batch, true).dump(-1, ' ', false, json::error_handler_t::replace));
    batch.audit.push_back(e);
    if (written != nullptr) written->push_back(std::move(e));
  };
}

http::Response Api::core_change(const http::Request& r, const Principal& who,
                                const std::string& route, const std::string& target,
                                const fleetv1::Request& q, int ok_status,
                                const std::function<http::Response()>& then) {
  return core_change_with(r, who, route, target, q, ok_status,
                          [&then](const fleetv1::Response&) { return then(); });
}

http::Response Api::core_change_with(
    const http::Request& r, const Principal& who, const std::string& route,
    const std::string& target, const fleetv1::Request& q, int ok_status,
    const std::function<http::Response(const fleetv1::Response&)>& then) {
  std::vector<fleetv1::AuditEntry> written;
  core_.set_auditor(core_auditor(env_, context(r, who, route, target, ok_status), &written));
  const fleetv1::Response res = core_.handle(q);
  core_.set_auditor(nullptr);
  if (res.has_error()) return from_error(res.error());
  for (const auto& e : written) audited(e);
  return then(res);
}

void Api::start_stream(const http::Request& r, const Principal& who, http::ConnectionId c,
                       http::Reply reply) {
  StreamFilter f;
  f.kind = r.param("kind").value_or("");
  f.site = r.param("site").value_or("");
  if (!f.kind.empty() && !known_kind(f.kind)) {
    return reply(
        problem(422, "kind: not an event kind (see EventKind in api/openapi.yaml)", "kind"));
  }
  f.bearer = r.header("authorization").value_or("").substr(7);
  std::uint64_t after = 0;
  bool resume = false;
  if (auto last = r.header("last-event-id"); last && !last->empty()) {
    char* end = nullptr;
    after = std::strtoull(last->c_str(), &end, 10);
    if (*end != '\0') return reply(problem(422, "Last-Event-ID: an event id", "Last-Event-ID"));
    resume = true;
  }
  http::Response res;
  res.status = 200;
  res.content_type = "text/event-stream";
  res.stream = true;
  res.body = "retry: 2000\n\n";
  const std::uint64_t oldest = events_.empty() ? next_event_ : events_.front().id();
  if (resume && (after + 1 < oldest || after >= next_event_)) {
    // Events were missed that are no longer kept: the client reloads its state.
    res.body += "event: reset\ndata: {\"reason\":\"events after " + std::to_string(after) +
                " are no longer kept; read the resources again\"}\n\n";
  }
  if (resume) {
    for (const auto& e : events_) {
      if (e.id() > after && (f.kind.empty() || f.kind == e.kind()) &&
          (f.site.empty() || f.site == e.site()) && visible(e, who)) {
        res.body += sse(e);
      }
    }
  }
  streams_[c] = f;
  reply(std::move(res));
}

void Api::stream_closed(http::ConnectionId c) {
  streams_.erase(c);
}

void Api::password_job(std::string hash, std::string password, std::function<void(bool)> done) {
  ++checks_in_flight_;
  std::weak_ptr<bool> alive = alive_;
  boost::asio::post(*pool_, [this, alive, hash = std::move(hash), password = std::move(password),
                             done = std::move(done)]() mutable {
    const bool ok = verify_password(hash, password);
    sodium_memzero(password.data(), password.size());
    boost::asio::post(io_, [this, alive, ok, done = std::move(done)] {
      if (alive.expired() || !*alive.lock()) return;
      --checks_in_flight_;
      done(ok);
    });
  });
}

void Api::hash_job(std::string password, std::function<void(Result<std::string>)> done) {
  ++checks_in_flight_;
  std::weak_ptr<bool> alive = alive_;
  const auto ops = auth_.options().pwhash_ops;
  const std::size_t mem = auth_.options().pwhash_mem;
  boost::asio::post(*pool_, [this, alive, ops, mem, password = std::move(password),
                             done = std::move(done)]() mutable {
    auto h = hash_password(password, ops, mem);
    sodium_memzero(password.data(), password.size());
    boost::asio::post(io_, [this, alive, h = std::move(h), done = std::move(done)]() mutable {
      if (alive.expired() || !*alive.lock()) return;
      --checks_in_flight_;
      done(std::move(h));
    });
  });
}

void Api::build_routes() {
  using R = const http::Request&;
  using P = const Principal&;

  // ---- auth ----
  add("POST", "/api/v1/auth/login", Access::kPublic,
      [this](R r, P, const Params&, http::Reply reply) {
        auto j = body_json(r);
        if (!j.is_ok()) {
          return reply(from_status(j.status()));
        }
        if (auto st = only_keys(j.value(), {"user", "password", "totp"}, ""); !st.is_ok()) {
          return reply(from_status(st));
        }
        auto user = string_field(j.value(), "user", true);
        auto password = string_field(j.value(), "password", true);
        auto totp = string_field(j.value(), "totp", false);
        for (const auto* f : {&user, &password, &totp}) {
          if (!f->is_ok()) return reply(from_status(f->status()));
        }
        if (password.value().size() > 1024)
          return reply(problem(422, "password: at most 1024 bytes", "password"));
        auto attempt = auth_.admit_login(user.value(), r.peer);
        if (!attempt.is_ok()) {
          refusal("login as '" + printable(user.value()) + "' from " + r.peer +
                  " refused: " + attempt.status().message());
          auto res = problem(429, attempt.status().message());
          res.headers.emplace_back("Retry-After",
                                   std::to_string(auth_.retry_after_s(user.value(), r.peer)));
          return reply(res);
        }
        if (checks_in_flight_ >= options_.max_password_checks) {
          auto res = problem(503, "too many logins at once; retry in a second");
          res.headers.emplace_back("Retry-After", "1");
          return reply(res);
        }
        const std::string peer = r.peer, method = r.method;
        password_job(
            attempt.value().hash, password.value(),
            [this, a = attempt.value(), totp = totp.value(), peer, method, reply](bool ok) {
              const AuditContext ctx{"user:" + a.user,  peer, method, "/api/v1/auth/login",
                                     "users/" + a.user, 200};
              auto t = auth_.finish_login(a, ok, totp, ctx);
              if (!t.is_ok()) {
                refusal("login as '" + printable(a.user) + "' from " + peer +
                        " failed: " + t.status().message());
                // The same answer whatever was wrong: a right password without its second
                // factor is not told apart (that would confirm the password).
                return reply(problem(401,
                                     "wrong user, password or code (a user with a second factor "
                                     "gives its current code in \"totp\")"));
              }
              audited(auth_.audit_entry(ctx, "", ""));
              reply(respond(200, tokens_json(t.value())));
            });
      });
  add("POST", "/api/v1/auth/refresh", Access::kPublic,
      [this](R r, P, const Params&, http::Reply reply) {
        auto j = body_json(r);
        if (!j.is_ok()) return reply(from_status(j.status()));
        if (auto st = only_keys(j.value(), {"refresh_token"}, ""); !st.is_ok())
          return reply(from_status(st));
        auto token = string_field(j.value(), "refresh_token", true);
        if (!token.is_ok()) return reply(from_status(token.status()));
        auto t = auth_.refresh(token.value(), r.peer);
        if (!t.is_ok()) {
          if (t.status().code() == Code::kResourceExhausted) {
            auto res = problem(429, t.status().message());
            res.headers.emplace_back("Retry-After",
                                     std::to_string(auth_.retry_after_s("", r.peer)));
            return reply(res);
          }
          return reply(problem(401, t.status().message()));
        }
        reply(respond(200, tokens_json(t.value())));
      });
  add("POST", "/api/v1/auth/logout", Access::kViewer,
      [this](R r, P who, const Params&, http::Reply reply) {
        const auto ctx = context(r, who, "/api/v1/auth/logout", "users/" + who.user, 204);
        auto st = auth_.logout(who, ctx);
        if (st.is_ok()) audited(auth_.audit_entry(ctx, "", ""));
        reply(st.is_ok() ? no_content() : from_status(st));
      });
  add("GET", "/api/v1/auth/whoami", Access::kViewer,
      [](R, P who, const Params&, http::Reply reply) {
        reply(respond(200,
                      {{"actor", who.actor}, {"user", who.user}, {"role", role_name(who.role)}}));
      });

  // ---- sites ----
  add("GET", "/api/v1/sites", Access::kViewer, [this](R r, P, const Params&, http::Reply reply) {
    auto page = page_of(r);
    if (!page.is_ok()) return reply(from_status(page.status()));
    const std::string state = r.param("state").value_or("");
    const std::string prefix = r.param("name_prefix").value_or("");
    static const std::set<std::string> kStates = {"",      "connected",        "disconnected",
                                                  "drift", "pending-approval", "not-enrolled"};
    if (!kStates.count(state)) {
      return reply(problem(
          422, "state: one of connected, disconnected, drift, pending-approval, not-enrolled",
          "state"));
    }
    std::vector<fleetv1::SiteView> all;
    const auto views = core_.site_views();
    for (const auto& v : views.sites()) {
      if (v.name().compare(0, prefix.size(), prefix) != 0) continue;
      if ((state == "connected" && !v.connected()) ||
          (state == "disconnected" && (v.connected() || !v.enrolled())) ||
          (state == "drift" && !v.drift()) || (state == "pending-approval" && v.approved()) ||
          (state == "not-enrolled" && v.enrolled())) {
        continue;
      }
      all.push_back(v);
    }
    reply(respond(200, paged(
                           all, page.value(), [](const auto& v) { return v.name(); }, site_json)));
  });
  // One site's view, without building every site's.
  auto site_view = [this](const std::string& name) { return core_.site_view(name); };
  // A site's ETag is of its stored record: what an operator's write changes (its live state
  // moves on its own).
  auto site_etag = [this](const std::string& name) -> std::string {
    auto rec = core_.site_record(name);
    return rec ? etag_of(rec->SerializeAsString()) : "";
  };
  add("GET", "/api/v1/sites/{name}", Access::kViewer,
      [site_view, site_etag](R, P, const Params& p, http::Reply reply) {
        auto v = site_view(p.at("name"));
        if (!v) return reply(problem(404, "no site '" + p.at("name") + "'"));
        reply(respond(200, site_json(*v), site_etag(p.at("name"))));
      });
  add("POST", "/api/v1/sites", Access::kOperator,
      [this, site_view, site_etag](R r, P who, const Params&, http::Reply reply) {
        auto j = body_json(r);
        if (!j.is_ok()) return reply(from_status(j.status()));
        auto s = site_from_json(j.value());
        if (!s.is_ok()) return reply(from_status(s.status()));
        fleetv1::Request q;
        *q.mutable_add_sites()->add_sites() = s.value();
        const std::string name = s.value().name();
        auto res = core_change(r, who, "/api/v1/sites", "sites/" + name, q, 201, [&] {
          auto out = respond(201, site_json(*site_view(name)), site_etag(name));
          out.headers.emplace_back("Location", "/api/v1/sites/" + name);
          return out;
        });
        if (res.status == 422 || res.status == 409) {
          // The core speaks of a batch ("sites[0].name: ..."); this is one site.
          json p = json::parse(res.body);
          const std::string d = strip_prefix(p["detail"].get<std::string>(), "sites[0].");
          res = problem(res.status, d, field_of(d));
        }
        reply(res);
      });
  add("PUT", "/api/v1/sites/{name}", Access::kOperator,
      [this, site_view, site_etag](R r, P who, const Params& p, http::Reply reply) {
        const std::string name = p.at("name");
        auto rec = core_.site_record(name);
        if (!rec) return reply(problem(404, "no site '" + name + "'"));
        if (auto pre = precondition(r, site_etag(name))) return reply(*pre);
        auto j = body_json(r);
        if (!j.is_ok()) return reply(from_status(j.status()));
        auto s = site_from_json(j.value());
        if (!s.is_ok()) return reply(from_status(s.status()));
        if (!s.value().name().empty() && s.value().name() != name) {
          return reply(problem(422, "name: a site is not renamed (it is '" + name + "')", "name"));
        }
        s.value().set_name(name);
        fleetv1::Request q;
        *q.mutable_update_site()->mutable_site() = s.value();
        reply(core_change(r, who, "/api/v1/sites/{name}", "sites/" + name, q, 200, [&] {
          return respond(200, site_json(*site_view(name)), site_etag(name));
        }));
      });
  add("DELETE", "/api/v1/sites/{name}", Access::kOperator,
      [this, site_etag](R r, P who, const Params& p, http::Reply reply) {
        const std::string name = p.at("name");
        if (!core_.site_record(name)) return reply(problem(404, "no site '" + name + "'"));
        if (auto pre = precondition(r, site_etag(name))) return reply(*pre);
        fleetv1::Request q;
        q.mutable_remove_site()->set_name(name);
        reply(core_change(r, who, "/api/v1/sites/{name}", "sites/" + name, q, 204, no_content));
      });
  add("POST", "/api/v1/sites/{name}/approve", Access::kOperator,
      [this, site_view, site_etag](R r, P who, const Params& p, http::Reply reply) {
        const std::string name = p.at("name");
        if (!core_.site_record(name)) return reply(problem(404, "no site '" + name + "'"));
        if (auto pre = precondition(r, site_etag(name))) return reply(*pre);
        fleetv1::Request q;
        q.mutable_approve_site()->set_name(name);
        reply(core_change(r, who, "/api/v1/sites/{name}/approve", "sites/" + name, q, 200, [&] {
          return respond(200, site_json(*site_view(name)), site_etag(name));
        }));
      });
  add("POST", "/api/v1/sites/{name}/enrolment-tokens", Access::kOperator,
      [this](R r, P who, const Params& p, http::Reply reply) {
        std::int64_t ttl = 0;
        if (!r.body.empty()) {
          auto j = body_json(r);
          if (!j.is_ok()) return reply(from_status(j.status()));
          if (auto st = only_keys(j.value(), {"ttl_s"}, ""); !st.is_ok())
            return reply(from_status(st));
          if (j.value().contains("ttl_s")) {
            if (!j.value()["ttl_s"].is_number_integer())
              return reply(problem(422, "ttl_s: an integer", "ttl_s"));
            ttl = j.value()["ttl_s"].get<std::int64_t>();
            if (ttl < 1) return reply(problem(422, "ttl_s: between 1 s and 365 days", "ttl_s"));
          }
        }
        fleetv1::Request q;
        q.mutable_create_token()->set_site(p.at("name"));
        q.mutable_create_token()->set_ttl_s(ttl);
        // The token is in the reply once; the audit trail has only the site and the expiry.
        reply(core_change_with(r, who, "/api/v1/sites/{name}/enrolment-tokens",
                               "sites/" + p.at("name"), q, 201, [](const fleetv1::Response& res) {
                                 return respond(
                                     201, {{"site", res.token().site()},
                                           {"token", res.token().token()},
                                           {"expires_unix_ns", res.token().expires_unix_ns()}});
                               }));
      });
  add("DELETE", "/api/v1/sites/{name}/enrolment-tokens", Access::kOperator,
      [this](R r, P who, const Params& p, http::Reply reply) {
        fleetv1::Request q;
        q.mutable_revoke_tokens()->set_site(p.at("name"));
        reply(core_change(r, who, "/api/v1/sites/{name}/enrolment-tokens", "sites/" + p.at("name"),
                          q, 204, no_content));
      });
  add("GET", "/api/v1/sites/{name}/selections", Access::kViewer,
      [this](R, P, const Params& p, http::Reply reply) {
        const auto sel = core_.selections(p.at("name"));
        if (!sel) return reply(problem(404, "no site '" + p.at("name") + "'"));
        std::map<std::uint64_t, std::string> names;
        const auto views = core_.path_views(p.at("name"));  // kept: the loop reads into it
        for (const auto& v : views.paths()) names[v.id()] = v.name();
        json out{{"site", p.at("name")}, {"items", json::array()}};
        for (const auto& c : *sel) {
          const auto n = names.find(c.path());
          out["items"].push_back({{"class_name", c.class_name()},
                                  {"remote_site", c.remote_site()},
                                  {"path", c.path()},
                                  {"path_name", n == names.end() ? json(nullptr) : json(n->second)},
                                  {"reason", c.reason()}});
        }
        reply(respond(200, out));
      });
  add("POST", "/api/v1/sites/{name}/endpoints/{endpoint}/rotate-key", Access::kOperator,
      [this, site_view](R r, P who, const Params& p, http::Reply reply) {
        fleetv1::Request q;
        q.mutable_rotate_key()->set_site(p.at("name"));
        q.mutable_rotate_key()->set_endpoint(p.at("endpoint"));
        const std::string name = p.at("name");
        reply(core_change(r, who, "/api/v1/sites/{name}/endpoints/{endpoint}/rotate-key",
                          "sites/" + name + "/endpoints/" + p.at("endpoint"), q, 202,
                          [&] { return respond(202, site_json(*site_view(name))); }));
      });

  // ---- fleet settings ----
  auto settings_route = [this](const std::string& pattern, const std::function<json()>& show) {
    add("GET", pattern, Access::kViewer, [show](R, P, const Params&, http::Reply reply) {
      const json j = show();
      reply(respond(200, j, etag_of(j.dump(-1, ' ', false, json::error_handler_t::replace))));
    });
  };
  settings_route("/api/v1/topology", [this] { return settings_topology(core_.settings_record()); });
  add("PUT", "/api/v1/topology", Access::kOperator,
      [this](R r, P who, const Params&, http::Reply reply) {
        if (auto pre =
                precondition(r, etag_of(settings_topology(core_.settings_record())
                                            .dump(-1, ' ', false, json::error_handler_t::replace))))
          return reply(*pre);
        auto j = body_json(r);
        if (!j.is_ok()) return reply(from_status(j.status()));
        json body = j.value();
        if (body.contains("persistent_keepalive") && body["persistent_keepalive"].is_null())
          body.erase("persistent_keepalive");
        fleetv1::Request q;
        if (auto st = proto_body(body,
                                 {"topology", "hubs", "k", "overlay_ipv4", "overlay_ipv6",
                                  "persistent_keepalive", "rules", "links"},
                                 q.mutable_set_topology());
            !st.is_ok()) {
          return reply(from_status(st));
        }
        q.mutable_set_topology()->set_mesh_given(true);
        reply(core_change(r, who, "/api/v1/topology", "topology", q, 200, [this] {
          const json t = settings_topology(core_.settings_record());
          return respond(200, t, etag_of(t.dump(-1, ' ', false, json::error_handler_t::replace)));
        }));
      });
  settings_route("/api/v1/classes", [this] { return classes_json(core_.settings_record()); });
  add("PUT", "/api/v1/classes", Access::kOperator,
      [this](R r, P who, const Params&, http::Reply reply) {
        if (auto pre =
                precondition(r, etag_of(classes_json(core_.settings_record())
                                            .dump(-1, ' ', false, json::error_handler_t::replace))))
          return reply(*pre);
        auto j = body_json(r);
        if (!j.is_ok()) return reply(from_status(j.status()));
        fleetv1::Request q;
        if (auto st = proto_body(j.value(), {"classes", "rules", "default_class"},
                                 q.mutable_set_classes()->mutable_classes());
            !st.is_ok()) {
          return reply(from_status(st));
        }
        reply(core_change(r, who, "/api/v1/classes", "classes", q, 200, [this] {
          const json c = classes_json(core_.settings_record());
          return respond(200, c, etag_of(c.dump(-1, ' ', false, json::error_handler_t::replace)));
        }));
      });
  add("DELETE", "/api/v1/classes", Access::kOperator,
      [this](R r, P who, const Params&, http::Reply reply) {
        if (auto pre =
                precondition(r, etag_of(classes_json(core_.settings_record())
                                            .dump(-1, ' ', false, json::error_handler_t::replace))))
          return reply(*pre);
        fleetv1::Request q;
        q.mutable_set_classes()->set_clear(true);
        reply(core_change(r, who, "/api/v1/classes", "classes", q, 204, no_content));
      });

  settings_route("/api/v1/policies", [this] { return policies_json(core_.settings_record()); });
  add("POST", "/api/v1/policies", Access::kOperator,
      [this](R r, P who, const Params&, http::Reply reply) {
        if (auto pre =
                precondition(r, etag_of(policies_json(core_.settings_record())
                                            .dump(-1, ' ', false, json::error_handler_t::replace))))
          return reply(*pre);
        const auto ct = r.header("content-type").value_or("");
        if (ct.rfind("application/yaml", 0) != 0) {
          return reply(problem(415,
                               "Content-Type: application/yaml (the NetworkPolicy manifests "
                               "`patronus policy apply` takes)"));
        }
        auto m = policy::parse_manifests(r.body, "body", policy::Accept::kPolicies);
        if (!m.is_ok())
          return reply(problem(422, m.status().message(), field_of(m.status().message())));
        if (m.value().policies.empty()) return reply(problem(422, "body: no NetworkPolicy", ""));
        fleetv1::Request q;
        for (const auto& np : m.value().policies) {
          *q.mutable_set_policies()->add_apply() = controller::policy_record(np);
        }
        reply(core_change(r, who, "/api/v1/policies", "policies", q, 200, [this] {
          const json c = policies_json(core_.settings_record());
          return respond(200, c, etag_of(c.dump(-1, ' ', false, json::error_handler_t::replace)));
        }));
      });
  add("DELETE", "/api/v1/policies/{namespace}/{name}", Access::kOperator,
      [this](R r, P who, const Params& p, http::Reply reply) {
        if (auto pre =
                precondition(r, etag_of(policies_json(core_.settings_record())
                                            .dump(-1, ' ', false, json::error_handler_t::replace))))
          return reply(*pre);
        fleetv1::Request q;
        const std::string key = p.at("namespace") + "/" + p.at("name");
        q.mutable_set_policies()->add_remove(key);
        reply(core_change(r, who, "/api/v1/policies/{namespace}/{name}", "policies/" + key, q, 204,
                          no_content));
      });
  // What the fleet's policies allow between the inventory's pods (what `patronus policy matrix`
  // prints), by the same classifier the sites run.
  add("GET", "/api/v1/policies/reachability", Access::kViewer,
      [this](R r, P, const Params&, http::Reply reply) {
        auto probe = policy::parse_probe(r.param("probe").value_or("tcp/80"));
        if (!probe.is_ok()) return reply(problem(422, probe.status().message(), "probe"));
        const auto& rec = core_.settings_record();
        std::vector<policy::NetworkPolicy> policies;
        for (const auto& p : rec.policies()) {
          auto np = policy::policy_from_spec_json(p.name(), p.ns(), p.spec_json(), p.enabled(),
                                                  p.priority());
          if (!np.is_ok()) return reply(from_status(np.status()));  // validated when stored
          policies.push_back(std::move(np).value());
        }
        policy::Manifests m;
        if (!rec.inventory().empty()) {
          auto parsed =
              policy::parse_manifests(rec.inventory(), "inventory", policy::Accept::kInventory);
          if (!parsed.is_ok()) return reply(from_status(parsed.status()));
          m = std::move(parsed).value();
        }
        if (m.pods.size() > kMaxMatrixPods) {
          return reply(problem(422,
                               "the inventory has " + std::to_string(m.pods.size()) +
                                   " pods: a matrix is computed for at most " +
                                   std::to_string(kMaxMatrixPods) +
                                   " (ask `patronus policy check` about a pair instead)",
                               ""));
        }
        const policy::Inventory inv = policy::make_inventory(std::move(m));
        const policy::Classifier classifier(std::move(policies), inv);
        const auto matrix = policy::reachability(classifier, inv, probe.value());
        json out{
            {"probe", probe.value().text}, {"pods", json::array()}, {"allowed", json::array()}};
        for (int i : matrix.pods)
          out["pods"].push_back(inv.pods[static_cast<std::size_t>(i)].key());
        for (const auto& row : matrix.allowed) {
          json cells = json::array();
          for (bool ok : row) cells.push_back(ok);
          out["allowed"].push_back(std::move(cells));
        }
        reply(respond(200, out));
      });
  add("GET", "/api/v1/inventory", Access::kViewer, [this](R, P, const Params&, http::Reply reply) {
    http::Response res;
    res.content_type = "application/yaml";
    res.body = core_.settings_record().inventory();
    res.headers.emplace_back("ETag", etag_of(res.body));
    reply(res);
  });
  add("PUT", "/api/v1/inventory", Access::kOperator,
      [this](R r, P who, const Params&, http::Reply reply) {
        if (auto pre = precondition(r, etag_of(core_.settings_record().inventory())))
          return reply(*pre);
        const auto ct = r.header("content-type").value_or("");
        if (ct.rfind("application/yaml", 0) != 0)
          return reply(problem(415, "Content-Type: application/yaml"));
        if (!r.body.empty()) {
          auto m = policy::parse_manifests(r.body, "body", policy::Accept::kInventory);
          if (!m.is_ok())
            return reply(problem(422, m.status().message(), field_of(m.status().message())));
        }
        fleetv1::Request q;
        q.mutable_set_policies()->set_inventory(r.body);
        q.mutable_set_policies()->set_inventory_given(true);
        reply(core_change(r, who, "/api/v1/inventory", "inventory", q, 204, no_content));
      });

  settings_route("/api/v1/plugins", [this] { return plugins_json(core_.settings_record()); });
  add("PUT", "/api/v1/plugins/{instance}", Access::kOperator,
      [this](R r, P who, const Params& p, http::Reply reply) {
        if (auto pre =
                precondition(r, etag_of(plugins_json(core_.settings_record())
                                            .dump(-1, ' ', false, json::error_handler_t::replace))))
          return reply(*pre);
        auto j = body_json(r);
        if (!j.is_ok()) return reply(from_status(j.status()));
        fleetv1::Request q;
        auto* s = q.mutable_set_plugin()->mutable_setting();
        if (auto st = proto_body(j.value(), {"plugin", "config", "yaml"}, s); !st.is_ok())
          return reply(from_status(st));
        if (s->plugin().empty()) return reply(problem(422, "plugin: required", "plugin"));
        s->set_instance(p.at("instance"));
        s->set_site(r.param("site").value_or(""));
        reply(core_change(r, who, "/api/v1/plugins/{instance}", "plugins/" + p.at("instance"), q,
                          200,
                          [this] { return respond(200, plugins_json(core_.settings_record())); }));
      });
  add("DELETE", "/api/v1/plugins/{instance}", Access::kOperator,
      [this](R r, P who, const Params& p, http::Reply reply) {
        if (auto pre =
                precondition(r, etag_of(plugins_json(core_.settings_record())
                                            .dump(-1, ' ', false, json::error_handler_t::replace))))
          return reply(*pre);
        fleetv1::Request q;
        q.mutable_set_plugin()->mutable_setting()->set_instance(p.at("instance"));
        q.mutable_set_plugin()->mutable_setting()->set_site(r.param("site").value_or(""));
        q.mutable_set_plugin()->set_remove(true);
        reply(core_change(r, who, "/api/v1/plugins/{instance}", "plugins/" + p.at("instance"), q,
                          204, no_content));
      });

  // ---- the fleet's state ----
  add("GET", "/api/v1/paths", Access::kViewer, [this](R r, P, const Params&, http::Reply reply) {
    auto page = page_of(r);
    if (!page.is_ok()) return reply(from_status(page.status()));
    const std::string site = r.param("site").value_or(""), state = r.param("state").value_or("");
    std::vector<fleetv1::PathView> all;
    const auto views = core_.path_views(site);
    for (const auto& v : views.paths()) {
      if ((site.empty() || v.site() == site) && (state.empty() || v.state() == state))
        all.push_back(v);
    }
    auto key = [](const fleetv1::PathView& v) {
      char id[24];
      std::snprintf(id, sizeof id, "%020llu", static_cast<unsigned long long>(v.id()));
      return v.site() + "/" + id;
    };
    std::sort(all.begin(), all.end(),
              [&](const auto& a, const auto& b) { return key(a) < key(b); });
    reply(respond(200, paged(all, page.value(), key, [](const auto& v) { return pj(v); })));
  });
  add("GET", "/api/v1/sites/{name}/path-history", Access::kViewer,
      [this](R, P, const Params& p, http::Reply reply) {
        const auto h = core_.path_history(p.at("name"));
        if (!h) return reply(problem(404, "no site '" + p.at("name") + "'"));
        json out{{"site", p.at("name")}, {"paths", json::array()}};
        for (const auto& x : *h) out["paths"].push_back(pj(x));
        reply(respond(200, out));
      });
  add("GET", "/api/v1/decisions", Access::kViewer,
      [this](R r, P, const Params&, http::Reply reply) {
        auto page = page_of(r);
        if (!page.is_ok()) return reply(from_status(page.status()));
        // The newest 1000 (each site keeps its last 256), newest first, a page at a time.
        fleetv1::Request q;
        q.mutable_fleet_decisions()->set_site(r.param("site").value_or(""));
        q.mutable_fleet_decisions()->set_limit(1000);
        const auto res = core_.handle(q);
        if (res.has_error()) return reply(from_error(res.error()));
        const std::vector<fleetv1::DecisionView> all(res.decisions().decisions().begin(),
                                                     res.decisions().decisions().end());
        auto key = [](const fleetv1::DecisionView& d) {
          char age[24];
          std::snprintf(
              age, sizeof age, "%020lld",
              static_cast<long long>(std::numeric_limits<std::int64_t>::max() - d.unix_ns()));
          return std::string(age) + "/" + d.site() + "/" + d.class_name() + "/" + d.remote_site();
        };
        reply(respond(200, paged(all, page.value(), key, [](const auto& d) { return pj(d); })));
      });
  add("GET", "/api/v1/events", Access::kViewer,
      [this](R r, P who, const Params&, http::Reply reply) {
        std::uint64_t after = 0;
        if (auto a = r.param("after")) {
          char* end = nullptr;
          after = std::strtoull(a->c_str(), &end, 10);
          if (a->empty() || *end != '\0') return reply(problem(422, "after: an event id", "after"));
        }
        auto page = page_of(r);
        if (!page.is_ok()) return reply(from_status(page.status()));
        const std::string kind = r.param("kind").value_or(""), site = r.param("site").value_or("");
        if (!kind.empty() && !known_kind(kind)) {
          return reply(
              problem(422, "kind: not an event kind (see EventKind in api/openapi.yaml)", "kind"));
        }
        json out{{"items", json::array()},
                 {"oldest_id", events_.empty() ? json(nullptr) : json(events_.front().id())},
                 {"last_id", next_event_ - 1}};
        for (const auto& e : events_) {
          if (e.id() <= after || (!kind.empty() && e.kind() != kind) ||
              (!site.empty() && e.site() != site) || !visible(e, who))
            continue;
          if (out["items"].size() == page.value().limit) break;
          out["items"].push_back(event_json(e));
        }
        reply(respond(200, out));
      });
  // The stream needs its connection: handle() answers it (start_stream).
  add("GET", "/api/v1/events/stream", Access::kViewer, nullptr);

  // ---- users ----
  add("GET", "/api/v1/users", Access::kAdmin, [this](R r, P, const Params&, http::Reply reply) {
    auto page = page_of(r);
    if (!page.is_ok()) return reply(from_status(page.status()));
    reply(respond(200, paged(
                           auth_.list_users(), page.value(), [](const auto& u) { return u.name(); },
                           user_json)));
  });
  add("POST", "/api/v1/users", Access::kAdmin,
      [this](R r, P who, const Params&, http::Reply reply) {
        auto j = body_json(r);
        if (!j.is_ok()) return reply(from_status(j.status()));
        if (auto st = only_keys(j.value(), {"name", "role", "password"}, ""); !st.is_ok())
          return reply(from_status(st));
        auto name = string_field(j.value(), "name", true);
        auto role = string_field(j.value(), "role", true);
        auto password = string_field(j.value(), "password", true);
        for (const auto* f : {&name, &role, &password}) {
          if (!f->is_ok()) return reply(from_status(f->status()));
        }
        const auto rl = parse_role(role.value());
        if (!rl) return reply(problem(422, "role: one of admin, operator, viewer", "role"));
        if (auto st = check_password(password.value()); !st.is_ok()) return reply(from_status(st));
        if (auth_.user(name.value()))
          return reply(problem(409, "user '" + name.value() + "' exists already"));
        if (checks_in_flight_ >= options_.max_password_checks)
          return reply(problem(503, "busy hashing passwords; retry"));
        const AuditContext ctx = context(r, who, "/api/v1/users", "users/" + name.value(), 201);
        hash_job(password.value(), [this, ctx, n = name.value(), rl, reply](Result<std::string> h) {
          if (!h.is_ok()) return reply(from_status(h.status()));
          auto u = auth_.create_user(n, *rl, h.value(), ctx);
          if (!u.is_ok()) return reply(from_status(u.status()));
          audited(auth_.audit_entry(ctx, "", audit_json(u.value())));
          auto res = respond(201, user_json(u.value()), etag_of(audit_json(u.value())));
          res.headers.emplace_back("Location", "/api/v1/users/" + n);
          reply(res);
        });
      });
  add("GET", "/api/v1/users/{name}", Access::kViewer,
      [this](R, P who, const Params& p, http::Reply reply) {
        if (who.role != Role::kAdmin && who.user != p.at("name")) {
          return reply(problem(403, "a user other than yourself needs the admin role"));
        }
        auto u = auth_.user(p.at("name"));
        if (!u) return reply(problem(404, "no user '" + p.at("name") + "'"));
        reply(respond(200, user_json(*u), etag_of(audit_json(*u))));
      });
  add("PATCH", "/api/v1/users/{name}", Access::kAdmin,
      [this](R r, P who, const Params& p, http::Reply reply) {
        auto u = auth_.user(p.at("name"));
        if (!u) return reply(problem(404, "no user '" + p.at("name") + "'"));
        if (auto pre = precondition(r, etag_of(audit_json(*u)))) return reply(*pre);
        auto j = body_json(r);
        if (!j.is_ok()) return reply(from_status(j.status()));
        if (auto st = only_keys(j.value(), {"role"}, ""); !st.is_ok())
          return reply(from_status(st));
        auto role = string_field(j.value(), "role", true);
        if (!role.is_ok()) return reply(from_status(role.status()));
        const auto rl = parse_role(role.value());
        if (!rl) return reply(problem(422, "role: one of admin, operator, viewer", "role"));
        const auto ctx = context(r, who, "/api/v1/users/{name}", "users/" + p.at("name"), 200);
        if (auto st = auth_.set_role(p.at("name"), *rl, ctx); !st.is_ok())
          return reply(from_status(st));
        const auto now = *auth_.user(p.at("name"));
        audited(auth_.audit_entry(ctx, audit_json(*u), audit_json(now)));
        reply(respond(200, user_json(now), etag_of(audit_json(now))));
      });
  add("DELETE", "/api/v1/users/{name}", Access::kAdmin,
      [this](R r, P who, const Params& p, http::Reply reply) {
        auto u = auth_.user(p.at("name"));
        if (!u) return reply(problem(404, "no user '" + p.at("name") + "'"));
        if (auto pre = precondition(r, etag_of(audit_json(*u)))) return reply(*pre);
        const auto ctx = context(r, who, "/api/v1/users/{name}", "users/" + p.at("name"), 204);
        if (auto st = auth_.delete_user(p.at("name"), ctx); !st.is_ok())
          return reply(from_status(st));
        audited(auth_.audit_entry(ctx, audit_json(*u), ""));
        reply(no_content());
      });
  add("PUT", "/api/v1/users/{name}/password", Access::kViewer,
      [this](R r, P who, const Params& p, http::Reply reply) {
        const std::string name = p.at("name");
        const bool self = who.user == name && !who.session.empty();
        if (!self && who.role != Role::kAdmin) {
          return reply(problem(403, "another user's password needs the admin role"));
        }
        auto u = auth_.user(name);
        if (!u) return reply(problem(404, "no user '" + name + "'"));
        auto j = body_json(r);
        if (!j.is_ok()) return reply(from_status(j.status()));
        if (auto st = only_keys(j.value(), {"password", "current_password"}, ""); !st.is_ok())
          return reply(from_status(st));
        auto password = string_field(j.value(), "password", true);
        auto current = string_field(j.value(), "current_password", self);
        for (const auto* f : {&password, &current}) {
          if (!f->is_ok()) return reply(from_status(f->status()));
        }
        if (auto st = check_password(password.value()); !st.is_ok()) return reply(from_status(st));
        if (checks_in_flight_ + 2 > options_.max_password_checks)
          return reply(problem(503, "busy hashing passwords; retry"));
        const auto ctx = context(r, who, "/api/v1/users/{name}/password", "users/" + name, 204);
        auto set = [this, ctx, name, before = *u, reply](const std::string& pw) {
          hash_job(pw, [this, ctx, name, before, reply](Result<std::string> h) {
            if (!h.is_ok()) return reply(from_status(h.status()));
            if (auto st = auth_.set_password(name, h.value(), ctx); !st.is_ok())
              return reply(from_status(st));
            audited(auth_.audit_entry(ctx, audit_json(before), audit_json(*auth_.user(name))));
            reply(no_content());
          });
        };
        if (!self) return set(password.value());
        password_job(u->password_hash(), current.value(),
                     [set, pw = password.value(), reply](bool ok) {
                       if (!ok)
                         return reply(problem(403, "current_password: not the current password"));
                       set(pw);
                     });
      });
  auto self_or_admin = [](P who, const std::string& name) {
    return (who.user == name && !who.session.empty()) || who.role == Role::kAdmin;
  };
  add("POST", "/api/v1/users/{name}/totp", Access::kViewer,
      [this, self_or_admin](R r, P who, const Params& p, http::Reply reply) {
        if (!self_or_admin(who, p.at("name")))
          return reply(problem(403, "another user's second factor needs the admin role"));
        const auto before = auth_.user(p.at("name"));
        const auto ctx = context(r, who, "/api/v1/users/{name}/totp", "users/" + p.at("name"), 201);
        auto secret = auth_.enrol_totp(p.at("name"), ctx);
        if (!secret.is_ok()) return reply(from_status(secret.status()));
        audited(auth_.audit_entry(ctx, audit_json(*before), audit_json(*auth_.user(p.at("name")))));
        reply(respond(
            201, {{"secret", secret.value()},
                  {"uri", "otpauth://totp/Patronus:" + p.at("name") + "?secret=" + secret.value() +
                              "&issuer=Patronus&algorithm=SHA1&digits=6&period=30"}}));
      });
  add("POST", "/api/v1/users/{name}/totp/confirm", Access::kViewer,
      [this, self_or_admin](R r, P who, const Params& p, http::Reply reply) {
        if (!self_or_admin(who, p.at("name")))
          return reply(problem(403, "another user's second factor needs the admin role"));
        auto j = body_json(r);
        if (!j.is_ok()) return reply(from_status(j.status()));
        if (auto st = only_keys(j.value(), {"code"}, ""); !st.is_ok())
          return reply(from_status(st));
        auto code = string_field(j.value(), "code", true);
        if (!code.is_ok()) return reply(from_status(code.status()));
        const auto before = auth_.user(p.at("name"));
        const auto ctx =
            context(r, who, "/api/v1/users/{name}/totp/confirm", "users/" + p.at("name"), 204);
        if (auto st = auth_.confirm_totp(p.at("name"), code.value(), ctx); !st.is_ok())
          return reply(from_status(st));
        audited(auth_.audit_entry(ctx, audit_json(*before), audit_json(*auth_.user(p.at("name")))));
        reply(no_content());
      });
  add("DELETE", "/api/v1/users/{name}/totp", Access::kViewer,
      [this, self_or_admin](R r, P who, const Params& p, http::Reply reply) {
        if (!self_or_admin(who, p.at("name")))
          return reply(problem(403, "another user's second factor needs the admin role"));
        const auto before = auth_.user(p.at("name"));
        const auto ctx = context(r, who, "/api/v1/users/{name}/totp", "users/" + p.at("name"), 204);
        if (auto st = auth_.remove_totp(p.at("name"), ctx); !st.is_ok())
          return reply(from_status(st));
        audited(auth_.audit_entry(ctx, audit_json(*before), audit_json(*auth_.user(p.at("name")))));
        reply(no_content());
      });

  // ---- API keys: anyone signed in makes their own (at most their role); admins see all ----
  add("GET", "/api/v1/api-keys", Access::kViewer,
      [this](R r, P who, const Params&, http::Reply reply) {
        auto page = page_of(r);
        if (!page.is_ok()) return reply(from_status(page.status()));
        std::vector<fleetv1::ApiKey> keys;
        for (const auto& k : auth_.list_keys()) {
          if (who.role == Role::kAdmin || k.user() == who.user) keys.push_back(k);
        }
        reply(
            respond(200, paged(
                             keys, page.value(), [](const auto& k) { return k.id(); }, key_json)));
      });
  add("POST", "/api/v1/api-keys", Access::kViewer,
      [this](R r, P who, const Params&, http::Reply reply) {
        auto j = body_json(r);
        if (!j.is_ok()) return reply(from_status(j.status()));
        if (auto st = only_keys(j.value(), {"name", "role", "expires_in_days"}, ""); !st.is_ok())
          return reply(from_status(st));
        auto name = string_field(j.value(), "name", true);
        auto role = string_field(j.value(), "role", true);
        for (const auto* f : {&name, &role}) {
          if (!f->is_ok()) return reply(from_status(f->status()));
        }
        const auto rl = parse_role(role.value());
        if (!rl) return reply(problem(422, "role: one of admin, operator, viewer", "role"));
        std::int64_t days = 90;
        if (j.value().contains("expires_in_days")) {
          if (!j.value()["expires_in_days"].is_number_integer())
            return reply(problem(422, "expires_in_days: an integer", "expires_in_days"));
          days = j.value()["expires_in_days"].get<std::int64_t>();
          if (days < 1 || days > 366)
            return reply(problem(422, "expires_in_days: between 1 and 366", "expires_in_days"));
        }
        const auto ctx = context(r, who, "/api/v1/api-keys", "api-keys", 201);
        auto k = auth_.create_key(who, name.value(), *rl, days * 24 * 3600 * 1'000'000'000LL, ctx);
        if (!k.is_ok()) return reply(from_status(k.status()));
        AuditContext shown = ctx;
        shown.target = "api-keys/" + k.value().record.id();
        audited(auth_.audit_entry(shown, "", audit_json(k.value().record)));
        json out = key_json(k.value().record);
        out["key"] = k.value().key;  // shown once
        auto res = respond(201, out);
        res.headers.emplace_back("Location", "/api/v1/api-keys/" + k.value().record.id());
        reply(res);
      });
  add("GET", "/api/v1/api-keys/{id}", Access::kViewer,
      [this](R, P who, const Params& p, http::Reply reply) {
        auto k = auth_.key(p.at("id"));
        if (!k || (who.role != Role::kAdmin && k->user() != who.user))
          return reply(problem(404, "no API key '" + p.at("id") + "'"));
        reply(respond(200, key_json(*k)));
      });
  add("DELETE", "/api/v1/api-keys/{id}", Access::kViewer,
      [this](R r, P who, const Params& p, http::Reply reply) {
        auto k = auth_.key(p.at("id"));
        if (!k || (who.role != Role::kAdmin && k->user() != who.user))
          return reply(problem(404, "no API key '" + p.at("id") + "'"));
        const auto ctx = context(r, who, "/api/v1/api-keys/{id}", "api-keys/" + p.at("id"), 204);
        if (auto st = auth_.revoke_key(p.at("id"), ctx); !st.is_ok()) return reply(from_status(st));
        audited(auth_.audit_entry(ctx, audit_json(*k), audit_json(*auth_.key(p.at("id")))));
        reply(no_content());
      });

  // ---- the audit trail ----
  add("GET", "/api/v1/audit", Access::kOperator, [this](R r, P, const Params&, http::Reply reply) {
    auto page = page_of(r);
    if (!page.is_ok()) return reply(from_status(page.status()));
    controller::AuditQuery q;
    q.limit = static_cast<std::uint32_t>(page.value().limit) + 1;
    if (!page.value().after.empty()) {
      char* end = nullptr;
      q.before_id = std::strtoull(page.value().after.c_str(), &end, 10);
      if (*end != '\0')
        return reply(problem(422, "cursor: not a cursor this API returned", "cursor"));
    }
    q.actor = r.param("actor").value_or("");
    q.target_prefix = r.param("target").value_or("");
    if (store_ == nullptr)
      return reply(respond(200, {{"items", json::array()}, {"next_cursor", nullptr}}));
    auto rows = store_->read_audit(q);
    if (!rows.is_ok()) return reply(from_status(rows.status()));
    json out{{"items", json::array()}, {"next_cursor", nullptr}};
    for (std::size_t i = 0; i < rows.value().size() && i < page.value().limit; ++i) {
      out["items"].push_back(audit_json_of(rows.value()[i], true));
    }
    if (rows.value().size() > page.value().limit) {
      out["next_cursor"] = cursor_of(std::to_string(rows.value()[page.value().limit - 1].id()));
    }
    reply(respond(200, out));
  });
}

}  // namespace patronus::controllerd
