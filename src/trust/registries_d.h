// registries.d: where the signatures of a registry's images are published, as
// containers-registries.d(5) describes and skopeo and podman read it.
//
//   default-docker:
//     lookaside: file:///var/lib/containers/sigstore
//   docker:
//     127.0.0.1:5000/signed:
//       lookaside: http://127.0.0.1:8080/sigs
//       use-sigstore-attachments: true
//
// Every *.yaml file of the directory is read; a namespace given in two files is an error. For
// an image the most specific `docker:` namespace that sets a key wins (the same order as the
// policy's scopes: name:tag or name@digest, repository, parent namespaces, host, wildcard
// domains), then `default-docker`. `sigstore` is the older name of `lookaside`;
// `lookaside-staging` and `sigstore-staging` are where signatures are written and are ignored
// by a pull. Unknown keys are ignored.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "hoist/reference.h"
#include "hoist/status.h"

namespace hoist::trust {

inline constexpr size_t kMaxRegistriesDFileBytes = 1 << 20;
inline constexpr size_t kMaxRegistriesDFiles = 256;

struct SignatureStorage {
  std::string lookaside;  // base URL ("" when none)
  std::optional<bool> use_sigstore_attachments;
};

// Where the signatures of one image come from, and which file and namespace said so.
struct SignatureSources {
  std::string lookaside;       // base URL; the built-in default when nothing is configured
  std::string lookaside_from;  // `FILE: docker "NS"`, `FILE: default-docker`, or "built-in default"
  bool use_sigstore_attachments = false;
  std::string attachments_from;  // as lookaside_from, "" when not set anywhere
};

class RegistriesD {
 public:
  // `dir` when not empty (it must exist), else ~/.config/containers/registries.d when it
  // exists, else /etc/containers/registries.d (a missing system directory is empty).
  static Result<RegistriesD> Load(const std::string& dir);
  // One YAML document, as the file `name` of the directory. For tests and Load.
  Status AddFile(const std::string& name, const std::string& text);

  SignatureSources For(const Reference& ref) const;
  const std::string& dir() const { return dir_; }

 private:
  struct Entry {
    SignatureStorage storage;
    std::string from;
  };
  std::string dir_;
  std::optional<Entry> default_docker_;
  std::map<std::string, Entry> docker_;
};

// The lookaside URL of signature number `index` (1-based) of the manifest `digest` of `ref`:
// BASE/PATH@ALG=HEX/signature-INDEX, PATH being the repository without its host.
std::string LookasideUrl(const std::string& base, const Reference& ref, const Digest& digest,
                         int index);

}  // namespace hoist::trust
