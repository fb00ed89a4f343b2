// Signature policy end to end: GPG keys made for the test in a private GNUPGHOME, images pushed
// to the real docker-registry, signed by skopeo (--sign-by) into a lookaside directory served
// over loopback, and a policy that requires signatures for 127.0.0.1:PORT/signed/* and rejects
// everything else. For every case hoist's verdict is compared with `skopeo copy`'s under the
// same policy and registries.d.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "hoist/client.h"
#include "support/http_server.h"
#include "support/image_builder.h"
#include "support/process.h"
#include "support/registry.h"

namespace hoist {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing::WriteFile;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

testing::BuiltImage Image(const std::string& content) {
  return testing::BuildImage(testing::Format::kOci, {{{"file", content}}});
}

// One GPG key in its own GNUPGHOME: its fingerprint and its exported public key file.
struct GpgKey {
  std::string home, fingerprint, public_key_path;
};

Result<GpgKey> MakeKey(const std::string& dir, const std::string& name) {
  GpgKey key{dir + "/gnupg-" + name, "", dir + "/" + name + ".gpg"};
  fs::create_directories(key.home);
  fs::permissions(key.home, fs::perms::owner_all, fs::perm_options::replace);
  auto made = testing::RunCommand(
      {"gpg", "--homedir", key.home, "--batch", "--passphrase", "", "--quick-gen-key",
       name + " <" + name + "@example.invalid>", "default", "default", "never"},
      60);
  if (!made.ok()) return made.status();
  auto list = testing::RunCommand(
      {"gpg", "--homedir", key.home, "--batch", "--with-colons", "--list-keys"}, 30);
  if (!list.ok()) return list.status();
  std::istringstream lines(*list);
  for (std::string line; std::getline(lines, line);) {
    if (line.starts_with("fpr:")) {
      key.fingerprint = line.substr(0, line.size() - 1);
      key.fingerprint = key.fingerprint.substr(key.fingerprint.rfind(':') + 1);
      break;
    }
  }
  if (key.fingerprint.empty()) return InternalError("no fingerprint in " + *list);
  auto exported = testing::RunCommand({"gpg", "--homedir", key.home, "--batch", "--output",
                                       key.public_key_path, "--export", key.fingerprint},
                                      30);
  if (!exported.ok()) return exported.status();
  return key;
}

void StopAgent(const GpgKey& key) {
  (void)testing::RunCommand({"gpgconf", "--homedir", key.home, "--kill", "all"}, 30);
}

class SignatureTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!testing::TestRegistry::Available() || !testing::SkopeoAvailable() ||
        !testing::FindExecutable("gpg")) {
      return;
    }
    auto dir = testing::TempDir::Create("hoist-signature-");
    ASSERT_TRUE(dir.ok());
    dir_ = new testing::TempDir(std::move(*dir));
    const std::string d = dir_->path();
    auto key = MakeKey(d, "signer");
    ASSERT_TRUE(key.ok()) << key.status().message();
    signer_ = new GpgKey(*key);
    key = MakeKey(d, "stranger");
    ASSERT_TRUE(key.ok()) << key.status().message();
    stranger_ = new GpgKey(*key);
    auto reg = testing::TestRegistry::Start();
    ASSERT_TRUE(reg.ok()) << reg.status().message();
    registry_ = reg->release();
    fs::create_directories(d + "/sigs");
    fs::create_directories(d + "/registries.d");
    // The lookaside store over loopback: a file of sigs/ per GET, 404 for anything else.
    auto server = testing::FixtureServer::Start([](const testing::HttpRequest& r) {
      testing::HttpResponse out;
      const std::string path = dir_->path() + "/sigs" + r.target;
      if (r.method != "GET" || r.target.find("..") != std::string::npos ||
          !fs::is_regular_file(path)) {
        out.status = 404;
        return out;
      }
      out.body = ReadFile(path);
      return out;
    });
    ASSERT_TRUE(server.ok()) << server.status().message();
    lookaside_ = server->release();
    ASSERT_TRUE(WriteFile(d + "/registries.d/signed.yaml",
                          "docker:\n  " + registry_->host() +
                              ":\n    lookaside: " + lookaside_->url() +
                              "\n    lookaside-staging: file://" + d + "/sigs\n")
                    .ok());
    ASSERT_TRUE(WriteFile(d + "/policy.json",
                          R"({"default": [{"type": "reject"}], "transports": {"docker": {")" +
                              registry_->host() +
                              R"(/signed": [{"type": "signedBy", "keyType": "GPGKeys",
                                 "keyPath": ")" +
                              signer_->public_key_path + R"("}]}}})")
                    .ok());
    ASSERT_TRUE(
        WriteFile(d + "/accept.json", R"({"default": [{"type": "insecureAcceptAnything"}]})").ok());
  }

  static void TearDownTestSuite() {
    if (signer_ != nullptr) StopAgent(*signer_);
    if (stranger_ != nullptr) StopAgent(*stranger_);
    delete lookaside_;
    delete registry_;
    delete signer_;
    delete stranger_;
    delete dir_;
    lookaside_ = nullptr;
    registry_ = nullptr;
    signer_ = stranger_ = nullptr;
    dir_ = nullptr;
  }

  void SetUp() override {
    if (dir_ == nullptr) GTEST_SKIP() << "docker-registry, skopeo or gpg not installed";
  }

  static std::string Host() { return registry_->host(); }
  static std::string Dir() { return dir_->path(); }

  // Pushes `img` to REPO:TAG through skopeo, signing it with `key` (and `identity` when given)
  // into the lookaside staging directory, as a publisher would.
  static void PushSigned(const testing::BuiltImage& img, const std::string& repo_tag,
                         const GpgKey& key, const std::string& identity = "") {
    const std::string layout = Dir() + "/layout-" + img.manifest_digest.substr(7, 12);
    ASSERT_TRUE(testing::WriteOciLayout(layout, "v", img).ok());
    std::vector<std::string> argv = {"env",
                                     "GNUPGHOME=" + key.home,
                                     "skopeo",
                                     "--policy",
                                     Dir() + "/accept.json",
                                     "copy",
                                     "--registries.d",
                                     Dir() + "/registries.d",
                                     "--dest-tls-verify=false",
                                     "--sign-by",
                                     key.fingerprint};
    if (!identity.empty()) {
      argv.push_back("--sign-identity");
      argv.push_back(identity);
    }
    argv.push_back("oci:" + layout + ":v");
    argv.push_back("docker://" + Host() + "/" + repo_tag);
    auto out = testing::RunCommand(argv, 120);
    ASSERT_TRUE(out.ok()) << out.status().message();
    ASSERT_TRUE(
        fs::exists(SignaturePath(repo_tag.substr(0, repo_tag.find(':')), img.manifest_digest)))
        << "skopeo stored no signature for " << repo_tag;
  }

  // `skopeo standalone-sign`: a signature of `manifest` for `identity`, stored in the
  // lookaside directory of `repo` at the manifest's digest.
  static void StandaloneSign(const std::string& manifest, const std::string& digest,
                             const std::string& repo, const std::string& identity,
                             const GpgKey* key = nullptr) {
    if (key == nullptr) key = signer_;
    const std::string file = Dir() + "/manifest-" + digest.substr(7, 12) + ".json";
    ASSERT_TRUE(WriteFile(file, manifest).ok());
    const std::string sig = SignaturePath(repo, digest);
    fs::create_directories(fs::path(sig).parent_path());
    auto out = testing::RunCommand({"env", "GNUPGHOME=" + key->home, "skopeo", "standalone-sign",
                                    file, identity, key->fingerprint, "-o", sig},
                                   60);
    ASSERT_TRUE(out.ok()) << out.status().message();
  }

  static std::string SignaturePath(const std::string& repo, const std::string& digest, int n = 1) {
    std::string alg_hex = digest;
    alg_hex[alg_hex.find(':')] = '=';
    return Dir() + "/sigs/" + repo + "@" + alg_hex + "/signature-" + std::to_string(n);
  }

  struct Verdict {
    bool accepted = false;
    std::string message;
  };

  Result<std::unique_ptr<Client>> OpenClient(const std::string& policy) {
    ClientOptions o;
    o.store_dir = Dir() + "/store";
    o.signature_policy = policy;
    o.registries_d = Dir() + "/registries.d";
    return Client::Open(o);
  }

  // `ref` must not have been pulled before: a refused image must not be recorded.
  Verdict HoistPull(const std::string& ref, const std::string& policy = "",
                    bool recorded_before = false) {
    auto client = OpenClient(policy.empty() ? Dir() + "/policy.json" : policy);
    if (!client.ok()) return {false, client.status().message()};
    PullOptions options;
    options.platform = "linux/amd64";
    auto image = (*client)->Pull(ref, options);
    if (image.ok()) return {true, ""};
    if (!recorded_before) {
      auto images = (*client)->Images();
      EXPECT_TRUE(images.ok());
      for (const auto& s : *images) EXPECT_NE(s.reference, ref) << "a refused image is recorded";
    }
    return {false, image.status().message()};
  }

  // `hoist copy docker://REF oci:DIR:x`: the same policy, a source that is not the store.
  Verdict HoistCopy(const std::string& ref) {
    auto client = OpenClient(Dir() + "/policy.json");
    if (!client.ok()) return {false, client.status().message()};
    const std::string out = Dir() + "/copy-out";
    fs::remove_all(out);
    auto digest = (*client)->Copy("docker://" + ref, "oci:" + out + ":x");
    if (!digest.ok()) {
      EXPECT_FALSE(fs::exists(out + "/index.json") &&
                   ReadFile(out + "/index.json").find("\"x\"") != std::string::npos)
          << "a refused copy wrote its image";
    }
    return {digest.ok(), digest.ok() ? "" : digest.status().message()};
  }

  Verdict SkopeoCopy(const std::string& ref) {
    const std::string out = Dir() + "/skopeo-out";
    fs::remove_all(out);
    auto r = testing::RunCommand(
        {"skopeo", "copy", "--policy", Dir() + "/policy.json", "--registries.d",
         Dir() + "/registries.d", "--src-tls-verify=false", "docker://" + ref, "dir:" + out},
        120);
    return {r.ok(), r.ok() ? "" : r.status().message()};
  }

  static testing::TempDir* dir_;
  static GpgKey* signer_;
  static GpgKey* stranger_;
  static testing::TestRegistry* registry_;
  static testing::FixtureServer* lookaside_;
};

testing::TempDir* SignatureTest::dir_ = nullptr;
GpgKey* SignatureTest::signer_ = nullptr;
GpgKey* SignatureTest::stranger_ = nullptr;
testing::TestRegistry* SignatureTest::registry_ = nullptr;
testing::FixtureServer* SignatureTest::lookaside_ = nullptr;

TEST_F(SignatureTest, HoistAndSkopeoAgreeOnEveryCase) {
  const std::string h = Host();
  // signed: skopeo pushes and signs.
  testing::BuiltImage app = Image("app");
  PushSigned(app, "signed/app:1", *signer_);
  // unsigned: pushed without a signature.
  ASSERT_TRUE(testing::PushImage(h, "signed/unsigned", "1", Image("unsigned")).ok());
  // signed by a key the policy does not name.
  PushSigned(Image("stranger"), "signed/stranger:1", *stranger_);
  // signed for another identity.
  PushSigned(Image("identity"), "signed/identity:1", *signer_, h + "/signed/elsewhere:1");
  // tampered: one byte of the signature's last packet changed.
  testing::BuiltImage tampered = Image("tampered");
  PushSigned(tampered, "signed/tampered:1", *signer_);
  {
    const std::string path = SignaturePath("signed/tampered", tampered.manifest_digest);
    std::string sig = ReadFile(path);
    ASSERT_GT(sig.size(), 20u);
    sig[sig.size() - 10] ^= 0x01;
    ASSERT_TRUE(WriteFile(path, sig).ok());
  }
  // replayed: app's signature copied to the directory of another image of the repository,
  // pulled by digest (so that the identity, the repository, matches).
  testing::BuiltImage other = Image("other");
  ASSERT_TRUE(testing::PushImage(h, "signed/app", "other", other).ok());
  {
    const std::string to = SignaturePath("signed/app", other.manifest_digest);
    fs::create_directories(fs::path(to).parent_path());
    fs::copy_file(SignaturePath("signed/app", app.manifest_digest), to);
  }
  // moved: signed, then the tag pushed again with other content.
  PushSigned(Image("moved-before"), "signed/moved:1", *signer_);
  ASSERT_TRUE(testing::PushImage(h, "signed/moved", "1", Image("moved-after")).ok());
  // outside the signed namespace: the default, reject.
  ASSERT_TRUE(testing::PushImage(h, "other/app", "1", app).ok());

  struct Case {
    std::string name, ref;
    bool accepted;
    std::string reason;
  };
  const std::vector<Case> cases = {
      {"signed image", h + "/signed/app:1", true, ""},
      {"signed image by digest", h + "/signed/app@" + app.manifest_digest, true, ""},
      {"unsigned image", h + "/signed/unsigned:1", false, "signedBy: no signature"},
      {"signed by another key", h + "/signed/stranger:1", false, "signature by unknown key"},
      {"signed for another identity", h + "/signed/identity:1", false,
       "identity mismatch: signed for \"" + h + "/signed/elsewhere:1\""},
      {"tampered signature", h + "/signed/tampered:1", false, "invalid signature"},
      {"signature replayed onto another digest", h + "/signed/app@" + other.manifest_digest, false,
       "signed for another digest"},
      {"tag moved after signing", h + "/signed/moved:1", false, "no signature"},
      {"outside the signed scope", h + "/other/app:1", false, "reject: rejected by policy"},
  };
  std::string table = "case | hoist pull | hoist copy | skopeo copy\n";
  for (const auto& c : cases) {
    Verdict hoist = HoistPull(c.ref);
    Verdict skopeo = SkopeoCopy(c.ref);
    Verdict copy = HoistCopy(c.ref);
    EXPECT_EQ(copy.accepted, c.accepted) << c.name << ": hoist copy: " << copy.message;
    if (!c.accepted) {
      EXPECT_THAT(copy.message, HasSubstr(c.reason)) << c.name;
    }
    EXPECT_EQ(hoist.accepted, c.accepted) << c.name << ": " << hoist.message;
    if (!c.accepted) {
      EXPECT_THAT(hoist.message, HasSubstr(c.reason)) << c.name;
    }
    EXPECT_EQ(skopeo.accepted, hoist.accepted) << c.name << ": skopeo: " << skopeo.message;
    table += c.name + " | " + (hoist.accepted ? "accepted" : "refused (" + c.reason + ")") + " | " +
             (copy.accepted ? "accepted" : "refused") + " | " +
             (skopeo.accepted ? "accepted" : "refused") + "\n";
  }
  std::cout << table;
}

// As containers/image's copy: for an index, the manifest of the platform pulled is checked, at
// its own digest and under the reference pulled; a signature of the index alone is not enough.
// A pull through an index passes with a signature of the platform manifest pulled (what
// containers/image checks, and skopeo with it) or of the index, whose digest pins the
// platform manifest's. skopeo refuses the index-only signature: containers/image never checks
// the index of a single-platform copy.
TEST_F(SignatureTest, IndexPassesWithASignatureOfThePlatformManifestOrOfTheIndex) {
  const std::string h = Host();
  testing::BuiltIndex instance_signed =
      testing::BuildIndex(testing::Format::kOci, {Image("multi-amd64")});
  ASSERT_TRUE(testing::PushIndex(h, "signed/multi", "1", instance_signed).ok());
  const testing::BuiltImage& instance = instance_signed.images[0];
  StandaloneSign(instance.manifest, instance.manifest_digest, "signed/multi",
                 h + "/signed/multi:1");

  testing::BuiltIndex index_signed =
      testing::BuildIndex(testing::Format::kOci, {Image("multi2-amd64")});
  ASSERT_TRUE(testing::PushIndex(h, "signed/multi2", "1", index_signed).ok());
  StandaloneSign(index_signed.manifest, index_signed.digest, "signed/multi2",
                 h + "/signed/multi2:1");

  testing::BuiltIndex stranger_signed =
      testing::BuildIndex(testing::Format::kOci, {Image("multi3-amd64")});
  ASSERT_TRUE(testing::PushIndex(h, "signed/multi3", "1", stranger_signed).ok());
  StandaloneSign(stranger_signed.manifest, stranger_signed.digest, "signed/multi3",
                 h + "/signed/multi3:1", stranger_);

  Verdict hoist = HoistPull(h + "/signed/multi:1");
  EXPECT_TRUE(hoist.accepted) << hoist.message;
  Verdict skopeo = SkopeoCopy(h + "/signed/multi:1");
  EXPECT_TRUE(skopeo.accepted) << skopeo.message;
  // By the index's digest: the signature's identity matches by repository, its digest is the
  // instance's.
  hoist = HoistPull(h + "/signed/multi@" + instance_signed.digest);
  EXPECT_TRUE(hoist.accepted) << hoist.message;

  hoist = HoistPull(h + "/signed/multi2:1");
  EXPECT_TRUE(hoist.accepted) << hoist.message;
  skopeo = SkopeoCopy(h + "/signed/multi2:1");
  EXPECT_FALSE(skopeo.accepted);

  // Neither passes: one line with both reasons.
  hoist = HoistPull(h + "/signed/multi3:1");
  EXPECT_FALSE(hoist.accepted);
  EXPECT_THAT(hoist.message, HasSubstr("no signature (platform manifest " +
                                       stranger_signed.images[0].manifest_digest + "; index " +
                                       stranger_signed.digest + ": signature by unknown key"));
  skopeo = SkopeoCopy(h + "/signed/multi3:1");
  EXPECT_FALSE(skopeo.accepted);
}

// A policy that needs no signature costs no request: the unchanged re-pull is one manifest
// request, and the lookaside store is not asked. One that needs signatures asks on every pull,
// so a signature removed since the first pull refuses the image again.
TEST_F(SignatureTest, RequestsOnlyWhenSignaturesAreNeeded) {
  const std::string h = Host();
  testing::BuiltImage img = Image("requests");
  PushSigned(img, "signed/requests:1", *signer_);
  const std::string ref = h + "/signed/requests:1";
  ASSERT_TRUE(HoistPull(ref, Dir() + "/accept.json").accepted);
  const size_t lookaside_before = lookaside_->requests().size();
  const int manifests_before = registry_->CountRequests("HEAD", "/manifests/");
  const int gets_before = registry_->CountRequests("GET", "/manifests/");
  EXPECT_TRUE(HoistPull(ref, Dir() + "/accept.json").accepted);
  EXPECT_EQ(registry_->CountRequests("HEAD", "/manifests/"), manifests_before + 1);
  EXPECT_EQ(registry_->CountRequests("GET", "/manifests/"), gets_before);
  EXPECT_EQ(lookaside_->requests().size(), lookaside_before);

  EXPECT_TRUE(HoistPull(ref).accepted);
  auto requests = lookaside_->requests();
  ASSERT_GT(requests.size(), lookaside_before);
  for (const auto& r : requests) {
    EXPECT_EQ(r.headers.count("authorization"), 0u) << "credentials sent to the lookaside";
  }
  fs::remove(SignaturePath("signed/requests", img.manifest_digest));
  Verdict again = HoistPull(ref, "", true);
  EXPECT_FALSE(again.accepted);
  EXPECT_THAT(again.message, HasSubstr("no signature"));
}

}  // namespace
}  // namespace hoist
