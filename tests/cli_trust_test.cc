// The command line of the signature policy: `hoist trust show`, the policy line of
// `hoist config`, where the policy file is looked up, and a pull the policy refuses (one line,
// exit 1, nothing recorded).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "support/image_builder.h"
#include "support/process.h"
#include "support/registry.h"

namespace hoist {
namespace {

namespace fs = std::filesystem;
using testing::CliRun;
using ::testing::HasSubstr;
using testing::WriteFile;

class CliTrustTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = testing::TempDir::Create("hoist-trust-");
    ASSERT_TRUE(dir.ok());
    dir_.emplace(std::move(dir).value());
    d_ = dir_->path();
    // The user's files are this test's: ~/.config/containers/policy.json is looked up here.
    old_home_ = getenv("HOME") != nullptr ? getenv("HOME") : "";
    setenv("HOME", d_.c_str(), 1);
    unsetenv("XDG_CONFIG_HOME");
    ASSERT_TRUE(WriteFile(d_ + "/policy.json", R"({
      "default": [{"type": "reject"}],
      "transports": {"docker": {
        "127.0.0.1:5000/signed": [{"type": "signedBy", "keyType": "GPGKeys",
                                   "keyPath": "/keys/signer.gpg"}],
        "*.example.com": [{"type": "insecureAcceptAnything"},
                          {"type": "sigstoreSigned", "keyPath": "/keys/cosign.pub",
                           "signedIdentity": {"type": "matchRepository"}}]}}})")
                    .ok());
    ASSERT_TRUE(WriteFile(d_ + "/registries.d/a.yaml", R"(
default-docker:
  lookaside: file:///var/lib/sigs
docker:
  127.0.0.1:5000/signed:
    lookaside: http://127.0.0.1:8080/sigs
    lookaside-staging: file:///tmp/staging
  "*.example.com":
    use-sigstore-attachments: true
)")
                    .ok());
  }
  void TearDown() override { setenv("HOME", old_home_.c_str(), 1); }

  CliRun Hoist(std::vector<std::string> args) {
    args.insert(args.begin(), {"--store", d_ + "/store"});
    return testing::RunCli(HOIST_CLI, args, d_);
  }

  std::optional<testing::TempDir> dir_;
  std::string d_, old_home_;
};

TEST_F(CliTrustTest, ShowNamesScopeRequirementsKeysAndSources) {
  CliRun r = Hoist({"trust", "show", "--signature-policy", d_ + "/policy.json", "--registries.d",
                    d_ + "/registries.d", "127.0.0.1:5000/signed/app:1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(
      r.out,
      "reference: 127.0.0.1:5000/signed/app:1\n"
      "policy: " +
          d_ +
          "/policy.json\n"
          "scope: docker:\"127.0.0.1:5000/signed\"\n"
          "why: the most specific of the scopes tried, in order: \"127.0.0.1:5000/signed/app:1\", "
          "\"127.0.0.1:5000/signed/app\", \"127.0.0.1:5000/signed\", \"127.0.0.1:5000\", "
          "\"*.0.0.1\", \"*.0.1\", \"*.1\"\n"
          "requirements (all must pass):\n"
          "  signedBy keyType=GPGKeys keyPath=\"/keys/signer.gpg\" "
          "signedIdentity=matchRepoDigestOrExact\n"
          "registries.d: " +
          d_ +
          "/registries.d\n"
          "  lookaside: http://127.0.0.1:8080/sigs (\"" +
          d_ +
          "/registries.d/a.yaml\": docker \"127.0.0.1:5000/signed\")\n"
          "  sigstore attachments: not used (not set)\n");

  // A wildcard scope, and the global flags before the command.
  r = Hoist({"--signature-policy", d_ + "/policy.json", "--registries.d", d_ + "/registries.d",
             "trust", "show", "reg.example.com/ns/app@sha256:" + std::string(64, 'a')});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("scope: docker:\"*.example.com\"\n"));
  EXPECT_THAT(r.out, HasSubstr("requirements (all must pass):\n  insecureAcceptAnything\n"
                               "  sigstoreSigned keyPath=\"/keys/cosign.pub\" "
                               "signedIdentity=matchRepository\n"));
  EXPECT_THAT(r.out, HasSubstr("  lookaside: file:///var/lib/sigs (\"" + d_ +
                               "/registries.d/a.yaml\": default-docker)\n"));
  EXPECT_THAT(r.out, HasSubstr("  sigstore attachments: used (\"" + d_ +
                               "/registries.d/a.yaml\": docker \"*.example.com\")\n"));

  // Nothing matches: the default, and why.
  r = Hoist({"trust", "show", "--signature-policy", d_ + "/policy.json", "--registries.d",
             d_ + "/registries.d", "quay.io/x:1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("scope: default\nwhy: no transports.docker scope matches "
                               "\"quay.io/x:1\""));
  EXPECT_THAT(r.out, HasSubstr("requirements (all must pass):\n  reject\n"));
}

TEST_F(CliTrustTest, PolicyIsLookedUpInHomeAndShownByConfig) {
  // No flag: ~/.config/containers/policy.json comes before /etc/containers/policy.json.
  fs::create_directories(d_ + "/.config/containers");
  fs::copy_file(d_ + "/policy.json", d_ + "/.config/containers/policy.json");
  CliRun r = Hoist({"trust", "show", "--registries.d", d_ + "/registries.d", "quay.io/x:1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("policy: " + d_ + "/.config/containers/policy.json\n"));

  r = Hoist({"config", "127.0.0.1:5000/signed/app:1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("signature policy: " + d_ +
                               "/.config/containers/policy.json (scope "
                               "docker:\"127.0.0.1:5000/signed\"; see hoist trust show)\n"));
  r = Hoist({"config", "--signature-policy", d_ + "/policy.json", "quay.io/x:1"});
  EXPECT_THAT(r.out, HasSubstr("signature policy: " + d_ + "/policy.json (scope default;"));

  // Without any policy file (only where the system has none) every image is accepted.
  fs::remove(d_ + "/.config/containers/policy.json");
  if (!fs::exists("/etc/containers/policy.json")) {
    r = Hoist({"config", "quay.io/x:1"});
    EXPECT_THAT(r.out, HasSubstr("signature policy: no policy file: every image accepted\n"));
  }
}

TEST_F(CliTrustTest, BadPolicyIsAnErrorNotAnAcceptance) {
  ASSERT_TRUE(
      WriteFile(d_ + "/bad.json", R"({"default": [{"type": "signedBy", "keyType": "GPGKeys"}]})")
          .ok());
  CliRun r = Hoist({"trust", "show", "--signature-policy", d_ + "/bad.json", "quay.io/x:1"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(r.err, "hoist: trust show quay.io/x:1: policy \"" + d_ +
                       "/bad.json\": default: \"signedBy\": exactly one of keyPath, keyPaths "
                       "and keyData is needed\n");
  r = Hoist({"trust", "show", "--signature-policy", d_ + "/missing.json", "quay.io/x:1"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("missing.json"));
}

TEST_F(CliTrustTest, RefusedPullIsOneLineAndRecordsNothing) {
  if (!testing::TestRegistry::Available()) GTEST_SKIP() << "docker-registry not installed";
  auto reg = testing::TestRegistry::Start();
  ASSERT_TRUE(reg.ok()) << reg.status().message();
  const std::string host = (*reg)->host();
  testing::BuiltImage img = testing::BuildImage(testing::Format::kOci, {{{"f", "x"}}});
  ASSERT_TRUE(testing::PushImage(host, "app", "1", img).ok());
  ASSERT_TRUE(
      WriteFile(d_ + "/reject.json",
                R"({"default": [{"type": "insecureAcceptAnything"}], "transports": {"docker": {")" +
                    host + R"(/app": [{"type": "reject"}]}}})")
          .ok());
  CliRun r = Hoist({"pull", "-q", "--signature-policy", d_ + "/reject.json", host + "/app:1"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "hoist: pull " + host + "/app:1: signature policy for \"" + host +
                       "/app:1\" (docker:\"" + host + "/app\" in \"" + d_ +
                       "/reject.json\"): reject: rejected by policy\n");
  r = Hoist({"images", "--format", "/reference"});
  EXPECT_EQ(r.out, "");
  // A copy from the registry is refused the same way.
  r = Hoist({"copy", "--signature-policy", d_ + "/reject.json", "docker://" + host + "/app:1",
             "oci:" + d_ + "/out:x"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("reject: rejected by policy\n"));
  // No config or layer was fetched.
  EXPECT_EQ((*reg)->CountRequests("GET", "/blobs/"), 0);
}

}  // namespace
}  // namespace hoist
