// Kernel WireGuard over generic netlink: the "wireguard" family's two commands, as
// include/uapi/linux/wireguard.h documents them, built and parsed here (never by running `wg`).
//
//   WG_CMD_GET_DEVICE (a dump): the device's attributes, then its peers, each a nested attribute
//     with its allowed IPs nested again. A device with many peers comes in several messages (the
//     later ones carry only the name and more peers), and one peer may continue into the next
//     message with more allowed IPs: the reader coalesces. The dump ends with NLMSG_DONE, which
//     carries an errno when the device could not be read.
//   WG_CMD_SET_DEVICE: the same tree; a change too large for one message is split the same way
//     (device attributes and REPLACE_PEERS only in the first, a peer's REPLACE_ALLOWEDIPS only in
//     its first fragment).
//
// The same DeviceState and DeviceChange as the UAPI codec, so reconciliation is one piece of code
// for both backends. Parsing is defensive like the UAPI's: every length checked, peers and
// allowed IPs bounded.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "rtnl.hpp"
#include "uapi.hpp"

namespace patronus::wg::genl {

// Generic netlink's controller: which id the kernel gave the "wireguard" family.
std::vector<std::uint8_t> encode_get_family(const std::string& name, std::uint32_t seq);
Result<std::uint16_t> decode_family_id(const linuxnet::NlMessage& m);

std::vector<std::uint8_t> encode_get_device(std::uint16_t family, const std::string& ifname,
                                            std::uint32_t seq);
// The messages of one dump (NLMSG_DONE excluded), coalesced into one device.
Result<DeviceState> decode_device(const std::vector<linuxnet::NlMessage>& messages,
                                  const UapiLimits& limits = {});

// One or more SET_DEVICE requests (sequence numbers seq, seq+1, ...), each at most max_message
// bytes (at least 512).
std::vector<std::vector<std::uint8_t>> encode_set_device(std::uint16_t family,
                                                         const std::string& ifname,
                                                         const DeviceChange& change,
                                                         std::uint32_t seq,
                                                         std::size_t max_message = 32768);

// The device over a synchronous generic netlink socket (linuxnet::Rtnl::open_generic()).
class KernelDevices {
 public:
  // Resolves the family: an error that says the kernel has no WireGuard when it does not.
  static Result<KernelDevices> open();
  Result<DeviceState> get(const std::string& ifname);
  Status set(const std::string& ifname, const DeviceChange& change);

 private:
  KernelDevices(linuxnet::Rtnl nl, std::uint16_t family) : nl_(std::move(nl)), family_(family) {}
  linuxnet::Rtnl nl_;
  std::uint16_t family_;
};

}  // namespace patronus::wg::genl
