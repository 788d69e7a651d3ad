// Probe packets come from the network: decode must accept any bytes; what it accepts must
// round-trip through encode.
#include <cstdlib>
#include <cstring>

#include "pingpong_packet.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace pp = patronus::pingpong;
  const auto p = pp::decode(data, size);
  if (p) {
    std::uint8_t out[pp::kHeaderSize];
    pp::encode(*p, out);
    if (std::memcmp(out, data, pp::kHeaderSize) != 0) std::abort();
  }
  return 0;
}
