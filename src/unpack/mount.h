// overlayfs mounts of extracted layers (root only).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
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

// The record of a mount hoist made (STORE/mounts/<id>/mount.json): {"target", "mountId",
// "device"}, what `hoist umount` may undo and what gc keeps while it is mounted.
std::string MountRecordJson(const std::string& target, const MountIdentity& id);
// The mount recorded in mount.json inside the directory open at mount_dir_fd (`path` names it
// in errors); NotFound if there is none, DataLoss if it is not a mount record.
Result<MountIdentity> ReadMountRecord(int mount_dir_fd, const std::string& path);

// The lowerdirs (topmost first) of the overlay mount `id` as `mountinfo` (the text of
// /proc/self/mountinfo) shows it, or nullopt if no mount with that id and device is listed:
// the mount is gone. A live mount that is not an overlay has no lowerdirs.
std::optional<std::vector<std::string>> MountedLowerdirs(std::string_view mountinfo,
                                                         const MountIdentity& id);

// Unmounts `target`, never following a final symlink.
Status Unmount(const std::string& target);

}  // namespace hoist::unpack
