// overlayfs mounts of extracted layers (root only).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/unique_fd.h"
#include "hoist/status.h"

namespace hoist::unpack {

// Opens a mount target: the directory `target` itself, never through a final symlink (O_PATH).
// A symlink is FailedPrecondition saying so; a non-directory is FailedPrecondition too.
Result<UniqueFd> OpenMountTarget(const std::string& target);

// Mounts an overlay on the directory open at target_fd (from OpenMountTarget, so the mount
// lands on that very directory whatever happens to its path) from `lowerdirs`, topmost first.
// With `upperdir` and `workdir` (both or neither) the mount is writable, else read-only.
// `target` names it in errors. FailedPrecondition when not root; InvalidArgument for paths
// overlayfs options cannot carry (',' ':' or '\\'), or more layers than one mount option page
// holds.
Status MountOverlay(const std::vector<std::string>& lowerdirs, const std::string& upperdir,
                    const std::string& workdir, int target_fd, const std::string& target);

// What tells one mount from another: the kernel's mount id and the device of the mount's root,
// for an fd of that root (/proc/self/fdinfo). Ids are not reused while the mount exists.
struct MountIdentity {
  uint64_t mount_id = 0;
  uint64_t device = 0;
  bool operator==(const MountIdentity&) const = default;
};
Result<MountIdentity> IdentifyMount(int fd);

// Unmounts `target`, never following a final symlink.
Status Unmount(const std::string& target);

}  // namespace hoist::unpack
