// pingpong: a UDP probe that measures round-trip time to one peer and answers the peer's pings.
// Everything goes through the host table (time, timers, datagrams), so the same .so runs on real
// sockets, in virtual time and inside ns-3.
#include <map>
#include <string>
#include <vector>

#include "patronus/pingpong/v1/pingpong.pb.h"
#include "patronus/sdk/addr.hpp"
#include "patronus/sdk/plugin.hpp"
#include "pingpong_packet.hpp"

namespace {

using patronus::sdk::Error;
namespace pp = patronus::pingpong;

constexpr std::size_t kMaxInFlight = 4096;

class PingPong final : public patronus::sdk::ProbePlugin {
 public:
  using ProbePlugin::ProbePlugin;

  void configure(const std::uint8_t* data, std::size_t size) override {
    patronus::pingpong::v1::Config c;
    if (!c.ParseFromArray(data, static_cast<int>(size))) throw Error("config: not a valid message");
    auto listen = patronus::sdk::parse_addr(c.listen());
    if (!listen) throw Error("listen: '" + c.listen() + "' is not ip:port");
    listen_ = *listen;
    if (!c.peer().empty()) {
      auto peer = patronus::sdk::parse_addr(c.peer());
      if (!peer || peer->port == 0) throw Error("peer: '" + c.peer() + "' is not ip:port");
      peer_ = *peer;
    }
    interval_ms_ = c.has_interval_ms() ? c.interval_ms() : 100;
    if (interval_ms_ < 1 || interval_ms_ > 60000) throw Error("interval_ms: must be 1..60000");
    payload_ = c.has_payload_size() ? c.payload_size() : 64;
    if (payload_ < pp::kHeaderSize || payload_ > 1400)
      throw Error("payload_size: must be 24..1400");
    timeout_ms_ = c.has_timeout_ms() ? c.timeout_ms() : 1000;
    if (timeout_ms_ < 1 || timeout_ms_ > 600000) throw Error("timeout_ms: must be 1..600000");
    count_ = c.count();
    path_id_ = c.path_id();
  }

  void start() override {
    patronus_addr bound{};
    endpoint_ = host().udp_open(
        listen_,
        [this](const patronus_addr& from, const std::uint8_t* d, std::size_t n) {
          on_datagram(from, d, n);
        },
        &bound);
    host().info("pingpong listening on " + patronus::sdk::format_addr(bound) +
                (peer_ ? ", pinging " + patronus::sdk::format_addr(*peer_) : ""));
    if (peer_) schedule_tick();
  }

  void stop() override {
    // The host cancels our timers and closes our endpoint after stop(); report what we saw.
    publish_summary("pingpong.stopped");
  }

 private:
  void schedule_tick() {
    host().schedule(static_cast<std::int64_t>(interval_ms_) * 1000000, [this] { tick(); });
  }

  void tick() {
    if (count_ != 0 && sent_ >= count_) return;
    if (in_flight_.size() >= kMaxInFlight) {
      host().warn("pingpong: in-flight bound reached, skipping a ping");
    } else {
      const std::uint64_t seq = ++next_seq_;
      const std::int64_t now = host().now_ns();
      std::vector<std::uint8_t> buf(payload_, 0);
      pp::encode({pp::Type::kPing, seq, now}, buf.data());
      if (host().udp_send(endpoint_, *peer_, buf.data(), buf.size()) == PATRONUS_OK) {
        ++sent_;
        const auto timer = host().schedule(static_cast<std::int64_t>(timeout_ms_) * 1000000,
                                           [this, seq] { on_timeout(seq); });
        in_flight_[seq] = {now, timer};
      } else {
        ++send_errors_;
        ++sent_;
        report(seq, now, 0, true);
      }
    }
    if (count_ == 0 || sent_ < count_) schedule_tick();
  }

  void on_timeout(std::uint64_t seq) {
    auto it = in_flight_.find(seq);
    if (it == in_flight_.end()) return;
    const std::int64_t sent = it->second.sent_ns;
    in_flight_.erase(it);
    ++lost_;
    report(seq, sent, 0, true);
    maybe_done();
  }

  void on_datagram(const patronus_addr& from, const std::uint8_t* data, std::size_t size) {
    const auto p = pp::decode(data, size);
    if (!p) {
      ++malformed_;
      host().metric("pingpong.malformed", static_cast<double>(malformed_));
      return;
    }
    if (p->type == pp::Type::kPing) {
      std::vector<std::uint8_t> reply(data, data + size);
      pp::encode({pp::Type::kPong, p->sequence, p->sent_ns}, reply.data());
      host().udp_send(endpoint_, from, reply.data(), reply.size());
      ++answered_;
      return;
    }
    // A pong counts only from our peer and for a ping we have in flight.
    auto it = in_flight_.find(p->sequence);
    if (!peer_ || !patronus::sdk::same_addr(from, *peer_) || it == in_flight_.end()) {
      ++unexpected_;
      return;
    }
    const std::int64_t rtt = host().now_ns() - it->second.sent_ns;
    host().cancel(it->second.timeout_timer);
    const std::int64_t sent = it->second.sent_ns;
    in_flight_.erase(it);
    ++received_;
    host().metric("pingpong.rtt_ms", static_cast<double>(rtt) / 1e6);
    report(p->sequence, sent, rtt, false);
    maybe_done();
  }

  void report(std::uint64_t seq, std::int64_t sent, std::int64_t rtt, bool lost) {
    patronus_path_sample s{};
    s.struct_size = sizeof s;
    s.lost = lost ? 1 : 0;
    s.path_id = path_id_;
    s.sent_ns = sent;
    s.rtt_ns = rtt;
    s.sequence = seq;
    host().report_sample(s);
  }

  void maybe_done() {
    if (count_ != 0 && sent_ >= count_ && in_flight_.empty() && !done_) {
      done_ = true;
      publish_summary("pingpong.done");
    }
  }

  void publish_summary(const std::string& type) {
    host().event(type, "{\"sent\":" + std::to_string(sent_) + ",\"received\":" +
                           std::to_string(received_) + ",\"lost\":" + std::to_string(lost_) +
                           ",\"answered\":" + std::to_string(answered_) +
                           ",\"malformed\":" + std::to_string(malformed_) +
                           ",\"unexpected\":" + std::to_string(unexpected_) +
                           ",\"in_flight\":" + std::to_string(in_flight_.size()) + "}");
  }

  struct InFlight {
    std::int64_t sent_ns;
    patronus_timer_id timeout_timer;
  };

  patronus_addr listen_{};
  std::optional<patronus_addr> peer_;
  std::uint32_t interval_ms_ = 100, payload_ = 64, timeout_ms_ = 1000, count_ = 0;
  std::uint64_t path_id_ = 0;
  patronus_endpoint_id endpoint_ = 0;
  std::uint64_t next_seq_ = 0, sent_ = 0, received_ = 0, lost_ = 0, answered_ = 0;
  std::uint64_t malformed_ = 0, unexpected_ = 0, send_errors_ = 0;
  bool done_ = false;
  std::map<std::uint64_t, InFlight> in_flight_;
};

}  // namespace

PATRONUS_SDK_PLUGIN(PingPong, "pingpong", "1.0.0", "patronus.pingpong.v1.Config",
                    patronus_embedded_schema, patronus_embedded_schema_size)
