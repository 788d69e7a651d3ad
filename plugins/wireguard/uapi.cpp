#include "uapi.hpp"

#include <sodium.h>
#include <algorithm>
#include <charconv>
#include <cstring>
#include <limits>

namespace patronus::wg {

namespace {

template <typename T>
bool parse_uint(std::string_view v, T* out) {
  if (v.empty() || v.size() > 20) return false;
  std::uint64_t x = 0;
  const auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
  if (ec != std::errc() || p != v.data() + v.size()) return false;
  if (x > std::numeric_limits<T>::max()) return false;
  *out = static_cast<T>(x);
  return true;
}

bool all_zero(const Key& k) {
  for (auto b : k) {
    if (b != 0) return false;
  }
  return true;
}

// Walks the lines of a response; each must be "key=value".
class Lines {
 public:
  Lines(std::string_view text, std::size_t max_line) : text_(text), max_line_(max_line) {}
  // The next line, or false at the end (the empty line that closes the response).
  Result<bool> next(std::string_view* key, std::string_view* value) {
    const std::size_t nl = text_.find('\n', pos_);
    if (nl == std::string_view::npos) return fail("no end of line (a response ends with \\n\\n)");
    const std::string_view line = text_.substr(pos_, nl - pos_);
    pos_ = nl + 1;
    ++line_;
    if (line.empty()) {
      if (pos_ != text_.size()) return fail("bytes after the end of the response");
      return false;
    }
    if (line.size() > max_line_) return fail("longer than " + std::to_string(max_line_) + " bytes");
    const std::size_t eq = line.find('=');
    if (eq == std::string_view::npos || eq == 0) return fail("expected key=value");
    *key = line.substr(0, eq);
    *value = line.substr(eq + 1);
    return true;
  }
  Status fail(const std::string& what) const {
    return invalid_argument("UAPI response line " + std::to_string(line_) + ": " + what);
  }

 private:
  std::string_view text_;
  std::size_t max_line_;
  std::size_t pos_ = 0;
  int line_ = 0;
};

Status errno_status(std::int64_t e) {
  std::string text = "the WireGuard device answered errno=" + std::to_string(e);
  // wireguard-go answers a negative errno; say which in words (e.g. -98: the port is taken).
  if (e < 0 && e > -4096) text += std::string(" (") + std::strerror(static_cast<int>(-e)) + ")";
  return unavailable(text);
}

}  // namespace

// Constant time (libsodium): a private key's bytes never index a table.
std::string key_to_hex(const Key& k) {
  char out[65];
  sodium_bin2hex(out, sizeof out, k.data(), k.size());
  return std::string(out, 64);
}

Result<Key> key_from_hex(std::string_view hex) {
  if (hex.size() != 64)
    return invalid_argument("a key is 64 hex digits, got " + std::to_string(hex.size()) +
                            " characters");
  Key k{};
  std::size_t len = 0;
  const char* end = nullptr;
  if (sodium_hex2bin(k.data(), k.size(), hex.data(), hex.size(), nullptr, &len, &end) != 0 ||
      len != k.size() || end != hex.data() + hex.size()) {
    return invalid_argument("a key is 64 hex digits");
  }
  return k;
}

Key clamped(Key k) {
  k[0] &= 248;
  k[31] = static_cast<std::uint8_t>((k[31] & 127) | 64);
  return k;
}

std::optional<std::size_t> frame_length(std::string_view buffer) {
  if (buffer.size() >= 2 && buffer[0] == '\n' && buffer[1] == '\n') return 2;
  const std::size_t end = buffer.find("\n\n");
  if (end == std::string_view::npos) return std::nullopt;
  return end + 2;
}

Result<DeviceState> parse_get_response(std::string_view text, const UapiLimits& limits) {
  if (text.size() > limits.max_bytes) {
    return invalid_argument("UAPI response of " + std::to_string(text.size()) +
                            " bytes is over the bound of " + std::to_string(limits.max_bytes));
  }
  Lines lines(text, limits.max_line);
  DeviceState d;
  PeerState* peer = nullptr;
  std::size_t allowed = 0;
  std::optional<std::int64_t> err;
  std::int64_t hs_sec = -1, hs_nsec = 0;  // of the current peer; -1: not given
  auto close_peer = [&]() {
    if (peer && hs_sec >= 0) peer->last_handshake_ns = hs_sec * 1'000'000'000 + hs_nsec;
    hs_sec = -1;
    hs_nsec = 0;
  };
  for (;;) {
    std::string_view key, value;
    auto more = lines.next(&key, &value);
    if (!more.is_ok()) return more.status();
    if (!more.value()) break;
    if (err) return lines.fail("a line after errno");
    auto bad = [&](const char* what) { return lines.fail(std::string(key) + ": " + what); };
    if (key == "errno") {
      std::int64_t e = 0;
      const auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), e);
      if (ec != std::errc() || p != value.data() + value.size()) return bad("not a number");
      err = e;
      continue;
    }
    if (key == "public_key") {
      close_peer();
      if (d.peers.size() >= limits.max_peers) {
        return lines.fail("more than " + std::to_string(limits.max_peers) + " peers");
      }
      auto k = key_from_hex(value);
      if (!k.is_ok()) return bad("not 64 hex digits");
      d.peers.emplace_back();
      peer = &d.peers.back();
      peer->public_key = k.value();
      continue;
    }
    if (!peer) {
      if (key == "private_key") {
        auto k = key_from_hex(value);
        if (!k.is_ok()) return bad("not 64 hex digits");
        if (!all_zero(k.value())) d.private_key = k.value();
      } else if (key == "listen_port") {
        if (!parse_uint(value, &d.listen_port)) return bad("not a port");
      } else if (key == "fwmark") {
        if (!parse_uint(value, &d.fwmark)) return bad("not a 32-bit number");
      }
      // Any other key is a newer wireguard-go's (or kernel's) addition: ignored, so that an
      // upgrade of the device does not break every get. Its value is bounded by the line limit.
      continue;
    }
    if (key == "preshared_key") {
      auto k = key_from_hex(value);
      if (!k.is_ok()) return bad("not 64 hex digits");
      if (!all_zero(k.value())) peer->preshared_key = k.value();
    } else if (key == "protocol_version") {
      if (!parse_uint(value, &peer->protocol_version)) return bad("not a number");
    } else if (key == "endpoint") {
      auto a = model::SocketAddress::parse(value);
      if (!a.is_ok()) return bad("not an address:port");
      peer->endpoint = a.value();
    } else if (key == "last_handshake_time_sec") {
      std::uint64_t v = 0;
      if (!parse_uint(value, &v) || v > 1'000'000'000'000ULL) return bad("not a time");
      hs_sec = static_cast<std::int64_t>(v);
    } else if (key == "last_handshake_time_nsec") {
      std::uint32_t v = 0;
      if (!parse_uint(value, &v) || v >= 1'000'000'000) return bad("not nanoseconds");
      hs_nsec = v;
    } else if (key == "tx_bytes") {
      if (!parse_uint(value, &peer->tx_bytes)) return bad("not a number");
    } else if (key == "rx_bytes") {
      if (!parse_uint(value, &peer->rx_bytes)) return bad("not a number");
    } else if (key == "persistent_keepalive_interval") {
      if (!parse_uint(value, &peer->keepalive_s)) return bad("not a 16-bit number");
    } else if (key == "allowed_ip") {
      if (++allowed > limits.max_allowed_ips) {
        return lines.fail("more than " + std::to_string(limits.max_allowed_ips) + " allowed IPs");
      }
      auto p = model::IpPrefix::parse(value, /*allow_host_bits=*/true);
      if (!p.is_ok()) return bad("not a prefix");
      peer->allowed_ips.push_back(p.value());
    }
    // Any other peer key: ignored, as a device key is.
  }
  close_peer();
  if (!err) return invalid_argument("UAPI response has no errno line");
  if (*err != 0) return errno_status(*err);
  return d;
}

Status parse_set_response(std::string_view text) {
  Lines lines(text, 64);
  std::string_view key, value;
  auto more = lines.next(&key, &value);
  if (!more.is_ok()) return more.status();
  if (!more.value() || key != "errno") return lines.fail("expected errno=N");
  std::int64_t e = 0;
  const auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), e);
  if (ec != std::errc() || p != value.data() + value.size())
    return lines.fail("errno: not a number");
  auto end = lines.next(&key, &value);
  if (!end.is_ok()) return end.status();
  if (end.value()) return lines.fail("a line after errno");
  return e == 0 ? Status::ok() : errno_status(e);
}

std::string encode_set(const DeviceChange& c) {
  std::string s = "set=1\n";
  if (c.private_key) s += "private_key=" + key_to_hex(*c.private_key) + "\n";
  if (c.listen_port) s += "listen_port=" + std::to_string(*c.listen_port) + "\n";
  if (c.fwmark) s += "fwmark=" + std::to_string(*c.fwmark) + "\n";
  if (c.replace_peers) s += "replace_peers=true\n";
  for (const auto& p : c.peers) {
    s += "public_key=" + key_to_hex(p.public_key) + "\n";
    if (p.remove) {
      s += "remove=true\n";
      continue;
    }
    if (p.update_only) s += "update_only=true\n";
    if (p.preshared_key) s += "preshared_key=" + key_to_hex(*p.preshared_key) + "\n";
    if (p.endpoint) s += "endpoint=" + p.endpoint->to_string() + "\n";
    if (p.keepalive_s)
      s += "persistent_keepalive_interval=" + std::to_string(*p.keepalive_s) + "\n";
    if (p.replace_allowed_ips) s += "replace_allowed_ips=true\n";
    for (const auto& a : p.allowed_ips) s += "allowed_ip=" + a.to_string() + "\n";
  }
  s += "\n";
  return s;
}

Result<bool> UapiExchange::received(const char* data, std::size_t size) {
  if (done_) {
    if (size == 0) return true;
    return invalid_argument("UAPI: " + std::to_string(size) + " bytes after the answer");
  }
  if (in_.size() + size > max_) {
    return resource_exhausted("UAPI: an answer of more than " + std::to_string(max_) + " bytes");
  }
  in_.append(data, size);
  const auto n = frame_length(in_);
  if (!n) return false;
  if (*n != in_.size()) {
    return invalid_argument("UAPI: " + std::to_string(in_.size() - *n) + " bytes after the answer");
  }
  done_ = true;
  return true;
}

Status UapiExchange::closed() const {
  if (done_) return Status::ok();
  if (written_ < out_.size()) {
    return unavailable("UAPI: the device closed the connection before the request was sent");
  }
  return unavailable(in_.empty() ? "UAPI: the device closed the connection without an answer (an "
                                   "operation it does not know?)"
                                 : "UAPI: the device closed the connection mid-answer after " +
                                       std::to_string(in_.size()) + " bytes");
}

DeviceChange reconcile(const DesiredDevice& want, const DeviceState& have,
                       const std::map<Key, model::SocketAddress>& applied) {
  DeviceChange c;
  if (!have.private_key || *have.private_key != clamped(want.private_key)) {
    c.private_key = want.private_key;
  }
  if (have.listen_port != want.listen_port) c.listen_port = want.listen_port;
  if (have.fwmark != want.fwmark) c.fwmark = want.fwmark;
  std::map<Key, const PeerState*> present;
  for (const auto& p : have.peers) present[p.public_key] = &p;
  std::map<Key, bool> wanted;
  for (const auto& spec : want.peers) {
    wanted[spec.public_key] = true;
    PeerChange pc;
    pc.public_key = spec.public_key;
    auto it = present.find(spec.public_key);
    if (it == present.end()) {
      pc.endpoint = spec.endpoint;
      pc.keepalive_s = spec.keepalive_s;
      pc.replace_allowed_ips = true;
      pc.allowed_ips = spec.allowed_ips;
      c.peers.push_back(std::move(pc));
      continue;
    }
    const PeerState& ps = *it->second;
    bool needed = false;
    const auto last = applied.find(spec.public_key);
    const bool plan_moved = last == applied.end() ? !(ps.endpoint && *ps.endpoint == spec.endpoint)
                                                  : !(last->second == spec.endpoint);
    if (plan_moved) {
      pc.endpoint = spec.endpoint;
      needed = true;
    }
    if (ps.keepalive_s != spec.keepalive_s) {
      pc.keepalive_s = spec.keepalive_s;
      needed = true;
    }
    auto a = ps.allowed_ips, b = spec.allowed_ips;
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    if (a != b) {
      pc.replace_allowed_ips = true;
      pc.allowed_ips = spec.allowed_ips;
      needed = true;
    }
    if (needed) {
      pc.update_only = true;
      c.peers.push_back(std::move(pc));
    }
  }
  for (const auto& p : have.peers) {
    if (wanted.count(p.public_key)) continue;
    PeerChange pc;
    pc.public_key = p.public_key;
    pc.remove = true;
    c.peers.push_back(std::move(pc));
  }
  return c;
}

}  // namespace patronus::wg
