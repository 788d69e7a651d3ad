// BFD control packets (RFC 5880 section 4): decoding with the length checks of section 6.8.6,
// encoding, and keyed SHA1 / meticulous keyed SHA1 authentication (section 6.7.4). Header-only
// and free of host services so the codec tests and the fuzz target use it directly.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

namespace patronus::bfd {

constexpr std::uint16_t kControlPort = 3784;     // RFC 5881 section 4
constexpr std::uint16_t kSourcePortMin = 49152;  // RFC 5881 section 4
constexpr std::uint8_t kTtl = 255;               // RFC 5881 section 5 (GTSM)
constexpr std::size_t kHeaderSize = 24;          // without authentication
constexpr std::size_t kSha1AuthSize = 28;        // type, length, key id, reserved, seq, digest
constexpr std::size_t kMaxPacket = kHeaderSize + kSha1AuthSize;

enum class State : std::uint8_t { kAdminDown = 0, kDown = 1, kInit = 2, kUp = 3 };
inline const char* to_string(State s) {
  switch (s) {
    case State::kAdminDown:
      return "admin-down";
    case State::kDown:
      return "down";
    case State::kInit:
      return "init";
    case State::kUp:
      return "up";
  }
  return "?";
}

// Diagnostic codes (RFC 5880 section 4.1).
enum class Diag : std::uint8_t {
  kNone = 0,
  kDetectExpired = 1,
  kEchoFailed = 2,
  kNeighborDown = 3,
  kForwardingReset = 4,
  kPathDown = 5,
  kConcatDown = 6,
  kAdminDown = 7,
  kReverseConcatDown = 8,
};
inline const char* to_string(Diag d) {
  static const char* const names[] = {"none",
                                      "control-detection-time-expired",
                                      "echo-function-failed",
                                      "neighbor-signaled-session-down",
                                      "forwarding-plane-reset",
                                      "path-down",
                                      "concatenated-path-down",
                                      "administratively-down",
                                      "reverse-concatenated-path-down"};
  const auto i = static_cast<std::size_t>(d);
  return i < sizeof names / sizeof names[0] ? names[i] : "unknown";
}

// Authentication types (RFC 5880 section 4.1); only the SHA1 ones are implemented.
constexpr std::uint8_t kAuthKeyedSha1 = 4;
constexpr std::uint8_t kAuthMeticulousKeyedSha1 = 5;

struct Auth {
  std::uint8_t type = 0;
  std::uint8_t key_id = 0;
  std::uint32_t sequence = 0;
  std::array<std::uint8_t, 20> digest{};
};

struct Packet {
  std::uint8_t version = 1;
  Diag diag = Diag::kNone;
  State state = State::kDown;
  bool poll = false, final = false, cpi = false, auth_present = false, demand = false,
       multipoint = false;
  std::uint8_t detect_mult = 3;
  std::uint32_t my_disc = 0, your_disc = 0;
  std::uint32_t desired_min_tx_us = 0, required_min_rx_us = 0, required_min_echo_rx_us = 0;
  Auth auth;  // with auth_present
};

// Why a packet was discarded before it reached a session (RFC 5880 6.8.6, in order).
enum class Discard : std::uint8_t {
  kNone = 0,
  kShort,            // fewer bytes than a header
  kVersion,          // not version 1
  kLength,           // Length below 24 (26 with A), or above the datagram
  kDetectMult,       // Detect Mult zero
  kMultipoint,       // M bit set
  kMyDiscZero,       // My Discriminator zero
  kAuthSection,      // an authentication section that is not well formed
  kAuthUnsupported,  // an authentication type this implementation does not speak
};
constexpr std::size_t kDiscardReasons = 9;  // kNone included
inline const char* to_string(Discard d) {
  static const char* const names[] = {"none",         "short",        "version",
                                      "length",       "detect_mult",  "multipoint",
                                      "my_disc_zero", "auth_section", "auth_unsupported"};
  static_assert(sizeof names / sizeof names[0] == kDiscardReasons);
  return names[static_cast<std::size_t>(d)];
}

inline std::uint32_t get32(const std::uint8_t* p) {
  return std::uint32_t{p[0]} << 24 | std::uint32_t{p[1]} << 16 | std::uint32_t{p[2]} << 8 | p[3];
}
inline void put32(std::uint8_t* p, std::uint32_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 24);
  p[1] = static_cast<std::uint8_t>(v >> 16);
  p[2] = static_cast<std::uint8_t>(v >> 8);
  p[3] = static_cast<std::uint8_t>(v);
}

// The checks of 6.8.6 that need no session (version, lengths, Detect Mult, M, My Discriminator,
// and the shape of an authentication section). *len receives the Length field.
inline Discard decode(const std::uint8_t* data, std::size_t size, Packet* out,
                      std::size_t* len = nullptr) {
  if (size < kHeaderSize) return Discard::kShort;
  Packet p;
  p.version = data[0] >> 5;
  if (p.version != 1) return Discard::kVersion;
  p.diag = static_cast<Diag>(data[0] & 0x1f);
  p.state = static_cast<State>(data[1] >> 6);
  p.poll = data[1] & 0x20;
  p.final = data[1] & 0x10;
  p.cpi = data[1] & 0x08;
  p.auth_present = data[1] & 0x04;
  p.demand = data[1] & 0x02;
  p.multipoint = data[1] & 0x01;
  p.detect_mult = data[2];
  const std::size_t length = data[3];
  if (length < (p.auth_present ? 26u : kHeaderSize) || length > size) return Discard::kLength;
  if (p.detect_mult == 0) return Discard::kDetectMult;
  if (p.multipoint) return Discard::kMultipoint;
  p.my_disc = get32(data + 4);
  if (p.my_disc == 0) return Discard::kMyDiscZero;
  p.your_disc = get32(data + 8);
  p.desired_min_tx_us = get32(data + 12);
  p.required_min_rx_us = get32(data + 16);
  p.required_min_echo_rx_us = get32(data + 20);
  if (p.auth_present) {
    const std::uint8_t* a = data + kHeaderSize;
    const std::size_t auth_len = a[1];
    if (auth_len < 2 || kHeaderSize + auth_len != length) return Discard::kAuthSection;
    p.auth.type = a[0];
    if (p.auth.type != kAuthKeyedSha1 && p.auth.type != kAuthMeticulousKeyedSha1) {
      return Discard::kAuthUnsupported;
    }
    if (auth_len != kSha1AuthSize) return Discard::kAuthSection;
    p.auth.key_id = a[2];
    p.auth.sequence = get32(a + 4);
    std::memcpy(p.auth.digest.data(), a + 8, 20);
  }
  *out = p;
  if (len) *len = length;
  return Discard::kNone;
}

// Encodes `p` (its auth section when auth_present; the digest is computed by sign()). Returns the
// length written (24 or 52).
inline std::size_t encode(const Packet& p, std::uint8_t* out) {
  const std::size_t length = p.auth_present ? kHeaderSize + kSha1AuthSize : kHeaderSize;
  out[0] = static_cast<std::uint8_t>(1u << 5 | (static_cast<unsigned>(p.diag) & 0x1f));
  out[1] = static_cast<std::uint8_t>(static_cast<unsigned>(p.state) << 6 | (p.poll ? 0x20 : 0) |
                                     (p.final ? 0x10 : 0) | (p.cpi ? 0x08 : 0) |
                                     (p.auth_present ? 0x04 : 0) | (p.demand ? 0x02 : 0) |
                                     (p.multipoint ? 0x01 : 0));
  out[2] = p.detect_mult;
  out[3] = static_cast<std::uint8_t>(length);
  put32(out + 4, p.my_disc);
  put32(out + 8, p.your_disc);
  put32(out + 12, p.desired_min_tx_us);
  put32(out + 16, p.required_min_rx_us);
  put32(out + 20, p.required_min_echo_rx_us);
  if (p.auth_present) {
    std::uint8_t* a = out + kHeaderSize;
    a[0] = p.auth.type;
    a[1] = static_cast<std::uint8_t>(kSha1AuthSize);
    a[2] = p.auth.key_id;
    a[3] = 0;
    put32(a + 4, p.auth.sequence);
    std::memcpy(a + 8, p.auth.digest.data(), 20);
  }
  return length;
}

// SHA-1 (FIPS 180-4), enough for the 52-byte packets BFD signs.
inline std::array<std::uint8_t, 20> sha1(const std::uint8_t* data, std::size_t size) {
  std::uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
  auto rol = [](std::uint32_t x, int n) { return (x << n) | (x >> (32 - n)); };
  auto block = [&](const std::uint8_t* b) {
    std::uint32_t w[80];
    for (int i = 0; i < 16; ++i) w[i] = get32(b + 4 * i);
    for (int i = 16; i < 80; ++i) w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    std::uint32_t a = h[0], bb = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; ++i) {
      std::uint32_t f, k;
      if (i < 20) {
        f = (bb & c) | (~bb & d);
        k = 0x5A827999;
      } else if (i < 40) {
        f = bb ^ c ^ d;
        k = 0x6ED9EBA1;
      } else if (i < 60) {
        f = (bb & c) | (bb & d) | (c & d);
        k = 0x8F1BBCDC;
      } else {
        f = bb ^ c ^ d;
        k = 0xCA62C1D6;
      }
      const std::uint32_t t = rol(a, 5) + f + e + k + w[i];
      e = d;
      d = c;
      c = rol(bb, 30);
      bb = a;
      a = t;
    }
    h[0] += a;
    h[1] += bb;
    h[2] += c;
    h[3] += d;
    h[4] += e;
  };
  std::size_t i = 0;
  for (; i + 64 <= size; i += 64) block(data + i);
  std::uint8_t tail[128] = {};
  const std::size_t rest = size - i;
  std::memcpy(tail, data + i, rest);
  tail[rest] = 0x80;
  const std::size_t tail_len = rest + 9 <= 64 ? 64 : 128;
  const std::uint64_t bits = static_cast<std::uint64_t>(size) * 8;
  for (int j = 0; j < 8; ++j) tail[tail_len - 1 - j] = static_cast<std::uint8_t>(bits >> (8 * j));
  block(tail);
  if (tail_len == 128) block(tail + 64);
  std::array<std::uint8_t, 20> out{};
  for (int j = 0; j < 5; ++j) put32(out.data() + 4 * j, h[j]);
  return out;
}

// A key of 1..20 bytes, zero padded to 20 (RFC 5880 6.7.4).
using Sha1Key = std::array<std::uint8_t, 20>;

// The digest of a packet of `length` bytes whose digest field is replaced by the key.
inline std::array<std::uint8_t, 20> sha1_digest(const std::uint8_t* packet, std::size_t length,
                                                const Sha1Key& key) {
  std::uint8_t buf[kMaxPacket];
  std::memcpy(buf, packet, length);
  std::memcpy(buf + kHeaderSize + 8, key.data(), 20);
  return sha1(buf, length);
}

// Writes the digest into an encoded packet with an auth section.
inline void sign(std::uint8_t* packet, std::size_t length, const Sha1Key& key) {
  const auto d = sha1_digest(packet, length, key);
  std::memcpy(packet + kHeaderSize + 8, d.data(), 20);
}

// Whether the digest in an encoded packet is the one the key gives (constant time).
inline bool verify(const std::uint8_t* packet, std::size_t length, const Sha1Key& key) {
  if (length != kHeaderSize + kSha1AuthSize) return false;
  const auto d = sha1_digest(packet, length, key);
  std::uint8_t diff = 0;
  for (std::size_t i = 0; i < 20; ++i) diff |= d[i] ^ packet[kHeaderSize + 8 + i];
  return diff == 0;
}

// Sequence window of 6.7.4: keyed SHA1 accepts [last, last + 3 * mult], meticulous
// (last, last + 3 * mult], both in sequence space (modulo 2^32).
inline bool sequence_ok(std::uint32_t seq, std::uint32_t last, std::uint8_t detect_mult,
                        bool meticulous) {
  const std::uint32_t ahead = seq - last;  // wraps
  const std::uint32_t window = 3u * detect_mult;
  return meticulous ? (ahead >= 1 && ahead <= window) : ahead <= window;
}

}  // namespace patronus::bfd
