#include <cerrno>

#include <gtest/gtest.h>

#include "base/status_macros.h"
#include "base/strings.h"
#include "hoist/status.h"

namespace hoist {
namespace {

Result<int> Half(int x) {
  if (x % 2) return InvalidArgumentError("odd");
  return x / 2;
}

Result<int> Quarter(int x) {
  ASSIGN_OR_RETURN(int h, Half(x));
  ASSIGN_OR_RETURN(int q, Half(h));
  return q;
}

Status Check(int x) {
  RETURN_IF_ERROR(Quarter(x).status());
  return OkStatus();
}

TEST(Status, ContextIsPrepended) {
  Status s = DataLossError("digest mismatch").WithContext("blob sha256:ab").WithContext("pull x");
  EXPECT_EQ(s.message(), "pull x: blob sha256:ab: digest mismatch");
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_TRUE(OkStatus().WithContext("anything").ok());
}

TEST(Status, MacrosPropagate) {
  EXPECT_EQ(*Quarter(8), 2);
  EXPECT_EQ(Quarter(6).status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Check(4).ok());
  EXPECT_FALSE(Check(2).ok());
}

TEST(Status, ErrnoMapsToCodes) {
  EXPECT_EQ(ErrnoError(ENOSPC, "write").code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(ErrnoError(ENOENT, "open").code(), StatusCode::kNotFound);
  EXPECT_EQ(ErrnoError(EACCES, "open").code(), StatusCode::kPermissionDenied);
  // Local faults are never taken for the network's (Unavailable is what gets retried and
  // what passes a pull over to the next mirror).
  for (int err : {EIO, EINTR, EAGAIN}) {
    EXPECT_NE(ErrnoError(err, "write").code(), StatusCode::kUnavailable) << err;
  }
  EXPECT_NE(ErrnoError(ENOSPC, "write x").message().find("write x: "), std::string::npos);
}

TEST(Strings, Base64RoundTrip) {
  for (std::string s : {"", "a", "ab", "abc", "abcd", "user:pässword"}) {
    std::string back;
    ASSERT_TRUE(Base64Decode(Base64Encode(s), &back));
    EXPECT_EQ(back, s);
  }
  std::string out;
  EXPECT_FALSE(Base64Decode("a*b", &out));
  EXPECT_EQ(UrlEncode("repository:a/b:pull"), "repository%3Aa%2Fb%3Apull");
  EXPECT_EQ(Base64UrlEncode("\xfb\xff\xbf"), "-_-_");
  EXPECT_EQ(Base64UrlEncode("ab"), "YWI");
}

}  // namespace
}  // namespace hoist
