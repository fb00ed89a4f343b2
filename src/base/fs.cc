#include "base/fs.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <utility>

#include "base/status_macros.h"

namespace hoist {
namespace {

class RealFileSystem : public FileSystem {
 public:
  Result<UniqueFd> Open(const std::string& path, int flags, mode_t mode) override {
    int fd;
    do {
      fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) return ErrnoError(errno, "open " + path);
    return UniqueFd(fd);
  }

  Status Write(const UniqueFd& fd, const void* data, size_t n) override {
    return WriteAll(fd.get(), data, n);
  }

  Status Fsync(const UniqueFd& fd) override {
    if (::fsync(fd.get()) != 0) return ErrnoError(errno, "fsync");
    return OkStatus();
  }

  Status Fchmod(const UniqueFd& fd, mode_t mode) override {
    if (::fchmod(fd.get(), mode) != 0) return ErrnoError(errno, "chmod");
    return OkStatus();
  }

  Status Rename(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) {
      return ErrnoError(errno, "rename " + from + " to " + to);
    }
    return OkStatus();
  }

  Status Unlink(const std::string& path) override {
    if (::unlink(path.c_str()) != 0) return ErrnoError(errno, "unlink " + path);
    return OkStatus();
  }

  Status Mkdir(const std::string& path, mode_t mode) override {
    if (::mkdir(path.c_str(), mode) != 0) return ErrnoError(errno, "mkdir " + path);
    return OkStatus();
  }

  Status Rmdir(const std::string& path) override {
    if (::rmdir(path.c_str()) != 0) return ErrnoError(errno, "rmdir " + path);
    return OkStatus();
  }
};

// Creates one directory; an existing directory is fine.
Status MakeDir(FileSystem* fs, const std::string& path, mode_t mode) {
  Status s = fs->Mkdir(path, mode);
  if (s.ok()) {
    RETURN_IF_ERROR(FsyncDir(fs, DirName(path)));
    return OkStatus();
  }
  if (s.code() != StatusCode::kAlreadyExists) return s;
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return ErrnoError(errno, "stat " + path);
  if (!S_ISDIR(st.st_mode)) return FailedPreconditionError(path + ": exists, not a directory");
  return OkStatus();
}

}  // namespace

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
  ASSIGN_OR_RETURN(UniqueFd fd, fs->Open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
  return fs->Fsync(fd).WithContext(path);
}

Status WriteFileAtomically(FileSystem* fs, const std::string& path, const std::string& tmp_path,
                           std::string_view bytes, mode_t mode) {
  Status s = [&]() -> Status {
    ASSIGN_OR_RETURN(UniqueFd fd,
                     fs->Open(tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, mode));
    RETURN_IF_ERROR(fs->Write(fd, bytes.data(), bytes.size()).WithContext(tmp_path));
    RETURN_IF_ERROR(fs->Fchmod(fd, mode).WithContext(tmp_path));
    RETURN_IF_ERROR(fs->Fsync(fd).WithContext(tmp_path));
    fd.reset();
    return fs->Rename(tmp_path, path);
  }();
  if (!s.ok()) {
    (void)fs->Unlink(tmp_path);
    return s;
  }
  return FsyncDir(fs, DirName(path));
}

Status WriteAll(int fd, const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(errno, "write");
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return OkStatus();
}

Result<std::string> ReadFileToString(const std::string& path, size_t max_bytes,
                                     Symlinks symlinks) {
  const int flags =
      O_RDONLY | O_CLOEXEC | O_NONBLOCK | (symlinks == Symlinks::kRefuse ? O_NOFOLLOW : 0);
  int raw;
  do {
    raw = ::open(path.c_str(), flags);
  } while (raw < 0 && errno == EINTR);
  if (raw < 0) return ErrnoError(errno, "open " + path);
  UniqueFd fd(raw);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return ErrnoError(errno, "stat " + path);
  if (!S_ISREG(st.st_mode)) return FailedPreconditionError(path + ": not a regular file");
  if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    return ResourceExhaustedError(path + ": " + std::to_string(st.st_size) +
                                  " bytes, more than the limit of " + std::to_string(max_bytes));
  }
  std::string out;
  out.reserve(static_cast<size_t>(st.st_size));
  // Read to EOF (the file may have grown since fstat), never keeping more than max_bytes + 1.
  char buf[64 * 1024];
  for (;;) {
    ssize_t r = ::read(fd.get(), buf, sizeof(buf));
    if (r < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(errno, "read " + path);
    }
    if (r == 0) break;
    out.append(buf, static_cast<size_t>(r));
    if (out.size() > max_bytes) {
      return ResourceExhaustedError(path + ": more than the limit of " + std::to_string(max_bytes) +
                                    " bytes");
    }
  }
  return out;
}

FileLock& FileLock::operator=(FileLock&& other) noexcept {
  if (this != &other) {
    Release();
    fs_ = other.fs_;
    path_ = std::move(other.path_);
    fd_ = std::move(other.fd_);
  }
  return *this;
}

Result<FileLock> FileLock::Acquire(FileSystem* fs, std::string path) {
  for (;;) {
    ASSIGN_OR_RETURN(UniqueFd fd, fs->Open(path, O_RDWR | O_CREAT | O_NOFOLLOW, 0644));
    int r;
    do {
      r = ::flock(fd.get(), LOCK_EX);
    } while (r != 0 && errno == EINTR);
    if (r != 0) return ErrnoError(errno, "lock " + path);
    // The previous holder removes the file on release; if that happened between our open and
    // our flock, we hold a lock on a file nobody else will ever see: try again.
    struct stat held, named;
    if (::fstat(fd.get(), &held) != 0) return ErrnoError(errno, "stat " + path);
    if (::lstat(path.c_str(), &named) != 0) {
      if (errno == ENOENT) continue;
      return ErrnoError(errno, "stat " + path);
    }
    if (held.st_dev != named.st_dev || held.st_ino != named.st_ino) continue;
    FileLock lock;
    lock.fs_ = fs;
    lock.path_ = std::move(path);
    lock.fd_ = std::move(fd);
    return lock;
  }
}

void FileLock::Release() {
  if (!fd_.valid()) return;
  (void)fs_->Unlink(path_);  // while still held, so no one else holds a lock on this file
  fd_.reset();
}

// ---- FaultInjectingFileSystem ----

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

Status FaultInjectingFileSystem::Check(Op op, std::string_view what) {
  std::lock_guard<std::mutex> l(mu_);
  int n = ++calls_[op];
  ++total_;
  if (crash_at_ >= 0 && total_ > crash_at_) {
    return ErrnoError(EIO, "injected crash before " + std::string(what));
  }
  auto it = faults_.find(op);
  if (it != faults_.end()) {
    auto f = it->second.find(n);
    if (f != it->second.end()) return ErrnoError(f->second, "injected fault: " + std::string(what));
  }
  return OkStatus();
}

Result<UniqueFd> FaultInjectingFileSystem::Open(const std::string& path, int flags, mode_t mode) {
  RETURN_IF_ERROR(Check(Op::kOpen, "open " + path));
  return base_->Open(path, flags, mode);
}

Status FaultInjectingFileSystem::Write(const UniqueFd& fd, const void* data, size_t n) {
  RETURN_IF_ERROR(Check(Op::kWrite, "write"));
  return base_->Write(fd, data, n);
}

Status FaultInjectingFileSystem::Fsync(const UniqueFd& fd) {
  RETURN_IF_ERROR(Check(Op::kFsync, "fsync"));
  return base_->Fsync(fd);
}

Status FaultInjectingFileSystem::Fchmod(const UniqueFd& fd, mode_t mode) {
  RETURN_IF_ERROR(Check(Op::kFchmod, "chmod"));
  return base_->Fchmod(fd, mode);
}

Status FaultInjectingFileSystem::Rename(const std::string& from, const std::string& to) {
  RETURN_IF_ERROR(Check(Op::kRename, "rename " + from + " to " + to));
  return base_->Rename(from, to);
}

Status FaultInjectingFileSystem::Unlink(const std::string& path) {
  RETURN_IF_ERROR(Check(Op::kUnlink, "unlink " + path));
  return base_->Unlink(path);
}

Status FaultInjectingFileSystem::Mkdir(const std::string& path, mode_t mode) {
  RETURN_IF_ERROR(Check(Op::kMkdir, "mkdir " + path));
  return base_->Mkdir(path, mode);
}

Status FaultInjectingFileSystem::Rmdir(const std::string& path) {
  RETURN_IF_ERROR(Check(Op::kRmdir, "rmdir " + path));
  return base_->Rmdir(path);
}

}  // namespace hoist
