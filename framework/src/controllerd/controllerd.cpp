#include "controllerd.hpp"

#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <sodium.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <sstream>

#include "api.hpp"
#include "auth.hpp"
#include "channel.hpp"
#include "control.hpp"
#include "exposition.hpp"
#include "health.hpp"
#include "metrics.hpp"
#include "patronus/controller/core.hpp"
#include "patronus/env/asio_env.hpp"
#include "patronus/site/site_lock.hpp"
#include "patronus/util/file.hpp"
#include "patronus/util/utc_time.hpp"
#include "socket.hpp"
#include "static_files.hpp"
#include "yaml_fields.hpp"

namespace patronus::controllerd {

namespace {

std::string resolve(const std::string& base, const std::string& p) {
  if (p.empty() || p.front() == '/') return p;
  return (std::filesystem::path(base) / p).lexically_normal().string();
}

class Log {
 public:
  explicit Log(int level) : level_(level) {}
  void log(int level, const std::string& m) const {
    if (level < level_) return;
    static const char* const kNames[] = {"debug", "info", "warn", "error"};
    const auto now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    std::cerr << util::utc_time(now) << " patronus-controller " << kNames[level] << ": " << m
              << std::endl;
  }

 private:
  int level_;
};

int level_of(const std::string& n) {
  return n == "debug" ? 0 : n == "warn" ? 2 : n == "error" ? 3 : 1;
}

}  // namespace

Result<Config> parse_config(const std::string& text, const std::string& base_dir) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return invalid_argument("line " + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  if (!root.IsMap()) return invalid_argument("the config is a YAML map");
  if (auto s = yamlf::check_keys(
          root,
          {"listen", "state_db", "identity_dir", "admin_socket", "require_approval", "debounce_ms",
           "max_wait_ms", "idle_timeout_ms", "max_sites", "log_level", "api"},
          "");
      !s.is_ok()) {
    return s;
  }
  Config c;
  auto str = [&](const char* key, std::string* out, bool required) -> Status {
    auto v = yamlf::string_field(root, key, "", required);
    if (!v.is_ok()) return v.status();
    if (!v.value().empty()) *out = v.value();
    return Status::ok();
  };
  auto num = [&](const char* key, std::int64_t* out, std::int64_t lo, std::int64_t hi) -> Status {
    if (!root[key]) return Status::ok();
    auto v = yamlf::integer(root[key], key, lo, hi);
    if (!v.is_ok()) return v.status();
    *out = v.value();
    return Status::ok();
  };
  for (auto s :
       {str("listen", &c.listen, false), str("state_db", &c.state_db, true),
        str("identity_dir", &c.identity_dir, false), str("admin_socket", &c.admin_socket, false),
        str("log_level", &c.log_level, false), num("debounce_ms", &c.debounce_ms, 0, 60000),
        num("max_wait_ms", &c.max_wait_ms, 0, 600000),
        num("idle_timeout_ms", &c.idle_timeout_ms, 2000, 3600000)}) {
    if (!s.is_ok()) return s;
  }
  if (root["max_sites"]) {
    auto v = yamlf::integer(root["max_sites"], "max_sites", 1, 100000);
    if (!v.is_ok()) return v.status();
    c.max_sites = static_cast<std::uint32_t>(v.value());
  }
  if (root["require_approval"]) {
    auto v = yamlf::boolean(root["require_approval"], "require_approval");
    if (!v.is_ok()) return v.status();
    c.require_approval = v.value();
  }
  if (c.log_level != "debug" && c.log_level != "info" && c.log_level != "warn" &&
      c.log_level != "error") {
    return invalid_argument(yamlf::at(root["log_level"]) +
                            "log_level: one of debug, info, warn, error");
  }
  if (auto a = model::SocketAddress::parse(c.listen); !a.is_ok()) {
    return invalid_argument(yamlf::at(root["listen"]) + "listen: " + a.status().message());
  }
  if (c.max_wait_ms < c.debounce_ms) {
    return invalid_argument("max_wait_ms: must not be shorter than debounce_ms");
  }
  if (const auto a = root["api"]) {
    if (!a.IsMap()) return invalid_argument(yamlf::at(a) + "api: a map");
    if (auto s =
            yamlf::check_keys(a,
                              {"listen", "names", "tls_cert", "tls_key", "audit_retention_days",
                               "access_token_ttl_s", "refresh_token_ttl_s", "max_connections",
                               "max_streams", "request_timeout_ms", "ui_dir"},
                              "api");
        !s.is_ok()) {
      return s;
    }
    for (auto [key, out] :
         {std::pair("listen", &c.api.listen), std::pair("tls_cert", &c.api.tls_cert),
          std::pair("tls_key", &c.api.tls_key), std::pair("ui_dir", &c.api.ui_dir)}) {
      auto v = yamlf::string_field(a, key, "api", std::string(key) == "listen");
      if (!v.is_ok()) return v.status();
      *out = v.value();
    }
    if (auto l = model::SocketAddress::parse(c.api.listen); !l.is_ok()) {
      return invalid_argument(yamlf::at(a["listen"]) + "api.listen: " + l.status().message());
    }
    if (c.api.tls_cert.empty() != c.api.tls_key.empty()) {
      return invalid_argument(yamlf::at(a) + "api: tls_cert and tls_key go together");
    }
    if (const auto n = a["names"]) {
      if (!n.IsSequence() || n.size() == 0 || n.size() > 32) {
        return invalid_argument(yamlf::at(n) +
                                "api.names: a list of 1 to 32 DNS names or addresses");
      }
      c.api.names.clear();
      for (const auto& x : n) {
        if (!x.IsScalar()) return invalid_argument(yamlf::at(x) + "api.names: strings");
        c.api.names.push_back(x.as<std::string>());
      }
    }
    for (auto [key, out, lo, hi] :
         {std::tuple("audit_retention_days", &c.api.audit_retention_days, 1LL, 3650LL),
          std::tuple("access_token_ttl_s", &c.api.access_token_ttl_s, 60LL, 86400LL),
          std::tuple("refresh_token_ttl_s", &c.api.refresh_token_ttl_s, 300LL, 90LL * 86400),
          std::tuple("request_timeout_ms", &c.api.request_timeout_ms, 500LL, 600000LL)}) {
      if (!a[key]) continue;
      auto v = yamlf::integer(a[key], std::string("api.") + key, lo, hi);
      if (!v.is_ok()) return v.status();
      *out = v.value();
    }
    for (auto [key, out, hi] : {std::tuple("max_connections", &c.api.max_connections, 100000LL),
                                std::tuple("max_streams", &c.api.max_streams, 100000LL)}) {
      if (!a[key]) continue;
      auto v = yamlf::integer(a[key], std::string("api.") + key, 1, hi);
      if (!v.is_ok()) return v.status();
      *out = static_cast<std::uint32_t>(v.value());
    }
    c.api.tls_cert = resolve(base_dir, c.api.tls_cert);
    c.api.tls_key = resolve(base_dir, c.api.tls_key);
    if (c.api.ui_dir != "none") c.api.ui_dir = resolve(base_dir, c.api.ui_dir);
  }
  c.state_db = resolve(base_dir, c.state_db);
  c.identity_dir =
      c.identity_dir.empty()
          ? (std::filesystem::path(c.state_db).parent_path() / "controller-identity").string()
          : resolve(base_dir, c.identity_dir);
  if (c.admin_socket == "none") c.admin_socket.clear();
  c.admin_socket = resolve(base_dir, c.admin_socket);
  return c;
}

namespace {

// The core's messages onto the channel.
class ChannelOutbox final : public controller::Outbox {
 public:
  void send(controller::SessionId session, const controller::v1::ToSite& m) override {
    if (server) server->send(session, m.SerializeAsString());
  }
  void close(controller::SessionId session) override {
    if (server) server->close(session);
  }
  channel::Server* server = nullptr;
};

}  // namespace

namespace {

// The dashboard beside this executable: <prefix>/share/patronus/ui, installed or in a build tree
// (bin/ and share/ side by side in both); "" when it is not there.
std::string installed_ui_dir() {
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return "";
  const auto d = exe.parent_path().parent_path() / "share" / "patronus" / "ui";
  return std::filesystem::exists(d / "index.html", ec) ? d.string() : "";
}

// What an admin-socket request changes, as the audit trail names it.
std::string socket_target(const fleet::Request& q) {
  switch (q.what_case()) {
    case fleet::Request::kAddSites:
      return q.add_sites().sites_size() == 1 ? "sites/" + q.add_sites().sites(0).name() : "sites";
    case fleet::Request::kRemoveSite:
      return "sites/" + q.remove_site().name();
    case fleet::Request::kApproveSite:
      return "sites/" + q.approve_site().name();
    case fleet::Request::kCreateToken:
      return "sites/" + q.create_token().site();
    case fleet::Request::kRevokeTokens:
      return "sites/" + q.revoke_tokens().site();
    case fleet::Request::kUpdateSite:
      return "sites/" + q.update_site().site().name();
    case fleet::Request::kRotateKey:
      return "sites/" + q.rotate_key().site() + "/endpoints/" + q.rotate_key().endpoint();
    case fleet::Request::kSetTopology:
      return "topology";
    case fleet::Request::kSetClasses:
      return "classes";
    case fleet::Request::kSetPolicies:
      return "policies";
    case fleet::Request::kSetPlugin:
      return "plugins/" + q.set_plugin().setting().instance();
    default:
      return "";
  }
}

// The API's secret (token signatures, sealed TOTP secrets): 32 random bytes made at first start,
// kept owner-only beside the controller's identity.
Result<std::array<std::uint8_t, 32>> load_or_create_secret(const std::string& dir) {
  if (auto s = private_directory(dir); !s.is_ok()) return s;
  const std::string path = dir + "/api-secret.key";
  auto have = read_private_file(path, 64);
  if (!have.is_ok()) return have.status();
  std::array<std::uint8_t, 32> key{};
  if (have.value()) {
    if (have.value()->size() != key.size()) {
      return failed_precondition(path +
                                 ": not 32 bytes; remove it to make a new one (every "
                                 "login and second factor then ends)");
    }
    std::copy(have.value()->begin(), have.value()->end(), key.begin());
    sodium_memzero(have.value()->data(), have.value()->size());
    return key;
  }
  randombytes_buf(key.data(), key.size());
  std::string bytes(key.begin(), key.end());
  auto st = write_new_file(path, bytes, 0600);
  sodium_memzero(bytes.data(), bytes.size());
  if (!st.is_ok()) return st;
  return key;
}

AuthOptions auth_options(const Config& cfg) {
  AuthOptions a;
  a.access_ttl_ns = cfg.api.access_token_ttl_s * 1'000'000'000;
  a.refresh_ttl_ns = cfg.api.refresh_token_ttl_s * 1'000'000'000;
  return a;
}

// `patronus-controller init --admin NAME`: the first admin, before the controller runs.
int init_admin(const Config& cfg, const Options& opt) {
  std::string password;
  if (opt.password_file.empty() || opt.password_file == "-") {
    std::getline(std::cin, password);
  } else {
    auto p = read_private_file(opt.password_file, 4096);
    if (!p.is_ok() || !p.value()) {
      std::cerr << "patronus-controller: --password-file: "
                << (p.is_ok() ? "no such file" : p.status().message()) << std::endl;
      return kExitConfig;
    }
    password = std::move(*p.value());
    while (!password.empty() && (password.back() == '\n' || password.back() == '\r')) {
      password.pop_back();
    }
  }
  if (auto st = check_password(password); !st.is_ok()) {
    std::cerr << "patronus-controller: " << st.message() << std::endl;
    return kExitConfig;
  }
  auto lock = site::SiteLock::acquire(cfg.state_db, "the fleet store", "patronus-controller");
  if (!lock.is_ok()) {
    std::cerr << "patronus-controller: " << lock.status().message() << std::endl;
    return kExitRuntime;
  }
  auto secret = load_or_create_secret(cfg.identity_dir);
  auto store = controller::open_sqlite_fleet_store(cfg.state_db);
  if (!secret.is_ok() || !store.is_ok()) {
    std::cerr << "patronus-controller: "
              << (secret.is_ok() ? store.status() : secret.status()).message() << std::endl;
    return kExitRuntime;
  }
  auto snap = store.value()->load();
  if (!snap.is_ok()) {
    std::cerr << "patronus-controller: " << snap.status().message() << std::endl;
    return kExitRuntime;
  }
  boost::asio::io_context io;
  env::AsioEnv env(io, std::nullopt);
  Auth auth(env, store.value().get(), secret.value(), auth_options(cfg));
  (void)auth.load(snap.value());
  if (auth.users() > 0) {
    std::cerr << "patronus-controller: the API has users already; an admin adds more with "
                 "POST /api/v1/users"
              << std::endl;
    return kExitConfig;
  }
  auto hash = hash_password(password, auth.options().pwhash_ops, auth.options().pwhash_mem);
  sodium_memzero(password.data(), password.size());
  if (!hash.is_ok()) {
    std::cerr << "patronus-controller: " << hash.status().message() << std::endl;
    return kExitRuntime;
  }
  const AuditContext ctx{"local:init", "local", "INIT", "patronus-controller init",
                         "users/" + opt.init_admin};
  auto u = auth.create_user(opt.init_admin, Role::kAdmin, hash.value(), ctx);
  if (!u.is_ok()) {
    std::cerr << "patronus-controller: " << u.status().message() << std::endl;
    return kExitConfig;
  }
  std::cout << "patronus-controller: user '" << opt.init_admin << "' (admin) created in "
            << cfg.state_db << std::endl;
  return kExitOk;
}

}  // namespace

int run(const Options& opt) {
  if (opt.print_routes) {
    boost::asio::io_context io;
    env::AsioEnv env(io, std::nullopt);
    ChannelOutbox outbox;
    controller::Core core(env, outbox);
    AuthOptions ao;
    ao.pwhash_mem = crypto_pwhash_MEMLIMIT_MIN;
    ao.pwhash_ops = crypto_pwhash_OPSLIMIT_MIN;
    Auth auth(env, nullptr, {}, ao);
    Api api(io, env, core, auth, nullptr);
    for (const auto& r : api.routes()) {
      std::cout << "{\"method\":\"" << r.method << "\",\"path\":\"" << r.pattern << "\",\"role\":\""
                << access_name(r.access) << "\"}" << std::endl;
    }
    return kExitOk;
  }
  std::ifstream in(opt.config_path);
  if (!in) {
    std::cerr << "patronus-controller: cannot read " << opt.config_path << std::endl;
    return kExitConfig;
  }
  std::stringstream text;
  text << in.rdbuf();
  auto parsed =
      parse_config(text.str(), std::filesystem::absolute(opt.config_path).parent_path().string());
  if (!parsed.is_ok()) {
    std::cerr << "patronus-controller: " << opt.config_path << ": " << parsed.status().message()
              << std::endl;
    return kExitConfig;
  }
  const Config& cfg = parsed.value();
  if (opt.check_only) {
    std::cout << "patronus-controller: " << opt.config_path << ": valid: sites on " << cfg.listen
              << ", fleet in " << cfg.state_db << std::endl;
    return kExitOk;
  }
  if (!opt.init_admin.empty()) return init_admin(cfg, opt);
  Log log(level_of(cfg.log_level));
  // One fleet store, one controller (a second one would compile and push from the same rows).
  auto lock = site::SiteLock::acquire(cfg.state_db, "the fleet store", "patronus-controller");
  if (!lock.is_ok()) {
    std::cerr << "patronus-controller: " << lock.status().message() << std::endl;
    return kExitRuntime;
  }
  auto identity =
      channel::load_or_create_identity(cfg.identity_dir, "controller", "patronus-controller");
  if (!identity.is_ok()) {
    std::cerr << "patronus-controller: identity_dir: " << identity.status().message() << std::endl;
    return kExitRuntime;
  }
  auto store = controller::open_sqlite_fleet_store(cfg.state_db);
  if (!store.is_ok()) {
    std::cerr << "patronus-controller: " << store.status().message() << std::endl;
    return kExitRuntime;
  }
  boost::asio::io_context io;
  env::AsioEnv env(io, std::nullopt);  // the OS's randomness
  ChannelOutbox outbox;
  controller::CoreOptions options;
  options.debounce_ns = cfg.debounce_ms * 1'000'000;
  options.max_wait_ns = cfg.max_wait_ms * 1'000'000;
  options.require_approval = cfg.require_approval;
  options.max_sites = cfg.max_sites;
  controller::Core core(env, outbox, options, store.value().get());
  // One read of the store at start: the core's fleet and the API's users come from it.
  auto snap = store.value()->load();
  if (!snap.is_ok()) {
    std::cerr << "patronus-controller: " << cfg.state_db << ": " << snap.status().message()
              << std::endl;
    return kExitRuntime;
  }
  if (auto s = core.load(snap.value()); !s.is_ok()) {
    std::cerr << "patronus-controller: " << cfg.state_db << ": " << s.message() << std::endl;
    return kExitRuntime;
  }

  std::map<channel::SessionId, channel::PublicKey> peers;  // bounded by the server's sessions
  channel::Server::Handlers handlers;
  handlers.opened = [&](channel::SessionId s, const channel::PublicKey& key) { peers[s] = key; };
  handlers.message = [&](channel::SessionId s, std::string_view bytes) {
    const auto peer = peers.find(s);
    if (peer == peers.end()) return;
    controller::v1::FromSite m;
    const bool parsed_ok = m.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
    const bool first = !core.session_site(s).has_value();
    const std::string claimed = m.has_enrol()   ? m.enrol().site()
                                : m.has_hello() ? m.hello().site()
                                                : "";
    Status st = parsed_ok ? core.receive(s, peer->second, m)
                          : invalid_argument("a message that does not parse");
    if (!parsed_ok) {
      controller::v1::ToSite r;
      r.mutable_refused()->set_reason(st.message());
      outbox.send(s, r);
      outbox.close(s);
    }
    if (!st.is_ok()) {
      log.log(2, "session " + std::to_string(s) +
                     (claimed.empty() ? "" : " (site '" + claimed + "')") +
                     " refused: " + st.message());
    } else if (first && (m.has_enrol() || m.has_hello())) {
      log.log(1, "site '" + claimed + "' " + (m.has_enrol() ? "enrolled" : "connected") +
                     " (session " + std::to_string(s) + ")");
    } else if (m.has_ack() && !m.ack().error().empty()) {
      log.log(2, "site '" + core.session_site(s).value_or("?") + "' could not apply version " +
                     std::to_string(m.ack().version()) + ": " + m.ack().error());
    }
  };
  handlers.closed = [&](channel::SessionId s) {
    if (auto site = core.session_site(s)) log.log(1, "site '" + *site + "' disconnected");
    core.disconnect(s);
    peers.erase(s);
  };
  channel::ServerLimits limits;
  limits.max_sessions = cfg.max_sites * 2;
  limits.idle_timeout_ms = cfg.idle_timeout_ms;
  auto server = channel::Server::listen(io, cfg.listen, identity.value(), handlers, limits);
  if (!server.is_ok()) {
    std::cerr << "patronus-controller: " << server.status().message() << std::endl;
    return kExitRuntime;
  }
  outbox.server = server.value().get();

  std::unique_ptr<Auth> auth;  // the operator API's, when `api:` is set (below)
  std::unique_ptr<Api> api;
  std::unique_ptr<http::StaticFiles> ui;  // the dashboard, when installed
  std::unique_ptr<http::Server> https;
  std::unique_ptr<control::ControlServer> admin;
  if (!cfg.admin_socket.empty()) {
    // A fleet's sites file goes over it in one request (`sites add -f`): about 150 bytes a site.
    control::ServerLimits admin_limits;
    admin_limits.max_request = 16u << 20;
    auto a = control::ControlServer::open_lines(
        env, cfg.admin_socket,
        [&](const std::string& line) -> Result<std::string> {
          fleet::Request q;
          if (auto s = control::from_json(line, &q); !s.is_ok()) return s;
          // The local break-glass is audited too: as "local:admin-socket", in the same store
          // write as its change.
          std::vector<fleet::AuditEntry> written;
          const std::string kind =
              q.what_case() == fleet::Request::WHAT_NOT_SET
                  ? std::string("none")
                  : q.GetDescriptor()->FindFieldByNumber(q.what_case())->name();
          core.set_auditor(core_auditor(env,
                                        AuditContext{"local:admin-socket", "local", "SOCKET",
                                                     "admin-socket " + kind, socket_target(q), 200},
                                        &written));
          const fleet::Response r = core.handle(q);
          core.set_auditor(nullptr);
          if (api && !r.has_error()) {
            for (const auto& e : written) api->audited(e);
          }
          if (r.has_error()) {
            log.log(2, "admin request refused: " + r.error().message());
          } else if (!q.has_list_sites() && !q.has_fleet_status() && !q.has_fleet_paths()) {
            // Every change is said (the token itself never is).
            log.log(1, "admin: " + (r.has_done()
                                        ? r.done().message()
                                        : "token created for site '" + r.token().site() + "'"));
          }
          return control::to_json(r);
        },
        admin_limits);
    if (!a.is_ok()) {
      std::cerr << "patronus-controller: admin_socket: " << a.status().message() << std::endl;
      return kExitRuntime;
    }
    admin = std::move(a).value();
  }
  // The event loop's heartbeat: a 100 ms timer that records how late it ran (/livez, /metrics).
  http::Heartbeat heartbeat(io);
  const std::int64_t started_s = std::time(nullptr);
  // The operator API.
  if (!cfg.api.listen.empty()) {
    auto secret = load_or_create_secret(cfg.identity_dir);
    if (!secret.is_ok()) {
      std::cerr << "patronus-controller: api: " << secret.status().message() << std::endl;
      return kExitRuntime;
    }
    auto creds = cfg.api.tls_cert.empty()
                     ? http::load_or_create_certificate(cfg.identity_dir, "api", cfg.api.names)
                     : http::load_credentials(cfg.api.tls_cert, cfg.api.tls_key);
    if (!creds.is_ok()) {
      std::cerr << "patronus-controller: api: " << creds.status().message() << std::endl;
      return kExitRuntime;
    }
    auth = std::make_unique<Auth>(env, store.value().get(), secret.value(), auth_options(cfg));
    sodium_memzero(secret.value().data(), secret.value().size());
    (void)auth->load(snap.value());
    ApiOptions ao;
    ao.audit_retention_ns = cfg.api.audit_retention_days * 24 * 3600 * 1'000'000'000LL;
    api = std::make_unique<Api>(io, env, core, *auth, store.value().get(), ao);
    api->log = [&log](int level, const std::string& m) { log.log(level, "api: " + m); };
    http::Limits hl;
    hl.max_connections = cfg.api.max_connections;
    hl.max_streams = cfg.api.max_streams;
    hl.request_timeout_ms = cfg.api.request_timeout_ms;
    if (cfg.api.ui_dir != "none") {
      std::string dir = cfg.api.ui_dir;
      if (dir.empty()) dir = installed_ui_dir();
      if (!dir.empty()) {
        auto files = http::StaticFiles::load(dir);
        if (!files.is_ok() && !cfg.api.ui_dir.empty()) {
          std::cerr << "patronus-controller: api.ui_dir: " << files.status().message() << std::endl;
          return kExitRuntime;
        }
        if (files.is_ok()) {
          ui = std::move(files).value();
          log.log(1, "dashboard: " + std::to_string(ui->files()) + " files from " + dir);
        }
      }
      if (!ui) log.log(1, "dashboard: not installed (api.ui_dir); the API serves alone");
    }
    auto not_after = http::certificate_not_after(creds.value().certificate_pem);
    const std::int64_t api_not_after = not_after.is_ok() ? not_after.value() : 0;
    http::Server::Handlers hh;
    hh.request = [&api, &ui, &auth, &core, &heartbeat, started_s, api_not_after](
                     const http::Request& r, http::ConnectionId c, http::Reply reply) {
      // Health, outside the API (no credentials, no work): what a probe and a load balancer
      // ask, and the load benchmark's trivial handler. /livez fails when the event loop's
      // heartbeat is late (a loop that does not run at all does not answer); /readyz when the
      // controller is not serving yet. `?verbose` lists the checks, as Kubernetes does.
      if ((r.path == "/livez" || r.path == "/readyz") && r.method == "GET") {
        std::vector<http::HealthCheck> checks{
            {"event_loop", !heartbeat.late(),
             "late by " + std::to_string(heartbeat.lag_s()) + " s"}};
        // The API listens only once the store is loaded and the sites' listener is up.
        if (r.path == "/readyz") checks.push_back({"started", true, ""});
        return reply(http::health_response(r, r.path.substr(1), checks));
      }
      // Prometheus: the same credentials as the API (a viewer's API key in the scrape config).
      if (r.path == "/metrics" && r.method == "GET") {
        const auto h = r.header("authorization").value_or("");
        auto who = h.rfind("Bearer ", 0) == 0
                       ? auth->authenticate(h.substr(7))
                       : Result<Principal>(unauthenticated("no credentials"));
        if (!who.is_ok()) {
          auto res = http::text_response(
              401, "/metrics needs an API key or access token (Authorization: Bearer ...)\n");
          res.headers.emplace_back("WWW-Authenticate", "Bearer");
          return reply(std::move(res));
        }
        MetricsInputs in;
        in.core = &core;
        in.api_streams = api->streams();
        in.api_users = auth->users();
        in.loop_lag_seconds = heartbeat.lag_s();
        in.started_unix_s = started_s;
        in.version = PATRONUS_VERSION;
        in.api_certificate_not_after_s = api_not_after;
        http::Response res;
        res.content_type = metrics::kContentType;
        res.body = controller_metrics(in);
        return reply(std::move(res));
      }
      // The dashboard: its files, outside /api/ (it speaks only to the public API).
      if (r.path.rfind("/api/", 0) != 0) {
        if (ui) {
          if (auto f = ui->get(r)) return reply(std::move(*f));
        }
        auto nf = http::text_response(
            404, ui ? "not found\n"
                    : "the dashboard is not installed on this controller (api.ui_dir)\n");
        http::StaticFiles::secure(nf);
        return reply(std::move(nf));
      }
      api->handle(r, c, std::move(reply));
    };
    hh.stream_closed = [&api](http::ConnectionId c) { api->stream_closed(c); };
    auto srv = http::Server::listen(io, cfg.api.listen, creds.value(), hh, hl);
    if (!srv.is_ok()) {
      std::cerr << "patronus-controller: api: " << srv.status().message() << std::endl;
      return kExitRuntime;
    }
    https = std::move(srv).value();
    api->attach(https.get());
    log.log(1, "operator API on https://" + cfg.api.listen + " (port " +
                   std::to_string(https->port()) + ", " + std::to_string(auth->users()) + " users" +
                   (auth->users() == 0 ? "; make the first admin with `patronus-controller init`"
                                       : "") +
                   ")");
  }
  log.log(1, "listening for sites on " + cfg.listen + " (port " +
                 std::to_string(server.value()->port()) + "); key " +
                 channel::pin_of(identity.value().public_key) + " (sites pin it); fleet in " +
                 cfg.state_db + " (" + std::to_string(core.statuses().size()) + " sites)" +
                 (admin ? "; admin socket " + cfg.admin_socket : std::string()));

  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  bool stopping = false;
  auto shutdown = [&](const std::string& why) {
    if (stopping) return;
    stopping = true;
    log.log(1, "stopping (" + why + ")");
    https.reset();
    api.reset();
    admin.reset();
    outbox.server = nullptr;
    server.value().reset();
    signals.cancel();
    io.stop();
  };
  signals.async_wait([&](const boost::system::error_code& ec, int sig) {
    if (!ec) shutdown(sig == SIGTERM ? "SIGTERM" : "SIGINT");
  });
  if (opt.run_for_s > 0) {
    env.schedule(static_cast<std::int64_t>(opt.run_for_s * 1e9), [&] { shutdown("run-for"); });
  }
  io.run();
  return kExitOk;
}

}  // namespace patronus::controllerd
