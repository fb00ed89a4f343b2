#include "trust/sigstore.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <optional>
#include <string>

#include "support/cosign.h"
#include "support/process.h"

namespace hoist::trust {
namespace {

using testing::CosignKey;
using ::testing::HasSubstr;

constexpr char kDigest[] =
    "sha256:8d6f1c3c1c7e5a0e1bd0b2e7f0e5cba7d49a6e3a3b0e6b5b7f9e2c4d1a0b3c5d";

// Keys made with the openssl command in a directory shared by the tests of this file; each
// signature the tests use is made and checked by the openssl command (support/cosign.h).
class SigstoreVerifyTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!testing::FindExecutable("openssl")) return;
    auto dir = testing::TempDir::Create("hoist-sigstore-keys-");
    ASSERT_TRUE(dir.ok()) << dir.status().message();
    dir_.emplace(std::move(*dir));
    auto key = testing::MakeCosignKey(dir_->path(), "cosign");
    ASSERT_TRUE(key.ok()) << key.status().message();
    key_ = *key;
    auto other = testing::MakeCosignKey(dir_->path(), "other");
    ASSERT_TRUE(other.ok()) << other.status().message();
    other_ = *other;
  }
  static void TearDownTestSuite() { dir_.reset(); }
  void SetUp() override {
    if (!dir_) GTEST_SKIP() << "openssl command not installed";
  }

  static SigstoreSignature Sign(const std::string& payload, const CosignKey& key) {
    auto b64 = testing::OpensslSign(payload, key.private_key_path);
    EXPECT_TRUE(b64.ok()) << b64.status().message();
    return {payload, b64.ok() ? *b64 : ""};
  }
  // What the openssl command says of `sig` with `key`'s public key.
  static bool OpensslAccepts(const SigstoreSignature& sig, const CosignKey& key) {
    auto v = testing::OpensslVerify(sig.payload, sig.signature_base64, key.public_key_path);
    EXPECT_TRUE(v.ok()) << v.status().message();
    return v.ok() && *v;
  }

  static inline std::optional<testing::TempDir> dir_;
  static inline CosignKey key_, other_;
};

TEST_F(SigstoreVerifyTest, AcceptsSignatureByAConfiguredKey) {
  const std::string payload = testing::CosignPayload("127.0.0.1:5000/signed/app", kDigest);
  SigstoreSignature sig = Sign(payload, key_);
  ASSERT_TRUE(OpensslAccepts(sig, key_));

  auto got = VerifySigstoreSignature(sig, {key_.public_key_pem});
  ASSERT_TRUE(got.ok()) << got.status().message();
  EXPECT_EQ(*got, payload);
  // Any one of several keys will do, wherever it is in the list.
  got = VerifySigstoreSignature(sig, {other_.public_key_pem, key_.public_key_pem});
  ASSERT_TRUE(got.ok()) << got.status().message();
  EXPECT_EQ(*got, payload);
  // So will a key text holding several keys.
  got = VerifySigstoreSignature(sig, {other_.public_key_pem + key_.public_key_pem});
  ASSERT_TRUE(got.ok()) << got.status().message();
}

TEST_F(SigstoreVerifyTest, RefusesSignatureByAnotherKey) {
  SigstoreSignature sig = Sign(testing::CosignPayload("127.0.0.1:5000/signed/app", kDigest), key_);
  ASSERT_FALSE(OpensslAccepts(sig, other_));

  auto got = VerifySigstoreSignature(sig, {other_.public_key_pem});
  EXPECT_EQ(got.status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(got.status().message(), "signature by unknown key");
}

TEST_F(SigstoreVerifyTest, RefusesTamperedPayload) {
  const std::string payload = testing::CosignPayload("127.0.0.1:5000/signed/app", kDigest);
  SigstoreSignature sig = Sign(payload, key_);
  // The same signature over a payload naming another repository, and one with a byte added.
  for (std::string tampered :
       {testing::CosignPayload("127.0.0.1:5000/signed/evil", kDigest), payload + " "}) {
    SigstoreSignature bad{tampered, sig.signature_base64};
    ASSERT_FALSE(OpensslAccepts(bad, key_));
    auto got = VerifySigstoreSignature(bad, {key_.public_key_pem});
    EXPECT_EQ(got.status().code(), StatusCode::kPermissionDenied) << tampered;
    EXPECT_THAT(got.status().message(), HasSubstr("signature by unknown key"));
  }
}

TEST_F(SigstoreVerifyTest, RefusesTamperedSignature) {
  SigstoreSignature sig = Sign(testing::CosignPayload("127.0.0.1:5000/signed/app", kDigest), key_);
  // Change one base64 character in the middle (the DER's r or s value).
  SigstoreSignature bad = sig;
  char& c = bad.signature_base64[bad.signature_base64.size() / 2];
  c = (c == 'A') ? 'B' : 'A';
  ASSERT_FALSE(OpensslAccepts(bad, key_));
  auto got = VerifySigstoreSignature(bad, {key_.public_key_pem});
  EXPECT_EQ(got.status().code(), StatusCode::kPermissionDenied);

  // A signature cut short.
  bad = sig;
  bad.signature_base64.resize(bad.signature_base64.size() - 8);
  got = VerifySigstoreSignature(bad, {key_.public_key_pem});
  EXPECT_EQ(got.status().code(), StatusCode::kPermissionDenied);
}

TEST_F(SigstoreVerifyTest, RefusesGarbageBase64) {
  const std::string payload = testing::CosignPayload("127.0.0.1:5000/signed/app", kDigest);
  for (std::string garbage : {std::string(""), std::string("not base64 at all!"),
                              std::string("MEUCIQ*="), std::string("====")}) {
    auto got = VerifySigstoreSignature({payload, garbage}, {key_.public_key_pem});
    EXPECT_EQ(got.status().code(), StatusCode::kPermissionDenied) << garbage;
    EXPECT_THAT(got.status().message(), HasSubstr("invalid signature")) << garbage;
  }
  // Valid base64 of bytes that are no DER signature at all.
  auto got = VerifySigstoreSignature({payload, "aGVsbG8gd29ybGQ="}, {key_.public_key_pem});
  EXPECT_EQ(got.status().code(), StatusCode::kPermissionDenied);
}

// The caps hold even for signatures that would verify: a signed payload over 4 MiB, and a
// valid signature padded with whitespace past 64 KiB.
TEST_F(SigstoreVerifyTest, RefusesOversizeInput) {
  const std::string big = testing::CosignPayload("127.0.0.1:5000/signed/app", kDigest) +
                          std::string(kMaxSigstorePayloadBytes, ' ');
  SigstoreSignature sig = Sign(big, key_);
  ASSERT_TRUE(OpensslAccepts(sig, key_));
  auto got = VerifySigstoreSignature(sig, {key_.public_key_pem});
  EXPECT_EQ(got.status().code(), StatusCode::kPermissionDenied);
  EXPECT_THAT(got.status().message(), HasSubstr("invalid signature: payload over"));

  const std::string payload = testing::CosignPayload("127.0.0.1:5000/signed/app", kDigest);
  sig = Sign(payload, key_);
  SigstoreSignature padded{payload, sig.signature_base64 + "\n"};
  ASSERT_TRUE(VerifySigstoreSignature(padded, {key_.public_key_pem}).ok());
  padded.signature_base64 += std::string(kMaxSigstoreSignatureBase64Bytes, ' ');
  got = VerifySigstoreSignature(padded, {key_.public_key_pem});
  EXPECT_EQ(got.status().code(), StatusCode::kPermissionDenied);
  EXPECT_THAT(got.status().message(), HasSubstr("invalid signature: over"));
}

// Keys of other types OpenSSL reads from PEM: RSA (PKCS#1 v1.5, SHA-256) and Ed25519.
TEST_F(SigstoreVerifyTest, AcceptsOtherKeyTypes) {
  const std::string payload = testing::CosignPayload("127.0.0.1:5000/signed/app", kDigest);
  for (const auto& [name, args] : std::vector<std::pair<std::string, std::vector<std::string>>>{
           {"rsa", {"-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"}},
           {"ed25519", {"-algorithm", "ED25519"}}}) {
    auto key = testing::MakeKey(dir_->path(), name, args);
    ASSERT_TRUE(key.ok()) << key.status().message();
    SigstoreSignature sig = Sign(payload, *key);
    ASSERT_TRUE(OpensslAccepts(sig, *key)) << name;
    auto got = VerifySigstoreSignature(sig, {key->public_key_pem});
    EXPECT_TRUE(got.ok()) << name << ": " << got.status().message();
    got = VerifySigstoreSignature(sig, {key_.public_key_pem});
    EXPECT_EQ(got.status().code(), StatusCode::kPermissionDenied) << name;
    got = VerifySigstoreSignature({payload + "x", sig.signature_base64}, {key->public_key_pem});
    EXPECT_EQ(got.status().code(), StatusCode::kPermissionDenied) << name;
  }
}

TEST_F(SigstoreVerifyTest, UnreadableKeyIsAnError) {
  SigstoreSignature sig = Sign(testing::CosignPayload("127.0.0.1:5000/signed/app", kDigest), key_);
  auto got = VerifySigstoreSignature(sig, {});
  EXPECT_EQ(got.status().code(), StatusCode::kInvalidArgument);
  got = VerifySigstoreSignature(sig, {key_.public_key_pem, "-----BEGIN PUBLIC KEY-----\nxx\n"});
  EXPECT_EQ(got.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(got.status().message(), HasSubstr("public key 1"));
  got = VerifySigstoreSignature(sig, {"not a key"});
  EXPECT_EQ(got.status().code(), StatusCode::kInvalidArgument);
  // A private key is no public key.
  std::ifstream in(key_.private_key_path);
  std::string private_pem((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_NE(private_pem.find("PRIVATE KEY"), std::string::npos);
  got = VerifySigstoreSignature(sig, {private_pem});
  EXPECT_EQ(got.status().code(), StatusCode::kInvalidArgument);
}

TEST(SigstoreAttachmentTag, IsAlgorithmDashHexDotSig) {
  auto d = Digest::Parse(kDigest);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(SigstoreAttachmentTag(*d),
            "sha256-8d6f1c3c1c7e5a0e1bd0b2e7f0e5cba7d49a6e3a3b0e6b5b7f9e2c4d1a0b3c5d.sig");
}

}  // namespace
}  // namespace hoist::trust
