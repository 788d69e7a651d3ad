// Addresses arrive from YAML, the CLI and the database: parse must take any text, and what it
// accepts must print back to something that parses to the same address.
#include <cstdlib>
#include <string>

#include "patronus/abi/plugin_abi.h"
#include "patronus/model/address.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using patronus::model::SocketAddress;
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto a = SocketAddress::parse(text);
  if (a.is_ok()) {
    auto again = SocketAddress::parse(a.value().to_string());
    if (!again.is_ok() || again.value() != a.value()) std::abort();
    auto abi = SocketAddress::from_abi(a.value().to_abi());
    if (!abi.is_ok() || abi.value() != a.value()) std::abort();
  }
  return 0;
}
