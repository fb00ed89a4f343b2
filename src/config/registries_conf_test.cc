#include "config/registries_conf.h"

#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"

namespace hoist::config {
namespace {

RegistriesConf MustParse(const std::string& text) {
  auto r = RegistriesConf::Parse(text, "test.conf");
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? *r : RegistriesConf();
}

// "host/repository" of each route, in order.
std::vector<std::string> Routes(const RegistriesConf& conf, const std::string& ref_text) {
  auto ref = Reference::Parse(ref_text);
  EXPECT_TRUE(ref.ok()) << ref.status().message();
  auto routes = conf.RoutesFor(*ref);
  EXPECT_TRUE(routes.ok()) << routes.status().message();
  std::vector<std::string> out;
  if (!routes.ok()) return out;
  for (const auto& r : *routes) out.push_back(r.host + "/" + r.repository);
  return out;
}

using V = std::vector<std::string>;

TEST(RegistriesConfTest, NoEntryMeansTheReferencesOwnRegistry) {
  RegistriesConf empty;
  EXPECT_EQ(Routes(empty, "alpine"), V{"registry-1.docker.io/library/alpine"});
  EXPECT_EQ(Routes(empty, "ghcr.io/o/a:1"), V{"ghcr.io/o/a"});
}

TEST(RegistriesConfTest, LongestPrefixWins) {
  RegistriesConf conf = MustParse(R"(
[[registry]]
prefix = "example.com"
location = "a.example.net"

[[registry]]
prefix = "example.com/foo"
location = "b.example.net/mirrored"

[[registry]]
prefix = "example.com/foo/app:v1"
location = "c.example.net/pinned"
)");
  struct Case {
    std::string ref;
    V routes;
  };
  const Case cases[] = {
      {"example.com/foo/app:latest", {"b.example.net/mirrored/app"}},
      {"example.com/foo/app:v1", {"c.example.net/pinned"}},
      {"example.com/foobar/app", {"a.example.net/foobar/app"}},  // "foo" is not "foobar"
      {"example.com/other", {"a.example.net/other"}},
      {"example.com:5000/foo/app", {"example.com:5000/foo/app"}},  // a port is another host
      {"other.com/foo/app", {"other.com/foo/app"}},
  };
  for (const Case& c : cases) EXPECT_EQ(Routes(conf, c.ref), c.routes) << c.ref;
}

TEST(RegistriesConfTest, WildcardPrefix) {
  RegistriesConf conf = MustParse(R"(
[[registry]]
prefix = "*.example.org"
insecure = true

[[registry]]
prefix = "*.internal.example.org"
location = "proxy.local:5000/internal"
)");
  EXPECT_EQ(Routes(conf, "a.example.org/x/y"), V{"a.example.org/x/y"});
  EXPECT_EQ(Routes(conf, "a.b.example.org:8443/x"), V{"a.b.example.org:8443/x"});
  EXPECT_EQ(Routes(conf, "reg.internal.example.org/team/app"),
            V{"proxy.local:5000/internal/team/app"});
  EXPECT_EQ(Routes(conf, "example.org/x"), V{"example.org/x"});  // no subdomain: no match
  EXPECT_EQ(Routes(conf, "evilexample.org/x"), V{"evilexample.org/x"});

  auto ref = Reference::Parse("a.example.org/x/y");
  auto routes = conf.RoutesFor(*ref);
  ASSERT_TRUE(routes.ok());
  EXPECT_TRUE((*routes)[0].endpoint.insecure);
  EXPECT_EQ(conf.SettingsFor(*ref).prefix, "*.example.org");
  auto other = Reference::Parse("ghcr.io/x");
  EXPECT_FALSE(conf.RoutesFor(*other)->front().endpoint.insecure);
  EXPECT_EQ(conf.SettingsFor(*other).prefix, "");
}

TEST(RegistriesConfTest, LocationRewriteWithNamespaceAndMirrorsInOrder) {
  RegistriesConf conf = MustParse(R"(
[[registry]]
prefix = "docker.io"
location = "docker.io"

[[registry.mirror]]
location = "mirror.example.com/dockerhub"

[[registry.mirror]]
location = "127.0.0.1:5000"
insecure = true
)");
  EXPECT_EQ(Routes(conf, "alpine:3.20"),
            (V{"mirror.example.com/dockerhub/library/alpine", "127.0.0.1:5000/library/alpine",
               "registry-1.docker.io/library/alpine"}));
  auto routes = conf.RoutesFor(*Reference::Parse("alpine"));
  ASSERT_TRUE(routes.ok());
  ASSERT_EQ(routes->size(), 3u);
  EXPECT_TRUE((*routes)[0].endpoint.mirror);
  EXPECT_FALSE((*routes)[0].endpoint.insecure);
  EXPECT_TRUE((*routes)[1].endpoint.insecure);
  EXPECT_FALSE((*routes)[2].endpoint.mirror);
  EXPECT_EQ((*routes)[2].endpoint.location, "docker.io");
}

TEST(RegistriesConfTest, PullFromMirror) {
  RegistriesConf conf = MustParse(R"(
[[registry]]
location = "example.com"
[[registry.mirror]]
location = "digest.mirror"
pull-from-mirror = "digest-only"
[[registry.mirror]]
location = "tag.mirror"
pull-from-mirror = "tag-only"
[[registry.mirror]]
location = "all.mirror"
pull-from-mirror = "all"

[[registry]]
location = "old.example.com"
mirror-by-digest-only = true
[[registry.mirror]]
location = "old.mirror"
)");
  const std::string digest =
      "@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
  EXPECT_EQ(Routes(conf, "example.com/app:1"),
            (V{"tag.mirror/app", "all.mirror/app", "example.com/app"}));
  EXPECT_EQ(Routes(conf, "example.com/app" + digest),
            (V{"digest.mirror/app", "all.mirror/app", "example.com/app"}));
  EXPECT_EQ(Routes(conf, "old.example.com/app:1"), V{"old.example.com/app"});
  EXPECT_EQ(Routes(conf, "old.example.com/app" + digest),
            (V{"old.mirror/app", "old.example.com/app"}));
}

TEST(RegistriesConfTest, BlockedIsPermissionDenied) {
  RegistriesConf conf = MustParse(R"(
[[registry]]
prefix = "docker.io/evil"
location = "docker.io/evil"
blocked = true
)");
  auto r = conf.RoutesFor(*Reference::Parse("evil/app"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(r.status().message(), "registry docker.io/evil is blocked by test.conf");
  EXPECT_TRUE(conf.RoutesFor(*Reference::Parse("good/app")).ok());
}

TEST(RegistriesConfTest, UnqualifiedSearchRegistriesAndUnknownKeys) {
  RegistriesConf conf = MustParse(R"(
unqualified-search-registries = ["registry.fedoraproject.org", "quay.io", "localhost:5000"]
short-name-mode = "enforcing"
credential-helpers = ["containers-auth.json"]
[aliases]
"fedora" = "registry.fedoraproject.org/fedora"
[[registry]]
location = "quay.io"
some-future-key = 3
)");
  EXPECT_EQ(conf.unqualified_search_registries(),
            (V{"registry.fedoraproject.org", "quay.io", "localhost:5000"}));
  EXPECT_EQ(conf.files(), V{"test.conf"});
  ASSERT_EQ(conf.registries().size(), 1u);
  EXPECT_EQ(conf.registries()[0].prefix, "quay.io");
  EXPECT_EQ(conf.registries()[0].source, "test.conf");
}

TEST(RegistriesConfTest, ErrorsNameTheFileAndLine) {
  struct Case {
    std::string text;
    std::string expect;  // the message starts with this
  };
  const Case cases[] = {
      {"# comment\n[[registry]]\nlocation = \"quay.io\nx", "test.conf:3: "},
      {"[[registry]]\nlocation = \"quay.io\"\ninsecure = \"yes\"\n",
       "test.conf:3: registry.insecure must be true or false"},
      {"\n[[registry]]\nlocation = \"https://quay.io\"\n",
       "test.conf:3: location \"https://quay.io\": URI schemes are not supported"},
      {"[[registry]]\nprefix = \"http://quay.io/x\"\nlocation = \"quay.io\"\n",
       "test.conf:2: prefix"},
      {"[[registry]]\nprefix = \"quay.io/x\"\n", "test.conf:1: [[registry]] with prefix"},
      {"[[registry]]\nblocked = true\n", "test.conf:1: [[registry]] needs a prefix or a location"},
      {"[[registry]]\nprefix = \"*.a.com/x\"\n", "test.conf:2: prefix \"*.a.com/x\""},
      {"[[registry]]\nlocation = \"q.io\"\n[[registry.mirror]]\ninsecure = true\n",
       "test.conf:3: [[registry.mirror]] needs a location"},
      {"[[registry]]\nlocation = \"q.io\"\n[[registry.mirror]]\nlocation = \"m.io\"\n"
       "pull-from-mirror = \"sometimes\"\n",
       "test.conf:5: pull-from-mirror \"sometimes\""},
      {"[[registry]]\nlocation = \"q.io\"\npull-from-mirror = \"all\"\n",
       "test.conf:3: pull-from-mirror is for [[registry.mirror]]"},
      {"[[registry]]\nlocation = \"q.io\"\nmirror-by-digest-only = true\n[[registry.mirror]]\n"
       "location = \"m.io\"\npull-from-mirror = \"tag-only\"\n",
       "test.conf:6: pull-from-mirror cannot be combined"},
      {"unqualified-search-registries = [\"quay.io/ns\"]\n",
       "test.conf:1: unqualified-search-registries entry"},
      {"[registry]\nlocation = \"q.io\"\n", "test.conf:1: registry must be [[registry]] tables"},
      {"[registries.search]\nregistries = ['registry1.com']\n", "test.conf:1: version 1 format"},
  };
  for (const Case& c : cases) {
    auto r = RegistriesConf::Parse(c.text, "test.conf");
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(r.status().message().substr(0, c.expect.size()), c.expect) << r.status().message();
  }
}

TEST(RegistriesConfTest, RewriteToAnInvalidReferenceIsAnError) {
  RegistriesConf conf = MustParse(R"(
[[registry]]
prefix = "example.com/x"
location = "example.com/UPPER"
)");
  auto r = conf.RoutesFor(*Reference::Parse("example.com/x/app"));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("test.conf"), std::string::npos);
}

class RegistriesConfFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/hoist-regconf-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  void Write(const std::string& name, const std::string& text) {
    std::filesystem::create_directories(std::filesystem::path(dir_ + "/" + name).parent_path());
    std::ofstream(dir_ + "/" + name) << text;
  }
  std::string dir_;
};

TEST_F(RegistriesConfFilesTest, DropInsOverrideInNameOrder) {
  Write("registries.conf", R"(
unqualified-search-registries = ["docker.io"]
[[registry]]
location = "quay.io"
insecure = true
[[registry]]
location = "ghcr.io"
)");
  Write("registries.conf.d/20-second.conf", R"(
[[registry]]
location = "quay.io"
blocked = true
)");
  Write("registries.conf.d/10-first.conf", R"(
unqualified-search-registries = ["quay.io"]
[[registry]]
location = "quay.io"
)");
  Write("registries.conf.d/99-ignored.txt", "this is not toml [[[");
  auto r = RegistriesConf::LoadFile(dir_ + "/registries.conf");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->files(), (V{dir_ + "/registries.conf", dir_ + "/registries.conf.d/10-first.conf",
                           dir_ + "/registries.conf.d/20-second.conf"}));
  EXPECT_EQ(r->unqualified_search_registries(), V{"quay.io"});
  auto quay = r->RoutesFor(*Reference::Parse("quay.io/a/b"));
  ASSERT_FALSE(quay.ok());
  EXPECT_EQ(quay.status().message(),
            "registry quay.io is blocked by " + dir_ + "/registries.conf.d/20-second.conf");
  EXPECT_TRUE(r->RoutesFor(*Reference::Parse("ghcr.io/a/b")).ok());

  Write("registries.conf.d/30-bad.conf", "[[registry]]\nlocation = 5\n");
  r = RegistriesConf::LoadFile(dir_ + "/registries.conf");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message().rfind(dir_ + "/registries.conf.d/30-bad.conf:2: ", 0), 0u)
      << r.status().message();
}

TEST_F(RegistriesConfFilesTest, LoadHonoursTheEnvironment) {
  Write("custom.conf", "unqualified-search-registries = [\"example.com\"]\n");
  setenv("HOIST_REGISTRIES_CONF", (dir_ + "/custom.conf").c_str(), 1);
  auto r = RegistriesConf::Load();
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->unqualified_search_registries(), V{"example.com"});

  setenv("HOIST_REGISTRIES_CONF", (dir_ + "/missing.conf").c_str(), 1);
  r = RegistriesConf::Load();
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);

  unsetenv("HOIST_REGISTRIES_CONF");
  const char* old_xdg = getenv("XDG_CONFIG_HOME");
  std::string saved = old_xdg ? old_xdg : "";
  Write("xdg/containers/registries.conf", "unqualified-search-registries = [\"user.example\"]\n");
  setenv("XDG_CONFIG_HOME", (dir_ + "/xdg").c_str(), 1);
  r = RegistriesConf::Load();
  if (old_xdg) {
    setenv("XDG_CONFIG_HOME", saved.c_str(), 1);
  } else {
    unsetenv("XDG_CONFIG_HOME");
  }
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->unqualified_search_registries(), V{"user.example"});
}

}  // namespace
}  // namespace hoist::config
