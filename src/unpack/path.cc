#include "unpack/path.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <deque>
#include <utility>

#include "base/status_macros.h"

#ifndef SYS_openat2
#define SYS_openat2 437
#endif

namespace hoist::unpack {
namespace {

constexpr int kMaxSymlinks = 40;  // as the kernel's MAXSYMLINKS

bool SameFile(const struct stat& a, const struct stat& b) {
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

// openat2 with RESOLVE_IN_ROOT; returns the fd or -errno. EAGAIN (a concurrent rename seen
// by the kernel) and EINTR are retried a few times.
int OpenAt2InRoot(int root_fd, const std::string& path) {
  struct open_how how = {};
  how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  for (int attempt = 0;; ++attempt) {
    long fd = syscall(SYS_openat2, root_fd, path.c_str(), &how, sizeof(how));
    if (fd >= 0) return static_cast<int>(fd);
    int err = errno;
    if ((err == EAGAIN || err == EINTR) && attempt < 16) continue;
    return -err;
  }
}

// Splits a symlink target into the components the walk pushes back onto its work list.
std::vector<std::string> SplitLinkTarget(const std::string& target) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= target.size()) {
    size_t end = target.find('/', start);
    if (end == std::string::npos) end = target.size();
    if (end > start) {
      std::string part = target.substr(start, end - start);
      if (part != ".") out.push_back(std::move(part));
    }
    start = end + 1;
  }
  return out;
}

Result<std::string> ReadLinkAt(int dir_fd, const std::string& name) {
  std::string buf(256, '\0');
  for (;;) {
    ssize_t n = readlinkat(dir_fd, name.c_str(), buf.data(), buf.size());
    if (n < 0) return ErrnoError(errno, "readlink " + name);
    if (static_cast<size_t>(n) < buf.size()) {
      buf.resize(n);
      return buf;
    }
    if (buf.size() >= 65536) return InvalidArgumentError("symlink " + name + " is too long");
    buf.resize(buf.size() * 2);
  }
}

// The user-space resolver: walks one component at a time, opening each with O_NOFOLLOW and
// interpreting symlinks itself (absolute targets restart at the root). ".." from the root
// stays at the root; ".." elsewhere opens the real parent, which is inside the root because
// every directory the walk stands on was reached from the root without leaving it.
Result<UniqueFd> WalkInRoot(int root_fd, std::span<const std::string> components,
                            bool create_missing, FileSystem* fs) {
  struct stat root_st;
  if (fstat(root_fd, &root_st) != 0) return ErrnoError(errno, "stat root");
  UniqueFd cur(openat(root_fd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!cur) return ErrnoError(errno, "open root");
  std::deque<std::string> todo(components.begin(), components.end());
  std::string walked;  // for error messages only
  int links = 0;
  while (!todo.empty()) {
    std::string name = std::move(todo.front());
    todo.pop_front();
    if (name.empty() || name == ".") continue;
    if (name == "..") {
      struct stat st;
      if (fstat(cur.get(), &st) != 0) return ErrnoError(errno, "stat " + walked);
      if (SameFile(st, root_st)) continue;
      UniqueFd up(openat(cur.get(), "..", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!up) return ErrnoError(errno, "open " + walked + "/..");
      cur = std::move(up);
      walked += "/..";
      continue;
    }
    if (name.find('/') != std::string::npos) return InternalError("component contains '/'");
    walked += "/" + name;
    UniqueFd next(openat(cur.get(), name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (!next && errno == ENOENT && create_missing) {
      if (!fs->MkdirAt(cur.get(), name, 0755).ok() && errno != EEXIST) {
        return ErrnoError(errno, "mkdir " + walked);
      }
      next.reset(openat(cur.get(), name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
    }
    if (!next) return ErrnoError(errno, "open " + walked);
    struct stat st;
    if (fstat(next.get(), &st) != 0) return ErrnoError(errno, "stat " + walked);
    if (S_ISLNK(st.st_mode)) {
      if (++links > kMaxSymlinks) return ErrnoError(ELOOP, "resolve " + walked);
      ASSIGN_OR_RETURN(std::string target, ReadLinkAt(cur.get(), name));
      if (target.empty()) return ErrnoError(ENOENT, "resolve " + walked);
      std::vector<std::string> parts = SplitLinkTarget(target);
      todo.insert(todo.begin(), parts.begin(), parts.end());
      if (target[0] == '/') {
        UniqueFd root(openat(root_fd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC));
        if (!root) return ErrnoError(errno, "open root");
        cur = std::move(root);
      }
      continue;
    }
    if (!S_ISDIR(st.st_mode)) return ErrnoError(ENOTDIR, "open " + walked);
    cur = std::move(next);
  }
  return cur;
}

std::string JoinComponents(std::span<const std::string> components) {
  if (components.empty()) return ".";
  std::string path;
  for (const std::string& c : components) {
    if (!path.empty()) path += '/';
    path += c;
  }
  return path;
}

}  // namespace

Result<std::vector<std::string>> SplitMemberPath(std::string_view name) {
  if (name.find('\0') != std::string_view::npos) {
    return DataLossError("member name contains a NUL byte");
  }
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= name.size()) {
    size_t end = name.find('/', start);
    if (end == std::string_view::npos) end = name.size();
    std::string_view part = name.substr(start, end - start);
    if (!part.empty() && part != ".") out.emplace_back(part);
    start = end + 1;
  }
  return out;
}

std::vector<std::string> CleanLexically(std::vector<std::string> components) {
  std::vector<std::string> out;
  for (std::string& c : components) {
    if (c != "..") {
      out.push_back(std::move(c));
    } else if (!out.empty()) {
      out.pop_back();
    }
  }
  return out;
}

bool KernelResolvesInRoot() {
  static const bool available = [] {
    int fd = OpenAt2InRoot(AT_FDCWD, "/");
    if (fd < 0) return false;
    close(fd);
    return true;
  }();
  return available;
}

Result<UniqueFd> OpenDirInRoot(int root_fd, std::span<const std::string> components,
                               bool create_missing, ResolveMethod method, FileSystem* fs) {
  if (method == ResolveMethod::kAuto) {
    method = KernelResolvesInRoot() ? ResolveMethod::kKernel : ResolveMethod::kWalk;
  }
  if (method == ResolveMethod::kKernel) {
    if (!KernelResolvesInRoot()) return UnimplementedError("openat2 is not available");
    std::string path = JoinComponents(components);
    int fd = OpenAt2InRoot(root_fd, path);
    if (fd >= 0) return UniqueFd(fd);
    if (-fd != ENOENT || !create_missing) return ErrnoError(-fd, "open " + path);
    // Something is missing: the walk creates it as it resolves.
  }
  return WalkInRoot(root_fd, components, create_missing, fs);
}

}  // namespace hoist::unpack
