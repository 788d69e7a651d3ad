// The CLI's side of the operator API: `patronus login` (a password from the terminal or a file,
// never the command line) stores the controller's URL, its CA file and the tokens in an
// owner-only file ($PATRONUS_CONFIG_DIR, else $XDG_CONFIG_HOME/patronus, else
// ~/.config/patronus); `patronus logout` ends the login. An API key from the environment
// (PATRONUS_API_KEY, with PATRONUS_CONTROLLER and optionally PATRONUS_CACERT) is used instead
// when set. Calls refresh an expired access token once, and save the new pair.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "client.hpp"
#include "patronus/util/status.hpp"

namespace patronus::cli {

struct ApiResult {
  int status = 0;
  std::string body;  // the API's own JSON (or problem details)
  std::string etag;
};

class ApiSession {
 public:
  // From the environment's API key, else the stored login; an error says how to sign in.
  static Result<ApiSession> open();
  // One call; a 401 with a stored login refreshes it and tries again once. Problem details
  // (4xx, 5xx) come back as a result with the status, not as an error.
  Result<ApiResult> call(const std::string& method, const std::string& target,
                         const std::string& body = "",
                         const std::string& content_type = "application/json",
                         const std::string& if_match = "");
  std::string who() const { return via_key_ ? "an API key" : "user '" + user_ + "'"; }

 private:
  Status refresh();
  Status save() const;
  http::Url url_;
  http::ClientOptions options_;
  std::string token_, refresh_token_, user_;
  std::int64_t access_expires_ns_ = 0;
  bool via_key_ = false;
};

// The message of a problem details body ("detail", and the field of a validation error).
std::string problem_text(const ApiResult& r);

struct LoginCommands {
  CLI::App *login = nullptr, *logout = nullptr, *audit = nullptr;
  std::string controller, user, cacert, password_file, totp;
  std::string actor, target;  // audit filters
  std::uint32_t limit = 50;
  bool json = false;
};
// login, logout and audit (the audit trail, newest first, through the API).
void register_login_commands(CLI::App& app, LoginCommands& c);
// The parsed command's exit code, or -1 if none was given.
int run_login_commands(LoginCommands& c);

}  // namespace patronus::cli
