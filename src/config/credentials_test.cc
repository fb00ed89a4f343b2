#include "config/credentials.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "base/strings.h"
#include "gtest/gtest.h"

namespace hoist::config {
namespace {

using registry::Credential;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void WriteAll(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path) << text;
}

// A temporary home for config files and a bin directory of fake credential helpers put in
// front of PATH.
class CredentialsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/hoist-creds-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    bin_ = dir_ + "/bin";
    std::filesystem::create_directories(bin_);
    old_path_ = getenv("PATH") ? getenv("PATH") : "";
    setenv("PATH", (bin_ + ":" + old_path_).c_str(), 1);
    files_.docker_config = dir_ + "/docker/config.json";
    WriteHelpers();
  }
  void TearDown() override {
    setenv("PATH", old_path_.c_str(), 1);
    std::filesystem::remove_all(dir_);
  }

  void Helper(const std::string& name, const std::string& body) {
    std::string path = bin_ + "/docker-credential-" + name;
    WriteAll(path, "#!/bin/sh\n" + body);
    ::chmod(path.c_str(), 0755);
  }

  void WriteHelpers() {
    // "good" records what it was given and answers with a user and password.
    Helper("good",
           "case \"$1\" in\n"
           "get) cat > " +
               dir_ +
               "/good-get;"
               " echo "
               "'{\"ServerURL\":\"x\",\"Username\":\"helperuser\",\"Secret\":\"helpersecret\"}';;\n"
               "store) cat > " +
               dir_ +
               "/good-store;;\n"
               "erase) cat > " +
               dir_ +
               "/good-erase;;\n"
               "esac\n");
    Helper("token", "cat >/dev/null; echo '{\"Username\":\"<token>\",\"Secret\":\"refresh-1\"}'\n");
    Helper("none", "echo 'credentials not found in native keychain'; exit 1\n");
    Helper("broken", "echo 'keychain is locked' >&2; exit 3\n");
    Helper("slow", "exec sleep 10\n");
    Helper("garbage", "echo 'not json at all: helpersecret'\n");
  }

  void DockerConfig(const std::string& json) { WriteAll(files_.docker_config, json); }

  std::optional<Credential> MustLookup(const std::string& registry) {
    DockerCredentials creds(files_);
    auto r = creds.Lookup(registry);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? *r : std::nullopt;
  }

  std::string dir_, bin_, old_path_;
  CredentialFiles files_;
};

std::string AuthOf(const std::string& user_password) { return Base64Encode(user_password); }

// Which host receives which credential, over (reference registry, mirror, location rewrite,
// credential source): --creds only ever reaches the reference's own registry (where the
// rewrite puts it), a mirror only gets what config.json holds for the mirror's own host, and
// config.json is asked about the host actually contacted.
TEST_F(CredentialsTest, EachRouteGetsTheCredentialsOfTheHostItContacts) {
  DockerConfig(nlohmann::json{{"auths",
                               {{"ref.example", {{"auth", AuthOf("ref-user:x")}}},
                                {"mirror.example:5001", {{"auth", AuthOf("mirror-user:x")}}},
                                {"internal.example", {{"auth", AuthOf("internal-user:x")}}},
                                {"https://index.docker.io/v1/", {{"auth", AuthOf("hub-user:x")}}},
                                {"mirror.gcr.io", {{"auth", AuthOf("gcr-user:x")}}}}}}
                   .dump());
  const std::string mirror = R"([[registry]]
prefix = "ref.example"
location = "ref.example"
[[registry.mirror]]
location = "mirror.example:5001"
)";
  const std::string rewrite = R"([[registry]]
prefix = "ref.example"
location = "internal.example/team"
)";
  const std::string rewrite_and_mirror = rewrite + R"([[registry.mirror]]
location = "mirror.example:5001"
)";
  const std::string unknown_mirror = R"([[registry]]
prefix = "ref.example"
location = "ref.example"
[[registry.mirror]]
location = "mirror2.example"
)";
  const std::string hub_mirror = R"([[registry]]
prefix = "docker.io"
location = "docker.io"
[[registry.mirror]]
location = "mirror.gcr.io"
)";
  struct Case {
    std::string ref, conf, creds;   // creds: --creds, "" when not given
    std::vector<std::string> want;  // "host user" per route in order ("-": no credentials)
  };
  const std::vector<Case> cases = {
      {"ref.example/app:1", "", "", {"ref.example ref-user"}},
      {"ref.example/app:1", "", "cli:pw", {"ref.example cli"}},
      {"ref.example/app:1",
       mirror,
       "",
       {"mirror.example:5001 mirror-user", "ref.example ref-user"}},
      {"ref.example/app:1",
       mirror,
       "cli:pw",
       {"mirror.example:5001 mirror-user", "ref.example cli"}},
      {"ref.example/app:1", unknown_mirror, "cli:pw", {"mirror2.example -", "ref.example cli"}},
      {"ref.example/app:1", rewrite, "", {"internal.example internal-user"}},
      {"ref.example/app:1", rewrite, "cli:pw", {"internal.example cli"}},
      {"ref.example/app:1",
       rewrite_and_mirror,
       "",
       {"mirror.example:5001 mirror-user", "internal.example internal-user"}},
      {"ref.example/app:1",
       rewrite_and_mirror,
       "cli:pw",
       {"mirror.example:5001 mirror-user", "internal.example cli"}},
      {"alpine", hub_mirror, "", {"mirror.gcr.io gcr-user", "registry-1.docker.io hub-user"}},
      {"alpine", hub_mirror, "cli:pw", {"mirror.gcr.io gcr-user", "registry-1.docker.io cli"}},
      {"other.example/app", mirror, "cli:pw", {"other.example cli"}},
  };
  DockerCredentials files(files_);
  for (const Case& c : cases) {
    SCOPED_TRACE(c.ref + " creds=" + c.creds + " conf:\n" + c.conf);
    auto conf = RegistriesConf::Parse(c.conf, "test.conf");
    ASSERT_TRUE(conf.ok()) << conf.status().message();
    auto ref = Reference::Parse(c.ref);
    ASSERT_TRUE(ref.ok());
    auto routes = conf->RoutesFor(*ref);
    ASSERT_TRUE(routes.ok()) << routes.status().message();
    auto given_cred = registry::StaticCredentials::ParseUserPassword(c.creds);
    ASSERT_TRUE(given_cred.ok());
    registry::StaticCredentials given(*given_cred);
    std::vector<std::string> got;
    for (const auto& route : *routes) {
      registry::CredentialSource* source =
          CredentialsForRoute(route, c.creds.empty() ? nullptr : &given, &files);
      auto cred = source->Lookup(route.registry);
      ASSERT_TRUE(cred.ok()) << cred.status().message();
      got.push_back(route.host + " " + (*cred ? (*cred)->username : "-"));
    }
    EXPECT_EQ(got, c.want);
  }
}

TEST_F(CredentialsTest, AuthsBase64) {
  DockerConfig(R"({"auths":{"ghcr.io":{"auth":")" + AuthOf("alice:pa:ss") + R"("}}})");
  auto c = MustLookup("ghcr.io");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->username, "alice");
  EXPECT_EQ(c->password, "pa:ss");
  EXPECT_EQ(c->identity_token, "");
  EXPECT_FALSE(MustLookup("quay.io"));
}

TEST_F(CredentialsTest, AuthsUsernamePasswordAndIdentityToken) {
  DockerConfig(R"({"auths":{
      "127.0.0.1:5000":{"username":"bob","password":"pw"},
      "myacr.example.io":{"auth":")" +
               AuthOf("00000000-0000-0000-0000-000000000000:") +
               R"(","identitytoken":"refresh-token"}}})");
  auto c = MustLookup("127.0.0.1:5000");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->username, "bob");
  EXPECT_EQ(c->password, "pw");
  c = MustLookup("myacr.example.io");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->identity_token, "refresh-token");
}

TEST_F(CredentialsTest, EveryDockerHubAliasMatches) {
  const std::vector<std::string> keys = {"https://index.docker.io/v1/", "index.docker.io",
                                         "docker.io", "registry-1.docker.io",
                                         "https://registry-1.docker.io/v2/"};
  const std::vector<std::string> names = {"docker.io", "index.docker.io", "registry-1.docker.io"};
  for (const std::string& key : keys) {
    DockerConfig(R"({"auths":{")" + key + R"(":{"auth":")" + AuthOf("hub:secret") + R"("}}})");
    for (const std::string& name : names) {
      auto c = MustLookup(name);
      ASSERT_TRUE(c) << key << " for " << name;
      EXPECT_EQ(c->username, "hub") << key << " for " << name;
    }
    EXPECT_FALSE(MustLookup("ghcr.io")) << key;
  }
}

TEST_F(CredentialsTest, KeysMatchHostAndPortAfterStrippingSchemeAndPath) {
  DockerConfig(R"({"auths":{"https://reg.example.com:5000/v2/":{"auth":")" + AuthOf("u:p") +
               R"("}}})");
  EXPECT_TRUE(MustLookup("reg.example.com:5000"));
  EXPECT_FALSE(MustLookup("reg.example.com"));
  EXPECT_FALSE(MustLookup("reg.example.com:5001"));
}

TEST_F(CredentialsTest, CredHelpersBeatCredsStoreBeatAuths) {
  const std::string auths = R"("auths":{"ghcr.io":{"auth":")" + AuthOf("fromauths:x") +
                            R"("},"quay.io":{"auth":")" + AuthOf("quayauths:x") + R"("}})";
  DockerConfig(R"({"credHelpers":{"ghcr.io":"good"},"credsStore":"token",)" + auths + "}");
  auto c = MustLookup("ghcr.io");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->username, "helperuser");
  EXPECT_EQ(c->password, "helpersecret");
  EXPECT_EQ(ReadAll(dir_ + "/good-get"), "ghcr.io");
  c = MustLookup("quay.io");  // no credHelpers entry: credsStore
  ASSERT_TRUE(c);
  EXPECT_EQ(c->identity_token, "refresh-1");
  EXPECT_EQ(c->username, "");

  DockerConfig("{" + auths + "}");
  c = MustLookup("quay.io");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->username, "quayauths");
}

TEST_F(CredentialsTest, HelperIsGivenDockersServerUrl) {
  DockerConfig(R"({"credsStore":"good"})");
  ASSERT_TRUE(MustLookup("docker.io"));
  EXPECT_EQ(ReadAll(dir_ + "/good-get"), "https://index.docker.io/v1/");
  ASSERT_TRUE(MustLookup("localhost:5000"));
  EXPECT_EQ(ReadAll(dir_ + "/good-get"), "localhost:5000");
}

TEST_F(CredentialsTest, HelperWithoutCredentialsMeansAnonymous) {
  DockerConfig(R"({"credsStore":"none","auths":{"ghcr.io":{"auth":")" + AuthOf("a:b") + R"("}}})");
  EXPECT_FALSE(MustLookup("ghcr.io"));  // credsStore applies; auths is not consulted
}

TEST_F(CredentialsTest, HelperFailuresAreErrorsNamingTheHelper) {
  struct Case {
    std::string helper;
    std::string expect;
  };
  const Case cases[] = {
      {"missing", "credential helper docker-credential-missing: not found in PATH"},
      {"broken", "docker-credential-broken: get: exit status 3: keychain is locked"},
      {"garbage", "docker-credential-garbage: get: output is not a JSON object"},
  };
  for (const Case& c : cases) {
    DockerConfig(R"({"credHelpers":{"ghcr.io":")" + c.helper + R"("}})");
    DockerCredentials creds(files_);
    auto r = creds.Lookup("ghcr.io");
    ASSERT_FALSE(r.ok()) << c.helper;
    EXPECT_NE(r.status().message().find(c.expect), std::string::npos) << r.status().message();
    EXPECT_EQ(r.status().message().find("helpersecret"), std::string::npos);
  }
}

TEST_F(CredentialsTest, HelperThatHangsIsKilled) {
  DockerConfig(R"({"credsStore":"slow"})");
  DockerCredentials creds(files_);
  creds.set_helper_timeout(std::chrono::milliseconds(300));
  auto start = std::chrono::steady_clock::now();
  auto r = creds.Lookup("ghcr.io");
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("docker-credential-slow"), std::string::npos);
  EXPECT_NE(r.status().message().find("timed out after 300 ms"), std::string::npos)
      << r.status().message();
  EXPECT_LT(took, std::chrono::seconds(5));
}

TEST_F(CredentialsTest, MalformedFilesAreErrorsNamingTheFile) {
  const std::vector<std::string> bad = {
      "{not json",
      "[1,2]",
      R"({"auths":[]})",
      R"({"auths":{"ghcr.io":{"auth":"!!!notbase64"}}})",
      R"({"auths":{"ghcr.io":{"auth":")" + AuthOf("nocolon") + R"("}}})",
      R"({"credsStore":"../../bin/sh"})",
  };
  for (const std::string& text : bad) {
    DockerConfig(text);
    DockerCredentials creds(files_);
    auto r = creds.Lookup("ghcr.io");
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_NE(r.status().message().find(files_.docker_config), std::string::npos)
        << r.status().message();
    EXPECT_EQ(r.status().message().find("nocolon"), std::string::npos);
  }
}

// config.json and helper output nested 300 000 deep are errors, not a stack overflow, and
// escape sequences a helper prints reach the message escaped.
TEST_F(CredentialsTest, DeepJsonAndControlCharactersAreRefused) {
  const std::string deep = std::string(300000, '[') + std::string(300000, ']');
  DockerConfig(R"({"auths":{},"x":)" + deep + "}");
  {
    DockerCredentials creds(files_);
    auto r = creds.Lookup("ghcr.io");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(r.status().message(), files_.docker_config + ": JSON nested deeper than 64 levels");
  }
  Helper("deep",
         "cat >/dev/null; head -c 300000 /dev/zero | tr '\\0' '['; "
         "head -c 300000 /dev/zero | tr '\\0' ']'\n");
  Helper("ansi", "printf 'locked\\033[2J\\033]0;pwned\\007' >&2; exit 3\n");
  DockerConfig(R"({"credHelpers":{"ghcr.io":"deep","quay.io":"ansi"}})");
  DockerCredentials creds(files_);
  auto r = creds.Lookup("ghcr.io");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "credential helper docker-credential-deep: get: output is not a JSON object");
  r = creds.Lookup("quay.io");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("exit status 3: locked\\x1b[2J\\x1b]0;pwned\\x07"),
            std::string::npos)
      << TerminalSafe(r.status().message());
}

TEST_F(CredentialsTest, NoFilesMeansAnonymous) {
  EXPECT_FALSE(MustLookup("ghcr.io"));
  DockerConfig("");
  EXPECT_FALSE(MustLookup("ghcr.io"));
}

TEST_F(CredentialsTest, AuthFilesComeFirstAndNamespacedKeysAreNotRegistryKeys) {
  files_.auth_files = {dir_ + "/run/containers/auth.json"};
  WriteAll(files_.auth_files[0], R"({"auths":{
      "ghcr.io":{"auth":")" + AuthOf("podman:x") +
                                     R"("},
      "quay.io/someorg":{"auth":")" + AuthOf("nsuser:x") +
                                     R"("}}})");
  DockerConfig(R"({"auths":{"ghcr.io":{"auth":")" + AuthOf("docker:x") + R"("},
      "quay.io":{"auth":")" +
               AuthOf("dockerquay:x") + R"("}}})");
  auto c = MustLookup("ghcr.io");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->username, "podman");
  c = MustLookup("quay.io");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->username, "dockerquay");
}

TEST_F(CredentialsTest, DefaultFilesFollowTheEnvironment) {
  const char* vars[] = {"DOCKER_CONFIG", "REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME",
                        "HOME"};
  std::map<std::string, std::optional<std::string>> saved;
  for (const char* v : vars) {
    saved[v] = getenv(v) ? std::optional<std::string>(getenv(v)) : std::nullopt;
    unsetenv(v);
  }
  setenv("HOME", "/home/u", 1);
  setenv("XDG_RUNTIME_DIR", "/run/user/1000", 1);
  CredentialFiles f = CredentialFiles::Default();
  EXPECT_EQ(f.docker_config, "/home/u/.docker/config.json");
  EXPECT_EQ(f.auth_files, (std::vector<std::string>{"/run/user/1000/containers/auth.json",
                                                    "/home/u/.config/containers/auth.json"}));
  setenv("DOCKER_CONFIG", "/etc/dockercfg", 1);
  setenv("REGISTRY_AUTH_FILE", "/x/auth.json", 1);
  f = CredentialFiles::Default();
  EXPECT_EQ(f.docker_config, "/etc/dockercfg/config.json");
  EXPECT_EQ(f.auth_files, std::vector<std::string>{"/x/auth.json"});
  for (const auto& [v, value] : saved) {
    if (value) {
      setenv(v.c_str(), value->c_str(), 1);
    } else {
      unsetenv(v.c_str());
    }
  }
}

TEST_F(CredentialsTest, StoreKeepsEverythingElseAndWritesMode0600) {
  DockerConfig(R"({
  "auths": {
    "quay.io": {"auth": ")" +
               AuthOf("q:q") + R"("},
    "docker.io": {"auth": ")" +
               AuthOf("old:old") + R"("}
  },
  "HttpHeaders": {"User-Agent": "x"},
  "proxies": {"default": {"httpProxy": "http://p:3128"}}
})");
  ::chmod(files_.docker_config.c_str(), 0644);
  DockerCredentials creds(files_);
  ASSERT_TRUE(creds.Store("docker.io", Credential{"new", "s3cret", ""}).ok());

  struct stat st;
  ASSERT_EQ(::stat(files_.docker_config.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto doc = nlohmann::json::parse(ReadAll(files_.docker_config));
  EXPECT_EQ(doc["HttpHeaders"]["User-Agent"], "x");
  EXPECT_EQ(doc["proxies"]["default"]["httpProxy"], "http://p:3128");
  EXPECT_EQ(doc["auths"]["quay.io"]["auth"], AuthOf("q:q"));
  EXPECT_FALSE(doc["auths"].contains("docker.io"));  // the alias entry was replaced
  EXPECT_EQ(doc["auths"]["https://index.docker.io/v1/"]["auth"], AuthOf("new:s3cret"));
  auto c = MustLookup("docker.io");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->password, "s3cret");
  // No temporary file is left behind.
  int entries = 0;
  for (auto& e : std::filesystem::directory_iterator(dir_ + "/docker")) {
    (void)e;
    ++entries;
  }
  EXPECT_EQ(entries, 1);
}

TEST_F(CredentialsTest, StoreCreatesTheFileAndRefusesToOverwriteAMalformedOne) {
  DockerCredentials creds(files_);
  ASSERT_TRUE(creds.Store("127.0.0.1:5000", Credential{"u", "p", ""}).ok());
  auto c = MustLookup("127.0.0.1:5000");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->username, "u");

  DockerConfig("{broken");
  Status s = creds.Store("127.0.0.1:5000", Credential{"u", "p", ""});
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find(files_.docker_config), std::string::npos);
  EXPECT_EQ(ReadAll(files_.docker_config), "{broken");
  EXPECT_FALSE(creds.Store("bad/name", Credential{"u", "p", ""}).ok());
  EXPECT_FALSE(creds.Store("ghcr.io", Credential{"a:b", "p", ""}).ok());
}

TEST_F(CredentialsTest, StoreAndEraseThroughHelper) {
  const std::string config = R"({"credHelpers":{"ghcr.io":"good"}})";
  DockerConfig(config);
  DockerCredentials creds(files_);
  ASSERT_TRUE(creds.Store("ghcr.io", Credential{"alice", "pw", ""}).ok());
  auto input = nlohmann::json::parse(ReadAll(dir_ + "/good-store"));
  EXPECT_EQ(input["ServerURL"], "ghcr.io");
  EXPECT_EQ(input["Username"], "alice");
  EXPECT_EQ(input["Secret"], "pw");
  EXPECT_EQ(ReadAll(files_.docker_config), config);  // untouched

  ASSERT_TRUE(creds.Erase("ghcr.io").ok());
  EXPECT_EQ(ReadAll(dir_ + "/good-erase"), "ghcr.io");

  DockerConfig(R"({"credsStore":"none"})");
  EXPECT_EQ(creds.Erase("ghcr.io").code(), StatusCode::kNotFound);
}

TEST_F(CredentialsTest, EraseRemovesEveryEntryForTheRegistry) {
  DockerConfig(R"({"auths":{"docker.io":{"auth":")" + AuthOf("a:b") +
               R"("},"https://index.docker.io/v1/":{"auth":")" + AuthOf("c:d") +
               R"("},"quay.io":{"auth":")" + AuthOf("q:q") + R"("}},"other":1})");
  DockerCredentials creds(files_);
  ASSERT_TRUE(creds.Erase("docker.io").ok());
  EXPECT_FALSE(MustLookup("docker.io"));
  EXPECT_TRUE(MustLookup("quay.io"));
  auto doc = nlohmann::json::parse(ReadAll(files_.docker_config));
  EXPECT_EQ(doc["other"], 1);
  EXPECT_EQ(creds.Erase("docker.io").code(), StatusCode::kNotFound);
}

TEST_F(CredentialsTest, DescribeNamesTheSourceNeverTheSecret) {
  DockerConfig(R"({"credHelpers":{"ghcr.io":"pass"},"auths":{"quay.io":{"auth":")" +
               AuthOf("q:topsecret") + R"("}}})");
  DockerCredentials creds(files_);
  EXPECT_EQ(creds.Describe("ghcr.io"), "credential helper docker-credential-pass");
  EXPECT_EQ(creds.Describe("quay.io"), "auths in " + files_.docker_config);
  EXPECT_EQ(creds.Describe("docker.io"), "none");
}

}  // namespace
}  // namespace hoist::config
