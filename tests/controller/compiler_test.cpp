// The controller's compiler: per-site configs from the fleet, recompiled only where a change can
// reach, with one path id for both ends of a path.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "fleet_fixtures.hpp"
#include "patronus/controller/compiler.hpp"
#include "patronus/mesh/keys.hpp"

namespace patronus::controller {
namespace {

FleetSite make_site(int i, const std::string& name) {
  FleetSite s = test::fleet_site(i);
  s.name = name;
  return s;
}

std::string name_of(int i) {
  return "s" + std::to_string(i);
}

struct Fleet {
  std::vector<FleetSite> sites;
  FleetSettings settings;
  Compiler compiler;
  std::vector<std::string> update(const std::set<std::string>& touched) {
    auto r = compiler.update(sites, settings, touched);
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    return r.is_ok() ? r.value() : std::vector<std::string>{};
  }
};

Fleet hub_spoke(int n, bool summary) {
  Fleet f;
  f.settings.topology.kind = mesh::TopologyKind::kHubSpoke;
  f.settings.topology.hubs = {"s0", "s1"};
  if (summary)
    f.settings.topology.spoke_summary = {model::IpPrefix::parse("172.16.0.0/12").value()};
  for (int i = 0; i < n; ++i) f.sites.push_back(make_site(i, name_of(i)));
  return f;
}

// Adding a spoke to a summarised hub-spoke fleet compiles the new spoke and the hubs, and only
// their configs change; without the summary every spoke lists every other and all change.
TEST(Compiler, AddingASpokeRecompilesTheSpokeAndTheHubsOnly) {
  Fleet f = hub_spoke(50, true);
  const auto first = f.update({});
  EXPECT_EQ(first.size(), 50u) << "every site is new";
  std::map<std::string, std::string> before;
  for (int i = 0; i < 50; ++i) before[name_of(i)] = *f.compiler.hash(name_of(i));

  f.sites.push_back(make_site(50, "s50"));
  const auto changed = f.update({"s50"});
  EXPECT_EQ(changed, (std::vector<std::string>{"s0", "s1", "s50"}));
  EXPECT_EQ(f.compiler.stats().compiled, 3u);
  for (int i = 2; i < 50; ++i) EXPECT_EQ(*f.compiler.hash(name_of(i)), before[name_of(i)]);
  // The new spoke reaches its hubs directly and the rest of the fleet through them.
  const site::SiteConfig* c = f.compiler.config("s50");
  ASSERT_NE(c, nullptr);
  std::set<std::string> remote;
  for (const auto& r : c->plan().remote_sites()) remote.insert(r.name());
  EXPECT_EQ(remote, (std::set<std::string>{"s0", "s1", mesh::kSummarySite}));
  EXPECT_EQ(c->plan().paths_size(), 2);

  Fleet all = hub_spoke(50, false);
  all.update({});
  all.sites.push_back(make_site(50, "s50"));
  EXPECT_EQ(all.update({"s50"}).size(), 51u) << "every spoke lists every other spoke";
}

// Both ends of a path carry the same id and mirrored names; ids survive a change.
TEST(Compiler, APathHasOneIdAtBothEndsAndKeepsIt) {
  Fleet f;
  for (int i = 0; i < 4; ++i) f.sites.push_back(make_site(i, name_of(i)));
  f.update({});
  auto id_at = [&](const std::string& site, const std::string& peer) -> std::uint64_t {
    for (const auto& p : f.compiler.config(site)->plan().paths()) {
      if (p.remote_site() == peer) return p.id();
    }
    return 0;
  };
  const std::uint64_t ab = id_at("s0", "s1");
  ASSERT_NE(ab, 0u);
  EXPECT_EQ(id_at("s1", "s0"), ab);
  EXPECT_EQ(f.compiler.path_id(mesh::canonical_path_name("s0", "wan0", "s1", "wan0")), ab);
  f.sites.push_back(make_site(4, "s4"));
  EXPECT_EQ(f.update({"s4"}).size(), 5u) << "a full mesh: everyone peers with the new site";
  EXPECT_EQ(id_at("s0", "s1"), ab);
  EXPECT_EQ(id_at("s4", "s0"), id_at("s0", "s4"));
  // The site leaves: its peers change, and it is reported removed.
  f.sites.pop_back();
  EXPECT_EQ(f.update({"s4"}).size(), 4u);
  EXPECT_EQ(f.compiler.removed(), std::vector<std::string>{"s4"});
  EXPECT_EQ(f.compiler.config("s4"), nullptr);
}

// A site is in nobody's plan until it has reported every endpoint's key; a settings change
// recompiles everyone; an update that cannot be built changes nothing.
TEST(Compiler, SitesWaitForTheirKeysAndSettingsReachEveryone) {
  Fleet f;
  for (int i = 0; i < 3; ++i) f.sites.push_back(make_site(i, name_of(i)));
  f.sites[2].public_keys = {""};
  f.update({});
  EXPECT_EQ(f.compiler.config("s2"), nullptr);
  EXPECT_EQ(f.compiler.config("s0")->plan().remote_sites_size(), 1);
  f.sites[2] = make_site(2, "s2");
  EXPECT_EQ(f.update({"s2"}).size(), 3u);
  EXPECT_EQ(f.compiler.config("s0")->plan().remote_sites_size(), 2);

  f.settings.base.mutable_runtime()->set_tick_ms(50);
  EXPECT_EQ(f.update({}).size(), 3u);
  EXPECT_EQ(f.compiler.config("s1")->runtime().tick_ms(), 50u);
  const std::string hash = *f.compiler.hash("s1");
  f.settings.topology.spoke_summary = {model::IpPrefix::parse("172.16.0.0/12").value()};
  f.settings.topology.kind = mesh::TopologyKind::kPartial;
  EXPECT_FALSE(f.compiler.update(f.sites, f.settings, {}).is_ok()) << "a summary needs hub-spoke";
  EXPECT_EQ(*f.compiler.hash("s1"), hash);
}

}  // namespace
}  // namespace patronus::controller
