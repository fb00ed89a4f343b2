// Registry configuration end to end, against the real registry on loopback: docker's
// config.json (hoist login/logout, credential helpers, identity tokens), token auth corner
// cases, TLS with certs.d and client certificates, registries.conf mirrors with fallback,
// `hoist config`, and foreign layers fetched from their URLs.
//
// Each test points DOCKER_CONFIG, REGISTRY_AUTH_FILE, HOIST_REGISTRIES_CONF and
// XDG_CONFIG_HOME into its own temp dir (and unsets HOIST_CREDS), so neither the user's nor
// the system's configuration takes part; the environment is restored afterwards.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netdb.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <thread>

#include "base/strings.h"
#include "hoist/client.h"
#include "support/http_client.h"
#include "support/http_server.h"
#include "support/image_builder.h"
#include "support/process.h"
#include "support/registry.h"
#include "support/tls.h"
#include "support/token_server.h"

namespace hoist {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using testing::BuiltImage;
using testing::Format;
using testing::RegistryOptions;
using testing::TestRegistry;
using testing::WaitFor;

// ---------------------------------------------------------------------------------------------
// Helpers

// Sets environment variables for a scope; the destructor restores what was there before.
class ScopedEnv {
 public:
  ScopedEnv() = default;
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;
  ~ScopedEnv() {
    for (auto it = saved_.rbegin(); it != saved_.rend(); ++it) {
      if (it->second) {
        setenv(it->first.c_str(), it->second->c_str(), 1);
      } else {
        unsetenv(it->first.c_str());
      }
    }
  }
  void Set(const std::string& name, const std::string& value) {
    Save(name);
    setenv(name.c_str(), value.c_str(), 1);
  }
  void Unset(const std::string& name) {
    Save(name);
    unsetenv(name.c_str());
  }

 private:
  void Save(const std::string& name) {
    const char* old = getenv(name.c_str());
    saved_.emplace_back(name, old ? std::optional<std::string>(old) : std::nullopt);
  }
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void WriteFile(const std::string& path, const std::string& data) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary | std::ios::trunc) << data;
}

int CountLines(const std::string& text, const std::string& needle = "") {
  int n = 0;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) n += line.find(needle) != std::string::npos;
  return n;
}

// `text` with every occurrence of each key of `values` ("@HOST@") replaced by its value.
std::string Fill(std::string text, const std::map<std::string, std::string>& values) {
  for (const auto& [key, value] : values) {
    for (size_t at = text.find(key); at != std::string::npos;
         at = text.find(key, at + value.size())) {
      text.replace(at, key.size(), value);
    }
  }
  return text;
}

bool ContainsIgnoreCase(const std::string& text, const std::string& needle) {
  return ToLower(text).find(ToLower(needle)) != std::string::npos;
}

using testing::CliRun;

// The hoist binary with `args` (its environment is this process's), `input` on stdin.
CliRun Hoist(const std::vector<std::string>& args, const std::string& dir,
             const std::string& input = "") {
  return testing::RunCli(HOIST_CLI, args, dir, input);
}

BuiltImage SmallImage(Format f, const std::string& word) {
  return testing::BuildImage(f, {{{"etc/", "", '5'}, {"etc/word", word + "\n"}},
                                 {{"data/", "", '5'}, {"data/" + word, std::string(50000, 'w')}}});
}

// A name of this machine that hoist does not take for loopback (loopback registries are
// reached without TLS verification, as in docker) but that resolves to one of its own
// addresses: the host name, e.g. "vm" → 127.0.0.1 through /etc/hosts. False when the host
// name is missing, "localhost", an address, or does not resolve.
bool NonLoopbackNameOfThisHost(std::string* name, std::string* address) {
  char buf[256] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return false;
  std::string n = ToLower(buf);
  if (n.empty() || n == "localhost" || n.find_first_not_of("0123456789.:") == std::string::npos) {
    return false;
  }
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(n.c_str(), nullptr, &hints, &res) != 0 || res == nullptr) return false;
  char text[INET_ADDRSTRLEN] = {};
  bool ok = inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(res->ai_addr)->sin_addr, text,
                      sizeof(text)) != nullptr;
  freeaddrinfo(res);
  if (!ok) return false;
  *name = n;
  *address = text;
  return true;
}

// The value of one form field of an application/x-www-form-urlencoded body ("" if absent).
std::string FormField(const std::string& body, const std::string& key) {
  for (std::string_view part : Split(body, '&')) {
    size_t eq = part.find('=');
    std::string k, v;
    if (!testing::token_internal::FormDecode(part.substr(0, eq), &k) || k != key) continue;
    if (eq != std::string_view::npos) testing::token_internal::FormDecode(part.substr(eq + 1), &v);
    return v;
  }
  return "";
}

// ---------------------------------------------------------------------------------------------
// Fixture

class RegistryConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!TestRegistry::Available()) GTEST_SKIP() << "docker-registry not installed";
    auto dir = testing::TempDir::Create("hoist-cfg-");
    ASSERT_TRUE(dir.ok());
    dir_.emplace(std::move(dir).value());
    docker_config_ = dir_->path() + "/docker/config.json";
    registries_conf_ = dir_->path() + "/registries.conf";
    empty_certs_ = dir_->path() + "/no-certs.d";
    fs::create_directories(empty_certs_);
    WriteFile(registries_conf_, "");
    env_.Set("DOCKER_CONFIG", dir_->path() + "/docker");
    env_.Set("REGISTRY_AUTH_FILE", dir_->path() + "/auth.json");  // absent: no podman creds
    env_.Set("HOIST_REGISTRIES_CONF", registries_conf_);
    env_.Set("XDG_CONFIG_HOME", dir_->path() + "/xdg");
    env_.Unset("HOIST_CREDS");
    env_.Unset("HOIST_STORE");
  }

  const std::string& dir() const { return dir_->path(); }
  // A path for a store not used before.
  std::string NewStore() { return dir() + "/store" + std::to_string(++stores_); }

  // Options for a fresh store that read only this test's configuration files.
  ClientOptions Options() {
    ClientOptions o;
    o.store_dir = NewStore();
    o.registries_conf = registries_conf_;
    o.certs_dirs = {empty_certs_};
    return o;
  }
  std::unique_ptr<Client> Open(const ClientOptions& o) {
    auto c = Client::Open(o);
    EXPECT_TRUE(c.ok()) << c.status().message();
    return c.ok() ? std::move(c).value() : nullptr;
  }
  Result<Image> PullWith(const ClientOptions& o, const std::string& ref,
                         const PullOptions& p = {}) {
    auto c = Client::Open(o);
    if (!c.ok()) return c.status();
    return (*c)->Pull(ref, p);
  }

  void WriteDockerConfig(const json& doc) { WriteFile(docker_config_, doc.dump(2)); }
  json ReadDockerConfig() { return json::parse(ReadFile(docker_config_), nullptr, false); }

  std::optional<testing::TempDir> dir_;
  ScopedEnv env_;
  std::string docker_config_, registries_conf_, empty_certs_;
  int stores_ = 0;
};

// ---------------------------------------------------------------------------------------------
// 1. hoist login / logout with docker's config.json

TEST_F(RegistryConfigTest, LoginStoresCredentialsPullUsesThemLogoutRemovesThem) {
  const std::string password = "correct-horse:77";
  RegistryOptions o;
  o.auth = RegistryOptions::Auth::kHtpasswd;
  o.user = "alice";
  o.password = password;
  auto reg = TestRegistry::Start(o);
  ASSERT_TRUE(reg.ok()) << reg.status().message();
  const std::string host = (*reg)->host();
  BuiltImage img = SmallImage(Format::kOci, "login");
  ASSERT_TRUE(testing::PushImage(host, "private/app", "1", img, "alice:" + password).ok());
  const std::string ref = host + "/private/app:1";
  const std::string store = NewStore();

  // A wrong password: one error line, nothing stored.
  CliRun wrong = Hoist({"--store", store, "login", "-u", "alice", "--password-stdin", host}, dir(),
                       "not-the-password\n");
  EXPECT_EQ(wrong.exit_code, 1) << wrong.out << wrong.err;
  EXPECT_EQ(CountLines(wrong.err), 1) << wrong.err;
  EXPECT_EQ(wrong.err.rfind("hoist: ", 0), 0u) << wrong.err;
  EXPECT_FALSE(fs::exists(docker_config_)) << ReadFile(docker_config_);

  // The right one: config.json is created, 0600, with docker's auths entry.
  CliRun login = Hoist({"--store", store, "login", "-u", "alice", "--password-stdin", host}, dir(),
                       password + "\n");
  ASSERT_EQ(login.exit_code, 0) << login.out << login.err;
  EXPECT_EQ(login.err, "");
  EXPECT_EQ(login.out.find(password), std::string::npos) << login.out;
  struct stat st {};
  ASSERT_EQ(stat(docker_config_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  json doc = ReadDockerConfig();
  ASSERT_TRUE(doc.is_object()) << ReadFile(docker_config_);
  ASSERT_TRUE(doc["auths"][host].is_object()) << doc.dump();
  EXPECT_EQ(doc["auths"][host]["auth"], Base64Encode("alice:" + password)) << doc.dump();

  // Other entries of the file survive a login and a logout.
  doc["auths"]["other.example:5000"] = {{"auth", Base64Encode("bob:x")}};
  doc["psFormat"] = "table {{.ID}}";
  WriteDockerConfig(doc);
  login = Hoist({"--store", store, "login", "-u", "alice", "--password-stdin", host}, dir(),
                password + "\n");
  ASSERT_EQ(login.exit_code, 0) << login.err;
  doc = ReadDockerConfig();
  EXPECT_EQ(doc["auths"][host]["auth"], Base64Encode("alice:" + password)) << doc.dump();
  EXPECT_EQ(doc["auths"]["other.example:5000"]["auth"], Base64Encode("bob:x")) << doc.dump();
  EXPECT_EQ(doc["psFormat"], "table {{.ID}}");

  // A pull with no --creds uses them.
  CliRun pull = Hoist({"--store", store, "pull", "-q", ref}, dir());
  ASSERT_EQ(pull.exit_code, 0) << pull.err;
  EXPECT_EQ(pull.out, ref + "@" + img.manifest_digest + "\n");
  auto lib = PullWith(Options(), ref);
  ASSERT_TRUE(lib.ok()) << lib.status().message();
  EXPECT_EQ(lib->repo_digest.String(), img.manifest_digest);

  // Logout removes the entry and nothing else; then the registry refuses.
  CliRun logout = Hoist({"--store", store, "logout", host}, dir());
  ASSERT_EQ(logout.exit_code, 0) << logout.err;
  doc = ReadDockerConfig();
  ASSERT_TRUE(doc.is_object()) << ReadFile(docker_config_);
  EXPECT_FALSE(doc["auths"].contains(host)) << doc.dump();
  EXPECT_EQ(doc["auths"]["other.example:5000"]["auth"], Base64Encode("bob:x")) << doc.dump();
  EXPECT_EQ(doc["psFormat"], "table {{.ID}}");
  auto refused = PullWith(Options(), ref);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kUnauthenticated) << refused.status().message();
  CliRun again = Hoist({"--store", store, "logout", host}, dir());
  EXPECT_NE(again.exit_code, 0) << "nothing left to log out of";
  EXPECT_EQ(CountLines(again.err), 1) << again.err;

  // The library's Login/Logout do the same.
  auto client = Open(Options());
  ASSERT_TRUE(client);
  Status bad = client->Login(host, "alice", "nope");
  EXPECT_FALSE(bad.ok());
  EXPECT_EQ(bad.message().find("nope"), std::string::npos) << bad.message();
  EXPECT_FALSE(ReadDockerConfig()["auths"].contains(host));
  ASSERT_TRUE(client->Login(host, "alice", password).ok());
  EXPECT_TRUE(PullWith(Options(), ref).ok());
  ASSERT_TRUE(client->Logout(host).ok());
  EXPECT_EQ(client->Logout(host).code(), StatusCode::kNotFound);
}

// ---------------------------------------------------------------------------------------------
// 2. Credential helpers named by config.json, found in PATH

TEST_F(RegistryConfigTest, CredentialHelperFromPathAnswersForTheRegistry) {
  const std::string password = "helper-pw-31";
  RegistryOptions o;
  o.auth = RegistryOptions::Auth::kHtpasswd;
  o.user = "alice";
  o.password = password;
  auto reg = TestRegistry::Start(o);
  ASSERT_TRUE(reg.ok()) << reg.status().message();
  const std::string host = (*reg)->host();
  BuiltImage img = SmallImage(Format::kDocker, "helper");
  ASSERT_TRUE(testing::PushImage(host, "private/app", "1", img, "alice:" + password).ok());
  const std::string ref = host + "/private/app:1";

  const std::string bin = dir() + "/bin";
  const std::string calls = dir() + "/helper-calls.log";
  const std::string script = R"(#!/bin/sh
read -r server
echo "$1 $server" >> '@CALLS@'
if [ "$1" = get ] && [ "$server" = '@HOST@' ]; then
  printf '{"ServerURL":"%s","Username":"alice","Secret":"%s"}\n' "$server" '@SECRET@'
  exit 0
fi
echo 'credentials not found in native keychain'
exit 1
)";
  WriteFile(bin + "/docker-credential-hoisttest",
            Fill(script, {{"@CALLS@", calls}, {"@HOST@", host}, {"@SECRET@", password}}));
  fs::permissions(bin + "/docker-credential-hoisttest", fs::perms::owner_all);
  env_.Set("PATH", bin + ":" + std::string(getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin"));

  // credHelpers beats the (wrong) auths entry for the same registry.
  WriteDockerConfig({{"credHelpers", {{host, "hoisttest"}}},
                     {"auths", {{host, {{"auth", Base64Encode("alice:stale")}}}}}});
  auto pulled = PullWith(Options(), ref);
  ASSERT_TRUE(pulled.ok()) << pulled.status().message();
  EXPECT_EQ(pulled->repo_digest.String(), img.manifest_digest);
  EXPECT_NE(ReadFile(calls).find("get " + host), std::string::npos) << ReadFile(calls);

  // `hoist config` names the helper, never the secret it gives.
  auto client = Open(Options());
  ASSERT_TRUE(client);
  auto described = client->DescribeConfig(ref);
  ASSERT_TRUE(described.ok()) << described.status().message();
  EXPECT_NE(described->find("docker-credential-hoisttest"), std::string::npos) << *described;
  EXPECT_EQ(described->find(password), std::string::npos) << *described;

  // A helper that is not installed: the error names it.
  WriteDockerConfig({{"credHelpers", {{host, "hoistmissing"}}}});
  auto missing = PullWith(Options(), ref);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("docker-credential-hoistmissing"), std::string::npos)
      << missing.status().message();
}

// ---------------------------------------------------------------------------------------------
// 3. Token auth

// An open registry holding public/app:1 and private/app:1, and a token-auth registry serving
// the same storage with `tokens` as its realm.
struct TokenSetup {
  std::unique_ptr<TestRegistry> open;
  std::unique_ptr<testing::TokenServer> tokens;
  std::unique_ptr<TestRegistry> reg;
  BuiltImage pub, priv;
};

void StartTokenSetup(const testing::TokenOptions& t, TokenSetup* s) {
  auto open = TestRegistry::Start();
  ASSERT_TRUE(open.ok()) << open.status().message();
  s->open = std::move(open).value();
  s->pub = SmallImage(Format::kOci, "public");
  s->priv = SmallImage(Format::kOci, "private");
  ASSERT_TRUE(testing::PushImage(s->open->host(), "public/app", "1", s->pub).ok());
  ASSERT_TRUE(testing::PushImage(s->open->host(), "private/app", "1", s->priv).ok());
  auto tokens = testing::TokenServer::Start(t);
  ASSERT_TRUE(tokens.ok()) << tokens.status().message();
  s->tokens = std::move(tokens).value();
  RegistryOptions o;
  o.auth = RegistryOptions::Auth::kToken;
  o.token_realm = s->tokens->realm();
  o.token_service = t.service;
  o.token_issuer = t.issuer;
  o.token_cert_path = s->tokens->cert_path();
  o.storage_dir = s->open->storage_dir();
  auto reg = TestRegistry::Start(o);
  ASSERT_TRUE(reg.ok()) << reg.status().message();
  s->reg = std::move(reg).value();
}

testing::TokenOptions BobCanPullPrivate() {
  testing::TokenOptions t;
  t.users = {{"bob", "hunter2"}};
  t.public_repos = {"public/app"};
  t.refresh_tokens = {{"refresh-for-bob-7f3a", "bob"}};
  return t;
}

TEST_F(RegistryConfigTest, TokenAuthAnonymousPublicAndPrivateWithDockerConfig) {
  TokenSetup s;
  ASSERT_NO_FATAL_FAILURE(StartTokenSetup(BobCanPullPrivate(), &s));
  const std::string host = s.reg->host();

  auto pub = PullWith(Options(), host + "/public/app:1");
  ASSERT_TRUE(pub.ok()) << pub.status().message();
  EXPECT_EQ(pub->repo_digest.String(), s.pub.manifest_digest);
  auto denied = PullWith(Options(), host + "/private/app:1");
  ASSERT_FALSE(denied.ok());
  EXPECT_EQ(denied.status().code(), StatusCode::kUnauthenticated) << denied.status().message();
  for (const auto& r : s.tokens->requests()) {
    EXPECT_EQ(r.headers.count("authorization"), 0u) << "no credentials configured";
  }

  WriteDockerConfig({{"auths", {{host, {{"auth", Base64Encode("bob:hunter2")}}}}}});
  const size_t before = s.tokens->requests().size();
  auto priv = PullWith(Options(), host + "/private/app:1");
  ASSERT_TRUE(priv.ok()) << priv.status().message();
  EXPECT_EQ(priv->repo_digest.String(), s.priv.manifest_digest);
  auto requests = s.tokens->requests();
  ASSERT_GT(requests.size(), before);
  for (size_t i = before; i < requests.size(); ++i) {
    EXPECT_EQ(requests[i].headers["authorization"], "Basic " + Base64Encode("bob:hunter2"))
        << requests[i].target;
  }
}

TEST_F(RegistryConfigTest, IdentityTokenIsSentAsAnOAuthRefreshGrant) {
  testing::TokenOptions t = BobCanPullPrivate();
  TokenSetup s;
  ASSERT_NO_FATAL_FAILURE(StartTokenSetup(t, &s));
  const std::string host = s.reg->host();
  WriteDockerConfig({{"auths", {{host, {{"identitytoken", "refresh-for-bob-7f3a"}}}}}});

  auto priv = PullWith(Options(), host + "/private/app:1");
  ASSERT_TRUE(priv.ok()) << priv.status().message();
  EXPECT_EQ(priv->repo_digest.String(), s.priv.manifest_digest);
  int posts = 0;
  for (const auto& r : s.tokens->requests()) {
    EXPECT_EQ(r.headers.count("authorization"), 0u) << r.method << " " << r.target;
    if (r.method != "POST") continue;
    ++posts;
    EXPECT_EQ(FormField(r.body, "grant_type"), "refresh_token") << r.body;
    EXPECT_EQ(FormField(r.body, "refresh_token"), "refresh-for-bob-7f3a") << r.body;
    EXPECT_EQ(FormField(r.body, "service"), t.service) << r.body;
    EXPECT_NE(FormField(r.body, "scope").find("repository:private/app:pull"), std::string::npos)
        << r.body;
    EXPECT_NE(FormField(r.body, "client_id"), "") << r.body;
  }
  EXPECT_GE(posts, 1);

  // An identity token the server does not know gets nothing.
  WriteDockerConfig({{"auths", {{host, {{"identitytoken", "revoked"}}}}}});
  auto refused = PullWith(Options(), host + "/private/app:1");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kUnauthenticated) << refused.status().message();
}

TEST_F(RegistryConfigTest, TokenThatExpiresMidPullIsRenewed) {
  // Tokens live 2 s, and the registry (which allows 60 s of clock skew) is made to refuse
  // them once those 2 s have passed.
  testing::TokenOptions t = BobCanPullPrivate();
  t.expires_in = 2;
  t.exp_claim_skew = 60;
  TokenSetup s;
  ASSERT_NO_FATAL_FAILURE(StartTokenSetup(t, &s));

  // A forwarding front for the registry that holds the first request for the first layer for
  // 3 s, so that it reaches the registry with an expired token.
  const std::string upstream = s.reg->url();
  const std::string slow_blob = "/blobs/" + s.priv.layers[0].digest;
  std::mutex mu;
  bool held = false;
  std::vector<std::pair<std::string, int>> answers;  // target, status
  auto front = testing::FixtureServer::Start([&](const testing::HttpRequest& r) {
    bool hold = false;
    if (r.target.find(slow_blob) != std::string::npos) {
      std::lock_guard<std::mutex> lock(mu);
      hold = !held;
      held = true;
    }
    if (hold) std::this_thread::sleep_for(std::chrono::seconds(3));
    std::vector<std::string> headers;
    for (const char* name : {"authorization", "accept", "range"}) {
      auto it = r.headers.find(name);
      if (it != r.headers.end()) headers.push_back(std::string(name) + ": " + it->second);
    }
    auto got = testing::HttpCall(r.method, upstream + r.target, headers, r.body, "", 30);
    if (!got.ok()) return testing::HttpResponse{502, {}, got.status().message()};
    testing::HttpResponse out{got->status, {}, got->body};
    for (const auto& [name, value] : got->headers) {
      if (name == "connection" || name == "transfer-encoding") continue;
      out.headers.emplace_back(name, value);
    }
    std::lock_guard<std::mutex> lock(mu);
    answers.emplace_back(r.target, got->status);
    return out;
  });
  ASSERT_TRUE(front.ok()) << front.status().message();

  ClientOptions o = Options();
  o.credentials = "bob:hunter2";
  PullOptions p;
  p.jobs = 1;
  auto priv = PullWith(o, (*front)->host() + "/private/app:1", p);
  ASSERT_TRUE(priv.ok()) << priv.status().message();
  EXPECT_EQ(priv->repo_digest.String(), s.priv.manifest_digest);
  EXPECT_GE(s.tokens->tokens_issued(), 2);
  std::vector<int> slow_statuses;
  {
    std::lock_guard<std::mutex> lock(mu);
    for (const auto& [target, status] : answers) {
      if (target.find(slow_blob) != std::string::npos) slow_statuses.push_back(status);
    }
  }
  // The held request was refused for its expired token, and the retry with a new one served.
  ASSERT_GE(slow_statuses.size(), 2u);
  EXPECT_EQ(slow_statuses.front(), 401);
  EXPECT_EQ(slow_statuses.back(), 200);
}

TEST_F(RegistryConfigTest, RealmOnAnotherHostOverHttpGetsNoCredentials) {
  // The registry is 127.0.0.1:PORT; its realm is http://localhost:PORT2/token: another host,
  // in the clear.
  testing::TokenOptions t = BobCanPullPrivate();
  t.realm_host = "localhost";
  TokenSetup s;
  ASSERT_NO_FATAL_FAILURE(StartTokenSetup(t, &s));
  ASSERT_EQ(s.tokens->realm().rfind("http://localhost:", 0), 0u);
  const std::string host = s.reg->host();
  WriteDockerConfig({{"auths", {{host, {{"auth", Base64Encode("bob:hunter2")}}}}}});

  auto pub = PullWith(Options(), host + "/public/app:1");
  ASSERT_TRUE(pub.ok()) << pub.status().message();
  auto priv = PullWith(Options(), host + "/private/app:1");
  ASSERT_FALSE(priv.ok());
  EXPECT_EQ(priv.status().code(), StatusCode::kUnauthenticated) << priv.status().message();
  ClientOptions with_flag = Options();
  with_flag.credentials = "bob:hunter2";
  EXPECT_FALSE(PullWith(with_flag, host + "/private/app:1").ok());

  auto requests = s.tokens->requests();
  EXPECT_GE(requests.size(), 2u) << "the realm is used";
  for (const auto& r : requests) {
    EXPECT_EQ(r.headers.count("authorization"), 0u) << r.method << " " << r.target;
    EXPECT_EQ(r.body.find("hunter2"), std::string::npos) << r.body;
    EXPECT_EQ(r.target.find("hunter2"), std::string::npos) << r.target;
  }
}

// ---------------------------------------------------------------------------------------------
// 4. TLS: certs.d, --cert-dir, --tls-verify=false, client certificates

// An https registry serving `storage_dir` on `address` with a certificate from `ca` for
// `names`; with `client_pair`, it requires a client certificate from `ca` too.
std::unique_ptr<TestRegistry> StartTlsRegistry(testing::TestCa& ca,
                                               const std::vector<std::string>& names,
                                               const std::string& address,
                                               const std::string& storage_dir,
                                               const testing::CertFiles* client_pair = nullptr) {
  auto server = ca.IssueServerCert(names);
  EXPECT_TRUE(server.ok()) << server.status().message();
  if (!server.ok()) return nullptr;
  RegistryOptions o;
  o.storage_dir = storage_dir;
  o.listen_address = address;
  o.tls_cert_path = server->cert_path;
  o.tls_key_path = server->key_path;
  if (client_pair != nullptr) {
    o.tls_client_ca_path = ca.ca_cert_path();
    o.tls_probe_cert_path = client_pair->cert_path;
    o.tls_probe_key_path = client_pair->key_path;
  }
  auto reg = TestRegistry::Start(o);
  EXPECT_TRUE(reg.ok()) << reg.status().message();
  return reg.ok() ? std::move(reg).value() : nullptr;
}

TEST_F(RegistryConfigTest, TlsRegistryIsVerifiedWithCertsD) {
  auto ca = testing::TestCa::Create();
  ASSERT_TRUE(ca.ok()) << ca.status().message();
  auto client_cert = ca->IssueClientCert("hoist-client");
  ASSERT_TRUE(client_cert.ok()) << client_cert.status().message();

  // Push over http, then serve the same storage over https.
  auto open = TestRegistry::Start();
  ASSERT_TRUE(open.ok()) << open.status().message();
  BuiltImage img = SmallImage(Format::kOci, "tls");
  ASSERT_TRUE(testing::PushImage((*open)->host(), "app", "1", img).ok());
  auto reg = StartTlsRegistry(*ca, {"127.0.0.1", "localhost"}, "127.0.0.1", (*open)->storage_dir());
  ASSERT_TRUE(reg);
  const std::string host = reg->host();
  const std::string ref = host + "/app:1";
  const std::string certs_d = dir() + "/certs.d";
  WriteFile(certs_d + "/" + host + "/ca.crt", ca->ca_cert_pem());

  // A loopback registry is not verified by default (as in docker); kAlways verifies it.
  auto loopback = PullWith(Options(), ref);
  EXPECT_TRUE(loopback.ok()) << loopback.status().message();

  ClientOptions with_ca = Options();
  with_ca.tls_verify = ClientOptions::TlsVerify::kAlways;
  with_ca.certs_dirs = {certs_d};
  auto good = PullWith(with_ca, ref);
  ASSERT_TRUE(good.ok()) << good.status().message();
  EXPECT_EQ(good->repo_digest.String(), img.manifest_digest);
  EXPECT_EQ(good->reference, ref);

  ClientOptions without_ca = Options();
  without_ca.tls_verify = ClientOptions::TlsVerify::kAlways;
  auto unknown_ca = PullWith(without_ca, ref);
  ASSERT_FALSE(unknown_ca.ok()) << "the server's CA is not trusted";
  const std::string why = unknown_ca.status().message();
  EXPECT_NE(why.find(host), std::string::npos) << why;
  EXPECT_TRUE(ContainsIgnoreCase(why, "certificate") || ContainsIgnoreCase(why, "TLS")) << why;

  ClientOptions cert_dir = Options();
  cert_dir.tls_verify = ClientOptions::TlsVerify::kAlways;
  cert_dir.cert_dir = certs_d + "/" + host;
  auto via_cert_dir = PullWith(cert_dir, ref);
  EXPECT_TRUE(via_cert_dir.ok()) << via_cert_dir.status().message();

  ClientOptions no_verify = Options();
  no_verify.tls_verify = ClientOptions::TlsVerify::kNever;
  auto unverified = PullWith(no_verify, ref);
  EXPECT_TRUE(unverified.ok()) << unverified.status().message();

  // The command line: --tls-verify and --cert-dir.
  CliRun cli = Hoist({"--store", NewStore(), "pull", "-q", "--tls-verify=true", "--cert-dir",
                      cert_dir.cert_dir, ref},
                     dir());
  EXPECT_EQ(cli.exit_code, 0) << cli.err;
  cli = Hoist({"--store", NewStore(), "pull", "-q", "--tls-verify=true", ref}, dir());
  EXPECT_EQ(cli.exit_code, 1) << cli.out;
  EXPECT_EQ(CountLines(cli.err), 1) << cli.err;
  EXPECT_NE(cli.err.find(host), std::string::npos) << cli.err;
  cli = Hoist({"--store", NewStore(), "pull", "-q", "--tls-verify=false", ref}, dir());
  EXPECT_EQ(cli.exit_code, 0) << cli.err;

  // A registry that requires a client certificate from the same CA.
  auto strict =
      StartTlsRegistry(*ca, {"127.0.0.1"}, "127.0.0.1", (*open)->storage_dir(), &*client_cert);
  ASSERT_TRUE(strict);
  const std::string strict_host = strict->host();
  const std::string with_pair = dir() + "/certs-pair.d";
  const std::string ca_only = dir() + "/certs-ca.d";
  WriteFile(with_pair + "/" + strict_host + "/ca.crt", ca->ca_cert_pem());
  WriteFile(with_pair + "/" + strict_host + "/client.cert", ReadFile(client_cert->cert_path));
  WriteFile(with_pair + "/" + strict_host + "/client.key", ReadFile(client_cert->key_path));
  WriteFile(ca_only + "/" + strict_host + "/ca.crt", ca->ca_cert_pem());

  ClientOptions pair = Options();
  pair.tls_verify = ClientOptions::TlsVerify::kAlways;
  pair.certs_dirs = {with_pair};
  auto authenticated = PullWith(pair, strict_host + "/app:1");
  ASSERT_TRUE(authenticated.ok()) << authenticated.status().message();
  EXPECT_EQ(authenticated->repo_digest.String(), img.manifest_digest);

  ClientOptions no_pair = Options();
  no_pair.tls_verify = ClientOptions::TlsVerify::kAlways;
  no_pair.certs_dirs = {ca_only};
  auto anonymous = PullWith(no_pair, strict_host + "/app:1");
  ASSERT_FALSE(anonymous.ok()) << "the registry requires a client certificate";
  EXPECT_NE(anonymous.status().message().find(strict_host), std::string::npos)
      << anonymous.status().message();
}

TEST_F(RegistryConfigTest, NonLoopbackTlsRegistryIsVerifiedByDefault) {
  std::string name, address;
  if (!NonLoopbackNameOfThisHost(&name, &address)) {
    GTEST_SKIP() << "this host has no name (other than localhost) that resolves to itself";
  }
  auto ca = testing::TestCa::Create();
  ASSERT_TRUE(ca.ok()) << ca.status().message();
  auto open = TestRegistry::Start();
  ASSERT_TRUE(open.ok()) << open.status().message();
  BuiltImage img = SmallImage(Format::kDocker, "named");
  ASSERT_TRUE(testing::PushImage((*open)->host(), "app", "1", img).ok());
  auto reg = StartTlsRegistry(*ca, {name, address}, address, (*open)->storage_dir());
  ASSERT_TRUE(reg);
  // Addressed by name, so that hoist does not take it for loopback.
  const std::string host = name + ":" + std::to_string(reg->port());
  const std::string certs_d = dir() + "/certs.d";
  WriteFile(certs_d + "/" + host + "/ca.crt", ca->ca_cert_pem());

  auto unknown_ca = PullWith(Options(), host + "/app:1");
  ASSERT_FALSE(unknown_ca.ok()) << "verified by default";
  EXPECT_NE(unknown_ca.status().message().find(host), std::string::npos)
      << unknown_ca.status().message();
  ClientOptions with_ca = Options();
  with_ca.certs_dirs = {certs_d};
  auto good = PullWith(with_ca, host + "/app:1");
  ASSERT_TRUE(good.ok()) << good.status().message();
  EXPECT_EQ(good->repo_digest.String(), img.manifest_digest);
}

// ---------------------------------------------------------------------------------------------
// 5. registries.conf: mirrors, fallback, blocked, malformed

TEST_F(RegistryConfigTest, MirrorServesPullsAndTheRegistryIsTheFallback) {
  auto up = TestRegistry::Start();
  ASSERT_TRUE(up.ok()) << up.status().message();
  BuiltImage img = SmallImage(Format::kOci, "mirrored");
  ASSERT_TRUE(testing::PushImage((*up)->host(), "app", "1", img).ok());
  RegistryOptions m;
  m.proxy_remote_url = (*up)->url();
  auto mirror = TestRegistry::Start(m);
  ASSERT_TRUE(mirror.ok()) << mirror.status().message();
  const std::string up_host = (*up)->host(), mirror_host = (*mirror)->host();
  WriteFile(registries_conf_, Fill(R"([[registry]]
prefix = "@UP@"
location = "@UP@"
[[registry.mirror]]
location = "@MIRROR@"
insecure = true
)",
                                   {{"@UP@", up_host}, {"@MIRROR@", mirror_host}}));
  const std::string ref = up_host + "/app:1";
  std::vector<std::string> blobs = {img.config.digest};
  for (const auto& l : img.layers) blobs.push_back(l.digest);

  std::vector<std::string> notices;
  PullOptions p;
  p.notice = [&notices](const std::string& line) { notices.push_back(line); };
  auto first = PullWith(Options(), ref, p);
  ASSERT_TRUE(first.ok()) << first.status().message();
  EXPECT_EQ(first->reference, ref) << "recorded under the name asked for";
  EXPECT_EQ(first->repo_digest.String(), img.manifest_digest);
  EXPECT_TRUE(notices.empty()) << notices.front();
  for (const auto& d : blobs) {
    EXPECT_EQ((*mirror)->CountRequests("GET", "/v2/app/blobs/" + d), 1) << d;
  }
  // The mirror stores what it fetched in the background; wait for it before pulling again.
  for (const auto& d : blobs) {
    auto digest = Digest::Parse(d);
    ASSERT_TRUE(digest.ok());
    ASSERT_TRUE(WaitFor([&] { return fs::exists((*mirror)->BlobDataPath(*digest)); }, 10)) << d;
  }
  // distribution 2.8's cache fetches a missing blob twice from its remote (once to answer,
  // once to store it), so the registry's count after the first pull is 1 or 2; what matters
  // is that the second pull adds nothing to it.
  std::map<std::string, int> upstream_gets;
  for (const auto& d : blobs) {
    upstream_gets[d] = (*up)->CountRequests("GET", "/v2/app/blobs/" + d);
    EXPECT_GE(upstream_gets[d], 1) << "the mirror fetched " << d << " from the registry";
  }

  auto second = PullWith(Options(), ref, p);
  ASSERT_TRUE(second.ok()) << second.status().message();
  EXPECT_TRUE(notices.empty());
  for (const auto& d : blobs) {
    EXPECT_EQ((*mirror)->CountRequests("GET", "/v2/app/blobs/" + d), 2) << d;
    EXPECT_EQ((*up)->CountRequests("GET", "/v2/app/blobs/" + d), upstream_gets[d])
        << "served from the mirror's cache: " << d;
  }

  // The mirror goes away: the registry itself serves, with one notice naming the mirror (after
  // the one retry a mirror gets, a line of its own).
  mirror->reset();
  ClientOptions quick = Options();
  quick.retry_base_delay_ms = 10;
  auto fallback = PullWith(quick, ref, p);
  std::erase_if(notices, [](const std::string& n) { return n.find(": Retrying in ") != n.npos; });
  ASSERT_TRUE(fallback.ok()) << fallback.status().message();
  EXPECT_EQ(fallback->reference, ref);
  EXPECT_EQ(fallback->repo_digest.String(), img.manifest_digest);
  ASSERT_EQ(notices.size(), 1u);
  EXPECT_NE(notices[0].find(mirror_host), std::string::npos) << notices[0];
  EXPECT_EQ(notices[0].find('\n'), std::string::npos) << notices[0];
  for (const auto& d : blobs) {
    EXPECT_EQ((*up)->CountRequests("GET", "/v2/app/blobs/" + d), upstream_gets[d] + 1) << d;
  }
}

// --creds and HOIST_CREDS belong to the reference's own registry: a mirror is asked with the
// credentials configured for its own host (here in config.json), through a Negotiate+Bearer
// challenge it answers with a token of its own, and never sees the registry's password.
TEST_F(RegistryConfigTest, MirrorNeverSeesTheCredsOfTheRegistry) {
  const std::string password = "registry-only-pw";
  RegistryOptions o;
  o.auth = RegistryOptions::Auth::kHtpasswd;
  o.user = "alice";
  o.password = password;
  auto reg = TestRegistry::Start(o);
  ASSERT_TRUE(reg.ok()) << reg.status().message();
  BuiltImage img = SmallImage(Format::kOci, "mirrorcreds");
  ASSERT_TRUE(testing::PushImage((*reg)->host(), "app", "1", img, "alice:" + password).ok());

  // The mirror: wants a bearer token from its own realm, which it gives for bob's password
  // only; with the token it does not have the image (404), so the pull falls back.
  const std::string mirror_basic = "Basic " + Base64Encode("bob:mirror-pw");
  std::atomic<int> mirror_port{0};
  auto mirror = testing::FixtureServer::Start([&](const testing::HttpRequest& r) {
    auto auth = r.headers.find("authorization");
    const std::string given = auth == r.headers.end() ? "" : auth->second;
    if (r.target.starts_with("/token")) {
      if (given != mirror_basic) return testing::HttpResponse{401, {}, "no"};
      return testing::HttpResponse{200, {}, R"({"token":"mirror-token"})"};
    }
    if (given != "Bearer mirror-token") {
      const std::string realm = "http://127.0.0.1:" + std::to_string(mirror_port.load()) + "/token";
      return testing::HttpResponse{
          401, {{"WWW-Authenticate", "Negotiate abc==, Bearer realm=\"" + realm + "\""}}, ""};
    }
    return testing::HttpResponse{404, {}, R"({"errors":[{"code":"MANIFEST_UNKNOWN"}]})"};
  });
  ASSERT_TRUE(mirror.ok()) << mirror.status().message();
  mirror_port = (*mirror)->port();
  WriteFile(registries_conf_, Fill(R"([[registry]]
prefix = "@REG@"
location = "@REG@"
[[registry.mirror]]
location = "@MIRROR@"
)",
                                   {{"@REG@", (*reg)->host()}, {"@MIRROR@", (*mirror)->host()}}));
  WriteDockerConfig({{"auths", {{(*mirror)->host(), {{"auth", Base64Encode("bob:mirror-pw")}}}}}});
  const std::string ref = (*reg)->host() + "/app:1";

  // The library with --creds, then the command line with HOIST_CREDS.
  ClientOptions with_creds = Options();
  with_creds.credentials = "alice:" + password;
  auto pulled = PullWith(with_creds, ref);
  ASSERT_TRUE(pulled.ok()) << pulled.status().message();
  EXPECT_EQ(pulled->repo_digest.String(), img.manifest_digest);
  env_.Set("HOIST_CREDS", "alice:" + password);
  CliRun cli = Hoist({"--store", NewStore(), "pull", "-q", ref}, dir());
  EXPECT_EQ(cli.exit_code, 0) << cli.err;

  bool token_asked_with_bob = false, manifest_asked_with_token = false;
  for (const auto& r : (*mirror)->requests()) {
    for (const auto& [name, value] : r.headers) {
      EXPECT_EQ(value.find(Base64Encode("alice:" + password)), std::string::npos)
          << r.target << " " << name;
      EXPECT_EQ(value.find(password), std::string::npos) << r.target << " " << name;
    }
    auto auth = r.headers.find("authorization");
    if (auth == r.headers.end()) continue;
    token_asked_with_bob |= r.target.starts_with("/token") && auth->second == mirror_basic;
    manifest_asked_with_token |=
        r.target.starts_with("/v2/app/manifests/") && auth->second == "Bearer mirror-token";
  }
  EXPECT_TRUE(token_asked_with_bob) << "the mirror's own credentials went to its realm";
  EXPECT_TRUE(manifest_asked_with_token) << "the Bearer challenge was found behind Negotiate";
}

// With a [[registry]] location rewrite, config.json is asked about the host actually
// contacted, not the name in the reference.
TEST_F(RegistryConfigTest, LocationRewriteUsesTheCredentialsOfTheHostContacted) {
  RegistryOptions o;
  o.auth = RegistryOptions::Auth::kHtpasswd;
  o.user = "alice";
  o.password = "rewrite-pw";
  auto reg = TestRegistry::Start(o);
  ASSERT_TRUE(reg.ok()) << reg.status().message();
  BuiltImage img = SmallImage(Format::kOci, "rewrite");
  ASSERT_TRUE(testing::PushImage((*reg)->host(), "team/app", "1", img, "alice:rewrite-pw").ok());
  WriteFile(registries_conf_, Fill(R"([[registry]]
prefix = "alias.example/team"
location = "@REG@/team"
)",
                                   {{"@REG@", (*reg)->host()}}));
  WriteDockerConfig({{"auths",
                      {{(*reg)->host(), {{"auth", Base64Encode("alice:rewrite-pw")}}},
                       {"alias.example", {{"auth", Base64Encode("mallory:wrong")}}}}}});
  auto pulled = PullWith(Options(), "alias.example/team/app:1");
  ASSERT_TRUE(pulled.ok()) << pulled.status().message();
  EXPECT_EQ(pulled->reference, "alias.example/team/app:1");
  EXPECT_EQ(pulled->repo_digest.String(), img.manifest_digest);
}

TEST_F(RegistryConfigTest, BlockedRegistryAndMalformedFileAreNamed) {
  auto reg = TestRegistry::Start();
  ASSERT_TRUE(reg.ok()) << reg.status().message();
  BuiltImage img = SmallImage(Format::kOci, "blocked");
  ASSERT_TRUE(testing::PushImage((*reg)->host(), "app", "1", img).ok());
  const std::string ref = (*reg)->host() + "/app:1";

  const std::string blocked = dir() + "/blocked.conf";
  WriteFile(blocked, Fill(R"([[registry]]
prefix = "@HOST@"
location = "@HOST@"
blocked = true
)",
                          {{"@HOST@", (*reg)->host()}}));
  ClientOptions o = Options();
  o.registries_conf = blocked;
  auto refused = PullWith(o, ref);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kPermissionDenied) << refused.status().message();
  EXPECT_NE(refused.status().message().find(blocked), std::string::npos)
      << refused.status().message();
  EXPECT_EQ((*reg)->CountRequests("GET", "/v2/app/manifests/") +
                (*reg)->CountRequests("HEAD", "/v2/app/manifests/"),
            0)
      << "nothing is asked of the registry";

  const std::string malformed = dir() + "/malformed.conf";
  WriteFile(malformed, Fill(R"(unqualified-search-registries = ["docker.io"]
[[registry]]
prefix = "@HOST@"
location = "unterminated
)",
                            {{"@HOST@", (*reg)->host()}}));
  o.registries_conf = malformed;
  auto client = Client::Open(o);
  Status failure = client.ok() ? (*client)->Pull(ref).status() : client.status();
  ASSERT_FALSE(failure.ok());
  EXPECT_NE(failure.message().find(malformed + ":4"), std::string::npos) << failure.message();

  // The same through $HOIST_REGISTRIES_CONF and the command line.
  env_.Set("HOIST_REGISTRIES_CONF", blocked);
  CliRun cli = Hoist({"--store", NewStore(), "pull", ref}, dir());
  EXPECT_EQ(cli.exit_code, 1);
  EXPECT_EQ(CountLines(cli.err), 1) << cli.err;
  EXPECT_NE(cli.err.find(blocked), std::string::npos) << cli.err;
}

// ---------------------------------------------------------------------------------------------
// 6. hoist config

TEST_F(RegistryConfigTest, ConfigCommandShowsEndpointsAndCredentialSourceButNoSecret) {
  const std::string secret = "very-secret-pw-42";
  WriteFile(registries_conf_,
            "[[registry]]\n"
            "prefix = \"registry.example:5000\"\n"
            "location = \"registry.example:5000\"\n"
            "[[registry.mirror]]\n"
            "location = \"mirror-one.example:5001\"\n"
            "[[registry.mirror]]\n"
            "location = \"mirror-two.example:5002\"\n"
            "insecure = true\n");
  WriteDockerConfig(
      {{"auths", {{"registry.example:5000", {{"auth", Base64Encode("carol:" + secret)}}}}}});

  CliRun r = Hoist({"--store", NewStore(), "config", "registry.example:5000/team/app:1"}, dir());
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  size_t one = r.out.find("mirror-one.example:5001");
  size_t two = r.out.find("mirror-two.example:5002");
  ASSERT_NE(one, std::string::npos) << r.out;
  ASSERT_NE(two, std::string::npos) << r.out;
  EXPECT_LT(one, two) << r.out;
  EXPECT_NE(r.out.find("registry.example:5000", two), std::string::npos)
      << "the registry comes after its mirrors:\n"
      << r.out;
  EXPECT_NE(r.out.find(docker_config_), std::string::npos) << "credential source:\n" << r.out;
  EXPECT_NE(r.out.find(registries_conf_), std::string::npos) << "files read:\n" << r.out;
  for (const std::string& leak : {secret, Base64Encode("carol:" + secret)}) {
    EXPECT_EQ(r.out.find(leak), std::string::npos) << r.out;
    EXPECT_EQ(r.err.find(leak), std::string::npos) << r.err;
  }
}

// ---------------------------------------------------------------------------------------------
// 7. Foreign (non-distributable) layers

TEST_F(RegistryConfigTest, ForeignLayerComesFromItsUrlWithoutCredentials) {
  RegistryOptions o;
  o.auth = RegistryOptions::Auth::kHtpasswd;
  o.user = "alice";
  o.password = "foreign-pw";
  o.manifest_urls_allow = {"^http://127\\.0\\.0\\.1:[0-9]+/layers/"};
  auto reg = TestRegistry::Start(o);
  ASSERT_TRUE(reg.ok()) << reg.status().message();
  const std::string creds = "alice:foreign-pw";

  std::mutex mu;
  std::map<std::string, std::string> served;  // path → bytes
  auto cdn = testing::FixtureServer::Start([&](const testing::HttpRequest& r) {
    std::lock_guard<std::mutex> lock(mu);
    auto it = served.find(r.target);
    if (it == served.end()) return testing::HttpResponse{404, {}, "not here"};
    return testing::HttpResponse{200, {{"Content-Type", "application/octet-stream"}}, it->second};
  });
  ASSERT_TRUE(cdn.ok()) << cdn.status().message();

  struct Case {
    Format format;
    std::string foreign_type;
  };
  for (const Case& c :
       {Case{Format::kOci, "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"},
        Case{Format::kDocker, "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"}}) {
    SCOPED_TRACE(c.foreign_type);
    const bool oci = c.format == Format::kOci;
    std::string base_tar = testing::MakeTar({{"base/", "", '5'}, {"base/os", "foreign base\n"}});
    std::string app_tar = testing::MakeTar({{"app", oci ? "oci app\n" : "docker app\n"}});
    testing::Blob foreign = testing::GzipLayer(c.format, base_tar);
    foreign.media_type = c.foreign_type;
    testing::Blob app = testing::GzipLayer(c.format, app_tar);
    BuiltImage img = testing::BuildImageFromBlobs(
        c.format, {foreign, app},
        {testing::Sha256Digest(base_tar), testing::Sha256Digest(app_tar)});
    const std::string path = "/layers/" + foreign.digest;
    {
      std::lock_guard<std::mutex> lock(mu);
      served[path] = foreign.data;
    }
    json manifest = json::parse(img.manifest);
    manifest["layers"][0]["urls"] = {(*cdn)->url() + path};
    const std::string body = manifest.dump();
    const std::string repo = oci ? "foreign/oci" : "foreign/docker";
    ASSERT_TRUE(testing::PushBlob((*reg)->host(), repo, img.config, creds).ok());
    ASSERT_TRUE(testing::PushBlob((*reg)->host(), repo, app, creds).ok());
    Status pushed =
        testing::PushManifest((*reg)->host(), repo, "1", body, img.manifest_media_type, creds);
    ASSERT_TRUE(pushed.ok()) << pushed.message();
    const std::string ref = (*reg)->host() + "/" + repo + ":1";
    const size_t cdn_before = (*cdn)->requests().size();

    ClientOptions refuse = Options();
    refuse.credentials = creds;
    refuse.allow_foreign_urls = false;
    auto refused = PullWith(refuse, ref);
    ASSERT_FALSE(refused.ok()) << "foreign URLs are not allowed";
    EXPECT_EQ(refused.status().code(), StatusCode::kPermissionDenied) << refused.status().message();
    EXPECT_NE(
        refused.status().message().find("foreign layer: fetching it from its URLs is refused"),
        std::string::npos)
        << refused.status().message();
    EXPECT_NE(refused.status().message().find(foreign.digest), std::string::npos)
        << refused.status().message();
    EXPECT_EQ((*cdn)->requests().size(), cdn_before);

    ClientOptions allow = Options();
    allow.credentials = creds;
    auto pulled = PullWith(allow, ref);
    ASSERT_TRUE(pulled.ok()) << pulled.status().message();
    EXPECT_EQ(pulled->repo_digest.String(), testing::Sha256Digest(body));
    ASSERT_EQ(pulled->layers.size(), 2u);
    EXPECT_EQ(pulled->layers[0].digest.String(), foreign.digest);
    EXPECT_EQ(ReadFile(allow.store_dir + "/blobs/sha256/" + foreign.digest.substr(7)),
              foreign.data);
    auto requests = (*cdn)->requests();
    ASSERT_GT(requests.size(), cdn_before) << "the layer came from its URL";
    for (size_t i = cdn_before; i < requests.size(); ++i) {
      EXPECT_EQ(requests[i].target, path);
      EXPECT_EQ(requests[i].headers.count("authorization"), 0u) << "no registry credentials";
    }
  }
}

// A registry (htpasswd: alice) that accepts layer URLs on 127.0.0.1 and 127.0.0.2, and an image
// whose first layer is `first` (media type as given) with `urls`; its blob is pushed too when
// `push_first`, so the registry can serve it.
struct UrlImage {
  std::unique_ptr<TestRegistry> reg;
  testing::Blob first;
  std::string ref, base_tar;
};
UrlImage PushImageWithUrls(const std::string& repo, const std::string& media_type,
                           const std::vector<std::string>& urls_for_path, bool push_first,
                           const std::string& path) {
  UrlImage out;
  RegistryOptions o;
  o.manifest_urls_allow = {"^http://127\\.0\\.0\\.[12]:[0-9]+/"};
  auto reg = TestRegistry::Start(o);
  EXPECT_TRUE(reg.ok()) << reg.status().message();
  if (!reg.ok()) return out;
  out.reg = std::move(reg).value();
  out.base_tar = testing::MakeTar({{"base/", "", '5'}, {"base/os", "the real base\n"}});
  std::string app_tar = testing::MakeTar({{"app", "app\n"}});
  out.first = testing::GzipLayer(Format::kOci, out.base_tar);
  out.first.media_type = media_type;
  testing::Blob app = testing::GzipLayer(Format::kOci, app_tar);
  BuiltImage img = testing::BuildImageFromBlobs(
      Format::kOci, {out.first, app},
      {testing::Sha256Digest(out.base_tar), testing::Sha256Digest(app_tar)});
  json manifest = json::parse(img.manifest);
  manifest["layers"][0]["urls"] = json::array();
  for (const auto& base : urls_for_path) manifest["layers"][0]["urls"].push_back(base + path);
  const std::string host = out.reg->host();
  EXPECT_TRUE(testing::PushBlob(host, repo, img.config).ok());
  EXPECT_TRUE(testing::PushBlob(host, repo, app).ok());
  if (push_first) {
    EXPECT_TRUE(testing::PushBlob(host, repo, out.first).ok());
  }
  Status pushed = testing::PushManifest(host, repo, "1", manifest.dump(), img.manifest_media_type);
  EXPECT_TRUE(pushed.ok()) << pushed.message();
  out.ref = host + "/" + repo + ":1";
  return out;
}

// A server that answers every GET with `body` and counts its requests.
std::unique_ptr<testing::FixtureServer> ServeBytes(const std::string& body,
                                                   const std::string& address = "127.0.0.1") {
  auto server = testing::FixtureServer::Start(
      [body](const testing::HttpRequest&) {
        return testing::HttpResponse{200, {{"Content-Type", "application/octet-stream"}}, body};
      },
      address);
  EXPECT_TRUE(server.ok()) << server.status().message();
  return server.ok() ? std::move(server).value() : nullptr;
}

TEST_F(RegistryConfigTest, UrlsOfADistributableLayerAreNeverFetched) {
  auto cdn = ServeBytes("not asked for");
  ASSERT_TRUE(cdn);
  UrlImage img = PushImageWithUrls("plain/app", "application/vnd.oci.image.layer.v1.tar+gzip",
                                   {cdn->url()}, /*push_first=*/true, "/internal/admin");
  ASSERT_TRUE(img.reg);
  auto pulled = PullWith(Options(), img.ref);
  ASSERT_TRUE(pulled.ok()) << pulled.status().message();
  EXPECT_EQ(cdn->requests().size(), 0u) << cdn->requests().front().target;
  EXPECT_EQ(img.reg->CountRequests("GET", "/v2/plain/app/blobs/" + img.first.digest), 1);
}

TEST_F(RegistryConfigTest, ForeignUrlWithWrongBytesFallsBackToTheRegistry) {
  // The URL answers with a valid layer of the same media type but other files: extracting it
  // works, only its digest gives it away. The registry's copy must then be extracted into a
  // clean staging directory and hashed from its first byte.
  std::string evil_tar = testing::MakeTar(
      {{"base/", "", '5'}, {"base/os", "planted by the URL\n"}, {"base/planted", "x\n"}});
  auto cdn = ServeBytes(testing::GzipLayer(Format::kOci, evil_tar).data);
  ASSERT_TRUE(cdn);
  UrlImage img = PushImageWithUrls("foreign/wrong",
                                   "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
                                   {cdn->url()}, /*push_first=*/true, "/layer");
  ASSERT_TRUE(img.reg);
  ClientOptions o = Options();
  auto client = Open(o);
  ASSERT_TRUE(client);
  auto pulled = client->Pull(img.ref);
  ASSERT_TRUE(pulled.ok()) << pulled.status().message();
  EXPECT_EQ(cdn->requests().size(), 1u) << "the URL was tried first";
  EXPECT_EQ(img.reg->CountRequests("GET", "/v2/foreign/wrong/blobs/" + img.first.digest), 1);
  EXPECT_EQ(ReadFile(o.store_dir + "/blobs/sha256/" + img.first.digest.substr(7)), img.first.data);
  const std::string dest = dir() + "/wrong-rootfs";
  Status unpacked = client->Unpack(img.ref, dest);
  ASSERT_TRUE(unpacked.ok()) << unpacked.message();
  EXPECT_EQ(ReadFile(dest + "/base/os"), "the real base\n");
  EXPECT_FALSE(fs::exists(dest + "/base/planted")) << "nothing of the wrong bytes is kept";
}

TEST_F(RegistryConfigTest, ForeignUrlOnLoopbackWhereTheRegistryIsNotIsRefused) {
  // The registry lives on 127.0.0.1; the URL points at a service on 127.0.0.2, another
  // loopback address, that serves the right bytes. It is never contacted: the layer comes from
  // the registry.
  std::string served;
  std::mutex mu;
  auto internal = testing::FixtureServer::Start(
      [&](const testing::HttpRequest&) {
        std::lock_guard<std::mutex> lock(mu);
        return testing::HttpResponse{200, {}, served};
      },
      "127.0.0.2");
  ASSERT_TRUE(internal.ok()) << internal.status().message();
  UrlImage img = PushImageWithUrls("foreign/internal",
                                   "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
                                   {(*internal)->url()}, /*push_first=*/true, "/layer");
  ASSERT_TRUE(img.reg);
  {
    std::lock_guard<std::mutex> lock(mu);
    served = img.first.data;
  }
  auto pulled = PullWith(Options(), img.ref);
  ASSERT_TRUE(pulled.ok()) << pulled.status().message();
  EXPECT_EQ((*internal)->requests().size(), 0u);
  EXPECT_EQ(img.reg->CountRequests("GET", "/v2/foreign/internal/blobs/" + img.first.digest), 1);

  // Nor through a redirect from an allowed address: every hop is checked.
  const std::string internal_url = (*internal)->url() + "/layer";
  auto redirector = testing::FixtureServer::Start([&](const testing::HttpRequest&) {
    return testing::HttpResponse{302, {{"Location", internal_url}}, ""};
  });
  ASSERT_TRUE(redirector.ok()) << redirector.status().message();
  UrlImage redirected = PushImageWithUrls(
      "foreign/redirect", "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
      {(*redirector)->url()}, /*push_first=*/true, "/layer");
  ASSERT_TRUE(redirected.reg);
  pulled = PullWith(Options(), redirected.ref);
  ASSERT_TRUE(pulled.ok()) << pulled.status().message();
  EXPECT_EQ((*redirector)->requests().size(), 1u);
  EXPECT_EQ((*internal)->requests().size(), 0u);

  // Without the registry's copy, the refusal is the error, and it says why.
  UrlImage missing = PushImageWithUrls(
      "foreign/missing", "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
      {(*internal)->url()}, /*push_first=*/false, "/layer");
  ASSERT_TRUE(missing.reg);
  auto refused = PullWith(Options(), missing.ref);
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(ContainsIgnoreCase(refused.status().message(), "127.0.0.2"))
      << refused.status().message();
  EXPECT_TRUE(ContainsIgnoreCase(refused.status().message(), "registry does not live"))
      << refused.status().message();
  EXPECT_EQ((*internal)->requests().size(), 0u);
}

// ---------------------------------------------------------------------------------------------
// 8. Slow servers

// A registry that serves one image, the manifest and the layer blobs sent one byte per
// manifest_interval / layer_interval (0: at once).
std::unique_ptr<testing::FixtureServer> ServeImageSlowly(
    const BuiltImage& img, std::chrono::milliseconds manifest_interval,
    std::chrono::milliseconds layer_interval) {
  auto server = testing::FixtureServer::Start([=](const testing::HttpRequest& r) {
    testing::HttpResponse resp{404, {}, ""};
    if (r.target == "/v2/") return testing::HttpResponse{200, {}, "{}"};
    if (r.target.starts_with("/v2/app/manifests/")) {
      resp = {200,
              {{"Content-Type", img.manifest_media_type},
               {"Docker-Content-Digest", img.manifest_digest}},
              img.manifest};
      resp.byte_interval = manifest_interval;
    }
    if (r.target == "/v2/app/blobs/" + img.config.digest) resp = {200, {}, img.config.data};
    for (const auto& l : img.layers) {
      if (r.target != "/v2/app/blobs/" + l.digest) continue;
      resp = {200, {}, l.data};
      resp.byte_interval = layer_interval;
    }
    return resp;
  });
  EXPECT_TRUE(server.ok()) << server.status().message();
  return server.ok() ? std::move(server).value() : nullptr;
}

// Bytes that gzip cannot shrink, so a layer is about as large as its content.
std::string Incompressible(size_t n) {
  std::string out(n, '\0');
  uint32_t x = 12345;
  for (char& c : out) {
    x = x * 1103515245 + 12345;
    c = static_cast<char>(x >> 24);
  }
  return out;
}

TEST_F(RegistryConfigTest, TricklingServerTimesOutNamingTheHost) {
  BuiltImage img = testing::BuildImage(Format::kOci, {{{"f", Incompressible(2000)}}});
  auto server = ServeImageSlowly(img, std::chrono::milliseconds(0), std::chrono::milliseconds(333));
  ASSERT_TRUE(server);
  ClientOptions o = Options();
  o.low_speed_bytes_per_second = 100;
  o.low_speed_seconds = 1;
  o.retries = 0;  // the error itself is under test (a timeout is retried otherwise)
  const auto start = std::chrono::steady_clock::now();
  auto pulled = PullWith(o, server->host() + "/app:1");
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(pulled.ok());
  EXPECT_EQ(pulled.status().code(), StatusCode::kUnavailable) << pulled.status().message();
  EXPECT_NE(pulled.status().message().find(server->host() + ": timed out"), std::string::npos)
      << pulled.status().message();
  EXPECT_LT(took, std::chrono::seconds(10)) << "3 bytes/s is not a live transfer";
}

TEST_F(RegistryConfigTest, RequestTimeoutEndsASlowManifestButNotASlowBlob) {
  BuiltImage img = testing::BuildImage(Format::kOci, {{{"f", Incompressible(600)}}});
  ASSERT_GT(img.layers[0].data.size(), 600u);
  ClientOptions o = Options();
  o.low_speed_bytes_per_second = 20;
  o.low_speed_seconds = 1;
  o.request_timeout_seconds = 1;
  o.retries = 0;  // the error itself is under test (a timeout is retried otherwise)

  // A manifest at ~100 bytes/s is fast enough for the low-speed limit, but not complete
  // within the request's time limit.
  auto slow_manifest =
      ServeImageSlowly(img, std::chrono::milliseconds(10), std::chrono::milliseconds(0));
  ASSERT_TRUE(slow_manifest);
  ASSERT_GT(img.manifest.size(), 200u) << "takes more than two seconds at 10 ms a byte";
  auto start = std::chrono::steady_clock::now();
  auto pulled = PullWith(o, slow_manifest->host() + "/app:1");
  ASSERT_FALSE(pulled.ok());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  EXPECT_EQ(pulled.status().code(), StatusCode::kUnavailable) << pulled.status().message();
  EXPECT_NE(pulled.status().message().find(slow_manifest->host() +
                                           ": timed out: no complete answer within 1 s"),
            std::string::npos)
      << pulled.status().message();

  // A layer blob at the same pace takes longer than the request time limit, and is fine: a
  // blob's time is bounded by its size and the low-speed limit instead.
  auto slow_layer =
      ServeImageSlowly(img, std::chrono::milliseconds(0), std::chrono::milliseconds(2));
  ASSERT_TRUE(slow_layer);
  start = std::chrono::steady_clock::now();
  pulled = PullWith(o, slow_layer->host() + "/app:1");
  ASSERT_TRUE(pulled.ok()) << pulled.status().message();
  EXPECT_GT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(1200));
}

}  // namespace
}  // namespace hoist
