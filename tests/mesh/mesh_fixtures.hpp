// Building sites files in code for the mesh tests and benchmarks.
#pragma once

#include <string>
#include <vector>

#include "patronus/mesh/sites.hpp"

namespace patronus::test {

struct EndpointDef {
  std::string name;
  model::InterfaceType type = model::InterfaceType::kWan;
  bool ipv6 = false;
  double cost = 0.0;
};

// Site i is "s<i>"; endpoint j of site i has the address 10.(i/250).(i%250).(j+1):51820 (or
// [fd00::i:j]:51820 for IPv6 endpoints), unique across the file.
inline mesh::SiteSpec make_site(std::size_t i, const std::vector<EndpointDef>& endpoints) {
  mesh::SiteSpec s;
  s.site.name = "s" + std::to_string(i);
  for (std::size_t j = 0; j < endpoints.size(); ++j) {
    model::Endpoint e;
    e.name = endpoints[j].name;
    e.type = endpoints[j].type;
    e.cost_per_gb = endpoints[j].cost;
    const std::string addr =
        endpoints[j].ipv6
            ? "[fd00::" + std::to_string(i + 1) + ":" + std::to_string(j + 1) + "]:51820"
            : "10." + std::to_string(i / 250) + "." + std::to_string(i % 250) + "." +
                  std::to_string(j + 1) + ":51820";
    e.address = model::SocketAddress::parse(addr).value();
    s.site.endpoints.push_back(e);
    s.public_keys.emplace_back();
  }
  return s;
}

inline mesh::SitesFile make_sites(std::size_t n,
                                  const std::vector<EndpointDef>& endpoints = {{"wan0"}}) {
  mesh::SitesFile f;
  for (std::size_t i = 0; i < n; ++i) f.sites.push_back(make_site(i, endpoints));
  return f;
}

}  // namespace patronus::test
