// A Protobuf message as JSON: Protobuf's JSON mapping with the field names as written in the
// .proto, except that 64-bit integers are numbers (not strings) and every field is present (unset
// optional fields and message fields as null, other unset fields with their zero value; of a
// oneof, only the member that is set). What the control API speaks and what stored events keep.
// Private to the project.
#pragma once

#include <google/protobuf/message.h>

#include <string>

namespace patronus {

// indent > 0: pretty-printed with that many spaces.
std::string proto_to_json(const google::protobuf::Message& m, int indent = 0);

}  // namespace patronus
