// overlayfs mounts of extracted layers (root only).
#pragma once

#include <string>
#include <vector>

#include "hoist/status.h"

namespace hoist::unpack {

// Mounts an overlay at `target` (an existing directory) from `lowerdirs`, topmost first. With
// `upperdir` and `workdir` (both or neither) the mount is writable, else read-only.
// FailedPrecondition when not root; InvalidArgument for paths overlayfs options cannot carry
// (',' ':' or '\\'), or more layers than one mount option page holds.
Status MountOverlay(const std::vector<std::string>& lowerdirs, const std::string& upperdir,
                    const std::string& workdir, const std::string& target);

// Unmounts `target`.
Status Unmount(const std::string& target);

}  // namespace hoist::unpack
