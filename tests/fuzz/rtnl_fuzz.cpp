// rtnetlink parsing on hostile bytes: a kernel answer (or a buffer) with any lengths.
#include "rtnl.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace patronus::linuxnet;
  auto msgs = split_messages(data, size, 64);
  if (!msgs.is_ok()) return 0;
  for (const auto& m : msgs.value()) {
    (void)decode_route(m);
    (void)decode_rule(m);
    (void)decode_ack(m);
    (void)parse_attrs(m.payload, 12, 64);
  }
  return 0;
}
