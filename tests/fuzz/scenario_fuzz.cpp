// The simulator's scenario parser on hostile bytes; whatever it accepts must also expand its
// random faults, merge every variant's plugin settings and render them as plugin YAML without
// crashing, as the runner does before it builds anything.
#include <string>
#include <vector>

#include "scenario.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace patronus::sim;
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto parsed = parse_scenario(text, "fuzz");
  if (!parsed.is_ok()) return 0;
  const Scenario& s = parsed.value();
  std::vector<PathRef> paths;  // a full mesh of the endpoints, bounded
  for (std::size_t a = 0; a < s.sites.size() && paths.size() < 4096; ++a) {
    for (std::size_t b = a + 1; b < s.sites.size() && paths.size() < 4096; ++b) {
      for (std::size_t i = 0; i < s.sites[a].endpoints.size(); ++i) {
        for (std::size_t j = 0; j < s.sites[b].endpoints.size(); ++j) {
          paths.push_back({a, i, b, j, ""});
        }
      }
    }
  }
  for (const auto& f : expand_faults(s, s.seed, paths)) (void)to_string(f.action);
  (void)plugin_yaml(plugin_settings(s, nullptr));
  for (const auto& v : s.variants) (void)plugin_yaml(plugin_settings(s, &v));
  return 0;
}
