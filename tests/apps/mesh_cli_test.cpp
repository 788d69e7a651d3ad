// `patronus keys` and `patronus mesh` as a user runs them.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "test_support.hpp"

namespace {

using namespace patronus;
using nlohmann::json;
using test::run;

std::string cli() {
  return test::bin_dir() + "/patronus";
}

const char* kSites = R"(sites:
  - name: hq
    location: {lat: 48.14, lon: 11.58}
    endpoints:
      - {name: wan0, address: 198.51.100.1:51820, type: wan, cost_per_gb: 0.01}
      - {name: mpls0, address: 10.1.0.1:51821, type: mpls, cost_per_gb: 0.2}
  - name: br1
    endpoints:
      - {name: wan0, address: 198.51.100.2:51820}
      - {name: mpls0, address: 10.1.0.2:51821, type: mpls}
  - name: br2
    endpoints: [{name: wan0, address: 198.51.100.3:51820, type: broadband}]
  - name: br3
    endpoints: [{name: lte0, address: 203.0.113.4:51820, type: lte}]
)";

TEST(KeysCli, GenerateAndPublicAgreeWithWg) {
  auto r = run({cli(), "keys", "generate", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = json::parse(r.out);
  const std::string priv = j.at("private_key"), pub = j.at("public_key");
  test::TempDir dir;
  test::write_file(dir.file("k"), priv + "\n");
  auto ours = run({"/bin/sh", "-c", cli() + " keys public < " + dir.file("k")});
  ASSERT_EQ(ours.exit_code, 0) << ours.err;
  EXPECT_EQ(ours.out, pub + "\n");
  auto wg = run({"/bin/sh", "-c", "wg pubkey < " + dir.file("k")});
  ASSERT_EQ(wg.exit_code, 0) << "wg pubkey: " << wg.err;
  EXPECT_EQ(wg.out, pub + "\n");
  // Plain form: two lines, private then public.
  auto plain = run({cli(), "keys", "generate"});
  EXPECT_EQ(std::count(plain.out.begin(), plain.out.end(), '\n'), 2);
  test::write_file(dir.file("bad"), "hello\n");
  auto bad = run({"/bin/sh", "-c", cli() + " keys public < " + dir.file("bad")});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("private key on stdin: a WireGuard key is 44 characters"),
            std::string::npos)
      << bad.err;
}

TEST(MeshCli, PlanJsonCountsAndShape) {
  test::TempDir dir;
  test::write_file(dir.file("sites.yaml"), kSites);
  auto r = run({cli(), "mesh", "plan", "--sites", dir.file("sites.yaml"), "--topology", "full-mesh",
                "--keys-dir", dir.file("keys"), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = json::parse(r.out);
  // hq-br1: wan-wan, mpls-mpls (2); hq-br2: 1; hq-br3: wan-lte (1); br1-br2: 1; br1-br3: 1;
  // br2-br3: broadband-lte (1). lte is not hubs-only without hubs.
  EXPECT_EQ(j["paths"].size(), 7u);
  EXPECT_EQ(j["sites"].size(), 4u);
  EXPECT_EQ(j["sites"][0]["interfaces"].size(), 2u);
  for (const auto& s : j["sites"]) {
    for (const auto& i : s["interfaces"]) {
      EXPECT_EQ(i["public_key"].get<std::string>().size(), 44u);
      for (const auto& p : i["peers"]) EXPECT_EQ(p["public_key"].get<std::string>().size(), 44u);
    }
  }
  // Hub-spoke with hubs hq, br1: h*s + h(h-1)/2 site pairs; lte only to hubs.
  r = run({cli(), "mesh", "plan", "--sites", dir.file("sites.yaml"), "--topology", "hub-spoke",
           "--hubs", "hq,br1", "--keys-dir", dir.file("keys"), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto h = json::parse(r.out);
  // hq-br1: 2, hq-br2: 1, hq-br3: 1, br1-br2: 1, br1-br3: 1 (br2-br3 is spoke-spoke).
  EXPECT_EQ(h["paths"].size(), 6u);
  EXPECT_EQ(h["sites"][0]["hub"], true);
  EXPECT_EQ(h["sites"][2]["hub"], false);
}

TEST(MeshCli, BadInputChangesNothing) {
  test::TempDir dir;
  test::write_file(dir.file("bad.yaml"),
                   "sites:\n  - name: hq\n    endpoints:\n      - {name: w, address: 1.2.3.4}\n");
  auto r = run({cli(), "mesh", "plan", "--sites", dir.file("bad.yaml"), "--db", dir.file("s.db"),
                "--keys-dir", dir.file("keys"), "--wg-config-dir", dir.file("wg")});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("line 4: sites[0].endpoints[0].address: '1.2.3.4': expected host:port"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(test::file_exists(dir.file("s.db")));
  EXPECT_FALSE(test::file_exists(dir.file("keys")));
  EXPECT_FALSE(test::file_exists(dir.file("wg")));
  test::write_file(dir.file("sites.yaml"), kSites);
  r = run({cli(), "mesh", "plan", "--sites", dir.file("sites.yaml"), "--topology", "hub-spoke",
           "--db", dir.file("s.db"), "--keys-dir", dir.file("keys")});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("hub-spoke needs hubs"), std::string::npos) << r.err;
  EXPECT_FALSE(test::file_exists(dir.file("s.db")));
  EXPECT_FALSE(test::file_exists(dir.file("keys")));
  // An overlay prefix too small for the endpoints: refused before any key or database exists.
  test::write_file(dir.file("small.yaml"), std::string(kSites) + "overlay: {ipv4: 10.9.9.0/30}\n");
  r = run({cli(), "mesh", "plan", "--sites", dir.file("small.yaml"), "--db", dir.file("s.db"),
           "--keys-dir", dir.file("keys")});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("overlay.ipv4 10.9.9.0/30 has room for 2 endpoints"), std::string::npos)
      << r.err;
  EXPECT_FALSE(test::file_exists(dir.file("s.db")));
  EXPECT_FALSE(test::file_exists(dir.file("keys")));
  r = run({cli(), "mesh", "plan", "--sites", dir.file("sites.yaml"), "--topology", "ring"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--topology: 'ring' is not a topology (one of: full-mesh, hub-spoke"),
            std::string::npos)
      << r.err;
  r = run({cli(), "mesh", "plan", "--sites", dir.file("sites.yaml")});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("no public key"), std::string::npos) << r.err;
  r = run({cli(), "mesh", "analyze", "--sites", dir.file("sites.yaml"), "--down", "hq~nowhere"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--down 'hq~nowhere': no such path"), std::string::npos) << r.err;
}

TEST(MeshCli, ReplanWithDbKeepsAddressesPathIdsAndKeys) {
  test::TempDir dir;
  test::write_file(dir.file("sites.yaml"), kSites);
  const std::vector<std::string> base = {
      cli(),  "mesh",           "plan",       "--sites",        dir.file("sites.yaml"),
      "--db", dir.file("s.db"), "--keys-dir", dir.file("keys"), "--json"};
  auto first = run(base);
  ASSERT_EQ(first.exit_code, 0) << first.err;
  // A fifth site joins.
  test::write_file(
      dir.file("sites.yaml"),
      std::string(kSites) +
          "  - name: br4\n    endpoints: [{name: wan0, address: 198.51.100.5:51820}]\n");
  auto second = run(base);
  ASSERT_EQ(second.exit_code, 0) << second.err;
  const auto a = json::parse(first.out), b = json::parse(second.out);
  for (std::size_t s = 0; s < 4; ++s) {
    for (std::size_t i = 0; i < a["sites"][s]["interfaces"].size(); ++i) {
      EXPECT_EQ(a["sites"][s]["interfaces"][i]["addresses"],
                b["sites"][s]["interfaces"][i]["addresses"]);
      EXPECT_EQ(a["sites"][s]["interfaces"][i]["public_key"],
                b["sites"][s]["interfaces"][i]["public_key"]);
    }
  }
  std::map<std::string, std::int64_t> ids;
  for (const auto& p : a["paths"]) ids[p["id"]] = p["path_id"];
  std::size_t kept = 0;
  for (const auto& p : b["paths"]) {
    if (ids.count(p["id"])) {
      EXPECT_EQ(ids[p["id"]], p["path_id"].get<std::int64_t>()) << p["id"];
      ++kept;
    }
  }
  EXPECT_EQ(kept, a["paths"].size());
  // br4's wan0 pairs with hq, br1 and br2's wan/broadband and with br3's lte0.
  EXPECT_EQ(b["paths"].size(), a["paths"].size() + 4u);
}

TEST(MeshCli, WritesWgQuickConfigsPerSite) {
  test::TempDir dir;
  test::write_file(dir.file("sites.yaml"), kSites);
  auto r = run({cli(), "mesh", "plan", "--sites", dir.file("sites.yaml"), "--keys-dir",
                dir.file("keys"), "--wg-config-dir", dir.file("wg"), "--site", "hq"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(test::file_exists(dir.file("wg/hq/wg-wan0.conf")));
  EXPECT_TRUE(test::file_exists(dir.file("wg/hq/wg-mpls0.conf")));
  EXPECT_FALSE(test::file_exists(dir.file("wg/br1")));
  auto strip = run({"wg-quick", "strip", dir.file("wg/hq/wg-wan0.conf")});
  ASSERT_EQ(strip.exit_code, 0) << strip.err;
  EXPECT_NE(strip.out.find("PrivateKey = "), std::string::npos);
  EXPECT_NE(strip.out.find("Endpoint = 198.51.100.2:51820"), std::string::npos);
}

TEST(MeshCli, AnalyzeFindsSinglePointsOfFailure) {
  test::TempDir dir;
  test::write_file(dir.file("sites.yaml"), kSites);
  auto r = run({cli(), "mesh", "analyze", "--sites", dir.file("sites.yaml"), "--topology",
                "hub-spoke", "--hubs", "hq", "--json", "--pair", "br2,br3", "--route", "br2,br3",
                "--down", "hq:wan0~br1:wan0"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = json::parse(r.out);
  // hub hq: hq-br1 (wan down, mpls up), hq-br2, hq-br3: hq is the cut site, every spoke path a
  // bridge.
  EXPECT_EQ(j["articulation_sites"], json::array({"hq"}));
  EXPECT_EQ(j["bridge_paths"],
            json::array({"hq:mpls0~br1:mpls0", "hq:wan0~br2:wan0", "hq:wan0~br3:lte0"}));
  EXPECT_EQ(j["paths_up"], 3);
  EXPECT_EQ(j["hop_diameter"], 2);
  EXPECT_EQ(j["edge_connectivity"]["min_cut"], 1);
  EXPECT_EQ(j["pairs"][0]["disjoint_paths"], 1);
  EXPECT_EQ(j["routes"][0]["sites"], json::array({"br2", "hq", "br3"}));
  EXPECT_EQ(j["disjoint_paths"]["br1"]["hq"], 1);
  // Text form says the same.
  r = run({cli(), "mesh", "analyze", "--sites", dir.file("sites.yaml"), "--topology", "hub-spoke",
           "--hubs", "hq"});
  ASSERT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("sites (articulation points): hq"), std::string::npos) << r.out;
}

}  // namespace
