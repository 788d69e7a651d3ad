// Fleets for the controller's tests and benchmarks: site i has one WAN endpoint at
// 10.<i/250>.<i%250>.1, LAN 172.<16 + i/256>.<i%256>.0/24 and a seeded key (the same fleet every
// run).
#pragma once

#include <string>

#include "patronus/controller/compiler.hpp"
#include "patronus/mesh/keys.hpp"

namespace patronus::controller::test {

inline FleetSite fleet_site(int i, bool with_key = true) {
  FleetSite s;
  s.name = "s" + std::to_string(i);
  model::Endpoint e;
  e.name = "wan0";
  e.address = model::SocketAddress::parse("10." + std::to_string(i / 250) + "." +
                                          std::to_string(i % 250) + ".1:51820")
                  .value();
  s.endpoints.push_back(e);
  s.subnets.push_back(model::IpPrefix::parse("172." + std::to_string(16 + i / 256) + "." +
                                             std::to_string(i % 256) + ".0/24")
                          .value());
  s.public_keys.push_back(
      with_key
          ? mesh::key_to_base64(
                mesh::seeded_keypair(static_cast<std::uint64_t>(i) + 1, s.name).value().public_key)
          : "");
  return s;
}

}  // namespace patronus::controller::test
