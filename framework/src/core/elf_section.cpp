#include "elf_section.hpp"

#include <elf.h>

#include <cstring>
#include <fstream>
#include <functional>

namespace patronus::core {

namespace {

// Reads [offset, offset + size) of the object into `out`; false when it lies outside.
using ReadAt = std::function<bool(std::uint64_t offset, std::uint64_t size, std::string* out)>;

constexpr std::uint64_t kMaxNameTable = 1ull << 20;

Result<std::optional<std::string>> find_section(const ReadAt& read, std::uint64_t file_size,
                                                std::string_view section, const std::string& what) {
  std::string bytes;
  if (!read(0, sizeof(Elf64_Ehdr), &bytes)) {
    return invalid_argument(what + ": too short to be an ELF object");
  }
  Elf64_Ehdr eh;
  std::memcpy(&eh, bytes.data(), sizeof eh);
  if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0) {
    return invalid_argument(what + ": not an ELF object");
  }
  if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB) {
    return invalid_argument(what + ": not a 64-bit little-endian ELF object (this host's kind)");
  }
  if (eh.e_shoff == 0 || eh.e_shnum == 0) return std::optional<std::string>{};  // no sections
  if (eh.e_shentsize != sizeof(Elf64_Shdr)) {
    return invalid_argument(what + ": malformed ELF section header table");
  }
  const std::uint64_t table_size = std::uint64_t{eh.e_shnum} * sizeof(Elf64_Shdr);
  if (eh.e_shoff > file_size || table_size > file_size - eh.e_shoff ||
      !read(eh.e_shoff, table_size, &bytes)) {
    return invalid_argument(what + ": ELF section header table lies outside the file");
  }
  const std::string table = bytes;
  auto header = [&](std::uint64_t i) {
    Elf64_Shdr sh;
    std::memcpy(&sh, table.data() + i * sizeof(Elf64_Shdr), sizeof sh);
    return sh;
  };
  if (eh.e_shstrndx == SHN_UNDEF || eh.e_shstrndx >= eh.e_shnum) {
    return invalid_argument(what + ": ELF object has no section-name table");
  }
  const Elf64_Shdr names_sh = header(eh.e_shstrndx);
  if (names_sh.sh_type == SHT_NOBITS || names_sh.sh_size > kMaxNameTable ||
      names_sh.sh_offset > file_size || names_sh.sh_size > file_size - names_sh.sh_offset ||
      !read(names_sh.sh_offset, names_sh.sh_size, &bytes)) {
    return invalid_argument(what + ": ELF section-name table lies outside the file");
  }
  const std::string names = bytes;
  for (std::uint64_t i = 0; i < eh.e_shnum; ++i) {
    const Elf64_Shdr sh = header(i);
    if (sh.sh_name >= names.size()) continue;
    const char* n = names.data() + sh.sh_name;
    const std::size_t len = strnlen(n, names.size() - sh.sh_name);
    if (std::string_view(n, len) != section) continue;
    if (sh.sh_type == SHT_NOBITS) {
      return invalid_argument(what + ": section " + std::string(section) + " holds no bytes");
    }
    if (sh.sh_size > kMaxElfSectionBytes) {
      return invalid_argument(what + ": section " + std::string(section) + " is " +
                              std::to_string(sh.sh_size) + " bytes, more than the " +
                              std::to_string(kMaxElfSectionBytes) + " read");
    }
    if (sh.sh_offset > file_size || sh.sh_size > file_size - sh.sh_offset ||
        !read(sh.sh_offset, sh.sh_size, &bytes)) {
      return invalid_argument(what + ": section " + std::string(section) +
                              " lies outside the file");
    }
    return std::optional<std::string>(bytes);
  }
  return std::optional<std::string>{};
}

}  // namespace

Result<std::optional<std::string>> elf_section_from_image(std::string_view image,
                                                          std::string_view section) {
  ReadAt read = [&](std::uint64_t off, std::uint64_t size, std::string* out) {
    if (off > image.size() || size > image.size() - off) return false;
    out->assign(image.data() + off, size);
    return true;
  };
  return find_section(read, image.size(), section, "image");
}

Result<std::optional<std::string>> elf_section_from_file(const std::string& path,
                                                         std::string_view section) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return unavailable(path + ": cannot be opened");
  in.seekg(0, std::ios::end);
  const auto end = in.tellg();
  if (end < 0) return unavailable(path + ": cannot be read");
  const auto file_size = static_cast<std::uint64_t>(end);
  ReadAt read = [&](std::uint64_t off, std::uint64_t size, std::string* out) {
    if (off > file_size || size > file_size - off) return false;
    out->resize(size);
    in.clear();
    in.seekg(static_cast<std::streamoff>(off));
    in.read(out->data(), static_cast<std::streamsize>(size));
    return static_cast<std::uint64_t>(in.gcount()) == size;
  };
  return find_section(read, file_size, section, path);
}

}  // namespace patronus::core
