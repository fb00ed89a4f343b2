// Pulls that die and start again, and pulls that share one download: the hoist command line
// through the fault proxy in front of the real registry.
//  - kill -9 at random moments of a pull, then a re-pull that fetches only the missing bytes;
//  - four concurrent pulls of one image into one store fetch each blob once, the others wait;
//  - a pull waiting for another that is killed takes over from its partial data;
//  - a store on a small tmpfs fills up (a clear error), then grows, and the pull resumes.
// The numbers each test sees are printed as "[resume] ..." lines.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "content/store.h"
#include "hoist/client.h"
#include "support/fault_proxy.h"
#include "support/image_builder.h"
#include "support/process.h"
#include "support/registry.h"

namespace hoist {
namespace {

namespace fs = std::filesystem;
using testing::Fault;
using namespace std::chrono_literals;

#define REQUIRE_REGISTRY() \
  if (!testing::TestRegistry::Available()) GTEST_SKIP() << "docker-registry not installed"

// Incompressible file data, so a layer's blob is about as large as its file.
// Polls `done` every 20 ms for at most `limit`; its last answer.
bool WaitUntil(const std::function<bool()>& done, std::chrono::milliseconds limit) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= end) return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

class ResumeTest : public ::testing::Test {
 protected:
  static constexpr size_t kFileSizes[] = {700 << 10, 900 << 10, 1100 << 10};

  void SetUp() override {
    if (!testing::TestRegistry::Available()) return;
    auto dir = testing::TempDir::Create("hoist-resume-");
    ASSERT_TRUE(dir.ok());
    dir_.emplace(std::move(dir).value());
    std::vector<std::vector<testing::TarEntry>> layers;
    for (size_t i = 0; i < std::size(kFileSizes); ++i) {
      layers.push_back({{"data/", "", '5'},
                        {"data/file" + std::to_string(i),
                         testing::RandomBytes(kFileSizes[i], static_cast<unsigned>(i + 7))}});
    }
    image_ = testing::BuildImage(testing::Format::kOci, layers, "linux", "amd64");
    auto started = testing::StartProxiedRegistry("app/r", "1", image_);
    ASSERT_TRUE(started.ok()) << started.status().message();
    registry_ = std::move(started->registry);
    proxy_ = std::move(started->proxy);
  }

  std::string Ref() const { return proxy_->host() + "/app/r:1"; }
  int64_t BlobBytes() const {
    int64_t n = static_cast<int64_t>(image_.config.data.size());
    for (const auto& l : image_.layers) n += static_cast<int64_t>(l.data.size());
    return n;
  }
  // Runs the CLI with its files in a directory of its own (`name`), so runs may overlap.
  testing::CliRun Cli(const std::vector<std::string>& args, const std::string& name = "cli") {
    const std::string d = dir_->path() + "/" + name;
    fs::create_directories(d);
    return testing::RunCli(HOIST_CLI, args, d);
  }
  Result<testing::ChildProcess> StartPull(const std::string& store, const std::string& name) {
    return testing::ChildProcess::Spawn({HOIST_CLI, "--store", store, "pull", Ref()},
                                        dir_->path() + "/" + name + ".out");
  }
  // The size of the partial data left in ingest/ for a blob (0 if none).
  static int64_t Partial(const std::string& store, const std::string& digest) {
    struct stat st;
    const std::string path = store + "/ingest/sha256-" + digest.substr(7) + "/data";
    return ::stat(path.c_str(), &st) == 0 ? static_cast<int64_t>(st.st_size) : 0;
  }
  static bool Committed(const std::string& store, const std::string& digest) {
    return fs::exists(store + "/blobs/sha256/" + digest.substr(7));
  }
  static Result<std::unique_ptr<Client>> OpenClient(const std::string& store) {
    ClientOptions o;
    o.store_dir = store;
    return Client::Open(o);
  }
  // Body bytes the proxy sent for each layer so far.
  std::vector<int64_t> LayerBytes() const {
    std::vector<int64_t> out;
    for (const auto& l : image_.layers) out.push_back(proxy_->BodyBytes("/blobs/" + l.digest));
    return out;
  }
  // For each layer, what a resuming pull still has to fetch: the rest of its partial data.
  std::vector<int64_t> Missing(const std::string& store) const {
    std::vector<int64_t> out;
    for (const auto& l : image_.layers) {
      out.push_back(Committed(store, l.digest)
                        ? 0
                        : static_cast<int64_t>(l.data.size()) - Partial(store, l.digest));
    }
    return out;
  }
  void ExpectVerifies(const std::string& store) {
    auto v = Cli({"--store", store, "verify"});
    EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
  }

  std::optional<testing::TempDir> dir_;
  testing::BuiltImage image_;
  std::unique_ptr<testing::TestRegistry> registry_;
  std::unique_ptr<testing::FaultProxy> proxy_;
};

// kill -9 at a random moment while the layers stall half-way, then a plain re-pull: it
// succeeds, the store verifies, and it fetches exactly what the killed pull had not kept.
TEST_F(ResumeTest, KillLoopRefetchesOnlyTheMissingBytes) {
  REQUIRE_REGISTRY();
  std::mt19937 rng(std::random_device{}());
  int resumed = 0;
  for (int i = 0; i < 5; ++i) {
    SCOPED_TRACE("iteration " + std::to_string(i));
    const std::string store = dir_->path() + "/store" + std::to_string(i);
    proxy_->ClearFaults();
    for (const auto& l : image_.layers) {
      proxy_->Add({.kind = Fault::kStall,
                   .path_contains = l.digest,
                   .count = -1,
                   .fraction = std::uniform_real_distribution<double>(0.1, 0.9)(rng),
                   .stall = 30s});
    }
    const int gets = proxy_->Count(image_.layers[0].digest, "GET");
    auto child = StartPull(store, "killed" + std::to_string(i));
    ASSERT_TRUE(child.ok()) << child.status().message();
    // Once the layers are asked for (the config is stored by then), at a random moment.
    ASSERT_TRUE(
        WaitUntil([&] { return proxy_->Count(image_.layers[0].digest, "GET") > gets; }, 20s));
    const int delay_ms = std::uniform_int_distribution<int>(0, 1000)(rng);
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    ::kill(child->pid(), SIGKILL);
    child->Stop();
    proxy_->ClearFaults();

    const std::vector<int64_t> missing = Missing(store);
    const std::vector<int64_t> before = LayerBytes();
    const int64_t blobs_before = proxy_->BodyBytes("/blobs/");
    auto run = Cli({"--store", store, "pull", Ref()});
    ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
    const std::vector<int64_t> after = LayerBytes();
    const int64_t fetched = proxy_->BodyBytes("/blobs/") - blobs_before;
    int64_t kept = 0;
    for (size_t l = 0; l < missing.size(); ++l) {
      EXPECT_EQ(after[l] - before[l], missing[l]) << "layer " << l;
      kept += static_cast<int64_t>(image_.layers[l].data.size()) - missing[l];
    }
    EXPECT_LT(fetched, BlobBytes());
    ExpectVerifies(store);
    if (kept > 0) ++resumed;
    std::printf(
        "[resume] kill -9 %d ms after the first layer request: kept %lld B; the re-pull fetched "
        "%lld B of the image's "
        "%lld B (%.3fx)\n",
        delay_ms, static_cast<long long>(kept), static_cast<long long>(fetched),
        static_cast<long long>(BlobBytes()),
        static_cast<double>(fetched) / static_cast<double>(BlobBytes()));
  }
  EXPECT_GT(resumed, 0);  // at least one kill found layers half-way
}

// Four pulls of one image into one store at once: each blob comes from the registry once; the
// pulls that find another one downloading say Waiting and then use its result.
TEST_F(ResumeTest, FourConcurrentPullsFetchEachBlobOnce) {
  REQUIRE_REGISTRY();
  const std::string store = dir_->path() + "/store";
  for (const auto& l : image_.layers) {
    proxy_->Add({.kind = Fault::kDelay, .path_contains = l.digest, .count = -1, .stall = 1500ms});
  }
  std::vector<testing::CliRun> runs(4);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < runs.size(); ++i) {
    threads.emplace_back([&, i] {
      runs[i] = Cli({"--store", store, "pull", Ref()}, "pull" + std::to_string(i));
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& r : runs) EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(proxy_->Count("/blobs/" + image_.config.digest, "GET"), 1);
  int waiting = 0;
  for (const auto& l : image_.layers) {
    EXPECT_EQ(proxy_->Count("/blobs/" + l.digest, "GET"), 1) << l.digest;
    const std::string line = l.digest.substr(7, 12) + ": Waiting";
    int waited = 0;
    for (const auto& r : runs) waited += r.out.find(line) != std::string::npos ? 1 : 0;
    EXPECT_GE(waited, 1) << l.digest;
    waiting += waited;
  }
  ExpectVerifies(store);
  std::printf(
      "[resume] 4 concurrent pulls: blob GETs %d for %zu blobs, %lld B fetched for %lld B of "
      "blobs; %d (pull, layer) pairs waited\n",
      proxy_->Count("/blobs/", "GET"), image_.layers.size() + 1,
      static_cast<long long>(proxy_->BodyBytes("/blobs/")), static_cast<long long>(BlobBytes()),
      waiting);
}

// Pulls run by one process (a runtime pulling several images through one library, here with two
// Clients on one store): each blob is fetched once, and the pulls that find another one
// fetching it say Waiting and use its result.
TEST_F(ResumeTest, PullsInOneProcessFetchEachBlobOnce) {
  REQUIRE_REGISTRY();
  const std::string store = dir_->path() + "/store";
  for (const auto& l : image_.layers) {
    proxy_->Add({.kind = Fault::kDelay, .path_contains = l.digest, .count = -1, .stall = 800ms});
  }
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 2; ++i) {
    auto c = OpenClient(store);
    ASSERT_TRUE(c.ok()) << c.status().message();
    clients.push_back(std::move(c).value());
  }
  std::mutex mu;
  std::set<std::string> waited;  // layers some pull waited for
  std::vector<Status> results(4);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < results.size(); ++i) {
    threads.emplace_back([&, i] {
      PullOptions o;
      o.progress = [&](const ProgressEvent& e) {
        std::lock_guard<std::mutex> lock(mu);
        if (e.state == ProgressState::kWaitingForOther) waited.insert(e.descriptor.digest.String());
      };
      results[i] = clients[i % 2]->Pull(Ref(), o).status();
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& s : results) EXPECT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(proxy_->Count("/blobs/" + image_.config.digest, "GET"), 1);
  for (const auto& l : image_.layers) {
    EXPECT_EQ(proxy_->Count("/blobs/" + l.digest, "GET"), 1) << l.digest;
    EXPECT_TRUE(waited.count(l.digest)) << l.digest;
  }
  ExpectVerifies(store);
  std::printf("[resume] 4 pulls in one process: blob GETs %d for %zu blobs\n",
              proxy_->Count("/blobs/", "GET"), image_.layers.size() + 1);
}

// A pull that needs a layer another pull of the process is fetching does its own layers first:
// with one worker, its own layer is complete before the shared one, which it waits for last
// (a worker held in that wait could have done nothing else).
TEST_F(ResumeTest, PullInOneProcessDoesItsOwnLayersBeforeWaiting) {
  REQUIRE_REGISTRY();
  const std::string store = dir_->path() + "/store";
  // A second image: the first one's base layer, then a layer of its own.
  testing::BuiltImage second = testing::BuildImage(
      testing::Format::kOci,
      {{{"data/", "", '5'}, {"data/file0", testing::RandomBytes(kFileSizes[0], 7)}},
       {{"own/", "", '5'}, {"own/file", testing::RandomBytes(300 << 10, 99)}}},
      "linux", "amd64");
  const std::string shared = image_.layers[0].digest;
  const std::string own = second.layers[1].digest;
  ASSERT_EQ(second.layers[0].digest, shared);
  ASSERT_TRUE(testing::PushImage(registry_->host(), "app/s", "1", second).ok());
  proxy_->Add({.kind = Fault::kDelay, .path_contains = shared, .count = -1, .stall = 1500ms});
  auto client = OpenClient(store);
  ASSERT_TRUE(client.ok()) << client.status().message();

  std::atomic<bool> first_fetching{false};
  Status first;
  std::thread t([&] {
    PullOptions o;
    o.progress = [&](const ProgressEvent& e) {
      if (e.descriptor.digest.String() == shared && e.state == ProgressState::kDownloading) {
        first_fetching = true;
      }
    };
    first = (*client)->Pull(Ref(), o).status();
  });
  ASSERT_TRUE(WaitUntil([&] { return first_fetching.load(); }, 20s));
  std::vector<std::pair<std::string, ProgressState>> events;
  PullOptions o;
  o.jobs = 1;
  o.progress = [&](const ProgressEvent& e) {
    events.emplace_back(e.descriptor.digest.String(), e.state);
  };
  Status second_pull = (*client)->Pull(proxy_->host() + "/app/s:1", o).status();
  t.join();
  ASSERT_TRUE(first.ok()) << first.message();
  ASSERT_TRUE(second_pull.ok()) << second_pull.message();
  auto at = [&](const std::string& digest, ProgressState state) {
    auto it = std::find(events.begin(), events.end(), std::make_pair(digest, state));
    return it == events.end() ? -1 : it - events.begin();
  };
  EXPECT_GE(at(shared, ProgressState::kWaitingForOther), 0);
  ASSERT_GE(at(own, ProgressState::kDownloadComplete), 0);
  ASSERT_GE(at(shared, ProgressState::kPullComplete), 0);
  EXPECT_LT(at(own, ProgressState::kDownloadComplete), at(shared, ProgressState::kPullComplete));
  EXPECT_EQ(proxy_->Count("/blobs/" + shared, "GET"), 1);
  ExpectVerifies(store);
}

// A pull waits for another one's download; that one is killed: the waiter takes over and
// fetches only what the killed one had not kept.
TEST_F(ResumeTest, WaiterTakesOverFromAKilledHolder) {
  REQUIRE_REGISTRY();
  const std::string store = dir_->path() + "/store";
  for (const auto& l : image_.layers) {
    proxy_->Add({.kind = Fault::kStall, .path_contains = l.digest, .count = 1, .stall = 30s});
  }
  auto holder = StartPull(store, "holder");
  ASSERT_TRUE(holder.ok()) << holder.status().message();
  ASSERT_TRUE(WaitUntil(
      [&] {
        for (const auto& l : image_.layers) {
          if (Partial(store, l.digest) == 0) return false;
        }
        return true;
      },
      20s))
      << "the first pull did not get half of every layer";
  testing::CliRun waiter;
  std::thread t([&] { waiter = Cli({"--store", store, "pull", Ref()}, "waiter"); });
  // The waiter finds every layer locked, and says so.
  EXPECT_TRUE(WaitUntil(
      [&] {
        std::ifstream in(dir_->path() + "/waiter/cli.out");
        const std::string out(std::istreambuf_iterator<char>(in), {});
        for (const auto& l : image_.layers) {
          if (out.find(l.digest.substr(7, 12) + ": Waiting") == std::string::npos) return false;
        }
        return true;
      },
      20s));
  // What the holder keeps, measured before it dies (it stalls: its data no longer grows),
  // since the waiter starts from it at once.
  std::vector<int64_t> missing = Missing(store);
  EXPECT_TRUE(WaitUntil(
      [&] {
        std::this_thread::sleep_for(200ms);
        std::vector<int64_t> now = Missing(store);
        std::swap(now, missing);
        return now == missing;
      },
      20s));
  const std::vector<int64_t> before = LayerBytes();
  ::kill(holder->pid(), SIGKILL);
  holder->Stop();
  t.join();
  ASSERT_EQ(waiter.exit_code, 0) << waiter.out << waiter.err;
  const std::vector<int64_t> after = LayerBytes();
  int64_t fetched = 0;
  for (size_t l = 0; l < missing.size(); ++l) {
    EXPECT_EQ(after[l] - before[l], missing[l]) << "layer " << l;
    EXPECT_NE(waiter.out.find(image_.layers[l].digest.substr(7, 12) + ": Waiting"),
              std::string::npos)
        << waiter.out;
    fetched += after[l] - before[l];
  }
  ExpectVerifies(store);
  std::printf(
      "[resume] waiter took over from a killed holder: fetched %lld B of %lld B of layers\n",
      static_cast<long long>(fetched),
      static_cast<long long>(BlobBytes() - image_.config.data.size()));
}

// Kept data that is not the blob's beginning (a crash can lose what was not synced; here,
// planted garbage): the pull finds out by the digest, drops it and fetches the whole blob once
// more, and succeeds.
TEST_F(ResumeTest, BadKeptDataIsFetchedAgainWhole) {
  REQUIRE_REGISTRY();
  const std::string store = dir_->path() + "/store";
  std::vector<const testing::Blob*> blobs = {&image_.config, &image_.layers[1]};
  {
    auto s = content::Store::Open(store);
    ASSERT_TRUE(s.ok()) << s.status().message();
    for (const testing::Blob* b : blobs) {
      auto w = (*s)->OpenWriter(*Digest::Parse(b->digest), static_cast<int64_t>(b->data.size()));
      ASSERT_TRUE(w.ok()) << w.status().message();
      ASSERT_TRUE((*w)->Write(testing::RandomBytes(b->data.size() / 2, 99)).ok());
    }
  }
  auto run = Cli({"--store", store, "pull", Ref()});
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  for (const testing::Blob* b : blobs) {
    const int64_t size = static_cast<int64_t>(b->data.size());
    EXPECT_EQ(proxy_->BodyBytes("/blobs/" + b->digest), size - size / 2 + size) << b->digest;
  }
  ExpectVerifies(store);
  std::printf("[resume] bad kept data: fetched %lld B for %lld B of blobs\n",
              static_cast<long long>(proxy_->BodyBytes("/blobs/")),
              static_cast<long long>(BlobBytes()));
}

// A store on a tmpfs too small for the image: the pull fails with ResourceExhausted naming
// the file; with more room, the next pull resumes from what the first one kept.
TEST_F(ResumeTest, DiskFullFailsClearlyAndResumesWithMoreRoom) {
  REQUIRE_REGISTRY();
  if (::geteuid() != 0) GTEST_SKIP() << "mounting a tmpfs needs root";
  const std::string mnt = dir_->path() + "/small";
  fs::create_directories(mnt);
  auto mounted = testing::RunCommand({"mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", mnt}, 30);
  if (!mounted.ok()) GTEST_SKIP() << "cannot mount a tmpfs: " << mounted.status().message();
  struct Unmount {
    std::string path;
    ~Unmount() { (void)testing::RunCommand({"umount", path}, 30); }
  } unmount{mnt};
  const std::string store = mnt + "/store";
  auto pull = [&]() {
    ClientOptions o;
    o.store_dir = store;
    o.retry_base_delay_ms = 10;
    auto client = Client::Open(o);
    if (!client.ok()) return client.status();
    auto image = (*client)->Pull(Ref());
    return image.ok() ? OkStatus() : image.status();
  };
  Status full = pull();
  ASSERT_EQ(full.code(), StatusCode::kResourceExhausted) << full.ToString();
  // "No space left on device writing STORE/ingest/…" (the blob) or "…: no space left on device
  // writing file data (in STORE/layers/staging/…)" (its extraction), whichever filled it.
  EXPECT_NE(full.message().find("o space left on device"), std::string::npos) << full.message();
  EXPECT_NE(full.message().find(store + "/"), std::string::npos) << full.message();
  int64_t kept = 0;
  for (const auto& l : image_.layers) {
    kept +=
        Committed(store, l.digest) ? static_cast<int64_t>(l.data.size()) : Partial(store, l.digest);
  }
  EXPECT_GT(kept, 0);

  ASSERT_TRUE(testing::RunCommand({"mount", "-o", "remount,size=64m", mnt}, 30).ok());
  const int64_t before = proxy_->BodyBytes("/blobs/");
  Status s = pull();
  ASSERT_TRUE(s.ok()) << s.ToString();
  const int64_t fetched = proxy_->BodyBytes("/blobs/") - before;
  EXPECT_LT(fetched, BlobBytes());
  ExpectVerifies(store);
  std::printf(
      "[resume] disk full: \"%s\"; kept %lld B of layers; with more room the pull fetched %lld "
      "B of %lld B\n",
      full.message().c_str(), static_cast<long long>(kept), static_cast<long long>(fetched),
      static_cast<long long>(BlobBytes()));
}

}  // namespace
}  // namespace hoist
