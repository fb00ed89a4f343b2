#include "unpack/verify_layer.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "base/fs.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "content/digester.h"
#include "unpack/decompress.h"
#include "unpack/path.h"
#include "unpack/tar_reader.h"
#include "unpack/whiteout.h"

namespace hoist::unpack {
namespace {

constexpr int kMaxSymlinks = 40;  // as the kernel's MAXSYMLINKS, and path.cc's walk
constexpr size_t kReadChunk = 1 << 20;

// What a name of the expected tree is.
enum class Kind { kFile, kDirectory, kSymlink, kCharDevice, kBlockDevice, kFifo, kWhiteout };

const char* KindName(Kind k) {
  switch (k) {
    case Kind::kFile:
      return "regular file";
    case Kind::kDirectory:
      return "directory";
    case Kind::kSymlink:
      return "symlink";
    case Kind::kCharDevice:
      return "character device";
    case Kind::kBlockDevice:
      return "block device";
    case Kind::kFifo:
      return "fifo";
    case Kind::kWhiteout:
      return "whiteout (0/0 character device)";
  }
  return "entry";
}

std::optional<Kind> KindOf(mode_t mode) {
  if (S_ISREG(mode)) return Kind::kFile;
  if (S_ISDIR(mode)) return Kind::kDirectory;
  if (S_ISLNK(mode)) return Kind::kSymlink;
  if (S_ISCHR(mode)) return Kind::kCharDevice;
  if (S_ISBLK(mode)) return Kind::kBlockDevice;
  if (S_ISFIFO(mode)) return Kind::kFifo;
  return std::nullopt;
}

struct Node;

// A name in a directory of the model.
struct Dirent {
  Node* node = nullptr;
  bool written = false;       // created or updated by an entry (the extractor's written_)
  bool own_whiteout = false;  // kOverlay: a whiteout device a whiteout entry made here
};

// An inode of the expected tree. Regular files, symlinks, devices and whiteouts may have
// several names (hardlinks); a directory has one, and its parent.
struct Node {
  Kind kind = Kind::kDirectory;
  bool metadata = false;  // mode and owner come from an entry (not an implicit directory)
  bool optional = false;  // a device node whose creation the kernel may have refused
  uint32_t mode = 0;      // 07777
  int64_t uid = 0, gid = 0;
  uint64_t size = 0;
  std::string link;  // symlink target
  uint32_t dev_major = 0, dev_minor = 0;
  std::optional<Digest> content;  // regular files: sha256 of the entry's data
  // Directories.
  Node* parent = nullptr;
  std::map<std::string, Dirent> children;
  bool opaque = false;                               // kOverlay: trusted.overlay.opaque=y
  std::optional<std::vector<std::string>> final_at;  // the last entry's name (for Finish)
  uint32_t final_mode = 0;                           // the mode Finish applies
  // The comparison.
  uint32_t names = 0;  // names in the final tree
};

// The extractor's rules (extractor.cc) applied to names only, for one layer extracted alone
// into an empty root in kOverlay or kOciFiles form. Each node lives as long as the model.
class Model : public TarHandler {
 public:
  explicit Model(WhiteoutMode mode) : overlay_(mode == WhiteoutMode::kOverlay) {
    root_ = New(Kind::kDirectory);
  }
  Node* root() const { return root_; }

  Status OnEntry(const TarEntry& e) override {
    file_ = nullptr;
    Status s = Apply(e);
    if (!s.ok()) return s.WithContext("entry " + Quote(e.path));
    return OkStatus();
  }
  Status OnData(const char* data, size_t n) override {
    if (file_ != nullptr) digester_->Update(data, n);
    return OkStatus();
  }
  Status OnHole(uint64_t n) override {
    static const char kZeros[64 << 10] = {};
    while (n > 0) {
      const size_t chunk = static_cast<size_t>(std::min<uint64_t>(n, sizeof(kZeros)));
      RETURN_IF_ERROR(OnData(kZeros, chunk));
      n -= chunk;
    }
    return OkStatus();
  }
  Status OnEntryEnd() override {
    if (file_ != nullptr) file_->content = digester_->Finish();
    file_ = nullptr;
    digester_.reset();
    return OkStatus();
  }

  // The extractor's Finish: a directory takes the mode of its last entry if that entry's name
  // still leads to it (else it keeps the owner-writable mode it was given while extracting).
  void Finish() {
    for (Node* d : listed_dirs_) {
      if (!d->final_at) continue;
      const std::vector<std::string>& comps = *d->final_at;
      Node* found = root_;
      if (!comps.empty()) {
        Result<Node*> parent = Resolve(std::span(comps).first(comps.size() - 1), false);
        if (!parent.ok()) continue;
        auto it = (*parent)->children.find(comps.back());
        if (it == (*parent)->children.end()) continue;
        found = it->second.node;
      }
      if (found == d) d->mode = d->final_mode;
    }
  }

 private:
  Node* New(Kind kind, Node* parent = nullptr) {
    Node& n = nodes_.emplace_back();
    n.kind = kind;
    n.parent = parent;
    return &n;
  }

  // OpenDirInRoot (path.h) on the model: symlinks followed inside the root, ".." clamped at
  // the root; missing directories created (implicit) when `create`; a non-directory on the way
  // is NotFound.
  Result<Node*> Resolve(std::span<const std::string> components, bool create) {
    Node* cur = root_;
    std::deque<std::string> todo(components.begin(), components.end());
    int links = 0;
    while (!todo.empty()) {
      std::string name = std::move(todo.front());
      todo.pop_front();
      if (name.empty() || name == ".") continue;
      if (name == "..") {
        if (cur != root_) cur = cur->parent;
        continue;
      }
      auto it = cur->children.find(name);
      if (it == cur->children.end()) {
        if (!create) return NotFoundError("no directory " + Quote(name));
        Node* dir = New(Kind::kDirectory, cur);
        cur->children[name] = Dirent{dir};
        cur = dir;
        continue;
      }
      Node* next = it->second.node;
      if (next->kind == Kind::kSymlink) {
        if (++links > kMaxSymlinks) return InvalidArgumentError("too many symlinks");
        if (next->link.empty()) return NotFoundError("empty symlink " + Quote(name));
        ASSIGN_OR_RETURN(std::vector<std::string> parts, SplitMemberPath(next->link));
        todo.insert(todo.begin(), parts.begin(), parts.end());
        if (next->link[0] == '/') cur = root_;
        continue;
      }
      if (next->kind != Kind::kDirectory) return NotFoundError(Quote(name) + " not a directory");
      cur = next;
    }
    return cur;
  }

  Status Apply(const TarEntry& e) {
    ASSIGN_OR_RETURN(std::vector<std::string> comps, SplitMemberPath(e.path));
    if (comps.empty()) {
      if (e.type != EntryType::kDirectory) return DataLossError("replaces the root directory");
      SetDirectory(root_, e, comps);
      return OkStatus();
    }
    if (comps.back() == "..") return DataLossError("name ends in \"..\"");
    if (comps.back().starts_with(kWhiteoutPrefix)) comps = CleanLexically(std::move(comps));
    const std::string& name = comps.back();
    if (!name.starts_with(kWhiteoutPrefix)) return Create(e, comps);
    if (name != kOpaqueMarker) {
      if (name.starts_with(kWhiteoutMetaPrefix)) return OkStatus();  // aufs metadata: ignored
      const std::string target = name.substr(sizeof(kWhiteoutPrefix) - 1);
      if (target.empty() || target == "." || target == "..") return DataLossError("bad whiteout");
    }
    if (overlay_) return Whiteout(comps);
    // kOciFiles: the marker is kept as an empty regular file; its data is not stored.
    TarEntry marker = e;
    marker.type = EntryType::kRegular;
    marker.size = 0;
    RETURN_IF_ERROR(Create(marker, comps));
    file_->content = content::DigestOf("sha256", "").value();
    file_ = nullptr;
    return OkStatus();
  }

  void SetDirectory(Node* dir, const TarEntry& e, std::span<const std::string> comps) {
    dir->metadata = true;
    dir->uid = e.uid;
    dir->gid = e.gid;
    dir->mode = (e.mode & 07777) | S_IRWXU;  // until Finish
    dir->final_mode = e.mode & 07777;
    dir->final_at.emplace(comps.begin(), comps.end());
    listed_dirs_.push_back(dir);
  }

  // Puts a new node at parent/name, replacing whatever was there.
  Node* Put(Node* parent, const std::string& name, Kind kind, const TarEntry& e) {
    Node* n = New(kind, parent);
    n->metadata = true;
    n->mode = e.mode & 07777;
    n->uid = e.uid;
    n->gid = e.gid;
    parent->children[name] = Dirent{n, true};
    return n;
  }

  Status Create(const TarEntry& e, std::span<const std::string> comps) {
    const std::string& name = comps.back();
    const auto parent_comps = comps.first(comps.size() - 1);
    Result<Node*> resolved = Resolve(parent_comps, true);
    if (!resolved.ok() && resolved.status().code() == StatusCode::kNotFound && overlay_) {
      RETURN_IF_ERROR(ReplaceWhiteoutsOnPath(parent_comps));
      resolved = Resolve(parent_comps, true);
    }
    if (!resolved.ok()) return resolved.status();
    Node* parent = *resolved;
    auto it = parent->children.find(name);
    Dirent* existing = it == parent->children.end() ? nullptr : &it->second;
    switch (e.type) {
      case EntryType::kDirectory: {
        const bool replaces_whiteout =
            existing && existing->own_whiteout && existing->node->kind == Kind::kWhiteout;
        Node* dir;
        if (existing && existing->node->kind == Kind::kDirectory) {
          dir = existing->node;
          *existing = Dirent{dir, true};
        } else {
          dir = New(Kind::kDirectory, parent);
          parent->children[name] = Dirent{dir, true};
        }
        if (replaces_whiteout) dir->opaque = true;
        SetDirectory(dir, e, comps);
        return OkStatus();
      }
      case EntryType::kRegular: {
        if (e.size < 0) return DataLossError("negative size");
        file_ = Put(parent, name, Kind::kFile, e);
        file_->size = static_cast<uint64_t>(e.size);
        ASSIGN_OR_RETURN(content::Digester d, content::Digester::New("sha256"));
        digester_.emplace(std::move(d));
        return OkStatus();
      }
      case EntryType::kSymlink:
        if (e.linkname.empty()) return DataLossError("symlink with an empty target");
        Put(parent, name, Kind::kSymlink, e)->link = e.linkname;
        return OkStatus();
      case EntryType::kHardlink:
        return Hardlink(parent, name, e);
      case EntryType::kFifo:
        Put(parent, name, Kind::kFifo, e);
        return OkStatus();
      case EntryType::kCharDevice:
      case EntryType::kBlockDevice: {
        if (!overlay_) return OkStatus();  // not root: devices are skipped
        Node* n = Put(parent, name,
                      e.type == EntryType::kCharDevice ? Kind::kCharDevice : Kind::kBlockDevice, e);
        n->dev_major = e.dev_major;
        n->dev_minor = e.dev_minor;
        n->optional = true;
        return OkStatus();
      }
    }
    return DataLossError("unknown entry type");
  }

  Status Hardlink(Node* parent, const std::string& name, const TarEntry& e) {
    ASSIGN_OR_RETURN(std::vector<std::string> target, SplitMemberPath(e.linkname));
    if (target.empty() || target.back() == "..") return DataLossError("hardlink to a directory");
    Result<Node*> tparent = Resolve(std::span(target).first(target.size() - 1), false);
    if (!tparent.ok()) {
      // A target in a lower layer: the extractor skips the link (LayerRecord::lower_hardlinks).
      if (tparent.status().code() == StatusCode::kNotFound) return OkStatus();
      return tparent.status();
    }
    auto it = (*tparent)->children.find(target.back());
    if (it == (*tparent)->children.end()) return OkStatus();  // likewise
    Node* node = it->second.node;
    if (node->kind == Kind::kDirectory) return DataLossError("hardlink to a directory");
    parent->children[name] = Dirent{node, true};
    return OkStatus();
  }

  // The extractor's WhiteoutOverlay.
  Status Whiteout(std::span<const std::string> comps) {
    const std::string& marker = comps.back();
    Result<Node*> resolved = Resolve(comps.first(comps.size() - 1), true);
    if (!resolved.ok()) {
      if (resolved.status().code() == StatusCode::kNotFound) return OkStatus();
      return resolved.status();
    }
    Node* parent = *resolved;
    if (marker == kOpaqueMarker) {
      parent->opaque = true;
      return OkStatus();
    }
    const std::string target = marker.substr(sizeof(kWhiteoutPrefix) - 1);
    auto it = parent->children.find(target);
    if (it != parent->children.end()) {
      Node* dir = it->second.node;
      if (dir->kind != Kind::kDirectory) return OkStatus();
      if (!PurgeLower(dir) || it->second.written) {
        dir->opaque = true;
        return OkStatus();
      }
      parent->children.erase(it);
    }
    parent->children[target] = Dirent{New(Kind::kWhiteout, parent), false, true};
    return OkStatus();
  }

  // The extractor's PurgeLower: removes what no entry wrote; true if `dir` is empty afterwards.
  static bool PurgeLower(Node* dir) {
    bool empty = true;
    for (auto it = dir->children.begin(); it != dir->children.end();) {
      const bool keep = it->second.written ||
                        (it->second.node->kind == Kind::kDirectory && !PurgeLower(it->second.node));
      if (keep) {
        empty = false;
        ++it;
      } else {
        it = dir->children.erase(it);
      }
    }
    return empty;
  }

  // The extractor's ReplaceWhiteoutsOnPath: this layer's whiteout devices on the way become
  // opaque directories.
  Status ReplaceWhiteoutsOnPath(std::span<const std::string> comps) {
    for (size_t i = 0; i < comps.size(); ++i) {
      if (comps[i] == "..") continue;
      ASSIGN_OR_RETURN(Node * parent, Resolve(comps.first(i), true));
      auto it = parent->children.find(comps[i]);
      if (it == parent->children.end() || !it->second.own_whiteout ||
          it->second.node->kind != Kind::kWhiteout) {
        continue;
      }
      Node* dir = New(Kind::kDirectory, parent);
      dir->opaque = true;
      it->second = Dirent{dir};
    }
    return OkStatus();
  }

  // kOverlay: the layer was extracted by root (StoreWhiteoutMode), which also creates devices
  // and sets owners; kOciFiles: without root, devices were skipped.
  const bool overlay_;
  std::deque<Node> nodes_;  // every node ever made (stable addresses)
  Node* root_ = nullptr;
  std::vector<Node*> listed_dirs_;  // directories an entry listed (Finish sets their modes)
  Node* file_ = nullptr;            // the regular file whose data is arriving
  std::optional<content::Digester> digester_;
};

std::string Octal(uint32_t mode) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%04o", mode);
  return buf;
}

std::string Join(const std::string& dir, const std::string& name) {
  return dir.empty() ? name : dir + "/" + name;
}

// Walks the layer directory beside the model (see the header), collecting differences.
class Comparer {
 public:
  Comparer(bool owners, size_t max_reported) : owners_(owners), max_(max_reported) {}

  const std::vector<std::string>& differences() const { return differences_; }
  bool full() const { return differences_.size() >= max_; }

  // Counts the names of each node in the final tree (for hardlink identity).
  static void CountNames(Node* root) {
    std::vector<Node*> todo = {root};
    while (!todo.empty()) {
      Node* dir = todo.back();
      todo.pop_back();
      for (auto& [name, d] : dir->children) {
        ++d.node->names;
        if (d.node->kind == Kind::kDirectory) todo.push_back(d.node);
      }
    }
  }

  // `fd`: the directory (O_RDONLY) that should be `dir`, at `path` ("" for the root).
  Status CompareDirectory(int fd, const Node& dir, const std::string& path) {
    if (full()) return OkStatus();
    CompareOpaque(fd, dir, path);
    auto listed = ListDir(fd);
    if (!listed.ok()) {
      Differ(path, "cannot be listed: " + listed.status().message());
      return OkStatus();
    }
    std::vector<std::string> names = std::move(*listed);
    std::sort(names.begin(), names.end());
    auto expected = dir.children.begin();
    for (const std::string& name : names) {
      for (; expected != dir.children.end() && expected->first < name; ++expected) {
        if (!expected->second.node->optional) Differ(Join(path, expected->first), "missing");
      }
      if (expected != dir.children.end() && expected->first == name) {
        RETURN_IF_ERROR(CompareEntry(fd, name, *expected->second.node, Join(path, name)));
        ++expected;
      } else {
        Differ(Join(path, name), "not in the layer's blob");
      }
      if (full()) return OkStatus();
    }
    for (; expected != dir.children.end(); ++expected) {
      if (!expected->second.node->optional) Differ(Join(path, expected->first), "missing");
    }
    return OkStatus();
  }

  // The metadata of the root directory itself.
  void CompareRoot(int fd, const Node& root) {
    struct stat st;
    if (::fstat(fd, &st) != 0) return Differ("", std::string("stat: ") + std::strerror(errno));
    if (root.metadata) CompareModeOwner(st, root, "");
  }

 private:
  void Differ(const std::string& path, const std::string& what) {
    if (full()) return;
    differences_.push_back(Quote(path.empty() ? "." : path) + ": " + what);
  }

  void CompareModeOwner(const struct stat& st, const Node& n, const std::string& path) {
    const uint32_t mode = st.st_mode & 07777;
    if (n.kind == Kind::kSymlink) {
      // Symlinks have no mode of their own.
    } else if (n.kind == Kind::kCharDevice || n.kind == Kind::kBlockDevice) {
      // Without fchmodat2 a device keeps the mode mknod gave it, less the umask.
      if ((mode & ~n.mode) != 0) {
        Differ(path, "mode " + Octal(mode) + ", the layer's blob says " + Octal(n.mode));
      }
    } else if (mode != n.mode) {
      Differ(path, "mode " + Octal(mode) + ", the layer's blob says " + Octal(n.mode));
    }
    if (owners_ && (st.st_uid != n.uid || st.st_gid != n.gid)) {
      Differ(path, "owner " + std::to_string(st.st_uid) + ":" + std::to_string(st.st_gid) +
                       ", the layer's blob says " + std::to_string(n.uid) + ":" +
                       std::to_string(n.gid));
    }
  }

  void CompareOpaque(int fd, const Node& dir, const std::string& path) {
    if (!owners_) return;  // kOciFiles: opaque markers are files
    char value[8];
    ssize_t n = ::fgetxattr(fd, kOverlayOpaqueXattr, value, sizeof(value));
    const bool opaque = n == 1 && value[0] == 'y';
    if (n < 0 && errno != ENODATA && errno != ENOTSUP) {
      return Differ(path, std::string("read opaque marker: ") + std::strerror(errno));
    }
    if (opaque != dir.opaque) {
      Differ(path, dir.opaque ? "not opaque, the layer's blob makes it opaque"
                              : "opaque, the layer's blob does not make it so");
    }
  }

  // Non-directories with several names, on one side or the other: each model inode is one
  // disk inode, and each disk inode one model inode.
  void CompareIdentity(const struct stat& st, const Node& n, const std::string& path) {
    if (n.names < 2 && st.st_nlink < 2) return;
    const std::pair<dev_t, ino_t> key{st.st_dev, st.st_ino};
    auto [by_node, new_node] = inode_of_.try_emplace(&n, key, path);
    if (!new_node && by_node->second.first != key) {
      Differ(path, "not the same file as " + Quote(by_node->second.second) +
                       " (the layer's blob hardlinks them)");
      return;
    }
    auto [by_inode, new_inode] = node_of_.try_emplace(key, &n, path);
    if (!new_inode && by_inode->second.first != &n) {
      Differ(path, "the same file as " + Quote(by_inode->second.second) +
                       " (separate files in the layer's blob)");
    }
  }

  Status CompareEntry(int dir_fd, const std::string& name, const Node& n, const std::string& path) {
    struct stat st;
    if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      Differ(path, std::string("stat: ") + std::strerror(errno));
      return OkStatus();
    }
    std::optional<Kind> kind = KindOf(st.st_mode);
    if (kind == Kind::kCharDevice && st.st_rdev == makedev(0, 0) && n.kind == Kind::kWhiteout) {
      kind = Kind::kWhiteout;
    }
    if (kind != n.kind) {
      Differ(path, std::string("a ") + (kind ? KindName(*kind) : "socket") +
                       ", the layer's blob has a " + KindName(n.kind));
      return OkStatus();
    }
    if (n.kind == Kind::kDirectory) {
      if (n.metadata) CompareModeOwner(st, n, path);
      UniqueFd sub(::openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!sub) {
        if (errno == EMFILE || errno == ENFILE) return ErrnoError(errno, "open " + path);
        if (!Unreadable(errno, n, S_IRUSR | S_IXUSR)) {
          Differ(path, std::string("open: ") + std::strerror(errno));
        }
        return OkStatus();
      }
      return CompareDirectory(sub.get(), n, path);
    }
    if (n.kind == Kind::kWhiteout) return OkStatus();
    CompareIdentity(st, n, path);
    if (!checked_.insert(&n).second) return OkStatus();  // an inode's own checks once
    CompareModeOwner(st, n, path);
    switch (n.kind) {
      case Kind::kFile:
        if (static_cast<uint64_t>(st.st_size) != n.size) {
          Differ(path, "size " + std::to_string(st.st_size) + ", the layer's blob says " +
                           std::to_string(n.size));
        } else {
          CompareContent(dir_fd, name, st, n, path);
        }
        break;
      case Kind::kSymlink: {
        std::string target(static_cast<size_t>(st.st_size) + 1, '\0');
        ssize_t len = ::readlinkat(dir_fd, name.c_str(), target.data(), target.size());
        if (len < 0) {
          Differ(path, std::string("readlink: ") + std::strerror(errno));
        } else if (target.resize(static_cast<size_t>(len)); target != n.link) {
          Differ(path, "points to " + Quote(target) + ", the layer's blob says " + Quote(n.link));
        }
        break;
      }
      case Kind::kCharDevice:
      case Kind::kBlockDevice:
        if (major(st.st_rdev) != n.dev_major || minor(st.st_rdev) != n.dev_minor) {
          Differ(path, "device " + std::to_string(major(st.st_rdev)) + "," +
                           std::to_string(minor(st.st_rdev)) + ", the layer's blob says " +
                           std::to_string(n.dev_major) + "," + std::to_string(n.dev_minor));
        }
        break;
      default:
        break;
    }
    return OkStatus();
  }

  // True when `err` opening a node is only the node's own mode shutting its owner out (not
  // root): its content cannot be compared, and is not.
  static bool Unreadable(int err, const Node& n, uint32_t needed) {
    return err == EACCES && ::geteuid() != 0 && (n.mode & needed) != needed;
  }

  void CompareContent(int dir_fd, const std::string& name, const struct stat& st, const Node& n,
                      const std::string& path) {
    UniqueFd fd(
        ::openat(dir_fd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
    struct stat opened;
    if (!fd) {
      if (!Unreadable(errno, n, S_IRUSR))
        Differ(path, std::string("open: ") + std::strerror(errno));
      return;
    }
    if (::fstat(fd.get(), &opened) != 0 || opened.st_ino != st.st_ino ||
        opened.st_dev != st.st_dev) {
      return Differ(path, "changed while it was read");
    }
    auto digester = content::Digester::New("sha256");
    if (!digester.ok()) return Differ(path, digester.status().message());
    if (!buffer_) buffer_.reset(new char[kReadChunk]);
    while (true) {
      ssize_t got = ::read(fd.get(), buffer_.get(), kReadChunk);
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) return Differ(path, std::string("read: ") + std::strerror(errno));
      if (got == 0) break;
      digester->Update(buffer_.get(), static_cast<size_t>(got));
    }
    if (digester->Finish() != *n.content) Differ(path, "content differs from the layer's blob");
  }

  const bool owners_;
  const size_t max_;
  std::vector<std::string> differences_;
  std::set<const Node*> checked_;  // non-directories compared (each inode once)
  std::map<const Node*, std::pair<std::pair<dev_t, ino_t>, std::string>> inode_of_;
  std::map<std::pair<dev_t, ino_t>, std::pair<const Node*, std::string>> node_of_;
  std::unique_ptr<char[]> buffer_;
};

}  // namespace

Status VerifyLayerDir(const content::Store& store, const LayerRecord& record,
                      const VerifyLayerOptions& options) {
  const content::Layout& layout = store.layout();
  const std::string blob_context = "blob " + record.blob.String();
  if (!store.Has(record.blob)) {
    return NotFoundError(blob_context + ": missing: the layer cannot be checked");
  }
  // One read of the blob: its digest, the diff_id, and the model of what extraction leaves.
  Model model(record.whiteouts);
  ASSIGN_OR_RETURN(content::Digester blob_digester,
                   content::Digester::New(record.blob.algorithm()));
  ASSIGN_OR_RETURN(content::Digester diff_digester,
                   content::Digester::New(record.diff_id.algorithm()));
  TarReader tar(&model);
  Decompressor decompressor(
      [&](const char* data, size_t n) {
        diff_digester.Update(data, n);
        return tar.Feed(data, n);
      },
      options.max_uncompressed, Compression::kNone, options.max_zstd_window);
  Status read = FeedFile(layout.BlobFile(record.blob), [&](const char* data, size_t n) {
    blob_digester.Update(data, n);
    return decompressor.Feed(data, n);
  });
  const Digest blob_got = blob_digester.Finish();
  if (read.ok() && blob_got != record.blob) {
    return DataLossError(blob_context + ": digest mismatch: got " + blob_got.String() +
                         ": the layer cannot be checked");
  }
  if (read.ok()) read = decompressor.Finish();
  if (read.ok()) read = tar.Finish();
  if (!read.ok()) {
    if (read.code() == StatusCode::kDataLoss) {
      return DataLossError(blob_context + ": " + read.message() + ": the layer cannot be checked");
    }
    return read.WithContext(blob_context);
  }
  const Digest diff_got = diff_digester.Finish();
  if (diff_got != record.diff_id) {
    return DataLossError(blob_context + ": its tar is " + diff_got.String() +
                         ", not the layer's diff_id");
  }
  model.Finish();
  Comparer::CountNames(model.root());

  // One read of the directory, beside the model.
  const std::string rootfs_path = layout.LayerRootfs(record.diff_id);
  ASSIGN_OR_RETURN(UniqueFd layer_dir, store.OpenDir(layout.LayerDir(record.diff_id), false));
  UniqueFd rootfs(::openat(layer_dir.get(), BaseName(rootfs_path).c_str(),
                           O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!rootfs) return ErrnoError(errno, "open " + rootfs_path);
  Comparer comparer(record.whiteouts == WhiteoutMode::kOverlay,
                    std::max<size_t>(1, options.max_reported));
  comparer.CompareRoot(rootfs.get(), *model.root());
  RETURN_IF_ERROR(comparer.CompareDirectory(rootfs.get(), *model.root(), ""));
  if (comparer.differences().empty()) return OkStatus();
  std::string message;
  for (const std::string& d : comparer.differences()) message += (message.empty() ? "" : "; ") + d;
  if (comparer.full())
    message += "; stopped after " + std::to_string(comparer.differences().size());
  return DataLossError(message);
}

}  // namespace hoist::unpack
