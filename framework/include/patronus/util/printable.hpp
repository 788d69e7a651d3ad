// Text from elsewhere (a plugin's log line, what charon said, a client's user name) made fit for
// one log line: control characters and backslashes escaped as \xNN, so that it cannot forge a
// line of its own or drive a terminal, and cut at `max_bytes` (then "...").
#pragma once

#include <cstdio>
#include <string>
#include <string_view>

namespace patronus::util {

inline std::string printable(std::string_view text, std::size_t max_bytes = 4096) {
  std::string out;
  out.reserve(std::min(text.size(), max_bytes) + 8);
  for (std::size_t i = 0; i < text.size() && i < max_bytes; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c == 0x7f || c == '\\') {
      char hex[5];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  if (text.size() > max_bytes) out += "...";
  return out;
}

}  // namespace patronus::util
