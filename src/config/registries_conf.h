// containers-registries.conf(5), version 2: which registry, mirror or rewritten location an
// image name is pulled from, whether it is blocked or insecure, and the registries searched
// for unqualified names. The files are the ones podman, skopeo and buildah read.
//
//   unqualified-search-registries = ["registry.fedoraproject.org", "docker.io"]
//
//   [[registry]]
//   prefix = "example.com/foo"                        # which names this entry is for
//   location = "internal-registry.example.net/bar"    # where they really live
//   insecure = false                                  # allow http and unverified TLS
//   blocked = false                                   # refuse to pull
//   mirror-by-digest-only = false                     # mirrors only for @digest pulls
//   [[registry.mirror]]
//   location = "mirror.local/foo"
//   insecure = true
//   pull-from-mirror = "digest-only"                  # "all" | "digest-only" | "tag-only"
//
// A pull of example.com/foo/app:1 then tries mirror.local/foo/app:1, then
// internal-registry.example.net/bar/app:1.
//
// Prefix and location are host[:port][/namespace...][/repo][(:tag|@digest)] with no scheme;
// a prefix may also be "*.example.com" (any subdomain of example.com, no port or path), whose
// location may be omitted (the name is then used unchanged). Only the entry with the longest
// prefix that matches a name applies; a prefix matches when the name starts with it and goes
// on with '/', ':' (tag) or '@', or ends there. A prefix without a path matches the whole
// host[:port] only (so "example.com" does not match "example.com:5000/x").
//
// Unknown keys (credential-helpers, short-name-mode, aliases, ...) are ignored: other tools add
// keys. The version 1 format ([registries.search] ...) is refused with an error.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "hoist/reference.h"
#include "hoist/status.h"

namespace hoist::config {

enum class PullFromMirror { kAll, kDigestOnly, kTagOnly };

struct Endpoint {
  // "mirror.example.com:5000" or with a namespace "mirror.example.com/dockerhub". Empty only
  // for the primary endpoint of a wildcard prefix without location (the name unchanged).
  std::string location;
  bool insecure = false;
  bool mirror = false;
  PullFromMirror pull_from_mirror = PullFromMirror::kAll;  // mirrors only

  friend bool operator==(const Endpoint&, const Endpoint&) = default;
};

// One [[registry]] entry.
struct RegistrySettings {
  std::string prefix;  // the matched [[registry]] prefix ("" when none matched)
  bool blocked = false;
  std::vector<Endpoint> endpoints;  // mirrors in order, then the registry's own location
  std::string source;               // the file the entry came from ("" for the default)
};

class RegistriesConf {
 public:
  // An empty configuration: every name is pulled from its own registry.
  RegistriesConf() = default;

  // Reads the configuration podman would: $HOIST_REGISTRIES_CONF (which must exist) if set,
  // else ${XDG_CONFIG_HOME:-~/.config}/containers/registries.conf, else
  // /etc/containers/registries.conf, each with its drop-ins (LoadFile). No file → empty.
  static Result<RegistriesConf> Load();

  // Reads `path` (NotFound when missing), then the *.conf files of the directory `path`.d
  // (registries.conf → registries.conf.d), in name order. A drop-in's [[registry]] entries
  // replace earlier ones with the same prefix; its unqualified-search-registries, when
  // present, replace the list.
  static Result<RegistriesConf> LoadFile(const std::string& path);

  // Parses one file's text. `source_name` names it in errors and in RegistrySettings::source.
  // Errors are InvalidArgument "SOURCE:LINE: what is wrong". Within one file the first of
  // several entries with the same prefix wins.
  static Result<RegistriesConf> Parse(std::string_view toml_text, std::string source_name);

  // Where a pull of a name can be served from: the endpoint, the host[:port] to connect to
  // ("registry-1.docker.io" for docker.io), the repository path on it after the location
  // rewrite ("library/alpine"), and that host as references name it ("docker.io"): the name
  // its credentials are looked up under.
  struct Route {
    Endpoint endpoint;
    std::string host;
    std::string repository;
    std::string registry;
  };

  // The routes for `ref`, in the order to try them: the mirrors of the matching entry (those
  // whose pull-from-mirror admits a pull by digest when `ref` has a digest, by tag otherwise),
  // then the primary location. With no matching entry, the reference's own registry and path.
  // A blocked entry is PermissionDenied "registry PREFIX is blocked by FILE"; a rewrite that
  // does not give a valid reference is InvalidArgument naming the file.
  Result<std::vector<Route>> RoutesFor(const Reference& ref) const;

  // The entry that applies to `ref` (a RegistrySettings with an empty prefix when none does,
  // whose one endpoint is the reference's own registry).
  RegistrySettings SettingsFor(const Reference& ref) const;

  // Every entry, sorted by prefix.
  const std::vector<RegistrySettings>& registries() const { return registries_; }
  // host[:port] entries to try for names without a registry, in order.
  const std::vector<std::string>& unqualified_search_registries() const {
    return unqualified_search_registries_;
  }
  // The files read, in order, for `hoist config`.
  const std::vector<std::string>& files() const { return files_; }

 private:
  // Adds `later`'s settings over these (drop-in semantics).
  void MergeFrom(RegistriesConf later);
  // The index in registries_ of the entry for `ref_text` (Reference::String()) and the length
  // of the matched text; -1 when none.
  int FindEntry(std::string_view ref_text, size_t* match_length) const;

  std::vector<RegistrySettings> registries_;  // unique prefixes, sorted
  std::vector<std::string> unqualified_search_registries_;
  bool has_unqualified_search_registries_ = false;  // the key was present
  std::vector<std::string> files_;
};

}  // namespace hoist::config
