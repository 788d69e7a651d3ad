#include "patronus/core/plugin_host.hpp"
#include <sys/stat.h>
#include <unistd.h>

#include <dlfcn.h>

#include <algorithm>
#include <boost/dll/shared_library.hpp>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>

#include "elf_section.hpp"
#include "patronus/core/config_schema.hpp"
#include "patronus/util/file.hpp"
#include "plugin_scanner.hpp"
#include "schema_guard.hpp"

#ifndef PATRONUS_SHIPPED_PLUGINS
#error "PATRONUS_SHIPPED_PLUGINS (the plugins/ directories, comma-separated) must be defined"
#endif

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
  if (is_shipped_plugin(desc.name) && file.rfind("builtin:", 0) != 0 && !is_shipped_file(file)) {
    return failed_precondition(file + ": '" + desc.name +
                               "' is the name of a plugin shipped with Patronus (libpatronus-" +
                               desc.name + ".so); this plugin must choose a name of its own");
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
    if (file.rfind("builtin:", 0) != 0 && !is_shipped_file(file)) {
      const std::string set(reinterpret_cast<const char*>(desc.config_schema),
                            desc.config_schema_size);
      if (auto s = check_reserved_names(set, file); !s.is_ok()) return s;
    }
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
  // Boost.DLL's aliases are global symbols in the "boostdll" section. Read from the dynamic
  // symbol table: boost::dll::library_info reads .symtab, which a stripped plugin has not.
  auto names = elf_exported_in_section_from_file(path, "boostdll");
  if (!names.is_ok()) {
    return invalid_argument(path + ": not a loadable shared object for this host (" +
                            names.status().message() + ")");
  }
  return names;
}

PluginRegistry::PluginRegistry() : PluginRegistry(default_scan_options()) {}
PluginRegistry::PluginRegistry(ScanOptions options) : options_(std::move(options)) {}
PluginRegistry::~PluginRegistry() = default;

ScanOptions default_scan_options() {
  ScanOptions o;
  if (const char* s = std::getenv("PATRONUS_PLUGIN_SCAN"); s && std::string(s) == "off") {
    o.enabled = false;
  }
  if (const char* c = std::getenv("PATRONUS_PLUGIN_CACHE")) {
    const std::string v = c;
    o.cache_file = v == "none" ? "" : v;
  } else if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x == '/') {
    o.cache_file = std::string(x) + "/patronus/plugin-scan";
  } else if (const char* h = std::getenv("HOME"); h && *h == '/') {
    o.cache_file = std::string(h) + "/.cache/patronus/plugin-scan";
  }
  return o;
}

const std::vector<std::string>& shipped_plugin_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    std::string all = PATRONUS_SHIPPED_PLUGINS;
    std::size_t at = 0;
    while (at <= all.size()) {
      const auto comma = all.find(',', at);
      const auto end = comma == std::string::npos ? all.size() : comma;
      if (end > at) v.push_back(all.substr(at, end - at));
      at = end + 1;
    }
    return v;
  }();
  return names;
}

bool is_shipped_plugin(std::string_view name) {
  const auto& v = shipped_plugin_names();
  return std::find(v.begin(), v.end(), name) != v.end();
}

bool is_shipped_file(const std::string& path) {
  const std::string base = std::filesystem::path(path).filename().string();
  const std::string prefix = "libpatronus-", suffix = ".so";
  if (base.size() <= prefix.size() + suffix.size() || base.rfind(prefix, 0) != 0 ||
      base.compare(base.size() - suffix.size(), suffix.size(), suffix) != 0) {
    return false;
  }
  return is_shipped_plugin(base.substr(prefix.size(), base.size() - prefix.size() - suffix.size()));
}

namespace {

// A file this (root) process maps, and its directory, must be owned_and_closed: another local
// user must not be able to swap in their code.
Status check_trusted_file(const std::string& path) {
  std::error_code ec;
  const auto real = std::filesystem::canonical(path, ec);
  if (ec) return not_found(path + ": " + ec.message());
  for (const auto& p : {real, real.parent_path()}) {
    struct stat st {};
    if (::stat(p.c_str(), &st) != 0) return not_found(p.string() + ": " + std::strerror(errno));
    const std::string what = (p == real ? "plugin file " : "plugin directory ") + p.string();
    if (auto s = owned_and_closed(what, st); !s.is_ok()) {
      return Status(s.code(), s.message() + ": refused");
    }
  }
  return Status::ok();
}

}  // namespace

Status PluginRegistry::screen(const std::string& path, PluginInfo* info) {
  if (auto s = check_trusted_file(path); !s.is_ok()) return s;
  if (!options_.enabled) return Status::ok();
  auto id = scanner::file_id(path);
  if (!id.is_ok()) return not_found(path + ": no such plugin file");
  const std::string key = scanner::cache_key(id.value(), scanner::context_fingerprint());
  if (!cache_ && !options_.cache_file.empty()) {
    cache_ = std::make_unique<scanner::Cache>(options_.cache_file);
  }
  scanner::Cache* cache = cache_.get();
  std::optional<scanner::Verdict> v;
  if (cache) v = cache->find(key);
  if (v) {
    ++scan_cache_hits_;
  } else {
    ++scans_run_;
    v = scanner::run_in_child(
        path,
        [&]() -> scanner::Verdict {
          auto r = load_here(path);
          if (!r.is_ok()) return {r.status(), {}};
          return {Status::ok(), r.value()->info()};
        },
        options_.timeout);
    // A scan that could not run (no fork, no pipe) says nothing about the file: not cached.
    if (cache && v->status.code() != Code::kUnavailable) cache->put(key, *v);
  }
  if (info) *info = v->info;
  return v->status;
}

Result<std::shared_ptr<const PluginLibrary>> PluginRegistry::load_file(const std::string& path) {
  std::error_code fec;
  if (!std::filesystem::is_regular_file(path, fec)) {
    return not_found(path + ": no such plugin file");
  }
  // 0. A child process loads it first: a crash, an abort, an exit or a hang there is a refusal
  //    here, and this process never maps the file.
  if (auto s = screen(path, nullptr); !s.is_ok()) return s;
  return load_here(path);
}

Result<std::shared_ptr<const PluginLibrary>> PluginRegistry::load_here(const std::string& path) {
  if (auto s = check_trusted_file(path); !s.is_ok()) return s;
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
  if (auto id = scanner::file_id(path); id.is_ok()) scanner::note_loaded(id.value());
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

Result<PluginRegistry::Listing> PluginRegistry::list_directory(const std::string& dir) const {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    return not_found(dir + ": plugin directory does not exist");
  }
  Listing out;
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
      out.skipped.push_back(
          {path, entry.is_directory(type_ec) ? "a directory" : "not a regular file"});
    } else if (named) {
      out.files.push_back(path);
    } else if (name.rfind("lib", 0) == 0 && name.find(".so.") != std::string::npos) {
      out.skipped.push_back(
          {path,
           "a versioned name: plugins are loaded as lib<name>.so (a symlink to this "
           "file will do)"});
    } else {
      out.skipped.push_back({path, "not named lib<name>.so"});
    }
  }
  if (ec) return unavailable(dir + ": " + ec.message());
  // Shipped plugins first: their names and Protobuf files are taken before any third party's.
  std::sort(out.files.begin(), out.files.end(), [](const std::string& a, const std::string& b) {
    const bool sa = is_shipped_file(a), sb = is_shipped_file(b);
    return sa != sb ? sa : a < b;
  });
  std::sort(out.skipped.begin(), out.skipped.end(),
            [](const Refusal& a, const Refusal& b) { return a.file < b.file; });
  return out;
}

Result<DirectoryScan> PluginRegistry::load_directory(const std::string& dir) {
  auto listing = list_directory(dir);
  if (!listing.is_ok()) return listing.status();
  DirectoryScan scan;
  scan.skipped = std::move(listing.value().skipped);
  for (const auto& f : listing.value().files) {
    auto r = load_file(f);
    if (!r.is_ok()) scan.refused.push_back({f, r.status().message()});
  }
  return scan;
}

Candidate PluginRegistry::describe(const std::string& f) {
  Candidate c;
  c.file = f;
  c.shipped = is_shipped_file(f);
  if (const auto loaded = std::find_if(plugins_.begin(), plugins_.end(),
                                       [&](const auto& p) { return p->info().file == f; });
      loaded != plugins_.end()) {
    c.info = (*loaded)->info();  // mapped here already: its verdict is that it loaded
    return c;
  }
  c.status = screen(f, &c.info);
  if (!options_.enabled && c.status.is_ok()) {
    // Without the scanner the only way to learn what a file is, is to load it.
    auto r = load_here(f);
    c.status = r.status();
    if (r.is_ok()) c.info = r.value()->info();
  }
  return c;
}

Result<DirectoryListing> PluginRegistry::scan_directory(const std::string& dir) {
  auto listing = list_directory(dir);
  if (!listing.is_ok()) return listing.status();
  DirectoryListing out;
  out.skipped = std::move(listing.value().skipped);
  for (const auto& f : listing.value().files) out.candidates.push_back(describe(f));
  return out;
}

namespace {

// How likely `file` is to hold plugin `name`: the shipped file name, then lib<name>.so, then a
// name ending in -<name> or _<name>, then anything.
int rank_for(const std::string& name, const std::string& file) {
  const std::string base = std::filesystem::path(file).filename().string();
  if (base == "libpatronus-" + name + ".so") return 0;
  if (base == "lib" + name + ".so") return 1;
  const std::string stem = base.substr(0, base.size() - 3);
  for (const char sep : {'-', '_'}) {
    const std::string tail = std::string(1, sep) + name;
    if (stem.size() > tail.size() &&
        stem.compare(stem.size() - tail.size(), tail.size(), tail) == 0) {
      return 2;
    }
  }
  return 3;
}

}  // namespace

Result<PluginRegistry::NamedLoad> PluginRegistry::load_named(
    const std::string& dir, const std::vector<std::string>& names) {
  auto listing = list_directory(dir);
  if (!listing.is_ok()) return listing.status();
  const std::vector<std::string>& files = listing.value().files;  // shipped first
  NamedLoad out;
  out.skipped = listing.value().skipped;
  // Files are screened only until every name is found, likeliest first: a broken or slow file
  // that no name leads to costs nothing.
  std::map<std::string, Candidate> screened;
  auto verdict = [&](const std::string& f) -> const Candidate& {
    auto it = screened.find(f);
    if (it == screened.end()) {
      it = screened.emplace(f, describe(f)).first;
      if (!it->second.status.is_ok()) out.refused.push_back({f, it->second.status.message()});
    }
    return it->second;
  };
  std::vector<std::string> chosen;
  for (const auto& name : names) {
    if (find(name)) continue;
    std::vector<std::string> order = files;
    std::stable_sort(order.begin(), order.end(), [&](const std::string& a, const std::string& b) {
      return rank_for(name, a) < rank_for(name, b);
    });
    const std::string* found = nullptr;
    for (const auto& f : order) {
      const Candidate& c = verdict(f);
      if (c.status.is_ok() && c.info.name == name) {
        found = &f;
        break;
      }
    }
    if (found == nullptr) {
      std::string why = dir + ": no plugin named '" + name + "'";
      for (const auto& r : out.refused) why += "; refused " + r.file + ": " + r.reason;
      return not_found(why);
    }
    if (std::find(chosen.begin(), chosen.end(), *found) == chosen.end()) chosen.push_back(*found);
  }
  // In the listing's order: shipped first.
  std::sort(chosen.begin(), chosen.end(), [&](const std::string& a, const std::string& b) {
    return std::find(files.begin(), files.end(), a) < std::find(files.begin(), files.end(), b);
  });
  for (const auto& f : chosen) {
    auto r = load_file(f);
    if (!r.is_ok()) return r.status();
    out.loaded.push_back(r.value());
  }
  std::sort(out.refused.begin(), out.refused.end(),
            [](const Refusal& a, const Refusal& b) { return a.file < b.file; });
  return out;
}

std::shared_ptr<const PluginLibrary> PluginRegistry::find(std::string_view name) const {
  for (const auto& p : plugins_) {
    if (p->info().name == name) return p;
  }
  return nullptr;
}

}  // namespace patronus::core
