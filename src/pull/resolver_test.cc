#include "pull/resolver.h"

#include <gtest/gtest.h>

#include "content/digester.h"
#include "manifest/media_types.h"

namespace hoist::pull {
namespace {

registry::ManifestResponse Response(std::string digest_header) {
  registry::ManifestResponse m;
  m.content_type = std::string(manifest::kOciManifest);
  m.digest_header = std::move(digest_header);
  m.body = R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",)"
           R"("config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:)" +
           std::string(64, 'a') + R"(","size":2},"layers":[]})";
  return m;
}

// The one check every manifest from a registry passes (the resolver's and the registry
// source's): the digest asked for, and the digest the registry claims, against the bytes.
TEST(VerifyManifest, ChecksTheDigestAskedForAndTheOneClaimed) {
  const Digest real = *content::DigestOf("sha256", Response("").body);
  auto plain = VerifyManifest(Response(""), std::nullopt);
  ASSERT_TRUE(plain.ok()) << plain.status().message();
  EXPECT_EQ(plain->digest, real);
  EXPECT_EQ(plain->canonical, Response("").body);
  EXPECT_TRUE(VerifyManifest(Response(real.String()), real).ok());

  const Digest other = *Digest::Parse("sha256:" + std::string(64, 'b'));
  auto wrong_want = VerifyManifest(Response(""), other);
  EXPECT_EQ(wrong_want.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(wrong_want.status().message().find("want " + other.String()), std::string::npos);
  // A registry claiming another digest than the document's is refused, asked by digest or not.
  for (const auto& want : {std::optional<Digest>(), std::optional<Digest>(real)}) {
    auto lying = VerifyManifest(Response(other.String()), want);
    EXPECT_EQ(lying.status().code(), StatusCode::kDataLoss);
    EXPECT_NE(lying.status().message().find("the registry claims " + other.String()),
              std::string::npos)
        << lying.status().message();
  }
}

}  // namespace
}  // namespace hoist::pull
