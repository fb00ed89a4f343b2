// The fleet recipe of docs/fleet.md end to end: the upstream registry, a caching front and N
// hoist nodes pulling one image at once. The nginx configuration and the registries.conf are
// the first ```nginx and ```toml blocks of docs/fleet.md, with the names, port and paths
// replaced. Each node is a separate `hoist` process with its own store, HOME and
// registries.conf, and, where this process may make network namespaces (as root), its own
// network namespace: this process moves into a fresh one of its own at start, where the
// servers listen on a bridge, and each node's namespace is joined to that bridge by a veth
// pair (see Network below). Otherwise, or with HOIST_FLEET_NETNS=0, everything runs on
// 127.0.0.1; the first `fleet:` line says which. Each test prints one `fleet:` line with the
// upstream's blob GETs, the wall time of the concurrent pulls and the mode (netns=1 or 0).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <latch>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "base/status_macros.h"
#include "base/unique_fd.h"
#include "support/http_client.h"
#include "support/http_server.h"
#include "support/image_builder.h"
#include "support/process.h"
#include "support/registry.h"

namespace hoist {
namespace {

namespace fs = std::filesystem;
using testing::BuiltImage;
using testing::CliRun;
using testing::RegistryOptions;
using testing::TestRegistry;
using testing::WaitFor;
using testing::WriteFile;

// How many nodes pull at once: 8, or $HOIST_FLEET_NODES (1 to 64) for measuring.
int Nodes() {
  const char* env = std::getenv("HOIST_FLEET_NODES");
  int n = env != nullptr ? std::atoi(env) : 0;
  return n >= 1 && n <= 64 ? n : 8;
}
constexpr char kRepo[] = "fleet/app";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// `text` with every occurrence of each key of `values` replaced by its value, keys in order.
std::string Fill(std::string text, const std::vector<std::pair<std::string, std::string>>& values) {
  for (const auto& [key, value] : values) {
    for (size_t at = text.find(key); at != std::string::npos;
         at = text.find(key, at + value.size())) {
      text.replace(at, key.size(), value);
    }
  }
  return text;
}

// The first fenced block of docs/fleet.md whose fence reads ```<lang>; empty if none.
std::string DocBlock(const std::string& lang) {
  const std::string doc = ReadFile(HOIST_FLEET_DOC);
  const std::string fence = "\n```" + lang + "\n";
  size_t start = doc.find(fence);
  if (start == std::string::npos) return "";
  start += fence.size();
  size_t end = doc.find("\n```", start);
  return end == std::string::npos ? "" : doc.substr(start, end - start + 1);
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) out.push_back(line);
  }
  return out;
}

// nginx's temp directories under `dir` (its compiled-in ones are system paths), as lines for
// the http block.
std::string TempPaths(const std::string& dir) {
  std::string lines;
  for (const char* kind : {"client_body", "proxy", "fastcgi", "uwsgi", "scgi"}) {
    lines += "    " + std::string(kind) + "_temp_path " + dir + "/" + kind + ";\n";
  }
  return lines;
}

// ---- Network namespaces ----
//
// Where the test's servers listen and its nodes run. When this process may make network
// namespaces (root, CAP_NET_ADMIN and CAP_SYS_ADMIN), it moves into a fresh one of its own at
// start, the hub: `lo` up, and a bridge hfbr0 at 10.231.0.1/16 on which the upstream, the
// fronts and the seed listen. Each node then gets a namespace of its own, held open by an
// `unshare --net sleep infinity` child (stopped by its PID with the test), joined to the hub by
// a veth pair: hfv<k> on the bridge, eth0 at 10.231.x.y/16 inside. Its hoist processes run
// under `nsenter --net=/proc/<holder>/ns/net`. The namespace this process started in is never
// changed: every `ip` command runs in the hub or in a node's namespace. Otherwise (or with
// HOIST_FLEET_NETNS=0) everything runs on 127.0.0.1, as one namespace.
struct Network {
  bool netns = false;                     // nodes in namespaces of their own
  std::string hub_address = "127.0.0.1";  // where the nodes reach the test's servers
  std::string ip, nsenter, unshare;       // the tools' paths
  ino_t hub_ns = 0;                       // the hub namespace's inode
  int nodes = 0;                          // node namespaces made so far
};

Network& Net() {
  static Network net;
  return net;
}

constexpr char kBridge[] = "hfbr0";
constexpr char kBridgeAddress[] = "10.231.0.1";

// `name` in PATH, or in the sbin and bin directories (a test's PATH may lack sbin); "" if none.
std::string Tool(const std::string& name) {
  std::string path;
  for (const std::string& c : {name, "/usr/sbin/" + name, "/sbin/" + name, "/usr/bin/" + name}) {
    if (testing::FindExecutable(c, &path)) return path;
  }
  return "";
}

// The inode of a network namespace link (/proc/<pid>/ns/net); 0 if it cannot be read.
ino_t NetnsInode(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

// A node's network namespace, held open by `holder`; `path` is for nsenter --net=.
struct NodeNamespace {
  testing::ChildProcess holder;
  std::string address, path;
};

// A new namespace joined to the hub's bridge, its holder's output in `dir`. The k-th gets
// 10.231.0.1 + k, and veth hfv<k>: never reused in this process.
Result<NodeNamespace> MakeNodeNamespace(const std::string& dir) {
  Network& net = Net();
  const int k = ++net.nodes;
  if (k > 60000) return ResourceExhaustedError("more than 60000 node namespaces");
  const int host = k + 1;
  const std::string address =
      "10.231." + std::to_string(host >> 8) + "." + std::to_string(host & 255);
  ASSIGN_OR_RETURN(testing::ChildProcess holder,
                   testing::ChildProcess::Spawn({net.unshare, "--net", "sleep", "infinity"},
                                                dir + "/netns-holder.log"));
  const std::string pid = std::to_string(holder.pid());
  const std::string path = "/proc/" + pid + "/ns/net";
  // The holder is in the hub until its unshare has run (a few ms; at most 10 s).
  for (int i = 0; i < 5000 && holder.Running(); ++i) {
    ino_t ino = NetnsInode(path);
    if (ino != 0 && ino != net.hub_ns) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  if (!holder.Running() || NetnsInode(path) == net.hub_ns) {
    return UnavailableError("unshare --net: " + ReadFile(dir + "/netns-holder.log"));
  }
  const std::string veth = "hfv" + std::to_string(k);
  RETURN_IF_ERROR(WriteFile(dir + "/netns-hub.batch",
                            "link add " + veth + " type veth peer name eth0 netns " + pid +
                                "\nlink set " + veth + " master " + kBridge + " up\n"));
  RETURN_IF_ERROR(testing::RunCommand({net.ip, "-batch", dir + "/netns-hub.batch"}, 30).status());
  RETURN_IF_ERROR(WriteFile(dir + "/netns-node.batch", "link set lo up\naddr add " + address +
                                                           "/16 dev eth0\nlink set eth0 up\n"));
  RETURN_IF_ERROR(
      testing::RunCommand(
          {net.nsenter, "--net=" + path, net.ip, "-batch", dir + "/netns-node.batch"}, 30)
          .status());
  return NodeNamespace{std::move(holder), address, path};
}

// Makes this process's namespace the hub (see Network), and one node namespace as a trial.
// On failure this process is back in the namespace it started in.
Status MakeHub(Network* net) {
  const char* env = std::getenv("HOIST_FLEET_NETNS");
  if (env != nullptr && std::string(env) == "0") {
    return FailedPreconditionError("HOIST_FLEET_NETNS=0");
  }
  net->ip = Tool("ip");
  net->nsenter = Tool("nsenter");
  net->unshare = Tool("unshare");
  if (net->ip.empty() || net->nsenter.empty() || net->unshare.empty()) {
    return NotFoundError("ip (iproute2), nsenter or unshare (util-linux) not installed");
  }
  // unshare(CLONE_NEWNET) moves the calling thread only: every other thread must start later.
  std::error_code ec;
  auto tasks = std::distance(fs::directory_iterator("/proc/self/task", ec), {});
  if (ec || tasks != 1) {
    return FailedPreconditionError("this process has " + std::to_string(tasks) + " threads");
  }
  UniqueFd start_ns(::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC));
  if (!start_ns) return ErrnoError(errno, "open /proc/self/ns/net");
  if (::unshare(CLONE_NEWNET) != 0) return ErrnoError(errno, "unshare(CLONE_NEWNET)");
  net->hub_ns = NetnsInode("/proc/self/ns/net");
  Status s = [&]() -> Status {
    ASSIGN_OR_RETURN(testing::TempDir dir, testing::TempDir::Create("hoist-fleet-hub-"));
    const std::string bridge = dir.path() + "/hub.batch";
    RETURN_IF_ERROR(WriteFile(bridge, std::string("link set lo up\nlink add ") + kBridge +
                                          " type bridge\naddr add " + kBridgeAddress + "/16 dev " +
                                          kBridge + "\nlink set " + kBridge + " up\n"));
    RETURN_IF_ERROR(testing::RunCommand({net->ip, "-batch", bridge}, 30).status());
    ASSIGN_OR_RETURN(NodeNamespace trial, MakeNodeNamespace(dir.path()));
    trial.holder.Stop();
    return OkStatus();
  }();
  if (!s.ok()) {
    if (::setns(start_ns.get(), CLONE_NEWNET) != 0) {
      return ErrnoError(errno, "setns back after: " + s.message());
    }
    return s;
  }
  net->netns = true;
  net->hub_address = kBridgeAddress;
  return OkStatus();
}

// Sets up Net() once, before the first test, while this process has one thread.
class NetworkEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    static bool done = false;
    if (std::exchange(done, true)) return;
    Status s = MakeHub(&Net());
    if (s.ok()) {
      std::cout << "fleet: netns=1: each node in a network namespace of its own, servers on "
                << kBridgeAddress << " (bridge " << kBridge
                << " in this process's own namespace)\n";
    } else {
      std::string why = s.message();
      std::replace(why.begin(), why.end(), '\n', ' ');
      std::cout << "fleet: netns=0: nodes and servers on 127.0.0.1 (" << why << ")\n";
    }
  }
};
::testing::Environment* const kNetworkEnvironment =
    ::testing::AddGlobalTestEnvironment(new NetworkEnvironment);

// nginx with the configuration of docs/fleet.md, proxying to `upstream_url`, as one process
// of this test (master_process off) on `address` and a free port, its cache, logs and pid file
// in a temp dir. Stopped by its PID when destroyed.
class NginxFront {
 public:
  static bool Available() { return testing::FindExecutable("/usr/sbin/nginx"); }

  static Result<std::unique_ptr<NginxFront>> Start(const std::string& upstream_url,
                                                   const std::string& address) {
    const std::string conf = DocBlock("nginx");
    if (conf.empty()) return NotFoundError("no ```nginx block in " HOIST_FLEET_DOC);
    Status last = UnavailableError("nginx did not start");
    for (int attempt = 0; attempt < 3; ++attempt) {
      auto dir = testing::TempDir::Create("hoist-nginx-");
      if (!dir.ok()) return dir.status();
      auto port = testing::PickFreePort();
      if (!port.ok()) return port.status();
      std::unique_ptr<NginxFront> front(new NginxFront(std::move(dir).value(), address, *port));
      const std::string d = front->dir_.path();
      fs::create_directories(d + "/temp");
      const std::string filled =
          Fill(conf, {{"https://registry.example.com", upstream_url},
                      {"listen 5000;", "listen " + address + ":" + std::to_string(*port) + ";"},
                      {"/var/cache/nginx/registry-front", d + "/cache"},
                      {"/var/log/nginx/registry-front.access.log", d + "/access.log"},
                      {"\nhttp {\n", "\nhttp {\n" + TempPaths(d + "/temp")}});
      // Every name, port and path replaced, or the documented block no longer matches.
      for (const char* left : {"example.com", "listen 5000", "/var/"}) {
        if (filled.find(left) != std::string::npos) {
          return FailedPreconditionError("the nginx block of " HOIST_FLEET_DOC " still has " +
                                         std::string(left) + " after the test's replacements");
        }
      }
      if (filled.find(d + "/temp/proxy") == std::string::npos) {
        return FailedPreconditionError("no `http {` line in the nginx block of " HOIST_FLEET_DOC);
      }
      if (Status s = WriteFile(d + "/nginx.conf", filled); !s.ok()) return s;
      auto child = testing::ChildProcess::Spawn(
          {"/usr/sbin/nginx", "-p", d, "-c", d + "/nginx.conf", "-e", d + "/error.log", "-g",
           "daemon off; master_process off; pid " + d + "/nginx.pid;"},
          d + "/output.log");
      if (!child.ok()) return child.status();
      front->child_.emplace(std::move(child).value());
      bool ready = WaitFor(
          [&] {
            if (!front->child_->Running()) return true;
            auto r = testing::HttpCall("GET", front->url() + "/v2/", {}, "", "", 2);
            return r.ok() && r->status == 200;
          },
          15);
      if (ready && front->child_->Running()) return front;
      last = UnavailableError("nginx did not start: " + ReadFile(d + "/output.log") +
                              ReadFile(d + "/error.log"));
    }
    return last;
  }

  ~NginxFront() { Stop(); }
  void Stop() {
    if (child_) child_->Stop();
  }
  std::string host() const { return address_ + ":" + std::to_string(port_); }
  std::string url() const { return "http://" + host(); }
  std::string error_log() const { return ReadFile(dir_.path() + "/error.log"); }
  // The client addresses of the blob GETs in the access log (its first field, the format being
  // nginx's `combined`).
  std::set<std::string> BlobClients() const {
    std::set<std::string> out;
    for (const std::string& line : Lines(ReadFile(dir_.path() + "/access.log"))) {
      if (line.find("\"GET /v2/") != std::string::npos &&
          line.find("/blobs/sha256:") != std::string::npos) {
        out.insert(line.substr(0, line.find(' ')));
      }
    }
    return out;
  }

 private:
  NginxFront(testing::TempDir dir, std::string address, int port)
      : dir_(std::move(dir)), address_(std::move(address)), port_(port) {}
  testing::TempDir dir_;
  std::string address_;
  int port_;
  std::optional<testing::ChildProcess> child_;
};

// `r` sent on to the registry at `url`, and its answer with the headers a client of a registry
// needs. A HEAD is sent as a GET: the fixture answers a HEAD with headers only, and with the
// length of the body it is given.
testing::HttpResponse Forward(const std::string& url, const testing::HttpRequest& r) {
  std::vector<std::string> headers;
  auto accept = r.headers.find("accept");
  if (accept != r.headers.end()) headers.push_back("Accept: " + accept->second);
  auto got = testing::HttpCall(r.method == "HEAD" ? "GET" : r.method, url + r.target, headers);
  if (!got.ok()) return testing::HttpResponse{502, {}, got.status().message()};
  testing::HttpResponse out{got->status, {}, got->body};
  for (const char* name : {"content-type", "docker-content-digest", "www-authenticate"}) {
    auto h = got->headers.find(name);
    if (h != got->headers.end()) out.headers.emplace_back(name, h->second);
  }
  return out;
}

// One node: a directory with its own HOME, store and registries.conf, and with netns its own
// network namespace (`netns` for nsenter --net=, empty on loopback) and address.
struct Node {
  std::string dir, home, store, conf;
  std::string netns, address = "127.0.0.1";
};

// What N nodes pulling at once gave: the nodes, each node's pull, and the wall time of them all.
struct FleetRun {
  std::vector<Node> nodes;
  std::vector<CliRun> pulls;
  long long wall_ms = 0;
};

class FleetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!TestRegistry::Available()) GTEST_SKIP() << "docker-registry not installed";
    auto dir = testing::TempDir::Create("hoist-fleet-");
    ASSERT_TRUE(dir.ok());
    dir_.emplace(std::move(dir).value());
    RegistryOptions o;
    o.listen_address = Net().hub_address;
    auto up = TestRegistry::Start(o);
    ASSERT_TRUE(up.ok()) << up.status().message();
    upstream_ = std::move(up).value();
    // 7 layers of 1.5 MiB that do not compress, and the config: 8 blobs.
    std::vector<std::vector<testing::TarEntry>> layers;
    for (int i = 0; i < 7; ++i) {
      layers.push_back(
          {{"data/", "", '5'},
           {"data/part" + std::to_string(i), testing::RandomBytes(1536 << 10, i + 1)}});
    }
    image_ = testing::BuildImage(testing::Format::kOci, layers);
    ASSERT_TRUE(testing::PushImage(upstream_->host(), kRepo, "1", image_).ok());
    ref_ = upstream_->host() + "/" + kRepo + ":1";
    blobs_ = {image_.config.digest};
    for (const auto& l : image_.layers) blobs_.push_back(l.digest);
  }

  // A new node whose registries.conf is the one of docs/fleet.md with `mirror_host` as the
  // front, or one with no mirror when `mirror_host` is empty; with netns, in a network
  // namespace of its own.
  Node NewNode(const std::string& mirror_host) {
    Node n;
    n.dir = dir_->path() + "/node" + std::to_string(++nodes_);
    n.home = n.dir + "/home";
    n.store = n.dir + "/store";
    n.conf = n.dir + "/registries.conf";
    fs::create_directories(n.home);
    if (Net().netns) {
      auto ns = MakeNodeNamespace(n.dir);
      EXPECT_TRUE(ns.ok()) << "node " << nodes_ << ": " << ns.status().message();
      if (ns.ok()) {
        n.netns = ns->path;
        n.address = ns->address;
        holders_.push_back(std::move(ns->holder));
      }
    }
    std::string conf;
    if (!mirror_host.empty()) {
      conf = Fill(DocBlock("toml"), {{"front.example.lan:5000", mirror_host},
                                     {"registry.example.com", upstream_->host()}});
      EXPECT_NE(conf.find("[[registry.mirror]]"), std::string::npos) << HOIST_FLEET_DOC;
      EXPECT_EQ(conf.find("example"), std::string::npos) << conf;
    }
    EXPECT_TRUE(WriteFile(n.conf, conf).ok()) << n.conf;
    return n;
  }

  // `hoist ARGS` as the node: a clean environment with only PATH, HOME and
  // HOIST_REGISTRIES_CONF; the node's store; the node's network namespace.
  CliRun Hoist(const Node& n, std::vector<std::string> args) {
    std::vector<std::string> argv = {"-i",
                                     "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
                                     "HOME=" + n.home,
                                     "HOIST_REGISTRIES_CONF=" + n.conf,
                                     HOIST_CLI,
                                     "--store",
                                     n.store};
    argv.insert(argv.end(), args.begin(), args.end());
    if (n.netns.empty()) return testing::RunCli("/usr/bin/env", argv, n.dir);
    argv.insert(argv.begin(), {"--net=" + n.netns, "/usr/bin/env"});
    return testing::RunCli(Net().nsenter, argv, n.dir);
  }

  // `hoist pull -q` of the image. The upstream speaks plain HTTP: on 127.0.0.1 hoist allows
  // that by itself, on the hub's bridge address it is told so (--insecure-registry).
  std::vector<std::string> PullArgs() const {
    std::vector<std::string> args = {"pull", "-q"};
    if (Net().netns) args.insert(args.end(), {"--insecure-registry", upstream_->host()});
    args.push_back(ref_);
    return args;
  }

  // Nodes() new nodes pull the image at the same moment, each through `mirror_host` (or
  // straight to the upstream when empty).
  FleetRun PullTogether(const std::string& mirror_host) {
    std::vector<Node> nodes;
    for (int i = 0; i < Nodes(); ++i) nodes.push_back(NewNode(mirror_host));
    FleetRun run;
    run.nodes = nodes;
    run.pulls.resize(nodes.size());
    std::latch start(static_cast<ptrdiff_t>(nodes.size()) + 1);
    std::vector<std::thread> threads;
    for (size_t i = 0; i < nodes.size(); ++i) {
      threads.emplace_back([&, i] {
        start.arrive_and_wait();
        run.pulls[i] = Hoist(nodes[i], PullArgs());
      });
    }
    auto t0 = std::chrono::steady_clock::now();
    start.arrive_and_wait();
    for (auto& t : threads) t.join();
    run.wall_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
            .count();
    for (size_t i = 0; i < nodes.size(); ++i) {
      const CliRun& p = run.pulls[i];
      EXPECT_EQ(p.exit_code, 0) << "node " << i << ": " << p.out << p.err;
      EXPECT_EQ(p.out, ref_ + "@" + image_.manifest_digest + "\n") << "node " << i;
      CliRun verify = Hoist(nodes[i], {"verify", ref_});
      EXPECT_EQ(verify.exit_code, 0) << "node " << i << ": " << verify.out << verify.err;
    }
    return run;
  }

  // The upstream's GETs of each blob of the image, and their sum.
  std::map<std::string, int> UpstreamBlobGets(int* total) {
    std::map<std::string, int> gets;
    *total = 0;
    for (const auto& d : blobs_) {
      gets[d] = upstream_->CountRequests("GET", std::string("/v2/") + kRepo + "/blobs/" + d);
      *total += gets[d];
    }
    return gets;
  }

  void Report(const std::string& front, const FleetRun& run, int upstream_gets) {
    std::cout << "fleet: front=" << front << " nodes=" << Nodes() << " blobs=" << blobs_.size()
              << " upstream_blob_gets=" << upstream_gets << " wall_ms=" << run.wall_ms
              << " netns=" << Net().netns << "\n";
    RecordProperty("upstream_blob_gets", upstream_gets);
    RecordProperty("wall_ms", std::to_string(run.wall_ms));
    RecordProperty("netns", Net().netns ? 1 : 0);
  }

  std::optional<testing::TempDir> dir_;
  std::unique_ptr<TestRegistry> upstream_;
  BuiltImage image_;
  std::string ref_;
  std::vector<std::string> blobs_;
  int nodes_ = 0;
  std::vector<testing::ChildProcess> holders_;  // the nodes' namespaces, stopped by their PIDs
};

// Without a front every node fetches every blob: the count the fronts are measured against,
// and a check that the upstream's log counts what the other tests rely on.
TEST_F(FleetTest, NodesStraightToTheUpstreamFetchEveryBlobEach) {
  FleetRun run = PullTogether("");
  int total = 0;
  for (const auto& [digest, gets] : UpstreamBlobGets(&total)) {
    EXPECT_EQ(gets, Nodes()) << digest;
  }
  Report("none", run, total);
}

TEST_F(FleetTest, NodesPullThroughNginxAndTheUpstreamServesEachBlobOnce) {
  if (!NginxFront::Available()) GTEST_SKIP() << "nginx not installed";
  auto front = NginxFront::Start(upstream_->url(), Net().hub_address);
  ASSERT_TRUE(front.ok()) << front.status().message();
  const std::string front_host = (*front)->host();

  // hoist config: the front first, then the upstream.
  Node probe = NewNode(front_host);
  CliRun config = Hoist(probe, {"config", ref_});
  ASSERT_EQ(config.exit_code, 0) << config.out << config.err;
  size_t at_front = config.out.find(front_host);
  ASSERT_NE(at_front, std::string::npos) << config.out;
  EXPECT_NE(config.out.find(upstream_->host(), at_front + front_host.size()), std::string::npos)
      << "the upstream comes after the front:\n"
      << config.out;

  // A HEAD for a blob not cached yet is sent upstream as a GET and fills the cache
  // (proxy_cache_convert_head): it answers like the upstream, and the nodes' GETs are hits.
  const std::string first = image_.layers[0].digest;
  const int pushed_heads = upstream_->CountRequests("HEAD", "/blobs/");  // the push's
  auto head = testing::HttpCall("HEAD", (*front)->url() + "/v2/" + kRepo + "/blobs/" + first);
  ASSERT_TRUE(head.ok()) << head.status().message();
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->headers["docker-content-digest"], first);
  EXPECT_EQ(head->headers["content-length"], std::to_string(image_.layers[0].data.size()));
  EXPECT_EQ(upstream_->CountRequests("HEAD", "/blobs/"), pushed_heads);
  // nginx answers the HEAD once the upstream's headers are in, while the body may still be on
  // its way to the cache: the upstream logs that GET when it has sent it all.
  WaitFor([&] { return upstream_->CountRequests("GET", "/blobs/" + first) >= 1; }, 10);
  EXPECT_EQ(upstream_->CountRequests("GET", "/blobs/" + first), 1);

  FleetRun run = PullTogether(front_host);
  int total = 0;
  for (const auto& [digest, gets] : UpstreamBlobGets(&total)) {
    EXPECT_EQ(gets, 1) << "the upstream served " << digest << " " << gets << " times\n"
                       << (*front)->error_log();
  }
  for (const auto& p : run.pulls) EXPECT_EQ(p.err, "") << "no node passed the front over";
  // The nodes' blob GETs came from the nodes' own addresses: with netns, one per node (each
  // in its own namespace), none from the hub's.
  std::set<std::string> addresses;
  for (const Node& n : run.nodes) addresses.insert(n.address);
  EXPECT_EQ(addresses.size(), Net().netns ? run.nodes.size() : 1u);
  WaitFor([&] { return (*front)->BlobClients() == addresses; }, 5);
  EXPECT_EQ((*front)->BlobClients(), addresses);
  Report("nginx", run, total);

  // A hit answers with the upstream's headers.
  const std::string layer = image_.layers[0].digest;
  auto hit = testing::HttpCall("GET", (*front)->url() + "/v2/" + kRepo + "/blobs/" + layer);
  ASSERT_TRUE(hit.ok()) << hit.status().message();
  EXPECT_EQ(hit->status, 200);
  EXPECT_EQ(hit->headers["x-cache-status"], "HIT");
  EXPECT_EQ(hit->headers["docker-content-digest"], layer);
  EXPECT_EQ(hit->headers["content-type"], "application/octet-stream");
  EXPECT_EQ(hit->body, image_.layers[0].data);
  // Read only: the front refuses an upload.
  auto push = testing::HttpCall("POST", (*front)->url() + "/v2/" + kRepo + "/blobs/uploads/");
  ASSERT_TRUE(push.ok()) << push.status().message();
  EXPECT_EQ(push->status, 403);

  // The front goes away: a new node pulls from the upstream, with one notice naming the front
  // (after the one retry the front gets, a line of its own).
  (*front)->Stop();
  Node late = NewNode(front_host);
  CliRun pull = Hoist(late, PullArgs());
  ASSERT_EQ(pull.exit_code, 0) << pull.out << pull.err;
  EXPECT_EQ(pull.out, ref_ + "@" + image_.manifest_digest + "\n");
  std::cout << "fleet: stderr with the front down:\n" << pull.err;
  std::vector<std::string> notices = Lines(pull.err);
  for (const auto& line : notices) EXPECT_NE(line.find(front_host), std::string::npos) << line;
  std::erase_if(notices, [](const std::string& n) { return n.find(": Retrying in ") != n.npos; });
  ASSERT_EQ(notices.size(), 1u) << pull.err;
  EXPECT_EQ(notices[0].rfind("hoist: mirror " + front_host + " failed (", 0), 0u) << notices[0];
  EXPECT_NE(notices[0].find("; trying " + upstream_->host()), std::string::npos) << notices[0];
  EXPECT_EQ(Hoist(late, {"verify", ref_}).exit_code, 0);
  int after = 0;
  for (const auto& [digest, gets] : UpstreamBlobGets(&after)) {
    EXPECT_EQ(gets, 2) << "the late node fetched " << digest << " from the upstream";
  }
}

// A registry that sends its blobs from elsewhere: the front follows the redirect, caches the
// target under the blob's key, and the target (here the upstream, with a signed-looking query)
// serves each blob once.
TEST_F(FleetTest, NginxFollowsBlobRedirectsAndCachesWhatTheyPointTo) {
  if (!NginxFront::Available()) GTEST_SKIP() << "nginx not installed";
  const std::string up = upstream_->url();
  auto redirecting = testing::FixtureServer::Start(
      [up](const testing::HttpRequest& r) {
        if (r.target.find("/blobs/sha256:") != std::string::npos) {
          return testing::HttpResponse{307, {{"Location", up + r.target + "?signature=s1"}}, ""};
        }
        return Forward(up, r);
      },
      Net().hub_address);
  ASSERT_TRUE(redirecting.ok()) << redirecting.status().message();
  auto front = NginxFront::Start((*redirecting)->url(), Net().hub_address);
  ASSERT_TRUE(front.ok()) << front.status().message();

  FleetRun run = PullTogether((*front)->host());
  int total = 0;
  for (const auto& [digest, gets] : UpstreamBlobGets(&total)) {
    EXPECT_EQ(gets, 1) << "the redirect target served " << digest << " " << gets << " times";
  }
  for (const auto& p : run.pulls) EXPECT_EQ(p.err, "") << "no node passed the front over";
  int redirects = 0;
  for (const auto& r : (*redirecting)->requests()) {
    redirects += r.target.find("/blobs/sha256:") != std::string::npos;
  }
  std::cout << "fleet: redirecting registry answered " << redirects << " blob GETs\n";
  Report("nginx-redirect", run, total);
  (*front)->Stop();
}

// An upstream that takes longer to answer a blob than nginx's default proxy_cache_lock_timeout
// and proxy_cache_lock_age (5 s): with the recipe's 10m the nodes that wait still get the one
// fetch, and the upstream serves each blob once.
TEST_F(FleetTest, NginxWaitsForASlowUpstreamInsteadOfFetchingAgain) {
  if (!NginxFront::Available()) GTEST_SKIP() << "nginx not installed";
  const std::string up = upstream_->url();
  auto slow = testing::FixtureServer::Start(
      [up](const testing::HttpRequest& r) {
        if (r.target.find("/blobs/sha256:") != std::string::npos) {
          std::this_thread::sleep_for(std::chrono::milliseconds(6500));
        }
        return Forward(up, r);
      },
      Net().hub_address);
  ASSERT_TRUE(slow.ok()) << slow.status().message();
  auto front = NginxFront::Start((*slow)->url(), Net().hub_address);
  ASSERT_TRUE(front.ok()) << front.status().message();

  FleetRun run = PullTogether((*front)->host());
  int total = 0;
  for (const auto& [digest, gets] : UpstreamBlobGets(&total)) {
    EXPECT_EQ(gets, 1) << "the upstream served " << digest << " " << gets << " times\n"
                       << (*front)->error_log();
  }
  for (const auto& p : run.pulls) EXPECT_EQ(p.err, "") << "no node passed the front over";
  Report("nginx-slow-upstream", run, total);
}

// Peer serving (docs/fleet.md#peer-serving): a seed node pulls from the upstream and serves its
// store with `hoist serve`; the other nodes list it as their mirror, and the upstream serves
// each blob once, to the seed. On loopback all nodes connect from 127.0.0.1, so the seed allows
// more connections from one address than its default (64). Run as root, the seed serves with
// --user nobody, as docs/fleet.md does.
TEST_F(FleetTest, NodesPullFromASeedNodeServingItsStore) {
  Node seed = NewNode("");
  CliRun pull = Hoist(seed, PullArgs());
  ASSERT_EQ(pull.exit_code, 0) << pull.out << pull.err;
  auto port = testing::PickFreePort();
  ASSERT_TRUE(port.ok());
  const std::string seed_host = Net().hub_address + ":" + std::to_string(*port);
  std::vector<std::string> argv = {HOIST_CLI,
                                   "--store",
                                   seed.store,
                                   "serve",
                                   "--listen",
                                   seed_host,
                                   "--access-log",
                                   seed.dir + "/access.log",
                                   "--max-connections-per-ip",
                                   "1024",
                                   "--max-connections",
                                   "1024"};
  // As docs/fleet.md runs it over a store pulled as root: HTTP from an unprivileged process.
  if (geteuid() == 0 && getpwnam("nobody") != nullptr) {
    argv.insert(argv.end(), {"--user", "nobody"});
  }
  // Beyond loopback it serves without credentials only when told so.
  if (Net().netns) argv.push_back("--anonymous");
  auto serve = testing::ChildProcess::Spawn(argv, seed.dir + "/serve.out");
  ASSERT_TRUE(serve.ok()) << serve.status().message();
  ASSERT_TRUE(WaitFor(
      [&] {
        auto r = testing::HttpCall("GET", "http://" + seed_host + "/v2/", {}, "", "", 2);
        return r.ok() && r->status == 200;
      },
      15))
      << ReadFile(seed.dir + "/serve.out");

  FleetRun run = PullTogether(seed_host);
  int total = 0;
  for (const auto& [digest, gets] : UpstreamBlobGets(&total)) {
    EXPECT_EQ(gets, 1) << "the upstream served " << digest << " " << gets << " times";
  }
  for (const auto& p : run.pulls) EXPECT_EQ(p.err, "") << "no node passed the seed over";
  Report("hoist-serve-peer", run, total);
  serve->Stop();
}

// The CNCF distribution registry in proxy mode as the front: every node gets the image, but
// concurrent misses are not coalesced, so the upstream sees more GETs than blobs (measured
// and printed; how many depends on timing).
TEST_F(FleetTest, NodesPullThroughTheDistributionProxy) {
  RegistryOptions o;
  o.proxy_remote_url = upstream_->url();
  o.listen_address = Net().hub_address;
  auto proxy = TestRegistry::Start(o);
  ASSERT_TRUE(proxy.ok()) << proxy.status().message();
  FleetRun run = PullTogether((*proxy)->host());
  int total = 0;
  for (const auto& [digest, gets] : UpstreamBlobGets(&total)) {
    EXPECT_GE(gets, 1) << digest;
    EXPECT_LE(gets, 2 * Nodes()) << digest;
  }
  for (const auto& p : run.pulls) EXPECT_EQ(p.err, "") << "no node passed the front over";
  Report("distribution-proxy", run, total);
}

}  // namespace
}  // namespace hoist
