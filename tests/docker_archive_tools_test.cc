// docker-archive against the real tools: archives written by `docker save` (docker 20.10's
// legacy layout, and the docker 25+ blobs/sha256 layout rebuilt from it), `podman save` and
// `skopeo copy ... docker-archive:` are read by hoist's source; the archives hoist's destination
// writes are loaded by `docker load` and `podman load` and read by `skopeo inspect`.
//
// dockerd (Debian's docker.io) is started here on a private data root, exec root and socket,
// without iptables or a bridge, and stopped by its PID; podman runs on a private root with the
// vfs driver. A tool that is missing or cannot run here skips its test.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <thread>

#include "base/status_macros.h"
#include "manifest/config.h"
#include "manifest/manifest.h"
#include "support/image_builder.h"
#include "support/process.h"
#include "transport/collecting_destination_test.h"
#include "transport/docker_archive.h"
#include "transport/transport.h"

namespace hoist {
namespace {

using testing::BuiltImage;
using testing::ChildProcess;
using testing::FindExecutable;
using testing::RunCommand;
using testing::TempDir;
using transport::CollectingDestination;
using transport::ImageSource;
using transport::ManifestBytes;

// Serves a BuiltImage from memory.
class MemorySource : public ImageSource {
 public:
  explicit MemorySource(const BuiltImage& img) : img_(img) {
    blobs_[img.config.digest] = img.config.data;
    for (const auto& l : img.layers) blobs_[l.digest] = l.data;
  }
  Result<ManifestBytes> TopManifest() override {
    return transport::MakeManifestBytes(img_.manifest, img_.manifest_media_type);
  }
  Result<ManifestBytes> Manifest(const Digest& d) override {
    return NotFoundError("no manifest " + d.String());
  }
  Status Blob(const Descriptor& d, const registry::BlobSink& sink) override {
    auto it = blobs_.find(d.digest.String());
    if (it == blobs_.end()) return NotFoundError("no blob " + d.digest.String());
    return sink.write(it->second.data(), it->second.size());
  }

 private:
  const BuiltImage& img_;
  std::map<std::string, std::string> blobs_;
};

// The image every test moves around: two gzip layers (a file, a directory with a symlink).
const BuiltImage& Image() {
  static const BuiltImage img = testing::BuildImage(
      testing::Format::kDocker,
      {{{.path = "etc/", .type = '5', .mode = 0755}, {.path = "etc/hello", .content = "hello\n"}},
       {{.path = "usr/", .type = '5', .mode = 0755},
        {.path = "usr/data", .content = testing::RandomBytes(100000, 7)},
        {.path = "usr/link", .type = '2', .linkname = "data"}}});
  return img;
}

// Writes Image() as a docker-archive named `tags` with hoist's destination.
Status SaveImage(const std::string& path, const std::string& spool,
                 const std::vector<std::string>& tags) {
  MemorySource src(Image());
  ASSIGN_OR_RETURN(auto dst, transport::OpenDockerArchiveDestination(path, spool));
  RETURN_IF_ERROR(transport::Copy(src, *dst, tags, {}).status());
  return dst->Close();
}

// Reads `path` with hoist's source and checks it holds Image(): the same config bytes, and
// layers that are the image's layers inflated (the source checked each one against its diff_id)
// or as stored. Returns the source's names.
void ExpectHoldsImage(const std::string& path, const std::string& ref, const std::string& spool,
                      std::vector<std::string>* names = nullptr) {
  auto src = transport::OpenDockerArchiveSource(path, ref, spool);
  ASSERT_TRUE(src.ok()) << src.status().message();
  auto top = (*src)->TopManifest();
  ASSERT_TRUE(top.ok()) << top.status().message();
  auto decoded = manifest::Decode(top->media_type, top->bytes);
  ASSERT_TRUE(decoded.ok()) << decoded.status().message();
  EXPECT_EQ(decoded->manifest.config.digest.String(), Image().config.digest);
  ASSERT_EQ(decoded->manifest.layers.size(), Image().diff_ids.size());
  for (size_t i = 0; i < Image().diff_ids.size(); ++i) {
    const std::string got = decoded->manifest.layers[i].digest.String();
    EXPECT_TRUE(got == Image().diff_ids[i] || got == Image().layers[i].digest) << i << ": " << got;
  }
  CollectingDestination dst;
  auto copied = transport::Copy(**src, dst, {}, {});
  ASSERT_TRUE(copied.ok()) << copied.status().message();
  EXPECT_EQ(dst.blobs[Image().config.digest], Image().config.data);
  if (names) *names = (*src)->Names();
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Rebuilds a docker (up to 24) archive in docker 25's layout: every file manifest.json names
// moved to blobs/sha256/<hex>, beside an OCI index.json and oci-layout.
Result<std::string> ToBlobsLayout(const std::string& legacy, const std::string& dir) {
  RETURN_IF_ERROR(RunCommand({"mkdir", "-p", dir + "/x"}, 10).status());
  RETURN_IF_ERROR(RunCommand({"tar", "-xf", legacy, "-C", dir + "/x"}, 60).status());
  auto doc = nlohmann::json::parse(ReadFile(dir + "/x/manifest.json"), nullptr, false);
  if (doc.is_discarded() || !doc.is_array()) return DataLossError("bad manifest.json");
  std::vector<testing::TarEntry> entries = {{.path = "blobs/", .type = '5', .mode = 0755},
                                            {.path = "blobs/sha256/", .type = '5', .mode = 0755}};
  std::map<std::string, std::string> added;
  auto move = [&](nlohmann::json& name) {
    std::string data = ReadFile(dir + "/x/" + name.get<std::string>());
    std::string path = "blobs/sha256/" + testing::Sha256Digest(data).substr(7);
    if (added.emplace(path, data).second) entries.push_back({.path = path, .content = data});
    name = path;
  };
  for (auto& img : doc) {
    move(img["Config"]);
    for (auto& l : img["Layers"]) move(l);
  }
  entries.push_back({.path = "oci-layout", .content = R"({"imageLayoutVersion":"1.0.0"})"});
  entries.push_back({.path = "index.json", .content = R"({"schemaVersion":2,"manifests":[]})"});
  entries.push_back({.path = "manifest.json", .content = doc.dump()});
  const std::string out = dir + "/blobs-layout.tar";
  std::ofstream(out, std::ios::binary) << testing::MakeTar(entries);
  return out;
}

// A dockerd of our own, stopped (by its PID) when destroyed.
class Dockerd {
 public:
  static Result<std::unique_ptr<Dockerd>> Start() {
    if (!FindExecutable("dockerd") || !FindExecutable("docker")) {
      return UnavailableError("dockerd is not installed");
    }
    ASSIGN_OR_RETURN(TempDir dir, TempDir::Create("hoist-dockerd-"));
    std::unique_ptr<Dockerd> d(new Dockerd(std::move(dir)));
    const std::string& p = d->dir_.path();
    ASSIGN_OR_RETURN(d->daemon_,
                     ChildProcess::Spawn({"dockerd", "--data-root", p + "/root", "--exec-root",
                                          p + "/exec", "-H", d->host_, "--pidfile", p + "/pid",
                                          "--iptables=false", "--ip6tables=false", "--bridge=none"},
                                         p + "/log"));
    for (int i = 0; i < 120; ++i) {  // up to 60 s
      if (d->Docker({"version"}).ok()) return d;
      if (!d->daemon_->Running()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
    return UnavailableError("dockerd did not start: " + ReadFile(p + "/log").substr(0, 2000));
  }
  ~Dockerd() {
    if (daemon_) daemon_->Stop(30);
  }
  Result<std::string> Docker(std::vector<std::string> args) {
    args.insert(args.begin(), {"docker", "-H", host_});
    return RunCommand(args, 120);
  }
  const std::string& dir() const { return dir_.path(); }

 private:
  explicit Dockerd(TempDir dir) : dir_(std::move(dir)), host_("unix://" + dir_.path() + "/sock") {}
  TempDir dir_;
  std::string host_;
  std::optional<ChildProcess> daemon_;
};

class DockerArchiveToolsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto d = TempDir::Create("hoist-docker-archive-");
    ASSERT_TRUE(d.ok()) << d.status().message();
    dir_.emplace(std::move(*d));
  }
  std::string Path(const std::string& name) const { return dir_->path() + "/" + name; }
  // podman on a private root (vfs), so the machine's images are never touched.
  Result<std::string> Podman(std::vector<std::string> args) {
    args.insert(args.begin(), {"podman", "--root", Path("podman-root"), "--runroot",
                               Path("podman-run"), "--storage-driver", "vfs"});
    return RunCommand(args, 120);
  }

  std::optional<TempDir> dir_;
};

// hoist's archive loads into docker 20.10 (gzip layers as stored); docker's own save of it, in
// the legacy layout and rebuilt in docker 25's, reads back in hoist as the same image.
TEST_F(DockerArchiveToolsTest, DockerLoadsOursAndWeReadDockerSave) {
  auto dockerd = Dockerd::Start();
  if (!dockerd.ok()) GTEST_SKIP() << dockerd.status().message();
  Dockerd& docker = **dockerd;
  ASSERT_TRUE(SaveImage(Path("ours.tar"), dir_->path(), {"hoist-test/app:1"}).ok());
  auto loaded = docker.Docker({"load", "-i", Path("ours.tar")});
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  EXPECT_NE(loaded->find("hoist-test/app:1"), std::string::npos) << *loaded;
  auto id = docker.Docker({"image", "inspect", "--format", "{{.Id}}", "hoist-test/app:1"});
  ASSERT_TRUE(id.ok()) << id.status().message();
  EXPECT_EQ(*id, Image().config.digest + "\n");

  ASSERT_TRUE(docker.Docker({"save", "-o", Path("saved.tar"), "hoist-test/app:1"}).ok());
  auto listing = RunCommand({"tar", "-tf", Path("saved.tar")}, 30);
  ASSERT_TRUE(listing.ok());
  EXPECT_NE(listing->find("/layer.tar"), std::string::npos) << "not the legacy layout";
  std::vector<std::string> names;
  ExpectHoldsImage(Path("saved.tar"), "", dir_->path(), &names);
  EXPECT_EQ(names, std::vector<std::string>{"hoist-test/app:1"});
  ExpectHoldsImage(Path("saved.tar"), "hoist-test/app:1", dir_->path());

  auto blobs = ToBlobsLayout(Path("saved.tar"), Path("re"));
  ASSERT_TRUE(blobs.ok()) << blobs.status().message();
  ExpectHoldsImage(*blobs, "", dir_->path());
  // Compressed, from a pipe: the same.
  ASSERT_TRUE(RunCommand({"sh", "-c", "gzip -c " + *blobs + " > " + Path("re.tar.gz")}, 60).ok());
  ExpectHoldsImage(Path("re.tar.gz"), "", dir_->path());
}

// hoist's archive loads into podman 4.3; podman's save (docker-archive) reads back in hoist.
TEST_F(DockerArchiveToolsTest, PodmanLoadsOursAndWeReadPodmanSave) {
  if (!FindExecutable("podman")) GTEST_SKIP() << "podman is not installed";
  ASSERT_TRUE(SaveImage(Path("ours.tar"), dir_->path(), {"hoist-test/app:1"}).ok());
  if (auto info = Podman({"info"}); !info.ok()) {
    GTEST_SKIP() << "podman cannot run here: " << info.status().message();
  }
  auto loaded = Podman({"load", "-i", Path("ours.tar")});
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  EXPECT_NE(loaded->find("hoist-test/app:1"), std::string::npos) << *loaded;
  auto id = Podman({"image", "inspect", "--format", "{{.Id}}", "hoist-test/app:1"});
  ASSERT_TRUE(id.ok()) << id.status().message();
  EXPECT_EQ("sha256:" + *id, Image().config.digest + "\n");

  ASSERT_TRUE(
      Podman({"save", "--format", "docker-archive", "-o", Path("saved.tar"), "hoist-test/app:1"})
          .ok());
  std::vector<std::string> names;
  ExpectHoldsImage(Path("saved.tar"), "", dir_->path(), &names);
  ASSERT_EQ(names.size(), 1u);
  EXPECT_NE(names[0].find("hoist-test/app:1"), std::string::npos);
}

// skopeo reads hoist's archive (inspect, copy) and writes one hoist reads.
TEST_F(DockerArchiveToolsTest, SkopeoReadsOursAndWeReadSkopeos) {
  if (!FindExecutable("skopeo")) GTEST_SKIP() << "skopeo is not installed";
  ASSERT_TRUE(SaveImage(Path("ours.tar"), dir_->path(), {"hoist-test/app:1"}).ok());
  auto inspect = RunCommand({"skopeo", "inspect", "docker-archive:" + Path("ours.tar")}, 60);
  ASSERT_TRUE(inspect.ok()) << inspect.status().message();
  auto info = nlohmann::json::parse(*inspect, nullptr, false);
  ASSERT_FALSE(info.is_discarded()) << *inspect;
  EXPECT_EQ(info["Architecture"], "amd64");
  EXPECT_EQ(info["Layers"].size(), 2u) << *inspect;

  auto copied = RunCommand({"skopeo", "copy", "docker-archive:" + Path("ours.tar"),
                            "docker-archive:" + Path("skopeo.tar") + ":hoist-test/app:2"},
                           120);
  ASSERT_TRUE(copied.ok()) << copied.status().message();
  std::vector<std::string> names;
  ExpectHoldsImage(Path("skopeo.tar"), "hoist-test/app:2", dir_->path(), &names);
  ASSERT_EQ(names.size(), 1u);
  EXPECT_NE(names[0].find("hoist-test/app:2"), std::string::npos);
}

}  // namespace
}  // namespace hoist
