// Address helpers for plugin authors: text <-> patronus_addr. Header-only, C++17.
#pragma once

#include <arpa/inet.h>

#include <cstring>
#include <optional>
#include <string>

#include "patronus/abi/plugin_abi.h"

namespace patronus::sdk {

// "10.0.0.1:7000" or "[fd00::1]:7000" -> patronus_addr; nullopt when malformed.
inline std::optional<patronus_addr> parse_addr(const std::string& text) {
  std::string host, port;
  if (!text.empty() && text[0] == '[') {
    const auto close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return std::nullopt;
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string::npos) return std::nullopt;
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  if (port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string::npos) {
    return std::nullopt;
  }
  const unsigned long p = std::stoul(port);
  if (p > 65535) return std::nullopt;
  patronus_addr a{};
  a.port = static_cast<std::uint16_t>(p);
  if (inet_pton(AF_INET, host.c_str(), a.bytes) == 1) {
    a.family = PATRONUS_AF_INET4;
  } else if (inet_pton(AF_INET6, host.c_str(), a.bytes) == 1) {
    a.family = PATRONUS_AF_INET6;
  } else {
    return std::nullopt;
  }
  return a;
}

inline std::string format_addr(const patronus_addr& a) {
  char buf[INET6_ADDRSTRLEN] = {};
  const bool v4 = a.family == PATRONUS_AF_INET4;
  inet_ntop(v4 ? AF_INET : AF_INET6, a.bytes, buf, sizeof buf);
  return v4 ? std::string(buf) + ":" + std::to_string(a.port)
            : "[" + std::string(buf) + "]:" + std::to_string(a.port);
}

inline bool same_addr(const patronus_addr& a, const patronus_addr& b) {
  return a.family == b.family && a.port == b.port &&
         std::memcmp(a.bytes, b.bytes, a.family == PATRONUS_AF_INET4 ? 4 : 16) == 0;
}

}  // namespace patronus::sdk
