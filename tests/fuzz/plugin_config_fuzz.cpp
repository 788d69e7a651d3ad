// User YAML converted into a plugin's config message (the pingpong schema).
#include <cstdlib>
#include <memory>
#include <string>

#include "patronus/core/config_schema.hpp"
#include "patronus/core/plugin_host.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static patronus::core::PluginRegistry* reg = new patronus::core::PluginRegistry();
  static std::shared_ptr<const patronus::core::PluginLibrary> lib = [] {
    auto l = reg->load_file(PATRONUS_FUZZ_PINGPONG);
    if (!l.is_ok()) std::abort();
    return l.value();
  }();
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto bytes = lib->schema()->text_to_bytes(text, "config");
  if (bytes.is_ok() && !lib->schema()->bytes_to_json(bytes.value()).is_ok()) std::abort();
  return 0;
}
