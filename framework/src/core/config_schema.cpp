#include "patronus/core/config_schema.hpp"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/util/json_util.h>
#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <set>

#include "yaml_proto.hpp"

namespace patronus::core {

namespace pb = google::protobuf;

namespace {

class Collector : public pb::DescriptorPool::ErrorCollector {
 public:
  void AddError(const std::string& filename, const std::string& element_name, const pb::Message*,
                ErrorLocation, const std::string& message) override {
    if (first.empty()) first = filename + ": " + element_name + ": " + message;
  }
  std::string first;
};

}  // namespace

struct ConfigSchema::Impl {
  pb::DescriptorPool pool;
  std::unique_ptr<pb::DynamicMessageFactory> factory;
  const pb::Descriptor* descriptor = nullptr;
  std::string type;
};

ConfigSchema::ConfigSchema() : impl_(std::make_unique<Impl>()) {}
ConfigSchema::~ConfigSchema() = default;

Result<std::unique_ptr<ConfigSchema>> ConfigSchema::build(const std::string& message_type,
                                                          const std::uint8_t* descriptor_set,
                                                          std::size_t size) {
  pb::FileDescriptorSet set;
  if (descriptor_set == nullptr ||
      size > static_cast<std::size_t>(std::numeric_limits<int>::max()) ||
      !set.ParseFromArray(descriptor_set, static_cast<int>(size))) {
    return invalid_argument("config_schema is not a serialized google.protobuf.FileDescriptorSet");
  }
  std::unique_ptr<ConfigSchema> schema(new ConfigSchema());
  for (const auto& file : set.file()) {
    Collector errors;
    if (schema->impl_->pool.BuildFileCollectingErrors(file, &errors) == nullptr) {
      return invalid_argument("cannot build " + file.name() + ": " + errors.first);
    }
  }
  schema->impl_->descriptor = schema->impl_->pool.FindMessageTypeByName(message_type);
  if (schema->impl_->descriptor == nullptr) {
    return invalid_argument("message type '" + message_type + "' is not defined in it");
  }
  schema->impl_->factory = std::make_unique<pb::DynamicMessageFactory>(&schema->impl_->pool);
  schema->impl_->type = message_type;
  return schema;
}

const std::string& ConfigSchema::message_type() const {
  return impl_->type;
}

Result<std::string> ConfigSchema::yaml_to_bytes(const YAML::Node& node,
                                                const std::string& path) const {
  std::unique_ptr<pb::Message> msg(impl_->factory->GetPrototype(impl_->descriptor)->New());
  int line = 0;
  if (auto s = yamlproto::convert(node, msg.get(), path, {}, &line); !s.is_ok()) {
    if (line == 0) return s;
    return Status(s.code(), s.message() + " (line " + std::to_string(line) + ")");
  }
  std::string out;
  if (!msg->SerializeToString(&out)) return internal_error(path + ": cannot serialize");
  return out;
}

Result<std::string> ConfigSchema::text_to_bytes(const std::string& text,
                                                const std::string& path) const {
  YAML::Node node;
  try {
    node = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return invalid_argument(path + ": " + e.what());
  }
  return yaml_to_bytes(node, path);
}

Result<std::string> ConfigSchema::bytes_to_json(const std::string& bytes) const {
  std::unique_ptr<pb::Message> msg(impl_->factory->GetPrototype(impl_->descriptor)->New());
  if (!msg->ParseFromString(bytes)) return invalid_argument("not a " + impl_->type);
  std::string json;
  pb::util::JsonPrintOptions opts;
  opts.preserve_proto_field_names = true;
  auto st = pb::util::MessageToJsonString(*msg, &json, opts);
  if (!st.ok()) return internal_error(std::string(st.message()));
  return json;
}

std::vector<std::string> ConfigSchema::describe() const {
  std::vector<std::string> out;
  const pb::Descriptor* d = impl_->descriptor;
  for (int i = 0; i < d->field_count(); ++i) {
    const pb::FieldDescriptor* f = d->field(i);
    std::string type =
        f->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE ? f->message_type()->full_name()
        : f->cpp_type() == pb::FieldDescriptor::CPPTYPE_ENUM  ? f->enum_type()->full_name()
                                                              : f->type_name();
    out.push_back(f->name() + ": " + type + (f->is_repeated() ? " (repeated)" : ""));
  }
  return out;
}

}  // namespace patronus::core
