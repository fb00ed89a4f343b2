#include "trust/gpg.h"

#include <gpgme.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <mutex>

#include "base/strings.h"

namespace hoist::trust {

namespace {

std::string GpgError(gpgme_error_t err) { return TerminalSafe(gpgme_strerror(err)); }

// Owns a gpgme_data_t.
struct Data {
  gpgme_data_t d = nullptr;
  ~Data() {
    if (d != nullptr) gpgme_data_release(d);
  }
};

}  // namespace

struct GpgVerifier::Context {
  gpgme_ctx_t ctx = nullptr;
  ~Context() {
    if (ctx != nullptr) gpgme_release(ctx);
  }
};

GpgVerifier::~GpgVerifier() {
  ctx_.reset();
  if (!home_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(home_, ec);
  }
}

Result<std::unique_ptr<GpgVerifier>> GpgVerifier::Create(const std::vector<std::string>& keys) {
  static std::once_flag once;
  std::call_once(once, [] { gpgme_check_version(nullptr); });
  std::unique_ptr<GpgVerifier> v(new GpgVerifier());
  if (gpgme_error_t err = gpgme_engine_check_version(GPGME_PROTOCOL_OpenPGP); err != 0) {
    return UnavailableError("gpg: " + GpgError(err));
  }
  const char* tmp = getenv("TMPDIR");
  std::string dir =
      std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/hoist-gpg-XXXXXX";
  if (mkdtemp(dir.data()) == nullptr) {
    return InternalError("gpg: cannot make a temporary GNUPGHOME: " + std::string(strerror(errno)));
  }
  v->home_ = dir;  // mkdtemp makes it 0700
  v->ctx_ = std::make_unique<Context>();
  if (gpgme_error_t err = gpgme_new(&v->ctx_->ctx); err != 0) {
    return UnavailableError("gpg: " + GpgError(err));
  }
  gpgme_ctx_t ctx = v->ctx_->ctx;
  if (gpgme_error_t err =
          gpgme_ctx_set_engine_info(ctx, GPGME_PROTOCOL_OpenPGP, nullptr, v->home_.c_str());
      err != 0) {
    return UnavailableError("gpg: " + GpgError(err));
  }
  gpgme_set_protocol(ctx, GPGME_PROTOCOL_OpenPGP);
  gpgme_set_offline(ctx, 1);
  for (const auto& key : keys) {
    Data data;
    if (gpgme_data_new_from_mem(&data.d, key.data(), key.size(), 1) != 0) {
      return InternalError("gpg: out of memory");
    }
    if (gpgme_error_t err = gpgme_op_import(ctx, data.d); err != 0) {
      return FailedPreconditionError("gpg: importing the policy's keys: " + GpgError(err));
    }
  }
  // Every key now in the private keyring came from the policy.
  if (gpgme_op_keylist_start(ctx, nullptr, 0) == 0) {
    gpgme_key_t key = nullptr;
    while (gpgme_op_keylist_next(ctx, &key) == 0) {
      for (gpgme_subkey_t sub = key->subkeys; sub != nullptr; sub = sub->next) {
        if (sub->fpr == nullptr) continue;
        if (sub == key->subkeys) v->primary_.push_back(sub->fpr);
        v->accepted_.push_back(sub->fpr);
      }
      gpgme_key_unref(key);
    }
    gpgme_op_keylist_end(ctx);
  }
  if (v->primary_.empty()) {
    return FailedPreconditionError("gpg: no public key in the policy's keys");
  }
  return v;
}

Result<std::string> GpgVerifier::Verify(std::string_view signature) {
  gpgme_ctx_t ctx = ctx_->ctx;
  Data sig;
  Data plain;
  if (gpgme_data_new_from_mem(&sig.d, signature.data(), signature.size(), 1) != 0 ||
      gpgme_data_new(&plain.d) != 0) {
    return InternalError("gpg: out of memory");
  }
  if (gpgme_error_t err = gpgme_op_verify(ctx, sig.d, nullptr, plain.d); err != 0) {
    return PermissionDeniedError("invalid signature: " + GpgError(err));
  }
  gpgme_verify_result_t result = gpgme_op_verify_result(ctx);
  int count = 0;
  for (gpgme_signature_t s = result != nullptr ? result->signatures : nullptr; s != nullptr;
       s = s->next) {
    ++count;
  }
  if (count != 1) {
    return PermissionDeniedError("invalid signature: " + std::to_string(count) +
                                 " signatures in one message");
  }
  gpgme_signature_t s = result->signatures;
  const std::string fpr = s->fpr != nullptr ? s->fpr : "";
  if (gpgme_err_code(s->status) == GPG_ERR_NO_PUBKEY) {
    return PermissionDeniedError("signature by unknown key " + TerminalSafe(fpr));
  }
  if (s->status != 0 || s->validity == GPGME_VALIDITY_NEVER || s->validity_reason != 0 ||
      s->wrong_key_usage) {
    return PermissionDeniedError("invalid signature: " +
                                 GpgError(s->status != 0 ? s->status : s->validity_reason));
  }
  if (std::find(accepted_.begin(), accepted_.end(), fpr) == accepted_.end()) {
    return PermissionDeniedError("signature by unknown key " + TerminalSafe(fpr));
  }
  size_t n = 0;
  char* bytes = gpgme_data_release_and_get_mem(plain.d, &n);
  plain.d = nullptr;
  std::string out(bytes != nullptr ? bytes : "", n);
  gpgme_free(bytes);
  return out;
}

}  // namespace hoist::trust
