// The Patronus probe packet (docs/design/probe-protocol.md): a fixed 64-byte authenticated
// header, optionally followed by zero padding. Big-endian on the wire.
//
//   0  u8   version (1)            1  u8  type (1 request, 2 reply)    2 u16 flags (0)
//   4  u32  session id             8  u64 sender nonce                16 u64 sequence
//  24  i64  t1 sender transmit    32  i64 t2 reflector receive       40 i64 t3 reflector transmit
//  48  16 B tag: BLAKE2b-128 keyed with the 32-byte path key over bytes 0..47
//
// Header-only so the fuzz target and the benchmark use exactly the plugin's code.
#pragma once

#include <sodium.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>

namespace patronus::probes {

constexpr std::uint8_t kVersion = 1;
constexpr std::size_t kHeaderSize = 64;
constexpr std::size_t kAuthedSize = 48;
constexpr std::size_t kTagSize = 16;
constexpr std::size_t kMaxPacket = 1400;
using PathKey = std::array<std::uint8_t, 32>;

enum class Type : std::uint8_t { kRequest = 1, kReply = 2 };

struct Packet {
  Type type = Type::kRequest;
  std::uint16_t flags = 0;
  std::uint32_t session = 0;
  std::uint64_t nonce = 0;
  std::uint64_t sequence = 0;
  std::int64_t t1 = 0, t2 = 0, t3 = 0;
};

// Why a datagram was not accepted.
enum class Reject : std::uint8_t {
  kNone,
  kTruncated,
  kTooLarge,
  kVersion,
  kType,
  kFlags,
  kPadding
};

namespace detail {
inline void put16(std::uint8_t* p, std::uint16_t v) {
  p[0] = std::uint8_t(v >> 8);
  p[1] = std::uint8_t(v);
}
inline void put32(std::uint8_t* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = std::uint8_t(v >> (24 - 8 * i));
}
inline void put64(std::uint8_t* p, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = std::uint8_t(v >> (56 - 8 * i));
}
inline std::uint16_t get16(const std::uint8_t* p) {
  return std::uint16_t((p[0] << 8) | p[1]);
}
inline std::uint32_t get32(const std::uint8_t* p) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | p[i];
  return v;
}
inline std::uint64_t get64(const std::uint8_t* p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | p[i];
  return v;
}
inline void tag(const PathKey& key, const std::uint8_t* data, std::uint8_t* out) {
  crypto_generichash(out, kTagSize, data, kAuthedSize, key.data(), key.size());
}
}  // namespace detail

// The most a reflector may say it held a probe (t3 - t2): a real one answers within
// microseconds; more would let a malicious or broken one shave its path's RTT to nothing.
constexpr std::int64_t kMaxResidenceNs = 5'000'000;

// A reply's round trip: from sending (`sent_ns`) to its arrival (`now_ns`), less the time the
// reflector says it held the probe, capped at kMaxResidenceNs (and ignored when t3 < t2).
// `capped` says whether the cap applied.
inline std::int64_t round_trip_ns(std::int64_t sent_ns, std::int64_t now_ns, std::int64_t t2,
                                  std::int64_t t3, bool* capped = nullptr) {
  std::int64_t residence = t3 >= t2 ? t3 - t2 : 0;
  if (capped != nullptr) *capped = residence > kMaxResidenceNs;
  if (residence > kMaxResidenceNs) residence = kMaxResidenceNs;
  const std::int64_t rtt = now_ns - sent_ns - residence;
  return rtt > 0 ? rtt : 0;
}

// Writes the 64-byte header with its tag into out[0..63].
inline void encode(const Packet& p, const PathKey& key, std::uint8_t* out) {
  out[0] = kVersion;
  out[1] = static_cast<std::uint8_t>(p.type);
  detail::put16(out + 2, p.flags);
  detail::put32(out + 4, p.session);
  detail::put64(out + 8, p.nonce);
  detail::put64(out + 16, p.sequence);
  detail::put64(out + 24, static_cast<std::uint64_t>(p.t1));
  detail::put64(out + 32, static_cast<std::uint64_t>(p.t2));
  detail::put64(out + 40, static_cast<std::uint64_t>(p.t3));
  detail::tag(key, out, out + kAuthedSize);
}

// Structural checks only (no key needed): version, type, flags, size, zero padding. The session
// id is then used to find the key, and verify() checks the tag.
inline Reject parse(const std::uint8_t* data, std::size_t size, Packet* out) {
  if (size < kHeaderSize) return Reject::kTruncated;
  if (size > kMaxPacket) return Reject::kTooLarge;
  if (data[0] != kVersion) return Reject::kVersion;
  if (data[1] != static_cast<std::uint8_t>(Type::kRequest) &&
      data[1] != static_cast<std::uint8_t>(Type::kReply)) {
    return Reject::kType;
  }
  if (detail::get16(data + 2) != 0) return Reject::kFlags;
  for (std::size_t i = kHeaderSize; i < size; ++i) {
    if (data[i] != 0) return Reject::kPadding;
  }
  out->type = static_cast<Type>(data[1]);
  out->flags = 0;
  out->session = detail::get32(data + 4);
  out->nonce = detail::get64(data + 8);
  out->sequence = detail::get64(data + 16);
  out->t1 = static_cast<std::int64_t>(detail::get64(data + 24));
  out->t2 = static_cast<std::int64_t>(detail::get64(data + 32));
  out->t3 = static_cast<std::int64_t>(detail::get64(data + 40));
  return Reject::kNone;
}

// Constant-time check of the tag of a parsed datagram.
inline bool verify(const std::uint8_t* data, const PathKey& key) {
  std::uint8_t expect[kTagSize];
  detail::tag(key, data, expect);
  return crypto_verify_16(expect, data + kAuthedSize) == 0;
}

// A 64-entry sliding replay window over sequence numbers (as IPsec's, RFC 4303 3.4.3).
class ReplayWindow {
 public:
  enum class Verdict { kNew, kReplayed, kStale };
  Verdict check(std::uint64_t seq) const {
    if (seq == 0) return Verdict::kStale;
    if (seq > top_) return Verdict::kNew;
    const std::uint64_t back = top_ - seq;
    if (back >= 64) return Verdict::kStale;
    return (bits_ >> back) & 1U ? Verdict::kReplayed : Verdict::kNew;
  }
  // Only after check() said kNew and the packet was authenticated.
  void accept(std::uint64_t seq) {
    if (seq > top_) {
      const std::uint64_t shift = seq - top_;
      bits_ = shift >= 64 ? 0 : bits_ << shift;
      top_ = seq;
    }
    bits_ |= std::uint64_t{1} << (top_ - seq);
  }
  std::uint64_t top() const { return top_; }

 private:
  std::uint64_t top_ = 0;
  std::uint64_t bits_ = 0;
};

}  // namespace patronus::probes
