// OCI image layouts as sources and destinations: a directory (oci:DIR[:TAG]) and a layout in a
// tar (oci-archive:FILE[:TAG], FILE "-" for standard input or output).
//
// Reading. index.json (capped at manifest::kMaxManifestBytes) lists the images; an entry is
// chosen by its org.opencontainers.image.ref.name annotation (the TAG), or is the only one. Every
// other file is named by a digest: blobs/<alg>/<hex> with the digest checked (hoist::Digest), so
// no name in the layout ever becomes a path; nothing it says reaches outside it. In a directory
// each component is opened with O_NOFOLLOW relative to the layout's fd (a symlinked blob or
// index.json is refused) and must be a regular file; in an archive, members are found by those
// exact names (TarIndex) and links are refused. What is read is verified by the copy (every
// blob's size and digest, every manifest's digest).
//
// Writing. Blobs are written verified: to a temporary file, renamed to blobs/<alg>/<hex> once
// size and digest matched (a directory), or streamed into the tar and checked at its end (an
// archive, which as a whole is a temporary file renamed into place at Close; with "-" it goes to
// standard output, and a failure leaves a truncated tar there). Commit adds the image's entry to
// index.json, annotated with the name it is given (replacing an entry of that name); an archive
// writes index.json and oci-layout at Close.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "hoist/descriptor.h"
#include "transport/tar_index.h"
#include "transport/transport.h"

namespace hoist::transport {

// A layout to read from: a directory or an archive.
class OciLayoutSource : public ImageSource {
 public:
  // Files of the layout, by their names inside it.
  class Files;
  ~OciLayoutSource() override;

  // The layout directory `dir` (its oci-layout and index.json read; an image is then chosen
  // with Select or SelectEntry before the source is used).
  static Result<std::unique_ptr<OciLayoutSource>> OpenDirectory(const std::string& dir);
  // The layout in `archive`, likewise.
  static Result<std::unique_ptr<OciLayoutSource>> OpenArchive(std::unique_ptr<TarIndex> archive);

  // index.json's entries, in its order.
  const std::vector<Descriptor>& entries() const { return entries_; }
  // Makes the entry named `tag` (its ref.name) the image this source gives; with an empty tag,
  // the only entry. NotFound naming the tag; InvalidArgument when there are several and no tag.
  Status Select(const std::string& tag);
  // Makes entries()[i] the image this source gives.
  void SelectEntry(size_t i) { selected_ = i; }

  Result<ManifestBytes> TopManifest() override;
  Result<ManifestBytes> Manifest(const Digest& digest) override;
  Status Blob(const Descriptor& d, const registry::BlobSink& sink) override;
  // The selected entry's ref.name when it is a full reference (has a '/', ':' or '@'), as
  // hoist save and containerd write it; a bare tag ("v1", as skopeo writes it) is not a name.
  std::vector<std::string> Names() override;

 private:
  explicit OciLayoutSource(std::unique_ptr<Files> files);
  Status ReadIndex();

  std::unique_ptr<Files> files_;
  std::vector<Descriptor> entries_;
  size_t selected_ = 0;
};

// Opens the layout directory `dir` for writing: created if missing, with oci-layout; an existing
// index.json is kept and added to.
Result<std::unique_ptr<ImageDestination>> OpenOciLayoutDestination(const std::string& dir);
// Starts the archive `file` ("-": standard output).
Result<std::unique_ptr<ImageDestination>> OpenOciArchiveDestination(const std::string& file);

// The path of blob `d` inside a layout: blobs/<alg>/<hex>.
std::string LayoutBlobPath(const Digest& d);
// index.json for `entries`.
std::string LayoutIndexJson(const std::vector<Descriptor>& entries);

// Streams blob `d` from `src` through `write` (and `restart` when the source starts again) and
// checks its size and digest at the end (DataLoss on a mismatch). For destinations that keep
// what they are sent.
Status CopyVerified(ImageSource& src, const Descriptor& d, const std::function<Status()>& restart,
                    const std::function<Status(const char*, size_t)>& write);

}  // namespace hoist::transport
