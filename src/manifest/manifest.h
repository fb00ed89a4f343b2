// Decoding and validation of the manifest documents a registry serves: OCI image manifests
// and indexes, Docker v2 manifests and manifest lists, and Docker schema1 manifests (signed or
// not). Everything here is pure: bytes in, values or errors out; nothing is fetched.
//
// Every document is hostile until validated: sizes are capped, types are checked before any
// value is read, and a document whose declared type disagrees with its shape is refused.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "hoist/descriptor.h"
#include "hoist/digest.h"
#include "hoist/status.h"

namespace hoist::manifest {

// No manifest, index or config larger than this is read.
constexpr size_t kMaxManifestBytes = 4 << 20;  // 4 MiB

enum class Kind { kImageManifest, kIndex, kSchema1 };

// An OCI image manifest or a Docker v2 manifest.
struct ImageManifest {
  std::string media_type;
  Descriptor config;
  std::vector<Descriptor> layers;  // base layer first; each a known layer media type
  std::map<std::string, std::string> annotations;
};

// An OCI index or a Docker manifest list.
struct Index {
  std::string media_type;
  std::vector<Descriptor> manifests;
};

// A Docker schema1 manifest, validated and with its layer list repaired as docker does.
struct Schema1 {
  std::string name, tag, architecture;
  std::vector<Digest> layers;                 // base layer first, adjacent repeats collapsed
  std::vector<std::string> v1_compatibility;  // same order and length as layers
  bool signed_ = false;                       // the document carries JWS signatures
};

// A decoded manifest document; only the member named by `kind` is filled in.
struct Decoded {
  Kind kind = Kind::kImageManifest;
  std::string media_type;  // one of the six manifest types of media_types.h
  ImageManifest manifest;
  Index index;
  Schema1 schema1;
};

// Decodes and validates a manifest document.
//
// content_type is the HTTP Content-Type: it may be empty, may carry parameters
// ("; charset=utf-8"), and may be generic ("application/json", "text/plain",
// "application/octet-stream"). The media type is decided by the document's own `mediaType`
// when present, else by a concrete content type, else by shape (schemaVersion 1 → schema1;
// `manifests` → OCI index; `config`/`layers` → OCI manifest). A concrete content type that
// differs from the document's mediaType is DataLoss.
//
// Errors: over kMaxManifestBytes → ResourceExhausted; anything malformed, inconsistent or of an
// unsupported type → DataLoss, with a message naming the offending field.
Result<Decoded> Decode(std::string_view content_type, std::string_view bytes);

// The blobs or manifests the document points to, in order: for an image manifest its config
// then its layers; for an index its manifests; for schema1 its layers, base first, as
// descriptors of media type kDockerLayer with size -1 (unknown).
std::vector<Descriptor> Children(const Decoded& d);

// The bytes whose digest identifies the manifest: `bytes` itself, except for signed schema1,
// where it is the JWS payload (libtrust's rule: the bytes up to the first signature's
// protected `formatLength`, followed by its base64url-decoded `formatTail`). `bytes` must be
// the document `d` was decoded from. Errors are DataLoss.
Result<std::string> CanonicalBytes(const Decoded& d, std::string_view bytes);

}  // namespace hoist::manifest
