// In-root path resolution for the extractor. A tar member name is hostile: it may be absolute,
// contain "..", or lead through symlinks that the same archive created a moment ago. These
// helpers resolve such names the way the kernel's RESOLVE_IN_ROOT does — the root directory
// acts as "/": absolute symlinks restart at the root, ".." at the root stays at the root — so
// nothing outside the root can ever be named.
//
// Only directories are resolved here. The extractor opens the PARENT directory of an entry
// with OpenDirInRoot and then works on the last component with *at() calls that never follow
// a symlink in that component.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/fs.h"
#include "base/unique_fd.h"
#include "hoist/status.h"

namespace hoist::unpack {

// How OpenDirInRoot resolves a path.
enum class ResolveMethod {
  kAuto,    // openat2(RESOLVE_IN_ROOT) when the kernel has it, else kWalk
  kKernel,  // openat2 only (fails with Unimplemented when the kernel lacks it)
  kWalk,    // a component-by-component walk with O_NOFOLLOW opens, done in user space
};

// Splits an archive member name into components for resolution. Only lexical clean-up is
// done: a leading '/', empty components and "." are dropped; ".." is KEPT (it is resolved
// inside the root, not lexically). "/", "." and "" give no components (the root itself).
// A NUL byte in the name is DataLoss.
Result<std::vector<std::string>> SplitMemberPath(std::string_view name);

// `components` with ".." applied lexically: each removes the component before it (none at the
// top), as Go's path.Clean does for containerd. For whiteouts (the extractor and the layer
// check alike): resolving "dne/../.wh.etc" in the root would stop at the missing "dne" and
// silently white out nothing.
std::vector<std::string> CleanLexically(std::vector<std::string> components);

// Opens the directory named by `components` (as from SplitMemberPath) relative to `root_fd`
// (any fd of the root directory), resolved inside the root: every symlink met on the way is
// followed, but resolved with the root as "/", and ".." never climbs above the root. Returns
// an O_PATH|O_DIRECTORY descriptor of a directory inside the root.
//
// With `create_missing`, a missing directory on the way is created with mode 0755 (less the
// umask), also where a dangling symlink points to (inside the root). Without it, a missing
// component is NotFound. A component that exists but is not a directory (nor a symlink to
// one) is NotFound (ENOTDIR); more than 40 symlinks is InvalidArgument (ELOOP).
//
// kAuto and kKernel first try openat2(RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS); when that
// reports a missing directory and `create_missing` is set, the walk finishes the job (it
// creates what is missing as it goes, through `fs`; resolving itself only reads).
Result<UniqueFd> OpenDirInRoot(int root_fd, std::span<const std::string> components,
                               bool create_missing, ResolveMethod method = ResolveMethod::kAuto,
                               FileSystem* fs = FileSystem::Default());

// True when openat2 with RESOLVE_IN_ROOT works on this kernel (probed once, then cached).
bool KernelResolvesInRoot();

}  // namespace hoist::unpack
