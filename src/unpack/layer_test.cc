#include "unpack/layer.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "base/status_macros.h"
#include "content/digester.h"
#include "content/store.h"
#include "support/image_builder.h"
#include "support/tree.h"

namespace hoist::unpack {
namespace {

namespace stdfs = std::filesystem;
using testing::TarEntry;
using Op = FaultInjectingFileSystem::Op;

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

// A layer with an entry of every kind the extractor creates: directories (one made implicitly),
// files, a symlink, a hardlink, a fifo, an xattr and a whiteout. Every file is small, so each is
// written in one call; `written` lists them in the order their data is written.
Layer MakeRichLayer(std::vector<std::string>* written = nullptr) {
  Layer l;
  l.tar = testing::MakeTar({
      {.path = "etc/", .type = '5', .mode = 0755},
      {.path = "etc/hosts", .content = "127.0.0.1 localhost\n"},
      {.path = "etc/empty"},
      {.path = "bin/", .type = '5', .mode = 0711},
      {.path = "bin/tool", .content = "#!/bin/sh\n", .mode = 04755},
      {.path = "bin/sh", .type = '2', .linkname = "tool"},
      {.path = "bin/link", .type = '1', .linkname = "bin/tool"},
      {.path = "usr/share/doc/readme", .content = "read me\n", .mode = 0600},
      {.path = "run/fifo", .type = '6', .mode = 0620},
      {.path = "var/note", .content = "tagged\n", .pax = {{"SCHILY.xattr.user.note", "kept"}}},
      {.path = "var/.wh.gone", .type = '0'},
  });
  if (written != nullptr) *written = {"etc/hosts", "bin/tool", "usr/share/doc/readme", "var/note"};
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

// The differences between the layer's tree in `store` and in `reference` (not mtimes: those of
// implicit directories and whiteouts are when they were made).
std::vector<std::string> TreeDiffs(const content::Store& store, const content::Store& reference,
                                   const Digest& diff_id) {
  auto got = testing::SnapshotTree(store.layout().LayerRootfs(diff_id));
  auto want = testing::SnapshotTree(reference.layout().LayerRootfs(diff_id));
  if (!got.ok() || !want.ok()) return {"no tree: " + got.status().ToString()};
  return testing::CompareTrees(*got, *want);
}

// Nothing of the layer is visible, and nothing is left in staging.
void ExpectNoTrace(const content::Store& store, const Digest& diff_id) {
  EXPECT_FALSE(stdfs::exists(stdfs::symlink_status(store.layout().LayerDir(diff_id))))
      << "a failed layer is visible";
  std::error_code ec;
  const std::string staging = store.layout().LayersDir() + "/staging";
  EXPECT_TRUE(!stdfs::exists(staging, ec) || stdfs::is_empty(staging, ec))
      << "staging not cleaned up";
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

// Every change of an extraction goes through the store's FileSystem: data, directories, links,
// nodes, metadata.
TEST(LayerFaults, ExtractionGoesThroughTheStoresFileSystem) {
  std::vector<std::string> files;
  const Layer l = MakeRichLayer(&files);
  TempDir dir;
  ASSERT_NE(MustOpen(dir.store()), nullptr);
  FaultInjectingFileSystem fs;
  auto store = MustOpen(dir.store(), &fs);
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(Unpack(*store, l).ok());
  EXPECT_EQ(fs.calls(Op::kWrite), static_cast<int>(files.size()) + 1);  // and layer.json
  EXPECT_GE(fs.calls(Op::kMkdir), 5);    // staging, rootfs, etc, bin, usr/share/doc...
  EXPECT_GE(fs.calls(Op::kSymlink), 1);  // bin/sh
  EXPECT_GE(fs.calls(Op::kLink), 1);     // bin/link
  EXPECT_GE(fs.calls(Op::kMknod), 1);    // run/fifo
  EXPECT_GE(fs.calls(Op::kUtimens), 8);
  EXPECT_GE(fs.calls(Op::kChmod), 10);
}

// ENOSPC at the k-th write of a layer, for every k: the extraction fails with
// ResourceExhausted naming the file being written, nothing of the layer is visible, staging is
// cleaned up, and the next attempt on a healthy disk succeeds.
TEST(LayerFaults, NoSpaceAtAnyWriteFailsCleanly) {
  std::vector<std::string> files;
  const Layer l = MakeRichLayer(&files);
  TempDir ref_dir;
  auto reference = MustOpen(ref_dir.store());
  ASSERT_NE(reference, nullptr);
  ASSERT_TRUE(Unpack(*reference, l).ok());
  const int writes = static_cast<int>(files.size()) + 1;  // the files' data, then layer.json
  for (int k = 1; k <= writes; ++k) {
    SCOPED_TRACE("ENOSPC at write " + std::to_string(k));
    TempDir dir;
    ASSERT_NE(MustOpen(dir.store()), nullptr);
    FaultInjectingFileSystem fs;
    {
      auto store = MustOpen(dir.store(), &fs);
      ASSERT_NE(store, nullptr);
      fs.FailNth(Op::kWrite, k, ENOSPC);
      Status s = Unpack(*store, l);
      ASSERT_FALSE(s.ok());
      EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s.ToString();
      if (k < writes) {
        EXPECT_NE(s.message().find("extract " + files[k - 1] +
                                   ": no space left on device writing file data"),
                  std::string::npos)
            << s.ToString();
        // And where: the layer's staging directory in the store.
        EXPECT_NE(s.message().find("(in " + store->layout().LayerStagingDir(l.diff_id) + ")"),
                  std::string::npos)
            << s.ToString();
      } else {  // the record
        EXPECT_NE(s.message().find("layer.json.tmp"), std::string::npos) << s.ToString();
        EXPECT_NE(s.message().find("No space left on device"), std::string::npos) << s.ToString();
      }
      EXPECT_EQ(fs.calls(Op::kWrite), k);  // nothing written after the failure
    }
    auto store = MustOpen(dir.store());
    ASSERT_NE(store, nullptr);
    ExpectNoTrace(*store, l.diff_id);
    EXPECT_FALSE(LayerExists(*store, l.diff_id));
    Status s = Unpack(*store, l);
    ASSERT_TRUE(s.ok()) << s.ToString();
    EXPECT_TRUE(LayerExists(*store, l.diff_id));
    EXPECT_TRUE(TreeDiffs(*store, *reference, l.diff_id).empty())
        << testing::JoinLines(TreeDiffs(*store, *reference, l.diff_id));
  }
}

// EIO at the n-th call of any kind of operation, for every n a healthy extraction and commit
// makes: the layer either fails with nothing visible and staging cleaned up, or (a fault after
// the rename: the final fsync, the lock's removal) is complete. A later attempt succeeds.
TEST(LayerFaults, IoErrorAtAnyOperationFailsCleanly) {
  const Layer l = MakeRichLayer();
  TempDir ref_dir;
  ASSERT_NE(MustOpen(ref_dir.store()), nullptr);
  FaultInjectingFileSystem counting;
  auto reference = MustOpen(ref_dir.store(), &counting);
  ASSERT_NE(reference, nullptr);
  std::map<Op, int> opening;  // the calls of opening the store, which the loop does not count
  const Op ops[] = {Op::kOpen,     Op::kMkdir,  Op::kMknod,    Op::kSymlink,
                    Op::kLink,     Op::kRename, Op::kUnlink,   Op::kRmdir,
                    Op::kChown,    Op::kChmod,  Op::kUtimens,  Op::kWrite,
                    Op::kTruncate, Op::kFsync,  Op::kSetxattr, Op::kRemovexattr};
  for (Op op : ops) opening[op] = counting.calls(op);
  ASSERT_TRUE(Unpack(*reference, l).ok());
  int failed = 0;
  for (Op op : ops) {
    const int calls = std::min(counting.calls(op) - opening[op], 60);
    for (int n = 1; n <= calls; ++n) {
      SCOPED_TRACE("EIO at call " + std::to_string(n) + " of op " +
                   std::to_string(static_cast<int>(op)));
      TempDir dir;
      ASSERT_NE(MustOpen(dir.store()), nullptr);
      FaultInjectingFileSystem fs;
      Status s;
      {
        auto store = MustOpen(dir.store(), &fs);
        ASSERT_NE(store, nullptr);
        fs.FailNth(op, n, EIO);
        s = Unpack(*store, l);
      }
      auto store = MustOpen(dir.store());
      ASSERT_NE(store, nullptr);
      if (stdfs::exists(stdfs::symlink_status(store->layout().LayerDir(l.diff_id)))) {
        EXPECT_TRUE(LayerExists(*store, l.diff_id)) << "partial layer visible: " << s.ToString();
        EXPECT_TRUE(TreeDiffs(*store, *reference, l.diff_id).empty());
      } else {
        ASSERT_FALSE(s.ok());
        EXPECT_EQ(s.code(), StatusCode::kInternal)
            << s.ToString();  // EIO is local, not a network error
        EXPECT_NE(s.message().find("Input/output error"), std::string::npos) << s.ToString();
        ExpectNoTrace(*store, l.diff_id);
        ++failed;
      }
      Status again = Unpack(*store, l);
      ASSERT_TRUE(again.ok()) << again.ToString();
      EXPECT_TRUE(TreeDiffs(*store, *reference, l.diff_id).empty());
    }
  }
  EXPECT_GT(failed, 50);
}

// `l` extracted and committed into a store of its own through a counting FileSystem: the tree to
// compare with, and how many FileSystem calls that takes (the crash points the tests walk).
struct ReferenceUnpack {
  TempDir dir;
  FaultInjectingFileSystem counting;
  std::unique_ptr<content::Store> store;
  int changes = 0;
};
void UnpackForReference(const Layer& l, ReferenceUnpack* ref) {
  ASSERT_NE(MustOpen(ref->dir.store()), nullptr);  // the store's own creation is not counted
  ref->store = MustOpen(ref->dir.store(), &ref->counting);
  ASSERT_NE(ref->store, nullptr);
  const int opening = ref->counting.total_calls();
  ASSERT_TRUE(Unpack(*ref->store, l).ok());
  ref->changes = ref->counting.total_calls() - opening;
}

// Stops the disk after every possible number of changes of a layer's extraction and commit,
// then "restarts": layers/sha256/<id> is either absent or complete with its record and the
// reference tree, and the layer can be extracted again.
TEST(LayerCommit, CrashAtAnyPointLeavesNoPartialLayer) {
  const Layer l = MakeRichLayer();
  ReferenceUnpack ref;
  ASSERT_NO_FATAL_FAILURE(UnpackForReference(l, &ref));
  const int changes = ref.changes;
  bool finished = false;
  int n = 0;
  for (; !finished && n <= changes + 1; ++n) {
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
      auto record = ReadLayerRecord(*store, l.diff_id);
      EXPECT_TRUE(record.ok()) << "partial layer visible: " << record.status().ToString();
      EXPECT_TRUE(TreeDiffs(*store, *ref.store, l.diff_id).empty())
          << testing::JoinLines(TreeDiffs(*store, *ref.store, l.diff_id));
    } else {
      EXPECT_FALSE(finished);
    }
    Status s = Unpack(*store, l);
    ASSERT_TRUE(s.ok()) << s.ToString();
    EXPECT_TRUE(LayerExists(*store, l.diff_id));
    EXPECT_TRUE(stdfs::is_empty(store->layout().LayersDir() + "/staging"));
  }
  EXPECT_TRUE(finished);
  // Every change was a crash point: the extraction's (more than 40 for this layer) and the
  // commit's.
  EXPECT_GT(changes, 40);
  EXPECT_GE(n, changes);
}

// A layer extracted again from byte zero (a source that restarts the blob) is charged to the
// image's cap once: what the thrown-away extraction took is given back.
TEST(LayerBudget, ThrownAwayExtractionGivesItsBytesBack) {
  TempDir dir;
  auto store = MustOpen(dir.store());
  ASSERT_NE(store, nullptr);
  const Layer l = MakeLayer();
  const uint64_t file_bytes = 20 + 10;  // etc/hosts and bin/tool
  ImageBudget budget(file_bytes + 5);   // room for the layer once, not twice
  LayerLimits limits;
  limits.image_budget = &budget;
  {
    auto first = LayerUnpacker::Open(*store, l.diff_id, l.digest, kGzipLayer, limits);
    ASSERT_TRUE(first.ok()) << first.status().ToString();
    ASSERT_TRUE((*first)->Feed(l.blob.data(), l.blob.size()).ok());
    ASSERT_TRUE((*first)->Finish().ok());  // extracted, never committed
    EXPECT_EQ(budget.used(), file_bytes);
  }
  EXPECT_EQ(budget.used(), 0u);
  auto again = LayerUnpacker::Open(*store, l.diff_id, l.digest, kGzipLayer, limits);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  ASSERT_TRUE((*again)->Feed(l.blob.data(), l.blob.size()).ok());
  ASSERT_TRUE((*again)->Finish().ok());
  ASSERT_TRUE((*again)->Commit().ok());
  again->reset();
  EXPECT_EQ(budget.used(), file_bytes);  // a committed layer keeps its share
}

// Extracts and commits the layer, then makes it durable as a pull does at its end.
Status UnpackAndSync(const content::Store& store, const Layer& l) {
  RETURN_IF_ERROR(Unpack(store, l));
  return SyncLayers(store, {l.diff_id});
}

// The paths under the layer's rootfs/ (rootfs/ included) that a power loss now could change.
std::vector<std::string> UnsyncedFiles(const FaultInjectingFileSystem& fs,
                                       const content::Store& store, const Digest& diff_id) {
  const std::string rootfs = store.layout().LayerRootfs(diff_id);
  std::vector<std::string> paths = {rootfs}, unsynced;
  for (const auto& e : stdfs::recursive_directory_iterator(rootfs)) {
    paths.push_back(e.path().string());
  }
  for (const std::string& path : paths) {
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0 || fs.unsynced(st.st_dev, st.st_ino)) {
      unsynced.push_back(path);
    }
  }
  return unsynced;
}

// A crash after every possible number of changes of a layer's extraction, commit and the
// pull's one sync (SyncLayers). After a kill (same boot: the page cache keeps everything) a
// committed layer stays usable. After a power loss (a new boot id) the layer is either refused
// by ReadLayerRecord, or everything under its rootfs/ was durable: a power loss never leaves a
// layer that looks complete but has bytes missing. Fails if the boot check is dropped, or if
// the record is rewritten as synced without the sync or before it.
TEST(LayerCommit, RebootAtAnyCrashPointLeavesNoLayerWithMissingBytes) {
  const Layer l = MakeRichLayer();
  ReferenceUnpack ref;
  ASSERT_NO_FATAL_FAILURE(UnpackForReference(l, &ref));
  int changes = 0;
  {
    TempDir dir;
    ASSERT_NE(MustOpen(dir.store()), nullptr);
    FaultInjectingFileSystem counting;
    auto store = MustOpen(dir.store(), &counting);
    ASSERT_NE(store, nullptr);
    const int opening = counting.total_calls();
    ASSERT_TRUE(UnpackAndSync(*store, l).ok());
    changes = counting.total_calls() - opening;
    ASSERT_GT(changes, ref.changes);  // the sync and the record's rewrite
  }
  int refused_after_reboot = 0, kept_after_reboot = 0;
  for (int n = 0; n <= changes; ++n) {
    SCOPED_TRACE("crash after " + std::to_string(n) + " changes");
    TempDir dir;
    ASSERT_NE(MustOpen(dir.store()), nullptr);
    FaultInjectingFileSystem fs;
    {
      auto store = MustOpen(dir.store(), &fs);
      ASSERT_NE(store, nullptr);
      fs.CrashAfter(n);
      Status s = UnpackAndSync(*store, l);
      if (n == changes) {
        EXPECT_TRUE(s.ok()) << s.ToString();
      }
    }
    FaultInjectingFileSystem same_boot;
    auto killed = MustOpen(dir.store(), &same_boot);
    ASSERT_NE(killed, nullptr);
    if (!stdfs::exists(stdfs::symlink_status(killed->layout().LayerDir(l.diff_id)))) continue;
    // A kill: the committed layer is whole and usable.
    auto record = ReadLayerRecord(*killed, l.diff_id);
    EXPECT_TRUE(record.ok()) << record.status().ToString();
    EXPECT_TRUE(LayerExists(*killed, l.diff_id));
    EXPECT_TRUE(TreeDiffs(*killed, *ref.store, l.diff_id).empty());

    // A power loss: a new boot.
    FaultInjectingFileSystem rebooted;
    rebooted.SetBootId("boot-after-the-crash");
    auto after = MustOpen(dir.store(), &rebooted);
    ASSERT_NE(after, nullptr);
    auto again = ReadLayerRecord(*after, l.diff_id);
    if (again.ok()) {
      ++kept_after_reboot;
      EXPECT_TRUE(again->synced);
      EXPECT_EQ(UnsyncedFiles(fs, *after, l.diff_id), std::vector<std::string>{})
          << "a layer trusted after a power loss could have lost these";
    } else {
      ++refused_after_reboot;
      EXPECT_EQ(again.status().code(), StatusCode::kFailedPrecondition);
      EXPECT_FALSE(LayerExists(*after, l.diff_id));
      // Pulled again, it is extracted again.
      Status s = UnpackAndSync(*after, l);
      ASSERT_TRUE(s.ok()) << s.ToString();
      EXPECT_TRUE(LayerExists(*after, l.diff_id));
      EXPECT_TRUE(ReadLayerRecord(*after, l.diff_id)->synced);
      EXPECT_TRUE(TreeDiffs(*after, *ref.store, l.diff_id).empty());
    }
  }
  EXPECT_GT(refused_after_reboot, 0);
  EXPECT_GT(kept_after_reboot, 0);
}

// Committed without the sync, a layer is a layer in its own boot only; SyncLayers makes it one
// in any boot, and leaves alone a layer whose lock someone else holds.
TEST(LayerCommit, UnsyncedLayerIsALayerOnlyInItsBoot) {
  TempDir dir;
  ASSERT_NE(MustOpen(dir.store()), nullptr);
  FaultInjectingFileSystem fs;
  fs.SetBootId("first-boot");
  auto store = MustOpen(dir.store(), &fs);
  ASSERT_NE(store, nullptr);
  const Layer l = MakeLayer();
  ASSERT_TRUE(Unpack(*store, l).ok());
  auto record = ReadLayerRecord(*store, l.diff_id);
  ASSERT_TRUE(record.ok()) << record.status().ToString();
  EXPECT_FALSE(record->synced);
  const int syncs = fs.calls(Op::kFsync);

  fs.SetBootId("second-boot");
  auto refused = ReadLayerRecord(*store, l.diff_id);
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("another boot"), std::string::npos)
      << refused.status().ToString();
  EXPECT_FALSE(LayerExists(*store, l.diff_id));
  fs.SetBootId("first-boot");

  {
    // Another holder of the layer's lock: not rewritten (the holder syncs it itself).
    auto locks = store->OpenDir(store->layout().LocksDir(), true);
    ASSERT_TRUE(locks.ok());
    auto lock = FileLock::Acquire(FileSystem::Default(), locks->get(),
                                  BaseName(store->layout().LayerLockFile(l.diff_id)));
    ASSERT_TRUE(lock.ok());
    ASSERT_TRUE(SyncLayers(*store, {l.diff_id}).ok());
    EXPECT_FALSE(ReadLayerRecord(*store, l.diff_id)->synced);
  }
  ASSERT_TRUE(SyncLayers(*store, {l.diff_id, l.diff_id}).ok());
  EXPECT_EQ(fs.calls(Op::kFsync), syncs + 2);  // one syncfs per call, whatever the layers
  EXPECT_TRUE(ReadLayerRecord(*store, l.diff_id)->synced);
  fs.SetBootId("second-boot");
  EXPECT_TRUE(LayerExists(*store, l.diff_id));
  // Nothing left to sync: no sync at all.
  ASSERT_TRUE(SyncLayers(*store, {l.diff_id}).ok());
  EXPECT_EQ(fs.calls(Op::kFsync), syncs + 2);
}

// A layer whose blob is larger than what the pipe between Feed and the extraction holds.
Layer MakeLargeLayer() {
  std::string noise(6 << 20, '\0');
  uint64_t x = 88172645463325252ULL;
  for (char& c : noise) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    c = static_cast<char>(x);
  }
  Layer l;
  l.tar = testing::MakeTar({{.path = "data/", .type = '5', .mode = 0755},
                            {.path = "data/noise", .content = noise},
                            {.path = "data/after", .content = "last\n"}});
  l.blob = testing::Gzip(l.tar);
  l.diff_id = *content::DigestOf("sha256", l.tar);
  l.digest = *content::DigestOf("sha256", l.blob);
  return l;
}

// Feed hands the bytes to the extraction's thread; in small pieces or large, the layer comes
// out whole.
TEST(LayerPipeline, ExtractsWhatIsFedInAnyPieces) {
  const Layer l = MakeLargeLayer();
  for (size_t piece : {size_t{1000}, size_t{16384}, size_t{3 << 20}}) {
    SCOPED_TRACE("pieces of " + std::to_string(piece));
    TempDir dir;
    auto store = MustOpen(dir.store());
    ASSERT_NE(store, nullptr);
    auto u = LayerUnpacker::Open(*store, l.diff_id, l.digest, kGzipLayer);
    ASSERT_TRUE(u.ok()) << u.status().ToString();
    for (size_t at = 0; at < l.blob.size(); at += piece) {
      ASSERT_TRUE((*u)->Feed(l.blob.data() + at, std::min(piece, l.blob.size() - at)).ok());
    }
    ASSERT_TRUE((*u)->Finish().ok());
    ASSERT_TRUE((*u)->Commit().ok());
    EXPECT_EQ(Slurp(store->layout().LayerRootfs(l.diff_id) + "/data/after"), "last\n");
    EXPECT_EQ(stdfs::file_size(store->layout().LayerRootfs(l.diff_id) + "/data/noise"),
              size_t{6 << 20});
  }
}

// The download side gives up half-way (a source failed, the pull was cancelled): dropping the
// unpacker stops the extraction and leaves nothing, while the pipe is full or empty.
TEST(LayerPipeline, DroppedHalfWayStopsTheExtraction) {
  const Layer l = MakeLargeLayer();
  for (size_t fed : {size_t{0}, size_t{4096}, l.blob.size() / 2, l.blob.size() - 1}) {
    SCOPED_TRACE("dropped after " + std::to_string(fed) + " bytes");
    TempDir dir;
    auto store = MustOpen(dir.store());
    ASSERT_NE(store, nullptr);
    {
      auto u = LayerUnpacker::Open(*store, l.diff_id, l.digest, kGzipLayer);
      ASSERT_TRUE(u.ok()) << u.status().ToString();
      ASSERT_TRUE((*u)->Feed(l.blob.data(), fed).ok());
    }
    ExpectNoTrace(*store, l.diff_id);
    ASSERT_TRUE(Unpack(*store, l).ok());  // the lock was released
  }
}

// An extraction that fails (here: the disk fills up) reaches the download side: a later Feed
// returns its error at once, whatever still comes (never waiting for the stopped extraction),
// and so does Finish; nothing is left.
TEST(LayerPipeline, ExtractionErrorReachesTheFeedWithoutBlockingIt) {
  const Layer l = MakeLargeLayer();
  TempDir dir;
  ASSERT_NE(MustOpen(dir.store()), nullptr);
  FaultInjectingFileSystem fs;
  auto store = MustOpen(dir.store(), &fs);
  ASSERT_NE(store, nullptr);
  {
    auto u = LayerUnpacker::Open(*store, l.diff_id, l.digest, kGzipLayer);
    ASSERT_TRUE(u.ok()) << u.status().ToString();
    fs.FailNth(Op::kWrite, 1, ENOSPC);
    Status fed;
    int feeds = 0;
    // The blob again and again, 64 KiB at a time: far more than the pipe holds.
    for (int round = 0; round < 20 && fed.ok(); ++round) {
      for (size_t at = 0; at < l.blob.size() && fed.ok(); at += 65536, ++feeds) {
        fed = (*u)->Feed(l.blob.data() + at, std::min<size_t>(65536, l.blob.size() - at));
      }
    }
    EXPECT_EQ(fed.code(), StatusCode::kResourceExhausted) << fed.ToString();
    EXPECT_NE(fed.message().find("staging"), std::string::npos) << fed.ToString();
    for (int i = 0; i < 1000; ++i) EXPECT_FALSE((*u)->Feed(l.blob.data(), 65536).ok());
    EXPECT_EQ((*u)->Finish().code(), StatusCode::kResourceExhausted);
  }
  ExpectNoTrace(*store, l.diff_id);
}

}  // namespace
}  // namespace hoist::unpack
