#include "patronus/core/plugin_host.hpp"

#include <dlfcn.h>

#include <algorithm>
#include <boost/dll/library_info.hpp>
#include <boost/dll/shared_library.hpp>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "elf_section.hpp"
#include "patronus/core/config_schema.hpp"
#include "schema_guard.hpp"

namespace patronus::core {

namespace {

constexpr std::size_t kMinDescriptorSize = PATRONUS_SIZE_1_0_DESCRIPTOR;
static_assert(sizeof(patronus_plugin_descriptor) >= PATRONUS_SIZE_1_0_DESCRIPTOR);
static_assert(sizeof(patronus_transport_v1) >= PATRONUS_SIZE_1_0_TRANSPORT);
static_assert(sizeof(patronus_probe_v1) >= PATRONUS_SIZE_1_0_PROBE);
static_assert(sizeof(patronus_scorer_v1) >= PATRONUS_SIZE_1_0_SCORER);
static_assert(sizeof(patronus_policy_v1) >= PATRONUS_SIZE_1_0_POLICY);
constexpr std::size_t kFixedHeaderSize =
    offsetof(patronus_plugin_descriptor, version) + sizeof(const char*);

std::string abi_string(std::uint32_t major, std::uint32_t minor) {
  return std::to_string(major) + "." + std::to_string(minor);
}

bool valid_plugin_name(const char* name) {
  if (name == nullptr) return false;
  const std::size_t n = strnlen(name, 65);
  if (n == 0 || n > 64) return false;
  for (std::size_t i = 0; i < n; ++i) {
    const char c = name[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return true;
}

// Copies a plugin's kind table into the host's (zero-extended) struct. `min_size` is the table's
// frozen size in the ABI version that introduced it, never the host's sizeof: a plugin built
// against an older minor has a shorter table and must keep loading.
template <typename Table>
Status copy_table(const void* src, Table* dst, std::size_t min_size, const std::string& what,
                  const std::string& file) {
  if (src == nullptr) return invalid_argument(file + ": kind_table is NULL for a " + what);
  std::uint32_t size = 0;
  std::memcpy(&size, src, sizeof size);
  if (size < min_size) {
    return invalid_argument(file + ": " + what + " table is " + std::to_string(size) +
                            " bytes, shorter than the " + std::to_string(min_size) + " of ABI 1.0");
  }
  *dst = Table{};
  std::memcpy(dst, src, std::min<std::size_t>(size, sizeof(Table)));
  if (dst->reserved0 != 0) {
    return invalid_argument(file + ": " + what + " table field reserved0 is " +
                            std::to_string(dst->reserved0) + "; reserved fields must be zero");
  }
  return Status::ok();
}

Status check_kind_table(const patronus_plugin_descriptor& d, const std::string& file,
                        patronus_transport_v1* transport, patronus_probe_v1* probe,
                        patronus_scorer_v1* scorer, patronus_policy_v1* policy) {
  switch (d.kind) {
    case PATRONUS_KIND_TRANSPORT: {
      auto s = copy_table(d.kind_table, transport, PATRONUS_SIZE_1_0_TRANSPORT, "transport", file);
      if (!s.is_ok()) return s;
      if (!transport->path_up || !transport->path_down) {
        return invalid_argument(file + ": transport table lacks path_up or path_down");
      }
      return Status::ok();
    }
    case PATRONUS_KIND_PROBE: {
      auto s = copy_table(d.kind_table, probe, PATRONUS_SIZE_1_0_PROBE, "probe", file);
      if (!s.is_ok()) return s;
      if (!probe->watch_path || !probe->unwatch_path) {
        return invalid_argument(file + ": probe table lacks watch_path or unwatch_path");
      }
      return Status::ok();
    }
    case PATRONUS_KIND_SCORER: {
      auto s = copy_table(d.kind_table, scorer, PATRONUS_SIZE_1_0_SCORER, "scorer", file);
      if (!s.is_ok()) return s;
      if (!scorer->score) return invalid_argument(file + ": scorer table lacks score");
      return Status::ok();
    }
    case PATRONUS_KIND_POLICY: {
      auto s = copy_table(d.kind_table, policy, PATRONUS_SIZE_1_0_POLICY, "policy", file);
      if (!s.is_ok()) return s;
      if (!policy->load || !policy->evaluate) {
        return invalid_argument(file + ": policy table lacks load or evaluate");
      }
      return Status::ok();
    }
    default:
      return invalid_argument(file + ": unknown plugin kind " + std::to_string(d.kind) +
                              " (1 transport, 2 probe, 3 scorer, 4 policy)");
  }
}

}  // namespace

const char* to_string(PluginKind kind) {
  switch (kind) {
    case PluginKind::kTransport:
      return "transport";
    case PluginKind::kProbe:
      return "probe";
    case PluginKind::kScorer:
      return "scorer";
    case PluginKind::kPolicy:
      return "policy";
  }
  return "unknown";
}

struct PluginLibrary::Lib {
  boost::dll::shared_library lib;
};

PluginLibrary::PluginLibrary() = default;
PluginLibrary::~PluginLibrary() = default;

static std::string hex32(std::uint32_t v) {
  char b[9];
  std::snprintf(b, sizeof b, "%x", v);
  return b;
}

Status validate_descriptor(const patronus_plugin_descriptor* d, const std::string& file) {
  if (d == nullptr) return invalid_argument(file + ": the entry point returned NULL");
  if (d->struct_size < kFixedHeaderSize) {
    return invalid_argument(file + ": descriptor struct_size " + std::to_string(d->struct_size) +
                            " is too short to hold even the fixed header (" +
                            std::to_string(kFixedHeaderSize) + " bytes)");
  }
  const std::string host = abi_string(PATRONUS_ABI_VERSION_MAJOR, PATRONUS_ABI_VERSION_MINOR);
  const std::string plugin = abi_string(d->abi_major, d->abi_minor);
  if (d->abi_major != PATRONUS_ABI_VERSION_MAJOR) {
    return failed_precondition(file + ": plugin ABI " + plugin + " has major version " +
                               std::to_string(d->abi_major) + ", host ABI " + host +
                               " needs major " + std::to_string(PATRONUS_ABI_VERSION_MAJOR));
  }
  if (d->abi_minor > PATRONUS_ABI_VERSION_MINOR) {
    return failed_precondition(file + ": plugin ABI " + plugin + " is newer than host ABI " + host +
                               "; rebuild the plugin against ABI " + host + " or upgrade the host");
  }
  if (d->struct_size < kMinDescriptorSize) {
    return invalid_argument(file + ": descriptor struct_size " + std::to_string(d->struct_size) +
                            " is shorter than the " + std::to_string(kMinDescriptorSize) +
                            " bytes of an ABI " + plugin + " descriptor");
  }
  if (!valid_plugin_name(d->name)) {
    return invalid_argument(file + ": plugin name must be 1-64 characters of [a-z0-9-]");
  }
  if (d->version == nullptr || d->version[0] == '\0') {
    return invalid_argument(file + ": plugin '" + d->name + "' has no version string");
  }
  if (!d->create || !d->configure || !d->start || !d->stop || !d->destroy) {
    return invalid_argument(file + ": plugin '" + d->name +
                            "' lacks a lifecycle function (create/configure/start/stop/destroy)");
  }
  if (d->reserved0 != 0) {
    return invalid_argument(
        file + ": plugin '" + d->name +
        "' descriptor field reserved0 is not zero; reserved fields must be zero");
  }
  for (std::size_t i = 0; i < sizeof d->reserved / sizeof d->reserved[0]; ++i) {
    if (d->reserved[i] != nullptr) {
      return invalid_argument(file + ": plugin '" + d->name + "' descriptor slot reserved[" +
                              std::to_string(i) + "] is not NULL; reserved slots must be zero");
    }
  }
  // ABI 1.2 flags: read only from a 1.2+ plugin whose descriptor reaches them.
  if (d->abi_minor >= 2 &&
      d->struct_size >= offsetof(patronus_plugin_descriptor, reserved1) + sizeof d->reserved1) {
    constexpr std::uint32_t kKnownFlags = PATRONUS_PLUGIN_NEEDS_REAL_NETWORK;
    if ((d->flags & ~kKnownFlags) != 0) {
      return invalid_argument(file + ": plugin '" + d->name + "' descriptor flags 0x" +
                              hex32(d->flags) + " include bits this host does not know (0x" +
                              hex32(d->flags & ~kKnownFlags) + ")");
    }
    if (d->reserved1 != 0) {
      return invalid_argument(
          file + ": plugin '" + d->name +
          "' descriptor field reserved1 is not zero; reserved fields must be zero");
    }
  }
  if ((d->config_type == nullptr) != (d->config_schema == nullptr || d->config_schema_size == 0)) {
    return invalid_argument(file + ": plugin '" + d->name +
                            "' must give both config_type and config_schema, or neither");
  }
  return Status::ok();
}

Result<std::shared_ptr<PluginLibrary>> PluginRegistry::accept(const patronus_plugin_descriptor* d,
                                                              const std::string& file) {
  if (auto s = validate_descriptor(d, file); !s.is_ok()) return s;
  std::shared_ptr<PluginLibrary> lib(new PluginLibrary());
  std::memcpy(&lib->desc_, d, std::min<std::size_t>(d->struct_size, sizeof(lib->desc_)));
  auto& desc = lib->desc_;
  if (auto s = check_kind_table(desc, file, &lib->transport_, &lib->probe_, &lib->scorer_,
                                &lib->policy_);
      !s.is_ok()) {
    return s;
  }
  if (find(desc.name)) {
    return failed_precondition(file + ": a plugin named '" + desc.name +
                               "' is already loaded from " + find(desc.name)->info().file);
  }
  lib->info_.name = desc.name;
  lib->info_.version = desc.version;
  lib->info_.kind = static_cast<PluginKind>(desc.kind);
  lib->info_.abi_major = desc.abi_major;
  lib->info_.abi_minor = desc.abi_minor;
  lib->info_.file = file;
  // A pre-1.2 descriptor has no flags (the copy above may hold bytes past its 1.1 end only if
  // the plugin claimed a longer struct; they are not ours to read).
  if (desc.abi_minor < 2) desc.flags = desc.reserved1 = 0;
  lib->info_.needs_real_network = (desc.flags & PATRONUS_PLUGIN_NEEDS_REAL_NETWORK) != 0;
  if (desc.config_type != nullptr) {
    lib->info_.config_type = desc.config_type;
    auto schema =
        ConfigSchema::build(desc.config_type, desc.config_schema, desc.config_schema_size);
    if (!schema.is_ok()) {
      return invalid_argument(file + ": plugin '" + desc.name +
                              "' config schema: " + schema.status().message());
    }
    lib->schema_ = std::move(schema).value();
  }
  return lib;
}

Result<std::vector<std::string>> exported_aliases(const std::string& path) {
  try {
    boost::dll::library_info info(path, /*throw_if_not_native=*/true);
    return info.symbols("boostdll");
  } catch (const std::exception& e) {
    return invalid_argument(path + ": not a loadable shared object for this host (" + e.what() +
                            ")");
  }
}

PluginRegistry::PluginRegistry() = default;
PluginRegistry::~PluginRegistry() = default;

Result<std::shared_ptr<const PluginLibrary>> PluginRegistry::load_file(const std::string& path) {
  std::error_code fec;
  if (!std::filesystem::is_regular_file(path, fec)) {
    return not_found(path + ": no such plugin file");
  }
  // 1. The alias must be exported; read from the file, no plugin code runs.
  auto aliases = exported_aliases(path);
  if (!aliases.is_ok()) return aliases.status();
  const auto& names = aliases.value();
  if (std::find(names.begin(), names.end(), PATRONUS_PLUGIN_ENTRY_NAME) == names.end()) {
    return invalid_argument(path + ": does not export the entry point '" +
                            std::string(PATRONUS_PLUGIN_ENTRY_NAME) +
                            "' (build it with PATRONUS_PLUGIN_ENTRY or PATRONUS_SDK_PLUGIN)");
  }
  // 2. Its Protobuf files must be free in libprotobuf's process-wide pool: a taken name aborts
  //    the process inside the plugin's static initialisers. Read from the file, nothing runs.
  auto schema = elf_section_from_file(path, kSchemaSection);
  if (!schema.is_ok()) return schema.status();
  if (schema.value()) {
    if (auto s = check_schema_collisions(*schema.value(), path); !s.is_ok()) return s;
  }
  // 3. Load now, locally: unresolved symbols fail here rather than at first call.
  auto impl = std::make_unique<PluginLibrary::Lib>();
  boost::dll::fs::error_code ec;
  // RTLD_NODELETE: a plugin is never unmapped before the process exits, even when its registry
  // goes away. Plugin code may have registered global state (e.g. its Protobuf descriptors in
  // libprotobuf's generated pool) that must not dangle, and a reload must find it in place.
  const auto mode = static_cast<boost::dll::load_mode::type>(
      static_cast<unsigned>(boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local) |
      RTLD_NODELETE);
  impl->lib.load(path, mode, ec);
  if (ec) {
    // Ask the dynamic loader for its own words (e.g. the undefined symbol's name).
    std::string why = ec.message();
    if (void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE)) {
      dlclose(h);
    } else if (const char* e = dlerror()) {
      why = e;
    }
    return failed_precondition(path + ": cannot be loaded: " + why);
  }
  // Its initialisers have run: whatever it registered is in the pool now, whatever follows.
  if (schema.value()) record_schema_owner(*schema.value(), path);
  // 4. Only now run the plugin's entry point and check what it describes.
  const patronus_plugin_descriptor* d = nullptr;
  try {
    auto& entry =
        impl->lib.get_alias<const patronus_plugin_descriptor*()>(PATRONUS_PLUGIN_ENTRY_NAME);
    d = entry();
  } catch (const std::exception& e) {
    return internal_error(path + ": entry point failed: " + e.what());
  }
  auto accepted = accept(d, path);
  if (!accepted.is_ok()) return accepted.status();
  auto lib = std::move(accepted).value();
  lib->lib_ = std::move(impl);
  plugins_.push_back(lib);
  return std::shared_ptr<const PluginLibrary>(lib);
}

Result<std::shared_ptr<const PluginLibrary>> PluginRegistry::register_builtin(
    const patronus_plugin_descriptor* descriptor, const std::string& origin) {
  auto accepted = accept(descriptor, "builtin:" + origin);
  if (!accepted.is_ok()) return accepted.status();
  plugins_.push_back(accepted.value());
  return std::shared_ptr<const PluginLibrary>(accepted.value());
}

Result<DirectoryScan> PluginRegistry::load_directory(const std::string& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    return not_found(dir + ": plugin directory does not exist");
  }
  DirectoryScan scan;
  std::vector<std::string> files;
  auto ends_with = [](const std::string& s, const std::string& t) {
    return s.size() >= t.size() && s.compare(s.size() - t.size(), t.size(), t) == 0;
  };
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const auto name = entry.path().filename().string();
    const std::string path = entry.path().string();
    std::error_code type_ec;
    const bool regular = entry.is_regular_file(type_ec);  // follows symlinks
    const bool named = name.rfind("lib", 0) == 0 && name.size() > 6 && ends_with(name, ".so");
    if (!regular) {
      scan.skipped.push_back(
          {path, entry.is_directory(type_ec) ? "a directory" : "not a regular file"});
    } else if (named) {
      files.push_back(path);
    } else if (name.rfind("lib", 0) == 0 && name.find(".so.") != std::string::npos) {
      scan.skipped.push_back(
          {path,
           "a versioned name: plugins are loaded as lib<name>.so (a symlink to this "
           "file will do)"});
    } else {
      scan.skipped.push_back({path, "not named lib<name>.so"});
    }
  }
  if (ec) return unavailable(dir + ": " + ec.message());
  std::sort(files.begin(), files.end());
  auto by_file = [](const Refusal& a, const Refusal& b) { return a.file < b.file; };
  std::sort(scan.skipped.begin(), scan.skipped.end(), by_file);
  for (const auto& f : files) {
    auto r = load_file(f);
    if (!r.is_ok()) scan.refused.push_back({f, r.status().message()});
  }
  return scan;
}

std::shared_ptr<const PluginLibrary> PluginRegistry::find(std::string_view name) const {
  for (const auto& p : plugins_) {
    if (p->info().name == name) return p;
  }
  return nullptr;
}

}  // namespace patronus::core
