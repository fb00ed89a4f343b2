#include "manifest/convert.h"

#include <gtest/gtest.h>

#include "manifest/media_types.h"

namespace hoist::manifest {
namespace {

const std::string kA(64, 'a'), kB(64, 'b'), kC(64, 'c');

TEST(DockerToOciManifest, SameBlobsUnderOciTypes) {
  std::string docker = R"({"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",
    "config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":10,"digest":"sha256:)" + kA + R"("},
    "layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":20,"digest":"sha256:)" + kB + R"("},
              {"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","size":30,"digest":"sha256:)" + kC + R"(",
               "urls":["https://example.com/layer"]}]})";
  auto d = Decode("", docker);
  ASSERT_TRUE(d.ok()) << d.status().message();
  auto oci = DockerToOciManifest(*d);
  ASSERT_TRUE(oci.ok()) << oci.status().message();
  auto back = Decode("", *oci);
  ASSERT_TRUE(back.ok()) << back.status().message() << "\n" << *oci;
  EXPECT_EQ(back->media_type, kOciManifest);
  EXPECT_EQ(back->manifest.config.media_type, kOciConfig);
  EXPECT_EQ(back->manifest.config.digest, d->manifest.config.digest);
  EXPECT_EQ(back->manifest.config.size, 10);
  ASSERT_EQ(back->manifest.layers.size(), 2u);
  EXPECT_EQ(back->manifest.layers[0].media_type, kOciLayerGzip);
  EXPECT_EQ(back->manifest.layers[0].digest, d->manifest.layers[0].digest);
  EXPECT_EQ(back->manifest.layers[1].media_type, kOciLayerNondistributableGzip);
  EXPECT_EQ(back->manifest.layers[1].urls, std::vector<std::string>{"https://example.com/layer"});
  EXPECT_EQ(*DockerToOciManifest(*d), *oci) << "deterministic";
  EXPECT_EQ(oci->rfind(R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",)", 0), 0u);
}

TEST(DockerToOciManifest, RefusesOtherKinds) {
  std::string oci = R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
    "config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":10,"digest":"sha256:)" + kA + R"("},"layers":[]})";
  auto d = Decode("", oci);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(DockerToOciManifest(*d).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace hoist::manifest
