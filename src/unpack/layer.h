// A layer's bytes → files, in one streaming pass.
//
// LayerStream: compressed bytes in (any chunk size) → inflate (gzip/zstd/none, detected from
// the magic bytes) → sha256 of the tar stream (the diff_id) → tar reader → extractor, applied
// under a root directory. Memory stays bounded whatever the layer's size.
//
// LayerUnpacker: one layer of the store. Extracts into layers/staging/<diff-id> under the
// layer's lock and commits by rename to layers/sha256/<diff-id>/ only after Finish() has
// checked the diff_id. Destroyed without Commit, it leaves nothing behind.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "base/fs.h"
#include "base/unique_fd.h"
#include "content/digester.h"
#include "content/layout.h"
#include "hoist/digest.h"
#include "hoist/status.h"
#include "unpack/decompress.h"
#include "unpack/extractor.h"
#include "unpack/tar_reader.h"

namespace hoist::unpack {

struct LayerLimits {
  uint64_t max_uncompressed = 64ULL << 30;  // bytes of tar one layer may inflate to
  ImageBudget* image_budget = nullptr;      // the image-wide cap (not owned); null: none
};

class LayerStream {
 public:
  // root_fd: the directory the layer is applied under (kept open by the caller).
  LayerStream(int root_fd, std::string_view media_type, ExtractOptions options,
              LayerLimits limits = {});
  ~LayerStream();
  LayerStream(const LayerStream&) = delete;
  LayerStream& operator=(const LayerStream&) = delete;

  Status Feed(const char* data, size_t n);
  // Ends the stream (inflate, tar and extractor all finish) and returns the diff_id.
  Result<Digest> Finish();
  const Extractor& extractor() const { return *extractor_; }

 private:
  std::unique_ptr<Extractor> extractor_;
  std::unique_ptr<TarReader> tar_;
  content::Digester diff_digester_;
  std::unique_ptr<Decompressor> decompressor_;
};

// Reads a whole file (a stored blob) and passes it to `sink` in chunks of up to 1 MiB.
Status FeedFile(const std::string& path, const std::function<Status(const char*, size_t)>& sink);

// How whiteouts are kept in the store's per-layer directories: overlayfs's own format when
// running as root (whiteout devices, opaque xattrs), OCI .wh. files otherwise.
WhiteoutMode StoreWhiteoutMode();

class LayerUnpacker {
 public:
  // Takes the layer's lock (waiting for another process extracting it). If the layer is
  // already extracted, already_exists() is true and nothing else needs doing.
  static Result<std::unique_ptr<LayerUnpacker>> Open(const content::Layout& layout,
                                                     FileSystem* fs, const Digest& diff_id,
                                                     std::string_view media_type,
                                                     LayerLimits limits = {});
  ~LayerUnpacker();

  bool already_exists() const { return already_exists_; }
  // Device nodes the layer holds that could not be created (not root), after Finish().
  uint64_t skipped_devices() const { return stream_ ? stream_->extractor().skipped_devices() : 0; }
  // Compressed layer bytes, as they arrive.
  Status Feed(const char* data, size_t n);
  // Ends the stream and checks the diff_id (DataLoss "diff_id mismatch: got X").
  Status Finish();
  // Makes the layer visible: writes layer.json, renames staging into place, fsyncs. Call
  // only after Finish() succeeded (and, in a pull, after the blob itself was committed).
  Status Commit();

 private:
  LayerUnpacker(const content::Layout& layout, FileSystem* fs, Digest diff_id, FileLock lock);
  const content::Layout& layout_;
  FileSystem* fs_;
  Digest diff_id_;
  FileLock lock_;
  bool already_exists_ = false;
  bool finished_ = false;
  bool committed_ = false;
  WhiteoutMode mode_ = WhiteoutMode::kOciFiles;
  UniqueFd rootfs_;
  std::unique_ptr<LayerStream> stream_;
  uint64_t size_ = 0;
};

// True if the layer with this diff_id is extracted in the store in a form this process can
// use: overlay format always; OCI .wh. format only when this process could not write overlay
// format either (not root), so that a root pull redoes layers a non-root pull left.
bool LayerExists(const content::Layout& layout, const Digest& diff_id);

}  // namespace hoist::unpack
