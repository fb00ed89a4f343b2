// containers-policy.json(5): which images need signatures, from which keys, as podman, skopeo
// and CRI-O read it.
//
//   {"default": [{"type": "reject"}],
//    "transports": {"docker": {
//      "127.0.0.1:5000/signed": [{"type": "signedBy", "keyType": "GPGKeys",
//                                 "keyPath": "/etc/pki/signer.gpg"}],
//      "docker.io": [{"type": "insecureAcceptAnything"}]}}}
//
// Only the `default` and `transports.docker` scopes apply to hoist (a pull is always from a
// registry); other transports are read and ignored. The scope for a reference is the most
// specific one present: the full reference (name:tag or name@digest), the repository, each
// parent namespace, host[:port], then "*.domain" wildcards from the narrowest, then the
// transport's "" scope, then `default`.
//
// Anything not understood (an unknown requirement type, keyType, identity rule or field, a
// requirement without keys) makes the whole file an error: a policy is never
// half-applied.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hoist/reference.h"
#include "hoist/status.h"

namespace hoist::trust {

// Files larger than this are refused (ResourceExhausted).
inline constexpr size_t kMaxPolicyBytes = 1 << 20;

// signedIdentity: which docker-reference inside a signature is accepted for the image pulled.
struct SignedIdentity {
  enum class Kind {
    kMatchRepoDigestOrExact,  // the default
    kMatchExact,
    kMatchRepository,
    kExactReference,
    kExactRepository,
    kRemapIdentity,
  };
  Kind kind = Kind::kMatchRepoDigestOrExact;
  std::string reference;      // exactReference: a name with a tag or digest
  std::string repository;     // exactRepository
  std::string prefix;         // remapIdentity
  std::string signed_prefix;  // remapIdentity
};

struct Requirement {
  enum class Type { kInsecureAcceptAnything, kReject, kSignedBy, kSigstoreSigned };
  Type type = Type::kReject;
  // signedBy (GPG keys, binary or armored) and sigstoreSigned (one PEM public key): the files
  // named, read when a pull is evaluated, and the inline keyData, already base64-decoded.
  std::vector<std::string> key_paths;
  std::string key_data;
  SignedIdentity identity;
};

struct Policy {
  std::string path;  // the file it was read from
  std::vector<Requirement> default_requirements;
  // transports.docker, by scope ("" for the transport's default).
  std::map<std::string, std::vector<Requirement>> docker_scopes;
};

// The parsed text of a policy file; `path` is kept for messages. Errors are InvalidArgument
// naming the file and the field.
Result<Policy> ParsePolicy(std::string_view text, const std::string& path);

// The policy in force: `explicit_path` when not empty (it must exist), else
// $HOME/.config/containers/policy.json, else /etc/containers/policy.json. nullopt when neither
// exists: every image is accepted.
Result<std::optional<Policy>> LoadPolicy(const std::string& explicit_path);

// containers/image's names for `ref`: its identity (name:tag, or name@digest when it has a
// digest) and then its namespaces, most specific first.
std::string PolicyIdentity(const Reference& ref);
std::vector<std::string> PolicyNamespaces(const Reference& ref);

struct ScopeMatch {
  std::string scope;  // "docker:SCOPE", `docker:""` or "default"
  const std::vector<Requirement>* requirements = nullptr;
};
// The requirements that apply to `ref`, and the scope they came from.
ScopeMatch RequirementsFor(const Policy& policy, const Reference& ref);

// Whether a signature that claims `signed_reference` (its docker-reference, untrusted text) is
// accepted for the image pulled as `intended` under `identity`.
bool IdentityMatches(const SignedIdentity& identity, const Reference& intended,
                     std::string_view signed_reference);

// One line per requirement for `hoist trust show`: "signedBy GPGKeys keyPath=/k.gpg
// signedIdentity=matchRepoDigestOrExact".
std::string DescribeRequirement(const Requirement& requirement);
std::string_view RequirementName(Requirement::Type type);

}  // namespace hoist::trust
