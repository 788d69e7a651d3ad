// The VICI codec: byte-exact encoding of the README's example, round trips, framing across
// partial reads, and each malformed input refused with what and where.
#include <gtest/gtest.h>

#include "vici.hpp"
#include "vici_session.hpp"

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

std::string answer(PacketType t, const Message& m = {}) {
  Packet p;
  p.type = t;
  p.message = m;
  return encode(p).value();
}

std::string event(const std::string& name, const Message& m) {
  Packet p;
  p.type = PacketType::kEvent;
  p.name = name;
  p.message = m;
  return encode(p).value();
}

TEST(ViciSession, AnswersGoToTheirRequestsInOrderAndEventsInBetween) {
  std::vector<std::string> seen;
  Session s([&](const Packet& p) { seen.push_back("event " + p.name); });
  ASSERT_TRUE(s.subscribe("ike-updown", [&](Status st) {
                 seen.push_back(st.is_ok() ? "registered" : st.message());
               }).is_ok());
  ASSERT_TRUE(s.command("version", {}, [&](Result<Message> r) {
                 seen.push_back("version " + r.value().get("daemon").value_or("?"));
               }).is_ok());
  ASSERT_TRUE(s.command("nope", {}, [&](Result<Message> r) {
                 seen.push_back(r.is_ok() ? "?" : r.status().message());
               }).is_ok());
  EXPECT_EQ(s.pending(), 3u);
  // What the session writes: the three requests, in order.
  const std::string out = s.take_output();
  Framer f;
  f.feed(out);
  EXPECT_EQ(decode(*f.next().value()).value().type, PacketType::kEventRegister);
  EXPECT_EQ(decode(*f.next().value()).value().name, "version");
  EXPECT_EQ(decode(*f.next().value()).value().name, "nope");
  EXPECT_FALSE(s.has_output());
  Message v;
  v.set("daemon", "charon");
  Message up;
  up.set("up", "yes");
  const std::string in = answer(PacketType::kEventConfirm) + event("ike-updown", up) +
                         answer(PacketType::kCmdResponse, v) + answer(PacketType::kCmdUnknown);
  // Split anywhere: the result is the same.
  ASSERT_TRUE(s.feed(std::string_view(in).substr(0, 7)).is_ok());
  ASSERT_TRUE(s.feed(std::string_view(in).substr(7)).is_ok());
  EXPECT_EQ(seen, (std::vector<std::string>{"registered", "event ike-updown", "version charon",
                                            "vici: charon does not know the command nope"}));
  EXPECT_EQ(s.pending(), 0u);
}

TEST(ViciSession, AnAnswerNobodyAskedForOrOfTheWrongKindIsAProtocolError) {
  Session s;
  EXPECT_NE(s.feed(answer(PacketType::kCmdResponse)).message().find("nothing was asked"),
            std::string::npos);
  Session t;
  ASSERT_TRUE(t.command("version", {}, [](Result<Message>) {}).is_ok());
  EXPECT_NE(t.feed(answer(PacketType::kEventConfirm))
                .message()
                .find("while waiting for the answer to version"),
            std::string::npos);
  Session u;
  Packet req;
  req.type = PacketType::kCmdRequest;
  req.name = "version";
  EXPECT_NE(u.feed(encode(req).value()).message().find("which only a client sends"),
            std::string::npos);
}

TEST(ViciSession, TheQueueIsBoundedAndALostConnectionAnswersEveryone) {
  Session s;
  int failed = 0;
  for (std::size_t i = 0; i < kMaxPending; ++i) {
    ASSERT_TRUE(
        s.command("list-sas", {}, [&](Result<Message> r) { failed += !r.is_ok(); }).is_ok());
  }
  const Status full = s.command("list-sas", {}, [](Result<Message>) {});
  EXPECT_EQ(full.code(), Code::kResourceExhausted);
  s.fail_all(Status(Code::kUnavailable, "charon closed the socket"));
  EXPECT_EQ(failed, static_cast<int>(kMaxPending));
  EXPECT_EQ(s.pending(), 0u);
}

// A message that carried a PSK is wiped through: its own strings and those of its sections (a
// section held elsewhere is emptied too, so the recursion reached it).
TEST(Vici, WipeEmptiesAMessageAndItsSections) {
  Message m;
  m.set("data", "a pre-shared key of the path");
  m.set_list("owners", {"a", "b"});
  m.section("inner").set("secret", "more");
  const auto inner = m.items.back().second.section;  // kept alive past the wipe
  ASSERT_TRUE(inner);
  ASSERT_EQ(inner->get("secret").value_or(""), "more");
  wipe(m);
  EXPECT_TRUE(m.items.empty());
  EXPECT_TRUE(inner->items.empty()) << "the section was not wiped";
}

}  // namespace
}  // namespace patronus::vici
