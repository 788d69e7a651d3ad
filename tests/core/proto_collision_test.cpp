// Plugin Protobuf files share libprotobuf's process-wide pool: a second library registering a
// taken file or message name aborts the process inside its static initialisers. The host reads
// each plugin's embedded schema from the file first and refuses the collision, naming both files.
// Each test runs in a process of its own (gtest_discover_tests), so the pool starts empty but for
// the host's own files.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "../../framework/src/core/elf_section.hpp"
#include "patronus/core/config_schema.hpp"
#include "patronus/core/plugin_host.hpp"
#include "test_support.hpp"

namespace {

using namespace patronus;

std::string scoring() {
  return test::plugin_dir() + "/libpatronus-scoring.so";
}
std::string clash(const std::string& which) {
  return test::clash_plugin_dir() + "/libpatronus-test-clash-" + which + ".so";
}

TEST(ProtoCollision, ATakenFileNameIsRefusedBeforeLoadingNamingBothFiles) {
  core::PluginRegistry reg;
  ASSERT_TRUE(reg.load_file(scoring()).is_ok());
  auto r = reg.load_file(clash("file"));
  ASSERT_FALSE(r.is_ok());
  const std::string& m = r.status().message();
  EXPECT_NE(m.find(clash("file")), std::string::npos) << m;
  EXPECT_NE(m.find("'patronus/scoring/v1/scoring.proto'"), std::string::npos) << m;
  EXPECT_NE(m.find("plugin " + scoring()), std::string::npos) << m;
  EXPECT_EQ(reg.plugins().size(), 1u);
  EXPECT_EQ(reg.find("test-clash-file"), nullptr);
}

TEST(ProtoCollision, ATakenMessageNameIsRefusedNamingTheFileThatHasIt) {
  core::PluginRegistry reg;
  ASSERT_TRUE(reg.load_file(scoring()).is_ok());
  auto r = reg.load_file(clash("symbol"));
  ASSERT_FALSE(r.is_ok());
  const std::string& m = r.status().message();
  EXPECT_NE(m.find("message 'patronus.scoring.v1.Config'"), std::string::npos) << m;
  EXPECT_NE(m.find("'clash/symbol/v1/config.proto'"), std::string::npos) << m;
  EXPECT_NE(m.find("'patronus/scoring/v1/scoring.proto' of plugin " + scoring()), std::string::npos)
      << m;
}

// The shipped plugin's names are its own wherever it is loaded: a vendor plugin with its file
// path or its package is refused even alone (before, it loaded and then the shipped plugin was the
// one refused), naming the vendor as the one to change; the shipped plugin then loads.
void expect_reserved_then_shipped_loads(const std::string& which) {
  core::PluginRegistry reg;
  auto vendor = reg.load_file(clash(which));
  ASSERT_FALSE(vendor.is_ok()) << which;
  const std::string& m = vendor.status().message();
  EXPECT_NE(m.find("reserved for the 'scoring' plugin shipped with Patronus"), std::string::npos)
      << m;
  EXPECT_NE(m.find(clash(which) + " must change"), std::string::npos) << m;
  auto shipped = reg.load_file(scoring());
  ASSERT_TRUE(shipped.is_ok()) << shipped.status().to_string();
}

TEST(ProtoCollision, AShippedPluginsFilePathIsReservedEvenWhereItIsNotLoaded) {
  expect_reserved_then_shipped_loads("file");
}

TEST(ProtoCollision, AShippedPluginsPackageIsReservedEvenWhereItIsNotLoaded) {
  expect_reserved_then_shipped_loads("symbol");
}

// The dynamic loader hands back the mapping it has for the same object: no initialiser runs
// twice, so a second registry (or a second path to the same inode) is not a collision.
TEST(ProtoCollision, TheSameObjectLoadsAgainInAnotherRegistryAndThroughASymlink) {
  test::TempDir dir;
  std::filesystem::create_symlink(scoring(), dir.file("libpatronus-scoring.so"));
  {
    core::PluginRegistry reg;
    ASSERT_TRUE(reg.load_file(scoring()).is_ok());
  }
  core::PluginRegistry reg;
  auto r = reg.load_file(dir.file("libpatronus-scoring.so"));
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
}

// A copy is another object: its initialisers would register the same file again.
TEST(ProtoCollision, ACopyOfALoadedPluginIsRefused) {
  test::TempDir dir;
  std::filesystem::copy_file(scoring(), dir.file("libpatronus-scoring.so"));
  core::PluginRegistry first;
  ASSERT_TRUE(first.load_file(scoring()).is_ok());
  core::PluginRegistry second;
  auto r = second.load_file(dir.file("libpatronus-scoring.so"));
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("already registered by plugin " + scoring()),
            std::string::npos)
      << r.status().message();
}

// The CLI's scan reports the collision and exits non-zero; before, it died of SIGABRT.
TEST(ProtoCollision, PluginsListReportsTheCollisionAndExitsNonZero) {
  test::TempDir dir;
  std::filesystem::create_symlink(scoring(), dir.file("libpatronus-scoring.so"));
  std::filesystem::create_symlink(clash("file"), dir.file("libpatronus-vendor.so"));
  auto r =
      test::run({test::bin_dir() + "/patronus", "plugins", "list", "--plugin-dir", dir.path()});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("\nscoring "), std::string::npos) << r.out;  // still listed, loaded
  EXPECT_NE(r.out.find("refused " + dir.file("libpatronus-vendor.so")), std::string::npos) << r.out;
  EXPECT_NE((r.out + r.err).find("'patronus/scoring/v1/scoring.proto' is already registered"),
            std::string::npos)
      << r.out << r.err;
}

TEST(ElfSection, TheEmbeddedSchemaIsReadFromTheFileAsTheDescriptorHasIt) {
  auto from_file = core::elf_section_from_file(scoring(), ".patronus.schema");
  ASSERT_TRUE(from_file.is_ok()) << from_file.status().to_string();
  ASSERT_TRUE(from_file.value().has_value());
  core::PluginRegistry reg;
  auto lib = reg.load_file(scoring());
  ASSERT_TRUE(lib.is_ok());
  const auto& d = lib.value()->descriptor();
  EXPECT_EQ(*from_file.value(),
            std::string(reinterpret_cast<const char*>(d.config_schema), d.config_schema_size));
  auto absent = core::elf_section_from_file(scoring(), ".no.such.section");
  ASSERT_TRUE(absent.is_ok());
  EXPECT_FALSE(absent.value().has_value());
}

TEST(ElfSection, DamagedImagesGiveErrorsNamingWhatIsWrong) {
  const std::string image = test::read_file(scoring());
  auto expect_error = [](const std::string& bytes, const std::string& words) {
    auto r = core::elf_section_from_image(bytes, ".patronus.schema");
    ASSERT_FALSE(r.is_ok()) << words;
    EXPECT_NE(r.status().message().find(words), std::string::npos) << r.status().message();
  };
  expect_error(image.substr(0, 10), "too short");
  std::string bad_magic = image;
  bad_magic[1] = 'X';
  expect_error(bad_magic, "not an ELF object");
  std::string wrong_class = image;
  wrong_class[4] = 1;  // ELFCLASS32
  expect_error(wrong_class, "64-bit little-endian");
  // Cut before the section header table (which sits at the end of the file).
  expect_error(image.substr(0, image.size() - 64), "outside the file");
  EXPECT_TRUE(core::elf_section_from_image(image, ".patronus.schema").is_ok());
}

}  // namespace
