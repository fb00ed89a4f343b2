// End-to-end pulls against the real CNCF distribution registry on loopback, and against
// fixture servers that misbehave on purpose.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "hoist/client.h"
#include "support/http_server.h"
#include "support/image_builder.h"
#include "support/process.h"
#include "support/registry.h"
#include "support/token_server.h"

namespace hoist {
namespace {

namespace fs = std::filesystem;
using testing::BuildImage;
using testing::BuildIndex;
using testing::BuiltImage;
using testing::Format;
using testing::TarEntry;

#define REQUIRE_REGISTRY() \
  if (!testing::TestRegistry::Available()) GTEST_SKIP() << "docker-registry not installed"

BuiltImage SmallImage(Format f, const std::string& tag, std::string arch = "amd64",
                      std::string variant = "") {
  std::vector<std::vector<TarEntry>> layers = {
      {{"etc/", "", '5'},
       {"etc/hostname", tag + "\n"},
       {"bin/", "", '5'},
       {"bin/sh", std::string(10000, 'x'), '0', "", 0755}},
      {{"app/", "", '5'},
       {"app/" + tag + ".txt", "layer two of " + tag + " " + arch + "\n"},
       {"app/link", "", '2', "/app/" + tag + ".txt"}},
  };
  return BuildImage(f, layers, "linux", arch, variant);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Names of the committed blobs of a store, and whether anything is left in ingest/.
std::set<std::string> StoredBlobs(const std::string& store) {
  std::set<std::string> out;
  if (!fs::exists(store + "/blobs/sha256")) return out;
  for (auto& e : fs::directory_iterator(store + "/blobs/sha256")) {
    out.insert("sha256:" + e.path().filename().string());
  }
  return out;
}

bool IngestEmpty(const std::string& store) {
  if (!fs::exists(store + "/ingest")) return true;
  for (auto& e : fs::recursive_directory_iterator(store + "/ingest")) {
    if (e.is_regular_file()) return false;
  }
  return true;
}

class PullTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = testing::TempDir::Create("hoist-store-");
    ASSERT_TRUE(dir.ok());
    dir_.emplace(std::move(dir).value());
    store_ = dir_->path() + "/store";
  }

  std::unique_ptr<Client> NewClient(std::string creds = "") {
    ClientOptions o;
    o.store_dir = store_;
    o.credentials = std::move(creds);
    auto c = Client::Open(o);
    EXPECT_TRUE(c.ok()) << c.status().message();
    return c.ok() ? std::move(c).value() : nullptr;
  }

  std::optional<testing::TempDir> dir_;
  std::string store_;
};

void ExpectImage(const Image& image, const BuiltImage& built, const std::string& store) {
  EXPECT_EQ(image.manifest.digest.String(), built.manifest_digest);
  EXPECT_EQ(image.manifest.media_type, built.manifest_media_type);
  EXPECT_EQ(image.config.digest.String(), built.config.digest);
  ASSERT_EQ(image.layers.size(), built.layers.size());
  auto blobs = StoredBlobs(store);
  EXPECT_TRUE(blobs.count(built.manifest_digest));
  EXPECT_TRUE(blobs.count(built.config.digest));
  for (size_t i = 0; i < built.layers.size(); ++i) {
    EXPECT_EQ(image.layers[i].digest.String(), built.layers[i].digest);
    ASSERT_TRUE(blobs.count(built.layers[i].digest));
    std::string path = store + "/blobs/sha256/" + built.layers[i].digest.substr(7);
    EXPECT_EQ(ReadFile(path), built.layers[i].data);
    struct stat st;
    ASSERT_EQ(stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0444u) << "blobs are read-only";
  }
  EXPECT_TRUE(IngestEmpty(store));
}

TEST_F(PullTest, OciAndDockerImagesByTagAndDigest) {
  REQUIRE_REGISTRY();
  auto reg = testing::TestRegistry::Start();
  ASSERT_TRUE(reg.ok()) << reg.status().message();
  BuiltImage oci = SmallImage(Format::kOci, "oci");
  BuiltImage docker = SmallImage(Format::kDocker, "docker");
  ASSERT_TRUE(testing::PushImage((*reg)->host(), "app/oci", "1", oci).ok());
  ASSERT_TRUE(testing::PushImage((*reg)->host(), "app/docker", "1", docker).ok());
  auto client = NewClient();

  auto a = client->Pull((*reg)->host() + "/app/oci:1");
  ASSERT_TRUE(a.ok()) << a.status().message();
  ExpectImage(*a, oci, store_);
  EXPECT_EQ(a->reference, (*reg)->host() + "/app/oci:1");
  EXPECT_EQ(a->repo_digest.String(), oci.manifest_digest);
  EXPECT_TRUE(a->downloaded);
  EXPECT_EQ(a->platform.architecture, "amd64");
  // The pull's one sync made every layer durable: no record still waits for it.
  int records = 0;
  for (auto& e : fs::directory_iterator(store_ + "/layers/sha256")) {
    auto record =
        nlohmann::json::parse(ReadFile(e.path().string() + "/layer.json"), nullptr, false);
    ASSERT_TRUE(record.is_object()) << e.path();
    EXPECT_FALSE(record.contains("syncPendingBoot")) << e.path() << ": " << record.dump();
    ++records;
  }
  EXPECT_EQ(records, 2);

  auto b = client->Pull((*reg)->host() + "/app/docker:1");
  ASSERT_TRUE(b.ok()) << b.status().message();
  ExpectImage(*b, docker, store_);

  // By digest, into a fresh store.
  PullTest::SetUp();
  auto by_digest = NewClient()->Pull((*reg)->host() + "/app/docker@" + docker.manifest_digest);
  ASSERT_TRUE(by_digest.ok()) << by_digest.status().message();
  ExpectImage(*by_digest, docker, store_);
  EXPECT_EQ(by_digest->reference, (*reg)->host() + "/app/docker@" + docker.manifest_digest);

  // A digest the registry does not have.
  std::string missing = "sha256:" + std::string(64, '0');
  auto none = NewClient()->Pull((*reg)->host() + "/app/docker@" + missing);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), StatusCode::kNotFound) << none.status().message();
  EXPECT_NE(none.status().message().find("pull " + (*reg)->host() + "/app/docker@"),
            std::string::npos);

  // Records: index.json names both images.
  auto images = NewClient()->Images();
  ASSERT_TRUE(images.ok());
  ASSERT_EQ(images->size(), 1u);  // only the by-digest pull in this store
  EXPECT_EQ((*images)[0].digest.String(), docker.manifest_digest);
}

TEST_F(PullTest, IndexPicksThePlatform) {
  REQUIRE_REGISTRY();
  auto reg = testing::TestRegistry::Start();
  ASSERT_TRUE(reg.ok()) << reg.status().message();
  for (Format f : {Format::kOci, Format::kDocker}) {
    SCOPED_TRACE(f == Format::kOci ? "oci" : "docker");
    PullTest::SetUp();
    auto index =
        BuildIndex(f, {SmallImage(f, "multi", "amd64"), SmallImage(f, "multi", "arm64", "v8")});
    ASSERT_TRUE(testing::PushIndex((*reg)->host(), "multi", "1", index).ok());
    auto client = NewClient();
    for (size_t i = 0; i < 2; ++i) {
      PullOptions o;
      o.platform = i == 0 ? "linux/amd64" : "linux/arm64";
      auto img = client->Pull((*reg)->host() + "/multi:1", o);
      ASSERT_TRUE(img.ok()) << img.status().message();
      ExpectImage(*img, index.images[i], store_);
      EXPECT_EQ(img->repo_digest.String(), index.digest);
      EXPECT_EQ(img->platform.architecture, i == 0 ? "amd64" : "arm64");
      EXPECT_TRUE(StoredBlobs(store_).count(index.digest)) << "the index is kept too";
    }
    PullOptions s390;
    s390.platform = "linux/s390x";
    auto none = client->Pull((*reg)->host() + "/multi:1", s390);
    ASSERT_FALSE(none.ok());
    EXPECT_EQ(none.status().code(), StatusCode::kNotFound);
    EXPECT_NE(none.status().message().find("linux/amd64"), std::string::npos)
        << none.status().message();
    EXPECT_NE(none.status().message().find("linux/arm64"), std::string::npos);
  }
}

TEST_F(PullTest, RepullMakesOneManifestRequestAndFetchesNoBlob) {
  REQUIRE_REGISTRY();
  auto reg = testing::TestRegistry::Start();
  ASSERT_TRUE(reg.ok()) << reg.status().message();
  BuiltImage img = SmallImage(Format::kOci, "again");
  ASSERT_TRUE(testing::PushImage((*reg)->host(), "again", "1", img).ok());
  ASSERT_TRUE(NewClient()->Pull((*reg)->host() + "/again:1").ok());
  int manifests = (*reg)->CountRequests("HEAD", "/v2/again/manifests/") +
                  (*reg)->CountRequests("GET", "/v2/again/manifests/");
  int blobs = (*reg)->CountRequests("GET", "/v2/again/blobs/");
  EXPECT_EQ(blobs, 3);  // config + 2 layers

  auto second = NewClient()->Pull((*reg)->host() + "/again:1");
  ASSERT_TRUE(second.ok()) << second.status().message();
  EXPECT_FALSE(second->downloaded);
  EXPECT_EQ((*reg)->CountRequests("HEAD", "/v2/again/manifests/") +
                (*reg)->CountRequests("GET", "/v2/again/manifests/"),
            manifests + 1);
  EXPECT_EQ((*reg)->CountRequests("GET", "/v2/again/blobs/"), blobs);
}

// One zstd frame holding `data` (under 128 KiB) as a raw block, whose header asks for a
// window of 2^window_log bytes: what `zstd --long` writes, without the compression.
std::string ZstdFrameWithWindow(std::string_view data, int window_log) {
  std::string f("\x28\xb5\x2f\xfd", 4);
  f += '\0';                                       // no checksum, no content size
  f += static_cast<char>((window_log - 10) << 3);  // the window descriptor
  const uint32_t block = static_cast<uint32_t>(data.size()) << 3 | 1;  // raw, last
  f += static_cast<char>(block & 0xff);
  f += static_cast<char>(block >> 8 & 0xff);
  f += static_cast<char>(block >> 16 & 0xff);
  return f.append(data);
}

// A zstd layer whose frame asks for a 64 MiB window is refused by default (the decoder would
// hold all of it), naming the flag; a client that allows 64 MiB pulls it.
TEST_F(PullTest, ZstdWindowOverTheLimitIsRefusedUnlessAllowed) {
  REQUIRE_REGISTRY();
  auto reg = testing::TestRegistry::Start();
  ASSERT_TRUE(reg.ok()) << reg.status().message();
  const std::string tar = testing::MakeTar({{"etc/", "", '5'}, {"etc/zstd", "long window\n"}});
  const std::string z = ZstdFrameWithWindow(tar, 26);
  BuiltImage img = testing::BuildImageFromBlobs(
      Format::kOci, {{"application/vnd.oci.image.layer.v1.tar+zstd", testing::Sha256Digest(z), z}},
      {testing::Sha256Digest(tar)});
  ASSERT_TRUE(testing::PushImage((*reg)->host(), "zstd", "1", img).ok());

  auto refused = NewClient()->Pull((*reg)->host() + "/zstd:1");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(refused.status().message().find("window"), std::string::npos);
  EXPECT_NE(refused.status().message().find("--max-zstd-window"), std::string::npos)
      << refused.status().message();

  ClientOptions o;
  o.store_dir = store_;
  o.max_zstd_window_bytes = uint64_t{64} << 20;
  auto client = Client::Open(o);
  ASSERT_TRUE(client.ok()) << client.status().message();
  auto pulled = (*client)->Pull((*reg)->host() + "/zstd:1");
  ASSERT_TRUE(pulled.ok()) << pulled.status().message();
  ExpectImage(*pulled, img, store_);
}

TEST_F(PullTest, CorruptBlobInRegistryIsRefusedAndLeavesNothing) {
  REQUIRE_REGISTRY();
  auto reg = testing::TestRegistry::Start();
  ASSERT_TRUE(reg.ok()) << reg.status().message();
  BuiltImage img = SmallImage(Format::kDocker, "corrupt");
  ASSERT_TRUE(testing::PushImage((*reg)->host(), "corrupt", "1", img).ok());
  auto layer = Digest::Parse(img.layers[1].digest);
  ASSERT_TRUE(layer.ok());
  {
    // Same size, different bytes: only the digest can tell.
    std::string data = img.layers[1].data;
    data[data.size() / 2] ^= 0x55;
    std::ofstream out((*reg)->BlobDataPath(*layer), std::ios::binary | std::ios::trunc);
    out << data;
  }
  auto r = NewClient()->Pull((*reg)->host() + "/corrupt:1");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(r.status().message().find("pull " + (*reg)->host() + "/corrupt:1: blob " +
                                      img.layers[1].digest + ": digest mismatch: got sha256:"),
            std::string::npos)
      << r.status().message();
  EXPECT_FALSE(StoredBlobs(store_).count(img.layers[1].digest));
  // The bad bytes are gone (other layers cut short by the failure may keep their partial data
  // in ingest/, for the next pull to resume).
  EXPECT_FALSE(fs::exists(store_ + "/ingest/sha256-" + img.layers[1].digest.substr(7)));
  auto images = NewClient()->Images();
  ASSERT_TRUE(images.ok());
  EXPECT_TRUE(images->empty()) << "no record for a failed pull";
}

TEST_F(PullTest, BasicAuthWithHtpasswd) {
  REQUIRE_REGISTRY();
  testing::RegistryOptions o;
  o.auth = testing::RegistryOptions::Auth::kHtpasswd;
  o.user = "alice";
  o.password = "s3cret:with:colons";
  auto reg = testing::TestRegistry::Start(o);
  ASSERT_TRUE(reg.ok()) << reg.status().message();
  BuiltImage img = SmallImage(Format::kOci, "basic");
  ASSERT_TRUE(
      testing::PushImage((*reg)->host(), "private/app", "1", img, "alice:s3cret:with:colons").ok());
  std::string ref = (*reg)->host() + "/private/app:1";

  auto anonymous = NewClient()->Pull(ref);
  ASSERT_FALSE(anonymous.ok());
  EXPECT_EQ(anonymous.status().code(), StatusCode::kUnauthenticated)
      << anonymous.status().message();

  auto wrong = NewClient("alice:nope")->Pull(ref);
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.status().code(), StatusCode::kUnauthenticated) << wrong.status().message();

  auto right = NewClient("alice:s3cret:with:colons")->Pull(ref);
  ASSERT_TRUE(right.ok()) << right.status().message();
  ExpectImage(*right, img, store_);
}

TEST_F(PullTest, AnonymousAndAuthorizedTokenAuth) {
  REQUIRE_REGISTRY();
  // Push to an open registry, then serve the same storage behind token auth.
  auto open = testing::TestRegistry::Start();
  ASSERT_TRUE(open.ok()) << open.status().message();
  BuiltImage pub = SmallImage(Format::kOci, "public");
  BuiltImage priv = SmallImage(Format::kDocker, "private");
  ASSERT_TRUE(testing::PushImage((*open)->host(), "public/app", "1", pub).ok());
  ASSERT_TRUE(testing::PushImage((*open)->host(), "private/app", "1", priv).ok());

  testing::TokenOptions t;
  t.users = {{"bob", "hunter2"}};
  t.public_repos = {"public/app"};
  auto tokens = testing::TokenServer::Start(t);
  ASSERT_TRUE(tokens.ok()) << tokens.status().message();
  testing::RegistryOptions o;
  o.auth = testing::RegistryOptions::Auth::kToken;
  o.token_realm = (*tokens)->realm();
  o.token_service = t.service;
  o.token_issuer = t.issuer;
  o.token_cert_path = (*tokens)->cert_path();
  o.storage_dir = (*open)->storage_dir();
  auto reg = testing::TestRegistry::Start(o);
  ASSERT_TRUE(reg.ok()) << reg.status().message();

  auto anon = NewClient()->Pull((*reg)->host() + "/public/app:1");
  ASSERT_TRUE(anon.ok()) << anon.status().message();
  ExpectImage(*anon, pub, store_);
  // One token for the repository's scope, reused for every blob.
  EXPECT_EQ((*tokens)->tokens_issued(), 1);
  for (const auto& r : (*tokens)->requests()) {
    EXPECT_EQ(r.headers.count("authorization"), 0u) << "anonymous: no credentials";
    EXPECT_NE(r.target.find("scope=repository%3Apublic%2Fapp%3Apull"), std::string::npos)
        << r.target;
  }

  auto denied = NewClient()->Pull((*reg)->host() + "/private/app:1");
  ASSERT_FALSE(denied.ok());
  EXPECT_EQ(denied.status().code(), StatusCode::kUnauthenticated) << denied.status().message();

  auto authorized = NewClient("bob:hunter2")->Pull((*reg)->host() + "/private/app:1");
  ASSERT_TRUE(authorized.ok()) << authorized.status().message();
  ExpectImage(*authorized, priv, store_);
}

// A fixture registry that serves one image, requires basic auth, and redirects blob requests
// to a "CDN" on another port.
TEST_F(PullTest, RedirectToAnotherHostCarriesNoAuthorization) {
  BuiltImage img = SmallImage(Format::kOci, "cdn");
  std::map<std::string, std::string> blobs;
  blobs[img.config.digest] = img.config.data;
  for (const auto& l : img.layers) blobs[l.digest] = l.data;

  auto cdn = testing::FixtureServer::Start([&](const testing::HttpRequest& r) {
    testing::HttpResponse resp;
    auto digest = r.target.substr(r.target.rfind('/') + 1);
    digest = digest.substr(0, digest.find('?'));
    if (!blobs.count(digest)) return testing::HttpResponse{404, {}, "no"};
    resp.body = blobs[digest];
    return resp;
  });
  ASSERT_TRUE(cdn.ok());
  std::string cdn_url = (*cdn)->url();
  auto front = testing::FixtureServer::Start([&](const testing::HttpRequest& r) {
    if (!r.headers.count("authorization") ||
        r.headers.at("authorization") != "Basic dXNlcjpwYXNz") {  // user:pass
      return testing::HttpResponse{401, {{"WWW-Authenticate", "Basic realm=\"fixture\""}}, ""};
    }
    if (r.target == "/v2/app/manifests/1" ||
        r.target == "/v2/app/manifests/" + img.manifest_digest) {
      return testing::HttpResponse{200,
                                   {{"Content-Type", img.manifest_media_type},
                                    {"Docker-Content-Digest", img.manifest_digest}},
                                   img.manifest};
    }
    if (r.target.starts_with("/v2/app/blobs/")) {
      std::string digest = r.target.substr(std::string("/v2/app/blobs/").size());
      return testing::HttpResponse{307, {{"Location", cdn_url + "/data/" + digest + "?sig=x"}}, ""};
    }
    return testing::HttpResponse{404, {}, ""};
  });
  ASSERT_TRUE(front.ok());

  auto img_pulled = NewClient("user:pass")->Pull((*front)->host() + "/app:1");
  ASSERT_TRUE(img_pulled.ok()) << img_pulled.status().message();
  ExpectImage(*img_pulled, img, store_);
  ASSERT_EQ((*cdn)->requests().size(), 3u);
  for (const auto& r : (*cdn)->requests()) {
    EXPECT_EQ(r.headers.count("authorization"), 0u) << r.target;
  }
}

TEST_F(PullTest, OversizedManifestIsRefused) {
  std::string huge =
      R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","annotations":{"x":")" +
      std::string(5 << 20, 'a') + "\"}}";
  auto server = testing::FixtureServer::Start([&](const testing::HttpRequest&) {
    return testing::HttpResponse{
        200, {{"Content-Type", "application/vnd.oci.image.manifest.v1+json"}}, huge};
  });
  ASSERT_TRUE(server.ok());
  auto r = NewClient()->Pull((*server)->host() + "/big:1");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted) << r.status().message();
  EXPECT_TRUE(StoredBlobs(store_).empty());
}

TEST_F(PullTest, DigestHeaderThatDisagreesIsRefused) {
  BuiltImage img = SmallImage(Format::kOci, "liar");
  std::string lie = "sha256:" + std::string(64, 'e');
  auto server = testing::FixtureServer::Start([&](const testing::HttpRequest& r) {
    if (r.target.find("/manifests/") != std::string::npos) {
      return testing::HttpResponse{
          200,
          {{"Content-Type", img.manifest_media_type}, {"Docker-Content-Digest", lie}},
          img.manifest};
    }
    return testing::HttpResponse{404, {}, ""};
  });
  ASSERT_TRUE(server.ok());
  auto r = NewClient()->Pull((*server)->host() + "/liar:1");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss) << r.status().message();
  EXPECT_TRUE(StoredBlobs(store_).empty());

  // The same manifest asked for by a digest that does not match its bytes.
  auto by_digest = NewClient()->Pull((*server)->host() + "/liar@" + lie);
  ASSERT_FALSE(by_digest.ok());
  EXPECT_EQ(by_digest.status().code(), StatusCode::kDataLoss) << by_digest.status().message();
  EXPECT_TRUE(StoredBlobs(store_).empty());
}

TEST_F(PullTest, BadReferenceFailsBeforeAnyRequest) {
  for (std::string bad : {"Upper/case", "app:bad tag", "app@sha256:abc", ""}) {
    auto r = NewClient()->Pull(bad);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(r.status().message().rfind("pull " + bad + ": invalid reference", 0), 0u)
        << r.status().message();
  }
}

TEST_F(PullTest, ConcurrentPullsInOneProcessShareTheStore) {
  REQUIRE_REGISTRY();
  auto reg = testing::TestRegistry::Start();
  ASSERT_TRUE(reg.ok()) << reg.status().message();
  BuiltImage a = SmallImage(Format::kOci, "a");
  BuiltImage b = SmallImage(Format::kOci, "b");
  ASSERT_TRUE(testing::PushImage((*reg)->host(), "a", "1", a).ok());
  ASSERT_TRUE(testing::PushImage((*reg)->host(), "b", "1", b).ok());
  auto client = NewClient();
  std::vector<std::thread> threads;
  std::vector<Status> results(6);
  for (size_t i = 0; i < results.size(); ++i) {
    threads.emplace_back(
        [&, i] { results[i] = client->Pull((*reg)->host() + (i % 2 ? "/a:1" : "/b:1")).status(); });
  }
  for (auto& t : threads) t.join();
  for (const auto& s : results) EXPECT_TRUE(s.ok()) << s.message();
  ExpectImage(*client->Inspect((*reg)->host() + "/a:1"), a, store_);
  ExpectImage(*client->Inspect((*reg)->host() + "/b:1"), b, store_);
}

// A fixture registry serving one image; blob requests wait until `release` is set.
TEST_F(PullTest, CancelStopsTransfersInFlight) {
  BuiltImage img = SmallImage(Format::kOci, "slow");
  std::atomic<bool> release{false};
  auto server = testing::FixtureServer::Start([&](const testing::HttpRequest& r) {
    if (r.target.find("/manifests/") != std::string::npos) {
      return testing::HttpResponse{200,
                                   {{"Content-Type", img.manifest_media_type},
                                    {"Docker-Content-Digest", img.manifest_digest}},
                                   img.manifest};
    }
    for (int i = 0; i < 1000 && !release.load(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return testing::HttpResponse{503, {}, ""};
  });
  ASSERT_TRUE(server.ok());
  std::atomic<bool> cancel{false};
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    cancel.store(true);
  });
  PullOptions o;
  o.cancel = &cancel;
  auto start = std::chrono::steady_clock::now();
  auto r = NewClient()->Pull((*server)->host() + "/slow:1", o);
  auto took = std::chrono::steady_clock::now() - start;
  release.store(true);
  canceller.join();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCancelled) << r.status().message();
  EXPECT_LT(took, std::chrono::seconds(5));
  EXPECT_TRUE(IngestEmpty(store_));
  EXPECT_TRUE(NewClient()->Images()->empty());
}

// The distribution registry no longer stores schema1; a fixture serves one the way old
// registries did, and hoist pulls its layers base first.
TEST_F(PullTest, Schema1ImageFromAFixtureRegistry) {
  BuiltImage img = SmallImage(Format::kDocker, "schema1");
  std::string base_id(64, '1'), top_id(64, '2');
  std::string manifest = R"({"schemaVersion":1,"name":"old","tag":"1","architecture":"amd64",
    "fsLayers":[{"blobSum":")" +
                         img.layers[1].digest + R"("},{"blobSum":")" + img.layers[0].digest +
                         R"("}],
    "history":[{"v1Compatibility":"{\"id\":\")" +
                         top_id + R"(\",\"parent\":\")" + base_id + R"(\"}"},
               {"v1Compatibility":"{\"id\":\")" +
                         base_id + R"(\"}"}]})";
  std::map<std::string, std::string> blobs = {{img.layers[0].digest, img.layers[0].data},
                                              {img.layers[1].digest, img.layers[1].data}};
  auto server = testing::FixtureServer::Start([&](const testing::HttpRequest& r) {
    if (r.target.find("/manifests/") != std::string::npos) {
      return testing::HttpResponse{
          200,
          {{"Content-Type", "application/vnd.docker.distribution.manifest.v1+json"}},
          manifest};
    }
    std::string digest = r.target.substr(r.target.rfind('/') + 1);
    if (!blobs.count(digest)) return testing::HttpResponse{404, {}, ""};
    return testing::HttpResponse{200, {}, blobs[digest]};
  });
  ASSERT_TRUE(server.ok());
  auto r = NewClient()->Pull((*server)->host() + "/old:1");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->manifest.media_type, "application/vnd.docker.distribution.manifest.v1+json");
  EXPECT_EQ(r->repo_digest.String(), testing::Sha256Digest(manifest));
  ASSERT_EQ(r->layers.size(), 2u);
  EXPECT_EQ(r->layers[0].digest.String(), img.layers[0].digest) << "base layer first";
  EXPECT_EQ(r->layers[1].digest.String(), img.layers[1].digest);
  auto blobs_stored = StoredBlobs(store_);
  EXPECT_TRUE(blobs_stored.count(img.layers[0].digest) && blobs_stored.count(img.layers[1].digest));
}

}  // namespace
}  // namespace hoist
