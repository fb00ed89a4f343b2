#include "unpack/mount.h"

#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>

namespace hoist::unpack {
namespace {

constexpr size_t kMaxMountData = 4096 - 1;  // one page, NUL included

bool Escapable(const std::string& path) {
  return path.find_first_of(",:\\") == std::string::npos;
}

}  // namespace

Status MountOverlay(const std::vector<std::string>& lowerdirs, const std::string& upperdir,
                    const std::string& workdir, const std::string& target) {
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
  if (::mount("overlay", target.c_str(), "overlay", flags, data.c_str()) != 0) {
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
