// Sigstore (cosign-format, key-based) signatures: finding them in a registry and checking them
// against public keys.
//
// cosign and skopeo attach the signatures of manifest <alg>:<hex> to the same repository as an
// OCI image manifest tagged "<alg>-<hex>.sig". Each of its layers of media type
// application/vnd.dev.cosign.simplesigning.v1+json is one signature: the layer blob is the
// payload (the simple-signing JSON naming the image's identity and manifest digest), and the
// layer's dev.cosignproject.cosign/signature annotation holds the base64 signature of the
// payload's bytes. Other layers, and the annotations cosign adds for Fulcio certificates and
// Rekor bundles (dev.sigstore.cosign/certificate, .../chain, .../bundle), are not read: only
// signatures by configured public keys are supported.
//
// Everything read here is hostile: sizes and counts are capped before anything is held, every
// payload is checked against its layer's digest, and nothing in a payload is trusted until
// VerifySigstoreSignature returns it. Checking what the payload says (its type, identity and
// manifest digest) is the caller's job.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "hoist/digest.h"
#include "hoist/status.h"
#include "registry/http.h"
#include "registry/registry.h"

namespace hoist::trust {

inline constexpr std::string_view kSimpleSigningMediaType =
    "application/vnd.dev.cosign.simplesigning.v1+json";
inline constexpr std::string_view kCosignSignatureAnnotation = "dev.cosignproject.cosign/signature";

// Caps on what FetchSigstoreSignatures and VerifySigstoreSignature accept.
inline constexpr size_t kMaxSigstoreManifestBytes = 4 << 20;
inline constexpr size_t kMaxSigstoreLayers = 64;
inline constexpr size_t kMaxSigstorePayloadBytes = 4 << 20;
inline constexpr size_t kMaxSigstoreTotalPayloadBytes = 16 << 20;  // all layers of one tag
inline constexpr size_t kMaxSigstoreSignatureBase64Bytes = 64 << 10;

// One cosign-format signature found in an OCI attachment: the payload blob's bytes and the
// base64 text of its dev.cosignproject.cosign/signature annotation. Untrusted.
struct SigstoreSignature {
  std::string payload;
  std::string signature_base64;
};

// The tag cosign attaches the signatures of `manifest_digest` under: "<alg>-<hex>.sig".
std::string SigstoreAttachmentTag(const Digest& manifest_digest);

// The signatures attached to `manifest_digest` in `repo` (the manifest tagged
// "<alg>-<hex>.sig", its layers' payload blobs, each verified against its digest), in layer
// order. Empty when there is no such tag. The manifest and blobs are fetched through `repo`,
// with the registry's own credentials.
//
// Errors, each naming the attachment tag: the tag's manifest is not an OCI image manifest, is
// malformed or over kMaxSigstoreManifestBytes (DataLoss / ResourceExhausted); it has more than
// kMaxSigstoreLayers layers, a signature layer declares more than kMaxSigstorePayloadBytes, the
// signature layers together more than kMaxSigstoreTotalPayloadBytes, or an annotation is over
// kMaxSigstoreSignatureBase64Bytes (ResourceExhausted); a payload blob
// does not match its descriptor's size or digest (DataLoss); the registry's own errors (as
// Repository returns them) other than the tag's 404.
Result<std::vector<SigstoreSignature>> FetchSigstoreSignatures(registry::HttpClient& http,
                                                               registry::Repository& repo,
                                                               const Digest& manifest_digest);

// The payload of `sig` when its signature verifies with one of `public_keys_pem` (each a PEM
// text holding one or more public keys: ECDSA P-256 with SHA-256, as cosign makes them, or any
// key type OpenSSL reads from a PEM public key; RSA is PKCS#1 v1.5 with SHA-256, Ed25519 signs
// the payload itself).
//
// PermissionDenied otherwise: "invalid signature: ..." when the signature cannot be one
// (not base64, empty, over the caps); "signature by unknown key" when it is well formed but no
// key verifies it over these payload bytes (the cryptography cannot tell a signature by another
// key from a signature whose payload was altered). InvalidArgument when a key text holds no
// readable public key, or no key is given.
Result<std::string> VerifySigstoreSignature(const SigstoreSignature& sig,
                                            const std::vector<std::string>& public_keys_pem);

}  // namespace hoist::trust
