// Sigstore (cosign-format) signatures stored as OCI attachments: the manifest tagged
// "<alg>-<hex>.sig" in the image's repository, whose layers are the signed payloads and carry
// their signatures in the dev.cosignproject.cosign/signature annotation.
#pragma once

#include <string>
#include <vector>

#include "hoist/digest.h"
#include "hoist/status.h"
#include "registry/http.h"
#include "registry/registry.h"

namespace hoist::trust {

// One cosign-format signature found in an OCI attachment: the payload blob's bytes and the
// base64 text of its dev.cosignproject.cosign/signature annotation. Untrusted.
struct SigstoreSignature {
  std::string payload;
  std::string signature_base64;
};

// The signatures attached to `manifest_digest` in `repo` (the manifest tagged
// "<alg>-<hex>.sig", its layers' payload blobs, each verified against its digest). Empty when
// there is no such tag. Capped: count, manifest and payload sizes.
Result<std::vector<SigstoreSignature>> FetchSigstoreSignatures(registry::HttpClient& http,
                                                               registry::Repository& repo,
                                                               const Digest& manifest_digest);

// The payload of `sig` when its signature verifies (ECDSA P-256 / SHA-256, or any key type
// OpenSSL reads from a PEM public key) with one of `public_keys_pem`; PermissionDenied
// ("signature by unknown key" / "invalid signature") otherwise.
Result<std::string> VerifySigstoreSignature(const SigstoreSignature& sig,
                                            const std::vector<std::string>& public_keys_pem);

}  // namespace hoist::trust
