#include "content/layout.h"

#include <gtest/gtest.h>

namespace hoist::content {
namespace {

TEST(Layout, Names) {
  Digest d = *Digest::Parse("sha256:" + std::string(64, 'a'));
  const std::string& hex = d.hex();
  Layout l("/s/");
  EXPECT_EQ(l.root(), "/s");
  EXPECT_EQ(l.OciLayoutFile(), "/s/oci-layout");
  EXPECT_EQ(l.IndexFile(), "/s/index.json");
  EXPECT_EQ(l.IndexTempFile(), "/s/index.json.tmp");
  EXPECT_EQ(l.BlobsDir(), "/s/blobs");
  EXPECT_EQ(l.BlobAlgorithmDir("sha256"), "/s/blobs/sha256");
  EXPECT_EQ(l.BlobFile(d), "/s/blobs/sha256/" + hex);
  EXPECT_EQ(l.IngestDir(), "/s/ingest");
  EXPECT_EQ(l.IngestEntryDir(d), "/s/ingest/sha256-" + hex);
  EXPECT_EQ(l.IngestDataFile(d), "/s/ingest/sha256-" + hex + "/data");
  EXPECT_EQ(l.LayersDir(), "/s/layers");
  EXPECT_EQ(l.LayerDir(d), "/s/layers/sha256/" + hex);
  EXPECT_EQ(l.LayerRootfs(d), "/s/layers/sha256/" + hex + "/rootfs");
  EXPECT_EQ(l.LayerInfoFile(d), "/s/layers/sha256/" + hex + "/layer.json");
  EXPECT_EQ(l.LayerStagingDir(d), "/s/layers/staging/sha256-" + hex);
  EXPECT_EQ(l.LayerLockFile(d), "/s/locks/layer-sha256-" + hex + ".lock");
  EXPECT_EQ(l.LocksDir(), "/s/locks");
  EXPECT_EQ(l.BlobLockFile(d), "/s/locks/sha256-" + hex + ".lock");
  EXPECT_EQ(l.IndexLockFile(), "/s/locks/index.lock");
  EXPECT_EQ(l.GcLockFile(), "/s/locks/gc.lock");
  EXPECT_EQ(l.LayersStagingDir(), "/s/layers/staging");
  EXPECT_EQ(Layout("rel").IndexFile(), "rel/index.json");
  EXPECT_EQ(l.MountRecordFile("m"), "/s/mounts/m/mount.json");
  EXPECT_EQ(l.Relative(l.BlobAlgorithmDir("sha256")), "blobs/sha256");
  EXPECT_EQ(l.Relative(l.LayerDir(d)), "layers/sha256/" + hex);
  EXPECT_EQ(Layout("/").Relative("/locks"), "locks");
}

TEST(LayoutTest, KeysNameDigestsBothWays) {
  const Digest d = *Digest::Parse("sha256:" + std::string(64, 'a'));
  EXPECT_EQ(Layout::KeyOf(d), "sha256-" + std::string(64, 'a'));
  EXPECT_EQ(Layout::DigestOfKey(Layout::KeyOf(d)), d);
  for (const char* other : {"staging", "sha256-xyz", "gc.lock", "sha256", "-"}) {
    EXPECT_FALSE(Layout::DigestOfKey(other).has_value()) << other;
  }
}

}  // namespace
}  // namespace hoist::content
