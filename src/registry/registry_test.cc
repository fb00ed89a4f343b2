#include "registry/registry.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>

namespace hoist::registry {
namespace {

HttpResponse Answer(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

// The registry's error code and message reach the user, escaped: no clear-screen, no window
// title, no line forged with a carriage return.
TEST(StatusFromResponse, EscapesWhatTheRegistrySays) {
  Status s = StatusFromResponse(Answer(
      404,
      R"({"errors":[{"code":"MANIFEST_UNKNOWN\u001b[2J","message":"gone\r\nhoist: pull ok \u001b]0;t\u0007 \u009b31m"}]})"));
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.message(),
            "HTTP 404 (MANIFEST_UNKNOWN\\x1b[2J: gone\\x0d\\x0ahoist: pull ok \\x1b]0;t\\x07 "
            "\\u009b31m)");
}

// An error body nested 300 000 deep is ignored like any other body that is not an error list.
TEST(StatusFromResponse, DeepBodyIsIgnored) {
  const std::string deep = std::string(300000, '[') + std::string(300000, ']');
  Status s = StatusFromResponse(
      Answer(500, R"({"errors":[{"code":"X","message":"m"}],"d":)" + deep + "}"));
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_EQ(s.message(), "HTTP 500");
}

// An upload's Location is resolved against the request it answered: relative paths, and
// absolute URLs at the registry itself, keep their query (the registry's upload state).
TEST(PathAtOrigin, ResolvesLocationsAtTheRegistry) {
  const std::string origin = "http://127.0.0.1:5000";
  const std::string post = "/v2/app/blobs/uploads/";
  EXPECT_EQ(*PathAtOrigin(origin, post, "/v2/app/blobs/uploads/u1?_state=abc%3D"),
            "/v2/app/blobs/uploads/u1?_state=abc%3D");
  EXPECT_EQ(*PathAtOrigin(origin, post, "u2?x=1"), "/v2/app/blobs/uploads/u2?x=1");
  EXPECT_EQ(*PathAtOrigin(origin, post, "http://127.0.0.1:5000/v2/app/blobs/uploads/u3"),
            "/v2/app/blobs/uploads/u3");
  EXPECT_EQ(*PathAtOrigin("https://reg.example", "/v2/a/blobs/uploads/x?s=1", "../y"),
            "/v2/a/blobs/y");
}

// Anywhere else is refused: bytes and credentials go to the registry only.
TEST(PathAtOrigin, RefusesOtherOrigins) {
  const std::string origin = "http://127.0.0.1:5000";
  const std::string post = "/v2/app/blobs/uploads/";
  for (const char* location :
       {"http://127.0.0.1:5001/v2/app/blobs/uploads/u", "https://127.0.0.1:5000/v2/u",
        "http://evil.example/v2/app/blobs/uploads/u", "//evil.example/v2/u",
        "http://user:pw@127.0.0.1:5000/v2/u", "ftp://127.0.0.1:5000/v2/u", "file:///etc/passwd",
        ""}) {
    auto r = PathAtOrigin(origin, post, location);
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << location;
  }
  // Before any answer the registry's scheme is unknown: nothing is resolved.
  Authorizer authorizer;
  StaticCredentials none(std::nullopt);
  Registry reg("127.0.0.1:5000", "127.0.0.1:5000", Endpoint{}, &authorizer, &none);
  EXPECT_EQ(reg.UploadPath(post, "/v2/app/blobs/uploads/u").status().code(),
            StatusCode::kInvalidArgument);
}

TEST(WithQuery, AddsAnEncodedParameter) {
  EXPECT_EQ(WithQuery("/v2/a/blobs/uploads/u", "digest", "sha256:ab"),
            "/v2/a/blobs/uploads/u?digest=sha256%3Aab");
  EXPECT_EQ(WithQuery("/v2/a/blobs/uploads/u?_state=x", "digest", "sha256:ab"),
            "/v2/a/blobs/uploads/u?_state=x&digest=sha256%3Aab");
  EXPECT_EQ(WithQuery("/v2/b/blobs/uploads/", "from", "org/a b"),
            "/v2/b/blobs/uploads/?from=org%2Fa%20b");
}

}  // namespace
}  // namespace hoist::registry
