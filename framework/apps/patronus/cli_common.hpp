// Exit codes and error reporting shared by the patronus subcommands.
#pragma once

#include <iostream>
#include <string>

namespace patronus::cli {

constexpr int kExitUsage = 2;    // bad arguments or input: nothing was changed
constexpr int kExitFailure = 1;  // the command could not be carried out

inline int fail(int code, const std::string& msg) {
  std::cerr << "patronus: " << msg << std::endl;
  return code;
}

}  // namespace patronus::cli
