// The pingpong wire format (all integers big-endian):
//   0  magic "PPNG"   4  version (1)   5  type (1 ping, 2 pong)   6  reserved (2, zero)
//   8  sequence (u64) 16 sent_ns (i64) 24 padding up to the configured payload size
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

namespace patronus::pingpong {

constexpr std::size_t kHeaderSize = 24;
constexpr std::uint8_t kVersion = 1;
enum class Type : std::uint8_t { kPing = 1, kPong = 2 };

struct Packet {
  Type type = Type::kPing;
  std::uint64_t sequence = 0;
  std::int64_t sent_ns = 0;
};

// Writes the header into out[0..24); the caller pads. out must hold kHeaderSize bytes.
inline void encode(const Packet& p, std::uint8_t* out) {
  out[0] = 'P', out[1] = 'P', out[2] = 'N', out[3] = 'G';
  out[4] = kVersion;
  out[5] = static_cast<std::uint8_t>(p.type);
  out[6] = 0, out[7] = 0;
  const auto seq = p.sequence;
  const auto sent = static_cast<std::uint64_t>(p.sent_ns);
  for (int i = 0; i < 8; ++i) {
    out[8 + i] = static_cast<std::uint8_t>(seq >> (56 - 8 * i));
    out[16 + i] = static_cast<std::uint8_t>(sent >> (56 - 8 * i));
  }
}

// Any byte string is safe to pass; nullopt for anything that is not a well-formed packet.
inline std::optional<Packet> decode(const std::uint8_t* data, std::size_t size) {
  if (data == nullptr || size < kHeaderSize) return std::nullopt;
  if (data[0] != 'P' || data[1] != 'P' || data[2] != 'N' || data[3] != 'G') return std::nullopt;
  if (data[4] != kVersion || data[6] != 0 || data[7] != 0) return std::nullopt;
  if (data[5] != 1 && data[5] != 2) return std::nullopt;
  Packet p;
  p.type = static_cast<Type>(data[5]);
  std::uint64_t seq = 0, sent = 0;
  for (int i = 0; i < 8; ++i) {
    seq = (seq << 8) | data[8 + i];
    sent = (sent << 8) | data[16 + i];
  }
  p.sequence = seq;
  p.sent_ns = static_cast<std::int64_t>(sent);
  return p;
}

}  // namespace patronus::pingpong
