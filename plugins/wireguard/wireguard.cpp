// wireguard: the WireGuard transport plugin. One interface per local endpoint (its private key,
// listen port, overlay addresses, fwmark), one peer per path (the remote endpoint's public key,
// underlay endpoint, allowed prefixes, keepalive), built from the paths the host brings up.
//
// Userspace backend: starts wireguard-go for an interface (or adopts one that is already running,
// so a daemon restart keeps its tunnels), speaks the UAPI on its unix socket without blocking
// (one exchange at a time per interface, driven by the host's watch_fd), and reconciles: each
// change reads the device back and sends only the difference, so changing one peer never
// disturbs another. Addresses, MTU and link state go over rtnetlink. The device's state is read
// back periodically and reported per path as tunnel status: a path whose peer has had no
// handshake within WireGuard's reject window (180 s) is DOWN.
//
// Kernel backend (`backend: kernel`, or `auto` when the wireguard module is loaded): the link is
// created over rtnetlink (IFLA_INFO_KIND "wireguard") and the device read and configured over
// generic netlink (genl.hpp), on a synchronous socket: the kernel handles each request inside
// sendmsg(), as for rtnetlink, so nothing waits on anything outside the kernel. The same
// reconciliation and status reporting serve both backends.
#include <fcntl.h>
#include <net/if.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
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

#include "genl.hpp"
#include "patronus/mesh/keys.hpp"
#include "patronus/model/address.hpp"
#include "patronus/sdk/plugin.hpp"
#include "patronus/util/file.hpp"
#include "patronus/wireguard/v1/wireguard.pb.h"
#include "rtnl.hpp"
#include "uapi.hpp"

extern char** environ;

namespace {

using patronus::Result;
using patronus::Status;
using patronus::sdk::Error;
namespace model = patronus::model;
namespace wg = patronus::wg;
namespace ln = patronus::linuxnet;

constexpr std::int64_t kMs = 1'000'000;
constexpr std::int64_t kRejectAfterNs = 180'000'000'000;  // WireGuard REJECT_AFTER_TIME
constexpr std::size_t kMaxQueued = 8;                     // UAPI requests waiting per interface
constexpr std::int64_t kStandbyPollNs = 20 * kMs;         // while a next key is on standby
// One control exchange at a time per interface, each holding one host watch: the host's bound on
// watches per instance (16) bounds the interfaces, as a site has at most 16 endpoints.
constexpr std::size_t kMaxInterfaces = 16;

bool valid_ifname(const char* s) {
  if (s == nullptr) return false;
  const std::size_t n = std::strlen(s);
  if (n == 0 || n >= IFNAMSIZ) return false;
  for (std::size_t i = 0; i < n; ++i) {
    const char c = s[i];
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) {
      return false;
    }
  }
  return true;
}

struct PeerSpec {
  std::uint64_t path_id = 0;
  wg::Key public_key{};
  model::SocketAddress endpoint;
  std::vector<model::IpPrefix> allowed;
  std::uint16_t keepalive_s = 0;
  std::optional<model::IpAddress> overlay;  // the remote end's overlay address: routed to us
  // Key rotation (ADR 0013): the far end's next key, a standby peer until it completes a
  // handshake under it; then `promoted`: the next key carries the path's allowed IPs and the old
  // peer goes.
  std::optional<wg::Key> next_key;
  bool promoted = false;
  // The key the path's traffic uses now.
  const wg::Key& active_key() const { return promoted && next_key ? *next_key : public_key; }
};

struct Exchange {
  std::string request;
  std::function<void(Result<std::string>)> done;
};

struct Device {
  std::string name;
  wg::Key private_key{};
  wg::Key public_key{};
  std::uint16_t listen_port = 0;
  std::vector<std::pair<model::IpAddress, int>> addresses;
  std::map<std::uint64_t, PeerSpec> peers;  // by path id
  // Endpoints we set, by peer: a peer that roamed is not pulled back unless our plan changed.
  std::map<wg::Key, model::SocketAddress> applied_endpoint;
  pid_t pid = -1;      // wireguard-go we started (-1: adopted, or none yet)
  bool ready = false;  // the control socket answers
  bool syncing = false, resync = false, polling = false;
  std::int64_t started_ns = 0;
  patronus_timer_id start_timer = 0;
  // The exchange on the wire.
  int fd = -1;
  patronus_watch_id watch = 0;
  bool reading = false;
  std::optional<wg::UapiExchange> ex;
  std::function<void(Result<std::string>)> on_done;
  std::deque<Exchange> queue;
  std::map<std::uint64_t, std::uint32_t> last_state;  // per path, last reported
};

class WireGuard final : public patronus::sdk::TransportPlugin {
 public:
  using TransportPlugin::TransportPlugin;
  ~WireGuard() override { close_all(); }

  void configure(const std::uint8_t* data, std::size_t size) override {
    patronus::wireguard::v1::Config c;
    if (size > 0 && !c.ParseFromArray(data, static_cast<int>(size))) {
      throw Error("config: not a patronus.wireguard.v1.Config message",
                  PATRONUS_ERR_INVALID_ARGUMENT);
    }
    const std::string backend = c.has_backend() ? c.backend() : "auto";
    if (backend != "auto" && backend != "userspace" && backend != "kernel") {
      throw Error("backend: '" + backend + "' is not auto, userspace or kernel",
                  PATRONUS_ERR_INVALID_ARGUMENT);
    }
    const bool kernel_module = ::access("/sys/module/wireguard", F_OK) == 0;
    kernel_ = backend == "kernel" || (backend == "auto" && kernel_module);
    if (!c.has_keys_dir() || c.keys_dir().empty()) {
      throw Error("keys_dir: required (the directory of this site's private keys)",
                  PATRONUS_ERR_INVALID_ARGUMENT);
    }
    keys_dir_ = c.keys_dir();
    wireguard_go_ = c.has_wireguard_go() ? c.wireguard_go() : "wireguard-go";
    fwmark_ = c.fwmark();
    socket_dir_ = c.has_socket_dir() ? c.socket_dir() : "/var/run/wireguard";
    status_ns_ = (c.has_status_interval_ms() ? c.status_interval_ms() : 1000) * kMs;
    if (status_ns_ < 10 * kMs || status_ns_ > 3'600'000 * kMs) {
      throw Error("status_interval_ms: must be 10..3600000", PATRONUS_ERR_INVALID_ARGUMENT);
    }
    remove_on_stop_ = c.remove_on_stop();
    mtu_ = c.has_mtu() ? c.mtu() : 1420;
    if (mtu_ < 1280 || mtu_ > 65535) {
      throw Error("mtu: must be 1280..65535", PATRONUS_ERR_INVALID_ARGUMENT);
    }
    start_timeout_ns_ = (c.has_start_timeout_ms() ? c.start_timeout_ms() : 5000) * kMs;
    if (socket_dir_.size() + 1 + IFNAMSIZ + 5 >= sizeof(sockaddr_un{}.sun_path)) {
      throw Error("socket_dir: too long for a unix socket path", PATRONUS_ERR_INVALID_ARGUMENT);
    }
  }

  void start() override {
    auto r = ln::Rtnl::open();
    if (!r.is_ok()) throw Error("rtnetlink: " + r.status().message(), PATRONUS_ERR_UNAVAILABLE);
    rtnl_.emplace(std::move(r).value());
    if (kernel_) {
      auto k = wg::genl::KernelDevices::open();
      if (!k.is_ok())
        throw Error("backend: kernel: " + k.status().message(), PATRONUS_ERR_UNAVAILABLE);
      kernel_devices_.emplace(std::move(k).value());
    }
    running_ = true;
    schedule_poll();
  }

  void stop() override {
    running_ = false;
    if (poll_timer_) host().cancel(poll_timer_);
    poll_timer_ = 0;
    for (auto& [name, d] : devices_) {
      end_exchange(*d);
      if (d->start_timer) host().cancel(d->start_timer);
      d->start_timer = 0;
      if (remove_on_stop_) remove_device(*d);
    }
    devices_.clear();
    path_device_.clear();
  }

  void path_up(const patronus_path_desc& p) override {
    if (!running_) throw Error("path_up before start", PATRONUS_ERR_FAILED_PRECONDITION);
    const std::string pid = "path " + std::to_string(p.path_id) + ": ";
    if (!valid_ifname(p.interface_name)) {
      throw Error(pid + "interface_name must be 1-15 characters of [A-Za-z0-9_.-]",
                  PATRONUS_ERR_INVALID_ARGUMENT);
    }
    if ((p.flags & PATRONUS_PATH_PUBLIC_KEYS) == 0) {
      throw Error(pid + "no public keys (a WireGuard path needs both ends' keys)",
                  PATRONUS_ERR_INVALID_ARGUMENT);
    }
    if (p.local_site == nullptr || p.local_endpoint == nullptr || !*p.local_endpoint) {
      throw Error(pid + "no local site or endpoint name (needed to find the private key)",
                  PATRONUS_ERR_INVALID_ARGUMENT);
    }
    if (p.local.port == 0) {
      throw Error(pid + "the local endpoint has no listen port", PATRONUS_ERR_INVALID_ARGUMENT);
    }
    auto remote = model::SocketAddress::from_abi(p.remote);
    if (!remote.is_ok() || remote.value().port() == 0) {
      throw Error(pid + "the remote endpoint is not an address with a port",
                  PATRONUS_ERR_INVALID_ARGUMENT);
    }
    PeerSpec peer;
    peer.path_id = p.path_id;
    std::memcpy(peer.public_key.data(), p.remote_public_key, 32);
    peer.endpoint = remote.value();
    peer.keepalive_s = static_cast<std::uint16_t>(std::min<std::uint32_t>(p.keepalive_s, 65535));
    if (p.flags & PATRONUS_PATH_REMOTE_NEXT_KEY) {
      wg::Key next{};
      std::memcpy(next.data(), p.remote_next_public_key, 32);
      if (next == peer.public_key) {
        throw Error(pid + "the remote next key is its current key", PATRONUS_ERR_INVALID_ARGUMENT);
      }
      peer.next_key = next;
    }
    if (auto o = model::SocketAddress::from_abi(p.remote_overlay); o.is_ok()) {
      peer.overlay = o.value().ip();
    }
    if (p.allowed_prefix_count > 4096 ||
        (p.allowed_prefix_count > 0 && p.allowed_prefixes == nullptr)) {
      throw Error(pid + "allowed prefixes: bad count", PATRONUS_ERR_INVALID_ARGUMENT);
    }
    for (std::uint32_t i = 0; i < p.allowed_prefix_count; ++i) {
      auto pf = prefix_of(p.allowed_prefixes[i]);
      if (!pf)
        throw Error(pid + "allowed prefix " + std::to_string(i) + " is malformed",
                    PATRONUS_ERR_INVALID_ARGUMENT);
      peer.allowed.push_back(model::IpPrefix(pf->first, pf->second));
    }
    std::vector<std::pair<model::IpAddress, int>> addresses;
    if (p.interface_address_count > 16 ||
        (p.interface_address_count > 0 && p.interface_addresses == nullptr)) {
      throw Error(pid + "interface addresses: bad count", PATRONUS_ERR_INVALID_ARGUMENT);
    }
    for (std::uint32_t i = 0; i < p.interface_address_count; ++i) {
      auto a = prefix_of(p.interface_addresses[i]);
      if (!a)
        throw Error(pid + "interface address " + std::to_string(i) + " is malformed",
                    PATRONUS_ERR_INVALID_ARGUMENT);
      addresses.push_back(*a);
    }
    wg::Key local_public{};
    std::memcpy(local_public.data(), p.local_public_key, 32);

    // An update that moves the path to another interface leaves the old one first.
    if (auto moved = path_device_.find(p.path_id);
        moved != path_device_.end() && moved->second != p.interface_name) {
      path_down(p.path_id);
    }
    Device* d = find(p.interface_name);
    if (d != nullptr) {
      if (d->listen_port != p.local.port) {
        throw Error(pid + "interface " + d->name +
                        " already carries another local endpoint (listen port differs)",
                    PATRONUS_ERR_INVALID_ARGUMENT);
      }
      if (d->public_key != local_public) {
        // This endpoint's key was rotated (committed): the device switches to the new private
        // key, which must be in the key directory. Its peers accepted it beforehand.
        const auto kp = load_private_key(pid, p.local_site, p.local_endpoint, local_public);
        d->private_key = kp.private_key;
        d->public_key = local_public;
        host().info(d->name + ": switching to the rotated key of " + p.local_site + "/" +
                    p.local_endpoint);
        event("wireguard.key_rotated", *d, "local");
      }
      for (const auto& [id, other] : d->peers) {
        if (id != p.path_id && other.public_key == peer.public_key) {
          throw Error(
              pid + "interface " + d->name + " has this peer key on path " + std::to_string(id),
              PATRONUS_ERR_INVALID_ARGUMENT);
        }
      }
    } else {
      if (devices_.size() >= kMaxInterfaces) {
        throw Error("at most " + std::to_string(kMaxInterfaces) + " interfaces",
                    PATRONUS_ERR_RESOURCE_EXHAUSTED);
      }
      const auto kp = load_private_key(pid, p.local_site, p.local_endpoint, local_public);
      auto nd = std::make_unique<Device>();
      nd->name = p.interface_name;
      nd->private_key = kp.private_key;
      nd->public_key = local_public;
      nd->listen_port = p.local.port;
      d = nd.get();
      devices_.emplace(d->name, std::move(nd));
    }
    if (!addresses.empty()) d->addresses = addresses;
    // A standby key already promoted stays promoted while the plan still names it as next; once
    // the plan makes it the key, the path is an ordinary one again.
    if (auto old = d->peers.find(p.path_id); old != d->peers.end() && old->second.promoted &&
                                             old->second.next_key == peer.next_key &&
                                             old->second.public_key == peer.public_key) {
      peer.promoted = true;
    }
    d->peers[p.path_id] = std::move(peer);
    path_device_[p.path_id] = d->name;
    if (d->ready) {
      request_sync(*d);
    } else if (d->start_timer == 0 && d->pid < 0) {
      bring_up(*d);
    }
  }

  void path_down(std::uint64_t path_id) override {
    auto it = path_device_.find(path_id);
    if (it == path_device_.end()) {
      throw Error("path " + std::to_string(path_id) + " is not up", PATRONUS_ERR_NOT_FOUND);
    }
    Device* d = find(it->second);
    path_device_.erase(it);
    if (d == nullptr) return;
    if (auto pe = d->peers.find(path_id); pe != d->peers.end() && pe->second.overlay) {
      const unsigned idx = ::if_nametoindex(d->name.c_str());
      if (idx != 0)
        (void)rtnl_->route(ln::Op::kDelete, ln::Route::to_host(*pe->second.overlay, idx));
    }
    d->peers.erase(path_id);
    d->last_state.erase(path_id);
    if (d->peers.empty()) {
      const std::string name = d->name;
      end_exchange(*d);
      if (d->start_timer) host().cancel(d->start_timer);
      remove_device(*d);
      devices_.erase(name);
      return;
    }
    if (d->ready) request_sync(*d);
  }

 private:
  static std::optional<std::pair<model::IpAddress, int>> prefix_of(const patronus_prefix& p) {
    patronus_addr a = p.addr;
    a.port = 0;
    auto s = model::SocketAddress::from_abi(a);
    if (!s.is_ok()) return std::nullopt;
    const int max = s.value().ip().is_v4() ? 32 : 128;
    if (p.length > max) return std::nullopt;
    return std::make_pair(s.value().ip(), static_cast<int>(p.length));
  }

  // This endpoint's private key from the key directory, checked against the plan's public key.
  patronus::mesh::KeyPair load_private_key(const std::string& pid, const char* site,
                                           const char* endpoint, const wg::Key& public_key) {
    auto keys = patronus::mesh::KeyDirectory::open(keys_dir_);
    if (!keys.is_ok()) throw Error(pid + keys.status().message(), PATRONUS_ERR_FAILED_PRECONDITION);
    auto kp = keys.value().load(site, endpoint);
    if (!kp.is_ok()) throw Error(pid + kp.status().message(), PATRONUS_ERR_FAILED_PRECONDITION);
    if (!kp.value()) {
      throw Error(pid + "no private key for " + site + "/" + endpoint + " in " + keys_dir_,
                  PATRONUS_ERR_FAILED_PRECONDITION);
    }
    if (kp.value()->public_key != public_key) {
      throw Error(pid + "the private key of " + site + "/" + endpoint + " in " + keys_dir_ +
                      " does not match the plan's public key",
                  PATRONUS_ERR_FAILED_PRECONDITION);
    }
    return *kp.value();
  }

  Device* find(const std::string& name) {
    auto it = devices_.find(name);
    return it == devices_.end() ? nullptr : it->second.get();
  }

  std::string socket_path(const Device& d) const { return socket_dir_ + "/" + d.name + ".sock"; }

  void event(const std::string& type, const Device& d, const std::string& detail) {
    host().event(type, nlohmann::json{{"interface", d.name}, {"detail", detail}}.dump());
  }

  // A device error: reported as an event and as DOWN on every path of the interface.
  void device_error(Device& d, std::uint32_t diag, const std::string& what) {
    event(diag == PATRONUS_TUNNEL_DIAG_DEVICE_GONE ? "wireguard.device_gone"
                                                   : "wireguard.device_error",
          d, what);
    host().warn(d.name + ": " + what);
    for (const auto& [id, peer] : d.peers) report(d, id, PATRONUS_TUNNEL_DOWN, diag, nullptr);
  }

  // Adopts a running device (its socket answers) or starts wireguard-go, then waits for the
  // socket.
  void bring_up(Device& d) {
    d.ready = false;
    if (kernel_) {
      if (::if_nametoindex(d.name.c_str()) != 0) {
        host().info(d.name + ": adopting the kernel device");
        event("wireguard.adopted", d, "kernel");
      } else if (auto s = rtnl_->create_link(d.name, "wireguard"); !s.is_ok()) {
        device_error(d, PATRONUS_TUNNEL_DIAG_DEVICE_ERROR,
                     "creating the kernel WireGuard link: " + s.message());
        return;
      } else {
        event("wireguard.created", d, "kernel");
      }
      became_ready(d);
      return;
    }
    const std::string path = socket_path(d);
    if (answers(path)) {
      host().info(d.name + ": adopting the running device (" + path + ")");
      event("wireguard.adopted", d, path);
      became_ready(d);
      return;
    }
    ::unlink(path.c_str());  // a stale socket nobody listens on (or none)
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    // The child gets stdin, stdout and stderr, nothing else: not the host's probe sockets (it
    // used to inherit them, and held the probe port after the daemon died), not its database.
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    std::vector<std::string> envs;
    for (char** e = environ; e && *e; ++e) {
      if (std::strncmp(*e, "WG_PROCESS_FOREGROUND=", 22) != 0) envs.emplace_back(*e);
    }
    envs.emplace_back("WG_PROCESS_FOREGROUND=1");
    std::vector<char*> envp;
    for (auto& e : envs) envp.push_back(e.data());
    envp.push_back(nullptr);
    std::string a0 = wireguard_go_, a1 = "-f", a2 = d.name;
    char* argv[] = {a0.data(), a1.data(), a2.data(), nullptr};
    pid_t pid = -1;
    const int rc = posix_spawnp(&pid, wireguard_go_.c_str(), &fa, nullptr, argv, envp.data());
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
      device_error(d, PATRONUS_TUNNEL_DIAG_DEVICE_ERROR,
                   "cannot start " + wireguard_go_ + ": " + std::strerror(rc));
      return;
    }
    d.pid = pid;
    d.started_ns = host().now_ns();
    host().info(d.name + ": started " + wireguard_go_ + " (pid " + std::to_string(pid) + ")");
    event("wireguard.started", d, "pid " + std::to_string(pid));
    wait_for_socket(d.name);
  }

  void wait_for_socket(const std::string& name) {
    Device* d = find(name);
    if (d == nullptr) return;
    d->start_timer = 0;
    const std::string path = socket_path(*d);
    if (answers(path)) {
      became_ready(*d);
      return;
    }
    int status = 0;
    if (d->pid > 0 && ::waitpid(d->pid, &status, WNOHANG) == d->pid) {
      d->pid = -1;
      device_error(*d, PATRONUS_TUNNEL_DIAG_DEVICE_ERROR,
                   wireguard_go_ + " exited before opening " + path + " (status " +
                       std::to_string(status) + ")");
      return;
    }
    if (host().now_ns() - d->started_ns > start_timeout_ns_) {
      // Not left running half-started: the next path_up starts it again.
      ::kill(d->pid, SIGKILL);
      ::waitpid(d->pid, nullptr, 0);
      d->pid = -1;
      device_error(*d, PATRONUS_TUNNEL_DIAG_DEVICE_ERROR,
                   wireguard_go_ + " did not open " + path + " in time");
      return;
    }
    d->start_timer = host().schedule(10 * kMs, [this, name] { wait_for_socket(name); });
  }

  void became_ready(Device& d) {
    d.ready = true;
    request_sync(d);
  }

  // Whether something listens on the control socket (a running device).
  static bool answers(const std::string& path) {
    const int fd = connect_socket(path);
    if (fd < 0) return false;
    ::close(fd);
    return true;
  }

  static int connect_socket(const std::string& path) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::memcpy(sa.sun_path, path.c_str(), std::min(path.size(), sizeof sa.sun_path - 1));
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 && errno != EINPROGRESS &&
        errno != EAGAIN) {
      ::close(fd);
      return -1;
    }
    return fd;
  }

  // --- UAPI exchanges, one at a time per device --------------------------------------------

  void submit(Device& d, std::string request, std::function<void(Result<std::string>)> done) {
    if (d.queue.size() >= kMaxQueued) {
      done(Status(patronus::Code::kResourceExhausted,
                  d.name + ": " + std::to_string(kMaxQueued) + " control requests are waiting"));
      return;
    }
    d.queue.push_back({std::move(request), std::move(done)});
    pump(d);
  }

  void pump(Device& d) {
    if (d.fd >= 0 || d.queue.empty()) return;
    Exchange x = std::move(d.queue.front());
    d.queue.pop_front();
    const int fd = connect_socket(socket_path(d));
    if (fd < 0) {
      x.done(Status(patronus::Code::kUnavailable,
                    "cannot connect to " + socket_path(d) + ": " + std::strerror(errno)));
      pump(d);
      return;
    }
    // The private key goes to whoever listens there: it must be wireguard-go as root or as us,
    // in a directory nobody else could write.
    if (auto trusted = patronus::closed_directory(socket_dir_);
        !trusted.is_ok() || !(trusted = patronus::peer_is_trusted(fd, socket_path(d))).is_ok()) {
      ::close(fd);
      x.done(Status(trusted.code(), trusted.message()));
      pump(d);
      return;
    }
    d.fd = fd;
    d.ex.emplace(std::move(x.request));
    d.on_done = std::move(x.done);
    d.reading = false;
    const std::string name = d.name;
    try {
      d.watch = host().watch_fd(fd, PATRONUS_FD_WRITABLE,
                                [this, name](std::uint32_t ready) { on_io(name, ready); });
    } catch (const Error& e) {
      finish(d, Status(patronus::Code::kUnavailable, e.what()));
    }
  }

  void on_io(const std::string& name, std::uint32_t ready) {
    Device* d = find(name);
    if (d == nullptr || d->fd < 0) return;
    if (!d->reading && (ready & PATRONUS_FD_WRITABLE)) {
      const auto out = d->ex->pending_output();
      const ssize_t n = ::send(d->fd, out.data(), out.size(), MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) return;
        finish(*d, Status(patronus::Code::kUnavailable,
                          "writing to " + socket_path(*d) + ": " + std::strerror(errno)));
        return;
      }
      d->ex->wrote(static_cast<std::size_t>(n));
      if (d->ex->pending_output().empty()) {
        host().unwatch_fd(d->watch);
        d->reading = true;
        try {
          d->watch = host().watch_fd(d->fd, PATRONUS_FD_READABLE,
                                     [this, name](std::uint32_t r) { on_io(name, r); });
        } catch (const Error& e) {
          finish(*d, Status(patronus::Code::kUnavailable, e.what()));
        }
      }
      return;
    }
    if (d->reading && (ready & PATRONUS_FD_READABLE)) {
      char buf[16384];
      const ssize_t n = ::recv(d->fd, buf, sizeof buf, 0);
      if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) return;
        finish(*d, Status(patronus::Code::kUnavailable,
                          "reading " + socket_path(*d) + ": " + std::strerror(errno)));
        return;
      }
      if (n == 0) {
        const Status s = d->ex->closed();
        finish(*d, s.is_ok() ? Result<std::string>(std::string(d->ex->response()))
                             : Result<std::string>(s));
        return;
      }
      auto r = d->ex->received(buf, static_cast<std::size_t>(n));
      if (!r.is_ok()) {
        finish(*d, r.status());
      } else if (r.value()) {
        finish(*d, std::string(d->ex->response()));
      }
    }
  }

  void end_exchange(Device& d) {
    if (d.fd < 0) return;
    host().unwatch_fd(d.watch);
    ::close(d.fd);
    d.fd = -1;
    d.watch = 0;
    d.ex.reset();
    d.on_done = nullptr;
  }

  void finish(Device& d, Result<std::string> result) {
    auto done = std::move(d.on_done);
    const std::string name = d.name;
    end_exchange(d);
    if (done) done(std::move(result));
    if (Device* again = find(name)) pump(*again);
  }

  // --- reconciliation ------------------------------------------------------------------------

  void request_sync(Device& d) {
    if (d.syncing) {
      d.resync = true;
      return;
    }
    d.syncing = true;
    d.resync = false;
    const std::string name = d.name;
    read_device(d, [this, name](Result<wg::DeviceState> state) {
      Device* dev = find(name);
      if (dev == nullptr) return;
      if (!state.is_ok())
        return sync_failed(*dev, "reading the device: " + state.status().message());
      const wg::DeviceChange change =
          wg::reconcile(desired(*dev), state.value(), dev->applied_endpoint);
      if (!wg::empty(change)) {
        write_device(*dev, change, [this, name, change](Status s) {
          Device* dv = find(name);
          if (dv == nullptr) return;
          if (!s.is_ok()) {
            // Name what was being set: a taken listen port is the common failure.
            return sync_failed(
                *dv, "configuring the device" +
                         (change.listen_port
                              ? " (listen port UDP " + std::to_string(*change.listen_port) + ")"
                              : std::string()) +
                         ": " + s.message());
          }
          for (const auto& pc : change.peers) {
            if (pc.remove) {
              dv->applied_endpoint.erase(pc.public_key);
            } else if (pc.endpoint) {
              dv->applied_endpoint[pc.public_key] = *pc.endpoint;
            }
          }
          event("wireguard.configured", *dv,
                std::to_string(change.peers.size()) + " peer change(s)" +
                    (change.private_key ? ", private key" : "") +
                    (change.listen_port ? ", listen port" : ""));
          synced(*dv);
        });
      } else {
        synced(*dev);
      }
    });
  }

  // The device's state and a change to it, over the backend's channel: the UAPI socket (one
  // exchange at a time, answered later) or generic netlink (answered at once).
  void read_device(Device& d, std::function<void(Result<wg::DeviceState>)> done) {
    if (kernel_) {
      done(kernel_devices_->get(d.name));
      return;
    }
    submit(d, std::string(wg::kGetRequest), [done](Result<std::string> r) {
      if (!r.is_ok()) return done(r.status());
      done(wg::parse_get_response(r.value()));
    });
  }

  void write_device(Device& d, const wg::DeviceChange& change, std::function<void(Status)> done) {
    if (kernel_) {
      done(kernel_devices_->set(d.name, change));
      return;
    }
    submit(d, wg::encode_set(change), [done](Result<std::string> w) {
      done(w.is_ok() ? wg::parse_set_response(w.value()) : w.status());
    });
  }

  wg::DesiredDevice desired(const Device& d) const {
    wg::DesiredDevice w;
    w.private_key = d.private_key;
    w.listen_port = d.listen_port;
    w.fwmark = fwmark_;
    for (const auto& [id, spec] : d.peers) {
      w.peers.push_back({spec.active_key(), spec.endpoint, spec.allowed, spec.keepalive_s});
      // A standby peer for the far end's next key: its handshakes succeed the moment it switches;
      // it carries no traffic until promoted.
      if (spec.next_key && !spec.promoted) {
        w.peers.push_back({*spec.next_key, spec.endpoint, {}, spec.keepalive_s});
      }
    }
    return w;
  }

  void sync_failed(Device& d, const std::string& why) {
    d.syncing = false;
    device_error(d, PATRONUS_TUNNEL_DIAG_DEVICE_ERROR, why);
    // The device may have gone (wireguard-go killed): the next poll finds out and restarts it.
  }

  void synced(Device& d) {
    if (auto s = configure_link(d); !s.is_ok()) {
      d.syncing = false;
      device_error(d, PATRONUS_TUNNEL_DIAG_DEVICE_ERROR, s.message());
      return;
    }
    d.syncing = false;
    if (d.resync) {
      request_sync(d);
    } else {
      poll(d);
    }
  }

  // Addresses, MTU and up, over rtnetlink (replace: idempotent). Kernel answers are immediate.
  Status configure_link(Device& d) {
    const unsigned idx = ::if_nametoindex(d.name.c_str());
    if (idx == 0) {
      return Status(patronus::Code::kUnavailable,
                    "interface " + d.name + " does not exist (" + std::strerror(errno) + ")");
    }
    for (const auto& [ip, len] : d.addresses) {
      if (auto s = rtnl_->address(ln::Op::kReplace, static_cast<int>(idx), ip, len); !s.is_ok()) {
        return Status(s.code(), "address " + ip.to_string() + "/" + std::to_string(len) + " on " +
                                    d.name + ": " + s.message());
      }
    }
    if (auto s = rtnl_->link_state(static_cast<int>(idx), true, mtu_); !s.is_ok()) {
      return Status(s.code(), "setting " + d.name + " up: " + s.message());
    }
    // Each peer's overlay address goes out of this interface (a host route in the main table):
    // probes of a path leave by its own tunnel whatever the interfaces' connected prefixes are.
    for (const auto& [id, peer] : d.peers) {
      if (!peer.overlay) continue;
      if (auto s = rtnl_->route(ln::Op::kReplace, ln::Route::to_host(*peer.overlay, idx));
          !s.is_ok()) {
        return Status(s.code(), "route to " + peer.overlay->to_string() + " via " + d.name + ": " +
                                    s.message());
      }
    }
    return Status::ok();
  }

  // --- status ----------------------------------------------------------------------------------

  void schedule_poll() {
    if (!running_) return;
    // While a peer's next key waits for its first handshake, look often: the switch costs one
    // handshake plus this interval.
    bool standby = false;
    for (const auto& [name, d] : devices_) {
      for (const auto& [id, spec] : d->peers)
        standby = standby || (spec.next_key && !spec.promoted);
    }
    const std::int64_t interval = standby ? std::min(status_ns_, kStandbyPollNs) : status_ns_;
    poll_timer_ = host().schedule(interval, [this] {
      poll_timer_ = 0;
      for (auto& [name, d] : devices_) check(*d);
      schedule_poll();
    });
  }

  // Is the process alive, does the socket answer; then read the state back.
  void check(Device& d) {
    int status = 0;
    if (d.pid > 0 && ::waitpid(d.pid, &status, WNOHANG) == d.pid) {
      d.pid = -1;
      d.ready = false;
      device_error(d, PATRONUS_TUNNEL_DIAG_DEVICE_GONE,
                   wireguard_go_ + " exited (status " + std::to_string(status) + "); restarting");
      end_exchange(d);
      d.queue.clear();
      d.syncing = d.polling = false;
      d.applied_endpoint.clear();
      bring_up(d);
      return;
    }
    if (d.ready && !d.syncing) poll(d);
  }

  void poll(Device& d) {
    if (d.polling) return;
    d.polling = true;
    const std::string name = d.name;
    read_device(d, [this, name](Result<wg::DeviceState> state) {
      Device* dev = find(name);
      if (dev == nullptr) return;
      dev->polling = false;
      if (!state.is_ok()) {
        // The device went away under us (wireguard-go killed, interface deleted), or answered
        // something we cannot read: either way it is brought back and configured again.
        dev->ready = false;
        device_error(*dev, PATRONUS_TUNNEL_DIAG_DEVICE_GONE, state.status().message());
        dev->applied_endpoint.clear();
        if (dev->pid < 0) bring_up(*dev);
        return;
      }
      const std::int64_t now = host().wall_ns();
      std::map<wg::Key, const wg::PeerState*> have;
      for (const auto& p : state.value().peers) have[p.public_key] = &p;
      bool missing = false;
      bool promoted = false;
      for (auto& [id, spec] : dev->peers) {
        if (spec.next_key && !spec.promoted) {
          auto standby = have.find(*spec.next_key);
          if (standby != have.end() && standby->second->last_handshake_ns > 0) {
            // The far end switched: move the path's traffic to its new key now.
            spec.promoted = true;
            promoted = true;
            host().info(dev->name + ": path " + std::to_string(id) +
                        ": the peer completed a handshake under its next key; promoting it");
            event("wireguard.key_rotated", *dev, "peer of path " + std::to_string(id));
          }
        }
      }
      for (const auto& [id, spec] : dev->peers) {
        auto it = have.find(spec.active_key());
        if (it == have.end()) {
          missing = true;
          report(*dev, id, PATRONUS_TUNNEL_DOWN, PATRONUS_TUNNEL_DIAG_DEVICE_ERROR, nullptr);
          continue;
        }
        const wg::PeerState& ps = *it->second;
        const bool fresh = ps.last_handshake_ns > 0 && now - ps.last_handshake_ns < kRejectAfterNs;
        report(*dev, id, fresh ? PATRONUS_TUNNEL_UP : PATRONUS_TUNNEL_DOWN,
               fresh ? PATRONUS_TUNNEL_DIAG_NONE : PATRONUS_TUNNEL_DIAG_NO_HANDSHAKE, &ps);
      }
      // Someone changed the device behind our back (or it restarted empty), or a standby key was
      // promoted: put it right.
      if (missing || promoted || !state.value().private_key) request_sync(*dev);
    });
  }

  void report(Device& d, std::uint64_t path_id, std::uint32_t state, std::uint32_t diag,
              const wg::PeerState* ps) {
    patronus_tunnel_status t{};
    t.struct_size = sizeof t;
    t.state = state;
    t.path_id = path_id;
    t.diagnostic = diag;
    if (ps != nullptr) {
      t.last_handshake_wall_ns = ps->last_handshake_ns;
      t.rx_bytes = ps->rx_bytes;
      t.tx_bytes = ps->tx_bytes;
      if (ps->endpoint) t.endpoint = ps->endpoint->to_abi();
    }
    auto it = d.last_state.find(path_id);
    if (it == d.last_state.end() || it->second != state) {
      host().info(d.name + ": path " + std::to_string(path_id) + " tunnel " +
                  (state == PATRONUS_TUNNEL_UP ? "up" : "down"));
    }
    d.last_state[path_id] = state;
    host().report_tunnel(t);
  }

  void remove_device(Device& d) {
    const unsigned idx = ::if_nametoindex(d.name.c_str());
    if (idx != 0 && rtnl_) (void)rtnl_->delete_link(static_cast<int>(idx));
    if (d.pid > 0) {
      ::kill(d.pid, SIGTERM);
      // wireguard-go exits once its TUN is gone; reap it (bounded wait).
      for (int i = 0; i < 200; ++i) {
        if (::waitpid(d.pid, nullptr, WNOHANG) == d.pid) break;
        ::usleep(5000);
      }
      d.pid = -1;
    }
    if (!kernel_) ::unlink(socket_path(d).c_str());
    event("wireguard.removed", d, "");
  }

  void close_all() {
    for (auto& [name, d] : devices_) {
      if (d->fd >= 0) ::close(d->fd);
      d->fd = -1;
    }
  }

  std::string keys_dir_, wireguard_go_ = "wireguard-go", socket_dir_ = "/var/run/wireguard";
  std::uint32_t fwmark_ = 0, mtu_ = 1420;
  std::int64_t status_ns_ = 1000 * kMs, start_timeout_ns_ = 5000 * kMs;
  bool remove_on_stop_ = false, running_ = false, kernel_ = false;
  std::optional<ln::Rtnl> rtnl_;
  std::optional<wg::genl::KernelDevices> kernel_devices_;
  std::map<std::string, std::unique_ptr<Device>> devices_;
  std::map<std::uint64_t, std::string> path_device_;
  patronus_timer_id poll_timer_ = 0;
};

}  // namespace

PATRONUS_SDK_PLUGIN(WireGuard, "wireguard", "0.1.0", "patronus.wireguard.v1.Config",
                    patronus_embedded_schema, patronus_embedded_schema_size)
