#include "patronus/model/address.hpp"

#include "patronus/abi/plugin_abi.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

namespace patronus::model {

IpAddress IpAddress::v4(std::uint32_t host_order) {
  IpAddress a;
  a.family_ = Family::kV4;
  a.bytes_[0] = static_cast<std::uint8_t>(host_order >> 24);
  a.bytes_[1] = static_cast<std::uint8_t>(host_order >> 16);
  a.bytes_[2] = static_cast<std::uint8_t>(host_order >> 8);
  a.bytes_[3] = static_cast<std::uint8_t>(host_order);
  return a;
}

IpAddress IpAddress::v6(const std::array<std::uint8_t, 16>& bytes) {
  IpAddress a;
  a.family_ = Family::kV6;
  a.bytes_ = bytes;
  return a;
}

Result<IpAddress> IpAddress::parse(std::string_view text) {
  if (text.empty() || text.size() > 45) {
    return invalid_argument("'" + std::string(text) + "' is not an IP address");
  }
  std::string s(text);
  std::array<std::uint8_t, 16> buf{};
  if (s.find(':') == std::string::npos) {
    if (inet_pton(AF_INET, s.c_str(), buf.data()) == 1) {
      IpAddress a;
      a.family_ = Family::kV4;
      std::memcpy(a.bytes_.data(), buf.data(), 4);
      return a;
    }
  } else if (inet_pton(AF_INET6, s.c_str(), buf.data()) == 1) {
    return v6(buf);
  }
  return invalid_argument("'" + s + "' is not an IPv4 or IPv6 address");
}

bool IpAddress::is_unspecified() const {
  const std::size_t n = is_v4() ? 4 : 16;
  for (std::size_t i = 0; i < n; ++i) {
    if (bytes_[i] != 0) return false;
  }
  return true;
}

std::uint32_t IpAddress::v4_host_order() const {
  return (std::uint32_t{bytes_[0]} << 24) | (std::uint32_t{bytes_[1]} << 16) |
         (std::uint32_t{bytes_[2]} << 8) | std::uint32_t{bytes_[3]};
}

std::string IpAddress::to_string() const {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(is_v4() ? AF_INET : AF_INET6, bytes_.data(), buf, sizeof buf);
  return buf;
}

Result<SocketAddress> SocketAddress::parse(std::string_view text) {
  const std::string s(text);
  std::string host;
  std::string port;
  if (!s.empty() && s[0] == '[') {
    const auto close = s.find(']');
    if (close == std::string::npos || close + 1 >= s.size() || s[close + 1] != ':') {
      return invalid_argument("'" + s + "': expected [IPv6]:port");
    }
    host = s.substr(1, close - 1);
    port = s.substr(close + 2);
  } else {
    const auto colon = s.rfind(':');
    if (colon == std::string::npos) return invalid_argument("'" + s + "': expected host:port");
    host = s.substr(0, colon);
    port = s.substr(colon + 1);
    if (host.find(':') != std::string::npos) {
      return invalid_argument("'" + s +
                              "': an IPv6 address with a port needs brackets: [addr]:port");
    }
  }
  auto ip = IpAddress::parse(host);
  if (!ip.is_ok()) return ip.status();
  if (port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string::npos) {
    return invalid_argument("'" + s + "': port must be a number 0-65535");
  }
  const unsigned long p = std::stoul(port);
  if (p > 65535) return invalid_argument("'" + s + "': port must be a number 0-65535");
  return SocketAddress(ip.value(), static_cast<std::uint16_t>(p));
}

Result<SocketAddress> SocketAddress::from_abi(const patronus_addr& a) {
  if (a.family == PATRONUS_AF_INET4) {
    std::array<std::uint8_t, 16> b{};
    std::memcpy(b.data(), a.bytes, 4);
    const std::uint32_t v = (std::uint32_t{b[0]} << 24) | (std::uint32_t{b[1]} << 16) |
                            (std::uint32_t{b[2]} << 8) | b[3];
    return SocketAddress(IpAddress::v4(v), a.port);
  }
  if (a.family == PATRONUS_AF_INET6) {
    std::array<std::uint8_t, 16> b{};
    std::memcpy(b.data(), a.bytes, 16);
    return SocketAddress(IpAddress::v6(b), a.port);
  }
  return invalid_argument("address family " + std::to_string(a.family) +
                          " is neither 4 (IPv4) nor 6 (IPv6)");
}

patronus_addr SocketAddress::to_abi() const {
  patronus_addr a{};
  a.family = ip_.is_v4() ? PATRONUS_AF_INET4 : PATRONUS_AF_INET6;
  a.port = port_;
  std::memcpy(a.bytes, ip_.bytes().data(), ip_.is_v4() ? 4 : 16);
  return a;
}

std::string SocketAddress::to_string() const {
  if (ip_.is_v4()) return ip_.to_string() + ":" + std::to_string(port_);
  return "[" + ip_.to_string() + "]:" + std::to_string(port_);
}

namespace {

std::array<std::uint8_t, 16> mask_bytes(const std::array<std::uint8_t, 16>& in, int length,
                                        int max_length) {
  std::array<std::uint8_t, 16> out{};
  const int n = max_length / 8;
  for (int i = 0; i < n; ++i) {
    const int keep = std::min(8, std::max(0, length - i * 8));
    const auto mask = static_cast<std::uint8_t>(keep == 0 ? 0 : 0xFF << (8 - keep));
    out[static_cast<std::size_t>(i)] = in[static_cast<std::size_t>(i)] & mask;
  }
  return out;
}

}  // namespace

IpPrefix::IpPrefix(const IpAddress& address, int length) {
  const int max = address.is_v4() ? 32 : 128;
  length_ = std::clamp(length, 0, max);
  const auto bytes = mask_bytes(address.bytes(), length_, max);
  if (address.is_v4()) {
    network_ = IpAddress::v4((std::uint32_t{bytes[0]} << 24) | (std::uint32_t{bytes[1]} << 16) |
                             (std::uint32_t{bytes[2]} << 8) | std::uint32_t{bytes[3]});
  } else {
    network_ = IpAddress::v6(bytes);
  }
}

Result<IpPrefix> IpPrefix::parse(std::string_view text, bool allow_host_bits) {
  const std::string s(text);
  const auto slash = s.find('/');
  if (slash == std::string::npos) {
    return invalid_argument("'" + s + "' is not a CIDR prefix (expected address/length)");
  }
  auto ip = IpAddress::parse(std::string_view(s).substr(0, slash));
  if (!ip.is_ok()) return invalid_argument("'" + s + "': " + ip.status().message());
  const std::string len = s.substr(slash + 1);
  const int max = ip.value().is_v4() ? 32 : 128;
  if (len.empty() || len.size() > 3 || len.find_first_not_of("0123456789") != std::string::npos ||
      std::stoi(len) > max) {
    return invalid_argument("'" + s + "': prefix length must be a number 0-" + std::to_string(max));
  }
  IpPrefix p(ip.value(), std::stoi(len));
  if (!allow_host_bits && p.network() != ip.value()) {
    return invalid_argument("'" + s + "': host bits are set (the network is " + p.to_string() +
                            ")");
  }
  return p;
}

bool IpPrefix::contains(const IpAddress& a) const {
  if (a.family() != network_.family()) return false;
  return mask_bytes(a.bytes(), length_, max_length()) == network_.bytes();
}

IpAddress IpPrefix::at(std::uint64_t index) const {
  auto bytes = network_.bytes();
  const int last = max_length() / 8 - 1;
  for (int i = last; i >= 0 && index != 0; --i) {
    const auto b = static_cast<std::size_t>(i);
    bytes[b] = static_cast<std::uint8_t>(bytes[b] | (index & 0xFF));
    index >>= 8;
  }
  if (is_v4()) {
    return IpAddress::v4((std::uint32_t{bytes[0]} << 24) | (std::uint32_t{bytes[1]} << 16) |
                         (std::uint32_t{bytes[2]} << 8) | std::uint32_t{bytes[3]});
  }
  return IpAddress::v6(bytes);
}

std::string IpPrefix::to_string() const {
  return network_.to_string() + "/" + std::to_string(length_);
}

}  // namespace patronus::model

std::size_t std::hash<patronus::model::IpAddress>::operator()(
    const patronus::model::IpAddress& a) const noexcept {
  std::size_t h = static_cast<std::size_t>(a.family());
  for (auto b : a.bytes()) h = h * 131 + b;
  return h;
}

std::size_t std::hash<patronus::model::SocketAddress>::operator()(
    const patronus::model::SocketAddress& a) const noexcept {
  return std::hash<patronus::model::IpAddress>{}(a.ip()) * 65537 + a.port();
}
