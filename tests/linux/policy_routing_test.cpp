// Class rules and the difference between kernel state and desired state, without a kernel.
#include "policy_routing.hpp"

#include <gtest/gtest.h>
#include <linux/rtnetlink.h>

namespace patronus::linuxnet {
namespace {

steering::ClassSet two_classes() {
  steering::ClassSet set;
  steering::ClassSpec voice, other;
  voice.name = "voice";
  other.name = "other";
  set.classes = {voice, other};
  steering::ClassRule sip;
  sip.class_name = "voice";
  sip.protocol = 17;
  sip.dst_ports = steering::PortRange{5060, 5061};
  sip.dst_prefixes = {model::IpPrefix::parse("10.2.0.0/16").value(),
                      model::IpPrefix::parse("fd00:2::/48").value()};
  steering::ClassRule ef;
  ef.class_name = "voice";
  ef.dscp = 46;
  set.rules = {sip, ef};
  set.default_class = "other";
  return set;
}

TEST(PolicyRouting, ClassRulesKeepTheOrderAndSplitByFamily) {
  auto rules = class_rules(two_classes(), PolicyLayout{}, /*dscp_in_rules=*/true);
  ASSERT_TRUE(rules.is_ok()) << rules.status().message();
  const auto& r = rules.value();
  // sip: one v4 rule (10.2/16), one v6 (fd00:2::/48); ef: v4 and v6; default: v4 and v6.
  ASSERT_EQ(r.size(), 6u);
  for (std::size_t i = 0; i < r.size(); ++i) EXPECT_EQ(r[i].priority, 20000u + i);
  EXPECT_FALSE(r[0].ipv6);
  EXPECT_EQ(r[0].dst->to_string(), "10.2.0.0/16");
  EXPECT_EQ(r[0].ip_proto, std::optional<std::uint8_t>(17));
  EXPECT_EQ(r[0].dport,
            std::make_optional(std::make_pair(std::uint16_t{5060}, std::uint16_t{5061})));
  EXPECT_EQ(r[0].table, 20000u);
  EXPECT_TRUE(r[1].ipv6);
  EXPECT_EQ(r[1].dst->to_string(), "fd00:2::/48");
  EXPECT_EQ(r[2].dscp, std::optional<std::uint8_t>(46));
  EXPECT_FALSE(r[2].dst.has_value());
  EXPECT_NE(r[2].ipv6, r[3].ipv6);
  EXPECT_EQ(r[4].table, 20001u) << "the default class, unconditionally, last";
  EXPECT_FALSE(r[4].ip_proto || r[4].dport || r[4].dscp || r[4].dst);
}

TEST(PolicyRouting, ClassRulesRefuseWhatTheKernelCannotMatch) {
  auto rules = class_rules(two_classes(), PolicyLayout{}, /*dscp_in_rules=*/false);
  ASSERT_FALSE(rules.is_ok());
  EXPECT_NE(rules.status().message().find("rules[1]: matches DSCP 46"), std::string::npos)
      << rules.status().message();
  PolicyLayout small;
  small.max_rules = 3;
  rules = class_rules(two_classes(), small, true);
  ASSERT_FALSE(rules.is_ok());
  EXPECT_NE(rules.status().message().find("more than 3 kernel rules"), std::string::npos);
  auto bad = two_classes();
  bad.rules[0].class_name = "nope";
  EXPECT_FALSE(class_rules(bad, PolicyLayout{}, true).is_ok());
  EXPECT_FALSE(class_rules(steering::ClassSet{}, PolicyLayout{}, true).is_ok()) << "no classes";
}

TEST(PolicyRouting, ChangesAreTheDifferenceOnly) {
  const auto p1 = model::IpPrefix::parse("10.2.0.0/16").value();
  const auto p2 = model::IpPrefix::parse("10.3.0.0/16").value();
  const std::vector<Route> current = {class_route(20000, p1, {5, std::nullopt}),
                                      class_route(20000, p2, {5, std::nullopt})};
  EXPECT_TRUE(route_changes(current, current).empty()) << "equal state: nothing to send";
  // Failover of one site: one replace; a site gone: one delete; no path: unreachable.
  auto changes = route_changes(current, {class_route(20000, p1, {6, std::nullopt})});
  ASSERT_EQ(changes.size(), 2u);
  auto first = split_messages(changes[0].data(), changes[0].size());
  ASSERT_TRUE(first.is_ok());
  EXPECT_EQ(first.value()[0].type, RTM_NEWROUTE);
  EXPECT_EQ(decode_route(first.value()[0]).value().oif, 6u);
  auto second = split_messages(changes[1].data(), changes[1].size());
  EXPECT_EQ(second.value()[0].type, RTM_DELROUTE);
  EXPECT_EQ(class_route(20000, p1, {}).type, RTN_UNREACHABLE);

  Rule a, b;
  a.priority = 20000;
  a.table = 20000;
  b = a;
  b.ip_proto = 6;
  EXPECT_TRUE(rule_changes({a}, {a}).empty());
  auto rc = rule_changes({a}, {b});
  ASSERT_EQ(rc.size(), 2u);
  EXPECT_EQ(split_messages(rc[0].data(), rc[0].size()).value()[0].type, RTM_DELRULE)
      << "the old rule goes before the new one comes";
  EXPECT_EQ(split_messages(rc[1].data(), rc[1].size()).value()[0].type, RTM_NEWRULE);
}

}  // namespace
}  // namespace patronus::linuxnet
