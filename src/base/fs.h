// The small file-system interface through which hoist makes every change to the disk, so tests
// can inject faults: a write that fails with ENOSPC, or a "crash" that stops all further changes
// half-way through an operation. In the style of leveldb's Env and umoci's FsEval, it is
// fd-relative: each call names a directory fd and one name inside it (the *at(2) calls), so a
// caller that walked to a directory with O_NOFOLLOW never goes through a path component that
// someone could swap afterwards. `dir_fd` may be AT_FDCWD for a plain path.
//
// Users: the content store (ingest, commit, index), the layer unpacker (staging, record, commit),
// the extractor (every entry it applies: ExtractOptions::fs, which the layer unpacker sets to its
// store's) with its in-root resolver (the directories it creates), and `hoist unpack`, which
// builds DEST beside it (unpack/destination.h). So a fault or crash can be injected at any change
// a pull or an unpack makes, and the tests walk them: base/fs_test.cc, content/store_test.cc,
// unpack/layer_test.cc (ENOSPC at every write, EIO at every call, a crash after every change of a
// layer's extraction and commit) and unpack/destination_test.cc.
//
// Only the write side goes through FileSystem (plus OpenAt, which may also create); reading
// (stat, read, readlink, listing a directory) uses plain system calls. Every descriptor is opened
// with O_CLOEXEC and owned by a UniqueFd. Errors are ErrnoError (ENOSPC → ResourceExhausted)
// naming the call and the name it was given; callers add the context that says where. A failed
// call also leaves errno set to its cause (an injected fault too), for callers that branch on
// it (EEXIST, ENOENT, ENOTSUP...), which Status codes do not tell apart. BootId is here too, so
// that a test can "reboot" (FaultInjectingFileSystem::SetBootId) after a crash.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#include <cstddef>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "base/unique_fd.h"
#include "hoist/status.h"

namespace hoist {

class FileSystem {
 public:
  virtual ~FileSystem() = default;

  // The real file system. Process-wide, never destroyed, thread-safe.
  static FileSystem* Default();

  // ---- names relative to a directory fd ----
  // openat(2); O_CLOEXEC is always added.
  virtual Result<UniqueFd> OpenAt(int dir_fd, const std::string& name, int flags,
                                  mode_t mode = 0) = 0;
  // mkdirat(2): an existing entry is AlreadyExists.
  virtual Status MkdirAt(int dir_fd, const std::string& name, mode_t mode) = 0;
  // mknodat(2): device nodes, FIFOs, overlay whiteouts (S_IFCHR with device 0/0).
  virtual Status MknodAt(int dir_fd, const std::string& name, mode_t mode, dev_t dev) = 0;
  // symlinkat(2): creates `name` in dir_fd pointing at `target` (stored as given).
  virtual Status SymlinkAt(const std::string& target, int dir_fd, const std::string& name) = 0;
  // linkat(2) with flags 0: a hardlink; a symlink `from` is linked itself, never followed.
  virtual Status LinkAt(int from_dir, const std::string& from, int to_dir,
                        const std::string& to) = 0;
  // renameat2(2): `flags` 0 atomically replaces `to`; RENAME_NOREPLACE refuses an existing
  // `to` (AlreadyExists); RENAME_EXCHANGE swaps the two.
  virtual Status RenameAt(int from_dir, const std::string& from, int to_dir, const std::string& to,
                          unsigned flags = 0) = 0;
  // unlinkat(2): `flags` 0 removes a non-directory, AT_REMOVEDIR an empty directory.
  virtual Status UnlinkAt(int dir_fd, const std::string& name, int flags) = 0;
  // fchownat(2); pass AT_SYMLINK_NOFOLLOW to change a symlink itself.
  virtual Status FchownAt(int dir_fd, const std::string& name, uid_t uid, gid_t gid, int flags) = 0;
  // fchmodat2(2) (which, unlike fchmodat, honours AT_SYMLINK_NOFOLLOW). Kernels before 6.6 answer
  // ENOSYS; callers then open the entry and use Fchmod.
  virtual Status FchmodAt(int dir_fd, const std::string& name, mode_t mode, int flags) = 0;
  // utimensat(2) (times[0] atime, times[1] mtime); AT_SYMLINK_NOFOLLOW for symlinks.
  virtual Status UtimensAt(int dir_fd, const std::string& name, const struct timespec times[2],
                           int flags) = 0;

  // ---- open descriptors ----
  // Writes all n bytes (short writes and EINTR are retried) or fails.
  virtual Status Write(int fd, const void* data, size_t n) = 0;
  // Writes all n bytes at `offset` (the file offset is unchanged): with Ftruncate, how sparse
  // files keep their holes.
  virtual Status Pwrite(int fd, const void* data, size_t n, off_t offset) = 0;
  // Copies the n bytes of from_fd at `offset` to to_fd at the same offset, in the kernel
  // (copy_file_range(2); pread+pwrite where it cannot, e.g. across file systems). Neither file
  // offset changes. Data only: a hole of from_fd inside the range is written as zeros.
  virtual Status CopyRange(int from_fd, int to_fd, off_t offset, size_t n) = 0;
  // ioctl FICLONE: to_fd (empty) shares all of from_fd's blocks (a reflink). Fails with errno
  // EOPNOTSUPP, EXDEV or EINVAL where the file systems cannot.
  virtual Status Clone(int from_fd, int to_fd) = 0;
  virtual Status Ftruncate(int fd, off_t length) = 0;
  virtual Status Fsync(int fd) = 0;
  // syncfs(2): everything written on fd's file system (one call instead of an fsync per file).
  virtual Status Syncfs(int fd) = 0;
  virtual Status Fchown(int fd, uid_t uid, gid_t gid) = 0;
  virtual Status Fchmod(int fd, mode_t mode) = 0;
  virtual Status Futimens(int fd, const struct timespec times[2]) = 0;
  virtual Status Fsetxattr(int fd, const std::string& name, const void* value, size_t n,
                           int flags) = 0;
  // A missing attribute is NotFound (ENODATA).
  virtual Status Fremovexattr(int fd, const std::string& name) = 0;

  // ---- the machine ----
  // An id of the running boot (/proc/sys/kernel/random/boot_id, read once): what was written
  // but not synced in one boot may be lost by the next. Empty if it cannot be read.
  virtual std::string BootId();
};

// Creates the directory `name` in dir_fd (an existing directory is fine, and its mode is left as
// it is), fsyncs dir_fd if it was created, and opens it with O_RDONLY|O_DIRECTORY|O_NOFOLLOW: a
// symlink or non-directory in its place is FailedPrecondition. Safe to race.
Result<UniqueFd> MakeDirAt(FileSystem* fs, int dir_fd, const std::string& name, mode_t mode);

// Replaces `name` in dir_fd with `bytes` all at once: writes `tmp_name` there (truncating any
// leftover, never following a symlink), fsyncs, sets `mode`, renames over `name`, fsyncs dir_fd.
// On failure the temporary file is removed and `name` is untouched. The caller makes sure nobody
// else uses `tmp_name` at the same time (e.g. by holding a FileLock). kUnsynced: the same
// without the two fsyncs, for a caller that syncs later or can lose the new file to a crash.
enum class Durability { kSynced, kUnsynced };
Status WriteFileAtomicallyAt(FileSystem* fs, int dir_fd, const std::string& name,
                             const std::string& tmp_name, std::string_view bytes, mode_t mode,
                             Durability durability = Durability::kSynced);

// Removes `name` in dir_fd and, if it is a directory, everything under it, never following a
// symlink (a directory it cannot enter is made 0700 first). A missing `name` is OK.
Status RemoveAllAt(FileSystem* fs, int dir_fd, const std::string& name);

// ---- path helpers, for files outside the store (the user's own configuration) ----

// Creates the directory `path` and any missing parents (each with `mode`, less the umask) and
// fsyncs the parent of each directory it creates. An existing directory is fine; an existing
// non-directory (or a symlink as the last component) is FailedPrecondition. Safe to race.
Status MakeDirs(FileSystem* fs, const std::string& path, mode_t mode);

// Opens the directory `path` (not following a final symlink) and fsyncs it, so renames and
// creations inside it are durable.
Status FsyncDir(FileSystem* fs, const std::string& path);

// WriteFileAtomicallyAt in the parent directory of `path` (which may be reached through
// symlinks, e.g. a linked ~/.config; the file itself never is).
Status WriteFileAtomically(FileSystem* fs, const std::string& path, const std::string& tmp_path,
                           std::string_view bytes, mode_t mode);

// write(2) until all n bytes are written (retrying EINTR and short writes).
Status WriteAll(int fd, const void* data, size_t n);

// Reads a whole regular file (not following a final symlink). A file larger than max_bytes is
// ResourceExhausted; a missing one is NotFound.
enum class Symlinks { kRefuse, kFollow };
// kFollow: for the user's own configuration files, which are often links (dotfiles).
// Opened non-blocking, so a FIFO in the path's place cannot hang the caller.
Result<std::string> ReadFileToString(const std::string& path, size_t max_bytes,
                                     Symlinks symlinks = Symlinks::kRefuse);
// The bytes of the regular file open at `fd`, from offset 0 to its end (read with pread: the
// fd's own offset is untouched, so fds shared between threads or processes are fine). Not a
// regular file: FailedPrecondition; more than max_bytes: ResourceExhausted. `what` names the
// file in messages. ReadFileToString is open + this.
Result<std::string> ReadFdToString(int fd, size_t max_bytes, const std::string& what);

// The directory part of path ("a/b/c" → "a/b", "c" → ".", "/c" → "/").
std::string DirName(const std::string& path);
// The last component of a path ("a/b" → "b", "a/b/" → "b", "b" → "b").
std::string BaseName(const std::string& path);

// The names in the directory open at dir_fd (not "." or ".."), read through a duplicate of
// dir_fd (its own offset is untouched). A read error is an error, not a short list.
Result<std::vector<std::string>> ListDir(int dir_fd);

// An exclusive advisory lock (flock) on a lock file, shared by threads and processes: each
// holder has its own open file description, so two threads of one process exclude each other
// too. Releasing removes the lock file while still holding the lock; acquirers detect a file
// removed under them and retry, so lock files never pile up. Move-only.
class FileLock {
 public:
  FileLock() = default;
  FileLock(FileLock&&) noexcept = default;
  FileLock& operator=(FileLock&& other) noexcept;
  ~FileLock() { Release(); }

  // Blocks until the lock on `name` in dir_fd (AT_FDCWD: a path) is held. The file is created
  // (mode 0600, never through a symlink) if missing. The lock keeps its own duplicate of dir_fd.
  static Result<FileLock> Acquire(FileSystem* fs, int dir_fd, std::string name);
  // Acquire without waiting: a lock that is not held() if another holder has it now.
  static Result<FileLock> TryAcquire(FileSystem* fs, int dir_fd, std::string name);
  // Acquire, but first without waiting: if another holder has the lock now, `on_wait` (when
  // set) is called once, before blocking.
  static Result<FileLock> Acquire(FileSystem* fs, int dir_fd, std::string name,
                                  const std::function<void()>& on_wait);

  bool held() const { return fd_.valid(); }
  // Removes the lock file and drops the lock. Idempotent.
  void Release();

 private:
  static Result<FileLock> Lock(FileSystem* fs, int dir_fd, std::string name, bool wait);
  FileSystem* fs_ = nullptr;
  UniqueFd dir_;  // invalid: AT_FDCWD
  std::string name_;
  UniqueFd fd_;
};

// A FileSystem for tests: forwards to `base` but can fail chosen calls or "crash".
// Thread-safe.
class FaultInjectingFileSystem : public FileSystem {
 public:
  // One kind per system call; the f- and -at forms of one call share a kind (FchmodAt and Fchmod
  // are both kChmod, Write, Pwrite, CopyRange and Clone all kWrite, Fsync and Syncfs both kFsync),
  // and UnlinkAt with AT_REMOVEDIR is kRmdir.
  enum class Op {
    kOpen,
    kMkdir,
    kMknod,
    kSymlink,
    kLink,
    kRename,
    kUnlink,
    kRmdir,
    kChown,
    kChmod,
    kUtimens,
    kWrite,
    kTruncate,
    kFsync,
    kSetxattr,
    kRemovexattr,
  };

  explicit FaultInjectingFileSystem(FileSystem* base = FileSystem::Default()) : base_(base) {}

  // The n-th call of `op` from now (n >= 1) fails with errno `err` without touching the disk.
  void FailNth(Op op, int n, int err);
  // After n more calls (of any kind) have gone through, every later call fails with EIO
  // without touching the disk: what is on disk then is what a crash at that point would leave
  // (file data not yet fsynced aside). Cleanup after the "crash" cannot change the disk either.
  void CrashAfter(int n);
  // True once a call has been refused because of CrashAfter.
  bool crashed() const;
  // Calls of `op` so far, and calls of any kind (injected failures included).
  int calls(Op op) const;
  int total_calls() const;

  // A power loss, for crash tests: whether the file or directory (dev, ino) has changes that
  // a sync has not made durable since, so that a power loss now could lose them. Each call
  // that goes through marks what it changed: the file it wrote, truncated, created or whose
  // metadata it set, and the directories in which it created, linked, renamed or removed an
  // entry. Fsync(fd) makes fd's own file or directory durable; Syncfs(fd) everything on fd's
  // file system. After a "crash" nothing changes any more, so this tells what was durable then.
  bool unsynced(dev_t dev, ino_t ino) const;
  // BootId() from now on (the real one until set): SetBootId with a new id after a crash is a
  // reboot for whatever checks the boot it wrote something in.
  void SetBootId(std::string id);

  Result<UniqueFd> OpenAt(int dir_fd, const std::string& name, int flags, mode_t mode = 0) override;
  Status MkdirAt(int dir_fd, const std::string& name, mode_t mode) override;
  Status MknodAt(int dir_fd, const std::string& name, mode_t mode, dev_t dev) override;
  Status SymlinkAt(const std::string& target, int dir_fd, const std::string& name) override;
  Status LinkAt(int from_dir, const std::string& from, int to_dir, const std::string& to) override;
  Status RenameAt(int from_dir, const std::string& from, int to_dir, const std::string& to,
                  unsigned flags = 0) override;
  Status UnlinkAt(int dir_fd, const std::string& name, int flags) override;
  Status FchownAt(int dir_fd, const std::string& name, uid_t uid, gid_t gid, int flags) override;
  Status FchmodAt(int dir_fd, const std::string& name, mode_t mode, int flags) override;
  Status UtimensAt(int dir_fd, const std::string& name, const struct timespec times[2],
                   int flags) override;
  Status Write(int fd, const void* data, size_t n) override;
  Status Pwrite(int fd, const void* data, size_t n, off_t offset) override;
  Status CopyRange(int from_fd, int to_fd, off_t offset, size_t n) override;
  Status Clone(int from_fd, int to_fd) override;
  Status Ftruncate(int fd, off_t length) override;
  Status Fsync(int fd) override;
  Status Syncfs(int fd) override;
  Status Fchown(int fd, uid_t uid, gid_t gid) override;
  Status Fchmod(int fd, mode_t mode) override;
  Status Futimens(int fd, const struct timespec times[2]) override;
  Status Fsetxattr(int fd, const std::string& name, const void* value, size_t n,
                   int flags) override;
  Status Fremovexattr(int fd, const std::string& name) override;
  std::string BootId() override;

 private:
  // Counts the call; returns the injected error for it, or OK to go ahead.
  Status Check(Op op, std::string_view what);
  // After a call went through: what it changed is not durable (see unsynced()). MarkFd: the
  // file open at fd; MarkAt: `name` in dir_fd itself (never followed); MarkDirOf: the
  // directory holding `name`. Something that cannot be stat'ed (removed) is not marked.
  void MarkFd(int fd);
  void MarkAt(int dir_fd, const std::string& name);
  void MarkDirOf(int dir_fd, const std::string& name);
  void Mark(const struct stat& st);

  FileSystem* const base_;
  mutable std::mutex mu_;
  std::map<Op, int> calls_;                     // guarded by mu_
  std::map<Op, std::map<int, int>> faults_;     // op → call number → errno; guarded by mu_
  int total_ = 0;                               // guarded by mu_
  int crash_at_ = -1;                           // total_ after which everything fails; -1 never
  std::set<std::pair<dev_t, ino_t>> unsynced_;  // see unsynced(); guarded by mu_
  std::optional<std::string> boot_id_;          // see SetBootId(); guarded by mu_
};

}  // namespace hoist
