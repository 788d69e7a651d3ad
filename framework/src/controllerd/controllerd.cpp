#include "controllerd.hpp"

#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <sstream>

#include "channel.hpp"
#include "control.hpp"
#include "patronus/controller/core.hpp"
#include "patronus/env/asio_env.hpp"
#include "patronus/site/site_lock.hpp"
#include "patronus/util/utc_time.hpp"
#include "socket.hpp"
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
           "max_wait_ms", "idle_timeout_ms", "max_sites", "log_level"},
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

int run(const Options& opt) {
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
  if (auto s = core.load(); !s.is_ok()) {
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

  std::unique_ptr<control::ControlServer> admin;
  if (!cfg.admin_socket.empty()) {
    auto a = control::ControlServer::open_lines(
        env, cfg.admin_socket, [&](const std::string& line) -> Result<std::string> {
          fleet::v1::Request q;
          if (auto s = control::from_json(line, &q); !s.is_ok()) return s;
          const fleet::v1::Response r = core.handle(q);
          if (r.has_error()) {
            log.log(2, "admin request refused: " + r.error().message());
          } else if (!q.has_list_sites() && !q.has_fleet_status() && !q.has_fleet_paths()) {
            // Every change is said (the token itself never is).
            log.log(1, "admin: " + (r.has_done()
                                        ? r.done().message()
                                        : "token created for site '" + r.token().site() + "'"));
          }
          return control::to_json(r);
        });
    if (!a.is_ok()) {
      std::cerr << "patronus-controller: admin_socket: " << a.status().message() << std::endl;
      return kExitRuntime;
    }
    admin = std::move(a).value();
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
