// A registry as a transport, against the real docker-registry: transport::Copy from one
// registry to another (or between repositories of one), streamed blob by blob, with the push
// protocol's HEAD skips, mounts, chunked uploads, push-scope tokens, restarted sessions and
// digests checked before anything is committed.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "support/fault_proxy.h"
#include "support/http_client.h"
#include "support/http_server.h"
#include "support/image_builder.h"
#include "support/process.h"
#include "support/registry.h"
#include "support/token_server.h"
#include "transport/registry.h"

namespace hoist::transport {
namespace {

using testing::BuildImage;
using testing::BuiltImage;
using testing::Format;
using testing::RegistryOptions;
using testing::TestRegistry;

// An image of a config and two gzip layers of incompressible bytes (`layer_bytes` each).
BuiltImage TwoLayers(unsigned seed, size_t layer_bytes = 40000) {
  return BuildImage(Format::kOci, {{{"a/one", testing::RandomBytes(layer_bytes, seed)}},
                                   {{"b/two", testing::RandomBytes(layer_bytes, seed + 1)}}});
}

class RegistryTransportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!TestRegistry::Available()) GTEST_SKIP() << "docker-registry not installed";
  }

  // A client of the registry at `host` (insecure: plain http on loopback), with `cred`.
  registry::Registry* Connect(const std::string& host,
                              std::optional<registry::Credential> cred = std::nullopt) {
    creds_.push_back(std::make_unique<registry::StaticCredentials>(std::move(cred)));
    registries_.push_back(std::make_unique<registry::Registry>(
        host, host, registry::Endpoint{true, {}}, &authorizer_, creds_.back().get()));
    return registries_.back().get();
  }

  RegistryTransportOptions Options() {
    RegistryTransportOptions o;
    o.retry.max_attempts = 3;
    o.retry.base_delay = std::chrono::milliseconds(10);
    return o;
  }

  static Reference Ref(const registry::Registry* r, const std::string& repo_tag) {
    return *Reference::Parse(r->host() + "/" + repo_tag);
  }
  std::unique_ptr<ImageSource> Source(registry::Registry* r, const std::string& repo_tag) {
    Reference ref = Ref(r, repo_tag);
    return OpenRegistrySource(std::make_unique<registry::Repository>(r, ref.path()), ref,
                              Options());
  }
  std::unique_ptr<ImageDestination> Destination(registry::Registry* r, const std::string& repo_tag,
                                                RegistryTransportOptions o) {
    Reference ref = Ref(r, repo_tag);
    return OpenRegistryDestination(std::make_unique<registry::Repository>(r, ref.path()), ref,
                                   std::move(o));
  }
  // Copies r1/from to r2/to (the destination's reference is the name committed).
  Result<ManifestBytes> CopyImage(registry::Registry* r1, const std::string& from,
                                  registry::Registry* r2, const std::string& to,
                                  RegistryTransportOptions o) {
    auto src = Source(r1, from);
    auto dst = Destination(r2, to, std::move(o));
    return Copy(*src, *dst, {Ref(r2, to).String()}, CopyOptions{});
  }
  Result<ManifestBytes> CopyImage(registry::Registry* r1, const std::string& from,
                                  registry::Registry* r2, const std::string& to) {
    return CopyImage(r1, from, r2, to, Options());
  }

  // The digest the registry at `host` reports for repo:tag, by a client that is not hoist's.
  // How many POSTs the registry's access log shows answered 201 for a mount from `from`.
  static int Mounted(const TestRegistry& r, const std::string& from) {
    (void)r.CountRequests("GET", "");  // waits until the log has every answer so far
    const std::string log = r.log();
    const std::string needle = "&from=" + from + " HTTP/1.1\" 201 ";
    int n = 0;
    for (size_t at = log.find(needle); at != std::string::npos; at = log.find(needle, at + 1)) ++n;
    return n;
  }

  static std::string RemoteDigest(const std::string& host, const std::string& repo_tag) {
    const size_t colon = repo_tag.find(':');
    auto r = testing::HttpCall("HEAD",
                               "http://" + host + "/v2/" + repo_tag.substr(0, colon) +
                                   "/manifests/" + repo_tag.substr(colon + 1),
                               {"Accept: application/vnd.oci.image.manifest.v1+json"});
    if (!r.ok() || r->status != 200) return "";
    return r->headers["docker-content-digest"];
  }

  registry::Authorizer authorizer_;
  std::vector<std::unique_ptr<registry::CredentialSource>> creds_;
  std::vector<std::unique_ptr<registry::Registry>> registries_;
};

// Registry to registry: the same manifest digest at the destination (skopeo agrees), every
// blob readable there. A second copy finds every blob with HEAD and uploads nothing.
TEST_F(RegistryTransportTest, CopyKeepsTheDigestAndASecondCopySkipsEveryBlob) {
  BuiltImage img = TwoLayers(1);
  auto a = TestRegistry::Start();
  auto b = TestRegistry::Start();
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE(testing::PushImage((*a)->host(), "app", "1", img).ok());
  registry::Registry* ra = Connect((*a)->host());
  registry::Registry* rb = Connect((*b)->host());

  auto copied = CopyImage(ra, "app:1", rb, "mirror/app:2");
  ASSERT_TRUE(copied.ok()) << copied.status().message();
  EXPECT_EQ(copied->digest.String(), img.manifest_digest);
  EXPECT_EQ(RemoteDigest((*b)->host(), "mirror/app:2"), img.manifest_digest);
  for (const auto& l : img.layers) {
    auto got =
        testing::HttpCall("GET", "http://" + (*b)->host() + "/v2/mirror/app/blobs/" + l.digest);
    ASSERT_TRUE(got.ok());
    EXPECT_EQ(got->body, l.data);
  }
  const int uploads = (*b)->CountRequests("POST", "/v2/mirror/app/blobs/uploads/");
  EXPECT_EQ(uploads, 3);                                                  // config and two layers
  EXPECT_EQ((*b)->CountRequests("PUT", "/v2/mirror/app/manifests/"), 2);  // by digest, by tag

  if (testing::SkopeoAvailable()) {
    auto raw = testing::RunCommand({"skopeo", "inspect", "--raw", "--tls-verify=false",
                                    "docker://" + (*b)->host() + "/mirror/app:2"},
                                   60);
    ASSERT_TRUE(raw.ok()) << raw.status().message();
    EXPECT_EQ(testing::Sha256Digest(*raw), img.manifest_digest);
  }

  const int heads = (*b)->CountRequests("HEAD", "/v2/mirror/app/blobs/");
  auto again = CopyImage(ra, "app:1", rb, "mirror/app:3");
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ((*b)->CountRequests("HEAD", "/v2/mirror/app/blobs/"), heads + 3);
  EXPECT_EQ((*b)->CountRequests("POST", "/v2/mirror/app/blobs/uploads/"), uploads);
  EXPECT_EQ((*b)->CountRequests("PATCH", "/blobs/uploads/"), 0);
  EXPECT_EQ(RemoteDigest((*b)->host(), "mirror/app:3"), img.manifest_digest);
}

// Between two repositories of one registry, every blob is mounted: no upload at all.
TEST_F(RegistryTransportTest, CopyWithinARegistryMountsEveryBlob) {
  BuiltImage img = TwoLayers(3);
  auto a = TestRegistry::Start();
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(testing::PushImage((*a)->host(), "app", "1", img).ok());
  registry::Registry* ra = Connect((*a)->host());
  const int puts = (*a)->CountRequests("PUT", "/blobs/uploads/");

  auto copied = CopyImage(ra, "app:1", ra, "team/app:1");
  ASSERT_TRUE(copied.ok()) << copied.status().message();
  EXPECT_EQ(RemoteDigest((*a)->host(), "team/app:1"), img.manifest_digest);
  EXPECT_EQ((*a)->CountRequests("POST", "/v2/team/app/blobs/uploads/?mount="), 3);
  EXPECT_EQ(Mounted(**a, "app"), 3);
  EXPECT_EQ((*a)->CountRequests("PUT", "/blobs/uploads/"), puts);
  EXPECT_EQ((*a)->CountRequests("PATCH", "/blobs/uploads/"), 0);
}

// A destination told where the blobs are (options.mount_from) mounts them from there when the
// source is elsewhere.
TEST_F(RegistryTransportTest, MountsFromARepositoryItIsTold) {
  BuiltImage img = TwoLayers(5);
  auto a = TestRegistry::Start();
  auto b = TestRegistry::Start();
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE(testing::PushImage((*a)->host(), "app", "1", img).ok());
  ASSERT_TRUE(testing::PushImage((*b)->host(), "base", "1", img).ok());
  RegistryTransportOptions o = Options();
  o.mount_from = {"base"};
  auto copied = CopyImage(Connect((*a)->host()), "app:1", Connect((*b)->host()), "app:1", o);
  ASSERT_TRUE(copied.ok()) << copied.status().message();
  EXPECT_EQ(Mounted(**b, "base"), 3);
  EXPECT_EQ((*b)->CountRequests("PUT", "/v2/app/blobs/uploads/"), 0);
  EXPECT_EQ((*a)->CountRequests("GET", "/v2/app/blobs/"), 1);  // only the config is read
}

// Blobs over the chunk size go in PATCH chunks of that size, then the final PUT.
TEST_F(RegistryTransportTest, LargeBlobsGoInChunks) {
  BuiltImage img = TwoLayers(7, 300000);
  auto a = TestRegistry::Start();
  auto b = TestRegistry::Start();
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE(testing::PushImage((*a)->host(), "app", "1", img).ok());
  RegistryTransportOptions o = Options();
  o.chunk_size = 64 << 10;
  auto proxy = testing::FaultProxy::Start((*b)->host());
  ASSERT_TRUE(proxy.ok());
  auto copied = CopyImage(Connect((*a)->host()), "app:1", Connect((*proxy)->host()), "app:1", o);
  ASSERT_TRUE(copied.ok()) << copied.status().message();
  EXPECT_EQ(RemoteDigest((*b)->host(), "app:1"), img.manifest_digest);
  int64_t chunks = 0;
  for (const auto& l : img.layers) chunks += static_cast<int64_t>(l.data.size()) / (64 << 10);
  EXPECT_EQ((*proxy)->Count("/blobs/uploads/", "PATCH"), chunks);
  for (const auto& l : img.layers) {
    auto got = testing::HttpCall("GET", "http://" + (*b)->host() + "/v2/app/blobs/" + l.digest);
    ASSERT_TRUE(got.ok());
    EXPECT_EQ(got->body, l.data);
  }
}

// An upload cut off by a connection reset restarts its session (a new POST) and reads the
// source again; the copy completes.
TEST_F(RegistryTransportTest, AnInterruptedUploadRestartsItsSession) {
  BuiltImage img = TwoLayers(9, 100000);
  auto a = TestRegistry::Start();
  auto b = TestRegistry::Start();
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE(testing::PushImage((*a)->host(), "app", "1", img).ok());
  auto proxy = testing::FaultProxy::Start((*b)->host());
  ASSERT_TRUE(proxy.ok());
  // The first two PUT or PATCH requests are cut off.
  (*proxy)->Add({testing::Fault::kReset, "/blobs/uploads/", 2});
  RegistryTransportOptions o = Options();
  o.chunk_size = 64 << 10;  // a PATCH and a PUT for each layer
  auto copied = CopyImage(Connect((*a)->host()), "app:1", Connect((*proxy)->host()), "app:1", o);
  ASSERT_TRUE(copied.ok()) << copied.status().message();
  EXPECT_EQ(RemoteDigest((*b)->host(), "app:1"), img.manifest_digest);
  int resets = 0;
  for (const auto& r : (*proxy)->Requests()) resets += r.fault == "reset" ? 1 : 0;
  EXPECT_EQ(resets, 2);
  EXPECT_EQ((*proxy)->Count("/blobs/uploads/", "POST"), 3 + 2);  // two sessions started again
  // The config read by Copy, each blob once, and two blobs again.
  EXPECT_EQ((*a)->CountRequests("GET", "/v2/app/blobs/"), 1 + 3 + 2);
}

// A blob whose bytes do not match its digest is never committed: its final PUT is not sent, its
// session is deleted, and no manifest is put.
TEST_F(RegistryTransportTest, ABlobThatDoesNotMatchIsNeverCommitted) {
  BuiltImage img = TwoLayers(11);
  auto a = TestRegistry::Start();
  auto b = TestRegistry::Start();
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE(testing::PushImage((*a)->host(), "app", "1", img).ok());
  const auto& bad = img.layers[1];
  {
    std::ofstream out((*a)->BlobDataPath(*Digest::Parse(bad.digest)),
                      std::ios::binary | std::ios::trunc);
    out << std::string(bad.data.size(), 'x');
  }
  auto copied = CopyImage(Connect((*a)->host()), "app:1", Connect((*b)->host()), "app:1");
  ASSERT_FALSE(copied.ok());
  EXPECT_EQ(copied.status().code(), StatusCode::kDataLoss) << copied.status().message();
  EXPECT_NE(copied.status().message().find(bad.digest), std::string::npos);
  EXPECT_EQ((*b)->CountRequests("PUT", bad.digest.substr(7)), 0);  // no final PUT ?digest=
  EXPECT_GE((*b)->CountRequests("DELETE", "/v2/app/blobs/uploads/"), 1);
  EXPECT_EQ((*b)->CountRequests("PUT", "/manifests/"), 0);
  auto head = testing::HttpCall("HEAD", "http://" + (*b)->host() + "/v2/app/blobs/" + bad.digest);
  ASSERT_TRUE(head.ok());
  EXPECT_EQ(head->status, 404);
}

// A token registry: the push scope is asked for and granted to an account; anonymous callers
// (pull only, on a public repository) are refused clearly. A mount there asks for both scopes.
TEST_F(RegistryTransportTest, TokenRegistryGrantsPushToAnAccountOnly) {
  BuiltImage img = TwoLayers(13);
  testing::TokenOptions topts;
  topts.users = {{"alice", "s3cret"}};
  topts.public_repos = {"app"};
  auto tokens = testing::TokenServer::Start(topts);
  ASSERT_TRUE(tokens.ok());
  RegistryOptions ropts;
  ropts.auth = RegistryOptions::Auth::kToken;
  ropts.token_realm = (*tokens)->realm();
  ropts.token_service = topts.service;
  ropts.token_issuer = topts.issuer;
  ropts.token_cert_path = (*tokens)->cert_path();
  auto t = TestRegistry::Start(ropts);
  auto a = TestRegistry::Start();
  ASSERT_TRUE(t.ok() && a.ok());
  ASSERT_TRUE(testing::PushImage((*a)->host(), "src", "1", img).ok());
  registry::Registry* ra = Connect((*a)->host());

  auto anonymous = CopyImage(ra, "src:1", Connect((*t)->host()), "app:1");
  ASSERT_FALSE(anonymous.ok());
  EXPECT_TRUE(anonymous.status().code() == StatusCode::kUnauthenticated ||
              anonymous.status().code() == StatusCode::kPermissionDenied)
      << anonymous.status().message();
  EXPECT_NE(anonymous.status().message().find("no push access to " + (*t)->host() + "/app"),
            std::string::npos)
      << anonymous.status().message();
  EXPECT_EQ((*t)->CountRequests("PUT", "/v2/app/"), 0);

  registry::Registry* rt = Connect((*t)->host(), registry::Credential{"alice", "s3cret", ""});
  auto pushed = CopyImage(ra, "src:1", rt, "app:1");
  ASSERT_TRUE(pushed.ok()) << pushed.status().message();
  bool asked_push = false;
  for (const auto& r : (*tokens)->requests()) {
    asked_push |= r.target.find("scope=repository%3Aapp%3Apull%2Cpush") != std::string::npos;
  }
  EXPECT_TRUE(asked_push);

  auto mounted = CopyImage(rt, "app:1", rt, "team/app:1");
  ASSERT_TRUE(mounted.ok()) << mounted.status().message();
  EXPECT_EQ(Mounted(**t, "app"), 3);
  EXPECT_EQ((*t)->CountRequests("PUT", "/v2/team/app/blobs/uploads/"), 0);
}

// An index with every platform (CopyOptions::all_platforms): each manifest by digest, the index
// last under the tag, its digest unchanged; without it, only the chosen platform's manifest.
TEST_F(RegistryTransportTest, CopiesAnIndexWholeOrOnePlatform) {
  testing::BuiltIndex index = testing::BuildIndex(
      Format::kOci,
      {TwoLayers(15), BuildImage(Format::kOci, {{{"c", "arm"}}}, "linux", "arm64", "v8")});
  auto a = TestRegistry::Start();
  auto b = TestRegistry::Start();
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE(testing::PushIndex((*a)->host(), "multi", "1", index).ok());
  registry::Registry* ra = Connect((*a)->host());
  registry::Registry* rb = Connect((*b)->host());

  auto src = Source(ra, "multi:1");
  auto dst = Destination(rb, "multi:all", Options());
  CopyOptions all;
  all.all_platforms = true;
  auto copied = Copy(*src, *dst, {Ref(rb, "multi:all").String()}, all);
  ASSERT_TRUE(copied.ok()) << copied.status().message();
  EXPECT_EQ(copied->digest.String(), index.digest);
  auto head = testing::HttpCall("HEAD", "http://" + (*b)->host() + "/v2/multi/manifests/all",
                                {"Accept: " + index.media_type});
  ASSERT_TRUE(head.ok());
  EXPECT_EQ(head->headers["docker-content-digest"], index.digest);
  for (const auto& image : index.images) {
    auto m = testing::HttpCall(
        "HEAD", "http://" + (*b)->host() + "/v2/multi/manifests/" + image.manifest_digest,
        {"Accept: " + image.manifest_media_type});
    ASSERT_TRUE(m.ok());
    EXPECT_EQ(m->status, 200);
  }

  CopyOptions one;
  one.platform = "linux/arm64/v8";
  auto arm = Copy(*Source(ra, "multi:1"), *Destination(rb, "arm:1", Options()),
                  {Ref(rb, "arm:1").String()}, one);
  ASSERT_TRUE(arm.ok()) << arm.status().message();
  EXPECT_EQ(arm->digest.String(), index.images[1].manifest_digest);
  EXPECT_EQ(RemoteDigest((*b)->host(), "arm:1"), index.images[1].manifest_digest);
}

// A source cut off mid-blob resumes with a Range request: the upload goes on in the same
// session (nothing is uploaded twice), as the bytes stream through.
TEST_F(RegistryTransportTest, ASourceCutOffResumesIntoTheSameUpload) {
  BuiltImage img = TwoLayers(17, 200000);
  auto a = TestRegistry::Start();
  auto b = TestRegistry::Start();
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE(testing::PushImage((*a)->host(), "app", "1", img).ok());
  auto proxy = testing::FaultProxy::Start((*a)->host());
  ASSERT_TRUE(proxy.ok());
  (*proxy)->Add({testing::Fault::kReset, "/blobs/" + img.layers[0].digest, 1});
  RegistryTransportOptions o = Options();
  o.chunk_size = 64 << 10;
  auto copied = CopyImage(Connect((*proxy)->host()), "app:1", Connect((*b)->host()), "app:1", o);
  ASSERT_TRUE(copied.ok()) << copied.status().message();
  EXPECT_EQ(RemoteDigest((*b)->host(), "app:1"), img.manifest_digest);
  bool ranged = false;
  for (const auto& r : (*proxy)->Requests()) ranged |= !r.range.empty();
  EXPECT_TRUE(ranged);
  EXPECT_EQ((*b)->CountRequests("POST", "/v2/app/blobs/uploads/"), 3);
  EXPECT_EQ((*b)->CountRequests("DELETE", "/blobs/uploads/"), 0);
}

// A registry whose upload Location names another host gets nothing more: no bytes, no
// credentials go there.
TEST_F(RegistryTransportTest, AnUploadLocationElsewhereIsRefused) {
  auto elsewhere = testing::FixtureServer::Start(
      [](const testing::HttpRequest&) { return testing::HttpResponse{202}; }, "127.0.0.2");
  ASSERT_TRUE(elsewhere.ok());
  const std::string other = (*elsewhere)->url();
  auto fake = testing::FixtureServer::Start([&](const testing::HttpRequest& req) {
    testing::HttpResponse r;
    if (req.method == "HEAD") {
      r.status = 404;
    } else if (req.method == "POST") {
      r.status = 202;
      r.headers = {{"Location", other + "/v2/app/blobs/uploads/stolen"}};
    } else {
      r.status = 500;
    }
    return r;
  });
  ASSERT_TRUE(fake.ok());
  auto a = TestRegistry::Start();
  ASSERT_TRUE(a.ok());
  BuiltImage img = TwoLayers(19);
  ASSERT_TRUE(testing::PushImage((*a)->host(), "app", "1", img).ok());
  auto copied =
      CopyImage(Connect((*a)->host()), "app:1",
                Connect((*fake)->host(), registry::Credential{"u", "secret", ""}), "app:1");
  ASSERT_FALSE(copied.ok());
  EXPECT_EQ(copied.status().code(), StatusCode::kInvalidArgument) << copied.status().message();
  EXPECT_TRUE((*elsewhere)->requests().empty());
  for (const auto& r : (*fake)->requests()) EXPECT_NE(r.method, "PUT");
}

}  // namespace
}  // namespace hoist::transport
