#include "trust/lookaside.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "trust/registries_d.h"

namespace hoist::trust {
namespace {

namespace fs = std::filesystem;

class LookasideTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/hoist-lookaside-test-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
  }
  void TearDown() override { fs::remove_all(dir_); }
  void Put(int n, const std::string& bytes) {
    const std::string url = LookasideUrl("file://" + dir_, ref_, digest_, n);
    const std::string path = url.substr(7);
    fs::create_directories(fs::path(path).parent_path());
    std::ofstream(path, std::ios::binary) << bytes;
  }
  Result<std::vector<std::string>> Fetch() {
    registry::HttpClient http;
    return FetchLookasideSignatures(http, "file://" + dir_, ref_, digest_);
  }

  std::string dir_;
  Reference ref_ = *Reference::Parse("127.0.0.1:5000/signed/app:1");
  Digest digest_ = *Digest::Parse("sha256:" + std::string(64, 'f'));
};

TEST_F(LookasideTest, ReadsUpToTheFirstMissing) {
  auto none = Fetch();
  ASSERT_TRUE(none.ok()) << none.status().message();
  EXPECT_TRUE(none->empty());
  Put(1, "one");
  Put(2, "two");
  Put(4, "four");  // after a gap: not read
  auto got = Fetch();
  ASSERT_TRUE(got.ok()) << got.status().message();
  EXPECT_EQ(*got, (std::vector<std::string>{"one", "two"}));
}

TEST_F(LookasideTest, CountAndSizeAreCapped) {
  for (int i = 1; i <= kMaxSignatures + 5; ++i) Put(i, "s");
  auto got = Fetch();
  ASSERT_TRUE(got.ok()) << got.status().message();
  EXPECT_EQ(got->size(), static_cast<size_t>(kMaxSignatures));
  Put(1, std::string(kMaxSignatureBytes + 1, 'x'));
  got = Fetch();
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), StatusCode::kResourceExhausted);
}

}  // namespace
}  // namespace hoist::trust
