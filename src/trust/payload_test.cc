#include "trust/payload.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "content/digester.h"

namespace hoist::trust {
namespace {

using ::testing::HasSubstr;

const std::string kDigest = "sha256:" + std::string(64, 'c');

std::string Claims(const std::string& critical_extra = "", const std::string& optional = "{}") {
  return R"({"critical": {"type": "atomic container signature", "image":
      {"docker-manifest-digest": ")" +
         kDigest + R"("}, "identity": {"docker-reference": "example.com/app:1"})" + critical_extra +
         R"(}, "optional": )" + optional + "}";
}

TEST(ParseSignedClaims, Valid) {
  auto c = ParseSignedClaims(Claims("", R"({"creator": "skopeo", "timestamp": 17})"),
                             kSimpleSigningType);
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->manifest_digest, kDigest);
  EXPECT_EQ(c->docker_reference, "example.com/app:1");
  // cosign writes "optional": null.
  std::string cosign = Claims("", "null");
  cosign.replace(cosign.find("atomic container signature"), 26, "cosign container image signature");
  EXPECT_TRUE(ParseSignedClaims(cosign, kCosignType).ok());
  EXPECT_FALSE(ParseSignedClaims(cosign, kSimpleSigningType).ok());
}

TEST(ParseSignedClaims, Refused) {
  struct Case {
    std::string payload;
    const char* message;
  };
  const Case cases[] = {
      {"[]", "not a JSON object"},
      {"{", "not valid JSON"},
      {Claims(R"(, "extra": 1)"), "exactly type, image and identity"},
      {Claims("", "[]"), "no optional object"},
      {Claims("", R"({"timestamp": "now"})"), "timestamp is not an integer"},
      {R"({"critical": {"type": "atomic container signature", "image": {},
          "identity": {"docker-reference": "a:1"}}, "optional": {}})",
       "critical.image must hold exactly"},
      {R"({"critical": {"type": "atomic container signature",
          "image": {"docker-manifest-digest": 5}, "identity": {"docker-reference": "a:1"}},
          "optional": {}})",
       "docker-manifest-digest is missing or not a string"},
      {R"({"critical": {"type": "other", "image": {"docker-manifest-digest": "x"},
          "identity": {"docker-reference": "a:1"}}, "optional": {}})",
       "critical.type is not"},
      {R"({"critical": {"type": "atomic container signature",
          "image": {"docker-manifest-digest": "x"}, "identitx": {}}, "optional": {}})",
       "exactly type, image and identity"},
      {R"({"critical": {"type": "atomic container signature",
          "image": {"docker-manifest-digest": "x"}, "identity": {"docker-reference": "a:1"}},
          "optional": {}, "more": 1})",
       "unknown field more"},
      {std::string(kMaxPayloadBytes + 1, ' '), "larger than 4 MiB"},
  };
  for (const auto& c : cases) {
    auto r = ParseSignedClaims(c.payload, kSimpleSigningType);
    ASSERT_FALSE(r.ok()) << c.payload.substr(0, 200);
    EXPECT_THAT(r.status().message(), HasSubstr(c.message)) << c.payload.substr(0, 200);
  }
}

TEST(MatchesManifest, SameAndOtherAlgorithm) {
  const std::string manifest = R"({"schemaVersion": 2})";
  auto sha256 = content::DigestOf("sha256", manifest);
  auto sha512 = content::DigestOf("sha512", manifest);
  ASSERT_TRUE(sha256.ok() && sha512.ok());
  EXPECT_TRUE(MatchesManifest(sha256->String(), *sha256, manifest));
  EXPECT_TRUE(MatchesManifest(sha512->String(), *sha256, manifest));
  EXPECT_FALSE(MatchesManifest(kDigest, *sha256, manifest));
  EXPECT_FALSE(MatchesManifest("sha512:" + std::string(128, '0'), *sha256, manifest));
  EXPECT_FALSE(MatchesManifest("garbage", *sha256, manifest));
}

}  // namespace
}  // namespace hoist::trust
