// IP and socket addresses (IPv4 and IPv6) as plain values, convertible to the ABI's
// patronus_addr. C++17-clean.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "patronus/util/status.hpp"

// The C ABI's address (patronus/abi/plugin_abi.h), declared only: code that converts to and from it
// includes the ABI header itself; everyone else does not get it through this header.
struct patronus_addr;

namespace patronus::model {

class IpAddress {
 public:
  enum class Family : std::uint8_t { kV4 = 4, kV6 = 6 };
  IpAddress() = default;
  static IpAddress v4(std::uint32_t host_order);
  static IpAddress v6(const std::array<std::uint8_t, 16>& bytes);
  // "10.0.0.1" or "fd00::1" (no brackets, no port).
  static Result<IpAddress> parse(std::string_view text);

  Family family() const { return family_; }
  bool is_v4() const { return family_ == Family::kV4; }
  bool is_unspecified() const;
  const std::array<std::uint8_t, 16>& bytes() const { return bytes_; }  // v4 uses [0..3]
  std::uint32_t v4_host_order() const;
  std::string to_string() const;

  friend bool operator==(const IpAddress& a, const IpAddress& b) {
    return a.family_ == b.family_ && a.bytes_ == b.bytes_;
  }
  friend bool operator!=(const IpAddress& a, const IpAddress& b) { return !(a == b); }
  friend bool operator<(const IpAddress& a, const IpAddress& b) {
    return a.family_ != b.family_ ? a.family_ < b.family_ : a.bytes_ < b.bytes_;
  }

 private:
  Family family_ = Family::kV4;
  std::array<std::uint8_t, 16> bytes_{};
};

class SocketAddress {
 public:
  SocketAddress() = default;
  SocketAddress(IpAddress ip, std::uint16_t port) : ip_(ip), port_(port) {}
  // "10.0.0.1:51820", "[fd00::1]:51820". The port is required (0 is allowed: any port).
  static Result<SocketAddress> parse(std::string_view text);
  static Result<SocketAddress> from_abi(const patronus_addr& a);

  const IpAddress& ip() const { return ip_; }
  std::uint16_t port() const { return port_; }
  patronus_addr to_abi() const;
  std::string to_string() const;

  friend bool operator==(const SocketAddress& a, const SocketAddress& b) {
    return a.ip_ == b.ip_ && a.port_ == b.port_;
  }
  friend bool operator!=(const SocketAddress& a, const SocketAddress& b) { return !(a == b); }
  friend bool operator<(const SocketAddress& a, const SocketAddress& b) {
    return a.ip_ == b.ip_ ? a.port_ < b.port_ : a.ip_ < b.ip_;
  }

 private:
  IpAddress ip_;
  std::uint16_t port_ = 0;
};

// A CIDR prefix ("10.0.0.0/8", "fd00::/48"). The address is stored masked to its length, so two
// spellings of one network compare equal. parse() refuses host bits unless `allow_host_bits`.
class IpPrefix {
 public:
  IpPrefix() = default;
  IpPrefix(const IpAddress& address, int length);  // masks `address`; length clamped to family
  static Result<IpPrefix> parse(std::string_view text, bool allow_host_bits = false);

  const IpAddress& network() const { return network_; }
  int length() const { return length_; }
  bool is_v4() const { return network_.is_v4(); }
  int max_length() const { return is_v4() ? 32 : 128; }
  bool contains(const IpAddress& a) const;
  // Number of host bits (max_length - length).
  int host_bits() const { return max_length() - length_; }
  // The address at offset `index` inside the prefix (index < 2^host_bits, low 64 bits only).
  IpAddress at(std::uint64_t index) const;
  std::string to_string() const;

  friend bool operator==(const IpPrefix& a, const IpPrefix& b) {
    return a.network_ == b.network_ && a.length_ == b.length_;
  }
  friend bool operator!=(const IpPrefix& a, const IpPrefix& b) { return !(a == b); }
  friend bool operator<(const IpPrefix& a, const IpPrefix& b) {
    return a.network_ == b.network_ ? a.length_ < b.length_ : a.network_ < b.network_;
  }

 private:
  IpAddress network_;
  int length_ = 0;
};

}  // namespace patronus::model

template <>
struct std::hash<patronus::model::IpAddress> {
  std::size_t operator()(const patronus::model::IpAddress& a) const noexcept;
};
template <>
struct std::hash<patronus::model::SocketAddress> {
  std::size_t operator()(const patronus::model::SocketAddress& a) const noexcept;
};
