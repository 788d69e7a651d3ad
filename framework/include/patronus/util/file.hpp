// Reading a whole input file, with a size bound (a hostile or mistaken path must not make the
// process read gigabytes); writing a file whole, either new (never over an existing one or
// through a symlink) or replacing one atomically. C++17-clean, POSIX.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "patronus/util/status.hpp"

namespace patronus {

inline Result<std::string> read_text_file(const std::string& path,
                                          std::size_t max_bytes = std::size_t{64} << 20) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return not_found(path + ": cannot open");
  std::string text;
  char buf[65536];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    text.append(buf, static_cast<std::size_t>(in.gcount()));
    if (text.size() > max_bytes) {
      return invalid_argument(path + ": larger than " + std::to_string(max_bytes) + " bytes");
    }
  }
  if (in.bad()) return unavailable(path + ": read error");
  return text;
}

namespace file_detail {
inline bool write_all(int fd, const std::string& bytes) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<std::size_t>(n);
  }
  return ::fsync(fd) == 0;
}
}  // namespace file_detail

// A new file with `mode` (a key, a token): refused if the path exists or is a symlink.
inline Status write_new_file(const std::string& path, const std::string& bytes, mode_t mode) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) return unavailable(path + ": " + std::strerror(errno));
  const bool ok = ::fchmod(fd, mode) == 0 && file_detail::write_all(fd, bytes);
  ::close(fd);
  return ok ? Status::ok() : unavailable(path + ": write failed");
}

// `path` replaced whole through a temporary file, synced and renamed: a crash leaves the old
// content or the new one.
inline Status write_file_atomic(const std::string& path, const std::string& bytes, mode_t mode) {
  const std::string tmp = path + ".tmp";
  ::unlink(tmp.c_str());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) return unavailable(tmp + ": " + std::strerror(errno));
  const bool ok = ::fchmod(fd, mode) == 0 && file_detail::write_all(fd, bytes);
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    ::unlink(tmp.c_str());
    return unavailable(path + ": cannot write it: " + why);
  }
  return Status::ok();
}

}  // namespace patronus
