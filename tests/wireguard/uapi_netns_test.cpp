// The UAPI codec against a real wireguard-go in a network namespace of its own: configure a
// device and two peers, read the state back, change one peer and remove another without
// touching the rest, and get the device's own error for a bad request. Needs root (CI runs as
// root) and wireguard-go; names carry the pid; everything is removed even when a check fails.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "netns.hpp"
#include "uapi.hpp"

namespace patronus::wg {
namespace {

// One request and its answer on the device's UAPI socket, through the plugin's UapiExchange
// (blocking reads and writes: a test helper, not the plugin's way).
Result<std::string> exchange(const std::string& path, const std::string& request) {
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return unavailable("socket: " + std::string(std::strerror(errno)));
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::strncpy(sa.sun_path, path.c_str(), sizeof sa.sun_path - 1);
  UapiExchange x(request);
  Status st = Status::ok();
  if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    st = unavailable(path + ": " + std::strerror(errno));
  }
  while (st.is_ok() && !x.pending_output().empty()) {
    const ssize_t n = write(fd, x.pending_output().data(), x.pending_output().size());
    if (n <= 0) st = unavailable(path + ": write: " + std::strerror(errno));
    if (n > 0) x.wrote(static_cast<std::size_t>(n));
  }
  while (st.is_ok() && !x.done()) {
    char chunk[4096];
    const ssize_t n = read(fd, chunk, sizeof chunk);
    if (n <= 0) {
      st = x.closed();
      break;
    }
    auto r = x.received(chunk, static_cast<std::size_t>(n));
    if (!r.is_ok()) st = r.status();
  }
  close(fd);
  if (!st.is_ok()) return st;
  return std::string(x.response());
}

Key key_of(std::uint8_t fill) {
  Key k{};
  k.fill(fill);
  k[31] = 0x40;  // any 32 bytes are a key to wireguard-go; keep them distinct and non-zero
  return k;
}

const PeerState* find(const DeviceState& d, const Key& k) {
  for (const auto& p : d.peers) {
    if (p.public_key == k) return &p;
  }
  return nullptr;
}

class UapiInterop : public test::NetnsTest {};

TEST_F(UapiInterop, ConfiguresAndReadsBackARealWireguardGo) {
  const std::string ifname = "wgU" + std::to_string(getpid());
  test::WireguardGo wg(ns(), ifname);
  ASSERT_TRUE(test::wait_for_wireguard(ns(), ifname)) << "wireguard-go did not start";

  DeviceChange c;
  c.private_key = key_of(0x11);
  c.listen_port = 51820;
  c.fwmark = 0x42;
  PeerChange p1;
  p1.public_key = key_of(0x21);
  p1.endpoint = model::SocketAddress::parse("192.0.2.7:51821").value();
  p1.keepalive_s = 25;
  p1.allowed_ips = {model::IpPrefix::parse("10.0.0.2/32").value(),
                    model::IpPrefix::parse("fd00::2/128").value()};
  PeerChange p2;
  p2.public_key = key_of(0x22);
  p2.allowed_ips = {model::IpPrefix::parse("10.0.0.3/32").value()};
  c.peers = {p1, p2};
  auto set = exchange(wg.socket_path(), encode_set(c));
  ASSERT_TRUE(set.is_ok()) << set.status().message();
  ASSERT_TRUE(parse_set_response(set.value()).is_ok()) << set.value();

  auto got = exchange(wg.socket_path(), std::string(kGetRequest));
  ASSERT_TRUE(got.is_ok()) << got.status().message();
  auto d = parse_get_response(got.value());
  ASSERT_TRUE(d.is_ok()) << d.status().message() << "\n" << got.value();
  // wireguard-go keeps (and reports) the key clamped.
  ASSERT_TRUE(d.value().private_key.has_value());
  EXPECT_NE(*d.value().private_key, *c.private_key);
  EXPECT_EQ(*d.value().private_key, clamped(*c.private_key));
  EXPECT_EQ(d.value().listen_port, 51820);
  EXPECT_EQ(d.value().fwmark, 0x42u);
  ASSERT_EQ(d.value().peers.size(), 2u);
  const PeerState* r1 = find(d.value(), p1.public_key);
  ASSERT_NE(r1, nullptr);
  EXPECT_EQ(r1->endpoint->to_string(), "192.0.2.7:51821");
  EXPECT_EQ(r1->keepalive_s, 25);
  EXPECT_EQ(r1->allowed_ips.size(), 2u);
  EXPECT_EQ(r1->protocol_version, 1u);

  // One peer's prefixes replaced, one peer removed, one added: the first keeps its endpoint.
  DeviceChange inc;
  PeerChange u1;
  u1.public_key = p1.public_key;
  u1.update_only = true;
  u1.replace_allowed_ips = true;
  u1.allowed_ips = {model::IpPrefix::parse("10.0.1.0/24").value()};
  PeerChange r2;
  r2.public_key = p2.public_key;
  r2.remove = true;
  PeerChange p3;
  p3.public_key = key_of(0x23);
  p3.allowed_ips = {model::IpPrefix::parse("10.0.0.4/32").value()};
  inc.peers = {u1, r2, p3};
  set = exchange(wg.socket_path(), encode_set(inc));
  ASSERT_TRUE(set.is_ok() && parse_set_response(set.value()).is_ok());
  got = exchange(wg.socket_path(), std::string(kGetRequest));
  ASSERT_TRUE(got.is_ok());
  d = parse_get_response(got.value());
  ASSERT_TRUE(d.is_ok()) << d.status().message();
  EXPECT_EQ(d.value().peers.size(), 2u);
  r1 = find(d.value(), p1.public_key);
  ASSERT_NE(r1, nullptr);
  ASSERT_EQ(r1->allowed_ips.size(), 1u);
  EXPECT_EQ(r1->allowed_ips[0].to_string(), "10.0.1.0/24");
  EXPECT_EQ(r1->endpoint->to_string(), "192.0.2.7:51821") << "an update touched the endpoint";
  EXPECT_EQ(find(d.value(), p2.public_key), nullptr);
  EXPECT_NE(find(d.value(), p3.public_key), nullptr);
  EXPECT_EQ(d.value().private_key, clamped(*c.private_key))
      << "the device keys were not part of it";

  // The device's own refusal comes back as its errno.
  set = exchange(wg.socket_path(), "set=1\nlisten_port=abc\n\n");
  ASSERT_TRUE(set.is_ok()) << set.status().message();
  const Status refused = parse_set_response(set.value());
  ASSERT_FALSE(refused.is_ok());
  EXPECT_NE(refused.message().find("errno=-22"), std::string::npos) << refused.message();
  // An operation it does not know: the device hangs up without a word, and that is said.
  auto unknown = exchange(wg.socket_path(), "bogus=1\n\n");
  ASSERT_FALSE(unknown.is_ok());
  EXPECT_NE(unknown.status().message().find("without an answer"), std::string::npos)
      << unknown.status().message();
}

}  // namespace
}  // namespace patronus::wg
