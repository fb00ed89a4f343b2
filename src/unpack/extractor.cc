#include "unpack/extractor.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <memory>

#include "base/fs.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "unpack/whiteout.h"

// Every change to the disk goes through fs_ (ExtractOptions::fs). A failed FileSystem call leaves
// errno set to its cause (base/fs.h), so the extractor branches on errno as with the plain calls
// and words its own messages: `if (!fs_->X(...).ok()) return ErrnoError(errno, "...")`.

namespace hoist::unpack {
namespace {

const char* TypeName(EntryType t) {
  switch (t) {
    case EntryType::kRegular:
      return "regular file";
    case EntryType::kHardlink:
      return "hardlink";
    case EntryType::kSymlink:
      return "symlink";
    case EntryType::kCharDevice:
      return "character device";
    case EntryType::kBlockDevice:
      return "block device";
    case EntryType::kDirectory:
      return "directory";
    case EntryType::kFifo:
      return "fifo";
  }
  return "entry";
}

enum class XattrRule { kApply, kIgnore };

// The allowlist. Everything else — trusted.* (which would let an image forge overlayfs
// metadata such as trusted.overlay.opaque or .redirect), security.selinux (the host labels
// files), system.* — is never applied, and counted in skipped_xattrs().
XattrRule ClassifyXattr(const std::string& name) {
  if (name.starts_with("user.") || name == "security.capability") return XattrRule::kApply;
  return XattrRule::kIgnore;
}

// mtime as the kernel wants it, atime = mtime (tar keeps no useful atime).
void EntryTimes(int64_t sec, int64_t nsec, struct timespec ts[2]) {
  ts[0].tv_sec = static_cast<time_t>(sec);
  ts[0].tv_nsec = (nsec >= 0 && nsec < 1000000000) ? static_cast<long>(nsec) : 0;
  ts[1] = ts[0];
}

// The depth of a member name once ".." is taken into account (lexically; for ordering only).
size_t Depth(const std::vector<std::string>& components) {
  size_t depth = 0;
  for (const std::string& c : components) {
    if (c == "..") {
      if (depth > 0) --depth;
    } else {
      ++depth;
    }
  }
  return depth;
}

// Opens parent/name as a directory for reading, never following a symlink at name.
Result<UniqueFd> OpenDirNoFollow(int parent_fd, const std::string& name) {
  UniqueFd fd(openat(parent_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return ErrnoError(errno, "open " + name);
  return fd;
}

// A readable fd of the directory that `opath_fd` (O_PATH) refers to.
Result<UniqueFd> ReopenDir(int opath_fd) {
  UniqueFd fd(openat(opath_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return ErrnoError(errno, "open directory");
  return fd;
}

// Sets the mode of parent/name (a fifo or device just created there) without following a
// symlink. Without fchmodat2 (kernels before 6.6), a fifo is opened (non-blocking, O_NOFOLLOW)
// and fchmod'ed; a device keeps the mode mknodat gave it (less the umask): opening a device
// could have side effects.
Status SetNodeMode(FileSystem* fs, int parent_fd, const std::string& name, mode_t mode,
                   bool is_fifo) {
  if (fs->FchmodAt(parent_fd, name, mode, AT_SYMLINK_NOFOLLOW).ok()) return OkStatus();
  if (errno != ENOSYS) return ErrnoError(errno, "chmod " + name);
  if (!is_fifo) return OkStatus();
  Result<UniqueFd> fd = fs->OpenAt(parent_fd, name, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_NOCTTY);
  if (!fd.ok()) return ErrnoError(errno, "open " + name);
  if (!fs->Fchmod(fd->get(), mode).ok()) return ErrnoError(errno, "chmod " + name);
  return OkStatus();
}

}  // namespace

size_t Extractor::DirentKeyHash::operator()(const DirentKey& k) const {
  size_t h = std::hash<std::string>()(k.name);
  h ^= std::hash<uint64_t>()(static_cast<uint64_t>(k.ino)) + 0x9e3779b97f4a7c15ULL + (h << 6) +
       (h >> 2);
  h ^= std::hash<uint64_t>()(static_cast<uint64_t>(k.dev)) + 0x9e3779b97f4a7c15ULL + (h << 6) +
       (h >> 2);
  return h;
}

Status ImageBudget::Take(uint64_t n) {
  uint64_t used = used_.load();
  do {
    if (n > max_bytes_ - used) {
      return ResourceExhaustedError("image exceeds " + std::to_string(max_bytes_) +
                                    " bytes of file data (the image cap, --max-image-size)");
    }
  } while (!used_.compare_exchange_weak(used, used + n));
  return OkStatus();
}

void Extractor::ReturnImageBudget() {
  if (options_.image_budget != nullptr) options_.image_budget->Give(budget_taken_);
  budget_taken_ = 0;
}

Extractor::Extractor(int root_fd, ExtractOptions options)
    : options_(options),
      fs_(options.fs != nullptr ? options.fs : FileSystem::Default()),
      is_root_(geteuid() == 0) {
  root_.reset(fcntl(root_fd, F_DUPFD_CLOEXEC, 0));
  struct stat st;
  if (!root_ || fstat(root_.get(), &st) != 0) {
    status_ = ErrnoError(errno, "extract: root directory");
  } else if (!S_ISDIR(st.st_mode)) {
    status_ = InvalidArgumentError("extract: root is not a directory");
  }
}

Extractor::~Extractor() = default;

Status Extractor::Fail(Status s, const std::string& member) {
  file_.reset();
  in_entry_ = false;
  // Entry names and link targets come from the archive: every message about an entry leaves
  // here terminal-safe (TerminalSafe is idempotent, so parts quoted already stay as they are).
  status_ =
      Status(s.code(), TerminalSafe(s.message())).WithContext("extract " + TerminalSafe(member));
  return status_;
}

Status Extractor::OnEntry(const TarEntry& e) {
  if (!status_.ok()) return status_;
  if (in_entry_) return Fail(InternalError("entry started before the last one ended"), e.path);
  in_entry_ = true;
  entry_ = e;
  file_.reset();
  discard_data_ = false;
  received_ = 0;
  has_holes_ = false;
  Status s = ApplyEntry(e);
  if (!s.ok()) return Fail(std::move(s), e.path);
  return OkStatus();
}

Status Extractor::OnData(const char* data, size_t n) {
  if (!status_.ok()) return status_;
  if (!in_entry_) return Fail(InternalError("data outside an entry"), entry_.path);
  if (!file_ || discard_data_) return OkStatus();  // not a stored file: nothing to keep
  Status s = CountFileBytes(n);
  if (s.ok()) s = WriteData(data, n);
  if (!s.ok()) return Fail(std::move(s), entry_.path);
  received_ += static_cast<int64_t>(n);
  total_bytes_ += n;
  return OkStatus();
}

Status Extractor::OnHole(uint64_t n) {
  if (!status_.ok()) return status_;
  if (!in_entry_) return Fail(InternalError("hole outside an entry"), entry_.path);
  if (!file_ || discard_data_) return OkStatus();
  Status s = CountFileBytes(n);
  if (s.ok() && lseek(file_.get(), static_cast<off_t>(n), SEEK_CUR) < 0) {
    s = ErrnoError(errno, "seek past a hole");
  }
  if (!s.ok()) return Fail(std::move(s), entry_.path);
  received_ += static_cast<int64_t>(n);
  total_bytes_ += n;
  has_holes_ = true;
  return OkStatus();
}

Status Extractor::WriteData(const char* data, size_t n) {
  if (fs_->Write(file_.get(), data, n).ok()) return OkStatus();
  const int err = errno;
  // The most likely failure of an extraction, said plainly (Fail adds the member's name).
  if (err == ENOSPC) return ResourceExhaustedError("no space left on device writing file data");
  if (err == EDQUOT) return ResourceExhaustedError("disk quota exceeded writing file data");
  return ErrnoError(err, "write");
}

Status Extractor::CountFileBytes(uint64_t n) const {
  if (n > static_cast<uint64_t>(entry_.size - received_)) {
    return DataLossError("more data than the entry's size " + std::to_string(entry_.size));
  }
  if (n > options_.max_total_bytes - total_bytes_) {
    return ResourceExhaustedError("layer exceeds " + std::to_string(options_.max_total_bytes) +
                                  " bytes of file data");
  }
  return OkStatus();
}

Status Extractor::OnEntryEnd() {
  if (!status_.ok()) return status_;
  if (!in_entry_) return Fail(InternalError("entry end outside an entry"), entry_.path);
  if (file_) {
    Status s = EndRegularFile();
    if (!s.ok()) return Fail(std::move(s), entry_.path);
  }
  in_entry_ = false;
  return OkStatus();
}

Status Extractor::Finish() {
  if (!status_.ok()) return status_;
  if (in_entry_) return Fail(InternalError("finish inside an entry"), entry_.path);
  std::vector<const PendingDir*> dirs;
  dirs.reserve(pending_dirs_.size());
  for (const auto& [key, dir] : pending_dirs_) dirs.push_back(&dir);
  std::stable_sort(dirs.begin(), dirs.end(), [](const PendingDir* a, const PendingDir* b) {
    return Depth(a->components) > Depth(b->components);
  });
  for (const PendingDir* d : dirs) {
    std::string member;
    for (const std::string& c : d->components) member += (member.empty() ? "" : "/") + c;
    if (member.empty()) member = ".";
    UniqueFd fd;
    if (d->components.empty()) {
      fd.reset(openat(root_.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      if (!fd) return Fail(ErrnoError(errno, "open root"), member);
    } else {
      std::span<const std::string> comps(d->components);
      Result<UniqueFd> parent =
          OpenDirInRoot(root_.get(), comps.first(comps.size() - 1), false, options_.resolve);
      if (!parent.ok()) {
        if (parent.status().code() == StatusCode::kNotFound) continue;  // removed since
        return Fail(parent.status(), member);
      }
      fd.reset(openat(parent->get(), comps.back().c_str(),
                      O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!fd) {
        // Replaced since by something that is not a directory: nothing to apply.
        if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP) continue;
        return Fail(ErrnoError(errno, "open"), member);
      }
    }
    struct stat st;
    if (fstat(fd.get(), &st) != 0) return Fail(ErrnoError(errno, "stat"), member);
    auto it = pending_dirs_.find({st.st_dev, st.st_ino});
    if (it == pending_dirs_.end() || &it->second != d) continue;  // another directory now
    if (!fs_->Fchmod(fd.get(), d->mode & 07777).ok()) {
      return Fail(ErrnoError(errno, "chmod"), member);
    }
    struct timespec ts[2];
    EntryTimes(d->mtime_sec, d->mtime_nsec, ts);
    if (!fs_->Futimens(fd.get(), ts).ok()) return Fail(ErrnoError(errno, "set times"), member);
  }
  pending_dirs_.clear();
  return OkStatus();
}

Status Extractor::ApplyEntry(const TarEntry& e) {
  ASSIGN_OR_RETURN(std::vector<std::string> comps, SplitMemberPath(e.path));
  for (const auto& [name, value] : e.xattrs) {
    if (name.empty() || name.find('\0') != std::string::npos) {
      return DataLossError("invalid xattr name");
    }
  }
  if (comps.empty()) {
    if (e.type != EntryType::kDirectory) {
      return DataLossError(std::string("a ") + TypeName(e.type) +
                           " cannot replace the root directory");
    }
    return ApplyRootDirectory(e);
  }
  if (comps.back() == "..") return DataLossError("member name ends in \"..\"");
  if (comps.back().starts_with(kWhiteoutPrefix)) comps = CleanLexically(std::move(comps));
  const std::string& name = comps.back();
  if (name.starts_with(kWhiteoutPrefix)) {
    discard_data_ = true;
    if (name != kOpaqueMarker) {
      if (name.starts_with(kWhiteoutMetaPrefix)) return OkStatus();  // aufs metadata: ignored
      std::string target = name.substr(sizeof(kWhiteoutPrefix) - 1);
      if (target.empty() || target == "." || target == "..") {
        return DataLossError("invalid whiteout " + name);
      }
    }
    if (options_.whiteouts != WhiteoutMode::kOciFiles) return ApplyWhiteout(comps);
    // kOciFiles: the marker itself is kept, as an empty regular file.
    TarEntry marker = e;
    marker.type = EntryType::kRegular;
    marker.size = 0;
    entry_ = marker;
    return CreateEntry(marker, comps);
  }
  return CreateEntry(e, comps);
}

Status Extractor::CreateEntry(const TarEntry& e, std::span<const std::string> components) {
  const std::string& name = components.back();
  std::span<const std::string> parent_components = components.first(components.size() - 1);
  Result<const Parent*> resolved = NewEntryParent(parent_components);
  if (!resolved.ok() && resolved.status().code() == StatusCode::kNotFound &&
      !overlay_whiteouts_.empty()) {
    RETURN_IF_ERROR(ReplaceWhiteoutsOnPath(parent_components));
    resolved = NewEntryParent(parent_components);
  }
  if (!resolved.ok()) return resolved.status();
  const Parent& parent = **resolved;
  switch (e.type) {
    case EntryType::kDirectory:
      return CreateDirectory(parent, name, e, components);
    case EntryType::kRegular:
      return BeginRegularFile(parent, name, e);
    case EntryType::kSymlink:
      return CreateSymlink(parent, name, e);
    case EntryType::kHardlink:
      return CreateHardlink(parent, name, e);
    case EntryType::kCharDevice:
    case EntryType::kBlockDevice:
    case EntryType::kFifo:
      return CreateNode(parent, name, e);
  }
  return DataLossError("unknown entry type");
}

Result<Extractor::Parent> Extractor::ResolveParent(std::span<const std::string> components,
                                                   bool create) {
  Parent p;
  ASSIGN_OR_RETURN(p.fd, OpenDirInRoot(root_.get(), components, create, options_.resolve, fs_));
  struct stat st;
  if (fstat(p.fd.get(), &st) != 0) return ErrnoError(errno, "stat parent directory");
  p.dev = st.st_dev;
  p.ino = st.st_ino;
  return p;
}

Result<const Extractor::Parent*> Extractor::NewEntryParent(
    std::span<const std::string> components) {
  if (parent_cache_ && !parent_cache_stale_ &&
      std::equal(components.begin(), components.end(), parent_cache_->components.begin(),
                 parent_cache_->components.end())) {
    return &parent_cache_->parent;
  }
  parent_cache_.reset();
  ASSIGN_OR_RETURN(Parent p, ResolveParent(components, true));
  parent_cache_ = CachedParent{{components.begin(), components.end()}, std::move(p)};
  parent_cache_stale_ = false;
  return &parent_cache_->parent;
}

void Extractor::MarkWritten(const Parent& parent, const std::string& name) {
  written_.insert(DirentKey{parent.dev, parent.ino, name});
}

bool Extractor::WasWritten(dev_t dev, ino_t ino, const std::string& name) const {
  return written_.contains(DirentKey{dev, ino, name});
}

Status Extractor::ApplyRootDirectory(const TarEntry& e) {
  UniqueFd fd(openat(root_.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return ErrnoError(errno, "open root");
  RETURN_IF_ERROR(SetOwner(fd.get(), e));
  if (!fs_->Fchmod(fd.get(), (e.mode & 07777) | S_IRWXU).ok()) return ErrnoError(errno, "chmod");
  RETURN_IF_ERROR(RemoveOtherXattrs(fd.get(), e));
  RETURN_IF_ERROR(SetXattrs(fd.get(), e));
  struct stat st;
  if (fstat(fd.get(), &st) != 0) return ErrnoError(errno, "stat");
  pending_dirs_[{st.st_dev, st.st_ino}] = PendingDir{{}, e.mode, e.mtime_sec, e.mtime_nsec};
  return OkStatus();
}

Status Extractor::CreateDirectory(const Parent& parent, const std::string& name, const TarEntry& e,
                                  std::span<const std::string> components) {
  const bool replaces_whiteout = IsOwnWhiteout(parent, name);
  ASSIGN_OR_RETURN(bool exists, ClearForNew(parent.fd.get(), name, true));
  if (!exists && !fs_->MkdirAt(parent.fd.get(), name, 0700).ok()) {
    return ErrnoError(errno, "mkdir");
  }
  ASSIGN_OR_RETURN(UniqueFd fd, OpenDirNoFollow(parent.fd.get(), name));
  MarkWritten(parent, name);
  if (replaces_whiteout) {
    overlay_whiteouts_.erase(DirentKey{parent.dev, parent.ino, name});
    RETURN_IF_ERROR(MakeOpaque(fd.get()));
  }
  RETURN_IF_ERROR(SetOwner(fd.get(), e));
  // Owner-writable until Finish(), so the layer can fill it whatever its final mode.
  if (!fs_->Fchmod(fd.get(), (e.mode & 07777) | S_IRWXU).ok()) return ErrnoError(errno, "chmod");
  if (exists) RETURN_IF_ERROR(RemoveOtherXattrs(fd.get(), e));
  RETURN_IF_ERROR(SetXattrs(fd.get(), e));
  struct stat st;
  if (fstat(fd.get(), &st) != 0) return ErrnoError(errno, "stat");
  pending_dirs_[{st.st_dev, st.st_ino}] =
      PendingDir{{components.begin(), components.end()}, e.mode, e.mtime_sec, e.mtime_nsec};
  return OkStatus();
}

Status Extractor::BeginRegularFile(const Parent& parent, const std::string& name,
                                   const TarEntry& e) {
  if (e.size < 0) return DataLossError("negative size");
  if (static_cast<uint64_t>(e.size) > options_.max_total_bytes - total_bytes_) {
    return ResourceExhaustedError("layer exceeds " + std::to_string(options_.max_total_bytes) +
                                  " bytes of file data");
  }
  if (options_.image_budget != nullptr) {
    RETURN_IF_ERROR(options_.image_budget->Take(static_cast<uint64_t>(e.size)));
    budget_taken_ += static_cast<uint64_t>(e.size);
  }
  // Created first, and only if something is in the way, that is removed and the file created
  // again: most names are new, and the lookup ClearForNew would make first is spared.
  auto create = [&] {
    return fs_->OpenAt(parent.fd.get(), name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
  };
  Result<UniqueFd> file = create();
  if (!file.ok() && errno == EEXIST) {
    ASSIGN_OR_RETURN(bool unused, ClearForNew(parent.fd.get(), name, false));
    (void)unused;
    file = create();
  }
  if (!file.ok()) return ErrnoError(errno, "create");
  file_ = std::move(*file);
  MarkWritten(parent, name);
  return OkStatus();
}

Status Extractor::EndRegularFile() {
  UniqueFd fd = std::move(file_);
  if (!discard_data_ && received_ != entry_.size) {
    return DataLossError("got " + std::to_string(received_) + " of " + std::to_string(entry_.size) +
                         " bytes");
  }
  // After a hole the file ends where the last data did; its size is the entry's.
  if (has_holes_ && !fs_->Ftruncate(fd.get(), static_cast<off_t>(entry_.size)).ok()) {
    return ErrnoError(errno, "truncate");
  }
  // Owner before mode (chown clears setuid/setgid), xattrs after both (chown drops
  // security.capability), times last.
  RETURN_IF_ERROR(SetOwner(fd.get(), entry_));
  if (!fs_->Fchmod(fd.get(), entry_.mode & 07777).ok()) return ErrnoError(errno, "chmod");
  RETURN_IF_ERROR(SetXattrs(fd.get(), entry_));
  struct timespec ts[2];
  EntryTimes(entry_.mtime_sec, entry_.mtime_nsec, ts);
  if (!fs_->Futimens(fd.get(), ts).ok()) return ErrnoError(errno, "set times");
  return OkStatus();
}

Status Extractor::CreateSymlink(const Parent& parent, const std::string& name, const TarEntry& e) {
  if (e.linkname.empty()) return DataLossError("symlink with an empty target");
  if (e.linkname.find('\0') != std::string::npos) {
    return DataLossError("symlink target contains a NUL byte");
  }
  // As for files: created first, and again once whatever is in the way is removed.
  Status made = fs_->SymlinkAt(e.linkname, parent.fd.get(), name);
  if (!made.ok() && errno == EEXIST) {
    ASSIGN_OR_RETURN(bool unused, ClearForNew(parent.fd.get(), name, false));
    (void)unused;
    made = fs_->SymlinkAt(e.linkname, parent.fd.get(), name);
  }
  if (!made.ok()) return ErrnoError(errno, "symlink");
  MarkWritten(parent, name);
  RETURN_IF_ERROR(SetOwnerAt(parent.fd.get(), name, e));
  // No mode (symlinks have none) and no xattrs (user.* is not allowed on symlinks).
  struct timespec ts[2];
  EntryTimes(e.mtime_sec, e.mtime_nsec, ts);
  if (!fs_->UtimensAt(parent.fd.get(), name, ts, AT_SYMLINK_NOFOLLOW).ok()) {
    return ErrnoError(errno, "set times");
  }
  return OkStatus();
}

Status Extractor::CreateHardlink(const Parent& parent, const std::string& name, const TarEntry& e) {
  ASSIGN_OR_RETURN(std::vector<std::string> target, SplitMemberPath(e.linkname));
  if (target.empty() || target.back() == "..") {
    return DataLossError("hardlink to a directory (" + e.linkname + ")");
  }
  auto missing = [&]() -> Status {
    if (!options_.defer_missing_hardlinks) {
      return DataLossError("hardlink target " + e.linkname + " does not exist");
    }
    return AddLowerHardlink(e);
  };
  Result<Parent> tparent =
      ResolveParent(std::span<const std::string>(target).first(target.size() - 1), false);
  if (!tparent.ok()) {
    if (tparent.status().code() == StatusCode::kNotFound) return missing();
    return tparent.status();
  }
  const std::string& tname = target.back();
  struct stat tst;
  if (fstatat(tparent->fd.get(), tname.c_str(), &tst, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return missing();
    return ErrnoError(errno, "stat hardlink target " + e.linkname);
  }
  if (S_ISDIR(tst.st_mode)) return DataLossError("hardlink to a directory (" + e.linkname + ")");
  struct stat st;
  if (fstatat(parent.fd.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
      st.st_dev == tst.st_dev && st.st_ino == tst.st_ino) {
    MarkWritten(parent, name);  // already that very file (e.g. a link to itself)
    return OkStatus();
  }
  ASSIGN_OR_RETURN(bool unused, ClearForNew(parent.fd.get(), name, false));
  (void)unused;
  // flags 0: a symlink target is linked itself, never followed.
  if (!fs_->LinkAt(tparent->fd.get(), tname, parent.fd.get(), name).ok()) {
    if (errno == ENOENT) return DataLossError("hardlink target " + e.linkname + " is gone");
    return ErrnoError(errno, "link to " + e.linkname);
  }
  MarkWritten(parent, name);
  return OkStatus();
}

Status Extractor::AddLowerHardlink(const TarEntry& e) {
  if (lower_hardlinks_.size() >= options_.max_lower_hardlinks) {
    return ResourceExhaustedError("layer has more than " +
                                  std::to_string(options_.max_lower_hardlinks) +
                                  " hardlinks to files of lower layers");
  }
  const uint64_t bytes = e.path.size() + e.linkname.size();
  if (bytes > options_.max_lower_hardlink_bytes - lower_hardlink_bytes_) {
    return ResourceExhaustedError("names of hardlinks to files of lower layers exceed " +
                                  std::to_string(options_.max_lower_hardlink_bytes) + " bytes");
  }
  lower_hardlink_bytes_ += bytes;
  lower_hardlinks_.emplace_back(e.path, e.linkname);
  return OkStatus();
}

Status Extractor::CreateNode(const Parent& parent, const std::string& name, const TarEntry& e) {
  const bool is_fifo = e.type == EntryType::kFifo;
  if (!is_fifo && !is_root_) {
    ++skipped_devices_;
    return OkStatus();
  }
  ASSIGN_OR_RETURN(bool unused, ClearForNew(parent.fd.get(), name, false));
  (void)unused;
  mode_t type = is_fifo ? S_IFIFO : e.type == EntryType::kCharDevice ? S_IFCHR : S_IFBLK;
  dev_t dev = is_fifo ? 0 : makedev(e.dev_major, e.dev_minor);
  if (!fs_->MknodAt(parent.fd.get(), name, type | (e.mode & 0777), dev).ok()) {
    if (!is_fifo && errno == EPERM) {  // e.g. root in a user namespace
      ++skipped_devices_;
      return OkStatus();
    }
    return ErrnoError(errno, "mknod");
  }
  MarkWritten(parent, name);
  RETURN_IF_ERROR(SetOwnerAt(parent.fd.get(), name, e));
  RETURN_IF_ERROR(SetNodeMode(fs_, parent.fd.get(), name, e.mode & 07777, is_fifo));
  struct timespec ts[2];
  EntryTimes(e.mtime_sec, e.mtime_nsec, ts);
  if (!fs_->UtimensAt(parent.fd.get(), name, ts, AT_SYMLINK_NOFOLLOW).ok()) {
    return ErrnoError(errno, "set times");
  }
  return OkStatus();
}

Status Extractor::ApplyWhiteout(std::span<const std::string> components) {
  ForgetParent();  // it removes
  if (options_.whiteouts == WhiteoutMode::kOverlay) return WhiteoutOverlay(components);
  return WhiteoutLower(components);
}

Status Extractor::WhiteoutLower(std::span<const std::string> components) {
  const std::string& marker = components.back();
  Result<Parent> parent = ResolveParent(components.first(components.size() - 1), false);
  if (!parent.ok()) {
    // Nothing below a missing directory to remove.
    if (parent.status().code() == StatusCode::kNotFound) return OkStatus();
    return parent.status();
  }
  if (marker == kOpaqueMarker) {
    ASSIGN_OR_RETURN(UniqueFd dir, ReopenDir(parent->fd.get()));
    ASSIGN_OR_RETURN(bool empty, PurgeLower(dir.get()));
    (void)empty;
    return OkStatus();
  }
  std::string target = marker.substr(sizeof(kWhiteoutPrefix) - 1);
  struct stat st;
  if (fstatat(parent->fd.get(), target.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return OkStatus();
    return ErrnoError(errno, "stat whiteout target " + target);
  }
  const bool written = WasWritten(parent->dev, parent->ino, target);
  if (!S_ISDIR(st.st_mode)) {
    if (written) return OkStatus();  // this layer's own: it replaced the lower one already
    // A symlink is removed itself, never its target.
    if (!fs_->UnlinkAt(parent->fd.get(), target, 0).ok()) {
      return ErrnoError(errno, "remove " + target);
    }
    return OkStatus();
  }
  // A directory: the lower content goes; what this layer wrote there (the directory entry
  // itself, or anything below it) stays.
  ASSIGN_OR_RETURN(UniqueFd dir, OpenDirNoFollow(parent->fd.get(), target));
  ASSIGN_OR_RETURN(bool empty, PurgeLower(dir.get()));
  if (empty && !written && !fs_->UnlinkAt(parent->fd.get(), target, AT_REMOVEDIR).ok()) {
    return ErrnoError(errno, "remove " + target);
  }
  return OkStatus();
}

Status Extractor::WhiteoutOverlay(std::span<const std::string> components) {
  const std::string& marker = components.back();
  Result<Parent> resolved = ResolveParent(components.first(components.size() - 1), true);
  if (!resolved.ok()) {
    // A non-directory of this layer on the way (a file, or a whiteout) hides everything
    // below it in the lower layers already.
    if (resolved.status().code() == StatusCode::kNotFound) return OkStatus();
    return resolved.status();
  }
  const Parent& parent = *resolved;
  if (marker == kOpaqueMarker) {
    ASSIGN_OR_RETURN(UniqueFd dir, ReopenDir(parent.fd.get()));
    return MakeOpaque(dir.get());
  }
  std::string target = marker.substr(sizeof(kWhiteoutPrefix) - 1);
  // Everything in this directory is this layer's: it hides the lower target already, except a
  // directory, which must become opaque. A directory that only held whiteouts and parents made
  // for them (nothing this layer wrote) becomes a whiteout itself.
  struct stat st;
  if (fstatat(parent.fd.get(), target.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
    if (!S_ISDIR(st.st_mode)) return OkStatus();
    {
      ASSIGN_OR_RETURN(UniqueFd dir, OpenDirNoFollow(parent.fd.get(), target));
      ASSIGN_OR_RETURN(bool empty, PurgeLower(dir.get()));
      if (!empty || WasWritten(parent.dev, parent.ino, target)) return MakeOpaque(dir.get());
    }
    if (!fs_->UnlinkAt(parent.fd.get(), target, AT_REMOVEDIR).ok()) {
      return ErrnoError(errno, "remove " + target);
    }
  } else if (errno != ENOENT) {
    return ErrnoError(errno, "stat whiteout target " + target);
  }
  if (!fs_->MknodAt(parent.fd.get(), target, S_IFCHR, makedev(0, 0)).ok()) {
    int err = errno;
    if (err == EPERM) {
      return FailedPreconditionError("overlay whiteout " + target +
                                     " needs root: " + strerror(err));
    }
    return ErrnoError(err, "create overlay whiteout " + target);
  }
  overlay_whiteouts_.insert(DirentKey{parent.dev, parent.ino, target});
  return OkStatus();
}

bool Extractor::IsOwnWhiteout(const Parent& parent, const std::string& name) const {
  if (!overlay_whiteouts_.contains(DirentKey{parent.dev, parent.ino, name})) return false;
  struct stat st;
  return fstatat(parent.fd.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
         S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0);
}

Status Extractor::MakeOpaque(int dir_fd) {
  if (!fs_->Fsetxattr(dir_fd, kOverlayOpaqueXattr, "y", 1, 0).ok()) {
    int err = errno;
    if (err == EPERM || err == ENOTSUP) {
      return FailedPreconditionError(std::string("overlay opaque marker needs root and ") +
                                     "trusted xattrs: " + strerror(err));
    }
    return ErrnoError(err, "set overlay opaque marker");
  }
  return OkStatus();
}

Status Extractor::ReplaceWhiteoutsOnPath(std::span<const std::string> components) {
  ForgetParent();  // it replaces
  for (size_t i = 0; i < components.size(); ++i) {
    const std::string& name = components[i];
    if (name == "..") continue;
    ASSIGN_OR_RETURN(Parent parent, ResolveParent(components.first(i), true));
    if (!IsOwnWhiteout(parent, name)) continue;
    if (!fs_->UnlinkAt(parent.fd.get(), name, 0).ok() ||
        !fs_->MkdirAt(parent.fd.get(), name, 0755).ok()) {
      return ErrnoError(errno, "replace whiteout " + name + " by a directory");
    }
    overlay_whiteouts_.erase(DirentKey{parent.dev, parent.ino, name});
    ASSIGN_OR_RETURN(UniqueFd dir, OpenDirNoFollow(parent.fd.get(), name));
    RETURN_IF_ERROR(MakeOpaque(dir.get()));
  }
  return OkStatus();
}

Result<bool> Extractor::ClearForNew(int parent_fd, const std::string& name, bool keep_directory) {
  struct stat st;
  if (fstatat(parent_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return false;
    return ErrnoError(errno, "stat " + name);
  }
  if (S_ISDIR(st.st_mode) && keep_directory) return true;
  // `name` may be on the way to the cached parent (a directory, or a symlink to one). The
  // caller's `parent_fd` stays valid: it is the directory holding `name`.
  ForgetParent();
  if (S_ISDIR(st.st_mode)) {
    RETURN_IF_ERROR(RemoveAllAt(parent_fd, name));
    return false;
  }
  if (!fs_->UnlinkAt(parent_fd, name, 0).ok()) return ErrnoError(errno, "remove " + name);
  return false;
}

Status Extractor::RemoveAllAt(int parent_fd, const std::string& name) {
  struct stat st;
  if (fstatat(parent_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return OkStatus();
    return ErrnoError(errno, "stat " + name);
  }
  if (!S_ISDIR(st.st_mode)) {
    if (!fs_->UnlinkAt(parent_fd, name, 0).ok() && errno != ENOENT) {
      return ErrnoError(errno, "remove " + name);
    }
    return OkStatus();
  }
  {
    ASSIGN_OR_RETURN(UniqueFd dir, OpenDirNoFollow(parent_fd, name));
    RETURN_IF_ERROR(MakeOwnerWritable(dir.get()));
    ASSIGN_OR_RETURN(std::vector<std::string> children, ListDir(dir.get()));
    for (const std::string& child : children) {
      RETURN_IF_ERROR(RemoveAllAt(dir.get(), child).WithContext(name));
    }
  }
  if (!fs_->UnlinkAt(parent_fd, name, AT_REMOVEDIR).ok() && errno != ENOENT) {
    return ErrnoError(errno, "remove " + name);
  }
  return OkStatus();
}

Result<bool> Extractor::PurgeLower(int dir_fd) {
  struct stat dst;
  if (fstat(dir_fd, &dst) != 0) return ErrnoError(errno, "stat directory");
  RETURN_IF_ERROR(MakeOwnerWritable(dir_fd));
  ASSIGN_OR_RETURN(std::vector<std::string> children, ListDir(dir_fd));
  bool empty = true;
  for (const std::string& child : children) {
    struct stat st;
    if (fstatat(dir_fd, child.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) continue;
      return ErrnoError(errno, "stat " + child);
    }
    const bool written = WasWritten(dst.st_dev, dst.st_ino, child);
    if (!S_ISDIR(st.st_mode)) {
      if (written) {
        empty = false;
      } else if (!fs_->UnlinkAt(dir_fd, child, 0).ok()) {
        return ErrnoError(errno, "remove " + child);
      }
      continue;
    }
    // A directory: lower content below it goes in any case; it stays if this layer wrote it
    // or anything inside it.
    bool child_empty;
    {
      ASSIGN_OR_RETURN(UniqueFd sub, OpenDirNoFollow(dir_fd, child));
      Result<bool> r = PurgeLower(sub.get());
      if (!r.ok()) return r.status().WithContext(child);
      child_empty = *r;
    }
    if (written || !child_empty) {
      empty = false;
    } else if (!fs_->UnlinkAt(dir_fd, child, AT_REMOVEDIR).ok()) {
      return ErrnoError(errno, "remove " + child);
    }
  }
  return empty;
}

Status Extractor::MakeOwnerWritable(int dir_fd) {
  if (is_root_) return OkStatus();
  struct stat st;
  if (fstat(dir_fd, &st) != 0) return ErrnoError(errno, "stat directory");
  if ((st.st_mode & S_IRWXU) == S_IRWXU) return OkStatus();
  if (!fs_->Fchmod(dir_fd, (st.st_mode & 07777) | S_IRWXU).ok()) return ErrnoError(errno, "chmod");
  return OkStatus();
}

Status Extractor::SetOwner(int fd, const TarEntry& e) {
  if (!options_.preserve_owner) return OkStatus();
  if (e.uid < 0 || e.uid >= 0xFFFFFFFFLL || e.gid < 0 || e.gid >= 0xFFFFFFFFLL) {
    return DataLossError("uid/gid out of range");
  }
  if (!fs_->Fchown(fd, static_cast<uid_t>(e.uid), static_cast<gid_t>(e.gid)).ok()) {
    return ErrnoError(errno, "chown");
  }
  return OkStatus();
}

Status Extractor::SetOwnerAt(int parent_fd, const std::string& name, const TarEntry& e) {
  if (!options_.preserve_owner) return OkStatus();
  if (e.uid < 0 || e.uid >= 0xFFFFFFFFLL || e.gid < 0 || e.gid >= 0xFFFFFFFFLL) {
    return DataLossError("uid/gid out of range");
  }
  if (!fs_->FchownAt(parent_fd, name, static_cast<uid_t>(e.uid), static_cast<gid_t>(e.gid),
                     AT_SYMLINK_NOFOLLOW)
           .ok()) {
    return ErrnoError(errno, "chown");
  }
  return OkStatus();
}

Status Extractor::RemoveOtherXattrs(int fd, const TarEntry& e) {
  ssize_t n = flistxattr(fd, nullptr, 0);
  if (n < 0 && errno == ENOTSUP) return OkStatus();
  if (n < 0) return ErrnoError(errno, "list xattrs");
  std::string names(static_cast<size_t>(n), '\0');
  n = flistxattr(fd, names.data(), names.size());
  if (n < 0) return ErrnoError(errno, "list xattrs");
  names.resize(static_cast<size_t>(n));
  for (size_t pos = 0; pos < names.size();) {
    std::string name(names.c_str() + pos);
    pos += name.size() + 1;
    if (ClassifyXattr(name) != XattrRule::kApply) continue;  // not ours to manage
    if (std::any_of(e.xattrs.begin(), e.xattrs.end(),
                    [&](const auto& x) { return x.first == name; })) {
      continue;
    }
    if (!fs_->Fremovexattr(fd, name).ok()) {
      int err = errno;
      if (err == ENODATA || (err == EPERM && !is_root_)) continue;
      return ErrnoError(err, "remove xattr " + name);
    }
  }
  return OkStatus();
}

Status Extractor::SetXattrs(int fd, const TarEntry& e) {
  for (const auto& [name, value] : e.xattrs) {
    if (ClassifyXattr(name) != XattrRule::kApply) {
      ++skipped_xattrs_;
      continue;
    }
    if (!fs_->Fsetxattr(fd, name, value.data(), value.size(), 0).ok()) {
      int err = errno;
      if (err == ENOTSUP || (err == EPERM && !is_root_)) {
        ++skipped_xattrs_;
        continue;
      }
      return ErrnoError(err, "set xattr " + name);
    }
  }
  return OkStatus();
}

}  // namespace hoist::unpack
