#include "trust/policy.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>

namespace hoist::trust {
namespace {

using ::testing::HasSubstr;

Reference Ref(const std::string& text) {
  auto r = Reference::Parse(text);
  EXPECT_TRUE(r.ok()) << text;
  return *r;
}

TEST(ParsePolicy, Valid) {
  auto p = ParsePolicy(R"({
    "default": [{"type": "reject"}],
    "transports": {
      "docker": {
        "127.0.0.1:5000/signed": [{"type": "signedBy", "keyType": "GPGKeys",
                                   "keyPath": "/k.gpg"}],
        "docker.io/library/busybox:1": [{"type": "insecureAcceptAnything"}],
        "*.example.com": [{"type": "sigstoreSigned", "keyData": "UEVN",
                           "signedIdentity": {"type": "matchRepository"}}],
        "": [{"type": "reject"}]
      },
      "docker-daemon": {"": [{"type": "insecureAcceptAnything"}]}
    }})",
                       "/p.json");
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->default_requirements.size(), 1u);
  EXPECT_EQ(p->docker_scopes.size(), 4u);
  const auto& signed_by = p->docker_scopes.at("127.0.0.1:5000/signed")[0];
  EXPECT_EQ(signed_by.type, Requirement::Type::kSignedBy);
  EXPECT_EQ(signed_by.key_paths, std::vector<std::string>{"/k.gpg"});
  EXPECT_EQ(signed_by.identity.kind, SignedIdentity::Kind::kMatchRepoDigestOrExact);
  const auto& sigstore = p->docker_scopes.at("*.example.com")[0];
  EXPECT_EQ(sigstore.key_data, "PEM");
  EXPECT_EQ(sigstore.identity.kind, SignedIdentity::Kind::kMatchRepository);
}

// Every policy that containers/image refuses is an error here too, never a looser policy.
TEST(ParsePolicy, Refused) {
  struct Case {
    const char* json;
    const char* message;
  };
  const Case cases[] = {
      {R"({})", "no \"default\""},
      {R"({"default": []})", "no requirements"},
      {R"({"default": [{"type": "reject"}], "extra": 1})", "unknown field \"extra\""},
      {R"({"default": [{"type": "acceptAll"}]})", "unknown requirement type \"acceptAll\""},
      {R"({"default": [{"type": "reject", "keyPath": "/x"}]})", "unknown field \"keyPath\""},
      {R"({"default": [{"type": "signedBy", "keyType": "X509Certificates", "keyPath": "/k"}]})",
       "keyType \"X509Certificates\" is not supported"},
      {R"({"default": [{"type": "signedBy", "keyPath": "/k"}]})", "missing field \"keyType\""},
      {R"({"default": [{"type": "signedBy", "keyType": "GPGKeys"}]})", "exactly one of keyPath"},
      {R"({"default": [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/k",
            "keyData": "AA=="}]})",
       "exactly one of keyPath"},
      {R"({"default": [{"type": "signedBy", "keyType": "GPGKeys", "keyData": "!!"}]})",
       "keyData is not base64"},
      {R"({"default": [{"type": "signedBy", "keyType": "GPGKeys", "keyPaths": []}]})",
       "keyPaths is not a list"},
      {R"({"default": [{"type": "sigstoreSigned", "fulcio": {}}]})", "\"fulcio\" is not supported"},
      {R"({"default": [{"type": "sigstoreSigned", "keyPath": "/k",
            "signedIdentity": {"type": "matchAnything"}}]})",
       "unknown signedIdentity type \"matchAnything\""},
      {R"({"default": [{"type": "sigstoreSigned", "keyPath": "/k",
            "signedIdentity": {"type": "exactReference", "dockerReference": "docker.io/a/b"}}]})",
       "is not a name with a tag or digest"},
      {R"({"default": [{"type": "sigstoreSigned", "keyPath": "/k",
            "signedIdentity": {"type": "remapIdentity", "prefix": "example.com/a"}}]})",
       "missing field \"signedPrefix\""},
      {R"({"default": [{"type": "sigstoreSigned", "keyPath": "/k",
            "signedIdentity": {"type": "matchExact", "dockerReference": "a:1"}}]})",
       "unknown field \"dockerReference\""},
      {R"([1])", "not a JSON object"},
      {R"({"default": )", "not valid JSON"},
  };
  for (const auto& c : cases) {
    auto p = ParsePolicy(c.json, "/p.json");
    ASSERT_FALSE(p.ok()) << c.json;
    EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument) << c.json;
    EXPECT_THAT(p.status().message(), HasSubstr(c.message)) << c.json;
    EXPECT_THAT(p.status().message(), HasSubstr("\"/p.json\"")) << c.json;
  }
}

// Like containers/image, any scope is accepted; one not written in full never matches.
TEST(ParsePolicy, ScopesAreNotNormalized) {
  auto p = ParsePolicy(R"({"default": [{"type": "insecureAcceptAnything"}],
      "transports": {"docker": {"busybox": [{"type": "reject"}]}}})",
                       "/p.json");
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(RequirementsFor(*p, Ref("busybox")).scope, "default");
}

TEST(PolicyNamespaces, MostSpecificFirst) {
  EXPECT_EQ(PolicyIdentity(Ref("127.0.0.1:5000/signed/app:1")), "127.0.0.1:5000/signed/app:1");
  EXPECT_EQ(PolicyNamespaces(Ref("127.0.0.1:5000/signed/app:1")),
            (std::vector<std::string>{"127.0.0.1:5000/signed/app", "127.0.0.1:5000/signed",
                                      "127.0.0.1:5000", "*.0.0.1", "*.0.1", "*.1"}));
  EXPECT_EQ(PolicyNamespaces(Ref("busybox")),
            (std::vector<std::string>{"docker.io/library/busybox", "docker.io/library", "docker.io",
                                      "*.io"}));
  const std::string d = "sha256:" + std::string(64, 'a');
  EXPECT_EQ(PolicyIdentity(Ref("a.example.com/x@" + d)), "a.example.com/x@" + d);
}

TEST(RequirementsFor, MostSpecificScopeWins) {
  auto p = ParsePolicy(R"({
    "default": [{"type": "reject"}],
    "transports": {"docker": {
      "reg.example.com/ns/app:1": [{"type": "insecureAcceptAnything"}],
      "reg.example.com/ns/app": [{"type": "reject"}, {"type": "reject"}],
      "reg.example.com/ns": [{"type": "insecureAcceptAnything"}, {"type": "reject"},
                             {"type": "reject"}],
      "reg.example.com": [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/k"}],
      "*.example.com": [{"type": "sigstoreSigned", "keyPath": "/k"}],
      "*.com": [{"type": "insecureAcceptAnything"}, {"type": "insecureAcceptAnything"}]
    }}})",
                       "/p.json");
  ASSERT_TRUE(p.ok()) << p.status().message();
  struct Case {
    const char* ref;
    const char* scope;
  };
  const Case cases[] = {
      {"reg.example.com/ns/app:1", "docker:\"reg.example.com/ns/app:1\""},
      {"reg.example.com/ns/app:2", "docker:\"reg.example.com/ns/app\""},
      {"reg.example.com/ns/other:1", "docker:\"reg.example.com/ns\""},
      {"reg.example.com/nsx/app:1", "docker:\"reg.example.com\""},
      {"reg.example.com:5000/ns/app:1", "docker:\"*.example.com\""},
      {"sub.reg.example.com/a:1", "docker:\"*.example.com\""},
      {"other.com/a:1", "docker:\"*.com\""},
      {"quay.io/a:1", "default"},
  };
  for (const auto& c : cases) EXPECT_EQ(RequirementsFor(*p, Ref(c.ref)).scope, c.scope) << c.ref;
  p->docker_scopes[""] = {Requirement{Requirement::Type::kInsecureAcceptAnything, {}, "", {}}};
  EXPECT_EQ(RequirementsFor(*p, Ref("quay.io/a:1")).scope, "docker:\"\"");
}

SignedIdentity Id(SignedIdentity::Kind kind) {
  SignedIdentity id;
  id.kind = kind;
  return id;
}

TEST(IdentityMatches, Rules) {
  using Kind = SignedIdentity::Kind;
  const std::string d = "sha256:" + std::string(64, 'b');
  SignedIdentity exact_ref{Kind::kExactReference, "example.com/other:9", "", "", ""};
  SignedIdentity exact_repo{Kind::kExactRepository, "", "example.com/other", "", ""};
  SignedIdentity remap{Kind::kRemapIdentity, "", "", "mirror.local/ns", "example.com/ns"};
  struct Case {
    SignedIdentity identity;
    std::string intended;
    std::string signed_for;
    bool match;
  };
  const Case cases[] = {
      // matchRepoDigestOrExact: a tag must match exactly, a digest only by repository.
      {Id(Kind::kMatchRepoDigestOrExact), "example.com/app:1", "example.com/app:1", true},
      {Id(Kind::kMatchRepoDigestOrExact), "example.com/app:1", "example.com/app:2", false},
      {Id(Kind::kMatchRepoDigestOrExact), "example.com/app:1", "example.com/app", false},
      {Id(Kind::kMatchRepoDigestOrExact), "example.com/app:1", "example.com/other:1", false},
      {Id(Kind::kMatchRepoDigestOrExact), "example.com/app@" + d, "example.com/app:7", true},
      {Id(Kind::kMatchRepoDigestOrExact), "example.com/app@" + d, "example.com/other:7", false},
      {Id(Kind::kMatchRepoDigestOrExact), "busybox:1", "docker.io/library/busybox:1", true},
      {Id(Kind::kMatchRepoDigestOrExact), "example.com/app:1", "not a reference", false},
      // matchExact: digests too must be equal.
      {Id(Kind::kMatchExact), "example.com/app:1", "example.com/app:1", true},
      {Id(Kind::kMatchExact), "example.com/app@" + d, "example.com/app:1", false},
      {Id(Kind::kMatchExact), "example.com/app@" + d, "example.com/app@" + d, true},
      // matchRepository: any tag of the repository.
      {Id(Kind::kMatchRepository), "example.com/app:1", "example.com/app:2", true},
      {Id(Kind::kMatchRepository), "example.com/app:1", "example.com/app", true},
      {Id(Kind::kMatchRepository), "example.com/app:1", "example.com/app2:1", false},
      // exactReference / exactRepository ignore the reference pulled.
      {exact_ref, "example.com/app:1", "example.com/other:9", true},
      {exact_ref, "example.com/app:1", "example.com/app:1", false},
      {exact_repo, "example.com/app:1", "example.com/other:3", true},
      {exact_repo, "example.com/app:1", "example.com/app:1", false},
      // remapIdentity: the prefix is replaced on a '/' boundary, then matchRepoDigestOrExact.
      {remap, "mirror.local/ns/app:1", "example.com/ns/app:1", true},
      {remap, "mirror.local/ns/app:1", "mirror.local/ns/app:1", false},
      {remap, "mirror.local/nsx/app:1", "mirror.local/nsx/app:1", true},
      {remap, "mirror.local/nsx/app:1", "example.com/nsx/app:1", false},
      {remap, "mirror.local/ns/app@" + d, "example.com/ns/app:5", true},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(IdentityMatches(c.identity, Ref(c.intended), c.signed_for), c.match)
        << c.intended << " signed for " << c.signed_for;
  }
}

TEST(DescribeRequirement, NamesKeysAndIdentity) {
  auto p = ParsePolicy(R"({"default": [{"type": "signedBy", "keyType": "GPGKeys",
      "keyPaths": ["/a", "/b"], "signedIdentity": {"type": "remapIdentity",
      "prefix": "m.local", "signedPrefix": "example.com"}}]})",
                       "/p.json");
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(DescribeRequirement(p->default_requirements[0]),
            "signedBy keyType=GPGKeys keyPath=\"/a\" keyPath=\"/b\" "
            "signedIdentity=remapIdentity(\"m.local\" -> \"example.com\")");
}

}  // namespace
}  // namespace hoist::trust

namespace hoist::trust {
namespace {

TEST(LoadPolicy, GivenFileMustExistAndBeSmall) {
  char dir[] = "/tmp/hoist-policy-test-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string d = dir;
  auto missing = LoadPolicy(d + "/missing.json");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), ::testing::HasSubstr("missing.json"));

  FILE* f = fopen((d + "/big.json").c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::string big(kMaxPolicyBytes + 1, ' ');
  fwrite(big.data(), 1, big.size(), f);
  fclose(f);
  auto too_big = LoadPolicy(d + "/big.json");
  ASSERT_FALSE(too_big.ok());
  EXPECT_EQ(too_big.status().code(), StatusCode::kResourceExhausted);

  f = fopen((d + "/ok.json").c_str(), "w");
  ASSERT_NE(f, nullptr);
  fputs(R"({"default": [{"type": "reject"}]})", f);
  fclose(f);
  auto ok = LoadPolicy(d + "/ok.json");
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  ASSERT_TRUE(ok->has_value());
  EXPECT_EQ((*ok)->path, d + "/ok.json");
  std::filesystem::remove_all(d);
}

}  // namespace
}  // namespace hoist::trust
