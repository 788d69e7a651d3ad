// Plugin Protobuf files share libprotobuf's one generated pool per process. A library whose
// generated code registers a file name or a symbol already there aborts the whole process inside
// its static initialisers ("File already exists in database"), before the host could say a word.
// The host therefore reads the plugin's embedded schema from the file (.patronus.schema) and
// checks it against the pool before loading it, naming both files when something is taken.
#pragma once

#include <string>

#include "patronus/util/status.hpp"

namespace patronus::core {

// The ELF section that patronus_add_plugin() puts a plugin's FileDescriptorSet in.
inline constexpr const char* kSchemaSection = ".patronus.schema";

// `set` is the serialized FileDescriptorSet read from `file`, which is about to be loaded. Its
// last file is the plugin's own (protoc --include_imports lists dependencies first); that file's
// name and every symbol the set's unregistered files define must be free in the generated pool.
// Loading the very same object again (same device and inode) is not a collision: the dynamic
// loader hands back the mapping it has and no initialiser runs twice.
Status check_schema_collisions(const std::string& set, const std::string& file);

// Records that `file` (now loaded) registered the files of `set`, so that a later collision
// names it.
void record_schema_owner(const std::string& set, const std::string& file);

// A shipped plugin's file (libpatronus-<name>.so with <name> one of shipped_plugin_names()).
// When a shipped plugin and a third-party one collide, the advice is for the third party.
bool is_shipped_file(const std::string& path);

// The Protobuf names of the plugins shipped with Patronus are theirs wherever they are loaded:
// a third-party plugin whose schema (`set`, a serialized FileDescriptorSet) has a file under
// patronus/<shipped>/ or a package patronus.<shipped>[.*] is refused, naming it as the one to
// change, even where the shipped plugin is not installed (it would make the two impossible to
// load together). A set that does not parse is left to the schema's own check.
Status check_reserved_names(const std::string& set, const std::string& file);

}  // namespace patronus::core
