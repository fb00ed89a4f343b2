// Self-test of the integration-test harness: the pieces alone, then against the real registry.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <zlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "base/strings.h"
#include "base/unique_fd.h"
#include "support/fault_proxy.h"
#include "support/http_client.h"
#include "support/http_server.h"
#include "support/image_builder.h"
#include "support/process.h"
#include "support/registry.h"
#include "support/token_server.h"

namespace hoist::testing {
namespace {

using json = nlohmann::json;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string Gunzip(const std::string& gz) {
  z_stream z{};
  EXPECT_EQ(inflateInit2(&z, 15 + 16), Z_OK);
  std::string out;
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(gz.data()));
  z.avail_in = static_cast<uInt>(gz.size());
  int rc = Z_OK;
  while (rc == Z_OK) {
    char buf[16384];
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof(buf);
    rc = inflate(&z, Z_NO_FLUSH);
    out.append(buf, sizeof(buf) - z.avail_out);
  }
  EXPECT_EQ(rc, Z_STREAM_END);
  inflateEnd(&z);
  return out;
}

// ---- processes ----

TEST(RunCommandTest, ReportsOutputAndExitStatus) {
  Result<std::string> ok = RunCommand({"sh", "-c", "echo out; echo err >&2"}, 10);
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  EXPECT_EQ(*ok, "out\nerr\n");

  Result<std::string> bad = RunCommand({"sh", "-c", "echo why; exit 3"}, 10);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("exit status 3"), std::string::npos);
  EXPECT_NE(bad.status().message().find("why"), std::string::npos);

  EXPECT_FALSE(RunCommand({"/nonexistent/program"}, 10).ok());
}

TEST(RunCommandTest, KillsACommandThatOverstays) {
  auto start = std::chrono::steady_clock::now();
  Result<std::string> r = RunCommand({"sleep", "30"}, 1);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
}

TEST(TempDirTest, RemovedWithItsOwner) {
  std::string path;
  {
    Result<TempDir> dir = TempDir::Create();
    ASSERT_TRUE(dir.ok());
    path = dir->path();
    std::filesystem::create_directories(path + "/a/b");
    std::ofstream(path + "/a/b/f") << "x";
    std::filesystem::permissions(path + "/a", std::filesystem::perms::owner_read);
    EXPECT_TRUE(std::filesystem::is_directory(path));
  }
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(ChildProcessTest, StopReapsTheChild) {
  Result<TempDir> dir = TempDir::Create();
  ASSERT_TRUE(dir.ok());
  Result<ChildProcess> child = ChildProcess::Spawn({"sleep", "30"}, dir->path() + "/out");
  ASSERT_TRUE(child.ok());
  EXPECT_TRUE(child->Running());
  pid_t pid = child->pid();
  child->Stop();
  EXPECT_FALSE(child->Running());
  EXPECT_NE(::kill(pid, 0), 0);  // gone, not a zombie of ours
}

// ---- image building ----

TEST(BuilderTest, Sha256Digest) {
  EXPECT_EQ(Sha256Digest(""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(BuilderTest, GzipRoundTripsAndIsDeterministic) {
  std::string data(100000, 'x');
  data += "tail";
  EXPECT_EQ(Gunzip(Gzip(data)), data);
  EXPECT_EQ(Gzip(data), Gzip(data));
  EXPECT_EQ(Gunzip(Gzip("")), "");
}

TEST(BuilderTest, TarIsReadableByTar) {
  const std::string long_name = "deep/" + std::string(120, 'd') + "/file";  // prefix split
  const std::string pax_name =  // no ustar split fits: needs PAX
      std::string(100, 'p') + "/" + std::string(100, 'q') + "/" + std::string(100, 'r');
  std::vector<TarEntry> entries = {
      {"etc/", "", '5'},
      {"etc/hello", "hello world\n"},
      {"etc/link", "", '2', "hello"},
      {"etc/hard", "", '1', "etc/hello"},
      {long_name, "long"},
      {pax_name, "pax"},
  };
  std::string tar = MakeTar(entries);
  ASSERT_EQ(tar.size() % 512, 0u);
  EXPECT_EQ(tar.substr(tar.size() - 1024), std::string(1024, '\0'));

  Result<TempDir> dir = TempDir::Create();
  ASSERT_TRUE(dir.ok());
  std::ofstream(dir->path() + "/t.tar", std::ios::binary) << tar;
  if (!FindExecutable("tar")) GTEST_SKIP() << "tar not installed";
  Result<std::string> list = RunCommand({"tar", "-tf", dir->path() + "/t.tar"}, 10);
  ASSERT_TRUE(list.ok()) << list.status().message();
  EXPECT_EQ(*list, "etc/\netc/hello\netc/link\netc/hard\n" + long_name + "\n" + pax_name + "\n");
  Result<std::string> extracted =
      RunCommand({"tar", "-xf", dir->path() + "/t.tar", "-C", dir->path()}, 10);
  ASSERT_TRUE(extracted.ok()) << extracted.status().message();
  EXPECT_EQ(ReadAll(dir->path() + "/etc/hello"), "hello world\n");
  EXPECT_EQ(ReadAll(dir->path() + "/" + long_name), "long");
  EXPECT_EQ(ReadAll(dir->path() + "/" + pax_name), "pax");
  EXPECT_EQ(std::filesystem::read_symlink(dir->path() + "/etc/link"), "hello");
}

TEST(BuilderTest, ImageAndIndexAreConsistent) {
  for (Format f : {Format::kOci, Format::kDocker}) {
    BuiltImage img = BuildImage(f, {{{"a", "1"}}, {{"b", "2"}}}, "linux", "arm64", "v8");
    json m = json::parse(img.manifest);
    EXPECT_EQ(img.manifest_digest, Sha256Digest(img.manifest));
    EXPECT_EQ(m["mediaType"], img.manifest_media_type);
    EXPECT_EQ(m["config"]["digest"], img.config.digest);
    EXPECT_EQ(m["config"]["digest"], Sha256Digest(img.config.data));
    ASSERT_EQ(m["layers"].size(), 2u);
    for (size_t i = 0; i < 2; ++i) {
      EXPECT_EQ(m["layers"][i]["digest"], Sha256Digest(img.layers[i].data));
      EXPECT_EQ(m["layers"][i]["size"], img.layers[i].data.size());
      EXPECT_EQ(img.diff_ids[i], Sha256Digest(Gunzip(img.layers[i].data)));
    }
    json config = json::parse(img.config.data);
    EXPECT_EQ(config["architecture"], "arm64");
    EXPECT_EQ(config["variant"], "v8");
    EXPECT_EQ(config["rootfs"]["diff_ids"], json(img.diff_ids));

    BuiltImage amd = BuildImage(f, {{{"a", "1"}}});
    BuiltIndex idx = BuildIndex(f, {amd, img});
    json i = json::parse(idx.manifest);
    EXPECT_EQ(idx.digest, Sha256Digest(idx.manifest));
    ASSERT_EQ(i["manifests"].size(), 2u);
    EXPECT_EQ(i["manifests"][0]["platform"]["architecture"], "amd64");
    EXPECT_EQ(i["manifests"][1]["platform"]["variant"], "v8");
    EXPECT_EQ(i["manifests"][1]["digest"], img.manifest_digest);
  }
}

// ---- fixture server ----

TEST(FixtureServerTest, ServesGetHeadAndPost) {
  auto server = FixtureServer::Start([](const HttpRequest& req) {
    HttpResponse r;
    r.headers.push_back({"X-Method", req.method});
    r.body = req.method == "POST" ? "got " + req.body : "hello";
    return r;
  });
  ASSERT_TRUE(server.ok());
  Result<ClientResponse> get = HttpCall("GET", (*server)->url() + "/x?y=1", {"X-A: b"});
  ASSERT_TRUE(get.ok()) << get.status().message();
  EXPECT_EQ(get->status, 200);
  EXPECT_EQ(get->body, "hello");
  EXPECT_EQ(get->headers["x-method"], "GET");

  Result<ClientResponse> head = HttpCall("HEAD", (*server)->url() + "/x");
  ASSERT_TRUE(head.ok()) << head.status().message();
  EXPECT_EQ(head->headers["content-length"], "5");
  EXPECT_EQ(head->body, "");

  std::string big(300000, 'b');
  Result<ClientResponse> post = HttpCall("POST", (*server)->url() + "/p", {}, big);
  ASSERT_TRUE(post.ok()) << post.status().message();
  EXPECT_EQ(post->body, "got " + big);

  std::vector<HttpRequest> reqs = (*server)->requests();
  ASSERT_EQ(reqs.size(), 3u);
  EXPECT_EQ(reqs[0].target, "/x?y=1");
  EXPECT_EQ(reqs[0].headers["x-a"], "b");
  EXPECT_EQ(reqs[2].body, big);
}

TEST(FixtureServerTest, TruncatesBodyOnRequest) {
  auto server = FixtureServer::Start([](const HttpRequest&) {
    HttpResponse r;
    r.body = std::string(10000, 'z');
    r.body_limit = 100;
    return r;
  });
  ASSERT_TRUE(server.ok());
  Result<ClientResponse> get = HttpCall("GET", (*server)->url() + "/");
  EXPECT_FALSE(get.ok());
}

TEST(FixtureServerTest, ResetsOrStallsOnRequest) {
  auto server = FixtureServer::Start([](const HttpRequest& req) {
    HttpResponse r;
    r.body = std::string(10000, 'z');
    r.body_limit = 100;
    if (req.target == "/reset") r.reset = true;
    if (req.target == "/stall") r.stall = std::chrono::seconds(30);
    return r;
  });
  ASSERT_TRUE(server.ok());
  Result<ClientResponse> reset = HttpCall("GET", (*server)->url() + "/reset");
  ASSERT_FALSE(reset.ok());
  EXPECT_NE(reset.status().message().find("reset"), std::string::npos) << reset.status().message();
  const auto started = std::chrono::steady_clock::now();
  Result<ClientResponse> stall = HttpCall("GET", (*server)->url() + "/stall", {}, "", "", 1);
  ASSERT_FALSE(stall.ok());
  EXPECT_GE(std::chrono::steady_clock::now() - started, std::chrono::milliseconds(900));
}

TEST(FaultProxyTest, InjectsFaultsAndCountsBytes) {
  auto upstream = FixtureServer::Start([](const HttpRequest& req) {
    HttpResponse r;
    r.body = std::string(1000, 'u');
    if (auto it = req.headers.find("range"); it != req.headers.end()) {
      r.status = 206;
      r.body = std::string(500, 'u');
      r.headers = {{"Content-Range", "bytes 500-999/1000"}};
    }
    return r;
  });
  ASSERT_TRUE(upstream.ok());
  auto proxy = FaultProxy::Start((*upstream)->host());
  ASSERT_TRUE(proxy.ok());
  (*proxy)->Add({.kind = Fault::kStatus,
                 .path_contains = "/a",
                 .count = 2,
                 .status = 429,
                 .retry_after = "7"});
  (*proxy)->Add({.kind = Fault::kShortBody, .path_contains = "/b", .at = 300});
  (*proxy)->Add({.kind = Fault::kIgnoreRange, .path_contains = "/c"});
  const std::string base = "http://" + (*proxy)->host();
  for (int i = 0; i < 2; ++i) {
    auto a = HttpCall("GET", base + "/a");
    ASSERT_TRUE(a.ok());
    EXPECT_EQ(a->status, 429);
    EXPECT_EQ(a->headers["retry-after"], "7");
  }
  auto a = HttpCall("GET", base + "/a");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->status, 200) << "the count is used up";
  EXPECT_FALSE(HttpCall("GET", base + "/b").ok()) << "short body";
  auto ranged = HttpCall("GET", base + "/d", {"Range: bytes=500-"});
  ASSERT_TRUE(ranged.ok());
  EXPECT_EQ(ranged->status, 206);
  auto ignored = HttpCall("GET", base + "/c", {"Range: bytes=500-"});
  ASSERT_TRUE(ignored.ok());
  EXPECT_EQ(ignored->status, 200);
  EXPECT_EQ((*proxy)->BodyBytes("/a"), 1000) << "injected error bodies are not counted";
  EXPECT_EQ((*proxy)->BodyBytes("/b"), 300);
  EXPECT_EQ((*proxy)->BodyBytes(), 1000 + 300 + 500 + 1000);
  EXPECT_EQ((*proxy)->Count("/a", "GET"), 3);
}

// Sends raw bytes, returns everything the server sends until it closes.
std::string RawExchange(int port, const std::string& request) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return "";
  timeval tv{5, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::send(fd.get(), request.data(), request.size(), MSG_NOSIGNAL);
  std::string out;
  char buf[4096];
  for (int i = 0; i < 1000; ++i) {
    ssize_t n = ::recv(fd.get(), buf, sizeof(buf), 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

TEST(FixtureServerTest, KeepAliveClientGetsOneAnswerAndEof) {
  auto server = FixtureServer::Start([](const HttpRequest&) {
    return HttpResponse{200, {}, "ok"};
  });
  ASSERT_TRUE(server.ok());
  std::string out = RawExchange((*server)->port(),
                                "GET /a HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n"
                                "GET /b HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(out.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << out;
  EXPECT_NE(out.find("Connection: close\r\n"), std::string::npos);
  EXPECT_EQ(out.substr(out.size() - 2), "ok");
  EXPECT_EQ((*server)->requests().size(), 1u);
}

TEST(FixtureServerTest, RejectsOversizedAndMalformedRequests) {
  auto server = FixtureServer::Start([](const HttpRequest&) { return HttpResponse{}; });
  ASSERT_TRUE(server.ok());
  std::string huge = "GET / HTTP/1.1\r\nX-Big: " + std::string(100000, 'a') + "\r\n\r\n";
  EXPECT_EQ(RawExchange((*server)->port(), huge).rfind("HTTP/1.1 431", 0), 0u);
  EXPECT_EQ(RawExchange((*server)->port(), "NONSENSE\r\n\r\n").rfind("HTTP/1.1 400", 0), 0u);
  EXPECT_TRUE((*server)->requests().empty());
}

// ---- token server ----

struct DecodedJwt {
  json header, claims;
  std::string signing_input, signature;
};

DecodedJwt DecodeJwt(const std::string& jwt) {
  DecodedJwt d;
  std::vector<std::string_view> parts = Split(jwt, '.');
  EXPECT_EQ(parts.size(), 3u);
  if (parts.size() != 3) return d;
  std::string h, c;
  EXPECT_TRUE(Base64Decode(parts[0], &h));
  EXPECT_TRUE(Base64Decode(parts[1], &c));
  EXPECT_TRUE(Base64Decode(parts[2], &d.signature));
  d.header = json::parse(h, nullptr, false);
  d.claims = json::parse(c, nullptr, false);
  d.signing_input = std::string(parts[0]) + "." + std::string(parts[1]);
  return d;
}

// True if the JWT's RS256 signature verifies with the public key of its x5c certificate.
bool SignatureVerifies(const DecodedJwt& d) {
  std::string der;
  if (!d.header.contains("x5c") || !Base64Decode(d.header["x5c"][0].get<std::string>(), &der)) {
    return false;
  }
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  std::unique_ptr<X509, decltype(&X509_free)> cert(
      d2i_X509(nullptr, &p, static_cast<long>(der.size())), X509_free);
  if (!cert) return false;
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(X509_get_pubkey(cert.get()),
                                                          EVP_PKEY_free);
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  return EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key.get()) == 1 &&
         EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(d.signature.data()),
                          d.signature.size(),
                          reinterpret_cast<const unsigned char*>(d.signing_input.data()),
                          d.signing_input.size()) == 1;
}

TEST(TokenServerTest, FormDecode) {
  std::string out;
  EXPECT_TRUE(token_internal::FormDecode("repository%3Aa%2Fb%3Apull%2Cpush+x", &out));
  EXPECT_EQ(out, "repository:a/b:pull,push x");
  EXPECT_FALSE(token_internal::FormDecode("bad%2", &out));
  EXPECT_FALSE(token_internal::FormDecode("bad%zz", &out));
}

TEST(TokenServerTest, GrantsByIdentity) {
  TokenOptions opts;
  opts.users = {{"alice", "secret"}};
  opts.public_repos = {"pub/app"};
  auto ts = TokenServer::Start(opts);
  ASSERT_TRUE(ts.ok()) << ts.status().message();
  EXPECT_TRUE(std::filesystem::file_size((*ts)->cert_path()) > 0);
  const std::string base = (*ts)->realm() + "?service=hoist-test-registry";

  struct Case {
    std::string name, scope, creds;
    int status;
    json access;  // expected claims.access
  };
  const std::vector<Case> cases = {
      {"anonymous public", "repository:pub/app:pull", "", 200,
       json::array({{{"type", "repository"}, {"name", "pub/app"}, {"actions", {"pull"}}}})},
      {"anonymous public push", "repository:pub/app:pull,push", "", 200,
       json::array({{{"type", "repository"}, {"name", "pub/app"}, {"actions", {"pull"}}}})},
      {"anonymous private", "repository:priv/app:pull", "", 200, json::array()},
      {"user private", "repository%3Apriv%2Fapp%3Apull%2Cpush", "alice:secret", 200,
       json::array(
           {{{"type", "repository"}, {"name", "priv/app"}, {"actions", {"pull", "push"}}}})},
      {"wrong password", "repository:priv/app:pull", "alice:nope", 401, nullptr},
      {"unknown user", "repository:priv/app:pull", "bob:secret", 401, nullptr},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Result<ClientResponse> r = HttpCall("GET", base + "&scope=" + c.scope, {}, "", c.creds);
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ(r->status, c.status) << r->body;
    if (c.status != 200) continue;
    json body = json::parse(r->body, nullptr, false);
    ASSERT_TRUE(body.is_object());
    EXPECT_EQ(body["token"], body["access_token"]);
    EXPECT_EQ(body["expires_in"], 300);
    DecodedJwt jwt = DecodeJwt(body["token"].get<std::string>());
    EXPECT_EQ(jwt.header["alg"], "RS256");
    EXPECT_TRUE(SignatureVerifies(jwt));
    EXPECT_EQ(jwt.claims["iss"], "hoist-test-issuer");
    EXPECT_EQ(jwt.claims["aud"], "hoist-test-registry");
    EXPECT_EQ(jwt.claims["access"], c.access);
    EXPECT_GT(jwt.claims["exp"].get<long>(), jwt.claims["iat"].get<long>());
  }
  Result<ClientResponse> other = HttpCall("GET", (*ts)->realm() + "?service=elsewhere");
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->status, 400);
  EXPECT_EQ((*ts)->tokens_issued(), 4);
}

// ---- against the real registry ----

class RegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!TestRegistry::Available()) GTEST_SKIP() << TestRegistry::kBinary << " not installed";
  }
};

// GETs a manifest and checks bytes and Docker-Content-Digest.
void ExpectManifest(const std::string& host, const std::string& repo, const std::string& ref,
                    const std::string& body, const std::string& media_type,
                    const std::string& creds = "", const std::string& bearer = "") {
  std::vector<std::string> headers = {"Accept: " + media_type};
  if (!bearer.empty()) headers.push_back("Authorization: Bearer " + bearer);
  Result<ClientResponse> r =
      HttpCall("GET", "http://" + host + "/v2/" + repo + "/manifests/" + ref, headers, "", creds);
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->body, body);
  EXPECT_EQ(r->headers["docker-content-digest"], Sha256Digest(body));
  EXPECT_EQ(r->headers["content-type"], media_type);
}

TEST_F(RegistryTest, PushedImagesComeBackByteForByte) {
  auto reg = TestRegistry::Start();
  ASSERT_TRUE(reg.ok()) << reg.status().message();
  const std::string host = (*reg)->host();

  BuiltImage oci = BuildImage(Format::kOci, {{{"etc/", "", '5'}, {"etc/os", "oci\n"}}});
  BuiltImage docker = BuildImage(Format::kDocker, {{{"a", "docker"}}, {{"b", "two"}}});
  BuiltIndex index = BuildIndex(
      Format::kOci, {BuildImage(Format::kOci, {{{"p", "amd64"}}}, "linux", "amd64"),
                     BuildImage(Format::kOci, {{{"p", "arm64"}}}, "linux", "arm64", "v8")});
  ASSERT_TRUE(PushImage(host, "test/oci", "v1", oci).ok());
  ASSERT_TRUE(PushImage(host, "test/docker", "v1", docker).ok());
  Status pushed = PushIndex(host, "test/multi", "v1", index);
  ASSERT_TRUE(pushed.ok()) << pushed.message();
  // A second push finds every blob in place.
  ASSERT_TRUE(PushImage(host, "test/oci", "v2", oci).ok());

  ExpectManifest(host, "test/oci", "v1", oci.manifest, oci.manifest_media_type);
  ExpectManifest(host, "test/oci", oci.manifest_digest, oci.manifest, oci.manifest_media_type);
  ExpectManifest(host, "test/docker", "v1", docker.manifest, docker.manifest_media_type);
  ExpectManifest(host, "test/multi", "v1", index.manifest, index.media_type);
  ExpectManifest(host, "test/multi", index.images[1].manifest_digest, index.images[1].manifest,
                 index.images[1].manifest_media_type);

  Result<ClientResponse> blob =
      HttpCall("GET", "http://" + host + "/v2/test/docker/blobs/" + docker.layers[1].digest);
  ASSERT_TRUE(blob.ok());
  EXPECT_EQ(blob->body, docker.layers[1].data);

  Result<Digest> d = Digest::Parse(oci.layers[0].digest);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(ReadAll((*reg)->BlobDataPath(*d)), oci.layers[0].data);

  EXPECT_EQ((*reg)->CountRequests("PUT", "/manifests/"), 6);  // 2 + 2 children + index + 1
  EXPECT_EQ((*reg)->CountRequests("GET", "/test/docker/blobs/"), 1);
  EXPECT_EQ((*reg)->CountRequests("HEAD", "/test/oci/blobs/"), 4);  // 2 blobs, pushed twice
  EXPECT_EQ((*reg)->CountRequests("DELETE", "/"), 0);

  // The registry refuses a manifest whose blobs it does not have.
  BuiltImage missing = BuildImage(Format::kOci, {{{"never", "pushed"}}});
  Status refused =
      PushManifest(host, "test/oci", "bad", missing.manifest, missing.manifest_media_type);
  EXPECT_FALSE(refused.ok());
}

TEST_F(RegistryTest, HtpasswdRegistryWantsCredentials) {
  RegistryOptions opts;
  opts.auth = RegistryOptions::Auth::kHtpasswd;
  opts.user = "tester";
  opts.password = "pa55word";
  auto reg = TestRegistry::Start(opts);
  ASSERT_TRUE(reg.ok()) << reg.status().message();
  const std::string host = (*reg)->host();

  Result<ClientResponse> anon = HttpCall("GET", "http://" + host + "/v2/");
  ASSERT_TRUE(anon.ok());
  EXPECT_EQ(anon->status, 401);
  EXPECT_NE(anon->headers["www-authenticate"].find("Basic"), std::string::npos);
  Result<ClientResponse> wrong = HttpCall("GET", "http://" + host + "/v2/", {}, "", "tester:x");
  ASSERT_TRUE(wrong.ok());
  EXPECT_EQ(wrong->status, 401);
  Result<ClientResponse> good =
      HttpCall("GET", "http://" + host + "/v2/", {}, "", "tester:pa55word");
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(good->status, 200);

  BuiltImage img = BuildImage(Format::kOci, {{{"f", "x"}}});
  EXPECT_EQ(PushImage(host, "app", "v1", img).code(), StatusCode::kUnauthenticated);
  ASSERT_TRUE(PushImage(host, "app", "v1", img, "tester:pa55word").ok());
  ExpectManifest(host, "app", "v1", img.manifest, img.manifest_media_type, "tester:pa55word");
}

TEST_F(RegistryTest, PullThroughCacheServesUpstreamContent) {
  auto upstream = TestRegistry::Start();
  ASSERT_TRUE(upstream.ok()) << upstream.status().message();
  BuiltImage img = BuildImage(Format::kOci, {{{"cached", "yes"}}});
  ASSERT_TRUE(PushImage((*upstream)->host(), "library/app", "v1", img).ok());
  RegistryOptions opts;
  opts.proxy_remote_url = (*upstream)->url();
  auto cache = TestRegistry::Start(opts);
  ASSERT_TRUE(cache.ok()) << cache.status().message();
  ExpectManifest((*cache)->host(), "library/app", "v1", img.manifest, img.manifest_media_type);
  Result<ClientResponse> blob =
      HttpCall("GET", (*cache)->url() + "/v2/library/app/blobs/" + img.layers[0].digest);
  ASSERT_TRUE(blob.ok());
  EXPECT_EQ(blob->body, img.layers[0].data);
  EXPECT_GE((*upstream)->CountRequests("GET", "/v2/library/app/blobs/"), 1);
}

// Fetches a token from `realm` for `scope`.
std::string FetchToken(const std::string& realm, const std::string& scope,
                       const std::string& creds = "") {
  Result<ClientResponse> r = HttpCall(
      "GET", realm + "?service=hoist-test-registry&scope=" + UrlEncode(scope), {}, "", creds);
  if (!r.ok() || r->status != 200) return "";
  json body = json::parse(r->body, nullptr, false);
  if (!body.is_object() || !body["token"].is_string()) return "";
  return body["token"].get<std::string>();
}

TEST_F(RegistryTest, TokenRegistryHonoursGrants) {
  // Content is pushed through an open registry, then served by a token one on the same storage.
  auto open = TestRegistry::Start();
  ASSERT_TRUE(open.ok()) << open.status().message();
  BuiltImage img = BuildImage(Format::kDocker, {{{"f", "token"}}});
  ASSERT_TRUE(PushImage((*open)->host(), "pub/app", "v1", img).ok());
  ASSERT_TRUE(PushImage((*open)->host(), "priv/app", "v1", img).ok());

  TokenOptions topts;
  topts.users = {{"alice", "secret"}};
  topts.public_repos = {"pub/app"};
  auto ts = TokenServer::Start(topts);
  ASSERT_TRUE(ts.ok()) << ts.status().message();
  RegistryOptions ropts;
  ropts.auth = RegistryOptions::Auth::kToken;
  ropts.token_realm = (*ts)->realm();
  ropts.token_service = topts.service;
  ropts.token_issuer = topts.issuer;
  ropts.token_cert_path = (*ts)->cert_path();
  ropts.storage_dir = (*open)->storage_dir();
  auto reg = TestRegistry::Start(ropts);
  ASSERT_TRUE(reg.ok()) << reg.status().message();
  const std::string host = (*reg)->host();
  const std::string mt = img.manifest_media_type;

  Result<ClientResponse> anon =
      HttpCall("GET", "http://" + host + "/v2/pub/app/manifests/v1", {"Accept: " + mt});
  ASSERT_TRUE(anon.ok());
  EXPECT_EQ(anon->status, 401);
  const std::string challenge = anon->headers["www-authenticate"];
  EXPECT_NE(challenge.find("Bearer realm=\"" + (*ts)->realm() + "\""), std::string::npos)
      << challenge;
  EXPECT_NE(challenge.find("scope=\"repository:pub/app:pull\""), std::string::npos) << challenge;

  std::string pub = FetchToken((*ts)->realm(), "repository:pub/app:pull");
  ASSERT_FALSE(pub.empty());
  ExpectManifest(host, "pub/app", "v1", img.manifest, mt, "", pub);

  std::string anon_priv = FetchToken((*ts)->realm(), "repository:priv/app:pull");
  ASSERT_FALSE(anon_priv.empty());
  Result<ClientResponse> denied = HttpCall("GET", "http://" + host + "/v2/priv/app/manifests/v1",
                                           {"Accept: " + mt, "Authorization: Bearer " + anon_priv});
  ASSERT_TRUE(denied.ok());
  EXPECT_EQ(denied->status, 401);
  // The public token does not open the private repository either.
  Result<ClientResponse> cross = HttpCall("GET", "http://" + host + "/v2/priv/app/manifests/v1",
                                          {"Accept: " + mt, "Authorization: Bearer " + pub});
  ASSERT_TRUE(cross.ok());
  EXPECT_EQ(cross->status, 401);

  EXPECT_TRUE(FetchToken((*ts)->realm(), "repository:priv/app:pull", "alice:wrong").empty());
  std::string alice = FetchToken((*ts)->realm(), "repository:priv/app:pull", "alice:secret");
  ASSERT_FALSE(alice.empty());
  ExpectManifest(host, "priv/app", "v1", img.manifest, mt, "", alice);
  EXPECT_EQ((*reg)->CountRequests("GET", "/v2/priv/app/manifests/v1"), 3);
}

TEST_F(RegistryTest, SkopeoCopiesAnOciLayoutIn) {
  if (!SkopeoAvailable()) GTEST_SKIP() << "skopeo not installed";
  auto reg = TestRegistry::Start();
  ASSERT_TRUE(reg.ok()) << reg.status().message();
  Result<TempDir> dir = TempDir::Create();
  ASSERT_TRUE(dir.ok());
  BuiltImage img = BuildImage(Format::kOci, {{{"hello", "skopeo\n"}}});
  const std::string layout = dir->path() + "/layout";
  ASSERT_TRUE(WriteOciLayout(layout, "v1", img).ok());
  const std::string dest = "docker://" + (*reg)->host() + "/copied/app:v1";
  // Keep skopeo away from the user's policy and auth files.
  std::ofstream(dir->path() + "/policy.json")
      << R"({"default":[{"type":"insecureAcceptAnything"}]})";
  Result<std::string> copy = RunCommand({"skopeo", "--policy", dir->path() + "/policy.json", "copy",
                                         "--dest-tls-verify=false", "oci:" + layout + ":v1", dest},
                                        60);
  ASSERT_TRUE(copy.ok()) << copy.status().message();
  ExpectManifest((*reg)->host(), "copied/app", "v1", img.manifest, img.manifest_media_type);
  Result<std::string> inspect = RunCommand({"skopeo", "inspect", "--tls-verify=false", dest}, 60);
  ASSERT_TRUE(inspect.ok()) << inspect.status().message();
  json info = json::parse(*inspect, nullptr, false);
  ASSERT_TRUE(info.is_object()) << *inspect;
  EXPECT_EQ(info["Digest"], img.manifest_digest);
}

}  // namespace
}  // namespace hoist::testing
