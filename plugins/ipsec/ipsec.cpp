// ipsec: the IPsec/IKEv2 transport plugin. strongSwan's charon does IKE and ESP; this plugin
// drives it over VICI (spoken directly, vici.hpp), never blocking: two connections to charon's
// socket, moved by the host's fd watches, one for configuration and status (load-shared,
// load-conn, list-sas, unload-*, terminate; ike-updown and child-updown events) and one for
// initiations (initiate waits for the IKE_SA and CHILD_SA, and streams charon's log of the attempt
// as control-log events: the reason when it fails).
//
// One IKEv2 connection per path (connection.hpp): the underlay addresses, identities, proposals,
// traffic selectors (both ends' overlay addresses and LANs), DPD and rekey timers. Between two
// Patronus sites the PSK is derived from the endpoints' X25519 keys (both ends compute it; nothing
// to distribute); a peer that is not ours has its PSK in an owner-only file. Secrets go to charon
// and nowhere else: not in logs, events or errors.
//
// Tunnel state: a path is UP while its CHILD_SA is INSTALLED (list-sas, every status interval and
// at once on an up/down event); DOWN otherwise, with the reason of the last failed attempt
// (authentication, negotiation) or "no handshake". When charon goes away the connections close:
// every path is reported DOWN (device gone), and once charon answers again everything is loaded
// and initiated again.
//
// Interfaces: userspace ESP (kernel-libipsec) decrypts into charon's TUN ipsec0; route-based
// kernel ESP uses an XFRM interface per IPsec endpoint (ipsecN, if_id N+1), created here. Either
// way the plugin puts the endpoint's overlay addresses on it and routes each peer's overlay
// address through it; the dataplane steers LAN traffic onto it like onto a WireGuard interface.
// charon must not install routes of its own (charon.install_routes = no): steering is ours.
#include <net/if.h>
#include <sodium.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <charconv>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "connection.hpp"
#include "patronus/ipsec/v1/ipsec.pb.h"
#include "patronus/mesh/keys.hpp"
#include "patronus/model/address.hpp"
#include "patronus/sdk/plugin.hpp"
#include "patronus/util/enum_table.hpp"
#include "patronus/util/file.hpp"
#include "patronus/util/wipe.hpp"
#include "rtnl.hpp"
#include "vici_client.hpp"
#include "vici_session.hpp"

namespace {

using patronus::Result;
using patronus::Status;
using patronus::sdk::Error;
namespace ipsec = patronus::ipsec;
namespace model = patronus::model;
namespace vici = patronus::vici;
namespace ln = patronus::linuxnet;
using nlohmann::json;

constexpr std::int64_t kMs = 1'000'000;
constexpr std::size_t kMaxPaths = 1024;
constexpr std::size_t kMaxOutput = 4 * 1024 * 1024;  // bytes waiting for charon, per connection
constexpr std::size_t kMaxSaEvents = 4096;           // list-sa events of one list-sas

// One VICI connection to charon, non-blocking, on the host's loop.
struct Link {
  std::string role;  // "control" or "initiate", for messages
  int fd = -1;
  patronus_watch_id watch = 0;
  std::uint32_t watch_flags = 0;
  std::uint64_t generation = 0;  // bumped on every (dis)connection: stale callbacks see it
  bool connecting = false;       // connect() in progress (EINPROGRESS)
  std::unique_ptr<vici::Session> session;
  std::string out;
  bool up() const { return fd >= 0 && !connecting && session != nullptr; }
};

struct PathState {
  ipsec::PathParams params;
  std::string secret;       // handed to charon on every (re)load; never logged
  bool loaded = false;      // charon accepted the secret and the connection
  bool initiating = false;  // an initiate is outstanding
  bool link_ready = false;  // addresses and routes are on the interface
  std::int64_t down_since_ns = 0;
  std::int64_t next_try_ns = 0;
  std::uint32_t diagnostic = PATRONUS_TUNNEL_DIAG_NO_HANDSHAKE;
  std::string reason;  // the last failure, as charon said it
  // What charon's log said during the attempt under way (control-log), until its answer.
  std::uint32_t attempt_diag = PATRONUS_TUNNEL_DIAG_NONE;
  std::string attempt_reason;
  std::optional<std::uint32_t> last_state;
  std::string child_id;  // the CHILD_SA carrying the path now (a rekey replaces it)
};

class Ipsec final : public patronus::sdk::TransportPlugin {
 public:
  using TransportPlugin::TransportPlugin;
  ~Ipsec() override {
    for (Link* l : {&ctl_, &init_}) {
      if (l->fd >= 0) ::close(l->fd);
    }
    for (auto& [id, p] : paths_) wipe(p.secret);
  }

  void configure(const std::uint8_t* data, std::size_t size) override {
    patronus::ipsec::v1::Config c;
    if (size > 0 && !c.ParseFromArray(data, static_cast<int>(size))) {
      throw Error("config: not a patronus.ipsec.v1.Config message", PATRONUS_ERR_INVALID_ARGUMENT);
    }
    socket_ = c.has_vici_socket() ? c.vici_socket() : "/var/run/charon.vici";
    if (socket_.empty() || socket_.size() >= sizeof(sockaddr_un{}.sun_path)) {
      throw Error("vici_socket: must be a unix socket path of 1-107 bytes",
                  PATRONUS_ERR_INVALID_ARGUMENT);
    }
    keys_dir_ = c.keys_dir();
    const std::string mode = c.has_mode() ? c.mode() : "auto";
    if (mode == "auto") {
      mode_ = ::access("/sys/module/xfrm_interface", F_OK) == 0 ? ipsec::Mode::kXfrm
                                                                : ipsec::Mode::kLibipsec;
    } else if (auto m = ipsec::parse_mode(mode); m.is_ok()) {
      mode_ = m.value();
    } else {
      throw Error("mode: " + m.status().message() + " or auto", PATRONUS_ERR_INVALID_ARGUMENT);
    }
    auto ms = [](bool has, std::uint32_t v, std::uint32_t def, std::uint32_t lo, std::uint32_t hi,
                 const char* name) {
      const std::uint32_t x = has ? v : def;
      if (x < lo || x > hi) {
        throw Error(
            std::string(name) + ": must be " + std::to_string(lo) + ".." + std::to_string(hi),
            PATRONUS_ERR_INVALID_ARGUMENT);
      }
      return static_cast<std::int64_t>(x) * kMs;
    };
    status_ns_ = ms(c.has_status_interval_ms(), c.status_interval_ms(), 1000, 50, 3'600'000,
                    "status_interval_ms");
    initiate_timeout_ms_ = ms(c.has_initiate_timeout_ms(), c.initiate_timeout_ms(), 10000, 100,
                              600'000, "initiate_timeout_ms") /
                           kMs;
    retry_ns_ = ms(c.has_retry_ms(), c.retry_ms(), 2000, 50, 3'600'000, "retry_ms");
    reconnect_ns_ = ms(c.has_reconnect_ms(), c.reconnect_ms(), 1000, 10, 3'600'000, "reconnect_ms");
    unload_on_stop_ = c.unload_on_stop();
  }

  void start() override {
    auto r = ln::Rtnl::open();
    if (!r.is_ok()) throw Error("rtnetlink: " + r.status().message(), PATRONUS_ERR_UNAVAILABLE);
    rtnl_.emplace(std::move(r).value());
    ctl_.role = "control";
    init_.role = "initiate";
    running_ = true;
    host().info(std::string("ipsec: ") + ipsec::to_string(mode_) + " mode, charon at " + socket_);
    connect_all();
    schedule_status();
  }

  void stop() override {
    running_ = false;
    for (auto* t : {&status_timer_, &reconnect_timer_}) {
      if (*t) host().cancel(*t);
      *t = 0;
    }
    if (unload_on_stop_ && ctl_.up()) {
      // Best effort: the requests are written now; the SAs go down as charon processes them.
      for (auto& [id, p] : paths_) unload(id, p);
      flush(ctl_);
      if (!ctl_.out.empty()) (void)::send(ctl_.fd, ctl_.out.data(), ctl_.out.size(), MSG_NOSIGNAL);
    }
    for (Link* l : {&ctl_, &init_}) close_link(*l, Status::ok());
    for (auto& [id, p] : paths_) wipe(p.secret);
    paths_.clear();
  }

  void path_up(const patronus_path_desc& d) override {
    if (!running_) throw Error("path_up before start", PATRONUS_ERR_FAILED_PRECONDITION);
    auto params = ipsec::path_params(d, mode_);
    if (!params.is_ok()) {
      throw Error(params.status().message(), PATRONUS_ERR_INVALID_ARGUMENT);
    }
    if (!paths_.count(d.path_id) && paths_.size() >= kMaxPaths) {
      throw Error("at most " + std::to_string(kMaxPaths) + " IPsec paths",
                  PATRONUS_ERR_RESOURCE_EXHAUSTED);
    }
    std::string secret = secret_for(d, params.value());
    auto [it, fresh] = paths_.try_emplace(d.path_id);
    PathState& p = it->second;
    wipe(p.secret);
    p.params = std::move(params).value();
    p.secret = std::move(secret);
    p.loaded = false;
    p.link_ready = false;
    if (fresh) p.down_since_ns = host().now_ns();
    if (ctl_.up()) load(d.path_id);
  }

  void path_down(std::uint64_t path_id) override {
    auto it = paths_.find(path_id);
    if (it == paths_.end()) {
      throw Error("path " + std::to_string(path_id) + " is not up", PATRONUS_ERR_NOT_FOUND);
    }
    if (ctl_.up()) unload(path_id, it->second);
    remove_overlay_route(it->second.params);
    wipe(it->second.secret);
    paths_.erase(it);
  }

 private:
  static void wipe(std::string& s) {
    volatile char* p = s.data();
    for (std::size_t i = 0; i < s.size(); ++i) p[i] = 0;
    s.clear();
  }

  // The path's PSK: from the file the sites file names, or derived from both endpoints' X25519
  // keys (the private one from keys_dir, checked against the plan's public key).
  std::string secret_for(const patronus_path_desc& d, const ipsec::PathParams& p) {
    const std::string pid = "path " + std::to_string(d.path_id) + ": ";
    if (!p.psk_file.empty()) {
      auto s = ipsec::read_psk_file(p.psk_file);
      if (!s.is_ok()) throw Error(pid + s.status().message(), PATRONUS_ERR_FAILED_PRECONDITION);
      return std::move(s).value();
    }
    if ((d.flags & PATRONUS_PATH_PUBLIC_KEYS) == 0) {
      throw Error(pid + "no psk_file and no public keys to derive a pre-shared key from",
                  PATRONUS_ERR_INVALID_ARGUMENT);
    }
    if (keys_dir_.empty()) {
      throw Error(pid + "keys_dir: required to derive the pre-shared key between two sites",
                  PATRONUS_ERR_FAILED_PRECONDITION);
    }
    auto keys = patronus::mesh::KeyDirectory::open(keys_dir_);
    if (!keys.is_ok()) throw Error(pid + keys.status().message(), PATRONUS_ERR_FAILED_PRECONDITION);
    auto kp = keys.value().load(p.local_site, p.local_endpoint);
    if (!kp.is_ok()) throw Error(pid + kp.status().message(), PATRONUS_ERR_FAILED_PRECONDITION);
    patronus::mesh::Key local_public{}, remote_public{};
    std::memcpy(local_public.data(), d.local_public_key, 32);
    std::memcpy(remote_public.data(), d.remote_public_key, 32);
    if (!kp.value() || kp.value()->public_key != local_public) {
      throw Error(pid + "no private key of " + p.local_site + "/" + p.local_endpoint + " in " +
                      keys_dir_ + " matching the plan's public key",
                  PATRONUS_ERR_FAILED_PRECONDITION);
    }
    auto key = patronus::mesh::derive_path_secret(
        kp.value()->private_key, remote_public, "patronus ipsec psk v1",
        patronus::mesh::canonical_path_name(p.local_site, p.local_endpoint, p.remote_site,
                                            p.remote_endpoint));
    if (!key.is_ok()) throw Error(pid + key.status().message(), PATRONUS_ERR_INVALID_ARGUMENT);
    // Constant time (libsodium): the secret's bytes never index a table.
    std::string hex(key.value().size() * 2 + 1, '\0');
    sodium_bin2hex(hex.data(), hex.size(), key.value().data(), key.value().size());
    hex.pop_back();
    return hex;
  }

  // --- the two connections --------------------------------------------------------------------

  void connect_all() {
    for (Link* l : {&ctl_, &init_}) {
      if (l->fd < 0) open_link(*l);
    }
  }

  void open_link(Link& l) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return schedule_reconnect();
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::memcpy(sa.sun_path, socket_.c_str(), socket_.size());
    const int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    // A unix socket connects at once or not at all (EAGAIN: charon's backlog is full; try later).
    if (rc != 0 && errno != EINPROGRESS) {
      const int err = errno;
      ::close(fd);
      if (!unreachable_reported_) {
        unreachable_reported_ = true;
        host().warn("ipsec: charon's VICI socket " + socket_ + ": " + std::strerror(err) +
                    " (is charon running with the vici plugin?); retrying");
        event("ipsec.charon_unreachable", json{{"socket", socket_}, {"error", std::strerror(err)}});
        for (auto& [id, p] : paths_) report(id, p, PATRONUS_TUNNEL_DOWN, nullptr);
      }
      return schedule_reconnect();
    }
    l.fd = fd;
    l.connecting = rc != 0;
    ++l.generation;
    patronus::util::wipe(l.out);
    l.session =
        std::make_unique<vici::Session>([this, &l, gen = l.generation](const vici::Packet& e) {
          if (l.generation == gen) on_event(l, e);
        });
    if (l.connecting) {
      rewatch(l, PATRONUS_FD_WRITABLE);
    } else {
      connected(l);
    }
  }

  void connected(Link& l) {
    l.connecting = false;
    // The PSKs go to whoever listens on the socket: charon as root or as us, nobody else.
    if (auto trusted = patronus::peer_is_trusted(l.fd, "charon's VICI socket " + socket_);
        !trusted.is_ok()) {
      if (!untrusted_reported_) {
        untrusted_reported_ = true;
        host().warn("ipsec: " + trusted.message());
        event("ipsec.charon_untrusted", json{{"socket", socket_}, {"error", trusted.message()}});
      }
      return close_link(l, trusted);
    }
    untrusted_reported_ = false;
    const std::uint64_t gen = l.generation;
    auto confirm = [this, &l, gen](const std::string& what) {
      return [this, &l, gen, what](Status s) {
        if (l.generation == gen && !s.is_ok()) {
          host().warn("ipsec: registering for " + what + ": " + s.message());
        }
      };
    };
    if (&l == &ctl_) {
      for (const char* e : {"list-sa", "ike-updown", "child-updown"}) {
        (void)l.session->subscribe(e, confirm(e));
      }
      (void)l.session->command("version", {}, [this, gen](Result<vici::Message> r) {
        if (ctl_.generation != gen || !r.is_ok()) return;
        const std::string v =
            r.value().get("daemon").value_or("?") + " " + r.value().get("version").value_or("?");
        unreachable_reported_ = false;
        host().info("ipsec: connected to " + v + " at " + socket_ + "; loading " +
                    std::to_string(paths_.size()) + " connection(s)");
        event("ipsec.charon_connected", json{{"socket", socket_}, {"daemon", v}});
        unload_stale();
        for (auto& [id, p] : paths_) load(id);
      });
    } else {
      (void)l.session->subscribe("control-log", confirm("control-log"));
    }
    flush(l);
  }

  void rewatch(Link& l, std::uint32_t flags) {
    if (l.fd < 0 || flags == l.watch_flags) return;
    if (l.watch) host().unwatch_fd(l.watch);
    l.watch = 0;
    l.watch_flags = 0;
    try {
      l.watch = host().watch_fd(l.fd, flags, [this, &l](std::uint32_t r) { on_io(l, r); });
      l.watch_flags = flags;
    } catch (const Error& e) {
      close_link(l, Status(patronus::Code::kUnavailable, e.what()));
    }
  }

  // Moves what the session has to say into the output buffer and watches for what is due.
  void flush(Link& l) {
    if (!l.up()) return;
    l.out += l.session->take_output();
    if (l.out.size() > kMaxOutput) {
      return close_link(
          l, Status(patronus::Code::kResourceExhausted, "more than 4 MiB waiting for charon"));
    }
    rewatch(l, PATRONUS_FD_READABLE | (l.out.empty() ? 0 : PATRONUS_FD_WRITABLE));
  }

  void on_io(Link& l, std::uint32_t ready) {
    if (l.fd < 0) return;
    if (l.connecting) {
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(l.fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) return close_link(l, Status(patronus::Code::kUnavailable, std::strerror(err)));
      connected(l);
      return;
    }
    if ((ready & PATRONUS_FD_WRITABLE) && !l.out.empty()) {
      const ssize_t n = ::send(l.fd, l.out.data(), l.out.size(), MSG_NOSIGNAL);
      if (n < 0 && errno != EAGAIN && errno != EINTR) {
        return close_link(l, Status(patronus::Code::kUnavailable,
                                    std::string("writing: ") + std::strerror(errno)));
      }
      if (n > 0) {
        // What was sent may hold a PSK: wiped before the rest moves down, and the whole buffer
        // once it is empty.
        ::explicit_bzero(l.out.data(), static_cast<std::size_t>(n));
        l.out.erase(0, static_cast<std::size_t>(n));
        if (l.out.empty()) patronus::util::wipe(l.out);
      }
    }
    if (ready & PATRONUS_FD_READABLE) {
      char buf[65536];
      const ssize_t n = ::recv(l.fd, buf, sizeof buf, 0);
      if (n == 0) {
        return close_link(l, Status(patronus::Code::kUnavailable, "charon closed the connection"));
      }
      if (n < 0) {
        if (errno != EAGAIN && errno != EINTR) {
          return close_link(l, Status(patronus::Code::kUnavailable,
                                      std::string("reading: ") + std::strerror(errno)));
        }
      } else {
        const std::uint64_t gen = l.generation;
        const Status s = l.session->feed(std::string_view(buf, static_cast<std::size_t>(n)));
        if (l.generation != gen) return;  // a callback closed it
        if (!s.is_ok()) return close_link(l, s);
      }
    }
    flush(l);
  }

  // The connection is gone (charon stopped or restarted, or spoke nonsense): every waiting
  // request is answered with the reason, every path is down until charon is back and reloaded.
  void close_link(Link& l, const Status& why) {
    if (l.fd < 0) return;
    if (l.watch) host().unwatch_fd(l.watch);
    ::close(l.fd);
    l.fd = -1;
    l.watch = 0;
    l.watch_flags = 0;
    l.connecting = false;
    patronus::util::wipe(l.out);
    ++l.generation;
    auto session = std::move(l.session);
    if (session)
      session->fail_all(why.is_ok() ? Status(patronus::Code::kUnavailable, "the plugin stopped")
                                    : why);
    if (!running_) return;
    host().warn("ipsec: lost charon's " + l.role + " connection: " + why.message());
    event("ipsec.charon_lost", json{{"connection", l.role}, {"error", why.message()}});
    // Both connections start again together: a restarted charon has none of our configuration.
    Link& other = &l == &ctl_ ? init_ : ctl_;
    if (other.fd >= 0) close_link(other, why);
    for (auto& [id, p] : paths_) {
      p.loaded = false;
      p.initiating = false;
      p.link_ready = false;
      p.diagnostic = PATRONUS_TUNNEL_DIAG_DEVICE_GONE;
      p.reason = "charon: " + why.message();
      report(id, p, PATRONUS_TUNNEL_DOWN, nullptr);
    }
    schedule_reconnect();
  }

  void schedule_reconnect() {
    if (!running_ || reconnect_timer_) return;
    reconnect_timer_ = host().schedule(reconnect_ns_, [this] {
      reconnect_timer_ = 0;
      if (running_) connect_all();
    });
  }

  Status command(Link& l, const std::string& name, const vici::Message& args,
                 vici::Session::Reply done) {
    if (!l.up()) return Status(patronus::Code::kUnavailable, "charon is not connected");
    const std::uint64_t gen = l.generation;
    auto s = l.session->command(name, args, [this, &l, gen, done](Result<vici::Message> r) {
      if (l.generation != gen && r.is_ok()) return;
      done(std::move(r));
    });
    if (s.is_ok()) flush(l);
    return s;
  }

  // --- configuration ---------------------------------------------------------------------------

  void load(std::uint64_t id) {
    PathState& p = paths_.at(id);
    auto done = [this, id](const char* what) {
      return [this, id, what](Result<vici::Message> r) {
        auto it = paths_.find(id);
        if (it == paths_.end()) return;
        Status s = r.is_ok() ? vici::check_success(what, r.value()) : r.status();
        if (!s.is_ok())
          return failed(id, it->second, PATRONUS_TUNNEL_DIAG_DEVICE_ERROR, s.message());
        if (std::string(what) == "load-conn") loaded(id, it->second);
      };
    };
    vici::Message shared = ipsec::load_shared(p.params, p.secret);
    Status s = command(ctl_, "load-shared", shared, done("load-shared"));
    vici::wipe(shared);
    if (s.is_ok()) s = command(ctl_, "load-conn", ipsec::load_conn(p.params), done("load-conn"));
    if (!s.is_ok()) failed(id, p, PATRONUS_TUNNEL_DIAG_DEVICE_ERROR, s.message());
  }

  void loaded(std::uint64_t id, PathState& p) {
    p.loaded = true;
    event("ipsec.configured", json{{"path", id},
                                   {"connection", ipsec::conn_name(id)},
                                   {"local_id", p.params.local_id},
                                   {"remote_id", p.params.remote_id},
                                   {"initiator", p.params.initiator},
                                   {"proposals", p.params.proposals},
                                   {"esp_proposals", p.params.esp_proposals}});
    if (auto s = configure_link(p.params); !s.is_ok()) {
      return failed(id, p, PATRONUS_TUNNEL_DIAG_DEVICE_ERROR, s.message());
    }
    p.link_ready = true;
    check_charon_routes();
    if (p.params.initiator) initiate(id, p);
  }

  // kernel-libipsec installs a route per CHILD_SA into charon's table (220 by default) whatever
  // charon.install_routes says, looked up by a rule at charon.routing_table_prio (220). Before
  // the dataplane's rules (priority 20000 and up), it would send every LAN packet into the tunnel
  // whatever the steering decided: said once, loudly, with the fix.
  void check_charon_routes() {
    if (mode_ != ipsec::Mode::kLibipsec || routes_checked_) return;
    auto rules = rtnl_->rules(false);
    if (!rules.is_ok()) return;
    routes_checked_ = true;
    std::optional<std::uint32_t> charon, ours;
    for (const auto& r : rules.value()) {
      if (r.table == 220 && r.protocol != ln::kRtprotPatronus) {
        charon = std::min(charon.value_or(r.priority), r.priority);
      }
      if (r.protocol == ln::kRtprotPatronus) ours = std::min(ours.value_or(r.priority), r.priority);
    }
    if (charon && ours && *charon < *ours) {
      const std::string msg = "charon's route table 220 is looked up at priority " +
                              std::to_string(*charon) + ", before the dataplane's rules (from " +
                              std::to_string(*ours) +
                              "): every LAN packet would enter the IPsec "
                              "tunnel whatever the steering chose; set charon.routing_table_prio "
                              "above them (e.g. 32000) in strongswan.conf";
      host().warn("ipsec: " + msg);
      event("ipsec.charon_routes_first",
            json{{"charon_priority", *charon}, {"dataplane_priority", *ours}, {"fix", msg}});
    }
  }

  // Connections of ours that charon still has from an earlier run or plan (a path that is gone):
  // their SAs would stand in the way of the current paths' (same traffic selectors).
  void unload_stale() {
    const std::uint64_t gen = ctl_.generation;
    (void)command(ctl_, "get-conns", {}, [this, gen](Result<vici::Message> r) {
      if (ctl_.generation != gen || !r.is_ok()) return;
      const vici::Value* conns = r.value().find("conns");
      if (conns == nullptr || conns->kind != vici::Value::Kind::kList) return;
      for (const auto& name : conns->list) {
        if (name.rfind("patronus-", 0) != 0) continue;
        std::uint64_t id = 0;
        const auto* end = name.data() + name.size();
        if (std::from_chars(name.data() + 9, end, id).ptr != end || paths_.count(id)) continue;
        host().info("ipsec: unloading " + name + ", left by an earlier run or plan");
        event("ipsec.unloaded_stale", json{{"connection", name}});
        unload_name(name);
      }
    });
  }

  void unload(std::uint64_t id, PathState&) { unload_name(ipsec::conn_name(id)); }

  void unload_name(const std::string& name) {
    auto ignore = [](Result<vici::Message>) {};
    vici::Message t;
    t.set("ike", name);
    t.set("force", "yes");
    t.set("timeout", "-1");
    (void)command(ctl_, "terminate", t, ignore);
    vici::Message c;
    c.set("name", name);
    (void)command(ctl_, "unload-conn", c, ignore);
    vici::Message k;
    k.set("id", name);
    (void)command(ctl_, "unload-shared", k, ignore);
  }

  // The interface the path's traffic enters: the overlay addresses on it, up, and the peer's
  // overlay address routed through it (probes leave by their own tunnel).
  Status configure_link(const ipsec::PathParams& p) {
    unsigned idx = ::if_nametoindex(p.interface_name.c_str());
    if (idx == 0 && mode_ == ipsec::Mode::kXfrm) {
      if (auto s = rtnl_->create_xfrm_link(p.interface_name, p.if_id, 0); !s.is_ok()) {
        return Status(s.code(), "creating XFRM interface " + p.interface_name + " (if_id " +
                                    std::to_string(p.if_id) + "): " + s.message() +
                                    " (a kernel without XFRM interfaces needs mode: libipsec)");
      }
      idx = ::if_nametoindex(p.interface_name.c_str());
    }
    if (idx == 0) {
      return Status(patronus::Code::kUnavailable,
                    "interface " + p.interface_name +
                        " does not exist: charon must run with its kernel-libipsec plugin "
                        "(userspace ESP), or use mode: xfrm on a kernel with XFRM interfaces");
    }
    for (const auto& [ip, len] : p.interface_addresses) {
      if (auto s = rtnl_->address(ln::Op::kReplace, static_cast<int>(idx), ip, len); !s.is_ok()) {
        return Status(s.code(),
                      "address " + ip.to_string() + " on " + p.interface_name + ": " + s.message());
      }
    }
    if (auto s = rtnl_->link_state(static_cast<int>(idx), true, 0); !s.is_ok()) {
      return Status(s.code(), "setting " + p.interface_name + " up: " + s.message());
    }
    if (p.remote_overlay) {
      if (auto s = rtnl_->route(ln::Op::kReplace, ln::Route::to_host(*p.remote_overlay, idx));
          !s.is_ok()) {
        return Status(s.code(), "route to " + p.remote_overlay->to_string() + " via " +
                                    p.interface_name + ": " + s.message());
      }
    }
    return Status::ok();
  }

  void remove_overlay_route(const ipsec::PathParams& p) {
    const unsigned idx = ::if_nametoindex(p.interface_name.c_str());
    if (idx != 0 && p.remote_overlay && rtnl_) {
      (void)rtnl_->route(ln::Op::kDelete, ln::Route::to_host(*p.remote_overlay, idx));
    }
  }

  // --- initiation ------------------------------------------------------------------------------

  void initiate(std::uint64_t id, PathState& p) {
    if (p.initiating || !p.loaded || !init_.up()) return;
    const std::string name = ipsec::conn_name(id);
    vici::Message m;
    m.set("child", name);
    m.set("ike", name);
    m.set("timeout", std::to_string(initiate_timeout_ms_));
    m.set("init-limits", "no");
    m.set("loglevel", "1");
    p.initiating = true;
    p.next_try_ns = host().now_ns() + retry_ns_;
    initiating_.push_back(id);
    const Status s = command(init_, "initiate", m, [this, id](Result<vici::Message> r) {
      if (!initiating_.empty() && initiating_.front() == id) initiating_.pop_front();
      auto it = paths_.find(id);
      if (it == paths_.end()) return;
      PathState& ps = it->second;
      ps.initiating = false;
      const Status st = r.is_ok() ? vici::check_success("initiate", r.value()) : r.status();
      if (st.is_ok()) {
        ps.diagnostic = PATRONUS_TUNNEL_DIAG_NONE;
        ps.reason.clear();
        request_status();
        return;
      }
      const std::uint32_t diag = ps.attempt_diag != PATRONUS_TUNNEL_DIAG_NONE
                                     ? ps.attempt_diag
                                     : PATRONUS_TUNNEL_DIAG_NO_HANDSHAKE;
      std::string why = st.message();
      if (!ps.attempt_reason.empty()) why += " (" + ps.attempt_reason + ")";
      ps.attempt_diag = PATRONUS_TUNNEL_DIAG_NONE;
      ps.attempt_reason.clear();
      ps.next_try_ns = host().now_ns() + retry_ns_;
      failed(id, ps, diag, why);
    });
    if (!s.is_ok()) {
      initiating_.pop_back();
      p.initiating = false;
    }
  }

  void on_event(Link& l, const vici::Packet& e) {
    if (&l == &init_ && e.name == "control-log") {
      // The log of the attempt at the head of the initiate queue (charon answers in order).
      if (initiating_.empty()) return;
      auto it = paths_.find(initiating_.front());
      if (it == paths_.end()) return;
      const std::string msg = e.message.get("msg").value_or("");
      const std::uint32_t d = ipsec::diagnose(msg);
      if (d != PATRONUS_TUNNEL_DIAG_NONE && it->second.attempt_diag == PATRONUS_TUNNEL_DIAG_NONE) {
        it->second.attempt_diag = d;
        it->second.attempt_reason = msg.substr(0, 300);
      }
      return;
    }
    if (&l != &ctl_) return;
    if (e.name == "list-sa") {
      if (sa_events_.size() < kMaxSaEvents) sa_events_.push_back(e.message);
      return;
    }
    if (e.name == "ike-updown" || e.name == "child-updown") request_status();
  }

  // --- status ----------------------------------------------------------------------------------

  void schedule_status() {
    if (!running_) return;
    status_timer_ = host().schedule(status_ns_, [this] {
      status_timer_ = 0;
      request_status();
      schedule_status();
    });
  }

  void request_status() {
    if (listing_) {
      list_again_ = true;
      return;
    }
    if (!ctl_.up()) return;
    vici::Message m;
    m.set("noblock", "yes");
    sa_events_.clear();
    listing_ = true;
    list_again_ = false;
    const Status s = command(ctl_, "list-sas", m, [this](Result<vici::Message> r) {
      listing_ = false;
      if (r.is_ok()) evaluate();
      sa_events_.clear();
      if (list_again_) request_status();
    });
    if (!s.is_ok()) listing_ = false;
  }

  void evaluate() {
    std::map<std::string, ipsec::SaState> sas;
    for (const auto& e : sa_events_) {
      auto parsed = ipsec::parse_list_sa(e);
      if (!parsed.is_ok()) {
        host().warn("ipsec: " + parsed.status().message());
        continue;
      }
      for (auto& s : parsed.value()) {
        auto& slot = sas[s.conn];
        // Two IKE_SAs of one connection (both ends initiated): the one with a CHILD_SA counts.
        if (!slot.child_installed) slot = std::move(s);
      }
    }
    const std::int64_t now = host().now_ns();
    for (auto& [id, p] : paths_) {
      auto it = sas.find(ipsec::conn_name(id));
      const bool up = p.loaded && it != sas.end() && it->second.child_installed;
      if (up) {
        p.diagnostic = PATRONUS_TUNNEL_DIAG_NONE;
        p.reason.clear();
        report(id, p, PATRONUS_TUNNEL_UP, &it->second);
        continue;
      }
      // The SA is gone (or never came): without a failure on record, that is "no handshake".
      if (p.diagnostic == PATRONUS_TUNNEL_DIAG_NONE)
        p.diagnostic = PATRONUS_TUNNEL_DIAG_NO_HANDSHAKE;
      report(id, p, PATRONUS_TUNNEL_DOWN, it == sas.end() ? nullptr : &it->second);
      if (!p.loaded || !p.link_ready || p.initiating || now < p.next_try_ns) continue;
      // The initiating end retries; the other end only after a long silence (its peer may have
      // lost our configuration and be waiting too).
      if (p.params.initiator || now - p.down_since_ns > 10 * retry_ns_) initiate(id, p);
    }
  }

  void failed(std::uint64_t id, PathState& p, std::uint32_t diag, const std::string& why) {
    if (!running_) return;  // requests cut short by our own stop
    const bool again = p.diagnostic == diag && p.reason == why;
    p.diagnostic = diag;
    p.reason = why;
    if (again) return report(id, p, PATRONUS_TUNNEL_DOWN, nullptr);  // said already
    host().warn("ipsec: path " + std::to_string(id) + " (" + ipsec::conn_name(id) + "): " + why);
    event("ipsec.error", json{{"path", id},
                              {"connection", ipsec::conn_name(id)},
                              {"diagnostic", diag_name(diag)},
                              {"error", why}});
    report(id, p, PATRONUS_TUNNEL_DOWN, nullptr);
  }

  // The diagnostic's name in this plugin's events (what it means for charon).
  static const char* diag_name(std::uint32_t d) {
    static constexpr patronus::EnumTable<std::uint32_t, 6> kNames{{
        {"none", PATRONUS_TUNNEL_DIAG_NONE},
        {"no_handshake", PATRONUS_TUNNEL_DIAG_NO_HANDSHAKE},
        {"configuration_refused", PATRONUS_TUNNEL_DIAG_DEVICE_ERROR},
        {"charon_gone", PATRONUS_TUNNEL_DIAG_DEVICE_GONE},
        {"authentication_failed", PATRONUS_TUNNEL_DIAG_AUTH_FAILED},
        {"negotiation_failed", PATRONUS_TUNNEL_DIAG_NEGOTIATION_FAILED},
    }};
    return patronus::enum_name(d, kNames);
  }

  void report(std::uint64_t id, PathState& p, std::uint32_t state, const ipsec::SaState* sa) {
    patronus_tunnel_status t{};
    t.struct_size = sizeof t;
    t.state = state;
    t.path_id = id;
    t.diagnostic = state == PATRONUS_TUNNEL_UP ? PATRONUS_TUNNEL_DIAG_NONE : p.diagnostic;
    if (sa != nullptr && sa->child_installed) {
      const std::int64_t wall = host().wall_ns();
      if (wall > 0 && sa->installed_ago_s >= 0) {
        t.last_handshake_wall_ns = wall - sa->installed_ago_s * 1'000'000'000;
      }
      t.rx_bytes = sa->bytes_in;
      t.tx_bytes = sa->bytes_out;
      if (auto ip = model::IpAddress::parse(sa->remote_host); ip.is_ok()) {
        t.endpoint = model::SocketAddress(ip.value(), sa->remote_port).to_abi();
      }
    }
    auto sa_json = [&] {
      json j{{"path", id}, {"connection", ipsec::conn_name(id)}};
      if (sa != nullptr) {
        j["ike_state"] = sa->ike_state;
        j["remote_id"] = sa->remote_id;
        j["remote_host"] = sa->remote_host;
        j["encr_alg"] = sa->encr_alg;
        j["dh_group"] = sa->dh_group;
        j["established_s"] = sa->established_s;
        j["ike_rekey_in_s"] = sa->ike_rekey_in_s;
        j["child_sa"] = sa->child_id;
      }
      return j;
    };
    if (state == PATRONUS_TUNNEL_UP && sa != nullptr && p.last_state == state &&
        sa->child_id != p.child_id) {
      event("ipsec.rekeyed", sa_json());  // a new CHILD_SA carries the path
    }
    if (state == PATRONUS_TUNNEL_UP && sa != nullptr) p.child_id = sa->child_id;
    if (!p.last_state || *p.last_state != state) {
      if (state == PATRONUS_TUNNEL_UP) {
        host().info("ipsec: path " + std::to_string(id) + " up");
        event("ipsec.up", sa_json());
      } else {
        p.down_since_ns = host().now_ns();
        if (p.last_state) {
          host().info("ipsec: path " + std::to_string(id) + " down (" + diag_name(p.diagnostic) +
                      ")");
          event("ipsec.down",
                json{{"path", id}, {"diagnostic", diag_name(p.diagnostic)}, {"reason", p.reason}});
        }
      }
    }
    p.last_state = state;
    host().report_tunnel(t);
  }

  void event(const std::string& type, const json& j) { host().event(type, j.dump()); }

  std::string socket_, keys_dir_;
  ipsec::Mode mode_ = ipsec::Mode::kLibipsec;
  std::int64_t status_ns_ = 1000 * kMs, retry_ns_ = 2000 * kMs, reconnect_ns_ = 1000 * kMs;
  std::int64_t initiate_timeout_ms_ = 10000;
  bool unload_on_stop_ = false, running_ = false, unreachable_reported_ = false,
       untrusted_reported_ = false;
  bool listing_ = false, list_again_ = false, routes_checked_ = false;
  std::optional<ln::Rtnl> rtnl_;
  Link ctl_, init_;
  std::map<std::uint64_t, PathState> paths_;
  std::deque<std::uint64_t> initiating_;
  std::vector<vici::Message> sa_events_;
  patronus_timer_id status_timer_ = 0, reconnect_timer_ = 0;
};

}  // namespace

PATRONUS_SDK_PLUGIN(Ipsec, "ipsec", "0.1.0", "patronus.ipsec.v1.Config", patronus_embedded_schema,
                    patronus_embedded_schema_size)
