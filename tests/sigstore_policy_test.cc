// sigstoreSigned policies end to end: cosign-format signatures made for the test (an ECDSA
// P-256 key, the simple-signing payload, the signature and the "sha256-<hex>.sig" attachment,
// each signature made and checked by the openssl command: support/cosign.h), images in the real
// docker-registry, and a policy that requires signatures by one key for
// 127.0.0.1:PORT/signed/* and rejects everything else. An image refused is never recorded.
// cosign signs the repository without a tag, so the policy matches the repository
// (signedIdentity matchRepository), as containers-policy.json(5) advises for cosign signatures.
//
// Debian's skopeo 1.9 is built with sigstore disabled: under a sigstoreSigned policy it refuses
// every image ("sigstore disabled"), so its verdicts are not compared here; the last test
// records that refusal for the table of cases.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include "hoist/client.h"
#include "support/cosign.h"
#include "support/image_builder.h"
#include "support/process.h"
#include "support/registry.h"

namespace hoist {
namespace {

namespace fs = std::filesystem;
using testing::CosignKey;
using testing::CosignLayer;
using ::testing::HasSubstr;
using testing::kCosignSignatureAnnotation;

class SigstorePolicyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing::TestRegistry::Available()) GTEST_SKIP() << "docker-registry not installed";
    if (!testing::FindExecutable("openssl")) GTEST_SKIP() << "openssl command not installed";
    auto reg = testing::TestRegistry::Start();
    ASSERT_TRUE(reg.ok()) << reg.status().message();
    registry_ = std::move(*reg);
    auto dir = testing::TempDir::Create("hoist-sigstore-policy-");
    ASSERT_TRUE(dir.ok()) << dir.status().message();
    dir_.emplace(std::move(*dir));
    auto key = testing::MakeCosignKey(Dir(), "trusted");
    ASSERT_TRUE(key.ok()) << key.status().message();
    key_ = *key;
    auto other = testing::MakeCosignKey(Dir(), "other");
    ASSERT_TRUE(other.ok()) << other.status().message();
    other_ = *other;
    fs::create_directories(Dir() + "/registries.d");
    UseAttachments(true);
    std::ofstream(Dir() + "/policy.json")
        << R"({"default": [{"type": "reject"}], "transports": {"docker": {")" << Host()
        << R"(/signed": [{"type": "sigstoreSigned", "keyPath": ")" << key_.public_key_path
        << R"(", "signedIdentity": {"type": "matchRepository"}}]}}})";
  }

  void UseAttachments(bool on) {
    std::ofstream(Dir() + "/registries.d/signed.yaml")
        << "docker:\n  " << Host() << ":\n    use-sigstore-attachments: " << (on ? "true" : "false")
        << "\n";
  }

  std::string Host() const { return registry_->host(); }
  std::string Dir() const { return dir_->path(); }

  // Pushes a one-file image (`content`) to repo:tag; its manifest digest.
  Digest Push(const std::string& repo, const std::string& tag, const std::string& content) {
    testing::BuiltImage img = testing::BuildImage(testing::Format::kOci, {{{"file", content}}});
    Status pushed = testing::PushImage(Host(), repo, tag, img);
    EXPECT_TRUE(pushed.ok()) << pushed.message();
    return *Digest::Parse(img.manifest_digest);
  }

  // The signature of CosignPayload(identity, digest) by `key`, made and checked by openssl.
  static CosignLayer Sign(const std::string& identity, const Digest& d, const CosignKey& key) {
    const std::string payload = testing::CosignPayload(identity, d.String());
    auto b64 = testing::OpensslSign(payload, key.private_key_path);
    EXPECT_TRUE(b64.ok()) << b64.status().message();
    return {payload, {{kCosignSignatureAnnotation, b64.ok() ? *b64 : ""}}};
  }
  // What `openssl dgst -sha256 -verify` says of `sig` with the trusted key.
  bool OpensslAccepts(const CosignLayer& sig) const {
    auto v = testing::OpensslVerify(sig.payload, sig.annotations.at(kCosignSignatureAnnotation),
                                    key_.public_key_path);
    EXPECT_TRUE(v.ok()) << v.status().message();
    return v.ok() && *v;
  }
  void Attach(const std::string& repo, const Digest& d, const std::vector<CosignLayer>& sigs) {
    Status s = testing::AttachCosignLayers(Host(), repo, d, sigs);
    ASSERT_TRUE(s.ok()) << s.message();
  }

  struct Verdict {
    bool accepted = false;
    std::string message;
  };
  // Pulls `ref` under the policy; a refused image must not be recorded.
  Verdict Pull(const std::string& ref) {
    ClientOptions o;
    o.store_dir = Dir() + "/store";
    o.signature_policy = Dir() + "/policy.json";
    o.registries_d = Dir() + "/registries.d";
    auto client = Client::Open(o);
    if (!client.ok()) return {false, client.status().message()};
    auto image = (*client)->Pull(ref);
    if (image.ok()) return {true, ""};
    auto images = (*client)->Images();
    EXPECT_TRUE(images.ok());
    if (images.ok()) {
      for (const auto& s : *images) EXPECT_NE(s.reference, ref) << "a refused image is recorded";
    }
    return {false, image.status().message()};
  }

  std::unique_ptr<testing::TestRegistry> registry_;
  std::optional<testing::TempDir> dir_;
  CosignKey key_, other_;
};

TEST_F(SigstorePolicyTest, AcceptsAndRefusesEveryCase) {
  const std::string h = Host();
  // signed by the trusted key for its repository.
  Digest app = Push("signed/app", "1", "app");
  CosignLayer good = Sign(h + "/signed/app", app, key_);
  ASSERT_TRUE(OpensslAccepts(good));
  Attach("signed/app", app, {good});
  // one good signature among others is enough.
  Digest several = Push("signed/several", "1", "several");
  Attach(
      "signed/several", several,
      {Sign(h + "/signed/several", several, other_), Sign(h + "/signed/several", several, key_)});
  // unsigned.
  Push("signed/unsigned", "1", "unsigned");
  // signed by a key the policy does not name.
  Digest stranger = Push("signed/stranger", "1", "stranger");
  CosignLayer by_stranger = Sign(h + "/signed/stranger", stranger, other_);
  ASSERT_FALSE(OpensslAccepts(by_stranger));
  Attach("signed/stranger", stranger, {by_stranger});
  // signed for another identity: a valid signature, only the identity is wrong.
  Digest identity = Push("signed/identity", "1", "identity");
  CosignLayer elsewhere = Sign(h + "/signed/elsewhere", identity, key_);
  ASSERT_TRUE(OpensslAccepts(elsewhere));
  Attach("signed/identity", identity, {elsewhere});
  // tampered signature: one base64 character of it changed.
  Digest tampered = Push("signed/tampered", "1", "tampered");
  CosignLayer bad_sig = Sign(h + "/signed/tampered", tampered, key_);
  {
    std::string& b64 = bad_sig.annotations[kCosignSignatureAnnotation];
    b64[b64.size() / 2] = b64[b64.size() / 2] == 'A' ? 'B' : 'A';
  }
  ASSERT_FALSE(OpensslAccepts(bad_sig));
  Attach("signed/tampered", tampered, {bad_sig});
  // tampered payload: the signature of a payload for another repository, attached with a
  // payload naming this one.
  Digest altered = Push("signed/altered", "1", "altered");
  CosignLayer bad_payload = Sign(h + "/signed/elsewhere", altered, key_);
  bad_payload.payload = testing::CosignPayload(h + "/signed/altered", altered.String());
  ASSERT_FALSE(OpensslAccepts(bad_payload));
  Attach("signed/altered", altered, {bad_payload});
  // replayed: app's valid signature attached to another image of the repository, pulled by
  // digest (so that the identity, the repository, matches).
  Digest other = Push("signed/app", "other", "other");
  Attach("signed/app", other, {good});
  // moved: signed, then the tag pushed again with other content.
  Digest before = Push("signed/moved", "1", "moved-before");
  ASSERT_TRUE(testing::AttachCosignSignature(h, "signed/moved", before, h + "/signed/moved",
                                             key_.private_key_path)
                  .ok());
  Push("signed/moved", "1", "moved-after");
  // outside the signed namespace, though signed: the default, reject.
  Digest outside = Push("other/app", "1", "app");
  Attach("other/app", outside, {Sign(h + "/other/app", outside, key_)});

  struct Case {
    std::string name, ref;
    bool accepted;
    std::string reason;
  };
  const std::vector<Case> cases = {
      {"signed image", h + "/signed/app:1", true, ""},
      {"signed image by digest", h + "/signed/app@" + app.String(), true, ""},
      {"one of several signatures", h + "/signed/several:1", true, ""},
      {"unsigned image", h + "/signed/unsigned:1", false, "sigstoreSigned: no signature"},
      {"signed by another key", h + "/signed/stranger:1", false, "signature by unknown key"},
      {"signed for another identity", h + "/signed/identity:1", false,
       "identity mismatch: signed for \"" + h + "/signed/elsewhere\""},
      {"tampered signature", h + "/signed/tampered:1", false, "signature by unknown key"},
      {"tampered payload", h + "/signed/altered:1", false, "signature by unknown key"},
      {"signature replayed onto another digest", h + "/signed/app@" + other.String(), false,
       "signed for another digest"},
      {"tag moved after signing", h + "/signed/moved:1", false, "no signature"},
      {"outside the signed scope", h + "/other/app:1", false, "reject: rejected by policy"},
  };
  std::string table = "case | hoist pull\n";
  for (const auto& c : cases) {
    Verdict v = Pull(c.ref);
    EXPECT_EQ(v.accepted, c.accepted) << c.name << ": " << v.message;
    if (!c.accepted) {
      EXPECT_THAT(v.message, HasSubstr(c.reason)) << c.name;
      EXPECT_THAT(v.message, HasSubstr(c.ref)) << c.name;
      EXPECT_EQ(v.message.find('\n'), std::string::npos) << c.name;
    }
    table += c.name + " | " + (v.accepted ? "accepted" : "refused (" + c.reason + ")") + "\n";
  }
  std::cout << table;
}

// Without use-sigstore-attachments in registries.d the attachments are not read, as in
// containers/image: a signed image has no signature, and no attachment is asked for.
TEST_F(SigstorePolicyTest, AttachmentsAreReadOnlyWhenEnabled) {
  Digest d = Push("signed/app", "1", "app");
  ASSERT_TRUE(testing::AttachCosignSignature(Host(), "signed/app", d, Host() + "/signed/app",
                                             key_.private_key_path)
                  .ok());
  UseAttachments(false);
  const std::string tag = d.algorithm() + "-" + d.hex() + ".sig";
  const int before = registry_->CountRequests("GET", tag);
  Verdict v = Pull(Host() + "/signed/app:1");
  EXPECT_FALSE(v.accepted);
  EXPECT_THAT(v.message, HasSubstr("no signature"));
  EXPECT_EQ(registry_->CountRequests("GET", tag), before);
  UseAttachments(true);
  v = Pull(Host() + "/signed/app:1");
  EXPECT_TRUE(v.accepted) << v.message;
}

// Debian's skopeo cannot check sigstoreSigned at all: the table's skopeo column says why.
TEST_F(SigstorePolicyTest, SkopeoHasSigstoreDisabled) {
  if (!testing::SkopeoAvailable()) GTEST_SKIP() << "skopeo not installed";
  Digest d = Push("signed/app", "1", "app");
  ASSERT_TRUE(testing::AttachCosignSignature(Host(), "signed/app", d, Host() + "/signed/app",
                                             key_.private_key_path)
                  .ok());
  auto r =
      testing::RunCommand({"skopeo", "copy", "--policy", Dir() + "/policy.json", "--registries.d",
                           Dir() + "/registries.d", "--src-tls-verify=false",
                           "docker://" + Host() + "/signed/app:1", "dir:" + Dir() + "/skopeo-out"},
                          120);
  if (r.ok()) GTEST_SKIP() << "this skopeo verifies sigstore: compare its verdicts too";
  EXPECT_THAT(r.status().message(), HasSubstr("sigstore disabled"));
}

}  // namespace
}  // namespace hoist
