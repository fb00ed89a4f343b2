#include "registry/auth.h"

#include <gtest/gtest.h>

#include "base/strings.h"
#include "registry/registry.h"

namespace hoist::registry {
namespace {

TEST(ParseChallenges, BearerWithQuotedParams) {
  auto c = ParseChallenges(
      {R"(Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull")"});
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].scheme, "bearer");
  EXPECT_EQ(c[0].params["realm"], "https://auth.example/token");
  EXPECT_EQ(c[0].params["service"], "registry.example");
  EXPECT_EQ(c[0].params["scope"], "repository:a/b:pull");
}

TEST(ParseChallenges, SeveralChallengesInOneValueAndSeveralLines) {
  auto c = ParseChallenges({R"(Basic realm="x y", Bearer realm="https://t/",error="invalid_token")",
                            "Negotiate", R"(Basic realm=unquoted)"});
  ASSERT_EQ(c.size(), 4u);
  EXPECT_EQ(c[0].scheme, "basic");
  EXPECT_EQ(c[0].params["realm"], "x y");
  EXPECT_EQ(c[1].scheme, "bearer");
  EXPECT_EQ(c[1].params["realm"], "https://t/");
  EXPECT_EQ(c[1].params["error"], "invalid_token");
  EXPECT_EQ(c[2].scheme, "negotiate");
  EXPECT_TRUE(c[2].params.empty());
  EXPECT_EQ(c[3].params["realm"], "unquoted");
}

TEST(ParseChallenges, EscapesAndOddSpacing) {
  auto c = ParseChallenges({R"(  bEaReR   Realm = "a\"b" ,, SERVICE="s" )"});
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].scheme, "bearer");
  EXPECT_EQ(c[0].params["realm"], "a\"b");
  EXPECT_EQ(c[0].params["service"], "s");
}

TEST(ParseChallenges, Token68BeforeBearerOrBasic) {
  // A token68 (with its "=" padding) is the whole of its challenge: what follows the comma is
  // the next challenge, not a parameter of this one.
  auto c = ParseChallenges(
      {R"(Negotiate abc==, Bearer realm="https://auth.example/token",service="reg")"});
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].scheme, "negotiate");
  EXPECT_EQ(c[0].token68, "abc==");
  EXPECT_TRUE(c[0].params.empty());
  EXPECT_EQ(c[1].scheme, "bearer");
  EXPECT_EQ(c[1].params["realm"], "https://auth.example/token");
  EXPECT_EQ(c[1].params["service"], "reg");

  c = ParseChallenges({"NTLM TlRMTVNTUAABAAAAB4IIAAAAAAAAAAAAAAAAAAAAAAA=, Basic realm=\"r\""});
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].token68, "TlRMTVNTUAABAAAAB4IIAAAAAAAAAAAAAAAAAAAAAAA=");
  EXPECT_EQ(c[1].scheme, "basic");
  EXPECT_EQ(c[1].params["realm"], "r");

  c = ParseChallenges({"Negotiate a+/b.c_d~e-f", "Basic realm=x, Bearer realm=\"https://t/\""});
  ASSERT_EQ(c.size(), 3u);
  EXPECT_EQ(c[0].token68, "a+/b.c_d~e-f");
  EXPECT_EQ(c[1].scheme, "basic");
  EXPECT_EQ(c[1].token68, "");
  EXPECT_EQ(c[1].params["realm"], "x");
  EXPECT_EQ(c[2].scheme, "bearer");
  EXPECT_EQ(c[2].params["realm"], "https://t/");
}

TEST(ParseChallenges, JunkInOneChallengeDoesNotHideTheNext) {
  auto c = ParseChallenges(
      {R"(Weird realm="a" @@junk@@, Bearer realm="https://t/")", R"(@@@, Basic realm="b")"});
  ASSERT_EQ(c.size(), 3u);
  EXPECT_EQ(c[0].scheme, "weird");
  EXPECT_EQ(c[1].scheme, "bearer");
  EXPECT_EQ(c[1].params["realm"], "https://t/");
  EXPECT_EQ(c[2].scheme, "basic");
  EXPECT_EQ(c[2].params["realm"], "b");
}

TEST(ParseChallenges, GarbageDoesNotHang) {
  for (std::string s : {"", ",,,", "\"", "=", "Bearer realm=\"unterminated", "Bearer ===", "@@@"}) {
    ParseChallenges({s});  // must return
  }
  EXPECT_TRUE(ParseChallenges({""}).empty());
}

TEST(Authorizer, FindsBasicBehindANegotiateToken68) {
  StaticCredentials creds(Credential{"alice", "pw", ""});
  Authorizer authorizer;
  HttpResponse r;
  r.status = 401;
  r.headers["www-authenticate"] = {R"(Negotiate abc==, Basic realm="registry")"};
  HttpClient http;  // not used: a basic challenge needs no request
  Status s =
      authorizer.OnUnauthorized("reg.example", creds, "reg.example", RealmTls{}, "", r, http);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(authorizer.HeaderFor("reg.example", creds, ""),
            "Authorization: Basic " + Base64Encode("alice:pw"));
  EXPECT_EQ(authorizer.HeaderFor("other.example", creds, ""), "");
  // Another source (a mirror's configured credentials) on the same host gets none of it.
  StaticCredentials other(std::nullopt);
  EXPECT_EQ(authorizer.HeaderFor("reg.example", other, ""), "");
}

TEST(Credentials, UserPassword) {
  auto c = StaticCredentials::ParseUserPassword("user:pa:ss");
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(c->has_value());
  EXPECT_EQ((*c)->username, "user");
  EXPECT_EQ((*c)->password, "pa:ss");
  EXPECT_FALSE(StaticCredentials::ParseUserPassword("nocolon").ok());
  EXPECT_FALSE(StaticCredentials::ParseUserPassword(":pw").ok());
  EXPECT_FALSE(StaticCredentials::ParseUserPassword("")->has_value());
}

TEST(Hosts, Loopback) {
  for (std::string h :
       {"localhost", "localhost:5000", "127.0.0.1", "127.1.2.3:80", "[::1]:5000", "[::1]"}) {
    EXPECT_TRUE(IsLoopbackHost(h)) << h;
  }
  for (std::string h : {"127.0.0.1.example.com", "128.0.0.1", "example.com", "[::2]:5000",
                        "localhost.example", "127.0.0.256", "10.0.0.1:5000"}) {
    EXPECT_FALSE(IsLoopbackHost(h)) << h;
  }
}

TEST(Hosts, UrlParts) {
  EXPECT_EQ(UrlAuthority("http://127.0.0.1:5000/v2/"), "127.0.0.1:5000");
  EXPECT_EQ(UrlAuthority("https://cdn.example/x?y"), "cdn.example");
  EXPECT_EQ(UrlHostname("http://127.0.0.1:5000/v2/"), "127.0.0.1");
  EXPECT_EQ(UrlHostname("http://[::1]:5000/v2/"), "[::1]");
  EXPECT_EQ(UrlAuthority("not a url"), "");
}

TEST(StatusFromResponse, MapsCodesAndRegistryErrors) {
  HttpResponse r;
  r.status = 404;
  r.body = R"({"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]})";
  Status s = StatusFromResponse(r);
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "HTTP 404 (MANIFEST_UNKNOWN: manifest unknown)");
  r.status = 503;
  r.body = "<html>";
  EXPECT_EQ(StatusFromResponse(r).code(), StatusCode::kUnavailable);
  r.status = 401;
  EXPECT_EQ(StatusFromResponse(r).code(), StatusCode::kUnauthenticated);
  r.status = 403;
  EXPECT_EQ(StatusFromResponse(r).code(), StatusCode::kPermissionDenied);
}

}  // namespace
}  // namespace hoist::registry
