#include "content/digester.h"

#include <openssl/evp.h>

#include <utility>

#include "base/strings.h"

namespace hoist::content {

void Digester::CtxFree::operator()(evp_md_ctx_st* ctx) const { EVP_MD_CTX_free(ctx); }

Digester::Digester(std::string algorithm, std::unique_ptr<evp_md_ctx_st, CtxFree> ctx)
    : algorithm_(std::move(algorithm)), ctx_(std::move(ctx)) {}
Digester::Digester(Digester&&) noexcept = default;
Digester& Digester::operator=(Digester&&) noexcept = default;
Digester::~Digester() = default;

Result<Digester> Digester::New(std::string_view algorithm) {
  const EVP_MD* md = nullptr;
  if (algorithm == "sha256") {
    md = EVP_sha256();
  } else if (algorithm == "sha512") {
    md = EVP_sha512();
  } else {
    return InvalidArgumentError("unsupported digest algorithm \"" + std::string(algorithm) +
                                "\" (want sha256 or sha512)");
  }
  std::unique_ptr<evp_md_ctx_st, CtxFree> ctx(EVP_MD_CTX_new());
  if (ctx == nullptr || EVP_DigestInit_ex(ctx.get(), md, nullptr) != 1) {
    return InternalError("cannot start a " + std::string(algorithm) + " digest");
  }
  return Digester(std::string(algorithm), std::move(ctx));
}

void Digester::Update(const void* data, size_t n) {
  // EVP_DigestUpdate cannot fail for the built-in sha2 implementations on a live context.
  if (ctx_ != nullptr && n > 0) EVP_DigestUpdate(ctx_.get(), data, n);
}

Digest Digester::Finish() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (ctx_ == nullptr || EVP_DigestFinal_ex(ctx_.get(), md, &len) != 1) return Digest();
  ctx_.reset();
  std::string hex = HexEncode(std::string_view(reinterpret_cast<const char*>(md), len));
  auto digest = Digest::Parse(algorithm_ + ":" + hex);
  return digest.ok() ? *digest : Digest();
}

Result<Digest> DigestOf(std::string_view algorithm, std::string_view bytes) {
  auto d = Digester::New(algorithm);
  if (!d.ok()) return d.status();
  d->Update(bytes);
  return d->Finish();
}

}  // namespace hoist::content
