// Address helpers for plugin authors: text <-> patronus_addr. Header-only, C++17.
#pragma once

#include <arpa/inet.h>

#include <cstring>
#include <optional>
#include <string>

#include "patronus/abi/plugin_abi.h"

namespace patronus::sdk {

// "10.0.0.1" or "fd00::1" (no port) -> patronus_addr with port 0; nullopt when malformed.
inline std::optional<patronus_addr> parse_ip(const std::string& text) {
  patronus_addr a{};
  if (inet_pton(AF_INET, text.c_str(), a.bytes) == 1) {
    a.family = PATRONUS_AF_INET4;
  } else if (inet_pton(AF_INET6, text.c_str(), a.bytes) == 1) {
    a.family = PATRONUS_AF_INET6;
  } else {
    return std::nullopt;
  }
  return a;
}

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
  auto a = parse_ip(host);
  if (a) a->port = static_cast<std::uint16_t>(p);
  return a;
}

// The address alone: "10.0.0.1", "fd00::1".
inline std::string format_ip(const patronus_addr& a) {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(a.family == PATRONUS_AF_INET4 ? AF_INET : AF_INET6, a.bytes, buf, sizeof buf);
  return buf;
}

inline std::string format_addr(const patronus_addr& a) {
  return a.family == PATRONUS_AF_INET4 ? format_ip(a) + ":" + std::to_string(a.port)
                                       : "[" + format_ip(a) + "]:" + std::to_string(a.port);
}

// The same address, ports aside.
inline bool same_ip(const patronus_addr& a, const patronus_addr& b) {
  return a.family == b.family &&
         std::memcmp(a.bytes, b.bytes, a.family == PATRONUS_AF_INET4 ? 4 : 16) == 0;
}

inline bool same_addr(const patronus_addr& a, const patronus_addr& b) {
  return same_ip(a, b) && a.port == b.port;
}

}  // namespace patronus::sdk
