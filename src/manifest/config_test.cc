#include "manifest/config.h"

#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "manifest/manifest.h"

namespace hoist::manifest {
namespace {

using ::testing::HasSubstr;

constexpr char kConfig[] = R"({
  "architecture": "arm64",
  "variant": "v8",
  "os": "linux",
  "config": {"Env": ["PATH=/usr/bin"], "Cmd": ["/bin/sh"]},
  "rootfs": {
    "type": "layers",
    "diff_ids": [
      "sha256:77ea7eee3d80b1a38f83906dd3048e2689457eb90e18a7d12f839c5ae37106a2",
      "sha256:95cf1a2e1698fe3ca1fcc3f653119146b271d0b62e487ec264441e886a11bd06"
    ]
  },
  "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "ADD rootfs.tar /"}]
})";

TEST(ParseConfig, ReadsPlatformAndDiffIds) {
  Result<ImageConfig> c = ParseConfig(kConfig);
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->platform.String(), "linux/arm64/v8");
  ASSERT_EQ(c->diff_ids.size(), 2u);
  EXPECT_EQ(c->diff_ids[0].String(),
            "sha256:77ea7eee3d80b1a38f83906dd3048e2689457eb90e18a7d12f839c5ae37106a2");
  EXPECT_EQ(c->raw, kConfig);
}

TEST(ParseConfig, AcceptsNoLayersAndOsFeatures) {
  Result<ImageConfig> c = ParseConfig(
      R"({"os": "windows", "architecture": "amd64", "os.version": "10.0.17763.1",
          "os.features": ["win32k"], "rootfs": {"type": "layers", "diff_ids": []}})");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_TRUE(c->diff_ids.empty());
  EXPECT_EQ(c->platform.os_version, "10.0.17763.1");
  EXPECT_EQ(c->platform.os_features, std::vector<std::string>{"win32k"});
}

TEST(ParseConfig, RefusesOversized) {
  std::string big = R"({"rootfs": {"type": "layers", "diff_ids": []}, "pad": ")" +
                    std::string(kMaxManifestBytes, 'x') + "\"}";
  Result<ImageConfig> c = ParseConfig(big);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kResourceExhausted);
}

TEST(ParseConfig, Refuses) {
  struct Case {
    std::string doc;
    const char* message;
  };
  for (const Case& c : std::vector<Case>{
           {"not json", "not valid JSON"},
           {"[]", "not a JSON object"},
           {R"({"os": "linux"})", "config.rootfs must be an object"},
           {R"({"rootfs": []})", "config.rootfs must be an object"},
           {R"({"rootfs": {"diff_ids": []}})", "config.rootfs.type is missing"},
           {R"({"rootfs": {"type": "snapshot", "diff_ids": []}})",
            "config.rootfs.type must be \"layers\""},
           {R"({"rootfs": {"type": "layers"}})", "config.rootfs.diff_ids must be an array"},
           {R"({"rootfs": {"type": "layers", "diff_ids": [7]}})",
            "config.rootfs.diff_ids[0] must be a string"},
           {R"({"rootfs": {"type": "layers", "diff_ids": ["sha256:abc"]}})",
            "config.rootfs.diff_ids[0]"},
           {R"({"os": 1, "rootfs": {"type": "layers", "diff_ids": []}})",
            "config.os must be a string"},
           {R"({"architecture": [], "rootfs": {"type": "layers", "diff_ids": []}})",
            "config.architecture must be a string"},
           {R"({"os.features": "x", "rootfs": {"type": "layers", "diff_ids": []}})",
            "config.os.features must be an array"},
       }) {
    Result<ImageConfig> r = ParseConfig(c.doc);
    ASSERT_FALSE(r.ok()) << c.doc;
    EXPECT_EQ(r.status().code(), StatusCode::kDataLoss) << c.doc;
    EXPECT_THAT(r.status().message(), HasSubstr(c.message)) << c.doc;
  }
}

TEST(ParseConfig, RefusesDeepNesting) {
  const std::string deep = std::string(300000, '[') + std::string(300000, ']');
  Result<ImageConfig> c =
      ParseConfig(R"({"architecture":"amd64","os":"linux","config":)" + deep + "}");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(c.status().message().find("JSON nested deeper than 64 levels"), std::string::npos)
      << c.status().message();
}

}  // namespace
}  // namespace hoist::manifest
