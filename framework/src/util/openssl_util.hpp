// What the TLS identity (the site channel's Ed25519) and the API's certificate share: OpenSSL
// objects owned by unique_ptr, a memory BIO's text, and reading a certificate file that must be a
// regular file (not a symlink). Private to the project.
#pragma once

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>

#include "patronus/util/file.hpp"

namespace patronus::ossl {

struct Free {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(X509* p) const { X509_free(p); }
  void operator()(BIO* p) const { BIO_free(p); }
  void operator()(GENERAL_NAMES* p) const { GENERAL_NAMES_free(p); }
};
template <typename T>
using Owned = std::unique_ptr<T, Free>;

inline std::string bio_text(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(n));
}

inline Result<std::string> read_certificate(const std::string& path, std::size_t max_bytes) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return unavailable(path + ": " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) return failed_precondition(path + ": not a regular file");
  return read_text_file(path, max_bytes);
}

}  // namespace patronus::ossl
