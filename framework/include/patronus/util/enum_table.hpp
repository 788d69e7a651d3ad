// Enums with a fixed text form: one table of (name, value) pairs gives both directions, and a
// parse error that lists the valid names. C++17-clean.
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "patronus/util/status.hpp"

namespace patronus {

template <typename E, std::size_t N>
using EnumTable = std::array<std::pair<const char*, E>, N>;

template <typename E, std::size_t N>
const char* enum_name(E v, const EnumTable<E, N>& table) {
  for (const auto& [name, value] : table) {
    if (value == v) return name;
  }
  return "?";
}

template <typename E, std::size_t N>
std::optional<E> find_enum(std::string_view text, const EnumTable<E, N>& table) {
  for (const auto& [name, value] : table) {
    if (text == name) return value;
  }
  return std::nullopt;
}

// "'<text>' is not a <what> (one of: a, b, c)".
template <typename E, std::size_t N>
Result<E> parse_enum(std::string_view what, std::string_view text, const EnumTable<E, N>& table) {
  if (auto v = find_enum(text, table)) return *v;
  std::string valid;
  for (const auto& entry : table)
    valid += valid.empty() ? entry.first : std::string(", ") + entry.first;
  return invalid_argument("'" + std::string(text) + "' is not a " + std::string(what) +
                          " (one of: " + valid + ")");
}

}  // namespace patronus
