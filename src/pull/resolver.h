// The resolve stage of a pull: what a reference names, as a Descriptor, and the image manifest
// it leads to for a platform. The only place where a registry's word about a tag is taken;
// everything after is addressed by digest and checked against it. Manifests are read from the
// store, or fetched (through the registry::Fetcher: retries), verified against their digest
// and stored before they are used.
#pragma once

#include <optional>
#include <string>

#include "content/store.h"
#include "hoist/descriptor.h"
#include "hoist/reference.h"
#include "manifest/manifest.h"
#include "registry/fetcher.h"
#include "registry/http.h"
#include "registry/registry.h"

namespace hoist::pull {

// A manifest as a registry sent it, checked.
struct VerifiedManifest {
  manifest::Decoded decoded;
  std::string canonical;  // the bytes its digest is of (signed schema1: without signatures)
  Digest digest;          // of `canonical`, in want's algorithm (sha256 without one)
};

// Decodes `m` and checks the digest of its canonical bytes against `want` (when given) and
// against the digest the registry claims (Docker-Content-Digest, when it sends a valid one).
// DataLoss on a mismatch; the decoder's errors as they are. Every manifest hoist takes from a
// registry passes here.
Result<VerifiedManifest> VerifyManifest(const registry::ManifestResponse& m,
                                        const std::optional<Digest>& want);

// An image manifest and how it was reached.
struct ResolvedImage {
  Digest top;                 // what the reference names: an index, or the manifest itself
  Descriptor manifest;        // the image manifest (platform: the index entry's, when chosen there)
  manifest::Decoded decoded;  // its document, decoded (an image manifest or schema1)
};

class Resolver {
 public:
  // `notice` (may be empty) gets one line per retry. All must outlive the Resolver.
  Resolver(content::Store& store, registry::Repository& repo, registry::Fetcher& fetcher,
           registry::RetryNotice notice)
      : store_(store), repo_(repo), fetcher_(fetcher), notice_(std::move(notice)) {}

  // The digest `ref` names, with the media type and size the registry gave for it (a
  // reference by digest makes no request: media type empty, size -1). One HEAD answers that
  // (and is the only request when the image is here already); a registry that sends no
  // Docker-Content-Digest gets a GET by tag: hoist then computes the digest from the document
  // (or checks the one the GET claims against it), and stores the document at once.
  Result<Descriptor> Resolve(registry::HttpClient& http, const Reference& ref);

  // The image manifest `top` leads to: `top` itself, or the entry for `platform` of the index
  // it is (an index inside an index is refused).
  Result<ResolvedImage> ImageManifest(registry::HttpClient& http, const Digest& top,
                                      const Platform& platform);

  // True once a manifest was fetched rather than found in the store.
  bool fetched() const { return fetched_; }

 private:
  // The manifest with this digest, decoded; *bytes: the document as stored.
  Result<manifest::Decoded> Manifest(registry::HttpClient& http, const Digest& digest,
                                     std::string* bytes);

  content::Store& store_;
  registry::Repository& repo_;
  registry::Fetcher& fetcher_;
  const registry::RetryNotice notice_;
  bool fetched_ = false;
};

}  // namespace hoist::pull
