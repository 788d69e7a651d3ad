// probes: the production probe plugin. Authenticated, timestamped UDP probes on every watched path,
// a reflector for the probes of the far end, BFD-like liveness (detect multiplier x interval, fast
// on paths that carry flows, slow on idle ones) and per-path statistics: RTT, RFC 3550 jitter,
// loss over a sliding window (count and time), reordering, duplicates. Forged, replayed, stale and
// malformed datagrams are dropped and counted, never scored. Everything goes through the host
// table, so the same .so runs on real sockets, in virtual time and inside ns-3.
#include <algorithm>
#include <array>
#include <cmath>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "patronus/probes/v1/probes.pb.h"
#include "patronus/sdk/addr.hpp"
#include "patronus/sdk/plugin.hpp"
#include "probe_packet.hpp"

namespace {

using patronus::sdk::Error;
namespace pk = patronus::probes;

constexpr std::size_t kRing = 256;        // in-flight slots per path (bounds loss_timeout/interval)
constexpr std::size_t kNonceHistory = 4;  // replay windows kept per session (sender restarts)
// An epoch older than the newest seen is refused unless the newest has been silent this long.
constexpr std::int64_t kOldEpochQuietNs = 10'000'000'000;

struct Counters {
  std::uint64_t sent = 0, send_errors = 0, replies = 0, lost = 0, reflected = 0;
  std::uint64_t unready_sends = 0;  // send errors before the path's first reply: not samples
  std::uint64_t malformed = 0, unknown_session = 0, bad_tag = 0, replayed = 0, stale = 0;
  std::uint64_t wrong_source = 0, old_epoch = 0, residence_capped = 0;
  std::uint64_t rekeys = 0, previous_key = 0;
  std::uint64_t duplicates = 0, late = 0, reordered = 0, timers_refused = 0;
};

class Probes final : public patronus::sdk::ProbePlugin {
 public:
  using ProbePlugin::ProbePlugin;

  void configure(const std::uint8_t* data, std::size_t size) override {
    patronus::probes::v1::Config c;
    if (!c.ParseFromArray(data, static_cast<int>(size))) throw Error("config: not a valid message");
    port_ = c.has_port() ? c.port() : 7410;
    if (port_ == 0 || port_ > 65535) throw Error("port: must be 1..65535");
    const std::uint32_t active = c.has_interval_ms() ? c.interval_ms() : 50;
    const std::uint32_t idle = c.has_idle_interval_ms() ? c.idle_interval_ms() : 1000;
    if (active < 1 || active > 60000) throw Error("interval_ms: must be 1..60000");
    if (idle < active || idle > 600000) {
      throw Error("idle_interval_ms: must be >= interval_ms and <= 600000");
    }
    multiplier_ = c.has_detect_multiplier() ? c.detect_multiplier() : 5;
    if (multiplier_ < 1 || multiplier_ > 255) throw Error("detect_multiplier: must be 1..255");
    const std::uint32_t timeout = c.has_loss_timeout_ms() ? c.loss_timeout_ms() : 1000;
    if (timeout < 1 || timeout > 60000) throw Error("loss_timeout_ms: must be 1..60000");
    if (timeout / active + 2 > kRing) {
      throw Error("loss_timeout_ms / interval_ms must be below " + std::to_string(kRing - 2) +
                  " (probes in flight per path)");
    }
    stats_ms_ = c.has_stats_interval_ms() ? c.stats_interval_ms() : 10000;
    if (stats_ms_ > 3600000) throw Error("stats_interval_ms: must be 0..3600000");
    reply_to_source_ = c.has_reply_to_source() && c.reply_to_source();
    payload_ = c.has_payload_size() ? c.payload_size() : 64;
    if (payload_ < pk::kHeaderSize || payload_ > pk::kMaxPacket) {
      throw Error("payload_size: must be 64..1400");
    }
    max_paths_ = c.has_max_paths() ? c.max_paths() : 4096;
    if (max_paths_ < 1 || max_paths_ > 65536) throw Error("max_paths: must be 1..65536");
    window_ = c.has_loss_window() ? c.loss_window() : 100;
    if (window_ < 1 || window_ > 100000) throw Error("loss_window: must be 1..100000");
    const std::uint32_t window_ms = c.has_loss_window_ms() ? c.loss_window_ms() : 10000;
    if (window_ms < 1 || window_ms > 3600000) throw Error("loss_window_ms: must be 1..3600000");
    active_ns_ = std::int64_t{active} * 1000000;
    idle_ns_ = std::int64_t{idle} * 1000000;
    timeout_ns_ = std::int64_t{timeout} * 1000000;
    window_ns_ = std::int64_t{window_ms} * 1000000;
    const std::uint32_t grace = c.has_key_grace_ms() ? c.key_grace_ms() : 30000;
    if (grace > 3600000) throw Error("key_grace_ms: must be 0..3600000");
    grace_ns_ = std::int64_t{grace} * 1000000;
    if (sodium_init() < 0) throw Error("libsodium failed to initialise", PATRONUS_ERR_INTERNAL);
  }

  void start() override {
    started_ = true;
    for (auto& [id, p] : paths_) arm(*p);
    publish_metrics();  // the drop counters exist from the start, at zero
    if (stats_ms_ > 0) schedule_stats();
  }

  void stop() override {
    for (auto& [id, p] : paths_) publish_stats(*p);
    publish_counters();
    started_ = false;
  }

  void watch_path(const patronus_path_desc& d) override {
    if (auto known = paths_.find(d.path_id); known != paths_.end()) {
      rekey(*known->second, d);
      return;
    }
    if (paths_.size() >= max_paths_) {
      throw Error("max_paths (" + std::to_string(max_paths_) + ") reached",
                  PATRONUS_ERR_RESOURCE_EXHAUSTED);
    }
    if (d.key_len != 32) {
      throw Error("path " + std::to_string(d.path_id) +
                      ": no probe key (this probe authenticates every packet; the host derives "
                      "the key from the endpoints' WireGuard keys)",
                  PATRONUS_ERR_FAILED_PRECONDITION);
    }
    if (d.local.family != PATRONUS_AF_INET4 && d.local.family != PATRONUS_AF_INET6) {
      throw Error("path " + std::to_string(d.path_id) + ": local address has no family");
    }
    if (d.remote.family != d.local.family) {
      throw Error("path " + std::to_string(d.path_id) +
                  ": local and remote addresses are of different families");
    }
    if (d.rate != PATRONUS_PROBE_RATE_ACTIVE && d.rate != PATRONUS_PROBE_RATE_IDLE) {
      throw Error("path " + std::to_string(d.path_id) + ": rate must be active (0) or idle (1)");
    }
    if (auto it = sessions_.find(d.session_id); it != sessions_.end()) {
      throw Error("path " + std::to_string(d.path_id) + ": session id " +
                  std::to_string(d.session_id) + " is used by path " +
                  std::to_string(it->second->id));
    }
    auto p = std::make_unique<Path>();
    p->id = d.path_id;
    p->session = d.session_id;
    std::memcpy(p->key.data(), d.key, 32);
    p->remote = d.remote;
    p->remote.port = static_cast<std::uint16_t>(port_);
    patronus_addr local = d.local;
    local.port = static_cast<std::uint16_t>(port_);
    p->endpoint = endpoint_for(local);
    p->interval_ns = d.rate == PATRONUS_PROBE_RATE_ACTIVE ? active_ns_ : idle_ns_;
    p->nonce = next_epoch();
    Path* raw = p.get();
    sessions_[p->session] = raw;
    paths_[p->id] = std::move(p);
    if (started_) arm(*raw);
  }

  void unwatch_path(std::uint64_t path_id) override {
    auto it = paths_.find(path_id);
    if (it == paths_.end()) {
      throw Error("path " + std::to_string(path_id) + " is not watched", PATRONUS_ERR_NOT_FOUND);
    }
    Path& p = *it->second;
    if (p.tx_timer) host().cancel(p.tx_timer);
    if (p.detect_timer) host().cancel(p.detect_timer);
    sessions_.erase(p.session);
    paths_.erase(it);
  }

  void set_path_rate(std::uint64_t path_id, std::uint32_t rate) override {
    auto it = paths_.find(path_id);
    if (it == paths_.end()) {
      throw Error("path " + std::to_string(path_id) + " is not watched", PATRONUS_ERR_NOT_FOUND);
    }
    if (rate != PATRONUS_PROBE_RATE_ACTIVE && rate != PATRONUS_PROBE_RATE_IDLE) {
      throw Error("rate must be active (0) or idle (1)");
    }
    Path& p = *it->second;
    const std::int64_t interval = rate == PATRONUS_PROBE_RATE_ACTIVE ? active_ns_ : idle_ns_;
    if (interval == p.interval_ns) return;
    p.interval_ns = interval;
    // The new detection time counts from now: a path going from idle to active must not be
    // declared down because its last reply is older than the new, shorter detection time.
    p.detect_from_ns = host().now_ns();
    if (!started_) return;
    if (p.tx_timer) host().cancel(p.tx_timer);
    p.tx_timer = 0;
    schedule_tx(p, interval == active_ns_ ? 0 : interval);
    arm_detect(p);
  }

 private:
  struct Slot {
    std::uint64_t seq = 0;
    std::int64_t sent_ns = 0;
    enum : std::uint8_t { kEmpty, kInFlight, kAnswered, kLost } state = kEmpty;
  };
  struct Outcome {
    std::int64_t sent_ns;
    bool lost;
  };
  struct NonceWindow {
    std::uint64_t nonce = 0;
    pk::ReplayWindow window;
    std::uint64_t last_used = 0;
  };
  struct Path {
    std::uint64_t id = 0;
    std::uint32_t session = 0;
    pk::PathKey key{};
    patronus_addr remote{};
    patronus_endpoint_id endpoint = 0;
    std::int64_t interval_ns = 0;
    // sender side
    std::uint64_t nonce = 0, next_seq = 0, highest_answered = 0;
    std::uint64_t expire_from = 1;  // oldest sequence that may still be in flight
    std::array<Slot, kRing> ring{};
    patronus_timer_id tx_timer = 0, detect_timer = 0;
    std::int64_t last_rx_ns = 0, detect_from_ns = 0;
    bool up = false, reported = false;
    double jitter_ns = 0;  // RFC 3550 6.4.1 estimator over round-trip times
    std::int64_t last_rtt_ns = -1;
    std::deque<Outcome> outcomes;  // the loss window, bounded by loss_window and loss_window_ms
    std::uint64_t window_lost = 0;
    std::uint64_t sent = 0, replies = 0, lost = 0, reordered = 0, duplicates = 0, late = 0;
    // reflector side: replay windows per sender nonce (a restarted sender has a new nonce)
    std::array<NonceWindow, kNonceHistory> replay{};
    std::uint64_t replay_clock = 0;
    std::uint64_t newest_epoch = 0;  // the newest sender epoch answered, and when
    std::int64_t newest_epoch_seen_ns = 0;
    // key rotation: the previous key, sent until and accepted until (monotonic ns)
    std::optional<pk::PathKey> prev_key;
    std::int64_t prev_send_until = 0, prev_accept_until = 0;
  };

  // A watched path given again with a new key (a key rotation): the key is replaced; the previous
  // one still tags what this end sends for the grace period (the far end may not have switched
  // yet) and is accepted for twice as long. Anything else about the path must be unchanged.
  void rekey(Path& p, const patronus_path_desc& d) {
    patronus_addr remote = d.remote;
    remote.port = static_cast<std::uint16_t>(port_);
    if (d.session_id != p.session || !patronus::sdk::same_addr(remote, p.remote) ||
        d.key_len != 32) {
      throw Error("path " + std::to_string(d.path_id) +
                  " is watched already (only its key may change)");
    }
    pk::PathKey key{};
    std::memcpy(key.data(), d.key, 32);
    if (key == p.key) return;
    p.prev_key = p.key;
    p.key = key;
    const std::int64_t now = host().now_ns();
    p.prev_send_until = now + grace_ns_;
    p.prev_accept_until = now + 2 * grace_ns_;
    ++counters_.rekeys;
    host().event("probe.rekeyed", "{\"path\":" + std::to_string(p.id) +
                                      ",\"grace_ms\":" + std::to_string(grace_ns_ / 1000000) + "}");
  }

  // A sender epoch (the nonce of a path's requests): the wall clock's milliseconds since
  // 2026-01-01 (40 bits: until 2060) with 24 random bits below, above every epoch this instance
  // gave before. A restarted sender's epoch is above its last one, so a reflector can refuse an
  // epoch older than the newest it has seen: requests captured from an earlier epoch cannot be
  // replayed once their window is gone.
  std::uint64_t next_epoch() {
    constexpr std::int64_t k2026Ms = 1767225600000;
    const std::int64_t ms = host().wall_ns() / 1000000 - k2026Ms;
    const auto since = static_cast<std::uint64_t>(std::max<std::int64_t>(0, ms));
    const std::uint64_t candidate =
        ((since & ((1ULL << 40) - 1)) << 24) | (host().random_u64() & ((1ULL << 24) - 1));
    last_epoch_ = std::max(candidate, last_epoch_ + 1);
    return last_epoch_;
  }

  const pk::PathKey& send_key(const Path& p) {
    return p.prev_key && host().now_ns() < p.prev_send_until ? *p.prev_key : p.key;
  }

  patronus_endpoint_id endpoint_for(const patronus_addr& local) {
    for (const auto& [addr, id] : endpoints_) {
      if (patronus::sdk::same_addr(addr, local)) return id;
    }
    const auto id = host().udp_open(local, [this](const patronus_addr& from, const std::uint8_t* d,
                                                  std::size_t n) { on_datagram(from, d, n); });
    endpoints_.emplace_back(local, id);
    return id;
  }

  void arm(Path& p) {
    p.detect_from_ns = host().now_ns();
    schedule_tx(p, 0);
    arm_detect(p);
  }

  // A refused timer is counted and reported: the path would otherwise stop being probed silently.
  patronus_timer_id must_schedule(std::int64_t delay, std::function<void()> fn, const Path& p) {
    const auto id = host().schedule(delay, std::move(fn));
    if (id == 0) {
      ++counters_.timers_refused;
      host().event("probe.timer_refused", "{\"path\":" + std::to_string(p.id) + ",\"count\":" +
                                              std::to_string(counters_.timers_refused) + "}");
    }
    return id;
  }

  // One transmit timer a path: a rate change made while the timer's own tick reports a loss
  // (the host answers the report with set_path_rate) has already scheduled one.
  void schedule_tx(Path& p, std::int64_t delay) {
    if (p.tx_timer) host().cancel(p.tx_timer);
    const std::uint64_t id = p.id;
    p.tx_timer = must_schedule(
        delay,
        [this, id] {
          auto it = paths_.find(id);
          if (it == paths_.end()) return;
          it->second->tx_timer = 0;
          tick(*it->second);
        },
        p);
  }

  void arm_detect(Path& p) {
    if (p.detect_timer) host().cancel(p.detect_timer);
    const std::int64_t detect = detect_ns(p);
    const std::int64_t base = std::max(p.last_rx_ns, p.detect_from_ns);
    const std::int64_t delay = std::max<std::int64_t>(0, base + detect - host().now_ns());
    const std::uint64_t id = p.id;
    p.detect_timer = must_schedule(
        delay,
        [this, id] {
          auto it = paths_.find(id);
          if (it == paths_.end()) return;
          Path& q = *it->second;
          q.detect_timer = 0;
          on_detect(q);
        },
        p);
  }

  std::int64_t detect_ns(const Path& p) const { return p.interval_ns * multiplier_; }

  void on_detect(Path& p) {
    const std::int64_t base = std::max(p.last_rx_ns, p.detect_from_ns);
    if (host().now_ns() - base >= detect_ns(p)) {
      if (p.up || !p.reported) set_state(p, false, PATRONUS_DIAG_DETECT_EXPIRED);
      // Keep watching: the next detection period starts now, the path keeps being probed.
      p.detect_from_ns = host().now_ns();
    }
    arm_detect(p);
  }

  void set_state(Path& p, bool up, std::uint32_t diag) {
    p.up = up;
    p.reported = true;
    patronus_path_liveness l{};
    l.struct_size = sizeof l;
    l.state = up ? PATRONUS_PATH_UP : PATRONUS_PATH_DOWN;
    l.path_id = p.id;
    l.detect_time_ns = detect_ns(p);
    l.last_rx_ns = p.last_rx_ns;
    l.diagnostic = diag;
    if (!host().report_liveness(l)) {
      host().event("probe.liveness", std::string("{\"path\":") + std::to_string(p.id) +
                                         ",\"state\":\"" + (up ? "up" : "down") + "\"}");
    }
  }

  void tick(Path& p) {
    const std::int64_t now = host().now_ns();
    expire(p, now);
    Slot& slot = p.ring[(p.next_seq + 1) % kRing];
    if (slot.state == Slot::kInFlight) resolve_lost(p, slot);  // bound: oldest becomes lost
    const std::uint64_t seq = ++p.next_seq;
    slot = Slot{seq, now, Slot::kInFlight};
    pk::Packet pkt;
    pkt.type = pk::Type::kRequest;
    pkt.session = p.session;
    pkt.nonce = p.nonce;
    pkt.sequence = seq;
    pkt.t1 = now;
    pk::encode(pkt, send_key(p), tx_.data());
    const bool sent = host().udp_send(p.endpoint, p.remote, tx_.data(), payload_) == PATRONUS_OK;
    if (!sent) ++counters_.send_errors;
    if (!sent && p.last_rx_ns == 0) {
      // Never answered yet: the path's socket or tunnel is not ready (an interface without its
      // address, a route not yet installed). That measures nothing of the path, so the probe is
      // not in flight and no loss is reported: a path's first verdicts must not come from its own
      // start-up. The path stays down until replies come, as any new path.
      slot.state = Slot::kEmpty;
      ++counters_.unready_sends;
    } else {
      // Once established, a send that fails is the path failing (its interface went away): the
      // probe stays in flight and is counted lost.
      ++p.sent;
      ++counters_.sent;
    }
    // BFD-style transmit jitter (RFC 5880 6.8.7): 90-100 % of the interval, so probes of many
    // paths do not synchronise.
    const std::int64_t jitter = static_cast<std::int64_t>(host().random_u64() % 101);
    schedule_tx(p, p.interval_ns - p.interval_ns / 10 * (100 - jitter) / 100);
  }

  // Probes older than the loss timeout are lost. Send times grow with the sequence, so the scan
  // starts at the oldest probe that may still be in flight and stops at the first one that is
  // not yet due: amortised O(1) a tick, not a pass over the ring.
  void expire(Path& p, std::int64_t now) {
    if (p.next_seq >= kRing) p.expire_from = std::max(p.expire_from, p.next_seq - kRing + 1);
    for (; p.expire_from <= p.next_seq; ++p.expire_from) {
      Slot& slot = p.ring[p.expire_from % kRing];
      if (slot.seq != p.expire_from || slot.state != Slot::kInFlight) continue;
      if (now - slot.sent_ns < timeout_ns_) break;
      resolve_lost(p, slot);
    }
  }

  void resolve_lost(Path& p, Slot& slot) {
    slot.state = Slot::kLost;
    ++p.lost;
    ++counters_.lost;
    record_outcome(p, slot.sent_ns, true);
    report(p, slot.seq, slot.sent_ns, 0, true, 0);
  }

  void record_outcome(Path& p, std::int64_t sent_ns, bool lost) {
    p.outcomes.push_back({sent_ns, lost});
    if (lost) ++p.window_lost;
    while (!p.outcomes.empty() &&
           (p.outcomes.size() > window_ || sent_ns - p.outcomes.front().sent_ns > window_ns_)) {
      if (p.outcomes.front().lost) --p.window_lost;
      p.outcomes.pop_front();
    }
  }

  void report(const Path& p, std::uint64_t seq, std::int64_t sent, std::int64_t rtt, bool lost,
              std::uint32_t flags) {
    patronus_path_sample s{};
    s.struct_size = sizeof s;
    s.lost = lost ? 1 : 0;
    s.path_id = p.id;
    s.sent_ns = sent;
    s.rtt_ns = rtt;
    s.sequence = seq;
    s.flags = flags;
    host().report_sample(s);
  }

  void on_datagram(const patronus_addr& from, const std::uint8_t* data, std::size_t size) {
    pk::Packet pkt;
    if (pk::parse(data, size, &pkt) != pk::Reject::kNone) {
      ++counters_.malformed;
      return;
    }
    auto it = sessions_.find(pkt.session);
    if (it == sessions_.end()) {
      ++counters_.unknown_session;
      return;
    }
    Path& p = *it->second;
    const pk::PathKey* key = &p.key;
    if (!pk::verify(data, p.key)) {
      // During a rotation the far end may still use the previous key.
      if (!p.prev_key || host().now_ns() >= p.prev_accept_until || !pk::verify(data, *p.prev_key)) {
        ++counters_.bad_tag;
        return;
      }
      key = &*p.prev_key;
      ++counters_.previous_key;
    }
    if (pkt.type == pk::Type::kRequest) {
      reflect(p, from, pkt, *key, size);
    } else {
      on_reply(p, pkt);
    }
  }

  // The reply is tagged with the key the request was verified with, goes to the path's remote
  // endpoint only (unless reply_to_source) and is never longer than the request: a reflector
  // cannot be aimed at a victim or amplify.
  void reflect(Path& p, const patronus_addr& from, const pk::Packet& req, const pk::PathKey& key,
               std::size_t size) {
    const std::int64_t rx = host().now_ns();
    if (!reply_to_source_ && !patronus::sdk::same_addr(from, p.remote)) {
      ++counters_.wrong_source;
      return;
    }
    // Our own requests never come back as requests: a request with our nonce is a reflection
    // attack or a loop.
    if (req.nonce == p.nonce) {
      ++counters_.replayed;
      return;
    }
    NonceWindow* w = nullptr;
    for (auto& nw : p.replay) {
      if (nw.last_used != 0 && nw.nonce == req.nonce) w = &nw;
    }
    if (w == nullptr && req.nonce < p.newest_epoch &&
        rx - p.newest_epoch_seen_ns < kOldEpochQuietNs) {
      // An epoch older than the newest, whose window is gone: a replay of captured requests.
      // (After a quiet spell an older epoch is taken again: a sender whose clock stepped back.)
      ++counters_.old_epoch;
      return;
    }
    if (w == nullptr) {
      // A new sender epoch (the far end restarted): replace the least recently used window.
      w = &*std::min_element(
          p.replay.begin(), p.replay.end(),
          [](const NonceWindow& a, const NonceWindow& b) { return a.last_used < b.last_used; });
      *w = NonceWindow{req.nonce, {}, 0};
    }
    switch (w->window.check(req.sequence)) {
      case pk::ReplayWindow::Verdict::kReplayed:
        ++counters_.replayed;
        return;
      case pk::ReplayWindow::Verdict::kStale:
        ++counters_.stale;
        return;
      case pk::ReplayWindow::Verdict::kNew:
        break;
    }
    w->window.accept(req.sequence);
    w->last_used = ++p.replay_clock;
    if (req.nonce >= p.newest_epoch) {
      p.newest_epoch = req.nonce;
      p.newest_epoch_seen_ns = rx;
    }
    pk::Packet reply = req;
    reply.type = pk::Type::kReply;
    reply.t2 = rx;
    reply.t3 = host().now_ns();
    pk::encode(reply, key, tx_.data());
    const patronus_addr& to = reply_to_source_ ? from : p.remote;
    const std::size_t reply_size = std::min<std::size_t>(payload_, size);
    if (host().udp_send(p.endpoint, to, tx_.data(), reply_size) == PATRONUS_OK) {
      ++counters_.reflected;
    } else {
      ++counters_.send_errors;
    }
  }

  void on_reply(Path& p, const pk::Packet& r) {
    const std::int64_t now = host().now_ns();
    if (r.nonce != p.nonce || r.sequence == 0 || r.sequence > p.next_seq) {
      ++counters_.stale;  // not an answer to anything this instance sent
      return;
    }
    if (p.next_seq - r.sequence >= kRing) {
      ++counters_.stale;
      return;
    }
    Slot& slot = p.ring[r.sequence % kRing];
    if (slot.seq != r.sequence || slot.sent_ns != r.t1) {
      ++counters_.stale;
      return;
    }
    if (slot.state == Slot::kAnswered) {
      ++p.duplicates;
      ++counters_.duplicates;
      return;
    }
    // Any authentic answer shows the path works, even a late one.
    p.last_rx_ns = now;
    if (slot.state == Slot::kLost) {
      ++p.late;
      ++counters_.late;
      slot.state = Slot::kAnswered;
      report(p, r.sequence, slot.sent_ns, now - slot.sent_ns, false, PATRONUS_SAMPLE_LATE);
      if (!p.up) set_state(p, true, PATRONUS_DIAG_NONE);
      return;
    }
    slot.state = Slot::kAnswered;
    // Round trip minus the time the probe spent inside the reflector (at most kMaxResidenceNs:
    // a reflector cannot talk its path's RTT down to nothing).
    bool capped = false;
    const std::int64_t rtt =
        patronus::probes::round_trip_ns(slot.sent_ns, now, r.t2, r.t3, &capped);
    if (capped) ++counters_.residence_capped;
    std::uint32_t flags = 0;
    if (r.sequence < p.highest_answered) {
      flags |= PATRONUS_SAMPLE_REORDERED;
      ++p.reordered;
      ++counters_.reordered;
    } else {
      p.highest_answered = r.sequence;
    }
    if (p.last_rtt_ns >= 0) {
      const double d = std::fabs(static_cast<double>(rtt - p.last_rtt_ns));
      p.jitter_ns += (d - p.jitter_ns) / 16.0;
    }
    p.last_rtt_ns = rtt;
    ++p.replies;
    ++counters_.replies;
    record_outcome(p, slot.sent_ns, false);
    report(p, r.sequence, slot.sent_ns, rtt, false, flags);
    if (!p.up) set_state(p, true, PATRONUS_DIAG_NONE);
  }

  void schedule_stats() {
    const auto id = host().schedule(std::int64_t{stats_ms_} * 1000000, [this] {
      for (auto& [pid, p] : paths_) publish_stats(*p);
      publish_counters();
      schedule_stats();
    });
    if (id == 0) {
      ++counters_.timers_refused;
      host().event("probe.timer_refused", "{\"what\":\"stats\"}");
    }
  }

  void publish_stats(const Path& p) {
    const double loss = p.outcomes.empty() ? 0.0
                                           : 100.0 * static_cast<double>(p.window_lost) /
                                                 static_cast<double>(p.outcomes.size());
    host().event(
        "probe.path_stats",
        "{\"path\":" + std::to_string(p.id) + ",\"up\":" + (p.up ? "true" : "false") +
            ",\"sent\":" + std::to_string(p.sent) + ",\"replies\":" + std::to_string(p.replies) +
            ",\"lost\":" + std::to_string(p.lost) + ",\"late\":" + std::to_string(p.late) +
            ",\"reordered\":" + std::to_string(p.reordered) +
            ",\"duplicates\":" + std::to_string(p.duplicates) + ",\"window_probes\":" +
            std::to_string(p.outcomes.size()) + ",\"window_loss_pct\":" + std::to_string(loss) +
            ",\"jitter_ms\":" + std::to_string(p.jitter_ns / 1e6) +
            ",\"last_rtt_ms\":" + std::to_string(p.last_rtt_ns < 0 ? 0.0 : p.last_rtt_ns / 1e6) +
            ",\"interval_ms\":" + std::to_string(p.interval_ns / 1000000) + "}");
  }

  // Through the host's metric service, on the host's /metrics as
  // patronus_plugin_probe_dropped_total{plugin_instance=...,reason=...}: what alerting needs
  // (forged or replayed probes are an attack or a misconfigured key).
  void publish_metrics() {
    const auto& c = counters_;
    const std::pair<const char*, std::uint64_t> dropped[] = {{"forged", c.bad_tag},
                                                             {"replayed", c.replayed},
                                                             {"stale", c.stale + c.old_epoch},
                                                             {"malformed", c.malformed},
                                                             {"unknown_session", c.unknown_session},
                                                             {"wrong_source", c.wrong_source}};
    for (const auto& [reason, n] : dropped) {
      host().metric(std::string("probe_dropped_total{reason=\"") + reason + "\"}",
                    static_cast<double>(n));
    }
  }

  void publish_counters() {
    publish_metrics();
    const auto& c = counters_;
    host().event(
        "probe.counters",
        "{\"sent\":" + std::to_string(c.sent) + ",\"replies\":" + std::to_string(c.replies) +
            ",\"lost\":" + std::to_string(c.lost) + ",\"reflected\":" +
            std::to_string(c.reflected) + ",\"send_errors\":" + std::to_string(c.send_errors) +
            ",\"unready_sends\":" + std::to_string(c.unready_sends) +
            ",\"malformed\":" + std::to_string(c.malformed) + ",\"unknown_session\":" +
            std::to_string(c.unknown_session) + ",\"bad_tag\":" + std::to_string(c.bad_tag) +
            ",\"replayed\":" + std::to_string(c.replayed) + ",\"stale\":" +
            std::to_string(c.stale) + ",\"duplicates\":" + std::to_string(c.duplicates) +
            ",\"late\":" + std::to_string(c.late) +
            ",\"reordered\":" + std::to_string(c.reordered) + ",\"timers_refused\":" +
            std::to_string(c.timers_refused) + ",\"rekeys\":" + std::to_string(c.rekeys) +
            ",\"previous_key\":" + std::to_string(c.previous_key) + ",\"wrong_source\":" +
            std::to_string(c.wrong_source) + ",\"old_epoch\":" + std::to_string(c.old_epoch) +
            ",\"residence_capped\":" + std::to_string(c.residence_capped) + "}");
  }

  std::uint32_t port_ = 7410, multiplier_ = 5, stats_ms_ = 10000, payload_ = 64;
  bool reply_to_source_ = false;
  std::uint64_t last_epoch_ = 0;  // the last sender epoch (nonce) this instance gave a path
  std::uint32_t max_paths_ = 4096, window_ = 100;
  std::int64_t active_ns_ = 0, idle_ns_ = 0, timeout_ns_ = 0, window_ns_ = 0, grace_ns_ = 0;
  bool started_ = false;
  std::map<std::uint64_t, std::unique_ptr<Path>> paths_;
  std::unordered_map<std::uint32_t, Path*> sessions_;
  std::vector<std::pair<patronus_addr, patronus_endpoint_id>> endpoints_;
  Counters counters_;
  // One transmit buffer: encode() writes the 64-byte header, the padding after it stays zero.
  std::array<std::uint8_t, pk::kMaxPacket> tx_{};
};

}  // namespace

PATRONUS_SDK_PLUGIN(Probes, "probes", "1.0.0", "patronus.probes.v1.Config",
                    patronus_embedded_schema, patronus_embedded_schema_size)
