// Status and Result: errors as values, with a message that names what is wrong.
// C++17-clean: included by the ns-3 backend, which is compiled as C++17.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>

namespace patronus {

enum class Code : std::int32_t {
  kOk = 0,
  kInvalidArgument = -1,
  kNotFound = -2,
  kResourceExhausted = -3,
  kUnavailable = -4,
  kFailedPrecondition = -5,
  kInternal = -6,
  kUnimplemented = -7,
  kUnauthenticated = -8,
  kPermissionDenied = -9,
  kAlreadyExists = -10,
};

// Inline so that the header stands alone (it is installed with libpatronus-trial).
inline const char* code_name(Code code) {
  switch (code) {
    case Code::kOk:
      return "OK";
    case Code::kInvalidArgument:
      return "INVALID_ARGUMENT";
    case Code::kNotFound:
      return "NOT_FOUND";
    case Code::kResourceExhausted:
      return "RESOURCE_EXHAUSTED";
    case Code::kUnavailable:
      return "UNAVAILABLE";
    case Code::kFailedPrecondition:
      return "FAILED_PRECONDITION";
    case Code::kInternal:
      return "INTERNAL";
    case Code::kUnimplemented:
      return "UNIMPLEMENTED";
    case Code::kUnauthenticated:
      return "UNAUTHENTICATED";
    case Code::kPermissionDenied:
      return "PERMISSION_DENIED";
    case Code::kAlreadyExists:
      return "ALREADY_EXISTS";
  }
  return "UNKNOWN";
}

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status ok() { return {}; }

  bool is_ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  // "INVALID_ARGUMENT: message"
  std::string to_string() const {
    return is_ok() ? std::string("OK") : std::string(code_name(code_)) + ": " + message_;
  }

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

inline Status invalid_argument(std::string m) {
  return {Code::kInvalidArgument, std::move(m)};
}
inline Status not_found(std::string m) {
  return {Code::kNotFound, std::move(m)};
}
inline Status resource_exhausted(std::string m) {
  return {Code::kResourceExhausted, std::move(m)};
}
inline Status unavailable(std::string m) {
  return {Code::kUnavailable, std::move(m)};
}
inline Status failed_precondition(std::string m) {
  return {Code::kFailedPrecondition, std::move(m)};
}
inline Status internal_error(std::string m) {
  return {Code::kInternal, std::move(m)};
}
inline Status unauthenticated(std::string m) {
  return {Code::kUnauthenticated, std::move(m)};
}
inline Status permission_denied(std::string m) {
  return {Code::kPermissionDenied, std::move(m)};
}
inline Status already_exists(std::string m) {
  return {Code::kAlreadyExists, std::move(m)};
}

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {
    if (std::get<Status>(v_).is_ok()) throw std::logic_error("Result built from an OK status");
  }
  bool is_ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return is_ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return checked(); }
  const T& value() const& { return const_cast<Result*>(this)->checked(); }
  T&& value() && { return std::move(checked()); }
  T* operator->() { return &checked(); }
  T& operator*() { return checked(); }

 private:
  T& checked() {
    if (!is_ok()) throw std::logic_error("Result::value() on error: " + status().to_string());
    return std::get<T>(v_);
  }
  std::variant<T, Status> v_;
};

}  // namespace patronus
