#include "manifest/platform.h"

#include <sys/utsname.h>

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "manifest/media_types.h"

namespace hoist::manifest {
namespace {

Platform P(std::string os, std::string arch, std::string variant = "") {
  return Platform{std::move(os), std::move(arch), std::move(variant), "", {}};
}

TEST(ParsePlatform, NormalizesAliases) {
  struct Case {
    const char* text;
    const char* want;
  };
  for (const Case& c : std::vector<Case>{
           {"linux/amd64", "linux/amd64"},
           {"linux/x86_64", "linux/amd64"},
           {"linux/x86-64", "linux/amd64"},
           {"Linux/AMD64", "linux/amd64"},
           {"linux/amd64/v1", "linux/amd64"},
           {"linux/amd64/v3", "linux/amd64/v3"},
           {"linux/arm64", "linux/arm64/v8"},
           {"linux/aarch64", "linux/arm64/v8"},
           {"linux/arm64/8", "linux/arm64/v8"},
           {"linux/arm64/v8", "linux/arm64/v8"},
           {"linux/arm64/v9", "linux/arm64/v9"},
           {"linux/armhf", "linux/arm/v7"},
           {"linux/armel", "linux/arm/v6"},
           {"linux/arm", "linux/arm"},
           {"linux/arm/7", "linux/arm/v7"},
           {"linux/arm/v6", "linux/arm/v6"},
           {"linux/i386", "linux/386"},
           {"linux/i686", "linux/386"},
           {"linux/ppc64le", "linux/ppc64le"},
           {"linux/s390x", "linux/s390x"},
           {"linux/riscv64", "linux/riscv64"},
           {"windows/amd64", "windows/amd64"},
       }) {
    Result<Platform> p = ParsePlatform(c.text);
    ASSERT_TRUE(p.ok()) << c.text << ": " << p.status().message();
    EXPECT_EQ(p->String(), c.want) << c.text;
  }
}

TEST(ParsePlatform, Refuses) {
  for (const char* bad : {"", "amd64", "linux", "linux/", "/amd64", "linux//v7",
                          "linux/arm/v7/extra", "linux/amd 64", "linux/../etc"}) {
    Result<Platform> p = ParsePlatform(bad);
    ASSERT_FALSE(p.ok()) << bad;
    EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument) << bad;
  }
}

TEST(HostPlatform, IsLinuxAndNormalized) {
  Platform host = HostPlatform();
  EXPECT_EQ(host.os, "linux");
  EXPECT_FALSE(host.architecture.empty());
  EXPECT_EQ(Normalize(host), host);
  struct utsname u {};
  ASSERT_EQ(uname(&u), 0);
  std::string machine = u.machine;
  if (machine == "x86_64") {
    EXPECT_EQ(host.String(), "linux/amd64");
  }
  if (machine == "aarch64") {
    EXPECT_EQ(host.String(), "linux/arm64/v8");
  }
  EXPECT_TRUE(Matches(host, host));
}

TEST(Matches, Table) {
  struct Case {
    Platform want;
    Platform have;
    bool match;
  };
  for (const Case& c : std::vector<Case>{
           {P("linux", "amd64"), P("linux", "amd64"), true},
           {P("linux", "amd64"), P("linux", "x86_64"), true},
           {P("linux", "amd64"), P("Linux", "AMD64"), true},
           {P("linux", "amd64"), P("windows", "amd64"), false},
           {P("linux", "amd64"), P("linux", "arm64"), false},
           {P("linux", "amd64"), P("linux", "amd64", "v3"), true},
           {P("linux", "amd64", "v3"), P("linux", "amd64"), false},
           {P("linux", "arm64", "v8"), P("linux", "arm64"), true},
           {P("linux", "arm64"), P("linux", "arm64", "v8"), true},
           {P("linux", "aarch64"), P("linux", "arm64", "v8"), true},
           {P("linux", "arm64", "v8"), P("linux", "arm64", "v9"), false},
           {P("linux", "arm", "v7"), P("linux", "arm", "v7"), true},
           {P("linux", "arm", "v7"), P("linux", "arm", "7"), true},
           {P("linux", "arm", "v7"), P("linux", "arm"), true},
           {P("linux", "arm", "v6"), P("linux", "arm"), false},
           {P("linux", "arm", "v7"), P("linux", "arm", "v6"), false},
           {P("linux", "arm"), P("linux", "arm", "v6"), true},
           {P("linux", "arm"), P("linux", "arm64"), false},
           {P("linux", "armhf"), P("linux", "arm", "v7"), true},
       }) {
    EXPECT_EQ(Matches(c.want, c.have), c.match)
        << "want " << c.want.String() << " have " << c.have.String();
  }
}

Descriptor Entry(char fill, std::optional<Platform> platform,
                 std::string media_type = std::string(kOciManifest)) {
  Descriptor d;
  d.media_type = std::move(media_type);
  d.digest = *Digest::Parse("sha256:" + std::string(64, fill));
  d.size = 100;
  d.platform = std::move(platform);
  return d;
}

Index TestIndex() {
  Index index;
  index.media_type = std::string(kOciIndex);
  index.manifests = {
      Entry('0', std::nullopt),
      Entry('1', P("linux", "amd64")),
      Entry('2', P("linux", "arm64", "v8")),
      Entry('3', P("linux", "arm64", "v8")),  // a second match: never chosen
      Entry('4', P("linux", "arm", "v7")),
      Entry('5', P("unknown", "unknown")),    // an attestation
      Entry('6', P("linux", "amd64")),         // a duplicate name
      Entry('7', P("linux", "riscv64"), "application/vnd.example.thing"),
  };
  return index;
}

TEST(SelectPlatform, PicksTheFirstMatch) {
  struct Case {
    Platform want;
    char digest_fill;
  };
  for (const Case& c : std::vector<Case>{
           {P("linux", "amd64"), '1'},
           {P("linux", "arm64"), '2'},
           {P("linux", "arm64", "v8"), '2'},
           {P("linux", "arm", "v7"), '4'},
           {P("linux", "arm"), '4'},
       }) {
    Result<Descriptor> d = SelectPlatform(TestIndex(), c.want);
    ASSERT_TRUE(d.ok()) << c.want.String() << ": " << d.status().message();
    EXPECT_EQ(d->digest.hex(), std::string(64, c.digest_fill)) << c.want.String();
  }
}

TEST(SelectPlatform, NoMatchListsWhatIsAvailable) {
  Result<Descriptor> d = SelectPlatform(TestIndex(), P("linux", "s390x"));
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(d.status().message(),
            "no manifest for platform linux/s390x in index; available: linux/amd64, "
            "linux/arm64/v8, linux/arm/v7");
}

TEST(SelectPlatform, EntriesOfOtherTypesAndWithoutPlatformNeverMatch) {
  Result<Descriptor> d = SelectPlatform(TestIndex(), P("linux", "riscv64"));
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), StatusCode::kNotFound);

  Index only_unlabelled;
  only_unlabelled.manifests = {Entry('0', std::nullopt)};
  d = SelectPlatform(only_unlabelled, P("linux", "amd64"));
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().message(),
            "no manifest for platform linux/amd64 in index; available: none");
}

TEST(SelectPlatform, EmptyIndex) {
  Result<Descriptor> d = SelectPlatform(Index{}, P("linux", "amd64"));
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace hoist::manifest
