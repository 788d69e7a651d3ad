// Kernel WireGuard's generic netlink answers on hostile bytes (a dump as the socket delivers it):
// whatever decodes must encode again as a change, and that change must decode back to the same
// peers and allowed IPs.
#include <cstdlib>

#include "genl.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace patronus;
  auto msgs = linuxnet::split_messages(data, size, 64);
  if (!msgs.is_ok()) return 0;
  for (const auto& m : msgs.value()) (void)wg::genl::decode_family_id(m);
  wg::UapiLimits limits;
  limits.max_peers = 256;
  limits.max_allowed_ips = 4096;
  auto d = wg::genl::decode_device(msgs.value(), limits);
  if (!d.is_ok()) return 0;
  wg::DeviceChange c;
  c.private_key = d.value().private_key;
  for (const auto& p : d.value().peers) {
    wg::PeerChange pc;
    pc.public_key = p.public_key;
    pc.endpoint = p.endpoint;
    pc.allowed_ips = p.allowed_ips;
    c.peers.push_back(pc);
  }
  auto out = wg::genl::encode_set_device(0x1c, "wg0", c, 1, 1024);
  std::vector<linuxnet::NlMessage> back;
  for (const auto& b : out) {
    auto one = linuxnet::split_messages(b.data(), b.size());
    if (!one.is_ok() || one.value().size() != 1) std::abort();
    back.push_back(one.value()[0]);
    back.back().payload[0] = 0;  // WG_CMD_GET_DEVICE: the same tree
  }
  auto again = wg::genl::decode_device(back, limits);
  if (!again.is_ok()) std::abort();
  // Adjacent peers with one key coalesce on both sides; the allowed IPs must all come back.
  std::size_t n1 = 0, n2 = 0;
  for (const auto& p : d.value().peers) n1 += p.allowed_ips.size();
  for (const auto& p : again.value().peers) n2 += p.allowed_ips.size();
  if (n1 != n2) std::abort();
  return 0;
}
