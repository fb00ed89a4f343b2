// A new directory tree built out of sight (`hoist unpack` DEST): it appears under its name
// complete, or not at all.
#pragma once

#include <functional>
#include <string>

#include "base/fs.h"
#include "hoist/status.h"

namespace hoist::unpack {

// Creates the directory `dest`, which must not exist or be an empty directory (else
// AlreadyExists, and it is left alone). `fill` builds the tree in STAGING/out, where STAGING is
// a fresh private (0700) directory beside dest (".NAME.hoist-XXXXXX"), so nobody else can reach
// the image's files (setuid binaries, devices, world-writable directories) before the tree is
// complete; `out_fd` is an O_RDONLY|O_DIRECTORY fd of out, which is created 0755 (the image may
// set its mode). Then out is renamed to dest. On any failure dest is not created (an empty dest
// stays as it was) and STAGING is removed. Every change goes through `fs`.
Status BuildNewDirectory(FileSystem* fs, const std::string& dest,
                         const std::function<Status(int out_fd)>& fill);

}  // namespace hoist::unpack
