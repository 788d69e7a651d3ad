// A plugin file is read before it is loaded (its embedded schema section, its exported aliases):
// any bytes must give
// a section, no section, or an error, never a crash or a read outside the image; a section found
// goes through the collision check's FileDescriptorSet parse as well.
#include <cstdlib>
#include <string_view>

#include "elf_section.hpp"
#include "schema_guard.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view image(reinterpret_cast<const char*>(data), size);
  // The plugin's exported aliases are read the same way, from the dynamic symbol table.
  auto names = patronus::core::elf_exported_in_section_from_image(image, "boostdll");
  if (names.is_ok()) {
    for (const auto& n : names.value()) {
      if (n.size() > size) std::abort();
    }
  } else if (names.status().message().empty()) {
    std::abort();
  }
  auto r = patronus::core::elf_section_from_image(image, patronus::core::kSchemaSection);
  if (!r.is_ok()) {
    if (r.status().message().empty()) std::abort();
    return 0;
  }
  if (!r.value()) return 0;
  if (r.value()->size() > size) std::abort();
  (void)patronus::core::check_schema_collisions(*r.value(), "fuzz-input");
  return 0;
}
