// Reading a whole input file, with a size bound (a hostile or mistaken path must not make the
// process read gigabytes); writing a file whole, either new (never over an existing one or
// through a symlink) or replacing one atomically. C++17-clean, POSIX.
#pragma once

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
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
// The directory of `path` synced, so a created or renamed entry survives a crash.
inline void sync_parent(const std::string& path) {
  const auto slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "."
                          : slash == 0               ? "/"
                                                     : path.substr(0, slash);
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    (void)::fsync(fd);
    ::close(fd);
  }
}

inline std::string mode_text(mode_t m) {
  char out[8];
  std::snprintf(out, sizeof out, "%0*o", (m & 07000) ? 4 : 3, static_cast<unsigned>(m & 07777));
  return out;
}

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
  if (!ok) return unavailable(path + ": write failed");
  file_detail::sync_parent(path);
  return Status::ok();
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
  file_detail::sync_parent(path);
  return Status::ok();
}

// Owned by this user or root and writable by neither group nor others: what another local user
// cannot have planted or swapped (as sshd's StrictModes). `what` names it in the refusal.
inline Status owned_and_closed(const std::string& what, const struct stat& st) {
  if (st.st_uid != ::geteuid() && st.st_uid != 0) {
    return failed_precondition(what + " is owned by uid " + std::to_string(st.st_uid) +
                               ", not by this user (uid " + std::to_string(::geteuid()) +
                               ") or root; chown it to one of them");
  }
  if ((st.st_mode & 022) != 0) {
    return failed_precondition(what + " is writable by group or others (mode " +
                               file_detail::mode_text(st.st_mode) + "); chmod go-w it");
  }
  return Status::ok();
}

// A directory for private files (keys, wg-quick files, a TLS identity): created 0700 when
// missing; an existing one must be a directory (not a symlink), owned_and_closed.
inline Status private_directory(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return unavailable(dir + ": " + std::strerror(errno));
  }
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) return unavailable(dir + ": " + std::strerror(errno));
  if (!S_ISDIR(st.st_mode)) return invalid_argument(dir + ": not a directory (or a symlink)");
  return owned_and_closed(dir, st);
}

// A directory that holds sockets (wireguard-go's, charon's, our control socket's): it exists,
// is a directory (not a symlink) and is owned_and_closed, so nobody else could have put a
// listener or a symlink of theirs there. `sticky_ok`: a root-owned sticky directory (/tmp) is
// accepted too, since there nobody can remove or rename what another user made.
inline Status closed_directory(const std::string& dir, bool sticky_ok = false) {
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) return unavailable(dir + ": " + std::strerror(errno));
  if (!S_ISDIR(st.st_mode)) return invalid_argument(dir + ": not a directory (or a symlink)");
  if (sticky_ok && (st.st_mode & S_ISVTX) != 0 && st.st_uid == 0) return Status::ok();
  return owned_and_closed(dir, st);
}

// The process at the other end of a connected unix socket is root or this user (SO_PEERCRED):
// checked before a secret (a private key, a PSK) is written to it.
inline Status peer_is_trusted(int fd, const std::string& what) {
  struct ucred cred {};
  socklen_t len = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    return unavailable(what + ": cannot learn who listens on it: " + std::strerror(errno));
  }
  if (cred.uid != 0 && cred.uid != ::geteuid()) {
    return failed_precondition(
        what + ": the process listening on it (pid " + std::to_string(cred.pid) + ") runs as uid " +
        std::to_string(cred.uid) + ", neither root nor this user; no secret is sent to it");
  }
  return Status::ok();
}

// A private file (a key): opened without following a symlink, a regular file owned by this user,
// readable by nobody else, at most `max_bytes`. nullopt: it does not exist. A file others could
// read is refused as exposed: what it holds must be replaced, not just chmod-ed.
inline Result<std::optional<std::string>> read_private_file(const std::string& path,
                                                            std::size_t max_bytes) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    if (errno == ENOENT) return std::optional<std::string>();
    if (errno == ELOOP)
      return failed_precondition(path + ": a symlink (refused for a private file)");
    return unavailable(path + ": " + std::strerror(errno));
  }
  struct stat st {};
  Status bad = Status::ok();
  if (::fstat(fd, &st) != 0) {
    bad = unavailable(path + ": " + std::strerror(errno));
  } else if (!S_ISREG(st.st_mode)) {
    bad = failed_precondition(path + ": not a regular file");
  } else if (st.st_uid != ::geteuid()) {
    bad = failed_precondition(path + ": owned by uid " + std::to_string(st.st_uid) +
                              ", not by this user (uid " + std::to_string(::geteuid()) +
                              "): another user could have put a secret they know in it; make "
                              "a new one as this user");
  } else if ((st.st_mode & 044) != 0) {
    bad = failed_precondition(
        path + ": readable by group or others (mode " + file_detail::mode_text(st.st_mode) +
        "): the secret in it is exposed; make a new one and remove this file");
  } else if ((st.st_mode & 033) != 0) {
    bad = failed_precondition(path + ": writable or executable by group or others (mode " +
                              file_detail::mode_text(st.st_mode) +
                              "): someone else could have replaced the secret in it; make a new "
                              "one and remove this file");
  } else if (static_cast<std::size_t>(st.st_size) > max_bytes) {
    bad = invalid_argument(path + ": larger than " + std::to_string(max_bytes) + " bytes");
  }
  std::string text;
  if (bad.is_ok()) {
    text.resize(static_cast<std::size_t>(st.st_size));
    std::size_t done = 0;
    while (done < text.size()) {
      const ssize_t n = ::read(fd, text.data() + done, text.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      done += static_cast<std::size_t>(n);
    }
    text.resize(done);
  }
  ::close(fd);
  if (!bad.is_ok()) return bad;
  return std::optional<std::string>(std::move(text));
}

}  // namespace patronus
