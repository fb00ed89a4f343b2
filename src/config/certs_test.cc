#include "config/certs.h"

#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"

namespace hoist::config {
namespace {

class CertsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/hoist-certs-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  void Touch(const std::string& name) {
    std::filesystem::create_directories(std::filesystem::path(dir_ + "/" + name).parent_path());
    std::ofstream(dir_ + "/" + name) << "pem";
  }
  std::string dir_;
};

TEST_F(CertsTest, FindsCasAndClientPairsInTheFirstExistingDirectory) {
  Touch("docker/reg.example.com:5000/ca.crt");
  Touch("docker/reg.example.com:5000/extra.crt");
  Touch("docker/reg.example.com:5000/client.cert");
  Touch("docker/reg.example.com:5000/client.key");
  Touch("docker/reg.example.com:5000/README");
  std::filesystem::create_directories(dir_ + "/docker/reg.example.com:5000/sub.crt");
  Touch("containers/reg.example.com:5000/ignored.crt");
  const std::vector<std::string> bases = {dir_ + "/user", dir_ + "/docker", dir_ + "/containers"};
  auto r = FindTlsFiles("reg.example.com:5000", "", bases);
  ASSERT_TRUE(r.ok()) << r.status().message();
  const std::string d = dir_ + "/docker/reg.example.com:5000";
  EXPECT_EQ(r->dir, d);
  EXPECT_EQ(r->ca_files, (std::vector<std::string>{d + "/ca.crt", d + "/extra.crt"}));
  ASSERT_EQ(r->client_pairs.size(), 1u);
  EXPECT_EQ(r->client_pairs[0].first, d + "/client.cert");
  EXPECT_EQ(r->client_pairs[0].second, d + "/client.key");

  r = FindTlsFiles("other.example.com", "", bases);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->ca_files.empty());
  EXPECT_EQ(r->dir, "");
}

TEST_F(CertsTest, UnmatchedCertOrKeyIsRefused) {
  Touch("a/host1/client.cert");
  Touch("a/host2/client.key");
  auto r = FindTlsFiles("host1", "", {dir_ + "/a"});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("client.key"), std::string::npos) << r.status().message();
  r = FindTlsFiles("host2", "", {dir_ + "/a"});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("client.cert"), std::string::npos) << r.status().message();
}

TEST_F(CertsTest, CertDirOverridesTheSearch) {
  Touch("a/host/ca.crt");
  Touch("mine/my-ca.crt");
  auto r = FindTlsFiles("host", dir_ + "/mine", {dir_ + "/a"});
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->ca_files, std::vector<std::string>{dir_ + "/mine/my-ca.crt"});
  EXPECT_FALSE(FindTlsFiles("host", dir_ + "/nope", {dir_ + "/a"}).ok());
}

TEST_F(CertsTest, HostMustNotEscapeTheBaseDirectory) {
  for (const char* bad : {"", ".", "..", "../etc", "a/b"}) {
    EXPECT_EQ(FindTlsFiles(bad, "", {dir_}).status().code(), StatusCode::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace hoist::config
