// GPG simple signatures (what `skopeo copy --sign-by` writes: an OpenPGP signed message whose
// literal data is the signed claims), verified with gpgme against the keys a policy names.
//
// The keys are imported into a private keyring in a fresh temporary GNUPGHOME (mode 0700,
// removed with the verifier); the user's own keyring is never read or written.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "hoist/status.h"

namespace hoist::trust {

class GpgVerifier {
 public:
  // `keys`: OpenPGP public keys, binary or armored, several per string allowed. No key in them:
  // FailedPrecondition. gpg not usable: Unavailable.
  static Result<std::unique_ptr<GpgVerifier>> Create(const std::vector<std::string>& keys);
  ~GpgVerifier();
  GpgVerifier(const GpgVerifier&) = delete;
  GpgVerifier& operator=(const GpgVerifier&) = delete;

  // The signed plaintext of `signature` when it holds exactly one valid signature made by one
  // of the keys (or their subkeys). PermissionDenied "signature by unknown key (ID)" or
  // "invalid signature: WHY" otherwise. Not thread-safe.
  Result<std::string> Verify(std::string_view signature);

  // The fingerprints of the primary keys imported, for messages.
  const std::vector<std::string>& fingerprints() const { return primary_; }

 private:
  GpgVerifier() = default;
  struct Context;
  std::unique_ptr<Context> ctx_;
  std::string home_;
  std::vector<std::string> primary_;
  std::vector<std::string> accepted_;  // primary keys and subkeys
};

}  // namespace hoist::trust
