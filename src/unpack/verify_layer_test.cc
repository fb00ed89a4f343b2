#include "unpack/verify_layer.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "base/status_macros.h"
#include "content/digester.h"
#include "content/store.h"
#include "support/fixture_images.h"
#include "support/image_builder.h"
#include "support/process.h"

namespace hoist::unpack {
namespace {

namespace stdfs = std::filesystem;
using testing::TarEntry;

constexpr char kGzipLayer[] = "application/vnd.oci.image.layer.v1.tar+gzip";

struct Layer {
  std::string blob;
  Digest diff_id, digest;
};

Layer MakeLayer(const std::vector<TarEntry>& entries) {
  const std::string tar = testing::MakeTar(entries);
  Layer l;
  l.blob = testing::Gzip(tar);
  l.diff_id = *content::DigestOf("sha256", tar);
  l.digest = *content::DigestOf("sha256", l.blob);
  return l;
}

// Every kind of entry, and entries replaced, removed and whited out within the layer.
std::vector<TarEntry> RichEntries() {
  return {
      {.path = "etc/", .type = '5', .mode = 0755},
      {.path = "etc/hosts", .content = "127.0.0.1 localhost\n"},
      {.path = "etc/passwd", .content = "first\n"},
      {.path = "etc/passwd", .content = "root:x:0:0::/root:/bin/sh\n"},         // the last one wins
      {.path = "etc/shadow", .content = "root:*:19000::::::\n", .mode = 0000},  // as Fedora's
      {.path = "etc/one", .content = "1111"},
      {.path = "etc/two", .content = "2222"},
      {.path = "bin/", .type = '5', .mode = 0711},
      {.path = "bin/tool", .content = "#!/bin/sh\n", .mode = 04755},
      {.path = "bin/link", .type = '1', .linkname = "bin/tool"},
      {.path = "bin/sh", .type = '2', .linkname = "tool"},
      {.path = "usr/share/doc/readme",
       .content = "read me\n",
       .mode = 0600,
       .uid = 1000,
       .gid = 1000},
      {.path = "run/fifo", .type = '6', .mode = 0620},
      // A directory replaced by a file, a file by a directory.
      {.path = "d/", .type = '5'},
      {.path = "d/x", .content = "gone with d"},
      {.path = "d", .content = "now a file"},
      {.path = "e", .content = "was a file"},
      {.path = "e/", .type = '5', .mode = 0750},
      // A hardlink keeps the file its target was when the target is replaced.
      {.path = "t", .content = "AAAA"},
      {.path = "h", .type = '1', .linkname = "t"},
      {.path = "t", .content = "BBBB"},
      // Names written through the layer's own symlink land in its target.
      {.path = "l", .type = '2', .linkname = "usr"},
      {.path = "l/lib/f", .content = "via the link"},
      // Whiteouts: of a lower file, of this layer's own file, an opaque directory, a whiteout
      // replaced by a directory, and one under which the layer writes.
      {.path = "opt/.wh.old"},
      {.path = "opt/own", .content = "mine"},
      {.path = "opt/.wh.own"},
      {.path = "var/cache/", .type = '5'},
      {.path = "var/cache/.wh..wh..opq"},
      {.path = "var/cache/new", .content = "new"},
      {.path = ".wh.w"},
      {.path = "w/", .type = '5'},
      {.path = ".wh.z"},
      {.path = "z/f", .content = "under a whiteout"},
      // A hardlink to a file of a lower layer (skipped, recorded).
      {.path = "lower", .type = '1', .linkname = "usr/bin/from-below"},
  };
}

class VerifyLayerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = testing::TempDir::Create("hoist-verify-layer-");
    ASSERT_TRUE(dir.ok());
    dir_.emplace(std::move(dir).value());
    NewStore();
  }
  // A new empty store (each damage gets a layer of its own).
  void NewStore() {
    auto store = content::Store::Open(dir_->path() + "/store" + std::to_string(++stores_));
    ASSERT_TRUE(store.ok()) << store.status().message();
    store_ = std::move(*store);
  }

  // Stores the blob and extracts the layer through LayerUnpacker (overlay whiteouts as root).
  LayerRecord Commit(const Layer& l) {
    EXPECT_TRUE(store_->WriteBlob(l.digest, l.blob).ok());
    Status s = [&]() -> Status {
      ASSIGN_OR_RETURN(auto u, LayerUnpacker::Open(*store_, l.diff_id, l.digest, kGzipLayer));
      RETURN_IF_ERROR(u->Feed(l.blob.data(), l.blob.size()));
      RETURN_IF_ERROR(u->Finish());
      return u->Commit();
    }();
    EXPECT_TRUE(s.ok()) << s.message();
    auto record = ReadLayerRecord(*store_, l.diff_id);
    EXPECT_TRUE(record.ok()) << record.status().message();
    return record.ok() ? *record : LayerRecord{};
  }

  // Stores the blob and extracts the layer with OCI .wh. files, as a process without root
  // would (the layer directory made by hand; no layer.json). False if the extractor refuses it.
  bool ExtractOci(const Layer& l, LayerRecord* record) {
    EXPECT_TRUE(store_->WriteBlob(l.digest, l.blob).ok());
    const std::string rootfs = Rootfs(l);
    stdfs::create_directories(rootfs);
    UniqueFd root(::open(rootfs.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    EXPECT_TRUE(root);
    ExtractOptions options;
    options.whiteouts = WhiteoutMode::kOciFiles;
    options.defer_missing_hardlinks = true;
    LayerStream stream(root.get(), kGzipLayer, options);
    if (!stream.Feed(l.blob.data(), l.blob.size()).ok() || !stream.Finish().ok()) return false;
    record->diff_id = l.diff_id;
    record->blob = l.digest;
    record->whiteouts = WhiteoutMode::kOciFiles;
    return true;
  }

  std::string Rootfs(const Layer& l) const { return store_->layout().LayerRootfs(l.diff_id); }

  // Commits the rich layer, applies `damage` to its rootfs, and returns what verify says.
  Status Damaged(const std::function<void(const std::string& rootfs)>& damage) {
    NewStore();
    const Layer l = MakeLayer(RichEntries());
    const LayerRecord record = Commit(l);
    damage(Rootfs(l));
    return VerifyLayerDir(*store_, record);
  }

  std::optional<testing::TempDir> dir_;
  std::unique_ptr<content::Store> store_;
  int stores_ = 0;
};

// The damage is found (and, when `only`, nothing else is).
void ExpectDifference(const Status& s, const std::string& difference, bool only = true) {
  EXPECT_EQ(s.code(), StatusCode::kDataLoss) << s.ToString();
  EXPECT_NE(s.message().find(difference), std::string::npos) << s.message();
  if (only) {
    EXPECT_EQ(s.message().find("; "), std::string::npos) << s.message();
  }
}

void Write(const std::string& path, const std::string& content) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
}

TEST_F(VerifyLayerTest, AnIntactLayerPasses) {
  const Layer l = MakeLayer(RichEntries());
  const LayerRecord record = Commit(l);
  EXPECT_TRUE(record.lower_hardlinks);
  Status s = VerifyLayerDir(*store_, record);
  EXPECT_TRUE(s.ok()) << s.message();
  // What the extraction left is what the test expects the model to expect.
  const std::string root = Rootfs(l);
  EXPECT_TRUE(stdfs::is_regular_file(root + "/d"));
  EXPECT_TRUE(stdfs::is_directory(root + "/e"));
  EXPECT_TRUE(stdfs::is_regular_file(root + "/usr/lib/f"));
  EXPECT_FALSE(stdfs::equivalent(root + "/t", root + "/h"));
  EXPECT_TRUE(stdfs::equivalent(root + "/bin/tool", root + "/bin/link"));
}

// No false alarms on real-looking layers: each of the realistic image's layers (setuid files,
// owners, devices, xattrs, long names, whiteouts and opaque directories of lower content),
// extracted alone as the store keeps them.
TEST_F(VerifyLayerTest, TheRealisticLayersPass) {
  for (const std::vector<TarEntry>& entries : testing::RealisticLayers()) {
    const Layer l = MakeLayer(entries);
    const LayerRecord record = Commit(l);
    Status s = VerifyLayerDir(*store_, record);
    EXPECT_TRUE(s.ok()) << s.message();
  }
}

// Random layers over a few names (entries of every kind replacing, linking through and whiting
// out each other): whatever the extractor commits, the check must find intact.
TEST_F(VerifyLayerTest, RandomLayersThatExtractPass) {
  const std::vector<std::string> names = {"a",     "b",      "a/b",   "a/c",     "b/c",
                                          "l/x",   "a/../c", ".wh.a", "a/.wh.b", "a/.wh..wh..opq",
                                          ".wh.l", "l",      "c"};
  std::mt19937 rng(8);
  auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
  int committed = 0, extracted_oci = 0;
  for (int layer = 0; layer < 100; ++layer) {
    std::vector<TarEntry> entries;
    const size_t count = 1 + pick(12);
    for (size_t i = 0; i < count; ++i) {
      TarEntry e{.path = names[pick(names.size())], .mode = 0600 + static_cast<int>(pick(0100))};
      switch (pick(5)) {
        case 0:
          e.type = '5';
          e.mode = 0700 + static_cast<int>(pick(070));
          break;
        case 1:
          e.type = '2';
          e.linkname = std::vector<std::string>{"a", "/b", "../a", "c", "missing"}[pick(5)];
          break;
        case 2:
          e.type = '1';
          e.linkname = names[pick(names.size())];
          break;
        default:
          e.content = std::string(pick(3), 'x') + std::to_string(i);
      }
      entries.push_back(e);
    }
    const Layer l = MakeLayer(entries);
    std::string listing;
    for (const TarEntry& e : entries) listing += " " + e.path + "(" + e.type + e.linkname + ")";
    NewStore();
    ASSERT_TRUE(store_->WriteBlob(l.digest, l.blob).ok());
    auto u = LayerUnpacker::Open(*store_, l.diff_id, l.digest, kGzipLayer);
    ASSERT_TRUE(u.ok());
    const bool extracted = (*u)->Feed(l.blob.data(), l.blob.size()).ok() && (*u)->Finish().ok();
    if (extracted) {
      ASSERT_TRUE((*u)->Commit().ok());
    }
    u->reset();  // before its store goes
    if (extracted) {
      ++committed;
      auto record = ReadLayerRecord(*store_, l.diff_id);
      ASSERT_TRUE(record.ok());
      Status s = VerifyLayerDir(*store_, *record);
      EXPECT_TRUE(s.ok()) << s.message() << "\nentries:" << listing;
    }
    // And with OCI .wh. files.
    NewStore();
    LayerRecord oci;
    if (ExtractOci(l, &oci)) {
      ++extracted_oci;
      Status s = VerifyLayerDir(*store_, oci);
      EXPECT_TRUE(s.ok()) << "OCI: " << s.message() << "\nentries:" << listing;
    }
  }
  EXPECT_GT(committed, 40);
  EXPECT_GT(extracted_oci, 40);
}

TEST_F(VerifyLayerTest, ARemovedFileIsCaught) {
  ExpectDifference(Damaged([](const std::string& r) { stdfs::remove(r + "/etc/hosts"); }),
                   "\"etc/hosts\": missing");
}

TEST_F(VerifyLayerTest, ASameSizeContentChangeIsCaught) {
  ExpectDifference(
      Damaged([](const std::string& r) { Write(r + "/etc/hosts", "127.0.0.2 localhost\n"); }),
      "\"etc/hosts\": content differs from the layer's blob");
}

TEST_F(VerifyLayerTest, AChangedModeIsCaught) {
  ExpectDifference(Damaged([](const std::string& r) { ::chmod((r + "/bin/tool").c_str(), 0755); }),
                   // Reported once, at the first of its names.
                   "\"bin/link\": mode 0755, the layer's blob says 4755");
}

TEST_F(VerifyLayerTest, ARetargetedSymlinkIsCaught) {
  ExpectDifference(Damaged([](const std::string& r) {
                     stdfs::remove(r + "/bin/sh");
                     stdfs::create_symlink("/bin/busybox", r + "/bin/sh");
                   }),
                   "\"bin/sh\": points to \"/bin/busybox\", the layer's blob says \"tool\"");
}

TEST_F(VerifyLayerTest, AnAddedFileIsCaught) {
  ExpectDifference(Damaged([](const std::string& r) { Write(r + "/usr/share/planted", ""); }),
                   "\"usr/share/planted\": not in the layer's blob");
  ExpectDifference(Damaged([](const std::string& r) { stdfs::create_directory(r + "/new"); }),
                   "\"new\": not in the layer's blob");
}

TEST_F(VerifyLayerTest, AReplacedHardlinkIsCaught) {
  // A copy in place of the link: same content, another inode.
  ExpectDifference(Damaged([](const std::string& r) {
                     stdfs::remove(r + "/bin/link");
                     stdfs::copy_file(r + "/bin/tool", r + "/bin/link");
                     ::chmod((r + "/bin/link").c_str(), 04755);
                   }),
                   "not the same file as");
  // A file replaced by a link to another of the same size.
  ExpectDifference(Damaged([](const std::string& r) {
                     stdfs::remove(r + "/etc/two");
                     stdfs::create_hard_link(r + "/etc/one", r + "/etc/two");
                   }),
                   "\"etc/two\": the same file as \"etc/one\"", /*only=*/false);
}

TEST_F(VerifyLayerTest, OverlayWhiteoutsAndOwnersAreChecked) {
  if (::geteuid() != 0) GTEST_SKIP() << "overlay whiteouts need root";
  ExpectDifference(Damaged([](const std::string& r) { stdfs::remove(r + "/opt/old"); }),
                   "\"opt/old\": missing");
  ExpectDifference(Damaged([](const std::string& r) {
                     ::removexattr((r + "/var/cache").c_str(), "trusted.overlay.opaque");
                   }),
                   "\"var/cache\": not opaque");
  ExpectDifference(Damaged([](const std::string& r) {
                     ::setxattr((r + "/etc").c_str(), "trusted.overlay.opaque", "y", 1, 0);
                   }),
                   "\"etc\": opaque");
  ExpectDifference(
      Damaged([](const std::string& r) { ::lchown((r + "/usr/share/doc/readme").c_str(), 0, 0); }),
      "\"usr/share/doc/readme\": owner 0:0, the layer's blob says 1000:1000");
  ExpectDifference(Damaged([](const std::string& r) {
                     stdfs::remove(r + "/run/fifo");
                     ::mknod((r + "/run/fifo").c_str(), S_IFCHR | 0620, makedev(1, 3));
                   }),
                   "\"run/fifo\": a character device, the layer's blob has a fifo");
}

TEST_F(VerifyLayerTest, BlobMissingOrCorrupt) {
  const Layer l = MakeLayer(RichEntries());
  const LayerRecord record = Commit(l);
  const std::string blob = store_->layout().BlobFile(l.digest);
  ::chmod(blob.c_str(), 0644);
  {
    std::fstream f(blob, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(l.blob.size() - 3));
    f.put('\x01');
  }
  Status s = VerifyLayerDir(*store_, record);
  EXPECT_EQ(s.code(), StatusCode::kDataLoss) << s.ToString();
  EXPECT_NE(s.message().find("the layer cannot be checked"), std::string::npos) << s.message();
  stdfs::remove(blob);
  s = VerifyLayerDir(*store_, record);
  EXPECT_EQ(s.code(), StatusCode::kNotFound) << s.ToString();
  EXPECT_NE(s.message().find("missing: the layer cannot be checked"), std::string::npos)
      << s.message();
}

// OCI .wh. files (a layer extracted without root): the markers are empty files, whiteouts of
// the layer's own files remove nothing.
TEST_F(VerifyLayerTest, OciWhiteoutFiles) {
  const Layer l = MakeLayer(RichEntries());
  LayerRecord record;
  ASSERT_TRUE(ExtractOci(l, &record));
  const std::string layer_dir = store_->layout().LayerDir(l.diff_id);
  Status s = VerifyLayerDir(*store_, record);
  EXPECT_TRUE(s.ok()) << s.message();
  EXPECT_TRUE(stdfs::is_regular_file(layer_dir + "/rootfs/var/cache/.wh..wh..opq"));
  EXPECT_TRUE(stdfs::is_regular_file(layer_dir + "/rootfs/opt/own"));

  stdfs::remove(layer_dir + "/rootfs/opt/.wh.old");
  ExpectDifference(VerifyLayerDir(*store_, record), "\"opt/.wh.old\": missing");
}

}  // namespace
}  // namespace hoist::unpack
