#include "support/tree.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <set>
#include <utility>

#include "base/strings.h"
#include "base/unique_fd.h"

namespace hoist::testing {
namespace {

namespace fs = std::filesystem;

Result<std::string> Sha256File(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return ErrnoError(errno, "open " + path);
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
  char buf[1 << 16];
  while (true) {
    ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError(errno, "read " + path);
    if (n == 0) break;
    EVP_DigestUpdate(ctx.get(), buf, static_cast<size_t>(n));
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx.get(), md, &len);
  return HexEncode(std::string_view(reinterpret_cast<char*>(md), len));
}

Result<std::map<std::string, std::string>> ReadXattrs(const std::string& path) {
  std::map<std::string, std::string> out;
  ssize_t n = ::llistxattr(path.c_str(), nullptr, 0);
  if (n < 0) {
    if (errno == ENOTSUP) return out;
    return ErrnoError(errno, "llistxattr " + path);
  }
  std::string names(static_cast<size_t>(n), '\0');
  n = ::llistxattr(path.c_str(), names.data(), names.size());
  if (n < 0) return ErrnoError(errno, "llistxattr " + path);
  names.resize(static_cast<size_t>(n));
  for (size_t pos = 0; pos < names.size();) {
    std::string name = names.c_str() + pos;
    pos += name.size() + 1;
    if (name.empty() || name == "security.selinux") continue;
    ssize_t len = ::lgetxattr(path.c_str(), name.c_str(), nullptr, 0);
    if (len < 0) {
      if (errno == ENODATA) continue;  // removed meanwhile, or hidden (overlay)
      return ErrnoError(errno, "lgetxattr " + path + " " + name);
    }
    std::string value(static_cast<size_t>(len), '\0');
    len = ::lgetxattr(path.c_str(), name.c_str(), value.data(), value.size());
    if (len < 0) return ErrnoError(errno, "lgetxattr " + path + " " + name);
    value.resize(static_cast<size_t>(len));
    out[name] = std::move(value);
  }
  return out;
}

char TypeOf(mode_t m) {
  if (S_ISREG(m)) return 'f';
  if (S_ISDIR(m)) return 'd';
  if (S_ISLNK(m)) return 'l';
  if (S_ISCHR(m)) return 'c';
  if (S_ISBLK(m)) return 'b';
  if (S_ISFIFO(m)) return 'p';
  if (S_ISSOCK(m)) return 's';
  return '?';
}

Status AddNode(Tree& tree, const std::string& rel, const std::string& full,
               std::map<std::pair<dev_t, ino_t>, std::vector<std::string>>& inodes) {
  struct stat st;
  if (::lstat(full.c_str(), &st) != 0) return ErrnoError(errno, "lstat " + full);
  TreeNode n;
  n.type = TypeOf(st.st_mode);
  n.mode = st.st_mode & 07777;
  n.uid = st.st_uid;
  n.gid = st.st_gid;
  n.nlink = st.st_nlink;
  n.mtime_sec = st.st_mtim.tv_sec;
  n.mtime_nsec = st.st_mtim.tv_nsec;
  if (n.type == 'f' || n.type == 'l') n.size = static_cast<uint64_t>(st.st_size);
  if (n.type == 'f') {
    auto sum = Sha256File(full);
    if (!sum.ok()) return sum.status();
    n.sha256 = *sum;
  }
  if (n.type == 'l') {
    std::error_code ec;
    n.link_target = fs::read_symlink(full, ec).string();
    if (ec) return InternalError("readlink " + full + ": " + ec.message());
  }
  if (n.type == 'c' || n.type == 'b') {
    n.dev_major = major(st.st_rdev);
    n.dev_minor = minor(st.st_rdev);
  }
  auto xattrs = ReadXattrs(full);
  if (!xattrs.ok()) return xattrs.status();
  n.xattrs = std::move(xattrs).value();
  if (n.type != 'd') inodes[{st.st_dev, st.st_ino}].push_back(rel);
  tree.nodes[rel] = std::move(n);
  return OkStatus();
}

bool Ignored(const std::string& path, const CompareOptions& o) {
  for (const std::string& p : o.ignore_paths) {
    if (path == p ||
        (path.size() > p.size() && path.compare(0, p.size(), p) == 0 && path[p.size()] == '/')) {
      return true;
    }
  }
  return false;
}

std::map<std::string, std::string> FilterXattrs(const std::map<std::string, std::string>& in,
                                                const CompareOptions& o) {
  std::map<std::string, std::string> out;
  for (const auto& [name, value] : in) {
    bool skip = false;
    for (const std::string& prefix : o.ignore_xattr_prefixes) {
      skip = skip || name.compare(0, prefix.size(), prefix) == 0;
    }
    if (!skip) out[name] = value;
  }
  return out;
}

std::string Octal(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "0%o", v);
  return buf;
}

std::string Printable(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", c);
      out += buf;
    }
  }
  return out;
}

std::string XattrsText(const std::map<std::string, std::string>& x) {
  std::string out = "{";
  for (const auto& [k, v] : x) out += (out.size() > 1 ? ", " : "") + k + "=" + Printable(v);
  return out + "}";
}

}  // namespace

Result<Tree> SnapshotTree(const std::string& root) {
  Tree tree;
  tree.root = root;
  struct stat st;
  if (::lstat(root.c_str(), &st) != 0) return ErrnoError(errno, "lstat " + root);
  if (!S_ISDIR(st.st_mode)) return InvalidArgumentError(root + " is not a directory");
  std::map<std::pair<dev_t, ino_t>, std::vector<std::string>> inodes;
  if (Status s = AddNode(tree, ".", root, inodes); !s.ok()) return s;
  std::error_code ec;
  fs::recursive_directory_iterator it(root, fs::directory_options::none, ec);
  if (ec) return InternalError("walk " + root + ": " + ec.message());
  for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) return InternalError("walk " + root + ": " + ec.message());
    std::string full = it->path().string();
    std::string rel = it->path().lexically_relative(root).string();
    if (Status s = AddNode(tree, rel, full, inodes); !s.ok()) return s;
  }
  if (ec) return InternalError("walk " + root + ": " + ec.message());
  for (auto& [key, paths] : inodes) {
    if (paths.size() < 2) continue;
    std::string first = *std::min_element(paths.begin(), paths.end());
    for (const std::string& p : paths) tree.nodes[p].hardlink_group = first;
  }
  return tree;
}

std::vector<std::string> CompareTrees(const Tree& a, const Tree& b, const CompareOptions& o) {
  std::vector<std::string> out;
  std::set<std::string> paths;
  for (const auto& [p, n] : a.nodes) paths.insert(p);
  for (const auto& [p, n] : b.nodes) paths.insert(p);
  for (const std::string& p : paths) {
    if (Ignored(p, o)) continue;
    auto ia = a.nodes.find(p);
    auto ib = b.nodes.find(p);
    if (ib == b.nodes.end()) {
      out.push_back(p + ": only in a (" + std::string(1, ia->second.type) + ")");
      continue;
    }
    if (ia == a.nodes.end()) {
      out.push_back(p + ": only in b (" + std::string(1, ib->second.type) + ")");
      continue;
    }
    const TreeNode& x = ia->second;
    const TreeNode& y = ib->second;
    auto diff = [&](const std::string& what, const std::string& va, const std::string& vb) {
      if (va != vb) out.push_back(p + ": " + what + " " + va + " vs " + vb);
    };
    if (x.type != y.type) {
      diff("type", std::string(1, x.type), std::string(1, y.type));
      continue;
    }
    const bool is_root = p == ".";
    if (!is_root || o.root_metadata) {
      diff("mode", Octal(x.mode), Octal(y.mode));
      diff("owner", std::to_string(x.uid) + ":" + std::to_string(x.gid),
           std::to_string(y.uid) + ":" + std::to_string(y.gid));
      diff("xattrs", XattrsText(FilterXattrs(x.xattrs, o)), XattrsText(FilterXattrs(y.xattrs, o)));
    }
    if (x.type != 'd') diff("size", std::to_string(x.size), std::to_string(y.size));
    diff("content", x.sha256, y.sha256);
    diff("symlink target", x.link_target, y.link_target);
    diff("device", std::to_string(x.dev_major) + "," + std::to_string(x.dev_minor),
         std::to_string(y.dev_major) + "," + std::to_string(y.dev_minor));
    diff("hardlink group", "[" + x.hardlink_group + "]", "[" + y.hardlink_group + "]");
    if (x.type == 'd' ? o.directory_mtime : o.mtime) {
      diff("mtime", std::to_string(x.mtime_sec) + "." + std::to_string(x.mtime_nsec),
           std::to_string(y.mtime_sec) + "." + std::to_string(y.mtime_nsec));
    }
  }
  return out;
}

std::string JoinLines(const std::vector<std::string>& lines, size_t max) {
  std::string out;
  for (size_t i = 0; i < lines.size() && i < max; ++i) out += lines[i] + "\n";
  if (lines.size() > max) out += "... " + std::to_string(lines.size() - max) + " more\n";
  return out;
}

}  // namespace hoist::testing
