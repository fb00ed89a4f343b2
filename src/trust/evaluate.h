// Whether an image may be used under a policy: the requirements of the scope that applies to
// its reference, each checked against the image's signatures.
//
// All requirements of the scope must pass. signedBy and sigstoreSigned pass when at least one
// signature verifies with one of the requirement's keys, names the manifest (its
// docker-manifest-digest matches the manifest pulled) and names an identity the requirement's
// signedIdentity accepts for the reference. Signatures are fetched only for those two
// requirements, so a policy of insecureAcceptAnything or reject costs no request.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "hoist/digest.h"
#include "hoist/reference.h"
#include "hoist/status.h"
#include "trust/policy.h"
#include "trust/sigstore.h"

namespace hoist::trust {

// Where the signatures of one manifest come from (the lookaside store, the registry's
// attachments). Called once for each requirement that needs them; a source may cache.
class SignatureSource {
 public:
  virtual ~SignatureSource() = default;
  // GPG simple signatures (raw OpenPGP messages), at most kMaxSignatures.
  virtual Result<std::vector<std::string>> SimpleSignatures(const Digest& manifest_digest) = 0;
  // Cosign-format signatures; empty when the image's registries.d settings do not enable
  // sigstore attachments.
  virtual Result<std::vector<SigstoreSignature>> SigstoreSignatures(
      const Digest& manifest_digest) = 0;
};

// True when some requirement of `ref`'s scope needs signatures (signedBy, sigstoreSigned).
bool NeedsSignatures(const Policy& policy, const Reference& ref);

// OK when the image `ref` whose manifest is `manifest` (the bytes `manifest_digest` is of)
// satisfies the policy. Otherwise PermissionDenied, one line: `signature policy for "REF":
// signedBy (scope docker:"…"): no signature` — the reasons are "no signature", "signature by
// unknown key …", "invalid signature: …", "identity mismatch: signed for \"…\"", "signed for
// another digest", "rejected by policy". A key file that cannot be read, or a signature
// source that fails, is returned as that error.
Status Evaluate(const Policy& policy, const Reference& ref, const Digest& manifest_digest,
                std::string_view manifest, SignatureSource& signatures);

}  // namespace hoist::trust
