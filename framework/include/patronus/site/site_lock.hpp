// One site, one daemon: a site's daemon holds an exclusive lock next to its state database
// (<state_db>.lock, flock) for as long as it runs. A second daemon for the same state is refused
// before it opens a socket, the database or a tunnel, naming the holder's pid; the kernel drops
// the lock when the holder exits, however it exits (no stale lock after SIGKILL).
#pragma once

#include <string>

#include "patronus/util/status.hpp"

namespace patronus::site {

class SiteLock {
 public:
  // Takes the lock on `state_db` for `owner` ("site hq", "the fleet store") of `program`
  // (patronus-controller takes the same lock on its fleet store). The lock file records the
  // holder's pid and owner, for the refusal's message.
  static Result<SiteLock> acquire(const std::string& state_db, const std::string& owner,
                                  const std::string& program = "patronusd");
  SiteLock(SiteLock&& other) noexcept;
  SiteLock& operator=(SiteLock&& other) noexcept;
  SiteLock(const SiteLock&) = delete;
  SiteLock& operator=(const SiteLock&) = delete;
  ~SiteLock();
  const std::string& file() const { return file_; }

 private:
  SiteLock(int fd, std::string file) : fd_(fd), file_(std::move(file)) {}
  int fd_ = -1;
  std::string file_;
};

}  // namespace patronus::site
