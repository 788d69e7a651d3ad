// The plugin scanner: every plugin file is first opened in a child process (fork, then the very
// load the host would do: dlopen, entry point, descriptor, config schema), which reports back.
// A file whose load crashes, aborts, exits or hangs kills only the child; the host refuses it with
// the signal or status and the child's last output, and never maps it. Verdicts are cached by the
// file's identity (path, device, inode, size, mtime) and by what the process had loaded before,
// so an unchanged start costs no process. See docs/adr/0019-plugin-scanner.md.
// C++17-clean (used by the ns-3 backend).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "patronus/core/plugin_host.hpp"
#include "patronus/util/status.hpp"

namespace patronus::core::scanner {

// What the scanner learnt about one file: loadable (status ok, and what the descriptor says) or
// refused (the status the host would have returned, or what killed the child).
struct Verdict {
  Status status;
  PluginInfo info;  // meaningful when status is ok
};

// A file as the cache knows it; a change to any field is a different file.
struct FileId {
  std::string path;
  std::uint64_t dev = 0, ino = 0, size = 0;
  std::int64_t mtime_ns = 0;
};
Result<FileId> file_id(const std::string& path);

// Runs `probe` in a forked child whose stdout and stderr go to a pipe, and returns its verdict.
// The child's death by a signal, an exit before it answered, or no answer within `timeout` (the
// child is then killed) become a refusal naming `file`, with the last lines the child wrote.
Verdict run_in_child(const std::string& file, const std::function<Verdict()>& probe,
                     std::chrono::milliseconds timeout);

// The files this process has mapped so far (in order), and the host executable: the context a
// verdict holds in (libprotobuf's pool, names already taken).
void note_loaded(const FileId& id);
std::string context_fingerprint();

// Verdicts on disk: one line per entry, bounded, rewritten atomically (a temporary file renamed
// over it). Unreadable or corrupt content is an empty cache: the cache never refuses anything.
class Cache {
 public:
  static constexpr std::size_t kMaxEntries = 512;
  explicit Cache(std::string file);
  std::optional<Verdict> find(const std::string& key);
  void put(const std::string& key, const Verdict& v);  // saves at once (best effort)

 private:
  void load();
  void save() const;
  std::string file_;
  bool loaded_ = false;
  std::vector<std::pair<std::string, Verdict>> entries_;  // oldest first
};

// The key of `id` in `context`.
std::string cache_key(const FileId& id, const std::string& context);

// Encodes a verdict for the pipe and the cache file (and back). Decoding refuses anything it did
// not write: bounded lengths, a magic, every field present.
std::string encode(const Verdict& v);
std::optional<Verdict> decode(const std::string& bytes);

}  // namespace patronus::core::scanner
