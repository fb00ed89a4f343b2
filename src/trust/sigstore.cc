#include "trust/sigstore.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <cstdint>
#include <memory>
#include <utility>

#include "base/status_macros.h"
#include "base/strings.h"
#include "content/digester.h"
#include "manifest/json_fields.h"
#include "manifest/media_types.h"

namespace hoist::trust {
namespace {

using manifest::internal::Find;
using manifest::internal::Json;

struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;

// Every public key in the PEM text `pem` (one or more "PUBLIC KEY" blocks).
Result<std::vector<Pkey>> ReadPublicKeys(const std::string& pem, size_t index) {
  std::vector<Pkey> keys;
  if (pem.size() > static_cast<size_t>(INT32_MAX)) {
    return InvalidArgumentError("public key " + std::to_string(index) + " is too large");
  }
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (bio == nullptr) return InternalError("BIO_new_mem_buf failed");
  // Bounded: each round consumes one PEM block of a finite buffer.
  while (EVP_PKEY* k = PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr)) {
    keys.emplace_back(k);
  }
  ERR_clear_error();  // the read past the last block leaves "no start line" queued
  if (keys.empty()) {
    return InvalidArgumentError("public key " + std::to_string(index) + " holds no PEM public key");
  }
  return keys;
}

// Whether `signature` is `key`'s signature of `payload`.
bool Verifies(EVP_PKEY* key, const std::string& signature, const std::string& payload) {
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  if (ctx == nullptr) return false;
  // Ed25519 and Ed448 sign the message itself; every other key type signs its SHA-256.
  const int id = EVP_PKEY_get_base_id(key);
  const EVP_MD* md = (id == EVP_PKEY_ED25519 || id == EVP_PKEY_ED448) ? nullptr : EVP_sha256();
  bool ok =
      EVP_DigestVerifyInit(ctx.get(), nullptr, md, nullptr, key) == 1 &&
      EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                       signature.size(), reinterpret_cast<const unsigned char*>(payload.data()),
                       payload.size()) == 1;
  ERR_clear_error();
  return ok;
}

// The payload blob `layer` names, fetched from `repo` and checked against its size and digest.
Result<std::string> FetchPayload(registry::HttpClient& http, registry::Repository& repo,
                                 const Descriptor& layer) {
  const size_t want = static_cast<size_t>(layer.size);
  std::string payload;
  payload.reserve(want);
  RETURN_IF_ERROR(
      repo.GetBlob(http, layer.digest, 0, nullptr, [&](const char* data, size_t n) -> Status {
        if (n > want - payload.size()) {
          return DataLossError("blob is larger than its descriptor's " + std::to_string(want) +
                               " bytes");
        }
        payload.append(data, n);
        return OkStatus();
      }));
  if (payload.size() != want) {
    return DataLossError("blob has " + std::to_string(payload.size()) +
                         " bytes, its descriptor says " + std::to_string(want));
  }
  ASSIGN_OR_RETURN(Digest got, content::DigestOf(layer.digest.algorithm(), payload));
  if (got != layer.digest) return DataLossError("blob content has digest " + got.String());
  return payload;
}

}  // namespace

std::string SigstoreAttachmentTag(const Digest& manifest_digest) {
  return manifest_digest.algorithm() + "-" + manifest_digest.hex() + ".sig";
}

Result<std::vector<SigstoreSignature>> FetchSigstoreSignatures(registry::HttpClient& http,
                                                               registry::Repository& repo,
                                                               const Digest& manifest_digest) {
  const std::string tag = SigstoreAttachmentTag(manifest_digest);
  const std::string where = "signatures of " + manifest_digest.Short() + ": " +
                            TerminalSafe(repo.registry().name() + "/" + repo.path()) + ":" + tag;
  Result<registry::ManifestResponse> got =
      repo.GetManifest(http, tag, std::string(manifest::kOciManifest), kMaxSigstoreManifestBytes);
  if (!got.ok()) {
    if (got.status().code() == StatusCode::kNotFound) return std::vector<SigstoreSignature>{};
    return got.status().WithContext(where);
  }
  if (got->content_type != manifest::kOciManifest) {
    return DataLossError(where + ": attachment is " + Quote(got->content_type) +
                         ", not an OCI image manifest");
  }
  ASSIGN_OR_RETURN(Json doc,
                   manifest::internal::ParseObject(got->body, kMaxSigstoreManifestBytes, where));
  std::string media_type;
  RETURN_IF_ERROR(
      manifest::internal::ReadString(doc, "mediaType", false, "", &media_type).WithContext(where));
  if (!media_type.empty() && media_type != manifest::kOciManifest) {
    return DataLossError(where + ": mediaType is " + Quote(media_type) +
                         ", not an OCI image manifest");
  }
  const Json* layers = Find(doc, "layers");
  if (layers == nullptr || !layers->is_array()) {
    return DataLossError(where + ": layers must be an array");
  }
  if (layers->size() > kMaxSigstoreLayers) {
    return ResourceExhaustedError(where + ": " + std::to_string(layers->size()) +
                                  " layers, more than the " + std::to_string(kMaxSigstoreLayers) +
                                  " read");
  }

  std::vector<SigstoreSignature> out;
  uint64_t total = 0;
  for (size_t i = 0; i < layers->size(); ++i) {
    const std::string name = "layers[" + std::to_string(i) + "]";
    Result<Descriptor> layer = manifest::internal::ParseDescriptor((*layers)[i], name);
    if (!layer.ok()) return layer.status().WithContext(where);
    if (layer->media_type != kSimpleSigningMediaType) continue;  // not a signature
    auto annotation = layer->annotations.find(std::string(kCosignSignatureAnnotation));
    if (annotation == layer->annotations.end()) continue;  // keyless or unsigned: not ours
    if (annotation->second.size() > kMaxSigstoreSignatureBase64Bytes) {
      return ResourceExhaustedError(where + ": " + name + ": signature annotation over " +
                                    std::to_string(kMaxSigstoreSignatureBase64Bytes) + " bytes");
    }
    if (static_cast<uint64_t>(layer->size) > kMaxSigstorePayloadBytes) {
      return ResourceExhaustedError(where + ": " + name + ": payload of " +
                                    std::to_string(layer->size) + " bytes, over " +
                                    std::to_string(kMaxSigstorePayloadBytes));
    }
    total += static_cast<uint64_t>(layer->size);
    if (total > kMaxSigstoreTotalPayloadBytes) {
      return ResourceExhaustedError(where + ": signature payloads over " +
                                    std::to_string(kMaxSigstoreTotalPayloadBytes) +
                                    " bytes in all");
    }
    Result<std::string> payload = FetchPayload(http, repo, *layer);
    if (!payload.ok()) {
      return payload.status().WithContext(where + ": " + name + " " + layer->digest.Short());
    }
    out.push_back({std::move(*payload), std::move(annotation->second)});
  }
  return out;
}

Result<std::string> VerifySigstoreSignature(const SigstoreSignature& sig,
                                            const std::vector<std::string>& public_keys_pem) {
  if (public_keys_pem.empty()) return InvalidArgumentError("no public key to verify with");
  std::vector<Pkey> keys;
  for (size_t i = 0; i < public_keys_pem.size(); ++i) {
    ASSIGN_OR_RETURN(std::vector<Pkey> some, ReadPublicKeys(public_keys_pem[i], i));
    for (Pkey& k : some) keys.push_back(std::move(k));
  }
  if (sig.signature_base64.size() > kMaxSigstoreSignatureBase64Bytes) {
    return PermissionDeniedError("invalid signature: over " +
                                 std::to_string(kMaxSigstoreSignatureBase64Bytes) +
                                 " bytes of base64");
  }
  if (sig.payload.size() > kMaxSigstorePayloadBytes) {
    return PermissionDeniedError("invalid signature: payload over " +
                                 std::to_string(kMaxSigstorePayloadBytes) + " bytes");
  }
  std::string raw;
  if (!Base64Decode(TrimSpace(sig.signature_base64), &raw)) {
    return PermissionDeniedError("invalid signature: not base64");
  }
  if (raw.empty()) return PermissionDeniedError("invalid signature: empty");
  for (const Pkey& k : keys) {
    if (Verifies(k.get(), raw, sig.payload)) return sig.payload;
  }
  return PermissionDeniedError("signature by unknown key");
}

}  // namespace hoist::trust
