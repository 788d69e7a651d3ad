// Exit codes and error reporting shared by the patronus subcommands.
#pragma once

#include <cstdint>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <string>

#include "patronus/util/utc_time.hpp"

namespace patronus::cli {

constexpr int kExitUsage = 2;    // bad arguments or input: nothing was changed
constexpr int kExitFailure = 1;  // the command could not be carried out

// "2026-11-21T20:03:09.728Z" from nanoseconds since the Unix epoch.
inline std::string utc_time(std::int64_t ns) {
  return util::utc_time(ns);
}

inline int fail(int code, const std::string& msg) {
  std::cerr << "patronus: " << msg << std::endl;
  return code;
}

}  // namespace patronus::cli
