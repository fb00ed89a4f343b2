#include "base/fs.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

namespace hoist {
namespace {

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl =
        std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/hoist-fs-test-XXXXXX";
    path_ = ::mkdtemp(tmpl.data()) != nullptr ? tmpl : "";
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(DirName, Table) {
  struct Case {
    const char* in;
    const char* want;
  };
  for (const Case& c : std::vector<Case>{{"a/b/c", "a/b"},
                                         {"c", "."},
                                         {"/c", "/"},
                                         {"/", "/"},
                                         {"a//b", "a"},
                                         {"a/b/", "a"},
                                         {"", "."},
                                         {"/x/y", "/x"}}) {
    EXPECT_EQ(DirName(c.in), c.want) << c.in;
  }
}

TEST(MakeDirs, CreatesParentsAndAcceptsExisting) {
  TempDir dir;
  std::string deep = dir.path() + "/a/b/c";
  ASSERT_TRUE(MakeDirs(FileSystem::Default(), deep, 0755).ok());
  EXPECT_TRUE(std::filesystem::is_directory(deep));
  EXPECT_TRUE(MakeDirs(FileSystem::Default(), deep, 0755).ok());
  std::ofstream(dir.path() + "/file") << "x";
  Status s = MakeDirs(FileSystem::Default(), dir.path() + "/file", 0755);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  ASSERT_EQ(::symlink(deep.c_str(), (dir.path() + "/link").c_str()), 0);
  EXPECT_FALSE(MakeDirs(FileSystem::Default(), dir.path() + "/link", 0755).ok());
}

TEST(WriteFileAtomically, WritesAndReplaces) {
  TempDir dir;
  std::string path = dir.path() + "/f", tmp = dir.path() + "/f.tmp";
  ASSERT_TRUE(WriteFileAtomically(FileSystem::Default(), path, tmp, "one", 0600).ok());
  EXPECT_EQ(Slurp(path), "one");
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  ASSERT_TRUE(WriteFileAtomically(FileSystem::Default(), path, tmp, "two", 0644).ok());
  EXPECT_EQ(Slurp(path), "two");
  EXPECT_FALSE(std::filesystem::exists(tmp));
}

TEST(WriteFileAtomically, FailureLeavesOriginal) {
  TempDir dir;
  std::string path = dir.path() + "/f", tmp = dir.path() + "/f.tmp";
  ASSERT_TRUE(WriteFileAtomically(FileSystem::Default(), path, tmp, "old", 0644).ok());
  for (auto op : {FaultInjectingFileSystem::Op::kWrite, FaultInjectingFileSystem::Op::kFsync,
                  FaultInjectingFileSystem::Op::kRename}) {
    FaultInjectingFileSystem fs;
    fs.FailNth(op, 1, ENOSPC);
    Status s = WriteFileAtomically(&fs, path, tmp, "new", 0644);
    EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s.ToString();
    EXPECT_EQ(Slurp(path), "old");
    EXPECT_FALSE(std::filesystem::exists(tmp));
  }
}

TEST(ReadFileToString, LimitsAndRefusals) {
  TempDir dir;
  std::string path = dir.path() + "/f";
  std::ofstream(path) << "hello";
  auto r = ReadFileToString(path, 5);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, "hello");
  EXPECT_EQ(ReadFileToString(path, 4).status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(ReadFileToString(dir.path() + "/missing", 10).status().code(), StatusCode::kNotFound);
  ASSERT_EQ(::symlink(path.c_str(), (dir.path() + "/link").c_str()), 0);
  EXPECT_FALSE(ReadFileToString(dir.path() + "/link", 10).ok());
  EXPECT_FALSE(ReadFileToString(dir.path(), 10).ok());
}

TEST(FileLock, ExcludesThreadsAndRemovesFile) {
  TempDir dir;
  std::string path = dir.path() + "/x.lock";
  std::atomic<int> inside{0};
  std::atomic<int> max_inside{0};
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20; ++i) {
        auto lock = FileLock::Acquire(FileSystem::Default(), path);
        if (!lock.ok()) {
          ++failures;
          continue;
        }
        int now = ++inside;
        int seen = max_inside.load();
        while (now > seen && !max_inside.compare_exchange_weak(seen, now)) {
        }
        std::this_thread::sleep_for(std::chrono::microseconds(200));
        --inside;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(max_inside.load(), 1);
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(FileLock, MoveKeepsOneHolder) {
  TempDir dir;
  std::string path = dir.path() + "/x.lock";
  auto lock = FileLock::Acquire(FileSystem::Default(), path);
  ASSERT_TRUE(lock.ok());
  FileLock moved = std::move(*lock);
  EXPECT_TRUE(moved.held());
  EXPECT_FALSE(lock->held());
  EXPECT_TRUE(std::filesystem::exists(path));
  moved.Release();
  EXPECT_FALSE(moved.held());
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(FaultInjectingFileSystem, FailsTheNthCall) {
  TempDir dir;
  FaultInjectingFileSystem fs;
  fs.FailNth(FaultInjectingFileSystem::Op::kWrite, 2, ENOSPC);
  auto fd = fs.Open(dir.path() + "/f", O_WRONLY | O_CREAT, 0644);
  ASSERT_TRUE(fd.ok());
  EXPECT_TRUE(fs.Write(*fd, "a", 1).ok());
  Status s = fs.Write(*fd, "b", 1);
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s.ToString();
  EXPECT_TRUE(fs.Write(*fd, "c", 1).ok());
  EXPECT_EQ(Slurp(dir.path() + "/f"), "ac");
  EXPECT_EQ(fs.calls(FaultInjectingFileSystem::Op::kWrite), 3);
  EXPECT_EQ(fs.total_calls(), 4);
}

TEST(FaultInjectingFileSystem, CrashStopsEverything) {
  TempDir dir;
  FaultInjectingFileSystem fs;
  fs.CrashAfter(1);
  EXPECT_TRUE(fs.Mkdir(dir.path() + "/a", 0755).ok());
  EXPECT_FALSE(fs.crashed());
  EXPECT_FALSE(fs.Mkdir(dir.path() + "/b", 0755).ok());
  EXPECT_TRUE(fs.crashed());
  EXPECT_FALSE(fs.Rmdir(dir.path() + "/a").ok());
  EXPECT_TRUE(std::filesystem::exists(dir.path() + "/a"));
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/b"));
}

}  // namespace
}  // namespace hoist
