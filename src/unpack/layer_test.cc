#include "unpack/layer.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "base/status_macros.h"
#include "content/digester.h"
#include "content/store.h"
#include "support/image_builder.h"

namespace hoist::unpack {
namespace {

namespace stdfs = std::filesystem;
using testing::TarEntry;

constexpr char kGzipLayer[] = "application/vnd.oci.image.layer.v1.tar+gzip";

class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl =
        std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/hoist-layer-test-XXXXXX";
    path_ = ::mkdtemp(tmpl.data()) != nullptr ? tmpl : "";
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) stdfs::remove_all(path_, ec);
  }
  std::string store() const { return path_ + "/store"; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A small gzip layer: its tar (the diff_id's bytes) and blob.
struct Layer {
  std::string tar, blob;
  Digest diff_id, digest;
};

Layer MakeLayer() {
  Layer l;
  l.tar = testing::MakeTar({{.path = "etc/", .type = '5', .mode = 0755},
                            {.path = "etc/hosts", .content = "127.0.0.1 localhost\n"},
                            {.path = "bin/", .type = '5', .mode = 0755},
                            {.path = "bin/tool", .content = "#!/bin/sh\n", .mode = 04755}});
  l.blob = testing::Gzip(l.tar);
  l.diff_id = *content::DigestOf("sha256", l.tar);
  l.digest = *content::DigestOf("sha256", l.blob);
  return l;
}

// Extracts and commits the layer through `store`.
Status Unpack(const content::Store& store, const Layer& l) {
  ASSIGN_OR_RETURN(auto u, LayerUnpacker::Open(store, l.diff_id, l.digest, kGzipLayer));
  if (u->already_exists()) return OkStatus();
  RETURN_IF_ERROR(u->Feed(l.blob.data(), l.blob.size()));
  RETURN_IF_ERROR(u->Finish());
  return u->Commit();
}

std::unique_ptr<content::Store> MustOpen(const std::string& root,
                                         FileSystem* fs = FileSystem::Default()) {
  auto store = content::Store::Open(root, fs);
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  return store.ok() ? std::move(*store) : nullptr;
}

TEST(LayerRecord, CommitRecordsWhatTheLayerWasMadeFrom) {
  TempDir dir;
  auto store = MustOpen(dir.store());
  ASSERT_NE(store, nullptr);
  const Layer l = MakeLayer();
  EXPECT_FALSE(LayerExists(*store, l.diff_id));
  ASSERT_TRUE(Unpack(*store, l).ok());
  EXPECT_TRUE(LayerExists(*store, l.diff_id));
  auto r = ReadLayerRecord(*store, l.diff_id);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->diff_id, l.diff_id);
  EXPECT_EQ(r->blob, l.digest);
  EXPECT_EQ(r->files, 4u);
  EXPECT_EQ(r->size, 30u);
  EXPECT_EQ(r->whiteouts, StoreWhiteoutMode());
  struct stat st;
  ASSERT_EQ(::stat(store->layout().LayerInfoFile(l.diff_id).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0444u);
  EXPECT_EQ(st.st_uid, ::geteuid());
  // The staging and layer directories are private; the layer's files keep their modes.
  ASSERT_EQ(::stat(store->layout().LayerDir(l.diff_id).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  ASSERT_EQ(::stat((store->layout().LayerRootfs(l.diff_id) + "/bin/tool").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 04755u);
}

// A directory hoist did not commit is never taken for a layer; the next extraction replaces it.
TEST(LayerRecord, PlantedLayerDirectoryIsNotAccepted) {
  const Layer l = MakeLayer();
  struct Case {
    std::string name;
    std::function<void(const content::Layout&)> plant;  // after a real commit
    bool needs_root = false;
  };
  std::vector<Case> cases = {
      {"no record",
       [&](const content::Layout& layout) { stdfs::remove(layout.LayerInfoFile(l.diff_id)); }},
      {"record of another layer",
       [&](const content::Layout& layout) {
         std::string text = Slurp(layout.LayerInfoFile(l.diff_id));
         text.replace(text.find(l.diff_id.hex()), 64, std::string(64, 'e'));
         stdfs::remove(layout.LayerInfoFile(l.diff_id));
         std::ofstream(layout.LayerInfoFile(l.diff_id)) << text;
         ::chmod(layout.LayerInfoFile(l.diff_id).c_str(), 0444);
       }},
      {"rootfs swapped for another directory",
       [&](const content::Layout& layout) {
         const std::string rootfs = layout.LayerRootfs(l.diff_id);
         stdfs::rename(rootfs, rootfs + ".old");
         stdfs::create_directories(rootfs + "/bin");
         std::ofstream(rootfs + "/bin/tool") << "planted";
       }},
      {"record writable by others",
       [&](const content::Layout& layout) {
         ::chmod(layout.LayerInfoFile(l.diff_id).c_str(), 0666);
       }},
      {"layer directory of another user",
       [&](const content::Layout& layout) {
         ::chown(layout.LayerDir(l.diff_id).c_str(), 65534, 65534);
       },
       true},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    if (c.needs_root && ::geteuid() != 0) continue;
    TempDir dir;
    auto store = MustOpen(dir.store());
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(Unpack(*store, l).ok());
    c.plant(store->layout());
    EXPECT_FALSE(LayerExists(*store, l.diff_id));
    auto r = ReadLayerRecord(*store, l.diff_id);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find(store->layout().LayerDir(l.diff_id)), std::string::npos)
        << r.status().ToString();
    // The next pull extracts the layer again, replacing what was planted.
    Status s = Unpack(*store, l);
    ASSERT_TRUE(s.ok()) << s.ToString();
    EXPECT_TRUE(LayerExists(*store, l.diff_id));
    EXPECT_EQ(Slurp(store->layout().LayerRootfs(l.diff_id) + "/bin/tool"), "#!/bin/sh\n");
  }
}

// Stops the disk after every possible number of changes of a layer's extraction and commit,
// then "restarts": layers/sha256/<id> is either absent or complete with its record, and the
// layer can be extracted again.
TEST(LayerCommit, CrashAtAnyPointLeavesNoPartialLayer) {
  const Layer l = MakeLayer();
  bool finished = false;
  int n = 0;
  for (; !finished && n < 200; ++n) {
    SCOPED_TRACE("crash after " + std::to_string(n) + " changes");
    TempDir dir;
    ASSERT_NE(MustOpen(dir.store()), nullptr);
    FaultInjectingFileSystem fs;
    {
      auto store = MustOpen(dir.store(), &fs);
      ASSERT_NE(store, nullptr);
      fs.CrashAfter(n);
      finished = Unpack(*store, l).ok();
      if (!finished) {
        EXPECT_TRUE(fs.crashed());
      }
    }  // the unpacker's cleanup ran after the "crash": it cannot change the disk either

    auto store = MustOpen(dir.store());
    ASSERT_NE(store, nullptr);
    const std::string layer_dir = store->layout().LayerDir(l.diff_id);
    if (stdfs::exists(stdfs::symlink_status(layer_dir))) {
      EXPECT_TRUE(LayerExists(*store, l.diff_id)) << "partial layer visible";
      EXPECT_EQ(Slurp(store->layout().LayerRootfs(l.diff_id) + "/etc/hosts"),
                "127.0.0.1 localhost\n");
      EXPECT_EQ(Slurp(store->layout().LayerRootfs(l.diff_id) + "/bin/tool"), "#!/bin/sh\n");
    } else {
      EXPECT_FALSE(finished);
    }
    Status s = Unpack(*store, l);
    ASSERT_TRUE(s.ok()) << s.ToString();
    EXPECT_TRUE(LayerExists(*store, l.diff_id));
    EXPECT_TRUE(stdfs::is_empty(store->layout().LayersDir() + "/staging"));
  }
  EXPECT_TRUE(finished);
  EXPECT_GT(n, 5);  // the commit has that many steps at least
}

}  // namespace
}  // namespace hoist::unpack
