// The merge of layer directories against the judge: the same tar layers applied one after the
// other onto one root (WhiteoutMode::kApply, what `hoist unpack` did before). Each case extracts
// its layers into directories of their own as a pull does (overlay format when root, OCI .wh.
// files otherwise, and both when root), merges them, and compares the trees; where the layer
// directories cannot tell what the tar streams said, the merge must refuse and write nothing.
#include "unpack/merge.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "base/unique_fd.h"
#include "support/image_builder.h"
#include "support/process.h"
#include "support/tree.h"
#include "unpack/extractor.h"
#include "unpack/layer.h"

namespace hoist::unpack {
namespace {

namespace fs = std::filesystem;
using testing::CompareOptions;
using testing::CompareTrees;
using testing::JoinLines;
using testing::SnapshotTree;
using testing::TarEntry;
using testing::Tree;
using Layers = std::vector<std::vector<TarEntry>>;

constexpr char kTarType[] = "application/vnd.oci.image.layer.v1.tar";

bool IsRoot() { return geteuid() == 0; }

UniqueFd OpenDir(const std::string& path) {
  return UniqueFd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
}

// Applies one tar layer under root with `options`; the extractor's list of hardlinks into lower
// layers (which make a layer directory unusable for the merge).
Result<size_t> Extract(const std::string& root, const std::string& tar, ExtractOptions options) {
  UniqueFd fd = OpenDir(root);
  if (!fd) return ErrnoError(errno, "open " + root);
  LayerStream stream(fd.get(), kTarType, options);
  Status s = stream.Feed(tar.data(), tar.size());
  if (!s.ok()) return s;
  auto finished = stream.Finish();
  if (!finished.ok()) return finished.status();
  return stream.extractor().lower_hardlinks().size();
}

Tree Snapshot(const std::string& root) {
  auto t = SnapshotTree(root);
  EXPECT_TRUE(t.ok()) << root << ": " << t.status().message();
  return t.ok() ? std::move(t).value() : Tree{};
}

class MergeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = testing::TempDir::Create("hoist-merge-");
    ASSERT_TRUE(dir.ok());
    dir_.emplace(std::move(dir).value());
  }
  std::string Path(const std::string& name) const { return dir_->path() + "/" + name; }
  // A fresh name for each case of a test: "oci", then "oci.1", ...
  std::string Fresh(const std::string& name) {
    return runs_[name]++ == 0 ? name : name + "." + std::to_string(runs_[name] - 1);
  }

  // The layers applied one after the other onto `name` (the judge).
  void ApplyAll(const Layers& layers, const std::string& name) {
    ASSERT_TRUE(fs::create_directory(Path(name)));
    for (const auto& layer : layers) {
      auto r = Extract(Path(name), testing::MakeTar(layer), ExtractOptions{});
      ASSERT_TRUE(r.ok()) << r.status().message();
    }
  }

  // Each layer into a directory of its own, as a pull keeps them, then merged into `name`.
  // Returns the merge's status; `lower_links` is set if a layer hardlinks into lower ones.
  Status ExtractAndMerge(const Layers& layers, WhiteoutMode mode, const std::string& name,
                         bool* lower_links = nullptr, FileSystem* out_fs = nullptr) {
    std::vector<UniqueFd> fds;
    std::vector<LayerTree> trees;
    for (size_t i = 0; i < layers.size(); ++i) {
      const std::string root = Path(name + "-layer" + std::to_string(i));
      if (!fs::create_directory(root)) return InternalError("mkdir " + root);
      ExtractOptions o;
      o.whiteouts = mode;
      o.defer_missing_hardlinks = true;
      auto r = Extract(root, testing::MakeTar(layers[i]), o);
      if (!r.ok()) return r.status();
      if (*r > 0 && lower_links != nullptr) *lower_links = true;
      fds.push_back(OpenDir(root));
      trees.push_back({fds.back().get(), mode, BirthTime(fds.back().get())});
    }
    if (!fs::create_directory(Path(name))) return InternalError("mkdir " + name);
    UniqueFd out = OpenDir(Path(name));
    MergeOptions o;
    if (out_fs != nullptr) o.fs = out_fs;
    return MergeLayerTrees(trees, out.get(), o);
  }

  // The modes a pull may keep layers in here.
  static std::vector<WhiteoutMode> Modes() {
    if (IsRoot()) return {WhiteoutMode::kOverlay, WhiteoutMode::kOciFiles};
    return {WhiteoutMode::kOciFiles};
  }

  // Merges in every mode and expects exactly the judge's tree (mtimes of all but directories
  // included: a directory's mtime after applying layers is the time of the last change in it).
  Tree ExpectSameAsApplying(const Layers& layers) {
    const std::string applied = Fresh("applied");
    ApplyAll(layers, applied);
    Tree want = Snapshot(Path(applied));
    Tree got;
    for (WhiteoutMode mode : Modes()) {
      const std::string name = Fresh(mode == WhiteoutMode::kOverlay ? "overlay" : "oci");
      SCOPED_TRACE(name);
      Status s = ExtractAndMerge(layers, mode, name);
      EXPECT_TRUE(s.ok()) << s.message();
      got = Snapshot(Path(name));
      CompareOptions o;
      o.mtime = true;
      EXPECT_EQ(JoinLines(CompareTrees(want, got, o)), "");
    }
    return got;
  }

  // The merge refuses in every mode, writing nothing.
  void ExpectNotMergeable(const Layers& layers, const std::string& why) {
    for (WhiteoutMode mode : Modes()) {
      const std::string name = Fresh(mode == WhiteoutMode::kOverlay ? "overlay" : "oci");
      SCOPED_TRACE(name);
      Status s = ExtractAndMerge(layers, mode, name);
      EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.message();
      EXPECT_NE(s.message().find(why), std::string::npos) << s.message();
      EXPECT_TRUE(fs::is_empty(Path(name))) << "written before refusing";
    }
  }

  std::optional<testing::TempDir> dir_;
  std::map<std::string, int> runs_;
};

TarEntry Dir(std::string path, int mode = 0755) {
  TarEntry e{std::move(path), "", '5'};
  e.mode = mode;
  return e;
}

TEST_F(MergeTest, TopLayerWinsAndWhiteoutsHideWhatIsBelow) {
  TarEntry setuid{"usr/bin/su", "su\n", '0', "", 04755};
  TarEntry xattr_file{"etc/x", "x\n"};
  xattr_file.pax = {{"SCHILY.xattr.user.note", "kept"}};
  Layers layers = {
      {Dir("etc/"),
       {"etc/os-release", "v1\n"},
       {"etc/gone", "g\n"},
       Dir("usr/"),
       Dir("usr/bin/"),
       setuid,
       {"usr/bin/a", "a\n"},
       {"usr/bin/b", "", '1', "usr/bin/a"},
       Dir("opt/"),
       Dir("opt/old/"),
       {"opt/old/f", "old\n"},
       {"file-to-dir", "f\n"},
       Dir("dir-to-file/"),
       {"dir-to-file/inner", "i\n"},
       {"link-to-dir", "", '2', "etc"},
       Dir("var/", 0700),
       {"var/keep", "k\n"},
       Dir("wiped/"),
       {"wiped/a", "a\n"},
       Dir("wiped/sub/"),
       {"wiped/sub/b", "b\n"}},
      {Dir("etc/"),
       {"etc/os-release", "v2\n"},
       {"etc/.wh.gone"},
       xattr_file,
       Dir("usr/"),
       Dir("usr/bin/"),
       {"usr/bin/a", "new a\n", '0', "", 0700},
       Dir("opt/"),
       Dir("opt/old/"),
       {"opt/old/.wh..wh..opq"},
       {"opt/old/g", "new\n"},
       Dir("file-to-dir/"),
       {"file-to-dir/x", "x\n"},
       {"dir-to-file", "now a file\n"},
       Dir("link-to-dir/", 0750),
       {".wh.wiped"},
       {"fifo", "", '6'}},
      {Dir("./", 0751),
       Dir("usr/"),
       Dir("usr/bin/"),
       {"usr/bin/c", "c\n"},
       {"usr/bin/d", "", '1', "usr/bin/c"},
       {"usr/bin/e", "", '1', "usr/bin/c"},
       {"usr/bin/.wh.b"},
       Dir("etc/"),
       {"etc/sym", "", '2', "/etc/os-release"}},
  };
  Tree t = ExpectSameAsApplying(layers);
  EXPECT_EQ(t.nodes["."].mode, 0751u);
  EXPECT_EQ(t.nodes["etc/x"].xattrs["user.note"], "kept");
  EXPECT_FALSE(t.nodes.contains("etc/gone"));
  EXPECT_FALSE(t.nodes.contains("opt/old/f"));
  EXPECT_EQ(t.nodes["opt/old/g"].type, 'f');
  EXPECT_EQ(t.nodes["file-to-dir"].type, 'd');
  EXPECT_EQ(t.nodes["dir-to-file"].type, 'f');
  EXPECT_FALSE(t.nodes.contains("dir-to-file/inner"));
  EXPECT_EQ(t.nodes["link-to-dir"].type, 'd');
  EXPECT_EQ(t.nodes["link-to-dir"].mode, 0750u);
  EXPECT_FALSE(t.nodes.contains("wiped"));
  EXPECT_EQ(t.nodes["usr/bin/su"].mode, 04755u);
  EXPECT_EQ(t.nodes["usr/bin/a"].mode, 0700u);
  EXPECT_EQ(t.nodes["usr/bin/a"].hardlink_group, "");  // replaced: b was its other name
  EXPECT_FALSE(t.nodes.contains("usr/bin/b"));
  EXPECT_EQ(t.nodes["usr/bin/e"].hardlink_group, "usr/bin/c");
  EXPECT_EQ(t.nodes["var"].mode, 0700u);
  EXPECT_EQ(t.nodes["fifo"].type, 'p');
  EXPECT_EQ(t.nodes["etc/sym"].link_target, "/etc/os-release");
}

TEST_F(MergeTest, HardlinksStayWithinTheOutputAndSurviveAPartialReplacement) {
  Layers layers = {
      {Dir("bin/"),
       {"bin/busybox", "bb\n", '0', "", 0755},
       {"bin/sh", "", '1', "bin/busybox"},
       {"bin/ls", "", '1', "bin/busybox"}},
      {Dir("bin/"), {"bin/busybox", "new bb\n", '0', "", 0755}},
  };
  Tree t = ExpectSameAsApplying(layers);
  EXPECT_EQ(t.nodes["bin/sh"].hardlink_group, "bin/ls");
  EXPECT_EQ(t.nodes["bin/busybox"].hardlink_group, "");
  // Nothing of the output is an inode of a layer directory: editing the rootfs cannot change
  // the store.
  for (std::string name : {"bin/ls", "bin/sh", "bin/busybox"}) {
    struct stat out, layer;
    ASSERT_EQ(::lstat(Path("oci/" + name).c_str(), &out), 0);
    const std::string in_layer =
        Path((name == "bin/busybox" ? "oci-layer1/" : "oci-layer0/") + name);
    ASSERT_EQ(::lstat(in_layer.c_str(), &layer), 0) << in_layer;
    EXPECT_NE(out.st_ino, layer.st_ino) << name;
    EXPECT_EQ(out.st_nlink, name == "bin/busybox" ? 1u : 2u) << name;
  }
}

TEST_F(MergeTest, SparseFilesDevicesAndOwnersAsApplied) {
  constexpr uint64_t kSize = 64 << 20;
  TarEntry sparse = testing::SparseEntry("big", kSize, {{0, "head"}, {kSize - 4, "tail"}});
  TarEntry owned{"home/user/.profile", "p\n", '0', "", 0640, 1000, 1000};
  TarEntry home = Dir("home/user/", 0750);
  home.uid = home.gid = 1000;
  TarEntry null{"dev/null", "", '3', "", 0666};
  null.dev_major = 1;
  null.dev_minor = 3;
  Layers layers = {{sparse, Dir("home/"), home, owned, Dir("dev/"), null},
                   {{"data", testing::RandomBytes(3 << 20, 7)}}};
  Tree t = ExpectSameAsApplying(layers);
  struct stat st;
  ASSERT_EQ(::lstat((Path("oci/big")).c_str(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), kSize);
  EXPECT_LT(st.st_blocks * 512, 1 << 20) << "the hole was written";
  if (IsRoot()) {
    EXPECT_EQ(t.nodes["home/user/.profile"].uid, 1000u);
    EXPECT_EQ(t.nodes["dev/null"].type, 'c');
    EXPECT_EQ(t.nodes["dev/null"].dev_minor, 3u);
  }
}

// A directory a layer did not list, over a lower directory with the same metadata: the same
// tree; with other metadata, applying the layer would have kept the lower one's.
TEST_F(MergeTest, ImplicitDirectoriesMergeOnlyWhereTheyCannotDiffer) {
  ExpectSameAsApplying({{Dir("usr/"), {"usr/a", "a\n"}}, {{"usr/b", "b\n"}}});
  ExpectNotMergeable({{Dir("usr/", 0700), {"usr/a", "a\n"}}, {{"usr/b", "b\n"}}},
                     "may be implicit over another directory");
}

TEST_F(MergeTest, ImplicitDirectoryOverALowerSymlinkOrFileIsRefused) {
  // Applied, "l/x" goes through the lower symlink into d/; the layer directory has l/x.
  ExpectNotMergeable({{Dir("d/"), {"l", "", '2', "d"}}, {{"l/x", "x\n"}}},
                     "over a non-directory below");
  ApplyAll({{Dir("d/"), {"l", "", '2', "d"}}, {{"l/x", "x\n"}}}, "judge");
  EXPECT_TRUE(fs::exists(Path("judge/d/x")));
  // Hidden by a top layer's file, the layer still wrote through the symlink when applied.
  ExpectNotMergeable({{Dir("d/"), {"l", "", '2', "d"}}, {{"l/x", "x\n"}}, {{"l", "file\n"}}},
                     "over a non-directory below");
}

TEST_F(MergeTest, WhiteoutsOfMissingDirectoriesAreRefused) {
  // Applied, a whiteout below a directory nobody has makes nothing; the layer directory holds
  // the directory (overlay: with a whiteout device in it).
  ExpectNotMergeable({{{"a", "a\n"}}, {{"gone/.wh.x"}}}, "only for its whiteouts");
}

TEST_F(MergeTest, ADeviceZeroZeroOfTheImageIsNotAWhiteout) {
  if (!IsRoot()) GTEST_SKIP() << "devices need root";
  TarEntry dev{"dev/zz", "", '3', "", 0600};
  Status s = ExtractAndMerge({{Dir("dev/"), {"dev/keep", "k\n"}}, {Dir("dev/"), dev}},
                             WhiteoutMode::kOverlay, "out");
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.message();
  EXPECT_NE(s.message().find("character device 0/0"), std::string::npos) << s.message();
}

TEST_F(MergeTest, HardlinksIntoLowerLayersAreListedByTheExtractor) {
  // The caller does not merge such layers (their record says so); the list is what it reads.
  bool lower = false;
  Status s =
      ExtractAndMerge({{{"a", "a\n"}}, {{"b", "", '1', "a"}}}, Modes().front(), "out", &lower);
  EXPECT_TRUE(s.ok()) << s.message();
  EXPECT_TRUE(lower);
}

TEST_F(MergeTest, AFullDiskIsAnErrorNotARefusal) {
  FaultInjectingFileSystem faults;
  faults.FailNth(FaultInjectingFileSystem::Op::kWrite, 1, ENOSPC);
  Status s = ExtractAndMerge({{{"a", "some data\n"}}}, Modes().front(), "out", nullptr, &faults);
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s.message();
  EXPECT_NE(s.message().find("merge a"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace hoist::unpack
