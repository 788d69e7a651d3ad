// A small blocking HTTPS client (Boost.Beast) for the CLI: one request per call, the server's
// certificate verified against a given CA file (the controller's own api.crt) or the system's,
// and its name checked. Bounded: the response's size and the whole call's time. Private.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "patronus/util/status.hpp"

namespace patronus::http {

struct Url {
  std::string host;
  std::string port = "443";
  std::string base_path;  // "" or "/prefix"
  // "https://host[:port][/prefix]"; errors name what is wrong.
  static Result<Url> parse(const std::string& text);
  std::string to_string() const;
};

struct ClientOptions {
  std::string cacert;  // PEM file of trusted certificates; "" the system's
  std::int64_t timeout_ms = 30000;
  std::size_t max_response_bytes = 64 * 1024 * 1024;
};

struct ClientResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  std::string header(const std::string& lower_name) const {
    const auto it = headers.find(lower_name);
    return it == headers.end() ? std::string() : it->second;
  }
};

// `target` is appended to the URL's base path. Errors are the connection's (unreachable, TLS,
// the certificate not trusted), never an HTTP status.
Result<ClientResponse> call(const Url& url, const ClientOptions& options, const std::string& method,
                            const std::string& target,
                            const std::vector<std::pair<std::string, std::string>>& headers,
                            const std::string& body = "");

// "a b/c" -> "a%20b%2Fc": one path segment or query value.
std::string percent_encode(const std::string& s);

}  // namespace patronus::http
