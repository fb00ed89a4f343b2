#include "unpack/destination.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "base/status_macros.h"
#include "support/image_builder.h"
#include "support/tree.h"
#include "unpack/layer.h"

namespace hoist::unpack {
namespace {

namespace stdfs = std::filesystem;
using Op = FaultInjectingFileSystem::Op;

constexpr char kGzipLayer[] = "application/vnd.oci.image.layer.v1.tar+gzip";

class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base != nullptr && *base != '\0' ? base : "/tmp") +
                       "/hoist-destination-test-XXXXXX";
    path_ = ::mkdtemp(tmpl.data()) != nullptr ? tmpl : "";
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) stdfs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::vector<std::string> List(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (stdfs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    out.push_back(it->path().filename().string());
  }
  return out;
}

// The gzip blobs of a three-layer image, as `hoist unpack` applies them: the later layers
// replace, remove (whiteouts) and add files. `files` counts the writes of file data (every
// file is small enough to be written at once).
std::vector<std::string> MakeImage(int* files) {
  *files = 7;
  return {
      testing::Gzip(testing::MakeTar({{.path = "etc/", .type = '5', .mode = 0755},
                                      {.path = "etc/hosts", .content = "127.0.0.1\n"},
                                      {.path = "etc/old", .content = "old\n"},
                                      {.path = "bin/tool", .content = "v1\n", .mode = 04755}})),
      testing::Gzip(testing::MakeTar({{.path = "etc/.wh.old"},
                                      {.path = "bin/tool", .content = "v2\n", .mode = 0755},
                                      {.path = "bin/sh", .type = '2', .linkname = "tool"},
                                      {.path = "usr/lib/libx.so", .content = "elf\n"}})),
      testing::Gzip(testing::MakeTar({{.path = "usr/lib/.wh..wh..opq"},
                                      {.path = "usr/lib/liby.so", .content = "elf2\n"},
                                      {.path = "var/log/", .type = '5', .mode = 01777},
                                      {.path = "var/log/x", .content = "x\n"}})),
  };
}

// What Client::Unpack does for a flattened rootfs: every layer applied in turn through `fs`.
Status BuildRootfs(FileSystem* fs, const std::string& dest, const std::vector<std::string>& blobs) {
  return BuildNewDirectory(fs, dest, [&](int out_fd) -> Status {
    ExtractOptions options;
    options.whiteouts = WhiteoutMode::kApply;
    options.fs = fs;
    for (const std::string& blob : blobs) {
      LayerStream stream(out_fd, kGzipLayer, options);
      RETURN_IF_ERROR(stream.Feed(blob.data(), blob.size()));
      RETURN_IF_ERROR(stream.Finish().status());
    }
    return OkStatus();
  });
}

TEST(BuildNewDirectory, AppearsOnlyWhenCompleteAndLeavesNoStaging) {
  int files = 0;
  const std::vector<std::string> blobs = MakeImage(&files);
  TempDir dir;
  const std::string dest = dir.path() + "/dest";
  FaultInjectingFileSystem counting;
  ASSERT_TRUE(BuildRootfs(&counting, dest, blobs).ok());
  EXPECT_EQ(List(dir.path()), std::vector<std::string>{"dest"});
  EXPECT_EQ(counting.calls(Op::kWrite), files);
  struct stat st;
  ASSERT_EQ(::lstat((dest + "/bin/tool").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  EXPECT_FALSE(stdfs::exists(dest + "/etc/old"));
  EXPECT_FALSE(stdfs::exists(dest + "/usr/lib/libx.so"));
  EXPECT_TRUE(stdfs::exists(dest + "/usr/lib/liby.so"));
  // A non-empty destination is refused and left alone.
  Status s = BuildRootfs(FileSystem::Default(), dest, blobs);
  EXPECT_EQ(s.code(), StatusCode::kAlreadyExists) << s.ToString();
  EXPECT_EQ(List(dir.path()), std::vector<std::string>{"dest"});
}

// ENOSPC at the k-th write of `hoist unpack`, for every k: a clear ResourceExhausted error, no
// DEST, no half-built tree under any name beside it; an empty DEST given stays empty.
TEST(BuildNewDirectory, NoSpaceAtAnyWriteLeavesNoDestination) {
  int files = 0;
  const std::vector<std::string> blobs = MakeImage(&files);
  TempDir ref_dir;
  ASSERT_TRUE(BuildRootfs(FileSystem::Default(), ref_dir.path() + "/dest", blobs).ok());
  auto reference = testing::SnapshotTree(ref_dir.path() + "/dest");
  ASSERT_TRUE(reference.ok());
  for (bool dest_exists : {false, true}) {
    for (int k = 1; k <= files; ++k) {
      SCOPED_TRACE("ENOSPC at write " + std::to_string(k) +
                   (dest_exists ? ", empty DEST given" : ""));
      TempDir dir;
      const std::string dest = dir.path() + "/dest";
      if (dest_exists) {
        ASSERT_EQ(::mkdir(dest.c_str(), 0755), 0);
      }
      FaultInjectingFileSystem fs;
      fs.FailNth(Op::kWrite, k, ENOSPC);
      Status s = BuildRootfs(&fs, dest, blobs);
      ASSERT_FALSE(s.ok());
      EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s.ToString();
      EXPECT_NE(s.message().find(": no space left on device writing file data"), std::string::npos)
          << s.ToString();
      if (dest_exists) {
        EXPECT_EQ(List(dir.path()), std::vector<std::string>{"dest"});
        EXPECT_TRUE(List(dest).empty());
      } else {
        EXPECT_TRUE(List(dir.path()).empty()) << testing::JoinLines(List(dir.path()));
      }
      // The same destination, on a healthy disk.
      ASSERT_TRUE(BuildRootfs(FileSystem::Default(), dest, blobs).ok());
      auto got = testing::SnapshotTree(dest);
      ASSERT_TRUE(got.ok());
      EXPECT_TRUE(testing::CompareTrees(*got, *reference).empty());
    }
  }
}

// EIO at any call of the other operations (creating the staging dir, directories, files,
// links; the final rename): no DEST and nothing beside it either.
TEST(BuildNewDirectory, IoErrorAtAnyOperationLeavesNoDestination) {
  int files = 0;
  const std::vector<std::string> blobs = MakeImage(&files);
  TempDir ref_dir;
  FaultInjectingFileSystem counting;
  ASSERT_TRUE(BuildRootfs(&counting, ref_dir.path() + "/dest", blobs).ok());
  int failed = 0;
  for (Op op : {Op::kOpen, Op::kMkdir, Op::kSymlink, Op::kRename, Op::kUnlink, Op::kRmdir,
                Op::kChmod, Op::kUtimens}) {
    for (int n = 1; n <= std::min(counting.calls(op), 40); ++n) {
      SCOPED_TRACE("EIO at call " + std::to_string(n) + " of op " +
                   std::to_string(static_cast<int>(op)));
      TempDir dir;
      const std::string dest = dir.path() + "/dest";
      FaultInjectingFileSystem fs;
      fs.FailNth(op, n, EIO);
      Status s = BuildRootfs(&fs, dest, blobs);
      if (s.ok()) {
        // Only a fault in removing the emptied staging dir (after the rename) is harmless.
        EXPECT_EQ(op, Op::kRmdir);
        continue;
      }
      ++failed;
      EXPECT_NE(s.message().find("Input/output error"), std::string::npos) << s.ToString();
      EXPECT_TRUE(List(dir.path()).empty()) << testing::JoinLines(List(dir.path()));
    }
  }
  EXPECT_GT(failed, 20);
  EXPECT_EQ(counting.calls(Op::kRename), 1);  // the one rename that makes DEST appear
}

}  // namespace
}  // namespace hoist::unpack
