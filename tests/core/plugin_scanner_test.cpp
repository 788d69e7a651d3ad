// Every plugin file is first loaded in a child process (the scanner): files whose loading would
// take the host down are refused by name, with what killed the child, and never mapped here; the
// host keeps working with the others. Verdicts are cached by file identity and load context.
// Each test runs in a process of its own (gtest_discover_tests): libprotobuf's pool starts empty
// but for the host's own files.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include "../../framework/src/core/plugin_scanner.hpp"
#include "patronus/core/config_schema.hpp"
#include "patronus/core/plugin_host.hpp"
#include "test_support.hpp"

namespace {

using namespace patronus;
namespace fs = std::filesystem;

std::string hostile(const std::string& which) {
  return test::hostile_plugin_dir() + "/libpatronus-hostile-" + which + ".so";
}
std::string shipped(const std::string& name) {
  return test::plugin_dir() + "/libpatronus-" + name + ".so";
}

core::ScanOptions options(const test::TempDir& dir,
                          std::chrono::milliseconds timeout = std::chrono::milliseconds(10000)) {
  core::ScanOptions o;
  o.cache_file = dir.file("scan-cache");
  o.timeout = timeout;
  return o;
}

bool contains(const std::string& text, const std::string& what) {
  return text.find(what) != std::string::npos;
}

// The refused file is named, and the shipped scorer still loads and scores afterwards.
void expect_host_still_works(core::PluginRegistry& reg) {
  auto scoring = reg.load_file(shipped("scoring"));
  ASSERT_TRUE(scoring.is_ok()) << scoring.status().to_string();
  ASSERT_NE(scoring.value()->schema(), nullptr);
  EXPECT_TRUE(scoring.value()->schema()->text_to_bytes("", "config").is_ok());
}

TEST(PluginScanner, TwoVendorPluginsFromOneProtoWithoutASchemaSection) {
  // As the vendor met it: both in one directory beside a shipped plugin; the second one's
  // generated code would abort the process inside libprotobuf.
  test::TempDir dir;
  fs::create_symlink(hostile("twin-a"), dir.file("libacme-twin-a.so"));
  fs::create_symlink(hostile("twin-b"), dir.file("libacme-twin-b.so"));
  fs::create_symlink(shipped("scoring"), dir.file("libpatronus-scoring.so"));
  core::PluginRegistry reg(options(dir));
  auto scan = reg.load_directory(dir.path());
  ASSERT_TRUE(scan.is_ok()) << scan.status().to_string();
  ASSERT_EQ(scan.value().refused.size(), 1u);
  const auto& r = scan.value().refused[0];
  EXPECT_EQ(r.file, dir.file("libacme-twin-b.so"));
  // libprotobuf's fatal check: an exception in this build (caught in the scanner), an abort where
  // nothing catches it; either way the scanner quotes what libprotobuf said.
  EXPECT_TRUE(contains(r.reason, "SIGABRT") || contains(r.reason, "loading it threw: CHECK failed"))
      << r.reason;
  EXPECT_TRUE(contains(r.reason, "File already exists in database")) << r.reason;
  EXPECT_TRUE(contains(r.reason, "twin/v1/config.proto")) << r.reason;
  EXPECT_NE(reg.find("hostile-twin-a"), nullptr);
  EXPECT_NE(reg.find("scoring"), nullptr);
  EXPECT_EQ(reg.find("hostile-twin-b"), nullptr);
  // Shipped first: the scan order put scoring before the vendor's files.
  EXPECT_EQ(reg.plugins().front()->info().name, "scoring");
}

struct Hostile {
  const char* which;
  const char* verdict;  // what the refusal must say
  const char* words;    // the child's last output, quoted
};

class HostileFile : public ::testing::TestWithParam<Hostile> {};

TEST_P(HostileFile, IsRefusedByNameAndTheHostKeepsWorking) {
  const Hostile h = GetParam();
  test::TempDir dir;
  core::PluginRegistry reg(options(dir, std::chrono::milliseconds(1500)));
  auto r = reg.load_file(hostile(h.which));
  ASSERT_FALSE(r.is_ok());
  const std::string& m = r.status().message();
  EXPECT_TRUE(contains(m, hostile(h.which))) << m;
  EXPECT_TRUE(contains(m, h.verdict)) << m;
  EXPECT_TRUE(contains(m, h.words)) << m;
  EXPECT_EQ(reg.scans_run(), 1u);
  EXPECT_TRUE(reg.plugins().empty());
  expect_host_still_works(reg);
}

INSTANTIATE_TEST_SUITE_P(
    Initialisers, HostileFile,
    ::testing::Values(
        Hostile{"segv", "killed the scanner process with SIGSEGV",
                "hostile-segv: reading through a null pointer"},
        Hostile{"abort", "killed the scanner process with SIGABRT",
                "hostile-abort: this plugin cannot live here"},
        Hostile{"hang", "did not finish loading within 1.5 s", "hostile-hang: waiting forever"},
        Hostile{"exit", "exited with status 3", "hostile-exit: exiting with status 3"}),
    [](const auto& info) { return std::string(info.param.which); });

TEST(PluginScanner, ADirectoryOfHostileFilesLeavesTheOthersLoaded) {
  test::TempDir dir;
  for (const char* w : {"segv", "abort", "hang", "exit"}) {
    fs::create_symlink(hostile(w), dir.file(std::string("libvendor-") + w + ".so"));
  }
  for (const char* n : {"scoring", "probes", "emodel"}) {
    fs::create_symlink(shipped(n), dir.file(std::string("libpatronus-") + n + ".so"));
  }
  core::PluginRegistry reg(options(dir, std::chrono::milliseconds(1500)));
  auto scan = reg.load_directory(dir.path());
  ASSERT_TRUE(scan.is_ok()) << scan.status().to_string();
  EXPECT_EQ(scan.value().refused.size(), 4u);
  EXPECT_EQ(reg.plugins().size(), 3u);
  for (const char* n : {"scoring", "probes", "emodel"}) EXPECT_NE(reg.find(n), nullptr) << n;
}

TEST(PluginScanner, VerdictsAreCachedByFileAndContext) {
  test::TempDir dir;
  fs::copy_file(hostile("segv"), dir.file("libvendor-segv.so"));
  {
    core::PluginRegistry reg(options(dir));
    EXPECT_FALSE(reg.load_file(dir.file("libvendor-segv.so")).is_ok());
    EXPECT_EQ(reg.scans_run(), 1u);
    EXPECT_EQ(reg.scan_cache_hits(), 0u);
  }
  {
    // Nothing was mapped in between: the same file in the same context costs no process.
    core::PluginRegistry reg(options(dir));
    auto r = reg.load_file(dir.file("libvendor-segv.so"));
    ASSERT_FALSE(r.is_ok());
    EXPECT_TRUE(contains(r.status().message(), "SIGSEGV")) << r.status().message();
    EXPECT_EQ(reg.scans_run(), 0u);
    EXPECT_EQ(reg.scan_cache_hits(), 1u);
  }
  {
    // A changed file (mtime) is a new file.
    fs::last_write_time(
        dir.file("libvendor-segv.so"),
        fs::last_write_time(dir.file("libvendor-segv.so")) + std::chrono::seconds(5));
    core::PluginRegistry reg(options(dir));
    EXPECT_FALSE(reg.load_file(dir.file("libvendor-segv.so")).is_ok());
    EXPECT_EQ(reg.scans_run(), 1u);
  }
  {
    // Once something was mapped, the pool differs: verdicts taken before do not apply.
    core::PluginRegistry reg(options(dir));
    ASSERT_TRUE(reg.load_file(shipped("scoring")).is_ok());
    const auto before = reg.scans_run();
    EXPECT_FALSE(reg.load_file(dir.file("libvendor-segv.so")).is_ok());
    EXPECT_EQ(reg.scans_run(), before + 1);
  }
}

TEST(PluginScanner, ACorruptCacheIsAnEmptyOne) {
  test::TempDir dir;
  for (const std::string& garbage :
       {std::string("not a cache\n"), std::string(40, '\xff'),
        std::string(32, 'a') + " 50535631ffffffff\n", std::string(32, '0') + " zz\n"}) {
    test::write_file(dir.file("scan-cache"), garbage);
    core::PluginRegistry reg(options(dir));
    auto r = reg.load_file(hostile("abort"));
    ASSERT_FALSE(r.is_ok());
    EXPECT_TRUE(contains(r.status().message(), "SIGABRT")) << r.status().message();
    EXPECT_EQ(reg.scans_run(), 1u);
  }
}

TEST(PluginScanner, VerdictEncodingRoundTripsAndRefusesWhatItDidNotWrite) {
  core::scanner::Verdict v;
  v.status = Status::ok();
  v.info.name = "scoring";
  v.info.version = "1.2.3";
  v.info.kind = core::PluginKind::kScorer;
  v.info.abi_major = 1;
  v.info.abi_minor = 4;
  v.info.config_type = "patronus.scoring.v1.Config";
  v.info.needs_real_network = true;
  const std::string bytes = core::scanner::encode(v);
  auto back = core::scanner::decode(bytes);
  ASSERT_TRUE(back.has_value());
  EXPECT_TRUE(back->status.is_ok());
  EXPECT_EQ(back->info.name, "scoring");
  EXPECT_EQ(back->info.config_type, "patronus.scoring.v1.Config");
  EXPECT_TRUE(back->info.needs_real_network);
  // Every truncation, and every single-byte change of the header, is refused or decodes to
  // something well-formed; nothing reads past the end.
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_FALSE(core::scanner::decode(bytes.substr(0, n)).has_value()) << n;
  }
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    std::string b = bytes;
    b[i] = static_cast<char>(b[i] ^ 0x80);
    (void)core::scanner::decode(b);
  }
  EXPECT_FALSE(core::scanner::decode(bytes + "x").has_value());
}

// Shipped plugins win: a vendor scorer that reuses the shipped message name, sorting before it in
// the directory, is the one refused, and the advice is for the vendor.
TEST(PluginScanner, ShippedPluginsLoadFirstAndTheVendorIsTheOneToChange) {
  test::TempDir dir;
  fs::create_symlink(test::clash_plugin_dir() + "/libpatronus-test-clash-symbol.so",
                     dir.file("libaaa-vendor-scorer.so"));
  fs::create_symlink(shipped("scoring"), dir.file("libpatronus-scoring.so"));
  core::PluginRegistry reg(options(dir));
  auto scan = reg.load_directory(dir.path());
  ASSERT_TRUE(scan.is_ok());
  EXPECT_NE(reg.find("scoring"), nullptr);
  ASSERT_EQ(scan.value().refused.size(), 1u);
  const auto& r = scan.value().refused[0];
  EXPECT_EQ(r.file, dir.file("libaaa-vendor-scorer.so"));
  EXPECT_TRUE(contains(r.reason, "message 'patronus.scoring.v1.Config'")) << r.reason;
  EXPECT_TRUE(contains(r.reason, dir.file("libaaa-vendor-scorer.so") + " must change")) << r.reason;
}

TEST(PluginScanner, AThirdPartyFileMayNotTakeAShippedName) {
  test::TempDir dir;
  // The shipped scorer's bytes under a vendor's file name: it claims the name 'scoring'.
  fs::copy_file(shipped("scoring"), dir.file("libacme-scoring.so"));
  core::PluginRegistry reg(options(dir));
  auto r = reg.load_file(dir.file("libacme-scoring.so"));
  ASSERT_FALSE(r.is_ok());
  EXPECT_TRUE(contains(r.status().message(), "'scoring' is the name of a plugin shipped"))
      << r.status().message();
  expect_host_still_works(reg);
}

// The daemon's way: only the plugins its config names are loaded, and only the files that lead
// to them are screened (the shipped file names first): a broken or hanging file beside them costs
// nothing and is never mapped. A name nothing provides screens everything, naming each refusal.
TEST(PluginScanner, LoadNamedMapsOnlyWhatIsAskedFor) {
  test::TempDir dir;
  for (const char* w : {"segv", "hang", "twin-a", "twin-b"}) {
    fs::create_symlink(hostile(w), dir.file(std::string("libvendor-hostile-") + w + ".so"));
  }
  for (const char* n : {"scoring", "probes"}) {
    fs::create_symlink(shipped(n), dir.file(std::string("libpatronus-") + n + ".so"));
  }
  core::PluginRegistry reg(options(dir, std::chrono::milliseconds(1500)));
  auto named = reg.load_named(dir.path(), {"probes", "scoring"});
  ASSERT_TRUE(named.is_ok()) << named.status().to_string();
  EXPECT_EQ(named.value().loaded.size(), 2u);
  EXPECT_EQ(reg.plugins().size(), 2u);
  EXPECT_TRUE(named.value().refused.empty());
  // Two files screened, and scoring's load screened again once probes was mapped (another
  // context); none of the vendor files.
  EXPECT_EQ(reg.scans_run(), 3u) << "files no name leads to were screened";

  auto missing = reg.load_named(dir.path(), {"latency"});
  ASSERT_FALSE(missing.is_ok());
  const std::string& m = missing.status().message();
  EXPECT_TRUE(contains(m, "no plugin named 'latency'")) << m;
  EXPECT_TRUE(contains(m, "libvendor-hostile-segv.so")) << m;
  EXPECT_TRUE(contains(m, "libvendor-hostile-hang.so")) << m;
  EXPECT_EQ(reg.find("hostile-twin-a"), nullptr) << "a screened file is never mapped";

  // A third-party name: its file (named after it) is screened first, and alone.
  core::PluginRegistry other(options(dir));
  auto twin = other.load_named(dir.path(), {"hostile-twin-a"});
  ASSERT_TRUE(twin.is_ok()) << twin.status().to_string();
  // One file consulted: its verdict, then its load (from the cache: the sweep above screened it
  // in this same context).
  EXPECT_EQ(other.scans_run() + other.scan_cache_hits(), 2u);
}

TEST(PluginScanner, ScanDirectoryDescribesWithoutMapping) {
  test::TempDir dir;
  fs::create_symlink(hostile("abort"), dir.file("libvendor-abort.so"));
  fs::create_symlink(shipped("scoring"), dir.file("libpatronus-scoring.so"));
  core::PluginRegistry reg(options(dir));
  auto listing = reg.scan_directory(dir.path());
  ASSERT_TRUE(listing.is_ok());
  ASSERT_EQ(listing.value().candidates.size(), 2u);
  const auto& first = listing.value().candidates[0];
  EXPECT_TRUE(first.shipped);
  EXPECT_TRUE(first.status.is_ok());
  EXPECT_EQ(first.info.name, "scoring");
  EXPECT_EQ(first.info.config_type, "patronus.scoring.v1.Config");
  EXPECT_FALSE(listing.value().candidates[1].status.is_ok());
  EXPECT_TRUE(reg.plugins().empty());
}

}  // namespace
