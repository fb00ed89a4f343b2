#include "content/digester.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace hoist::content {
namespace {

struct Vector {
  const char* algorithm;
  std::string input;
  const char* hex;
};

const std::vector<Vector>& Vectors() {
  static const std::vector<Vector> v = {
      {"sha256", "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
      {"sha256", "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
      {"sha512", "",
       "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce"
       "47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e"},
      {"sha512", "abc",
       "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
       "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"},
  };
  return v;
}

TEST(Digester, KnownVectors) {
  for (const Vector& v : Vectors()) {
    auto d = DigestOf(v.algorithm, v.input);
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    EXPECT_EQ(d->String(), std::string(v.algorithm) + ":" + v.hex) << v.input;
  }
}

TEST(Digester, IncrementalEqualsOneShot) {
  for (const Vector& v : Vectors()) {
    auto d = Digester::New(v.algorithm);
    ASSERT_TRUE(d.ok());
    for (char c : v.input) d->Update(&c, 1);
    Digester moved = std::move(*d);  // movable mid-stream
    EXPECT_EQ(moved.Finish().hex(), v.hex);
  }
  std::string big(1 << 20, 'x');
  auto d = Digester::New("sha256");
  ASSERT_TRUE(d.ok());
  d->Update(big.substr(0, 1000));
  d->Update(big.substr(1000));
  EXPECT_EQ(d->Finish(), *DigestOf("sha256", big));
}

TEST(Digester, RefusesUnknownAlgorithm) {
  for (const char* bad : {"md5", "sha1", "SHA256", ""}) {
    EXPECT_EQ(Digester::New(bad).status().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_FALSE(DigestOf(bad, "abc").ok()) << bad;
  }
}

}  // namespace
}  // namespace hoist::content
