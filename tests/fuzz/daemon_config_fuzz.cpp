#include <string>

#include "patronus/core/daemon_config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  (void)patronus::core::parse_daemon_config(text, "/tmp");
  return 0;
}
