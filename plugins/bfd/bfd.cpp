// bfd: a probe plugin speaking standard BFD (RFC 5880 asynchronous mode over RFC 5881 single-hop
// UDP) so that a site detects failures towards routers it does not control. One receive endpoint
// per local address on UDP 3784, demultiplexed by discriminators; one transmit endpoint per session
// from a source port in 49152-65535; every packet sent with TTL 255 and every packet received with
// another TTL dropped (GTSM). The full state machine with diagnostics, the reception checks of
// 6.8.6 in order (each discard counted by reason), poll/final for timer changes, 1 s transmission
// until Up, transmit jitter, detection time from the remote multiplier and the negotiated interval,
// no echo (RequiredMinEchoRx 0), optional keyed / meticulous keyed SHA1 authentication. Sessions
// report liveness (never latency: BFD does not measure it). Only host services are used, so the
// same .so runs on real sockets, in virtual time and in the simulator.
#include <algorithm>
#include <cctype>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "bfd_packet.hpp"
#include "patronus/bfd/v1/bfd.pb.h"
#include "patronus/sdk/addr.hpp"
#include "patronus/sdk/plugin.hpp"
#include "patronus/util/file.hpp"
#include "patronus/util/wipe.hpp"

namespace {

using patronus::sdk::Error;
namespace bfd = patronus::bfd;
using bfd::Diag;
using bfd::State;

constexpr std::uint32_t kSlowTxUs = 1'000'000;  // RFC 5880 6.8.3: not Up -> at least 1 s

// Discards counted by reason, in the order of the checks (6.8.6), plus what happens around them.
struct Counters {
  std::uint64_t rx = 0, tx = 0, tx_errors = 0;
  std::uint64_t ttl = 0;  // not 255 (or no TTL known): dropped before anything else
  std::uint64_t decode[bfd::kDiscardReasons] = {};  // by bfd::Discard
  std::uint64_t unknown_discriminator = 0, your_disc_zero_not_down = 0, no_session = 0,
                wrong_source = 0, auth_missing = 0, auth_unexpected = 0, auth_type = 0,
                auth_key_id = 0, auth_digest = 0, auth_sequence = 0, admin_down_local = 0;
  std::uint64_t polls_received = 0, finals_received = 0, state_changes = 0;
};

struct AuthConfig {
  std::uint8_t type = 0;  // 0: none
  std::uint8_t key_id = 0;
  bfd::Sha1Key key{};
};

struct Timers {
  std::uint32_t desired_tx_us = 300'000, required_rx_us = 300'000;
  std::uint8_t mult = 3;
};

using patronus::sdk::format_ip;
using patronus::sdk::parse_ip;
using patronus::sdk::same_ip;

patronus_addr with_port(patronus_addr a, std::uint16_t port) {
  a.port = port;
  return a;
}

// A key file's secret: raw bytes, or "hex:" and hex digits (decoded without a table).
std::string key_of_file(const std::string& path, const std::string& where) {
  auto r = patronus::read_private_file(path, 256);
  if (!r.is_ok()) throw Error(where + "auth.key_file: " + r.status().message());
  if (!r.value()) throw Error(where + "auth.key_file: " + path + ": no such file");
  std::string text = std::move(*r.value());
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  if (text.rfind("hex:", 0) != 0) return text;
  const std::string hex = text.substr(4);
  patronus::util::wipe(text);
  if (hex.empty() || hex.size() % 2 != 0) {
    throw Error(where + "auth.key_file: " + path + ": \"hex:\" and an even number of hex digits");
  }
  std::string bytes(hex.size() / 2, '\0');
  bool bad = false;
  for (std::size_t i = 0; i < hex.size(); ++i) {
    const unsigned c = static_cast<unsigned char>(hex[i]);
    bad |= !std::isxdigit(static_cast<int>(c));
    const unsigned nibble = (c & 0xFu) + 9u * (c >> 6);
    bytes[i / 2] =
        static_cast<char>((static_cast<unsigned char>(bytes[i / 2]) << 4) | (nibble & 0xFu));
  }
  if (bad) throw Error(where + "auth.key_file: " + path + ": not hex after \"hex:\"");
  return bytes;
}

AuthConfig parse_auth(const patronus::bfd::v1::Auth& a, const std::string& where) {
  AuthConfig out;
  if (a.type().empty() && a.key().empty() && a.key_file().empty()) return out;
  if (a.type() == "keyed-sha1") {
    out.type = bfd::kAuthKeyedSha1;
  } else if (a.type() == "meticulous-keyed-sha1" || a.type().empty()) {
    // The default: a replayed packet cannot hold a dead session Up (plain keyed SHA1 accepts
    // the last sequence number again).
    out.type = bfd::kAuthMeticulousKeyedSha1;
  } else {
    throw Error(where + "auth.type: '" + a.type() +
                "' is not meticulous-keyed-sha1 or keyed-sha1 (the authentication types "
                "implemented)");
  }
  if (a.key_id() > 255) throw Error(where + "auth.key_id: must be 0..255");
  if (!a.key().empty() && !a.key_file().empty()) {
    throw Error(where + "auth: key or key_file, not both");
  }
  std::string key = a.key_file().empty() ? a.key() : key_of_file(a.key_file(), where);
  if (key.empty() || key.size() > 20) {
    patronus::util::wipe(key);
    throw Error(where + (a.key_file().empty() ? "auth.key" : "auth.key_file: " + a.key_file()) +
                ": must be 1..20 bytes");
  }
  out.key_id = static_cast<std::uint8_t>(a.key_id());
  std::memcpy(out.key.data(), key.data(), key.size());
  patronus::util::wipe(key);
  return out;
}

std::uint32_t interval_us(bool has, std::uint32_t ms, std::uint32_t fallback_us,
                          const std::string& what) {
  if (!has) return fallback_us;
  if (ms < 10 || ms > 60000) throw Error(what + ": must be 10..60000 ms");
  return ms * 1000;
}

class Bfd final : public patronus::sdk::ProbePlugin {
 public:
  using ProbePlugin::ProbePlugin;

  void configure(const std::uint8_t* data, std::size_t size) override {
    patronus::bfd::v1::Config c;
    if (!c.ParseFromArray(data, static_cast<int>(size))) throw Error("config: not a valid message");
    defaults_.desired_tx_us =
        interval_us(c.has_desired_min_tx_ms(), c.desired_min_tx_ms(), 300'000, "desired_min_tx_ms");
    defaults_.required_rx_us = interval_us(c.has_required_min_rx_ms(), c.required_min_rx_ms(),
                                           300'000, "required_min_rx_ms");
    if (c.has_detect_multiplier() && (c.detect_multiplier() < 1 || c.detect_multiplier() > 255)) {
      throw Error("detect_multiplier: must be 1..255");
    }
    defaults_.mult =
        static_cast<std::uint8_t>(c.has_detect_multiplier() ? c.detect_multiplier() : 3);
    default_auth_ = parse_auth(c.auth(), "");
    max_sessions_ = c.has_max_sessions() ? c.max_sessions() : 1024;
    if (max_sessions_ < 1 || max_sessions_ > 65536) throw Error("max_sessions: must be 1..65536");
    stats_ms_ = c.has_stats_interval_ms() ? c.stats_interval_ms() : 10000;
    if (stats_ms_ > 3600000) throw Error("stats_interval_ms: must be 0..3600000");
    if (static_cast<std::uint32_t>(c.peers_size()) > max_sessions_) {
      throw Error("peers: more than max_sessions (" + std::to_string(max_sessions_) + ")");
    }
    for (int i = 0; i < c.peers_size(); ++i) {
      const auto& p = c.peers(i);
      const std::string where = "peers[" + std::to_string(i) + "].";
      PeerConfig pc;
      auto remote = parse_ip(p.address());
      auto local = parse_ip(p.local());
      if (!remote) throw Error(where + "address: '" + p.address() + "' is not an IP address");
      if (!local) throw Error(where + "local: '" + p.local() + "' is not an IP address");
      if (remote->family != local->family) {
        throw Error(where + "address and local are of different families");
      }
      pc.remote = *remote;
      pc.local = *local;
      pc.timers.desired_tx_us = interval_us(p.has_desired_min_tx_ms(), p.desired_min_tx_ms(),
                                            defaults_.desired_tx_us, where + "desired_min_tx_ms");
      pc.timers.required_rx_us =
          interval_us(p.has_required_min_rx_ms(), p.required_min_rx_ms(), defaults_.required_rx_us,
                      where + "required_min_rx_ms");
      if (p.has_detect_multiplier() && (p.detect_multiplier() < 1 || p.detect_multiplier() > 255)) {
        throw Error(where + "detect_multiplier: must be 1..255");
      }
      pc.timers.mult = static_cast<std::uint8_t>(p.has_detect_multiplier() ? p.detect_multiplier()
                                                                           : defaults_.mult);
      pc.auth = p.has_auth() ? parse_auth(p.auth(), where) : default_auth_;
      for (const auto& q : peers_) {
        if (same_ip(q.local, pc.local)) {
          throw Error(where + "local: " + p.local() +
                      " has a peer already (one BFD neighbour per local address)");
        }
      }
      peers_.push_back(pc);
    }
  }

  void start() override {
    started_ = true;
    for (const auto& pc : peers_) (void)session_for(pc.local, pc.remote, pc.timers, pc.auth, true);
    for (auto& [d, s] : sessions_) arm_tx(*s, 0);
    if (stats_ms_ > 0) schedule_stats();
  }

  void stop() override {
    // The neighbours learn that this end goes away (AdminDown), not that it failed.
    for (auto& [d, s] : sessions_) {
      s->state = State::kAdminDown;
      s->diag = Diag::kAdminDown;
      send(*s, false);
      cancel_timers(*s);
    }
    if (stats_timer_) host().cancel(stats_timer_);
    stats_timer_ = 0;
    publish_counters();
    started_ = false;
  }

  void watch_path(const patronus_path_desc& d) override {
    if (d.local.family != PATRONUS_AF_INET4 && d.local.family != PATRONUS_AF_INET6) {
      throw Error("path " + std::to_string(d.path_id) + ": local address has no family");
    }
    if (auto known = path_session_.find(d.path_id); known != path_session_.end()) {
      return;  // a re-watch (new probe key): BFD sessions do not use it
    }
    Session* s = nullptr;
    if (!peers_.empty()) {
      for (const auto& pc : peers_) {
        if (same_ip(pc.local, d.local))
          s = &session_for(pc.local, pc.remote, pc.timers, pc.auth, true);
      }
      if (s == nullptr) {
        throw Error("path " + std::to_string(d.path_id) + ": no BFD peer has local address " +
                        format_ip(d.local) + " (not covered by this instance)",
                    PATRONUS_ERR_NOT_FOUND);
      }
    } else {
      if (d.remote.family != d.local.family) {
        throw Error("path " + std::to_string(d.path_id) +
                    ": local and remote addresses are of different families");
      }
      s = &session_for(d.local, d.remote, defaults_, default_auth_, false);
      if (started_ && s->tx_timer == 0) arm_tx(*s, 0);
    }
    s->paths.insert(d.path_id);
    path_session_[d.path_id] = s->my_disc;
    if (s->state == State::kUp) report(*s, d.path_id);
  }

  void unwatch_path(std::uint64_t path_id) override {
    auto it = path_session_.find(path_id);
    if (it == path_session_.end()) {
      throw Error("path " + std::to_string(path_id) + " is not watched", PATRONUS_ERR_NOT_FOUND);
    }
    auto sit = sessions_.find(it->second);
    path_session_.erase(it);
    if (sit == sessions_.end()) return;
    Session& s = *sit->second;
    s.paths.erase(path_id);
    if (s.paths.empty() && !s.configured_peer) remove_session(sit->first);
  }

 private:
  struct PeerConfig {
    patronus_addr local{}, remote{};
    Timers timers;
    AuthConfig auth;
  };
  struct Session {
    std::uint32_t my_disc = 0, remote_disc = 0;
    patronus_addr local{}, remote{};
    bool configured_peer = false;
    State state = State::kDown;
    Diag diag = Diag::kNone;
    Timers configured;
    // What the packets advertise, and what is in force (they differ during a poll sequence).
    std::uint32_t adv_desired_tx_us = kSlowTxUs, adv_required_rx_us = 0;
    std::uint32_t cur_desired_tx_us = kSlowTxUs, cur_required_rx_us = 0;
    bool polling = false;
    std::uint32_t remote_min_rx_us = 1, remote_desired_tx_us = 0;
    std::uint8_t remote_mult = 0;
    std::int64_t detect_ns = 0, last_rx_ns = 0;
    patronus_timer_id tx_timer = 0, detect_timer = 0;
    patronus_endpoint_id tx_ep = 0;
    AuthConfig auth;
    std::uint32_t xmit_seq = 0, rcv_seq = 0;
    bool seq_known = false;
    std::int64_t last_auth_rx_ns = 0;
    std::set<std::uint64_t> paths;
  };
  struct Receiver {
    patronus_addr local{};
    patronus_endpoint_id ep = 0;
    std::uint32_t sessions = 0;
  };

  Session& session_for(const patronus_addr& local, const patronus_addr& remote, const Timers& t,
                       const AuthConfig& auth, bool configured_peer) {
    for (auto& [d, s] : sessions_) {
      if (same_ip(s->local, local) && same_ip(s->remote, remote)) return *s;
    }
    if (sessions_.size() >= max_sessions_) {
      throw Error("max_sessions (" + std::to_string(max_sessions_) + ") reached",
                  PATRONUS_ERR_RESOURCE_EXHAUSTED);
    }
    auto s = std::make_unique<Session>();
    s->local = with_port(local, 0);
    s->remote = with_port(remote, bfd::kControlPort);
    s->configured_peer = configured_peer;
    s->configured = t;
    s->adv_required_rx_us = s->cur_required_rx_us = t.required_rx_us;
    s->adv_desired_tx_us = s->cur_desired_tx_us = std::max(kSlowTxUs, t.desired_tx_us);
    s->auth = auth;
    s->xmit_seq = static_cast<std::uint32_t>(host().random_u64());
    do {
      s->my_disc = static_cast<std::uint32_t>(host().random_u64());
    } while (s->my_disc == 0 || sessions_.count(s->my_disc));
    open_receiver(local);
    // The transmit endpoint: a source port in 49152-65535, unique on this host (RFC 5881 4).
    const std::uint32_t span = 65536 - bfd::kSourcePortMin;
    const std::uint32_t first = static_cast<std::uint32_t>(host().random_u64() % span);
    for (std::uint32_t i = 0; i < 64 && s->tx_ep == 0; ++i) {
      const auto port = static_cast<std::uint16_t>(bfd::kSourcePortMin + (first + i * 7919) % span);
      try {
        s->tx_ep = host().udp_open_ex(with_port(local, port), bfd::kTtl,
                                      [](const patronus_addr&, const patronus_datagram_info&,
                                         const std::uint8_t*, std::size_t) {});
      } catch (const Error& e) {
        if (e.code() != PATRONUS_ERR_UNAVAILABLE) {
          close_receiver(local);
          throw;
        }
      }
    }
    if (s->tx_ep == 0) {
      close_receiver(local);
      throw Error("no free source port in 49152-65535 on " + format_ip(local),
                  PATRONUS_ERR_RESOURCE_EXHAUSTED);
    }
    Session* raw = s.get();
    sessions_[raw->my_disc] = std::move(s);
    event_session(*raw);
    return *raw;
  }

  void remove_session(std::uint32_t disc) {
    auto it = sessions_.find(disc);
    if (it == sessions_.end()) return;
    Session& s = *it->second;
    if (started_) {
      s.state = State::kAdminDown;
      s.diag = Diag::kAdminDown;
      send(s, false);
    }
    cancel_timers(s);
    host().udp_close(s.tx_ep);
    const patronus_addr local = s.local;
    sessions_.erase(it);
    close_receiver(local);
  }

  void open_receiver(const patronus_addr& local) {
    for (auto& r : receivers_) {
      if (same_ip(r.local, local)) {
        ++r.sessions;
        return;
      }
    }
    Receiver r;
    r.local = with_port(local, 0);
    r.ep = host().udp_open_ex(
        with_port(local, bfd::kControlPort), bfd::kTtl,
        [this](const patronus_addr& from, const patronus_datagram_info& info,
               const std::uint8_t* data, std::size_t size) { on_packet(from, info, data, size); });
    r.sessions = 1;
    receivers_.push_back(r);
  }

  void close_receiver(const patronus_addr& local) {
    for (auto it = receivers_.begin(); it != receivers_.end(); ++it) {
      if (!same_ip(it->local, local)) continue;
      if (--it->sessions == 0) {
        host().udp_close(it->ep);
        receivers_.erase(it);
      }
      return;
    }
  }

  void cancel_timers(Session& s) {
    if (s.tx_timer) host().cancel(s.tx_timer);
    if (s.detect_timer) host().cancel(s.detect_timer);
    s.tx_timer = s.detect_timer = 0;
  }

  // ---- transmission (6.8.7) ------------------------------------------------------------------

  // The periodic interval: max(DesiredMinTx in force, RemoteMinRx), jittered to 75-100 % (75-90 %
  // with a detect multiplier of 1). Zero when the remote asked for no packets (RemoteMinRx 0).
  std::int64_t tx_interval_ns(const Session& s) {
    const std::uint64_t base = std::max(s.cur_desired_tx_us, s.remote_min_rx_us);
    if (s.remote_min_rx_us == 0) return 0;
    const std::uint64_t top = s.configured.mult == 1 ? 90 : 100;
    const std::uint64_t pct = 75 + host().random_u64() % (top - 75 + 1);
    return static_cast<std::int64_t>(base * pct * 10);  // us * pct / 100 * 1000
  }

  void arm_tx(Session& s, std::int64_t delay_ns) {
    if (!started_) return;
    if (s.tx_timer) host().cancel(s.tx_timer);
    const std::uint32_t disc = s.my_disc;
    s.tx_timer = host().schedule(delay_ns, [this, disc] {
      auto it = sessions_.find(disc);
      if (it == sessions_.end()) return;
      Session& x = *it->second;
      x.tx_timer = 0;
      send(x, false);
      const std::int64_t next = tx_interval_ns(x);
      if (next > 0) arm_tx(x, next);
    });
    if (s.tx_timer == 0) ++timers_refused_;
  }

  void send(Session& s, bool final) {
    bfd::Packet p;
    p.diag = s.diag;
    p.state = s.state;
    p.poll = s.polling && !final;
    p.final = final;
    p.detect_mult = s.configured.mult;
    p.my_disc = s.my_disc;
    p.your_disc = s.remote_disc;
    p.desired_min_tx_us = s.adv_desired_tx_us;
    p.required_min_rx_us = s.adv_required_rx_us;
    p.required_min_echo_rx_us = 0;  // no echo function
    if (s.auth.type != 0) {
      p.auth_present = true;
      p.auth.type = s.auth.type;
      p.auth.key_id = s.auth.key_id;
      // Meticulous: a new sequence number on every packet; keyed: on every packet too (allowed).
      p.auth.sequence = ++s.xmit_seq;
    }
    std::uint8_t buf[bfd::kMaxPacket];
    const std::size_t n = bfd::encode(p, buf);
    if (p.auth_present) bfd::sign(buf, n, s.auth.key);
    ++counters_.tx;
    if (host().udp_send(s.tx_ep, s.remote, buf, n) != PATRONUS_OK) ++counters_.tx_errors;
  }

  // ---- reception (6.8.6) ---------------------------------------------------------------------

  void on_packet(const patronus_addr& from, const patronus_datagram_info& info,
                 const std::uint8_t* data, std::size_t size) {
    ++counters_.rx;
    // RFC 5881 5: single hop, so only TTL 255 (a packet from further away, or spoofed, has less).
    if (!(info.flags & PATRONUS_DGRAM_TTL) || info.ttl != bfd::kTtl) {
      ++counters_.ttl;
      return;
    }
    bfd::Packet p;
    std::size_t length = 0;
    const bfd::Discard why = bfd::decode(data, size, &p, &length);
    if (why != bfd::Discard::kNone) {
      ++counters_.decode[static_cast<int>(why)];
      return;
    }
    Session* s = nullptr;
    if (p.your_disc != 0) {
      auto it = sessions_.find(p.your_disc);
      if (it == sessions_.end()) {
        ++counters_.unknown_discriminator;
        return;
      }
      s = it->second.get();
    } else {
      if (p.state != State::kDown && p.state != State::kAdminDown) {
        ++counters_.your_disc_zero_not_down;
        return;
      }
      const patronus_addr local =
          (info.flags & PATRONUS_DGRAM_LOCAL) ? info.local : patronus_addr{};
      for (auto& [d, x] : sessions_) {
        if (same_ip(x->remote, from) &&
            (!(info.flags & PATRONUS_DGRAM_LOCAL) || same_ip(x->local, local))) {
          s = x.get();
          break;
        }
      }
      if (s == nullptr) {
        ++counters_.no_session;
        return;
      }
    }
    if (!same_ip(s->remote, from)) {
      ++counters_.wrong_source;
      return;
    }
    if (!authenticate(*s, p, data, length)) return;
    receive(*s, p);
  }

  bool authenticate(Session& s, const bfd::Packet& p, const std::uint8_t* data,
                    std::size_t length) {
    if (!p.auth_present) {
      if (s.auth.type != 0) {
        ++counters_.auth_missing;
        return false;
      }
      return true;
    }
    if (s.auth.type == 0) {
      ++counters_.auth_unexpected;
      return false;
    }
    if (p.auth.type != s.auth.type) {
      ++counters_.auth_type;
      return false;
    }
    if (p.auth.key_id != s.auth.key_id) {
      ++counters_.auth_key_id;
      return false;
    }
    const std::int64_t now = host().now_ns();
    // 6.8.1: AuthSeqKnown lapses after twice the detection time without authenticated packets.
    if (s.seq_known && s.detect_ns > 0 && now - s.last_auth_rx_ns > 2 * s.detect_ns) {
      s.seq_known = false;
    }
    const bool meticulous = s.auth.type == bfd::kAuthMeticulousKeyedSha1;
    if (s.seq_known && !bfd::sequence_ok(p.auth.sequence, s.rcv_seq, p.detect_mult, meticulous)) {
      ++counters_.auth_sequence;
      return false;
    }
    if (!bfd::verify(data, length, s.auth.key)) {
      ++counters_.auth_digest;
      return false;
    }
    s.rcv_seq = p.auth.sequence;
    s.seq_known = true;
    s.last_auth_rx_ns = now;
    return true;
  }

  void receive(Session& s, const bfd::Packet& p) {
    const std::uint32_t old_tx_base = std::max(s.cur_desired_tx_us, s.remote_min_rx_us);
    s.remote_disc = p.my_disc;
    s.remote_min_rx_us = p.required_min_rx_us;
    s.remote_desired_tx_us = p.desired_min_tx_us;
    s.remote_mult = p.detect_mult;
    s.last_rx_ns = host().now_ns();
    if (p.final && s.polling) {
      ++counters_.finals_received;
      s.polling = false;
      s.cur_desired_tx_us = s.adv_desired_tx_us;
      s.cur_required_rx_us = s.adv_required_rx_us;
    }
    // Detection time (6.8.4): the remote's multiplier times the slower of what we can receive
    // and what it wants to send.
    const std::int64_t old_detect = s.detect_ns;
    s.detect_ns = std::int64_t{s.remote_mult} *
                  std::max<std::int64_t>(s.cur_required_rx_us, s.remote_desired_tx_us) * 1000;
    if (s.state == State::kAdminDown) {
      ++counters_.admin_down_local;
      return;
    }
    const State before = s.state;
    if (p.state == State::kAdminDown) {
      if (s.state != State::kDown) set_state(s, State::kDown, Diag::kNeighborDown);
    } else if (s.state == State::kDown) {
      if (p.state == State::kDown) {
        set_state(s, State::kInit, Diag::kNone);
      } else if (p.state == State::kInit) {
        set_state(s, State::kUp, Diag::kNone);
      }
    } else if (s.state == State::kInit) {
      if (p.state == State::kInit || p.state == State::kUp) set_state(s, State::kUp, Diag::kNone);
    } else if (p.state == State::kDown) {  // Up
      set_state(s, State::kDown, Diag::kNeighborDown);
    }
    arm_detect(s);
    if (p.poll) {
      ++counters_.polls_received;
      send(s, true);  // the Final, at once and outside the periodic schedule
    }
    // A detection time changed while Up (the far end polled new intervals, or ours settled) is
    // an event of its own; a changed RemoteMinRx shapes the next periodic interval.
    if (s.state == before && old_detect != s.detect_ns && s.state == State::kUp) {
      event_session(s);
    }
    // The transmit interval shrank (the far end lowered its RequiredMinRx, as FRR does when it
    // comes Up, or our poll ended): the next packet must not wait out the old, longer interval,
    // or the far end's new detection time expires first.
    const bool faster = std::max(s.cur_desired_tx_us, s.remote_min_rx_us) < old_tx_base;
    if (s.remote_min_rx_us != 0 && (s.tx_timer == 0 || (faster && s.state == before))) {
      arm_tx(s, tx_interval_ns(s));
    }
  }

  void arm_detect(Session& s) {
    if (s.detect_timer) host().cancel(s.detect_timer);
    s.detect_timer = 0;
    if (s.detect_ns <= 0) return;
    const std::uint32_t disc = s.my_disc;
    s.detect_timer = host().schedule(s.detect_ns, [this, disc] {
      auto it = sessions_.find(disc);
      if (it == sessions_.end()) return;
      Session& x = *it->second;
      x.detect_timer = 0;
      // 6.8.1: the remote discriminator is forgotten; Init or Up go Down (diag 1).
      x.remote_disc = 0;
      if (x.state == State::kInit || x.state == State::kUp) {
        set_state(x, State::kDown, Diag::kDetectExpired);
      }
    });
    if (s.detect_timer == 0) ++timers_refused_;
  }

  void set_state(Session& s, State next, Diag diag) {
    const State prev = s.state;
    s.state = next;
    if (next == State::kDown || diag != Diag::kNone) s.diag = diag;
    if (next == State::kUp) s.diag = Diag::kNone;
    ++counters_.state_changes;
    if (next == State::kUp) {
      // From the slow start rate to the configured one: a poll sequence (6.8.3) when the wanted
      // values differ from those in force.
      // The far end computes its detection time from what we advertise, so a faster rate applies
      // at once and a slower one only after the Final; for what we receive, the other way round.
      s.adv_desired_tx_us = s.configured.desired_tx_us;
      s.adv_required_rx_us = s.configured.required_rx_us;
      if (s.adv_desired_tx_us != s.cur_desired_tx_us ||
          s.adv_required_rx_us != s.cur_required_rx_us) {
        s.polling = true;
        s.cur_desired_tx_us = std::min(s.cur_desired_tx_us, s.adv_desired_tx_us);
        s.cur_required_rx_us = std::max(s.cur_required_rx_us, s.adv_required_rx_us);
      }
    } else if (prev == State::kUp) {
      // Not Up: at least 1 s again, at once (no poll outside Up).
      s.polling = false;
      s.adv_desired_tx_us = s.cur_desired_tx_us = std::max(kSlowTxUs, s.configured.desired_tx_us);
      s.adv_required_rx_us = s.cur_required_rx_us = s.configured.required_rx_us;
    }
    event_session(s);
    if (next == State::kUp || prev == State::kUp) {
      for (auto path : s.paths) report(s, path);
    }
    // Tell the far end now rather than at the next interval.
    arm_tx(s, 0);
  }

  void report(const Session& s, std::uint64_t path_id) {
    patronus_path_liveness l{};
    l.struct_size = sizeof l;
    l.state = s.state == State::kUp ? PATRONUS_PATH_UP : PATRONUS_PATH_DOWN;
    l.path_id = path_id;
    l.detect_time_ns = s.detect_ns;
    l.last_rx_ns = s.last_rx_ns;
    l.diagnostic = static_cast<std::uint32_t>(s.diag);
    host().report_liveness(l);
  }

  void event_session(const Session& s) {
    char buf[512];
    std::snprintf(buf, sizeof buf,
                  "{\"local\":\"%s\",\"peer\":\"%s\",\"state\":\"%s\",\"diagnostic\":\"%s\","
                  "\"local_discriminator\":%u,\"remote_discriminator\":%u,"
                  "\"detect_time_ms\":%.3f,\"remote_desired_min_tx_ms\":%.3f,"
                  "\"remote_required_min_rx_ms\":%.3f,\"remote_detect_multiplier\":%u,"
                  "\"paths\":%zu}",
                  format_ip(s.local).c_str(), format_ip(s.remote).c_str(), bfd::to_string(s.state),
                  bfd::to_string(s.diag), s.my_disc, s.remote_disc, s.detect_ns / 1e6,
                  s.remote_desired_tx_us / 1e3, s.remote_min_rx_us / 1e3,
                  static_cast<unsigned>(s.remote_mult), s.paths.size());
    host().event("bfd.session", buf);
  }

  void schedule_stats() {
    stats_timer_ = host().schedule(std::int64_t{stats_ms_} * 1000000, [this] {
      stats_timer_ = 0;
      publish_counters();
      schedule_stats();
    });
  }

  void publish_counters() {
    std::string j = "{\"rx\":" + std::to_string(counters_.rx) +
                    ",\"tx\":" + std::to_string(counters_.tx) +
                    ",\"tx_errors\":" + std::to_string(counters_.tx_errors) +
                    ",\"sessions\":" + std::to_string(sessions_.size()) +
                    ",\"timers_refused\":" + std::to_string(timers_refused_) + ",\"discarded\":{" +
                    "\"ttl\":" + std::to_string(counters_.ttl);
    for (std::size_t i = 1; i < bfd::kDiscardReasons; ++i) {
      j += ",\"" + std::string(bfd::to_string(static_cast<bfd::Discard>(i))) +
           "\":" + std::to_string(counters_.decode[i]);
    }
    const std::pair<const char*, std::uint64_t> more[] = {
        {"unknown_discriminator", counters_.unknown_discriminator},
        {"your_disc_zero_not_down", counters_.your_disc_zero_not_down},
        {"no_session", counters_.no_session},
        {"wrong_source", counters_.wrong_source},
        {"auth_missing", counters_.auth_missing},
        {"auth_unexpected", counters_.auth_unexpected},
        {"auth_type", counters_.auth_type},
        {"auth_key_id", counters_.auth_key_id},
        {"auth_sequence", counters_.auth_sequence},
        {"auth_digest", counters_.auth_digest},
        {"admin_down_local", counters_.admin_down_local}};
    for (const auto& [k, v] : more) j += ",\"" + std::string(k) + "\":" + std::to_string(v);
    j += "},\"polls_received\":" + std::to_string(counters_.polls_received) +
         ",\"finals_received\":" + std::to_string(counters_.finals_received) +
         ",\"state_changes\":" + std::to_string(counters_.state_changes) + "}";
    host().event("bfd.counters", j);
  }

  Timers defaults_;
  AuthConfig default_auth_;
  std::vector<PeerConfig> peers_;
  std::uint32_t max_sessions_ = 1024;
  std::uint32_t stats_ms_ = 10000;
  bool started_ = false;
  std::map<std::uint32_t, std::unique_ptr<Session>> sessions_;  // by our discriminator
  std::map<std::uint64_t, std::uint32_t> path_session_;         // path id -> discriminator
  std::vector<Receiver> receivers_;
  Counters counters_;
  std::uint64_t timers_refused_ = 0;
  patronus_timer_id stats_timer_ = 0;
};

}  // namespace

PATRONUS_SDK_PLUGIN(Bfd, "bfd", "1.0.0", "patronus.bfd.v1.Config", patronus_embedded_schema,
                    patronus_embedded_schema_size)
