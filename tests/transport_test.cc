// Images in and out, against the real tools: archives and layouts written by skopeo load into
// hoist and unpack to what umoci unpacks; what hoist saves and copies, skopeo reads and pushes,
// and umoci unpacks. A real docker-registry on loopback serves the images.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>

#include "hoist/client.h"
#include "support/fixture_images.h"
#include "support/image_builder.h"
#include "support/process.h"
#include "support/registry.h"
#include "support/tree.h"

namespace hoist {
namespace {

using testing::BuiltImage;
using testing::CliRun;
using testing::CompareOptions;
using testing::CompareTrees;
using testing::Format;
using testing::JoinLines;
using testing::Tree;

constexpr char kUmoci[] = "/usr/bin/umoci";

CliRun Hoist(const std::vector<std::string>& args, const std::string& dir,
             const std::string& input = "") {
  return testing::RunCli(HOIST_CLI, args, dir, input);
}

Tree Snapshot(const std::string& root) {
  auto t = testing::SnapshotTree(root);
  EXPECT_TRUE(t.ok()) << root << ": " << t.status().message();
  return t.ok() ? std::move(t).value() : Tree{};
}

// One registry for the suite, with the realistic image (OCI) pushed as real/oci:1.
class TransportTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!testing::TestRegistry::Available()) return;
    auto reg = testing::TestRegistry::Start();
    if (!reg.ok()) {
      setup_error_ = new std::string(reg.status().message());
      return;
    }
    registry_ = std::move(reg).value().release();
    image_ = new BuiltImage(testing::RealisticImage(Format::kOci));
    Status s = testing::PushImage(registry_->host(), "real/oci", "1", *image_);
    if (!s.ok()) setup_error_ = new std::string(s.message());
  }
  static void TearDownTestSuite() {
    delete registry_;
    delete image_;
    delete setup_error_;
    registry_ = nullptr;
    image_ = nullptr;
    setup_error_ = nullptr;
  }
  void SetUp() override {
    if (!testing::TestRegistry::Available()) GTEST_SKIP() << "docker-registry not installed";
    ASSERT_EQ(setup_error_, nullptr) << *setup_error_;
    if (!testing::SkopeoAvailable()) GTEST_SKIP() << "skopeo not installed";
    auto dir = testing::TempDir::Create("hoist-transport-");
    ASSERT_TRUE(dir.ok());
    dir_ = std::make_unique<testing::TempDir>(std::move(dir).value());
    std::ofstream(Tmp() + "/policy.json") << R"({"default":[{"type":"insecureAcceptAnything"}]})";
  }
  std::string Tmp() const { return dir_->path(); }
  static std::string Ref(const std::string& repo) { return registry_->host() + "/" + repo; }
  Result<std::string> Skopeo(std::vector<std::string> args) {
    args.insert(args.begin(), {"skopeo", "--policy", Tmp() + "/policy.json"});
    return testing::RunCommand(args, 120);
  }
  // `umoci unpack` of the layout DIR:TAG, its rootfs snapshot; skipped (empty) without umoci
  // or root (owners and devices count).
  std::optional<Tree> UmociRootfs(const std::string& layout_and_tag) {
    if (geteuid() != 0 || !testing::FindExecutable(kUmoci)) return std::nullopt;
    const std::string bundle = Tmp() + "/umoci-" + std::to_string(++bundles_);
    auto out = testing::RunCommand({kUmoci, "unpack", "--image", layout_and_tag, bundle}, 120);
    EXPECT_TRUE(out.ok()) << out.status().message();
    return Snapshot(bundle + "/rootfs");
  }
  // The tree `umoci unpack` makes of the registry's real/oci:1 (copied by skopeo to an OCI
  // layout); nullopt without umoci or root.
  std::optional<Tree> UmociTreeOfTheImage() {
    const std::string layout = Tmp() + "/umoci-layout-" + std::to_string(++bundles_);
    auto copied = Skopeo({"copy", "--src-tls-verify=false", "docker://" + Ref("real/oci:1"),
                          "oci:" + layout + ":t"});
    EXPECT_TRUE(copied.ok()) << copied.status().message();
    return UmociRootfs(layout + ":t");
  }
  // Trees compared with their mtimes, but not the root directory's own metadata.
  static CompareOptions Exact() {
    CompareOptions o;
    o.mtime = true;
    o.root_metadata = false;
    return o;
  }
  // `hoist unpack REF` with the store `store`.
  Tree HoistRootfs(const std::string& store, const std::string& ref) {
    const std::string dest = Tmp() + "/hoist-" + std::to_string(++bundles_);
    CliRun r = Hoist({"--store", store, "unpack", ref, dest}, Tmp());
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return Snapshot(dest);
  }

  static testing::TestRegistry* registry_;
  static BuiltImage* image_;
  static std::string* setup_error_;
  std::unique_ptr<testing::TempDir> dir_;
  int bundles_ = 0;
};

testing::TestRegistry* TransportTest::registry_ = nullptr;
BuiltImage* TransportTest::image_ = nullptr;
std::string* TransportTest::setup_error_ = nullptr;

// skopeo copy registry → oci-archive; hoist load; hoist unpack gives umoci's tree.
TEST_F(TransportTest, SkopeoOciArchiveLoadsAndUnpacksAsUmociDoes) {
  const std::string archive = Tmp() + "/skopeo.tar";
  ASSERT_TRUE(Skopeo({"copy", "--src-tls-verify=false", "docker://" + Ref("real/oci:1"),
                      "oci-archive:" + archive + ":" + Ref("real/oci:1")})
                  .ok());
  const std::string store = Tmp() + "/store";
  CliRun load = Hoist({"--store", store, "load", "-i", archive}, Tmp());
  ASSERT_EQ(load.exit_code, 0) << load.err;
  EXPECT_EQ(load.out, "Loaded image: " + Ref("real/oci:1") + "\n");
  EXPECT_EQ(load.err, "");
  Tree ours = HoistRootfs(store, Ref("real/oci:1"));

  // The same archive from standard input, gzip-compressed, under another name.
  CliRun piped = Hoist({"--store", store, "load", "--tag", "piped/app:2"}, Tmp(),
                       *testing::RunCommand({"gzip", "-c", archive}, 60));
  ASSERT_EQ(piped.exit_code, 0) << piped.err;
  EXPECT_EQ(piped.out, "Loaded image: docker.io/piped/app:2\n");
  EXPECT_EQ(JoinLines(CompareTrees(ours, HoistRootfs(store, "piped/app:2"), Exact())), "");

  auto umoci = UmociTreeOfTheImage();
  if (!umoci) GTEST_SKIP() << "umoci comparison needs root and " << kUmoci;
  EXPECT_EQ(JoinLines(CompareTrees(ours, *umoci, Exact()), 80), "");
}

// skopeo copy registry → docker-archive; hoist load; hoist unpack gives umoci's tree of the same
// image.
TEST_F(TransportTest, SkopeoDockerArchiveLoadsAndUnpacksAsUmociDoes) {
  const std::string archive = Tmp() + "/docker-archive.tar";
  ASSERT_TRUE(Skopeo({"copy", "--src-tls-verify=false", "docker://" + Ref("real/oci:1"),
                      "docker-archive:" + archive + ":" + Ref("real/oci:1")})
                  .ok());
  const std::string store = Tmp() + "/store";
  CliRun load = Hoist({"--store", store, "load", "-i", archive}, Tmp());
  ASSERT_EQ(load.exit_code, 0) << load.err;
  EXPECT_EQ(load.out, "Loaded image: " + Ref("real/oci:1") + "\n");
  CliRun inspect = Hoist({"--store", store, "inspect", "--config", Ref("real/oci:1")}, Tmp());
  ASSERT_EQ(inspect.exit_code, 0) << inspect.err;
  EXPECT_EQ(inspect.out, image_->config.data);  // the same config, so the same diff_ids
  Tree ours = HoistRootfs(store, Ref("real/oci:1"));
  auto umoci = UmociTreeOfTheImage();
  if (!umoci) GTEST_SKIP() << "umoci comparison needs root and " << kUmoci;
  EXPECT_EQ(JoinLines(CompareTrees(ours, *umoci, Exact()), 80), "");
}

// The air-gapped round trip of the README: registry → hoist → docker-archive → another store →
// another registry, every step checked by an independent client.
TEST_F(TransportTest, RegistryToArchiveToAnotherStoreToAnotherRegistry) {
  auto second = testing::TestRegistry::Start();
  ASSERT_TRUE(second.ok()) << second.status().message();
  const std::string there = (*second)->host() + "/moved/app:1";
  const std::string archive = Tmp() + "/app.tar";
  CliRun pull = Hoist({"--store", Tmp() + "/here", "pull", "-q", Ref("real/oci:1")}, Tmp());
  ASSERT_EQ(pull.exit_code, 0) << pull.err;
  CliRun save =
      Hoist({"--store", Tmp() + "/here", "save", "-o", archive, Ref("real/oci:1")}, Tmp());
  ASSERT_EQ(save.exit_code, 0) << save.err;
  ASSERT_TRUE(Skopeo({"inspect", "docker-archive:" + archive}).ok());
  CliRun load = Hoist({"--store", Tmp() + "/there", "load", "-i", archive}, Tmp());
  ASSERT_EQ(load.exit_code, 0) << load.err;
  CliRun push = Hoist({"--store", Tmp() + "/there", "push", Ref("real/oci:1"), there}, Tmp());
  ASSERT_EQ(push.exit_code, 0) << push.err;
  auto config = Skopeo({"inspect", "--config", "--raw", "--tls-verify=false", "docker://" + there});
  ASSERT_TRUE(config.ok()) << config.status().message();
  EXPECT_EQ(*config, image_->config.data);
  CliRun verify = Hoist({"--store", Tmp() + "/there", "verify"}, Tmp());
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  CliRun back = Hoist({"--store", Tmp() + "/back", "pull", "-q", there}, Tmp());
  ASSERT_EQ(back.exit_code, 0) << back.err;
  EXPECT_EQ(JoinLines(CompareTrees(HoistRootfs(Tmp() + "/here", Ref("real/oci:1")),
                                   HoistRootfs(Tmp() + "/back", there), Exact()),
                      80),
            "");
}

// hoist save --format oci-archive: skopeo inspects it and pushes it; a pull of what it pushed
// gives the same manifest digest.
TEST_F(TransportTest, SavedOciArchiveIsReadAndPushedBySkopeo) {
  const std::string store = Tmp() + "/store", archive = Tmp() + "/saved.tar";
  CliRun pull = Hoist({"--store", store, "pull", "-q", Ref("real/oci:1")}, Tmp());
  ASSERT_EQ(pull.exit_code, 0) << pull.err;
  CliRun save =
      Hoist({"--store", store, "save", "--format", "oci-archive", "-o", archive, Ref("real/oci:1")},
            Tmp());
  ASSERT_EQ(save.exit_code, 0) << save.err;
  EXPECT_EQ(save.out, "");

  auto inspect = Skopeo({"inspect", "oci-archive:" + archive});
  ASSERT_TRUE(inspect.ok()) << inspect.status().message();
  auto j = nlohmann::json::parse(*inspect, nullptr, false);
  EXPECT_EQ(j["Digest"], image_->manifest_digest);
  EXPECT_EQ(j["Layers"].size(), image_->layers.size());

  ASSERT_TRUE(Skopeo({"copy", "--dest-tls-verify=false", "oci-archive:" + archive,
                      "docker://" + Ref("copied/oci:1")})
                  .ok());
  CliRun again = Hoist({"--store", Tmp() + "/store2", "pull", "-q", Ref("copied/oci:1")}, Tmp());
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(again.out, Ref("copied/oci:1") + "@" + image_->manifest_digest + "\n");
  // Two names of one image in one archive: its blobs once, both names loaded back.
  CliRun tag = Hoist({"--store", store, "tag", Ref("real/oci:1"), "second/name:2"}, Tmp());
  ASSERT_EQ(tag.exit_code, 0) << tag.err;
  const std::string both = Tmp() + "/both.tar";
  save = Hoist({"--store", store, "save", "--format", "oci-archive", "-o", both, Ref("real/oci:1"),
                "second/name:2"},
               Tmp());
  ASSERT_EQ(save.exit_code, 0) << save.err;
  auto listing = testing::RunCommand({"tar", "-tf", both}, 60);
  ASSERT_TRUE(listing.ok());
  const std::string layer = "blobs/sha256/" + image_->layers[0].digest.substr(7);
  EXPECT_EQ(listing->find(layer), listing->rfind(layer)) << *listing;
  CliRun load = Hoist({"--store", Tmp() + "/store3", "load", "-i", both}, Tmp());
  ASSERT_EQ(load.exit_code, 0) << load.err;
  EXPECT_EQ(load.out,
            "Loaded image: " + Ref("real/oci:1") + "\nLoaded image: docker.io/second/name:2\n");
}

// A Docker-format image keeps its registry manifest in an oci-archive (the same digest), which
// skopeo reads and pushes as is.
TEST_F(TransportTest, SavedDockerImageKeepsItsManifest) {
  BuiltImage img =
      testing::BuildImage(Format::kDocker, {{{.path = "etc/a", .content = "docker format"}}});
  ASSERT_TRUE(testing::PushImage(registry_->host(), "small/docker", "1", img).ok());
  const std::string store = Tmp() + "/store", archive = Tmp() + "/docker.tar";
  CliRun pull = Hoist({"--store", store, "pull", "-q", Ref("small/docker:1")}, Tmp());
  ASSERT_EQ(pull.exit_code, 0) << pull.err;
  CliRun save = Hoist(
      {"--store", store, "save", "--format", "oci-archive", "-o", archive, Ref("small/docker:1")},
      Tmp());
  ASSERT_EQ(save.exit_code, 0) << save.err;
  auto inspect = Skopeo({"inspect", "oci-archive:" + archive});
  ASSERT_TRUE(inspect.ok()) << inspect.status().message();
  EXPECT_EQ(nlohmann::json::parse(*inspect, nullptr, false)["Digest"], img.manifest_digest);
  ASSERT_TRUE(Skopeo({"copy", "--dest-tls-verify=false", "oci-archive:" + archive,
                      "docker://" + Ref("copied/docker:1")})
                  .ok());
  CliRun again = Hoist({"--store", Tmp() + "/store2", "pull", "-q", Ref("copied/docker:1")}, Tmp());
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(again.out, Ref("copied/docker:1") + "@" + img.manifest_digest + "\n");
}

// hoist copy hoist:REF oci:DIR:TAG: umoci unpacks the layout to hoist's own tree; the layout
// loads back (--input-layout).
TEST_F(TransportTest, CopyToOciLayoutUnpacksWithUmoci) {
  const std::string store = Tmp() + "/store", layout = Tmp() + "/layout";
  CliRun pull = Hoist({"--store", store, "pull", "-q", Ref("real/oci:1")}, Tmp());
  ASSERT_EQ(pull.exit_code, 0) << pull.err;
  CliRun copy = Hoist(
      {"--store", store, "copy", "hoist:" + Ref("real/oci:1"), "oci:" + layout + ":v1"}, Tmp());
  ASSERT_EQ(copy.exit_code, 0) << copy.err;
  EXPECT_EQ(copy.out, image_->manifest_digest + "\n");

  // To standard output: the archive alone, ending with the end-of-archive marker.
  CliRun piped =
      Hoist({"--store", store, "copy", "hoist:" + Ref("real/oci:1"), "oci-archive:-"}, Tmp());
  ASSERT_EQ(piped.exit_code, 0) << piped.err;
  ASSERT_GT(piped.out.size(), 1024u);
  EXPECT_EQ(piped.out.size() % 512, 0u);
  EXPECT_EQ(piped.out.substr(piped.out.size() - 1024), std::string(1024, '\0'));

  // A bare tag is not a name: refused before anything is copied.
  CliRun unnamed =
      Hoist({"--store", Tmp() + "/store2", "load", "--input-layout", layout + ":v1"}, Tmp());
  EXPECT_EQ(unnamed.exit_code, 1);
  EXPECT_EQ(unnamed.err, "hoist: load " + layout +
                             ":v1: the image has no name to record it by (give one with --tag)\n");
  struct stat st;
  EXPECT_NE(
      ::stat((Tmp() + "/store2/blobs/sha256/" + image_->config.digest.substr(7)).c_str(), &st), 0);
  CliRun load = Hoist({"--store", Tmp() + "/store2", "load", "--input-layout", layout + ":v1",
                       "--tag", "layout/app:1"},
                      Tmp());
  ASSERT_EQ(load.exit_code, 0) << load.err;
  EXPECT_EQ(load.out, "Loaded image: docker.io/layout/app:1\n");

  Tree ours = HoistRootfs(store, Ref("real/oci:1"));
  auto umoci = UmociRootfs(layout + ":v1");
  if (!umoci) GTEST_SKIP() << "umoci comparison needs root and " << kUmoci;
  EXPECT_EQ(JoinLines(CompareTrees(ours, *umoci, Exact()), 80), "");
}

// A hostile archive: one error line naming the step and the cause, and nothing recorded.
TEST_F(TransportTest, ArchiveWithABadBlobIsRefusedWithOneLine) {
  const std::string layout = Tmp() + "/layout", archive = Tmp() + "/bad.tar";
  BuiltImage img = testing::BuildImage(Format::kOci, {{{.path = "a", .content = "one"}}});
  ASSERT_TRUE(testing::WriteOciLayout(layout, "example.com/bad:1", img).ok());
  const std::string blob = layout + "/blobs/sha256/" + img.layers[0].digest.substr(7);
  std::string data = img.layers[0].data;
  data[data.size() / 2] ^= 1;
  std::ofstream(blob, std::ios::binary | std::ios::trunc) << data;
  ASSERT_TRUE(testing::RunCommand({"tar", "-C", layout, "-cf", archive, "."}, 60).ok());
  const std::string store = Tmp() + "/store";
  CliRun load = Hoist({"--store", store, "load", "-i", archive}, Tmp());
  EXPECT_EQ(load.exit_code, 1);
  EXPECT_EQ(load.out, "");
  EXPECT_EQ(std::count(load.err.begin(), load.err.end(), '\n'), 1) << load.err;
  EXPECT_NE(load.err.find("load " + archive + ": blob " + img.layers[0].digest), std::string::npos)
      << load.err;
  EXPECT_NE(load.err.find("digest mismatch"), std::string::npos) << load.err;
  CliRun images = Hoist({"--store", store, "images", "--format", "/reference"}, Tmp());
  EXPECT_EQ(images.out, "");
}

}  // namespace
}  // namespace hoist
