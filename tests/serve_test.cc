// `hoist serve` end to end: a node pulls an image from the real registry into its store and
// serves it on a free loopback port; skopeo, a second hoist node (the first one as its
// registries.conf mirror) and podman read it back; hostile requests are refused with the
// distribution spec's error JSON. With --user (as root), the same clients through a child
// running as `nobody`, whose credentials, descriptors and life the tests read in /proc. Every
// server is a `hoist serve` process stopped by its PID.
#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <thread>

#include "base/strings.h"
#include "base/unique_fd.h"
#include "support/http_client.h"
#include "support/image_builder.h"
#include "support/process.h"
#include "support/registry.h"
#include "support/tls.h"

namespace hoist {
namespace {

namespace fs = std::filesystem;
using testing::CliRun;
using testing::TestRegistry;
using testing::WriteFile;

constexpr char kRepo[] = "serve/app";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Sends `request` as is (no URL normalization, unlike curl) to 127.0.0.1:port and returns
// everything the server answered before closing (≤ 4 MiB, ≤ 10 s).
std::string RawRequest(int port, const std::string& request) {
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return "";
  timeval tv{10, 0};
  setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return "";
  size_t sent = 0;
  while (sent < request.size()) {
    ssize_t n = send(fd.get(), request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;  // the server may answer and close before reading everything
    sent += static_cast<size_t>(n);
  }
  std::string out;
  char buf[65536];
  while (out.size() < (4u << 20)) {
    ssize_t n = recv(fd.get(), buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

// True when 127.0.0.1:port accepts a connection (the server listens once it is started).
bool CanConnect(int port) {
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return fd.valid() && connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
}

// The status code of a raw answer ("HTTP/1.1 404 Not Found" → 404); 0 if none.
int StatusOf(const std::string& answer) {
  if (answer.rfind("HTTP/1.", 0) != 0 || answer.size() < 12) return 0;
  return std::atoi(answer.substr(9, 3).c_str());
}

std::string Get(const std::string& path) {
  return "GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
}

// A process as /proc shows it: its id and start time (together, not reused), parent, state.
struct Proc {
  pid_t pid = -1;
  pid_t ppid = -1;
  char state = 0;
  unsigned long long start = 0;
};

// /proc/<pid>/stat read; nullopt when there is no such process.
std::optional<Proc> ReadProc(pid_t pid) {
  std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  size_t paren = stat.rfind(')');  // the command name may hold spaces and parentheses
  if (paren == std::string::npos) return std::nullopt;
  std::istringstream fields(stat.substr(paren + 1));
  Proc p;
  p.pid = pid;
  std::string skip;
  fields >> p.state >> p.ppid;
  for (int i = 5; i < 22; ++i) fields >> skip;  // to field 22, the start time
  fields >> p.start;
  if (!fields) return std::nullopt;
  return p;
}

// Every process there is.
std::vector<Proc> Processes() {
  std::vector<Proc> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    if (auto p = ReadProc(std::stoi(name))) out.push_back(*p);
  }
  return out;
}

// Every process whose parent is `parent`.
std::vector<Proc> ChildrenOf(pid_t parent) {
  std::vector<Proc> out;
  for (const Proc& p : Processes()) {
    if (p.ppid == parent) out.push_back(p);
  }
  return out;
}

// True once `p` has exited: gone, its id reused, or every thread of it a zombie (nobody may
// reap an orphan here; the first thread can be one while the others still hold its files).
bool Exited(const Proc& p) {
  auto now = ReadProc(p.pid);
  if (!now || now->start != p.start) return true;
  std::error_code ec;
  for (const auto& task : fs::directory_iterator("/proc/" + std::to_string(p.pid) + "/task", ec)) {
    std::string stat = ReadFile(task.path().string() + "/stat");
    size_t paren = stat.rfind(')');
    if (paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] != 'Z' &&
        stat[paren + 2] != 'X') {
      return false;
    }
  }
  return true;
}

// The values of a line of /proc/<pid>/status ("Uid" → real, effective, saved, fs).
std::vector<std::string> StatusField(pid_t pid, const std::string& key) {
  std::istringstream status(ReadFile("/proc/" + std::to_string(pid) + "/status"));
  for (std::string line; std::getline(status, line);) {
    if (line.rfind(key + ":", 0) != 0) continue;
    std::istringstream values(line.substr(key.size() + 1));
    std::vector<std::string> out;
    for (std::string v; values >> v;) out.push_back(v);
    return out;
  }
  return {"no " + key};
}

// The processes that have `arg` on their command line (a server's unique --listen address:
// a forked child keeps its parent's).
std::vector<Proc> ProcessesWithArg(const std::string& arg) {
  std::vector<Proc> out;
  for (const Proc& p : Processes()) {
    std::string cmdline = ReadFile("/proc/" + std::to_string(p.pid) + "/cmdline");
    if (cmdline.find(std::string(1, '\0') + arg + '\0') != std::string::npos && !Exited(p)) {
      out.push_back(p);
    }
  }
  return out;
}

// The exit of our child `pid` once it has exited, without reaping it (its ChildProcess will).
std::optional<siginfo_t> PeekExit(pid_t pid) {
  siginfo_t info{};
  if (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) != 0 ||
      info.si_pid != pid) {
    return std::nullopt;
  }
  return info;
}

// Mode, owner and group of every file of the tree under `root`.
std::map<std::string, std::string> Modes(const std::string& root) {
  std::map<std::string, std::string> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) != 0) continue;
    out[it->path()] = std::to_string(st.st_mode) + " " + std::to_string(st.st_uid) + ":" +
                      std::to_string(st.st_gid);
  }
  return out;
}

// A running `hoist serve`: its port and access log; stopped by its PID on destruction.
struct Served {
  int port = 0;
  std::string log;
  std::optional<testing::ChildProcess> child;
  std::string host() const { return "127.0.0.1:" + std::to_string(port); }
  std::string url() const { return "http://" + host(); }
};

class ServeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!TestRegistry::Available()) GTEST_SKIP() << "docker-registry not installed";
    auto dir = testing::TempDir::Create("hoist-serve-");
    ASSERT_TRUE(dir.ok());
    dir_.emplace(std::move(dir).value());
    auto up = TestRegistry::Start();
    ASSERT_TRUE(up.ok()) << up.status().message();
    upstream_ = std::move(up).value();
    std::vector<std::vector<testing::TarEntry>> layers;
    for (int i = 0; i < 3; ++i) {
      layers.push_back({{"data/", "", '5'},
                        {"data/part" + std::to_string(i), testing::RandomBytes(300 << 10, i + 7)}});
    }
    image_ = testing::BuildImage(testing::Format::kOci, layers);
    ASSERT_TRUE(testing::PushImage(upstream_->host(), kRepo, "1", image_).ok());
    ref_ = upstream_->host() + "/" + kRepo + ":1";
    store_ = dir_->path() + "/store";
    fs::create_directories(dir_->path() + "/home");
    ASSERT_TRUE(WriteFile(dir_->path() + "/registries.conf", "").ok());
    CliRun pull = Hoist(store_, dir_->path(), {"pull", "-q", ref_});
    ASSERT_EQ(pull.exit_code, 0) << pull.out << pull.err;
  }

  // `hoist --store STORE ARGS` with HOME and registries.conf of `dir`.
  CliRun Hoist(const std::string& store, const std::string& dir, std::vector<std::string> args) {
    std::vector<std::string> argv = {"-i",
                                     "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
                                     "HOME=" + dir + "/home",
                                     "HOIST_REGISTRIES_CONF=" + dir + "/registries.conf",
                                     HOIST_CLI,
                                     "--store",
                                     store};
    argv.insert(argv.end(), args.begin(), args.end());
    return testing::RunCli("/usr/bin/env", argv, dir);
  }

  // Starts `hoist serve` on a free port with `flags`, and waits until /v2/ answers.
  void Serve(Served* s, const std::vector<std::string>& flags = {}) {
    for (int attempt = 0; attempt < 3; ++attempt) {
      auto port = testing::PickFreePort();
      ASSERT_TRUE(port.ok());
      s->port = *port;
      s->log = dir_->path() + "/access-" + std::to_string(*port) + ".log";
      std::vector<std::string> argv = {HOIST_CLI,  "--store", store_,         "serve",
                                       "--listen", s->host(), "--access-log", s->log};
      argv.insert(argv.end(), flags.begin(), flags.end());
      auto child = testing::ChildProcess::Spawn(argv, dir_->path() + "/serve.out");
      ASSERT_TRUE(child.ok()) << child.status().message();
      s->child.emplace(std::move(child).value());
      for (int i = 0; i < 100 && s->child->Running(); ++i) {
        if (CanConnect(s->port)) return;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      s->child->Stop();
    }
    FAIL() << "hoist serve did not start: " << ReadFile(dir_->path() + "/serve.out");
  }

  // skopeo inspects the image `s` serves and copies it, byte for byte.
  void ExpectSkopeoCopies(const Served& s) {
    const std::string src = "docker://" + s.host() + "/" + kRepo + ":1";
    auto inspect = testing::RunCommand({"skopeo", "inspect", "--tls-verify=false", src}, 60);
    ASSERT_TRUE(inspect.ok()) << inspect.status().message();
    EXPECT_NE(inspect->find(image_.manifest_digest), std::string::npos) << *inspect;
    const std::string out = dir_->path() + "/copied";
    auto copy =
        testing::RunCommand({"skopeo", "copy", "--src-tls-verify=false", src, "dir:" + out}, 120);
    ASSERT_TRUE(copy.ok()) << copy.status().message();
    EXPECT_EQ(ReadFile(out + "/manifest.json"), image_.manifest);
    for (const auto& l : image_.layers) {
      EXPECT_EQ(ReadFile(out + "/" + l.digest.substr(7)), l.data) << l.digest;
    }
  }

  // A second node with `s` as its registries.conf mirror pulls the image without fetching a
  // blob from the upstream registry, and `s` logs each blob it served.
  void ExpectSecondNodePullsThrough(const Served& s) {
    std::vector<std::string> blobs = {image_.config.digest};
    for (const auto& l : image_.layers) blobs.push_back(l.digest);
    auto upstream_gets = [&] {
      int n = 0;
      for (const auto& d : blobs) n += upstream_->CountRequests("GET", "/blobs/" + d);
      return n;
    };
    const int before = upstream_gets();
    const std::string node = dir_->path() + "/node2";
    fs::create_directories(node + "/home");
    ASSERT_TRUE(WriteFile(node + "/registries.conf",
                          "[[registry]]\nprefix = \"" + upstream_->host() + "\"\nlocation = \"" +
                              upstream_->host() + "\"\n\n[[registry.mirror]]\nlocation = \"" +
                              s.host() + "\"\ninsecure = true\n")
                    .ok());
    CliRun pull = Hoist(node + "/store", node, {"pull", "-q", ref_});
    ASSERT_EQ(pull.exit_code, 0) << pull.out << pull.err;
    EXPECT_EQ(pull.out, ref_ + "@" + image_.manifest_digest + "\n");
    CliRun verify = Hoist(node + "/store", node, {"verify", ref_});
    EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
    EXPECT_EQ(upstream_gets(), before) << "the second node fetched blobs from the upstream";
    // A line is written once its answer is sent: the last one may come after the pull ended.
    std::string log;
    testing::WaitFor(
        [&] {
          log = ReadFile(s.log);
          return std::all_of(blobs.begin(), blobs.end(), [&](const std::string& d) {
            return log.find("/blobs/" + d + " 200 ") != std::string::npos;
          });
        },
        5);
    for (const auto& d : blobs) {
      EXPECT_NE(log.find("/blobs/" + d + " 200 "), std::string::npos) << d << "\n" << log;
    }
  }

  // podman pulls the image `s` serves.
  void ExpectPodmanPulls(const Served& s) {
    const std::string root = dir_->path() + "/podman";
    auto pulled = testing::RunCommand(
        {"podman", "--root", root + "/root", "--runroot", root + "/run", "--storage-driver", "vfs",
         "pull", "--tls-verify=false", s.host() + "/" + kRepo + ":1"},
        120);
    ASSERT_TRUE(pulled.ok()) << pulled.status().message();
    auto images =
        testing::RunCommand({"podman", "--root", root + "/root", "--runroot", root + "/run",
                             "--storage-driver", "vfs", "images", "--digests"},
                            60);
    ASSERT_TRUE(images.ok()) << images.status().message();
    EXPECT_NE(images->find(image_.manifest_digest), std::string::npos) << *images;
  }

  std::optional<testing::TempDir> dir_;
  std::unique_ptr<TestRegistry> upstream_;
  testing::BuiltImage image_;
  std::string ref_, store_;
};

TEST_F(ServeTest, AnswersTheDistributionApi) {
  Served s;
  ASSERT_NO_FATAL_FAILURE(Serve(&s));
  auto base = testing::HttpCall("GET", s.url() + "/v2/");
  ASSERT_TRUE(base.ok());
  EXPECT_EQ(base->status, 200);
  EXPECT_EQ(base->headers["docker-distribution-api-version"], "registry/2.0");

  // One connection carries several requests (clients keep it open between blobs).
  std::string two = RawRequest(s.port, "GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n" + Get("/v2/"));
  EXPECT_EQ(StatusOf(two), 200);
  EXPECT_NE(two.find("HTTP/1.1 200", 1), std::string::npos) << two;

  // By tag: the record's manifest, as the registry served it.
  for (const char* method : {"GET", "HEAD"}) {
    auto m = testing::HttpCall(method, s.url() + "/v2/" + kRepo + "/manifests/1");
    ASSERT_TRUE(m.ok());
    EXPECT_EQ(m->status, 200) << method;
    EXPECT_EQ(m->headers["docker-content-digest"], image_.manifest_digest);
    EXPECT_EQ(m->headers["content-type"], image_.manifest_media_type);
    EXPECT_EQ(m->headers["content-length"], std::to_string(image_.manifest.size()));
    if (std::string(method) == "GET") {
      EXPECT_EQ(m->body, image_.manifest);
    }
  }
  auto by_digest =
      testing::HttpCall("GET", s.url() + "/v2/" + kRepo + "/manifests/" + image_.manifest_digest);
  ASSERT_TRUE(by_digest.ok());
  EXPECT_EQ(by_digest->status, 200);
  EXPECT_EQ(by_digest->body, image_.manifest);

  // A config is a blob, not a manifest; an unknown tag or name is MANIFEST_UNKNOWN.
  for (const std::string& path :
       {std::string("/v2/") + kRepo + "/manifests/" + image_.config.digest,
        std::string("/v2/") + kRepo + "/manifests/2", std::string("/v2/other/manifests/1")}) {
    auto r = testing::HttpCall("GET", s.url() + path);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->status, 404) << path;
    EXPECT_NE(r->body.find("\"MANIFEST_UNKNOWN\""), std::string::npos) << path << r->body;
  }
  // The record's registry may be named (containerd's ?ns=), and must then be the one.
  auto ns =
      testing::HttpCall("GET", s.url() + "/v2/" + kRepo + "/manifests/1?ns=" + upstream_->host());
  ASSERT_TRUE(ns.ok());
  EXPECT_EQ(ns->status, 200);
  auto other_ns = testing::HttpCall("GET", s.url() + "/v2/" + kRepo + "/manifests/1?ns=docker.io");
  ASSERT_TRUE(other_ns.ok());
  EXPECT_EQ(other_ns->status, 404);

  auto tags = testing::HttpCall("GET", s.url() + "/v2/" + kRepo + "/tags/list");
  ASSERT_TRUE(tags.ok());
  EXPECT_EQ(tags->status, 200);
  EXPECT_EQ(tags->body, "{\"name\":\"serve/app\",\"tags\":[\"1\"]}");

  // Blobs, whole and in ranges.
  const testing::Blob& layer = image_.layers[1];
  const std::string blob_url = s.url() + "/v2/" + kRepo + "/blobs/" + layer.digest;
  auto whole = testing::HttpCall("GET", blob_url);
  ASSERT_TRUE(whole.ok());
  EXPECT_EQ(whole->status, 200);
  EXPECT_EQ(whole->body, layer.data);
  EXPECT_EQ(whole->headers["docker-content-digest"], layer.digest);
  const size_t size = layer.data.size();
  struct RangeCase {
    std::string header;
    size_t first, last;
  };
  for (const RangeCase& c : std::vector<RangeCase>{{"bytes=5-9", 5, 9},
                                                   {"bytes=100-", 100, size - 1},
                                                   {"bytes=-3", size - 3, size - 1},
                                                   {"bytes=10-99999999999", 10, size - 1}}) {
    auto r = testing::HttpCall("GET", blob_url, {"Range: " + c.header});
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->status, 206) << c.header;
    EXPECT_EQ(r->body, layer.data.substr(c.first, c.last - c.first + 1)) << c.header;
    EXPECT_EQ(r->headers["content-range"], "bytes " + std::to_string(c.first) + "-" +
                                               std::to_string(c.last) + "/" + std::to_string(size))
        << c.header;
  }
  for (const std::string& bad :
       {std::string("bytes=5-1"), std::string("bytes=0-1,3-4"), std::to_string(size),
        "bytes=" + std::to_string(size) + "-", std::string("bytes=-0"), std::string("bytes=a-b"),
        std::string("items=0-1"), std::string("bytes=0-1,") + std::string(2000, '1')}) {
    auto r = testing::HttpCall("GET", blob_url, {"Range: " + bad});
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->status, 416) << bad;
    EXPECT_EQ(r->headers["content-range"], "bytes */" + std::to_string(size)) << bad;
  }
  // Every request is in the access log, with its status and bytes.
  const std::string log = ReadFile(s.log);
  EXPECT_NE(log.find(" GET /v2/" + std::string(kRepo) + "/blobs/" + layer.digest + " 200 " +
                     std::to_string(size) + " "),
            std::string::npos)
      << log;
  EXPECT_NE(log.find(" 127.0.0.1:"), std::string::npos) << log;
}

TEST_F(ServeTest, RefusesHostileRequests) {
  Served s;
  ASSERT_NO_FATAL_FAILURE(Serve(&s));
  // A blob in blobs/ that no record references (put there by hand) is not served.
  const std::string stray = "not referenced by any record";
  const std::string stray_digest = testing::Sha256Digest(stray);
  const std::string stray_path = store_ + "/blobs/sha256/" + stray_digest.substr(7);
  ASSERT_TRUE(WriteFile(stray_path, stray).ok());
  const std::string layer = image_.layers[0].digest;
  struct Case {
    std::string path;
    int status;
    std::string code;
  };
  for (const Case& c : std::vector<Case>{
           {"/v2/../../etc/passwd", 404, "UNSUPPORTED"},
           {"/v2/../" + std::string(kRepo) + "/manifests/1", 400, "NAME_INVALID"},
           {"/v2/%2e%2e/%2e%2e/manifests/1", 400, "NAME_INVALID"},
           {"/v2/serve/%2e%2e/app/manifests/1", 400, "NAME_INVALID"},
           {"/v2/serve%2fapp/manifests/1", 200, ""},  // decoded: the same name
           {"/v2/Serve/App/manifests/1", 400, "NAME_INVALID"},
           {"/v2/serve/app/blobs/sha256:..%2f..%2fetc%2fpasswd", 404, "UNSUPPORTED"},
           {"/v2/serve/app/blobs/sha256%3a..%2f..%2findex.json", 404, "UNSUPPORTED"},
           {"/v2/serve/app/blobs/sha256:..", 400, "DIGEST_INVALID"},
           {"/v2/serve/app/blobs/..%5c..%5cindex.json", 400, "DIGEST_INVALID"},
           {"/v2/serve/app/blobs/sha256:" + std::string(64, 'A'), 400, "DIGEST_INVALID"},
           {"/v2/serve/app/blobs/" + layer + "%2f..", 404, "UNSUPPORTED"},
           {"/v2/serve/app/blobs/" + layer + "%00", 400, "UNSUPPORTED"},
           {"/v2/serve/app/manifests/1%00.json", 400, "UNSUPPORTED"},
           {"/v2/serve/app/manifests/sha256:../../index.json", 404, "UNSUPPORTED"},
           {"/v2/serve/app/manifests/sha256:..", 400, "DIGEST_INVALID"},
           {"/v2/serve/app/manifests/..", 400, "TAG_INVALID"},
           {"/v2/serve/other/tags/list", 404, "NAME_UNKNOWN"},
           {"/v2/serve/../tags/list", 400, "NAME_INVALID"},
           {"/v2/serve/app/blobs/sha256:" + std::string(64, '0'), 404, "BLOB_UNKNOWN"},
           {"/v2/serve/app/blobs/" + stray_digest, 404, "BLOB_UNKNOWN"},
           {"/v2/serve/app/manifests/" + stray_digest, 404, "MANIFEST_UNKNOWN"},
           {"/v2/_catalog", 404, "UNSUPPORTED"},
           {"/index.json", 404, "UNSUPPORTED"},
       }) {
    std::string answer = RawRequest(s.port, Get(c.path));
    EXPECT_EQ(StatusOf(answer), c.status) << c.path << "\n" << answer.substr(0, 300);
    if (!c.code.empty()) {
      EXPECT_NE(answer.find("{\"errors\":[{\"code\":\"" + c.code + "\""), std::string::npos)
          << c.path << "\n"
          << answer.substr(0, 300);
    }
  }
  // Read-only whatever the request.
  for (const char* method : {"PUT", "POST", "DELETE", "PATCH", "OPTIONS"}) {
    std::string answer =
        RawRequest(s.port, std::string(method) + " /v2/" + kRepo + "/blobs/" + layer +
                               " HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                               "Connection: close\r\n\r\nhello");
    EXPECT_EQ(StatusOf(answer), 405) << method << "\n" << answer.substr(0, 300);
    EXPECT_NE(answer.find("\"UNSUPPORTED\""), std::string::npos) << method;
    EXPECT_NE(answer.find("Allow: GET, HEAD"), std::string::npos) << method;
  }
  EXPECT_TRUE(fs::exists(store_ + "/blobs/sha256/" + layer.substr(7)));
  // Headers over the limit are refused, and the server keeps serving.
  std::string huge = "GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(256 << 10, 'a') +
                     "\r\nConnection: close\r\n\r\n";
  int huge_status = StatusOf(RawRequest(s.port, huge));
  EXPECT_TRUE(huge_status == 0 || huge_status == 413 || huge_status == 414 || huge_status == 431)
      << huge_status;
  std::string long_url = Get("/v2/" + std::string(100 << 10, 'a') + "/manifests/1");
  int long_status = StatusOf(RawRequest(s.port, long_url));
  EXPECT_TRUE(long_status == 0 || long_status == 413 || long_status == 414 || long_status == 431)
      << long_status;
  EXPECT_EQ(StatusOf(RawRequest(s.port, Get("/v2/"))), 200);
  EXPECT_TRUE(s.child->Running());
}

TEST_F(ServeTest, SkopeoInspectsAndCopies) {
  if (!testing::FindExecutable("skopeo")) GTEST_SKIP() << "skopeo not installed";
  Served s;
  ASSERT_NO_FATAL_FAILURE(Serve(&s));
  ExpectSkopeoCopies(s);
}

TEST_F(ServeTest, SecondNodePullsThroughTheFirstAsMirror) {
  Served s;
  ASSERT_NO_FATAL_FAILURE(Serve(&s));
  ExpectSecondNodePullsThrough(s);
}

// A multi-platform Docker image: the tag is answered with the manifest list the registry gave
// (so the second node records the same digests), the pulled platform's Docker manifest by
// digest, and the platform not pulled not at all.
TEST_F(ServeTest, ServesTheIndexATagResolvedTo) {
  std::vector<testing::BuiltImage> images;
  for (const char* arch : {"amd64", "arm64"}) {
    images.push_back(testing::BuildImage(
        testing::Format::kDocker,
        {{{"data/", "", '5'}, {std::string("data/") + arch, testing::RandomBytes(100 << 10, 3)}}},
        "linux", arch));
  }
  testing::BuiltIndex index = testing::BuildIndex(testing::Format::kDocker, images);
  ASSERT_TRUE(testing::PushIndex(upstream_->host(), "serve/multi", "2", index).ok());
  const std::string ref = upstream_->host() + "/serve/multi:2";
  CliRun first = Hoist(store_, dir_->path(), {"pull", "-q", "--platform", "linux/amd64", ref});
  ASSERT_EQ(first.exit_code, 0) << first.out << first.err;
  Served s;
  ASSERT_NO_FATAL_FAILURE(Serve(&s));

  auto tag = testing::HttpCall("GET", s.url() + "/v2/serve/multi/manifests/2");
  ASSERT_TRUE(tag.ok());
  EXPECT_EQ(tag->status, 200);
  EXPECT_EQ(tag->headers["docker-content-digest"], index.digest);
  EXPECT_EQ(tag->headers["content-type"], index.media_type);
  EXPECT_EQ(tag->body, index.manifest);
  auto amd64 =
      testing::HttpCall("GET", s.url() + "/v2/serve/multi/manifests/" + images[0].manifest_digest);
  ASSERT_TRUE(amd64.ok());
  EXPECT_EQ(amd64->status, 200);
  EXPECT_EQ(amd64->headers["content-type"], images[0].manifest_media_type);
  EXPECT_EQ(amd64->body, images[0].manifest);
  auto arm64 =
      testing::HttpCall("GET", s.url() + "/v2/serve/multi/manifests/" + images[1].manifest_digest);
  ASSERT_TRUE(arm64.ok());
  EXPECT_EQ(arm64->status, 404);

  const std::string node = dir_->path() + "/node3";
  fs::create_directories(node + "/home");
  ASSERT_TRUE(WriteFile(node + "/registries.conf", "[[registry]]\nprefix = \"" + upstream_->host() +
                                                       "\"\nlocation = \"" + upstream_->host() +
                                                       "\"\n\n[[registry.mirror]]\nlocation = \"" +
                                                       s.host() + "\"\ninsecure = true\n")
                  .ok());
  const int before = upstream_->CountRequests("GET", "/blobs/");
  CliRun second = Hoist(node + "/store", node, {"pull", "-q", "--platform", "linux/amd64", ref});
  ASSERT_EQ(second.exit_code, 0) << second.out << second.err;
  EXPECT_EQ(second.out, first.out);
  EXPECT_EQ(upstream_->CountRequests("GET", "/blobs/"), before);
  CliRun a = Hoist(store_, dir_->path(), {"images", "--digests", ref});
  CliRun b = Hoist(node + "/store", node, {"images", "--digests", ref});
  EXPECT_EQ(a.exit_code, 0) << a.err;
  EXPECT_NE(a.out.find(ref.substr(0, ref.size() - 2)), std::string::npos) << a.out;
  EXPECT_EQ(a.out, b.out);
}

TEST_F(ServeTest, PodmanPulls) {
  if (!testing::FindExecutable("podman")) GTEST_SKIP() << "podman not installed";
  Served s;
  ASSERT_NO_FATAL_FAILURE(Serve(&s));
  ExpectPodmanPulls(s);
}

TEST_F(ServeTest, BasicAuthFromHtpasswd) {
  if (!testing::FindExecutable("htpasswd")) GTEST_SKIP() << "htpasswd not installed";
  auto line = testing::RunCommand({"htpasswd", "-Bbn", "node", "s3cret"}, 30);
  ASSERT_TRUE(line.ok()) << line.status().message();
  const std::string file = dir_->path() + "/htpasswd";
  ASSERT_TRUE(WriteFile(file, *line).ok());
  Served s;
  ASSERT_NO_FATAL_FAILURE(Serve(&s, {"--htpasswd", file}));
  const std::string manifest = s.url() + "/v2/" + kRepo + "/manifests/1";
  for (const std::string& creds : {std::string(), std::string("node:wrong"),
                                   std::string("other:s3cret"), std::string("node:s3cret2")}) {
    auto r = testing::HttpCall("GET", manifest, {}, "", creds);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->status, 401) << creds;
    EXPECT_EQ(r->headers["www-authenticate"], "Basic realm=\"hoist\"") << creds;
    EXPECT_NE(r->body.find("\"UNAUTHORIZED\""), std::string::npos) << creds;
  }
  auto ok = testing::HttpCall("GET", manifest, {}, "", "node:s3cret");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->status, 200);
  EXPECT_EQ(ok->body, image_.manifest);
  // Accepted credentials are remembered; others still are not.
  auto again = testing::HttpCall("GET", manifest, {}, "", "node:s3cret");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->status, 200);
  auto wrong = testing::HttpCall("GET", manifest, {}, "", "node:s3cre");
  ASSERT_TRUE(wrong.ok());
  EXPECT_EQ(wrong->status, 401);
  if (testing::FindExecutable("skopeo")) {
    auto inspect = testing::RunCommand({"skopeo", "inspect", "--tls-verify=false", "--creds",
                                        "node:s3cret", "docker://" + s.host() + "/" + kRepo + ":1"},
                                       60);
    EXPECT_TRUE(inspect.ok()) << inspect.status().message();
  }
}

TEST_F(ServeTest, ServesHttpsWithTheGivenCertificate) {
  if (!testing::FindExecutable("skopeo")) GTEST_SKIP() << "skopeo not installed";
  auto ca = testing::TestCa::Create();
  ASSERT_TRUE(ca.ok()) << ca.status().message();
  auto cert = ca->IssueServerCert({"127.0.0.1"});
  ASSERT_TRUE(cert.ok()) << cert.status().message();
  Served s;
  ASSERT_NO_FATAL_FAILURE(Serve(&s, {"--tls-cert", cert->cert_path, "--tls-key", cert->key_path}));
  const std::string certs = dir_->path() + "/certs";
  ASSERT_TRUE(WriteFile(certs + "/ca.crt", ReadFile(ca->ca_cert_path())).ok());
  auto inspect = testing::RunCommand(
      {"skopeo", "inspect", "--cert-dir", certs, "docker://" + s.host() + "/" + kRepo + ":1"}, 60);
  ASSERT_TRUE(inspect.ok()) << inspect.status().message();
  EXPECT_NE(inspect->find(image_.manifest_digest), std::string::npos) << *inspect;
  // Plain http on the TLS port gets no answer of the registry's.
  EXPECT_NE(StatusOf(RawRequest(s.port, Get("/v2/"))), 200);
}

TEST_F(ServeTest, RequiresAClientCertificateOfTheClientCa) {
  if (!testing::FindExecutable("curl")) GTEST_SKIP() << "curl not installed";
  auto ca = testing::TestCa::Create();
  ASSERT_TRUE(ca.ok()) << ca.status().message();
  auto other_ca = testing::TestCa::Create("another CA");
  ASSERT_TRUE(other_ca.ok()) << other_ca.status().message();
  auto server = ca->IssueServerCert({"127.0.0.1"});
  auto client = ca->IssueClientCert("node2");
  auto stranger = other_ca->IssueClientCert("node3");
  ASSERT_TRUE(server.ok() && client.ok() && stranger.ok());
  Served s;
  ASSERT_NO_FATAL_FAILURE(Serve(&s, {"--tls-cert", server->cert_path, "--tls-key", server->key_path,
                                     "--tls-client-ca", ca->ca_cert_path()}));
  const std::string url = "https://" + s.host() + "/v2/" + kRepo + "/manifests/1";
  auto status = [&](std::vector<std::string> extra) {
    std::vector<std::string> argv = {"curl", "-s",           "-o",       "/dev/null",
                                     "-w",   "%{http_code}", "--cacert", ca->ca_cert_path()};
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.push_back(url);
    auto r = testing::RunCommand(argv, 30);
    return r.ok() ? *r : "error: " + r.status().message();
  };
  EXPECT_EQ(status({"--cert", client->cert_path, "--key", client->key_path}), "200");
  EXPECT_EQ(status({}), "403");
  // A certificate of another CA is refused at the handshake or by the check.
  std::string other = status({"--cert", stranger->cert_path, "--key", stranger->key_path});
  EXPECT_NE(other, "200") << other;
}

TEST_F(ServeTest, RefusesAStoreThatIsNotThere) {
  const std::string missing = dir_->path() + "/no-store";
  CliRun r = Hoist(missing, dir_->path(), {"serve", "--listen", "127.0.0.1:0"});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("no store at"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(missing));
}

TEST_F(ServeTest, RefusesAnonymousServingBeyondLoopback) {
  CliRun r = Hoist(store_, dir_->path(), {"serve", "--listen", "0.0.0.0:0"});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("--htpasswd"), std::string::npos) << r.err;
}

// `hoist serve --user`: the process started as root keeps the store and forks one child that
// binds, drops to the user and serves, asking its parent for each blob.
class ServeUserTest : public ServeTest {
 protected:
  static constexpr uid_t kNobody = 65534;

  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "serving as another user needs root";
    const passwd* nobody = ::getpwnam("nobody");
    if (nobody == nullptr || nobody->pw_uid != kNobody || nobody->pw_gid != kNobody) {
      GTEST_SKIP() << "no user nobody of uid and gid 65534";
    }
    ServeTest::SetUp();
    if (!HasFatalFailure()) store_modes_ = Modes(store_);
  }

  // Whatever a failed test left running is killed by its PID.
  void TearDown() override {
    for (const Proc& p : children_) {
      if (!Exited(p)) ::kill(p.pid, SIGKILL);
    }
  }

  // Starts `hoist serve --user USER FLAGS`, finds the one child of the process started and
  // waits (≤ 10 s) for it to leave root.
  void ServeAs(Served* s, const std::string& user, Proc* child,
               std::vector<std::string> flags = {}) {
    flags.insert(flags.begin(), {"--user", user});
    ASSERT_NO_FATAL_FAILURE(Serve(s, flags));
    const pid_t parent = s->child->pid();
    std::vector<Proc> children;
    testing::WaitFor([&] { return !(children = ChildrenOf(parent)).empty(); }, 5);
    children_.insert(children_.end(), children.begin(), children.end());
    ASSERT_EQ(children.size(), 1u) << ReadFile(dir_->path() + "/serve.out");
    *child = children[0];
    testing::WaitFor(
        [&] {
          std::vector<std::string> uid = StatusField(child->pid, "Uid");
          return std::find(uid.begin(), uid.end(), "0") == uid.end();
        },
        10);
  }

  // The store's root is still root's and 0700, and nothing in it changed mode or owner.
  void ExpectStoreUntouched() {
    struct stat st {};
    ASSERT_EQ(::stat(store_.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0700u);
    EXPECT_EQ(st.st_uid, 0u);
    EXPECT_EQ(Modes(store_), store_modes_);
  }

  std::vector<Proc> children_;  // every server child seen, killed in TearDown if still there
  std::map<std::string, std::string> store_modes_;
};

TEST_F(ServeUserTest, SkopeoInspectsAndCopies) {
  if (!testing::FindExecutable("skopeo")) GTEST_SKIP() << "skopeo not installed";
  Served s;
  Proc child;
  ASSERT_NO_FATAL_FAILURE(ServeAs(&s, "nobody", &child));
  ExpectSkopeoCopies(s);
  ExpectStoreUntouched();
}

TEST_F(ServeUserTest, SecondNodePullsThroughItAsMirror) {
  Served s;
  Proc child;
  ASSERT_NO_FATAL_FAILURE(ServeAs(&s, "65534:65534", &child));
  ExpectSecondNodePullsThrough(s);
  ExpectStoreUntouched();
}

TEST_F(ServeUserTest, PodmanPulls) {
  if (!testing::FindExecutable("podman")) GTEST_SKIP() << "podman not installed";
  Served s;
  Proc child;
  ASSERT_NO_FATAL_FAILURE(ServeAs(&s, "nobody", &child));
  ExpectPodmanPulls(s);
  ExpectStoreUntouched();
}

TEST_F(ServeUserTest, TheChildHasNoPrivilegeAndNoDescriptorOfTheStore) {
  // A descriptor of the store the server inherits (not close-on-exec): the child must close it.
  UniqueFd inherited(::open(store_.c_str(), O_RDONLY | O_DIRECTORY));
  ASSERT_TRUE(inherited.valid());
  Served s;
  Proc child;
  ASSERT_NO_FATAL_FAILURE(ServeAs(&s, "nobody", &child));
  inherited.reset();
  const std::vector<std::string> nobody(4, "65534");
  EXPECT_EQ(StatusField(child.pid, "Uid"), nobody);
  EXPECT_EQ(StatusField(child.pid, "Gid"), nobody);
  EXPECT_EQ(StatusField(child.pid, "Groups"), std::vector<std::string>{});
  for (const char* caps : {"CapEff", "CapPrm"}) {
    std::vector<std::string> v = StatusField(child.pid, caps);
    ASSERT_EQ(v.size(), 1u) << caps;
    EXPECT_EQ(std::stoull(v[0], nullptr, 16), 0u) << caps << " " << v[0];
  }
  EXPECT_EQ(StatusField(child.pid, "NoNewPrivs"), std::vector<std::string>{"1"});
  // The files of a process that is not dumpable are root's in /proc, whatever its user.
  struct stat st {};
  ASSERT_EQ(::stat(("/proc/" + std::to_string(child.pid) + "/status").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 0u) << "the child is dumpable";
  EXPECT_EQ(StatusField(s.child->pid(), "Uid"), std::vector<std::string>(4, "0"));

  // No descriptor of the child points into the store, before or after it served a blob.
  const std::string store = fs::canonical(store_);
  auto store_fds = [&] {
    std::vector<std::string> into_store;
    std::error_code ec;
    fs::directory_iterator fds("/proc/" + std::to_string(child.pid) + "/fd", ec);
    if (ec) return std::vector<std::string>{"cannot list: " + ec.message()};
    for (const auto& fd : fds) {
      std::string target = fs::read_symlink(fd.path(), ec);
      if (target.rfind(store, 0) == 0) into_store.push_back(fd.path().string() + " -> " + target);
    }
    return into_store;
  };
  EXPECT_EQ(store_fds(), std::vector<std::string>{});
  auto blob =
      testing::HttpCall("GET", s.url() + "/v2/" + kRepo + "/blobs/" + image_.layers[0].digest);
  ASSERT_TRUE(blob.ok());
  EXPECT_EQ(blob->status, 200);
  EXPECT_EQ(blob->body, image_.layers[0].data);
  EXPECT_EQ(store_fds(), std::vector<std::string>{});
  EXPECT_EQ(ChildrenOf(s.child->pid()).size(), 1u);
  EXPECT_NE(ReadFile(dir_->path() + "/serve.out")
                .find("hoist: serving " + store_ + " read-only on " + s.host()),
            std::string::npos)
      << ReadFile(dir_->path() + "/serve.out");
  ExpectStoreUntouched();
}

// Only what the records reference, as the parent finds it when index.json changes.
TEST_F(ServeUserTest, ServesOnlyWhatTheRecordsReference) {
  Served s;
  Proc child;
  ASSERT_NO_FATAL_FAILURE(ServeAs(&s, "nobody", &child));
  const std::string stray = "not referenced by any record";
  const std::string stray_digest = testing::Sha256Digest(stray);
  ASSERT_TRUE(WriteFile(store_ + "/blobs/sha256/" + stray_digest.substr(7), stray).ok());
  std::string answer = RawRequest(s.port, Get("/v2/serve/app/blobs/" + stray_digest));
  EXPECT_EQ(StatusOf(answer), 404) << answer.substr(0, 300);
  EXPECT_NE(answer.find("{\"errors\":[{\"code\":\"BLOB_UNKNOWN\""), std::string::npos) << answer;
  answer = RawRequest(s.port, Get("/v2/serve/app/manifests/" + stray_digest));
  EXPECT_EQ(StatusOf(answer), 404) << answer.substr(0, 300);
  EXPECT_NE(answer.find("{\"errors\":[{\"code\":\"MANIFEST_UNKNOWN\""), std::string::npos)
      << answer;

  const testing::Blob& layer = image_.layers[1];
  const std::string blob_url = s.url() + "/v2/" + kRepo + "/blobs/" + layer.digest;
  auto range = testing::HttpCall("GET", blob_url, {"Range: bytes=5-9"});
  ASSERT_TRUE(range.ok());
  EXPECT_EQ(range->status, 206);
  EXPECT_EQ(range->body, layer.data.substr(5, 5));
  EXPECT_EQ(range->headers["content-range"], "bytes 5-9/" + std::to_string(layer.data.size()));
  auto head = testing::HttpCall("HEAD", blob_url);
  ASSERT_TRUE(head.ok());
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->headers["content-length"], std::to_string(layer.data.size()));
  auto tag = testing::HttpCall("GET", s.url() + "/v2/" + kRepo + "/manifests/1");
  ASSERT_TRUE(tag.ok());
  EXPECT_EQ(tag->status, 200);
  EXPECT_EQ(tag->body, image_.manifest);

  // An image pulled while serving is served.
  testing::BuiltImage late = testing::BuildImage(
      testing::Format::kOci, {{{"late/", "", '5'}, {"late/x", testing::RandomBytes(1000, 42)}}});
  ASSERT_TRUE(testing::PushImage(upstream_->host(), "serve/late", "2", late).ok());
  CliRun pull = Hoist(store_, dir_->path(), {"pull", "-q", upstream_->host() + "/serve/late:2"});
  ASSERT_EQ(pull.exit_code, 0) << pull.out << pull.err;
  int late_status = 0;
  testing::WaitFor(
      [&] {
        auto r = testing::HttpCall("GET", s.url() + "/v2/serve/late/manifests/2");
        late_status = r.ok() ? r->status : 0;
        return late_status == 200;
      },
      10);
  EXPECT_EQ(late_status, 200);
  auto late_layer =
      testing::HttpCall("GET", s.url() + "/v2/serve/late/blobs/" + late.layers[0].digest);
  ASSERT_TRUE(late_layer.ok());
  EXPECT_EQ(late_layer->status, 200);
  EXPECT_EQ(late_layer->body, late.layers[0].data);

  // The access log, opened before leaving root, has each request (written once answered).
  const std::string late_line = " GET /v2/serve/late/blobs/" + late.layers[0].digest + " 200 ";
  std::string log;
  testing::WaitFor([&] { return (log = ReadFile(s.log)).find(late_line) != std::string::npos; }, 5);
  EXPECT_NE(log.find(" GET /v2/serve/app/blobs/" + stray_digest + " 404 "), std::string::npos)
      << log;
  EXPECT_NE(log.find(" GET /v2/serve/app/blobs/" + layer.digest + " 206 "), std::string::npos)
      << log;
  EXPECT_NE(log.find(late_line), std::string::npos) << log;
  struct stat st {};
  ASSERT_EQ(::stat(s.log.c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 0u);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
}

TEST_F(ServeUserTest, ReadsACertificateAndKeyOnlyRootCanRead) {
  if (!testing::FindExecutable("skopeo")) GTEST_SKIP() << "skopeo not installed";
  auto ca = testing::TestCa::Create();
  ASSERT_TRUE(ca.ok()) << ca.status().message();
  auto cert = ca->IssueServerCert({"127.0.0.1"});
  ASSERT_TRUE(cert.ok()) << cert.status().message();
  for (const std::string& file : {cert->key_path, cert->cert_path}) {
    ASSERT_EQ(::chmod(file.c_str(), 0600), 0) << file;
    ASSERT_EQ(::chown(file.c_str(), 0, 0), 0) << file;
  }
  Served s;
  Proc child;
  ASSERT_NO_FATAL_FAILURE(
      ServeAs(&s, "nobody", &child, {"--tls-cert", cert->cert_path, "--tls-key", cert->key_path}));
  const std::string certs = dir_->path() + "/certs";
  ASSERT_TRUE(WriteFile(certs + "/ca.crt", ReadFile(ca->ca_cert_path())).ok());
  auto inspect = testing::RunCommand(
      {"skopeo", "inspect", "--cert-dir", certs, "docker://" + s.host() + "/" + kRepo + ":1"}, 60);
  ASSERT_TRUE(inspect.ok()) << inspect.status().message();
  EXPECT_NE(inspect->find(image_.manifest_digest), std::string::npos) << *inspect;
  EXPECT_EQ(StatusField(child.pid, "Uid"), std::vector<std::string>(4, "65534"));
}

TEST_F(ServeUserTest, TakesNumericIdsWithoutAnAccount) {
  constexpr unsigned kId = 54321;
  if (::getpwuid(kId) != nullptr || ::getgrgid(kId) != nullptr) GTEST_SKIP() << kId << " exists";
  Served s;
  Proc child;
  ASSERT_NO_FATAL_FAILURE(ServeAs(&s, "54321:54321", &child));
  EXPECT_EQ(StatusField(child.pid, "Uid"), std::vector<std::string>(4, "54321"));
  EXPECT_EQ(StatusField(child.pid, "Gid"), std::vector<std::string>(4, "54321"));
  auto tag = testing::HttpCall("GET", s.url() + "/v2/" + kRepo + "/manifests/1");
  ASSERT_TRUE(tag.ok());
  EXPECT_EQ(tag->status, 200);
}

// Refused before serving: nothing listens afterwards and no process of it is left.
TEST_F(ServeUserTest, RefusesWhatItCannotDo) {
  auto port = testing::PickFreePort();
  ASSERT_TRUE(port.ok());
  const std::string host = "127.0.0.1:" + std::to_string(*port);
  // The output of a run that must fail ("" if it did not), after the command line that
  // RunCommand's message repeats.
  auto refused = [&](std::vector<std::string> argv, const std::string& user) {
    argv.insert(argv.end(),
                {HOIST_CLI, "--store", store_, "serve", "--listen", host, "--user", user});
    auto r = testing::RunCommand(argv, 20);
    std::vector<Proc> left = ProcessesWithArg(host);
    for (const Proc& p : left) ::kill(p.pid, SIGKILL);
    EXPECT_TRUE(left.empty()) << user << ": a process was left";
    EXPECT_FALSE(CanConnect(*port)) << user;
    EXPECT_FALSE(r.ok()) << user << ": " << *r;
    if (r.ok()) return std::string();
    const std::string message = r.status().message();
    EXPECT_NE(message.find(": exit status "), std::string::npos) << user << ": " << message;
    size_t output = message.find("; output: ");
    return output == std::string::npos ? message : message.substr(output);
  };
  std::string out =
      refused({"setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"}, "nobody");
  EXPECT_NE(out.find("--user needs root"), std::string::npos) << out;
  for (const char* user : {"root", "0", "0:65534", "nobody:0", "nobody:root"}) {
    out = refused({}, user);
    EXPECT_NE(out.find("unprivileged"), std::string::npos) << user << ": " << out;
  }
  // The unknown name, quoted (the option parser's own complaint repeats it unquoted).
  out = refused({}, "no-such-user-xyz");
  EXPECT_NE(out.find(Quote("no-such-user-xyz")), std::string::npos) << out;
  out = refused({}, "nobody:no-such-group-xyz");
  EXPECT_TRUE(out.find(Quote("no-such-group-xyz")) != std::string::npos ||
              out.find(Quote("nobody:no-such-group-xyz")) != std::string::npos)
      << out;
  if (::getpwuid(54321) == nullptr) refused({}, "54321");  // no account: the group is needed
}

TEST_F(ServeUserTest, StopsCleanlyOnSigtermOrSigint) {
  for (int sig : {SIGTERM, SIGINT}) {
    Served s;
    Proc child;
    ASSERT_NO_FATAL_FAILURE(ServeAs(&s, "nobody", &child));
    const pid_t parent = s.child->pid();
    ASSERT_EQ(::kill(parent, sig), 0);
    std::optional<siginfo_t> exit;
    EXPECT_TRUE(testing::WaitFor([&] { return (exit = PeekExit(parent)).has_value(); }, 10))
        << "signal " << sig;
    if (exit) {
      EXPECT_EQ(exit->si_code, CLD_EXITED) << "signal " << sig;
      EXPECT_EQ(exit->si_status, 0) << "signal " << sig;
    }
    EXPECT_TRUE(testing::WaitFor([&] { return Exited(child); }, 5)) << "signal " << sig;
    EXPECT_FALSE(CanConnect(s.port)) << "signal " << sig;
  }
}

TEST_F(ServeUserTest, TheChildDiesWithItsParent) {
  Served s;
  Proc child;
  ASSERT_NO_FATAL_FAILURE(ServeAs(&s, "nobody", &child));
  ASSERT_EQ(::kill(s.child->pid(), SIGKILL), 0);
  EXPECT_TRUE(testing::WaitFor([&] { return Exited(child); }, 5));
  EXPECT_FALSE(CanConnect(s.port));
}

TEST_F(ServeUserTest, TheParentFailsWhenItsChildDies) {
  Served s;
  Proc child;
  ASSERT_NO_FATAL_FAILURE(ServeAs(&s, "nobody", &child));
  const pid_t parent = s.child->pid();
  ASSERT_EQ(::kill(child.pid, SIGKILL), 0);
  std::optional<siginfo_t> exit;
  ASSERT_TRUE(testing::WaitFor([&] { return (exit = PeekExit(parent)).has_value(); }, 10));
  EXPECT_EQ(exit->si_code, CLD_EXITED);
  EXPECT_NE(exit->si_status, 0);
}

}  // namespace
}  // namespace hoist
