// The BFD codec (plugins/bfd/bfd_packet.hpp): SHA-1 against the FIPS 180 vectors, packets as
// RFC 5880 4.1 lays them out (a packet bfdd sent, captured), every check of 6.8.6 that needs no
// session, keyed SHA1 signing, and the sequence windows of 6.7.4 across the wrap.
#include <gtest/gtest.h>

#include <string>

#include "bfd_packet.hpp"

namespace {

using namespace patronus::bfd;

std::string hex(const std::uint8_t* p, std::size_t n) {
  static const char* d = "0123456789abcdef";
  std::string s;
  for (std::size_t i = 0; i < n; ++i) {
    s += d[p[i] >> 4];
    s += d[p[i] & 15];
  }
  return s;
}

std::string sha1_hex(const std::string& text) {
  const auto h = sha1(reinterpret_cast<const std::uint8_t*>(text.data()), text.size());
  return hex(h.data(), h.size());
}

TEST(BfdCodec, Sha1MatchesTheFipsVectors) {
  EXPECT_EQ(sha1_hex(""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  EXPECT_EQ(sha1_hex("abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
  EXPECT_EQ(sha1_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
  EXPECT_EQ(sha1_hex(std::string(1000, 'a')), "291e9a6c66994949b57ba5e650361e98fc36b1ba");
}

// A control packet FRR 8.4's bfdd sent to 10.99.0.2:3784 from 10.99.0.1:49152 before it heard
// anything (captured with a UDP socket in the namespace): version 1, diag 0, state Down,
// multiplier 3, length 24, its discriminator, Your Discriminator 0, 1 s / 1 s while not Up,
// echo 50 ms.
TEST(BfdCodec, DecodesAPacketBfddSent) {
  const std::uint8_t captured[] = {0x20, 0x40, 0x03, 0x18, 0x90, 0x22, 0x7d, 0xee,
                                   0x00, 0x00, 0x00, 0x00, 0x00, 0x0f, 0x42, 0x40,
                                   0x00, 0x0f, 0x42, 0x40, 0x00, 0x00, 0xc3, 0x50};
  Packet p;
  std::size_t len = 0;
  ASSERT_EQ(decode(captured, sizeof captured, &p, &len), Discard::kNone);
  EXPECT_EQ(len, 24u);
  EXPECT_EQ(p.version, 1);
  EXPECT_EQ(p.diag, Diag::kNone);
  EXPECT_EQ(p.state, State::kDown);
  EXPECT_FALSE(p.poll || p.final || p.cpi || p.auth_present || p.demand || p.multipoint);
  EXPECT_EQ(p.detect_mult, 3);
  EXPECT_EQ(p.my_disc, 0x90227deeu);
  EXPECT_EQ(p.your_disc, 0u);
  EXPECT_EQ(p.desired_min_tx_us, 1000000u);
  EXPECT_EQ(p.required_min_rx_us, 1000000u);
  EXPECT_EQ(p.required_min_echo_rx_us, 50000u);
  // And the same bytes come back out.
  std::uint8_t out[kMaxPacket];
  ASSERT_EQ(encode(p, out), 24u);
  EXPECT_EQ(hex(out, 24), hex(captured, 24));
}

TEST(BfdCodec, EveryFlagAndFieldRoundTrips) {
  Packet p;
  p.diag = Diag::kNeighborDown;
  p.state = State::kInit;
  p.final = true;
  p.cpi = true;
  p.demand = true;
  p.detect_mult = 255;
  p.my_disc = 0xffffffffu;
  p.your_disc = 1;
  p.desired_min_tx_us = 1000000;
  p.required_min_rx_us = 7;
  std::uint8_t b[kMaxPacket];
  const auto n = encode(p, b);
  EXPECT_EQ(b[0], 0x23);  // version 1, diag 3
  EXPECT_EQ(b[1], 0x80 | 0x10 | 0x08 | 0x02);
  Packet q;
  ASSERT_EQ(decode(b, n, &q), Discard::kNone);
  EXPECT_EQ(q.diag, Diag::kNeighborDown);
  EXPECT_EQ(q.state, State::kInit);
  EXPECT_TRUE(q.final && q.cpi && q.demand);
  EXPECT_FALSE(q.poll || q.multipoint || q.auth_present);
  EXPECT_EQ(q.my_disc, 0xffffffffu);
  EXPECT_EQ(q.required_min_rx_us, 7u);
}

// 6.8.6 in order: each malformed packet is refused for its own reason.
TEST(BfdCodec, ReceptionChecksRefuseEachMalformedPacketForItsReason) {
  Packet good;
  good.my_disc = 9;
  std::uint8_t base[kMaxPacket];
  encode(good, base);
  auto check = [&](auto mutate, std::size_t size, Discard want) {
    std::uint8_t b[kMaxPacket];
    std::memcpy(b, base, sizeof b);
    mutate(b);
    Packet p;
    EXPECT_EQ(decode(b, size, &p), want) << to_string(want);
  };
  check([](std::uint8_t*) {}, 23, Discard::kShort);
  check([](std::uint8_t* b) { b[0] = 0x40; }, 24, Discard::kVersion);
  check([](std::uint8_t* b) { b[3] = 23; }, 24, Discard::kLength);
  check([](std::uint8_t* b) { b[3] = 30; }, 24, Discard::kLength);     // beyond the datagram
  check([](std::uint8_t* b) { b[1] |= 0x04; }, 24, Discard::kLength);  // A needs 26
  check([](std::uint8_t* b) { b[2] = 0; }, 24, Discard::kDetectMult);
  check([](std::uint8_t* b) { b[1] |= 0x01; }, 24, Discard::kMultipoint);
  check([](std::uint8_t* b) { put32(b + 4, 0); }, 24, Discard::kMyDiscZero);
  // Simple password (type 1) is not spoken; a SHA1 section of the wrong size is malformed.
  check(
      [](std::uint8_t* b) {
        b[1] |= 0x04;
        b[3] = 24 + 5;
        b[24] = 1;
        b[25] = 5;
      },
      29, Discard::kAuthUnsupported);
  check(
      [](std::uint8_t* b) {
        b[1] |= 0x04;
        b[3] = 24 + 24;
        b[24] = kAuthKeyedSha1;
        b[25] = 24;
      },
      48, Discard::kAuthSection);
  check(
      [](std::uint8_t* b) {
        b[1] |= 0x04;
        b[3] = 24 + 28;
        b[24] = kAuthKeyedSha1;
        b[25] = 20;  // disagrees with Length
      },
      52, Discard::kAuthSection);
}

TEST(BfdCodec, KeyedSha1SignsAndAnyChangedBitFailsVerification) {
  Sha1Key key{};
  std::memcpy(key.data(), "secret", 6);
  Packet p;
  p.my_disc = 0x01020304;
  p.state = State::kUp;
  p.auth_present = true;
  p.auth.type = kAuthMeticulousKeyedSha1;
  p.auth.key_id = 7;
  p.auth.sequence = 0xfffffffe;
  std::uint8_t b[kMaxPacket];
  const auto n = encode(p, b);
  ASSERT_EQ(n, 52u);
  sign(b, n, key);
  EXPECT_TRUE(verify(b, n, key));
  Packet q;
  ASSERT_EQ(decode(b, n, &q), Discard::kNone);
  EXPECT_EQ(q.auth.type, kAuthMeticulousKeyedSha1);
  EXPECT_EQ(q.auth.key_id, 7);
  EXPECT_EQ(q.auth.sequence, 0xfffffffeu);
  // The digest is SHA1 over the packet with the key in the digest field (RFC 5880 6.7.4).
  std::uint8_t with_key[kMaxPacket];
  std::memcpy(with_key, b, n);
  std::memcpy(with_key + 32, key.data(), 20);
  const auto expect = sha1(with_key, n);
  EXPECT_EQ(hex(b + 32, 20), hex(expect.data(), 20));
  Sha1Key other = key;
  other[0] ^= 1;
  EXPECT_FALSE(verify(b, n, other));
  for (std::size_t i = 0; i < n; ++i) {
    std::uint8_t c[kMaxPacket];
    std::memcpy(c, b, n);
    c[i] ^= 0x10;
    EXPECT_FALSE(verify(c, n, key)) << "byte " << i;
  }
}

TEST(BfdCodec, SequenceWindowsFollowTheRfcAcrossTheWrap) {
  // Keyed: [last, last + 3 * mult]; meticulous: (last, last + 3 * mult].
  EXPECT_TRUE(sequence_ok(100, 100, 3, false));
  EXPECT_FALSE(sequence_ok(100, 100, 3, true)) << "a replay";
  EXPECT_TRUE(sequence_ok(109, 100, 3, true));
  EXPECT_FALSE(sequence_ok(110, 100, 3, true));
  EXPECT_FALSE(sequence_ok(99, 100, 3, false));
  EXPECT_TRUE(sequence_ok(3, 0xfffffffe, 3, true)) << "wraps";
  EXPECT_FALSE(sequence_ok(0xfffffffd, 0xfffffffe, 3, false));
}

}  // namespace
