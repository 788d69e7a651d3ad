#include "plugin_scanner.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <sstream>

namespace patronus::core::scanner {

namespace {

constexpr char kMagic[] = "PSV1";
constexpr std::size_t kMaxField = 16 * 1024;    // one string in a verdict
constexpr std::size_t kMaxVerdict = 96 * 1024;  // a whole encoded verdict
constexpr std::size_t kMaxOutputKept = 2048;    // the child's last output we keep
constexpr std::size_t kMaxOutputLines = 6;      // ... and how many of its lines we quote

void put_u32(std::string* out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void put_str(std::string* out, const std::string& s) {
  const std::string& t = s.size() > kMaxField ? s.substr(0, kMaxField) : s;
  put_u32(out, static_cast<std::uint32_t>(t.size()));
  *out += t;
}

struct Reader {
  const std::string& b;
  std::size_t at = 0;
  bool u32(std::uint32_t* v) {
    if (b.size() - at < 4) return false;
    *v = 0;
    for (int i = 0; i < 4; ++i) {
      *v |= static_cast<std::uint32_t>(static_cast<unsigned char>(b[at + i])) << (8 * i);
    }
    at += 4;
    return true;
  }
  bool str(std::string* s) {
    std::uint32_t n = 0;
    if (!u32(&n) || n > kMaxField || b.size() - at < n) return false;
    s->assign(b, at, n);
    at += n;
    return true;
  }
};

std::string hex(const std::string& bytes) {
  static const char* d = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(d[c >> 4]);
    out.push_back(d[c & 15]);
  }
  return out;
}

std::optional<std::string> unhex(const std::string& text) {
  if (text.size() % 2 != 0) return std::nullopt;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  std::string out;
  out.reserve(text.size() / 2);
  for (std::size_t i = 0; i < text.size(); i += 2) {
    const int hi = nibble(text[i]), lo = nibble(text[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<char>(hi * 16 + lo));
  }
  return out;
}

std::uint64_t fnv1a(const std::string& s, std::uint64_t h = 1469598103934665603ull) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

std::string id_text(const FileId& id) {
  return id.path + "|" + std::to_string(id.dev) + "|" + std::to_string(id.ino) + "|" +
         std::to_string(id.size) + "|" + std::to_string(id.mtime_ns);
}

std::mutex& loaded_mutex() {
  static std::mutex m;
  return m;
}
std::vector<std::string>& loaded() {
  static std::vector<std::string> v;
  return v;
}

const char* signal_name(int sig) {
  switch (sig) {
    case SIGSEGV:
      return "SIGSEGV";
    case SIGABRT:
      return "SIGABRT";
    case SIGBUS:
      return "SIGBUS";
    case SIGFPE:
      return "SIGFPE";
    case SIGILL:
      return "SIGILL";
    case SIGKILL:
      return "SIGKILL";
    case SIGTERM:
      return "SIGTERM";
    default:
      return nullptr;
  }
}

// The last lines of what the child wrote, for a refusal: printable, bounded.
std::string last_words(const std::string& output) {
  std::vector<std::string> lines;
  std::string line;
  for (char c : output) {
    if (c == '\n') {
      if (!line.empty()) lines.push_back(line);
      line.clear();
    } else if (c == '\t' || (static_cast<unsigned char>(c) >= 0x20 && c != 0x7f)) {
      line.push_back(c);
    }
  }
  if (!line.empty()) lines.push_back(line);
  if (lines.empty()) return "";
  const std::size_t from = lines.size() > kMaxOutputLines ? lines.size() - kMaxOutputLines : 0;
  std::string out;
  for (std::size_t i = from; i < lines.size(); ++i) out += (out.empty() ? "" : " | ") + lines[i];
  return out;
}

void write_all(int fd, const std::string& bytes) {
  std::size_t off = 0;
  while (off < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + off, bytes.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    off += static_cast<std::size_t>(n);
  }
}

// The child: default dispositions for the signals a broken plugin raises (a sanitizer's handler
// would turn a segfault into an exit), output to the pipe, the probe, its verdict, _exit.
[[noreturn]] void child_main(const std::string& file, int result_fd, int output_fd,
                             const std::function<Verdict()>& probe) {
  // Straight to the kernel: a sanitizer intercepts signal() and sigaction() and may keep its own
  // handler, which would turn a crash into an exit and make the verdict depend on the build.
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGPIPE}) {
    struct {
      void (*handler)(int);
      unsigned long flags;
      void (*restorer)();
      unsigned long mask;
    } dfl{SIG_DFL, 0, nullptr, 0};
    ::syscall(SYS_rt_sigaction, sig, &dfl, nullptr, sizeof dfl.mask);
  }
  ::dup2(output_fd, STDOUT_FILENO);
  ::dup2(output_fd, STDERR_FILENO);
  ::close(output_fd);
  Verdict v;
  try {
    v = probe();
  } catch (const std::exception& e) {
    v.status = internal_error(file + ": loading it threw: " + e.what());
  } catch (...) {
    v.status = internal_error(file + ": loading it threw a non-standard exception");
  }
  write_all(result_fd, encode(v));
  ::close(result_fd);
  ::_exit(0);
}

}  // namespace

Result<FileId> file_id(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return not_found(path + ": " + std::strerror(errno));
  }
  FileId id;
  id.path = std::filesystem::absolute(path).lexically_normal().string();
  id.dev = static_cast<std::uint64_t>(st.st_dev);
  id.ino = static_cast<std::uint64_t>(st.st_ino);
  id.size = static_cast<std::uint64_t>(st.st_size);
  id.mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  return id;
}

std::string encode(const Verdict& v) {
  std::string out(kMagic, 4);
  put_u32(&out, static_cast<std::uint32_t>(static_cast<std::int32_t>(v.status.code())));
  put_str(&out, v.status.message());
  put_str(&out, v.info.name);
  put_str(&out, v.info.version);
  put_u32(&out, static_cast<std::uint32_t>(v.info.kind));
  put_u32(&out, v.info.abi_major);
  put_u32(&out, v.info.abi_minor);
  put_str(&out, v.info.config_type);
  put_str(&out, v.info.file);
  put_u32(&out, v.info.needs_real_network ? 1 : 0);
  return out;
}

std::optional<Verdict> decode(const std::string& bytes) {
  if (bytes.size() > kMaxVerdict || bytes.compare(0, 4, kMagic, 4) != 0) return std::nullopt;
  Reader r{bytes, 4};
  std::uint32_t code = 0, kind = 0, real = 0;
  std::string message;
  Verdict v;
  if (!r.u32(&code) || !r.str(&message) || !r.str(&v.info.name) || !r.str(&v.info.version) ||
      !r.u32(&kind) || !r.u32(&v.info.abi_major) || !r.u32(&v.info.abi_minor) ||
      !r.str(&v.info.config_type) || !r.str(&v.info.file) || !r.u32(&real) ||
      r.at != bytes.size()) {
    return std::nullopt;
  }
  const auto c = static_cast<Code>(static_cast<std::int32_t>(code));
  if (code_name(c) == std::string("UNKNOWN")) return std::nullopt;
  if (c == Code::kOk && !message.empty()) return std::nullopt;
  if (kind < PATRONUS_KIND_TRANSPORT || kind > PATRONUS_KIND_POLICY || real > 1)
    return std::nullopt;
  v.status = c == Code::kOk ? Status::ok() : Status(c, message);
  v.info.kind = static_cast<PluginKind>(kind);
  v.info.needs_real_network = real == 1;
  return v;
}

Verdict run_in_child(const std::string& file, const std::function<Verdict()>& probe,
                     std::chrono::milliseconds timeout) {
  int result[2], output[2];
  if (::pipe2(result, O_CLOEXEC) != 0) {
    return {unavailable(file + ": cannot scan it: pipe: " + std::strerror(errno)), {}};
  }
  if (::pipe2(output, O_CLOEXEC) != 0) {
    const int err = errno;
    ::close(result[0]);
    ::close(result[1]);
    return {unavailable(file + ": cannot scan it: pipe: " + std::strerror(err)), {}};
  }
  // Whatever the host has buffered must not be written a second time by a child that exits.
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int err = errno;
    for (int fd : {result[0], result[1], output[0], output[1]}) ::close(fd);
    return {unavailable(file + ": cannot scan it: fork: " + std::strerror(err)), {}};
  }
  if (pid == 0) {
    ::close(result[0]);
    ::close(output[0]);
    child_main(file, result[1], output[1], probe);
  }
  ::close(result[1]);
  ::close(output[1]);

  std::string answer, out;
  bool answer_open = true, out_open = true, timed_out = false, reaped = false;
  int st = 0;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  char buf[4096];
  while (answer_open || out_open) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    pollfd fds[2];
    nfds_t n = 0;
    if (answer_open) fds[n++] = {result[0], POLLIN, 0};
    if (out_open) fds[n++] = {output[0], POLLIN, 0};
    const int r = ::poll(fds, n, static_cast<int>(std::min<std::int64_t>(left.count(), 1000)));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) break;
    for (nfds_t i = 0; i < n; ++i) {
      if (fds[i].revents == 0) continue;
      const ssize_t got = ::read(fds[i].fd, buf, sizeof buf);
      if (got < 0 && errno == EINTR) continue;
      const bool is_answer = fds[i].fd == result[0];
      if (got <= 0) {
        (is_answer ? answer_open : out_open) = false;
        continue;
      }
      if (is_answer) {
        if (answer.size() + static_cast<std::size_t>(got) > kMaxVerdict) {
          answer_open = false;  // more than any verdict: not ours; judged by the exit below
          answer.clear();
          continue;
        }
        answer.append(buf, static_cast<std::size_t>(got));
      } else {
        out.append(buf, static_cast<std::size_t>(got));
        if (out.size() > 2 * kMaxOutputKept) out.erase(0, out.size() - kMaxOutputKept);
      }
    }
    // A child that answered (or died) may have left a grandchild holding its output pipe: the
    // child's end is what counts.
    if (!answer_open && out_open && ::waitpid(pid, &st, WNOHANG) == pid) {
      reaped = true;
      break;
    }
  }
  if (!reaped) {
    if (timed_out) ::kill(pid, SIGKILL);
    while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
  }
  // What the child wrote before it ended and is still in the pipe.
  pollfd p{output[0], POLLIN, 0};
  for (int i = 0; i < 16 && ::poll(&p, 1, 0) > 0 && (p.revents & POLLIN); ++i) {
    const ssize_t got = ::read(output[0], buf, sizeof buf);
    if (got <= 0) break;
    out.append(buf, static_cast<std::size_t>(got));
    if (out.size() > 2 * kMaxOutputKept) out.erase(0, out.size() - kMaxOutputKept);
  }
  ::close(result[0]);
  ::close(output[0]);

  std::string what;
  if (timed_out) {
    char b[64];
    std::snprintf(b, sizeof b, "%.1f", static_cast<double>(timeout.count()) / 1000.0);
    what = std::string("did not finish loading within ") + b +
           " s (an initialiser that never returns?); the scanner process was killed";
  } else if (WIFSIGNALED(st)) {
    const int sig = WTERMSIG(st);
    const char* name = signal_name(sig);
    what = std::string("loading it killed the scanner process with ") +
           (name ? name : "signal " + std::to_string(sig)) + " (" + ::strsignal(sig) + ")";
  } else if (WIFEXITED(st) && (WEXITSTATUS(st) != 0 || answer.empty())) {
    what = "the scanner process exited with status " + std::to_string(WEXITSTATUS(st)) +
           " while loading it (the plugin called exit?)";
  } else if (auto v = decode(answer)) {
    // A refusal the child put in words; what it printed on the way may say more (libprotobuf
    // logs the file it could not register before it throws).
    if (!v->status.is_ok()) {
      if (const std::string words = last_words(out); !words.empty()) {
        v->status = Status(v->status.code(), v->status.message() + "; its last output: " + words);
      }
    }
    return *v;
  } else {
    what = "the plugin scanner's answer was unreadable";
  }
  std::string msg = file + ": " + what;
  if (const std::string words = last_words(out); !words.empty()) {
    msg += "; its last output: " + words;
  }
  return {failed_precondition(msg), {}};
}

void note_loaded(const FileId& id) {
  const std::string t = id_text(id);
  std::lock_guard<std::mutex> lock(loaded_mutex());
  if (std::find(loaded().begin(), loaded().end(), t) == loaded().end()) loaded().push_back(t);
}

std::string context_fingerprint() {
  static const std::string exe = [] {
    std::error_code ec;
    const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (ec) return std::string("?");
    auto id = file_id(self.string());
    return id.is_ok() ? id_text(id.value()) : self.string();
  }();
  std::string ctx = exe + "|abi " + std::to_string(PATRONUS_ABI_VERSION_MAJOR) + "." +
                    std::to_string(PATRONUS_ABI_VERSION_MINOR);
  std::lock_guard<std::mutex> lock(loaded_mutex());
  for (const auto& l : loaded()) ctx += "\n" + l;
  return ctx;
}

std::string cache_key(const FileId& id, const std::string& context) {
  char b[40];
  std::snprintf(b, sizeof b, "%016llx%016llx", static_cast<unsigned long long>(fnv1a(id_text(id))),
                static_cast<unsigned long long>(fnv1a(context, fnv1a(id_text(id)))));
  return b;
}

Cache::Cache(std::string file) : file_(std::move(file)) {}

void Cache::load() {
  if (loaded_) return;
  loaded_ = true;
  std::ifstream in(file_);
  if (!in) return;
  std::string line;
  std::size_t lines = 0;
  while (std::getline(in, line) && lines++ < 4 * kMaxEntries) {
    const auto sp = line.find(' ');
    if (sp != 32) continue;
    auto bytes = unhex(line.substr(sp + 1));
    if (!bytes) continue;
    auto v = decode(*bytes);
    if (!v) continue;
    entries_.emplace_back(line.substr(0, sp), *v);
  }
  if (entries_.size() > kMaxEntries) {
    entries_.erase(entries_.begin(), entries_.end() - kMaxEntries);
  }
}

std::optional<Verdict> Cache::find(const std::string& key) {
  load();
  for (auto it = entries_.rbegin(); it != entries_.rend(); ++it) {
    if (it->first == key) return it->second;
  }
  return std::nullopt;
}

void Cache::put(const std::string& key, const Verdict& v) {
  load();
  entries_.erase(std::remove_if(entries_.begin(), entries_.end(),
                                [&](const auto& e) { return e.first == key; }),
                 entries_.end());
  entries_.emplace_back(key, v);
  if (entries_.size() > kMaxEntries) entries_.erase(entries_.begin());
  save();
}

void Cache::save() const {
  std::error_code ec;
  const auto dir = std::filesystem::path(file_).parent_path();
  if (!dir.empty()) std::filesystem::create_directories(dir, ec);
  const std::string tmp = file_ + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out) return;
    for (const auto& [key, v] : entries_) out << key << ' ' << hex(encode(v)) << '\n';
    if (!out.flush()) {
      std::filesystem::remove(tmp, ec);
      return;
    }
  }
  std::filesystem::rename(tmp, file_, ec);
  if (ec) std::filesystem::remove(tmp, ec);
}

}  // namespace patronus::core::scanner
