#include "hoist/reference.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace hoist {
namespace {

// A real sha256 digest's hex, and a sha512-length one.
const std::string kHex = "7cc4b5aefd1d0cadf8d97d4350462ba51c694ebca145b08d7d41b41acc8db5aa";
const std::string kHex512 = kHex + kHex;
const std::string kDigest = "sha256:" + kHex;

struct Valid {
  std::string input;
  std::string domain;
  std::string path;
  std::string tag;
  std::string digest;  // "" for none
  std::string string;
  std::string familiar;
  std::string registry_host;
};

const std::string kHub = "registry-1.docker.io";

std::vector<Valid> ValidCases() {
  const std::string tag128(128, 't');
  const std::string long_path(255 - std::string("docker.io/library/").size(), 'a');
  return {
      {"alpine", "docker.io", "library/alpine", "latest", "", "docker.io/library/alpine:latest",
       "alpine:latest", kHub},
      {"alpine:3.20", "docker.io", "library/alpine", "3.20", "", "docker.io/library/alpine:3.20",
       "alpine:3.20", kHub},
      {"library/alpine", "docker.io", "library/alpine", "latest", "",
       "docker.io/library/alpine:latest", "alpine:latest", kHub},
      {"docker.io/alpine", "docker.io", "library/alpine", "latest", "",
       "docker.io/library/alpine:latest", "alpine:latest", kHub},
      {"docker.io/library/alpine", "docker.io", "library/alpine", "latest", "",
       "docker.io/library/alpine:latest", "alpine:latest", kHub},
      {"index.docker.io/library/alpine", "docker.io", "library/alpine", "latest", "",
       "docker.io/library/alpine:latest", "alpine:latest", kHub},
      {"index.docker.io/alpine:3.20", "docker.io", "library/alpine", "3.20", "",
       "docker.io/library/alpine:3.20", "alpine:3.20", kHub},
      {"foo/bar", "docker.io", "foo/bar", "latest", "", "docker.io/foo/bar:latest",
       "foo/bar:latest", kHub},
      {"docker.io/foo/bar:1", "docker.io", "foo/bar", "1", "", "docker.io/foo/bar:1", "foo/bar:1",
       kHub},
      {"library/a/b", "docker.io", "library/a/b", "latest", "", "docker.io/library/a/b:latest",
       "library/a/b:latest", kHub},
      {"ubuntu:22.04", "docker.io", "library/ubuntu", "22.04", "", "docker.io/library/ubuntu:22.04",
       "ubuntu:22.04", kHub},
      {"alpine@" + kDigest, "docker.io", "library/alpine", "", kDigest,
       "docker.io/library/alpine@" + kDigest, "alpine@" + kDigest, kHub},
      {"alpine:3.20@" + kDigest, "docker.io", "library/alpine", "3.20", kDigest,
       "docker.io/library/alpine:3.20@" + kDigest, "alpine:3.20@" + kDigest, kHub},
      {"ghcr.io/org/app@" + kDigest, "ghcr.io", "org/app", "", kDigest,
       "ghcr.io/org/app@" + kDigest, "ghcr.io/org/app@" + kDigest, "ghcr.io"},
      {"ghcr.io/org/app:1@" + kDigest, "ghcr.io", "org/app", "1", kDigest,
       "ghcr.io/org/app:1@" + kDigest, "ghcr.io/org/app:1@" + kDigest, "ghcr.io"},
      {"ghcr.io/app", "ghcr.io", "app", "latest", "", "ghcr.io/app:latest", "ghcr.io/app:latest",
       "ghcr.io"},
      {"localhost/app", "localhost", "app", "latest", "", "localhost/app:latest",
       "localhost/app:latest", "localhost"},
      {"localhost:5000/app:1", "localhost:5000", "app", "1", "", "localhost:5000/app:1",
       "localhost:5000/app:1", "localhost:5000"},
      {"127.0.0.1:5000/a/b/c:v1.0", "127.0.0.1:5000", "a/b/c", "v1.0", "",
       "127.0.0.1:5000/a/b/c:v1.0", "127.0.0.1:5000/a/b/c:v1.0", "127.0.0.1:5000"},
      {"127.0.0.1/app", "127.0.0.1", "app", "latest", "", "127.0.0.1/app:latest",
       "127.0.0.1/app:latest", "127.0.0.1"},
      {"[::1]:5000/app", "[::1]:5000", "app", "latest", "", "[::1]:5000/app:latest",
       "[::1]:5000/app:latest", "[::1]:5000"},
      {"[::1]/app", "[::1]", "app", "latest", "", "[::1]/app:latest", "[::1]/app:latest", "[::1]"},
      {"[fe80::1:AB]:443/org/app:x", "[fe80::1:AB]:443", "org/app", "x", "",
       "[fe80::1:AB]:443/org/app:x", "[fe80::1:AB]:443/org/app:x", "[fe80::1:AB]:443"},
      {"myhost:5000/app", "myhost:5000", "app", "latest", "", "myhost:5000/app:latest",
       "myhost:5000/app:latest", "myhost:5000"},
      {"host-1:1/x", "host-1:1", "x", "latest", "", "host-1:1/x:latest", "host-1:1/x:latest",
       "host-1:1"},
      {"a-b.example.com:65535/x", "a-b.example.com:65535", "x", "latest", "",
       "a-b.example.com:65535/x:latest", "a-b.example.com:65535/x:latest", "a-b.example.com:65535"},
      {"GHCR.io/org/app", "GHCR.io", "org/app", "latest", "", "GHCR.io/org/app:latest",
       "GHCR.io/org/app:latest", "GHCR.io"},
      {"registry.example.com/a/b/c/d:tag_1", "registry.example.com", "a/b/c/d", "tag_1", "",
       "registry.example.com/a/b/c/d:tag_1", "registry.example.com/a/b/c/d:tag_1",
       "registry.example.com"},
      {"quay.io/coreos/etcd:v3.5.0-amd64", "quay.io", "coreos/etcd", "v3.5.0-amd64", "",
       "quay.io/coreos/etcd:v3.5.0-amd64", "quay.io/coreos/etcd:v3.5.0-amd64", "quay.io"},
      {"k8s.gcr.io/pause:3.9", "k8s.gcr.io", "pause", "3.9", "", "k8s.gcr.io/pause:3.9",
       "k8s.gcr.io/pause:3.9", "k8s.gcr.io"},
      {"org/app-name:1.0.0-rc.1", "docker.io", "org/app-name", "1.0.0-rc.1", "",
       "docker.io/org/app-name:1.0.0-rc.1", "org/app-name:1.0.0-rc.1", kHub},
      {"a/b_c/d__e/f-g/h---i/j.k/lm0:T.A-G", "docker.io", "a/b_c/d__e/f-g/h---i/j.k/lm0", "T.A-G",
       "", "docker.io/a/b_c/d__e/f-g/h---i/j.k/lm0:T.A-G", "a/b_c/d__e/f-g/h---i/j.k/lm0:T.A-G",
       kHub},
      {"alpine:_x", "docker.io", "library/alpine", "_x", "", "docker.io/library/alpine:_x",
       "alpine:_x", kHub},
      {"alpine:LATEST", "docker.io", "library/alpine", "LATEST", "",
       "docker.io/library/alpine:LATEST", "alpine:LATEST", kHub},
      {"alpine:a..", "docker.io", "library/alpine", "a..", "", "docker.io/library/alpine:a..",
       "alpine:a..", kHub},
      {"alpine:" + tag128, "docker.io", "library/alpine", tag128, "",
       "docker.io/library/alpine:" + tag128, "alpine:" + tag128, kHub},
      {"a", "docker.io", "library/a", "latest", "", "docker.io/library/a:latest", "a:latest", kHub},
      {"0/1", "docker.io", "0/1", "latest", "", "docker.io/0/1:latest", "0/1:latest", kHub},
      // No '/': the first component is the whole name, never a domain (as in Docker).
      {"localhost", "docker.io", "library/localhost", "latest", "",
       "docker.io/library/localhost:latest", "localhost:latest", kHub},
      {"localhost:5000", "docker.io", "library/localhost", "5000", "",
       "docker.io/library/localhost:5000", "localhost:5000", kHub},
      {"example.com", "docker.io", "library/example.com", "latest", "",
       "docker.io/library/example.com:latest", "example.com:latest", kHub},
      {"sha256", "docker.io", "library/sha256", "latest", "", "docker.io/library/sha256:latest",
       "sha256:latest", kHub},
      // The short form would parse differently, so Familiar keeps the full name.
      {"docker.io/foo.bar/baz", "docker.io", "foo.bar/baz", "latest", "",
       "docker.io/foo.bar/baz:latest", "docker.io/foo.bar/baz:latest", kHub},
      {"docker.io/localhost/baz", "docker.io", "localhost/baz", "latest", "",
       "docker.io/localhost/baz:latest", "docker.io/localhost/baz:latest", kHub},
      {"docker.io/library/sha256:" + kHex, "docker.io", "library/sha256", kHex, "",
       "docker.io/library/sha256:" + kHex, "docker.io/library/sha256:" + kHex, kHub},
      {"docker.io/" + kHex, "docker.io", "library/" + kHex, "latest", "",
       "docker.io/library/" + kHex + ":latest", "docker.io/library/" + kHex + ":latest", kHub},
      {"example.com/app@sha512:" + kHex512, "example.com", "app", "", "sha512:" + kHex512,
       "example.com/app@sha512:" + kHex512, "example.com/app@sha512:" + kHex512, "example.com"},
      // Exactly the 255-character name limit.
      {long_path, "docker.io", "library/" + long_path, "latest", "",
       "docker.io/library/" + long_path + ":latest", long_path + ":latest", kHub},
  };
}

TEST(Reference, ParsesAndNormalizes) {
  ASSERT_EQ(kHex.size(), 64u);
  std::vector<Valid> cases = ValidCases();
  EXPECT_GE(cases.size(), 40u);
  for (const Valid& c : cases) {
    SCOPED_TRACE(c.input);
    auto ref = Reference::Parse(c.input);
    ASSERT_TRUE(ref.ok()) << ref.status().message();
    EXPECT_EQ(ref->domain(), c.domain);
    EXPECT_EQ(ref->path(), c.path);
    EXPECT_EQ(ref->tag(), c.tag);
    EXPECT_EQ(ref->digest() ? ref->digest()->String() : "", c.digest);
    EXPECT_EQ(ref->Name(), c.domain + "/" + c.path);
    EXPECT_EQ(ref->String(), c.string);
    EXPECT_EQ(ref->Familiar(), c.familiar);
    EXPECT_EQ(ref->RegistryHost(), c.registry_host);
    EXPECT_EQ(ref->ManifestReference(), c.digest.empty() ? c.tag : c.digest);

    // Both printed forms parse back to the same reference.
    auto again = Reference::Parse(ref->String());
    ASSERT_TRUE(again.ok()) << again.status().message();
    EXPECT_EQ(*again, *ref);
    auto familiar = Reference::Parse(ref->Familiar());
    ASSERT_TRUE(familiar.ok()) << familiar.status().message();
    EXPECT_EQ(*familiar, *ref);
  }
}

struct Refused {
  std::string input;
  std::string why;  // a part of the message that names the problem
};

std::vector<Refused> RefusedCases() {
  return {
      {"", "reference is empty"},
      {"Foo/bar", "repository name must be lowercase"},
      {"alpine/Foo", "repository name must be lowercase"},
      {"LOCALHOST/app", "repository name must be lowercase"},
      {"ghcr.io/Org/app", "repository name must be lowercase"},
      {"alpine:", "tag is empty"},
      {"ghcr.io/app:", "tag is empty"},
      {"alpine@sha256:abc", "invalid digest"},
      {"alpine@sha256:" + std::string(64, 'A'), "invalid digest"},
      {"alpine@md5:" + kHex.substr(0, 32), "unsupported algorithm"},
      {"alpine@" + kDigest + "@" + kDigest, "invalid digest"},
      {"alpine@", "'@' without a digest"},
      {"a:b:c", "invalid character ':' in repository name"},
      {"alpine:.x", "must start with a letter, digit or '_'"},
      {"alpine:-x", "must start with a letter, digit or '_'"},
      {"alpine:" + std::string(129, 'a'), "the limit is 128"},
      {"alpine:a+b", "invalid character '+' in tag"},
      {"alpine:a/b", "port \"a\""},
      {kHex, "reads as an image ID"},
      {kHex + ":1", "reads as an image ID"},
      {"sha256:" + kHex, "a digest is not an image reference"},
      {"sha512:" + kHex512, "a digest is not an image reference"},
      {" alpine", "whitespace"},
      {"alpine ", "whitespace"},
      {"alpine\n", "whitespace"},
      {"al pine", "whitespace"},
      {std::string("alp\x01ine"), "control or non-ASCII"},
      {std::string("alp\0ine", 7), "control or non-ASCII"},
      {"alpine\xc3\xa9", "control or non-ASCII"},
      {"a/../b", "path component \"..\" is not allowed"},
      {"a/./b", "path component \".\" is not allowed"},
      {"../alpine", "empty label"},
      {"a//b", "empty component"},
      {"/alpine", "starts with '/'"},
      {"alpine/", "ends with '/'"},
      {"alpine/:1", "ends with '/'"},
      {"ghcr.io/", "repository name is empty"},
      {"ghcr.io//app", "starts with '/'"},
      {"@" + kDigest, "repository name is empty"},
      {":tag", "repository name is empty"},
      {"myhost:abc/app", "is not a number"},
      {"myhost:/app", "is not a number"},
      {"myhost:99999/app", "is not a number"},
      {"myhost:0/app", "is not a number"},
      {"myhost:-1/app", "is not a number"},
      {":5000/app", "has no host"},
      {"a..b/c", "empty label"},
      {".example.com/c", "empty label"},
      {"-host.com/app", "starts or ends with '-'"},
      {"host-.com/app", "starts or ends with '-'"},
      {"ho_st.com/app", "invalid character '_'"},
      {"[::1/app", "'[' without ']'"},
      {"[zz::1]:5000/app", "not a valid IPv6 literal"},
      {"[]:5000/app", "not a valid IPv6 literal"},
      {"[::1]x/app", "characters after ']'"},
      {"foo/a..b", "invalid separator \"..\""},
      {"foo/a_-b", "invalid separator \"_-\""},
      {"foo/a___b", "invalid separator \"___\""},
      {"foo/a.-b", "invalid separator \".-\""},
      {"foo/-a", "must start with a lowercase letter or digit"},
      {"foo/_a", "must start with a lowercase letter or digit"},
      {"foo/a-", "must end with a lowercase letter or digit"},
      {"foo/a.", "must end with a lowercase letter or digit"},
      {"foo/bar$", "invalid character '$' in repository name"},
      {"foo/b%2fr", "invalid character '%' in repository name"},
      {"foo\\bar", "invalid character '\\' in repository name"},
      {"ghcr.io/" + std::string(248, 'a'), "the limit is 255"},
      {std::string(256 - std::string("docker.io/library/").size(), 'a'), "the limit is 255"},
  };
}

TEST(Reference, RefusesWithClearMessage) {
  std::vector<Refused> cases = RefusedCases();
  EXPECT_GE(cases.size(), 20u);
  for (const Refused& c : cases) {
    SCOPED_TRACE(c.input);
    auto ref = Reference::Parse(c.input);
    ASSERT_FALSE(ref.ok()) << ref->String();
    EXPECT_EQ(ref.status().code(), StatusCode::kInvalidArgument);
    EXPECT_TRUE(ref.status().message().starts_with("invalid reference \""))
        << ref.status().message();
    EXPECT_NE(ref.status().message().find(c.why), std::string::npos) << ref.status().message();
  }
}

TEST(Reference, MessageNamesInputAndProblem) {
  auto ref = Reference::Parse("Foo/bar");
  ASSERT_FALSE(ref.ok());
  EXPECT_EQ(ref.status().message(),
            "invalid reference \"Foo/bar\": repository name must be lowercase");
}

TEST(Reference, MessageEscapesUnprintableInput) {
  auto ref = Reference::Parse(std::string("a\x1b[2Jb\n"));
  ASSERT_FALSE(ref.ok());
  const std::string message = ref.status().message();
  EXPECT_EQ(message.find('\x1b'), std::string::npos) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  EXPECT_NE(message.find("a\\x1b[2Jb\\x0a"), std::string::npos) << message;

  auto long_ref = Reference::Parse(std::string(5000, 'A'));
  ASSERT_FALSE(long_ref.ok());
  EXPECT_LT(long_ref.status().message().size(), 500u);
}

TEST(Reference, DigestWinsForFetching) {
  auto ref = Reference::Parse("ghcr.io/org/app:1.2@" + kDigest);
  ASSERT_TRUE(ref.ok());
  EXPECT_EQ(ref->tag(), "1.2");
  EXPECT_EQ(ref->ManifestReference(), kDigest);

  auto tagged = Reference::Parse("ghcr.io/org/app:1.2");
  ASSERT_TRUE(tagged.ok());
  EXPECT_EQ(tagged->ManifestReference(), "1.2");
}

TEST(Reference, WithDigest) {
  auto tagged = Reference::Parse("alpine:3.20");
  ASSERT_TRUE(tagged.ok());
  auto digest = Digest::Parse(kDigest);
  ASSERT_TRUE(digest.ok());

  Reference pinned = tagged->WithDigest(*digest);
  EXPECT_EQ(pinned.domain(), "docker.io");
  EXPECT_EQ(pinned.path(), "library/alpine");
  EXPECT_EQ(pinned.tag(), "3.20");
  ASSERT_TRUE(pinned.digest().has_value());
  EXPECT_EQ(*pinned.digest(), *digest);
  EXPECT_EQ(pinned.String(), "docker.io/library/alpine:3.20@" + kDigest);
  EXPECT_EQ(pinned.ManifestReference(), kDigest);
  EXPECT_NE(pinned, *tagged);
  EXPECT_EQ(pinned, *Reference::Parse("docker.io/library/alpine:3.20@" + kDigest));

  // Replacing a digest, and the empty digest leaving the reference alone.
  auto other = Digest::Parse("sha256:" + std::string(64, '0'));
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(pinned.WithDigest(*other).digest(), *other);
  EXPECT_EQ(tagged->WithDigest(Digest()), *tagged);
}

TEST(Reference, Equality) {
  EXPECT_EQ(*Reference::Parse("alpine"), *Reference::Parse("docker.io/library/alpine:latest"));
  EXPECT_EQ(*Reference::Parse("alpine"), *Reference::Parse("index.docker.io/alpine"));
  EXPECT_NE(*Reference::Parse("alpine"), *Reference::Parse("alpine:3.20"));
  EXPECT_NE(*Reference::Parse("alpine@" + kDigest), *Reference::Parse("alpine:latest@" + kDigest));
  EXPECT_NE(*Reference::Parse("localhost/app"), *Reference::Parse("localhost:5000/app"));
}

// Whatever passes the parser must be safe to put into a URL or a path: no part holds '/'
// where it should not, no "." or ".." component, no control, space or non-ASCII byte.
TEST(Reference, AcceptedPartsAreSafe) {
  const std::string alphabet = "ab0:/.@_-Z[]\\ \x01\xff%";
  const std::vector<std::string> prefixes = {"", "localhost:5000/", "docker.io/", "a/"};
  std::mt19937 rng(12345);
  int accepted = 0;
  for (int i = 0; i < 100000; ++i) {
    std::string text = prefixes[rng() % prefixes.size()];
    size_t length = 1 + rng() % 10;
    for (size_t j = 0; j < length; ++j) text += alphabet[rng() % alphabet.size()];
    if (rng() % 4 == 0) text += "@" + kDigest;
    auto ref = Reference::Parse(text);
    if (!ref.ok()) {
      EXPECT_EQ(ref.status().code(), StatusCode::kInvalidArgument);
      continue;
    }
    ++accepted;
    SCOPED_TRACE(text);
    for (const std::string* part : {&ref->domain(), &ref->path(), &ref->tag()}) {
      for (char c : *part) {
        auto u = static_cast<unsigned char>(c);
        ASSERT_TRUE(u > 0x20 && u < 0x7f && c != '\\' && c != '%' && c != '@') << *part;
      }
    }
    EXPECT_EQ(ref->domain().find('/'), std::string::npos);
    EXPECT_EQ(ref->tag().find_first_of("/:"), std::string::npos);
    EXPECT_FALSE(ref->path().empty());
    std::string path = "/" + ref->path() + "/";
    EXPECT_EQ(path.find("//"), std::string::npos);
    EXPECT_EQ(path.find("/./"), std::string::npos);
    EXPECT_EQ(path.find("/../"), std::string::npos);
    EXPECT_EQ(ref->path().find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789._-/"),
              std::string::npos);
    auto again = Reference::Parse(ref->String());
    ASSERT_TRUE(again.ok()) << again.status().message();
    EXPECT_EQ(*again, *ref);
  }
  EXPECT_GT(accepted, 100);  // the alphabet does reach the accepting paths
}

}  // namespace
}  // namespace hoist
