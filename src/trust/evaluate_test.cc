#include "trust/evaluate.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace hoist::trust {
namespace {

using ::testing::HasSubstr;

class FakeSource : public SignatureSource {
 public:
  std::vector<std::string> simple;
  int calls = 0;
  Result<std::vector<std::string>> SimpleSignatures(const Digest&) override {
    ++calls;
    return simple;
  }
  Result<std::vector<SigstoreSignature>> SigstoreSignatures(const Digest&) override {
    ++calls;
    return std::vector<SigstoreSignature>{{"payload", "c2ln"}};
  }
};

struct Fixture {
  Reference ref = *Reference::Parse("127.0.0.1:5000/signed/app:1");
  Digest digest = *Digest::Parse("sha256:" + std::string(64, 'e'));
};

Policy Parse(const std::string& json) {
  auto p = ParsePolicy(json, "/p.json");
  EXPECT_TRUE(p.ok()) << p.status().message();
  return *p;
}

TEST(Evaluate, AcceptAndRejectNeedNoSignatures) {
  Fixture f;
  FakeSource source;
  Policy accept = Parse(R"({"default": [{"type": "insecureAcceptAnything"}]})");
  EXPECT_FALSE(NeedsSignatures(accept, f.ref));
  EXPECT_TRUE(Evaluate(accept, f.ref, f.digest, "{}", source).ok());
  Policy reject = Parse(R"({"default": [{"type": "insecureAcceptAnything"}],
      "transports": {"docker": {"127.0.0.1:5000/signed": [{"type": "reject"}]}}})");
  Status s = Evaluate(reject, f.ref, f.digest, "{}", source);
  EXPECT_EQ(s.code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(
      s.message(),
      "signature policy for \"127.0.0.1:5000/signed/app:1\" (docker:\"127.0.0.1:5000/signed\" "
      "in \"/p.json\"): reject: rejected by policy");
  EXPECT_EQ(source.calls, 0);
}

TEST(Evaluate, EveryRequirementMustPass) {
  Fixture f;
  FakeSource source;
  Policy p = Parse(R"({"default": [{"type": "insecureAcceptAnything"}, {"type": "reject"}]})");
  EXPECT_THAT(Evaluate(p, f.ref, f.digest, "{}", source).message(),
              HasSubstr("rejected by policy"));
}

TEST(Evaluate, SignedByWithoutSignatures) {
  Fixture f;
  FakeSource source;
  Policy p = Parse(R"({"default": [{"type": "signedBy", "keyType": "GPGKeys",
      "keyPath": "/nonexistent/key.gpg"}]})");
  EXPECT_TRUE(NeedsSignatures(p, f.ref));
  Status s = Evaluate(p, f.ref, f.digest, "{}", source);
  EXPECT_EQ(s.code(), StatusCode::kPermissionDenied);
  EXPECT_THAT(s.message(), HasSubstr("default in \"/p.json\"): signedBy: no signature"));
  EXPECT_EQ(source.calls, 1);
}

TEST(Evaluate, UnusableKeysRefuseTheImage) {
  Fixture f;
  FakeSource source;
  source.simple = {"not a signature"};
  Policy missing = Parse(R"({"default": [{"type": "signedBy", "keyType": "GPGKeys",
      "keyPath": "/nonexistent/key.gpg"}]})");
  Status s = Evaluate(missing, f.ref, f.digest, "{}", source);
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("/nonexistent/key.gpg"));
  Policy not_a_key = Parse(R"({"default": [{"type": "signedBy", "keyType": "GPGKeys",
      "keyData": "bm90IGEga2V5"}]})");
  s = Evaluate(not_a_key, f.ref, f.digest, "{}", source);
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("no public key"));
}

// Whatever the sigstore side answers that is not a verified payload refuses the image.
TEST(Evaluate, SigstoreFailureRefuses) {
  Fixture f;
  FakeSource source;
  Policy p = Parse(R"({"default": [{"type": "sigstoreSigned", "keyData": "UEVN"}]})");
  EXPECT_FALSE(Evaluate(p, f.ref, f.digest, "{}", source).ok());
}

}  // namespace
}  // namespace hoist::trust
