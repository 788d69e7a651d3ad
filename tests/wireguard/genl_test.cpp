// Kernel WireGuard's generic netlink messages. This machine's kernel has no WireGuard, so the
// kernel's answers are built here byte by byte from include/uapi/linux/wireguard.h with a
// separate little writer (not the codec under test): a device dump as the kernel sends it (a peer
// continued into a second message), a controller answer, and hostile variants. Requests are
// compared byte for byte with the documented layout; large changes are split and reassemble.
#include <gtest/gtest.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <linux/wireguard.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cstring>

#include "genl.hpp"

namespace {

using namespace patronus;
using Bytes = std::vector<std::uint8_t>;

// ---- an independent writer of netlink bytes -------------------------------------------------

Bytes le16(std::uint16_t v) {
  return {static_cast<std::uint8_t>(v), static_cast<std::uint8_t>(v >> 8)};
}
Bytes le32(std::uint32_t v) {
  return {static_cast<std::uint8_t>(v), static_cast<std::uint8_t>(v >> 8),
          static_cast<std::uint8_t>(v >> 16), static_cast<std::uint8_t>(v >> 24)};
}
Bytes le64(std::uint64_t v) {
  Bytes b = le32(static_cast<std::uint32_t>(v)), h = le32(static_cast<std::uint32_t>(v >> 32));
  b.insert(b.end(), h.begin(), h.end());
  return b;
}
Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}
// type, length = 4 + payload, payload, zero padding to 4.
Bytes attr(std::uint16_t type, const Bytes& payload) {
  Bytes out = cat({le16(static_cast<std::uint16_t>(4 + payload.size())), le16(type), payload});
  out.resize((out.size() + 3) & ~std::size_t{3}, 0);
  return out;
}
Bytes nested(std::uint16_t type, std::initializer_list<Bytes> children) {
  return attr(static_cast<std::uint16_t>(type | NLA_F_NESTED), cat(children));
}
Bytes str(const char* s) {
  return Bytes(s, s + std::strlen(s) + 1);
}
Bytes key(std::uint8_t fill) {
  return Bytes(32, fill);
}
Bytes message(std::uint16_t type, std::uint16_t flags, std::uint32_t seq, std::uint8_t cmd,
              const Bytes& attrs) {
  const Bytes genl = {cmd, 1, 0, 0};
  return cat({le32(static_cast<std::uint32_t>(16 + 4 + attrs.size())), le16(type), le16(flags),
              le32(seq), le32(0), genl, attrs});
}
Bytes sockaddr4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d,
                std::uint16_t port) {
  return cat({le16(AF_INET),
              {static_cast<std::uint8_t>(port >> 8), static_cast<std::uint8_t>(port)},
              {a, b, c, d},
              Bytes(8, 0)});
}
Bytes allowed4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d, std::uint8_t len) {
  return nested(
      0, {attr(WGALLOWEDIP_A_FAMILY, le16(AF_INET)), attr(WGALLOWEDIP_A_IPADDR, {a, b, c, d}),
          attr(WGALLOWEDIP_A_CIDR_MASK, {len})});
}
Bytes allowed6_fd00_64() {
  Bytes addr(16, 0);
  addr[0] = 0xfd;
  return nested(0, {attr(WGALLOWEDIP_A_FAMILY, le16(AF_INET6)), attr(WGALLOWEDIP_A_IPADDR, addr),
                    attr(WGALLOWEDIP_A_CIDR_MASK, {64})});
}

constexpr std::uint16_t kFamily = 0x1c;

Result<std::vector<linuxnet::NlMessage>> split(const Bytes& b) {
  return linuxnet::split_messages(b.data(), b.size());
}

// What the kernel answers for `wg show wg0`: the device, one peer whose allowed IPs continue in
// a second message (as the kernel does when a message fills up).
Bytes device_dump() {
  const Bytes first = message(
      kFamily, NLM_F_MULTI, 7, WG_CMD_GET_DEVICE,
      cat({attr(WGDEVICE_A_IFINDEX, le32(5)), attr(WGDEVICE_A_IFNAME, str("wg0")),
           attr(WGDEVICE_A_PRIVATE_KEY, key(0x11)), attr(WGDEVICE_A_PUBLIC_KEY, key(0x22)),
           attr(WGDEVICE_A_LISTEN_PORT, le16(51820)), attr(WGDEVICE_A_FWMARK, le32(0x50)),
           nested(
               WGDEVICE_A_PEERS,
               {nested(
                   0, {attr(WGPEER_A_PUBLIC_KEY, key(0x33)), attr(WGPEER_A_PRESHARED_KEY, key(0)),
                       attr(WGPEER_A_ENDPOINT, sockaddr4(192, 0, 2, 1, 51821)),
                       attr(WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL, le16(25)),
                       attr(WGPEER_A_LAST_HANDSHAKE_TIME, cat({le64(1700000000), le64(500)})),
                       attr(WGPEER_A_RX_BYTES, le64(1000)), attr(WGPEER_A_TX_BYTES, le64(2000)),
                       nested(WGPEER_A_ALLOWEDIPS, {allowed4(10, 0, 0, 2, 32), allowed6_fd00_64()}),
                       attr(WGPEER_A_PROTOCOL_VERSION, le32(1))})})}));
  const Bytes second =
      message(kFamily, NLM_F_MULTI, 7, WG_CMD_GET_DEVICE,
              cat({attr(WGDEVICE_A_IFNAME, str("wg0")),
                   nested(WGDEVICE_A_PEERS,
                          {nested(0, {attr(WGPEER_A_PUBLIC_KEY, key(0x33)),
                                      nested(WGPEER_A_ALLOWEDIPS, {allowed4(10, 0, 1, 0, 24)})}),
                           nested(0, {attr(WGPEER_A_PUBLIC_KEY, key(0x44))})})}));
  return cat({first, second});
}

TEST(WgGenl, ADeviceDumpIsDecodedAndASplitPeerCoalesced) {
  auto msgs = split(device_dump());
  ASSERT_TRUE(msgs.is_ok()) << msgs.status().to_string();
  ASSERT_EQ(msgs.value().size(), 2u);
  auto d = wg::genl::decode_device(msgs.value());
  ASSERT_TRUE(d.is_ok()) << d.status().to_string();
  const auto& dev = d.value();
  ASSERT_TRUE(dev.private_key.has_value());
  EXPECT_EQ((*dev.private_key)[0], 0x11);
  EXPECT_EQ(dev.listen_port, 51820);
  EXPECT_EQ(dev.fwmark, 0x50u);
  ASSERT_EQ(dev.peers.size(), 2u);
  const auto& p = dev.peers[0];
  EXPECT_EQ(p.public_key[31], 0x33);
  EXPECT_FALSE(p.preshared_key.has_value());  // all zero: none
  ASSERT_TRUE(p.endpoint.has_value());
  EXPECT_EQ(p.endpoint->to_string(), "192.0.2.1:51821");
  EXPECT_EQ(p.keepalive_s, 25);
  EXPECT_EQ(p.last_handshake_ns, 1700000000LL * 1'000'000'000 + 500);
  EXPECT_EQ(p.rx_bytes, 1000u);
  EXPECT_EQ(p.tx_bytes, 2000u);
  EXPECT_EQ(p.protocol_version, 1u);
  ASSERT_EQ(p.allowed_ips.size(), 3u);  // two in the first message, one continued
  EXPECT_EQ(p.allowed_ips[0].to_string(), "10.0.0.2/32");
  EXPECT_EQ(p.allowed_ips[1].to_string(), "fd00::/64");
  EXPECT_EQ(p.allowed_ips[2].to_string(), "10.0.1.0/24");
  EXPECT_EQ(dev.peers[1].public_key[0], 0x44);
  EXPECT_EQ(dev.peers[1].last_handshake_ns, 0);
}

TEST(WgGenl, HostileAnswersAreRefusedNamingWhatIsWrong) {
  auto refuse = [](const Bytes& attrs, const std::string& needle,
                   wg::UapiLimits limits = wg::UapiLimits{}) {
    auto msgs = split(message(kFamily, NLM_F_MULTI, 1, WG_CMD_GET_DEVICE, attrs));
    ASSERT_TRUE(msgs.is_ok());
    auto d = wg::genl::decode_device(msgs.value(), limits);
    ASSERT_FALSE(d.is_ok()) << needle;
    EXPECT_NE(d.status().message().find(needle), std::string::npos) << d.status().message();
  };
  refuse(attr(WGDEVICE_A_PRIVATE_KEY, Bytes(31, 1)), "private key is 31 bytes");
  refuse(attr(WGDEVICE_A_LISTEN_PORT, le32(1)), "listen port is 4 bytes");
  refuse(nested(WGDEVICE_A_PEERS, {nested(0, {attr(WGPEER_A_RX_BYTES, le64(1))})}),
         "a peer without a public key");
  refuse(nested(WGDEVICE_A_PEERS, {nested(0, {attr(WGPEER_A_PUBLIC_KEY, key(1)),
                                              attr(WGPEER_A_ENDPOINT, Bytes(12, 0))})}),
         "an endpoint of 12 bytes");
  refuse(nested(WGDEVICE_A_PEERS,
                {nested(0, {attr(WGPEER_A_PUBLIC_KEY, key(1)),
                            nested(WGPEER_A_ALLOWEDIPS, {allowed4(10, 0, 0, 0, 33)})})}),
         "mask 33");
  refuse(nested(WGDEVICE_A_PEERS, {nested(0, {attr(WGPEER_A_PUBLIC_KEY, key(1)),
                                              attr(WGPEER_A_LAST_HANDSHAKE_TIME,
                                                   cat({le64(1), le64(2'000'000'000)}))})}),
         "last handshake time out of range");
  wg::UapiLimits small;
  small.max_peers = 1;
  refuse(nested(WGDEVICE_A_PEERS, {nested(0, {attr(WGPEER_A_PUBLIC_KEY, key(1))}),
                                   nested(0, {attr(WGPEER_A_PUBLIC_KEY, key(2))})}),
         "more than 1 peers", small);
  // An attribute claiming more bytes than are left.
  Bytes bad = attr(WGDEVICE_A_FWMARK, le32(1));
  bad[0] = 200;
  refuse(bad, "claims 200 bytes");
  // The wrong command, a message too short for its genl header.
  auto msgs = split(message(kFamily, 0, 1, WG_CMD_SET_DEVICE, {}));
  ASSERT_TRUE(msgs.is_ok());
  EXPECT_FALSE(wg::genl::decode_device(msgs.value()).is_ok());
  linuxnet::NlMessage shortm;
  shortm.payload = {0, 1};
  EXPECT_FALSE(wg::genl::decode_device({shortm}).is_ok());
}

TEST(WgGenl, RequestsHaveTheDocumentedLayout) {
  // GET_DEVICE: a dump request naming the interface.
  EXPECT_EQ(wg::genl::encode_get_device(kFamily, "wg0", 9),
            message(kFamily, NLM_F_REQUEST | NLM_F_DUMP, 9, WG_CMD_GET_DEVICE,
                    attr(WGDEVICE_A_IFNAME, str("wg0"))));
  // The controller's GETFAMILY.
  EXPECT_EQ(wg::genl::encode_get_family("wireguard", 3),
            message(GENL_ID_CTRL, NLM_F_REQUEST | NLM_F_ACK, 3, CTRL_CMD_GETFAMILY,
                    attr(CTRL_ATTR_FAMILY_NAME, str("wireguard"))));
  // SET_DEVICE: key, port, mark, one new peer, one updated, one removed.
  wg::DeviceChange c;
  wg::Key k{};
  k.fill(0x11);
  c.private_key = k;
  c.listen_port = 51820;
  c.fwmark = 0x50;
  wg::PeerChange add;
  add.public_key.fill(0x33);
  add.endpoint = model::SocketAddress::parse("192.0.2.1:51821").value();
  add.keepalive_s = 25;
  add.replace_allowed_ips = true;
  add.allowed_ips = {model::IpPrefix::parse("10.0.0.2/32").value()};
  wg::PeerChange upd;
  upd.public_key.fill(0x44);
  upd.update_only = true;
  upd.keepalive_s = 0;
  wg::PeerChange rm;
  rm.public_key.fill(0x55);
  rm.remove = true;
  c.peers = {add, upd, rm};
  const auto got = wg::genl::encode_set_device(kFamily, "wg0", c, 4);
  ASSERT_EQ(got.size(), 1u);
  const Bytes want =
      message(kFamily, NLM_F_REQUEST | NLM_F_ACK, 4, WG_CMD_SET_DEVICE,
              cat({attr(WGDEVICE_A_IFNAME, str("wg0")), attr(WGDEVICE_A_FLAGS, le32(0)),
                   attr(WGDEVICE_A_PRIVATE_KEY, key(0x11)),
                   attr(WGDEVICE_A_LISTEN_PORT, le16(51820)), attr(WGDEVICE_A_FWMARK, le32(0x50)),
                   nested(WGDEVICE_A_PEERS,
                          {nested(0, {attr(WGPEER_A_PUBLIC_KEY, key(0x33)),
                                      attr(WGPEER_A_FLAGS, le32(WGPEER_F_REPLACE_ALLOWEDIPS)),
                                      attr(WGPEER_A_ENDPOINT, sockaddr4(192, 0, 2, 1, 51821)),
                                      attr(WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL, le16(25)),
                                      nested(WGPEER_A_ALLOWEDIPS, {allowed4(10, 0, 0, 2, 32)})}),
                           nested(0, {attr(WGPEER_A_PUBLIC_KEY, key(0x44)),
                                      attr(WGPEER_A_FLAGS, le32(WGPEER_F_UPDATE_ONLY)),
                                      attr(WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL, le16(0))}),
                           nested(0, {attr(WGPEER_A_PUBLIC_KEY, key(0x55)),
                                      attr(WGPEER_A_FLAGS, le32(WGPEER_F_REMOVE_ME))})})}));
  EXPECT_EQ(got[0], want);
}

TEST(WgGenl, ALargeChangeIsSplitIntoMessagesThatReassemble) {
  wg::DeviceChange c;
  c.replace_peers = true;
  c.listen_port = 51820;
  for (int i = 0; i < 40; ++i) {
    wg::PeerChange p;
    p.public_key.fill(static_cast<std::uint8_t>(i + 1));
    p.endpoint = model::SocketAddress(model::IpAddress::v4(0xc0000200u + i), 51820);
    p.replace_allowed_ips = true;
    const int n = i == 7 ? 1500 : 2;  // one peer far larger than a message
    for (int j = 0; j < n; ++j) {
      p.allowed_ips.push_back(
          model::IpPrefix(model::IpAddress::v4(0x0a000000u + (i << 16) + (j << 4)), 28));
    }
    c.peers.push_back(p);
  }
  const std::size_t max = 4096;
  const auto msgs = wg::genl::encode_set_device(kFamily, "wg0", c, 100, max);
  ASSERT_GT(msgs.size(), 5u);
  Bytes all;
  for (std::size_t i = 0; i < msgs.size(); ++i) {
    EXPECT_LE(msgs[i].size(), max) << i;
    all.insert(all.end(), msgs[i].begin(), msgs[i].end());
  }
  auto split_all = split(all);
  ASSERT_TRUE(split_all.is_ok());
  // Only the first message carries REPLACE_PEERS and the device's attributes; a continued peer's
  // later fragments are UPDATE_ONLY without REPLACE_ALLOWEDIPS. Read back as a dump (the same
  // tree), every peer and every allowed IP is there once, in order.
  std::vector<linuxnet::NlMessage> as_dump = split_all.value();
  for (std::size_t i = 0; i < as_dump.size(); ++i) {
    EXPECT_EQ(as_dump[i].seq, 100 + i);
    as_dump[i].payload[0] = WG_CMD_GET_DEVICE;
    const auto& pl = split_all.value()[i].payload;
    const std::string text(pl.begin(), pl.end());
    const std::string port_attr(
        reinterpret_cast<const char*>(attr(WGDEVICE_A_LISTEN_PORT, le16(51820)).data()), 8);
    EXPECT_EQ(text.find(port_attr) != std::string::npos, i == 0) << i;
  }
  auto back = wg::genl::decode_device(as_dump);
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  ASSERT_EQ(back.value().peers.size(), c.peers.size());
  for (std::size_t i = 0; i < c.peers.size(); ++i) {
    EXPECT_EQ(back.value().peers[i].public_key, c.peers[i].public_key);
    EXPECT_EQ(back.value().peers[i].allowed_ips, c.peers[i].allowed_ips) << i;
  }
}

TEST(WgGenl, TheControllerAnswerGivesTheFamilyId) {
  auto msgs = split(
      message(GENL_ID_CTRL, 0, 3, CTRL_CMD_NEWFAMILY,
              cat({attr(CTRL_ATTR_FAMILY_NAME, str("wireguard")),
                   attr(CTRL_ATTR_FAMILY_ID, le16(kFamily)), attr(CTRL_ATTR_VERSION, le32(1))})));
  ASSERT_TRUE(msgs.is_ok());
  auto id = wg::genl::decode_family_id(msgs.value()[0]);
  ASSERT_TRUE(id.is_ok()) << id.status().to_string();
  EXPECT_EQ(id.value(), kFamily);
  msgs = split(message(GENL_ID_CTRL, 0, 3, CTRL_CMD_NEWFAMILY, attr(CTRL_ATTR_FAMILY_ID, le32(1))));
  ASSERT_TRUE(msgs.is_ok());
  EXPECT_FALSE(wg::genl::decode_family_id(msgs.value()[0]).is_ok());
}

TEST(WgGenl, WithoutKernelWireGuardOpeningSaysSo) {
  if (::access("/sys/module/wireguard", F_OK) == 0) {
    GTEST_SKIP() << "this kernel has WireGuard";
  }
  auto k = wg::genl::KernelDevices::open();
  ASSERT_FALSE(k.is_ok());
  EXPECT_NE(k.status().message().find("this kernel has no WireGuard"), std::string::npos)
      << k.status().message();
  EXPECT_NE(k.status().message().find("backend: userspace"), std::string::npos);
}

}  // namespace
