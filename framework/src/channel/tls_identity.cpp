#include "tls_identity.hpp"

#include "openssl_util.hpp"
#include "patronus/util/file.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

namespace patronus::channel {

namespace {

using ossl::bio_text;
using ossl::Owned;

// The certificate: a regular file (not a symlink). The key is a private file (read_private_file).
Result<std::string> read_certificate(const std::string& path) {
  return ossl::read_certificate(path, 64 * 1024);
}

Result<PublicKey> raw_key(EVP_PKEY* pkey, const std::string& what) {
  if (pkey == nullptr || EVP_PKEY_id(pkey) != EVP_PKEY_ED25519) {
    return failed_precondition(what + ": not an Ed25519 key");
  }
  PublicKey k{};
  std::size_t len = k.size();
  if (EVP_PKEY_get_raw_public_key(pkey, k.data(), &len) != 1 || len != k.size()) {
    return failed_precondition(what + ": the Ed25519 key cannot be read");
  }
  return k;
}

}  // namespace

std::string pin_of(const PublicKey& key) {
  char text[sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_ORIGINAL)];
  sodium_bin2base64(text, sizeof text, key.data(), key.size(), sodium_base64_VARIANT_ORIGINAL);
  return std::string("ed25519:") + text;
}

Result<PublicKey> parse_pin(const std::string& pin) {
  const std::string prefix = "ed25519:";
  if (pin.compare(0, prefix.size(), prefix) != 0) {
    return invalid_argument("a pin is 'ed25519:' and a base64 key (patronus-controller prints it)");
  }
  PublicKey k{};
  std::size_t len = 0;
  const std::string b64 = pin.substr(prefix.size());
  if (sodium_base642bin(k.data(), k.size(), b64.data(), b64.size(), nullptr, &len, nullptr,
                        sodium_base64_VARIANT_ORIGINAL) != 0 ||
      len != k.size()) {
    return invalid_argument("the pin's key is not 32 bytes of base64");
  }
  return k;
}

Result<TlsIdentity> load_or_create_identity(const std::string& dir, const std::string& name,
                                            const std::string& common_name) {
  const std::string key_path = dir + "/" + name + ".key";
  const std::string crt_path = dir + "/" + name + ".crt";
  if (auto s = private_directory(dir); !s.is_ok()) return s;
  struct stat st {};
  const bool have_key = ::lstat(key_path.c_str(), &st) == 0;
  const bool have_crt = ::lstat(crt_path.c_str(), &st) == 0;
  if (have_key != have_crt) {
    return failed_precondition(dir + ": " + (have_key ? crt_path : key_path) +
                               " is missing while the other half exists; restore it or remove "
                               "both to make a new identity");
  }
  TlsIdentity id;
  if (!have_key) {
    auto made = make_identity(common_name);
    if (!made.is_ok()) return made.status();
    id = std::move(made).value();
    if (auto s = write_new_file(key_path, id.key_pem, 0600); !s.is_ok()) return s;
    if (auto s = write_new_file(crt_path, id.certificate_pem, 0644); !s.is_ok()) return s;
  } else {
    auto k = read_private_file(key_path, 64 * 1024);
    if (!k.is_ok()) return k.status();
    if (!k.value()) return not_found(key_path + ": gone while it was read");
    auto c = read_certificate(crt_path);
    if (!c.is_ok()) return c.status();
    id.key_pem = std::move(*k.value());
    id.certificate_pem = std::move(c).value();
  }
  Owned<BIO> kb(BIO_new_mem_buf(id.key_pem.data(), static_cast<int>(id.key_pem.size())));
  Owned<EVP_PKEY> pkey(PEM_read_bio_PrivateKey(kb.get(), nullptr, nullptr, nullptr));
  auto pub = raw_key(pkey.get(), key_path);
  if (!pub.is_ok()) return pub.status();
  Owned<BIO> cb(
      BIO_new_mem_buf(id.certificate_pem.data(), static_cast<int>(id.certificate_pem.size())));
  Owned<X509> x(PEM_read_bio_X509(cb.get(), nullptr, nullptr, nullptr));
  if (!x) return failed_precondition(crt_path + ": not a PEM certificate");
  auto cert_key = raw_key(X509_get0_pubkey(x.get()), crt_path);
  if (!cert_key.is_ok()) return cert_key.status();
  if (cert_key.value() != pub.value()) {
    return failed_precondition(crt_path + ": its key is not " + key_path + "'s");
  }
  id.public_key = pub.value();
  return id;
}

Result<TlsIdentity> make_identity(const std::string& common_name) {
  Owned<EVP_PKEY> pkey(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  Owned<X509> x(X509_new());
  if (!pkey || !x) return internal_error("cannot make an Ed25519 key");
  X509_set_version(x.get(), 2);
  ASN1_INTEGER_set_int64(X509_get_serialNumber(x.get()),
                         static_cast<std::int64_t>(randombytes_random()) + 1);
  X509_gmtime_adj(X509_getm_notBefore(x.get()), -3600);
  X509_time_adj_ex(X509_getm_notAfter(x.get()), 36500, 0, nullptr);
  X509_set_pubkey(x.get(), pkey.get());
  X509_NAME* subject = X509_get_subject_name(x.get());
  X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1,
                             0);
  X509_set_issuer_name(x.get(), subject);
  if (X509_sign(x.get(), pkey.get(), nullptr) == 0) return internal_error("cannot sign");
  Owned<BIO> kb(BIO_new(BIO_s_mem())), cb(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(kb.get(), pkey.get(), nullptr, nullptr, 0, nullptr, nullptr);
  PEM_write_bio_X509(cb.get(), x.get());
  TlsIdentity id;
  id.key_pem = bio_text(kb.get());
  id.certificate_pem = bio_text(cb.get());
  auto pub = raw_key(pkey.get(), "a new key");
  if (!pub.is_ok()) return pub.status();
  id.public_key = pub.value();
  return id;
}

Result<PublicKey> peer_key(SSL* ssl) {
  Owned<X509> x(SSL_get1_peer_certificate(ssl));
  if (!x) return failed_precondition("the peer presented no certificate");
  return raw_key(X509_get0_pubkey(x.get()), "the peer's certificate");
}

}  // namespace patronus::channel
