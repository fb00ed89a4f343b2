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
#include <functional>
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

TEST(ReadFdToString, ReadsFromTheStartWhateverTheOffsetAndLimits) {
  TempDir dir;
  std::string path = dir.path() + "/f";
  std::ofstream(path) << "hello";
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(fd.valid());
  ASSERT_EQ(::lseek(fd.get(), 3, SEEK_SET), 3);
  auto r = ReadFdToString(fd.get(), 5, "f");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, "hello");
  EXPECT_EQ(::lseek(fd.get(), 0, SEEK_CUR), 3);  // its offset is untouched
  auto over = ReadFdToString(fd.get(), 4, "f");
  EXPECT_EQ(over.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(over.status().message().find("f: "), std::string::npos);
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
        auto lock = FileLock::Acquire(FileSystem::Default(), AT_FDCWD, path);
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
  auto lock = FileLock::Acquire(FileSystem::Default(), AT_FDCWD, path);
  ASSERT_TRUE(lock.ok());
  FileLock moved = std::move(*lock);
  EXPECT_TRUE(moved.held());
  EXPECT_FALSE(lock->held());
  EXPECT_TRUE(std::filesystem::exists(path));
  moved.Release();
  EXPECT_FALSE(moved.held());
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(FileLock, TryAcquireDoesNotWait) {
  TempDir dir;
  std::string path = dir.path() + "/x.lock";
  auto held = FileLock::Acquire(FileSystem::Default(), AT_FDCWD, path);
  ASSERT_TRUE(held.ok());
  auto busy = FileLock::TryAcquire(FileSystem::Default(), AT_FDCWD, path);
  ASSERT_TRUE(busy.ok()) << busy.status().ToString();
  EXPECT_FALSE(busy->held());
  held->Release();
  auto free = FileLock::TryAcquire(FileSystem::Default(), AT_FDCWD, path);
  ASSERT_TRUE(free.ok()) << free.status().ToString();
  EXPECT_TRUE(free->held());
}

TEST(FaultInjectingFileSystem, FailsTheNthCall) {
  TempDir dir;
  FaultInjectingFileSystem fs;
  fs.FailNth(FaultInjectingFileSystem::Op::kWrite, 2, ENOSPC);
  auto fd = fs.OpenAt(AT_FDCWD, dir.path() + "/f", O_WRONLY | O_CREAT, 0644);
  ASSERT_TRUE(fd.ok());
  EXPECT_TRUE(fs.Write(fd->get(), "a", 1).ok());
  Status s = fs.Write(fd->get(), "b", 1);
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s.ToString();
  EXPECT_TRUE(fs.Write(fd->get(), "c", 1).ok());
  EXPECT_EQ(Slurp(dir.path() + "/f"), "ac");
  EXPECT_EQ(fs.calls(FaultInjectingFileSystem::Op::kWrite), 3);
  EXPECT_EQ(fs.total_calls(), 4);
}

TEST(FaultInjectingFileSystem, CrashStopsEverything) {
  TempDir dir;
  FaultInjectingFileSystem fs;
  fs.CrashAfter(1);
  EXPECT_TRUE(fs.MkdirAt(AT_FDCWD, dir.path() + "/a", 0755).ok());
  EXPECT_FALSE(fs.crashed());
  EXPECT_FALSE(fs.MkdirAt(AT_FDCWD, dir.path() + "/b", 0755).ok());
  EXPECT_TRUE(fs.crashed());
  EXPECT_FALSE(fs.UnlinkAt(AT_FDCWD, dir.path() + "/a", AT_REMOVEDIR).ok());
  EXPECT_TRUE(std::filesystem::exists(dir.path() + "/a"));
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/b"));
}

// What a power loss could lose: a file written since its last fsync, a directory whose entries
// changed since its own; syncfs makes everything on the file system durable.
TEST(FaultInjectingFileSystem, TracksWhatIsNotDurable) {
  TempDir dir;
  FaultInjectingFileSystem fs;
  UniqueFd d(::open(dir.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ASSERT_TRUE(d.valid());
  auto unsynced = [&](int fd) {
    struct stat st;
    return ::fstat(fd, &st) == 0 && fs.unsynced(st.st_dev, st.st_ino);
  };
  auto f = fs.OpenAt(d.get(), "f", O_WRONLY | O_CREAT | O_EXCL, 0600);
  ASSERT_TRUE(f.ok());
  EXPECT_TRUE(unsynced(f->get()));
  EXPECT_TRUE(unsynced(d.get()));  // its new entry
  ASSERT_TRUE(fs.Fsync(f->get()).ok());
  EXPECT_FALSE(unsynced(f->get()));
  EXPECT_TRUE(unsynced(d.get()));
  ASSERT_TRUE(fs.Fsync(d.get()).ok());
  EXPECT_FALSE(unsynced(d.get()));
  ASSERT_TRUE(fs.Write(f->get(), "x", 1).ok());
  EXPECT_TRUE(unsynced(f->get()));
  EXPECT_FALSE(unsynced(d.get()));
  ASSERT_TRUE(fs.RenameAt(d.get(), "f", d.get(), "g").ok());
  EXPECT_TRUE(unsynced(d.get()));
  ASSERT_TRUE(fs.Syncfs(d.get()).ok());
  EXPECT_FALSE(unsynced(f->get()));
  EXPECT_FALSE(unsynced(d.get()));
  // A crash refuses the change, so nothing more is marked.
  fs.CrashAfter(0);
  EXPECT_FALSE(fs.Write(f->get(), "y", 1).ok());
  EXPECT_FALSE(unsynced(f->get()));
}

// Every call of the seam can be failed by the twin, which then leaves the disk as it was.
TEST(FaultInjectingFileSystem, CoversEveryCall) {
  using Op = FaultInjectingFileSystem::Op;
  TempDir dir;
  UniqueFd d(::open(dir.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ASSERT_TRUE(d.valid());
  std::ofstream(dir.path() + "/f") << "x";
  UniqueFd f(::open((dir.path() + "/f").c_str(), O_RDWR | O_CLOEXEC));
  ASSERT_TRUE(f.valid());
  struct stat before;
  ASSERT_EQ(::fstat(f.get(), &before), 0);
  const struct timespec ts[2] = {{1, 0}, {1, 0}};
  struct Case {
    Op op;
    std::function<Status(FileSystem&)> call;
  };
  const int fd = f.get(), at = d.get();
  std::vector<Case> cases = {
      {Op::kOpen,
       [&](FileSystem& fs) { return fs.OpenAt(at, "n", O_CREAT | O_WRONLY, 0600).status(); }},
      {Op::kMkdir, [&](FileSystem& fs) { return fs.MkdirAt(at, "n", 0700); }},
      {Op::kMknod, [&](FileSystem& fs) { return fs.MknodAt(at, "n", S_IFIFO | 0600, 0); }},
      {Op::kSymlink, [&](FileSystem& fs) { return fs.SymlinkAt("f", at, "n"); }},
      {Op::kLink, [&](FileSystem& fs) { return fs.LinkAt(at, "f", at, "n"); }},
      {Op::kRename, [&](FileSystem& fs) { return fs.RenameAt(at, "f", at, "n"); }},
      {Op::kUnlink, [&](FileSystem& fs) { return fs.UnlinkAt(at, "f", 0); }},
      {Op::kChown, [&](FileSystem& fs) { return fs.FchownAt(at, "f", 1, 1, AT_SYMLINK_NOFOLLOW); }},
      {Op::kChown, [&](FileSystem& fs) { return fs.Fchown(fd, 1, 1); }},
      {Op::kChmod, [&](FileSystem& fs) { return fs.FchmodAt(at, "f", 0600, 0); }},
      {Op::kChmod, [&](FileSystem& fs) { return fs.Fchmod(fd, 0600); }},
      {Op::kUtimens,
       [&](FileSystem& fs) { return fs.UtimensAt(at, "f", ts, AT_SYMLINK_NOFOLLOW); }},
      {Op::kUtimens, [&](FileSystem& fs) { return fs.Futimens(fd, ts); }},
      {Op::kWrite, [&](FileSystem& fs) { return fs.Write(fd, "abc", 3); }},
      {Op::kWrite, [&](FileSystem& fs) { return fs.Pwrite(fd, "abc", 3, 10); }},
      {Op::kTruncate, [&](FileSystem& fs) { return fs.Ftruncate(fd, 100); }},
      {Op::kFsync, [&](FileSystem& fs) { return fs.Fsync(fd); }},
      {Op::kFsync, [&](FileSystem& fs) { return fs.Syncfs(fd); }},
      {Op::kSetxattr, [&](FileSystem& fs) { return fs.Fsetxattr(fd, "user.t", "v", 1, 0); }},
      {Op::kRemovexattr, [&](FileSystem& fs) { return fs.Fremovexattr(fd, "user.t"); }},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    FaultInjectingFileSystem fs;
    fs.FailNth(cases[i].op, 1, EIO);
    errno = 0;
    Status s = cases[i].call(fs);
    EXPECT_EQ(errno, EIO) << "case " << i;
    EXPECT_FALSE(s.ok()) << "case " << i;
    EXPECT_NE(s.message().find("injected"), std::string::npos)
        << "case " << i << ": " << s.ToString();
    EXPECT_EQ(fs.calls(cases[i].op), 1) << "case " << i;
    struct stat after;
    ASSERT_EQ(::fstat(fd, &after), 0);
    EXPECT_EQ(after.st_size, before.st_size) << "case " << i;
    EXPECT_EQ(after.st_mode, before.st_mode) << "case " << i;
    EXPECT_EQ(after.st_mtim.tv_sec, before.st_mtim.tv_sec) << "case " << i;
    EXPECT_FALSE(std::filesystem::exists(std::filesystem::symlink_status(dir.path() + "/n")))
        << "case " << i;
  }
}

TEST(MakeDirAt, CreatesOpensAndRefusesSymlinks) {
  TempDir dir;
  UniqueFd d(::open(dir.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  auto made = MakeDirAt(FileSystem::Default(), d.get(), "a", 0700);
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  struct stat st;
  ASSERT_EQ(::fstat(made->get(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  EXPECT_TRUE(MakeDirAt(FileSystem::Default(), d.get(), "a", 0700).ok());  // exists: fine
  errno = 0;
  EXPECT_EQ(FileSystem::Default()->MkdirAt(d.get(), "a", 0700).code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(errno, EEXIST);  // the seam leaves errno as the call set it
  ASSERT_EQ(::symlink(dir.path().c_str(), (dir.path() + "/link").c_str()), 0);
  EXPECT_EQ(MakeDirAt(FileSystem::Default(), d.get(), "link", 0700).status().code(),
            StatusCode::kFailedPrecondition);
}

TEST(RemoveAllAt, RemovesTreeWithoutFollowingSymlinks) {
  TempDir dir, outside;
  std::ofstream(outside.path() + "/keep") << "k";
  std::filesystem::create_directories(dir.path() + "/t/a/b");
  std::ofstream(dir.path() + "/t/a/b/f") << "f";
  ASSERT_EQ(::symlink(outside.path().c_str(), (dir.path() + "/t/a/out").c_str()), 0);
  ASSERT_EQ(::chmod((dir.path() + "/t/a/b").c_str(), 0500), 0);  // not writable: made so
  UniqueFd d(::open(dir.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  Status s = RemoveAllAt(FileSystem::Default(), d.get(), "t");
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/t"));
  EXPECT_TRUE(std::filesystem::exists(outside.path() + "/keep"));
  EXPECT_TRUE(RemoveAllAt(FileSystem::Default(), d.get(), "t").ok());  // missing: fine
}

TEST(WriteFileAtomicallyAt, ReplacesInDirectoryFd) {
  TempDir dir;
  UniqueFd d(::open(dir.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ASSERT_TRUE(
      WriteFileAtomicallyAt(FileSystem::Default(), d.get(), "x", "x.tmp", "one", 0600).ok());
  ASSERT_TRUE(
      WriteFileAtomicallyAt(FileSystem::Default(), d.get(), "x", "x.tmp", "two", 0600).ok());
  EXPECT_EQ(Slurp(dir.path() + "/x"), "two");
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/x.tmp"));
}

}  // namespace
}  // namespace hoist
