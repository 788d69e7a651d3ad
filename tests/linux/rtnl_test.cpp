// rtnetlink messages: what we send decodes back to what we meant, and what the kernel (or a
// hostile buffer) sends is checked before it is read.
#include "rtnl.hpp"

#include <gtest/gtest.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include <cstring>

namespace patronus::linuxnet {
namespace {

NlMessage only(const std::vector<std::uint8_t>& bytes) {
  auto m = split_messages(bytes.data(), bytes.size());
  EXPECT_TRUE(m.is_ok()) << m.status().message();
  EXPECT_EQ(m.value().size(), 1u);
  return m.value().at(0);
}

TEST(Rtnl, RoutesRoundTrip) {
  Route r;
  r.table = 1000;  // above 255: carried in RTA_TABLE only
  r.dst = model::IpPrefix::parse("192.168.50.0/24").value();
  r.oif = 7;
  r.gateway = model::IpAddress::parse("10.99.0.2").value();
  r.metric = 20;
  const auto bytes = encode_route(Op::kReplace, r, 42);
  const NlMessage m = only(bytes);
  EXPECT_EQ(m.type, RTM_NEWROUTE);
  EXPECT_EQ(m.seq, 42u);
  EXPECT_EQ(m.flags, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE);
  auto back = decode_route(m);
  ASSERT_TRUE(back.is_ok()) << back.status().message();
  EXPECT_EQ(back.value().table, 1000u);
  EXPECT_EQ(back.value().dst, r.dst);
  EXPECT_EQ(back.value().oif, 7u);
  EXPECT_EQ(back.value().gateway, r.gateway);
  EXPECT_EQ(back.value().metric, 20u);
  EXPECT_EQ(back.value().protocol, kRtprotPatronus);

  Route v6;
  v6.table = 100;
  v6.dst = model::IpPrefix::parse("fd00:50::/64").value();
  v6.oif = 3;
  auto b6 = decode_route(only(encode_route(Op::kAdd, v6, 1)));
  ASSERT_TRUE(b6.is_ok());
  EXPECT_EQ(b6.value().dst.to_string(), "fd00:50::/64");
  EXPECT_FALSE(b6.value().gateway.has_value());
  EXPECT_EQ(only(encode_route(Op::kDelete, v6, 2)).type, RTM_DELROUTE);
}

TEST(Rtnl, RulesRoundTrip) {
  Rule r;
  r.priority = 1000;
  r.table = 100;
  r.ip_proto = 17;
  r.dport = std::make_pair(std::uint16_t{5060}, std::uint16_t{5061});
  r.dscp = 46;  // EF
  r.fwmark = 0x10;
  r.fwmask = 0xff;
  auto back = decode_rule(only(encode_rule(Op::kAdd, r, 9)));
  ASSERT_TRUE(back.is_ok()) << back.status().message();
  EXPECT_EQ(back.value().priority, 1000u);
  EXPECT_EQ(back.value().table, 100u);
  EXPECT_EQ(back.value().ip_proto, std::optional<std::uint8_t>(17));
  EXPECT_EQ(back.value().dport, r.dport);
  EXPECT_EQ(back.value().dscp, std::optional<std::uint8_t>(46));
  EXPECT_EQ(back.value().fwmark, r.fwmark);
  EXPECT_EQ(back.value().fwmask, r.fwmask);
  EXPECT_EQ(back.value().protocol, kRtprotPatronus);
  EXPECT_FALSE(back.value().ipv6);
}

// A route-based IPsec interface: kind "xfrm" with its if_id (and underlay link) nested in
// IFLA_INFO_DATA, as the kernel's xfrm_interface expects.
TEST(Rtnl, XfrmInterfaceCarriesItsIfId) {
  const NlMessage m = only(encode_xfrm_link_create("ipsec1", 2, 5, 9));
  EXPECT_EQ(m.type, RTM_NEWLINK);
  EXPECT_EQ(m.flags, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
  auto attrs = parse_attrs(m.payload, sizeof(ifinfomsg));
  ASSERT_TRUE(attrs.is_ok());
  std::string name, kind;
  std::uint32_t if_id = 0, link = 0;
  for (const auto& a : attrs.value()) {
    if (a.type == IFLA_IFNAME) name = reinterpret_cast<const char*>(a.data);
    if (a.type != IFLA_LINKINFO) continue;
    auto info = parse_attrs(a.data, a.size);
    ASSERT_TRUE(info.is_ok());
    for (const auto& i : info.value()) {
      if (i.type == IFLA_INFO_KIND) kind = reinterpret_cast<const char*>(i.data);
      if (i.type != IFLA_INFO_DATA) continue;
      auto data = parse_attrs(i.data, i.size);
      ASSERT_TRUE(data.is_ok());
      for (const auto& d : data.value()) {
        ASSERT_EQ(d.size, 4u);
        if (d.type == 1) std::memcpy(&link, d.data, 4);   // IFLA_XFRM_LINK
        if (d.type == 2) std::memcpy(&if_id, d.data, 4);  // IFLA_XFRM_IF_ID
      }
    }
  }
  EXPECT_EQ(name, "ipsec1");
  EXPECT_EQ(kind, "xfrm");
  EXPECT_EQ(if_id, 2u);
  EXPECT_EQ(link, 5u);
}

TEST(Rtnl, AcknowledgementsAndErrors) {
  std::vector<std::uint8_t> buf(NLMSG_LENGTH(sizeof(nlmsgerr)));
  auto* h = reinterpret_cast<nlmsghdr*>(buf.data());
  h->nlmsg_len = static_cast<std::uint32_t>(buf.size());
  h->nlmsg_type = NLMSG_ERROR;
  h->nlmsg_seq = 5;
  auto* e = reinterpret_cast<nlmsgerr*>(NLMSG_DATA(h));
  e->error = 0;
  EXPECT_TRUE(decode_ack(only(buf)).is_ok());
  e->error = -17;  // EEXIST
  e->msg.nlmsg_seq = 5;
  const Status st = decode_ack(only(buf));
  ASSERT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("File exists"), std::string::npos) << st.message();
}

TEST(Rtnl, HostileBuffersAreRefused) {
  Route route;
  route.table = 100;
  route.dst = model::IpPrefix::parse("10.0.0.0/8").value();
  const auto good = encode_route(Op::kAdd, route, 1);
  // Truncated anywhere inside the header or the message.
  for (std::size_t n = 1; n < good.size(); ++n) {
    auto m = split_messages(good.data(), n);
    EXPECT_FALSE(m.is_ok()) << n;
  }
  // A length larger than the buffer.
  auto bad = good;
  reinterpret_cast<nlmsghdr*>(bad.data())->nlmsg_len = 4096;
  EXPECT_FALSE(split_messages(bad.data(), bad.size()).is_ok());
  // An attribute that claims more than is left.
  bad = good;
  auto* a = reinterpret_cast<rtattr*>(bad.data() + NLMSG_LENGTH(sizeof(rtmsg)));
  a->rta_len = 200;
  auto msgs = split_messages(bad.data(), bad.size());
  ASSERT_TRUE(msgs.is_ok());
  auto r = decode_route(msgs.value()[0]);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("claims 200 bytes"), std::string::npos);
  // A prefix length the family cannot have.
  bad = good;
  reinterpret_cast<rtmsg*>(bad.data() + NLMSG_HDRLEN)->rtm_dst_len = 33;
  EXPECT_FALSE(decode_route(only(bad)).is_ok());
  // Bounded counts.
  std::vector<std::uint8_t> many;
  for (int i = 0; i < 5; ++i) many.insert(many.end(), good.begin(), good.end());
  EXPECT_TRUE(split_messages(many.data(), many.size(), 5).is_ok());
  EXPECT_FALSE(split_messages(many.data(), many.size(), 4).is_ok());
}

}  // namespace
}  // namespace patronus::linuxnet
