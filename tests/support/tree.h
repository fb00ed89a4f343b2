// Snapshots of directory trees, and their comparison: the independent judge of what an
// extractor (hoist's, umoci's, an overlay mount) produced. Test-only.
//
//   Result<Tree> a = SnapshotTree(dir_a), b = SnapshotTree(dir_b);
//   std::vector<std::string> diffs = CompareTrees(*a, *b, {});
//   EXPECT_TRUE(diffs.empty()) << JoinLines(diffs);
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "hoist/status.h"

namespace hoist::testing {

// One path of a tree, as lstat and the xattr calls see it (symlinks are never followed).
struct TreeNode {
  char type = '?';    // 'f' regular, 'd' directory, 'l' symlink, 'c'/'b' device, 'p' fifo,
                      // 's' socket
  uint32_t mode = 0;  // permission bits, 07777
  uint32_t uid = 0, gid = 0;
  uint64_t size = 0;                      // st_size (regular files and symlinks)
  std::string sha256;                     // hex digest of a regular file's content
  std::string link_target;                // a symlink's target, as stored
  uint32_t dev_major = 0, dev_minor = 0;  // devices
  // The first (in path order) of the paths of this tree that share this node's inode, when at
  // least two do; empty otherwise. Two trees agree on hardlinks iff these agree.
  std::string hardlink_group;
  std::map<std::string, std::string> xattrs;  // every namespace except security.selinux
  int64_t mtime_sec = 0, mtime_nsec = 0;
  uint64_t nlink = 0;  // st_nlink (informative: counts links outside the tree too)
};

// Paths relative to the root ("." is the root itself, then "etc", "etc/passwd", ...).
struct Tree {
  std::string root;
  std::map<std::string, TreeNode> nodes;
};

// Walks `root` (which must be a directory; it is not followed if it is a symlink) with lstat.
// Fails on any error reading the tree.
Result<Tree> SnapshotTree(const std::string& root);

struct CompareOptions {
  bool mtime = false;            // compare mtimes of everything but directories
  bool directory_mtime = false;  // and of directories
  bool root_metadata = true;     // compare the root directory's mode, owner and xattrs
  // xattr names starting with one of these are left out (e.g. "trusted.overlay.").
  std::vector<std::string> ignore_xattr_prefixes;
  // These paths, and everything below them, are left out.
  std::vector<std::string> ignore_paths;
};

// Human-readable differences, one per line ("usr/bin/x: mode 0755 vs 0700", "etc/y: only in
// b"), empty when the trees agree. Sizes of directories are never compared (they depend on the
// file system's history), nor nlink.
std::vector<std::string> CompareTrees(const Tree& a, const Tree& b,
                                      const CompareOptions& options = {});

// `lines` joined with '\n', at most `max` of them (then "... N more").
std::string JoinLines(const std::vector<std::string>& lines, size_t max = 40);

}  // namespace hoist::testing
