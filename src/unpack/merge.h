// The flattened root filesystem from the store's per-layer directories (`hoist unpack`), without
// inflating a layer again: the layer trees are merged first (the top layer wins, whiteouts and
// opaque directories hide what lies below), then every surviving entry is written once, files
// in parallel, their data copied in the kernel (FICLONE where the file system has reflinks,
// else copy_file_range; holes of sparse files stay holes).
//
// The result is the tree that applying the layers' tar streams in order (WhiteoutMode::kApply)
// makes: types, modes, owners, allowlisted xattrs, symlink targets, devices, mtimes of
// everything but directories, and hardlinks (two names of one file in a layer stay one file).
// Directories take the metadata of the topmost layer that holds them.
//
// A layer directory does not say everything a tar stream did. A directory the extractor made
// only as the parent of an entry ("implicit": mode 0755 less the umask, the store owner's, dated
// by the extraction) looks like one the layer listed, but applying the layer would have used
// what lies below instead: a lower directory with its metadata, a lower symlink followed to its
// target, a lower file (an error); and a directory holding only whiteouts would not exist at
// all. Where a directory could be implicit (its owner, mode and mtime allow it) and the answer
// would make a difference, the layers are "not mergeable" and the caller applies the tar
// streams instead. Likewise a character device 0/0 that is not exactly what the extractor makes
// for a whiteout, any name starting with ".wh." in an overlay-format layer, sockets, and files
// this process could not read (not root, owner-unreadable modes).
//
// Safety: the layer directories are read with *at() calls that never follow a symlink (each
// directory is reached from the layer's root by O_NOFOLLOW opens or openat2 with
// RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS); every change is made below out_fd through the FileSystem,
// to names that did not exist (O_EXCL, mkdirat, symlinkat, mknodat), in directories reached
// from out_fd by openat2 RESOLVE_IN_ROOT (path.h). No file of the output shares an inode with a
// layer directory.
#pragma once

#include <unistd.h>

#include <span>

#include "base/fs.h"
#include "hoist/status.h"
#include "unpack/extractor.h"

namespace hoist::unpack {

// One layer's directory tree, as the store keeps it (layers/<alg>/<hex>/rootfs).
struct LayerTree {
  int rootfs_fd = -1;  // O_RDONLY|O_DIRECTORY fd of the tree's root; not owned
  WhiteoutMode whiteouts = WhiteoutMode::kOverlay;  // kOverlay or kOciFiles, from its record
  // When extracting that layer began (the rootfs directory's birth time, statx STATX_BTIME);
  // 0: unknown (then every directory of the store owner's could be implicit).
  int64_t extracted_sec = 0;
};

struct MergeOptions {
  FileSystem* fs = FileSystem::Default();  // every change to the output; not owned
  bool preserve_owner = geteuid() == 0;    // chown to the layers' owners
  int threads = 2;                         // writers of files, links and nodes
};

// Writes the merge of `layers` (bottom first) into the empty directory out_fd (any fd of it),
// whose own metadata becomes the merged root's. FailedPrecondition "not mergeable: WHY" when
// the layers cannot be merged exactly (see above): then nothing has been written yet. Any other
// error comes from reading the layers or writing the output, and leaves the output half-made
// (the caller builds it in a staging directory). Reads nothing but the layer trees; the trees
// must not change meanwhile.
Status MergeLayerTrees(std::span<const LayerTree> layers, int out_fd, const MergeOptions& options);

// The birth time of the directory `fd` (seconds), or 0 where the file system does not keep it.
int64_t BirthTime(int fd);

}  // namespace hoist::unpack
