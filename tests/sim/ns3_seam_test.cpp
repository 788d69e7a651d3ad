// The seam proof on ns-3: the same libpatronus-pingpong.so inside an ns-3 discrete-event
// simulation (patronus-sim). Round trips are exactly what the link implies:
//   rtt = 2 * (delay + bytes_on_wire * 8 / rate),  bytes_on_wire = payload + 8 UDP + 20 IPv4 + 2
//   PPP
// and the trace is byte-identical for a fixed seed.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "test_support.hpp"

namespace {

using patronus::test::run;

nlohmann::json sim(const std::vector<std::string>& extra) {
  std::vector<std::string> argv = {patronus::test::bin_dir() + "/patronus-sim", "pingpong",
                                   "--json"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  auto r = run(argv);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return r.exit_code == 0 ? nlohmann::json::parse(r.out) : nlohmann::json{};
}

void expect_exact_rtts(double delay_ms, double rate_mbps, int payload) {
  const auto j =
      sim({"--delay-ms", std::to_string(delay_ms), "--rate-mbps", std::to_string(rate_mbps),
           "--payload", std::to_string(payload), "--count", "25"});
  const auto& a = j["sites"]["probe-a"];
  ASSERT_EQ(a["received"], 25);
  ASSERT_EQ(a["lost"], 0);
  const double wire_bits = (payload + 8 + 20 + 2) * 8.0;
  const auto expected =
      static_cast<std::int64_t>(2 * (delay_ms * 1e6 + wire_bits / (rate_mbps * 1e6) * 1e9));
  for (const auto& rtt : a["rtt_ns"]) EXPECT_EQ(rtt.get<std::int64_t>(), expected);
}

TEST(Ns3Seam, ExactRoundTripsFromTheLinkModel) {
  expect_exact_rtts(10, 8, 64);   // 2 * (10 ms + 94 us) = 20.188 ms
  expect_exact_rtts(25, 1, 200);  // 2 * (25 ms + 1840 us) = 53.68 ms
}

TEST(Ns3Seam, TraceIsByteIdenticalForAFixedSeed) {
  patronus::test::TempDir dir;
  auto trace = [&](const std::string& seed, const std::string& file) {
    const auto j = sim(
        {"--both", "--loss", "0.2", "--count", "60", "--seed", seed, "--trace", dir.file(file)});
    return std::make_pair(j, patronus::test::read_file(dir.file(file)));
  };
  const auto [j1, t1] = trace("5", "a");
  const auto [j2, t2] = trace("5", "b");
  const auto [j3, t3] = trace("6", "c");
  ASSERT_FALSE(t1.empty());
  EXPECT_EQ(t1, t2);
  EXPECT_NE(t1, t3) << "the seed must matter";
  const int lost = j1["sites"]["probe-a"]["lost"];
  EXPECT_GT(lost, 0) << "20% loss each way must lose some probes";
  EXPECT_EQ(j1["sites"]["probe-a"]["received"].get<int>() + lost, 60);
}

}  // namespace
