#include "content/store.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "content/index_file.h"

namespace hoist::content {
namespace {

namespace stdfs = std::filesystem;
using Op = FaultInjectingFileSystem::Op;

constexpr char kManifestType[] = "application/vnd.oci.image.manifest.v1+json";

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl =
        std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/hoist-store-test-XXXXXX";
    path_ = ::mkdtemp(tmpl.data()) != nullptr ? tmpl : "";
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) stdfs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string store() const { return path_ + "/store"; }

 private:
  std::string path_;
};

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Names of the entries of a directory (empty if it does not exist).
std::set<std::string> List(const std::string& dir) {
  std::set<std::string> names;
  std::error_code ec;
  for (const auto& e : stdfs::directory_iterator(dir, ec)) {
    names.insert(e.path().filename().string());
  }
  return names;
}

Digest DigestFor(std::string_view bytes) { return *DigestOf("sha256", bytes); }

std::unique_ptr<Store> MustOpen(const std::string& root, FileSystem* fs = FileSystem::Default()) {
  auto store = Store::Open(root, fs);
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  return store.ok() ? std::move(*store) : nullptr;
}

Descriptor ManifestDescriptor(std::string_view bytes) {
  Descriptor d;
  d.media_type = kManifestType;
  d.digest = DigestFor(bytes);
  d.size = static_cast<int64_t>(bytes.size());
  return d;
}

// index.json parses as an OCI index and every entry as a descriptor.
void ExpectValidIndex(const Store& store) {
  auto index = ParseIndex(Slurp(store.layout().IndexFile()));
  ASSERT_TRUE(index.ok()) << index.status().ToString();
  EXPECT_EQ((*index)["mediaType"], kOciIndexMediaType);
  for (const auto& entry : (*index)["manifests"]) {
    EXPECT_TRUE(DescriptorFromJson(entry).ok()) << entry.dump();
  }
}

// Runs fn(i) in n forked processes released at the same moment; returns their exit codes
// (128 + signal for a killed child). fn must not use gtest assertions.
std::vector<int> RunInProcesses(int n, const std::function<int(int)>& fn) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return {};
  UniqueFd start_read(fds[0]), start_write(fds[1]);
  std::vector<pid_t> pids;
  for (int i = 0; i < n; ++i) {
    pid_t pid = ::fork();
    if (pid == 0) {
      start_write.reset();
      char c;
      (void)!::read(start_read.get(), &c, 1);  // returns at EOF, when the parent lets go
      ::_exit(fn(i));
    }
    pids.push_back(pid);
  }
  start_write.reset();
  std::vector<int> codes;
  for (pid_t pid : pids) {
    int status = 0;
    if (pid < 0 || ::waitpid(pid, &status, 0) != pid) {
      codes.push_back(-1);
    } else if (WIFEXITED(status)) {
      codes.push_back(WEXITSTATUS(status));
    } else {
      codes.push_back(128 + WTERMSIG(status));
    }
  }
  return codes;
}

// Writes `bytes` slowly (so that a competing writer has to wait) and returns 0 if this writer
// committed, 1 if it found the blob already committed, 2+ on errors.
int WriteSlowly(Store& store, std::string_view bytes) {
  auto writer = store.OpenWriter(DigestFor(bytes), static_cast<int64_t>(bytes.size()));
  if (!writer.ok()) return 2;
  if ((*writer)->already_committed()) return 1;
  const size_t chunk = bytes.size() / 32;
  for (size_t off = 0; off < bytes.size(); off += chunk) {
    if (!(*writer)->Write(bytes.substr(off, chunk)).ok()) return 3;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return (*writer)->Commit().ok() ? 0 : 4;
}

std::string Pattern(size_t n, char seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(seed + i * 31 + (i >> 9));
  return s;
}

TEST(Store, OpenCreatesLayout) {
  TempDir dir;
  auto store = MustOpen(dir.store() + "/nested");
  ASSERT_NE(store, nullptr);
  const Layout& l = store->layout();
  EXPECT_EQ(Slurp(l.OciLayoutFile()), R"({"imageLayoutVersion":"1.0.0"})");
  ExpectValidIndex(*store);
  for (const std::string& d : {l.BlobAlgorithmDir("sha256"), l.IngestDir(), l.LocksDir()}) {
    EXPECT_TRUE(stdfs::is_directory(d)) << d;
  }
  EXPECT_EQ(List(l.root()),
            (std::set<std::string>{"blobs", "index.json", "ingest", "locks", "oci-layout"}));
  EXPECT_TRUE(List(l.LocksDir()).empty());
  auto refs = store->ListRefs();
  ASSERT_TRUE(refs.ok());
  EXPECT_TRUE(refs->empty());
  EXPECT_NE(MustOpen(dir.store() + "/nested"), nullptr);  // reopening is fine
}

TEST(Store, OpenRefusesDamagedLayout) {
  TempDir dir;
  ASSERT_NE(MustOpen(dir.store()), nullptr);
  std::ofstream(dir.store() + "/index.json") << "{not json";
  EXPECT_EQ(Store::Open(dir.store()).status().code(), StatusCode::kDataLoss);
  std::ofstream(dir.store() + "/index.json") << EmptyIndexJson();
  std::ofstream(dir.store() + "/oci-layout") << R"({"imageLayoutVersion":"2.0.0"})";
  EXPECT_EQ(Store::Open(dir.store()).status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(Store::Open("").status().code(), StatusCode::kInvalidArgument);
}

TEST(Store, WriteCommitIsVisibleAndReadOnly) {
  TempDir dir;
  auto store = MustOpen(dir.store());
  ASSERT_NE(store, nullptr);
  std::string blob = Pattern(100000, 'a');
  Digest d = DigestFor(blob);
  EXPECT_FALSE(store->Has(d));
  EXPECT_EQ(store->BlobSize(d).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store->ReadBlob(d, 1 << 20).status().code(), StatusCode::kNotFound);

  auto writer = store->OpenWriter(d, static_cast<int64_t>(blob.size()));
  ASSERT_TRUE(writer.ok()) << writer.status().ToString();
  EXPECT_FALSE((*writer)->already_committed());
  EXPECT_TRUE(stdfs::exists(store->layout().BlobLockFile(d)));
  for (size_t off = 0; off < blob.size(); off += 7000) {
    ASSERT_TRUE((*writer)->Write(std::string_view(blob).substr(off, 7000)).ok());
  }
  EXPECT_EQ((*writer)->written(), static_cast<int64_t>(blob.size()));
  EXPECT_FALSE(store->Has(d));  // nothing visible before Commit
  Status s = (*writer)->Commit();
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE((*writer)->Commit().ok());  // idempotent
  writer->reset();

  EXPECT_TRUE(store->Has(d));
  EXPECT_TRUE(store->Has(d, static_cast<int64_t>(blob.size())));
  EXPECT_FALSE(store->Has(d, 5));
  EXPECT_EQ(*store->BlobSize(d), static_cast<int64_t>(blob.size()));
  auto read = store->ReadBlob(d, blob.size());
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(*read, blob);
  EXPECT_EQ(store->ReadBlob(d, blob.size() - 1).status().code(), StatusCode::kResourceExhausted);
  struct stat st;
  ASSERT_EQ(::stat(store->layout().BlobFile(d).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0444u);
  EXPECT_TRUE(List(store->layout().IngestDir()).empty());
  EXPECT_TRUE(List(store->layout().LocksDir()).empty());

  // A second writer for the same blob has nothing to do.
  auto again = store->OpenWriter(d, static_cast<int64_t>(blob.size()));
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE((*again)->already_committed());
  EXPECT_EQ((*again)->Write("x", 1).code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE((*again)->Commit().ok());
  again->reset();
  EXPECT_TRUE(store->Has(d));
  // ... unless it claims another size.
  EXPECT_EQ(store->OpenWriter(d, 3).status().code(), StatusCode::kDataLoss);
}

TEST(Store, WriteBlobWithUnknownSizeAndSha512) {
  TempDir dir;
  auto store = MustOpen(dir.store());
  ASSERT_NE(store, nullptr);
  Digest d = *DigestOf("sha512", "abc");
  auto writer = store->OpenWriter(d, -1);
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE((*writer)->Write("abc", 3).ok());
  ASSERT_TRUE((*writer)->Commit().ok());
  writer->reset();
  EXPECT_TRUE(stdfs::exists(store->layout().BlobFile(d)));
  EXPECT_EQ(*store->ReadBlob(d, 3), "abc");
  EXPECT_TRUE(store->WriteBlob(d, "abc").ok());  // already there
  EXPECT_EQ(store->WriteBlob(d, "abd").code(), StatusCode::kDataLoss);
}

TEST(Store, WrongDigestIsDataLossAndLeavesNothing) {
  TempDir dir;
  auto store = MustOpen(dir.store());
  ASSERT_NE(store, nullptr);
  Digest claimed = DigestFor("the real content");
  auto writer = store->OpenWriter(claimed, 16);
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE((*writer)->Write("some other bytes", 16).ok());
  Status s = (*writer)->Commit();
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("digest mismatch: got " + DigestFor("some other bytes").String()),
            std::string::npos)
      << s.message();
  EXPECT_EQ((*writer)->Commit(), s);  // the failure sticks
  EXPECT_TRUE(List(store->layout().BlobAlgorithmDir("sha256")).empty());
  EXPECT_TRUE(List(store->layout().IngestDir()).empty());  // cleaned at once
  writer->reset();
  EXPECT_TRUE(List(store->layout().LocksDir()).empty());
  EXPECT_EQ(store->WriteBlob(claimed, "some other bytes").code(), StatusCode::kDataLoss);
  EXPECT_FALSE(store->Has(claimed));
}

TEST(Store, SizeIsEnforced) {
  TempDir dir;
  auto store = MustOpen(dir.store());
  ASSERT_NE(store, nullptr);
  std::string blob = "0123456789";
  Digest d = DigestFor(blob);
  {
    auto writer = store->OpenWriter(d, 10);
    ASSERT_TRUE(writer.ok());
    ASSERT_TRUE((*writer)->Write(blob.data(), 6).ok());
    Status s = (*writer)->Write(blob.data() + 6, 5);  // 11 > 10
    EXPECT_EQ(s.code(), StatusCode::kDataLoss);
    EXPECT_NE(s.message().find("size exceeds expected 10"), std::string::npos) << s.message();
    EXPECT_EQ((*writer)->written(), 6);
    EXPECT_EQ((*writer)->Commit().code(), StatusCode::kDataLoss);
  }
  {
    auto writer = store->OpenWriter(d, 10);
    ASSERT_TRUE(writer.ok());
    ASSERT_TRUE((*writer)->Write(blob.data(), 9).ok());
    Status s = (*writer)->Commit();
    EXPECT_EQ(s.code(), StatusCode::kDataLoss);
    EXPECT_NE(s.message().find("size mismatch: got 9, want 10"), std::string::npos) << s.message();
  }
  EXPECT_FALSE(store->Has(d));
  EXPECT_TRUE(List(store->layout().IngestDir()).empty());
  EXPECT_TRUE(store->WriteBlob(d, blob).ok());
  EXPECT_TRUE(store->Has(d, 10));
}

TEST(Store, WriterDestroyedWithoutCommitKeepsItsDataToResume) {
  TempDir dir;
  auto store = MustOpen(dir.store());
  ASSERT_NE(store, nullptr);
  Digest d = DigestFor("abc");
  {
    auto writer = store->OpenWriter(d, 3);
    ASSERT_TRUE(writer.ok());
    ASSERT_TRUE((*writer)->Write("ab", 2).ok());
    EXPECT_EQ(List(store->layout().IngestDir()), std::set<std::string>{"sha256-" + d.hex()});
  }
  EXPECT_FALSE(store->Has(d));
  EXPECT_EQ(Slurp(store->layout().IngestDataFile(d)), "ab");
  EXPECT_TRUE(List(store->layout().LocksDir()).empty());
  EXPECT_TRUE(List(store->layout().BlobAlgorithmDir("sha256")).empty());
  {
    // A writer that wrote nothing leaves no entry.
    Digest other = DigestFor("xyz");
    ASSERT_TRUE(store->OpenWriter(other, 3).ok());
    EXPECT_FALSE(stdfs::exists(store->layout().IngestEntryDir(other)));
  }
  std::string replayed;
  WriterOptions o;
  o.replay = [&](const char* data, size_t n) {
    replayed.append(data, n);
    return OkStatus();
  };
  auto writer = store->OpenWriter(d, 3, o);
  ASSERT_TRUE(writer.ok());
  EXPECT_EQ((*writer)->written(), 2);
  EXPECT_EQ(replayed, "ab");
  ASSERT_TRUE((*writer)->Write("c", 1).ok());
  ASSERT_TRUE((*writer)->Commit().ok());
  EXPECT_EQ(*store->ReadBlob(d, 3), "abc");
  EXPECT_TRUE(List(store->layout().IngestDir()).empty());
}

// kill -9 in the middle of a blob: the next writer continues from what reached the file.
TEST(Store, WriterResumesAfterItsProcessWasKilled) {
  TempDir dir;
  auto store = MustOpen(dir.store());
  ASSERT_NE(store, nullptr);
  const std::string blob = Pattern(300000, 'k');
  const Digest d = DigestFor(blob);
  const int64_t size = static_cast<int64_t>(blob.size());
  pid_t pid = ::fork();
  if (pid == 0) {
    auto writer = store->OpenWriter(d, size);
    if (!writer.ok() || !(*writer)->Write(std::string_view(blob).substr(0, 123457)).ok()) {
      ::_exit(1);
    }
    ::raise(SIGKILL);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status));
  auto writer = store->OpenWriter(d, size);
  ASSERT_TRUE(writer.ok()) << writer.status().ToString();
  ASSERT_EQ((*writer)->written(), 123457);
  ASSERT_TRUE((*writer)->Write(std::string_view(blob).substr(123457)).ok());
  ASSERT_TRUE((*writer)->Commit().ok());
  EXPECT_EQ(*store->ReadBlob(d, blob.size()), blob);
}

TEST(Store, BadPartialDataIsDiscarded) {
  TempDir dir;
  auto store = MustOpen(dir.store());
  ASSERT_NE(store, nullptr);
  const std::string blob = "0123456789";
  const Digest d = DigestFor(blob);
  auto plant = [&](const std::string& bytes) {
    { ASSERT_TRUE((*store->OpenWriter(d, 10))->Write("x", 1).ok()); }
    std::ofstream(store->layout().IngestDataFile(d), std::ios::binary | std::ios::trunc) << bytes;
  };
  // Larger than the blob: not resumed.
  plant("01234567890123");
  {
    auto writer = store->OpenWriter(d, 10);
    ASSERT_TRUE(writer.ok());
    EXPECT_EQ((*writer)->written(), 0);
    EXPECT_EQ(Slurp(store->layout().IngestDataFile(d)), "");
  }
  // Wrong bytes: resumed, refused by the digest, and gone.
  plant("01234X");
  {
    auto writer = store->OpenWriter(d, 10);
    ASSERT_TRUE(writer.ok());
    EXPECT_EQ((*writer)->written(), 6);
    ASSERT_TRUE((*writer)->Write("6789").ok());
    EXPECT_EQ((*writer)->Commit().code(), StatusCode::kDataLoss);
    EXPECT_TRUE(List(store->layout().IngestDir()).empty());
  }
  EXPECT_FALSE(store->Has(d));
  // Restart and resume=false forget the partial data.
  plant("0123");
  {
    auto writer = store->OpenWriter(d, 10);
    ASSERT_TRUE(writer.ok());
    EXPECT_EQ((*writer)->written(), 4);
    ASSERT_TRUE((*writer)->Restart().ok());
    EXPECT_EQ((*writer)->written(), 0);
    ASSERT_TRUE((*writer)->Write(blob).ok());
    ASSERT_TRUE((*writer)->Commit().ok());
  }
  EXPECT_EQ(*store->ReadBlob(d, 10), blob);
  const std::string other = "abcdef";
  const Digest od = DigestFor(other);
  { ASSERT_TRUE((*store->OpenWriter(od, 6))->Write("zz").ok()); }
  WriterOptions from_zero;
  from_zero.resume = false;
  auto writer = store->OpenWriter(od, 6, from_zero);
  ASSERT_TRUE(writer.ok());
  EXPECT_EQ((*writer)->written(), 0);
  ASSERT_TRUE((*writer)->Write(other).ok());
  EXPECT_TRUE((*writer)->Commit().ok());
}

// A writer that finds the digest's lock taken says so (on_wait) before it blocks.
TEST(Store, WriterWaitingForAnotherIsTold) {
  TempDir dir;
  auto store = MustOpen(dir.store());
  ASSERT_NE(store, nullptr);
  const Digest d = DigestFor("abc");
  WriterOptions o;
  std::atomic<int> waits{0};
  o.on_wait = [&] { ++waits; };
  { ASSERT_TRUE(store->OpenWriter(d, 3, o).ok()); }
  EXPECT_EQ(waits.load(), 0);
  auto first = store->OpenWriter(d, 3);
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE((*first)->Write("ab").ok());
  std::atomic<bool> got{false};
  std::thread waiter([&] {
    auto second = store->OpenWriter(d, 3, o);
    EXPECT_TRUE(second.ok());
    if (second.ok()) {
      EXPECT_EQ((*second)->written(), 2);  // resumed from the first one's data
    }
    got = true;
  });
  for (int i = 0; i < 200 && waits.load() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(waits.load(), 1);
  EXPECT_FALSE(got.load());
  first->reset();
  waiter.join();
  EXPECT_TRUE(got.load());
}

TEST(Store, DiskFullIsResourceExhaustedAndResumable) {
  struct Case {
    const char* name;
    Op op;
    int nth;  // counted from OpenWriter on
  };
  for (const Case& c : std::vector<Case>{{"first write", Op::kWrite, 1},
                                         {"second write", Op::kWrite, 2},
                                         {"ingest dir fsync", Op::kFsync, 1},
                                         {"data fsync", Op::kFsync, 2},
                                         {"blob dir fsync", Op::kFsync, 3},
                                         {"rename", Op::kRename, 1}}) {
    SCOPED_TRACE(c.name);
    TempDir dir;
    FaultInjectingFileSystem fs;
    auto store = MustOpen(dir.store(), &fs);
    ASSERT_NE(store, nullptr);
    std::string blob = Pattern(5000, 'q');
    Digest d = DigestFor(blob);
    fs.FailNth(c.op, c.nth, ENOSPC);
    Status s = [&]() -> Status {
      auto writer = store->OpenWriter(d, static_cast<int64_t>(blob.size()));
      if (!writer.ok()) return writer.status();
      for (size_t off = 0; off < blob.size(); off += 2500) {
        Status w = (*writer)->Write(std::string_view(blob).substr(off, 2500));
        if (!w.ok()) return w;
      }
      return (*writer)->Commit();
    }();
    EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s.ToString();
    if (c.op == Op::kWrite) {
      EXPECT_NE(
          s.message().find("No space left on device writing " + store->layout().IngestDataFile(d)),
          std::string::npos)
          << s.message();
    }
    EXPECT_FALSE(store->Has(d));
    EXPECT_TRUE(List(store->layout().BlobAlgorithmDir("sha256")).empty());
    EXPECT_TRUE(List(store->layout().LocksDir()).empty());
    // A failed write keeps what was written before it (nothing unverified is visible).
    const int64_t kept = c.nth == 2 && c.op == Op::kWrite ? 2500 : 0;
    if (kept == 0) {
      EXPECT_TRUE(List(store->layout().IngestDir()).empty());
    }
    // The store still works once there is room, from where it stopped.
    auto writer = store->OpenWriter(d, static_cast<int64_t>(blob.size()));
    ASSERT_TRUE(writer.ok());
    EXPECT_EQ((*writer)->written(), kept);
    ASSERT_TRUE((*writer)->Write(std::string_view(blob).substr(kept)).ok());
    ASSERT_TRUE((*writer)->Commit().ok());
    EXPECT_EQ(*store->ReadBlob(d, blob.size()), blob);
  }
}

TEST(Store, ReadBlobDetectsDamage) {
  TempDir dir;
  auto store = MustOpen(dir.store());
  ASSERT_NE(store, nullptr);
  Digest d = DigestFor("good");
  ASSERT_TRUE(store->WriteBlob(d, "good").ok());
  std::string path = store->layout().BlobFile(d);
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  std::ofstream(path) << "evil";
  EXPECT_EQ(store->ReadBlob(d, 100).status().code(), StatusCode::kDataLoss);
}

TEST(Store, TwoThreadsWriteOneBlobOnce) {
  TempDir dir;
  auto store = MustOpen(dir.store());
  ASSERT_NE(store, nullptr);
  std::string blob = Pattern(size_t{256} * 1024, 't');
  std::vector<int> results(4, -1);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < results.size(); ++i) {
    threads.emplace_back([&, i] { results[i] = WriteSlowly(*store, blob); });
  }
  for (auto& t : threads) t.join();
  std::multiset<int> got(results.begin(), results.end());
  EXPECT_EQ(got.count(0), 1u) << "exactly one writer commits";
  EXPECT_EQ(got.count(1), results.size() - 1) << "the others find it committed";
  EXPECT_EQ(*store->ReadBlob(DigestFor(blob), blob.size()), blob);
  EXPECT_TRUE(List(store->layout().LocksDir()).empty());
}

TEST(Store, TwoProcessesWriteOneBlobOnce) {
  TempDir dir;
  ASSERT_NE(MustOpen(dir.store()), nullptr);
  std::string blob = Pattern(size_t{256} * 1024, 'p');
  std::vector<int> codes = RunInProcesses(2, [&](int) {
    auto store = Store::Open(dir.store());
    return store.ok() ? WriteSlowly(**store, blob) : 10;
  });
  std::multiset<int> got(codes.begin(), codes.end());
  EXPECT_EQ(got, (std::multiset<int>{0, 1}));
  auto store = MustOpen(dir.store());
  EXPECT_EQ(*store->ReadBlob(DigestFor(blob), blob.size()), blob);
  EXPECT_TRUE(List(store->layout().IngestDir()).empty());
}

TEST(Store, PutRefAddsAndReplaces) {
  TempDir dir;
  auto store = MustOpen(dir.store());
  ASSERT_NE(store, nullptr);
  std::string m1 = R"({"schemaVersion":2,"n":1})", m2 = R"({"schemaVersion":2,"n":2})";
  ASSERT_TRUE(store->WriteBlob(DigestFor(m1), m1).ok());
  ASSERT_TRUE(store->WriteBlob(DigestFor(m2), m2).ok());

  Descriptor d1 = ManifestDescriptor(m1);
  d1.platform = Platform{"linux", "amd64", "", "", {}};
  d1.annotations["org.example.note"] = "kept";
  ASSERT_TRUE(store->PutRef("127.0.0.1:5000/app:1", d1).ok());
  ExpectValidIndex(*store);
  ASSERT_TRUE(store->PutRef("127.0.0.1:5000/app:2", ManifestDescriptor(m2)).ok());
  ExpectValidIndex(*store);

  auto refs = store->ListRefs();
  ASSERT_TRUE(refs.ok()) << refs.status().ToString();
  ASSERT_EQ(refs->size(), 2u);
  EXPECT_EQ((*refs)[0].annotations.at(kRefNameAnnotation), "127.0.0.1:5000/app:1");
  EXPECT_EQ((*refs)[0].annotations.at("org.example.note"), "kept");
  EXPECT_EQ((*refs)[0].platform, d1.platform);
  EXPECT_EQ((*refs)[0].digest, DigestFor(m1));
  EXPECT_EQ((*refs)[0].size, static_cast<int64_t>(m1.size()));
  EXPECT_EQ((*refs)[0].media_type, kManifestType);
  EXPECT_EQ((*refs)[1].annotations.at(kRefNameAnnotation), "127.0.0.1:5000/app:2");

  // Replace app:1 in place.
  ASSERT_TRUE(store->PutRef("127.0.0.1:5000/app:1", ManifestDescriptor(m2)).ok());
  ExpectValidIndex(*store);
  refs = store->ListRefs();
  ASSERT_EQ(refs->size(), 2u);
  EXPECT_EQ((*refs)[0].digest, DigestFor(m2));
  EXPECT_FALSE((*refs)[0].platform.has_value());
  EXPECT_EQ((*refs)[0].annotations.count("org.example.note"), 0u);

  auto got = store->GetRef("127.0.0.1:5000/app:2");
  ASSERT_TRUE(got.ok());
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ((*got)->digest, DigestFor(m2));
  got = store->GetRef("127.0.0.1:5000/app:3");
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE(got->has_value());
  EXPECT_FALSE(stdfs::exists(store->layout().IndexTempFile()));
  EXPECT_TRUE(List(store->layout().LocksDir()).empty());
}

TEST(Store, RemoveRefRemovesOnlyTheRecord) {
  TempDir dir;
  auto store = MustOpen(dir.store());
  ASSERT_NE(store, nullptr);
  std::string m = R"({"schemaVersion":2,"n":1})";
  ASSERT_TRUE(store->WriteBlob(DigestFor(m), m).ok());
  ASSERT_TRUE(store->PutRef("127.0.0.1:5000/app:1", ManifestDescriptor(m)).ok());
  ASSERT_TRUE(store->PutRef("127.0.0.1:5000/app:2", ManifestDescriptor(m)).ok());
  ASSERT_TRUE(store->RemoveRef("127.0.0.1:5000/app:1").ok());
  ExpectValidIndex(*store);
  auto refs = store->ListRefs();
  ASSERT_TRUE(refs.ok());
  ASSERT_EQ(refs->size(), 1u);
  EXPECT_EQ((*refs)[0].annotations.at(kRefNameAnnotation), "127.0.0.1:5000/app:2");
  EXPECT_TRUE(store->Has(DigestFor(m)));  // blobs are gc's business
  Status again = store->RemoveRef("127.0.0.1:5000/app:1");
  EXPECT_EQ(again.code(), StatusCode::kNotFound);
  EXPECT_NE(again.message().find("127.0.0.1:5000/app:1"), std::string::npos) << again.message();
}

TEST(Store, GcLockExcludesPullsButNotEachOther) {
  TempDir dir;
  auto store = MustOpen(dir.store());
  ASSERT_NE(store, nullptr);
  auto pull1 = store->LockAgainstGc();
  auto pull2 = store->LockAgainstGc();  // pulls share it
  ASSERT_TRUE(pull1.ok() && pull2.ok());
  auto gc = store->LockForGc(0);
  EXPECT_EQ(gc.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(gc.status().message().find("gc.lock"), std::string::npos);
  *pull1 = Store::GcLock();
  EXPECT_FALSE(store->LockForGc(0).ok());  // one pull still holds it
  *pull2 = Store::GcLock();
  gc = store->LockForGc(0);
  ASSERT_TRUE(gc.ok()) << gc.status().ToString();
  // A pull waits for the gc to finish.
  std::atomic<bool> locked{false};
  std::thread pull([&] {
    auto l = store->LockAgainstGc();
    locked = l.ok();
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_FALSE(locked.load());
  *gc = Store::GcLock();
  pull.join();
  EXPECT_TRUE(locked.load());
  EXPECT_TRUE(stdfs::exists(store->layout().GcLockFile()));  // never removed
}

TEST(Store, PutRefRefuses) {
  TempDir dir;
  auto store = MustOpen(dir.store());
  ASSERT_NE(store, nullptr);
  std::string m = "{}";
  // The manifest blob must be in the store first.
  EXPECT_EQ(store->PutRef("app:1", ManifestDescriptor(m)).code(), StatusCode::kFailedPrecondition);
  ASSERT_TRUE(store->WriteBlob(DigestFor(m), m).ok());
  Descriptor wrong_size = ManifestDescriptor(m);
  wrong_size.size = 3;
  EXPECT_EQ(store->PutRef("app:1", wrong_size).code(), StatusCode::kFailedPrecondition);
  for (const char* bad : {"", "../app", "a b", "app:"}) {
    EXPECT_EQ(store->PutRef(bad, ManifestDescriptor(m)).code(), StatusCode::kInvalidArgument)
        << bad;
  }
  Descriptor no_type = ManifestDescriptor(m);
  no_type.media_type.clear();
  EXPECT_EQ(store->PutRef("app:1", no_type).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(store->ListRefs()->empty());
}

TEST(Store, PutRefKeepsForeignEntriesAndFields) {
  TempDir dir;
  auto store = MustOpen(dir.store());
  ASSERT_NE(store, nullptr);
  std::string m = "{}";
  ASSERT_TRUE(store->WriteBlob(DigestFor(m), m).ok());
  nlohmann::json index = nlohmann::json::parse(EmptyIndexJson());
  index["annotations"] = {{"org.example.tool", "other"}};
  nlohmann::json foreign = DescriptorToJson(ManifestDescriptor(m));
  foreign["annotations"] = {{kRefNameAnnotation, "other:1"}};
  foreign["org.example.extra"] = true;
  index["manifests"].push_back(foreign);
  std::ofstream(store->layout().IndexFile()) << index.dump();

  ASSERT_TRUE(store->PutRef("mine:1", ManifestDescriptor(m)).ok());
  auto after = nlohmann::json::parse(Slurp(store->layout().IndexFile()));
  EXPECT_EQ(after["annotations"]["org.example.tool"], "other");
  ASSERT_EQ(after["manifests"].size(), 2u);
  EXPECT_EQ(after["manifests"][0], foreign);
}

TEST(Store, ConcurrentPutRefFromProcessesLosesNothing) {
  TempDir dir;
  auto store = MustOpen(dir.store());
  ASSERT_NE(store, nullptr);
  std::string m = R"({"schemaVersion":2})";
  ASSERT_TRUE(store->WriteBlob(DigestFor(m), m).ok());
  constexpr int kProcesses = 6, kRefsEach = 10;
  std::vector<int> codes = RunInProcesses(kProcesses, [&](int p) {
    auto s = Store::Open(dir.store());
    if (!s.ok()) return 10;
    for (int i = 0; i < kRefsEach; ++i) {
      std::string name = "app:p" + std::to_string(p) + "-" + std::to_string(i);
      if (!(*s)->PutRef(name, ManifestDescriptor(m)).ok()) return 11;
      if (!(*s)->PutRef("shared:latest", ManifestDescriptor(m)).ok()) return 12;
    }
    return 0;
  });
  EXPECT_EQ(codes, std::vector<int>(kProcesses, 0));
  ExpectValidIndex(*store);
  auto refs = store->ListRefs();
  ASSERT_TRUE(refs.ok());
  std::multiset<std::string> names;
  for (const Descriptor& d : *refs) names.insert(d.annotations.at(kRefNameAnnotation));
  EXPECT_EQ(names.size(), static_cast<size_t>(kProcesses * kRefsEach + 1));
  EXPECT_EQ(names.count("shared:latest"), 1u);
  for (int p = 0; p < kProcesses; ++p) {
    for (int i = 0; i < kRefsEach; ++i) {
      EXPECT_EQ(names.count("app:p" + std::to_string(p) + "-" + std::to_string(i)), 1u);
    }
  }
}

TEST(Store, OpenConcurrently) {
  TempDir dir;
  std::vector<int> codes =
      RunInProcesses(6, [&](int) { return Store::Open(dir.store() + "/a/b").ok() ? 0 : 1; });
  EXPECT_EQ(codes, std::vector<int>(6, 0));
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      if (!Store::Open(dir.store() + "/c").ok()) ++failures;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  for (const char* sub : {"/a/b", "/c"}) {
    auto store = MustOpen(dir.store() + sub);
    ASSERT_NE(store, nullptr);
    ExpectValidIndex(*store);
    EXPECT_EQ(Slurp(store->layout().OciLayoutFile()), R"({"imageLayoutVersion":"1.0.0"})");
    EXPECT_FALSE(stdfs::exists(store->layout().IndexTempFile()));
    EXPECT_FALSE(stdfs::exists(store->layout().OciLayoutTempFile()));
  }
}

// Stops the disk after every possible number of changes during open + write + record, then
// "restarts": the store must open, be consistent (a visible blob is complete, a record points
// to a present blob) and work again.
TEST(Store, CrashAtAnyPointLeavesAConsistentStore) {
  const std::string blob = Pattern(3000, 'c');
  const Digest d = DigestFor(blob);
  const std::string ref = "example.com/app:1";
  Descriptor desc = ManifestDescriptor(blob);
  bool finished = false;
  for (int n = 0; !finished && n < 500; ++n) {
    SCOPED_TRACE("crash after " + std::to_string(n) + " changes");
    TempDir dir;
    FaultInjectingFileSystem fs;
    fs.CrashAfter(n);
    finished = [&] {
      auto store = Store::Open(dir.store(), &fs);
      return store.ok() && (*store)->WriteBlob(d, blob).ok() && (*store)->PutRef(ref, desc).ok();
    }();
    if (!finished) {
      EXPECT_TRUE(fs.crashed());
    }

    auto store = MustOpen(dir.store());
    ASSERT_NE(store, nullptr);
    ExpectValidIndex(*store);
    auto blobs = List(store->layout().BlobAlgorithmDir("sha256"));
    EXPECT_TRUE(blobs.empty() || blobs == std::set<std::string>{d.hex()});
    if (store->Has(d)) {
      EXPECT_EQ(*store->ReadBlob(d, blob.size()), blob);
    }
    auto got = store->GetRef(ref);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    // The record may be in place although PutRef did not return (crash after the rename).
    if (got->has_value()) {
      EXPECT_TRUE(store->Has((*got)->digest, (*got)->size));
    }
    if (finished) {
      EXPECT_TRUE(got->has_value());
    }

    ASSERT_TRUE(store->WriteBlob(d, blob).ok());
    ASSERT_TRUE(store->PutRef(ref, desc).ok());
    ASSERT_EQ(store->ListRefs()->size(), 1u);
    // No ingest data is left behind (an empty directory from a crash may be).
    for (const std::string& entry : List(store->layout().IngestDir())) {
      EXPECT_TRUE(List(store->layout().IngestDir() + "/" + entry).empty()) << entry;
    }
  }
  EXPECT_TRUE(finished);
}

// A power loss after every possible number of changes of writing a blob and its record: a
// visible blob is durable, and so is a record in index.json (a power loss cannot leave a blob
// that looks complete with bytes missing). Fails if the fsync before a rename is dropped or
// moved after it.
TEST(Store, VisibleBlobIsDurableAtAnyCrashPoint) {
  const std::string blob = Pattern(3000, 'd');
  const Digest d = DigestFor(blob);
  const std::string ref = "example.com/app:1";
  bool finished = false;
  int visible = 0;
  for (int n = 0; !finished && n < 500; ++n) {
    SCOPED_TRACE("power loss after " + std::to_string(n) + " changes");
    TempDir dir;
    FaultInjectingFileSystem fs;
    fs.CrashAfter(n);
    auto store = Store::Open(dir.store(), &fs);
    finished = store.ok() && (*store)->WriteBlob(d, blob).ok() &&
               (*store)->PutRef(ref, ManifestDescriptor(blob)).ok();
    for (const std::string& path :
         {Layout(dir.store()).BlobFile(d), Layout(dir.store()).IndexFile()}) {
      struct stat st;
      if (::lstat(path.c_str(), &st) != 0) continue;
      ++visible;
      EXPECT_FALSE(fs.unsynced(st.st_dev, st.st_ino)) << "visible but not durable: " << path;
    }
  }
  EXPECT_TRUE(finished);
  EXPECT_GT(visible, 0);
}

// ---- Permissions: the store is its owner's alone ----

constexpr uid_t kNobody = 65534;

// Runs fn in a child process as uid/gid 65534 without supplementary groups; returns its exit
// code (-1 if it could not become that user).
int AsNobody(const std::function<int()>& fn) {
  pid_t pid = ::fork();
  if (pid == 0) {
    if (::setgroups(0, nullptr) != 0 || ::setresgid(kNobody, kNobody, kNobody) != 0 ||
        ::setresuid(kNobody, kNobody, kNobody) != 0) {
      ::_exit(255);
    }
    ::_exit(fn());
  }
  int status = 0;
  if (pid < 0 || ::waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status) == 255 ? -1 : WEXITSTATUS(status);
}

mode_t ModeOf(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0 ? (st.st_mode & 07777) : 0;
}

TEST(StorePermissions, NewStoreIsPrivate) {
  TempDir dir;
  auto store = MustOpen(dir.store());
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->WriteBlob(DigestFor("x"), "x").ok());
  const Layout& l = store->layout();
  EXPECT_EQ(ModeOf(l.root()), 0700u);
  for (const std::string& d :
       {l.BlobsDir(), l.BlobAlgorithmDir("sha256"), l.IngestDir(), l.LocksDir()}) {
    EXPECT_EQ(ModeOf(d), 0700u) << d;
  }
  EXPECT_EQ(ModeOf(l.IndexFile()), 0600u);
  EXPECT_EQ(ModeOf(l.BlobFile(DigestFor("x"))), 0444u);
}

TEST(StorePermissions, OtherUsersCannotReachTheStore) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to act as another user";
  TempDir dir;
  ASSERT_EQ(::chmod(dir.path().c_str(), 0755), 0);
  auto store = MustOpen(dir.store());
  ASSERT_NE(store, nullptr);
  const Digest d = DigestFor("secret");
  ASSERT_TRUE(store->WriteBlob(d, "secret").ok());
  const std::string blob = store->layout().BlobFile(d), index = store->layout().IndexFile();
  int code = AsNobody([&] {
    if (::open(blob.c_str(), O_RDONLY) >= 0 || errno != EACCES) return 1;
    if (::open(index.c_str(), O_RDONLY) >= 0 || errno != EACCES) return 2;
    if (::opendir(dir.store().c_str()) != nullptr || errno != EACCES) return 3;
    return 0;
  });
  EXPECT_EQ(code, 0);
}

TEST(StorePermissions, LooseButSafeStoreIsTightened) {
  TempDir dir;
  ASSERT_TRUE(stdfs::create_directory(dir.store()));
  ASSERT_EQ(::chmod(dir.store().c_str(), 0755), 0);  // as older versions made it
  auto store = MustOpen(dir.store());
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(ModeOf(dir.store()), 0700u);
}

TEST(StorePermissions, WritableByOthersIsRefusedNamingThePath) {
  for (const char* sub : {"", "/ingest", "/locks", "/blobs", "/blobs/sha256"}) {
    SCOPED_TRACE(std::string("loose: STORE") + sub);
    TempDir dir;
    ASSERT_NE(MustOpen(dir.store()), nullptr);
    const std::string loose = dir.store() + sub;
    ASSERT_EQ(::chmod(loose.c_str(), 01777), 0);
    auto store = Store::Open(dir.store());
    ASSERT_FALSE(store.ok());
    EXPECT_EQ(store.status().code(), StatusCode::kFailedPrecondition);
    EXPECT_NE(store.status().message().find(loose + ": writable by group or others"),
              std::string::npos)
        << store.status().ToString();
    EXPECT_NE(store.status().message().find("chmod go-w"), std::string::npos);
  }
}

TEST(StorePermissions, StoreOfAnotherUserIsRefused) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to act as another user";
  // Another user created the store directory first (e.g. --store /tmp/x), and planted in it.
  TempDir dir;
  ASSERT_EQ(::chmod(dir.path().c_str(), 0777), 0);
  ASSERT_EQ(AsNobody([&] {
              if (::mkdir(dir.store().c_str(), 0755) != 0) return 1;
              return ::mkdir((dir.store() + "/ingest").c_str(), 0755) == 0 ? 0 : 2;
            }),
            0);
  auto store = Store::Open(dir.store());
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(store.status().message().find(dir.store() + ": owned by uid 65534"), std::string::npos)
      << store.status().ToString();
  // An own store with a directory another user owns inside is refused too.
  TempDir dir2;
  ASSERT_NE(MustOpen(dir2.store()), nullptr);
  ASSERT_EQ(::chown((dir2.store() + "/locks").c_str(), kNobody, kNobody), 0);
  store = Store::Open(dir2.store());
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.status().message().find(dir2.store() + "/locks: owned by uid 65534"),
            std::string::npos)
      << store.status().ToString();
}

TEST(StorePermissions, SymlinksInPlaceOfStoreDirectoriesAreRefused) {
  TempDir dir, elsewhere;
  // The store root itself.
  ASSERT_EQ(::symlink(elsewhere.path().c_str(), dir.store().c_str()), 0);
  auto opened = Store::Open(dir.store());
  ASSERT_FALSE(opened.ok());
  EXPECT_NE(opened.status().message().find("not a directory"), std::string::npos)
      << opened.status().ToString();
  // A planted ingest entry: a commit must not move a file from elsewhere into blobs/.
  TempDir dir2;
  auto store = MustOpen(dir2.store());
  ASSERT_NE(store, nullptr);
  const std::string blob = "planted?";
  const Digest d = DigestFor(blob);
  std::ofstream(elsewhere.path() + "/data") << blob;
  ASSERT_EQ(::symlink(elsewhere.path().c_str(), store->layout().IngestEntryDir(d).c_str()), 0);
  auto writer = store->OpenWriter(d, -1);
  ASSERT_FALSE(writer.ok());
  EXPECT_NE(writer.status().message().find("not a directory"), std::string::npos)
      << writer.status().ToString();
  EXPECT_TRUE(stdfs::exists(elsewhere.path() + "/data"));
  EXPECT_FALSE(store->Has(d));
  // A symlinked blobs/sha256.
  TempDir dir3;
  ASSERT_NE(MustOpen(dir3.store()), nullptr);
  stdfs::remove_all(dir3.store() + "/blobs/sha256");
  ASSERT_EQ(::symlink(elsewhere.path().c_str(), (dir3.store() + "/blobs/sha256").c_str()), 0);
  opened = Store::Open(dir3.store());
  ASSERT_FALSE(opened.ok());
  EXPECT_NE(opened.status().message().find(dir3.store() + "/blobs/sha256"), std::string::npos)
      << opened.status().ToString();
}

// Runs a shell command; returns its exit status and stdout+stderr.
std::pair<int, std::string> RunCommand(const std::string& command) {
  std::string out;
  FILE* p = ::popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) return {-1, ""};
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  int status = ::pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

// The store is an OCI image layout that other tools read as is.
TEST(Store, ReadableBySkopeoAndUmoci) {
  TempDir dir;
  auto store = MustOpen(dir.store());
  ASSERT_NE(store, nullptr);
  std::string layer(1024, '\0');  // an empty tar archive
  Digest layer_digest = DigestFor(layer);
  std::string config = R"({"architecture":"amd64","os":"linux","config":{},)"
                       R"("rootfs":{"type":"layers","diff_ids":[")" +
                       layer_digest.String() + R"("]}})";
  std::string manifest =
      R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",)"
      R"("config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")" +
      DigestFor(config).String() + R"(","size":)" + std::to_string(config.size()) +
      R"(},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":")" +
      layer_digest.String() + R"(","size":1024}]})";
  ASSERT_TRUE(store->WriteBlob(layer_digest, layer).ok());
  ASSERT_TRUE(store->WriteBlob(DigestFor(config), config).ok());
  ASSERT_TRUE(store->WriteBlob(DigestFor(manifest), manifest).ok());
  Descriptor desc = ManifestDescriptor(manifest);
  desc.platform = Platform{"linux", "amd64", "", "", {}};
  const std::string ref = "127.0.0.1:5000/app:1";
  ASSERT_TRUE(store->PutRef(ref, desc).ok());
  ASSERT_TRUE(store->PutRef("latest", desc).ok());

  if (RunCommand("command -v skopeo").first == 0) {
    for (const std::string& name : {ref, std::string("latest")}) {
      auto [code, out] = RunCommand("skopeo inspect 'oci:" + dir.store() + ":" + name + "'");
      EXPECT_EQ(code, 0) << out;
      EXPECT_NE(out.find(DigestFor(manifest).String()), std::string::npos) << out;
    }
  }
  if (RunCommand("command -v umoci").first == 0) {
    auto [code, out] = RunCommand("umoci ls --layout '" + dir.store() + "'");
    EXPECT_EQ(code, 0) << out;
    EXPECT_NE(out.find(ref), std::string::npos) << out;
    EXPECT_NE(out.find("latest"), std::string::npos) << out;
    std::tie(code, out) = RunCommand("umoci stat --image '" + dir.store() + ":" + ref + "'");
    EXPECT_EQ(code, 0) << out;
  }
}
}  // namespace
}  // namespace hoist::content
