// Server::Start's refusals, and a record's image served from a store filled in-process (the
// end-to-end tests with skopeo, podman and hoist nodes are tests/serve_test.cc).
#include "serve/server.h"

#include <gtest/gtest.h>

#include <fstream>

#include "image/store_fixture_test.h"
#include "support/http_client.h"

namespace hoist::serve {
namespace {

class ServerTest : public image::StoreTest {
 protected:
  std::string WriteFile(const std::string& name, const std::string& text) {
    std::string path = dir_->path() + "/" + name;
    std::ofstream(path) << text;
    return path;
  }
};

TEST_F(ServerTest, RefusesBadAddressesAndUnsafeCombinations) {
  for (const char* listen :
       {"127.0.0.1", "localhost:5000", "127.0.0.1:70000", "127.0.0.1:x", "[::1]", "1.2.3.4.5:80"}) {
    ServeOptions o;
    o.listen = listen;
    auto s = Server::Start(*store_, o);
    EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument) << listen;
  }
  ServeOptions open;
  open.listen = "0.0.0.0:0";
  auto refused = Server::Start(*store_, open);
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("--htpasswd"), std::string::npos);
  open.allow_anonymous_remote = true;
  EXPECT_TRUE(Server::Start(*store_, open).ok());

  ServeOptions ca_without_tls;
  ca_without_tls.listen = "127.0.0.1:0";
  ca_without_tls.tls_client_ca = WriteFile("ca.pem", "x");
  EXPECT_EQ(Server::Start(*store_, ca_without_tls).status().code(), StatusCode::kInvalidArgument);

  ServeOptions cert_without_key;
  cert_without_key.listen = "127.0.0.1:0";
  cert_without_key.tls_cert = WriteFile("cert.pem", "x");
  EXPECT_EQ(Server::Start(*store_, cert_without_key).status().code(), StatusCode::kInvalidArgument);

  // Only bcrypt entries: a crypt(3) DES or MD5 hash, or a plain password, is refused.
  for (const char* entry :
       {"node:plain", "node:$apr1$abc$def", "node:abDEF1234", ":$2y$05$x", "# only a comment"}) {
    ServeOptions o;
    o.listen = "127.0.0.1:0";
    o.htpasswd = WriteFile("htpasswd", std::string(entry) + "\n");
    EXPECT_EQ(Server::Start(*store_, o).status().code(), StatusCode::kInvalidArgument) << entry;
  }
}

TEST_F(ServerTest, ServesOnlyWhatRecordsReference) {
  testing::BuiltImage img = testing::BuildImage(testing::Format::kOci, {{{"f", "hello"}}});
  PutImage(img);
  ServeOptions o;
  o.listen = "127.0.0.1:0";
  auto server = Server::Start(*store_, o);
  ASSERT_TRUE(server.ok()) << server.status().message();
  const std::string base = "http://127.0.0.1:" + std::to_string((*server)->port());
  // In the store but not recorded yet: unknown.
  auto before = testing::HttpCall("GET", base + "/v2/app/blobs/" + img.layers[0].digest);
  ASSERT_TRUE(before.ok());
  EXPECT_EQ(before->status, 404);
  Descriptor d;
  d.media_type = img.manifest_media_type;
  d.digest = *Digest::Parse(img.manifest_digest);
  d.size = static_cast<int64_t>(img.manifest.size());
  ASSERT_TRUE(store_->PutRef("127.0.0.1:5000/app:1", d).ok());
  // index.json changed: the new record is seen.
  auto after = testing::HttpCall("GET", base + "/v2/app/blobs/" + img.layers[0].digest);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->status, 200);
  EXPECT_EQ(after->body, img.layers[0].data);
  auto head = testing::HttpCall("HEAD", base + "/v2/app/blobs/" + img.layers[0].digest);
  ASSERT_TRUE(head.ok());
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->headers["content-length"], std::to_string(img.layers[0].data.size()));
  EXPECT_EQ(head->headers["docker-content-digest"], img.layers[0].digest);
  EXPECT_EQ(head->body, "");
  auto tag = testing::HttpCall("GET", base + "/v2/app/manifests/1");
  ASSERT_TRUE(tag.ok());
  EXPECT_EQ(tag->status, 200);
  EXPECT_EQ(tag->headers["docker-content-digest"], img.manifest_digest);
  ASSERT_TRUE(store_->RemoveRef("127.0.0.1:5000/app:1").ok());
  auto removed = testing::HttpCall("GET", base + "/v2/app/manifests/1");
  ASSERT_TRUE(removed.ok());
  EXPECT_EQ(removed->status, 404);
}

TEST_F(ServerTest, PagesTagsAsTheDistributionSpecSays) {
  testing::BuiltImage img = testing::BuildImage(testing::Format::kOci, {{{"f", "hello"}}});
  PutImage(img);
  Descriptor d;
  d.media_type = img.manifest_media_type;
  d.digest = *Digest::Parse(img.manifest_digest);
  d.size = static_cast<int64_t>(img.manifest.size());
  for (const char* tag : {"c", "a", "b"}) {
    ASSERT_TRUE(store_->PutRef(std::string("127.0.0.1:5000/app:") + tag, d).ok());
  }
  ServeOptions o;
  o.listen = "127.0.0.1:0";
  auto server = Server::Start(*store_, o);
  ASSERT_TRUE(server.ok()) << server.status().message();
  const std::string base =
      "http://127.0.0.1:" + std::to_string((*server)->port()) + "/v2/app/tags/list";
  auto get = [&](const std::string& query) {
    auto r = testing::HttpCall("GET", base + query);
    EXPECT_TRUE(r.ok());
    return r.ok() ? *r : testing::ClientResponse{};
  };
  auto all = get("");
  EXPECT_EQ(all.body, R"({"name":"app","tags":["a","b","c"]})");
  EXPECT_EQ(all.headers.count("link"), 0u);
  auto first = get("?n=2");
  EXPECT_EQ(first.body, R"({"name":"app","tags":["a","b"]})");
  EXPECT_EQ(first.headers["link"], R"(</v2/app/tags/list?n=2&last=b>; rel="next")");
  auto next = get("?n=2&last=b");
  EXPECT_EQ(next.body, R"({"name":"app","tags":["c"]})");
  EXPECT_EQ(next.headers.count("link"), 0u);
  EXPECT_EQ(get("?last=a").body, R"({"name":"app","tags":["b","c"]})");
  EXPECT_EQ(get("?last=zzz").body, R"({"name":"app","tags":[]})");
  EXPECT_EQ(get("?n=0").body, R"({"name":"app","tags":[]})");
  for (const char* bad : {"?n=x", "?n=-1", "?n=", "?n=99999999"}) {
    auto r = get(bad);
    EXPECT_EQ(r.status, 400) << bad;
    EXPECT_NE(r.body.find("PAGINATION_NUMBER_INVALID"), std::string::npos) << bad;
  }
}

}  // namespace
}  // namespace hoist::serve
