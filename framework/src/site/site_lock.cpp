#include "patronus/site/site_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace patronus::site {

Result<SiteLock> SiteLock::acquire(const std::string& state_db, const std::string& owner,
                                   const std::string& program) {
  const std::string file = state_db + ".lock";
  const int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    return unavailable("cannot open the site lock " + file + ": " + std::strerror(errno));
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    std::string holder;
    char buf[160] = {};
    const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
    if (n > 0) {
      holder.assign(buf, static_cast<std::size_t>(n));
      while (!holder.empty() && (holder.back() == '\n' || holder.back() == '\0')) holder.pop_back();
    }
    ::close(fd);
    if (err == EWOULDBLOCK) {
      return failed_precondition(owner + ": another " + program + " runs with this state (" + file +
                                 " is held" + (holder.empty() ? "" : " by " + holder) +
                                 "); stop it first, or give this one its own state_db");
    }
    return unavailable("cannot lock " + file + ": " + std::strerror(err));
  }
  const std::string me = "pid " + std::to_string(::getpid()) + " (" + owner + ")\n";
  // The note is for a refusal's message only: the lock holds without it.
  if (::ftruncate(fd, 0) == 0) (void)!::pwrite(fd, me.data(), me.size(), 0);
  return SiteLock(fd, file);
}

SiteLock::SiteLock(SiteLock&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), file_(std::move(other.file_)) {}

SiteLock& SiteLock::operator=(SiteLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    file_ = std::move(other.file_);
  }
  return *this;
}

SiteLock::~SiteLock() {
  if (fd_ >= 0) ::close(fd_);  // closing drops the flock
}

}  // namespace patronus::site
