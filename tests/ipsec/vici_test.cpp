// The VICI codec: byte-exact encoding of the README's example, round trips, framing across
// partial reads, and each malformed input refused with what and where.
#include <gtest/gtest.h>

#include "vici.hpp"

namespace patronus::vici {
namespace {

std::string bytes(std::initializer_list<int> b) {
  std::string s;
  for (int x : b) s.push_back(static_cast<char>(x));
  return s;
}

TEST(Vici, EncodesTheDocumentedLayoutByteForByte) {
  Packet p;
  p.type = PacketType::kCmdRequest;
  p.name = "x";
  p.message.set("k", "v");
  p.message.set_list("l", {"a"});
  p.message.section("s").set("q", "");
  const auto e = encode(p);
  ASSERT_TRUE(e.is_ok()) << e.status().to_string();
  const std::string body = bytes({0, 1, 'x',                          // CMD_REQUEST "x"
                                  3, 1, 'k', 0, 1, 'v',               // KEY_VALUE k=v
                                  4, 1, 'l', 5, 0, 1,   'a', 6,       // LIST l [a]
                                  1, 1, 's', 3, 1, 'q', 0,   0, 2});  // SECTION s {q=""}
  EXPECT_EQ(e.value(), bytes({0, 0, 0, static_cast<int>(body.size())}) + body);
}

TEST(Vici, RoundTripsNestedMessages) {
  Packet p;
  p.type = PacketType::kEvent;
  p.name = "ike-updown";
  p.message.set("up", "yes");
  Message& conn = p.message.section("site-b");
  conn.set("state", "ESTABLISHED").set_list("remote-vips", {});
  conn.section("child-sas").section("net-1").set("bytes-in", "1200");
  const auto e = encode(p);
  ASSERT_TRUE(e.is_ok());
  const auto d = decode(std::string_view(e.value()).substr(4));
  ASSERT_TRUE(d.is_ok()) << d.status().to_string();
  EXPECT_EQ(d.value().type, PacketType::kEvent);
  EXPECT_EQ(d.value().name, "ike-updown");
  EXPECT_EQ(describe(d.value().message), describe(p.message));
  const Message* child = d.value().message.child("site-b");
  ASSERT_NE(child, nullptr);
  EXPECT_EQ(child->get("state"), "ESTABLISHED");
  EXPECT_EQ(child->child("child-sas")->child("net-1")->get("bytes-in"), "1200");
  EXPECT_EQ(child->get("remote-vips"), std::nullopt) << "a list is not a string";
}

TEST(Vici, FramesSegmentsAcrossPartialReads) {
  Packet a, b;
  a.type = PacketType::kCmdResponse;
  a.message.set("success", "yes");
  b.type = PacketType::kEventConfirm;
  const std::string stream = encode(a).value() + encode(b).value();
  Framer f;
  std::vector<std::string> got;
  for (char c : stream) {  // one byte at a time
    f.feed(std::string_view(&c, 1));
    while (true) {
      auto s = f.next();
      ASSERT_TRUE(s.is_ok());
      if (!s.value()) break;
      got.push_back(*s.value());
    }
  }
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(decode(got[0]).value().message.get("success"), "yes");
  EXPECT_EQ(decode(got[1]).value().type, PacketType::kEventConfirm);
  Framer huge;
  huge.feed(bytes({0, 0x08, 0, 1}));  // 512 KiB + 1
  EXPECT_FALSE(huge.next().is_ok());
}

TEST(Vici, RefusesMalformedInputSayingWhereAndWhat) {
  struct Case {
    std::string in, want;
  } cases[] = {
      {"", "empty packet"},
      {bytes({9}), "unknown packet type 9"},
      {bytes({0, 5, 'a'}), "past the end"},
      {bytes({1, 3, 1, 'k', 0, 9, 'v'}), "past the end"},
      {bytes({1, 1, 1, 's'}), "unterminated section"},
      {bytes({1, 2}), "SECTION_END outside a section"},
      {bytes({1, 4, 1, 'l', 5, 0, 1, 'a'}), "unterminated list"},
      {bytes({1, 4, 1, 'l', 3, 1, 'k', 0, 0, 6}), "inside a list"},
      {bytes({1, 5, 0, 0}), "list element outside a list"},
      {bytes({1, 42}), "unknown element type 42"},
  };
  for (const auto& c : cases) {
    const auto d = decode(c.in);
    ASSERT_FALSE(d.is_ok()) << c.want;
    EXPECT_NE(d.status().message().find(c.want), std::string::npos) << d.status().message();
    EXPECT_NE(d.status().message().find("vici:"), std::string::npos);
  }
  // Nesting is bounded.
  std::string deep = bytes({1});
  for (int i = 0; i < 40; ++i) deep += bytes({1, 1, 's'});
  EXPECT_NE(decode(deep).status().message().find("deeper than 32"), std::string::npos);
}

TEST(Vici, RefusesToEncodeWhatTheLengthFieldsCannotCarry) {
  Packet p;
  p.name = std::string(256, 'n');
  EXPECT_NE(encode(p).status().message().find("packet name"), std::string::npos);
  Packet q;
  q.name = "load-shared";
  q.message.set("data", std::string(70000, 'x'));
  EXPECT_NE(encode(q).status().message().find("value of 'data'"), std::string::npos);
}

}  // namespace
}  // namespace patronus::vici
