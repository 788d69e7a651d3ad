// What the ipsec transport tells charon about a path and what it reads back (connection.hpp):
// the path description as an IKEv2 connection in both modes, the secret's message, PSK files,
// list-sa events and charon's log lines as diagnostics.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "connection.hpp"
#include "proposals.hpp"
#include "test_support.hpp"

namespace patronus::ipsec {
namespace {

// "address/length", the address kept as written (interface addresses have host bits).
patronus_prefix prefix(const std::string& text) {
  const auto slash = text.find('/');
  patronus_prefix x{};
  x.addr = model::SocketAddress(model::IpAddress::parse(text.substr(0, slash)).value(), 0).to_abi();
  x.length = static_cast<std::uint8_t>(std::stoi(text.substr(slash + 1)));
  return x;
}

// A path as the runtime describes one (hq:corp -> br:corp), with its transport settings.
struct Desc {
  std::vector<patronus_prefix> addrs{prefix("10.200.0.1/16")};
  std::vector<patronus_prefix> allowed{prefix("10.200.0.2/32"), prefix("10.2.0.0/24")};
  std::string params = R"({"transport":"ipsec","local":{},"remote":{},)"
                       R"("local_subnets":["10.1.0.0/24"]})";
  std::string iface = "ipsec0";
  patronus_path_desc d{};
  patronus_path_desc& get() {
    d = {};
    d.struct_size = sizeof d;
    d.path_id = 7;
    d.local = model::SocketAddress::parse("198.51.100.1:500").value().to_abi();
    d.remote = model::SocketAddress::parse("198.51.100.2:500").value().to_abi();
    d.local_site = "hq";
    d.remote_site = "br";
    d.local_endpoint = "corp";
    d.remote_endpoint = "corp";
    d.remote_overlay = model::SocketAddress::parse("10.200.0.2:0").value().to_abi();
    d.interface_name = iface.c_str();
    d.interface_addresses = addrs.data();
    d.interface_address_count = static_cast<std::uint32_t>(addrs.size());
    d.allowed_prefixes = allowed.data();
    d.allowed_prefix_count = static_cast<std::uint32_t>(allowed.size());
    d.transport_params = params.c_str();
    d.transport_params_size = static_cast<std::uint32_t>(params.size());
    return d;
  }
};

std::vector<std::string> list_at(const vici::Message& m, std::string_view key) {
  const auto* v = m.find(key);
  return v != nullptr && v->kind == vici::Value::Kind::kList ? v->list : std::vector<std::string>{};
}

TEST(IpsecConnection, APathBecomesAnIkev2ConnectionWithSafeDefaults) {
  Desc desc;
  auto p = path_params(desc.get(), Mode::kLibipsec);
  ASSERT_TRUE(p.is_ok()) << p.status().to_string();
  EXPECT_EQ(p.value().local_id, "198.51.100.1");  // identities default to the addresses
  EXPECT_EQ(p.value().remote_id, "198.51.100.2");
  EXPECT_FALSE(p.value().initiator);  // br:corp < hq:corp: the other end starts
  const vici::Message m = load_conn(p.value());
  const vici::Message* c = m.child("patronus-7");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->get("version"), "2");
  EXPECT_EQ(list_at(*c, "local_addrs"), std::vector<std::string>{"198.51.100.1"});
  EXPECT_EQ(list_at(*c, "remote_addrs"), std::vector<std::string>{"198.51.100.2"});
  EXPECT_EQ(list_at(*c, "proposals"), default_proposals(ProposalKind::kIke));
  EXPECT_EQ(c->get("dpd_delay"), "10s");
  EXPECT_EQ(c->find("if_id_in"), nullptr);  // userspace ESP: no XFRM interface
  ASSERT_NE(c->child("local"), nullptr);
  EXPECT_EQ(c->child("local")->get("auth"), "psk");
  const vici::Message* children = c->child("children");
  ASSERT_NE(children, nullptr);
  const vici::Message* child = children->child("patronus-7");
  ASSERT_NE(child, nullptr);
  // Both overlay addresses and both LANs are in the traffic selectors.
  EXPECT_EQ(list_at(*child, "local_ts"),
            (std::vector<std::string>{"10.200.0.1/32", "10.1.0.0/24"}));
  EXPECT_EQ(list_at(*child, "remote_ts"),
            (std::vector<std::string>{"10.200.0.2/32", "10.2.0.0/24"}));
  EXPECT_EQ(list_at(*child, "esp_proposals"), default_proposals(ProposalKind::kEsp));
  EXPECT_EQ(child->get("start_action"), "none");
}

TEST(IpsecConnection, RouteBasedModeBindsTheSasToTheInterfacesIfId) {
  Desc desc;
  desc.iface = "ipsec2";
  auto p = path_params(desc.get(), Mode::kXfrm);
  ASSERT_TRUE(p.is_ok()) << p.status().to_string();
  EXPECT_EQ(p.value().if_id, 3u);
  const vici::Message m = load_conn(p.value());
  EXPECT_EQ(m.child("patronus-7")->get("if_id_in"), "3");
  EXPECT_EQ(m.child("patronus-7")->child("children")->child("patronus-7")->get("if_id_out"), "3");
  // Userspace ESP has only ipsec0.
  auto refused = path_params(desc.get(), Mode::kLibipsec);
  ASSERT_FALSE(refused.is_ok());
  EXPECT_NE(refused.status().message().find("one TUN per charon"), std::string::npos);
}

TEST(IpsecConnection, TheSitesFilesSettingsAreUsedAndCheckedByName) {
  Desc desc;
  desc.params = R"({"transport":"ipsec","local":{"id":"hq.example","dpd_s":3,"reauth_s":7200},)"
                R"("remote":{"id":"gw.partner.example","external":true,)"
                R"("proposals":["aes128gcm16-prfsha256-ecp256"]}})";
  auto p = path_params(desc.get(), Mode::kLibipsec);
  ASSERT_TRUE(p.is_ok()) << p.status().to_string();
  EXPECT_EQ(p.value().local_id, "hq.example");
  EXPECT_EQ(p.value().remote_id, "gw.partner.example");
  EXPECT_TRUE(p.value().initiator);  // a peer that is not ours: always from here
  EXPECT_EQ(p.value().proposals, std::vector<std::string>{"aes128gcm16-prfsha256-ecp256"});
  EXPECT_EQ(p.value().dpd_s, 3u);
  EXPECT_EQ(load_conn(p.value()).child("patronus-7")->get("reauth_time"), "7200s");
  EXPECT_EQ(load_conn(p.value()).child("patronus-7")->get("dpd_delay"), "3s");

  struct Bad {
    const char* params;
    const char* expect;
  };
  for (const Bad& b : {
           Bad{R"({"remote":{"proposals":["aes128-sha1-modp1024"]}})", "SHA-1"},
           Bad{R"({"local":{"esp_proposals":["3des-sha256"]}})", "3des"},
           Bad{R"({"local":{"id":"has space"}})", "IKE identities"},
           Bad{R"({"local":{"dpd_s":0}})", "local.dpd_s"},
           Bad{R"({"transport":"wireguard"})", "not ipsec"},
           Bad{R"([1,2])", "not a JSON object"},
           Bad{R"({"local_subnets":["10.1.0.1/24"]})", "local_subnets"},
           Bad{"{\"local\":", "not a JSON object"},
       }) {
    desc.params = b.params;
    auto r = path_params(desc.get(), Mode::kLibipsec);
    ASSERT_FALSE(r.is_ok()) << b.params;
    EXPECT_NE(r.status().message().find(b.expect), std::string::npos) << r.status().message();
    EXPECT_EQ(r.status().message().rfind("path 7: ", 0), 0u) << r.status().message();
  }
  desc.params = "{}";
  desc.iface = "wg-corp";
  EXPECT_FALSE(path_params(desc.get(), Mode::kLibipsec).is_ok());
}

TEST(IpsecConnection, TheSecretIsSharedByBothIdentities) {
  Desc desc;
  auto p = path_params(desc.get(), Mode::kLibipsec).value();
  const vici::Message s = load_shared(p, "correct horse battery staple");
  EXPECT_EQ(s.get("type"), "IKE");
  EXPECT_EQ(s.get("id"), "patronus-7");
  EXPECT_EQ(list_at(s, "owners"), (std::vector<std::string>{"198.51.100.1", "198.51.100.2"}));
  EXPECT_EQ(s.get("data"), "correct horse battery staple");
}

TEST(IpsecConnection, PskFilesMustBeOwnerOnlyAndLongEnough) {
  test::TempDir dir;
  const std::string f = dir.file("peer.psk");
  std::ofstream(f) << "  a-long-enough-pre-shared-key-0123\n";
  ::chmod(f.c_str(), 0644);
  auto open = read_psk_file(f);
  ASSERT_FALSE(open.is_ok());
  EXPECT_NE(open.status().message().find("exposed"), std::string::npos) << open.status().message();
  ::chmod(f.c_str(), 0600);
  auto ok = read_psk_file(f);
  ASSERT_TRUE(ok.is_ok()) << ok.status().to_string();
  EXPECT_EQ(ok.value(), "a-long-enough-pre-shared-key-0123");
  std::ofstream(f) << "short\n";
  auto shortk = read_psk_file(f);
  ASSERT_FALSE(shortk.is_ok());
  EXPECT_EQ(shortk.status().message().find("short\n"), std::string::npos);  // never the key
  EXPECT_NE(shortk.status().message().find("at least 20 bytes"), std::string::npos);
  EXPECT_FALSE(read_psk_file(dir.file("missing")).is_ok());
}

TEST(IpsecConnection, ListSaEventsBecomeTunnelStateAndBadNumbersAreRefused) {
  vici::Message e;
  vici::Message& ike = e.section("patronus-7");
  ike.set("state", "ESTABLISHED");
  ike.set("remote-host", "198.51.100.2");
  ike.set("remote-port", "4500");
  ike.set("remote-id", "198.51.100.2");
  ike.set("encr-alg", "AES_GCM_16");
  ike.set("established", "3600");
  ike.set("rekey-time", "10800");
  vici::Message& kids = ike.section("child-sas");
  vici::Message& old_sa = kids.section("patronus-7-1");
  old_sa.set("state", "INSTALLED");
  old_sa.set("bytes-in", "100");
  old_sa.set("bytes-out", "50");
  old_sa.set("install-time", "3500");
  vici::Message& new_sa = kids.section("patronus-7-2");
  new_sa.set("state", "INSTALLED");
  new_sa.set("bytes-in", "10");
  new_sa.set("bytes-out", "5");
  new_sa.set("install-time", "20");
  new_sa.set("uniqueid", "9");
  e.section("someone-else").set("state", "ESTABLISHED");
  auto s = parse_list_sa(e);
  ASSERT_TRUE(s.is_ok()) << s.status().to_string();
  ASSERT_EQ(s.value().size(), 1u);  // only our connections
  EXPECT_TRUE(s.value()[0].child_installed);
  EXPECT_EQ(s.value()[0].bytes_in, 110u);  // a rekey in progress: both CHILD_SAs count
  EXPECT_EQ(s.value()[0].installed_ago_s, 20);
  EXPECT_EQ(s.value()[0].child_id, "9");  // the newest CHILD_SA: a rekey shows as a new id
  EXPECT_EQ(s.value()[0].established_s, 3600);
  EXPECT_EQ(s.value()[0].ike_rekey_in_s, 10800);
  EXPECT_EQ(s.value()[0].remote_port, 4500);
  vici::Message hostile;
  hostile.section("patronus-8")
      .section("child-sas")
      .section("patronus-8-1")
      .set("state", "INSTALLED")
      .set("bytes-in", "ten");
  auto bad = parse_list_sa(hostile);
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("bytes-in"), std::string::npos);
}

TEST(IpsecConnection, CharonsLogLinesGiveTheDiagnostic) {
  EXPECT_EQ(diagnose("received AUTHENTICATION_FAILED notify error"),
            PATRONUS_TUNNEL_DIAG_AUTH_FAILED);
  EXPECT_EQ(diagnose("received NO_PROPOSAL_CHOSEN notify error"),
            PATRONUS_TUNNEL_DIAG_NEGOTIATION_FAILED);
  EXPECT_EQ(diagnose("received TS_UNACCEPTABLE notify, no CHILD_SA built"),
            PATRONUS_TUNNEL_DIAG_NEGOTIATION_FAILED);
  EXPECT_EQ(diagnose("sending packet: from 198.51.100.1[500] to 198.51.100.2[500]"),
            PATRONUS_TUNNEL_DIAG_NONE);
}

}  // namespace
}  // namespace patronus::ipsec
