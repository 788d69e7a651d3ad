#include "proto_json.hpp"

#include <sodium.h>

#include <nlohmann/json.hpp>

namespace patronus {

namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;
using nlohmann::json;

json message_json(const Message& m);

// Bytes fields are base64 (RFC 4648, padded), as protobuf's JSON mapping (and its parser) has them.
std::string base64(const std::string& in) {
  std::string out(sodium_base64_ENCODED_LEN(in.size(), sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(in.data()),
                    in.size(), sodium_base64_VARIANT_ORIGINAL);
  out.resize(out.size() - 1);  // the terminating NUL
  return out;
}

json scalar_json(const Message& m, const Reflection* r, const FieldDescriptor* f, int i) {
  const bool rep = i >= 0;
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      return rep ? r->GetRepeatedInt32(m, f, i) : r->GetInt32(m, f);
    case FieldDescriptor::CPPTYPE_INT64:
      return rep ? r->GetRepeatedInt64(m, f, i) : r->GetInt64(m, f);
    case FieldDescriptor::CPPTYPE_UINT32:
      return rep ? r->GetRepeatedUInt32(m, f, i) : r->GetUInt32(m, f);
    case FieldDescriptor::CPPTYPE_UINT64:
      return rep ? r->GetRepeatedUInt64(m, f, i) : r->GetUInt64(m, f);
    case FieldDescriptor::CPPTYPE_DOUBLE:
      return rep ? r->GetRepeatedDouble(m, f, i) : r->GetDouble(m, f);
    case FieldDescriptor::CPPTYPE_FLOAT:
      return rep ? r->GetRepeatedFloat(m, f, i) : r->GetFloat(m, f);
    case FieldDescriptor::CPPTYPE_BOOL:
      return rep ? r->GetRepeatedBool(m, f, i) : r->GetBool(m, f);
    case FieldDescriptor::CPPTYPE_ENUM:
      return (rep ? r->GetRepeatedEnum(m, f, i) : r->GetEnum(m, f))->name();
    case FieldDescriptor::CPPTYPE_STRING: {
      std::string v = rep ? r->GetRepeatedString(m, f, i) : r->GetString(m, f);
      if (f->type() == FieldDescriptor::TYPE_BYTES) return base64(v);
      return v;
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      return message_json(rep ? r->GetRepeatedMessage(m, f, i) : r->GetMessage(m, f));
  }
  return nullptr;
}

json message_json(const Message& m) {
  json o = json::object();
  const auto* d = m.GetDescriptor();
  const auto* r = m.GetReflection();
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    if (f->is_map()) {
      json mo = json::object();
      for (int k = 0; k < r->FieldSize(m, f); ++k) {
        const Message& entry = r->GetRepeatedMessage(m, f, k);
        const auto* er = entry.GetReflection();
        const auto* kf = entry.GetDescriptor()->map_key();
        const auto* vf = entry.GetDescriptor()->map_value();
        const json key = scalar_json(entry, er, kf, -1);
        mo[key.is_string() ? key.get<std::string>() : key.dump()] = scalar_json(entry, er, vf, -1);
      }
      o[f->name()] = std::move(mo);
    } else if (f->is_repeated()) {
      json a = json::array();
      for (int k = 0; k < r->FieldSize(m, f); ++k) a.push_back(scalar_json(m, r, f, k));
      o[f->name()] = std::move(a);
    } else if (f->real_containing_oneof()) {
      if (r->HasField(m, f)) o[f->name()] = scalar_json(m, r, f, -1);  // only the member set
    } else if (f->has_presence() && !r->HasField(m, f)) {
      o[f->name()] = nullptr;
    } else {
      o[f->name()] = scalar_json(m, r, f, -1);
    }
  }
  return o;
}

}  // namespace

std::string proto_to_json(const Message& m, int indent) {
  return message_json(m).dump(indent > 0 ? indent : -1, ' ', false, json::error_handler_t::replace);
}

}  // namespace patronus
