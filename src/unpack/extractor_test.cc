#include "unpack/extractor.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "base/fs.h"
#include "gtest/gtest.h"
#include "unpack/path.h"

namespace hoist::unpack {
namespace {

namespace fs = std::filesystem;

// ---- Building entries ---------------------------------------------------------------------

// An entry and the bytes a regular file carries.
struct Item {
  TarEntry entry;
  std::string data;
};

Item Make(EntryType type, std::string path, uint32_t mode) {
  Item it;
  it.entry.type = type;
  it.entry.path = std::move(path);
  it.entry.mode = mode;
  it.entry.mtime_sec = 1'600'000'000;
  return it;
}
Item File(std::string path, std::string data = "", uint32_t mode = 0644) {
  Item it = Make(EntryType::kRegular, std::move(path), mode);
  it.entry.size = static_cast<int64_t>(data.size());
  it.data = std::move(data);
  return it;
}
Item Dir(std::string path, uint32_t mode = 0755) {
  return Make(EntryType::kDirectory, std::move(path), mode);
}
Item Symlink(std::string path, std::string target) {
  Item it = Make(EntryType::kSymlink, std::move(path), 0777);
  it.entry.linkname = std::move(target);
  return it;
}
Item Hardlink(std::string path, std::string target) {
  Item it = Make(EntryType::kHardlink, std::move(path), 0644);
  it.entry.linkname = std::move(target);
  return it;
}
Item Fifo(std::string path, uint32_t mode = 0640) {
  return Make(EntryType::kFifo, std::move(path), mode);
}
Item CharDev(std::string path, uint32_t major, uint32_t minor) {
  Item it = Make(EntryType::kCharDevice, std::move(path), 0666);
  it.entry.dev_major = major;
  it.entry.dev_minor = minor;
  return it;
}
// A whiteout marker as layers carry them: an empty regular file.
Item Whiteout(std::string path) { return File(std::move(path)); }
Item WithOwner(Item it, int64_t uid, int64_t gid) {
  it.entry.uid = uid;
  it.entry.gid = gid;
  return it;
}
Item WithMtime(Item it, int64_t sec) {
  it.entry.mtime_sec = sec;
  return it;
}
Item WithXattr(Item it, std::string name, std::string value) {
  it.entry.xattrs.emplace_back(std::move(name), std::move(value));
  return it;
}

// Feeds the entries as the tar reader would (data in chunks of `chunk` bytes), then Finish.
Status Feed(Extractor& x, const std::vector<Item>& items, size_t chunk = 3) {
  for (const Item& it : items) {
    Status s = x.OnEntry(it.entry);
    if (!s.ok()) return s;
    if (it.entry.type == EntryType::kRegular) {
      for (size_t off = 0; off < it.data.size(); off += chunk) {
        size_t n = std::min(chunk, it.data.size() - off);
        s = x.OnData(it.data.data() + off, n);
        if (!s.ok()) return s;
      }
    }
    s = x.OnEntryEnd();
    if (!s.ok()) return s;
  }
  return x.Finish();
}

// ---- Looking at the result ----------------------------------------------------------------

std::optional<struct stat> Lstat(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return std::nullopt;
  return st;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const std::string& path, const std::string& data, mode_t mode, time_t mtime) {
  std::ofstream(path, std::ios::binary) << data;
  ASSERT_EQ(chmod(path.c_str(), mode), 0);
  struct timespec ts[2] = {{mtime, 0}, {mtime, 0}};
  ASSERT_EQ(utimensat(AT_FDCWD, path.c_str(), ts, AT_SYMLINK_NOFOLLOW), 0);
}

// Everything observable about a file except its access time.
std::string Describe(const std::string& path) {
  auto st = Lstat(path);
  if (!st) return "missing";
  std::ostringstream out;
  out << std::oct << st->st_mode << std::dec << " " << st->st_uid << ":" << st->st_gid << " n"
      << st->st_nlink << " s" << st->st_size << " m" << st->st_mtim.tv_sec << "."
      << st->st_mtim.tv_nsec << " i" << st->st_ino;
  if (S_ISREG(st->st_mode)) out << " [" << ReadFile(path) << "]";
  if (S_ISLNK(st->st_mode)) out << " -> " << fs::read_symlink(path).string();
  return out.str();
}

// Every path under `base` except the subtree `skip`, described.
std::map<std::string, std::string> Snapshot(const std::string& base, const std::string& skip) {
  std::map<std::string, std::string> snap;
  snap[base] = Describe(base);
  for (auto it = fs::recursive_directory_iterator(base); it != fs::recursive_directory_iterator();
       ++it) {
    std::string p = it->path().string();
    if (p == skip) {
      it.disable_recursion_pending();
      continue;
    }
    snap[p] = Describe(p);
  }
  return snap;
}

bool IsRoot() { return geteuid() == 0; }

// Lets the owner into every directory below `path` (so a non-root cleanup can remove 0555
// directories), then removes it all. Never follows symlinks.
void RemoveTree(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(path, ec))) return;
  chmod(path.c_str(), 0700);
  for (auto it = fs::recursive_directory_iterator(path, ec);
       it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    if (it->is_directory(ec) && !it->is_symlink(ec)) chmod(it->path().c_str(), 0700);
  }
  fs::remove_all(path, ec);
}

// Host files that a breakout test names ("link/etc/passwd"). When running as root, the test
// process moves into a mount namespace of its own and bind-mounts each of them read-only onto
// itself, so that an extractor bug makes the test fail instead of clobbering the machine: the
// file cannot be removed (EBUSY) nor written (EROFS) through the bind mount.
const char* const kProtectedHostFiles[] = {"/etc/passwd"};

class HostFileProtection : public testing::Environment {
 public:
  void SetUp() override {
    if (geteuid() != 0) return;  // cannot write them anyway
    if (unshare(CLONE_NEWNS) != 0) return;
    if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return;
    for (const char* f : kProtectedHostFiles) {
      if (mount(f, f, nullptr, MS_BIND, nullptr) == 0) {
        mount(nullptr, f, nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY, nullptr);
      }
    }
  }
};
[[maybe_unused]] testing::Environment* const kHostFileProtection =
    testing::AddGlobalTestEnvironment(new HostFileProtection);

// The escape probes: names an escaping entry would create outside the test's directory.
const char* const kProbes[] = {"/tmp/hoist-extract-probe", "/hoist-extract-probe", "/outside",
                               "/etc/hoist-extract-probe"};

// ---- The fixture: a root, and an oracle directory beside it --------------------------------

class ExtractTest : public testing::TestWithParam<ResolveMethod> {
 public:
  void SetUp() override {
    if (GetParam() == ResolveMethod::kKernel && !KernelResolvesInRoot()) {
      GTEST_SKIP() << "openat2 not available";
    }
    for (const char* p : kProbes) ASSERT_FALSE(Lstat(p)) << p << " exists before the test";
    std::string tmpl = (fs::temp_directory_path() / "hoist-extract-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    base_ = tmpl;
    root_ = base_ + "/root";
    outside_ = base_ + "/outside";
    ASSERT_EQ(mkdir(outside_.c_str(), 0750), 0);
    WriteFile(outside_ + "/secret", "SECRET", 0640, 1'000'000);
    ASSERT_EQ(mkdir((outside_ + "/dir").c_str(), 0755), 0);
    WriteFile(outside_ + "/dir/inner", "INNER", 0600, 1'000'000);
    passwd_before_ = Describe("/etc/passwd");
    ResetRoot();
  }

  void TearDown() override {
    root_fd_.reset();
    if (!base_.empty()) RemoveTree(base_);
  }

  // Empties the root (a fresh directory) and takes the snapshot of everything outside it.
  void ResetRoot() {
    root_fd_.reset();
    RemoveTree(root_);
    ASSERT_EQ(mkdir(root_.c_str(), 0755), 0);
    root_fd_.reset(open(root_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    ASSERT_TRUE(root_fd_.valid());
    outside_before_ = Snapshot(base_, root_);
  }

  ExtractOptions Options(WhiteoutMode mode = WhiteoutMode::kApply) const {
    ExtractOptions o;
    o.whiteouts = mode;
    o.resolve = GetParam();
    return o;
  }

  // "@OUT@" in a name or link target stands for the oracle directory's absolute path.
  std::vector<Item> Expand(std::vector<Item> items) const {
    for (Item& it : items) {
      for (std::string* s : {&it.entry.path, &it.entry.linkname}) {
        size_t at = s->find("@OUT@");
        if (at != std::string::npos) s->replace(at, 5, outside_);
      }
    }
    return items;
  }

  Status Extract(const std::vector<Item>& items, ExtractOptions options, size_t chunk = 3) {
    Extractor x(root_fd_.get(), options);
    return Feed(x, Expand(items), chunk);
  }
  Status Extract(const std::vector<Item>& items) { return Extract(items, Options()); }

  // Nothing outside the root changed (content, mode, owner, mtime, link count), nothing new
  // appeared beside it, /etc/passwd is untouched and no probe name exists.
  void ExpectOutsideUnchanged() {
    EXPECT_EQ(Snapshot(base_, root_), outside_before_);
    EXPECT_EQ(Describe("/etc/passwd"), passwd_before_);
    for (const char* p : kProbes) EXPECT_FALSE(Lstat(p)) << p << " was created";
  }

  std::string In(const std::string& rel) const { return root_ + "/" + rel; }

  std::string base_, root_, outside_;
  UniqueFd root_fd_;
  std::map<std::string, std::string> outside_before_;
  std::string passwd_before_;
};

std::string MethodName(const testing::TestParamInfo<ResolveMethod>& info) {
  return info.param == ResolveMethod::kKernel ? "Openat2" : "Walk";
}

INSTANTIATE_TEST_SUITE_P(Resolve, ExtractTest,
                         testing::Values(ResolveMethod::kKernel, ResolveMethod::kWalk), MethodName);

// ---- Breakout attempts (table) ------------------------------------------------------------

struct BreakoutCase {
  const char* name;
  std::vector<Item> lower;          // a first layer, extracted before (kApply)
  std::vector<Item> layer;          // the hostile layer
  std::optional<StatusCode> error;  // nullopt: extraction succeeds
  std::function<void(const ExtractTest&, const std::string& root)> check;
};

bool SameInode(const std::string& a, const std::string& b) {
  auto sa = Lstat(a), sb = Lstat(b);
  return sa && sb && sa->st_dev == sb->st_dev && sa->st_ino == sb->st_ino;
}

std::vector<BreakoutCase> BreakoutCases() {
  using R = const std::string&;
  const auto kOk = std::nullopt;
  const auto kDataLoss = StatusCode::kDataLoss;
  auto file_is = [](std::string rel, std::string content) {
    return [rel, content](const ExtractTest&, R root) {
      EXPECT_EQ(ReadFile(root + "/" + rel), content) << rel;
      auto st = Lstat(root + "/" + rel);
      ASSERT_TRUE(st) << rel;
      EXPECT_TRUE(S_ISREG(st->st_mode)) << rel;
    };
  };
  return {
      {"dotdot_name",
       {},
       {File("../outside/secret", "PWNED")},
       kOk,
       file_is("outside/secret", "PWNED")},
      {"absolute_name",
       {},
       {File("/outside/secret", "PWNED")},
       kOk,
       file_is("outside/secret", "PWNED")},
      {"many_dotdots",
       {},
       {File("../../../../../../../../../tmp/hoist-extract-probe", "x")},
       kOk,
       file_is("tmp/hoist-extract-probe", "x")},
      {"dir_then_dotdot_dotdot",
       {},
       {File("a/../../outside/secret", "PWNED")},
       kOk,
       file_is("outside/secret", "PWNED")},
      {"absolute_dotdots",
       {},
       {File("/../../etc/hoist-extract-probe", "x")},
       kOk,
       file_is("etc/hoist-extract-probe", "x")},
      {"directory_named_outside",
       {},
       {Dir("../outside", 0777)},
       kOk,
       [](const ExtractTest&, R root) {
         auto st = Lstat(root + "/outside");
         ASSERT_TRUE(st);
         EXPECT_TRUE(S_ISDIR(st->st_mode));
         EXPECT_EQ(st->st_mode & 07777, 0777u);
       }},
      {"relative_symlink_to_outside_then_write",
       {},
       {Symlink("l", "../outside"), File("l/secret", "PWNED")},
       kOk,
       file_is("outside/secret", "PWNED")},
      {"absolute_symlink_to_outside_then_write",
       {},
       {Symlink("l", "@OUT@"), File("l/secret", "PWNED")},
       kOk,
       [](const ExtractTest& t, R root) {
         EXPECT_EQ(ReadFile(root + t.outside_ + "/secret"), "PWNED");
       }},
      {"symlink_to_slash_then_etc_passwd",
       {},
       {Symlink("l", "/"), File("l/etc/passwd", "PWNED")},
       kOk,
       file_is("etc/passwd", "PWNED")},
      {"symlink_to_slash_in_lower_layer",
       {{Symlink("l", "/")}},
       {File("l/etc/passwd", "PWNED")},
       kOk,
       file_is("etc/passwd", "PWNED")},
      {"two_hop_symlink_chain",
       {},
       {Symlink("a", "b"), Symlink("b", "../.."), File("a/outside/secret", "PWNED")},
       kOk,
       file_is("outside/secret", "PWNED")},
      {"symlink_chain_with_dotdots_inside",
       {},
       {Symlink("x", "../../../../outside/../outside"), File("x/secret", "PWNED")},
       kOk,
       file_is("outside/secret", "PWNED")},
      {"absolute_symlink_with_dotdots",
       {},
       {Symlink("l", "/../../../outside"), File("l/secret", "PWNED")},
       kOk,
       file_is("outside/secret", "PWNED")},
      {"directory_replaced_by_symlink_then_written_through",
       {},
       {Dir("d"), File("d/f", "1"), Symlink("d", "../outside"), File("d/secret", "PWNED")},
       kOk,
       [](const ExtractTest&, R root) {
         auto st = Lstat(root + "/d");
         ASSERT_TRUE(st);
         EXPECT_TRUE(S_ISLNK(st->st_mode));
         EXPECT_EQ(ReadFile(root + "/outside/secret"), "PWNED");
       }},
      {"absolute_symlink_means_inside_root",
       {},
       {Dir("data"), Symlink("abs", "/data"), File("abs/f", "x")},
       kOk,
       file_is("data/f", "x")},
      {"symlink_loop",
       {},
       {Symlink("a", "b"), Symlink("b", "a"), File("a/x", "1")},
       StatusCode::kInvalidArgument,
       nullptr},
      {"parent_is_a_file", {}, {File("f", "x"), File("f/g", "y")}, StatusCode::kNotFound, nullptr},
      {"symlink_created_with_dotdot_name",
       {},
       {Symlink("../../l", "@OUT@")},
       kOk,
       [](const ExtractTest& t, R root) {
         EXPECT_EQ(fs::read_symlink(root + "/l").string(), t.outside_);
       }},
      // Hardlinks.
      {"hardlink_to_dotdot_outside", {}, {Hardlink("h", "../outside/secret")}, kDataLoss, nullptr},
      {"hardlink_to_deep_dotdot_outside",
       {},
       {Hardlink("h", "../../../outside/secret")},
       kDataLoss,
       nullptr},
      {"hardlink_to_etc_passwd", {}, {Hardlink("h", "/etc/passwd")}, kDataLoss, nullptr},
      {"hardlink_to_absolute_outside", {}, {Hardlink("h", "@OUT@/secret")}, kDataLoss, nullptr},
      {"hardlink_to_nonexistent", {}, {Hardlink("h", "nothing/here")}, kDataLoss, nullptr},
      {"hardlink_to_symlink_links_the_symlink",
       {},
       {Symlink("s", "@OUT@/secret"), Hardlink("h", "s")},
       kOk,
       [](const ExtractTest&, R root) {
         auto st = Lstat(root + "/h");
         ASSERT_TRUE(st);
         EXPECT_TRUE(S_ISLNK(st->st_mode));
         EXPECT_TRUE(SameInode(root + "/h", root + "/s"));
       }},
      {"hardlink_through_symlinked_parent_to_outside",
       {},
       {Symlink("p", "../outside"), Hardlink("h", "p/secret")},
       kDataLoss,
       nullptr},
      {"hardlink_through_absolute_symlinked_parent",
       {},
       {Symlink("p", "@OUT@"), Hardlink("h", "p/secret")},
       kDataLoss,
       nullptr},
      {"hardlink_through_symlinked_parent_inside",
       {},
       {Dir("real"), File("real/f", "x"), Symlink("p", "/real"), Hardlink("h", "p/f")},
       kOk,
       [](const ExtractTest&, R root) { EXPECT_TRUE(SameInode(root + "/h", root + "/real/f")); }},
      {"hardlink_placed_through_symlinked_parent",
       {},
       {File("f", "x"), Symlink("p", "@OUT@"), Hardlink("p/h", "f")},
       kOk,
       [](const ExtractTest& t, R root) {
         EXPECT_TRUE(SameInode(root + t.outside_ + "/h", root + "/f"));
       }},
      {"hardlink_to_directory", {}, {Dir("d"), Hardlink("h", "d")}, kDataLoss, nullptr},
      {"hardlink_to_root", {}, {Hardlink("h", "./")}, kDataLoss, nullptr},
      {"hardlink_to_dotdot", {}, {Dir("d"), Hardlink("h", "d/..")}, kDataLoss, nullptr},
      {"hardlink_replacing_symlink_to_outside",
       {{File("f", "mine"), Symlink("h", "@OUT@/secret")}},
       {Hardlink("h", "f")},
       kOk,
       [](const ExtractTest&, R root) { EXPECT_TRUE(SameInode(root + "/h", root + "/f")); }},
      // Whiteouts.
      {"whiteout_empty_name", {}, {Whiteout(".wh.")}, kDataLoss, nullptr},
      {"whiteout_of_dot", {}, {Whiteout(".wh..")}, kDataLoss, nullptr},
      {"whiteout_of_dotdot", {}, {Whiteout(".wh...")}, kDataLoss, nullptr},
      {"whiteout_of_dotdot_in_subdir", {{Dir("d")}}, {Whiteout("d/.wh...")}, kDataLoss, nullptr},
      {"whiteout_with_dotdot_parent",
       {{File("secret", "lower")}},
       {Whiteout("../.wh.secret")},
       kOk,
       [](const ExtractTest&, R root) { EXPECT_FALSE(Lstat(root + "/secret")); }},
      {"whiteout_of_outside_by_dotdot", {}, {Whiteout("../outside/.wh.secret")}, kOk, nullptr},
      {"whiteout_of_symlink_removes_only_the_link",
       {{Symlink("s", "@OUT@")}},
       {Whiteout(".wh.s")},
       kOk,
       [](const ExtractTest&, R root) { EXPECT_FALSE(Lstat(root + "/s")); }},
      {"whiteout_of_relative_symlink_to_outside",
       {{Symlink("s", "../outside/secret")}},
       {Whiteout(".wh.s")},
       kOk,
       [](const ExtractTest&, R root) { EXPECT_FALSE(Lstat(root + "/s")); }},
      {"whiteout_through_symlinked_directory",
       {{Symlink("l", "@OUT@")}},
       {Whiteout("l/.wh.secret")},
       kOk,
       [](const ExtractTest&, R root) { EXPECT_TRUE(Lstat(root + "/l")); }},
      {"whiteout_through_relative_symlinked_directory",
       {{Dir("outside"), File("outside/secret", "lower"), Symlink("l", "../outside")}},
       {Whiteout("l/.wh.secret")},
       kOk,
       [](const ExtractTest&, R root) { EXPECT_FALSE(Lstat(root + "/outside/secret")); }},
      {"opaque_under_symlinked_directory",
       {{Symlink("l", "@OUT@")}},
       {Whiteout("l/.wh..wh..opq")},
       kOk,
       [](const ExtractTest&, R root) { EXPECT_TRUE(Lstat(root + "/l")); }},
      {"opaque_under_symlink_to_dotdot",
       {{File("lowerfile", "x"), Symlink("l", "..")}},
       {Whiteout("l/.wh..wh..opq")},
       kOk,
       [](const ExtractTest&, R root) { EXPECT_FALSE(Lstat(root + "/lowerfile")); }},
      {"whiteout_of_dir_holding_symlinks_to_outside",
       {{Dir("d"), Symlink("d/l", "@OUT@"), Symlink("d/m", "../../outside/dir")}},
       {Whiteout(".wh.d")},
       kOk,
       [](const ExtractTest&, R root) { EXPECT_FALSE(Lstat(root + "/d")); }},
      // The root itself.
      {"file_named_dot", {}, {File(".", "x")}, kDataLoss, nullptr},
      {"file_named_slash", {}, {File("/", "x")}, kDataLoss, nullptr},
      {"symlink_named_slash", {}, {Symlink("/", "@OUT@")}, kDataLoss, nullptr},
      {"symlink_named_dot_slash", {}, {Symlink("./", "/")}, kDataLoss, nullptr},
      {"hardlink_named_dot", {{File("f", "x")}}, {Hardlink(".", "f")}, kDataLoss, nullptr},
      {"fifo_named_dotdot_root", {}, {Fifo("..")}, kDataLoss, nullptr},
      {"file_named_dir_dotdot", {{Dir("a")}}, {File("a/..", "x")}, kDataLoss, nullptr},
      // Metadata calls that would follow a symlink.
      {"directory_over_symlink_to_outside",
       {{Symlink("d", "@OUT@")}},
       {WithMtime(WithOwner(Dir("d", 0777), 4242, 4242), 5)},
       kOk,
       [](const ExtractTest&, R root) {
         auto st = Lstat(root + "/d");
         ASSERT_TRUE(st);
         EXPECT_TRUE(S_ISDIR(st->st_mode));
       }},
      {"file_over_symlink_to_outside_file",
       {{Symlink("f", "@OUT@/secret")}},
       {WithOwner(File("f", "PWNED", 04777), 4242, 4242)},
       kOk,
       file_is("f", "PWNED")},
      {"symlink_over_symlink_to_outside",
       {{Symlink("s", "@OUT@/secret")}},
       {WithMtime(WithOwner(Symlink("s", "@OUT@/secret"), 4242, 4242), 5)},
       kOk,
       [](const ExtractTest&, R root) {
         auto st = Lstat(root + "/s");
         ASSERT_TRUE(st);
         EXPECT_EQ(st->st_mtim.tv_sec, 5);
       }},
      {"fifo_over_symlink_to_outside",
       {{Symlink("p", "@OUT@/secret")}},
       {Fifo("p", 0600)},
       kOk,
       [](const ExtractTest&, R root) {
         auto st = Lstat(root + "/p");
         ASSERT_TRUE(st);
         EXPECT_TRUE(S_ISFIFO(st->st_mode));
         EXPECT_EQ(st->st_mode & 07777, 0600u);
       }},
      {"file_replacing_dir_holding_symlinks_to_outside",
       {{Dir("d"), Symlink("d/l", "@OUT@"), Symlink("d/m", "../../outside/dir")}},
       {File("d", "x")},
       kOk,
       file_is("d", "x")},
      {"directory_entry_for_dir_inside_symlink",
       {{Symlink("l", "@OUT@")}},
       {Dir("l/dir", 0700)},
       kOk,
       [](const ExtractTest& t, R root) {
         auto st = Lstat(root + t.outside_ + "/dir");
         ASSERT_TRUE(st);
         EXPECT_TRUE(S_ISDIR(st->st_mode));
       }},
  };
}

TEST_P(ExtractTest, BreakoutsStayInsideTheRoot) {
  std::vector<BreakoutCase> cases = BreakoutCases();
  ASSERT_GE(cases.size(), 30u);
  for (const BreakoutCase& c : cases) {
    SCOPED_TRACE(c.name);
    ResetRoot();
    if (!c.lower.empty()) {
      Status s = Extract(c.lower);
      ASSERT_TRUE(s.ok()) << s.ToString();
    }
    Status s = Extract(c.layer);
    if (c.error) {
      EXPECT_EQ(s.code(), *c.error) << s.ToString();
    } else {
      EXPECT_TRUE(s.ok()) << s.ToString();
    }
    if (c.check) c.check(*this, root_);
    ExpectOutsideUnchanged();
  }
}

// ---- The root entry -----------------------------------------------------------------------

TEST_P(ExtractTest, RootDirectoryEntryOnlyUpdatesMetadata) {
  for (const char* name : {".", "/", "./", ""}) {
    SCOPED_TRACE(name);
    ResetRoot();
    Status s = Extract({WithMtime(Dir(name, 0750), 12345), File("f", "x")});
    ASSERT_TRUE(s.ok()) << s.ToString();
    auto st = Lstat(root_);
    ASSERT_TRUE(st);
    EXPECT_TRUE(S_ISDIR(st->st_mode));
    EXPECT_EQ(st->st_mode & 07777, 0750u);
    EXPECT_EQ(st->st_mtim.tv_sec, 12345);
    EXPECT_EQ(ReadFile(In("f")), "x");
  }
}

// ---- Replacing ------------------------------------------------------------------------------

TEST_P(ExtractTest, LaterEntriesReplaceEarlierOnes) {
  ASSERT_TRUE(Extract({Dir("d"), File("d/lower", "1"), Dir("d/sub"), File("d/sub/x", "2"),
                       File("f", "old"), Symlink("s", "f")})
                  .ok());
  Status s = Extract({Dir("d", 0700), File("d/new", "3"), File("f", "new"), Dir("s"),
                      File("d/sub", "now a file")});
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(ReadFile(In("d/lower")), "1");  // directories merge
  EXPECT_EQ(ReadFile(In("d/new")), "3");
  EXPECT_EQ(Lstat(In("d"))->st_mode & 07777, 0700u);
  EXPECT_EQ(ReadFile(In("f")), "new");
  EXPECT_TRUE(S_ISDIR(Lstat(In("s"))->st_mode));
  EXPECT_EQ(ReadFile(In("d/sub")), "now a file");
  ExpectOutsideUnchanged();
}

TEST_P(ExtractTest, HardlinkToLowerFileAndToItself) {
  ASSERT_TRUE(Extract({File("f", "data")}).ok());
  Status s = Extract({Hardlink("h", "f"), Hardlink("h", "f"), Hardlink("f", "f")});
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(SameInode(In("h"), In("f")));
  EXPECT_EQ(ReadFile(In("f")), "data");
}

// ---- Regular files -------------------------------------------------------------------------

TEST_P(ExtractTest, FileDataStreamsInAnyChunkSize) {
  std::string big(100'000, 'z');
  for (size_t i = 0; i < big.size(); i += 7) big[i] = static_cast<char>('a' + i % 26);
  for (size_t chunk : {1, 5, 4096, 1 << 20}) {
    SCOPED_TRACE(chunk);
    ResetRoot();
    Status s = Extract({File("a/b/c", big), File("empty")}, Options(), chunk);
    ASSERT_TRUE(s.ok()) << s.ToString();
    EXPECT_EQ(ReadFile(In("a/b/c")), big);
    EXPECT_EQ(ReadFile(In("empty")), "");
    EXPECT_EQ(Lstat(In("a"))->st_mode & 07777, 0755u);  // created parents
  }
}

TEST_P(ExtractTest, SizeMismatchIsDataLoss) {
  Extractor x(root_fd_.get(), Options());
  Item it = File("f", "abc");
  ASSERT_TRUE(x.OnEntry(it.entry).ok());
  ASSERT_TRUE(x.OnData("ab", 2).ok());
  Status s = x.OnEntryEnd();
  EXPECT_EQ(s.code(), StatusCode::kDataLoss) << s.ToString();
  EXPECT_NE(s.message().find("extract f"), std::string::npos) << s.ToString();
  // Sticky: every later call reports the same error.
  EXPECT_EQ(x.OnEntry(File("g").entry), s);
  EXPECT_EQ(x.Finish(), s);

  ResetRoot();
  Extractor y(root_fd_.get(), Options());
  ASSERT_TRUE(y.OnEntry(it.entry).ok());
  EXPECT_EQ(y.OnData("abcd", 4).code(), StatusCode::kDataLoss);
}

TEST_P(ExtractTest, TotalBytesCapIsResourceExhausted) {
  ExtractOptions o = Options();
  o.max_total_bytes = 10;
  EXPECT_EQ(Extract({File("a", "12345"), File("b", "12345")}, o).code(), StatusCode::kOk);
  ResetRoot();
  Status s = Extract({File("a", "12345"), File("b", "123456")}, o);
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s.ToString();
  // A header announcing too much is refused before anything is written.
  ResetRoot();
  Extractor x(root_fd_.get(), o);
  TarEntry huge = File("huge").entry;
  huge.size = 11;
  EXPECT_EQ(x.OnEntry(huge).code(), StatusCode::kResourceExhausted);
  EXPECT_FALSE(Lstat(In("huge")));
}

// Every change goes through ExtractOptions::fs: the data, the directories made for missing
// parents (by either resolver), links, nodes; the end of a sparse file is set by truncation.
TEST_P(ExtractTest, DiskChangesGoThroughTheFileSystem) {
  using Op = FaultInjectingFileSystem::Op;
  FaultInjectingFileSystem fs;
  ExtractOptions o = Options();
  o.fs = &fs;
  {
    Extractor x(root_fd_.get(), o);
    ASSERT_TRUE(Feed(x,
                     {File("a/b/c", "data"), Dir("d"), Symlink("d/l", "x"), Hardlink("h", "a/b/c"),
                      Fifo("p")},
                     3)
                    .ok());
    TarEntry e = File("sparse").entry;
    e.size = 10;
    ASSERT_TRUE(x.OnEntry(e).ok());
    ASSERT_TRUE(x.OnData("x", 1).ok());
    ASSERT_TRUE(x.OnHole(9).ok());
    ASSERT_TRUE(x.OnEntryEnd().ok());
    ASSERT_TRUE(x.Finish().ok());
  }
  EXPECT_EQ(fs.calls(Op::kWrite), 3);  // "dat", "a", "x"
  EXPECT_EQ(fs.calls(Op::kTruncate), 1);
  EXPECT_EQ(fs.calls(Op::kMkdir), 3);  // a, a/b, d
  EXPECT_EQ(fs.calls(Op::kSymlink), 1);
  EXPECT_EQ(fs.calls(Op::kLink), 1);
  EXPECT_EQ(fs.calls(Op::kMknod), 1);
  EXPECT_EQ(ReadFile(In("h")), "data");

  // ENOSPC while writing data reads plainly and names the file; the error is sticky.
  ResetRoot();
  fs.FailNth(Op::kWrite, 2, ENOSPC);
  Extractor y(root_fd_.get(), o);
  Status s = Feed(y, {File("one", "1"), File("two", "2"), File("three", "3")});
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s.ToString();
  EXPECT_EQ(s.message(), "extract two: no space left on device writing file data");
  EXPECT_EQ(y.Finish(), s);
  EXPECT_FALSE(Lstat(In("three")));

  // A missing parent that cannot be made fails the entry.
  ResetRoot();
  fs.FailNth(Op::kMkdir, 2, EIO);  // x/y
  Extractor z(root_fd_.get(), o);
  s = Feed(z, {File("x/y/z", "z")});
  EXPECT_EQ(s.code(), StatusCode::kInternal) << s.ToString();
  EXPECT_NE(s.message().find("extract x/y/z: mkdir /x/y"), std::string::npos) << s.ToString();
  EXPECT_FALSE(Lstat(In("x/y")));
}

// Holes are skipped, never written: a 100 MiB sparse file with a few bytes of data takes a few
// blocks, whether it ends in data or in a hole, and reads back as the expanded file.
TEST_P(ExtractTest, SparseHolesStayUnallocated) {
  constexpr int64_t kSize = 100 << 20;
  Extractor x(root_fd_.get(), Options());
  TarEntry e = File("sparse").entry;
  e.size = kSize;
  ASSERT_TRUE(x.OnEntry(e).ok());
  ASSERT_TRUE(x.OnData("head", 4).ok());
  ASSERT_TRUE(x.OnHole(kSize - 8).ok());
  ASSERT_TRUE(x.OnData("tail", 4).ok());
  ASSERT_TRUE(x.OnEntryEnd().ok());
  e.path = "ends-in-hole";
  ASSERT_TRUE(x.OnEntry(e).ok());
  ASSERT_TRUE(x.OnData("x", 1).ok());
  ASSERT_TRUE(x.OnHole(kSize - 1).ok());
  ASSERT_TRUE(x.OnEntryEnd().ok());
  ASSERT_TRUE(x.Finish().ok());
  EXPECT_EQ(x.bytes_written(), 2u * kSize);  // logical bytes: what a copy would write
  for (const char* rel : {"sparse", "ends-in-hole"}) {
    auto st = Lstat(In(rel));
    ASSERT_TRUE(st) << rel;
    EXPECT_EQ(st->st_size, kSize) << rel;
    EXPECT_LT(st->st_blocks * 512, 1 << 20) << rel << " is allocated";
  }
  std::string data = ReadFile(In("sparse"));
  ASSERT_EQ(data.size(), static_cast<size_t>(kSize));
  EXPECT_EQ(data.substr(0, 4), "head");
  EXPECT_EQ(data.substr(kSize - 4), "tail");
  EXPECT_EQ(data.find_first_not_of('\0', 4), static_cast<size_t>(kSize - 4));

  // A hole counts against the caps and the entry's size like data.
  ResetRoot();
  ExtractOptions o = Options();
  o.max_total_bytes = 1000;
  Extractor y(root_fd_.get(), o);
  e.size = 900;
  ASSERT_TRUE(y.OnEntry(e).ok());
  EXPECT_EQ(y.OnHole(901).code(), StatusCode::kDataLoss);
  ResetRoot();
  Extractor z(root_fd_.get(), o);
  ASSERT_TRUE(z.OnEntry(e).ok());
  ASSERT_TRUE(z.OnHole(900).ok());
  ASSERT_TRUE(z.OnEntryEnd().ok());
  e.path = "more";
  EXPECT_EQ(z.OnEntry(e).code(), StatusCode::kResourceExhausted);
}

// The image cap is shared by the layers of one image (several Extractors, possibly in
// parallel) and is checked as each file starts.
TEST_P(ExtractTest, ImageBudgetIsSharedByLayers) {
  ImageBudget budget(10);
  ExtractOptions o = Options();
  o.image_budget = &budget;
  ASSERT_TRUE(Extract({File("a", "123456")}, o).ok());
  EXPECT_EQ(budget.used(), 6u);
  Status s = Extract({File("b", "1234"), File("c", "1")}, o);
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s.ToString();
  EXPECT_NE(s.message().find("--max-image-size"), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("10 bytes"), std::string::npos) << s.ToString();
  EXPECT_FALSE(Lstat(In("c")));
  EXPECT_EQ(budget.used(), 10u);
}

// Hardlinks into lower layers are remembered, within bounds on their number and names.
TEST_P(ExtractTest, LowerHardlinksAreBounded) {
  ExtractOptions o = Options();
  o.defer_missing_hardlinks = true;
  o.max_lower_hardlinks = 3;
  o.max_lower_hardlink_bytes = 1000;
  {
    Extractor x(root_fd_.get(), o);
    ASSERT_TRUE(
        Feed(x, {Hardlink("a", "lower/1"), Hardlink("b", "lower/2"), Hardlink("c", "lower/3")})
            .ok());
    EXPECT_EQ(x.lower_hardlinks().size(), 3u);
    EXPECT_EQ(x.lower_hardlinks()[1], std::make_pair(std::string("b"), std::string("lower/2")));
  }
  ResetRoot();
  Status s = Extract({Hardlink("a", "lower/1"), Hardlink("b", "lower/2"), Hardlink("c", "lower/3"),
                      Hardlink("d", "lower/4")},
                     o);
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s.ToString();
  EXPECT_NE(s.message().find("more than 3 hardlinks"), std::string::npos) << s.ToString();
  // Names that resolve to a short path ("./" repeated) still count with their full length.
  ResetRoot();
  std::string padded;
  for (int i = 0; i < 300; ++i) padded += "./";
  s = Extract({Hardlink("a", padded + "lower/1"), Hardlink("b", padded + "lower/2")}, o);
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s.ToString();
  EXPECT_NE(s.message().find("exceed 1000 bytes"), std::string::npos) << s.ToString();
}

TEST_P(ExtractTest, SetuidAndSetgidBitsSurvive) {
  int64_t uid = IsRoot() ? 0 : geteuid();
  int64_t gid = IsRoot() ? 0 : getegid();
  Status s = Extract({WithOwner(File("suid", "x", 04755), uid, gid),
                      WithOwner(File("sgid", "x", 02755), uid, gid),
                      WithOwner(Dir("sticky", 01777), uid, gid)});
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(Lstat(In("suid"))->st_mode & 07777, 04755u);
  EXPECT_EQ(Lstat(In("sgid"))->st_mode & 07777, 02755u);
  EXPECT_EQ(Lstat(In("sticky"))->st_mode & 07777, 01777u);
}

TEST_P(ExtractTest, OwnerIsAppliedWhenRoot) {
  if (!IsRoot()) GTEST_SKIP() << "needs root";
  Status s =
      Extract({WithOwner(Dir("d"), 1234, 5678), WithOwner(File("d/f", "x", 04755), 1234, 5678),
               WithOwner(Symlink("d/s", "f"), 1234, 5678), WithOwner(Fifo("d/p"), 1234, 5678)});
  ASSERT_TRUE(s.ok()) << s.ToString();
  for (const char* rel : {"d", "d/f", "d/s", "d/p"}) {
    auto st = Lstat(In(rel));
    ASSERT_TRUE(st) << rel;
    EXPECT_EQ(st->st_uid, 1234u) << rel;
    EXPECT_EQ(st->st_gid, 5678u) << rel;
  }
  EXPECT_EQ(Lstat(In("d/f"))->st_mode & 07777, 04755u);  // chmod after chown
  EXPECT_EQ(Extract({WithOwner(File("bad"), -1, 0)}).code(), StatusCode::kDataLoss);
}

TEST_P(ExtractTest, ReadOnlyDirectoriesAreStillExtractable) {
  Status s = Extract({Dir("d", 0555), File("d/f", "x", 0444), Dir("d/sub", 0500),
                      File("d/sub/g", "y"), Dir("d/sub/deeper", 0000)});
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(Lstat(In("d"))->st_mode & 07777, 0555u);
  EXPECT_EQ(Lstat(In("d/sub"))->st_mode & 07777, 0500u);
  EXPECT_EQ(Lstat(In("d/sub/deeper"))->st_mode & 07777, 0000u);
  EXPECT_EQ(ReadFile(In("d/sub/g")), "y");
  EXPECT_EQ(Lstat(In("d/f"))->st_mode & 07777, 0444u);
}

TEST_P(ExtractTest, TimesAreAppliedDirectoriesLast) {
  Status s = Extract({WithMtime(Dir("d"), 1000), WithMtime(File("d/f", "x"), 2000),
                      WithMtime(Dir("d/e"), 3000), WithMtime(File("d/e/g", "y"), 4000),
                      WithMtime(Symlink("d/s", "f"), 5000), WithMtime(Fifo("d/p"), 6000)});
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(Lstat(In("d"))->st_mtim.tv_sec, 1000);
  EXPECT_EQ(Lstat(In("d/f"))->st_mtim.tv_sec, 2000);
  EXPECT_EQ(Lstat(In("d/e"))->st_mtim.tv_sec, 3000);
  EXPECT_EQ(Lstat(In("d/e/g"))->st_mtim.tv_sec, 4000);
  EXPECT_EQ(Lstat(In("d/s"))->st_mtim.tv_sec, 5000);
  EXPECT_EQ(Lstat(In("d/p"))->st_mtim.tv_sec, 6000);
}

TEST_P(ExtractTest, DeferredDirectoryMetadataSkipsReplacedDirectories) {
  // "d" is a directory at first, then a symlink to "e": its deferred 0500 must not land on e.
  Status s = Extract({Dir("d", 0500), Dir("e", 0755), Symlink("d", "e")});
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(S_ISLNK(Lstat(In("d"))->st_mode));
  EXPECT_EQ(Lstat(In("e"))->st_mode & 07777, 0755u);
}

// ---- Special files --------------------------------------------------------------------------

TEST_P(ExtractTest, FifosAlwaysDevicesOnlyAsRoot) {
  Extractor x(root_fd_.get(), Options());
  Status s = Feed(x, {Fifo("p", 0604), CharDev("null", 1, 3)});
  ASSERT_TRUE(s.ok()) << s.ToString();
  auto p = Lstat(In("p"));
  ASSERT_TRUE(p);
  EXPECT_TRUE(S_ISFIFO(p->st_mode));
  EXPECT_EQ(p->st_mode & 07777, 0604u);
  auto dev = Lstat(In("null"));
  if (IsRoot() && x.skipped_devices() == 0) {
    ASSERT_TRUE(dev);
    EXPECT_TRUE(S_ISCHR(dev->st_mode));
    EXPECT_EQ(major(dev->st_rdev), 1u);
    EXPECT_EQ(minor(dev->st_rdev), 3u);
  } else {
    EXPECT_FALSE(dev);
    EXPECT_EQ(x.skipped_devices(), 1u);
  }
}

TEST_P(ExtractTest, SymlinkTargetsAreStoredAsData) {
  Status s = Extract({Symlink("abs", "/etc/passwd"), Symlink("rel", "../../../x"),
                      Symlink("dangling", "nowhere")});
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(fs::read_symlink(In("abs")).string(), "/etc/passwd");
  EXPECT_EQ(fs::read_symlink(In("rel")).string(), "../../../x");
  EXPECT_EQ(fs::read_symlink(In("dangling")).string(), "nowhere");
  EXPECT_EQ(Extract({Symlink("empty", "")}).code(), StatusCode::kDataLoss);
}

// ---- xattrs ---------------------------------------------------------------------------------

TEST_P(ExtractTest, ForbiddenXattrsAreNeverApplied) {
  for (const char* name :
       {"trusted.overlay.opaque", "trusted.overlay.redirect", "trusted.x", "security.selinux"}) {
    SCOPED_TRACE(name);
    ResetRoot();
    Status s = Extract({WithXattr(File("f", "x"), name, "y"), WithXattr(Dir("d"), name, "y"),
                        WithXattr(Symlink("s", "f"), name, "y")});
    ASSERT_TRUE(s.ok()) << s.ToString();
    char buf[16];
    for (const char* path : {"f", "d", "s"}) {
      EXPECT_LT(lgetxattr(In(path).c_str(), name, buf, sizeof(buf)), 0) << path;
    }
  }
}

TEST_P(ExtractTest, UserXattrsAreAppliedOthersIgnored) {
  Extractor x(root_fd_.get(), Options());
  Status s = Feed(
      x, {WithXattr(WithXattr(File("f", "x"), "user.test", "value"), "system.other", "ignored"),
          WithXattr(Dir("d"), "user.dir", "v2")});
  ASSERT_TRUE(s.ok()) << s.ToString();
  char buf[64];
  ssize_t n = lgetxattr(In("f").c_str(), "user.test", buf, sizeof(buf));
  if (n < 0 && errno == ENOTSUP) GTEST_SKIP() << "no user xattrs on this file system";
  ASSERT_EQ(n, 5);
  EXPECT_EQ(std::string(buf, n), "value");
  n = lgetxattr(In("d").c_str(), "user.dir", buf, sizeof(buf));
  ASSERT_EQ(n, 2);
  EXPECT_EQ(x.skipped_xattrs(), 1u);  // system.other
}

TEST_P(ExtractTest, CapabilityXattrSurvivesOwnerAndMode) {
  if (!IsRoot()) GTEST_SKIP() << "needs root (CAP_SETFCAP)";
  // VFS_CAP_REVISION_2 with cap_net_bind_service (bit 10) permitted and effective.
  std::string cap(
      "\x01\x00\x00\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", 20);
  Status s = Extract(
      {WithOwner(WithXattr(File("bin", "x", 0755), "security.capability", cap), 1000, 1000)});
  ASSERT_TRUE(s.ok()) << s.ToString();
  char buf[64];
  ssize_t n = lgetxattr(In("bin").c_str(), "security.capability", buf, sizeof(buf));
  ASSERT_EQ(n, 20);
  EXPECT_EQ(std::string(buf, n), cap);
}

// A directory listed again takes the new entry's xattrs, and only those (as overlayfs, podman
// and umoci have it); xattrs outside the allowlist are not ours to remove.
TEST_P(ExtractTest, DirectoryListedAgainReplacesItsXattrs) {
  Status s = Extract({WithXattr(WithXattr(Dir("d"), "user.a", "1"), "user.b", "2"),
                      WithXattr(Dir("."), "user.root", "r")});
  ASSERT_TRUE(s.ok()) << s.ToString();
  char buf[16];
  if (lgetxattr(In("d").c_str(), "user.a", buf, sizeof(buf)) < 0 && errno == ENOTSUP) {
    GTEST_SKIP() << "no user xattrs on this file system";
  }
  s = Extract({WithXattr(Dir("d"), "user.b", "3"), Dir(".")});
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_LT(lgetxattr(In("d").c_str(), "user.a", buf, sizeof(buf)), 0);
  EXPECT_EQ(errno, ENODATA);
  ssize_t n = lgetxattr(In("d").c_str(), "user.b", buf, sizeof(buf));
  ASSERT_EQ(n, 1);
  EXPECT_EQ(buf[0], '3');
  EXPECT_LT(lgetxattr(root_.c_str(), "user.root", buf, sizeof(buf)), 0);
  // Listed twice in one layer: the later entry wins.
  s = Extract({WithXattr(Dir("d"), "user.c", "4"), Dir("d")});
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_LT(lgetxattr(In("d").c_str(), "user.c", buf, sizeof(buf)), 0);
  EXPECT_LT(lgetxattr(In("d").c_str(), "user.b", buf, sizeof(buf)), 0);
}

// ---- Whiteouts: kApply ----------------------------------------------------------------------

TEST_P(ExtractTest, WhiteoutRemovesLowerPaths) {
  ASSERT_TRUE(
      Extract({Dir("d"), File("d/a", "1"), Dir("d/sub"), File("d/sub/b", "2"), File("keep", "3")})
          .ok());
  Status s = Extract(
      {Whiteout("d/.wh.a"), Whiteout(".wh.d"), Whiteout(".wh.missing"), Whiteout("nodir/.wh.x")});
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_FALSE(Lstat(In("d")));
  EXPECT_EQ(ReadFile(In("keep")), "3");
  EXPECT_FALSE(Lstat(In("nodir")));  // whiteouts never create directories
}

TEST_P(ExtractTest, WhiteoutNeverDeletesThisLayersPaths) {
  ASSERT_TRUE(Extract({File("lower", "1")}).ok());
  Status s = Extract({File("f", "mine"), Whiteout(".wh.f"), Dir("d"), File("d/x", "mine"),
                      Whiteout(".wh.d"), Hardlink("lower", "f"), Whiteout(".wh.lower")});
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(ReadFile(In("f")), "mine");
  EXPECT_EQ(ReadFile(In("d/x")), "mine");
  EXPECT_TRUE(SameInode(In("lower"), In("f")));
}

TEST_P(ExtractTest, WhiteoutOfLowerDirKeepsWhatThisLayerPutInside) {
  ASSERT_TRUE(Extract({Dir("d"), File("d/lower", "1")}).ok());
  Status s = Extract({File("d/mine", "2"), Whiteout(".wh.d")});
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_FALSE(Lstat(In("d/lower")));
  EXPECT_EQ(ReadFile(In("d/mine")), "2");
}

TEST_P(ExtractTest, OpaqueBeforeOwnEntries) {
  ASSERT_TRUE(Extract({Dir("d"), File("d/lower", "1"), Dir("d/sub"), File("d/sub/x", "2"),
                       File("other", "3")})
                  .ok());
  Status s = Extract({Dir("d", 0700), Whiteout("d/.wh..wh..opq"), File("d/mine", "4")});
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_FALSE(Lstat(In("d/lower")));
  EXPECT_FALSE(Lstat(In("d/sub")));
  EXPECT_EQ(ReadFile(In("d/mine")), "4");
  EXPECT_EQ(ReadFile(In("other")), "3");
  EXPECT_EQ(Lstat(In("d"))->st_mode & 07777, 0700u);
}

TEST_P(ExtractTest, OpaqueAfterOwnEntriesRemovesOnlyLowerContent) {
  ASSERT_TRUE(Extract({Dir("d"), File("d/lower", "1"), Dir("d/sub"), File("d/sub/lower2", "2"),
                       Dir("d/gone"), File("d/gone/x", "3"), Symlink("d/link", "/")})
                  .ok());
  Status s = Extract(
      {File("d/own", "4"), File("d/sub/own2", "5"), Dir("d/newdir"), Whiteout("d/.wh..wh..opq")});
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_FALSE(Lstat(In("d/lower")));
  EXPECT_FALSE(Lstat(In("d/sub/lower2")));
  EXPECT_FALSE(Lstat(In("d/gone")));
  EXPECT_FALSE(Lstat(In("d/link")));
  EXPECT_EQ(ReadFile(In("d/own")), "4");
  EXPECT_EQ(ReadFile(In("d/sub/own2")), "5");
  EXPECT_TRUE(Lstat(In("d/newdir")));
  ExpectOutsideUnchanged();
}

TEST_P(ExtractTest, AufsMetadataIsIgnored) {
  Status s = Extract({Whiteout(".wh..wh.plnk"), Dir(".wh..wh.plnk/"), Whiteout(".wh..wh.aufs")});
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_FALSE(Lstat(In(".wh..wh.plnk")));
  EXPECT_FALSE(Lstat(In(".wh..wh.aufs")));
}

TEST_P(ExtractTest, WhiteoutDataIsIgnored) {
  ASSERT_TRUE(Extract({File("f", "x")}).ok());
  Status s = Extract({Whiteout(".wh.f"), File(".wh.g", "some bytes")});
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_FALSE(Lstat(In("f")));
  EXPECT_FALSE(Lstat(In(".wh.g")));
}

// The spec: a whiteout hides what lower layers hold at its name, never what its own layer
// writes there, in whatever order the entries come. A directory this layer lists again keeps
// its entry (and this layer's content) but loses the lower content.
TEST_P(ExtractTest, WhiteoutOfADirectoryThisLayerListsRemovesOnlyLowerContent) {
  const std::vector<std::vector<Item>> orders = {
      {Dir("d", 0700), File("d/y", "mine"), Whiteout(".wh.d")},
      {Dir("d", 0700), Whiteout(".wh.d"), File("d/y", "mine")},
      {Whiteout(".wh.d"), Dir("d", 0700), File("d/y", "mine")},
      {File("d/y", "mine"), Whiteout(".wh.d"), Dir("d", 0700)},
  };
  for (size_t i = 0; i < orders.size(); ++i) {
    SCOPED_TRACE(i);
    ResetRoot();
    ASSERT_TRUE(Extract({Dir("d"), File("d/x", "lower"), Dir("d/sub"), File("d/sub/z", "l")}).ok());
    Status s = Extract(orders[i]);
    ASSERT_TRUE(s.ok()) << s.ToString();
    EXPECT_FALSE(Lstat(In("d/x")));
    EXPECT_FALSE(Lstat(In("d/sub")));
    EXPECT_EQ(ReadFile(In("d/y")), "mine");
    EXPECT_EQ(Lstat(In("d"))->st_mode & 07777, 0700u);
  }
  // Listed, but with nothing inside: the directory stays, empty.
  ResetRoot();
  ASSERT_TRUE(Extract({Dir("d"), File("d/x", "lower")}).ok());
  ASSERT_TRUE(Extract({Dir("d"), Whiteout(".wh.d")}).ok());
  ASSERT_TRUE(Lstat(In("d")));
  EXPECT_FALSE(Lstat(In("d/x")));
}

// "dne/../.wh.etc" is the whiteout of "etc" (cleaned as containerd does), not a whiteout
// inside a missing directory that is silently skipped.
TEST_P(ExtractTest, UncleanWhiteoutNamesAreCleanedFirst) {
  ASSERT_TRUE(Extract({Dir("etc"), File("etc/passwd", "root"), Dir("a"), File("a/f", "1"),
                       File("keep", "k")})
                  .ok());
  Status s = Extract(
      {Whiteout("dne/../.wh.etc"), Whiteout("x/y/../../a/./.wh.f"), Whiteout("../../.wh.gone")});
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_FALSE(Lstat(In("etc")));
  EXPECT_FALSE(Lstat(In("a/f")));
  EXPECT_FALSE(Lstat(In("dne")));  // nothing created on the way
  EXPECT_FALSE(Lstat(In("x")));
  EXPECT_EQ(ReadFile(In("keep")), "k");
  ExpectOutsideUnchanged();

  ResetRoot();
  s = Extract({Whiteout("dne/../.wh.etc")}, Options(WhiteoutMode::kOciFiles));
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(Lstat(In(".wh.etc")));
  EXPECT_FALSE(Lstat(In("dne")));
  if (IsRoot()) {
    ResetRoot();
    s = Extract({Whiteout("dne/../.wh.etc")}, Options(WhiteoutMode::kOverlay));
    ASSERT_TRUE(s.ok()) << s.ToString();
    auto st = Lstat(In("etc"));
    ASSERT_TRUE(st);
    EXPECT_TRUE(S_ISCHR(st->st_mode));
    EXPECT_FALSE(Lstat(In("dne")));
  }
}

// ---- Whiteouts: kOciFiles and kOverlay ------------------------------------------------------

TEST_P(ExtractTest, OciFilesModeKeepsMarkersAsEmptyFiles) {
  Status s = Extract({Dir("d"), Whiteout("d/.wh.gone"), Whiteout("d/.wh..wh..opq"),
                      File("d/.wh.withdata", "ignored")},
                     Options(WhiteoutMode::kOciFiles));
  ASSERT_TRUE(s.ok()) << s.ToString();
  for (const char* rel : {"d/.wh.gone", "d/.wh..wh..opq", "d/.wh.withdata"}) {
    auto st = Lstat(In(rel));
    ASSERT_TRUE(st) << rel;
    EXPECT_TRUE(S_ISREG(st->st_mode)) << rel;
    EXPECT_EQ(st->st_size, 0) << rel;
  }
  EXPECT_EQ(Extract({Whiteout(".wh..")}, Options(WhiteoutMode::kOciFiles)).code(),
            StatusCode::kDataLoss);
}

TEST_P(ExtractTest, OverlayModeWritesDevicesAndXattrs) {
  if (!IsRoot()) GTEST_SKIP() << "overlay whiteouts need root";
  Status s = Extract({Dir("d"), File("d/mine", "x"), Whiteout("d/.wh.mine"), Whiteout("d/.wh.gone"),
                      Whiteout("d/.wh..wh..opq"), Whiteout("e/.wh.x")},
                     Options(WhiteoutMode::kOverlay));
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(ReadFile(In("d/mine")), "x");  // this layer's own file hides the lower one itself
  for (const char* rel : {"d/gone", "e/x"}) {
    auto st = Lstat(In(rel));
    ASSERT_TRUE(st) << rel;
    EXPECT_TRUE(S_ISCHR(st->st_mode)) << rel;
    EXPECT_EQ(st->st_rdev, makedev(0, 0)) << rel;
  }
  char buf[8];
  ssize_t n = lgetxattr(In("d").c_str(), "trusted.overlay.opaque", buf, sizeof(buf));
  ASSERT_EQ(n, 1);
  EXPECT_EQ(buf[0], 'y');
  EXPECT_FALSE(Lstat(In("d/.wh..wh..opq")));
}

// In a layer's own directory, a whiteout of a name this layer also fills makes that directory
// opaque (it hides the lower one and keeps this layer's content), whatever the order; a file of
// this layer hides the lower one by itself.
TEST_P(ExtractTest, OverlayWhiteoutKeepsThisLayersEntries) {
  if (!IsRoot()) GTEST_SKIP() << "overlay whiteouts need root";
  struct Case {
    const char* name;
    std::vector<Item> layer;
  };
  const Case cases[] = {
      {"file_below_then_whiteout", {File("d/y", "mine"), Whiteout(".wh.d")}},
      {"whiteout_then_directory", {Whiteout(".wh.d"), Dir("d", 0700), File("d/y", "mine")}},
      {"whiteout_then_file_below", {Whiteout(".wh.d"), File("d/y", "mine")}},
      {"whiteout_then_deeper_file", {Whiteout(".wh.d"), File("d/e/y", "mine")}},
      {"directory_then_whiteout", {Dir("d"), Whiteout(".wh.d"), File("d/y", "mine")}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    ResetRoot();
    Status s = Extract(c.layer, Options(WhiteoutMode::kOverlay));
    ASSERT_TRUE(s.ok()) << s.ToString();
    auto st = Lstat(In("d"));
    ASSERT_TRUE(st);
    EXPECT_TRUE(S_ISDIR(st->st_mode));
    char buf[8];
    ssize_t n = lgetxattr(In("d").c_str(), "trusted.overlay.opaque", buf, sizeof(buf));
    EXPECT_EQ(n, 1);
    std::string y = std::string(c.name) == "whiteout_then_deeper_file" ? "d/e/y" : "d/y";
    EXPECT_EQ(ReadFile(In(y)), "mine");
  }
  // What stood only for lower content goes with the whiteout: "e" and "g" are whiteouts
  // themselves. Whiteouts below a non-directory of this layer have nothing left to hide.
  ResetRoot();
  Status s = Extract(
      {Whiteout("e/.wh.x"), Whiteout(".wh.e"), File("f", "mine"), Whiteout(".wh.f"),
       Whiteout(".wh.g"), Whiteout("g/.wh.x"), Whiteout("g/.wh..wh..opq"), Whiteout("f/.wh.x")},
      Options(WhiteoutMode::kOverlay));
  ASSERT_TRUE(s.ok()) << s.ToString();
  for (const char* rel : {"e", "g"}) {
    auto st = Lstat(In(rel));
    ASSERT_TRUE(st) << rel;
    EXPECT_TRUE(S_ISCHR(st->st_mode)) << rel;
  }
  EXPECT_EQ(ReadFile(In("f")), "mine");
}

TEST_P(ExtractTest, OverlayModeStaysInsideTheRoot) {
  if (!IsRoot()) GTEST_SKIP() << "overlay whiteouts need root";
  ASSERT_TRUE(
      Extract({Symlink("l", "@OUT@"), Symlink("r", "../outside")}, Options(WhiteoutMode::kOverlay))
          .ok());
  Status s = Extract({Whiteout("l/.wh.secret"), Whiteout("r/.wh..wh..opq"),
                      Whiteout("../outside/.wh.dir"), Whiteout("r/.wh.dir")},
                     Options(WhiteoutMode::kOverlay));
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(S_ISCHR(Lstat(In("outside/dir"))->st_mode));
  EXPECT_TRUE(S_ISCHR(Lstat(In(outside_.substr(1) + "/secret"))->st_mode));
  ExpectOutsideUnchanged();
}

// ---- Resolution -----------------------------------------------------------------------------

// The whiteout names of the extractor and of the layer check, cleaned the same way.
TEST(CleanLexicallyTest, DotDotRemovesTheComponentBefore) {
  EXPECT_EQ(CleanLexically({"dne", "..", ".wh.etc"}), (std::vector<std::string>{".wh.etc"}));
  EXPECT_EQ(CleanLexically({"..", "..", "a", "b", ".."}), (std::vector<std::string>{"a"}));
  EXPECT_EQ(CleanLexically({}), (std::vector<std::string>{}));
}

TEST(SplitMemberPathTest, CleansOnlyLexically) {
  struct Case {
    const char* in;
    std::vector<std::string> out;
  } cases[] = {
      {"", {}},
      {"/", {}},
      {".", {}},
      {"./", {}},
      {"//././/", {}},
      {"a", {"a"}},
      {"/a/b/", {"a", "b"}},
      {"./a//./b", {"a", "b"}},
      {"../a", {"..", "a"}},
      {"a/../../b", {"a", "..", "..", "b"}},
      {"...", {"..."}},
      {".wh..wh..opq", {".wh..wh..opq"}},
  };
  for (const Case& c : cases) {
    auto r = SplitMemberPath(c.in);
    ASSERT_TRUE(r.ok()) << c.in;
    EXPECT_EQ(*r, c.out) << c.in;
  }
  EXPECT_EQ(SplitMemberPath(std::string("a\0b", 3)).status().code(), StatusCode::kDataLoss);
}

TEST(KernelResolutionTest, AvailableOnThisMachine) {
  // The fallback walk is tested everywhere; this records which path production takes here.
  if (!KernelResolvesInRoot()) GTEST_SKIP() << "kernel without openat2";
  SUCCEED();
}

// Both resolvers agree on where every name leads, for a tree full of tricky symlinks.
TEST_P(ExtractTest, ResolversAgree) {
  if (!KernelResolvesInRoot()) GTEST_SKIP() << "kernel without openat2";
  ASSERT_TRUE(Extract({Dir("a/b/c"), Symlink("a/up", ".."), Symlink("a/b/top", "/"),
                       Symlink("a/b/far", "../../../../a/b"), Symlink("loop1", "loop2"),
                       Symlink("loop2", "loop1"), Symlink("abs", "/a/b/c"), File("a/file", "x"),
                       Symlink("tofile", "a/file"), Symlink("dangling", "missing/dir")})
                  .ok());
  const char* names[] = {"",        "a",         "a/b/c",          "a/up",
                         "a/up/up", "a/b/top/a", "a/b/far/c",      "abs/../..",
                         "..",      "../../a/b", "loop1",          "a/file",
                         "tofile",  "dangling",  "a/b/c/../../..", "a/up/../../.."};
  for (const char* name : names) {
    SCOPED_TRACE(name);
    auto comps = SplitMemberPath(name);
    ASSERT_TRUE(comps.ok());
    auto k = OpenDirInRoot(root_fd_.get(), *comps, false, ResolveMethod::kKernel);
    auto w = OpenDirInRoot(root_fd_.get(), *comps, false, ResolveMethod::kWalk);
    ASSERT_EQ(k.ok(), w.ok()) << k.status().ToString() << " / " << w.status().ToString();
    if (!k.ok()) {
      EXPECT_EQ(k.status().code(), w.status().code());
      continue;
    }
    struct stat ks, ws;
    ASSERT_EQ(fstat(k->get(), &ks), 0);
    ASSERT_EQ(fstat(w->get(), &ws), 0);
    EXPECT_EQ(ks.st_ino, ws.st_ino);
  }
  ExpectOutsideUnchanged();
}

TEST_P(ExtractTest, MissingDirectoriesAreCreatedInsideTheRoot) {
  std::vector<std::string> comps = {"x", "..", "..", "y", "z"};
  auto r = OpenDirInRoot(root_fd_.get(), comps, true, GetParam());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(S_ISDIR(Lstat(In("x"))->st_mode));
  EXPECT_TRUE(S_ISDIR(Lstat(In("y/z"))->st_mode));
  auto missing =
      OpenDirInRoot(root_fd_.get(), std::vector<std::string>{"nope", "no"}, false, GetParam());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_FALSE(Lstat(In("nope")));
  ExpectOutsideUnchanged();
}

}  // namespace
}  // namespace hoist::unpack

namespace hoist::unpack {
namespace {

TEST(ExtractorTest, UnusableRootIsReportedByEveryCall) {
  Extractor bad_fd(-1, ExtractOptions{});
  EXPECT_FALSE(bad_fd.OnEntry(Dir("d").entry).ok());
  EXPECT_FALSE(bad_fd.Finish().ok());

  UniqueFd file(open(fs::temp_directory_path().c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
  ASSERT_TRUE(file.valid());
  Extractor not_dir(file.get(), ExtractOptions{});
  EXPECT_EQ(not_dir.OnEntry(Dir("d").entry).code(), StatusCode::kInvalidArgument);
}

TEST(ExtractorTest, DefaultOptionsExtract) {
  std::string tmpl = (fs::temp_directory_path() / "hoist-extract-XXXXXX").string();
  ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
  {
    UniqueFd root(open(tmpl.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    Extractor x(root.get(), ExtractOptions{});
    Status s = Feed(x, {Dir("etc"), File("etc/hostname", "box"), Symlink("link", "/etc"),
                        File("link/motd", "hi")});
    EXPECT_TRUE(s.ok()) << s.ToString();
    EXPECT_EQ(ReadFile(tmpl + "/etc/motd"), "hi");
    EXPECT_EQ(x.bytes_written(), 5u);
  }
  RemoveTree(tmpl);
}

}  // namespace
}  // namespace hoist::unpack
