#include "registry/registry.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace hoist::registry
