#include "trust/evaluate.h"

#include <optional>

#include "base/status_macros.h"
#include "base/strings.h"
#include "config/user_files.h"
#include "trust/gpg.h"
#include "trust/lookaside.h"
#include "trust/payload.h"

namespace hoist::trust {

namespace {

constexpr size_t kMaxKeyFileBytes = 1 << 20;

Result<std::vector<std::string>> KeysOf(const Requirement& r) {
  std::vector<std::string> keys;
  for (const auto& path : r.key_paths) {
    auto key = config::ReadUserFile(path, kMaxKeyFileBytes);
    if (!key.ok()) return key.status().WithContext("policy key " + Quote(path));
    keys.push_back(std::move(*key));
  }
  if (!r.key_data.empty()) keys.push_back(r.key_data);
  return keys;
}

// The reason a signature's claims are not for this image, or nullopt when they are. Identity
// first, then the digest, as containers/image checks them.
std::optional<std::string> CheckClaims(const Requirement& r, const Reference& ref,
                                       const Digest& digest, std::string_view manifest,
                                       std::string_view payload, std::string_view type) {
  auto claims = ParseSignedClaims(payload, type);
  if (!claims.ok()) return "invalid signature: " + claims.status().message();
  if (!IdentityMatches(r.identity, ref, claims->docker_reference)) {
    return "identity mismatch: signed for " + Quote(claims->docker_reference);
  }
  if (!MatchesManifest(claims->manifest_digest, digest, manifest)) {
    return "signed for another digest";
  }
  return std::nullopt;
}

// Distinct reasons, in order, joined.
void AddReason(std::vector<std::string>* reasons, std::string reason) {
  for (const auto& r : *reasons) {
    if (r == reason) return;
  }
  reasons->push_back(std::move(reason));
}

std::string Joined(const std::vector<std::string>& reasons) {
  std::string out;
  for (size_t i = 0; i < reasons.size() && i < 4; ++i) out += (i ? "; " : "") + reasons[i];
  if (reasons.size() > 4) out += "; …";
  return out;
}

// OK when one of `signatures` verifies (`verify` gives its payload) and claims this image;
// else PermissionDenied with the distinct reasons, or the first error that is not a verdict.
template <typename Signature, typename Verify>
Status AcceptAny(const std::vector<Signature>& signatures, const Verify& verify,
                 const Requirement& r, const Reference& ref, const Digest& digest,
                 std::string_view manifest, std::string_view type) {
  std::vector<std::string> reasons;
  for (const auto& signature : signatures) {
    Result<std::string> payload = verify(signature);
    if (!payload.ok()) {
      if (payload.status().code() != StatusCode::kPermissionDenied) return payload.status();
      AddReason(&reasons, payload.status().message());
      continue;
    }
    auto why = CheckClaims(r, ref, digest, manifest, *payload, type);
    if (!why) return OkStatus();
    AddReason(&reasons, *why);
  }
  return PermissionDeniedError(Joined(reasons));
}

// OK, PermissionDenied(reason) or another error.
Status CheckSignedBy(const Requirement& r, const Reference& ref, const Digest& digest,
                     std::string_view manifest, SignatureSource& source) {
  ASSIGN_OR_RETURN(std::vector<std::string> signatures, source.SimpleSignatures(digest));
  if (signatures.empty()) return PermissionDeniedError("no signature");
  ASSIGN_OR_RETURN(std::vector<std::string> keys, KeysOf(r));
  ASSIGN_OR_RETURN(std::unique_ptr<GpgVerifier> gpg, GpgVerifier::Create(keys));
  auto verify = [&](const std::string& signature) -> Result<std::string> {
    if (signature.size() > kMaxSignatureBytes) {
      return PermissionDeniedError("invalid signature: larger than 4 MiB");
    }
    return gpg->Verify(signature);
  };
  return AcceptAny(signatures, verify, r, ref, digest, manifest, kSimpleSigningType);
}

Status CheckSigstoreSigned(const Requirement& r, const Reference& ref, const Digest& digest,
                           std::string_view manifest, SignatureSource& source) {
  ASSIGN_OR_RETURN(std::vector<SigstoreSignature> signatures, source.SigstoreSignatures(digest));
  if (signatures.empty()) return PermissionDeniedError("no signature");
  ASSIGN_OR_RETURN(std::vector<std::string> keys, KeysOf(r));
  auto verify = [&](const SigstoreSignature& signature) {
    return VerifySigstoreSignature(signature, keys);
  };
  return AcceptAny(signatures, verify, r, ref, digest, manifest, kCosignType);
}

}  // namespace

bool NeedsSignatures(const Policy& policy, const Reference& ref) {
  for (const auto& r : *RequirementsFor(policy, ref).requirements) {
    if (r.type == Requirement::Type::kSignedBy || r.type == Requirement::Type::kSigstoreSigned) {
      return true;
    }
  }
  return false;
}

Status Evaluate(const Policy& policy, const Reference& ref, const Digest& digest,
                std::string_view manifest, SignatureSource& signatures) {
  ScopeMatch match = RequirementsFor(policy, ref);
  const std::string context = "signature policy for " + Quote(ref.String()) + " (" + match.scope +
                              " in " + Quote(policy.path) + ")";
  for (const auto& r : *match.requirements) {
    Status s;
    switch (r.type) {
      case Requirement::Type::kInsecureAcceptAnything:
        break;
      case Requirement::Type::kReject:
        s = PermissionDeniedError("rejected by policy");
        break;
      case Requirement::Type::kSignedBy:
        s = CheckSignedBy(r, ref, digest, manifest, signatures);
        break;
      case Requirement::Type::kSigstoreSigned:
        s = CheckSigstoreSigned(r, ref, digest, manifest, signatures);
        break;
    }
    if (!s.ok()) {
      return Status(s.code(),
                    context + ": " + std::string(RequirementName(r.type)) + ": " + s.message());
    }
  }
  return OkStatus();
}

}  // namespace hoist::trust
