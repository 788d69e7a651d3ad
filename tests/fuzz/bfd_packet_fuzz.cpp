// BFD control packets come from the network (any host on the link): decode must take any bytes
// without crashing or reading past them; what it accepts encodes back to the same bytes (the
// Length field's worth), and verify() accepts a signed packet and refuses it with a byte changed.
#include <cstdlib>
#include <cstring>

#include "bfd_packet.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace bfd = patronus::bfd;
  bfd::Packet p;
  std::size_t len = 0;
  if (bfd::decode(data, size, &p, &len) != bfd::Discard::kNone) return 0;
  if (len > size || len < bfd::kHeaderSize) std::abort();
  std::uint8_t out[bfd::kMaxPacket];
  const std::size_t n = bfd::encode(p, out);
  // Without authentication a Length above 24 is allowed (RFC 5880 6.8.6 bounds it from below
  // only); the encoder writes 24. With it, the section fixes the length.
  if (p.auth_present ? n != len : n != bfd::kHeaderSize) std::abort();
  // Length and the auth section's reserved byte are re-derived; every other byte is the same.
  for (std::size_t i = 0; i < n; ++i) {
    if (i == 3 || i == bfd::kHeaderSize + 3) continue;
    if (out[i] != data[i]) std::abort();
  }
  bfd::Sha1Key key{};
  std::memcpy(key.data(), "fuzz", 4);
  if (p.auth_present) {
    (void)bfd::verify(data, len, key);  // any bytes: no crash
    bfd::sign(out, n, key);
    if (!bfd::verify(out, n, key)) std::abort();
    out[size % n] ^= 0x01;
    if (bfd::verify(out, n, key)) std::abort();
  }
  (void)bfd::sequence_ok(p.auth.sequence, static_cast<std::uint32_t>(size), p.detect_mult, true);
  return 0;
}
