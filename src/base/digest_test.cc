#include <gtest/gtest.h>

#include <vector>

#include "hoist/descriptor.h"
#include "hoist/digest.h"

namespace hoist {
namespace {

TEST(Digest, Parse) {
  std::string hex(64, 'a');
  auto d = Digest::Parse("sha256:" + hex);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->algorithm(), "sha256");
  EXPECT_EQ(d->hex(), hex);
  EXPECT_EQ(d->String(), "sha256:" + hex);
  EXPECT_EQ(d->Short(), "sha256:aaaaaaaaaaaa");
  EXPECT_TRUE(Digest::Parse("sha512:" + std::string(128, '0')).ok());
}

TEST(Digest, Refuses) {
  for (const std::string& bad : std::vector<std::string>{"", "sha256", "sha256:", "sha256:" + std::string(63, 'a'),
                          "sha256:" + std::string(64, 'A'), "sha256:" + std::string(65, 'a'),
                          "md5:" + std::string(32, 'a'), "sha512:" + std::string(64, 'a'),
                          "sha256:../../" + std::string(58, 'a')}) {
    EXPECT_FALSE(Digest::Parse(bad).ok()) << bad;
  }
}

TEST(Platform, String) {
  EXPECT_EQ((Platform{"linux", "arm64", "v8", "", {}}.String()), "linux/arm64/v8");
  EXPECT_EQ((Platform{"linux", "amd64", "", "", {}}.String()), "linux/amd64");
}

}  // namespace
}  // namespace hoist
