// The API's TLS certificate: an operator's own, or one the controller makes for itself.
#include <arpa/inet.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sodium.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <memory>
#include <set>

#include "openssl_util.hpp"
#include "patronus/util/file.hpp"
#include "server.hpp"

namespace patronus::http {

namespace {

using ossl::bio_text;
using ossl::Owned;

bool is_ip(const std::string& n) {
  unsigned char buf[16];
  return ::inet_pton(AF_INET, n.c_str(), buf) == 1 || ::inet_pton(AF_INET6, n.c_str(), buf) == 1;
}

// The certificate's subject alternative names, as text.
std::set<std::string> names_of(X509* x) {
  std::set<std::string> out;
  Owned<GENERAL_NAMES> gens(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(x, NID_subject_alt_name, nullptr, nullptr)));
  if (!gens) return out;
  for (int i = 0; i < sk_GENERAL_NAME_num(gens.get()); ++i) {
    const GENERAL_NAME* g = sk_GENERAL_NAME_value(gens.get(), i);
    if (g->type == GEN_DNS) {
      const auto* s = g->d.dNSName;
      out.emplace(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                  static_cast<std::size_t>(ASN1_STRING_length(s)));
    } else if (g->type == GEN_IPADD) {
      const auto* s = g->d.iPAddress;
      char text[64] = {};
      const int family = ASN1_STRING_length(s) == 4 ? AF_INET : AF_INET6;
      if (::inet_ntop(family, ASN1_STRING_get0_data(s), text, sizeof text) != nullptr) {
        out.emplace(text);
      }
    }
  }
  return out;
}

std::set<std::string> canonical(const std::vector<std::string>& names) {
  std::set<std::string> out;
  for (const auto& n : names) {
    unsigned char buf[16];
    char text[64] = {};
    if (::inet_pton(AF_INET6, n.c_str(), buf) == 1 &&
        ::inet_ntop(AF_INET6, buf, text, sizeof text) != nullptr) {
      out.emplace(text);
    } else {
      out.insert(n);
    }
  }
  return out;
}

Result<Credentials> make_certificate(const std::vector<std::string>& names) {
  Owned<EVP_PKEY> pkey(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  Owned<X509> x(X509_new());
  if (!pkey || !x) return internal_error("cannot make an ECDSA P-256 key");
  X509_set_version(x.get(), 2);
  ASN1_INTEGER_set_int64(X509_get_serialNumber(x.get()),
                         static_cast<std::int64_t>(randombytes_random()) + 1);
  X509_gmtime_adj(X509_getm_notBefore(x.get()), -3600);
  X509_time_adj_ex(X509_getm_notAfter(x.get()), 825, 0, nullptr);  // browsers' longest
  X509_set_pubkey(x.get(), pkey.get());
  X509_NAME* subject = X509_get_subject_name(x.get());
  const std::string cn = "patronus-controller API";
  X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(x.get(), subject);
  std::string san;
  for (const auto& n : names) {
    if (!san.empty()) san += ",";
    san += (is_ip(n) ? "IP:" : "DNS:") + n;
  }
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, x.get(), x.get(), nullptr, nullptr, 0);
  // A self-signed certificate that is its own trust anchor (curl --cacert, a browser's import).
  for (const auto& [nid, value] :
       {std::pair(NID_subject_alt_name, san),
        std::pair(NID_basic_constraints, std::string("critical,CA:TRUE")),
        std::pair(NID_key_usage, std::string("critical,digitalSignature,keyCertSign")),
        std::pair(NID_ext_key_usage, std::string("serverAuth"))}) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, nid, value.c_str());
    if (ext == nullptr)
      return invalid_argument("api names: cannot put '" + value + "' in a certificate");
    X509_add_ext(x.get(), ext, -1);
    X509_EXTENSION_free(ext);
  }
  if (X509_sign(x.get(), pkey.get(), EVP_sha256()) == 0) return internal_error("cannot sign");
  Owned<BIO> kb(BIO_new(BIO_s_mem())), cb(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(kb.get(), pkey.get(), nullptr, nullptr, 0, nullptr, nullptr);
  PEM_write_bio_X509(cb.get(), x.get());
  return Credentials{bio_text(cb.get()), bio_text(kb.get())};
}

Status check_pair(const Credentials& c, const std::string& what) {
  Owned<BIO> kb(BIO_new_mem_buf(c.key_pem.data(), static_cast<int>(c.key_pem.size())));
  Owned<EVP_PKEY> pkey(PEM_read_bio_PrivateKey(kb.get(), nullptr, nullptr, nullptr));
  if (!pkey) return failed_precondition(what + ": the key is not a PEM private key");
  Owned<BIO> cb(
      BIO_new_mem_buf(c.certificate_pem.data(), static_cast<int>(c.certificate_pem.size())));
  Owned<X509> x(PEM_read_bio_X509(cb.get(), nullptr, nullptr, nullptr));
  if (!x) return failed_precondition(what + ": the certificate is not PEM");
  if (X509_check_private_key(x.get(), pkey.get()) != 1) {
    return failed_precondition(what + ": the key is not the certificate's");
  }
  return Status::ok();
}

Result<std::string> read_regular(const std::string& path) {
  return ossl::read_certificate(path, 256 * 1024);
}

}  // namespace

Result<Credentials> load_or_create_certificate(const std::string& dir, const std::string& name,
                                               const std::vector<std::string>& names) {
  if (names.empty()) return invalid_argument("api names: at least one DNS name or address");
  for (const auto& n : names) {
    if (n.empty() || n.size() > 253 ||
        (n.find_first_of(",: \t\r\n") != std::string::npos && !is_ip(n))) {
      return invalid_argument("api names: '" + n + "' is not a DNS name or an address");
    }
  }
  if (auto s = private_directory(dir); !s.is_ok()) return s;
  const std::string key_path = dir + "/" + name + ".key";
  const std::string crt_path = dir + "/" + name + ".crt";
  struct stat st {};
  if (::lstat(key_path.c_str(), &st) == 0 && ::lstat(crt_path.c_str(), &st) == 0) {
    auto k = read_private_file(key_path, 64 * 1024);
    if (!k.is_ok()) return k.status();
    auto c = read_regular(crt_path);
    if (!c.is_ok()) return c.status();
    if (k.value()) {
      Credentials cred{std::move(c).value(), std::move(*k.value())};
      if (auto s = check_pair(cred, crt_path); !s.is_ok()) return s;
      Owned<BIO> cb(BIO_new_mem_buf(cred.certificate_pem.data(),
                                    static_cast<int>(cred.certificate_pem.size())));
      Owned<X509> x(PEM_read_bio_X509(cb.get(), nullptr, nullptr, nullptr));
      if (names_of(x.get()) == canonical(names) &&
          X509_cmp_current_time(X509_get0_notAfter(x.get())) > 0) {
        return cred;
      }
    }
  }
  // None yet, other names, or expired: a new one (the old files are replaced atomically).
  auto made = make_certificate(names);
  if (!made.is_ok()) return made.status();
  if (auto s = write_file_atomic(key_path, made.value().key_pem, 0600); !s.is_ok()) return s;
  if (auto s = write_file_atomic(crt_path, made.value().certificate_pem, 0644); !s.is_ok())
    return s;
  return made;
}

Result<Credentials> load_credentials(const std::string& certificate_path,
                                     const std::string& key_path) {
  auto c = read_regular(certificate_path);
  if (!c.is_ok()) return c.status();
  auto k = read_private_file(key_path, 64 * 1024);
  if (!k.is_ok()) return k.status();
  if (!k.value()) return not_found(key_path + ": no such file");
  Credentials cred{std::move(c).value(), std::move(*k.value())};
  if (auto s = check_pair(cred, certificate_path); !s.is_ok()) return s;
  return cred;
}

Result<std::int64_t> certificate_not_after(const std::string& certificate_pem) {
  Owned<BIO> b(BIO_new_mem_buf(certificate_pem.data(), static_cast<int>(certificate_pem.size())));
  Owned<X509> x(b ? PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!x) return invalid_argument("not a PEM certificate");
  std::tm t{};
  if (ASN1_TIME_to_tm(X509_get0_notAfter(x.get()), &t) != 1) {
    return invalid_argument("the certificate's notAfter does not parse");
  }
  return static_cast<std::int64_t>(timegm(&t));
}

}  // namespace patronus::http
