#include "trust/registries_d.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace hoist::trust {
namespace {

using ::testing::HasSubstr;

Reference Ref(const std::string& text) {
  auto r = Reference::Parse(text);
  EXPECT_TRUE(r.ok()) << text;
  return *r;
}

TEST(RegistriesD, MostSpecificNamespaceThatSetsAKey) {
  RegistriesD d;
  ASSERT_TRUE(d.AddFile("a.yaml", R"(
default-docker:
  lookaside: file:///var/sigs
  lookaside-staging: file:///tmp/staging
docker:
  reg.example.com:
    sigstore: https://sigs.example.com/all
  reg.example.com/ns:
    use-sigstore-attachments: true
)")
                  .ok());
  ASSERT_TRUE(d.AddFile("b.yaml", R"(
docker:
  reg.example.com/ns/app:
    lookaside: http://127.0.0.1:8080/app
    use-sigstore-attachments: false
  "*.example.com":
    lookaside: http://wild/
)")
                  .ok());
  struct Case {
    const char* ref;
    const char* lookaside;
    bool attachments;
  };
  const Case cases[] = {
      {"reg.example.com/ns/app:1", "http://127.0.0.1:8080/app", false},
      {"reg.example.com/ns/other:1", "https://sigs.example.com/all", true},
      {"reg.example.com/x:1", "https://sigs.example.com/all", false},
      {"other.example.com/x:1", "http://wild/", false},
      {"quay.io/x:1", "file:///var/sigs", false},
  };
  for (const auto& c : cases) {
    SignatureSources s = d.For(Ref(c.ref));
    EXPECT_EQ(s.lookaside, c.lookaside) << c.ref;
    EXPECT_EQ(s.use_sigstore_attachments, c.attachments) << c.ref;
  }
  EXPECT_THAT(d.For(Ref("reg.example.com/ns/other:1")).attachments_from,
              HasSubstr("docker \"reg.example.com/ns\""));
}

TEST(RegistriesD, BuiltInDefault) {
  RegistriesD d;
  SignatureSources s = d.For(Ref("quay.io/x:1"));
  EXPECT_EQ(s.lookaside_from, "built-in default");
  EXPECT_TRUE(s.lookaside.starts_with("file:///")) << s.lookaside;
}

TEST(RegistriesD, Refused) {
  struct Case {
    const char* yaml;
    const char* message;
  };
  const Case cases[] = {
      {"docker: [1, 2]", "docker is not a mapping"},
      {"default-docker:\n  lookaside: ftp://x\n", "not a file://, http:// or https:// URL"},
      {"default-docker:\n  lookaside: file:///a\n  sigstore: file:///b\n",
       "both lookaside and sigstore"},
      {"docker:\n  a.com:\n    use-sigstore-attachments: maybe\n", "bad conversion"},
      {"docker: {a.com: {lookaside: [", ""},
      {"- 1\n- 2\n", "not a mapping"},
  };
  for (const auto& c : cases) {
    RegistriesD d;
    Status s = d.AddFile("x.yaml", c.yaml);
    EXPECT_FALSE(s.ok()) << c.yaml;
    EXPECT_THAT(s.message(), HasSubstr(c.message)) << c.yaml;
  }
  RegistriesD d;
  ASSERT_TRUE(d.AddFile("a.yaml", "docker:\n  a.com:\n    lookaside: file:///a\n").ok());
  EXPECT_THAT(d.AddFile("b.yaml", "docker:\n  a.com:\n    lookaside: file:///b\n").message(),
              HasSubstr("also set in \"a.yaml\""));
}

TEST(LookasideUrl, Layout) {
  const std::string hex(64, 'd');
  auto digest = Digest::Parse("sha256:" + hex);
  ASSERT_TRUE(digest.ok());
  EXPECT_EQ(LookasideUrl("http://h:1/sigs/", Ref("127.0.0.1:5000/signed/app:1"), *digest, 2),
            "http://h:1/sigs/signed/app@sha256=" + hex + "/signature-2");
  EXPECT_EQ(LookasideUrl("file:///s", Ref("busybox"), *digest, 1),
            "file:///s/library/busybox@sha256=" + hex + "/signature-1");
}

}  // namespace
}  // namespace hoist::trust
