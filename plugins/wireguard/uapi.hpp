// The WireGuard cross-platform userspace API (UAPI): the line protocol wireguard-go (and every
// userspace implementation) speaks on /var/run/wireguard/<ifname>.sock, the one `wg` uses.
//
//   get:  "get=1\n\n"  ->  "key=value\n"... "errno=N\n\n"
//   set:  "set=1\n" "key=value\n"... "\n"  ->  "errno=N\n\n"
//
// Device keys come first (private_key, listen_port, fwmark, replace_peers), then per peer a
// public_key line followed by that peer's keys (preshared_key, endpoint, allowed_ip, ...). Keys
// are 64 hex digits. An unknown operation is answered by closing the connection.
//
// This is the codec only: parsing is defensive (every line bounded, every count bounded, every
// value checked, the line number of an error named) and never touches a socket; the transport
// plugin drives the socket without blocking.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "patronus/model/address.hpp"
#include "patronus/util/status.hpp"
#include "patronus/util/wipe.hpp"

namespace patronus::wg {

using Key = std::array<std::uint8_t, 32>;

std::string key_to_hex(const Key& k);
Result<Key> key_from_hex(std::string_view hex);
// A Curve25519 private key as a device stores and reports it (RFC 7748 clamping: wireguard-go
// answers a set private_key with the clamped key); compare device state with this.
Key clamped(Key private_key);

struct PeerState {
  Key public_key{};
  std::optional<Key> preshared_key;  // none when all zero
  std::uint32_t protocol_version = 0;
  std::optional<model::SocketAddress> endpoint;
  std::int64_t last_handshake_ns = 0;  // unix time; 0: never
  std::uint64_t rx_bytes = 0, tx_bytes = 0;
  std::uint16_t keepalive_s = 0;  // 0: off
  std::vector<model::IpPrefix> allowed_ips;
};

struct DeviceState {
  std::optional<Key> private_key;
  std::uint16_t listen_port = 0;
  std::uint32_t fwmark = 0;
  std::vector<PeerState> peers;
};

struct UapiLimits {
  std::size_t max_bytes = 8 << 20;  // one response
  std::size_t max_line = 256;
  std::size_t max_peers = 65536;
  std::size_t max_allowed_ips = 1 << 20;  // over all peers
};

// A complete response ends with an empty line: the length of the first one in `buffer`
// (including "\n\n"), or nullopt while more bytes are needed.
std::optional<std::size_t> frame_length(std::string_view buffer);

// The answer to "get=1": the device, or the error the device reported (errno != 0), or what is
// wrong with the text and on which line.
Result<DeviceState> parse_get_response(std::string_view text, const UapiLimits& limits = {});
// The answer to a set: OK for errno=0, else an error carrying the errno.
Status parse_set_response(std::string_view text);

struct PeerChange {
  Key public_key{};
  bool remove = false;
  bool update_only = false;  // fail instead of creating the peer
  std::optional<Key> preshared_key;
  std::optional<model::SocketAddress> endpoint;
  std::optional<std::uint16_t> keepalive_s;
  bool replace_allowed_ips = false;
  std::vector<model::IpPrefix> allowed_ips;
};

struct DeviceChange {
  std::optional<Key> private_key;
  std::optional<std::uint16_t> listen_port;
  std::optional<std::uint32_t> fwmark;
  bool replace_peers = false;
  std::vector<PeerChange> peers;
};

inline constexpr std::string_view kGetRequest = "get=1\n\n";
std::string encode_set(const DeviceChange& change);
inline bool empty(const DeviceChange& c) {
  return !c.private_key && !c.listen_port && !c.fwmark && !c.replace_peers && c.peers.empty();
}

// What a device should hold: its key, port and mark, and its peers (one per path).
struct DesiredPeer {
  Key public_key{};
  model::SocketAddress endpoint;
  std::vector<model::IpPrefix> allowed_ips;
  std::uint16_t keepalive_s = 0;
};
struct DesiredDevice {
  Key private_key{};
  std::uint16_t listen_port = 0;
  std::uint32_t fwmark = 0;
  std::vector<DesiredPeer> peers;
};

// The change that turns `have` (read back with get=1) into `want`, touching nothing that is
// already right: new peers are added, a peer whose keepalive or allowed IPs differ is updated
// (update_only), peers not wanted are removed, other peers are not named. `applied` holds the
// endpoint last set for each peer: a peer whose endpoint differs from it has roamed (WireGuard
// follows authenticated packets) and is left alone; its endpoint is set again only when `want`
// changed it. Without an entry (a device adopted after a restart) the device's endpoint is
// compared with `want`. The private key is compared clamped, as the device reports it.
DeviceChange reconcile(const DesiredDevice& want, const DeviceState& have,
                       const std::map<Key, model::SocketAddress>& applied);

// One request and its answer over a non-blocking stream socket, as bytes: the caller writes
// pending_output() when the socket is writable and reports what it wrote, and feeds what it
// reads. The session never touches the socket, so it runs under any event loop (and in tests).
class UapiExchange {
 public:
  explicit UapiExchange(std::string request, std::size_t max_response = 8 << 20)
      : out_(std::move(request)), max_(max_response) {}
  // A set carries the private key, a get's answer too: both are wiped when the exchange ends.
  ~UapiExchange() {
    util::wipe(out_);
    util::wipe(in_);
  }
  UapiExchange(UapiExchange&&) = default;
  UapiExchange& operator=(UapiExchange&&) = default;
  UapiExchange(const UapiExchange&) = delete;
  UapiExchange& operator=(const UapiExchange&) = delete;
  std::string_view pending_output() const { return std::string_view(out_).substr(written_); }
  void wrote(std::size_t n) { written_ = std::min(out_.size(), written_ + n); }
  // True once a whole answer is in; an error when it grows past the bound or something follows
  // it (one exchange, one answer).
  Result<bool> received(const char* data, std::size_t size);
  // The peer closed the connection: an error unless the answer was complete (wireguard-go
  // closes without a word on an operation it does not know).
  Status closed() const;
  bool done() const { return done_; }
  std::string_view response() const { return in_; }

 private:
  std::string out_, in_;
  std::size_t written_ = 0, max_;
  bool done_ = false;
};

}  // namespace patronus::wg
