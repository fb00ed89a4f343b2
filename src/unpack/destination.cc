#include "unpack/destination.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <filesystem>
#include <random>

#include "base/status_macros.h"

namespace hoist::unpack {
namespace {

constexpr char kOut[] = "out";

// OK if `dest` does not exist or is an empty directory.
Status CheckDestination(const std::string& dest) {
  std::error_code ec;
  auto st = std::filesystem::symlink_status(dest, ec);
  if (ec || st.type() == std::filesystem::file_type::not_found) return OkStatus();
  if (st.type() != std::filesystem::file_type::directory) {
    return AlreadyExistsError(dest + " exists and is not a directory");
  }
  if (!std::filesystem::is_empty(dest, ec) || ec) {
    return AlreadyExistsError(dest + " is not empty");
  }
  return OkStatus();
}

// Creates a fresh 0700 directory ".NAME.hoist-XXXXXX" in parent_fd and returns its name.
Result<std::string> MakeStaging(FileSystem* fs, int parent_fd, const std::string& name) {
  static constexpr char kChars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  std::random_device random;
  std::uniform_int_distribution<size_t> pick(0, sizeof(kChars) - 2);
  for (int attempt = 0; attempt < 100; ++attempt) {
    std::string staging = "." + name + ".hoist-";
    for (int i = 0; i < 6; ++i) staging += kChars[pick(random)];
    Status s = fs->MkdirAt(parent_fd, staging, 0700);
    if (s.ok()) return staging;
    if (errno != EEXIST) return s;
  }
  return AlreadyExistsError("no free staging name for " + name);
}

}  // namespace

Status BuildNewDirectory(FileSystem* fs, const std::string& dest,
                         const std::function<Status(int out_fd)>& fill) {
  std::filesystem::path p(dest);
  const std::string name = p.filename().string();
  if (name.empty() || name == "." || name == "..") {
    return InvalidArgumentError("destination \"" + dest + "\" must name a directory");
  }
  RETURN_IF_ERROR(CheckDestination(dest));
  const std::string parent_path = p.parent_path().empty() ? "." : p.parent_path().string();
  UniqueFd parent(::open(parent_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!parent) return ErrnoError(errno, "open " + parent_path);
  auto staging = MakeStaging(fs, parent.get(), name);
  if (!staging.ok()) return staging.status().WithContext("create staging beside " + dest);
  Status s = [&]() -> Status {
    ASSIGN_OR_RETURN(UniqueFd dir,
                     fs->OpenAt(parent.get(), *staging, O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
    RETURN_IF_ERROR(fs->MkdirAt(dir.get(), kOut, 0755));
    {
      ASSIGN_OR_RETURN(UniqueFd out,
                       fs->OpenAt(dir.get(), kOut, O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
      RETURN_IF_ERROR(fill(out.get()));
    }
    return fs->RenameAt(dir.get(), kOut, parent.get(), name).WithContext(dest);
  }();
  // Empty now after a success; a leftover would be harmless (0700, hidden).
  if (s.ok()) {
    (void)fs->UnlinkAt(parent.get(), *staging, AT_REMOVEDIR);
  } else {
    (void)RemoveAllAt(fs, parent.get(), *staging);
  }
  return s;
}

}  // namespace hoist::unpack
