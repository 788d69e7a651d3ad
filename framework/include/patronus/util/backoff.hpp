// How long a site waits before it dials its controller again: the daemon's channel and the
// simulator's sites wait exactly the same (docs/guides/controller.md).
#pragma once

#include <algorithm>
#include <cstdint>

namespace patronus {

inline constexpr std::int64_t kReconnectMinMs = 1000;   // the first retry
inline constexpr std::int64_t kReconnectMaxMs = 60000;  // the bound of the doubling

// `min_ms` doubled per failure up to `max_ms`, times a jitter in [0.5, 1.5) drawn from `random`
// (64 random bits), so a thousand sites do not come back in lock-step.
inline std::int64_t backoff_ms(int failures, std::int64_t min_ms, std::int64_t max_ms,
                               std::uint64_t random) {
  const double base =
      std::min<double>(static_cast<double>(max_ms),
                       static_cast<double>(min_ms) *
                           static_cast<double>(std::uint64_t{1} << std::min(failures, 16)));
  const double jitter =
      0.5 + static_cast<double>(random >> 11) / static_cast<double>(std::uint64_t{1} << 53);
  return static_cast<std::int64_t>(base * jitter);
}

}  // namespace patronus
