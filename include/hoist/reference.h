// An image reference "[host[:port]/]path[:tag][@digest]", parsed and normalized the way
// Docker does it:
//
//   alpine                        → docker.io/library/alpine:latest
//   foo/bar:1                     → docker.io/foo/bar:1
//   index.docker.io/alpine        → docker.io/library/alpine:latest
//   localhost:5000/app@sha256:…   → localhost:5000/app@sha256:…   (no tag)
//   ghcr.io/org/app:1@sha256:…    → both kept; the digest is what gets fetched
//
// The first '/'-separated component is the registry domain when it contains '.' or ':' or is
// "localhost"; otherwise the registry is docker.io. Parse is the validation gate for
// everything later built from a reference (URLs, store annotations): a Reference that exists
// has a domain of [A-Za-z0-9.-] labels with an optional numeric port (or a bracketed IPv6
// literal), a lowercase path of components that start and end with [a-z0-9] (so never "." or
// ".."), a tag of [A-Za-z0-9_.-] that starts with [A-Za-z0-9_], and a validated digest.
// No part holds whitespace, control characters or non-ASCII bytes.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "hoist/digest.h"
#include "hoist/status.h"

namespace hoist {

class Reference {
 public:
  // An empty reference (every field empty). Only Parse produces valid references; this
  // exists so a Reference can be a member that is assigned later.
  Reference() = default;

  // Parses and normalizes `text`. Every failure is InvalidArgument with a message of the
  // form `invalid reference "TEXT": what is wrong`.
  static Result<Reference> Parse(std::string_view text);

  // "docker.io", "ghcr.io", "127.0.0.1:5000", "[::1]:5000", "localhost:5000". Kept as
  // written, except that "index.docker.io" becomes "docker.io".
  const std::string& domain() const { return domain_; }
  // "library/alpine", "org/app". Lowercase; never starts or ends with '/'.
  const std::string& path() const { return path_; }
  // The tag as written; "latest" when neither tag nor digest was given; "" when only a
  // digest was given.
  const std::string& tag() const { return tag_; }
  const std::optional<Digest>& digest() const { return digest_; }

  // domain() + "/" + path().
  std::string Name() const;
  // Name() + (":" + tag if any) + ("@" + digest if any). Parses back to an equal Reference.
  std::string String() const;
  // Docker's short form: "docker.io/" and a lone "library/" are dropped ("alpine:3.20",
  // "org/app:1", "ghcr.io/x/y@sha256:…"). The full name is kept whenever the short one would
  // parse differently, so Familiar() also parses back to an equal Reference.
  std::string Familiar() const;
  // The host[:port] to connect to: "registry-1.docker.io" for docker.io, otherwise domain().
  std::string RegistryHost() const;
  // What to ask the registry for: the digest string when there is a digest (the digest wins
  // over the tag), else the tag.
  std::string ManifestReference() const;
  // The same name and tag with digest `d`. An empty `d` returns the reference unchanged.
  Reference WithDigest(const Digest& d) const;

  friend bool operator==(const Reference&, const Reference&) = default;

 private:
  std::string domain_;
  std::string path_;
  std::string tag_;
  std::optional<Digest> digest_;
};

}  // namespace hoist
