// Incremental content digests (sha256, sha512) over OpenSSL's EVP interface.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "hoist/digest.h"
#include "hoist/status.h"

struct evp_md_ctx_st;  // OpenSSL's EVP_MD_CTX

namespace hoist::content {

// Hashes bytes fed in pieces. Movable, not copyable, not thread-safe. Finish() ends it: after
// Finish, Update and Finish must not be called again (a moved-from Digester is likewise spent).
class Digester {
 public:
  // "sha256" or "sha512"; anything else is InvalidArgument.
  static Result<Digester> New(std::string_view algorithm);

  Digester(Digester&&) noexcept;
  Digester& operator=(Digester&&) noexcept;
  ~Digester();

  const std::string& algorithm() const { return algorithm_; }
  void Update(const void* data, size_t n);
  void Update(std::string_view bytes) { Update(bytes.data(), bytes.size()); }
  // The digest of everything given to Update.
  Digest Finish();

 private:
  struct CtxFree {
    void operator()(evp_md_ctx_st* ctx) const;
  };
  Digester(std::string algorithm, std::unique_ptr<evp_md_ctx_st, CtxFree> ctx);

  std::string algorithm_;
  std::unique_ptr<evp_md_ctx_st, CtxFree> ctx_;
};

// The digest of `bytes` in one call.
Result<Digest> DigestOf(std::string_view algorithm, std::string_view bytes);

}  // namespace hoist::content
