// The UAPI codec against a transcript recorded from wireguard-go v0.0.20220316 (`get=1` after
// `wg set wguX private-key ... listen-port 51999 fwmark 0x42 peer ... endpoint 10.9.9.9:51820
// allowed-ips 10.0.0.2/32,fd00::2/128 persistent-keepalive 25`), and against hostile text.
#include "uapi.hpp"

#include <gtest/gtest.h>

namespace patronus::wg {
namespace {

const std::string kRecorded =
    "private_key=78c09cb10db4e7cbb485016469f595391f7e434f2d8d297bd043b1f634da9e41\n"
    "listen_port=51999\nfwmark=66\n"
    "public_key=63ec9ee06c0328d29ba5fa01a9aa1da8f604fdecd7746fcc83c6453d3d37c43b\n"
    "preshared_key=0000000000000000000000000000000000000000000000000000000000000000\n"
    "protocol_version=1\nendpoint=10.9.9.9:51820\nlast_handshake_time_sec=0\n"
    "last_handshake_time_nsec=0\ntx_bytes=0\nrx_bytes=0\npersistent_keepalive_interval=25\n"
    "allowed_ip=10.0.0.2/32\nallowed_ip=fd00::2/128\nerrno=0\n\n";

Key key_of(std::uint8_t fill) {
  Key k{};
  k.fill(fill);
  return k;
}

TEST(Uapi, ParsesWhatWireguardGoAnswers) {
  auto d = parse_get_response(kRecorded);
  ASSERT_TRUE(d.is_ok()) << d.status().message();
  ASSERT_TRUE(d.value().private_key.has_value());
  EXPECT_EQ(key_to_hex(*d.value().private_key),
            "78c09cb10db4e7cbb485016469f595391f7e434f2d8d297bd043b1f634da9e41");
  EXPECT_EQ(d.value().listen_port, 51999);
  EXPECT_EQ(d.value().fwmark, 0x42u);
  ASSERT_EQ(d.value().peers.size(), 1u);
  const PeerState& p = d.value().peers[0];
  EXPECT_EQ(key_to_hex(p.public_key),
            "63ec9ee06c0328d29ba5fa01a9aa1da8f604fdecd7746fcc83c6453d3d37c43b");
  EXPECT_FALSE(p.preshared_key.has_value()) << "all zero means none";
  EXPECT_EQ(p.protocol_version, 1u);
  ASSERT_TRUE(p.endpoint.has_value());
  EXPECT_EQ(p.endpoint->to_string(), "10.9.9.9:51820");
  EXPECT_EQ(p.last_handshake_ns, 0) << "never";
  EXPECT_EQ(p.keepalive_s, 25);
  ASSERT_EQ(p.allowed_ips.size(), 2u);
  EXPECT_EQ(p.allowed_ips[0].to_string(), "10.0.0.2/32");
  EXPECT_EQ(p.allowed_ips[1].to_string(), "fd00::2/128");
}

TEST(Uapi, HandshakeTimeAndCountersOfSeveralPeers) {
  const std::string text = "listen_port=1\npublic_key=" + key_to_hex(key_of(1)) +
                           "\nlast_handshake_time_sec=1700000000\nlast_handshake_time_nsec="
                           "5\nrx_bytes=18446744073709551615\ntx_bytes=7\npublic_key=" +
                           key_to_hex(key_of(2)) + "\nendpoint=[fd00::1]:51820\nerrno=0\n\n";
  auto d = parse_get_response(text);
  ASSERT_TRUE(d.is_ok()) << d.status().message();
  ASSERT_EQ(d.value().peers.size(), 2u);
  EXPECT_FALSE(d.value().private_key.has_value());
  EXPECT_EQ(d.value().peers[0].last_handshake_ns, 1700000000LL * 1000000000LL + 5);
  EXPECT_EQ(d.value().peers[0].rx_bytes, 18446744073709551615ULL);
  EXPECT_EQ(d.value().peers[0].tx_bytes, 7u);
  EXPECT_EQ(d.value().peers[1].last_handshake_ns, 0);
  EXPECT_EQ(d.value().peers[1].endpoint->to_string(), "[fd00::1]:51820");
}

TEST(Uapi, EncodesIncrementalChanges) {
  DeviceChange c;
  c.private_key = key_of(0xab);
  c.listen_port = 51820;
  c.fwmark = 7;
  PeerChange add;
  add.public_key = key_of(1);
  add.endpoint = model::SocketAddress::parse("192.0.2.1:51821").value();
  add.keepalive_s = 25;
  add.replace_allowed_ips = true;
  add.allowed_ips = {model::IpPrefix::parse("10.0.0.2/32").value(),
                     model::IpPrefix::parse("fd00::/64").value()};
  PeerChange drop;
  drop.public_key = key_of(2);
  drop.remove = true;
  drop.endpoint = add.endpoint;  // ignored: a removed peer takes no keys
  PeerChange touch;
  touch.public_key = key_of(3);
  touch.update_only = true;
  c.peers = {add, drop, touch};
  EXPECT_EQ(encode_set(c),
            "set=1\nprivate_key=" + key_to_hex(key_of(0xab)) +
                "\nlisten_port=51820\nfwmark=7\npublic_key=" + key_to_hex(key_of(1)) +
                "\nendpoint=192.0.2.1:51821\npersistent_keepalive_interval=25\n"
                "replace_allowed_ips=true\nallowed_ip=10.0.0.2/32\n"
                "allowed_ip=fd00::/64\npublic_key=" +
                key_to_hex(key_of(2)) + "\nremove=true\npublic_key=" + key_to_hex(key_of(3)) +
                "\nupdate_only=true\n\n");
}

TEST(Uapi, SetAnswers) {
  EXPECT_TRUE(parse_set_response("errno=0\n\n").is_ok());
  const Status st = parse_set_response("errno=-22\n\n");
  ASSERT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("errno=-22 (Invalid argument)"), std::string::npos) << st.message();
  // The errno a taken listen port gives, in words.
  EXPECT_NE(parse_set_response("errno=-98\n\n").message().find("(Address already in use)"),
            std::string::npos);
  EXPECT_FALSE(parse_set_response("errno=0\n").is_ok());
  EXPECT_FALSE(parse_set_response("errno=x\n\n").is_ok());
  EXPECT_FALSE(parse_set_response("errno=0\nfoo=1\n\n").is_ok());
  EXPECT_FALSE(parse_set_response("").is_ok());
}

TEST(Uapi, FramesEndAtTheFirstEmptyLine) {
  EXPECT_FALSE(frame_length("errno=0\n").has_value());
  EXPECT_EQ(frame_length("errno=0\n\n"), 9u);
  EXPECT_EQ(frame_length("errno=0\n\nerrno=1\n\n"), 9u);
  EXPECT_EQ(frame_length("\n\n"), 2u);
}

// A key this parser does not know (a newer wireguard-go's) is ignored, on the device and on a
// peer; what it does know is still read.
TEST(Uapi, KeysOfANewerDeviceAreIgnored) {
  const std::string pk = "public_key=" + key_to_hex(key_of(1)) + "\n";
  auto d = parse_get_response("listen_port=7\nfuture_knob=on\n" + pk +
                              "future_peer_stat=12\nrx_bytes=5\nerrno=0\n\n");
  ASSERT_TRUE(d.is_ok()) << d.status().message();
  EXPECT_EQ(d.value().listen_port, 7);
  ASSERT_EQ(d.value().peers.size(), 1u);
  EXPECT_EQ(d.value().peers[0].rx_bytes, 5u);
}

TEST(Uapi, HostileTextIsRefusedWithItsLine) {
  struct Case {
    std::string text, expect;
  };
  const std::string pk = "public_key=" + key_to_hex(key_of(1)) + "\n";
  const std::vector<Case> cases = {
      {"listen_port=1\n", "no end of line"},
      {"listen_port=1\n\n", "no errno"},
      {"errno=-95\n\n", "errno=-95"},
      {"listen_port=65536\nerrno=0\n\n", "line 1: listen_port: not a port"},
      {"private_key=12\nerrno=0\n\n", "line 1: private_key: not 64 hex digits"},
      {pk + "allowed_ip=10.0.0.0/33\nerrno=0\n\n", "line 2: allowed_ip: not a prefix"},
      {pk + "endpoint=10.0.0.1\nerrno=0\n\n", "line 2: endpoint: not an address:port"},
      {pk + "last_handshake_time_nsec=1000000000\nerrno=0\n\n", "not nanoseconds"},
      {"noequals\nerrno=0\n\n", "line 1: expected key=value"},
      {"=1\nerrno=0\n\n", "line 1: expected key=value"},
      {"errno=0\nlisten_port=1\n\n", "line 2: a line after errno"},
      {"errno=0\n\nmore", "bytes after the end"},
      {"listen_port=" + std::string(300, '1') + "\nerrno=0\n\n", "longer than 256 bytes"},
      {"fwmark=-1\nerrno=0\n\n", "fwmark: not a 32-bit number"},
  };
  for (const auto& c : cases) {
    auto d = parse_get_response(c.text);
    ASSERT_FALSE(d.is_ok()) << c.text;
    EXPECT_NE(d.status().message().find(c.expect), std::string::npos)
        << d.status().message() << " (wanted: " << c.expect << ")";
  }
}

TEST(Uapi, CountsAreBounded) {
  UapiLimits small;
  small.max_peers = 2;
  small.max_allowed_ips = 3;
  std::string three_peers;
  for (std::uint8_t i = 1; i <= 3; ++i) three_peers += "public_key=" + key_to_hex(key_of(i)) + "\n";
  auto d = parse_get_response(three_peers + "errno=0\n\n", small);
  ASSERT_FALSE(d.is_ok());
  EXPECT_NE(d.status().message().find("more than 2 peers"), std::string::npos);
  std::string ips = "public_key=" + key_to_hex(key_of(1)) + "\n";
  for (int i = 0; i < 4; ++i) ips += "allowed_ip=10.0.0." + std::to_string(i) + "/32\n";
  d = parse_get_response(ips + "errno=0\n\n", small);
  ASSERT_FALSE(d.is_ok());
  EXPECT_NE(d.status().message().find("more than 3 allowed IPs"), std::string::npos);
  small.max_bytes = 10;
  EXPECT_FALSE(parse_get_response(kRecorded, small).is_ok());
}

TEST(Uapi, PrivateKeysAreComparedClamped) {
  Key k;
  k.fill(0xff);
  const Key c = clamped(k);
  EXPECT_EQ(c[0], 0xf8);
  EXPECT_EQ(c[31], 0x7f);
  EXPECT_EQ(clamped(c), c);
}

TEST(Uapi, AnExchangeIsBytesInAndOut) {
  UapiExchange x{std::string(kGetRequest)};
  EXPECT_EQ(x.pending_output(), "get=1\n\n");
  x.wrote(3);
  EXPECT_EQ(x.pending_output(), "=1\n\n") << "a partial write resumes";
  x.wrote(100);
  EXPECT_TRUE(x.pending_output().empty());
  // The answer arrives in pieces.
  for (std::size_t i = 0; i < kRecorded.size(); i += 7) {
    auto r = x.received(kRecorded.data() + i, std::min<std::size_t>(7, kRecorded.size() - i));
    ASSERT_TRUE(r.is_ok()) << r.status().message();
    EXPECT_EQ(r.value(), i + 7 >= kRecorded.size());
  }
  ASSERT_TRUE(x.done());
  EXPECT_TRUE(parse_get_response(x.response()).is_ok());
  EXPECT_TRUE(x.closed().is_ok());
  EXPECT_FALSE(x.received("x", 1).is_ok()) << "nothing may follow the answer";

  UapiExchange unknown("bogus=1\n\n");
  unknown.wrote(9);
  const Status st = unknown.closed();
  ASSERT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("without an answer"), std::string::npos) << st.message();

  UapiExchange small(std::string(kGetRequest), 16);
  EXPECT_FALSE(small.received(kRecorded.data(), kRecorded.size()).is_ok()) << "bounded";
  UapiExchange trailing{std::string(kGetRequest)};
  EXPECT_FALSE(trailing.received("errno=0\n\nerrno=0\n\n", 18).is_ok());
}

TEST(Uapi, KeysInHex) {
  auto k = key_from_hex("78C09CB10DB4E7CBB485016469F595391F7E434F2D8D297BD043B1F634DA9E41");
  ASSERT_TRUE(k.is_ok());
  EXPECT_EQ(key_to_hex(k.value()),
            "78c09cb10db4e7cbb485016469f595391f7e434f2d8d297bd043b1f634da9e41");
  EXPECT_FALSE(key_from_hex("78c0").is_ok());
  EXPECT_FALSE(key_from_hex(std::string(64, 'g')).is_ok());
}

}  // namespace
}  // namespace patronus::wg

namespace patronus::wg {
namespace {

DesiredPeer desired_peer(std::uint8_t k, const char* endpoint, const char* allowed) {
  DesiredPeer p;
  p.public_key = key_of(k);
  p.endpoint = model::SocketAddress::parse(endpoint).value();
  p.allowed_ips = {model::IpPrefix::parse(allowed).value()};
  p.keepalive_s = 25;
  return p;
}

PeerState state_of(const DesiredPeer& d) {
  PeerState s;
  s.public_key = d.public_key;
  s.endpoint = d.endpoint;
  s.allowed_ips = d.allowed_ips;
  s.keepalive_s = d.keepalive_s;
  return s;
}

// The device as the plan wants it: nothing to send.
struct Reconcile : ::testing::Test {
  DesiredDevice want;
  DeviceState have;
  std::map<Key, model::SocketAddress> applied;
  void SetUp() override {
    want.private_key = key_of(0x11);
    want.listen_port = 51820;
    want.peers = {desired_peer(1, "192.0.2.1:51820", "10.0.0.1/32"),
                  desired_peer(2, "192.0.2.2:51820", "10.0.0.2/32"),
                  desired_peer(3, "192.0.2.3:51820", "10.0.0.3/32")};
    have.private_key = clamped(want.private_key);
    have.listen_port = 51820;
    for (const auto& p : want.peers) {
      have.peers.push_back(state_of(p));
      applied[p.public_key] = p.endpoint;
    }
  }
};

TEST_F(Reconcile, ADeviceThatIsRightGetsNothing) {
  EXPECT_TRUE(empty(reconcile(want, have, applied)));
  // The device reports the clamped key: the unclamped one in the plan is the same key.
  EXPECT_NE(clamped(want.private_key), want.private_key);
}

TEST_F(Reconcile, OnePeerChangedNamesOnlyThatPeer) {
  want.peers[1].allowed_ips.push_back(model::IpPrefix::parse("192.168.2.0/24").value());
  const DeviceChange c = reconcile(want, have, applied);
  ASSERT_EQ(c.peers.size(), 1u);
  EXPECT_EQ(c.peers[0].public_key, key_of(2));
  EXPECT_TRUE(c.peers[0].update_only);
  EXPECT_TRUE(c.peers[0].replace_allowed_ips);
  EXPECT_EQ(c.peers[0].allowed_ips.size(), 2u);
  EXPECT_FALSE(c.peers[0].endpoint) << "its endpoint is right: not set again";
  EXPECT_FALSE(c.private_key || c.listen_port || c.replace_peers);
  // And the text sent names no other peer.
  const std::string text = encode_set(c);
  EXPECT_EQ(text.find(key_to_hex(key_of(1))), std::string::npos);
  EXPECT_EQ(text.find(key_to_hex(key_of(3))), std::string::npos);
  EXPECT_EQ(text.find("replace_peers"), std::string::npos);
}

TEST_F(Reconcile, NewPeersAreAddedAndUnwantedOnesRemoved) {
  want.peers.erase(want.peers.begin());                                     // peer 1 goes
  want.peers.push_back(desired_peer(4, "192.0.2.4:51820", "10.0.0.4/32"));  // peer 4 comes
  const DeviceChange c = reconcile(want, have, applied);
  ASSERT_EQ(c.peers.size(), 2u);
  EXPECT_EQ(c.peers[0].public_key, key_of(4));
  EXPECT_FALSE(c.peers[0].update_only);
  EXPECT_TRUE(c.peers[0].endpoint && c.peers[0].keepalive_s && c.peers[0].replace_allowed_ips);
  EXPECT_EQ(c.peers[1].public_key, key_of(1));
  EXPECT_TRUE(c.peers[1].remove);
}

TEST_F(Reconcile, ARoamedPeerIsLeftWhereItIsUnlessThePlanMovedIt) {
  have.peers[0].endpoint = model::SocketAddress::parse("198.51.100.9:40000").value();
  EXPECT_TRUE(empty(reconcile(want, have, applied))) << "roamed: WireGuard follows it";
  want.peers[0].endpoint = model::SocketAddress::parse("192.0.2.101:51820").value();
  const DeviceChange c = reconcile(want, have, applied);
  ASSERT_EQ(c.peers.size(), 1u);
  EXPECT_EQ(c.peers[0].endpoint->to_string(), "192.0.2.101:51820");
  // Adopted after a restart (nothing applied yet): the device is brought to the plan.
  want.peers[0].endpoint = model::SocketAddress::parse("192.0.2.1:51820").value();
  EXPECT_EQ(reconcile(want, have, {}).peers.size(), 1u);
}

TEST_F(Reconcile, DeviceSettingsAreSetWhenWrongOrMissing) {
  have.private_key.reset();
  have.listen_port = 0;
  want.fwmark = 0x42;
  const DeviceChange c = reconcile(want, have, applied);
  EXPECT_EQ(c.private_key, want.private_key);
  EXPECT_EQ(c.listen_port, 51820);
  EXPECT_EQ(c.fwmark, 0x42u);
  EXPECT_TRUE(c.peers.empty());
}

}  // namespace
}  // namespace patronus::wg
