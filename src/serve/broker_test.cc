// RunSeparated: the child runs as another user, cannot open the store, holds no descriptor of
// it, and gets from the parent only the records and the blobs they reference; the parent
// survives a child that sends it garbage. (The `hoist serve --user` end-to-end tests, with
// skopeo, podman and hoist nodes, are in tests/serve_test.cc.)
#include "serve/broker.h"

#include <dirent.h>
#include <fcntl.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "content/digester.h"
#include "image/store_fixture_test.h"

namespace hoist::serve {
namespace {

constexpr uid_t kNobody = 65534;

class BrokerTest : public image::StoreTest {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root";
    passwd* pw = getpwuid(kNobody);
    if (pw == nullptr) GTEST_SKIP() << "no user 65534";
    image::StoreTest::SetUp();
    img_ = testing::BuildImage(testing::Format::kOci, {{{"f", "hello"}}});
    other_ = testing::BuildImage(testing::Format::kOci, {{{"g", "other"}}});
    PutImage(img_);
    PutImage(other_);
    Record("127.0.0.1:5000/app:1", img_);
  }

  void Record(const std::string& name, const testing::BuiltImage& img) {
    Descriptor d;
    d.media_type = img.manifest_media_type;
    d.digest = *Digest::Parse(img.manifest_digest);
    d.size = static_cast<int64_t>(img.manifest.size());
    ASSERT_TRUE(store_->PutRef(name, d).ok());
  }

  const Identity nobody_{kNobody, kNobody};
  testing::BuiltImage img_, other_;
};

// The bytes of `fd` from the start.
std::string ReadFd(int fd) {
  std::string out;
  char buf[4096];
  ssize_t n;
  for (off_t off = 0; (n = pread(fd, buf, sizeof buf, off)) > 0; off += n) out.append(buf, n);
  return out;
}

// The names of the child's open descriptors.
std::vector<std::string> OpenFds() {
  std::vector<std::string> out;
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return {"(no /proc)"};
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.' || std::atoi(e->d_name) == dirfd(d)) continue;
    char target[512] = {};
    std::string link = std::string("/proc/self/fd/") + e->d_name;
    ssize_t n = readlink(link.c_str(), target, sizeof target - 1);
    out.push_back(std::string(e->d_name) + " " + (n > 0 ? target : "?"));
  }
  closedir(d);
  return out;
}

TEST_F(BrokerTest, ChildRunsAsTheUserAndGetsOnlyReferencedBlobs) {
  std::atomic<bool> stop{false};
  const std::string store_root = store_->layout().root();
  const std::string layer = img_.layers[0].digest, unreferenced = other_.layers[0].digest;
  bool prepared_as_root = false;
  auto code = RunSeparated(
      *store_, nobody_, stop,
      [&] {
        prepared_as_root = geteuid() == 0;
        return prepared_as_root ? OkStatus() : InternalError("prepare ran unprivileged");
      },
      [&](StoreView& view) {
        int failed = 0;
        auto check = [&](bool ok, int bit) { failed |= ok ? 0 : bit; };
        uid_t r, e, s;
        getresuid(&r, &e, &s);
        check(r == kNobody && e == kNobody && s == kNobody && getgid() == kNobody &&
                  getgroups(0, nullptr) == 0 && prepared_as_root,
              1);
        // The store is out of reach by path, and no descriptor of it is open.
        check(open(store_root.c_str(), O_RDONLY | O_DIRECTORY) < 0 && errno == EACCES, 2);
        for (const std::string& fd : OpenFds()) {
          check(fd.find(store_root) == std::string::npos &&
                    fd.find("/tmp/hoist-image-test-") == std::string::npos,
                4);
        }
        // The records, once; the same pointer when asked again.
        auto records = view.Records();
        check(records.ok() && (*records)->size() == 1 &&
                  (*records)->at(0).digest.String() == img_.manifest_digest,
              8);
        auto again = view.Records();
        check(again.ok() && records.ok() && *again == *records, 16);
        // A referenced blob comes as a read-only fd of its bytes; others are NotFound.
        auto blob = view.OpenBlob(*Digest::Parse(layer));
        check(blob.ok() && ReadFd(blob->get()) == img_.layers[0].data &&
                  (fcntl(blob->get(), F_GETFL) & O_ACCMODE) == O_RDONLY &&
                  write(blob->get(), "x", 1) < 0,
              32);
        auto other = view.OpenBlob(*Digest::Parse(unreferenced));
        check(!other.ok() && other.status().code() == StatusCode::kNotFound, 64);
        auto absent = view.OpenBlob(*Digest::Parse("sha256:" + std::string(64, 'a')));
        check(!absent.ok() && absent.status().code() == StatusCode::kNotFound, 128);
        return failed;
      });
  ASSERT_TRUE(code.ok()) << code.status().ToString();
  EXPECT_EQ(*code, 0) << "failed checks (bits): " << *code;
}

TEST_F(BrokerTest, ChildSeesRecordsChange) {
  // A directory the child may write to, where it says when it has looked once.
  auto flags = testing::TempDir::Create("hoist-broker-flags-");
  ASSERT_TRUE(flags.ok());
  ASSERT_EQ(chmod(flags->path().c_str(), 0777), 0);
  const std::string ready = flags->path() + "/ready";
  std::atomic<bool> stop{false};
  std::thread recorder([&] {
    if (testing::WaitFor([&] { return access(ready.c_str(), F_OK) == 0; }, 30)) {
      Record("127.0.0.1:5000/other:1", other_);
    }
  });
  const std::string layer = other_.layers[0].digest;
  auto code = RunSeparated(
      *store_, nobody_, stop, [] { return OkStatus(); },
      [&](StoreView& view) {
        auto before = view.OpenBlob(*Digest::Parse(layer));
        if (before.ok()) return 1;
        close(open(ready.c_str(), O_CREAT | O_WRONLY, 0600));
        bool seen = testing::WaitFor(
            [&] {
              auto records = view.Records();
              return records.ok() && (*records)->size() == 2;
            },
            30);
        if (!seen) return 2;
        auto after = view.OpenBlob(*Digest::Parse(layer));
        return after.ok() && ReadFd(after->get()) == other_.layers[0].data ? 0 : 3;
      });
  recorder.join();
  ASSERT_TRUE(code.ok()) << code.status().ToString();
  EXPECT_EQ(*code, 0);
}

TEST_F(BrokerTest, ParentAnswersGarbageWithErrorsAndHangsUpOnOversizedMessages) {
  std::atomic<bool> stop{false};
  const std::string store_root = store_->layout().root();
  auto code = RunSeparated(
      *store_, nobody_, stop, [] { return OkStatus(); },
      [&](StoreView&) {
        // Talk to the parent directly, as a child taken over by a request could.
        constexpr int kSock = 3;
        timeval limit{10, 0};  // an answer that never comes fails the test, not hangs it
        setsockopt(kSock, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
        auto ask = [&](const std::string& q, int* fd) {
          *fd = -1;
          if (send(kSock, q.data(), q.size(), 0) < 0) return std::string("(send failed)");
          char buf[4096];
          iovec iov{buf, sizeof buf};
          alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
          msghdr msg{};
          msg.msg_iov = &iov;
          msg.msg_iovlen = 1;
          msg.msg_control = control;
          msg.msg_controllen = sizeof control;
          ssize_t n = recvmsg(kSock, &msg, 0);
          if (n < 0) return std::string("(no answer)");
          if (n == 0) return std::string("(hung up)");
          if (CMSG_FIRSTHDR(&msg) != nullptr) std::memcpy(fd, CMSG_DATA(CMSG_FIRSTHDR(&msg)), 4);
          return std::string(buf, n);
        };
        int failed = 0, fd = -1;
        for (const std::string& q : std::vector<std::string>{
                 "B../../index.json", "Bsha256:../../../etc/passwd",
                 "B" + store_root + "/index.json", "Bsha256:" + std::string(64, 'A'),
                 "Bsha512:" + std::string(128, '0'), "X",
                 "Bsha256:" + other_.layers[0].digest.substr(7)}) {
          std::string a = ask(q, &fd);
          if (fd >= 0 || a.empty() || a[0] == '0') failed |= 1;
        }
        // The parent still answers properly.
        std::string ok = ask("B" + img_.layers[0].digest, &fd);
        if (ok != "0 " || fd < 0) failed |= 2;
        if (fd >= 0) close(fd);
        // A message over the limit: the parent stops answering.
        std::string huge(8192, 'B');
        if (ask(huge, &fd) != "(hung up)") failed |= 4;
        return failed;
      });
  ASSERT_TRUE(code.ok()) << code.status().ToString();
  EXPECT_EQ(*code, 0) << "failed checks (bits): " << *code;
}

TEST_F(BrokerTest, PrepareFailureIsReturnedAndStopEndsTheChild) {
  std::atomic<bool> stop{false};
  auto failed = RunSeparated(
      *store_, nobody_, stop, [] { return InvalidArgumentError("serve: bad flag"); },
      [](StoreView&) { return 0; });
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(failed.status().message(), "serve: bad flag");

  stop = true;  // asked to stop from the start: the child is sent SIGTERM
  auto stopped = RunSeparated(
      *store_, nobody_, stop, [] { return OkStatus(); },
      [](StoreView&) {
        for (int i = 0; i < 600; ++i) usleep(100 * 1000);  // at most a minute
        return 7;
      });
  ASSERT_FALSE(stopped.ok());
  EXPECT_NE(stopped.status().message().find("signal 15"), std::string::npos)
      << stopped.status().message();
}

TEST(IdentityTest, ParsesUsersAndGroupsAndRefusesRoot) {
  if (getpwuid(kNobody) == nullptr || getpwnam("nobody") == nullptr) GTEST_SKIP() << "no nobody";
  auto by_name = ParseIdentity("nobody");
  ASSERT_TRUE(by_name.ok()) << by_name.status().ToString();
  EXPECT_EQ(by_name->uid, kNobody);
  EXPECT_EQ(by_name->gid, getpwnam("nobody")->pw_gid);
  auto numbers = ParseIdentity("65534:65533");
  ASSERT_TRUE(numbers.ok());
  EXPECT_EQ(numbers->uid, kNobody);
  EXPECT_EQ(numbers->gid, 65533u);
  auto unknown_uid = ParseIdentity("4000000:4000000");
  ASSERT_TRUE(unknown_uid.ok());
  EXPECT_EQ(unknown_uid->uid, 4000000u);
  for (const char* root : {"root", "0", "0:65534", "nobody:0", "nobody:root", "65534:0"}) {
    auto r = ParseIdentity(root);
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << root;
    EXPECT_NE(r.status().message().find("unprivileged"), std::string::npos) << root;
  }
  for (const char* bad : {"", ":", "nobody:", ":nobody", "4000000", "99999999999999999999"}) {
    EXPECT_EQ(ParseIdentity(bad).status().code(), StatusCode::kInvalidArgument) << bad;
  }
  auto missing = ParseIdentity("no-such-user-xyz");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("\"no-such-user-xyz\""), std::string::npos);
  EXPECT_EQ(ParseIdentity("nobody:no-such-group-xyz").status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace hoist::serve
