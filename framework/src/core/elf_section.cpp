#include "elf_section.hpp"

#include <elf.h>

#include <cstring>
#include <fstream>
#include <functional>
#include <vector>

namespace patronus::core {

namespace {

// Reads [offset, offset + size) of the object into `out`; false when it lies outside.
using ReadAt = std::function<bool(std::uint64_t offset, std::uint64_t size, std::string* out)>;

constexpr std::uint64_t kMaxNameTable = 1ull << 20;

// The section header table and the section-name table, checked against the file.
struct Sections {
  std::string table, names;
  std::uint64_t count = 0;
  Elf64_Shdr header(std::uint64_t i) const {
    Elf64_Shdr sh;
    std::memcpy(&sh, table.data() + i * sizeof(Elf64_Shdr), sizeof sh);
    return sh;
  }
  std::string_view name(const Elf64_Shdr& sh) const {
    if (sh.sh_name >= names.size()) return {};
    const char* n = names.data() + sh.sh_name;
    return std::string_view(n, strnlen(n, names.size() - sh.sh_name));
  }
  // The index of the section called `section` (0: none).
  std::uint64_t find(std::string_view section) const {
    for (std::uint64_t i = 1; i < count; ++i) {
      if (name(header(i)) == section) return i;
    }
    return 0;
  }
};

Result<Sections> read_sections(const ReadAt& read, std::uint64_t file_size,
                               const std::string& what) {
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
  Sections out;
  if (eh.e_shoff == 0 || eh.e_shnum == 0) return out;  // no sections
  if (eh.e_shentsize != sizeof(Elf64_Shdr)) {
    return invalid_argument(what + ": malformed ELF section header table");
  }
  const std::uint64_t table_size = std::uint64_t{eh.e_shnum} * sizeof(Elf64_Shdr);
  if (eh.e_shoff > file_size || table_size > file_size - eh.e_shoff ||
      !read(eh.e_shoff, table_size, &out.table)) {
    return invalid_argument(what + ": ELF section header table lies outside the file");
  }
  out.count = eh.e_shnum;
  if (eh.e_shstrndx == SHN_UNDEF || eh.e_shstrndx >= eh.e_shnum) {
    return invalid_argument(what + ": ELF object has no section-name table");
  }
  const Elf64_Shdr names_sh = out.header(eh.e_shstrndx);
  if (names_sh.sh_type == SHT_NOBITS || names_sh.sh_size > kMaxNameTable ||
      names_sh.sh_offset > file_size || names_sh.sh_size > file_size - names_sh.sh_offset ||
      !read(names_sh.sh_offset, names_sh.sh_size, &out.names)) {
    return invalid_argument(what + ": ELF section-name table lies outside the file");
  }
  return out;
}

// A section's bytes, bounded and checked against the file.
Result<std::string> section_bytes(const ReadAt& read, std::uint64_t file_size, const Sections& secs,
                                  const Elf64_Shdr& sh, const std::string& what) {
  const std::string label = std::string(secs.name(sh));
  if (sh.sh_type == SHT_NOBITS) {
    return invalid_argument(what + ": section " + label + " holds no bytes");
  }
  if (sh.sh_size > kMaxElfSectionBytes) {
    return invalid_argument(what + ": section " + label + " is " + std::to_string(sh.sh_size) +
                            " bytes, more than the " + std::to_string(kMaxElfSectionBytes) +
                            " read");
  }
  std::string bytes;
  if (sh.sh_offset > file_size || sh.sh_size > file_size - sh.sh_offset ||
      !read(sh.sh_offset, sh.sh_size, &bytes)) {
    return invalid_argument(what + ": section " + label + " lies outside the file");
  }
  return bytes;
}

Result<std::optional<std::string>> find_section(const ReadAt& read, std::uint64_t file_size,
                                                std::string_view section, const std::string& what) {
  auto secs = read_sections(read, file_size, what);
  if (!secs.is_ok()) return secs.status();
  const std::uint64_t i = secs.value().find(section);
  if (i == 0) return std::optional<std::string>{};
  auto bytes = section_bytes(read, file_size, secs.value(), secs.value().header(i), what);
  if (!bytes.is_ok()) return bytes.status();
  return std::optional<std::string>(std::move(bytes).value());
}

// The names of the defined global (or weak) dynamic symbols that lie in `section`. The dynamic
// symbol table is what the loader uses, so it survives `strip` (which removes .symtab).
Result<std::vector<std::string>> find_exported_in(const ReadAt& read, std::uint64_t file_size,
                                                  std::string_view section,
                                                  const std::string& what) {
  auto secs = read_sections(read, file_size, what);
  if (!secs.is_ok()) return secs.status();
  const Sections& s = secs.value();
  std::vector<std::string> out;
  const std::uint64_t target = s.find(section);
  if (target == 0) return out;
  for (std::uint64_t i = 1; i < s.count; ++i) {
    const Elf64_Shdr sh = s.header(i);
    if (sh.sh_type != SHT_DYNSYM) continue;
    if (sh.sh_entsize != sizeof(Elf64_Sym) || sh.sh_link == 0 || sh.sh_link >= s.count) {
      return invalid_argument(what + ": malformed ELF dynamic symbol table");
    }
    auto syms = section_bytes(read, file_size, s, sh, what);
    if (!syms.is_ok()) return syms.status();
    auto strs = section_bytes(read, file_size, s, s.header(sh.sh_link), what);
    if (!strs.is_ok()) return strs.status();
    const std::string& st = strs.value();
    const std::uint64_t n = syms.value().size() / sizeof(Elf64_Sym);
    for (std::uint64_t k = 1; k < n; ++k) {
      Elf64_Sym sym;
      std::memcpy(&sym, syms.value().data() + k * sizeof(Elf64_Sym), sizeof sym);
      const unsigned bind = ELF64_ST_BIND(sym.st_info);
      if (sym.st_shndx != target || (bind != STB_GLOBAL && bind != STB_WEAK) ||
          sym.st_name >= st.size()) {
        continue;
      }
      const char* name = st.data() + sym.st_name;
      out.emplace_back(name, strnlen(name, st.size() - sym.st_name));
    }
  }
  return out;
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

namespace {

// Reads a file through a ReadAt: only the parts asked for.
template <typename Fn>
auto with_file(const std::string& path, Fn&& fn) -> decltype(fn(ReadAt{}, std::uint64_t{})) {
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
  return fn(read, file_size);
}

}  // namespace

Result<std::optional<std::string>> elf_section_from_file(const std::string& path,
                                                         std::string_view section) {
  return with_file(path, [&](const ReadAt& read, std::uint64_t size) {
    return find_section(read, size, section, path);
  });
}

Result<std::vector<std::string>> elf_exported_in_section_from_image(std::string_view image,
                                                                    std::string_view section) {
  ReadAt read = [&](std::uint64_t off, std::uint64_t size, std::string* out) {
    if (off > image.size() || size > image.size() - off) return false;
    out->assign(image.data() + off, size);
    return true;
  };
  return find_exported_in(read, image.size(), section, "image");
}

Result<std::vector<std::string>> elf_exported_in_section_from_file(const std::string& path,
                                                                   std::string_view section) {
  return with_file(path, [&](const ReadAt& read, std::uint64_t size) {
    return find_exported_in(read, size, section, path);
  });
}

}  // namespace patronus::core
