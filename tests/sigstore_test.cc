// Sigstore attachments end to end against the real docker-registry: signatures attached as
// cosign does (support/cosign.h: keys, payloads and signatures made and checked by the openssl
// command), read back with trust::FetchSigstoreSignatures and checked with
// trust::VerifySigstoreSignature; and attachments that are broken or too large.
#include "trust/sigstore.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>

#include "registry/auth.h"
#include "registry/http.h"
#include "registry/registry.h"
#include "support/cosign.h"
#include "support/image_builder.h"
#include "support/process.h"
#include "support/registry.h"

namespace hoist::trust {
namespace {

using testing::CosignLayer;
using ::testing::HasSubstr;
using testing::kCosignSignatureAnnotation;
using testing::TestRegistry;

class SigstoreRegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!TestRegistry::Available()) GTEST_SKIP() << "docker-registry not installed";
    if (!testing::FindExecutable("openssl")) GTEST_SKIP() << "openssl command not installed";
    auto reg = TestRegistry::Start();
    ASSERT_TRUE(reg.ok()) << reg.status().message();
    registry_ = std::move(*reg);
    auto dir = testing::TempDir::Create("hoist-sigstore-");
    ASSERT_TRUE(dir.ok()) << dir.status().message();
    dir_.emplace(std::move(*dir));
    auto key = testing::MakeCosignKey(dir_->path(), "cosign");
    ASSERT_TRUE(key.ok()) << key.status().message();
    key_ = *key;
    client_ = std::make_unique<registry::Registry>(registry_->host(), registry_->host(),
                                                   registry::Endpoint{true, {}}, &authorizer_,
                                                   &no_credentials_);
  }

  // Pushes a small image to `repo`:`tag`; its manifest digest.
  Digest PushImage(const std::string& repo, const std::string& tag, unsigned seed = 1) {
    testing::BuiltImage img = testing::BuildImage(
        testing::Format::kOci, {{{"etc/data", testing::RandomBytes(1000, seed)}}});
    Status pushed = testing::PushImage(registry_->host(), repo, tag, img);
    EXPECT_TRUE(pushed.ok()) << pushed.message();
    return *Digest::Parse(img.manifest_digest);
  }

  std::string Reference(const std::string& repo) const { return registry_->host() + "/" + repo; }

  Result<std::vector<SigstoreSignature>> Fetch(const std::string& repo, const Digest& d) {
    registry::Repository r(client_.get(), repo);
    return FetchSigstoreSignatures(http_, r, d);
  }

  std::unique_ptr<TestRegistry> registry_;
  std::optional<testing::TempDir> dir_;
  testing::CosignKey key_;
  registry::Authorizer authorizer_;
  registry::StaticCredentials no_credentials_{std::nullopt};
  std::unique_ptr<registry::Registry> client_;
  registry::HttpClient http_;
};

TEST_F(SigstoreRegistryTest, FetchesAndVerifiesAnAttachedSignature) {
  Digest d = PushImage("signed/app", "1");
  ASSERT_TRUE(testing::AttachCosignSignature(registry_->host(), "signed/app", d,
                                             Reference("signed/app"), key_.private_key_path)
                  .ok());

  auto sigs = Fetch("signed/app", d);
  ASSERT_TRUE(sigs.ok()) << sigs.status().message();
  ASSERT_EQ(sigs->size(), 1u);
  EXPECT_EQ((*sigs)[0].payload, testing::CosignPayload(Reference("signed/app"), d.String()));
  // openssl agrees with what was fetched, and so does hoist.
  auto by_openssl =
      testing::OpensslVerify((*sigs)[0].payload, (*sigs)[0].signature_base64, key_.public_key_path);
  ASSERT_TRUE(by_openssl.ok()) << by_openssl.status().message();
  EXPECT_TRUE(*by_openssl);
  auto payload = VerifySigstoreSignature((*sigs)[0], {key_.public_key_pem});
  ASSERT_TRUE(payload.ok()) << payload.status().message();
  EXPECT_EQ(*payload, (*sigs)[0].payload);

  // A second signature, by another key, is appended to the same attachment, as cosign does.
  auto other = testing::MakeCosignKey(dir_->path(), "other");
  ASSERT_TRUE(other.ok()) << other.status().message();
  ASSERT_TRUE(testing::AttachCosignSignature(registry_->host(), "signed/app", d,
                                             Reference("signed/app"), other->private_key_path)
                  .ok());
  sigs = Fetch("signed/app", d);
  ASSERT_TRUE(sigs.ok()) << sigs.status().message();
  ASSERT_EQ(sigs->size(), 2u);
  EXPECT_TRUE(VerifySigstoreSignature((*sigs)[0], {key_.public_key_pem}).ok());
  EXPECT_FALSE(VerifySigstoreSignature((*sigs)[0], {other->public_key_pem}).ok());
  EXPECT_TRUE(VerifySigstoreSignature((*sigs)[1], {other->public_key_pem}).ok());
  EXPECT_FALSE(VerifySigstoreSignature((*sigs)[1], {key_.public_key_pem}).ok());
}

// The attachment belongs to one digest: another image in the same repository has none, and
// neither has a repository that does not exist.
TEST_F(SigstoreRegistryTest, NoAttachmentIsNoSignature) {
  Digest signed_digest = PushImage("signed/app", "1", 1);
  Digest unsigned_digest = PushImage("signed/app", "2", 2);
  ASSERT_TRUE(testing::AttachCosignSignature(registry_->host(), "signed/app", signed_digest,
                                             Reference("signed/app"), key_.private_key_path)
                  .ok());
  auto sigs = Fetch("signed/app", unsigned_digest);
  ASSERT_TRUE(sigs.ok()) << sigs.status().message();
  EXPECT_TRUE(sigs->empty());
  sigs = Fetch("nothing/here", signed_digest);
  ASSERT_TRUE(sigs.ok()) << sigs.status().message();
  EXPECT_TRUE(sigs->empty());
  sigs = Fetch("signed/app", signed_digest);
  ASSERT_TRUE(sigs.ok()) << sigs.status().message();
  EXPECT_EQ(sigs->size(), 1u);
}

// Layers of other media types (attestations, SBOMs) and signature layers without the key-based
// signature annotation (keyless ones carry only certificates) are passed over, unfetched.
TEST_F(SigstoreRegistryTest, OtherLayersArePassedOver) {
  Digest d = PushImage("signed/app", "1");
  CosignLayer attestation{"{\"payloadType\":\"x\"}",
                          {{kCosignSignatureAnnotation, "MEUCIQ=="}},
                          "application/vnd.dsse.envelope.v1+json"};
  CosignLayer keyless{"{\"critical\":{}}", {{"dev.sigstore.cosign/certificate", "PEM"}}};
  ASSERT_TRUE(
      testing::AttachCosignLayers(registry_->host(), "signed/app", d, {attestation, keyless}).ok());
  ASSERT_TRUE(testing::AttachCosignSignature(registry_->host(), "signed/app", d,
                                             Reference("signed/app"), key_.private_key_path)
                  .ok());
  auto sigs = Fetch("signed/app", d);
  ASSERT_TRUE(sigs.ok()) << sigs.status().message();
  ASSERT_EQ(sigs->size(), 1u);
  EXPECT_TRUE(VerifySigstoreSignature((*sigs)[0], {key_.public_key_pem}).ok());
  EXPECT_EQ(registry_->CountRequests("GET", testing::Sha256Digest(attestation.payload)), 0);
  EXPECT_EQ(registry_->CountRequests("GET", testing::Sha256Digest(keyless.payload)), 0);
}

// A payload blob whose bytes are not those its descriptor names is an error, whether it keeps
// its length or not.
TEST_F(SigstoreRegistryTest, PayloadNotMatchingItsDigestIsAnError) {
  Digest d = PushImage("signed/app", "1");
  ASSERT_TRUE(testing::AttachCosignSignature(registry_->host(), "signed/app", d,
                                             Reference("signed/app"), key_.private_key_path)
                  .ok());
  const std::string payload = testing::CosignPayload(Reference("signed/app"), d.String());
  const std::string data = registry_->BlobDataPath(*Digest::Parse(testing::Sha256Digest(payload)));
  for (std::string forged :
       {std::string(payload).replace(payload.find("signed/app"), 10, "signed/evl"),
        payload + "  "}) {
    ASSERT_EQ(forged.size() == payload.size(), forged != payload + "  ");
    {
      std::ofstream out(data, std::ios::binary | std::ios::trunc);
      out << forged;
      ASSERT_TRUE(out.good());
    }
    auto sigs = Fetch("signed/app", d);
    EXPECT_EQ(sigs.status().code(), StatusCode::kDataLoss) << sigs.status().message();
    EXPECT_THAT(sigs.status().message(), HasSubstr(SigstoreAttachmentTag(d)));
  }
}

TEST_F(SigstoreRegistryTest, TooManyLayersIsAnError) {
  Digest d = PushImage("signed/app", "1");
  std::vector<CosignLayer> layers;
  for (size_t i = 0; i < kMaxSigstoreLayers; ++i) {
    layers.push_back({"{\"n\":" + std::to_string(i) + "}", {{kCosignSignatureAnnotation, "AA=="}}});
  }
  ASSERT_TRUE(testing::AttachCosignLayers(registry_->host(), "signed/app", d, layers).ok());
  auto sigs = Fetch("signed/app", d);
  ASSERT_TRUE(sigs.ok()) << sigs.status().message();
  EXPECT_EQ(sigs->size(), kMaxSigstoreLayers);

  ASSERT_TRUE(testing::AttachCosignLayers(registry_->host(), "signed/app", d,
                                          {{"{}", {{kCosignSignatureAnnotation, "AA=="}}}})
                  .ok());
  sigs = Fetch("signed/app", d);
  EXPECT_EQ(sigs.status().code(), StatusCode::kResourceExhausted) << sigs.status().message();
  EXPECT_THAT(sigs.status().message(), HasSubstr("65 layers"));
}

// A payload over 4 MiB is refused from its descriptor, before its bytes are fetched.
TEST_F(SigstoreRegistryTest, OversizePayloadIsAnError) {
  Digest d = PushImage("signed/app", "1");
  const std::string big = testing::CosignPayload(Reference("signed/app"), d.String()) +
                          std::string(kMaxSigstorePayloadBytes, ' ');
  auto b64 = testing::OpensslSign(big, key_.private_key_path);
  ASSERT_TRUE(b64.ok()) << b64.status().message();
  ASSERT_TRUE(testing::AttachCosignLayers(registry_->host(), "signed/app", d,
                                          {{big, {{kCosignSignatureAnnotation, *b64}}}})
                  .ok());
  auto sigs = Fetch("signed/app", d);
  EXPECT_EQ(sigs.status().code(), StatusCode::kResourceExhausted) << sigs.status().message();
  EXPECT_THAT(sigs.status().message(), HasSubstr("payload of"));
  EXPECT_EQ(registry_->CountRequests("GET", testing::Sha256Digest(big)), 0);
}

// Payloads that are each under the cap but together over the total are refused before the one
// that crosses it is fetched.
TEST_F(SigstoreRegistryTest, OversizePayloadsTogetherAreAnError) {
  Digest d = PushImage("signed/app", "1");
  std::vector<CosignLayer> layers;
  for (char c : std::string("abcde")) {
    layers.push_back(
        {std::string(kMaxSigstorePayloadBytes, c), {{kCosignSignatureAnnotation, "AA=="}}});
  }
  ASSERT_TRUE(testing::AttachCosignLayers(registry_->host(), "signed/app", d, layers).ok());
  auto sigs = Fetch("signed/app", d);
  EXPECT_EQ(sigs.status().code(), StatusCode::kResourceExhausted) << sigs.status().message();
  EXPECT_THAT(sigs.status().message(), HasSubstr("in all"));
  EXPECT_EQ(registry_->CountRequests("GET", testing::Sha256Digest(layers[4].payload)), 0);
}

TEST_F(SigstoreRegistryTest, OversizeSignatureAnnotationIsAnError) {
  Digest d = PushImage("signed/app", "1");
  ASSERT_TRUE(
      testing::AttachCosignLayers(registry_->host(), "signed/app", d,
                                  {{"{}",
                                    {{kCosignSignatureAnnotation,
                                      std::string(kMaxSigstoreSignatureBase64Bytes + 1, 'A')}}}})
          .ok());
  auto sigs = Fetch("signed/app", d);
  EXPECT_EQ(sigs.status().code(), StatusCode::kResourceExhausted) << sigs.status().message();
  EXPECT_THAT(sigs.status().message(), HasSubstr("signature annotation over"));
}

// The tag must name an OCI image manifest, as cosign writes it: a Docker manifest or an index
// under the tag is an error, not an empty list.
TEST_F(SigstoreRegistryTest, AttachmentOfAnotherTypeIsAnError) {
  Digest d = PushImage("signed/app", "1");
  testing::BuiltImage docker = testing::BuildImage(testing::Format::kDocker, {{{"a", "b"}}});
  ASSERT_TRUE(
      testing::PushImage(registry_->host(), "signed/app", SigstoreAttachmentTag(d), docker).ok());
  auto sigs = Fetch("signed/app", d);
  EXPECT_EQ(sigs.status().code(), StatusCode::kDataLoss) << sigs.status().message();
  EXPECT_THAT(sigs.status().message(), HasSubstr("not an OCI image manifest"));
}

// containers/image (skopeo) reads cosign attachments and writes its own when
// use-sigstore-attachments is set, even where its sigstore signing and verification are
// disabled (Debian's skopeo 1.9). A copy by skopeo carries the signature to another
// repository in an attachment skopeo wrote itself, which hoist reads and verifies.
TEST_F(SigstoreRegistryTest, ReadsTheAttachmentSkopeoWrites) {
  if (!testing::SkopeoAvailable()) GTEST_SKIP() << "skopeo not installed";
  Digest d = PushImage("signed/app", "1");
  ASSERT_TRUE(testing::AttachCosignSignature(registry_->host(), "signed/app", d,
                                             Reference("signed/app"), key_.private_key_path)
                  .ok());
  const std::string registries_d = dir_->path() + "/registries.d";
  const std::string policy = dir_->path() + "/policy.json";
  std::filesystem::create_directories(registries_d);
  {
    std::ofstream(registries_d + "/test.yaml")
        << "docker:\n  " << registry_->host() << ":\n    use-sigstore-attachments: true\n";
    std::ofstream(policy) << R"({"default":[{"type":"insecureAcceptAnything"}]})";
  }
  auto copied = testing::RunCommand(
      {"skopeo", "copy", "--policy", policy, "--registries.d", registries_d,
       "--src-tls-verify=false", "--dest-tls-verify=false",
       "docker://" + Reference("signed/app") + ":1", "docker://" + Reference("copy/app") + ":1"},
      120);
  ASSERT_TRUE(copied.ok()) << copied.status().message();

  auto sigs = Fetch("copy/app", d);
  ASSERT_TRUE(sigs.ok()) << sigs.status().message();
  ASSERT_EQ(sigs->size(), 1u);
  // The payload still names the repository it was signed for: checking that identity against
  // the reference pulled is the policy's job.
  EXPECT_EQ((*sigs)[0].payload, testing::CosignPayload(Reference("signed/app"), d.String()));
  auto payload = VerifySigstoreSignature((*sigs)[0], {key_.public_key_pem});
  EXPECT_TRUE(payload.ok()) << payload.status().message();
}

// The attachment is read with the registry's own credentials, like the image itself.
TEST_F(SigstoreRegistryTest, ReadsWithTheRegistrysCredentials) {
  testing::RegistryOptions opts;
  opts.auth = testing::RegistryOptions::Auth::kHtpasswd;
  opts.user = "alice";
  opts.password = "s3cret";
  auto locked = TestRegistry::Start(opts);
  ASSERT_TRUE(locked.ok()) << locked.status().message();
  const std::string host = (*locked)->host();
  testing::BuiltImage img =
      testing::BuildImage(testing::Format::kOci, {{{"etc/data", testing::RandomBytes(100, 7)}}});
  ASSERT_TRUE(testing::PushImage(host, "signed/app", "1", img, "alice:s3cret").ok());
  Digest d = *Digest::Parse(img.manifest_digest);
  Status attached = testing::AttachCosignSignature(host, "signed/app", d, host + "/signed/app",
                                                   key_.private_key_path, "alice:s3cret");
  ASSERT_TRUE(attached.ok()) << attached.message();

  registry::StaticCredentials alice(registry::Credential{"alice", "s3cret", ""});
  registry::Registry with_creds(host, host, registry::Endpoint{true, {}}, &authorizer_, &alice);
  registry::Repository repo(&with_creds, "signed/app");
  auto sigs = FetchSigstoreSignatures(http_, repo, d);
  ASSERT_TRUE(sigs.ok()) << sigs.status().message();
  ASSERT_EQ(sigs->size(), 1u);
  EXPECT_TRUE(VerifySigstoreSignature((*sigs)[0], {key_.public_key_pem}).ok());

  // Without them the registry's refusal is an error, not "no signatures".
  registry::Registry no_creds(host, host, registry::Endpoint{true, {}}, &authorizer_,
                              &no_credentials_);
  registry::Repository refused(&no_creds, "signed/app");
  sigs = FetchSigstoreSignatures(http_, refused, d);
  EXPECT_EQ(sigs.status().code(), StatusCode::kUnauthenticated) << sigs.status().message();
}

}  // namespace
}  // namespace hoist::trust
