// Checking a layer directory of the store against the blob it was extracted from.
//
// A layer directory (layers/sha256/<diff-id>/rootfs) must be exactly what the extractor leaves
// when it applies the layer's tar to an empty root in the record's whiteout format. The check
// reads the blob once: it is hashed (its own digest), inflated, hashed again (the diff_id) and
// its tar entries are applied to a model of the tree that follows the extractor's rules
// (extractor.h: a later entry replaces an earlier one, directories merge, names resolve inside
// the root through the layer's own symlinks, hardlinks share the target's inode, whiteouts and
// opaque markers in kOverlay or kOciFiles form, hardlinks into lower layers skipped). The model
// holds names, types, metadata and a sha256 of each regular file's data, never file data, so
// memory grows with the number of entries (capped as for extraction, TarLimits), not with the
// layer's size. Then the directory is walked once, fd-relative and never following a symlink
// (every directory opened O_NOFOLLOW from the rootfs fd), beside the model:
//   - every name of the model is there, with the same type; regular files with the same mode,
//     size and content (each inode read once, hashed while streaming), directories with the
//     mode of their last entry (directories the tar did not list: type only), symlinks with the
//     same target, devices with the same numbers, fifos with the same mode; the owner too when
//     the layer was extracted by root (kOverlay; a kOciFiles layer belongs to the user who
//     extracted it);
//   - names that share an inode in the model share it on disk, and names that do not, do not;
//   - kOverlay: whiteouts are 0/0 character devices, and exactly the directories the model
//     makes opaque carry trusted.overlay.opaque=y; kOciFiles: the .wh. markers are empty files;
//   - every name on disk comes from the model (so files added to the directory are caught).
// Device nodes the extractor may have been refused (mknod EPERM, e.g. root in a user namespace)
// may be missing. Not compared: mtimes, user.* and security.capability xattrs. When not root,
// files and directories whose mode denies their owner reading are compared without their
// content.
#pragma once

#include <cstddef>
#include <cstdint>

#include "content/store.h"
#include "hoist/status.h"
#include "unpack/layer.h"

namespace hoist::unpack {

struct VerifyLayerOptions {
  // Bytes of tar the blob may inflate to (as for extraction: ClientOptions::max_layer_bytes).
  uint64_t max_uncompressed = 64ULL << 30;
  // The largest zstd window a blob may ask for (ClientOptions::max_zstd_window_bytes).
  uint64_t max_zstd_window = kDefaultMaxZstdWindow;
  // Differences listed in the message; the walk stops after this many.
  size_t max_reported = 5;
};

// Checks the committed layer `record` (from ReadLayerRecord) against its blob, record.blob, as
// described above. OK when the directory is what extracting the blob leaves. Otherwise:
//   NotFound      the blob is not in the store ("blob sha256:...: missing: the layer cannot be
//                 checked");
//   DataLoss      the blob does not match its digest, its tar does not match the diff_id or
//                 cannot be read, or the directory differs. Differences are listed by path,
//                 quoted, in the order of the walk (sorted names, depth first), e.g.
//                 `"etc/y": missing; "usr/bin/x": content differs from the layer's blob`,
//                 ending in "; stopped after N" when the walk stopped at max_reported. A
//                 name that cannot be read is a difference too ("open: Permission denied");
//   other codes   the store, the blob or the layer directory itself could not be opened or read.
Status VerifyLayerDir(const content::Store& store, const LayerRecord& record,
                      const VerifyLayerOptions& options = {});

}  // namespace hoist::unpack
