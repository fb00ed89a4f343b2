// Every on-disk name of the store. Nobody else joins store paths: ask the Layout.
//
// STORE/
//   oci-layout                    {"imageLayoutVersion":"1.0.0"}
//   index.json                    OCI image index: one entry per tagged image
//                                 (annotation org.opencontainers.image.ref.name = full reference)
//   blobs/<alg>/<hex>             verified, read-only blobs (manifests, configs, layers)
//   ingest/<alg>-<hex>/           partial downloads: data (+ later: recorded offset); resumable
//   layers/sha256/<diff-id-hex>/  one extracted layer each, committed by rename:
//     rootfs/                       the layer's files (an overlayfs lowerdir when root)
//     layer.json                    {"diffID", "blob", "files", "size", "whiteouts", ...}:
//                                   the layer record, written by the commit; a directory
//                                   without a matching one is not a layer (see layer.h);
//                                   "syncPendingBoot": not synced yet, a layer in that boot only
//   layers/staging/<alg>-<hex>/   a layer being extracted (same shape), under its layer lock
//   layers/empty/                 an empty directory: the bottom lowerdir of a one-layer mount
//   mounts/<id>/                  one mount hoist made (<id>: a hash of the target's path):
//     mount.json                    {"target", "device", "inode"}: what `hoist umount` may undo
//     upper/ work/                  overlayfs upper and work dirs of `hoist mount --rw`
//   locks/                        advisory file locks shared by all hoist processes:
//                                 <alg>-<hex>.lock (one blob's writer), layer-<alg>-<hex>.lock
//                                 (one layer's extraction), index.lock (index.json, oci-layout),
//                                 gc.lock (shared by every pull from before its first blob until
//                                 its record is written, exclusive for gc and verify --repair;
//                                 never removed, see Store::LockAgainstGc)
//
// Temporary files: index.json.tmp and oci-layout.tmp, written only under locks/index.lock and
// renamed over their target.
//
// Modes: STORE/ and every directory hoist makes in it are 0700, its files 0600 (blobs and
// layer.json 0444); who may use the store, and what is refused, is in store.h.
//
// Digests come from Digest::Parse (algorithm sha256/sha512, lowercase hex of fixed length),
// so they are always safe single path components. The store is an OCI image layout: skopeo
// (oci:STORE:REF) and umoci read it as is.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "hoist/digest.h"

namespace hoist::content {

class Layout {
 public:
  // `root` is used as given (relative or absolute); a trailing '/' is dropped.
  explicit Layout(std::string root);

  const std::string& root() const { return root_; }
  // `path`, one of this Layout's paths, relative to the root ("STORE/blobs/sha256" →
  // "blobs/sha256"): the name a directory fd walk from the root uses.
  std::string Relative(const std::string& path) const;

  std::string OciLayoutFile() const;      // STORE/oci-layout
  std::string OciLayoutTempFile() const;  // STORE/oci-layout.tmp
  std::string IndexFile() const;          // STORE/index.json
  std::string IndexTempFile() const;      // STORE/index.json.tmp

  std::string BlobsDir() const;                                      // STORE/blobs
  std::string BlobAlgorithmDir(const std::string& algorithm) const;  // STORE/blobs/<alg>
  std::string BlobFile(const Digest& d) const;                       // STORE/blobs/<alg>/<hex>

  // "<alg>-<hex>": how the entries of ingest/, layers/staging/ and locks/ name a digest.
  static std::string KeyOf(const Digest& d);
  // The digest such a name stands for; nullopt for any other name (not hoist's).
  static std::optional<Digest> DigestOfKey(std::string_view key);

  std::string IngestDir() const;                      // STORE/ingest
  std::string IngestEntryDir(const Digest& d) const;  // STORE/ingest/<alg>-<hex>
  std::string IngestDataFile(const Digest& d) const;  // STORE/ingest/<alg>-<hex>/data

  std::string LayersDir() const;                                      // STORE/layers
  std::string LayerDir(const Digest& diff_id) const;                  // STORE/layers/<alg>/<hex>
  std::string LayerAlgorithmDir(const std::string& algorithm) const;  // STORE/layers/<alg>
  std::string LayerRootfs(const Digest& diff_id) const;      // STORE/layers/<alg>/<hex>/rootfs
  std::string LayerInfoFile(const Digest& diff_id) const;    // STORE/layers/<alg>/<hex>/layer.json
  std::string LayersStagingDir() const;                      // STORE/layers/staging
  std::string LayerStagingDir(const Digest& diff_id) const;  // STORE/layers/staging/<alg>-<hex>
  std::string EmptyLayerDir() const;                         // STORE/layers/empty
  std::string MountsDir() const;                             // STORE/mounts
  std::string MountDir(const std::string& id) const;         // STORE/mounts/<id>
  std::string MountRecordFile(const std::string& id) const;  // STORE/mounts/<id>/mount.json

  std::string LocksDir() const;                            // STORE/locks
  std::string BlobLockFile(const Digest& d) const;         // STORE/locks/<alg>-<hex>.lock
  std::string IndexLockFile() const;                       // STORE/locks/index.lock
  std::string LayerLockFile(const Digest& diff_id) const;  // STORE/locks/layer-<alg>-<hex>.lock
  std::string GcLockFile() const;                          // STORE/locks/gc.lock

 private:
  std::string Join(const std::string& name) const { return root_ + "/" + name; }
  std::string root_;
};

}  // namespace hoist::content
