// Pulls through a fault-injecting proxy in front of the real registry: resets, 429 with
// Retry-After, 503 bursts, stalls, short bodies, a server that ignores Range. Each test checks
// that the pull completes, that every blob of the store re-hashes to its name and the layers
// unpack to the image's files, and how many bytes went through the proxy. The numbers each test
// sees are printed as "[resilience] ..." lines.
#include <gtest/gtest.h>

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>

#include "hoist/client.h"
#include "support/fault_proxy.h"
#include "support/image_builder.h"
#include "support/process.h"
#include "support/registry.h"
#include "support/token_server.h"

namespace hoist {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using testing::Fault;

#define REQUIRE_REGISTRY() \
  if (!testing::TestRegistry::Available()) GTEST_SKIP() << "docker-registry not installed"

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Incompressible file data, so a layer's blob is about as large as its file.
std::string HttpDate(std::chrono::system_clock::time_point t) {
  const time_t secs = std::chrono::system_clock::to_time_t(t);
  tm utc{};
  gmtime_r(&secs, &utc);
  char buf[64];
  std::strftime(buf, sizeof(buf), "%a, %d %b %Y %H:%M:%S GMT", &utc);
  return buf;
}

class ResilienceTest : public ::testing::Test {
 protected:
  static constexpr size_t kFileSizes[] = {600 << 10, 900 << 10, 1200 << 10};

  void SetUp() override {
    if (!testing::TestRegistry::Available()) return;
    auto dir = testing::TempDir::Create("hoist-resilience-");
    ASSERT_TRUE(dir.ok());
    dir_.emplace(std::move(dir).value());
    store_ = dir_->path() + "/store";
    std::vector<std::vector<testing::TarEntry>> layers;
    for (size_t i = 0; i < std::size(kFileSizes); ++i) {
      files_.push_back(testing::RandomBytes(kFileSizes[i], static_cast<unsigned>(i + 1)));
      layers.push_back({{"data/", "", '5'}, {"data/file" + std::to_string(i), files_.back()}});
    }
    image_ = testing::BuildImage(testing::Format::kOci, layers, "linux", "amd64");
    auto started = testing::StartProxiedRegistry("app/r", "1", image_);
    ASSERT_TRUE(started.ok()) << started.status().message();
    registry_ = std::move(started->registry);
    proxy_ = std::move(started->proxy);
  }

  int64_t BlobBytes() const {
    int64_t n = static_cast<int64_t>(image_.config.data.size());
    for (const auto& l : image_.layers) n += static_cast<int64_t>(l.data.size());
    return n;
  }
  const std::string& LayerDigest(size_t i) const { return image_.layers[i].digest; }

  // Pulls <proxy>/app/r:1 with tiny retry delays; remembers the retry lines and the time.
  Result<Image> Pull(const std::function<void(ClientOptions&)>& tweak = nullptr) {
    ClientOptions o;
    o.store_dir = store_;
    o.retry_base_delay_ms = 10;
    if (tweak) tweak(o);
    auto client = Client::Open(o);
    if (!client.ok()) return client.status();
    PullOptions p;
    p.progress = [this](const ProgressEvent& e) {
      events_.push_back({Clock::now(), e});
      if (e.state == ProgressState::kRetrying) {
        retries_.push_back(e.descriptor.digest.String() + ": " + e.message);
      }
    };
    p.notice = [this](const std::string& line) { notices_.push_back(line); };
    const auto started = Clock::now();
    auto image = (*client)->Pull(proxy_->host() + "/app/r:1", p);
    elapsed_ = std::chrono::duration<double>(Clock::now() - started).count();
    if (image.ok()) {
      unpacked_ = dir_->path() + "/rootfs";
      Status s = (*client)->Unpack(proxy_->host() + "/app/r:1", unpacked_);
      if (!s.ok()) return s;
    }
    return image;
  }

  // Every blob of the store hashes to its name, every blob of the image is there, nothing is
  // left in ingest/, and the unpacked files are the image's.
  void ExpectStoreVerifies() {
    std::set<std::string> blobs;
    for (auto& e : fs::directory_iterator(store_ + "/blobs/sha256")) {
      const std::string name = "sha256:" + e.path().filename().string();
      EXPECT_EQ(testing::Sha256Digest(ReadFile(e.path())), name);
      blobs.insert(name);
    }
    EXPECT_TRUE(blobs.count(image_.manifest_digest));
    EXPECT_TRUE(blobs.count(image_.config.digest));
    for (const auto& l : image_.layers) EXPECT_TRUE(blobs.count(l.digest)) << l.digest;
    for (auto& e : fs::recursive_directory_iterator(store_ + "/ingest")) {
      EXPECT_FALSE(e.is_regular_file()) << e.path();
    }
    for (size_t i = 0; i < files_.size(); ++i) {
      EXPECT_TRUE(ReadFile(unpacked_ + "/data/file" + std::to_string(i)) == files_[i]) << i;
    }
  }

  // One line of numbers for the record.
  void Report(const std::string& fault) {
    const int64_t fetched = proxy_->BodyBytes("/blobs/");
    std::printf(
        "[resilience] %s: image blobs %lld B, fetched %lld B (%.3fx), %zu retries, longest "
        "recovery %lld ms (fault to next request), pull %.2f s\n",
        fault.c_str(), static_cast<long long>(BlobBytes()), static_cast<long long>(fetched),
        static_cast<double>(fetched) / static_cast<double>(BlobBytes()),
        retries_.size() + notices_.size(),
        static_cast<long long>(proxy_->LongestRecovery().count()), elapsed_);
    for (const auto& r : retries_) std::printf("[resilience]   %s\n", r.c_str());
    for (const auto& n : notices_) std::printf("[resilience]   %s\n", n.c_str());
  }

  std::optional<testing::TempDir> dir_;
  std::string store_, unpacked_;
  std::vector<std::string> files_;
  testing::BuiltImage image_;
  std::unique_ptr<testing::TestRegistry> registry_;
  std::unique_ptr<testing::FaultProxy> proxy_;
  std::vector<std::string> retries_, notices_;
  std::vector<std::pair<Clock::time_point, ProgressEvent>> events_;  // in the order reported
  double elapsed_ = 0;
};

TEST_F(ResilienceTest, CleanPullFetchesEachBlobOnce) {
  REQUIRE_REGISTRY();
  auto image = Pull();
  ASSERT_TRUE(image.ok()) << image.status().message();
  ExpectStoreVerifies();
  Report("none");
  EXPECT_EQ(proxy_->BodyBytes("/blobs/"), BlobBytes());
  EXPECT_TRUE(retries_.empty());
}

TEST_F(ResilienceTest, ResetInEveryLayerResumesWithRange) {
  REQUIRE_REGISTRY();
  for (size_t i = 0; i < image_.layers.size(); ++i) {
    proxy_->Add({.kind = Fault::kReset, .path_contains = LayerDigest(i), .fraction = 0.5});
  }
  auto image = Pull();
  ASSERT_TRUE(image.ok()) << image.status().message();
  ExpectStoreVerifies();
  Report("reset at half of every layer");
  for (size_t i = 0; i < image_.layers.size(); ++i) {
    std::vector<testing::ProxiedRequest> gets;
    for (const auto& r : proxy_->Requests()) {
      if (r.method == "GET" && r.path.ends_with(LayerDigest(i))) gets.push_back(r);
    }
    ASSERT_EQ(gets.size(), 2u) << i;
    EXPECT_EQ(gets[0].fault, "reset");
    EXPECT_EQ(gets[1].range, "bytes=" + std::to_string(gets[0].body_bytes) + "-") << i;
    EXPECT_EQ(gets[1].status, 206) << i;
  }
  // Nothing fetched twice: the bound of the issue is 1.1x, a resume costs nothing at all.
  EXPECT_LE(proxy_->BodyBytes("/blobs/"), BlobBytes() * 11 / 10);
  EXPECT_EQ(proxy_->BodyBytes("/blobs/"), BlobBytes());
  ASSERT_EQ(retries_.size(), image_.layers.size());
  for (const auto& r : retries_) {
    EXPECT_NE(r.find("Retrying in "), std::string::npos) << r;
    EXPECT_NE(r.find("(connection reset after "), std::string::npos) << r;
  }
}

TEST_F(ResilienceTest, ShortBodiesResumeWithRange) {
  REQUIRE_REGISTRY();
  for (size_t i = 0; i < image_.layers.size(); ++i) {
    proxy_->Add({.kind = Fault::kShortBody, .path_contains = LayerDigest(i), .fraction = 0.3});
  }
  auto image = Pull();
  ASSERT_TRUE(image.ok()) << image.status().message();
  ExpectStoreVerifies();
  Report("short body (30%) in every layer");
  EXPECT_EQ(proxy_->Count("/blobs/", "GET"), 1 + 2 * static_cast<int>(image_.layers.size()));
  EXPECT_LE(proxy_->BodyBytes("/blobs/"), BlobBytes() * 11 / 10);
  EXPECT_EQ(retries_.size(), image_.layers.size());
}

TEST_F(ResilienceTest, ServerIgnoringRangeRestartsFromZero) {
  REQUIRE_REGISTRY();
  // A layer (blob writer and extraction restart) and the config (blob writer only).
  for (const std::string& digest : {LayerDigest(2), image_.config.digest}) {
    proxy_->Add({.kind = Fault::kReset, .path_contains = digest, .fraction = 0.5});
    proxy_->Add({.kind = Fault::kIgnoreRange, .path_contains = digest});
  }
  auto image = Pull();
  ASSERT_TRUE(image.ok()) << image.status().message();
  ExpectStoreVerifies();
  Report("reset at half of a layer and of the config, Range ignored");
  EXPECT_EQ(proxy_->Count(image_.config.digest, "GET"), 2);
  const int64_t size = static_cast<int64_t>(image_.layers[2].data.size());
  std::vector<testing::ProxiedRequest> gets;
  for (const auto& r : proxy_->Requests()) {
    if (r.method == "GET" && r.path.ends_with(LayerDigest(2))) gets.push_back(r);
  }
  ASSERT_EQ(gets.size(), 2u);
  EXPECT_FALSE(gets[1].range.empty()) << "hoist asked for the rest";
  EXPECT_EQ(gets[1].status, 200) << "and got the whole blob again";
  EXPECT_EQ(gets[1].body_bytes, size);
  EXPECT_EQ(proxy_->BodyBytes(LayerDigest(2)), size + gets[0].body_bytes);
}

TEST_F(ResilienceTest, TooManyRequestsHonoursRetryAfterSeconds) {
  REQUIRE_REGISTRY();
  proxy_->Add(
      {.kind = Fault::kStatus, .path_contains = "/manifests/", .status = 429, .retry_after = "1"});
  auto image = Pull();
  ASSERT_TRUE(image.ok()) << image.status().message();
  ExpectStoreVerifies();
  Report("429 Retry-After: 1 on the manifest");
  EXPECT_GE(elapsed_, 0.95) << "the base delay is 10 ms: only Retry-After explains the wait";
  ASSERT_EQ(notices_.size(), 1u);
  EXPECT_NE(notices_[0].find("app/r: Retrying in 1s (HTTP 429)"), std::string::npos) << notices_[0];
}

TEST_F(ResilienceTest, TooManyRequestsHonoursRetryAfterHttpDate) {
  REQUIRE_REGISTRY();
  proxy_->Add(
      {.kind = Fault::kStatus,
       .path_contains = LayerDigest(0),
       .status = 429,
       .retry_after = HttpDate(std::chrono::system_clock::now() + std::chrono::seconds(2))});
  auto image = Pull();
  ASSERT_TRUE(image.ok()) << image.status().message();
  ExpectStoreVerifies();
  Report("429 Retry-After: HTTP-date (+2 s) on a layer");
  EXPECT_GE(elapsed_, 0.95);
  ASSERT_EQ(retries_.size(), 1u);
  EXPECT_EQ(retries_[0].rfind(LayerDigest(0) + ": Retrying in ", 0), 0u) << retries_[0];
  EXPECT_EQ(proxy_->BodyBytes("/blobs/"), BlobBytes());
}

TEST_F(ResilienceTest, ServiceUnavailableBursts) {
  REQUIRE_REGISTRY();
  proxy_->Add({.kind = Fault::kStatus, .path_contains = "/manifests/", .count = 3});
  proxy_->Add({.kind = Fault::kStatus, .path_contains = "/blobs/", .count = 4});
  auto image = Pull();
  ASSERT_TRUE(image.ok()) << image.status().message();
  ExpectStoreVerifies();
  Report("503 x3 on manifests, x4 on blobs");
  EXPECT_EQ(proxy_->BodyBytes("/blobs/"), BlobBytes());
  EXPECT_EQ(retries_.size() + notices_.size(), 7u);
}

TEST_F(ResilienceTest, StallAfterTheHeadersIsCutAndRetried) {
  REQUIRE_REGISTRY();
  proxy_->Add({.kind = Fault::kStall, .path_contains = LayerDigest(1), .at = 0});
  auto image = Pull([](ClientOptions& o) {
    o.low_speed_bytes_per_second = 1000;
    o.low_speed_seconds = 1;
  });
  ASSERT_TRUE(image.ok()) << image.status().message();
  ExpectStoreVerifies();
  Report("stall after the headers (low-speed limit 1000 B/s over 1 s)");
  EXPECT_LT(elapsed_, 15) << "the stall (20 s) was not waited out";
  EXPECT_EQ(proxy_->Count(LayerDigest(1), "GET"), 2);
  ASSERT_EQ(retries_.size(), 1u);
  EXPECT_NE(retries_[0].find("(timed out)"), std::string::npos) << retries_[0];
}

// Byte counts come as the data flows, rate-limited per blob (50 ms or 1 MiB): a layer that stalls
// half-way reports how far it got in between; a stored blob that is extracted again reports the
// bytes read into the extractor, ending at its size.
TEST_F(ResilienceTest, ProgressReportsBytesAsTheyFlowAtMostEvery50MsOr1MiB) {
  REQUIRE_REGISTRY();
  proxy_->Add({.kind = Fault::kStall,
               .path_contains = LayerDigest(2),
               .fraction = 0.5,
               .stall = std::chrono::milliseconds(300)});
  auto image = Pull();
  ASSERT_TRUE(image.ok()) << image.status().message();
  const int64_t size = static_cast<int64_t>(image_.layers[2].data.size());
  std::map<std::string, std::pair<Clock::time_point, int64_t>> last_bytes;
  bool in_between = false;
  for (const auto& [when, e] : events_) {
    const std::string digest = e.descriptor.digest.String();
    EXPECT_EQ(e.total, e.descriptor.size) << digest;
    EXPECT_LE(e.current, e.total) << digest;
    if (e.state != ProgressState::kDownloading || e.current == 0) continue;
    if (auto it = last_bytes.find(digest); it != last_bytes.end()) {
      EXPECT_TRUE(when - it->second.first >= std::chrono::milliseconds(49) ||
                  e.current - it->second.second >= (1 << 20))
          << digest << " reported too often";
    }
    last_bytes[digest] = {when, e.current};
    if (digest == LayerDigest(2) && e.current < size) in_between = true;
  }
  EXPECT_TRUE(in_between) << "no byte count between the start and the end of the stalled layer";

  // The layer's directory gone, its blob stored: the next pull extracts the blob again.
  fs::remove_all(store_ + "/layers/sha256/" + image_.diff_ids[2].substr(7));
  fs::remove_all(unpacked_);
  events_.clear();
  ASSERT_TRUE(Pull().ok());
  std::vector<int64_t> extracted;
  for (const auto& [when, e] : events_) {
    if (e.state != ProgressState::kExtracting) continue;
    extracted.push_back(e.current);
    EXPECT_EQ(e.descriptor.digest.String(), LayerDigest(2));
  }
  ASSERT_GE(extracted.size(), 2u);
  EXPECT_EQ(extracted.front(), 0);
  EXPECT_EQ(extracted.back(), size);
  EXPECT_TRUE(std::is_sorted(extracted.begin(), extracted.end()));
}

TEST_F(ResilienceTest, GivesUpAfterTheConfiguredAttempts) {
  REQUIRE_REGISTRY();
  proxy_->Add({.kind = Fault::kStatus, .path_contains = "/blobs/", .count = -1});
  auto image = Pull([](ClientOptions& o) { o.retries = 2; });
  ASSERT_FALSE(image.ok());
  Report("503 forever, 2 retries");
  EXPECT_EQ(image.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(image.status().message().find("gave up after 3 attempts"), std::string::npos)
      << image.status().message();
  EXPECT_EQ(proxy_->Count(image_.config.digest, "GET"), 3);
}

TEST_F(ResilienceTest, ClientErrorsAreNeverRetried) {
  REQUIRE_REGISTRY();
  struct Case {
    int status;
    StatusCode code;
  };
  for (const Case& c :
       {Case{400, StatusCode::kInvalidArgument}, Case{403, StatusCode::kPermissionDenied},
        Case{404, StatusCode::kNotFound}}) {
    auto proxy = testing::FaultProxy::Start(registry_->host());
    ASSERT_TRUE(proxy.ok());
    proxy_ = std::move(proxy).value();
    proxy_->Add(
        {.kind = Fault::kStatus, .path_contains = "/blobs/", .count = -1, .status = c.status});
    auto image = Pull();
    ASSERT_FALSE(image.ok()) << c.status;
    EXPECT_EQ(image.status().code(), c.code) << image.status().message();
    EXPECT_EQ(proxy_->Count("/blobs/", "GET"), 1) << c.status;
  }
  EXPECT_TRUE(retries_.empty());
}

// Token requests are retried too: the registry's token server (behind a second proxy) fails
// twice with 503 before it issues a token.
TEST_F(ResilienceTest, TokenServerFailuresAreRetried) {
  REQUIRE_REGISTRY();
  testing::TokenOptions t;
  t.public_repos = {"app/r"};
  auto tokens = testing::TokenServer::Start(t);
  ASSERT_TRUE(tokens.ok()) << tokens.status().message();
  const std::string realm = (*tokens)->realm();  // http://127.0.0.1:PORT/token
  auto token_proxy = testing::FaultProxy::Start(realm.substr(7, realm.rfind('/') - 7));
  ASSERT_TRUE(token_proxy.ok()) << token_proxy.status().message();
  (*token_proxy)->Add({.kind = Fault::kStatus, .path_contains = "/token", .count = 2});
  testing::RegistryOptions o;
  o.auth = testing::RegistryOptions::Auth::kToken;
  o.token_realm = "http://" + (*token_proxy)->host() + "/token";
  o.token_service = t.service;
  o.token_issuer = t.issuer;
  o.token_cert_path = (*tokens)->cert_path();
  o.storage_dir = registry_->storage_dir();  // serves what the fixture pushed
  auto reg = testing::TestRegistry::Start(o);
  ASSERT_TRUE(reg.ok()) << reg.status().message();
  auto proxy = testing::FaultProxy::Start((*reg)->host());
  ASSERT_TRUE(proxy.ok());
  proxy_ = std::move(proxy).value();

  auto image = Pull();
  ASSERT_TRUE(image.ok()) << image.status().message();
  ExpectStoreVerifies();
  Report("503 x2 from the token server");
  std::printf("[resilience]   token server: longest recovery %lld ms\n",
              static_cast<long long>((*token_proxy)->LongestRecovery().count()));
  EXPECT_EQ((*token_proxy)->Count("/token"), 3);
  EXPECT_EQ((*tokens)->tokens_issued(), 1);
  ASSERT_EQ(notices_.size(), 2u);
  EXPECT_NE(notices_[0].find("Retrying in "), std::string::npos) << notices_[0];
  EXPECT_NE(notices_[0].find("(HTTP 503)"), std::string::npos) << notices_[0];
}

// The command line: --retries bounds the attempts, and each retry is one progress line.
TEST_F(ResilienceTest, CommandLineRetryFlags) {
  REQUIRE_REGISTRY();
  proxy_->Add({.kind = Fault::kStatus, .path_contains = LayerDigest(0), .count = 1});
  auto none = testing::RunCli(
      HOIST_CLI, {"--store", store_, "pull", "--retries", "0", proxy_->host() + "/app/r:1"},
      dir_->path());
  EXPECT_EQ(none.exit_code, 1) << none.out << none.err;
  EXPECT_NE(none.err.find("HTTP 503"), std::string::npos) << none.err;

  proxy_->Add({.kind = Fault::kStatus, .path_contains = LayerDigest(0), .count = 1});
  auto some = testing::RunCli(HOIST_CLI,
                              {"--store", store_, "pull", "--retries", "3", "--retry-max-time",
                               "1m", proxy_->host() + "/app/r:1"},
                              dir_->path());
  EXPECT_EQ(some.exit_code, 0) << some.out << some.err;
  const std::string line = LayerDigest(0).substr(7, 12) + ": Retrying in ";
  EXPECT_NE(some.out.find(line), std::string::npos) << some.out;
  EXPECT_NE(some.out.find("(HTTP 503)"), std::string::npos) << some.out;
}

// A plain-http loopback registry that refuses us: the error is its answer, without the https
// attempt that came first (that one is mentioned only when neither could be reached).
TEST(PlainHttpErrorTest, HttpAnswerIsTheError) {
  REQUIRE_REGISTRY();
  testing::RegistryOptions ro;
  ro.auth = testing::RegistryOptions::Auth::kHtpasswd;
  ro.user = "u";
  ro.password = "p";
  auto reg = testing::TestRegistry::Start(ro);
  ASSERT_TRUE(reg.ok()) << reg.status().message();
  auto dir = testing::TempDir::Create("hoist-resilience-");
  ASSERT_TRUE(dir.ok());
  ClientOptions o;
  o.store_dir = dir->path() + "/store";
  o.registries_conf = dir->path() + "/none.conf";
  o.retries = 1;
  o.retry_base_delay_ms = 1;
  std::ofstream(o.registries_conf) << "";
  setenv("DOCKER_CONFIG", dir->path().c_str(), 1);
  setenv("REGISTRY_AUTH_FILE", (dir->path() + "/auth.json").c_str(), 1);
  auto client = Client::Open(o);
  ASSERT_TRUE(client.ok()) << client.status().message();
  auto image = (*client)->Pull((*reg)->host() + "/app/x:1");
  ASSERT_FALSE(image.ok());
  EXPECT_EQ(image.status().code(), StatusCode::kUnauthenticated) << image.status().message();
  EXPECT_EQ(image.status().message().find("https"), std::string::npos) << image.status().message();

  // Nobody listening: both attempts failed at the transport, so both are told.
  auto port = testing::PickFreePort();
  ASSERT_TRUE(port.ok());
  auto gone = (*client)->Pull("127.0.0.1:" + std::to_string(*port) + "/app/x:1");
  ASSERT_FALSE(gone.ok());
  EXPECT_NE(gone.status().message().find("https failed"), std::string::npos)
      << gone.status().message();
}

}  // namespace
}  // namespace hoist
