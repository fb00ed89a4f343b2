#include "base/fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "base/status_macros.h"

// fchmodat2 (Linux 6.6) is the only way to chmod a name without following a symlink and
// without going through /proc; older kernels answer ENOSYS. Older headers lack the number.
#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452
#endif

namespace hoist {
namespace {

// The name an error message gives a call's target.
std::string Named(std::string_view call, const std::string& name) {
  return std::string(call) + " " + name;
}

// The error of the system call that just failed, with errno left as that call set it (FileSystem's
// contract: callers may branch on errno).
Status SysError(std::string_view what) {
  const int err = errno;
  Status s = ErrnoError(err, what);
  errno = err;
  return s;
}

Status Check(int r, std::string_view call, const std::string& name) {
  if (r != 0) return SysError(Named(call, name));
  return OkStatus();
}

class RealFileSystem : public FileSystem {
 private:
  // CopyRange where copy_file_range cannot: pread into a buffer, pwrite it out.
  Status CopyByHand(int from_fd, int to_fd, off_t offset, size_t n) {
    constexpr size_t kChunk = 1 << 20;
    std::unique_ptr<char[]> buf(new char[std::min(n, kChunk)]);
    while (n > 0) {
      ssize_t r = ::pread(from_fd, buf.get(), std::min(n, kChunk), offset);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return SysError("read file data");
      if (r == 0) return DataLossError("copy file data: source ended early");
      RETURN_IF_ERROR(Pwrite(to_fd, buf.get(), static_cast<size_t>(r), offset));
      offset += r;
      n -= static_cast<size_t>(r);
    }
    return OkStatus();
  }

 public:
  Result<UniqueFd> OpenAt(int dir_fd, const std::string& name, int flags, mode_t mode) override {
    int fd;
    do {
      fd = ::openat(dir_fd, name.c_str(), flags | O_CLOEXEC, mode);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) return SysError(Named("open", name));
    return UniqueFd(fd);
  }
  Status MkdirAt(int dir_fd, const std::string& name, mode_t mode) override {
    return Check(::mkdirat(dir_fd, name.c_str(), mode), "mkdir", name);
  }
  Status MknodAt(int dir_fd, const std::string& name, mode_t mode, dev_t dev) override {
    return Check(::mknodat(dir_fd, name.c_str(), mode, dev), "mknod", name);
  }
  Status SymlinkAt(const std::string& target, int dir_fd, const std::string& name) override {
    return Check(::symlinkat(target.c_str(), dir_fd, name.c_str()), "symlink", name);
  }
  Status LinkAt(int from_dir, const std::string& from, int to_dir, const std::string& to) override {
    return Check(::linkat(from_dir, from.c_str(), to_dir, to.c_str(), 0), "link " + from + " to",
                 to);
  }
  Status RenameAt(int from_dir, const std::string& from, int to_dir, const std::string& to,
                  unsigned flags) override {
    return Check(::renameat2(from_dir, from.c_str(), to_dir, to.c_str(), flags),
                 "rename " + from + " to", to);
  }
  Status UnlinkAt(int dir_fd, const std::string& name, int flags) override {
    return Check(::unlinkat(dir_fd, name.c_str(), flags),
                 (flags & AT_REMOVEDIR) ? "rmdir" : "unlink", name);
  }
  Status FchownAt(int dir_fd, const std::string& name, uid_t uid, gid_t gid, int flags) override {
    return Check(::fchownat(dir_fd, name.c_str(), uid, gid, flags), "chown", name);
  }
  Status FchmodAt(int dir_fd, const std::string& name, mode_t mode, int flags) override {
    if (flags == 0) return Check(::fchmodat(dir_fd, name.c_str(), mode, 0), "chmod", name);
    return Check(static_cast<int>(::syscall(SYS_fchmodat2, dir_fd, name.c_str(), mode, flags)),
                 "chmod", name);
  }
  Status UtimensAt(int dir_fd, const std::string& name, const struct timespec times[2],
                   int flags) override {
    return Check(::utimensat(dir_fd, name.c_str(), times, flags), "set times of", name);
  }

  Status Write(int fd, const void* data, size_t n) override { return WriteAll(fd, data, n); }
  Status Pwrite(int fd, const void* data, size_t n, off_t offset) override {
    const char* p = static_cast<const char*>(data);
    while (n > 0) {
      ssize_t w = ::pwrite(fd, p, n, offset);
      if (w < 0) {
        if (errno == EINTR) continue;
        return SysError("write");
      }
      p += w;
      n -= static_cast<size_t>(w);
      offset += w;
    }
    return OkStatus();
  }
  Status CopyRange(int from_fd, int to_fd, off_t offset, size_t n) override {
    off_t in = offset, out = offset;
    while (n > 0) {
      ssize_t c = ::copy_file_range(from_fd, &in, to_fd, &out, n, 0);
      if (c < 0 && errno == EINTR) continue;
      if (c < 0 && (errno == EXDEV || errno == EINVAL || errno == EOPNOTSUPP || errno == ENOSYS)) {
        return CopyByHand(from_fd, to_fd, in, n);
      }
      if (c < 0) return SysError("copy file data");
      if (c == 0) return DataLossError("copy file data: source ended early");
      in += c;
      out += c;
      n -= static_cast<size_t>(c);
    }
    return OkStatus();
  }
  Status Clone(int from_fd, int to_fd) override {
    if (::ioctl(to_fd, FICLONE, from_fd) != 0) return SysError("clone file data");
    return OkStatus();
  }
  Status Ftruncate(int fd, off_t length) override {
    if (::ftruncate(fd, length) != 0) return SysError("truncate");
    return OkStatus();
  }
  Status Fsync(int fd) override {
    if (::fsync(fd) != 0) return SysError("fsync");
    return OkStatus();
  }
  Status Syncfs(int fd) override {
    if (::syncfs(fd) != 0) return SysError("syncfs");
    return OkStatus();
  }
  Status Fchown(int fd, uid_t uid, gid_t gid) override {
    if (::fchown(fd, uid, gid) != 0) return SysError("chown");
    return OkStatus();
  }
  Status Fchmod(int fd, mode_t mode) override {
    if (::fchmod(fd, mode) != 0) return SysError("chmod");
    return OkStatus();
  }
  Status Futimens(int fd, const struct timespec times[2]) override {
    if (::futimens(fd, times) != 0) return SysError("set times");
    return OkStatus();
  }
  Status Fsetxattr(int fd, const std::string& name, const void* value, size_t n,
                   int flags) override {
    if (::fsetxattr(fd, name.c_str(), value, n, flags) != 0) {
      return SysError(Named("set xattr", name));
    }
    return OkStatus();
  }
  Status Fremovexattr(int fd, const std::string& name) override {
    if (::fremovexattr(fd, name.c_str()) != 0) {
      return SysError(Named("remove xattr", name));
    }
    return OkStatus();
  }
};

// Removes what `dir_fd` holds (not dir_fd itself); `depth` bounds the recursion.
Status RemoveChildren(FileSystem* fs, int dir_fd, int depth) {
  if (depth > 4096) return FailedPreconditionError("remove: directories nested too deep");
  ASSIGN_OR_RETURN(std::vector<std::string> names, ListDir(dir_fd));
  for (const std::string& n : names) {
    struct stat st;
    if (::fstatat(dir_fd, n.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) continue;
      return ErrnoError(errno, "stat " + n);
    }
    if (S_ISDIR(st.st_mode)) {
      if ((st.st_mode & S_IRWXU) != S_IRWXU) {
        RETURN_IF_ERROR(fs->FchmodAt(dir_fd, n, 0700, 0));  // a directory: nothing to follow
      }
      ASSIGN_OR_RETURN(UniqueFd child, fs->OpenAt(dir_fd, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
      RETURN_IF_ERROR(RemoveChildren(fs, child.get(), depth + 1).WithContext(n));
      RETURN_IF_ERROR(fs->UnlinkAt(dir_fd, n, AT_REMOVEDIR));
    } else {
      RETURN_IF_ERROR(fs->UnlinkAt(dir_fd, n, 0));
    }
  }
  return OkStatus();
}

// Creates one directory; an existing directory is fine.
Status MakeDir(FileSystem* fs, const std::string& path, mode_t mode) {
  Status s = fs->MkdirAt(AT_FDCWD, path, mode);
  if (s.ok()) return FsyncDir(fs, DirName(path));
  if (s.code() != StatusCode::kAlreadyExists) return s;
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return ErrnoError(errno, "stat " + path);
  if (!S_ISDIR(st.st_mode)) return FailedPreconditionError(path + ": exists, not a directory");
  return OkStatus();
}

}  // namespace

std::string FileSystem::BootId() {
  static const std::string id = [] {
    auto text = ReadFileToString("/proc/sys/kernel/random/boot_id", 64);
    if (!text.ok()) return std::string();
    std::string t = *text;
    while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.pop_back();
    return t;
  }();
  return id;
}

FileSystem* FileSystem::Default() {
  static FileSystem* const fs = new RealFileSystem();
  return fs;
}

std::string DirName(const std::string& path) {
  size_t end = path.find_last_not_of('/');
  if (end == std::string::npos) return path.empty() ? "." : "/";
  size_t slash = path.find_last_of('/', end);
  if (slash == std::string::npos) return ".";
  size_t dir_end = path.find_last_not_of('/', slash);
  if (dir_end == std::string::npos) return "/";
  return path.substr(0, dir_end + 1);
}

std::string BaseName(const std::string& path) {
  size_t end = path.find_last_not_of('/');
  if (end == std::string::npos) return path;
  size_t slash = path.find_last_of('/', end);
  return path.substr(slash == std::string::npos ? 0 : slash + 1,
                     end - (slash == std::string::npos ? 0 : slash + 1) + 1);
}

Result<std::vector<std::string>> ListDir(int dir_fd) {
  int dup_fd = ::fcntl(dir_fd, F_DUPFD_CLOEXEC, 0);
  if (dup_fd < 0) return ErrnoError(errno, "dup");
  struct DirCloser {
    void operator()(DIR* d) const { ::closedir(d); }
  };
  std::unique_ptr<DIR, DirCloser> dir(::fdopendir(dup_fd));
  if (!dir) {
    int err = errno;
    ::close(dup_fd);
    return ErrnoError(err, "opendir");
  }
  ::rewinddir(dir.get());
  std::vector<std::string> names;
  for (;;) {
    errno = 0;
    struct dirent* d = ::readdir(dir.get());
    if (d == nullptr) {
      if (errno != 0) return ErrnoError(errno, "readdir");
      break;
    }
    std::string name = d->d_name;
    if (name != "." && name != "..") names.push_back(std::move(name));
  }
  return names;
}

Status MakeDirs(FileSystem* fs, const std::string& path, mode_t mode) {
  if (path.empty()) return InvalidArgumentError("mkdir: empty path");
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return OkStatus();
    return FailedPreconditionError(path + ": exists, not a directory");
  }
  if (errno != ENOENT) return ErrnoError(errno, "stat " + path);
  std::string parent = DirName(path);
  if (parent != path && parent != "." && parent != "/") {
    // The parent may be a symlink to a directory (stat, not lstat): only the last component
    // of `path` must not be one.
    if (::stat(parent.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      RETURN_IF_ERROR(MakeDirs(fs, parent, mode));
    }
  }
  return MakeDir(fs, path, mode);
}

Status FsyncDir(FileSystem* fs, const std::string& path) {
  ASSIGN_OR_RETURN(UniqueFd fd, fs->OpenAt(AT_FDCWD, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
  return fs->Fsync(fd.get()).WithContext(path);
}

Result<UniqueFd> MakeDirAt(FileSystem* fs, int dir_fd, const std::string& name, mode_t mode) {
  Status s = fs->MkdirAt(dir_fd, name, mode);
  if (s.ok()) {
    RETURN_IF_ERROR(fs->Fsync(dir_fd));
  } else if (s.code() != StatusCode::kAlreadyExists) {
    return s;
  }
  auto fd = fs->OpenAt(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  struct stat st;
  if (!fd.ok() && ::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
      !S_ISDIR(st.st_mode)) {
    return FailedPreconditionError(name + ": exists, not a directory");
  }
  return fd;
}

Status WriteFileAtomicallyAt(FileSystem* fs, int dir_fd, const std::string& name,
                             const std::string& tmp_name, std::string_view bytes, mode_t mode,
                             Durability durability) {
  const bool sync = durability == Durability::kSynced;
  Status s = [&]() -> Status {
    ASSIGN_OR_RETURN(UniqueFd fd,
                     fs->OpenAt(dir_fd, tmp_name, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, mode));
    RETURN_IF_ERROR(fs->Write(fd.get(), bytes.data(), bytes.size()).WithContext(tmp_name));
    RETURN_IF_ERROR(fs->Fchmod(fd.get(), mode).WithContext(tmp_name));
    if (sync) RETURN_IF_ERROR(fs->Fsync(fd.get()).WithContext(tmp_name));
    fd.reset();
    return fs->RenameAt(dir_fd, tmp_name, dir_fd, name);
  }();
  if (!s.ok()) {
    (void)fs->UnlinkAt(dir_fd, tmp_name, 0);
    return s;
  }
  return sync ? fs->Fsync(dir_fd).WithContext(name) : OkStatus();
}

Status WriteFileAtomically(FileSystem* fs, const std::string& path, const std::string& tmp_path,
                           std::string_view bytes, mode_t mode) {
  if (DirName(tmp_path) != DirName(path)) {
    return InvalidArgumentError(tmp_path + ": not in the directory of " + path);
  }
  ASSIGN_OR_RETURN(UniqueFd dir, fs->OpenAt(AT_FDCWD, DirName(path), O_RDONLY | O_DIRECTORY));
  return WriteFileAtomicallyAt(fs, dir.get(), BaseName(path), BaseName(tmp_path), bytes, mode)
      .WithContext(path);
}

Status RemoveAllAt(FileSystem* fs, int dir_fd, const std::string& name) {
  struct stat st;
  if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return OkStatus();
    return ErrnoError(errno, "stat " + name);
  }
  if (!S_ISDIR(st.st_mode)) return fs->UnlinkAt(dir_fd, name, 0);
  if ((st.st_mode & S_IRWXU) != S_IRWXU) RETURN_IF_ERROR(fs->FchmodAt(dir_fd, name, 0700, 0));
  ASSIGN_OR_RETURN(UniqueFd child, fs->OpenAt(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
  RETURN_IF_ERROR(RemoveChildren(fs, child.get(), 0).WithContext(name));
  return fs->UnlinkAt(dir_fd, name, AT_REMOVEDIR);
}

Status WriteAll(int fd, const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return SysError("write");
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return OkStatus();
}

Result<std::string> ReadFileToString(const std::string& path, size_t max_bytes, Symlinks symlinks) {
  const int flags =
      O_RDONLY | O_CLOEXEC | O_NONBLOCK | (symlinks == Symlinks::kRefuse ? O_NOFOLLOW : 0);
  int raw;
  do {
    raw = ::open(path.c_str(), flags);
  } while (raw < 0 && errno == EINTR);
  if (raw < 0) return ErrnoError(errno, "open " + path);
  UniqueFd fd(raw);
  return ReadFdToString(fd.get(), max_bytes, path);
}

Result<std::string> ReadFdToString(int fd, size_t max_bytes, const std::string& what) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return ErrnoError(errno, "stat " + what);
  if (!S_ISREG(st.st_mode)) return FailedPreconditionError(what + ": not a regular file");
  if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    return ResourceExhaustedError(what + ": " + std::to_string(st.st_size) +
                                  " bytes, more than the limit of " + std::to_string(max_bytes));
  }
  std::string out;
  out.reserve(static_cast<size_t>(st.st_size));
  // Read to EOF (the file may have grown since fstat), never keeping more than max_bytes + 1.
  char buf[64 * 1024];
  for (;;) {
    ssize_t r = ::pread(fd, buf, sizeof(buf), static_cast<off_t>(out.size()));
    if (r < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(errno, "read " + what);
    }
    if (r == 0) break;
    out.append(buf, static_cast<size_t>(r));
    if (out.size() > max_bytes) {
      return ResourceExhaustedError(what + ": more than the limit of " + std::to_string(max_bytes) +
                                    " bytes");
    }
  }
  return out;
}

FileLock& FileLock::operator=(FileLock&& other) noexcept {
  if (this != &other) {
    Release();
    fs_ = other.fs_;
    dir_ = std::move(other.dir_);
    name_ = std::move(other.name_);
    fd_ = std::move(other.fd_);
  }
  return *this;
}

Result<FileLock> FileLock::Acquire(FileSystem* fs, int dir_fd, std::string name) {
  return Lock(fs, dir_fd, std::move(name), true);
}

Result<FileLock> FileLock::Acquire(FileSystem* fs, int dir_fd, std::string name,
                                   const std::function<void()>& on_wait) {
  ASSIGN_OR_RETURN(FileLock lock, Lock(fs, dir_fd, name, false));
  if (lock.held()) return lock;
  if (on_wait) on_wait();
  return Lock(fs, dir_fd, std::move(name), true);
}

Result<FileLock> FileLock::TryAcquire(FileSystem* fs, int dir_fd, std::string name) {
  return Lock(fs, dir_fd, std::move(name), false);
}

Result<FileLock> FileLock::Lock(FileSystem* fs, int dir_fd, std::string name, bool wait) {
  UniqueFd dir;
  if (dir_fd != AT_FDCWD) {
    dir = UniqueFd(::fcntl(dir_fd, F_DUPFD_CLOEXEC, 0));
    if (!dir) return ErrnoError(errno, "dup");
  }
  const int at = dir ? dir.get() : AT_FDCWD;
  for (;;) {
    ASSIGN_OR_RETURN(UniqueFd fd, fs->OpenAt(at, name, O_RDWR | O_CREAT | O_NOFOLLOW, 0600));
    int r;
    do {
      r = ::flock(fd.get(), wait ? LOCK_EX : LOCK_EX | LOCK_NB);
    } while (r != 0 && errno == EINTR);
    if (r != 0 && errno == EWOULDBLOCK && !wait) return FileLock();
    if (r != 0) return ErrnoError(errno, "lock " + name);
    // The previous holder removes the file on release; if that happened between our open and
    // our flock, we hold a lock on a file nobody else will ever see: try again.
    struct stat held, named;
    if (::fstat(fd.get(), &held) != 0) return ErrnoError(errno, "stat " + name);
    if (::fstatat(at, name.c_str(), &named, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) continue;
      return ErrnoError(errno, "stat " + name);
    }
    if (held.st_dev != named.st_dev || held.st_ino != named.st_ino) continue;
    FileLock lock;
    lock.fs_ = fs;
    lock.dir_ = std::move(dir);
    lock.name_ = std::move(name);
    lock.fd_ = std::move(fd);
    return lock;
  }
}

void FileLock::Release() {
  if (!fd_.valid()) return;
  // While still held, so no one else holds a lock on this file.
  (void)fs_->UnlinkAt(dir_ ? dir_.get() : AT_FDCWD, name_, 0);
  fd_.reset();
  dir_.reset();
}

// ---- FaultInjectingFileSystem ----

namespace {

// `s`, after calling `mark` if it is OK (the change was made).
template <typename F>
Status Marked(Status s, F mark) {
  if (s.ok()) mark();
  return s;
}

}  // namespace

void FaultInjectingFileSystem::FailNth(Op op, int n, int err) {
  std::lock_guard<std::mutex> l(mu_);
  faults_[op][calls_[op] + n] = err;
}

void FaultInjectingFileSystem::CrashAfter(int n) {
  std::lock_guard<std::mutex> l(mu_);
  crash_at_ = total_ + n;
}

bool FaultInjectingFileSystem::crashed() const {
  std::lock_guard<std::mutex> l(mu_);
  return crash_at_ >= 0 && total_ > crash_at_;
}

int FaultInjectingFileSystem::calls(Op op) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = calls_.find(op);
  return it == calls_.end() ? 0 : it->second;
}

int FaultInjectingFileSystem::total_calls() const {
  std::lock_guard<std::mutex> l(mu_);
  return total_;
}

bool FaultInjectingFileSystem::unsynced(dev_t dev, ino_t ino) const {
  std::lock_guard<std::mutex> l(mu_);
  return unsynced_.contains({dev, ino});
}

void FaultInjectingFileSystem::Mark(const struct stat& st) {
  std::lock_guard<std::mutex> l(mu_);
  unsynced_.insert({st.st_dev, st.st_ino});
}

void FaultInjectingFileSystem::MarkFd(int fd) {
  struct stat st;
  if (::fstat(fd, &st) == 0) Mark(st);
}

void FaultInjectingFileSystem::MarkAt(int dir_fd, const std::string& name) {
  struct stat st;
  if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) Mark(st);
}

void FaultInjectingFileSystem::MarkDirOf(int dir_fd, const std::string& name) {
  struct stat st;
  if (::fstatat(dir_fd, DirName(name).c_str(), &st, 0) == 0) Mark(st);
}

Status FaultInjectingFileSystem::Check(Op op, std::string_view what) {
  std::lock_guard<std::mutex> l(mu_);
  int n = ++calls_[op];
  ++total_;
  int err = 0;
  std::string message;
  if (crash_at_ >= 0 && total_ > crash_at_) {
    err = EIO;
    message = "injected crash before " + std::string(what);
  } else if (auto it = faults_.find(op); it != faults_.end()) {
    if (auto f = it->second.find(n); f != it->second.end()) {
      err = f->second;
      message = "injected fault: " + std::string(what);
    }
  }
  if (err != 0) {
    Status s = ErrnoError(err, message);
    errno = err;  // as the real call would leave it
    return s;
  }
  return OkStatus();
}

Result<UniqueFd> FaultInjectingFileSystem::OpenAt(int dir_fd, const std::string& name, int flags,
                                                  mode_t mode) {
  RETURN_IF_ERROR(Check(Op::kOpen, "open " + name));
  auto fd = base_->OpenAt(dir_fd, name, flags, mode);
  if (fd.ok() && (flags & (O_CREAT | O_TRUNC)) != 0) {  // maybe a new file, or emptied
    MarkFd(fd->get());
    MarkDirOf(dir_fd, name);
  }
  return fd;
}

Status FaultInjectingFileSystem::MkdirAt(int dir_fd, const std::string& name, mode_t mode) {
  RETURN_IF_ERROR(Check(Op::kMkdir, "mkdir " + name));
  return Marked(base_->MkdirAt(dir_fd, name, mode), [&] {
    MarkAt(dir_fd, name);
    MarkDirOf(dir_fd, name);
  });
}

Status FaultInjectingFileSystem::MknodAt(int dir_fd, const std::string& name, mode_t mode,
                                         dev_t dev) {
  RETURN_IF_ERROR(Check(Op::kMknod, "mknod " + name));
  return Marked(base_->MknodAt(dir_fd, name, mode, dev), [&] {
    MarkAt(dir_fd, name);
    MarkDirOf(dir_fd, name);
  });
}

Status FaultInjectingFileSystem::SymlinkAt(const std::string& target, int dir_fd,
                                           const std::string& name) {
  RETURN_IF_ERROR(Check(Op::kSymlink, "symlink " + name));
  return Marked(base_->SymlinkAt(target, dir_fd, name), [&] {
    MarkAt(dir_fd, name);
    MarkDirOf(dir_fd, name);
  });
}

Status FaultInjectingFileSystem::LinkAt(int from_dir, const std::string& from, int to_dir,
                                        const std::string& to) {
  RETURN_IF_ERROR(Check(Op::kLink, "link " + to));
  return Marked(base_->LinkAt(from_dir, from, to_dir, to), [&] {
    MarkAt(to_dir, to);  // its link count
    MarkDirOf(to_dir, to);
  });
}

Status FaultInjectingFileSystem::RenameAt(int from_dir, const std::string& from, int to_dir,
                                          const std::string& to, unsigned flags) {
  RETURN_IF_ERROR(Check(Op::kRename, "rename " + from + " to " + to));
  return Marked(base_->RenameAt(from_dir, from, to_dir, to, flags), [&] {
    MarkDirOf(from_dir, from);
    MarkDirOf(to_dir, to);
  });
}

Status FaultInjectingFileSystem::UnlinkAt(int dir_fd, const std::string& name, int flags) {
  const bool dir = (flags & AT_REMOVEDIR) != 0;
  RETURN_IF_ERROR(Check(dir ? Op::kRmdir : Op::kUnlink, (dir ? "rmdir " : "unlink ") + name));
  return Marked(base_->UnlinkAt(dir_fd, name, flags), [&] { MarkDirOf(dir_fd, name); });
}

Status FaultInjectingFileSystem::FchownAt(int dir_fd, const std::string& name, uid_t uid, gid_t gid,
                                          int flags) {
  RETURN_IF_ERROR(Check(Op::kChown, "chown " + name));
  return Marked(base_->FchownAt(dir_fd, name, uid, gid, flags), [&] { MarkAt(dir_fd, name); });
}

Status FaultInjectingFileSystem::FchmodAt(int dir_fd, const std::string& name, mode_t mode,
                                          int flags) {
  RETURN_IF_ERROR(Check(Op::kChmod, "chmod " + name));
  return Marked(base_->FchmodAt(dir_fd, name, mode, flags), [&] { MarkAt(dir_fd, name); });
}

Status FaultInjectingFileSystem::UtimensAt(int dir_fd, const std::string& name,
                                           const struct timespec times[2], int flags) {
  RETURN_IF_ERROR(Check(Op::kUtimens, "set times of " + name));
  return Marked(base_->UtimensAt(dir_fd, name, times, flags), [&] { MarkAt(dir_fd, name); });
}

Status FaultInjectingFileSystem::Write(int fd, const void* data, size_t n) {
  RETURN_IF_ERROR(Check(Op::kWrite, "write"));
  return Marked(base_->Write(fd, data, n), [&] { MarkFd(fd); });
}

Status FaultInjectingFileSystem::Pwrite(int fd, const void* data, size_t n, off_t offset) {
  RETURN_IF_ERROR(Check(Op::kWrite, "write"));
  return Marked(base_->Pwrite(fd, data, n, offset), [&] { MarkFd(fd); });
}

Status FaultInjectingFileSystem::CopyRange(int from_fd, int to_fd, off_t offset, size_t n) {
  RETURN_IF_ERROR(Check(Op::kWrite, "copy file data"));
  return base_->CopyRange(from_fd, to_fd, offset, n);
}

Status FaultInjectingFileSystem::Clone(int from_fd, int to_fd) {
  RETURN_IF_ERROR(Check(Op::kWrite, "clone file data"));
  return base_->Clone(from_fd, to_fd);
}

Status FaultInjectingFileSystem::Ftruncate(int fd, off_t length) {
  RETURN_IF_ERROR(Check(Op::kTruncate, "truncate"));
  return Marked(base_->Ftruncate(fd, length), [&] { MarkFd(fd); });
}

Status FaultInjectingFileSystem::Fsync(int fd) {
  RETURN_IF_ERROR(Check(Op::kFsync, "fsync"));
  Status s = base_->Fsync(fd);
  struct stat st;
  if (s.ok() && ::fstat(fd, &st) == 0) {
    std::lock_guard<std::mutex> l(mu_);
    unsynced_.erase({st.st_dev, st.st_ino});
  }
  return s;
}

void FaultInjectingFileSystem::SetBootId(std::string id) {
  std::lock_guard<std::mutex> l(mu_);
  boot_id_ = std::move(id);
}

std::string FaultInjectingFileSystem::BootId() {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (boot_id_) return *boot_id_;
  }
  return base_->BootId();
}

Status FaultInjectingFileSystem::Syncfs(int fd) {
  RETURN_IF_ERROR(Check(Op::kFsync, "syncfs"));
  Status s = base_->Syncfs(fd);
  struct stat st;
  if (s.ok() && ::fstat(fd, &st) == 0) {
    std::lock_guard<std::mutex> l(mu_);
    std::erase_if(unsynced_, [&](const auto& file) { return file.first == st.st_dev; });
  }
  return s;
}

Status FaultInjectingFileSystem::Fchown(int fd, uid_t uid, gid_t gid) {
  RETURN_IF_ERROR(Check(Op::kChown, "chown"));
  return Marked(base_->Fchown(fd, uid, gid), [&] { MarkFd(fd); });
}

Status FaultInjectingFileSystem::Fchmod(int fd, mode_t mode) {
  RETURN_IF_ERROR(Check(Op::kChmod, "chmod"));
  return Marked(base_->Fchmod(fd, mode), [&] { MarkFd(fd); });
}

Status FaultInjectingFileSystem::Futimens(int fd, const struct timespec times[2]) {
  RETURN_IF_ERROR(Check(Op::kUtimens, "set times"));
  return Marked(base_->Futimens(fd, times), [&] { MarkFd(fd); });
}

Status FaultInjectingFileSystem::Fsetxattr(int fd, const std::string& name, const void* value,
                                           size_t n, int flags) {
  RETURN_IF_ERROR(Check(Op::kSetxattr, "set xattr " + name));
  return Marked(base_->Fsetxattr(fd, name, value, n, flags), [&] { MarkFd(fd); });
}

Status FaultInjectingFileSystem::Fremovexattr(int fd, const std::string& name) {
  RETURN_IF_ERROR(Check(Op::kRemovexattr, "remove xattr " + name));
  return Marked(base_->Fremovexattr(fd, name), [&] { MarkFd(fd); });
}

}  // namespace hoist
