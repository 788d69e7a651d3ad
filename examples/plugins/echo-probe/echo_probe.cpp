// acme-echo: a plain UDP echo probe. Every watched path gets one request per interval from the
// path's local address to the far end's; whoever receives a request sends it back. A reply gives
// a sample with its round trip; a request unanswered for timeout_ms is reported lost; silence for
// detect_multiplier intervals reports the path down (liveness), a reply brings it back up.
//
// Everything goes through the host: its clock, its timers, its UDP endpoints. That is what lets
// the same binary run on real sockets, in virtual time (`patronus plugins try`, the plugin test)
// and in the ns-3 simulator. No authentication: this is an example, not the production probe.
//
// Packet (16 bytes, big endian): "ECHO" | type (1 request, 2 reply) | 3 zero bytes | path session
// id (4) | sequence (4).
#include <cstring>
#include <map>
#include <memory>

#include "acme/echo/v1/config.pb.h"
#include "patronus/sdk/addr.hpp"
#include "patronus/sdk/plugin.hpp"

namespace {

using patronus::sdk::Error;

constexpr std::size_t kPacket = 16;
constexpr std::size_t kMaxOutstanding = 64;  // per path: older probes are reported lost first
constexpr std::size_t kMaxPaths = 1024;

void put32(std::uint8_t* p, std::uint32_t v) {
  p[0] = v >> 24, p[1] = v >> 16, p[2] = v >> 8, p[3] = v;
}
std::uint32_t get32(const std::uint8_t* p) {
  return std::uint32_t{p[0]} << 24 | std::uint32_t{p[1]} << 16 | std::uint32_t{p[2]} << 8 | p[3];
}

class EchoProbe final : public patronus::sdk::ProbePlugin {
 public:
  using ProbePlugin::ProbePlugin;

  void configure(const std::uint8_t* data, std::size_t size) override {
    acme::echo::v1::Config c;
    if (!c.ParseFromArray(data, static_cast<int>(size))) throw Error("config: not a valid message");
    port_ = c.has_port() ? c.port() : 7500;
    interval_ns_ = std::int64_t{c.has_interval_ms() ? c.interval_ms() : 100} * 1'000'000;
    timeout_ns_ = std::int64_t{c.has_timeout_ms() ? c.timeout_ms() : 500} * 1'000'000;
    multiplier_ = c.has_detect_multiplier() ? c.detect_multiplier() : 3;
    if (port_ == 0 || port_ > 65535) throw Error("port must be 1..65535");
    if (interval_ns_ < 10'000'000) throw Error("interval_ms must be >= 10");
    if (timeout_ns_ <= 0) throw Error("timeout_ms must be > 0");
    if (multiplier_ == 0 || multiplier_ > 255) throw Error("detect_multiplier must be 1..255");
  }

  void stop() override {
    for (auto& [id, p] : paths_) host().cancel(p->timer);
    for (auto& [key, ep] : endpoints_) host().udp_close(ep);
    paths_.clear();
    endpoints_.clear();
  }

  void watch_path(const patronus_path_desc& d) override {
    if (paths_.count(d.path_id)) throw Error("path " + std::to_string(d.path_id) + " is watched");
    if (paths_.size() >= kMaxPaths) throw Error("too many paths", PATRONUS_ERR_RESOURCE_EXHAUSTED);
    auto p = std::make_unique<Path>();
    p->id = d.path_id;
    p->session = d.session_id;
    p->remote = d.remote;
    p->remote.port = static_cast<std::uint16_t>(port_);
    p->endpoint = endpoint_for(d.local);
    Path& path = *p;
    paths_.emplace(d.path_id, std::move(p));
    send(path);
  }

  void unwatch_path(std::uint64_t id) override {
    auto it = paths_.find(id);
    if (it == paths_.end()) return;
    host().cancel(it->second->timer);
    paths_.erase(it);
  }

 private:
  struct Path {
    std::uint64_t id = 0;
    std::uint32_t session = 0;
    patronus_addr remote{};
    patronus_endpoint_id endpoint = 0;
    patronus_timer_id timer = 0;
    std::uint32_t next_seq = 1;
    std::map<std::uint32_t, std::int64_t> outstanding;  // sequence -> sent at
    std::int64_t last_reply_ns = 0;
    bool up = false;
  };

  // One endpoint per local address, shared by the paths that leave from it.
  patronus_endpoint_id endpoint_for(patronus_addr local) {
    local.port = static_cast<std::uint16_t>(port_);
    const std::string key = patronus::sdk::format_addr(local);
    auto it = endpoints_.find(key);
    if (it != endpoints_.end()) return it->second;
    patronus_endpoint_id ep = 0;
    ep = host().udp_open(local, [this, key](const patronus_addr& from, const std::uint8_t* data,
                                            std::size_t size) { receive(key, from, data, size); });
    endpoints_.emplace(key, ep);
    return ep;
  }

  void send(Path& p) {
    const std::int64_t now = host().now_ns();
    expire(p, now);
    std::uint8_t pkt[kPacket] = {'E', 'C', 'H', 'O', 1, 0, 0, 0};
    put32(pkt + 8, p.session);
    put32(pkt + 12, p.next_seq);
    if (p.outstanding.size() >= kMaxOutstanding) lose(p, p.outstanding.begin()->first);
    p.outstanding.emplace(p.next_seq++, now);
    host().udp_send(p.endpoint, p.remote, pkt, sizeof pkt);  // a failed send times out as lost
    // Silence for multiplier intervals: down.
    if (p.up && now - p.last_reply_ns > multiplier_ * interval_ns_) report(p, false);
    const std::uint64_t id = p.id;
    p.timer = host().schedule(interval_ns_, [this, id] {
      auto it = paths_.find(id);
      if (it != paths_.end()) send(*it->second);
    });
  }

  void expire(Path& p, std::int64_t now) {
    while (!p.outstanding.empty() && now - p.outstanding.begin()->second >= timeout_ns_) {
      lose(p, p.outstanding.begin()->first);
    }
  }

  void lose(Path& p, std::uint32_t seq) {
    patronus_path_sample s{};
    s.struct_size = sizeof s;
    s.lost = 1;
    s.path_id = p.id;
    s.sent_ns = p.outstanding[seq];
    s.sequence = seq;
    p.outstanding.erase(seq);
    host().report_sample(s);
  }

  void report(Path& p, bool up) {
    p.up = up;
    patronus_path_liveness l{};
    l.struct_size = sizeof l;
    l.state = up ? PATRONUS_PATH_UP : PATRONUS_PATH_DOWN;
    l.path_id = p.id;
    l.detect_time_ns = multiplier_ * interval_ns_;
    l.last_rx_ns = p.last_reply_ns;
    l.diagnostic = up ? PATRONUS_DIAG_NONE : PATRONUS_DIAG_DETECT_EXPIRED;
    host().report_liveness(l);  // false on a 1.0 host: it has no liveness service
  }

  void receive(const std::string& key, const patronus_addr& from, const std::uint8_t* d,
               std::size_t n) {
    if (n != kPacket || std::memcmp(d, "ECHO", 4) != 0 || d[5] || d[6] || d[7]) return;
    if (d[4] == 1) {  // a request: send it back from where it arrived
      std::uint8_t reply[kPacket];
      std::memcpy(reply, d, kPacket);
      reply[4] = 2;
      host().udp_send(endpoints_.at(key), from, reply, sizeof reply);
      return;
    }
    if (d[4] != 2) return;
    const std::uint32_t session = get32(d + 8), seq = get32(d + 12);
    for (auto& [id, p] : paths_) {
      if (p->session != session || !patronus::sdk::same_ip(p->remote, from)) continue;
      auto it = p->outstanding.find(seq);
      if (it == p->outstanding.end()) return;  // late (already lost) or never sent
      const std::int64_t now = host().now_ns();
      patronus_path_sample s{};
      s.struct_size = sizeof s;
      s.path_id = p->id;
      s.sent_ns = it->second;
      s.rtt_ns = now - it->second;
      s.sequence = seq;
      p->outstanding.erase(it);
      p->last_reply_ns = now;
      host().report_sample(s);
      if (!p->up) report(*p, true);
      return;
    }
  }

  std::uint32_t port_ = 7500, multiplier_ = 3;
  std::int64_t interval_ns_ = 100'000'000, timeout_ns_ = 500'000'000;
  std::map<std::uint64_t, std::unique_ptr<Path>> paths_;
  std::map<std::string, patronus_endpoint_id> endpoints_;
};

}  // namespace

PATRONUS_SDK_PLUGIN(EchoProbe, "acme-echo", "1.0.0", "acme.echo.v1.Config",
                    patronus_embedded_schema, patronus_embedded_schema_size)
