#include "unpack/mount.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>

namespace hoist::unpack {
namespace {

constexpr size_t kMaxMountData = 4096 - 1;  // one page, NUL included

bool Escapable(const std::string& path) { return path.find_first_of(",:\\") == std::string::npos; }

}  // namespace

Result<UniqueFd> OpenMountTarget(const std::string& target) {
  struct stat st;
  if (::lstat(target.c_str(), &st) == 0 && S_ISLNK(st.st_mode)) {
    return FailedPreconditionError("mount target " + target +
                                   " is a symlink; hoist mounts only on a directory itself, not "
                                   "through a link (give the directory's own path)");
  }
  UniqueFd fd(::open(target.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) {
    if (errno == ELOOP || errno == ENOTDIR) {
      return FailedPreconditionError("mount target " + target + " is not a directory");
    }
    return ErrnoError(errno, "open mount target " + target);
  }
  return fd;
}

Result<MountIdentity> IdentifyMount(int fd) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return ErrnoError(errno, "stat mount");
  MountIdentity id;
  id.device = static_cast<uint64_t>(st.st_dev);
  std::ifstream info("/proc/self/fdinfo/" + std::to_string(fd));
  std::string line;
  while (std::getline(info, line)) {
    if (line.rfind("mnt_id:", 0) == 0) {
      id.mount_id = std::strtoull(line.c_str() + 7, nullptr, 10);
      return id;
    }
  }
  return FailedPreconditionError("no mount id for fd " + std::to_string(fd) +
                                 " in /proc/self/fdinfo (is /proc mounted?)");
}

Status MountOverlay(const std::vector<std::string>& lowerdirs, const std::string& upperdir,
                    const std::string& workdir, int target_fd, const std::string& target) {
  if (geteuid() != 0) {
    return FailedPreconditionError("mounting an overlay needs root");
  }
  if (lowerdirs.empty()) return InvalidArgumentError("no layers to mount");
  if (upperdir.empty() != workdir.empty()) {
    return InvalidArgumentError("an upper dir needs a work dir");
  }
  std::string data = "lowerdir=";
  for (size_t i = 0; i < lowerdirs.size(); ++i) {
    if (!Escapable(lowerdirs[i])) {
      return InvalidArgumentError("path \"" + lowerdirs[i] +
                                  "\" holds a character overlayfs options cannot carry");
    }
    data += (i ? ":" : "") + lowerdirs[i];
  }
  if (!upperdir.empty()) {
    if (!Escapable(upperdir) || !Escapable(workdir)) {
      return InvalidArgumentError("store path holds a character overlayfs options cannot carry");
    }
    data += ",upperdir=" + upperdir + ",workdir=" + workdir;
  }
  if (data.size() > kMaxMountData) {
    return InvalidArgumentError("too many layers for one overlay mount (" +
                                std::to_string(lowerdirs.size()) + ")");
  }
  unsigned long flags = upperdir.empty() ? MS_RDONLY : 0;
  // Through the fd's magic link: onto that very directory, whatever its path became.
  const std::string at = "/proc/self/fd/" + std::to_string(target_fd);
  if (::mount("overlay", at.c_str(), "overlay", flags, data.c_str()) != 0) {
    return ErrnoError(errno, "mount overlay on " + target);
  }
  return OkStatus();
}

Status Unmount(const std::string& target) {
  if (::umount2(target.c_str(), UMOUNT_NOFOLLOW) != 0) {
    return ErrnoError(errno, "umount " + target);
  }
  return OkStatus();
}

}  // namespace hoist::unpack
