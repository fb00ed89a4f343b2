#include "unpack/merge.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>
#include <utility>
#include <vector>

#include "base/status_macros.h"
#include "base/unique_fd.h"
#include "unpack/path.h"
#include "unpack/whiteout.h"

#ifndef SYS_openat2
#define SYS_openat2 437
#endif

namespace hoist::unpack {
namespace {

constexpr uint32_t kNone = UINT32_MAX;
// Directories made during an extraction are dated after it began, give or take a clock step.
constexpr int64_t kClockSlackSec = 600;
constexpr size_t kMaxDepth = 256;  // deeper trees are applied from the tar streams instead
// Directory fds the planner holds at once (one a layer at each level it stands on): past this,
// the tar streams are applied instead of running out of descriptors.
constexpr size_t kMaxOpenDirs = 512;
constexpr size_t kChunk = 32;  // entries a writer takes at a time

using Xattrs = std::vector<std::pair<std::string, std::string>>;

Status NotMergeable(const std::string& why) {
  return FailedPreconditionError("not mergeable: " + why);
}

std::string Join(const std::string& dir, const std::string& name) {
  return dir.empty() ? name : dir + "/" + name;
}

std::vector<std::string> Split(const std::string& path) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    out.push_back(path.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

// xattrs the extractor applies (extractor.h): the only ones a layer directory's entries carry
// besides overlay's own markers.
bool Allowlisted(std::string_view name) {
  return name.starts_with("user.") || name == "security.capability";
}

// The allowlisted xattrs of fd, sorted by name.
Result<Xattrs> ReadXattrs(int fd) {
  Xattrs out;
  std::string names(256, '\0');
  for (;;) {
    ssize_t n = flistxattr(fd, names.data(), names.size());
    if (n >= 0) {
      names.resize(static_cast<size_t>(n));
      break;
    }
    if (errno == ENOTSUP) return out;
    if (errno != ERANGE || names.size() >= (1u << 20)) return ErrnoError(errno, "list xattrs");
    names.resize(names.size() * 4);
  }
  for (size_t pos = 0; pos < names.size();) {
    std::string name(names.c_str() + pos);
    pos += name.size() + 1;
    if (!Allowlisted(name)) continue;
    ssize_t n = fgetxattr(fd, name.c_str(), nullptr, 0);
    if (n < 0 && errno == ENODATA) continue;
    if (n < 0) return ErrnoError(errno, "get xattr " + name);
    std::string value(static_cast<size_t>(n), '\0');
    n = fgetxattr(fd, name.c_str(), value.data(), value.size());
    if (n < 0) return ErrnoError(errno, "get xattr " + name);
    value.resize(static_cast<size_t>(n));
    out.emplace_back(std::move(name), std::move(value));
  }
  std::sort(out.begin(), out.end());
  return out;
}

struct DirEntry {
  std::string name;
  unsigned char type;  // d_type; DT_UNKNOWN where the file system does not say
};

// The entries of the directory dir_fd (not "." or ".."), read through a fresh open of it.
Result<std::vector<DirEntry>> ListEntries(int dir_fd) {
  int fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoError(errno, "open directory");
  DIR* dir = fdopendir(fd);
  if (dir == nullptr) {
    int err = errno;
    close(fd);
    return ErrnoError(err, "open directory");
  }
  std::vector<DirEntry> out;
  for (;;) {
    errno = 0;
    struct dirent* d = readdir(dir);
    if (d == nullptr) break;
    if (std::strcmp(d->d_name, ".") == 0 || std::strcmp(d->d_name, "..") == 0) continue;
    out.push_back({d->d_name, d->d_type});
  }
  int err = errno;
  closedir(dir);
  if (err != 0) return ErrnoError(err, "read directory");
  return out;
}

Result<UniqueFd> OpenChildDir(int parent_fd, const std::string& name) {
  UniqueFd fd(openat(parent_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return ErrnoError(errno, "open " + name);
  return fd;
}

// Opens `components` below root_fd (O_PATH|O_DIRECTORY) without following any symlink or
// leaving root_fd's tree: openat2 RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS, or an O_NOFOLLOW walk.
Result<UniqueFd> OpenDirBeneath(int root_fd, const std::vector<std::string>& components) {
  if (KernelResolvesInRoot()) {
    std::string path = ".";
    for (const std::string& c : components) path += "/" + c;
    struct open_how how = {};
    how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    for (int attempt = 0;; ++attempt) {
      long fd = syscall(SYS_openat2, root_fd, path.c_str(), &how, sizeof(how));
      if (fd >= 0) return UniqueFd(static_cast<int>(fd));
      if ((errno == EAGAIN || errno == EINTR) && attempt < 16) continue;
      return ErrnoError(errno, "open " + path);
    }
  }
  UniqueFd cur(openat(root_fd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!cur) return ErrnoError(errno, "open root");
  for (const std::string& c : components) {
    UniqueFd next(openat(cur.get(), c.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!next) return ErrnoError(errno, "open " + c);
    cur = std::move(next);
  }
  return cur;
}

// One entry of the merged tree.
struct Node {
  uint32_t parent = 0;       // the node of its directory (the root: 0, itself)
  uint32_t layer = 0;        // the layer whose entry it is
  uint32_t link_to = kNone;  // a further name of the file of node link_to (a hardlink)
  std::string name;          // in its directory ("" for the root)
  std::string path;          // directories: from the root ("" for the root itself)
  struct stat st = {};       // the layer entry's
};

struct Plan {
  std::vector<Node> nodes;  // pre-order: each directory before its entries; [0] is the root
  std::map<uint32_t, Xattrs> dir_xattrs;
};

// What the merge knows of one name of a directory while it walks that directory's layers from
// the top down.
struct NameState {
  bool decided = false;  // the top entry is known: a winner, or a whiteout (deleted)
  bool closed = false;   // nothing of the lower layers shows through any more
  bool present = false;  // a winner exists
  uint32_t layer = 0;
  struct stat st = {};
  std::vector<size_t> dir_sources;  // chain positions of the directories merged here, top first
  // The directory last seen here (walking down) may be implicit: a non-directory below it (a
  // symlink it would have led through, or a file) makes the layers not mergeable.
  bool nondir_check = false;
  // The winner and every directory below it so far may be implicit: the next directory below
  // must have their metadata, and if there is none, the winner may not hold whiteouts.
  bool meta_check = false;
  bool phantom = false;  // meta_check ran out: nothing below an implicit winner
  uint32_t meta_mode = 0, meta_uid = 0, meta_gid = 0;
  Xattrs meta_xattrs;
};

class Planner {
 public:
  explicit Planner(std::span<const LayerTree> layers)
      : layers_(layers), euid_(geteuid()), root_(euid_ == 0) {}

  Result<Plan> Run() {
    Status s = PlanRoot();
    if (s.code() == StatusCode::kPermissionDenied) return NotMergeable(s.message());
    if (!s.ok()) return s;
    return std::move(plan_);
  }

 private:
  struct Source {
    uint32_t layer;
    UniqueFd fd;  // O_RDONLY|O_DIRECTORY
  };

  bool MaybeImplicit(const struct stat& st, uint32_t layer) const {
    if (!S_ISDIR(st.st_mode) || st.st_uid != euid_ || (st.st_mode & 07777 & ~02755) != 0) {
      return false;
    }
    const int64_t began = layers_[layer].extracted_sec;
    return began == 0 || st.st_mtim.tv_sec >= began - kClockSlackSec;
  }

  static bool IsOverlayWhiteout(const struct stat& st) {
    return S_ISCHR(st.st_mode) && st.st_rdev == 0;
  }

  // A 0/0 character device of an overlay-format layer is a whiteout only if it is what the
  // extractor makes for one (mode 0, the store owner's, made during the extraction).
  Status CheckWhiteoutShape(const struct stat& st, uint32_t layer, const std::string& path) const {
    const int64_t began = layers_[layer].extracted_sec;
    if ((st.st_mode & 07777) != 0 || st.st_uid != euid_ ||
        (began != 0 && st.st_mtim.tv_sec < began - kClockSlackSec)) {
      return NotMergeable("character device 0/0 at " + path + " may be the image's own");
    }
    return OkStatus();
  }

  Status CheckReadable(const struct stat& st, const std::string& path) const {
    if (root_) return OkStatus();
    mode_t need = S_ISDIR(st.st_mode) ? (S_IRUSR | S_IXUSR) : S_ISREG(st.st_mode) ? S_IRUSR : 0;
    if ((st.st_mode & need) != need) return NotMergeable(path + " is not readable by its owner");
    return OkStatus();
  }

  Status PlanRoot();
  Status PlanDir(uint32_t node, std::vector<Source>& chain, bool phantom, size_t depth);
  Status AddNode(uint32_t parent, const std::string& name, NameState& s, std::vector<Source>& chain,
                 size_t depth);
  // Builds the chain of a merged directory from its sources, top first, cut after the first
  // opaque one (the rest are checked as hidden trees).
  Result<std::vector<Source>> OpenChain(const std::vector<std::pair<uint32_t, int>>& parents,
                                        const std::string& name, const std::string& path);
  Result<bool> IsOpaque(const Source& s) const;
  // A directory of a layer that the merge does not show: wherever it may be implicit, no lower
  // layer may have a non-directory in its place (applying the layer would have gone through it).
  Status CheckHidden(uint32_t layer, int dir_fd, const std::string& path, size_t depth);
  Status CheckNoLowerNonDir(uint32_t layer, const std::string& path);

  std::span<const LayerTree> layers_;
  const uid_t euid_;
  const bool root_;
  Plan plan_;
  std::map<std::pair<uint32_t, ino_t>, uint32_t> first_names_;  // (layer, inode) → node
  size_t open_dirs_ = 0;  // directory fds of the chains PlanDir stands on
};

Result<bool> Planner::IsOpaque(const Source& s) const {
  if (layers_[s.layer].whiteouts == WhiteoutMode::kOciFiles) {
    struct stat st;
    if (fstatat(s.fd.get(), kOpaqueMarker, &st, AT_SYMLINK_NOFOLLOW) == 0) return true;
    if (errno != ENOENT) return ErrnoError(errno, "stat opaque marker");
    return false;
  }
  char value[2];
  ssize_t n = fgetxattr(s.fd.get(), kOverlayOpaqueXattr, value, sizeof(value));
  if (n < 0) {
    if (errno == ENODATA || errno == ENOTSUP) return false;
    return ErrnoError(errno, "get opaque marker");
  }
  return n == 1 && value[0] == 'y';
}

Status Planner::PlanRoot() {
  std::vector<Source> all;  // every layer's root, top first
  for (size_t i = layers_.size(); i-- > 0;) {
    UniqueFd fd(openat(layers_[i].rootfs_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd) return ErrnoError(errno, "open layer root");
    all.push_back({static_cast<uint32_t>(i), std::move(fd)});
  }
  if (all.empty()) return InvalidArgumentError("no layers to merge");
  std::vector<struct stat> sts(all.size());
  for (size_t i = 0; i < all.size(); ++i) {
    if (fstat(all[i].fd.get(), &sts[i]) != 0) return ErrnoError(errno, "stat layer root");
  }
  // The root's metadata is the top layer's; a root that may be implicit must agree with the
  // one below it.
  for (size_t i = 0; i + 1 < all.size() && MaybeImplicit(sts[i], all[i].layer); ++i) {
    ASSIGN_OR_RETURN(Xattrs upper, ReadXattrs(all[i].fd.get()));
    ASSIGN_OR_RETURN(Xattrs lower, ReadXattrs(all[i + 1].fd.get()));
    if ((sts[i].st_mode & 07777) != (sts[i + 1].st_mode & 07777) ||
        sts[i].st_uid != sts[i + 1].st_uid || sts[i].st_gid != sts[i + 1].st_gid ||
        upper != lower) {
      return NotMergeable("the root of a layer may be implicit over a different lower root");
    }
  }
  RETURN_IF_ERROR(CheckReadable(sts[0], "."));
  Node root;
  root.layer = all[0].layer;
  root.st = sts[0];
  plan_.nodes.push_back(std::move(root));
  ASSIGN_OR_RETURN(plan_.dir_xattrs[0], ReadXattrs(all[0].fd.get()));
  std::vector<Source> chain;
  for (size_t i = 0; i < all.size(); ++i) {
    ASSIGN_OR_RETURN(bool opaque, IsOpaque(all[i]));
    chain.push_back(std::move(all[i]));
    if (!opaque) continue;
    for (size_t j = i + 1; j < all.size(); ++j) {
      RETURN_IF_ERROR(CheckHidden(all[j].layer, all[j].fd.get(), "", 0));
    }
    break;
  }
  return PlanDir(0, chain, false, 0);
}

Status Planner::CheckNoLowerNonDir(uint32_t layer, const std::string& path) {
  std::vector<std::string> comps = Split(path);
  const std::string name = comps.back();
  comps.pop_back();
  for (uint32_t i = 0; i < layer; ++i) {
    Result<UniqueFd> parent = OpenDirBeneath(layers_[i].rootfs_fd, comps);
    if (!parent.ok()) continue;  // nothing there in that layer's own tree
    struct stat st;
    if (fstatat(parent->get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    if (S_ISDIR(st.st_mode)) continue;
    if (layers_[i].whiteouts == WhiteoutMode::kOverlay && IsOverlayWhiteout(st)) continue;
    return NotMergeable("directory " + path + " may be implicit, over a non-directory below");
  }
  return OkStatus();
}

Status Planner::CheckHidden(uint32_t layer, int dir_fd, const std::string& path, size_t depth) {
  if (depth > kMaxDepth) return NotMergeable("deeper than " + std::to_string(kMaxDepth));
  ASSIGN_OR_RETURN(std::vector<DirEntry> entries, ListEntries(dir_fd));
  for (const DirEntry& e : entries) {
    if (e.type != DT_DIR && e.type != DT_UNKNOWN) continue;
    const std::string child = Join(path, e.name);
    struct stat st;
    if (fstatat(dir_fd, e.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      return ErrnoError(errno, "stat " + child);
    }
    if (!S_ISDIR(st.st_mode)) continue;
    if (MaybeImplicit(st, layer)) RETURN_IF_ERROR(CheckNoLowerNonDir(layer, child));
    ASSIGN_OR_RETURN(UniqueFd fd, OpenChildDir(dir_fd, e.name));
    RETURN_IF_ERROR(CheckHidden(layer, fd.get(), child, depth + 1));
  }
  return OkStatus();
}

Status Planner::PlanDir(uint32_t node, std::vector<Source>& chain, bool phantom, size_t depth) {
  if (depth > kMaxDepth) return NotMergeable("deeper than " + std::to_string(kMaxDepth));
  open_dirs_ += chain.size();
  struct Release {
    size_t& count;
    size_t n;
    ~Release() { count -= n; }
  } release{open_dirs_, chain.size()};
  if (open_dirs_ > kMaxOpenDirs) {
    return NotMergeable("more than " + std::to_string(kMaxOpenDirs) + " layer directories deep");
  }
  const std::string dir_path = plan_.nodes[node].path;
  if (phantom) {
    // The directory exists in the layers only as the parent of whiteouts, perhaps; applying
    // them would not have made it.
    for (const Source& src : chain) {
      ASSIGN_OR_RETURN(bool opaque, IsOpaque(src));
      if (opaque) return NotMergeable(dir_path + " may exist only for its whiteouts");
    }
  }
  std::map<std::string, NameState> states;
  for (size_t ci = 0; ci < chain.size(); ++ci) {
    const Source& src = chain[ci];
    const bool oci = layers_[src.layer].whiteouts == WhiteoutMode::kOciFiles;
    ASSIGN_OR_RETURN(std::vector<DirEntry> entries, ListEntries(src.fd.get()));
    std::vector<std::string> whiteouts;  // OCI format: names this layer whites out
    std::unordered_set<std::string> own;
    for (const DirEntry& e : entries) {
      const std::string path = Join(dir_path, e.name);
      if (e.name.starts_with(kWhiteoutPrefix)) {
        if (!oci) return NotMergeable(path + " in an overlay-format layer");
        if (phantom) return NotMergeable(dir_path + " may exist only for its whiteouts");
        if (e.name == kOpaqueMarker || e.name.starts_with(kWhiteoutMetaPrefix)) continue;
        whiteouts.push_back(e.name.substr(sizeof(kWhiteoutPrefix) - 1));
        continue;
      }
      own.insert(e.name);
      NameState& s = states[e.name];
      struct stat st;
      if (fstatat(src.fd.get(), e.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        return ErrnoError(errno, "stat " + path);
      }
      const bool whiteout = !oci && IsOverlayWhiteout(st);
      if (whiteout) {
        RETURN_IF_ERROR(CheckWhiteoutShape(st, src.layer, path));
        if (phantom) return NotMergeable(dir_path + " may exist only for its whiteouts");
      }
      if (S_ISSOCK(st.st_mode)) return NotMergeable(path + " is a socket");
      // What lies below the directories seen above.
      if (whiteout) {
        s.nondir_check = false;
        if (s.meta_check) s.phantom = true;
        s.meta_check = false;
      } else if (S_ISDIR(st.st_mode)) {
        const bool implicit = MaybeImplicit(st, src.layer);
        if (s.meta_check || (implicit && !s.decided)) {
          ASSIGN_OR_RETURN(UniqueFd fd, OpenChildDir(src.fd.get(), e.name));
          ASSIGN_OR_RETURN(Xattrs x, ReadXattrs(fd.get()));
          if (s.meta_check && (s.meta_mode != (st.st_mode & 07777) || s.meta_uid != st.st_uid ||
                               s.meta_gid != st.st_gid || s.meta_xattrs != x)) {
            return NotMergeable("directory " + path + " may be implicit over another directory");
          }
          if (!s.decided) {
            s.meta_mode = st.st_mode & 07777;
            s.meta_uid = st.st_uid;
            s.meta_gid = st.st_gid;
            s.meta_xattrs = std::move(x);
          }
        }
        s.meta_check = implicit && (s.meta_check || !s.decided);
        s.nondir_check = implicit;
      } else if (s.nondir_check) {
        return NotMergeable("directory " + path + " may be implicit, over a non-directory below");
      }
      if (s.closed) {
        if (S_ISDIR(st.st_mode)) {
          ASSIGN_OR_RETURN(UniqueFd fd, OpenChildDir(src.fd.get(), e.name));
          RETURN_IF_ERROR(CheckHidden(src.layer, fd.get(), path, depth + 1));
        }
        continue;
      }
      if (whiteout) {
        s.decided = s.closed = true;
        continue;
      }
      if (!s.decided) {
        s.decided = s.present = true;
        s.layer = src.layer;
        s.st = st;
      }
      if (S_ISDIR(st.st_mode)) {
        s.dir_sources.push_back(ci);
      } else {
        s.closed = true;
      }
    }
    for (const std::string& name : whiteouts) {
      NameState& s = states[name];
      if (!own.contains(name)) {
        if (s.meta_check) s.phantom = true;
        s.meta_check = s.nondir_check = false;
      }
      s.decided = s.closed = true;  // this layer's own entry survives; lower ones are hidden
    }
  }
  for (auto& [name, s] : states) {
    if (s.meta_check) s.phantom = true;
    if (!s.present) continue;
    RETURN_IF_ERROR(AddNode(node, name, s, chain, depth));
  }
  return OkStatus();
}

Status Planner::AddNode(uint32_t parent, const std::string& name, NameState& s,
                        std::vector<Source>& chain, size_t depth) {
  const std::string path = Join(plan_.nodes[parent].path, name);
  RETURN_IF_ERROR(CheckReadable(s.st, path));
  const uint32_t index = static_cast<uint32_t>(plan_.nodes.size());
  Node n;
  n.parent = parent;
  n.layer = s.layer;
  n.name = name;
  n.st = s.st;
  if (S_ISREG(s.st.st_mode) && s.st.st_nlink > 1) {
    auto [it, inserted] = first_names_.try_emplace({s.layer, s.st.st_ino}, index);
    if (!inserted) n.link_to = it->second;
  }
  if (!S_ISDIR(s.st.st_mode)) {
    plan_.nodes.push_back(std::move(n));
    return OkStatus();
  }
  n.path = path;
  plan_.nodes.push_back(std::move(n));
  std::vector<Source> sub;
  for (size_t k = 0; k < s.dir_sources.size(); ++k) {
    const Source& from = chain[s.dir_sources[k]];
    ASSIGN_OR_RETURN(UniqueFd fd, OpenChildDir(from.fd.get(), name));
    Source src{from.layer, std::move(fd)};
    ASSIGN_OR_RETURN(bool opaque, IsOpaque(src));
    sub.push_back(std::move(src));
    if (!opaque) continue;
    for (size_t j = k + 1; j < s.dir_sources.size(); ++j) {
      const Source& hidden = chain[s.dir_sources[j]];
      ASSIGN_OR_RETURN(UniqueFd hfd, OpenChildDir(hidden.fd.get(), name));
      RETURN_IF_ERROR(CheckHidden(hidden.layer, hfd.get(), path, depth + 1));
    }
    break;
  }
  ASSIGN_OR_RETURN(plan_.dir_xattrs[index], ReadXattrs(sub[0].fd.get()));
  return PlanDir(index, sub, s.phantom, depth + 1);
}

// mtime as the extractor sets it: atime = mtime.
void Times(const struct stat& st, struct timespec ts[2]) {
  ts[0] = st.st_mtim;
  ts[1] = st.st_mtim;
}

// Writes a Plan below out_fd.
class Writer {
 public:
  Writer(const Plan& plan, std::span<const LayerTree> layers, int out_fd,
         const MergeOptions& options)
      : plan_(plan), layers_(layers), out_fd_(out_fd), options_(options), fs_(options.fs) {}

  Status Run() {
    RETURN_IF_ERROR(MakeDirectories());
    RETURN_IF_ERROR(WriteEntries());
    for (uint32_t i = 0; i < plan_.nodes.size(); ++i) {
      if (plan_.nodes[i].link_to != kNone) RETURN_IF_ERROR(WithPath(i, Link(i)));
    }
    return FinishDirectories();
  }

 private:
  std::string PathOf(uint32_t i) const {
    const Node& n = plan_.nodes[i];
    return i == 0 ? "." : Join(plan_.nodes[n.parent].path, n.name);
  }
  Status WithPath(uint32_t i, Status s) const {
    return s.ok() ? s : s.WithContext("merge " + PathOf(i));
  }
  // The output directory of node i (a directory), O_PATH, resolved inside the output's root.
  Result<UniqueFd> OutDir(uint32_t i) const {
    return OpenDirInRoot(out_fd_, Split(plan_.nodes[i].path), false);
  }
  Status SetXattrs(int fd, const Xattrs& xattrs) {
    for (const auto& [name, value] : xattrs) {
      if (fs_->Fsetxattr(fd, name, value.data(), value.size(), 0).ok()) continue;
      if (errno == ENOTSUP || (errno == EPERM && !options_.preserve_owner)) continue;
      return ErrnoError(errno, "set xattr " + name);
    }
    return OkStatus();
  }
  Status SetOwner(int fd, const struct stat& st) {
    if (!options_.preserve_owner) return OkStatus();
    return fs_->Fchown(fd, st.st_uid, st.st_gid);
  }

  // Every directory, in pre-order, owner-writable until FinishDirectories; owner and xattrs set.
  Status MakeDirectories() {
    std::vector<std::pair<uint32_t, UniqueFd>> open;  // the directories above, root first
    for (uint32_t i = 0; i < plan_.nodes.size(); ++i) {
      const Node& n = plan_.nodes[i];
      if (!S_ISDIR(n.st.st_mode)) continue;
      Status s = [&]() -> Status {
        UniqueFd fd;
        if (i == 0) {
          fd.reset(openat(out_fd_, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
          if (!fd) return ErrnoError(errno, "open");
        } else {
          while (!open.empty() && open.back().first != n.parent) open.pop_back();
          if (open.empty()) return InternalError("directory before its parent");
          RETURN_IF_ERROR(fs_->MkdirAt(open.back().second.get(), n.name, 0700));
          ASSIGN_OR_RETURN(fd, fs_->OpenAt(open.back().second.get(), n.name,
                                           O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
        }
        RETURN_IF_ERROR(SetOwner(fd.get(), n.st));
        RETURN_IF_ERROR(fs_->Fchmod(fd.get(), (n.st.st_mode & 07777) | S_IRWXU));
        auto x = plan_.dir_xattrs.find(i);
        if (x != plan_.dir_xattrs.end()) RETURN_IF_ERROR(SetXattrs(fd.get(), x->second));
        open.emplace_back(i, std::move(fd));
        return OkStatus();
      }();
      RETURN_IF_ERROR(WithPath(i, std::move(s)));
    }
    return OkStatus();
  }

  // Files, symlinks and nodes (not further names of files), by options_.threads writers.
  Status WriteEntries() {
    std::vector<uint32_t> work;
    for (uint32_t i = 0; i < plan_.nodes.size(); ++i) {
      const Node& n = plan_.nodes[i];
      if (!S_ISDIR(n.st.st_mode) && n.link_to == kNone) work.push_back(i);
    }
    std::atomic<size_t> next{0};
    std::atomic<bool> failed{false};
    std::mutex mu;
    Status first_error;
    auto writer = [&] {
      uint32_t out_parent = kNone, src_parent = kNone, src_layer = kNone;
      UniqueFd out_dir, src_dir;
      while (!failed.load()) {
        const size_t begin = next.fetch_add(kChunk);
        if (begin >= work.size()) return;
        const size_t end = std::min(work.size(), begin + kChunk);
        for (size_t k = begin; k < end && !failed.load(); ++k) {
          const uint32_t i = work[k];
          const Node& n = plan_.nodes[i];
          Status s = [&]() -> Status {
            if (out_parent != n.parent) {
              ASSIGN_OR_RETURN(out_dir, OutDir(n.parent));
              out_parent = n.parent;
            }
            if (src_parent != n.parent || src_layer != n.layer) {
              ASSIGN_OR_RETURN(src_dir, OpenDirBeneath(layers_[n.layer].rootfs_fd,
                                                       Split(plan_.nodes[n.parent].path)));
              src_parent = n.parent;
              src_layer = n.layer;
            }
            return WriteEntry(n, src_dir.get(), out_dir.get());
          }();
          if (!s.ok()) {
            std::lock_guard<std::mutex> lock(mu);
            if (!failed.exchange(true)) first_error = WithPath(i, std::move(s));
          }
        }
      }
    };
    std::vector<std::thread> threads;
    for (int t = 1; t < options_.threads; ++t) threads.emplace_back(writer);
    writer();
    for (std::thread& t : threads) t.join();
    return first_error;
  }

  Status WriteEntry(const Node& n, int src_dir, int out_dir) {
    struct timespec ts[2];
    Times(n.st, ts);
    if (S_ISREG(n.st.st_mode)) return WriteFile(n, src_dir, out_dir);
    if (S_ISLNK(n.st.st_mode)) {
      std::string target(static_cast<size_t>(n.st.st_size) + 1, '\0');
      ssize_t len = readlinkat(src_dir, n.name.c_str(), target.data(), target.size());
      if (len < 0) return ErrnoError(errno, "readlink");
      if (static_cast<size_t>(len) != target.size() - 1) {
        return DataLossError("symlink changed while merging");
      }
      target.resize(static_cast<size_t>(len));
      RETURN_IF_ERROR(fs_->SymlinkAt(target, out_dir, n.name));
    } else {
      RETURN_IF_ERROR(fs_->MknodAt(out_dir, n.name, (n.st.st_mode & S_IFMT) | (n.st.st_mode & 0777),
                                   S_ISFIFO(n.st.st_mode) ? 0 : n.st.st_rdev));
    }
    if (options_.preserve_owner) {
      RETURN_IF_ERROR(
          fs_->FchownAt(out_dir, n.name, n.st.st_uid, n.st.st_gid, AT_SYMLINK_NOFOLLOW));
    }
    if (!S_ISLNK(n.st.st_mode)) RETURN_IF_ERROR(SetNodeMode(n, out_dir));
    return fs_->UtimensAt(out_dir, n.name, ts, AT_SYMLINK_NOFOLLOW);
  }

  // As the extractor: fchmodat2 without following; without it, a fifo is opened (non-blocking)
  // and fchmod'ed, a device keeps the mode mknodat gave it.
  Status SetNodeMode(const Node& n, int out_dir) {
    const mode_t mode = n.st.st_mode & 07777;
    if (fs_->FchmodAt(out_dir, n.name, mode, AT_SYMLINK_NOFOLLOW).ok()) return OkStatus();
    if (errno != ENOSYS) return ErrnoError(errno, "chmod");
    if (!S_ISFIFO(n.st.st_mode)) return OkStatus();
    ASSIGN_OR_RETURN(UniqueFd fd,
                     fs_->OpenAt(out_dir, n.name, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_NOCTTY));
    return fs_->Fchmod(fd.get(), mode);
  }

  Status WriteFile(const Node& n, int src_dir, int out_dir) {
    UniqueFd src(
        openat(src_dir, n.name.c_str(), O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK | O_CLOEXEC));
    if (!src) return ErrnoError(errno, "open layer file");
    struct stat st;
    if (fstat(src.get(), &st) != 0) return ErrnoError(errno, "stat layer file");
    if (st.st_ino != n.st.st_ino || st.st_dev != n.st.st_dev || st.st_size != n.st.st_size) {
      return DataLossError("layer file changed while merging");
    }
    ASSIGN_OR_RETURN(UniqueFd out,
                     fs_->OpenAt(out_dir, n.name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600));
    RETURN_IF_ERROR(CopyData(src.get(), out.get(), st));
    // Owner before mode (chown clears setuid/setgid), xattrs after both (chown drops
    // security.capability), times last.
    RETURN_IF_ERROR(SetOwner(out.get(), st));
    RETURN_IF_ERROR(fs_->Fchmod(out.get(), st.st_mode & 07777));
    ASSIGN_OR_RETURN(Xattrs x, ReadXattrs(src.get()));
    RETURN_IF_ERROR(SetXattrs(out.get(), x));
    struct timespec ts[2];
    Times(st, ts);
    return fs_->Futimens(out.get(), ts);
  }

  Status CopyData(int src, int out, const struct stat& st) {
    if (st.st_size == 0) return OkStatus();
    if (clone_works_.load() != 0) {
      if (fs_->Clone(src, out).ok()) {
        clone_works_.store(1);
        return OkStatus();
      }
      const int err = errno;
      if (err != EOPNOTSUPP && err != EXDEV && err != EINVAL && err != ENOTTY && err != ENOSYS) {
        return ErrnoError(err, "clone file data");
      }
      clone_works_.store(0);
    }
    const off_t size = st.st_size;
    if (st.st_blocks * 512 >= size) return fs_->CopyRange(src, out, 0, static_cast<size_t>(size));
    // Sparse: the data segments only, then the size.
    off_t pos = 0;
    while (pos < size) {
      off_t data = lseek(src, pos, SEEK_DATA);
      if (data < 0 && errno == ENXIO) break;
      if (data < 0) return ErrnoError(errno, "seek data");
      off_t hole = lseek(src, data, SEEK_HOLE);
      if (hole < 0) return ErrnoError(errno, "seek hole");
      hole = std::min(hole, size);
      if (hole > data) {
        RETURN_IF_ERROR(fs_->CopyRange(src, out, data, static_cast<size_t>(hole - data)));
      }
      pos = hole;
    }
    return fs_->Ftruncate(out, size);
  }

  Status Link(uint32_t i) {
    const Node& n = plan_.nodes[i];
    const Node& first = plan_.nodes[n.link_to];
    ASSIGN_OR_RETURN(UniqueFd from, OutDir(first.parent));
    ASSIGN_OR_RETURN(UniqueFd to, OutDir(n.parent));
    return fs_->LinkAt(from.get(), first.name, to.get(), n.name);
  }

  // The final mode and mtime of every directory, deepest first.
  Status FinishDirectories() {
    for (uint32_t i = static_cast<uint32_t>(plan_.nodes.size()); i-- > 0;) {
      const Node& n = plan_.nodes[i];
      if (!S_ISDIR(n.st.st_mode)) continue;
      Status s = [&]() -> Status {
        ASSIGN_OR_RETURN(UniqueFd path_fd, OutDir(i));
        UniqueFd fd(openat(path_fd.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (!fd) return ErrnoError(errno, "open");
        RETURN_IF_ERROR(fs_->Fchmod(fd.get(), n.st.st_mode & 07777));
        struct timespec ts[2];
        Times(n.st, ts);
        return fs_->Futimens(fd.get(), ts);
      }();
      RETURN_IF_ERROR(WithPath(i, std::move(s)));
    }
    return OkStatus();
  }

  const Plan& plan_;
  std::span<const LayerTree> layers_;
  const int out_fd_;
  const MergeOptions& options_;
  FileSystem* const fs_;
  std::atomic<int> clone_works_{-1};  // -1 unknown, 0 no, 1 yes
};

}  // namespace

int64_t BirthTime(int fd) {
  struct statx stx;
  if (statx(fd, "", AT_EMPTY_PATH, STATX_BTIME, &stx) != 0 || !(stx.stx_mask & STATX_BTIME)) {
    return 0;
  }
  return stx.stx_btime.tv_sec;
}

Status MergeLayerTrees(std::span<const LayerTree> layers, int out_fd, const MergeOptions& options) {
  Planner planner(layers);
  ASSIGN_OR_RETURN(Plan plan, planner.Run());
  MergeOptions o = options;
  if (o.fs == nullptr) o.fs = FileSystem::Default();
  if (o.threads < 1) o.threads = 1;
  return Writer(plan, layers, out_fd, o).Run();
}

}  // namespace hoist::unpack
