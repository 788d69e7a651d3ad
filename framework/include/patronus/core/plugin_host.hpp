// The plugin host: loads plugin shared objects through Boost.DLL, checks their descriptors
// before running anything else of theirs, and keeps them loaded for the life of the registry.
// Built-in implementations and test fakes register through the same checks.
// See docs/adr/0001-plugin-abi.md. C++17-clean (used by the ns-3 backend).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "patronus/abi/plugin_abi.h"
#include "patronus/util/status.hpp"

namespace patronus::core {

namespace scanner {
class Cache;
}

class ConfigSchema;

enum class PluginKind : std::uint32_t {
  kTransport = PATRONUS_KIND_TRANSPORT,
  kProbe = PATRONUS_KIND_PROBE,
  kScorer = PATRONUS_KIND_SCORER,
  kPolicy = PATRONUS_KIND_POLICY,
};
const char* to_string(PluginKind kind);

struct PluginInfo {
  std::string name;
  std::string version;
  PluginKind kind = PluginKind::kProbe;
  std::uint32_t abi_major = 0;
  std::uint32_t abi_minor = 0;
  std::string config_type;  // empty: the plugin takes no configuration
  std::string file;         // path of the shared object, or "builtin:<origin>"
  // ABI 1.2 descriptor flag PATRONUS_PLUGIN_NEEDS_REAL_NETWORK: the plugin configures real
  // interfaces or sockets; hosts without the real network (the simulator) refuse it.
  bool needs_real_network = false;
};

// One accepted plugin. Holds the shared library (if any) open for as long as it lives; every
// instance created from it holds a shared_ptr to it.
class PluginLibrary {
 public:
  ~PluginLibrary();
  const PluginInfo& info() const { return info_; }
  // A copy of the plugin's descriptor, zero-extended to the host's size.
  const patronus_plugin_descriptor& descriptor() const { return desc_; }
  // The kind table, copied and zero-extended to the host's size of that table.
  const patronus_transport_v1& transport() const { return transport_; }
  const patronus_probe_v1& probe() const { return probe_; }
  const patronus_scorer_v1& scorer() const { return scorer_; }
  const patronus_policy_v1& policy() const { return policy_; }
  // Null when the plugin takes no configuration.
  const ConfigSchema* schema() const { return schema_.get(); }

 private:
  friend class PluginRegistry;
  PluginLibrary();
  struct Lib;
  std::unique_ptr<Lib> lib_;  // null for built-ins
  PluginInfo info_;
  patronus_plugin_descriptor desc_{};
  patronus_transport_v1 transport_{};
  patronus_probe_v1 probe_{};
  patronus_scorer_v1 scorer_{};
  patronus_policy_v1 policy_{};
  std::unique_ptr<ConfigSchema> schema_;
};

struct Refusal {
  std::string file;
  std::string reason;
};

// What a directory scan did with each entry: loaded (in the registry), refused (a candidate that
// failed a check) or skipped (not a candidate; never opened).
struct DirectoryScan {
  std::vector<Refusal> refused;
  std::vector<Refusal> skipped;
};

// How plugin files are screened before the host maps them: each is first opened in a child
// process (the scanner), so a file whose load crashes, aborts, exits or hangs is refused by name
// and never mapped here. Verdicts are cached per file (path, device, inode, size, mtime) and per
// what the process had loaded before it.
struct ScanOptions {
  bool enabled = true;                       // false: map candidates directly (debugging only)
  std::chrono::milliseconds timeout{10000};  // a load that takes longer is refused
  std::string cache_file;                    // "": no cache (every load forks a scanner)
};
// enabled unless PATRONUS_PLUGIN_SCAN=off; the cache is $PATRONUS_PLUGIN_CACHE ("" or "none":
// none), else $XDG_CACHE_HOME/patronus/plugin-scan, else $HOME/.cache/patronus/plugin-scan.
ScanOptions default_scan_options();

// The plugins this project ships (plugins/<name>, installed as libpatronus-<name>.so). Their
// names, file names and Protobuf files win over third-party plugins: those load after them, and
// one that takes a shipped plugin's name is refused.
const std::vector<std::string>& shipped_plugin_names();
bool is_shipped_plugin(std::string_view name);

// A candidate file of a directory and the scanner's verdict on it; nothing of it is mapped.
struct Candidate {
  std::string file;
  Status status;    // ok: it loads here; else why not
  PluginInfo info;  // what its descriptor says (when ok)
  bool shipped = false;
};
struct DirectoryListing {
  std::vector<Candidate> candidates;  // shipped first, then by file name
  std::vector<Refusal> skipped;       // not candidates; never opened
};

class PluginRegistry {
 public:
  PluginRegistry();
  explicit PluginRegistry(ScanOptions options);
  ~PluginRegistry();
  PluginRegistry(const PluginRegistry&) = delete;
  PluginRegistry& operator=(const PluginRegistry&) = delete;

  // Loads one shared object. It is first screened in a child process (ScanOptions); then, in
  // this process: the file exists; it exports the alias
  // patronus_plugin_entry, and its embedded Protobuf schema (section .patronus.schema) names no
  // file or symbol already in libprotobuf's process-wide pool (both read from the file, nothing
  // of the plugin runs); it loads with RTLD_NOW|RTLD_LOCAL; its descriptor passes validate().
  // Errors name the file (and, for a collision, the other file).
  Result<std::shared_ptr<const PluginLibrary>> load_file(const std::string& path);
  // A plugin compiled into the host (or a test fake): the same descriptor checks.
  Result<std::shared_ptr<const PluginLibrary>> register_builtin(
      const patronus_plugin_descriptor* descriptor, const std::string& origin);
  // Loads every regular file (or symlink to one) named lib*.so in dir, sorted by name. Every other
  // entry is skipped with the reason: versioned names (libfoo.so.1: load it through a
  // libfoo.so symlink), other names, directories and special files. Nothing skipped is opened.
  // Shipped plugins are loaded first (see shipped_plugin_names()), then the rest by name.
  Result<DirectoryScan> load_directory(const std::string& dir);
  // Screens every candidate of `dir` (as load_directory would) without mapping any.
  Result<DirectoryListing> scan_directory(const std::string& dir);
  // Loads only the plugins named in `names` from `dir`, shipped ones first. Files are screened
  // until every name is found, likeliest first (libpatronus-<name>.so, lib<name>.so, *-<name>.so,
  // then the rest, each in the listing's order), so a broken file no name leads to costs no
  // time; the first file that provides a name is the one loaded. A name no loadable file
  // provides is an error that names every refusal; a screened file that is broken is reported
  // in the result and never mapped.
  struct NamedLoad {
    std::vector<std::shared_ptr<const PluginLibrary>> loaded;
    std::vector<Refusal> refused;  // candidates that were refused (not fatal: not needed)
    std::vector<Refusal> skipped;
  };
  Result<NamedLoad> load_named(const std::string& dir, const std::vector<std::string>& names);

  // Scanner processes run, and verdicts taken from the cache, by this registry.
  std::uint64_t scans_run() const { return scans_run_; }
  std::uint64_t scan_cache_hits() const { return scan_cache_hits_; }

  std::shared_ptr<const PluginLibrary> find(std::string_view name) const;
  const std::vector<std::shared_ptr<const PluginLibrary>>& plugins() const { return plugins_; }

 private:
  Result<std::shared_ptr<PluginLibrary>> accept(const patronus_plugin_descriptor* d,
                                                const std::string& file);
  // The load itself, in this process (the scanner's child runs the very same).
  Result<std::shared_ptr<const PluginLibrary>> load_here(const std::string& path);
  // One candidate file's verdict (mapped here already, or screened).
  Candidate describe(const std::string& file);
  // The scanner's verdict on a file in this process's present state (cached or a child's).
  Status screen(const std::string& path, PluginInfo* info);
  struct Listing {
    std::vector<std::string> files;  // candidates, shipped first
    std::vector<Refusal> skipped;
  };
  Result<Listing> list_directory(const std::string& dir) const;
  ScanOptions options_;
  std::unique_ptr<scanner::Cache> cache_;  // read once per registry, written on each new verdict
  std::uint64_t scans_run_ = 0;
  std::uint64_t scan_cache_hits_ = 0;
  std::vector<std::shared_ptr<const PluginLibrary>> plugins_;
};

// Checks a descriptor against this host (version rule, sizes, names, required functions,
// config schema). `file` is only used in messages.
Status validate_descriptor(const patronus_plugin_descriptor* d, const std::string& file);

// Symbols a shared object exports in Boost.DLL's "boostdll" section, read from the file
// without loading it.
Result<std::vector<std::string>> exported_aliases(const std::string& path);

}  // namespace patronus::core
