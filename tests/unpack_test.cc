// Layer extraction, `unpack` and `mount` end to end: images pushed to the real registry on
// loopback, pulled through libhoist, and the resulting trees compared with what umoci and the
// hoist command line make of the same image. Hostile layers must leave everything outside
// the store and the destination untouched, and leave no trace of the failed layer behind.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "hoist/client.h"
#include "support/fixture_images.h"
#include "support/image_builder.h"
#include "support/process.h"
#include "support/registry.h"
#include "support/tree.h"

namespace hoist {
namespace {

namespace fs = std::filesystem;
using testing::BuiltImage;
using testing::CompareOptions;
using testing::CompareTrees;
using testing::Format;
using testing::HostileCase;
using testing::JoinLines;
using testing::SnapshotTree;
using testing::Tree;

constexpr uint64_t kMaxLayerBytes = 64ULL << 20;
constexpr uint64_t kBombBytes = 80ULL << 20;
constexpr char kUmoci[] = "/usr/bin/umoci";

bool IsRoot() { return geteuid() == 0; }

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string Hex(const std::string& digest) { return digest.substr(digest.find(':') + 1); }

std::string LayerDir(const std::string& store, const std::string& diff_id) {
  return store + "/layers/sha256/" + Hex(diff_id);
}

// Entries of a directory (none if it does not exist).
std::vector<std::string> List(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    out.push_back(it->path().filename().string());
  }
  return out;
}

using testing::CliRun;

// The hoist binary; stdout and stderr captured separately.
CliRun Hoist(const std::vector<std::string>& args, const std::string& dir) {
  return testing::RunCli(HOIST_CLI, args, dir);
}

Tree Snapshot(const std::string& root) {
  auto t = SnapshotTree(root);
  EXPECT_TRUE(t.ok()) << root << ": " << t.status().message();
  return t.ok() ? std::move(t).value() : Tree{};
}

// One registry for the whole suite, with the realistic image pushed in both formats, and one
// store into which both were pulled (for the tests that only read the store; the file system
// here is slow enough that pulling thousands of files once per test would dominate the run).
class UnpackTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!testing::TestRegistry::Available()) return;
    Status s = PrepareSuite();
    if (!s.ok()) setup_error_ = new std::string(s.message());
  }
  static Status PrepareSuite() {
    auto reg = testing::TestRegistry::Start();
    if (!reg.ok()) return reg.status();
    registry_ = std::move(reg).value().release();
    oci_ = new BuiltImage(testing::RealisticImage(Format::kOci));
    docker_ = new BuiltImage(testing::RealisticImage(Format::kDocker));
    Status s = testing::PushImage(registry_->host(), "real/oci", "1", *oci_);
    if (s.ok()) s = testing::PushImage(registry_->host(), "real/docker", "1", *docker_);
    if (!s.ok()) return s;
    auto dir = testing::TempDir::Create("hoist-unpack-shared-");
    if (!dir.ok()) return dir.status();
    shared_dir_ = new testing::TempDir(std::move(dir).value());
    auto client = Client::Open(StoreOptions(SharedStore()));
    if (!client.ok()) return client.status();
    for (const char* repo : {"real/oci:1", "real/docker:1"}) {
      auto image = (*client)->Pull(registry_->host() + "/" + repo);
      if (!image.ok()) return image.status();
    }
    return OkStatus();
  }
  static void TearDownTestSuite() {
    delete registry_;
    delete shared_dir_;
    delete oci_;
    delete docker_;
    delete setup_error_;
    registry_ = nullptr;
    shared_dir_ = nullptr;
    oci_ = docker_ = nullptr;
    setup_error_ = nullptr;
  }
  static std::string SharedStore() { return shared_dir_->path() + "/store"; }
  // A client of the shared store, where both realistic images are pulled already.
  static std::unique_ptr<Client> SharedClient() {
    auto c = Client::Open(StoreOptions(SharedStore()));
    EXPECT_TRUE(c.ok()) << c.status().message();
    return c.ok() ? std::move(c).value() : nullptr;
  }

  void SetUp() override {
    if (!testing::TestRegistry::Available()) GTEST_SKIP() << "docker-registry not installed";
    ASSERT_EQ(setup_error_, nullptr) << *setup_error_;
    auto dir = testing::TempDir::Create("hoist-unpack-");
    ASSERT_TRUE(dir.ok());
    dir_.emplace(std::move(dir).value());
    store_ = dir_->path() + "/store";
  }

  std::string Ref(const std::string& repo_tag) const { return registry_->host() + "/" + repo_tag; }
  std::string OciRef() const { return Ref("real/oci:1"); }
  std::string DockerRef() const { return Ref("real/docker:1"); }
  const std::string& Tmp() const { return dir_->path(); }

  static ClientOptions StoreOptions(const std::string& store) {
    ClientOptions o;
    o.store_dir = store;
    return o;
  }
  std::unique_ptr<Client> NewClient(uint64_t max_layer_bytes = 64ULL << 30,
                                    uint64_t max_image_bytes = 128ULL << 30) {
    ClientOptions o = StoreOptions(store_);
    o.max_layer_bytes = max_layer_bytes;
    o.max_image_bytes = max_image_bytes;
    auto c = Client::Open(o);
    EXPECT_TRUE(c.ok()) << c.status().message();
    return c.ok() ? std::move(c).value() : nullptr;
  }

  // Nothing left of an extraction in progress.
  void ExpectStagingEmpty() {
    EXPECT_TRUE(List(store_ + "/layers/staging").empty())
        << "left in staging: " << JoinLines(List(store_ + "/layers/staging"));
  }

  static testing::TestRegistry* registry_;
  static testing::TempDir* shared_dir_;
  static BuiltImage* oci_;
  static BuiltImage* docker_;
  static std::string* setup_error_;

  std::optional<testing::TempDir> dir_;
  std::string store_;
};

testing::TestRegistry* UnpackTest::registry_ = nullptr;
testing::TempDir* UnpackTest::shared_dir_ = nullptr;
BuiltImage* UnpackTest::oci_ = nullptr;
BuiltImage* UnpackTest::docker_ = nullptr;
std::string* UnpackTest::setup_error_ = nullptr;

// Checks a flattened root filesystem of the realistic image against the fixture's own
// expectations (no other tool involved).
void ExpectRealisticRoot(const std::string& root) {
  testing::RealisticExpectations want = testing::RealisticExpected();
  for (const std::string& p : want.absent) EXPECT_FALSE(Exists(root + "/" + p)) << p;
  for (const std::string& p : want.present) EXPECT_TRUE(Exists(root + "/" + p)) << p;
  Tree t = Snapshot(root);
  size_t files = 0;
  for (const auto& [p, n] : t.nodes) files += n.type == 'f';
  EXPECT_GE(files, want.min_regular_files);
  EXPECT_EQ(ReadFile(root + "/etc/os-release"), "NAME=hoist-test\nVERSION=3\n");
  EXPECT_EQ(ReadFile(root + "/var/cache/keepname"), "upper version\n");
  EXPECT_TRUE(List(root + "/var/empty").empty());
  EXPECT_EQ(t.nodes["usr/bin/su"].mode, 04755u);
  EXPECT_EQ(t.nodes["usr/bin/wall"].mode, 02755u);
  EXPECT_EQ(t.nodes["srv/ro"].mode, 0555u);
  EXPECT_EQ(t.nodes["tmp"].mode, 01777u);
  EXPECT_EQ(t.nodes["usr/share/doc/pkg0"].mode, 0700u) << "mode changed by layer 3";
  EXPECT_EQ(t.nodes["usr/bin/tool-hard"].hardlink_group, "usr/bin/tool");
  EXPECT_EQ(t.nodes["usr/bin/tool-hard2"].hardlink_group, "usr/bin/tool");
  EXPECT_EQ(t.nodes["usr/local/bin/x-link"].hardlink_group, "usr/local/bin/x");
  EXPECT_EQ(t.nodes["usr/share/long/hardlink-to-long"].type, 'f');
  EXPECT_NE(t.nodes["usr/share/long/hardlink-to-long"].hardlink_group, "");
  EXPECT_EQ(t.nodes["bin/tool"].link_target, "../usr/bin/tool");
  EXPECT_EQ(t.nodes["etc/abs-link"].link_target, "/etc/os-release");
  EXPECT_EQ(t.nodes["etc/dangling"].link_target, "/nonexistent/target");
  EXPECT_GT(t.nodes["usr/share/long/symlink-long"].link_target.size(), 100u);
  EXPECT_EQ(t.nodes["etc/xattr-file"].xattrs["user.comment"], "hello world");
  EXPECT_EQ(t.nodes["etc/xattr-file"].xattrs["user.binary"], std::string("a\x01\x7f"
                                                                         "b",
                                                                         4));
  EXPECT_EQ(t.nodes["usr/share/doc"].xattrs["user.dirnote"], "documentation");
  EXPECT_EQ(t.nodes["run/fifo"].type, 'p');
  if (IsRoot()) {
    EXPECT_EQ(t.nodes["home/user"].uid, 1000u);
    EXPECT_EQ(t.nodes["home/user/.profile"].gid, 1000u);
    EXPECT_EQ(t.nodes["usr/bin/wall"].gid, 5u);
    EXPECT_EQ(t.nodes["srv/www/site0/page0.html"].uid, 33u);
    EXPECT_EQ(t.nodes["dev/null"].type, 'c');
    EXPECT_EQ(t.nodes["dev/null"].dev_major, 1u);
    EXPECT_EQ(t.nodes["dev/null"].dev_minor, 3u);
  }
}

// --- The tree comparison itself must see differences ---------------------------------------

TEST(TreeTest, CompareTreesReportsEveryKindOfDifference) {
  auto dir = testing::TempDir::Create("hoist-tree-");
  ASSERT_TRUE(dir.ok());
  const std::string a = dir->path() + "/a", b = dir->path() + "/b";
  for (const std::string& root : {a, b}) {
    ASSERT_TRUE(fs::create_directories(root + "/d"));
    std::ofstream(root + "/f") << "same\n";
    std::ofstream(root + "/g") << "same\n";
    fs::create_symlink("f", root + "/l");
  }
  {
    Tree ta = Snapshot(a), tb = Snapshot(b);
    EXPECT_EQ(JoinLines(CompareTrees(ta, tb)), "");
    EXPECT_EQ(ta.nodes.size(), 5u);  // . d f g l
    EXPECT_EQ(ta.nodes["f"].sha256, tb.nodes["f"].sha256);
  }
  std::ofstream(b + "/f") << "different\n";  // content and size
  ::chmod((b + "/d").c_str(), 0700);         // mode
  fs::remove(b + "/l");
  fs::create_symlink("g", b + "/l");  // symlink target
  fs::remove(b + "/g");
  ASSERT_EQ(::link((b + "/f").c_str(), (b + "/g").c_str()), 0);  // hardlink group
  std::ofstream(b + "/extra") << "x";                            // only in b
  if (::setxattr((a + "/d").c_str(), "user.k", "v", 1, 0) != 0) {
    GTEST_SKIP() << "no user xattrs here";
  }
  std::vector<std::string> diffs = CompareTrees(Snapshot(a), Snapshot(b));
  std::string text = JoinLines(diffs);
  for (const char* want : {"f: content", "f: size", "d: mode 0755 vs 0700", "l: symlink target",
                           "g: hardlink group [] vs [f]", "extra: only in b", "d: xattrs"}) {
    EXPECT_NE(text.find(want), std::string::npos) << want << " not in:\n" << text;
  }
  CompareOptions o;
  o.ignore_paths = {"d", "extra", "f", "g", "l"};
  EXPECT_EQ(JoinLines(CompareTrees(Snapshot(a), Snapshot(b), o)), "");
}

// --- Pull: one directory per layer in the store --------------------------------------------

class PullLayersTest : public UnpackTest, public ::testing::WithParamInterface<Format> {};

TEST_P(PullLayersTest, EveryLayerIsExtractedOnceIntoTheStore) {
  const bool oci = GetParam() == Format::kOci;
  const BuiltImage& img = oci ? *oci_ : *docker_;
  auto client = NewClient();
  auto image = client->Pull(oci ? OciRef() : DockerRef());
  ASSERT_TRUE(image.ok()) << image.status().message();
  ASSERT_EQ(img.diff_ids.size(), 4u);

  for (const std::string& diff_id : img.diff_ids) {
    const std::string dir = LayerDir(store_, diff_id);
    struct stat st;
    ASSERT_EQ(::lstat((dir + "/rootfs").c_str(), &st), 0) << dir;
    EXPECT_TRUE(S_ISDIR(st.st_mode));
    auto info = nlohmann::json::parse(ReadFile(dir + "/layer.json"), nullptr, false);
    ASSERT_TRUE(info.is_object()) << dir << "/layer.json";
    EXPECT_EQ(info.value("diffID", ""), diff_id);
    EXPECT_EQ(info.value("whiteouts", ""), IsRoot() ? "overlay" : "oci");
  }
  ExpectStagingEmpty();

  // Layer 0 alone: hardlinks within the layer, no content of later layers.
  const std::string l0 = LayerDir(store_, img.diff_ids[0]) + "/rootfs";
  Tree t0 = Snapshot(l0);
  EXPECT_EQ(t0.nodes["usr/bin/tool-hard"].hardlink_group, "usr/bin/tool");
  EXPECT_EQ(ReadFile(l0 + "/etc/os-release"), "NAME=hoist-test\nVERSION=1\n");
  EXPECT_TRUE(Exists(l0 + "/var/cache/old1"));
  EXPECT_EQ(t0.nodes["usr/bin/su"].mode, 04755u);

  // Layer 1: the whiteouts and the opaque directory in the store's format.
  const std::string l1 = LayerDir(store_, img.diff_ids[1]) + "/rootfs";
  Tree t1 = Snapshot(l1);
  EXPECT_EQ(t1.nodes.count("var/cache/old1"), 0u);
  EXPECT_EQ(ReadFile(l1 + "/var/cache/new1"), "new cache 1\n");
  if (IsRoot()) {
    for (const char* p : {"etc/to-delete", "opt/old"}) {
      const testing::TreeNode& n = t1.nodes[p];
      EXPECT_EQ(n.type, 'c') << p << " is an overlay whiteout";
      EXPECT_EQ(n.dev_major, 0u) << p;
      EXPECT_EQ(n.dev_minor, 0u) << p;
    }
    EXPECT_EQ(t1.nodes.count("etc/.wh.to-delete"), 0u);
    EXPECT_EQ(t1.nodes.count("var/cache/.wh..wh..opq"), 0u);
    EXPECT_EQ(t1.nodes["var/cache"].xattrs["trusted.overlay.opaque"], "y");
    EXPECT_EQ(t1.nodes["etc"].xattrs.count("trusted.overlay.opaque"), 0u);
  } else {
    EXPECT_EQ(t1.nodes["etc/.wh.to-delete"].type, 'f');
    EXPECT_EQ(t1.nodes["opt/.wh.old"].type, 'f');
    EXPECT_EQ(t1.nodes["var/cache/.wh..wh..opq"].type, 'f');
  }

  // A second pull finds everything and extracts nothing.
  std::vector<struct stat> before;
  for (const std::string& diff_id : img.diff_ids) {
    struct stat st {};
    EXPECT_EQ(::lstat((LayerDir(store_, diff_id) + "/layer.json").c_str(), &st), 0);
    before.push_back(st);
  }
  std::mutex mu;
  std::vector<ProgressEvent> events;
  PullOptions po;
  po.progress = [&](const ProgressEvent& e) {
    std::lock_guard<std::mutex> lock(mu);
    events.push_back(e);
  };
  auto again = NewClient()->Pull(oci ? OciRef() : DockerRef(), po);
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_FALSE(again->downloaded);
  std::set<std::string> already;
  for (const ProgressEvent& e : events) {
    EXPECT_EQ(e.state, ProgressState::kAlreadyExists)
        << e.descriptor.digest.String() << " state " << static_cast<int>(e.state);
    already.insert(e.descriptor.digest.String());
  }
  for (const auto& layer : img.layers) EXPECT_TRUE(already.count(layer.digest)) << layer.digest;
  for (size_t i = 0; i < img.diff_ids.size(); ++i) {
    struct stat st {};
    EXPECT_EQ(::lstat((LayerDir(store_, img.diff_ids[i]) + "/layer.json").c_str(), &st), 0);
    EXPECT_EQ(st.st_ino, before[i].st_ino) << "layer " << i << " was extracted again";
    EXPECT_EQ(st.st_mtim.tv_nsec, before[i].st_mtim.tv_nsec);
  }
  ExpectStagingEmpty();
}

// A layer a pull without root left in OCI .wh. format is redone in overlay format by a pull
// as root (the only form a mount can use), from the stored blob.
TEST_P(PullLayersTest, RootRedoesLayersLeftInOciFormat) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root";
  const bool oci = GetParam() == Format::kOci;
  const BuiltImage& img = oci ? *oci_ : *docker_;
  ASSERT_TRUE(NewClient()->Pull(oci ? OciRef() : DockerRef()).ok());
  const std::string info = LayerDir(store_, img.diff_ids[1]) + "/layer.json";
  std::string text = ReadFile(info);
  ASSERT_NE(text.find("\"whiteouts\":\"overlay\""), std::string::npos) << text;
  // The record as a pull without root writes it: otherwise complete, in OCI format.
  const std::string overlay = "\"whiteouts\":\"overlay\"";
  text.replace(text.find(overlay), overlay.size(), "\"whiteouts\":\"oci\"");
  ASSERT_FALSE(nlohmann::json::parse(text, nullptr, false).is_discarded()) << text;
  ::chmod(info.c_str(), 0644);
  std::ofstream(info, std::ios::trunc) << text;
  ::chmod(info.c_str(), 0444);

  std::vector<ProgressEvent> events;
  std::mutex mu;
  PullOptions po;
  po.progress = [&](const ProgressEvent& e) {
    std::lock_guard<std::mutex> lock(mu);
    events.push_back(e);
  };
  auto again = NewClient()->Pull(oci ? OciRef() : DockerRef(), po);
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_NE(ReadFile(info).find("\"whiteouts\":\"overlay\""), std::string::npos);
  int extracted = 0;  // layers that started extracting (byte counts follow, ending at the size)
  for (const ProgressEvent& e : events) {
    if (e.state == ProgressState::kExtracting) {
      extracted += e.current == 0;
      EXPECT_EQ(e.descriptor.digest.String(), img.layers[1].digest);
    }
  }
  EXPECT_EQ(extracted, 1) << "only the OCI-format layer is redone, from the stored blob";
  ExpectStagingEmpty();
}

INSTANTIATE_TEST_SUITE_P(Formats, PullLayersTest, ::testing::Values(Format::kOci, Format::kDocker),
                         [](const auto& info) {
                           return info.param == Format::kOci ? "Oci" : "Docker";
                         });

// --- Unpack: the flattened root filesystem -------------------------------------------------

TEST_F(UnpackTest, UnpackMatchesUmociAndTheCommandLine) {
  auto client = SharedClient();
  const std::string dest = Tmp() + "/dest";
  Status s = client->Unpack(OciRef(), dest);
  ASSERT_TRUE(s.ok()) << s.message();
  ExpectRealisticRoot(dest);
  Tree ours = Snapshot(dest);
  EXPECT_EQ(List(Tmp()), std::vector<std::string>{"dest"}) << "nothing left beside dest";

  // The Docker rendition of the same layers unpacks to the same tree.
  const std::string dest_docker = Tmp() + "/dest-docker";
  s = client->Unpack(DockerRef(), dest_docker);
  ASSERT_TRUE(s.ok()) << s.message();
  CompareOptions exact;
  exact.mtime = true;
  EXPECT_EQ(JoinLines(CompareTrees(ours, Snapshot(dest_docker), exact)), "");

  // The command line: `hoist unpack` into an existing empty directory.
  const std::string dest_cli = Tmp() + "/dest-cli";
  ASSERT_EQ(::mkdir(dest_cli.c_str(), 0755), 0);
  CliRun r = Hoist({"--store", SharedStore(), "unpack", OciRef(), dest_cli}, Tmp());
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  CompareOptions cli = exact;
  cli.root_metadata = false;  // the directory was made by the test
  EXPECT_EQ(JoinLines(CompareTrees(ours, Snapshot(dest_cli), cli)), "");

  // umoci, from an OCI layout of the same image (as root, so that owners and devices count).
  if (!IsRoot() || !testing::FindExecutable(kUmoci)) {
    GTEST_SKIP() << "umoci comparison needs root and " << kUmoci;
  }
  const std::string layout = Tmp() + "/layout";
  ASSERT_TRUE(testing::WriteOciLayout(layout, "t", *oci_).ok());
  const std::string bundle = Tmp() + "/umoci-bundle";
  auto out = testing::RunCommand({kUmoci, "unpack", "--image", layout + ":t", bundle}, 120);
  ASSERT_TRUE(out.ok()) << out.status().message();
  CompareOptions vs_umoci;
  vs_umoci.mtime = true;
  EXPECT_EQ(JoinLines(CompareTrees(ours, Snapshot(bundle + "/rootfs"), vs_umoci), 80), "");
}

// unpack merges the layer directories of the store (it needs no blob), into the very tree that
// applying every blob again makes.
TEST_F(UnpackTest, UnpackMergesTheLayerDirectoriesIntoTheSameTree) {
  auto client = NewClient();
  ASSERT_TRUE(client->Pull(OciRef()).ok());
  const std::string from_blobs = Tmp() + "/from-blobs";
  Status s = client->Unpack(OciRef(), from_blobs, UnpackOptions{.from_blobs = true});
  ASSERT_TRUE(s.ok()) << s.message();
  for (const auto& layer : oci_->layers) {
    ASSERT_EQ(::unlink((store_ + "/blobs/sha256/" + Hex(layer.digest)).c_str()), 0);
  }
  const std::string merged = Tmp() + "/merged";
  s = client->Unpack(OciRef(), merged);
  ASSERT_TRUE(s.ok()) << s.message();
  ExpectRealisticRoot(merged);
  CompareOptions exact;
  exact.mtime = true;  // of everything but directories (applying layers dates those "now")
  EXPECT_EQ(JoinLines(CompareTrees(Snapshot(from_blobs), Snapshot(merged), exact)), "");
  // The store's layer files are not the rootfs's: writing the rootfs leaves the store alone.
  std::ofstream(merged + "/etc/os-release", std::ios::trunc) << "edited\n";
  EXPECT_EQ(ReadFile(LayerDir(store_, oci_->diff_ids[2]) + "/rootfs/etc/os-release"),
            "NAME=hoist-test\nVERSION=3\n");
  // Without its layer directories (a layer pulled by an older hoist, say), the image is
  // unpacked from its blobs, which are gone here: the blob path was not taken above.
  fs::remove_all(LayerDir(store_, oci_->diff_ids[0]));
  s = client->Unpack(OciRef(), Tmp() + "/no-layer-dir");
  EXPECT_EQ(s.code(), StatusCode::kNotFound) << s.message();
}

// `hoist pull --rootfs DEST`: the pull, then the flattened root filesystem, in one command.
TEST_F(UnpackTest, PullWithRootfsWritesTheFlattenedTree) {
  const std::string dest = Tmp() + "/rootfs";
  CliRun r = Hoist({"--store", store_, "pull", "-q", "--rootfs", dest, OciRef()}, Tmp());
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  ExpectRealisticRoot(dest);
  // A destination that is not empty: the image is pulled, the tree is refused.
  r = Hoist({"--store", store_, "pull", "-q", "--rootfs", dest, OciRef()}, Tmp());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("is not empty"), std::string::npos) << r.err;
}

TEST_F(UnpackTest, BundleHasRootfsAndRuntimeConfig) {
  auto client = SharedClient();
  const std::string dest = Tmp() + "/bundle";
  Status s = client->Unpack(OciRef(), dest, UnpackOptions{.bundle = true});
  ASSERT_TRUE(s.ok()) << s.message();
  ExpectRealisticRoot(dest + "/rootfs");
  auto config = nlohmann::json::parse(ReadFile(dest + "/config.json"), nullptr, false);
  ASSERT_TRUE(config.is_object()) << ReadFile(dest + "/config.json");
  ASSERT_TRUE(config.contains("process") && config["process"].is_object());
  EXPECT_EQ(config["process"]["args"],
            nlohmann::json({"/usr/bin/tool", "--serve", "--port", "8080"}));
}

TEST_F(UnpackTest, DestinationMustBeEmptyAndAppearsOnlyWhenComplete) {
  auto client = SharedClient();

  // A non-empty destination is refused and left as it was.
  const std::string full = Tmp() + "/full";
  ASSERT_EQ(::mkdir(full.c_str(), 0755), 0);
  std::ofstream(full + "/keep") << "mine\n";
  EXPECT_FALSE(client->Unpack(OciRef(), full).ok());
  EXPECT_EQ(List(full), std::vector<std::string>{"keep"});
  EXPECT_EQ(ReadFile(full + "/keep"), "mine\n");
  CliRun r = Hoist({"--store", SharedStore(), "unpack", OciRef(), full}, Tmp());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err, "");
  EXPECT_EQ(List(full), std::vector<std::string>{"keep"});

  // An image that is not in the store: nothing appears.
  const std::string dest = Tmp() + "/work/dest";
  ASSERT_TRUE(fs::create_directories(Tmp() + "/work"));
  EXPECT_FALSE(client->Unpack(Ref("real/absent:1"), dest).ok());
  EXPECT_FALSE(Exists(dest));
  EXPECT_TRUE(List(Tmp() + "/work").empty()) << JoinLines(List(Tmp() + "/work"));

  // A layer gone from the store (its blob and its directory): unpack fails half-way and
  // leaves neither the destination nor a staging directory beside it. (A small image in a
  // store of its own.)
  BuiltImage img = testing::BuildImage(Format::kOci, {{{"etc/", "", '5'}, {"etc/one", "1\n"}},
                                                      {{"etc/", "", '5'}, {"etc/two", "2\n"}},
                                                      {{"etc/", "", '5'}, {"etc/three", "3\n"}}});
  ASSERT_TRUE(testing::PushImage(registry_->host(), "small/app", "1", img).ok());
  client = NewClient();
  ASSERT_TRUE(client->Pull(Ref("small/app:1")).ok());
  ASSERT_TRUE(client->Unpack(Ref("small/app:1"), Tmp() + "/small-ok").ok());
  EXPECT_EQ(ReadFile(Tmp() + "/small-ok/etc/three"), "3\n");
  fs::remove_all(LayerDir(store_, img.diff_ids.back()));
  fs::remove(store_ + "/blobs/sha256/" + Hex(img.layers.back().digest));
  Status s = client->Unpack(Ref("small/app:1"), dest);
  EXPECT_FALSE(s.ok());
  EXPECT_FALSE(Exists(dest));
  EXPECT_TRUE(List(Tmp() + "/work").empty()) << JoinLines(List(Tmp() + "/work"));
}

// --- Mount: the overlay of the layer directories -------------------------------------------

TEST_F(UnpackTest, MountShowsTheUnpackedTreeReadOnlyOrScratchWritable) {
  if (!IsRoot()) GTEST_SKIP() << "mount needs root";
  auto client = SharedClient();
  const std::string dest = Tmp() + "/dest";
  ASSERT_TRUE(client->Unpack(OciRef(), dest).ok());
  const std::string target = Tmp() + "/mnt";
  ASSERT_EQ(::mkdir(target.c_str(), 0755), 0);

  Status s = client->Mount(OciRef(), target);
  ASSERT_TRUE(s.ok()) << s.message();
  Tree mounted = Snapshot(target);
  CompareOptions o;
  o.mtime = true;  // files keep theirs; directories may differ (overlayfs)
  o.root_metadata = false;
  o.ignore_xattr_prefixes = {"trusted.overlay."};
  EXPECT_EQ(JoinLines(CompareTrees(Snapshot(dest), mounted, o)), "");
  int fd = ::open((target + "/new-file").c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
  EXPECT_EQ(fd, -1);
  EXPECT_EQ(errno, EROFS);
  if (fd >= 0) ::close(fd);
  s = client->Unmount(target);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_TRUE(List(target).empty()) << "still mounted?";

  // Writable: a write succeeds, and is scratch.
  s = client->Mount(OciRef(), target, MountOptions{.writable = true});
  ASSERT_TRUE(s.ok()) << s.message();
  std::ofstream(target + "/new-file") << "scratch\n";
  EXPECT_EQ(ReadFile(target + "/new-file"), "scratch\n");
  EXPECT_EQ(::unlink((target + "/etc/os-release").c_str()), 0);
  s = client->Unmount(target);
  ASSERT_TRUE(s.ok()) << s.message();
  s = client->Mount(OciRef(), target);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_FALSE(Exists(target + "/new-file"));
  EXPECT_EQ(ReadFile(target + "/etc/os-release"), "NAME=hoist-test\nVERSION=3\n");
  EXPECT_TRUE(client->Unmount(target).ok());
  EXPECT_TRUE(List(SharedStore() + "/mounts").empty())
      << JoinLines(List(SharedStore() + "/mounts"));
  // The layers themselves were not touched by the writes.
  EXPECT_EQ(ReadFile(LayerDir(SharedStore(), oci_->diff_ids[2]) + "/rootfs/etc/os-release"),
            "NAME=hoist-test\nVERSION=3\n");
}

// --- Other local users: the store and the trees being built are root's alone ---------------

// Runs argv as uid/gid 65534 (no groups) through setpriv; the command's result.
Result<std::string> AsNobody(std::vector<std::string> argv) {
  argv.insert(argv.begin(), {"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"});
  return testing::RunCommand(std::move(argv), 60);
}

// The path of `rel` inside the layer directory (of the shared store) that holds it.
std::string FindInLayers(const std::string& store, const std::string& rel) {
  for (const std::string& id : List(store + "/layers/sha256")) {
    const std::string path = store + "/layers/sha256/" + id + "/rootfs/" + rel;
    if (Exists(path)) return path;
  }
  return "";
}

TEST_F(UnpackTest, OtherUsersCannotUseTheStoresLayers) {
  if (!IsRoot() || !testing::FindExecutable("setpriv")) GTEST_SKIP() << "needs root and setpriv";
  // Everything above the store is open to all, so the store's own modes are what protect it.
  ASSERT_EQ(::chmod(fs::path(SharedStore()).parent_path().c_str(), 0755), 0);
  const std::string su = FindInLayers(SharedStore(), "usr/bin/su");
  ASSERT_FALSE(su.empty());
  struct stat st;
  ASSERT_EQ(::stat(su.c_str(), &st), 0);
  ASSERT_EQ(st.st_mode & 07777, 04755u);  // the image's setuid binary, as the image has it
  auto run = AsNobody({su});
  ASSERT_FALSE(run.ok()) << "a setuid binary of a layer ran for another user";
  EXPECT_NE(run.status().message().find("Permission denied"), std::string::npos)
      << run.status().message();
  for (const std::string& path : {SharedStore() + "/index.json", SharedStore() + "/blobs/sha256",
                                  SharedStore() + "/layers"}) {
    auto read = AsNobody({"ls", path});
    EXPECT_FALSE(read.ok()) << path << " readable by another user";
  }
}

// While `unpack` builds DEST, the tree (with the image's setuid files) sits in a 0700 parent.
TEST_F(UnpackTest, UnpackBuildsUnderAPrivateParent) {
  if (!IsRoot() || !testing::FindExecutable("setpriv")) GTEST_SKIP() << "needs root and setpriv";
  BuiltImage img = testing::BuildImage(
      Format::kOci, {{{"bin/", "", '5'}, {"bin/tool", "setuid\n", '0', "", 04755}},
                     {{"etc/", "", '5'}, {"etc/motd", "hi\n"}}});
  ASSERT_TRUE(testing::PushImage(registry_->host(), "private/app", "1", img).ok());
  auto client = NewClient();
  ASSERT_TRUE(client->Pull(Ref("private/app:1")).ok());
  ASSERT_EQ(::chmod(Tmp().c_str(), 0755), 0);
  // The second layer's blob becomes a FIFO: unpack (from the blobs) waits there, half-way
  // through the build.
  const std::string blob = store_ + "/blobs/sha256/" + Hex(img.layers[1].digest);
  ASSERT_EQ(::unlink(blob.c_str()), 0);
  ASSERT_EQ(::mkfifo(blob.c_str(), 0600), 0);
  const std::string dest = Tmp() + "/dest";
  Status unpacked;
  std::thread t([&] {
    unpacked = client->Unpack(Ref("private/app:1"), dest, UnpackOptions{.from_blobs = true});
  });
  std::string staging;
  for (int i = 0; i < 200 && staging.empty(); ++i) {  // at most 10 s
    for (const std::string& e : List(Tmp())) {
      if (e.rfind(".dest.hoist-", 0) == 0 && Exists(Tmp() + "/" + e + "/out/bin/tool")) {
        staging = Tmp() + "/" + e;
      }
    }
    if (staging.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_FALSE(staging.empty()) << "no build in progress seen";
  if (!staging.empty()) {
    struct stat st;
    ASSERT_EQ(::stat(staging.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0700u);
    EXPECT_FALSE(AsNobody({staging + "/out/bin/tool"}).ok()) << "reachable while being built";
  }
  {
    std::ofstream fifo(blob, std::ios::binary);  // lets unpack go on
    fifo << img.layers[1].data;
  }
  t.join();
  ASSERT_TRUE(unpacked.ok()) << unpacked.message();
  struct stat st;
  ASSERT_EQ(::stat((dest + "/bin/tool").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 04755u);  // DEST keeps the image's modes
  EXPECT_EQ(ReadFile(dest + "/etc/motd"), "hi\n");
  EXPECT_TRUE(staging.empty() || !Exists(staging));
}

bool Mounted(const std::string& path) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.find(" " + path + " ") != std::string::npos) return true;
  }
  return false;
}

TEST_F(UnpackTest, MountRefusesASymlinkTarget) {
  if (!IsRoot()) GTEST_SKIP() << "mount needs root";
  auto client = SharedClient();
  const std::string dir = Tmp() + "/mnt", link = Tmp() + "/link";
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  ASSERT_EQ(::symlink(dir.c_str(), link.c_str()), 0);
  Status s = client->Mount(OciRef(), link);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.message();
  EXPECT_NE(s.message().find(link + " is a symlink"), std::string::npos) << s.message();
  EXPECT_FALSE(Mounted(dir));
  s = client->Unmount(link);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.message();
}

TEST_F(UnpackTest, UmountUndoesOnlyMountsHoistMade) {
  if (!IsRoot()) GTEST_SKIP() << "mount needs root";
  auto client = SharedClient();
  // A mount hoist did not make.
  const std::string other = Tmp() + "/other";
  ASSERT_EQ(::mkdir(other.c_str(), 0755), 0);
  ASSERT_EQ(::mount("tmpfs", other.c_str(), "tmpfs", 0, "size=1m"), 0);
  Status s = client->Unmount(other);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.message();
  EXPECT_NE(s.message().find("hoist did not mount"), std::string::npos) << s.message();
  EXPECT_TRUE(Mounted(other));
  EXPECT_EQ(::umount2(other.c_str(), 0), 0);

  // hoist's mount, then another mounted over it: umount leaves the other alone.
  const std::string target = Tmp() + "/mnt";
  ASSERT_EQ(::mkdir(target.c_str(), 0755), 0);
  ASSERT_TRUE(client->Mount(OciRef(), target).ok());
  EXPECT_EQ(client->Mount(OciRef(), target).code(), StatusCode::kAlreadyExists);
  ASSERT_EQ(::mount("tmpfs", target.c_str(), "tmpfs", 0, "size=1m"), 0);
  s = client->Unmount(target);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.message();
  EXPECT_NE(s.message().find("not the mount hoist made"), std::string::npos) << s.message();
  EXPECT_EQ(::umount2(target.c_str(), 0), 0);  // the tmpfs
  s = client->Unmount(target);                 // hoist's own, now on top again
  EXPECT_TRUE(s.ok()) << s.message();
  EXPECT_FALSE(Mounted(target));
  EXPECT_TRUE(List(SharedStore() + "/mounts").empty());
}

// A hardlink in an upper layer to a file of a lower layer: the pull accepts it (the layer's
// own directory cannot hold such a link, so its layer.json lists it), unpack links the two
// names as umoci does, and mount refuses: separate overlay layers cannot share an inode.
TEST_F(UnpackTest, HardlinkToALowerLayersFile) {
  BuiltImage img = testing::BuildImage(
      Format::kOci, {{{"bin/", "", '5'}, {"bin/busybox", "lower file\n", '0', "", 0755}},
                     {{"bin/", "", '5'}, {"bin/sh", "", '1', "bin/busybox"}}});
  ASSERT_TRUE(testing::PushImage(registry_->host(), "xlink/app", "1", img).ok());
  auto client = NewClient();
  auto image = client->Pull(Ref("xlink/app:1"));
  ASSERT_TRUE(image.ok()) << image.status().message();
  const std::string dest = Tmp() + "/dest";
  Status s = client->Unpack(Ref("xlink/app:1"), dest);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(ReadFile(dest + "/bin/sh"), "lower file\n");
  Tree t = Snapshot(dest);
  EXPECT_EQ(t.nodes["bin/sh"].hardlink_group, "bin/busybox");
  // Separate overlay layers cannot share an inode: mount says so instead of mounting a tree
  // without bin/sh.
  if (geteuid() == 0) {
    const std::string target = Tmp() + "/mnt";
    fs::create_directories(target);
    Status m = client->Mount(Ref("xlink/app:1"), target);
    EXPECT_EQ(m.code(), StatusCode::kFailedPrecondition) << m.message();
    EXPECT_NE(m.message().find("hardlinks files of lower layers"), std::string::npos);
  }
}

// Hardlinks into lower layers cost memory and layer.json space only within bounds: a layer
// with many of them keeps a small layer.json (the number, not the names), and names beyond the
// bound refuse the layer. "./" repeated makes a long name that resolves to a short path.
TEST_F(UnpackTest, HardlinksIntoLowerLayersAreBounded) {
  auto padded = [](size_t n, const std::string& name) {
    std::string s;
    for (size_t i = 0; i < n; ++i) s += "./";
    return s + name;
  };
  std::vector<testing::TarEntry> links = {{"bin/", "", '5'}};
  for (int i = 0; i < 40; ++i) {
    links.push_back({"bin/l" + std::to_string(i), "", '1', padded(5000, "bin/busybox")});
  }
  BuiltImage img = testing::BuildImage(
      Format::kOci, {{{"bin/", "", '5'}, {"bin/busybox", "lower file\n", '0', "", 0755}}, links});
  ASSERT_TRUE(testing::PushImage(registry_->host(), "xlinks/many", "1", img).ok());
  auto client = NewClient();
  auto image = client->Pull(Ref("xlinks/many:1"));
  ASSERT_TRUE(image.ok()) << image.status().message();
  const std::string info = ReadFile(LayerDir(store_, img.diff_ids[1]) + "/layer.json");
  EXPECT_LT(info.size(), 1024u) << "layer.json of " << info.size() << " bytes";
  EXPECT_EQ(nlohmann::json::parse(info, nullptr, false)["lowerHardlinks"], nlohmann::json(40));
  const std::string dest = Tmp() + "/dest";
  ASSERT_TRUE(client->Unpack(Ref("xlinks/many:1"), dest).ok());
  EXPECT_EQ(Snapshot(dest).nodes["bin/l39"].hardlink_group, "bin/busybox");

  // Three names of 600 KB each: past the bound on their bytes, the layer is refused.
  std::vector<testing::TarEntry> huge = {{"bin/", "", '5'}};
  for (int i = 0; i < 3; ++i) {
    huge.push_back({"bin/h" + std::to_string(i), "", '1', padded(300'000, "bin/busybox")});
  }
  img = testing::BuildImage(
      Format::kOci, {{{"bin/", "", '5'}, {"bin/busybox", "lower file\n", '0', "", 0755}}, huge});
  ASSERT_TRUE(testing::PushImage(registry_->host(), "xlinks/huge", "1", img).ok());
  image = client->Pull(Ref("xlinks/huge:1"));
  ASSERT_FALSE(image.ok());
  EXPECT_EQ(image.status().code(), StatusCode::kResourceExhausted) << image.status().message();
  EXPECT_NE(image.status().message().find("hardlinks to files of lower layers"), std::string::npos)
      << image.status().message();
  EXPECT_FALSE(Exists(LayerDir(store_, img.diff_ids[1])));
  ExpectStagingEmpty();
}

// Holes of a sparse entry stay holes, in the store's layer directory and in an unpacked root:
// a layer of a few hundred bytes does not become a fully allocated 100 MiB file.
TEST_F(UnpackTest, SparseFilesStaySparse) {
  constexpr uint64_t kSize = 100 << 20;
  BuiltImage img = testing::BuildImage(
      Format::kOci, {{testing::SparseEntry("big", kSize, {{0, "head"}, {kSize - 4, "tail"}})}});
  ASSERT_TRUE(testing::PushImage(registry_->host(), "sparse/app", "1", img).ok());
  auto client = NewClient();
  auto image = client->Pull(Ref("sparse/app:1"));
  ASSERT_TRUE(image.ok()) << image.status().message();
  const std::string dest = Tmp() + "/dest";
  ASSERT_TRUE(client->Unpack(Ref("sparse/app:1"), dest).ok());
  for (const std::string& path :
       {LayerDir(store_, img.diff_ids[0]) + "/rootfs/big", dest + "/big"}) {
    struct stat st;
    ASSERT_EQ(::lstat(path.c_str(), &st), 0) << path;
    EXPECT_EQ(static_cast<uint64_t>(st.st_size), kSize) << path;
    EXPECT_LT(st.st_blocks * 512, 1 << 20) << path << " is allocated";
    std::string data = ReadFile(path);
    ASSERT_EQ(data.size(), kSize);
    EXPECT_EQ(data.substr(0, 4), "head");
    EXPECT_EQ(data.substr(kSize - 4), "tail");
  }
}

// The image cap covers the file data of all layers together (each layer alone is well under
// it), in a pull and in unpack, through the library and the command line.
TEST_F(UnpackTest, ImageCapCoversAllLayers) {
  const std::string data(600 << 10, 'x');
  BuiltImage img =
      testing::BuildImage(Format::kOci, {{{"a", data}}, {{"b", data}}, {{"c", "small"}}});
  ASSERT_TRUE(testing::PushImage(registry_->host(), "capped/app", "1", img).ok());
  const std::string ref = Ref("capped/app:1");
  auto capped = NewClient(64ULL << 30, 1 << 20);
  auto image = capped->Pull(ref);
  ASSERT_FALSE(image.ok());
  EXPECT_EQ(image.status().code(), StatusCode::kResourceExhausted) << image.status().message();
  EXPECT_NE(image.status().message().find("--max-image-size"), std::string::npos)
      << image.status().message();
  EXPECT_NE(image.status().message().find("1048576 bytes"), std::string::npos)
      << image.status().message();
  ExpectStagingEmpty();
  CliRun r =
      Hoist({"--store", Tmp() + "/cli-store", "pull", "--max-image-size", "1MiB", ref}, Tmp());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--max-image-size"), std::string::npos) << r.err;

  // Pulled under a larger cap, the image is refused by an unpack under the small one.
  ASSERT_TRUE(NewClient()->Pull(ref).ok());
  Status s = NewClient(64ULL << 30, 1 << 20)->Unpack(ref, Tmp() + "/dest");
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s.message();
  EXPECT_NE(s.message().find("--max-image-size"), std::string::npos) << s.message();
  EXPECT_FALSE(Exists(Tmp() + "/dest"));
  r = Hoist({"--store", store_, "unpack", "--max-image-size", "1MiB", ref, Tmp() + "/dest"}, Tmp());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--max-image-size"), std::string::npos) << r.err;
  EXPECT_FALSE(Exists(Tmp() + "/dest"));
  r = Hoist({"--store", store_, "unpack", "--max-image-size", "2MiB", ref, Tmp() + "/dest"}, Tmp());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ReadFile(Tmp() + "/dest/c"), "small");
}

// The spec's layer semantics, as podman- and buildah-built images use them: a whiteout hides
// only the lower layers' content (the same layer's entries survive, whatever their order),
// an unclean whiteout name is cleaned, a directory listed again has exactly the new entry's
// xattrs, and an empty PAX value deletes an xattr. unpack and mount agree.
TEST_F(UnpackTest, LayerSemanticsOfTheSpec) {
  using E = testing::TarEntry;
  auto dir = [](std::string path, std::vector<std::pair<std::string, std::string>> pax) {
    E e{std::move(path), "", '5'};
    e.mode = 0755;
    e.pax = std::move(pax);
    return e;
  };
  BuiltImage img = testing::BuildImage(
      Format::kOci, {{dir("d/", {{"SCHILY.xattr.user.a", "1"}}), E{"d/x", "lower\n"},
                      dir("etc/", {}), E{"etc/passwd", "root\n"}, E{"keep", "k\n"}},
                     {dir("d/", {{"SCHILY.xattr.user.b", "2"}}), E{"d/y", "mine\n"}, E{".wh.d"},
                      E{"dne/../.wh.etc"}, E{"f/y", "mine\n"}, E{".wh.f"},
                      dir("e/", {{"SCHILY.xattr.user.c", "3"}, {"SCHILY.xattr.user.c", ""}})}});
  ASSERT_TRUE(testing::PushImage(registry_->host(), "semantics/app", "1", img).ok());
  auto client = NewClient();
  auto image = client->Pull(Ref("semantics/app:1"));
  ASSERT_TRUE(image.ok()) << image.status().message();
  const std::string dest = Tmp() + "/dest";
  Status s = client->Unpack(Ref("semantics/app:1"), dest);
  ASSERT_TRUE(s.ok()) << s.message();
  Tree t = Snapshot(dest);
  EXPECT_EQ(ReadFile(dest + "/d/y"), "mine\n");
  EXPECT_EQ(ReadFile(dest + "/f/y"), "mine\n");
  EXPECT_FALSE(Exists(dest + "/d/x"));
  EXPECT_FALSE(Exists(dest + "/etc"));
  EXPECT_FALSE(Exists(dest + "/dne"));
  EXPECT_EQ(ReadFile(dest + "/keep"), "k\n");
  if (::lsetxattr((Tmp() + "/dest/keep").c_str(), "user.probe", "1", 1, 0) == 0) {
    EXPECT_EQ(t.nodes["d"].xattrs, (std::map<std::string, std::string>{{"user.b", "2"}}));
    EXPECT_TRUE(t.nodes["e"].xattrs.empty());
  }
  if (!IsRoot()) return;
  const std::string target = Tmp() + "/mnt";
  ASSERT_EQ(::mkdir(target.c_str(), 0755), 0);
  s = client->Mount(Ref("semantics/app:1"), target);
  ASSERT_TRUE(s.ok()) << s.message();
  CompareOptions o;
  o.root_metadata = false;
  o.ignore_xattr_prefixes = {"trusted.overlay."};
  o.ignore_paths = {"keep"};  // probed above
  Tree mounted = Snapshot(target);
  EXPECT_TRUE(client->Unmount(target).ok());
  EXPECT_EQ(JoinLines(CompareTrees(t, mounted, o)), "");
}

// --- Hostile layers -------------------------------------------------------------------------

TEST_F(UnpackTest, HostileLayersStayInsideAndLeaveNoTrace) {
  const std::string oracle = Tmp() + "/oracle";
  ASSERT_TRUE(testing::MakeOracle(oracle).ok());
  CompareOptions exact;
  exact.mtime = true;
  exact.directory_mtime = true;
  const Tree oracle_before = Snapshot(oracle);

  for (HostileCase& c : testing::HostileCases(oracle, kBombBytes)) {
    SCOPED_TRACE("case " + c.name);
    ASSERT_TRUE(testing::PushImage(registry_->host(), "hostile/" + c.name, "1", c.image).ok());
    store_ = Tmp() + "/store-" + c.name;
    auto client = NewClient(kMaxLayerBytes);
    const std::string ref = Ref("hostile/" + c.name + ":1");
    auto image = client->Pull(ref);

    using Outcome = HostileCase::Outcome;
    if (c.outcome == Outcome::kSucceeds || c.outcome == Outcome::kPullsUnpackFails) {
      EXPECT_TRUE(image.ok()) << image.status().message();
    } else if (c.outcome == Outcome::kFails) {
      ASSERT_FALSE(image.ok());
      EXPECT_EQ(image.status().code(), c.code) << image.status().message();
      EXPECT_NE(image.status().message().find(c.message), std::string::npos)
          << image.status().message();
    }
    EXPECT_EQ(JoinLines(CompareTrees(oracle_before, Snapshot(oracle), exact)), "")
        << "the oracle changed after the pull";
    struct stat st;
    ASSERT_EQ(::lstat((oracle + "/secret").c_str(), &st), 0);
    EXPECT_EQ(st.st_nlink, 1u) << "the oracle's secret got a hardlink";
    ExpectStagingEmpty();

    if (!image.ok()) {
      EXPECT_TRUE(List(store_ + "/layers/sha256").empty())
          << "layers of a failed pull: " << JoinLines(List(store_ + "/layers/sha256"));
      for (const std::string& diff_id : c.image.diff_ids) {
        EXPECT_FALSE(Exists(LayerDir(store_, diff_id)));
      }
      continue;
    }
    // Pulled: unpack it too (layers applied onto one root) and check where things landed.
    const std::string dest = Tmp() + "/dest-" + c.name;
    Status s = client->Unpack(ref, dest);
    if (c.outcome == Outcome::kSucceeds) {
      EXPECT_TRUE(s.ok()) << s.message();
      for (const std::string& p : c.inside) {
        EXPECT_TRUE(Exists(dest + "/" + p)) << p << " should have landed inside";
      }
    } else if (c.outcome == Outcome::kPullsUnpackFails) {
      ASSERT_FALSE(s.ok());
      EXPECT_EQ(s.code(), c.code) << s.message();
      EXPECT_NE(s.message().find(c.message), std::string::npos) << s.message();
      EXPECT_FALSE(Exists(dest)) << s.message();
    } else if (!s.ok()) {
      EXPECT_FALSE(Exists(dest)) << s.message();
    }
    EXPECT_EQ(JoinLines(CompareTrees(oracle_before, Snapshot(oracle), exact)), "")
        << "the oracle changed after the unpack";
    ASSERT_EQ(::lstat((oracle + "/secret").c_str(), &st), 0);
    EXPECT_EQ(st.st_nlink, 1u);
  }
}

}  // namespace
}  // namespace hoist
