#include "unpack/mount.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>

#include "base/strings.h"

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

std::string MountRecordJson(const std::string& target, const MountIdentity& id) {
  return nlohmann::json{{"target", target}, {"mountId", id.mount_id}, {"device", id.device}}
             .dump() +
         "\n";
}

Result<MountIdentity> ReadMountRecord(int mount_dir_fd, const std::string& path) {
  int raw = ::openat(mount_dir_fd, "mount.json", O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (raw < 0) return ErrnoError(errno, "open " + path);
  UniqueFd fd(raw);
  char buf[4096];
  ssize_t n = ::read(fd.get(), buf, sizeof(buf));
  if (n < 0) return ErrnoError(errno, "read " + path);
  auto j = nlohmann::json::parse(std::string(buf, static_cast<size_t>(n)), nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("mountId") || !j.contains("device") ||
      !j["mountId"].is_number_unsigned() || !j["device"].is_number_unsigned()) {
    return DataLossError(path + ": not a mount record");
  }
  return MountIdentity{j["mountId"].get<uint64_t>(), j["device"].get<uint64_t>()};
}

std::optional<std::vector<std::string>> MountedLowerdirs(std::string_view mountinfo,
                                                         const MountIdentity& id) {
  // "ID PARENT MAJOR:MINOR ROOT POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER_OPTIONS", with
  // space, tab, newline and backslash in names as \ooo.
  const std::string dev = std::to_string(major(static_cast<dev_t>(id.device))) + ":" +
                          std::to_string(minor(static_cast<dev_t>(id.device)));
  for (std::string_view line : Split(mountinfo, '\n')) {
    std::vector<std::string_view> f = Split(line, ' ');
    if (f.size() < 3 || f[0] != std::to_string(id.mount_id) || f[2] != dev) continue;
    std::vector<std::string> lowerdirs;
    auto dash = std::find(f.begin(), f.end(), "-");
    if (dash == f.end() || f.end() - dash < 4) return lowerdirs;
    for (std::string_view option : Split(*(dash + 3), ',')) {
      if (!option.starts_with("lowerdir=")) continue;
      option.remove_prefix(9);
      for (std::string_view dir : Split(option, ':')) {
        std::string out;
        for (size_t i = 0; i < dir.size(); ++i) {
          if (dir[i] == '\\' && i + 3 < dir.size()) {
            out += static_cast<char>(
                std::strtol(std::string(dir.substr(i + 1, 3)).c_str(), nullptr, 8));
            i += 3;
          } else {
            out += dir[i];
          }
        }
        lowerdirs.push_back(std::move(out));
      }
    }
    return lowerdirs;
  }
  return std::nullopt;
}

Status Unmount(const std::string& target) {
  if (::umount2(target.c_str(), UMOUNT_NOFOLLOW) != 0) {
    return ErrnoError(errno, "umount " + target);
  }
  return OkStatus();
}

}  // namespace hoist::unpack
