#include "content/index_file.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace hoist::content {
namespace {

using nlohmann::json;

Descriptor FullDescriptor() {
  Descriptor d;
  d.media_type = "application/vnd.oci.image.manifest.v1+json";
  d.digest = *Digest::Parse("sha256:" + std::string(64, 'b'));
  d.size = 1234;
  d.urls = {"https://example.com/x"};
  d.annotations = {{"a", "1"}, {kRefNameAnnotation, "example.com/app:1"}};
  d.platform = Platform{"linux", "arm64", "v8", "10.0", {"sse4"}};
  return d;
}

TEST(IndexFile, DescriptorRoundTrip) {
  Descriptor d = FullDescriptor();
  json j = DescriptorToJson(d);
  EXPECT_EQ(j["mediaType"], d.media_type);
  EXPECT_EQ(j["digest"], d.digest.String());
  EXPECT_EQ(j["size"], 1234);
  EXPECT_EQ(j["platform"]["os.version"], "10.0");
  EXPECT_EQ(j["platform"]["os.features"][0], "sse4");
  auto back = DescriptorFromJson(j);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->media_type, d.media_type);
  EXPECT_EQ(back->digest, d.digest);
  EXPECT_EQ(back->size, d.size);
  EXPECT_EQ(back->urls, d.urls);
  EXPECT_EQ(back->annotations, d.annotations);
  EXPECT_EQ(back->platform, d.platform);

  Descriptor minimal;
  minimal.media_type = "x";
  minimal.digest = d.digest;
  json mj = DescriptorToJson(minimal);
  EXPECT_FALSE(mj.contains("urls"));
  EXPECT_FALSE(mj.contains("annotations"));
  EXPECT_FALSE(mj.contains("platform"));
}

TEST(IndexFile, DescriptorRefusesBadFields) {
  const std::string digest = "\"sha256:" + std::string(64, 'b') + "\"";
  for (const std::string& text : std::vector<std::string>{
           "[]",
           R"({"digest":)" + digest + R"(,"size":1})",
           R"({"mediaType":1,"digest":)" + digest + R"(,"size":1})",
           R"({"mediaType":"x","digest":"sha256:../x","size":1})",
           R"({"mediaType":"x","digest":)" + digest + "}",
           R"({"mediaType":"x","digest":)" + digest + R"(,"size":-1})",
           R"({"mediaType":"x","digest":)" + digest + R"(,"size":1.5})",
           R"({"mediaType":"x","digest":)" + digest + R"(,"size":"1"})",
           R"({"mediaType":"x","digest":)" + digest + R"(,"size":18446744073709551615})",
           R"({"mediaType":"x","digest":)" + digest + R"(,"size":1,"urls":"u"})",
           R"({"mediaType":"x","digest":)" + digest + R"(,"size":1,"annotations":{"a":1}})",
           R"({"mediaType":"x","digest":)" + digest + R"(,"size":1,"platform":{"os":"linux"}})",
       }) {
    json j = json::parse(text, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << text;
    EXPECT_EQ(DescriptorFromJson(j).status().code(), StatusCode::kDataLoss) << text;
  }
}

TEST(IndexFile, ParseIndex) {
  auto empty = ParseIndex(EmptyIndexJson());
  ASSERT_TRUE(empty.ok()) << empty.status().ToString();
  EXPECT_EQ((*empty)["schemaVersion"], 2);
  EXPECT_EQ((*empty)["mediaType"], kOciIndexMediaType);
  EXPECT_TRUE((*empty)["manifests"].empty());
  EXPECT_TRUE(ParseIndex(R"({"schemaVersion":2,"manifests":[]})").ok());
  for (const char* bad :
       {"", "[]", "{", R"({"manifests":[]})", R"({"schemaVersion":1,"manifests":[]})",
        R"({"schemaVersion":2,"manifests":{}})",
        R"({"schemaVersion":2,"mediaType":"x","manifests":[]})"}) {
    EXPECT_EQ(ParseIndex(bad).status().code(), StatusCode::kDataLoss) << bad;
  }
}

TEST(IndexFile, RefNames) {
  for (const char* good :
       {"latest", "v1.0", "127.0.0.1:5000/app:1", "docker.io/library/alpine:3.19", "a--b",
        "A_b+c@d", "app@sha256:0123abcd"}) {
    EXPECT_TRUE(IsValidRefName(good)) << good;
  }
  for (const char* bad : {"", "/a", "a/", "a//b", ".a", "a.", "a..b", "a---b", "a b", "a\nb",
                          "../x", "a/../b", "é"}) {
    EXPECT_FALSE(IsValidRefName(bad)) << bad;
  }
}

// A store's index.json nested 300 000 deep is a clean error: PutRef would dump it again, and
// nlohmann's dump recurses once per level.
TEST(IndexFile, DeeplyNestedIndexIsDataLoss) {
  const std::string deep = std::string(300000, '[') + std::string(300000, ']');
  for (const std::string& text : {R"({"schemaVersion":2,"manifests":[],"x":)" + deep + "}",
                                  R"({"schemaVersion":2,"manifests":)" + deep + "}"}) {
    auto index = ParseIndex(text);
    ASSERT_FALSE(index.ok());
    EXPECT_EQ(index.status().code(), StatusCode::kDataLoss);
    EXPECT_EQ(index.status().message(), "index: JSON nested deeper than 64 levels");
  }
}

}  // namespace
}  // namespace hoist::content
