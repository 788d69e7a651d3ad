// Typed plugin configuration: a plugin declares a Protobuf message (name + FileDescriptorSet);
// the host converts the user's YAML into that message through reflection and reports field
// errors with their path before the plugin sees any byte.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "patronus/util/status.hpp"

namespace YAML {
class Node;
}

namespace patronus::core {

class ConfigSchema {
 public:
  // Parses the serialized FileDescriptorSet and finds `message_type` in it.
  static Result<std::unique_ptr<ConfigSchema>> build(const std::string& message_type,
                                                     const std::uint8_t* descriptor_set,
                                                     std::size_t size);
  ~ConfigSchema();

  const std::string& message_type() const;
  // Converts YAML (a map, or null for "all defaults") to the serialized message. Errors name
  // the path below `path` ("plugins[0].config.interval_ms: expected an unsigned integer").
  Result<std::string> yaml_to_bytes(const YAML::Node& node, const std::string& path) const;
  // Same, from YAML/JSON text.
  Result<std::string> text_to_bytes(const std::string& text, const std::string& path) const;
  // Serialized message back to JSON (for display and logs).
  Result<std::string> bytes_to_json(const std::string& bytes) const;
  // One line per field: "name: type [repeated] (default)".
  std::vector<std::string> describe() const;

 private:
  ConfigSchema();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace patronus::core
