// The sites file parser on hostile bytes; whatever it accepts must also build into a mesh and a
// plan without crashing.
#include <string>

#include "patronus/mesh/graph.hpp"
#include "patronus/mesh/plan.hpp"
#include "patronus/mesh/sites.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace patronus::mesh;
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto f = parse_sites_yaml(text, "fuzz");
  if (!f.is_ok() || f.value().sites.size() > 64) return 0;
  for (auto kind : {TopologyKind::kFullMesh, TopologyKind::kPartial, TopologyKind::kExplicit}) {
    TopologyOptions o;
    o.kind = kind;
    auto m = MeshGraph::build(f.value(), o);
    if (!m.is_ok()) continue;
    for (std::size_t s = 0; s < m.value().num_sites(); ++s) {
      for (std::size_t e = 0; e < m.value().site(s).site.endpoints.size(); ++e) {
        auto& k = m.value().public_key(s, e);
        if (k.empty()) k = "YQR7nMvgt/H59Qina08ME5YgJjV4A9lssjvQKbJfBXg=";
      }
    }
    auto overlay = assign_overlay(m.value(), {});
    if (!overlay.is_ok()) continue;
    auto plan = make_plan(m.value(), std::move(overlay).value());
    if (plan.is_ok()) (void)plan_to_json(m.value(), plan.value());
  }
  return 0;
}
