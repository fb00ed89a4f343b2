// cosign-format signatures made for tests, independently of hoist: an ECDSA P-256 key made by
// the `openssl` command, the simple-signing payload, its signature by `openssl dgst -sha256
// -sign` (checked with `openssl dgst -sha256 -verify` before it is used), and the OCI
// attachment cosign writes ("sha256-<hex>.sig": an OCI image manifest whose layers are the
// payload blobs, each with the base64 signature in its dev.cosignproject.cosign/signature
// annotation), pushed to a registry over plain http with the harness's own client. Test-only.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "hoist/digest.h"
#include "hoist/status.h"

namespace hoist::testing {

inline constexpr char kCosignSimpleSigningType[] =
    "application/vnd.dev.cosign.simplesigning.v1+json";
inline constexpr char kCosignSignatureAnnotation[] = "dev.cosignproject.cosign/signature";

// A key pair in PEM files: <dir>/<name>.key (PKCS#8 private key) and <dir>/<name>.pub
// (SubjectPublicKeyInfo, as cosign's cosign.pub and policy.json's keyPath hold it).
struct CosignKey {
  std::string private_key_path;
  std::string public_key_path;
  std::string public_key_pem;  // the .pub file's text
};

// An ECDSA P-256 key pair made with `openssl genpkey` in `dir` (which must exist).
Result<CosignKey> MakeCosignKey(const std::string& dir, const std::string& name);
// Any other key pair `openssl genpkey` makes: `algorithm_args` such as
// {"-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"} or {"-algorithm", "ED25519"}.
Result<CosignKey> MakeKey(const std::string& dir, const std::string& name,
                          const std::vector<std::string>& algorithm_args);

// The simple-signing payload cosign signs for `docker_reference` ("host:port/repo", no tag)
// at `manifest_digest` ("sha256:<hex>"), with "optional": null.
std::string CosignPayload(const std::string& docker_reference, const std::string& manifest_digest);

// The base64 text of `payload`'s DER signature by the private key in `private_key_pem_path`,
// made with `openssl dgst -sha256 -sign` (Ed25519 keys: `openssl pkeyutl -sign -rawin`) and
// checked with the matching public key by the `openssl` verify command before it is returned.
Result<std::string> OpensslSign(const std::string& payload,
                                const std::string& private_key_pem_path);

// Whether `signature_base64` is the public key's signature of `payload`, as
// `openssl dgst -sha256 -verify` says. An error when the command cannot be run.
Result<bool> OpensslVerify(const std::string& payload, const std::string& signature_base64,
                           const std::string& public_key_pem_path);

// One layer of a signature attachment. Empty `annotations` keys are not written.
struct CosignLayer {
  std::string payload;
  std::map<std::string, std::string> annotations;  // the signature annotation, or anything else
  std::string media_type = kCosignSimpleSigningType;
};

// Appends `layers` to the attachment of `manifest_digest` in host/repo, as cosign does: reads
// the "sha256-<hex>.sig" manifest when there is one, pushes each payload blob, a config listing
// every layer, and the OCI image manifest with the old layers and the new ones under the tag.
// `basic_creds` is "user:pass" (htpasswd registries) or empty.
Status AttachCosignLayers(const std::string& registry_host, const std::string& repo,
                          const Digest& manifest_digest, const std::vector<CosignLayer>& layers,
                          const std::string& basic_creds = "");

// Signs CosignPayload(docker_reference, manifest_digest) with OpensslSign and appends it with
// AttachCosignLayers: what `cosign sign --key` does for a key-based signature without Rekor.
Status AttachCosignSignature(const std::string& registry_host, const std::string& repo,
                             const Digest& manifest_digest, const std::string& docker_reference,
                             const std::string& private_key_pem_path,
                             const std::string& basic_creds = "");

}  // namespace hoist::testing
