// The YAML-to-Protobuf converter: a YAML tree (or JSON, its subset) into a message through
// reflection. Unknown keys, wrong types, out-of-range numbers and invalid UTF-8 are refused with
// the key path and the line. Plugin configs (ConfigSchema) and patronusd's own file
// (daemon_config.proto) are read with it; a caller can take free-form subtrees (a plugin's
// `config:` inside the daemon's file) for itself.
#pragma once

#include <functional>
#include <map>
#include <set>
#include <string>

#include "patronus/util/status.hpp"

namespace YAML {
class Node;
}
namespace google::protobuf {
class FieldDescriptor;
class Message;
}  // namespace google::protobuf

namespace patronus::core::yamlproto {

struct Options {
  // Fields (by full name, "patronus.daemon.v1.Plugin.config") whose subtree goes to `raw`
  // instead of being converted; an error from `raw` stops the conversion.
  std::set<std::string> raw_fields;
  std::function<Status(const google::protobuf::FieldDescriptor& field, const YAML::Node& node,
                       const std::string& path)>
      raw;
  // When set: the 1-based line of every key and list element converted, by path ("plugins[1]",
  // "plugins[1].name"), for checks that come after the conversion.
  std::map<std::string, int>* lines = nullptr;
};

// Fills `msg` from `node` (a map, or null: nothing set). Error messages name the path below
// `path`; *line is the 1-based line of the offending node (0: unknown).
Status convert(const YAML::Node& node, google::protobuf::Message* msg, const std::string& path,
               const Options& options, int* line);

}  // namespace patronus::core::yamlproto
