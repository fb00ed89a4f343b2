// hoist-seed, the benchmark's image maker, end to end against the real registry on loopback:
// --copies N repeats each layer's tree, --changed-top pushes a second tag that differs from the
// first in its top layer alone, and a layer's entries come in path order (the same files give
// the same bytes).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "support/http_client.h"
#include "support/process.h"
#include "support/registry.h"

namespace hoist {
namespace {

namespace fs = std::filesystem;
using testing::CliRun;

void WriteFile(const std::string& path, const std::string& data) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << data;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// The layer digests of REPO:TAG's manifest, bottom first.
std::vector<std::string> LayerDigests(const std::string& host, const std::string& repo,
                                      const std::string& tag) {
  auto r = testing::HttpCall("GET", "http://" + host + "/v2/" + repo + "/manifests/" + tag,
                             {"Accept: application/vnd.oci.image.manifest.v1+json"});
  EXPECT_TRUE(r.ok()) << r.status().message();
  if (!r.ok()) return {};
  EXPECT_EQ(r->status, 200) << r->body;
  if (r->status != 200) return {};
  std::vector<std::string> out;
  nlohmann::json manifest = nlohmann::json::parse(r->body);
  for (const auto& l : manifest["layers"]) out.push_back(l["digest"]);
  return out;
}

class HoistSeedTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing::TestRegistry::Available()) GTEST_SKIP() << "docker-registry is not installed";
    auto registry = testing::TestRegistry::Start();
    ASSERT_TRUE(registry.ok()) << registry.status().message();
    registry_ = std::move(*registry);
    auto dir = testing::TempDir::Create("hoist-seed-test-");
    ASSERT_TRUE(dir.ok()) << dir.status().message();
    dir_ = std::move(*dir);
    // Two layers: a/x and a symlink, then y.
    WriteFile(dir_->path() + "/lower/a/x", "x data\n");
    fs::create_symlink("a/x", dir_->path() + "/lower/link");
    WriteFile(dir_->path() + "/upper/y", "y data\n");
  }

  CliRun Seed(const std::vector<std::string>& extra, const std::string& repo_tag) {
    std::vector<std::string> args = extra;
    for (const char* d : {"/lower", "/upper"}) {
      args.push_back("--dir");
      args.push_back(dir_->path() + d);
    }
    args.push_back(registry_->host());
    args.push_back(repo_tag);
    return testing::RunCli(HOIST_SEED, args, dir_->path());
  }

  // Pulls and unpacks REPO:TAG with the hoist CLI into DEST.
  void PullAndUnpack(const std::string& repo_tag, const std::string& dest) {
    std::string ref = registry_->host() + "/" + repo_tag;
    std::string store = dir_->path() + "/store";
    CliRun pull = testing::RunCli(HOIST_CLI, {"--store", store, "pull", "-q", ref}, dir_->path());
    ASSERT_EQ(pull.exit_code, 0) << pull.err;
    CliRun unpack =
        testing::RunCli(HOIST_CLI, {"--store", store, "unpack", ref, dest}, dir_->path());
    ASSERT_EQ(unpack.exit_code, 0) << unpack.err;
  }

  std::unique_ptr<testing::TestRegistry> registry_;
  std::optional<testing::TempDir> dir_;
};

TEST_F(HoistSeedTest, CopiesRepeatEachLayersTree) {
  CliRun seed = Seed({"--copies", "2"}, "bench/app:2x");
  ASSERT_EQ(seed.exit_code, 0) << seed.err;
  std::string root = dir_->path() + "/rootfs";
  PullAndUnpack("bench/app:2x", root);
  for (const char* copy : {"", "c2/"}) {
    EXPECT_EQ(ReadFile(root + "/" + copy + "a/x"), "x data\n") << copy;
    EXPECT_EQ(ReadFile(root + "/" + copy + "y"), "y data\n") << copy;
    EXPECT_EQ(fs::read_symlink(root + "/" + copy + "link"), "a/x") << copy;
  }
  EXPECT_FALSE(fs::exists(root + "/c3"));
  EXPECT_FALSE(fs::exists(root + "/.hoist-seed-stamp"));
}

TEST_F(HoistSeedTest, ChangedTopDiffersInTheTopLayerAlone) {
  CliRun seed = Seed({"--changed-top", "1x-top"}, "bench/app:1x");
  ASSERT_EQ(seed.exit_code, 0) << seed.err;
  std::vector<std::string> base = LayerDigests(registry_->host(), "bench/app", "1x");
  std::vector<std::string> top = LayerDigests(registry_->host(), "bench/app", "1x-top");
  ASSERT_EQ(base.size(), 2u);
  ASSERT_EQ(top.size(), 2u);
  EXPECT_EQ(base[0], top[0]);
  EXPECT_NE(base[1], top[1]);
  std::string root = dir_->path() + "/rootfs";
  PullAndUnpack("bench/app:1x-top", root);
  EXPECT_EQ(ReadFile(root + "/y"), "y data\n");
  EXPECT_EQ(ReadFile(root + "/.hoist-seed-stamp"), "the top layer of 1x changed\n");
}

// The same files give the same layer whatever order the directory lists them in: files
// created in a shuffled order come out sorted by path (readdir gives hash order on ext4,
// reverse creation order on tmpfs, creation order on others: none of them sorted here).
TEST_F(HoistSeedTest, EntriesAreInPathOrder) {
  std::string src = dir_->path() + "/shuffled";
  std::vector<std::string> names = {"q", "c", "x", "a", "m", "z", "f", "b", "t", "k", "e", "w"};
  for (const auto& n : names) WriteFile(src + "/" + n, n);
  CliRun seed =
      testing::RunCli(HOIST_SEED, {"--dir", src, registry_->host(), "bench/app:s"}, dir_->path());
  ASSERT_EQ(seed.exit_code, 0) << seed.err;
  std::vector<std::string> layers = LayerDigests(registry_->host(), "bench/app", "s");
  ASSERT_EQ(layers.size(), 1u);
  auto blob =
      testing::HttpCall("GET", "http://" + registry_->host() + "/v2/bench/app/blobs/" + layers[0]);
  ASSERT_TRUE(blob.ok()) << blob.status().message();
  ASSERT_EQ(blob->status, 200);
  WriteFile(dir_->path() + "/layer.tar.gz", blob->body);
  auto listing = testing::RunCommand({"tar", "-tzf", dir_->path() + "/layer.tar.gz"}, 60);
  ASSERT_TRUE(listing.ok()) << listing.status().message();
  std::sort(names.begin(), names.end());
  std::string sorted;
  for (const auto& n : names) sorted += n + "\n";
  EXPECT_EQ(*listing, sorted);
}

}  // namespace
}  // namespace hoist
