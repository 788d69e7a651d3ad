#include "yaml_proto.hpp"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <map>
#include <set>

#include "yaml_fields.hpp"

namespace patronus::core::yamlproto {

namespace pb = google::protobuf;

namespace {

constexpr int kMaxDepth = 32;

std::string field_list(const pb::Descriptor* d) {
  std::string out;
  for (int i = 0; i < d->field_count(); ++i) {
    out += (i ? ", " : "") + d->field(i)->name();
  }
  return out.empty() ? "none" : out;
}

Result<std::int64_t> parse_signed(const std::string& s, std::int64_t lo, std::int64_t hi) {
  if (s.empty()) return invalid_argument("expected an integer, got an empty value");
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(s.c_str(), &end, 0);
  if (*end != '\0') return invalid_argument("expected an integer, got '" + s + "'");
  if (errno == ERANGE || v < lo || v > hi) {
    return invalid_argument("expected an integer in [" + std::to_string(lo) + ", " +
                            std::to_string(hi) + "], got '" + s + "'");
  }
  return static_cast<std::int64_t>(v);
}

Result<std::uint64_t> parse_unsigned(const std::string& s, std::uint64_t hi) {
  if (s.empty() || s[0] == '-' || s[0] == '+') {
    return invalid_argument("expected an unsigned integer, got '" + s + "'");
  }
  errno = 0;
  char* end = nullptr;
  const unsigned long long v = std::strtoull(s.c_str(), &end, 0);
  if (*end != '\0') return invalid_argument("expected an unsigned integer, got '" + s + "'");
  if (errno == ERANGE || v > hi) {
    return invalid_argument("expected an unsigned integer in [0, " + std::to_string(hi) +
                            "], got '" + s + "'");
  }
  return static_cast<std::uint64_t>(v);
}

Result<double> parse_double(const std::string& s) {
  errno = 0;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (s.empty() || *end != '\0' || errno == ERANGE || !std::isfinite(v)) {
    return invalid_argument("expected a finite number, got '" + s + "'");
  }
  return v;
}

Result<bool> parse_bool(const std::string& s) {
  if (s == "true") return true;
  if (s == "false") return false;
  return invalid_argument("expected true or false, got '" + s + "'");
}

class Converter {
 public:
  explicit Converter(const Options& o) : opt_(o) {}
  // Where the node being converted sits in the text (line -1: not from a text), so that an error
  // can name its line.
  YAML::Mark mark = YAML::Mark::null_mark();

  Status fill(const YAML::Node& node, pb::Message* msg, const std::string& path, int depth) {
    if (depth > kMaxDepth) return invalid_argument(path + ": nested deeper than 32 levels");
    mark = node.Mark();
    const pb::Descriptor* d = msg->GetDescriptor();
    if (node.IsNull()) return Status::ok();
    if (!node.IsMap()) {
      return invalid_argument(path + ": expected a map with the fields of " + d->full_name());
    }
    std::set<const pb::OneofDescriptor*> oneofs_set;
    std::map<std::string, int> seen;  // key -> line: a key given twice is a mistake, not an update
    for (const auto& kv : node) {
      if (!kv.first.IsScalar()) return invalid_argument(path + ": field names must be scalars");
      mark = kv.first.Mark();
      const std::string key = kv.first.Scalar();
      const std::string fpath = path.empty() ? key : path + "." + key;
      if (const auto [it, fresh] = seen.emplace(key, mark.line + 1); !fresh) {
        return invalid_argument(fpath + ": given twice (first on line " +
                                std::to_string(it->second) + ")");
      }
      const pb::FieldDescriptor* f = d->FindFieldByName(key);
      if (f == nullptr) f = d->FindFieldByCamelcaseName(key);
      if (f == nullptr) {
        return invalid_argument(fpath + ": unknown field (" + d->full_name() +
                                " has: " + field_list(d) + ")");
      }
      if (opt_.lines) (*opt_.lines)[fpath] = mark.line + 1;
      if (opt_.raw && opt_.raw_fields.count(f->full_name()) != 0) {
        if (auto s = opt_.raw(*f, kv.second, fpath); !s.is_ok()) return s;
        continue;
      }
      if (const auto* o = f->real_containing_oneof()) {
        if (!oneofs_set.insert(o).second) {
          return invalid_argument(fpath + ": only one field of '" + o->name() + "' may be set");
        }
      }
      if (auto s = set_field(kv.second, msg, f, fpath, depth); !s.is_ok()) return s;
    }
    return Status::ok();
  }

 private:
  Status set_field(const YAML::Node& v, pb::Message* msg, const pb::FieldDescriptor* f,
                   const std::string& path, int depth) {
    const pb::Reflection* r = msg->GetReflection();
    // `key:` with nothing after it: an empty list or map, an absent message (a scalar without a
    // value is an error below).
    if (v.IsNull() && (f->is_repeated() || f->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE)) {
      return Status::ok();
    }
    if (f->is_map()) {
      if (!v.IsMap()) return invalid_argument(path + ": expected a map");
      const pb::FieldDescriptor* kf = f->message_type()->map_key();
      const pb::FieldDescriptor* vf = f->message_type()->map_value();
      for (const auto& kv : v) {
        const std::string epath = path + "[" + kv.first.as<std::string>("?") + "]";
        if (opt_.lines) (*opt_.lines)[epath] = kv.first.Mark().line + 1;
        pb::Message* entry = r->AddMessage(msg, f);
        if (auto s = set_one(kv.first, entry, kf, epath, depth, false); !s.is_ok()) return s;
        if (auto s = set_one(kv.second, entry, vf, epath, depth, false); !s.is_ok()) return s;
      }
      return Status::ok();
    }
    if (f->is_repeated()) {
      if (!v.IsSequence()) return invalid_argument(path + ": expected a list");
      for (std::size_t i = 0; i < v.size(); ++i) {
        const std::string epath = path + "[" + std::to_string(i) + "]";
        if (opt_.lines) (*opt_.lines)[epath] = v[i].Mark().line + 1;
        if (auto s = set_one(v[i], msg, f, epath, depth, true); !s.is_ok()) return s;
      }
      return Status::ok();
    }
    return set_one(v, msg, f, path, depth, false);
  }

  Status set_one(const YAML::Node& v, pb::Message* msg, const pb::FieldDescriptor* f,
                 const std::string& path, int depth, bool add) {
    const pb::Reflection* r = msg->GetReflection();
    using T = pb::FieldDescriptor;
    if (v.Mark().line >= 0) mark = v.Mark();
    if (f->cpp_type() == T::CPPTYPE_MESSAGE) {
      pb::Message* sub = add ? r->AddMessage(msg, f) : r->MutableMessage(msg, f);
      return fill(v, sub, path, depth + 1);
    }
    if (!v.IsScalar()) {
      return invalid_argument(path + ": expected a " + std::string(f->type_name()) +
                              " value, got a " +
                              (v.IsMap()        ? "map"
                               : v.IsSequence() ? "list"
                                                : "null"));
    }
    const std::string s = v.Scalar();
    auto fail = [&](const Status& st) { return invalid_argument(path + ": " + st.message()); };
    switch (f->cpp_type()) {
      case T::CPPTYPE_INT32: {
        auto x = parse_signed(s, std::numeric_limits<std::int32_t>::min(),
                              std::numeric_limits<std::int32_t>::max());
        if (!x.is_ok()) return fail(x.status());
        add ? r->AddInt32(msg, f, static_cast<std::int32_t>(x.value()))
            : r->SetInt32(msg, f, static_cast<std::int32_t>(x.value()));
        return Status::ok();
      }
      case T::CPPTYPE_INT64: {
        auto x = parse_signed(s, std::numeric_limits<std::int64_t>::min(),
                              std::numeric_limits<std::int64_t>::max());
        if (!x.is_ok()) return fail(x.status());
        add ? r->AddInt64(msg, f, x.value()) : r->SetInt64(msg, f, x.value());
        return Status::ok();
      }
      case T::CPPTYPE_UINT32: {
        auto x = parse_unsigned(s, std::numeric_limits<std::uint32_t>::max());
        if (!x.is_ok()) return fail(x.status());
        add ? r->AddUInt32(msg, f, static_cast<std::uint32_t>(x.value()))
            : r->SetUInt32(msg, f, static_cast<std::uint32_t>(x.value()));
        return Status::ok();
      }
      case T::CPPTYPE_UINT64: {
        auto x = parse_unsigned(s, std::numeric_limits<std::uint64_t>::max());
        if (!x.is_ok()) return fail(x.status());
        add ? r->AddUInt64(msg, f, x.value()) : r->SetUInt64(msg, f, x.value());
        return Status::ok();
      }
      case T::CPPTYPE_DOUBLE:
      case T::CPPTYPE_FLOAT: {
        auto x = parse_double(s);
        if (!x.is_ok()) return fail(x.status());
        if (f->cpp_type() == T::CPPTYPE_FLOAT) {
          const float fv = static_cast<float>(x.value());
          add ? r->AddFloat(msg, f, fv) : r->SetFloat(msg, f, fv);
        } else {
          add ? r->AddDouble(msg, f, x.value()) : r->SetDouble(msg, f, x.value());
        }
        return Status::ok();
      }
      case T::CPPTYPE_BOOL: {
        auto x = parse_bool(s);
        if (!x.is_ok()) return fail(x.status());
        add ? r->AddBool(msg, f, x.value()) : r->SetBool(msg, f, x.value());
        return Status::ok();
      }
      case T::CPPTYPE_ENUM: {
        const pb::EnumDescriptor* e = f->enum_type();
        const pb::EnumValueDescriptor* ev = e->FindValueByName(s);
        if (ev == nullptr) {
          std::string names;
          for (int i = 0; i < e->value_count(); ++i) {
            names += (i ? ", " : "") + e->value(i)->name();
          }
          return invalid_argument(path + ": '" + s + "' is not one of " + names);
        }
        add ? r->AddEnum(msg, f, ev) : r->SetEnum(msg, f, ev);
        return Status::ok();
      }
      case T::CPPTYPE_STRING:
        if (f->type() == T::TYPE_STRING && !yamlf::valid_utf8(s)) {
          return invalid_argument(path + ": not valid UTF-8");
        }
        add ? r->AddString(msg, f, s) : r->SetString(msg, f, s);
        return Status::ok();
      default:
        return invalid_argument(path + ": unsupported field type");
    }
  }

  const Options& opt_;
};

}  // namespace

Status convert(const YAML::Node& node, pb::Message* msg, const std::string& path,
               const Options& options, int* line) {
  Converter c(options);
  Status s = Status::ok();
  try {
    s = c.fill(node, msg, path, 0);
  } catch (const YAML::Exception& e) {
    s = invalid_argument((path.empty() ? std::string() : path + ": ") + e.what());
  }
  if (line) *line = s.is_ok() || c.mark.line < 0 ? 0 : c.mark.line + 1;
  return s;
}

}  // namespace patronus::core::yamlproto
