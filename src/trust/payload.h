// The signed claims both signature formats carry ("simple signing"):
//
//   {"critical": {"type": "atomic container signature",
//                 "image": {"docker-manifest-digest": "sha256:…"},
//                 "identity": {"docker-reference": "registry.example/app:1"}},
//    "optional": {"creator": "…", "timestamp": 1700000000}}
//
// GPG signatures sign it with type "atomic container signature", cosign signatures with
// "cosign container image signature". The text is untrusted until its signature is verified,
// and parsed strictly even then: every critical field must be present with its type, and no
// other critical field is accepted.
#pragma once

#include <string>
#include <string_view>

#include "hoist/digest.h"
#include "hoist/status.h"

namespace hoist::trust {

inline constexpr std::string_view kSimpleSigningType = "atomic container signature";
inline constexpr std::string_view kCosignType = "cosign container image signature";
inline constexpr size_t kMaxPayloadBytes = 4 << 20;

struct SignedClaims {
  std::string manifest_digest;   // as written: checked by MatchesManifest
  std::string docker_reference;  // as written: checked by IdentityMatches
};

// The claims of `payload`, whose critical.type must be `type`. InvalidArgument naming what is
// wrong otherwise.
Result<SignedClaims> ParseSignedClaims(std::string_view payload, std::string_view type);

// Whether `signed_digest` (from a signature) names the manifest hoist verified: `digest` is
// its digest, `canonical` the bytes it is of (a signed schema1 manifest without its JWS
// signatures). A digest in another algorithm is computed from `canonical`.
bool MatchesManifest(std::string_view signed_digest, const Digest& digest,
                     std::string_view canonical);

}  // namespace hoist::trust
