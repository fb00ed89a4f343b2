// The extractor: applies a layer's tar entries, one at a time as the tar reader streams them,
// to a root directory — safely. Every entry is hostile. Its name is resolved inside the root
// afresh for each entry (path.h), the last component is handled with *at() calls that never
// follow a symlink, and metadata calls never follow symlinks either, so nothing outside the
// root can be read, written, linked, chmod'ed or removed, whatever symlinks, "..", absolute
// names or hardlinks the archive contains.
//
// The entry rules:
//   - A later entry replaces an earlier one (or one from a lower layer): what was there is
//     removed first (a directory recursively, by fd, never following symlinks), unless both
//     are directories, which merge (content kept, metadata updated).
//   - Regular files stream: created O_EXCL|O_NOFOLLOW, data written as it arrives (holes of
//     sparse files are left unallocated: skipped, then the file is truncated to its size),
//     then owner, mode (after the owner, so setuid/setgid survive), allowed xattrs, mtime.
//   - Directories are kept owner-writable while the layer extracts; their final mode and
//     mtime are applied by Finish(), deepest first. A directory listed again (by this layer or
//     over a lower one) takes the new entry's metadata, xattrs included: allowlisted xattrs
//     the new entry does not carry are removed.
//   - Hardlink targets are resolved inside the root like any name; a missing target or a
//     directory is DataLoss; a symlink target is linked itself.
//   - Symlink targets are data: stored as given, never resolved or followed by the extractor.
//   - Devices are created only when running as root (else skipped and counted), fifos always.
//   - xattrs: user.* and security.capability are applied (to regular files and directories);
//     trusted.* and security.selinux are DataLoss (a hostile image must be visible); any
//     other name is ignored and counted.
//   - Whiteouts (".wh.NAME", and ".wh..wh..opq" for an opaque directory) per WhiteoutMode.
//     They remove only what lower layers hold, whatever the order of the entries within the
//     layer: what this layer itself writes at or below a whited-out name survives. A whiteout
//     name is cleaned lexically first ("a/../.wh.b" whites out "b"), as containerd does.
//     ".wh..wh.*" names other than the opaque marker (old aufs metadata) are ignored.
//   - An entry naming the root itself (".", "/") may only be a directory: its metadata is
//     applied to the root. A name ending in ".." is DataLoss.
//
// Every change to the disk (files and their data, directories, links, nodes, metadata, xattrs,
// removals, and the directories the resolver creates) goes through ExtractOptions::fs, so tests
// can fail any of them or stop all of them ("crash"). Reads (stat, readlink, listing, openat2
// resolution, O_PATH opens) stay plain system calls. File data is written with FileSystem::Write;
// holes are skipped with lseek and the size set with Ftruncate. ENOSPC while writing data is
// ResourceExhausted "no space left on device writing file data" (EDQUOT likewise); any other
// failed call keeps its errno's code, and the message says which step failed.
//
// Errors carry "extract <member name>: " in front. After the first error every call returns
// that error; the root is then left half-extracted (the caller discards its staging dir).
//
// Not thread-safe; one Extractor per layer. Several Extractors may run in parallel on
// different roots (the process umask is never changed).
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "base/fs.h"
#include "base/unique_fd.h"
#include "hoist/status.h"
#include "unpack/path.h"
#include "unpack/tar_entry.h"
#include "unpack/tar_reader.h"

namespace hoist::unpack {

enum class WhiteoutMode {
  // Flattened root filesystem (`hoist unpack`): a whiteout deletes the lower path; an opaque
  // marker removes the directory's content that came from lower layers.
  kApply,
  // One layer's directory for overlayfs (needs root): a whiteout becomes a 0/0 character
  // device at the path; an opaque marker becomes trusted.overlay.opaque=y on the directory.
  // A whiteout of a directory this layer also fills makes that directory opaque instead.
  kOverlay,
  // One layer's directory without privileges: the .wh. files are kept as empty regular files.
  kOciFiles,
};

// The bytes of file data the layers of one image may write together (ClientOptions::
// max_image_bytes), shared by their Extractors. Thread-safe: a pull extracts layers in parallel.
class ImageBudget {
 public:
  explicit ImageBudget(uint64_t max_bytes) : max_bytes_(max_bytes) {}
  // Takes n bytes, or takes nothing and returns ResourceExhausted (naming the cap and its
  // flag) when that would exceed the cap.
  Status Take(uint64_t n);
  // Gives back n bytes taken earlier: the files of an extraction that was thrown away.
  void Give(uint64_t n) { used_ -= n; }
  uint64_t max_bytes() const { return max_bytes_; }
  uint64_t used() const { return used_.load(); }

 private:
  const uint64_t max_bytes_;
  std::atomic<uint64_t> used_{0};
};

struct ExtractOptions {
  WhiteoutMode whiteouts = WhiteoutMode::kApply;
  // Every change the extractor makes to the disk goes through this (not owned; null: the
  // default). The layer unpacker passes its store's, so tests can inject faults and crashes.
  FileSystem* fs = FileSystem::Default();
  // chown to the entry's numeric uid/gid. Off by default unless running as root.
  bool preserve_owner = geteuid() == 0;
  // Cap on the bytes of file data written for one layer (ResourceExhausted beyond). File
  // data is the files' logical size: the holes of sparse files count, although they take no
  // disk space here, since any copy of the file will write them.
  uint64_t max_total_bytes = 64ULL << 30;
  // The image-wide cap, charged with each regular file's size as its entry starts. Not
  // owned; null: none.
  ImageBudget* image_budget = nullptr;
  // How names are resolved inside the root; tests force the user-space walk with kWalk.
  ResolveMethod resolve = ResolveMethod::kAuto;
  // When each layer is extracted into a directory of its own, a hardlink may name a file of a
  // lower layer, which that directory cannot hold. With this set, a hardlink whose target is
  // not in the root is skipped and listed in lower_hardlinks() instead of being DataLoss.
  bool defer_missing_hardlinks = false;
  // Bounds on that list: the number of such hardlinks, and the bytes of their names (path and
  // target) together. Past either, the layer is refused (ResourceExhausted). Real layers have
  // a handful; without a bound, a few crafted entries with megabyte names cost gigabytes.
  uint64_t max_lower_hardlinks = 10'000;
  uint64_t max_lower_hardlink_bytes = 1 << 20;
};

class Extractor : public TarHandler {
 public:
  // root_fd: an open fd (O_PATH is enough) of the existing root directory, which may already
  // hold lower layers (kApply). The Extractor keeps its own duplicate of it.
  Extractor(int root_fd, ExtractOptions options);
  Extractor(const Extractor&) = delete;
  Extractor& operator=(const Extractor&) = delete;
  ~Extractor();

  // The tar reader's callbacks: OnEntry for each header, then OnData for the entry's
  // bytes (regular files; `size` bytes in all, in chunks of any size), then OnEntryEnd.
  Status OnEntry(const TarEntry& e) override;
  Status OnData(const char* data, size_t n) override;
  Status OnHole(uint64_t n) override;  // skipped, never written
  Status OnEntryEnd() override;

  // After the last entry: applies the deferred directory modes and mtimes, deepest first.
  Status Finish();

  // Device entries skipped because devices cannot be created here (not root).
  uint64_t skipped_devices() const { return skipped_devices_; }
  // xattrs not applied: names outside the allowlist, or the file system refused them
  // (ENOTSUP, or EPERM when not root).
  uint64_t skipped_xattrs() const { return skipped_xattrs_; }
  // Bytes of file data written so far (counted against max_total_bytes).
  uint64_t bytes_written() const { return total_bytes_; }
  // Gives back to the image budget (ExtractOptions::image_budget) what this extraction took
  // from it, when what it wrote is thrown away (a layer extracted again from byte zero).
  void ReturnImageBudget();
  // Hardlinks skipped under ExtractOptions::defer_missing_hardlinks: (path, target) as in the
  // archive; bounded by max_lower_hardlinks and max_lower_hardlink_bytes.
  const std::vector<std::pair<std::string, std::string>>& lower_hardlinks() const {
    return lower_hardlinks_;
  }

 private:
  // A directory entry "name" inside the directory (dev, ino): the key of the set of paths
  // this layer wrote. Keys are by real directory inode, so aliases through symlinks match.
  struct DirentKey {
    dev_t dev;
    ino_t ino;
    std::string name;
    bool operator==(const DirentKey&) const = default;
  };
  struct DirentKeyHash {
    size_t operator()(const DirentKey& k) const;
  };
  // An entry's parent directory, resolved inside the root.
  struct Parent {
    UniqueFd fd;  // O_PATH|O_DIRECTORY
    dev_t dev = 0;
    ino_t ino = 0;
  };
  // A directory whose final mode and mtime Finish() applies. It is found again by its
  // member name and only touched if it is still the same inode.
  struct PendingDir {
    std::vector<std::string> components;
    uint32_t mode = 0;
    int64_t mtime_sec = 0;
    int64_t mtime_nsec = 0;
  };

  Status Fail(Status s, const std::string& member);
  // Writes file data to file_ through fs_; ENOSPC and EDQUOT are ResourceExhausted.
  Status WriteData(const char* data, size_t n);
  // Checks n more bytes of the current file against its size and the layer's cap.
  Status CountFileBytes(uint64_t n) const;
  Status ApplyEntry(const TarEntry& e);
  Status CreateEntry(const TarEntry& e, std::span<const std::string> components);
  Status ApplyRootDirectory(const TarEntry& e);
  Status ApplyWhiteout(std::span<const std::string> components);
  Status WhiteoutLower(std::span<const std::string> components);    // kApply
  Status WhiteoutOverlay(std::span<const std::string> components);  // kOverlay
  // kOverlay: a directory replacing a whiteout device of this layer at parent/name, or a
  // missing parent directory created through one, must hide the lower directory.
  bool IsOwnWhiteout(const Parent& parent, const std::string& name) const;
  Status MakeOpaque(int dir_fd);
  // kOverlay: replaces this layer's whiteout devices on the way to `components` with opaque
  // directories (".wh.d" then "d/y": "d" hides the lower "d" and holds "y").
  Status ReplaceWhiteoutsOnPath(std::span<const std::string> components);

  Status CreateDirectory(const Parent& parent, const std::string& name, const TarEntry& e,
                         std::span<const std::string> components);
  Status BeginRegularFile(const Parent& parent, const std::string& name, const TarEntry& e);
  Status EndRegularFile();
  Status CreateSymlink(const Parent& parent, const std::string& name, const TarEntry& e);
  Status CreateHardlink(const Parent& parent, const std::string& name, const TarEntry& e);
  Status CreateNode(const Parent& parent, const std::string& name, const TarEntry& e);

  Result<Parent> ResolveParent(std::span<const std::string> parent_components, bool create);
  // ResolveParent(components, true) for a new entry, kept for the next one: archives list a
  // directory's entries together, so most entries reuse their predecessor's parent instead of
  // resolving it again (openat2, fstat, close). The cache is dropped whenever the extractor
  // removes or replaces anything (ForgetParent), the only way a name it resolved can come to
  // resolve differently: the directory is private to this extraction. The Parent returned
  // stays valid until the next call (ForgetParent only marks the cache stale).
  Result<const Parent*> NewEntryParent(std::span<const std::string> parent_components);
  void ForgetParent() { parent_cache_stale_ = true; }
  // Makes room for a new entry at parent/name: removes what is there, except an existing
  // directory when `keep_directory` (returns true then).
  Result<bool> ClearForNew(int parent_fd, const std::string& name, bool keep_directory);
  // Removes parent/name, recursively if a directory; never follows symlinks. Missing is OK.
  Status RemoveAllAt(int parent_fd, const std::string& name);
  // Removes every child of dir_fd (opened O_RDONLY) that this layer did not write, recursing
  // into directories; a directory is kept if this layer wrote it or anything below it.
  // Returns whether dir_fd is empty afterwards.
  Result<bool> PurgeLower(int dir_fd);
  // Lets the owner write into the directory when not root (a lower layer may have left it
  // 0555). Root needs no such help.
  Status MakeOwnerWritable(int dir_fd);

  Status SetOwner(int fd, const TarEntry& e);
  Status SetOwnerAt(int parent_fd, const std::string& name, const TarEntry& e);
  Status SetXattrs(int fd, const TarEntry& e);
  // For a directory listed again: removes the allowlisted xattrs `e` does not carry.
  Status RemoveOtherXattrs(int fd, const TarEntry& e);
  Status AddLowerHardlink(const TarEntry& e);
  void MarkWritten(const Parent& parent, const std::string& name);
  bool WasWritten(dev_t dev, ino_t ino, const std::string& name) const;

  UniqueFd root_;  // our duplicate of the root fd
  ExtractOptions options_;
  FileSystem* fs_;  // options_.fs, or the default
  bool is_root_;    // geteuid() == 0 at construction: may create devices
  Status status_;   // the first error (or an unusable root); sticky

  // The entry in progress (between OnEntry and OnEntryEnd).
  bool in_entry_ = false;
  TarEntry entry_;             // its header (metadata is applied at OnEntryEnd for files)
  UniqueFd file_;              // the regular file being written, if any
  bool discard_data_ = false;  // data of this entry is not stored (whiteout markers)
  int64_t received_ = 0;       // data bytes received for the entry (holes included)
  bool has_holes_ = false;     // a hole was skipped: the size is set by ftruncate at the end

  uint64_t total_bytes_ = 0;
  uint64_t budget_taken_ = 0;  // bytes taken from options_.image_budget
  uint64_t skipped_devices_ = 0;
  std::vector<std::pair<std::string, std::string>> lower_hardlinks_;
  uint64_t lower_hardlink_bytes_ = 0;  // names in lower_hardlinks_, in bytes
  uint64_t skipped_xattrs_ = 0;
  // Every name this layer created or updated (not whiteouts it applied): whiteouts and opaque
  // markers remove only what is NOT in here, i.e. content of lower layers (kApply), or what
  // stands only for lower content (kOverlay: whiteout devices, implicit parents).
  std::unordered_set<DirentKey, DirentKeyHash> written_;
  // kOverlay: the whiteout devices this layer created.
  std::unordered_set<DirentKey, DirentKeyHash> overlay_whiteouts_;
  // Directories whose final mode/mtime Finish() applies, by (dev, ino).
  std::map<std::pair<dev_t, ino_t>, PendingDir> pending_dirs_;
  // NewEntryParent's cache: the components last resolved and their directory.
  struct CachedParent {
    std::vector<std::string> components;
    Parent parent;
  };
  std::optional<CachedParent> parent_cache_;
  bool parent_cache_stale_ = false;  // not to be reused (see ForgetParent)
};

}  // namespace hoist::unpack
