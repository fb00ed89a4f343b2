#include "transport/tar_index.h"

#include <gtest/gtest.h>

#include <fstream>

#include "support/image_builder.h"
#include "support/process.h"

namespace hoist::transport {
namespace {

using hoist::testing::MakeTar;

TEST(NormalizeMemberName, KeepsRelativeNamesOnly) {
  EXPECT_EQ(NormalizeMemberName("./a//b/./c/"), "a/b/c");
  EXPECT_EQ(NormalizeMemberName("manifest.json"), "manifest.json");
  EXPECT_EQ(NormalizeMemberName("/etc/passwd"), "");
  EXPECT_EQ(NormalizeMemberName("a/../../b"), "");
  EXPECT_EQ(NormalizeMemberName(".."), "");
  EXPECT_EQ(NormalizeMemberName(""), "");
}

class TarIndexTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto d = hoist::testing::TempDir::Create("tar-index-test-");
    ASSERT_TRUE(d.ok());
    dir_.emplace(std::move(*d));
  }
  std::string Write(const std::string& bytes) {
    std::string path = dir_->path() + "/a.tar";
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }
  std::optional<hoist::testing::TempDir> dir_;
};

TEST_F(TarIndexTest, ReadsMembersByOffsetInPlaceOrSpooled) {
  const std::string big = hoist::testing::RandomBytes(3 << 20, 1);  // spans several chunks
  const std::string tar = MakeTar({{.path = "d/", .type = '5'},
                                   {.path = "d/big", .content = big},
                                   {.path = "small", .content = "abc"},
                                   {.path = "link", .type = '2', .linkname = "small"}});
  for (bool gzip : {false, true}) {
    auto index = TarIndex::Open(Write(gzip ? hoist::testing::Gzip(tar) : tar), dir_->path());
    ASSERT_TRUE(index.ok()) << index.status().message();
    EXPECT_EQ((*index)->spooled(), gzip);
    auto m = (*index)->Find("./d/big");
    ASSERT_TRUE(m.ok()) << m.status().message();
    EXPECT_EQ((*m)->digest.String(), hoist::testing::Sha256Digest(big));
    auto bytes = (*index)->ReadAll(**m, big.size());
    ASSERT_TRUE(bytes.ok()) << bytes.status().message();
    EXPECT_TRUE(*bytes == big);
    std::string tail;
    ASSERT_TRUE((*index)
                    ->Read(**m, big.size() - 5,
                           [&](const char* d, size_t n) {
                             tail.append(d, n);
                             return OkStatus();
                           })
                    .ok());
    EXPECT_EQ(tail, big.substr(big.size() - 5));
    EXPECT_EQ((*index)->ReadAll(**m, 10).status().code(), StatusCode::kResourceExhausted);
    EXPECT_EQ((*index)->Find("link").status().code(), StatusCode::kDataLoss);
    EXPECT_EQ((*index)->Find("d").status().code(), StatusCode::kDataLoss);
    EXPECT_EQ((*index)->Find("nope").status().code(), StatusCode::kNotFound);
    EXPECT_EQ((*index)->Find("d/../small").status().code(), StatusCode::kInvalidArgument);
  }
}

TEST_F(TarIndexTest, RefusesACorruptArchive) {
  std::string tar = MakeTar({{.path = "a", .content = "x"}});
  tar[150] ^= 1;  // the header checksum
  EXPECT_EQ(TarIndex::Open(Write(tar), dir_->path()).status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(
      TarIndex::Open(Write(hoist::testing::Gzip(tar).substr(0, 20)), dir_->path()).status().code(),
      StatusCode::kDataLoss);
}

// Open refuses what cannot be read back as one range of the archive: a name given twice (the
// same name spelled "./a" too) and a sparse file; a directory given twice is harmless.
TEST_F(TarIndexTest, RefusesDuplicatesAndSparseFilesAtOpen) {
  auto twice = TarIndex::Open(
      Write(MakeTar({{.path = "a", .content = "1"}, {.path = "./a", .content = "2"}})),
      dir_->path());
  EXPECT_EQ(twice.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(twice.status().message().find("\"a\" appears more than once"), std::string::npos)
      << twice.status().message();
  auto dirs = TarIndex::Open(
      Write(MakeTar({{.path = "d/", .type = '5'}, {.path = "./d/", .type = '5'}, {.path = "d/f"}})),
      dir_->path());
  EXPECT_TRUE(dirs.ok()) << dirs.status().message();
  auto sparse = TarIndex::Open(
      Write(MakeTar({hoist::testing::SparseEntry("big", 8193, {{0, "x"}, {8192, "y"}})})),
      dir_->path());
  EXPECT_EQ(sparse.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(sparse.status().message().find("sparse"), std::string::npos)
      << sparse.status().message();
}

TEST_F(TarIndexTest, RefusesADirectoryAsTheArchive) {
  EXPECT_EQ(TarIndex::Open(dir_->path(), dir_->path()).status().code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace hoist::transport
