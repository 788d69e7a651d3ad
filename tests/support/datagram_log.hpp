// Records what an Env endpoint receives (sender and DatagramInfo), for the backend tests of
// datagram TTLs (tests/env/datagram_info_test.cpp, tests/sim/ns3_env_test.cpp). C++17.
#pragma once

#include <vector>

#include "patronus/env/env.hpp"

namespace patronus::test {

struct Arrival {
  model::SocketAddress from;
  env::DatagramInfo info;
};

// A handler appending every datagram to *out.
inline env::DatagramInfoHandler record_arrivals(std::vector<Arrival>* out) {
  return [out](const model::SocketAddress& from, const env::DatagramInfo& info, const std::uint8_t*,
               std::size_t) {
    out->push_back({from, info});
  };
}

}  // namespace patronus::test
