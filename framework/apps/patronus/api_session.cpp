#include "api_session.hpp"

#include <termios.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli_common.hpp"
#include "patronus/util/file.hpp"

namespace patronus::cli {

using json = nlohmann::json;

namespace {

std::string config_dir() {
  if (const char* d = std::getenv("PATRONUS_CONFIG_DIR"); d && *d) return d;
  if (const char* x = std::getenv("XDG_CONFIG_HOME"); x && *x) return std::string(x) + "/patronus";
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : "/root") + "/.config/patronus";
}

std::string login_file() {
  return config_dir() + "/login.json";
}

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A line from the terminal without echo, or from a pipe as it is.
std::string read_secret(const std::string& prompt) {
  std::string line;
  if (::isatty(STDIN_FILENO)) {
    std::cerr << prompt << std::flush;
    termios old{};
    ::tcgetattr(STDIN_FILENO, &old);
    termios quiet = old;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    ::tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
    std::getline(std::cin, line);
    ::tcsetattr(STDIN_FILENO, TCSANOW, &old);
    std::cerr << "\n";
  } else {
    std::getline(std::cin, line);
  }
  return line;
}

}  // namespace

std::string problem_text(const ApiResult& r) {
  const json p = json::parse(r.body, nullptr, false);
  std::string text = "the controller answered " + std::to_string(r.status);
  if (p.is_object() && p.contains("detail") && p["detail"].is_string()) {
    text = p["detail"].get<std::string>();
    if (r.status == 412) text += " (HTTP 412)";
  }
  return text;
}

Result<ApiSession> ApiSession::open() {
  ApiSession s;
  if (const char* key = std::getenv("PATRONUS_API_KEY"); key && *key) {
    const char* where = std::getenv("PATRONUS_CONTROLLER");
    if (!where || !*where) {
      return invalid_argument(
          "PATRONUS_API_KEY is set: PATRONUS_CONTROLLER gives the "
          "controller's URL (https://host:8443)");
    }
    auto u = http::Url::parse(where);
    if (!u.is_ok()) return invalid_argument("PATRONUS_CONTROLLER: " + u.status().message());
    s.url_ = u.value();
    if (const char* ca = std::getenv("PATRONUS_CACERT"); ca && *ca) s.options_.cacert = ca;
    s.token_ = key;
    s.via_key_ = true;
    return s;
  }
  auto text = read_private_file(login_file(), 64 * 1024);
  if (!text.is_ok()) return text.status();
  if (!text.value()) {
    return failed_precondition(
        "not signed in: `patronus login --controller https://HOST:8443 --user NAME` (or set "
        "PATRONUS_API_KEY and PATRONUS_CONTROLLER; or give --socket for the local admin socket)");
  }
  const json j = json::parse(*text.value(), nullptr, false);
  if (!j.is_object() || !j.contains("controller") || !j["controller"].is_string()) {
    return failed_precondition(login_file() + ": not a login this CLI wrote; sign in again");
  }
  auto u = http::Url::parse(j["controller"].get<std::string>());
  if (!u.is_ok()) return u.status();
  s.url_ = u.value();
  s.options_.cacert = j.value("cacert", "");
  s.token_ = j.value("access_token", "");
  s.refresh_token_ = j.value("refresh_token", "");
  s.user_ = j.value("user", "");
  s.access_expires_ns_ = j.value("access_expires_unix_ns", std::int64_t{0});
  return s;
}

Status ApiSession::save() const {
  if (via_key_) return Status::ok();
  if (auto st = private_directory(config_dir()); !st.is_ok()) return st;
  const json j{{"controller", url_.to_string()},
               {"cacert", options_.cacert},
               {"user", user_},
               {"access_token", token_},
               {"access_expires_unix_ns", access_expires_ns_},
               {"refresh_token", refresh_token_}};
  return write_file_atomic(login_file(), j.dump(2) + "\n", 0600);
}

Status ApiSession::refresh() {
  const json body{{"refresh_token", refresh_token_}};
  auto r = http::call(url_, options_, "POST", "/api/v1/auth/refresh",
                      {{"Content-Type", "application/json"}}, body.dump());
  if (!r.is_ok()) return r.status();
  if (r.value().status != 200) {
    return unauthenticated("the login has ended (" +
                           problem_text({r.value().status, r.value().body, ""}) +
                           "); sign in again with `patronus login`");
  }
  const json t = json::parse(r.value().body, nullptr, false);
  if (!t.is_object()) return internal_error("the controller's refresh answer is not JSON");
  token_ = t.value("access_token", "");
  refresh_token_ = t.value("refresh_token", "");
  access_expires_ns_ = t.value("access_expires_unix_ns", std::int64_t{0});
  return save();
}

Result<ApiResult> ApiSession::call(const std::string& method, const std::string& target,
                                   const std::string& body, const std::string& content_type,
                                   const std::string& if_match) {
  // A token about to expire is refreshed first (a minute's margin for clock skew).
  if (!via_key_ && access_expires_ns_ != 0 && access_expires_ns_ - 60'000'000'000 < now_ns()) {
    if (auto st = refresh(); !st.is_ok()) return st;
  }
  for (int attempt = 0; attempt < 2; ++attempt) {
    std::vector<std::pair<std::string, std::string>> headers = {
        {"Authorization", "Bearer " + token_}};
    if (!body.empty() || method != "GET") headers.emplace_back("Content-Type", content_type);
    if (!if_match.empty()) headers.emplace_back("If-Match", if_match);
    auto r = http::call(url_, options_, method, target, headers, body);
    if (!r.is_ok()) return r.status();
    if (r.value().status == 401 && !via_key_ && attempt == 0) {
      if (auto st = refresh(); !st.is_ok()) return st;
      continue;
    }
    if (r.value().status == 401) {
      return unauthenticated(problem_text({401, r.value().body, ""}) +
                             (via_key_ ? " (PATRONUS_API_KEY)" : "; sign in again"));
    }
    return ApiResult{r.value().status, r.value().body, r.value().header("etag")};
  }
  return unauthenticated("the controller refused the refreshed login");
}

void register_login_commands(CLI::App& app, LoginCommands& c) {
  c.login = app.add_subcommand("login", "sign in to a controller's operator API");
  c.login->add_option("--controller", c.controller, "the controller's URL, https://HOST:PORT")
      ->required();
  c.login->add_option("--user", c.user, "your user name")->required();
  c.login->add_option("--cacert", c.cacert,
                      "the CA file that signed the controller's certificate (its api.crt when it "
                      "made its own); none: the system's");
  c.login->add_option("--password-file", c.password_file,
                      "an owner-only file holding the password (default: asked on the terminal, "
                      "or read from standard input)");
  c.login->add_option("--totp", c.totp, "the second factor's current code, if you have one");
  c.logout = app.add_subcommand("logout", "end the stored login (its tokens stop working)");
  c.audit = app.add_subcommand("audit", "the controller's audit trail: who changed what, when");
  c.audit->add_option("--actor", c.actor, "only this actor: user:NAME or key:ID");
  c.audit->add_option("--target", c.target, "only targets starting with this (sites/paris)");
  c.audit->add_option("--limit", c.limit, "at most this many entries")
      ->check(CLI::Range(1, 100000));
  c.audit->add_flag("--json", c.json, "print the API's JSON");
}

namespace {

int run_audit(LoginCommands& c) {
  auto s = ApiSession::open();
  if (!s.is_ok()) return fail(kExitFailure, s.status().message());
  json items = json::array();
  std::string cursor;
  while (items.size() < c.limit) {
    const std::uint32_t want = std::min<std::uint32_t>(500, c.limit - items.size());
    std::string q = "/api/v1/audit?limit=" + std::to_string(want);
    if (!c.actor.empty()) q += "&actor=" + http::percent_encode(c.actor);
    if (!c.target.empty()) q += "&target=" + http::percent_encode(c.target);
    if (!cursor.empty()) q += "&cursor=" + http::percent_encode(cursor);
    auto r = s.value().call("GET", q);
    if (!r.is_ok()) return fail(kExitFailure, r.status().message());
    if (r.value().status != 200) return fail(kExitFailure, problem_text(r.value()));
    const json page = json::parse(r.value().body, nullptr, false);
    if (!page.is_object()) return fail(kExitFailure, "the controller's answer is not JSON");
    for (const auto& e : page["items"]) items.push_back(e);
    if (page["next_cursor"].is_null()) break;
    cursor = page["next_cursor"].get<std::string>();
  }
  if (c.json) {
    std::cout << json{{"items", items}}.dump(2) << "\n";
    return 0;
  }
  if (items.empty()) std::cout << "no audit entries\n";
  for (const auto& e : items) {
    std::cout << utc_time(e.value("unix_ns", std::int64_t{0})) << "  " << e.value("actor", "")
              << " from " << e.value("address", "") << "  " << e.value("method", "") << " "
              << e.value("target", "") << " -> " << e.value("status", 0) << "\n";
    if (e.value("truncated", false)) std::cout << "    (the change was too large to keep)\n";
    for (const auto& p : e["patch"]) {
      std::string value = p.contains("value") ? p["value"].dump() : "";
      if (value.size() > 100) value = value.substr(0, 97) + "...";
      const std::string path = p.value("path", "");
      std::cout << "    " << p.value("op", "") << " " << (path.empty() ? "/" : path) << " " << value
                << "\n";
    }
  }
  return 0;
}

}  // namespace

int run_login_commands(LoginCommands& c) {
  if (c.audit->parsed()) return run_audit(c);
  if (c.logout->parsed()) {
    if (const char* key = std::getenv("PATRONUS_API_KEY"); key && *key) {
      return fail(kExitUsage,
                  "PATRONUS_API_KEY is set: an API key has no login to end (revoke it: DELETE "
                  "/api/v1/api-keys/ID); unset it to end the stored login");
    }
    auto s = ApiSession::open();
    if (!s.is_ok()) return fail(kExitFailure, s.status().message());
    auto r = s.value().call("POST", "/api/v1/auth/logout");
    std::filesystem::remove(login_file());
    if (!r.is_ok())
      return fail(kExitFailure, r.status().message() + " (the stored login is removed)");
    std::cout << "signed out\n";
    return 0;
  }
  if (!c.login->parsed()) return -1;
  auto url = http::Url::parse(c.controller);
  if (!url.is_ok()) return fail(kExitUsage, "--controller: " + url.status().message());
  std::string password;
  if (!c.password_file.empty()) {
    auto p = read_private_file(c.password_file, 4096);
    if (!p.is_ok()) return fail(kExitUsage, "--password-file: " + p.status().message());
    if (!p.value()) return fail(kExitUsage, "--password-file: no such file");
    password = std::move(*p.value());
    while (!password.empty() && (password.back() == '\n' || password.back() == '\r')) {
      password.pop_back();
    }
  } else {
    password = read_secret("password for " + c.user + ": ");
  }
  if (password.empty()) return fail(kExitUsage, "no password given (nothing was sent)");
  http::ClientOptions options;
  options.cacert = c.cacert.empty() ? "" : std::filesystem::absolute(c.cacert).string();
  json body{{"user", c.user}, {"password", password}};
  if (!c.totp.empty()) body["totp"] = c.totp;
  auto r = http::call(url.value(), options, "POST", "/api/v1/auth/login",
                      {{"Content-Type", "application/json"}}, body.dump());
  std::fill(password.begin(), password.end(), '\0');
  if (!r.is_ok()) return fail(kExitFailure, r.status().message());
  if (r.value().status != 200) {
    return fail(kExitFailure,
                "login refused: " + problem_text({r.value().status, r.value().body, ""}));
  }
  const json t = json::parse(r.value().body, nullptr, false);
  if (!t.is_object()) return fail(kExitFailure, "the controller's answer is not JSON");
  if (auto st = private_directory(config_dir()); !st.is_ok())
    return fail(kExitFailure, st.message());
  const json stored{{"controller", url.value().to_string()},
                    {"cacert", options.cacert},
                    {"user", t.value("user", c.user)},
                    {"access_token", t.value("access_token", "")},
                    {"access_expires_unix_ns", t.value("access_expires_unix_ns", std::int64_t{0})},
                    {"refresh_token", t.value("refresh_token", "")}};
  if (auto st = write_file_atomic(login_file(), stored.dump(2) + "\n", 0600); !st.is_ok()) {
    return fail(kExitFailure, st.message());
  }
  std::cout << "signed in to " << url.value().to_string() << " as " << t.value("user", c.user)
            << " (" << t.value("role", "?") << "); the login is kept in " << login_file() << "\n";
  return 0;
}

}  // namespace patronus::cli
