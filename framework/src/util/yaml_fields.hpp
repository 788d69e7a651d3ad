// Reading typed fields from yaml-cpp nodes with errors that name the line and the field path
// ("line 7: sites[1].endpoints[0].address: ..."). Shared by every YAML ingest in the framework.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <set>
#include <string>
#include <string_view>

#include "patronus/util/status.hpp"

namespace patronus::yamlf {

// "line N: " (1-based) or "" when the node has no position.
std::string at(const YAML::Node& n);
// "a.b" from ("a", "b"); "b" when the parent path is empty.
std::string join(const std::string& path, const std::string& key);

// Every key of `map` must be in `allowed`; the error lists the allowed keys.
Status check_keys(const YAML::Node& map, const std::set<std::string>& allowed,
                  const std::string& path);
// Whether `s` is well-formed UTF-8 (no overlong forms, surrogates or code points past U+10FFFF).
bool valid_utf8(std::string_view s);
// A non-empty scalar of valid UTF-8 at map[key]; "" when absent and not required.
Result<std::string> string_field(const YAML::Node& map, const char* key, const std::string& path,
                                 bool required);
// A finite number in [min, max].
Result<double> number(const YAML::Node& n, const std::string& path, double min, double max);
// An integer in [min, max].
Result<std::int64_t> integer(const YAML::Node& n, const std::string& path, std::int64_t min,
                             std::int64_t max);
// true/false.
Result<bool> boolean(const YAML::Node& n, const std::string& path);

// Walks a (multi-document) YAML text with the event parser, without building nodes, and refuses
// it before YAML::LoadAll sees it when it has more than `max_documents` documents, more than
// `max_events` events or more than `max_aliases` aliases (hostile inputs can make yaml-cpp's
// LoadAll produce documents without end, and aliases multiply the work of walking the tree).
Status check_yaml_stream(const std::string& text, std::size_t max_documents, std::size_t max_events,
                         std::size_t max_aliases);

}  // namespace patronus::yamlf
