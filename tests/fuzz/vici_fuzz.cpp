// The VICI codec on hostile bytes (what a compromised or buggy charon, or anything listening on
// its socket path, could send): the framer and the decoder never crash, and whatever decodes
// re-encodes to a segment that decodes to the same message; a decoded event read as list-sa
// (what the ipsec plugin does with charon's SA listings) is refused or parsed, never crashes.
#include <cstdlib>
#include <string_view>

#include "connection.hpp"
#include "vici.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace patronus::vici;
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  Framer f;
  f.feed(bytes);
  for (int i = 0; i < 64; ++i) {
    auto seg = f.next();
    if (!seg.is_ok() || !seg.value()) break;
  }
  auto p = decode(bytes);
  if (!p.is_ok()) return 0;
  (void)patronus::ipsec::parse_list_sa(p.value().message);
  auto again = encode(p.value());
  if (!again.is_ok()) return 0;  // a value that decoded cannot be too long; names may not be
  auto back = decode(std::string_view(again.value()).substr(4));
  if (!back.is_ok() || describe(back.value().message) != describe(p.value().message) ||
      back.value().type != p.value().type || back.value().name != p.value().name) {
    std::abort();
  }
  return 0;
}
