// Probe packets come from the network: parse must accept any bytes without crashing; what it
// accepts re-encodes to the same header under the same key, and verify() accepts exactly the
// packets whose tag is right (a flipped byte anywhere in the authenticated part is refused).
#include <cstdlib>
#include <cstring>

#include "probe_packet.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace pk = patronus::probes;
  static const bool ready = sodium_init() >= 0;
  if (!ready) std::abort();
  pk::PathKey key{};
  for (std::size_t i = 0; i < key.size(); ++i) key[i] = static_cast<std::uint8_t>(i * 7 + 1);
  pk::Packet p;
  if (pk::parse(data, size, &p) != pk::Reject::kNone) return 0;
  std::uint8_t out[pk::kHeaderSize];
  pk::encode(p, key, out);
  if (std::memcmp(out, data, pk::kAuthedSize) != 0) std::abort();  // header round trip
  const bool tag_ok = std::memcmp(out + pk::kAuthedSize, data + pk::kAuthedSize, pk::kTagSize) == 0;
  if (pk::verify(data, key) != tag_ok) std::abort();
  if (!pk::verify(out, key)) std::abort();
  out[size % pk::kAuthedSize] ^= 0x01;
  if (pk::verify(out, key)) std::abort();
  // The replay window never accepts the same sequence twice.
  pk::ReplayWindow w;
  if (w.check(p.sequence) == pk::ReplayWindow::Verdict::kNew) {
    w.accept(p.sequence);
    if (w.check(p.sequence) != pk::ReplayWindow::Verdict::kReplayed) std::abort();
  }
  return 0;
}
