// Two plugins that throw. THROW_SDK: an SDK plugin whose configure() throws; the SDK turns it into
// an error status with the message. THROW_RAW: a raw-ABI plugin whose start() lets a C++
// exception escape through the C ABI; the host must contain it.
#include <stdexcept>

#include "patronus/sdk/plugin.hpp"

#ifdef THROW_SDK
namespace {
class Throws final : public patronus::sdk::ScorerPlugin {
 public:
  using ScorerPlugin::ScorerPlugin;
  void configure(const std::uint8_t*, std::size_t) override {
    throw patronus::sdk::Error("boom in configure");
  }
  patronus_score score(const patronus_metrics_window&) override { return {}; }
};
}  // namespace
PATRONUS_SDK_PLUGIN(Throws, "test-throws-sdk", "0.0.1", nullptr, nullptr, 0)
#else
namespace {
patronus_status create(const patronus_host_services*, void** out, char*, std::uint32_t) {
  *out = nullptr;
  return PATRONUS_OK;
}
patronus_status configure(void*, const std::uint8_t*, std::uint32_t, char*, std::uint32_t) {
  return PATRONUS_OK;
}
patronus_status start(void*, char*, std::uint32_t) {
  throw std::runtime_error("escaped");
}
patronus_status stop(void*) {
  return PATRONUS_OK;
}
void destroy(void*) {}
patronus_status score(void*, const patronus_metrics_window*, patronus_score*) {
  return PATRONUS_OK;
}
const patronus_scorer_v1 table{sizeof(patronus_scorer_v1), 0, &score, nullptr};
const patronus_plugin_descriptor* entry() {
  static patronus_plugin_descriptor d = [] {
    patronus_plugin_descriptor x{};
    x.struct_size = sizeof x;
    x.abi_major = PATRONUS_ABI_VERSION_MAJOR;
    x.abi_minor = PATRONUS_ABI_VERSION_MINOR;
    x.kind = PATRONUS_KIND_SCORER;
    x.name = "test-throws-raw";
    x.version = "0.0.1";
    x.create = &create;
    x.configure = &configure;
    x.start = &start;
    x.stop = &stop;
    x.destroy = &destroy;
    x.kind_table = &table;
    return x;
  }();
  return &d;
}
}  // namespace
PATRONUS_PLUGIN_ENTRY(entry);
#endif
