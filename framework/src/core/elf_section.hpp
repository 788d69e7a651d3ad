// Reads one named section of an ELF shared object without loading it: the host reads a plugin's
// embedded config schema (.patronus.schema) this way, before any of the plugin's code (its
// static initialisers included) runs. Native ELF only (64-bit little-endian on this host); every
// offset and size is checked against the image, so hostile bytes give an error, never a crash.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "patronus/util/status.hpp"

namespace patronus::core {

// At most this many bytes are read for one section.
inline constexpr std::uint64_t kMaxElfSectionBytes = 64ull << 20;

// The section's bytes, nullopt when the image has no section of that name. `image` is the whole
// file (the fuzz target's entry point).
Result<std::optional<std::string>> elf_section_from_image(std::string_view image,
                                                          std::string_view section);
// Same, reading only the headers, the section-name table and the section from the file.
Result<std::optional<std::string>> elf_section_from_file(const std::string& path,
                                                         std::string_view section);

// The names of the global dynamic symbols defined in a section (a plugin's Boost.DLL aliases
// live in "boostdll"): read from the dynamic symbol table, which `strip` keeps, so a stripped
// plugin (every distribution package strips) is read as well as an unstripped one. Empty when
// the section is absent.
Result<std::vector<std::string>> elf_exported_in_section_from_image(std::string_view image,
                                                                    std::string_view section);
Result<std::vector<std::string>> elf_exported_in_section_from_file(const std::string& path,
                                                                   std::string_view section);

}  // namespace patronus::core
