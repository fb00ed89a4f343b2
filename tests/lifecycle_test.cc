// The image lifecycle end to end against the real registry on loopback: rmi, gc (also while a
// pull is in progress, and with a live mount), verify [--repair] and df, through libhoist and
// the CLI.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "base/fs.h"
#include "content/store.h"
#include "hoist/client.h"
#include "support/fixture_images.h"
#include "support/http_server.h"
#include "support/image_builder.h"
#include "support/process.h"
#include "support/registry.h"

namespace hoist {
namespace {

namespace fs = std::filesystem;
using testing::BuildImage;
using testing::BuiltImage;
using testing::Format;
using testing::TarEntry;

#define REQUIRE_REGISTRY() \
  if (!testing::TestRegistry::Available()) GTEST_SKIP() << "docker-registry not installed"

// Two images sharing their first layer; each has a second layer of its own.
BuiltImage MakeImage(Format f, const std::string& name) {
  std::vector<std::vector<TarEntry>> layers = {
      {{"etc/", "", '5'}, {"etc/base", std::string(5000, 'b')}},
      {{"app/", "", '5'}, {"app/" + name, std::string(3000, 'a') + name}},
  };
  return BuildImage(f, layers);
}

std::set<std::string> Names(const std::string& dir) {
  std::set<std::string> out;
  if (!fs::exists(dir)) return out;
  for (auto& e : fs::directory_iterator(dir)) out.insert(e.path().filename().string());
  return out;
}

std::string Hex(const std::string& digest) { return digest.substr(7); }

// Bytes of the regular files under `dir`, each inode once (what df counts for a directory).
int64_t TreeBytes(const std::string& dir) {
  std::set<std::pair<dev_t, ino_t>> seen;
  int64_t bytes = 0;
  for (auto& e : fs::recursive_directory_iterator(dir)) {
    struct stat st;
    if (::lstat(e.path().c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        seen.insert({st.st_dev, st.st_ino}).second) {
      bytes += st.st_size;
    }
  }
  return bytes;
}

class LifecycleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = testing::TempDir::Create("hoist-life-");
    ASSERT_TRUE(dir.ok());
    dir_.emplace(std::move(dir).value());
    store_ = dir_->path() + "/store";
  }

  std::unique_ptr<Client> NewClient() {
    ClientOptions o;
    o.store_dir = store_;
    auto c = Client::Open(o);
    EXPECT_TRUE(c.ok()) << c.status().message();
    return c.ok() ? std::move(c).value() : nullptr;
  }

  std::string Blobs() const { return store_ + "/blobs/sha256"; }
  std::string Layers() const { return store_ + "/layers/sha256"; }

  // Starts the registry with image a (OCI) at app:a and app:alias, and b (Docker) at app:b.
  void StartRegistry() {
    auto reg = testing::TestRegistry::Start();
    ASSERT_TRUE(reg.ok()) << reg.status().message();
    reg_ = std::move(*reg);
    a_ = MakeImage(Format::kOci, "a");
    b_ = MakeImage(Format::kDocker, "b");
    ASSERT_EQ(a_.layers[0].digest, b_.layers[0].digest);  // shared
    ASSERT_TRUE(testing::PushImage(reg_->host(), "app", "a", a_).ok());
    ASSERT_TRUE(testing::PushImage(reg_->host(), "app", "alias", a_).ok());
    ASSERT_TRUE(testing::PushImage(reg_->host(), "app", "b", b_).ok());
  }
  std::string Ref(const std::string& tag) const { return reg_->host() + "/app:" + tag; }

  std::optional<testing::TempDir> dir_;
  std::string store_;
  std::unique_ptr<testing::TestRegistry> reg_;
  BuiltImage a_, b_;
};

TEST_F(LifecycleTest, RmiKeepsSharedBlobsAndGcFreesExactlyTheUnreferenced) {
  REQUIRE_REGISTRY();
  StartRegistry();
  auto client = NewClient();
  for (const char* tag : {"a", "alias", "b"}) ASSERT_TRUE(client->Pull(Ref(tag)).ok()) << tag;
  const std::set<std::string> all_blobs = Names(Blobs());
  const std::set<std::string> all_layers = Names(Layers());
  ASSERT_EQ(all_layers.size(), 3u);  // shared, a's own, b's own

  // rmi drops the record only; a missing one is an error naming it.
  auto untagged = client->RemoveImage(Ref("a"));
  ASSERT_TRUE(untagged.ok()) << untagged.status().message();
  EXPECT_EQ(*untagged, Ref("a"));
  EXPECT_EQ(client->Inspect(Ref("a")).status().code(), StatusCode::kNotFound);
  auto again = client->RemoveImage(Ref("a"));
  EXPECT_EQ(again.status().code(), StatusCode::kNotFound);
  EXPECT_NE(again.status().message().find(Ref("a")), std::string::npos);
  EXPECT_EQ(Names(Blobs()), all_blobs);

  // app:alias still references every blob of a.
  auto gc = client->GarbageCollect();
  ASSERT_TRUE(gc.ok()) << gc.status().message();
  EXPECT_EQ(gc->bytes(), 0);
  EXPECT_EQ(Names(Blobs()), all_blobs);
  EXPECT_EQ(Names(Layers()), all_layers);

  // Without it, a's manifest, config and own layer go; the shared layer stays for b.
  ASSERT_TRUE(client->RemoveImage(Ref("alias")).ok());
  gc = client->GarbageCollect();
  ASSERT_TRUE(gc.ok()) << gc.status().message();
  std::set<std::string> gone = {Hex(a_.manifest_digest), Hex(a_.config.digest),
                                Hex(a_.layers[1].digest)};
  std::set<std::string> left;
  for (const auto& b : all_blobs) {
    if (!gone.contains(b)) left.insert(b);
  }
  EXPECT_EQ(Names(Blobs()), left);
  EXPECT_EQ(gc->blobs.count, 3);
  EXPECT_EQ(gc->blobs.bytes, static_cast<int64_t>(a_.manifest.size() + a_.config.data.size() +
                                                  a_.layers[1].data.size()));
  EXPECT_EQ(gc->layers.count, 1);
  EXPECT_EQ(Names(Layers()), (std::set<std::string>{Hex(b_.diff_ids[0]), Hex(b_.diff_ids[1])}));
  auto verify = client->Verify({});
  ASSERT_TRUE(verify.ok());
  EXPECT_TRUE(verify->problems.empty()) << verify->problems[0].message;
  EXPECT_TRUE(client->Inspect(Ref("b")).ok());

  // b is a Docker image: its record's OCI rendition and the registry's manifest both go.
  ASSERT_TRUE(client->RemoveImage(Ref("b")).ok());
  gc = client->GarbageCollect();
  ASSERT_TRUE(gc.ok()) << gc.status().message();
  EXPECT_EQ(gc->blobs.count, 5);  // rendition, manifest, config, two layers
  EXPECT_EQ(gc->layers.count, 2);
  EXPECT_TRUE(Names(Blobs()).empty());
  EXPECT_TRUE(Names(Layers()).empty());

  // And the store works as before.
  auto repulled = client->Pull(Ref("a"));
  ASSERT_TRUE(repulled.ok()) << repulled.status().message();
  EXPECT_TRUE(repulled->downloaded);
}

// A registry in front of the real one whose second layer of image a waits for `release`.
TEST_F(LifecycleTest, GcWaitsForAPullInProgressAndKeepsWhatItFetched) {
  REQUIRE_REGISTRY();
  StartRegistry();
  std::map<std::string, std::string> blobs = {{a_.config.digest, a_.config.data}};
  for (const auto& l : a_.layers) blobs[l.digest] = l.data;
  std::atomic<bool> release{false};
  auto server = testing::FixtureServer::Start([&](const testing::HttpRequest& r) {
    if (r.target.find("/manifests/") != std::string::npos) {
      return testing::HttpResponse{
          200,
          {{"Content-Type", a_.manifest_media_type}, {"Docker-Content-Digest", a_.manifest_digest}},
          a_.manifest};
    }
    for (const auto& [digest, data] : blobs) {
      if (!r.target.ends_with("/blobs/" + digest)) continue;
      if (digest == a_.layers[1].digest) {
        for (int i = 0; i < 3000 && !release.load(); ++i) {
          std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
      }
      return testing::HttpResponse{200, {}, data};
    }
    return testing::HttpResponse{404, {}, ""};
  });
  ASSERT_TRUE(server.ok());
  auto client = NewClient();
  // Something for gc to take: b, recorded here and removed while the pull runs.
  ASSERT_TRUE(client->Pull(Ref("b")).ok());

  const std::string ref = (*server)->host() + "/app:a";
  Result<hoist::Image> pulled = InternalError("not run");
  std::thread pull([&] { pulled = NewClient()->Pull(ref); });
  // Wait until the pull has fetched a's own first blobs (the config), unreferenced so far.
  const std::string config = Blobs() + "/" + Hex(a_.config.digest);
  for (int i = 0; i < 1000 && !fs::exists(config); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(fs::exists(config));
  ASSERT_TRUE(client->RemoveImage(Ref("b")).ok());  // rmi does not wait for pulls

  GcOptions no_wait;
  no_wait.lock_timeout_seconds = 0;
  auto refused = client->GarbageCollect(no_wait);
  EXPECT_EQ(refused.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(refused.status().message().find("gc.lock"), std::string::npos);

  std::atomic<bool> gc_done{false};
  Result<GcReport> gc = InternalError("not run");
  std::thread collector([&] {
    gc = NewClient()->GarbageCollect();
    gc_done = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_FALSE(gc_done.load()) << "gc ran while a pull was in progress";
  EXPECT_TRUE(fs::exists(config));
  release = true;
  pull.join();
  collector.join();
  ASSERT_TRUE(pulled.ok()) << pulled.status().message();
  ASSERT_TRUE(gc.ok()) << gc.status().message();
  // gc ran after the record was written: it took b's own blobs, not a's.
  EXPECT_EQ(gc->blobs.count, 4);  // b's rendition, manifest, config, own layer
  EXPECT_EQ(gc->layers.count, 1);
  for (const auto& [digest, data] : blobs) EXPECT_TRUE(fs::exists(Blobs() + "/" + Hex(digest)));
  auto verify = client->Verify({ref});
  ASSERT_TRUE(verify.ok()) << verify.status().message();
  EXPECT_TRUE(verify->problems.empty()) << verify->problems[0].message;
  EXPECT_EQ(verify->layers, 2);
}

TEST_F(LifecycleTest, VerifyCatchesAFlippedByteAndRepairLetsThePullRestoreIt) {
  REQUIRE_REGISTRY();
  StartRegistry();
  auto client = NewClient();
  ASSERT_TRUE(client->Pull(Ref("a")).ok());
  auto clean = client->Verify({});
  ASSERT_TRUE(clean.ok());
  EXPECT_TRUE(clean->problems.empty());
  EXPECT_EQ(clean->blobs, 4);
  EXPECT_EQ(clean->layers, 2);

  const std::string blob = Blobs() + "/" + Hex(a_.layers[1].digest);
  {
    std::fstream f(blob, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(100);
    char c = 0;
    f.get(c);
    f.seekp(100);
    f.put(static_cast<char>(c ^ 1));
  }
  for (const std::vector<std::string>& refs :
       {std::vector<std::string>{}, std::vector<std::string>{Ref("a")}}) {
    auto r = client->Verify(refs);
    ASSERT_TRUE(r.ok()) << r.status().message();
    ASSERT_EQ(r->problems.size(), 2u);
    EXPECT_EQ(r->problems[0].kind, "blob");
    EXPECT_EQ(r->problems[0].digest.String(), a_.layers[1].digest);
    EXPECT_NE(r->problems[0].message.find("digest mismatch"), std::string::npos);
    EXPECT_FALSE(r->problems[0].removed);
    // Its layer directory cannot be compared with it.
    EXPECT_EQ(r->problems[1].kind, "layer");
    EXPECT_EQ(r->problems[1].digest.String(), a_.diff_ids[1]);
    EXPECT_EQ(r->problems[1].message,
              "blob " + a_.layers[1].digest + " failed its check: the layer cannot be checked");
  }
  EXPECT_EQ(client->Verify({Ref("nothing")}).status().code(), StatusCode::kNotFound);

  // Layer directories: a file added to one, the record removed from the other.
  std::ofstream(Layers() + "/" + Hex(a_.diff_ids[0]) + "/rootfs/etc/planted") << "extra bytes";
  ASSERT_EQ(::unlink((Layers() + "/" + Hex(a_.diff_ids[1]) + "/layer.json").c_str()), 0);
  auto r = client->Verify({});
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->problems.size(), 3u);
  std::set<std::string> layer_problems;
  for (const auto& p : r->problems) {
    if (p.kind == "layer") layer_problems.insert(p.digest.String());
  }
  EXPECT_EQ(layer_problems, (std::set<std::string>{a_.diff_ids[0], a_.diff_ids[1]}));

  VerifyOptions repair;
  repair.repair = true;
  r = client->Verify({}, repair);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->problems.size(), 3u);
  for (const auto& p : r->problems) EXPECT_TRUE(p.removed) << p.message;
  EXPECT_FALSE(fs::exists(blob));
  EXPECT_FALSE(fs::exists(Layers() + "/" + Hex(a_.diff_ids[0])));
  EXPECT_FALSE(fs::exists(Layers() + "/" + Hex(a_.diff_ids[1])));
  // Now missing, which verify also reports (nothing left to remove).
  r = client->Verify({Ref("a")});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->problems.size(), 3u);

  auto repulled = client->Pull(Ref("a"));
  ASSERT_TRUE(repulled.ok()) << repulled.status().message();
  r = client->Verify({});
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->problems.empty()) << r->problems[0].message;
  EXPECT_TRUE(fs::exists(Layers() + "/" + Hex(a_.diff_ids[1]) + "/rootfs/app/a"));

  // Files added without data: names the layer's tar does not have.
  const std::string app = Layers() + "/" + Hex(a_.diff_ids[1]) + "/rootfs/app";
  std::ofstream(app + "/empty1").flush();
  ASSERT_EQ(::symlink("a", (app + "/link").c_str()), 0);
  r = client->Verify({Ref("a")});
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->problems.size(), 1u);
  EXPECT_EQ(r->problems[0].digest.String(), a_.diff_ids[1]);
  EXPECT_EQ(r->problems[0].message,
            "\"app/empty1\": not in the layer's blob; \"app/link\": not in the layer's blob");
}

// hoist verify compares each layer directory with its blob: a file removed, or changed without
// changing its size, is found (by the layer's diff_id and the file's name); --repair removes
// the layer and the next pull extracts it again.
TEST_F(LifecycleTest, VerifyFindsARemovedAndASameSizeChangedFile) {
  REQUIRE_REGISTRY();
  StartRegistry();
  auto run = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"--store", store_});
    return testing::RunCli(HOIST_CLI, args, dir_->path());
  };
  ASSERT_EQ(run({"pull", "-q", Ref("a")}).exit_code, 0);
  const std::string base = Layers() + "/" + Hex(a_.diff_ids[0]) + "/rootfs/etc/base";
  const std::string app = Layers() + "/" + Hex(a_.diff_ids[1]) + "/rootfs/app/a";
  ASSERT_EQ(::unlink(base.c_str()), 0);
  {
    std::fstream f(app, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(10);
    f.put('x');  // 'a' before: same size
  }
  auto verify = run({"verify"});
  EXPECT_EQ(verify.exit_code, 1);
  EXPECT_NE(verify.out.find("layer " + a_.diff_ids[0] + ": \"etc/base\": missing\n"),
            std::string::npos)
      << verify.out;
  EXPECT_NE(verify.out.find("layer " + a_.diff_ids[1] +
                            ": \"app/a\": content differs from the layer's blob\n"),
            std::string::npos)
      << verify.out;
  EXPECT_NE(verify.out.find("Verified 4 blobs and 2 layers: 2 problems"), std::string::npos)
      << verify.out;

  verify = run({"verify", "--repair", Ref("a")});
  EXPECT_EQ(verify.exit_code, 1);
  EXPECT_NE(verify.out.find("missing (removed)"), std::string::npos) << verify.out;
  EXPECT_NE(verify.out.find("content differs from the layer's blob (removed)"), std::string::npos)
      << verify.out;
  EXPECT_TRUE(Names(Layers()).empty());
  ASSERT_EQ(run({"pull", "-q", Ref("a")}).exit_code, 0);
  verify = run({"verify"});
  EXPECT_EQ(verify.exit_code, 0) << verify.out;
  EXPECT_NE(verify.out.find("Verified 4 blobs and 2 layers: 0 problems"), std::string::npos)
      << verify.out;
  std::ifstream in(app, std::ios::binary);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), std::string(3000, 'a') + "a");
}

// A record whose config cannot be read stops gc before it removes anything.
TEST_F(LifecycleTest, GcRefusesWhileARecordIsDamaged) {
  REQUIRE_REGISTRY();
  StartRegistry();
  auto client = NewClient();
  ASSERT_TRUE(client->Pull(Ref("a")).ok());
  ASSERT_TRUE(client->Pull(Ref("b")).ok());
  ASSERT_TRUE(client->RemoveImage(Ref("b")).ok());
  {
    std::fstream f(Blobs() + "/" + Hex(a_.config.digest),
                   std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(0);
    f.put('[');
  }
  const std::set<std::string> blobs = Names(Blobs()), layers = Names(Layers());
  auto gc = client->GarbageCollect();
  EXPECT_EQ(gc.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(gc.status().message().find("verify --repair"), std::string::npos)
      << gc.status().message();
  EXPECT_EQ(Names(Blobs()), blobs);
  EXPECT_EQ(Names(Layers()), layers);

  VerifyOptions repair;
  repair.repair = true;
  auto r = client->Verify({Ref("a")}, repair);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->problems.size(), 1u);
  EXPECT_TRUE(r->problems[0].removed);
  gc = client->GarbageCollect();
  ASSERT_TRUE(gc.ok()) << gc.status().message();
  ASSERT_TRUE(client->Pull(Ref("a")).ok());
  r = client->Verify({});
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->problems.empty()) << r->problems[0].message;
}

// No false alarms: hardlinks, whiteouts, opaque directories and replaced files all verify.
TEST_F(LifecycleTest, VerifyPassesTheRealisticImage) {
  REQUIRE_REGISTRY();
  auto reg = testing::TestRegistry::Start();
  ASSERT_TRUE(reg.ok()) << reg.status().message();
  ASSERT_TRUE(
      testing::PushImage((*reg)->host(), "real", "oci", testing::RealisticImage(Format::kOci))
          .ok());
  ASSERT_TRUE(
      testing::PushImage((*reg)->host(), "real", "docker", testing::RealisticImage(Format::kDocker))
          .ok());
  auto client = NewClient();
  ASSERT_TRUE(client->Pull((*reg)->host() + "/real:oci").ok());
  ASSERT_TRUE(client->Pull((*reg)->host() + "/real:docker").ok());
  auto r = client->Verify({});
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->layers, 4);
  for (const auto& p : r->problems)
    ADD_FAILURE() << p.kind << " " << p.digest.String() << ": " << p.message;
}

TEST_F(LifecycleTest, DfMatchesTheDiskAndWhatGcFrees) {
  REQUIRE_REGISTRY();
  StartRegistry();
  auto client = NewClient();
  ASSERT_TRUE(client->Pull(Ref("a")).ok());
  ASSERT_TRUE(client->Pull(Ref("b")).ok());
  // A partial download: counted as ingest, reclaimable only once stale.
  ASSERT_EQ(::mkdir((store_ + "/ingest/sha256-" + std::string(64, 'e')).c_str(), 0700), 0);
  std::ofstream(store_ + "/ingest/sha256-" + std::string(64, 'e') + "/data") << "12345";

  auto u = client->Usage();
  ASSERT_TRUE(u.ok()) << u.status().message();
  int64_t blob_bytes = 0;
  for (const auto& b : Names(Blobs())) blob_bytes += fs::file_size(Blobs() + "/" + b);
  EXPECT_EQ(u->blobs.count, static_cast<int64_t>(Names(Blobs()).size()));
  EXPECT_EQ(u->blobs.bytes, blob_bytes);
  int64_t layer_bytes = 0;
  for (const auto& l : Names(Layers())) layer_bytes += TreeBytes(Layers() + "/" + l);
  EXPECT_EQ(u->layers.count, 3);
  EXPECT_EQ(u->layers.bytes, layer_bytes);
  EXPECT_EQ(u->ingest.count, 1);
  EXPECT_EQ(u->ingest.bytes, 5);
  EXPECT_EQ(u->reclaimable.bytes(), 0);

  ASSERT_TRUE(client->RemoveImage(Ref("b")).ok());
  GcOptions now;
  now.ingest_max_age_seconds = 0;
  u = client->Usage(now);
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->reclaimable.blobs.count, 4);
  std::map<std::string, int64_t> before;
  for (const auto& b : Names(Blobs())) before[b] = fs::file_size(Blobs() + "/" + b);
  EXPECT_EQ(u->reclaimable.layers.count, 1);
  EXPECT_EQ(u->reclaimable.ingest.count, 1);
  auto gc = client->GarbageCollect(now);
  ASSERT_TRUE(gc.ok());
  EXPECT_EQ(gc->blobs.count, u->reclaimable.blobs.count);
  EXPECT_EQ(gc->blobs.bytes, u->reclaimable.blobs.bytes);
  int64_t removed_bytes = 0;
  std::set<std::string> removed;
  const std::set<std::string> kept = Names(Blobs());
  for (const auto& [name, size] : before) {
    if (kept.contains(name)) continue;
    removed.insert(name);
    removed_bytes += size;
  }
  EXPECT_EQ(removed.size(), 4u);  // b's OCI rendition besides these three
  for (const std::string& d : {b_.manifest_digest, b_.config.digest, b_.layers[1].digest}) {
    EXPECT_TRUE(removed.contains(Hex(d))) << d;
  }
  EXPECT_EQ(removed_bytes, gc->blobs.bytes);
  EXPECT_EQ(gc->layers.bytes, u->reclaimable.layers.bytes);
  EXPECT_EQ(gc->bytes(), u->reclaimable.bytes());
  auto after = client->Usage();
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->blobs.bytes, u->blobs.bytes - gc->blobs.bytes);
  EXPECT_EQ(after->layers.bytes, u->layers.bytes - gc->layers.bytes);
  EXPECT_EQ(after->ingest.count, 0);
}

// Partial downloads go when stale and unlocked; a locked one stays, however old.
TEST_F(LifecycleTest, StaleUnlockedIngestStagingAndMountLeftoversAreRemoved) {
  auto client = NewClient();
  ASSERT_NE(client, nullptr);
  auto make = [&](const std::string& dir, const std::string& file, const std::string& data,
                  bool old) {
    ASSERT_TRUE(fs::create_directories(dir));
    ASSERT_EQ(::chmod(dir.c_str(), 0700), 0);
    std::ofstream(dir + "/" + file) << data;
    if (!old) return;
    const struct timespec times[2] = {{0, UTIME_OMIT}, {::time(nullptr) - 7200, 0}};
    ASSERT_EQ(::utimensat(AT_FDCWD, (dir + "/" + file).c_str(), times, 0), 0);
    ASSERT_EQ(::utimensat(AT_FDCWD, dir.c_str(), times, 0), 0);
  };
  const std::string stale = store_ + "/ingest/sha256-" + std::string(64, '1');
  const std::string locked = store_ + "/ingest/sha256-" + std::string(64, '2');
  const std::string fresh = store_ + "/ingest/sha256-" + std::string(64, '3');
  const std::string staging = store_ + "/layers/staging/sha256-" + std::string(64, '4');
  const std::string mount = store_ + "/mounts/0123456789abcdef0123456789abcdef";
  make(stale, "data", "stale", true);
  make(locked, "data", "locked", true);
  make(fresh, "data", "fresh", false);
  make(staging, "rootfs-file", "half", false);
  ASSERT_EQ(::chmod((store_ + "/layers").c_str(), 0700), 0);
  ASSERT_EQ(::chmod((store_ + "/layers/staging").c_str(), 0700), 0);
  make(mount + "/upper", "file", "scratch", false);
  ASSERT_EQ(::chmod((store_ + "/mounts").c_str(), 0700), 0);
  // A download in progress holds its blob's lock.
  auto lock = FileLock::Acquire(FileSystem::Default(), AT_FDCWD,
                                store_ + "/locks/sha256-" + std::string(64, '2') + ".lock");
  ASSERT_TRUE(lock.ok());

  auto usage = client->Usage();
  ASSERT_TRUE(usage.ok()) << usage.status().message();
  EXPECT_EQ(usage->ingest.count, 3);
  EXPECT_EQ(usage->ingest.bytes, 5 + 6 + 5);
  EXPECT_EQ(usage->reclaimable.ingest.count, 1);

  auto gc = client->GarbageCollect();
  ASSERT_TRUE(gc.ok()) << gc.status().message();
  EXPECT_EQ(gc->ingest.count, 1);
  EXPECT_EQ(gc->ingest.bytes, 5);
  EXPECT_EQ(gc->staging.count, 1);
  EXPECT_EQ(gc->mounts.count, 1);
  EXPECT_EQ(gc->mounts.bytes, 7);
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_TRUE(fs::exists(locked + "/data"));
  EXPECT_TRUE(fs::exists(fresh + "/data"));
  EXPECT_FALSE(fs::exists(staging));
  EXPECT_FALSE(fs::exists(mount));

  // Unlocked, and with no age threshold, both go.
  lock->Release();
  GcOptions now;
  now.ingest_max_age_seconds = 0;
  gc = client->GarbageCollect(now);
  ASSERT_TRUE(gc.ok());
  EXPECT_EQ(gc->ingest.count, 2);
  EXPECT_TRUE(Names(store_ + "/ingest").empty());
}

// A live mount keeps its directory and its layers even when no record needs them any more.
TEST_F(LifecycleTest, GcKeepsWhatALiveMountUses) {
  REQUIRE_REGISTRY();
  if (geteuid() != 0) GTEST_SKIP() << "mount needs root";
  StartRegistry();
  auto client = NewClient();
  ASSERT_TRUE(client->Pull(Ref("a")).ok());
  const std::string target = dir_->path() + "/mnt";
  ASSERT_EQ(::mkdir(target.c_str(), 0755), 0);
  Status s = client->Mount(Ref("a"), target, MountOptions{.writable = true});
  ASSERT_TRUE(s.ok()) << s.message();
  ASSERT_EQ(Names(store_ + "/mounts").size(), 1u);
  ASSERT_TRUE(client->RemoveImage(Ref("a")).ok());

  auto gc = client->GarbageCollect();
  ASSERT_TRUE(gc.ok()) << gc.status().message();
  EXPECT_EQ(gc->blobs.count, 4);  // blobs are not what a mount reads
  EXPECT_EQ(gc->layers.count, 0);
  EXPECT_EQ(gc->mounts.count, 0);
  EXPECT_EQ(Names(Layers()).size(), 2u);
  EXPECT_EQ(Names(store_ + "/mounts").size(), 1u);
  std::ifstream in(target + "/app/a");
  EXPECT_TRUE(in.good()) << "the mount still serves its files";
  in.close();

  s = client->Unmount(target);
  ASSERT_TRUE(s.ok()) << s.message();
  gc = client->GarbageCollect();
  ASSERT_TRUE(gc.ok()) << gc.status().message();
  EXPECT_EQ(gc->layers.count, 2);
  EXPECT_TRUE(Names(Layers()).empty());
}

// The command line: output and exit codes of rmi, gc, verify and df.
TEST_F(LifecycleTest, CommandLine) {
  REQUIRE_REGISTRY();
  StartRegistry();
  auto run = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"--store", store_});
    return testing::RunCli(HOIST_CLI, args, dir_->path());
  };
  auto pull = run({"pull", "-q", Ref("a")});
  ASSERT_EQ(pull.exit_code, 0) << pull.err;
  ASSERT_EQ(run({"pull", "-q", Ref("b")}).exit_code, 0);

  auto df = run({"df"});
  ASSERT_EQ(df.exit_code, 0) << df.err;
  EXPECT_NE(df.out.find("TYPE"), std::string::npos) << df.out;
  EXPECT_NE(df.out.find("Layers          3"), std::string::npos) << df.out;
  EXPECT_NE(df.out.find("Reclaimable by hoist gc: 0B"), std::string::npos) << df.out;

  auto verify = run({"verify"});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  EXPECT_NE(verify.out.find("Verified 8 blobs and 3 layers: 0 problems"), std::string::npos)
      << verify.out;
  {
    std::fstream f(Blobs() + "/" + Hex(b_.layers[1].digest),
                   std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(10);
    f.put('\x7f');
  }
  verify = run({"verify", Ref("b")});
  EXPECT_EQ(verify.exit_code, 1);
  EXPECT_NE(verify.out.find("blob " + b_.layers[1].digest + ": digest mismatch"), std::string::npos)
      << verify.out;
  verify = run({"verify", "--repair"});
  EXPECT_EQ(verify.exit_code, 1);
  EXPECT_NE(verify.out.find("(removed)"), std::string::npos) << verify.out;
  ASSERT_EQ(run({"pull", "-q", Ref("b")}).exit_code, 0);
  EXPECT_EQ(run({"verify"}).exit_code, 0);

  auto rmi = run({"rmi", Ref("a"), Ref("nope")});
  EXPECT_EQ(rmi.exit_code, 1);
  EXPECT_EQ(rmi.out, "Untagged: " + Ref("a") + "\n");
  EXPECT_NE(rmi.err.find("rmi " + Ref("nope")), std::string::npos) << rmi.err;
  {
    // Another process pulling holds gc off.
    auto store = content::Store::Open(store_);
    ASSERT_TRUE(store.ok());
    auto pulling = (*store)->LockAgainstGc();
    ASSERT_TRUE(pulling.ok());
    auto refused = run({"gc", "--timeout", "0"});
    EXPECT_EQ(refused.exit_code, 1);
    EXPECT_NE(refused.err.find("hoist: gc: pulls in progress hold"), std::string::npos)
        << refused.err;
    EXPECT_TRUE(refused.out.empty()) << refused.out;
  }
  auto gc = run({"gc"});
  ASSERT_EQ(gc.exit_code, 0) << gc.err;
  EXPECT_NE(gc.out.find("Deleted 3 blobs"), std::string::npos) << gc.out;
  EXPECT_NE(gc.out.find("1 layers"), std::string::npos) << gc.out;
  EXPECT_NE(gc.out.find("Total reclaimed space: "), std::string::npos) << gc.out;
  EXPECT_NE(run({"gc", "--help"}).out.find("--ingest-max-age"), std::string::npos);
}

}  // namespace
}  // namespace hoist
