// Reading a whole text input file, with a size bound (a hostile or mistaken path must not make
// the process read gigabytes). C++17-clean.
#pragma once

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

}  // namespace patronus
