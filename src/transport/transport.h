// Transports: where images are read from and written to, in skopeo's spelling, and the one copy
// algorithm between any two of them (load, save, push, copy and, in time, pull).
//
//   docker://REF               a registry (REF as `hoist pull` takes it)
//   oci:DIR[:TAG]              an OCI image layout directory
//   oci-archive:FILE[:TAG]     an OCI image layout in a tar (FILE "-": stdin/stdout)
//   docker-archive:FILE[:REF]  a `docker save` tarball (FILE "-": stdin/stdout)
//   hoist:REF                  the local store (a bare REF in `hoist push`/`save`)
//
// Every byte that crosses is verified on the way: a destination makes a blob visible only after
// its size and digest matched, and a manifest only after its digest did. Nothing a source says
// (an archive's paths, a registry's answers) is trusted before that.
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hoist/descriptor.h"
#include "hoist/progress.h"
#include "hoist/status.h"
#include "manifest/manifest.h"
#include "registry/fetcher.h"  // BlobSink

namespace hoist::transport {

struct Location {
  enum class Kind { kRegistry, kOciDir, kOciArchive, kDockerArchive, kStore };
  Kind kind = Kind::kStore;
  std::string path;  // DIR or FILE ("-" for stdin/stdout); empty for kRegistry and kStore
  std::string ref;   // the image reference or tag; may be empty for archives and layouts
};
// Parses "docker://REF", "oci:DIR:TAG", ...; a text without a known transport prefix is the
// store's REF. InvalidArgument naming the text otherwise.
Result<Location> ParseLocation(std::string_view text);
std::string ToString(const Location& l);

// A manifest or index document as a source holds it.
struct ManifestBytes {
  std::string media_type;
  std::string bytes;
  Digest digest;  // of `bytes`, computed by whoever read them
};

class ImageSource {
 public:
  virtual ~ImageSource() = default;
  // The document the location names: an index or an image manifest.
  virtual Result<ManifestBytes> TopManifest() = 0;
  // A manifest by digest (a child of an index). The caller verifies its digest.
  virtual Result<ManifestBytes> Manifest(const Digest& digest) = 0;
  // Streams the bytes of blob `d` into `sink`, from sink.held on where the source can start
  // there (else it calls sink.restart() and sends everything). The caller verifies size and
  // digest; an error from the sink ends the call with it.
  virtual Status Blob(const Descriptor& d, const registry::BlobSink& sink) = 0;
  // Names the source gives the image (docker-archive RepoTags, the OCI ref.name annotation),
  // for a destination given none.
  virtual std::vector<std::string> Names() { return {}; }
};

// A blob to put, with what a destination may want besides: the layer's diff_id (the store
// extracts a layer in the same pass).
struct BlobInfo {
  Descriptor blob;
  std::optional<Digest> diff_id;
};

class ImageDestination {
 public:
  virtual ~ImageDestination() = default;
  // True when the destination has the blob already, or made it available without a transfer
  // (a registry's cross-repository mount): the copy skips it.
  virtual Result<bool> Reuse(const BlobInfo& b) = 0;
  // Puts blob `b`, reading its bytes from `src` (src.Blob, more than once if the destination
  // must start again). Visible at the destination only once size and digest matched.
  virtual Status PutBlob(const BlobInfo& b, ImageSource& src) = 0;
  // Puts a manifest: each image manifest after its blobs, an index after its manifests. The
  // bytes are kept as they are (the digest does not change).
  virtual Status PutManifest(const ManifestBytes& m) = 0;
  // Names the image whose top document is `top` (`names`: the destination's reference, else
  // the source's Names()): the last step of one image's copy.
  virtual Status Commit(const ManifestBytes& top, const std::vector<std::string>& names) = 0;
  // After the last image: an archive writes its index and ends the tar.
  virtual Status Close() { return OkStatus(); }
};

struct CopyOptions {
  bool all_platforms = false;  // an index: every platform, else only `platform`'s manifest
  std::string platform;        // "os/arch[/variant]"; empty: the host's
  int jobs = 4;                // blobs copied at once
  ProgressCallback progress;
  const std::atomic<bool>* cancel = nullptr;
};

// Copies the image `src` names to `dst`, and returns the top document committed. An index is
// copied whole with options.all_platforms (every manifest, then the index itself, committed);
// otherwise only the manifest for options.platform is copied and committed. For each image
// manifest: the config first (read and verified here: its diff_ids go with the layers), then
// the layers the destination cannot reuse, in parallel, then the manifest. Every manifest is
// verified against the digest it was asked by. The first error ends it (Copy wraps it with the
// blob or manifest concerned).
Result<ManifestBytes> Copy(ImageSource& src, ImageDestination& dst,
                           const std::vector<std::string>& names, const CopyOptions& options);

// `bytes` as a ManifestBytes: its digest computed (sha256), its media type `media_type` or, when
// that is empty or generic, the type the document declares (manifest::Decode).
Result<ManifestBytes> MakeManifestBytes(std::string bytes, std::string_view media_type);

}  // namespace hoist::transport
