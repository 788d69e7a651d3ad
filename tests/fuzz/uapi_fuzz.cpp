// The WireGuard UAPI codec on hostile bytes (what a compromised or buggy device could answer):
// whatever it accepts must re-encode as a change without crashing.
#include <string_view>

#include "uapi.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace patronus::wg;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)frame_length(text);
  (void)parse_set_response(text);
  auto d = parse_get_response(text);
  if (!d.is_ok()) return 0;
  DeviceChange c;
  c.private_key = d.value().private_key;
  c.listen_port = d.value().listen_port;
  for (const auto& p : d.value().peers) {
    PeerChange pc;
    pc.public_key = p.public_key;
    pc.endpoint = p.endpoint;
    pc.allowed_ips = p.allowed_ips;
    c.peers.push_back(pc);
  }
  (void)encode_set(c);
  return 0;
}
