#include "unpack/bundle.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "base/unique_fd.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hoist::unpack {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr const char* kPasswd =
    "root:x:0:0:root:/root:/bin/sh\n"
    "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
    "app:x:1000:1000:App:/home/app:/bin/sh\n"
    "nohome:x:1001:1001::/:/bin/sh\n";
constexpr const char* kGroup =
    "root:x:0:root\n"
    "wheel:x:10:app,root\n"
    "staff:x:50:bob,app\n"
    "app:x:1000:\n";

// A scratch directory, removed with everything under it at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "bundle_test.XXXXXX").string();
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

void WriteFile(const fs::path& path, const std::string& data) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << data;
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A rootfs under a scratch dir, with room beside it for files "outside the root".
class BundleTest : public ::testing::Test {
 protected:
  void SetUp() override { fs::create_directories(rootfs()); }
  fs::path rootfs() const { return tmp_.path() / "rootfs"; }
  void WriteIdFiles() {
    WriteFile(rootfs() / "etc/passwd", kPasswd);
    WriteFile(rootfs() / "etc/group", kGroup);
  }

  // RuntimeConfig for `config_json` and our rootfs; the test fails if it is not JSON.
  Result<Json> Generate(const std::string& config_json) {
    UniqueFd fd(open(rootfs().c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    EXPECT_TRUE(fd.valid());
    Result<std::string> text = RuntimeConfig(config_json, fd.get());
    if (!text.ok()) return text.status();
    Json doc = Json::parse(*text, nullptr, false);
    EXPECT_FALSE(doc.is_discarded()) << *text;
    return doc;
  }
  // An OCI config with os linux and the given "config" object.
  static std::string WithConfig(const std::string& config) {
    return R"({"os":"linux","architecture":"amd64","config":)" + config + "}";
  }

  TempDir tmp_;
};

// ---- process.user -----------------------------------------------------------------------

struct UserCase {
  std::string user;
  uint32_t uid, gid;
  std::vector<uint32_t> additional_gids;
  std::string home;  // "" = no HOME in env
};

TEST_F(BundleTest, UserForms) {
  WriteIdFiles();
  const std::vector<UserCase> cases = {
      {"", 0, 0, {0, 10}, "/root"},                 // no User: uid 0's entry
      {"app", 1000, 1000, {10, 50}, "/home/app"},   // name: groups listing "app"
      {"1000", 1000, 1000, {10, 50}, "/home/app"},  // uid with an entry: same as its name
      {"app:staff", 1000, 50, {}, "/home/app"},     // explicit group: no supplementary ones
      {"app:50", 1000, 50, {}, "/home/app"},
      {"1000:wheel", 1000, 10, {}, "/home/app"},
      {"app:777", 1000, 777, {}, "/home/app"},  // numeric gid without an entry
      {"4242", 4242, 0, {}, ""},                // numeric uid without an entry
      {"4242:staff", 4242, 50, {}, ""},
      {"4242:4343", 4242, 4343, {}, ""},
      {":staff", 0, 50, {}, "/root"},
      {"nohome", 1001, 1001, {}, "/"},
      {"daemon:staff:extra", 1, 50, {}, "/usr/sbin"},  // fields past the group are ignored
  };
  for (const UserCase& c : cases) {
    SCOPED_TRACE("User \"" + c.user + "\"");
    Result<Json> spec = Generate(WithConfig(Json{{"User", c.user}}.dump()));
    ASSERT_TRUE(spec.ok()) << spec.status().message();
    const Json& user = (*spec)["process"]["user"];
    EXPECT_EQ(user["uid"], c.uid);
    EXPECT_EQ(user["gid"], c.gid);
    if (c.additional_gids.empty()) {
      EXPECT_FALSE(user.contains("additionalGids"));
    } else {
      EXPECT_EQ(user["additionalGids"].get<std::vector<uint32_t>>(), c.additional_gids);
    }
    std::vector<std::string> env = (*spec)["process"]["env"].get<std::vector<std::string>>();
    std::vector<std::string> homes;
    for (const std::string& e : env) {
      if (e.rfind("HOME=", 0) == 0) homes.push_back(e.substr(5));
    }
    if (c.home.empty()) {
      EXPECT_TRUE(homes.empty());
    } else {
      EXPECT_THAT(homes, ElementsAre(c.home));
    }
  }
}

TEST_F(BundleTest, UnresolvableUsersAreErrors) {
  WriteIdFiles();
  for (std::string user : {"nobody", "app:nogroup", "nobody:staff", "-1", "2147483648", "app:-5",
                           "99999999999999999999"}) {
    SCOPED_TRACE("User \"" + user + "\"");
    Result<Json> spec = Generate(WithConfig(Json{{"User", user}}.dump()));
    ASSERT_FALSE(spec.ok());
    EXPECT_EQ(spec.status().code(), StatusCode::kInvalidArgument);
  }
}

TEST_F(BundleTest, WithoutIdFilesOnlyNumbersResolve) {
  Result<Json> spec = Generate(WithConfig(R"({"User":"1000:1000"})"));
  ASSERT_TRUE(spec.ok()) << spec.status().message();
  EXPECT_EQ((*spec)["process"]["user"]["uid"], 1000);
  EXPECT_EQ((*spec)["process"]["user"]["gid"], 1000);

  spec = Generate(WithConfig(R"({})"));
  ASSERT_TRUE(spec.ok()) << spec.status().message();
  EXPECT_EQ((*spec)["process"]["user"]["uid"], 0);
  EXPECT_EQ((*spec)["process"]["user"]["gid"], 0);
  EXPECT_THAT((*spec)["process"]["env"].dump(), ::testing::Not(HasSubstr("HOME=")));

  EXPECT_EQ(Generate(WithConfig(R"({"User":"app"})")).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Generate(WithConfig(R"({"User":"1000:staff"})")).status().code(),
            StatusCode::kInvalidArgument);
}

TEST_F(BundleTest, MalformedPasswdLinesAreSkipped) {
  WriteFile(rootfs() / "etc/passwd",
            "\n# comment\n  \nbad:x:notanumber:0::/bad:\r\n"
            "short:x\napp:x:1000:1000::/home/app:/bin/sh\r\n");
  Result<Json> spec = Generate(WithConfig(R"({"User":"app"})"));
  ASSERT_TRUE(spec.ok()) << spec.status().message();
  EXPECT_EQ((*spec)["process"]["user"]["uid"], 1000);
  EXPECT_EQ(Generate(WithConfig(R"({"User":"bad"})")).status().code(),
            StatusCode::kInvalidArgument);
}

// /etc/passwd and /etc/group are resolved with the rootfs as "/": a symlink to a file outside
// the rootfs lands on the same path INSIDE it (here: nothing), so the outside file is never
// read and the user it names stays unknown.
TEST_F(BundleTest, IdFileSymlinksStayInsideTheRoot) {
  const fs::path outside = tmp_.path() / "outside";
  WriteFile(outside / "passwd", "evil:x:0:0::/evil:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n");
  WriteFile(outside / "group", "staff:x:50:app\n");
  fs::create_directories(rootfs() / "etc");

  const std::vector<std::pair<std::string, std::string>> links = {
      {"absolute", outside.string() + "/passwd"},
      {"relative", "../../outside/passwd"},
      {"deep relative", "../../../../../../../../" + outside.relative_path().string() + "/passwd"},
  };
  for (const auto& [name, target] : links) {
    SCOPED_TRACE(name);
    fs::remove(rootfs() / "etc/passwd");
    fs::create_symlink(target, rootfs() / "etc/passwd");
    ASSERT_EQ(ReadFile(rootfs() / "etc/passwd").substr(0, 4), "evil");  // it does point out
    EXPECT_EQ(Generate(WithConfig(R"({"User":"evil"})")).status().code(),
              StatusCode::kInvalidArgument);
    Result<Json> spec = Generate(WithConfig(R"({})"));
    ASSERT_TRUE(spec.ok()) << spec.status().message();
    EXPECT_THAT((*spec)["process"]["env"].dump(), ::testing::Not(HasSubstr("/evil")));
  }

  // /etc itself a symlink out of the root: the same.
  fs::remove_all(rootfs() / "etc");
  fs::create_directory_symlink(outside, rootfs() / "etc");
  EXPECT_EQ(Generate(WithConfig(R"({"User":"evil:staff"})")).status().code(),
            StatusCode::kInvalidArgument);
}

TEST_F(BundleTest, IdFileSymlinksInsideTheRootAreFollowed) {
  WriteFile(rootfs() / "usr/lib/passwd", kPasswd);
  WriteFile(rootfs() / "usr/share/group", kGroup);
  fs::create_directories(rootfs() / "etc");
  fs::create_directory_symlink("usr/lib", rootfs() / "lib");
  // Absolute target through a symlinked directory; relative target with "..".
  fs::create_symlink("/lib/passwd", rootfs() / "etc/passwd");
  fs::create_symlink("../usr/share/group", rootfs() / "etc/group");
  Result<Json> spec = Generate(WithConfig(R"({"User":"app"})"));
  ASSERT_TRUE(spec.ok()) << spec.status().message();
  EXPECT_EQ((*spec)["process"]["user"]["uid"], 1000);
  EXPECT_EQ((*spec)["process"]["user"]["additionalGids"], Json::array({10, 50}));
}

TEST_F(BundleTest, IdFileLoopsAndSpecialFilesAreErrors) {
  fs::create_directories(rootfs() / "etc");
  fs::create_symlink("group", rootfs() / "etc/passwd");
  fs::create_symlink("passwd", rootfs() / "etc/group");
  EXPECT_EQ(Generate(WithConfig(R"({})")).status().code(), StatusCode::kInvalidArgument);

  fs::remove(rootfs() / "etc/passwd");
  fs::remove(rootfs() / "etc/group");
  ASSERT_EQ(mkfifo((rootfs() / "etc/passwd").c_str(), 0644), 0);  // must not hang
  Result<Json> spec = Generate(WithConfig(R"({})"));
  EXPECT_EQ(spec.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(spec.status().message(), HasSubstr("not a regular file"));

  fs::remove(rootfs() / "etc/passwd");
  fs::create_directory(rootfs() / "etc/passwd");
  EXPECT_EQ(Generate(WithConfig(R"({})")).status().code(), StatusCode::kInvalidArgument);

  // A dangling link counts as a missing file.
  fs::remove(rootfs() / "etc/passwd");
  fs::create_symlink("/nowhere/passwd", rootfs() / "etc/passwd");
  EXPECT_TRUE(Generate(WithConfig(R"({"User":"7"})")).ok());
}

// ---- process.args, env, cwd -------------------------------------------------------------

TEST_F(BundleTest, Args) {
  struct Case {
    std::string config;
    std::vector<std::string> args;
  };
  const std::vector<Case> cases = {
      {R"({"Entrypoint":["/ep","-x"]})", {"/ep", "-x"}},
      {R"({"Cmd":["/bin/cmd","a"]})", {"/bin/cmd", "a"}},
      {R"({"Entrypoint":["/ep"],"Cmd":["a","b"]})", {"/ep", "a", "b"}},
      {R"({})", {"sh"}},  // neither: umoci's default stays
      {R"({"Entrypoint":null,"Cmd":[]})", {"sh"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.config);
    Result<Json> spec = Generate(WithConfig(c.config));
    ASSERT_TRUE(spec.ok()) << spec.status().message();
    EXPECT_EQ((*spec)["process"]["args"].get<std::vector<std::string>>(), c.args);
  }
}

TEST_F(BundleTest, EnvAndCwd) {
  constexpr const char* kPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  Result<Json> spec = Generate(WithConfig(R"({})"));
  ASSERT_TRUE(spec.ok()) << spec.status().message();
  EXPECT_EQ((*spec)["process"]["env"], Json::array({kPath, "TERM=xterm"}));
  EXPECT_EQ((*spec)["process"]["cwd"], "/");

  spec = Generate(
      WithConfig(R"({"Env":["A=1","PATH=/bin","EMPTY=","A=2","X=a=b"],"WorkingDir":"/srv/app"})"));
  ASSERT_TRUE(spec.ok()) << spec.status().message();
  EXPECT_EQ((*spec)["process"]["env"],
            Json::array({"PATH=/bin", "TERM=xterm", "A=2", "EMPTY=", "X=a=b"}));
  EXPECT_EQ((*spec)["process"]["cwd"], "/srv/app");

  // HOME from /etc/passwd wins over the image's.
  WriteIdFiles();
  spec = Generate(WithConfig(R"({"Env":["HOME=/x","B=1"],"User":"app"})"));
  ASSERT_TRUE(spec.ok()) << spec.status().message();
  EXPECT_EQ((*spec)["process"]["env"], Json::array({kPath, "TERM=xterm", "HOME=/home/app", "B=1"}));

  for (const char* bad : {R"({"Env":["NOEQUALS"]})", R"({"Env":["=value"]})"}) {
    EXPECT_EQ(Generate(WithConfig(bad)).status().code(), StatusCode::kInvalidArgument) << bad;
  }
}

// ---- annotations ------------------------------------------------------------------------

TEST_F(BundleTest, Annotations) {
  Result<Json> spec = Generate(
      R"({"os":"linux","architecture":"arm64","author":"Jane <j@example.com>",
          "created":"2024-01-02T03:04:05.120000000Z",
          "config":{"Labels":{"b":"2","a":"1","org.opencontainers.image.os":"bogus"},
                    "StopSignal":"SIGQUIT",
                    "ExposedPorts":{"80/tcp":{},"53/udp":{},"443/tcp":{}}}})");
  ASSERT_TRUE(spec.ok()) << spec.status().message();
  EXPECT_EQ((*spec)["annotations"],
            (Json{
                {"a", "1"},
                {"b", "2"},
                {"org.opencontainers.image.os", "linux"},
                {"org.opencontainers.image.architecture", "arm64"},
                {"org.opencontainers.image.author", "Jane <j@example.com>"},
                {"org.opencontainers.image.created", "2024-01-02T03:04:05.12Z"},
                {"org.opencontainers.image.stopSignal", "SIGQUIT"},
                {"org.opencontainers.image.exposedPorts", "443/tcp,53/udp,80/tcp"},
            }));

  // Nothing set: the image.* annotations are still there, empty (the time is Go's zero).
  spec = Generate(R"({"os":"linux"})");
  ASSERT_TRUE(spec.ok()) << spec.status().message();
  EXPECT_EQ((*spec)["annotations"],
            (Json{
                {"org.opencontainers.image.os", "linux"},
                {"org.opencontainers.image.architecture", ""},
                {"org.opencontainers.image.author", ""},
                {"org.opencontainers.image.created", "0001-01-01T00:00:00Z"},
                {"org.opencontainers.image.stopSignal", ""},
                {"org.opencontainers.image.exposedPorts", ""},
            }));
}

TEST_F(BundleTest, CreatedIsWrittenAsGoWritesIt) {
  const std::vector<std::pair<std::string, std::string>> good = {
      {"2024-01-02T03:04:05Z", "2024-01-02T03:04:05Z"},
      {"2024-01-02T03:04:05.000000000Z", "2024-01-02T03:04:05Z"},
      {"2024-01-02T03:04:05.5Z", "2024-01-02T03:04:05.5Z"},
      {"2024-01-02T03:04:05.1234567891234Z", "2024-01-02T03:04:05.123456789Z"},
      {"2024-01-02T03:04:05+02:00", "2024-01-02T03:04:05+02:00"},
      {"2024-01-02T03:04:05.250-07:30", "2024-01-02T03:04:05.25-07:30"},
      {"2024-01-02T03:04:05+00:00", "2024-01-02T03:04:05Z"},
      {"2024-02-29T00:00:00Z", "2024-02-29T00:00:00Z"},
  };
  for (const auto& [in, want] : good) {
    Result<Json> spec = Generate(R"({"os":"linux","created":")" + in + R"("})");
    ASSERT_TRUE(spec.ok()) << in << ": " << spec.status().message();
    EXPECT_EQ((*spec)["annotations"]["org.opencontainers.image.created"], want) << in;
  }
  for (const char* bad : {"yesterday", "2024-01-02", "2024-01-02 03:04:05Z", "2024-01-02T03:04:05",
                          "2024-13-02T03:04:05Z", "2023-02-29T00:00:00Z", "2024-01-02T24:00:00Z",
                          "2024-01-02T03:04:60Z", "2024-01-02T03:04:05.Z",
                          "2024-01-02T03:04:05+0200", "2024-01-02T03:04:05+24:00"}) {
    EXPECT_EQ(Generate(R"({"os":"linux","created":")" + std::string(bad) + R"("})").status().code(),
              StatusCode::kInvalidArgument)
        << bad;
  }
}

// ---- the whole document -----------------------------------------------------------------

TEST_F(BundleTest, DefaultsAndVolumes) {
  Result<Json> spec = Generate(WithConfig(R"({"Volumes":{"/var/lib/db":{},"/data":{}}})"));
  ASSERT_TRUE(spec.ok()) << spec.status().message();
  EXPECT_EQ((*spec)["ociVersion"], "1.0.0");
  EXPECT_EQ((*spec)["root"], (Json{{"path", "rootfs"}, {"readonly", false}}));
  EXPECT_EQ((*spec)["hostname"], "hoist");
  EXPECT_EQ((*spec)["process"]["terminal"], true);
  EXPECT_EQ((*spec)["process"]["noNewPrivileges"], true);
  EXPECT_EQ((*spec)["process"]["rlimits"],
            Json::parse(R"([{"type":"RLIMIT_NOFILE","hard":1024,"soft":1024}])"));
  EXPECT_EQ((*spec)["process"]["capabilities"]["bounding"],
            Json::array({"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"}));
  std::vector<std::string> destinations;
  for (const Json& m : (*spec)["mounts"]) destinations.push_back(m["destination"]);
  EXPECT_THAT(destinations, ElementsAre("/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue",
                                        "/sys", "/sys/fs/cgroup", "/data", "/var/lib/db"));
  EXPECT_EQ((*spec)["mounts"][7],
            Json::parse(R"({"destination":"/data","type":"tmpfs","source":"none",
                            "options":["rw","nosuid","nodev","noexec","relatime"]})"));
  EXPECT_FALSE((*spec)["mounts"][0].contains("options"));
  EXPECT_EQ((*spec)["linux"]["namespaces"],
            Json::parse(R"([{"type":"pid"},{"type":"network"},{"type":"ipc"},{"type":"uts"},
                            {"type":"mount"}])"));
  EXPECT_FALSE((*spec)["linux"].contains("seccomp"));
}

TEST_F(BundleTest, DockerConfig) {
  WriteIdFiles();
  // Docker's JSON: nulls for unset fields, container_config beside config (ignored).
  Result<Json> spec = Generate(R"({
    "architecture":"amd64","os":"linux","created":"2023-06-01T10:00:00.123456789Z",
    "docker_version":"24.0.0","author":"",
    "config":{"Hostname":"","User":"app","Env":["PATH=/usr/bin"],"Cmd":["nginx"],
              "Entrypoint":null,"WorkingDir":"","Labels":null,"Volumes":null,
              "ExposedPorts":{"8080/tcp":{}},"StopSignal":"SIGQUIT","OnBuild":null},
    "container_config":{"Cmd":["/bin/sh","-c","#(nop) CMD [\"x\"]"],"User":"root"},
    "rootfs":{"type":"layers","diff_ids":[]}})");
  ASSERT_TRUE(spec.ok()) << spec.status().message();
  EXPECT_EQ((*spec)["process"]["args"], Json::array({"nginx"}));
  EXPECT_EQ((*spec)["process"]["env"],
            Json::array({"PATH=/usr/bin", "TERM=xterm", "HOME=/home/app"}));
  EXPECT_EQ((*spec)["process"]["cwd"], "/");
  EXPECT_EQ((*spec)["process"]["user"]["uid"], 1000);
  EXPECT_EQ((*spec)["annotations"]["org.opencontainers.image.exposedPorts"], "8080/tcp");
  EXPECT_EQ((*spec)["annotations"]["org.opencontainers.image.stopSignal"], "SIGQUIT");
  EXPECT_EQ((*spec)["annotations"]["org.opencontainers.image.created"],
            "2023-06-01T10:00:00.123456789Z");
  EXPECT_EQ((*spec)["mounts"].size(), 7u);
}

TEST_F(BundleTest, BadConfigs) {
  const std::vector<std::pair<std::string, StatusCode>> cases = {
      {"not json", StatusCode::kDataLoss},
      {"[]", StatusCode::kDataLoss},
      {R"({"os":"linux","config":[]})", StatusCode::kDataLoss},
      {R"({"os":"linux","config":{"Cmd":"ls"}})", StatusCode::kDataLoss},
      {R"({"os":"linux","config":{"Cmd":["ls",1]}})", StatusCode::kDataLoss},
      {R"({"os":"linux","config":{"User":0}})", StatusCode::kDataLoss},
      {R"({"os":"linux","config":{"Labels":{"a":1}}})", StatusCode::kDataLoss},
      {R"({"os":"linux","config":{"ExposedPorts":["80/tcp"]}})", StatusCode::kDataLoss},
      {R"({"os":"linux","created":5})", StatusCode::kDataLoss},
      {R"({"os":"windows"})", StatusCode::kUnimplemented},
      {R"({})", StatusCode::kUnimplemented},
  };
  for (const auto& [config, code] : cases) {
    EXPECT_EQ(Generate(config).status().code(), code) << config;
  }
}

// ---- against umoci ----------------------------------------------------------------------

std::string Sha256Hex(const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 15];
  }
  return out;
}

std::string Gzip(const std::string& data) {
  z_stream z = {};
  EXPECT_EQ(deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY),
            Z_OK);
  std::string out(deflateBound(&z, data.size()) + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&z, Z_FINISH), Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

// Runs a shell command; returns its exit status (and its combined output in *output).
int RunShell(const std::string& command, std::string* output) {
  FILE* p = popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) return -1;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) output->append(buf, n);
  int status = pclose(p);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Writes an OCI image layout at `dir` holding one image, tagged "tag", whose only layer
// contains the files under `layer_dir` and whose config is `config`.
void WriteImageLayout(const fs::path& dir, const fs::path& layer_dir, const std::string& config) {
  const fs::path blobs = dir / "blobs/sha256";
  fs::create_directories(blobs);
  std::string out;
  ASSERT_EQ(RunShell("tar --numeric-owner --owner=0 --group=0 -C '" + layer_dir.string() +
                         "' -cf '" + (dir / "layer.tar").string() + "' .",
                     &out),
            0)
      << out;
  std::string tar = ReadFile(dir / "layer.tar");
  fs::remove(dir / "layer.tar");
  std::string layer = Gzip(tar);
  auto put = [&](const std::string& blob) {
    std::string hex = Sha256Hex(blob);
    WriteFile(blobs / hex, blob);
    return "sha256:" + hex;
  };
  Json config_doc = Json::parse(config);
  config_doc["rootfs"] = {{"type", "layers"}, {"diff_ids", {"sha256:" + Sha256Hex(tar)}}};
  std::string config_blob = config_doc.dump();
  Json manifest = {
      {"schemaVersion", 2},
      {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
      {"config",
       {{"mediaType", "application/vnd.oci.image.config.v1+json"},
        {"digest", put(config_blob)},
        {"size", config_blob.size()}}},
      {"layers",
       {{{"mediaType", "application/vnd.oci.image.layer.v1.tar+gzip"},
         {"digest", put(layer)},
         {"size", layer.size()}}}},
  };
  std::string manifest_blob = manifest.dump();
  Json index = {
      {"schemaVersion", 2},
      {"manifests",
       {{{"mediaType", "application/vnd.oci.image.manifest.v1+json"},
         {"digest", put(manifest_blob)},
         {"size", manifest_blob.size()},
         {"annotations", {{"org.opencontainers.image.ref.name", "tag"}}}}}},
  };
  WriteFile(dir / "index.json", index.dump());
  WriteFile(dir / "oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
}

// umoci unpacks an image built by hand; our config.json for the same image config and
// umoci's rootfs must agree with umoci's config.json field by field. The differences on
// purpose: we always write root.readonly (umoci omits the false value) and we sort Volume
// mounts (umoci's come in Go's random map order), so mounts are compared as a set past the
// fixed defaults.
TEST(BundleVsUmoci, SameConfigAsUmoci) {
  if (access("/usr/bin/umoci", X_OK) != 0 || geteuid() != 0) {
    GTEST_SKIP() << "needs umoci and root";
  }
  TempDir tmp;
  const fs::path layer = tmp.path() / "layer";
  WriteFile(layer / "etc/passwd", kPasswd);
  WriteFile(layer / "etc/group", kGroup);
  WriteFile(layer / "bin/ep", "#!/bin/sh\n");

  const std::vector<std::string> configs = {
      R"({"architecture":"amd64","os":"linux","author":"Jane","created":"2024-01-02T03:04:05.500Z",
          "config":{"User":"app:staff","Env":["FOO=bar","HOME=/x","PATH=/bin"],
                    "Entrypoint":["/bin/ep"],"Cmd":["-c","x"],"WorkingDir":"/w",
                    "Labels":{"a":"b","org.opencontainers.image.os":"bogus"},
                    "StopSignal":"SIGTERM","ExposedPorts":{"80/tcp":{},"53/udp":{}},
                    "Volumes":{"/data":{},"/a":{}}}})",
      R"({"architecture":"arm64","os":"linux","config":{"User":"app","Cmd":["/bin/ep"]}})",
      R"({"architecture":"amd64","os":"linux","created":"2020-05-05T05:05:05+02:00"})",
      R"({"architecture":"amd64","os":"linux","config":{"User":"4242:wheel","Entrypoint":["x"]}})",
  };
  for (size_t i = 0; i < configs.size(); ++i) {
    SCOPED_TRACE(configs[i]);
    const fs::path image = tmp.path() / ("image" + std::to_string(i));
    const fs::path bundle = tmp.path() / ("bundle" + std::to_string(i));
    WriteImageLayout(image, layer, configs[i]);
    std::string out;
    ASSERT_EQ(RunShell("/usr/bin/umoci unpack --image '" + image.string() + ":tag' '" +
                           bundle.string() + "'",
                       &out),
              0)
        << out;
    Json theirs = Json::parse(ReadFile(bundle / "config.json"));

    UniqueFd rootfs(open((bundle / "rootfs").c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    ASSERT_TRUE(rootfs.valid());
    Result<std::string> text = RuntimeConfig(configs[i], rootfs.get());
    ASSERT_TRUE(text.ok()) << text.status().message();
    Json ours = Json::parse(*text);

    EXPECT_EQ(ours["ociVersion"], theirs["ociVersion"]);
    // Deliberately different: each tool writes its own name as the hostname.
    EXPECT_EQ(theirs["hostname"], "umoci-default");
    EXPECT_EQ(ours["hostname"], "hoist");
    EXPECT_EQ(ours["annotations"], theirs["annotations"]);
    for (const char* key :
         {"args", "env", "cwd", "user", "terminal", "capabilities", "rlimits", "noNewPrivileges"}) {
      EXPECT_EQ(ours["process"][key], theirs["process"][key]) << "process." << key;
    }
    EXPECT_EQ(ours["root"]["path"], theirs["root"]["path"]);
    EXPECT_EQ(ours["root"]["readonly"], theirs["root"].value("readonly", false));
    for (const char* key : {"namespaces", "maskedPaths", "readonlyPaths", "resources"}) {
      EXPECT_EQ(ours["linux"][key], theirs["linux"][key]) << "linux." << key;
    }
    EXPECT_EQ(ours["linux"].contains("seccomp"), theirs["linux"].contains("seccomp"));
    ASSERT_EQ(ours["mounts"].size(), theirs["mounts"].size());
    std::vector<Json> our_mounts(ours["mounts"].begin(), ours["mounts"].end());
    std::vector<Json> their_mounts(theirs["mounts"].begin(), theirs["mounts"].end());
    EXPECT_EQ(std::vector<Json>(our_mounts.begin(), our_mounts.begin() + 7),
              std::vector<Json>(their_mounts.begin(), their_mounts.begin() + 7));
    std::sort(our_mounts.begin() + 7, our_mounts.end());
    std::sort(their_mounts.begin() + 7, their_mounts.end());
    EXPECT_EQ(our_mounts, their_mounts);
  }
}

// A config nested 300 000 deep is refused before any DOM is built, not a stack overflow.
TEST_F(BundleTest, DeeplyNestedConfigIsDataLoss) {
  const std::string deep = std::string(300000, '[') + std::string(300000, ']');
  Result<Json> doc = Generate(WithConfig(R"({"Labels":)" + deep + "}"));
  ASSERT_FALSE(doc.ok());
  EXPECT_EQ(doc.status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(doc.status().message(), "image config: JSON nested deeper than 64 levels");
}

}  // namespace
}  // namespace hoist::unpack
