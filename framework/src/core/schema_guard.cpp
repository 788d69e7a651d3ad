#include "schema_guard.hpp"

#include "patronus/core/plugin_host.hpp"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <sys/stat.h>

#include <map>
#include <mutex>

namespace patronus::core {

namespace pb = google::protobuf;

namespace {

struct Owner {
  std::string file;
  dev_t dev = 0;
  ino_t ino = 0;
};

// Process-wide, like the pool it describes.
std::mutex& owners_mutex() {
  static std::mutex m;
  return m;
}
std::map<std::string, Owner>& owners() {
  static std::map<std::string, Owner> m;
  return m;
}

bool identity(const std::string& file, dev_t* dev, ino_t* ino) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) return false;
  *dev = st.st_dev;
  *ino = st.st_ino;
  return true;
}

std::string owner_of(const std::string& proto_file, std::string* owner_file = nullptr) {
  std::lock_guard<std::mutex> lock(owners_mutex());
  auto it = owners().find(proto_file);
  if (it != owners().end()) {
    if (owner_file) *owner_file = it->second.file;
    return "plugin " + it->second.file;
  }
  return "the host (or a library it links)";
}

// Who must change: the third party, when one side is a shipped plugin (or the host).
std::string advice(const std::string& file, const std::string& owner_file, const std::string& fix) {
  if (is_shipped_file(file) && !owner_file.empty() && !is_shipped_file(owner_file)) {
    return "; " + owner_file + " must change: " + fix + " (" + file +
           " is shipped with Patronus and keeps its names; load shipped plugins first)";
  }
  return "; " + file + " must change: " + fix;
}

// The fully qualified names a file adds to the pool's symbol table.
void collect_message(const pb::DescriptorProto& m, const std::string& scope,
                     std::vector<std::pair<std::string, const char*>>* out) {
  const std::string name = scope.empty() ? m.name() : scope + "." + m.name();
  out->push_back({name, "message"});
  for (const auto& n : m.nested_type()) collect_message(n, name, out);
  for (const auto& e : m.enum_type()) out->push_back({name + "." + e.name(), "enum"});
}

std::vector<std::pair<std::string, const char*>> symbols_of(const pb::FileDescriptorProto& f) {
  std::vector<std::pair<std::string, const char*>> out;
  const std::string& pkg = f.package();
  auto q = [&](const std::string& n) { return pkg.empty() ? n : pkg + "." + n; };
  for (const auto& m : f.message_type()) collect_message(m, pkg, &out);
  for (const auto& e : f.enum_type()) {
    out.push_back({q(e.name()), "enum"});
    // Values of a top-level enum live in the package's scope.
    for (const auto& v : e.value()) out.push_back({q(v.name()), "enum value"});
  }
  for (const auto& s : f.service()) out.push_back({q(s.name()), "service"});
  for (const auto& x : f.extension()) out.push_back({q(x.name()), "extension"});
  return out;
}

// The file that already defines `symbol` in the generated pool, or empty.
std::string defined_in(const std::string& symbol) {
  const pb::DescriptorPool* pool = pb::DescriptorPool::generated_pool();
  if (const auto* d = pool->FindMessageTypeByName(symbol)) return d->file()->name();
  if (const auto* d = pool->FindEnumTypeByName(symbol)) return d->file()->name();
  if (const auto* d = pool->FindEnumValueByName(symbol)) return d->type()->file()->name();
  if (const auto* d = pool->FindServiceByName(symbol)) return d->file()->name();
  if (const auto* d = pool->FindExtensionByName(symbol)) return d->file()->name();
  return {};
}

}  // namespace

Status check_schema_collisions(const std::string& set_bytes, const std::string& file) {
  pb::FileDescriptorSet set;
  if (!set.ParseFromString(set_bytes) || set.file_size() == 0) {
    return invalid_argument(file + ": the embedded config schema (" + kSchemaSection +
                            ") is not a serialized FileDescriptorSet");
  }
  dev_t dev = 0;
  ino_t ino = 0;
  const bool have_identity = identity(file, &dev, &ino);
  const pb::DescriptorPool* pool = pb::DescriptorPool::generated_pool();
  for (int i = 0; i < set.file_size(); ++i) {
    const auto& f = set.file(i);
    const bool own = i == set.file_size() - 1;
    if (pool->FindFileByName(f.name()) != nullptr) {
      if (!own) continue;  // a dependency someone else registered (e.g. a well-known type)
      {
        std::lock_guard<std::mutex> lock(owners_mutex());
        auto it = owners().find(f.name());
        if (it != owners().end() && have_identity && it->second.dev == dev &&
            it->second.ino == ino) {
          return Status::ok();  // this very object is loaded already
        }
      }
      std::string owner_file;
      const std::string owner = owner_of(f.name(), &owner_file);
      return failed_precondition(
          file + ": its Protobuf file '" + f.name() + "' is already registered by " + owner +
          " (libprotobuf holds one file of a name per process)" +
          advice(file, owner_file,
                 "rename its .proto to a path of its own (<vendor>/<plugin>/v1/<name>.proto) "
                 "and rebuild it"));
    }
    for (const auto& [symbol, kind] : symbols_of(f)) {
      const std::string other = defined_in(symbol);
      if (other.empty()) continue;
      std::string owner_file;
      const std::string owner = owner_of(other, &owner_file);
      return failed_precondition(
          file + ": " + kind + " '" + symbol + "' of its Protobuf file '" + f.name() +
          "' is already defined by '" + other + "' of " + owner +
          advice(file, owner_file,
                 "give its .proto a package of its own (<vendor>.<plugin>.v1) and rebuild it"));
    }
  }
  return Status::ok();
}

Status check_reserved_names(const std::string& set_bytes, const std::string& file) {
  pb::FileDescriptorSet set;
  if (!set.ParseFromString(set_bytes)) return Status::ok();
  for (const auto& f : set.file()) {
    for (const auto& shipped : shipped_plugin_names()) {
      const std::string pkg = "patronus." + shipped, dir = "patronus/" + shipped + "/";
      const bool in_package = f.package() == pkg || f.package().rfind(pkg + ".", 0) == 0;
      if (!in_package && f.name().rfind(dir, 0) != 0) continue;
      return failed_precondition(file + ": its Protobuf file '" + f.name() + "' (package '" +
                                 f.package() + "') uses names reserved for the '" + shipped +
                                 "' plugin shipped with Patronus (package " + pkg +
                                 ", files under " + dir + "); " + file +
                                 " must change: give its .proto a package and path of its own " +
                                 "(<vendor>.<plugin>.v1, <vendor>/<plugin>/v1/) and rebuild it");
    }
  }
  return Status::ok();
}

void record_schema_owner(const std::string& set_bytes, const std::string& file) {
  pb::FileDescriptorSet set;
  if (!set.ParseFromString(set_bytes) || set.file_size() == 0) return;
  Owner owner{file};
  identity(file, &owner.dev, &owner.ino);
  const std::string& own = set.file(set.file_size() - 1).name();
  std::lock_guard<std::mutex> lock(owners_mutex());
  owners().emplace(own, owner);  // the first loader is the one that registered it
}

}  // namespace patronus::core
