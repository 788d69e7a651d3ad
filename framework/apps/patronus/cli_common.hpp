// Exit codes and error reporting shared by the patronus subcommands.
#pragma once

#include <cstdint>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <string>

namespace patronus::cli {

constexpr int kExitUsage = 2;    // bad arguments or input: nothing was changed
constexpr int kExitFailure = 1;  // the command could not be carried out

// "2026-11-21T20:03:09.728Z" from nanoseconds since the Unix epoch.
inline std::string utc_time(std::int64_t ns) {
  const std::time_t secs = static_cast<std::time_t>(ns / 1000000000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char when[48];
  const std::size_t n = std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(when + n, sizeof when - n, ".%03dZ", static_cast<int>((ns / 1000000) % 1000));
  return when;
}

inline int fail(int code, const std::string& msg) {
  std::cerr << "patronus: " << msg << std::endl;
  return code;
}

}  // namespace patronus::cli
