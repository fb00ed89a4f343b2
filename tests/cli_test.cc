// The hoist command line against the real registry: output, exit codes, error lines,
// concurrent processes sharing a store, and skopeo as an independent client on both sides.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "base/strings.h"
#include "content/store.h"
#include "support/http_server.h"
#include "support/image_builder.h"
#include "support/process.h"
#include "support/registry.h"

namespace hoist {
namespace {

namespace fs = std::filesystem;
using testing::BuiltImage;
using testing::Format;

using testing::CliRun;

// The hoist binary with `args`; stdout and stderr captured separately.
CliRun Hoist(const std::vector<std::string>& args, const std::string& dir) {
  return testing::RunCli(HOIST_CLI, args, dir);
}

int CountLines(const std::string& text, const std::string& needle) {
  int n = 0;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) n += line.find(needle) != std::string::npos;
  return n;
}

BuiltImage TwoLayers(Format f, const std::string& word) {
  return testing::BuildImage(f, {{{"etc/", "", '5'}, {"etc/word", word}},
                                 {{"data", std::string(200000, word[0])}}});
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing::TestRegistry::Available()) GTEST_SKIP() << "docker-registry not installed";
    auto dir = testing::TempDir::Create("hoist-cli-");
    ASSERT_TRUE(dir.ok());
    dir_.emplace(std::move(dir).value());
    store_ = dir_->path() + "/store";
    auto reg = testing::TestRegistry::Start();
    ASSERT_TRUE(reg.ok()) << reg.status().message();
    reg_ = std::move(reg).value();
  }
  std::string Ref(const std::string& repo_tag) { return reg_->host() + "/" + repo_tag; }

  std::optional<testing::TempDir> dir_;
  std::string store_;
  std::unique_ptr<testing::TestRegistry> reg_;
};

TEST_F(CliTest, PullPrintsDockerLikeProgressThenUpToDate) {
  BuiltImage img = TwoLayers(Format::kOci, "progress");
  ASSERT_TRUE(testing::PushImage(reg_->host(), "app", "1", img).ok());

  CliRun first = Hoist({"--store", store_, "pull", Ref("app:1")}, dir_->path());
  ASSERT_EQ(first.exit_code, 0) << first.out << first.err;
  EXPECT_EQ(first.err, "");
  EXPECT_EQ(first.out.rfind("1: Pulling from app\n", 0), 0u) << first.out;
  for (const auto& layer : img.layers) {
    std::string id = layer.digest.substr(7, 12);
    EXPECT_EQ(CountLines(first.out, id + ": Pulling fs layer"), 1) << first.out;
    EXPECT_EQ(CountLines(first.out, id + ": Downloading"), 1);
    EXPECT_EQ(CountLines(first.out, id + ": Verifying Checksum"), 1);
    EXPECT_EQ(CountLines(first.out, id + ": Download complete"), 1);
  }
  EXPECT_EQ(CountLines(first.out, "Digest: " + img.manifest_digest), 1);
  EXPECT_EQ(CountLines(first.out, "Status: Downloaded newer image for " + Ref("app:1")), 1);

  CliRun second = Hoist({"--store", store_, "pull", Ref("app:1")}, dir_->path());
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_EQ(CountLines(second.out, ": Already exists"), 2) << second.out;
  EXPECT_EQ(CountLines(second.out, "Pulling fs layer"), 0) << second.out;
  EXPECT_EQ(CountLines(second.out, "Downloading"), 0);
  EXPECT_EQ(CountLines(second.out, "Status: Image is up to date for " + Ref("app:1")), 1);

  CliRun quiet = Hoist({"--store", store_, "pull", "-q", Ref("app:1")}, dir_->path());
  ASSERT_EQ(quiet.exit_code, 0);
  EXPECT_EQ(quiet.out, Ref("app:1") + "@" + img.manifest_digest + "\n");

  // $HOIST_STORE is the default store.
  setenv("HOIST_STORE", store_.c_str(), 1);
  CliRun images = Hoist({"images", "--format", "/reference"}, dir_->path());
  unsetenv("HOIST_STORE");
  ASSERT_EQ(images.exit_code, 0) << images.err;
  EXPECT_EQ(images.out, Ref("app:1") + "\n");

  CliRun inspect = Hoist({"--store", store_, "inspect", Ref("app:1")}, dir_->path());
  ASSERT_EQ(inspect.exit_code, 0) << inspect.err;
  auto j = nlohmann::json::parse(inspect.out, nullptr, false);
  ASSERT_TRUE(j.is_object()) << inspect.out;
  EXPECT_EQ(j["digest"], img.manifest_digest);
  EXPECT_EQ(j["config"]["digest"], img.config.digest);
  EXPECT_EQ(j["configData"]["rootfs"]["diff_ids"].size(), 2u);
  EXPECT_EQ(j["layers"].size(), 2u);
  EXPECT_EQ(j["platform"]["architecture"], "amd64");
}

TEST_F(CliTest, FailureIsOneStderrLineAndNonZeroExit) {
  BuiltImage img = TwoLayers(Format::kDocker, "broken");
  ASSERT_TRUE(testing::PushImage(reg_->host(), "app", "broken", img).ok());
  auto layer = Digest::Parse(img.layers[0].digest);
  ASSERT_TRUE(layer.ok());
  std::ofstream(reg_->BlobDataPath(*layer), std::ios::trunc | std::ios::binary)
      << std::string(img.layers[0].data.size(), 'z');

  CliRun r = Hoist({"--store", store_, "pull", Ref("app:broken")}, dir_->path());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(CountLines(r.err, ""), 1) << r.err;
  EXPECT_EQ(r.err.rfind("hoist: pull " + Ref("app:broken") + ": blob " + img.layers[0].digest +
                            ": digest mismatch: got sha256:",
                        0),
            0u)
      << r.err;
  EXPECT_FALSE(fs::exists(store_ + "/blobs/sha256/" + img.layers[0].digest.substr(7)));

  CliRun bad = Hoist({"--store", store_, "pull", "Bad/Name"}, dir_->path());
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_EQ(bad.err.rfind("hoist: pull Bad/Name: invalid reference", 0), 0u) << bad.err;
  EXPECT_EQ(CountLines(bad.err, ""), 1);

  CliRun missing = Hoist({"--store", store_, "pull", Ref("nosuch:1")}, dir_->path());
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_EQ(missing.err.rfind("hoist: pull " + Ref("nosuch:1") + ": ", 0), 0u) << missing.err;
  EXPECT_NE(missing.err.find("404"), std::string::npos) << missing.err;
}

// `--store /tmp/x` that another local user created first (and could fill) is refused, as is a
// store that others can write; the error names the path and what to do.
TEST_F(CliTest, StoreOtherUsersControlIsRefused) {
  if (geteuid() != 0 || !testing::FindExecutable("setpriv")) {
    GTEST_SKIP() << "needs root and setpriv to act as another user";
  }
  ASSERT_TRUE(testing::PushImage(reg_->host(), "app", "1", TwoLayers(Format::kOci, "x")).ok());
  ASSERT_EQ(::chmod(dir_->path().c_str(), 01777), 0);  // like /tmp
  auto planted = testing::RunCommand({"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                      "--", "mkdir", "-p", store_ + "/layers"},
                                     60);
  ASSERT_TRUE(planted.ok()) << planted.status().message();
  CliRun r = Hoist({"--store", store_, "pull", Ref("app:1")}, dir_->path());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(CountLines(r.err, ""), 1) << r.err;
  EXPECT_NE(r.err.find(store_ + ": owned by uid 65534"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(store_ + "/blobs"));

  const std::string own = dir_->path() + "/own";
  ASSERT_EQ(::mkdir(own.c_str(), 0777), 0);
  ASSERT_EQ(::chmod(own.c_str(), 0777), 0);
  r = Hoist({"--store", own, "pull", Ref("app:1")}, dir_->path());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find(own + ": writable by group or others (mode 0777)"), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("chmod go-w"), std::string::npos) << r.err;
  ASSERT_EQ(::chmod(own.c_str(), 0755), 0);  // ours, merely readable: tightened and used
  r = Hoist({"--store", own, "pull", Ref("app:1")}, dir_->path());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  struct stat st;
  ASSERT_EQ(::stat(own.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
}

TEST_F(CliTest, ConcurrentProcessesLeaveAnIntactStore) {
  // Two images sharing their first layer, pulled by several processes at once.
  auto base = std::vector<testing::TarEntry>{{"shared", std::string(300000, 's')}};
  BuiltImage a = testing::BuildImage(Format::kOci, {base, {{"a", std::string(100000, 'a')}}});
  BuiltImage b = testing::BuildImage(Format::kOci, {base, {{"b", std::string(100000, 'b')}}});
  ASSERT_TRUE(testing::PushImage(reg_->host(), "a", "1", a).ok());
  ASSERT_TRUE(testing::PushImage(reg_->host(), "b", "1", b).ok());

  std::vector<testing::ChildProcess> children;
  for (int i = 0; i < 4; ++i) {
    auto child = testing::ChildProcess::Spawn(
        {HOIST_CLI, "--store", store_, "pull", "-q", Ref(i % 2 ? "a:1" : "b:1")},
        dir_->path() + "/child" + std::to_string(i) + ".log");
    ASSERT_TRUE(child.ok());
    children.push_back(std::move(child).value());
  }
  for (int i = 0; i < 4; ++i) {
    int status = 0;
    ASSERT_EQ(waitpid(children[i].pid(), &status, 0), children[i].pid());
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << std::ifstream(dir_->path() + "/child" + std::to_string(i) + ".log").rdbuf();
  }
  // Every blob verifies; both records are there; nothing is left in ingest.
  auto store = content::Store::Open(store_);
  ASSERT_TRUE(store.ok());
  for (const BuiltImage* img : {&a, &b}) {
    for (const auto& blob : img->layers) {
      auto d = Digest::Parse(blob.digest);
      auto bytes = (*store)->ReadBlob(*d, 1 << 24);
      ASSERT_TRUE(bytes.ok()) << bytes.status().message();
      EXPECT_EQ(*bytes, blob.data);
    }
  }
  auto refs = (*store)->ListRefs();
  ASSERT_TRUE(refs.ok());
  EXPECT_EQ(refs->size(), 2u);
  for (auto& e : fs::recursive_directory_iterator(store_ + "/ingest")) {
    EXPECT_FALSE(e.is_regular_file()) << e.path();
  }
}

TEST_F(CliTest, SkopeoPushesHoistPullsSkopeoReadsTheStore) {
  if (!testing::SkopeoAvailable()) GTEST_SKIP() << "skopeo not installed";
  BuiltImage img = TwoLayers(Format::kOci, "skopeo");
  const std::string layout = dir_->path() + "/layout";
  ASSERT_TRUE(testing::WriteOciLayout(layout, "v1", img).ok());
  std::ofstream(dir_->path() + "/policy.json")
      << R"({"default":[{"type":"insecureAcceptAnything"}]})";
  // skopeo writes the image twice: as is (OCI), and converted to Docker schema2 by itself.
  for (const std::string format : {"oci", "v2s2"}) {
    SCOPED_TRACE(format);
    std::string ref = Ref("skopeo/" + format + ":v1");
    auto copy = testing::RunCommand({"skopeo", "--policy", dir_->path() + "/policy.json", "copy",
                                     "--format", format, "--dest-tls-verify=false",
                                     "oci:" + layout + ":v1", "docker://" + ref},
                                    60);
    ASSERT_TRUE(copy.ok()) << copy.status().message();
    auto remote = testing::RunCommand(
        {"skopeo", "inspect", "--raw", "--tls-verify=false", "docker://" + ref}, 60);
    ASSERT_TRUE(remote.ok()) << remote.status().message();

    CliRun pull = Hoist({"--store", store_, "pull", "-q", ref}, dir_->path());
    ASSERT_EQ(pull.exit_code, 0) << pull.err;
    std::string digest = pull.out.substr(pull.out.find('@') + 1);
    digest.pop_back();
    EXPECT_EQ(digest, testing::Sha256Digest(*remote)) << "hoist's digest is skopeo's bytes'";

    // skopeo reads the store: the registry's manifest itself for OCI, its OCI rendition (same
    // config and layer blobs) for Docker schema2, which an OCI layout cannot list.
    auto local = testing::RunCommand({"skopeo", "inspect", "oci:" + store_ + ":" + ref}, 60);
    ASSERT_TRUE(local.ok()) << local.status().message();
    auto j = nlohmann::json::parse(*local, nullptr, false);
    ASSERT_TRUE(j.is_object()) << *local;
    auto remote_json = nlohmann::json::parse(*remote);
    std::vector<std::string> remote_layers;
    for (const auto& l : remote_json["layers"]) remote_layers.push_back(l["digest"]);
    EXPECT_EQ(j["Layers"].get<std::vector<std::string>>(), remote_layers);
    auto raw = testing::RunCommand({"skopeo", "inspect", "--raw", "oci:" + store_ + ":" + ref}, 60);
    ASSERT_TRUE(raw.ok());
    auto config = testing::RunCommand(
        {"skopeo", "inspect", "--config", "--raw", "oci:" + store_ + ":" + ref}, 60);
    ASSERT_TRUE(config.ok()) << config.status().message();
    EXPECT_EQ(testing::Sha256Digest(*config), remote_json["config"]["digest"]);
    // A full copy out of the store reads and checks every blob.
    auto out = testing::RunCommand({"skopeo", "--policy", dir_->path() + "/policy.json", "copy",
                                    "oci:" + store_ + ":" + ref,
                                    "dir:" + dir_->path() + "/copy-" + format},
                                   60);
    EXPECT_TRUE(out.ok()) << out.status().message();
    if (testing::FindExecutable("umoci")) {
      auto stat = testing::RunCommand({"umoci", "stat", "--image", store_ + ":" + ref}, 60);
      EXPECT_TRUE(stat.ok()) << stat.status().message();
      auto ls = testing::RunCommand({"umoci", "ls", "--layout", store_}, 60);
      ASSERT_TRUE(ls.ok()) << ls.status().message();
      EXPECT_NE(ls->find(ref), std::string::npos) << *ls;
    }
    if (format == "oci") {
      EXPECT_EQ(j["Digest"], digest);
      EXPECT_EQ(*raw, *remote) << "the store holds the registry's manifest bytes";
    } else {
      EXPECT_NE(raw->find("application/vnd.oci.image.manifest.v1+json"), std::string::npos);
      // hoist itself still names the image by the registry's digest.
      CliRun inspect = Hoist({"--store", store_, "inspect", ref}, dir_->path());
      ASSERT_EQ(inspect.exit_code, 0) << inspect.err;
      EXPECT_EQ(nlohmann::json::parse(inspect.out)["digest"], digest);
    }
  }
}

// ---- What a hostile registry or image says never reaches the terminal raw -------------------

// Bytes a terminal acts on that tests feed in: ESC sequences (clear screen, window title), a
// carriage return that forges a line, BEL, DEL, C1 CSI (raw and as UTF-8), a bidi override.
// As JSON string content:
constexpr char kHostileJson[] =
    R"(\u001b[2J\u001b]0;pwned\u0007\rhoist: pull ok\n\u009b31m\u007f\u202e)";

// Where each byte of `text` is a control byte, a C1 control in UTF-8, or not ASCII at all; every
// test input escapes to plain ASCII, so any of these means something was printed raw. The
// trailing newline of each line is allowed.
std::string RawControlBytes(const std::string& text) {
  std::string found;
  for (size_t i = 0; i < text.size(); ++i) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c == '\n' && (i + 1 == text.size() || text[i + 1] != '\n')) continue;
    if (c < 0x20 || c >= 0x7f) found += " byte " + std::to_string(c) + " at " + std::to_string(i);
  }
  return found;
}

// A failed pull: exit 1 and exactly one stderr line, escaped.
void ExpectOneEscapedErrorLine(const CliRun& r) {
  EXPECT_EQ(r.exit_code, 1) << TerminalSafe(r.err);
  EXPECT_EQ(CountLines(r.err, ""), 1) << TerminalSafe(r.err);
  ASSERT_FALSE(r.err.empty());
  EXPECT_EQ(r.err.back(), '\n');
  EXPECT_EQ(RawControlBytes(r.err), "") << TerminalSafe(r.err);
}

// A fixture registry on loopback (no docker-registry needed): each test says what it answers.
class HostileRegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = testing::TempDir::Create("hoist-hostile-");
    ASSERT_TRUE(dir.ok());
    dir_.emplace(std::move(dir).value());
    store_ = dir_->path() + "/store";
  }
  void Serve(testing::FixtureServer::Handler handler) {
    auto server = testing::FixtureServer::Start(std::move(handler));
    ASSERT_TRUE(server.ok()) << server.status().message();
    server_ = std::move(server).value();
  }
  CliRun Pull() {
    return Hoist(
        {"--store", store_, "pull", "--platform", "linux/amd64", server_->host() + "/app:1"},
        dir_->path());
  }

  std::optional<testing::TempDir> dir_;
  std::string store_;
  std::unique_ptr<testing::FixtureServer> server_;
};

TEST_F(HostileRegistryTest, ErrorBodyIsEscaped) {
  Serve([](const testing::HttpRequest& r) {
    // HEAD finds the tag without a digest, so the manifest is fetched and its error body read.
    if (r.method == "HEAD") {
      return testing::HttpResponse{
          200, {{"Content-Type", "application/vnd.oci.image.manifest.v1+json"}}};
    }
    return testing::HttpResponse{404,
                                 {{"Content-Type", "application/json"}},
                                 std::string(R"({"errors":[{"code":"MANIFEST_UNKNOWN)") +
                                     kHostileJson + R"(","message":")" + kHostileJson + R"("}]})"};
  });
  CliRun r = Pull();
  ExpectOneEscapedErrorLine(r);
  EXPECT_NE(r.err.find("HTTP 404 (MANIFEST_UNKNOWN\\x1b[2J\\x1b]0;pwned\\x07\\x0dhoist: pull ok"
                       "\\x0a\\u009b31m\\x7f\\u202e: \\x1b[2J"),
            std::string::npos)
      << TerminalSafe(r.err);
}

TEST_F(HostileRegistryTest, RealmIsEscaped) {
  // quoted-string allows any byte from 0x80 (obs-text): a raw CSI byte, CSI in UTF-8, an RLO.
  Serve([](const testing::HttpRequest&) {
    return testing::HttpResponse{401,
                                 {{"WWW-Authenticate",
                                   "Bearer realm=\"\x9b"
                                   "2J\xc2\x9b"
                                   "31m\xe2\x80\xae"
                                   "ftp:x\",service=\"s\""}}};
  });
  CliRun r = Pull();
  ExpectOneEscapedErrorLine(r);
  EXPECT_NE(r.err.find("token realm \"\\x9b2J\\u009b31m\\u202eftp:x\" is not an http(s) URL"),
            std::string::npos)
      << TerminalSafe(r.err);
}

TEST_F(HostileRegistryTest, PlatformNamesAreEscaped) {
  std::vector<testing::TarEntry> files = {{"f", "x"}};
  testing::BuiltIndex index = testing::BuildIndex(
      Format::kOci, {testing::BuildImage(Format::kOci, {files}, "linux\x1b[2J", "\x1b]0;pwned\x07",
                                         "v8\r\nhoist: pull ok"),
                     testing::BuildImage(Format::kOci, {files},
                                         "\xc2\x9b"
                                         "31m\x7f",
                                         "s390x")});
  Serve([&index](const testing::HttpRequest& r) {
    if (r.target == "/v2/app/manifests/1" || r.target == "/v2/app/manifests/" + index.digest) {
      return testing::HttpResponse{
          200,
          {{"Content-Type", index.media_type}, {"Docker-Content-Digest", index.digest}},
          index.manifest};
    }
    return testing::HttpResponse{404, {}, ""};
  });
  CliRun r = Pull();
  ExpectOneEscapedErrorLine(r);
  EXPECT_NE(r.err.find("available: linux\\x1b[2J/\\x1b]0;pwned\\x07/v8\\x0d\\x0ahoist: pull ok, "
                       "\\u009b31m\\x7f/s390x"),
            std::string::npos)
      << TerminalSafe(r.err);
}

// A token answer nested 300 000 deep is refused (it used to be accepted for its "token").
TEST_F(HostileRegistryTest, DeepTokenAnswerIsAnError) {
  const std::string deep = std::string(300000, '[') + std::string(300000, ']');
  std::string realm;
  Serve([&](const testing::HttpRequest& r) {
    if (r.target.starts_with("/token")) {
      return testing::HttpResponse{
          200, {{"Content-Type", "application/json"}}, R"({"token":"abc","x":)" + deep + "}"};
    }
    return testing::HttpResponse{401, {{"WWW-Authenticate", "Bearer realm=\"" + realm + "\""}}};
  });
  realm = server_->url() + "/token";
  CliRun r = Pull();
  ExpectOneEscapedErrorLine(r);
  EXPECT_NE(r.err.find("token server " + server_->host() + " sent invalid JSON"), std::string::npos)
      << TerminalSafe(r.err);
}

// A store whose index.json nests 300 000 deep: `images` and `pull` fail cleanly (pull used to
// die of SIGSEGV when it wrote the record).
TEST_F(CliTest, DeepIndexJsonIsAnErrorNotACrash) {
  BuiltImage img = TwoLayers(Format::kOci, "deep");
  ASSERT_TRUE(testing::PushImage(reg_->host(), "app", "1", img).ok());
  CliRun first = Hoist({"--store", store_, "pull", "-q", Ref("app:1")}, dir_->path());
  ASSERT_EQ(first.exit_code, 0) << first.err;

  const std::string deep = std::string(300000, '[') + std::string(300000, ']');
  std::ofstream(store_ + "/index.json", std::ios::trunc)
      << R"({"schemaVersion":2,"manifests":[],"x":)" << deep << "}";
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"images"}, {"pull", "-q", Ref("app:1")}}) {
    std::vector<std::string> argv = {"--store", store_};
    argv.insert(argv.end(), args.begin(), args.end());
    CliRun r = Hoist(argv, dir_->path());
    SCOPED_TRACE(args[0]);
    ExpectOneEscapedErrorLine(r);
    EXPECT_NE(r.err.find(store_ + "/index.json: index: JSON nested deeper than 64 levels"),
              std::string::npos)
        << r.err;
  }
}

// Text output (`images`) and JSON output (`inspect`) of names and annotations an image carries.
TEST_F(CliTest, ImagesAndInspectEscapeWhatTheImageSays) {
  const std::string note =
      "\x1b[2J\rforged\xc2\x9b"
      "31m\x7f\xe2\x80\xae";
  BuiltImage img = TwoLayers(Format::kOci, "note");
  auto manifest = nlohmann::json::parse(img.manifest);
  manifest["layers"][0]["annotations"] = {{"note", note}};
  img.manifest = manifest.dump();
  img.manifest_digest = testing::Sha256Digest(img.manifest);
  ASSERT_TRUE(testing::PushImage(reg_->host(), "app", "1", img).ok());
  CliRun pull = Hoist({"--store", store_, "pull", "-q", Ref("app:1")}, dir_->path());
  ASSERT_EQ(pull.exit_code, 0) << pull.err;

  CliRun inspect = Hoist({"--store", store_, "inspect", Ref("app:1")}, dir_->path());
  ASSERT_EQ(inspect.exit_code, 0) << inspect.err;
  EXPECT_EQ(RawControlBytes(inspect.out), "") << TerminalSafe(inspect.out);
  auto j = nlohmann::json::parse(inspect.out, nullptr, false);
  ASSERT_TRUE(j.is_object()) << TerminalSafe(inspect.out);
  EXPECT_EQ(j["layers"][0]["annotations"]["note"], note);

  // A record whose name (from index.json) carries escape sequences.
  auto index = nlohmann::json::parse(std::ifstream(store_ + "/index.json"));
  ASSERT_EQ(index["manifests"].size(), 1u);
  nlohmann::json evil = index["manifests"][0];
  evil["annotations"]["org.opencontainers.image.ref.name"] = "evil" + note;
  index["manifests"].push_back(evil);
  std::ofstream(store_ + "/index.json", std::ios::trunc) << index.dump();
  CliRun images = Hoist({"--store", store_, "images"}, dir_->path());
  ASSERT_EQ(images.exit_code, 0) << TerminalSafe(images.err);
  EXPECT_EQ(RawControlBytes(images.out), "") << TerminalSafe(images.out);
  EXPECT_NE(images.out.find("evil\\x1b[2J\\x0dforged\\u009b31m\\x7f\\u202e"), std::string::npos)
      << TerminalSafe(images.out);
}

}  // namespace
}  // namespace hoist
