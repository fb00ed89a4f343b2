// The config.json of an OCI runtime bundle (runtime-spec 1.0.0), generated from an image
// config the way `umoci unpack` generates it, so a bundle written by `hoist unpack --bundle`
// runs under runc/crun exactly as umoci's would.
#pragma once

#include <string>
#include <string_view>

#include "hoist/status.h"

namespace hoist::unpack {

// Returns the text of config.json for the image whose config blob is `image_config_json`
// (an OCI image config or a Docker image config: both keep the fields used here under
// "config" with the same names) and whose unpacked root filesystem is `rootfs_fd` (an
// O_PATH|O_DIRECTORY descriptor; the bundle's rootfs directory is named "rootfs").
//
// Starts from umoci's defaults — terminal, PATH and TERM=xterm, cwd "/", args ["sh"], the
// CAP_AUDIT_WRITE/CAP_KILL/CAP_NET_BIND_SERVICE capability sets, RLIMIT_NOFILE 1024,
// noNewPrivileges, hostname "umoci-default", the proc/dev/devpts/shm/mqueue/sysfs/cgroup
// mounts, the pid/network/ipc/uts/mount namespaces, masked and read-only /proc and /sys
// paths, a deny-all device cgroup, no seccomp — and applies the image:
//   process.args   Entrypoint then Cmd; when both are empty the default ["sh"] stays.
//   process.env    each Env "NAME=value" replaces the default of the same NAME or is
//                  appended; HOME from the user's passwd entry replaces/appends last.
//   process.cwd    WorkingDir, or "/".
//   process.user   User: "", "uid", "uid:gid", "name", "name:group", "uid:group", ...
//                  resolved against the rootfs's /etc/passwd and /etc/group like runc's
//                  GetExecUser: a name must exist (else InvalidArgument); a numeric id
//                  without an entry is used as is (0..2^31-1); without an explicit group the
//                  gid is the passwd entry's and additionalGids are the gids of the
//                  /etc/group lines that list the user by name; "" means uid 0.
//   annotations    the config's Labels, then org.opencontainers.image.{os, architecture,
//                  author, created, stopSignal, exposedPorts} (always present, possibly "";
//                  created in RFC 3339 with trailing fraction zeros dropped, the Go zero
//                  time when absent; exposedPorts sorted and joined with ",").
//   mounts         each Volume appended as a tmpfs mount, sorted by destination (umoci's
//                  order is Go's random map order).
//   root           {"path": "rootfs", "readonly": false}.
//
// /etc/passwd and /etc/group are read inside the root: symlinks on the way and the files
// themselves, if symlinks, are resolved with the rootfs as "/" (as the container would see
// them), so a link can never reach a file outside the rootfs; one that leads nowhere inside
// the rootfs counts as a missing file. A missing file is no error (numeric ids still work,
// names do not); a file that is not a regular file, or larger than 16 MiB, is. Malformed
// passwd/group lines (non-numeric or out-of-range ids) are skipped.
//
// Errors: DataLoss for a config that is not JSON or has a field of the wrong type;
// Unimplemented for an os other than "linux"; InvalidArgument for an Env entry without '=',
// a malformed "created" time, or a User that cannot be resolved.
Result<std::string> RuntimeConfig(std::string_view image_config_json, int rootfs_fd);

}  // namespace hoist::unpack
