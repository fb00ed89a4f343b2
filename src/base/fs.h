// The small file-system interface through which the store (and later the extractor) makes
// every change to the disk, so tests can inject faults: a write that fails with ENOSPC, or a
// "crash" that stops all further changes half-way through an operation.
//
// Only the write side goes through FileSystem; reading (stat, read) uses plain system calls.
// Every descriptor is opened with O_CLOEXEC and owned by a UniqueFd.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

#include "base/unique_fd.h"
#include "hoist/status.h"

namespace hoist {

class FileSystem {
 public:
  virtual ~FileSystem() = default;

  // The real file system. Process-wide, never destroyed, thread-safe.
  static FileSystem* Default();

  // open(2); O_CLOEXEC is always added. Errors are ErrnoError naming the path.
  virtual Result<UniqueFd> Open(const std::string& path, int flags, mode_t mode = 0) = 0;
  // Writes all n bytes (short writes and EINTR are retried) or fails.
  virtual Status Write(const UniqueFd& fd, const void* data, size_t n) = 0;
  virtual Status Fsync(const UniqueFd& fd) = 0;
  virtual Status Fchmod(const UniqueFd& fd, mode_t mode) = 0;
  // rename(2): atomically replaces `to`.
  virtual Status Rename(const std::string& from, const std::string& to) = 0;
  virtual Status Unlink(const std::string& path) = 0;
  // mkdir(2): an existing entry is AlreadyExists.
  virtual Status Mkdir(const std::string& path, mode_t mode) = 0;
  virtual Status Rmdir(const std::string& path) = 0;
};

// Creates the directory `path` and any missing parents (each with `mode`, less the umask) and
// fsyncs the parent of each directory it creates. An existing directory is fine; an existing
// non-directory (or a symlink as the last component) is FailedPrecondition. Safe to race.
Status MakeDirs(FileSystem* fs, const std::string& path, mode_t mode);

// Opens the directory `path` (not following a final symlink) and fsyncs it, so renames and
// creations inside it are durable.
Status FsyncDir(FileSystem* fs, const std::string& path);

// Replaces `path` with `bytes` all at once: writes `tmp_path` (truncating any leftover),
// fsyncs, sets `mode`, renames over `path`, fsyncs the parent directory. On failure the
// temporary file is removed and `path` is untouched. The caller makes sure nobody else uses
// `tmp_path` at the same time (e.g. by holding a FileLock).
Status WriteFileAtomically(FileSystem* fs, const std::string& path, const std::string& tmp_path,
                           std::string_view bytes, mode_t mode);

// Reads a whole regular file (not following a final symlink). A file larger than max_bytes is
// ResourceExhausted; a missing one is NotFound.
// write(2) until all n bytes are written (retrying EINTR and short writes).
Status WriteAll(int fd, const void* data, size_t n);

enum class Symlinks { kRefuse, kFollow };
// kFollow: for the user's own configuration files, which are often links (dotfiles).
// Opened non-blocking, so a FIFO in the path's place cannot hang the caller.
Result<std::string> ReadFileToString(const std::string& path, size_t max_bytes,
                                     Symlinks symlinks = Symlinks::kRefuse);

// The directory part of path ("a/b/c" → "a/b", "c" → ".", "/c" → "/").
std::string DirName(const std::string& path);

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

  // Blocks until the lock on `path` is held. The file is created (mode 0644) if missing.
  static Result<FileLock> Acquire(FileSystem* fs, std::string path);

  bool held() const { return fd_.valid(); }
  // Removes the lock file and drops the lock. Idempotent.
  void Release();

 private:
  FileSystem* fs_ = nullptr;
  std::string path_;
  UniqueFd fd_;
};

// A FileSystem for tests: forwards to `base` but can fail chosen calls or "crash".
// Thread-safe.
class FaultInjectingFileSystem : public FileSystem {
 public:
  enum class Op { kOpen, kWrite, kFsync, kFchmod, kRename, kUnlink, kMkdir, kRmdir };

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

  Result<UniqueFd> Open(const std::string& path, int flags, mode_t mode = 0) override;
  Status Write(const UniqueFd& fd, const void* data, size_t n) override;
  Status Fsync(const UniqueFd& fd) override;
  Status Fchmod(const UniqueFd& fd, mode_t mode) override;
  Status Rename(const std::string& from, const std::string& to) override;
  Status Unlink(const std::string& path) override;
  Status Mkdir(const std::string& path, mode_t mode) override;
  Status Rmdir(const std::string& path) override;

 private:
  // Counts the call; returns the injected error for it, or OK to go ahead.
  Status Check(Op op, std::string_view what);

  FileSystem* const base_;
  mutable std::mutex mu_;
  std::map<Op, int> calls_;                  // guarded by mu_
  std::map<Op, std::map<int, int>> faults_;  // op → call number → errno; guarded by mu_
  int total_ = 0;                            // guarded by mu_
  int crash_at_ = -1;                        // total_ after which everything fails; -1 never
};

}  // namespace hoist
