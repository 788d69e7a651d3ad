// "2026-11-21T20:03:09.728Z" from nanoseconds since the Unix epoch: the one timestamp format of
// the daemons' log lines and the CLI's output, so lines from several machines can be merged.
#pragma once

#include <cstdint>
#include <cstdio>
#include <ctime>
#include <string>

namespace patronus::util {

inline std::string utc_time(std::int64_t unix_ns) {
  const std::time_t secs = static_cast<std::time_t>(unix_ns / 1000000000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char when[48];
  const std::size_t n = std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(when + n, sizeof when - n, ".%03dZ", static_cast<int>((unix_ns / 1000000) % 1000));
  return when;
}

}  // namespace patronus::util
