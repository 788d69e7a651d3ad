#include "client.hpp"

#include <openssl/ssl.h>
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cctype>
#include <chrono>

namespace patronus::http {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;

Result<Url> Url::parse(const std::string& text) {
  const std::string scheme = "https://";
  if (text.rfind(scheme, 0) != 0) {
    return invalid_argument("'" + text + "': the controller's URL starts with https://");
  }
  std::string rest = text.substr(scheme.size());
  Url u;
  const auto slash = rest.find('/');
  if (slash != std::string::npos) {
    u.base_path = rest.substr(slash);
    while (!u.base_path.empty() && u.base_path.back() == '/') u.base_path.pop_back();
    rest = rest.substr(0, slash);
  }
  if (!rest.empty() && rest.front() == '[') {  // [v6]:port
    const auto close = rest.find(']');
    if (close == std::string::npos) return invalid_argument("'" + text + "': an unclosed '['");
    u.host = rest.substr(1, close - 1);
    if (close + 1 < rest.size()) {
      if (rest[close + 1] != ':') return invalid_argument("'" + text + "': ':' after ']'");
      u.port = rest.substr(close + 2);
    }
  } else {
    const auto colon = rest.rfind(':');
    u.host = rest.substr(0, colon);
    if (colon != std::string::npos) u.port = rest.substr(colon + 1);
  }
  if (u.host.empty()) return invalid_argument("'" + text + "': no host");
  if (u.port.empty() || u.port.size() > 5 ||
      !std::all_of(u.port.begin(), u.port.end(), [](unsigned char c) { return std::isdigit(c); }) ||
      std::stoi(u.port) == 0 || std::stoi(u.port) > 65535) {
    return invalid_argument("'" + text + "': the port is a number 1-65535");
  }
  return u;
}

std::string Url::to_string() const {
  const bool v6 = host.find(':') != std::string::npos;
  return "https://" + (v6 ? "[" + host + "]" : host) + ":" + port + base_path;
}

std::string percent_encode(const std::string& s) {
  static const char* const kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

Result<ClientResponse> call(const Url& url, const ClientOptions& options, const std::string& method,
                            const std::string& target,
                            const std::vector<std::pair<std::string, std::string>>& headers,
                            const std::string& body) {
  net::io_context io;
  ssl::context ctx(ssl::context::tls_client);
  SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION);
  boost::system::error_code ec;
  if (options.cacert.empty()) {
    ctx.set_default_verify_paths(ec);
  } else {
    if (::access(options.cacert.c_str(), R_OK) != 0) {
      return invalid_argument("CA file " + options.cacert + ": cannot read it");
    }
    ctx.load_verify_file(options.cacert, ec);
  }
  if (ec) {
    return invalid_argument("CA file " + options.cacert + ": not a PEM certificate (" +
                            ec.message() + ")");
  }
  ctx.set_verify_mode(ssl::verify_peer);
  beast::ssl_stream<beast::tcp_stream> stream(io, ctx);
  // The name the certificate must carry, and SNI.
  SSL_set1_host(stream.native_handle(), url.host.c_str());
  if (!SSL_set_tlsext_host_name(stream.native_handle(), url.host.c_str())) {
    // An address: no SNI, the certificate's IP names are checked.
  }
  const std::string where = url.to_string();
  tcp::resolver resolver(io);
  const auto results = resolver.resolve(url.host, url.port, ec);
  if (ec) return unavailable(where + ": cannot resolve " + url.host + ": " + ec.message());
  const auto deadline = std::chrono::milliseconds(options.timeout_ms);
  beast::get_lowest_layer(stream).expires_after(deadline);
  beast::get_lowest_layer(stream).connect(results, ec);
  if (ec) return unavailable(where + ": " + ec.message());
  beast::get_lowest_layer(stream).socket().set_option(tcp::no_delay(true), ec);
  stream.handshake(ssl::stream_base::client, ec);
  if (ec) {
    const long verify = SSL_get_verify_result(stream.native_handle());
    if (verify != X509_V_OK) {
      return unavailable(where + ": its certificate is not trusted (" +
                         X509_verify_cert_error_string(verify) +
                         "); trust the controller's api.crt (patronus login --cacert, or "
                         "PATRONUS_CACERT with an API key)");
    }
    return unavailable(where + ": TLS: " + ec.message());
  }
  bhttp::request<bhttp::string_body> req(bhttp::string_to_verb(method), url.base_path + target, 11);
  req.set(bhttp::field::host, url.host);
  req.set(bhttp::field::user_agent, "patronus-cli");
  for (const auto& [k, v] : headers) req.set(k, v);
  if (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH") {
    req.body() = body;
  }
  req.prepare_payload();
  bhttp::write(stream, req, ec);
  if (ec) return unavailable(where + ": " + ec.message());
  beast::flat_buffer buffer;
  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(options.max_response_bytes);
  bhttp::read(stream, buffer, parser, ec);
  if (ec == beast::error::timeout) {
    return unavailable(where + ": no answer within " + std::to_string(options.timeout_ms) + " ms");
  }
  if (ec) return unavailable(where + ": " + ec.message());
  auto res = parser.release();
  ClientResponse out;
  out.status = static_cast<int>(res.result_int());
  for (const auto& f : res) {
    std::string name(f.name_string());
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    out.headers[name] = std::string(f.value());
  }
  out.body = std::move(res.body());
  stream.shutdown(ec);  // the server's close_notify, or not: the answer is complete
  return out;
}

}  // namespace patronus::http
