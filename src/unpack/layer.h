// A layer's bytes → files, in one streaming pass.
//
// LayerStream: compressed bytes in (any chunk size) → inflate (gzip/zstd/none, detected from
// the magic bytes) → sha256 of the tar stream (the diff_id) → tar reader → extractor, applied
// under a root directory. Memory stays bounded whatever the layer's size.
//
// LayerUnpacker: one layer of the store. Extracts into layers/staging/<diff-id> under the
// layer's lock and commits by rename to layers/sha256/<diff-id>/ only after Finish() has
// checked the diff_id. Destroyed without Commit, it leaves nothing behind. The extraction and
// the commit go through the store's FileSystem, the commit relative to store directory fds.
//
// The layer record. A layer directory is trusted only because hoist committed it: the commit
// writes layer.json (mode 0444, inside the owner-only store) recording what the directory was
// made from — the diff_id, the blob digest, the number of tar entries, the bytes of file data,
// the whiteout format — and the inode of its rootfs/. ReadLayerRecord checks it with a few
// stats (no tree walk): the layer directory and the record are the running user's and not
// writable by others, the record names this diff_id, and rootfs/ is the very directory that
// was committed. Anything else (a directory from an older hoist, or one that someone put
// there) is not a layer: pull extracts the layer again and mount refuses it.
//
// Durability: one sync per pull, not one per layer. Commit makes a layer visible at once
// without syncing its files; its record then names the boot it was written in
// (syncPendingBoot), and ReadLayerRecord accepts such a layer only in that same boot: a process
// that is killed loses nothing (the page cache keeps it), but after a power loss or a kernel
// crash the layer may have lost bytes, so in another boot it is not a layer (pull extracts it
// again). At the end of a pull, SyncLayers syncs the store's file system once and rewrites the
// record of each layer that was waiting for it without the boot: from then on it is a layer in
// any boot. The rewrite need not be durable itself: losing it costs one extraction.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/byte_pipe.h"
#include "base/fs.h"
#include "base/unique_fd.h"
#include "content/digester.h"
#include "content/layout.h"
#include "content/store.h"
#include "hoist/digest.h"
#include "hoist/status.h"
#include "unpack/decompress.h"
#include "unpack/extractor.h"
#include "unpack/tar_reader.h"

namespace hoist::unpack {

struct LayerLimits {
  uint64_t max_uncompressed = 64ULL << 30;           // bytes of tar one layer may inflate to
  uint64_t max_zstd_window = kDefaultMaxZstdWindow;  // the memory a zstd frame may ask for
  ImageBudget* image_budget = nullptr;               // the image-wide cap (not owned); null: none
};

class LayerStream {
 public:
  // root_fd: the directory the layer is applied under (kept open by the caller). The extractor
  // makes its changes through options.fs.
  LayerStream(int root_fd, std::string_view media_type, ExtractOptions options,
              LayerLimits limits = {});
  ~LayerStream();
  LayerStream(const LayerStream&) = delete;
  LayerStream& operator=(const LayerStream&) = delete;

  Status Feed(const char* data, size_t n);
  // Ends the stream (inflate, tar and extractor all finish) and returns the diff_id.
  Result<Digest> Finish();
  const Extractor& extractor() const { return *extractor_; }
  Extractor& extractor() { return *extractor_; }
  // Tar entries passed to the extractor so far.
  uint64_t entries() const;

 private:
  std::unique_ptr<Extractor> extractor_;
  std::unique_ptr<TarReader> tar_;
  content::Digester diff_digester_;
  std::unique_ptr<Decompressor> decompressor_;
};

// The record of a committed layer (see above).
struct LayerRecord {
  Digest diff_id;
  Digest blob;                                       // the blob it was extracted from
  uint64_t files = 0;                                // tar entries applied
  uint64_t size = 0;                                 // bytes of file data
  WhiteoutMode whiteouts = WhiteoutMode::kOciFiles;  // kOverlay or kOciFiles
  bool lower_hardlinks = false;  // hardlinks files of lower layers (not a whole lowerdir)
  bool synced = true;            // false: trusted only in the boot that wrote it (see above)
  uint64_t rootfs_inode = 0;
};

// The record of the layer diff_id, checked as described above. NotFound if the layer is not
// there; FailedPrecondition (naming the path) if a directory is there that hoist did not commit.
Result<LayerRecord> ReadLayerRecord(const content::Store& store, const Digest& diff_id);

// Makes the committed layers among `diff_ids` that wait for a sync durable (see above): one
// syncfs of the store's file system, then their records are rewritten as synced. Only layers
// committed before the sync are rewritten; a layer whose lock another holder has now is left
// (that holder syncs it). Call after every layer and blob of an image is committed and before
// its image record is written.
Status SyncLayers(const content::Store& store, const std::vector<Digest>& diff_ids);

// Reads a whole file (a stored blob) and passes it to `sink` in chunks of up to 1 MiB.
Status FeedFile(const std::string& path, const std::function<Status(const char*, size_t)>& sink);

// How whiteouts are kept in the store's per-layer directories: overlayfs's own format when
// running as root (whiteout devices, opaque xattrs), OCI .wh. files otherwise.
WhiteoutMode StoreWhiteoutMode();

class LayerUnpacker {
 public:
  // Takes the layer's lock (waiting for another process extracting it; `on_wait`, when set,
  // is called once before that wait). If the layer is already extracted, already_exists() is
  // true and nothing else needs doing. `blob` is the digest of the layer blob, for the record.
  // Disk changes go through store.fs().
  static Result<std::unique_ptr<LayerUnpacker>> Open(
      const content::Store& store, const Digest& diff_id, const Digest& blob,
      std::string_view media_type, LayerLimits limits = {},
      const std::function<void()>& on_wait = nullptr);
  ~LayerUnpacker();

  bool already_exists() const { return already_exists_; }
  // Device nodes the layer holds that could not be created (not root), after Finish().
  uint64_t skipped_devices() const { return stream_ ? stream_->extractor().skipped_devices() : 0; }
  // Compressed layer bytes, as they arrive. They are inflated, hashed and extracted on a
  // thread of the unpacker's own (through a BytePipe of a few MiB at most), so that the
  // caller's thread goes on with the download meanwhile. An extraction error comes back from a
  // later Feed (which then drops its bytes without waiting) and from Finish.
  Status Feed(const char* data, size_t n);
  // Ends the stream (waiting for the extraction to catch up) and checks the diff_id (DataLoss
  // "diff_id mismatch: got X"). Destroying the unpacker instead stops the extraction first.
  Status Finish();
  // Makes the layer visible: writes the record (layer.json) naming this boot, and renames
  // staging into place (the one step that makes it visible); nothing is synced (SyncLayers does
  // that, once for the pull). Where the boot cannot be known, the layer's files are synced
  // first and the record is written as synced. Call only after Finish() succeeded (and, in a
  // pull, after the blob itself was committed). A crash at any point leaves no
  // layers/sha256/<id>, or a complete one with its record, or after a reboot one that
  // ReadLayerRecord refuses.
  Status Commit();

 private:
  LayerUnpacker(const content::Store& store, Digest diff_id, Digest blob, FileLock lock);
  // A full disk (ENOSPC, EDQUOT) during extraction: the message names the staging directory
  // too, so the user learns which filesystem filled up. Other errors are returned as they are.
  Status WhereDiskIsFull(Status s) const;
  const content::Store& store_;
  FileSystem* fs_;
  Digest diff_id_;
  Digest blob_;
  FileLock lock_;
  UniqueFd staging_parent_;  // layers/staging/
  bool already_exists_ = false;
  bool finished_ = false;
  bool committed_ = false;
  WhiteoutMode mode_ = WhiteoutMode::kOciFiles;
  UniqueFd rootfs_;
  std::unique_ptr<LayerStream> stream_;
  std::unique_ptr<BytePipe> pipe_;  // Feed → stream_, on the pipe's thread
  uint64_t size_ = 0;
};

// True if the layer with this diff_id is committed in the store (its record checks out) in a
// form this process can use: overlay format always; OCI .wh. format only when this process
// could not write overlay format either (not root), so that a root pull redoes layers a
// non-root pull left.
bool LayerExists(const content::Store& store, const Digest& diff_id);

}  // namespace hoist::unpack
