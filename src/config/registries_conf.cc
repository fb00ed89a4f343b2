#include "config/registries_conf.h"

#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <exception>
#include <optional>

#include "base/status_macros.h"
#include "base/strings.h"
#include "config/user_files.h"

namespace hoist::config {
namespace {

constexpr size_t kMaxConfBytes = 1 << 20;
constexpr const char* kSystemConf = "/etc/containers/registries.conf";

// Builds "SOURCE:LINE: message" errors for one file.
class Where {
 public:
  explicit Where(const std::string& source) : source_(source) {}
  Status Error(const toml::node* node, const std::string& message) const {
    std::string at = source_;
    if (node != nullptr && node->source().begin.line > 0) {
      at += ":" + std::to_string(node->source().begin.line);
    }
    return InvalidArgumentError(at + ": " + message);
  }

 private:
  const std::string& source_;
};

// Reads an optional string `key` of `table` into *out (untouched when absent).
Status GetString(const toml::table& table, std::string_view key, const std::string& what,
                 const Where& where, std::string* out, bool* present = nullptr) {
  const toml::node* node = table.get(key);
  if (present != nullptr) *present = node != nullptr;
  if (node == nullptr) return OkStatus();
  const auto* value = node->as_string();
  if (value == nullptr) return where.Error(node, what + " must be a string");
  *out = value->get();
  return OkStatus();
}

Status GetBool(const toml::table& table, std::string_view key, const std::string& what,
               const Where& where, bool* out) {
  const toml::node* node = table.get(key);
  if (node == nullptr) return OkStatus();
  const auto* value = node->as_boolean();
  if (value == nullptr) return where.Error(node, what + " must be true or false");
  *out = value->get();
  return OkStatus();
}

bool IsHostChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.';
}

// A DNS name or IPv4 address: labels of [A-Za-z0-9-] separated by single dots.
bool ValidHostname(std::string_view host) {
  if (host.empty() || host.front() == '.' || host.back() == '.') return false;
  if (host.find("..") != std::string_view::npos) return false;
  return std::all_of(host.begin(), host.end(), IsHostChar);
}

// host[:port], or [ipv6][:port].
bool ValidHostPort(std::string_view hp) {
  std::string_view host = hp;
  std::string_view port;
  if (!hp.empty() && hp.front() == '[') {
    size_t close = hp.find(']');
    if (close == std::string_view::npos || close < 2) return false;
    for (char c : hp.substr(1, close - 1)) {
      if (!(std::isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.')) return false;
    }
    std::string_view rest = hp.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return false;
      port = rest.substr(1);
      if (port.empty()) return false;
    }
  } else {
    size_t colon = hp.find(':');
    if (colon != std::string_view::npos) {
      host = hp.substr(0, colon);
      port = hp.substr(colon + 1);
      if (port.empty()) return false;
    }
    if (!ValidHostname(host)) return false;
  }
  if (port.size() > 5) return false;
  return std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Checks a prefix or location and returns it without trailing '/'. Empty input stays empty
// (the caller decides whether that is allowed).
Result<std::string> CleanLocation(std::string_view value, const std::string& what,
                                  bool allow_wildcard, const Where& where, const toml::node* node) {
  std::string_view v = value;
  while (!v.empty() && v.back() == '/') v.remove_suffix(1);
  if (v.empty()) return std::string();
  const std::string quoted = what + " \"" + std::string(value) + "\"";
  if (v.find("://") != std::string_view::npos) {
    return where.Error(node, quoted + ": URI schemes are not supported; write host[:port][/path]");
  }
  for (char c : v) {
    if (static_cast<unsigned char>(c) <= ' ' || static_cast<unsigned char>(c) >= 0x7f) {
      return where.Error(node, quoted + ": contains whitespace or a non-printable character");
    }
  }
  if (v.substr(0, 2) == "*.") {
    if (!allow_wildcard)
      return where.Error(node, quoted + ": a wildcard is only allowed in prefix");
    if (v.find_first_of("/:@") != std::string_view::npos || !ValidHostname(v.substr(2))) {
      return where.Error(node, quoted + ": a wildcard prefix must be of the form *.example.com");
    }
    return std::string(v);
  }
  size_t slash = v.find('/');
  std::string_view host = v.substr(0, slash);
  if (!ValidHostPort(host)) {
    return where.Error(node, quoted + ": \"" + std::string(host) + "\" is not a host[:port]");
  }
  if (slash != std::string_view::npos) {
    std::string_view path = v.substr(slash + 1);
    for (std::string_view part : Split(path, '/')) {
      if (part.empty()) return where.Error(node, quoted + ": empty path component");
    }
    for (char c : path) {
      bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '.' || c == '_' || c == '-' || c == '/' || c == ':' || c == '@' || c == '+';
      if (!ok) return where.Error(node, quoted + ": invalid character in the path");
    }
  }
  return std::string(v);
}

Result<PullFromMirror> ParsePullFromMirror(const toml::table& table, const Where& where,
                                           bool* present) {
  std::string value;
  RETURN_IF_ERROR(GetString(table, "pull-from-mirror", "pull-from-mirror", where, &value, present));
  if (value.empty() || value == "all") return PullFromMirror::kAll;
  if (value == "digest-only") return PullFromMirror::kDigestOnly;
  if (value == "tag-only") return PullFromMirror::kTagOnly;
  return where.Error(
      table.get("pull-from-mirror"),
      "pull-from-mirror \"" + value + "\" is not one of \"all\", \"digest-only\", \"tag-only\"");
}

Result<RegistrySettings> ParseRegistry(const toml::table& table, const Where& where,
                                       const std::string& source) {
  RegistrySettings settings;
  settings.source = source;
  std::string prefix_text, location_text;
  RETURN_IF_ERROR(GetString(table, "prefix", "registry.prefix", where, &prefix_text));
  RETURN_IF_ERROR(GetString(table, "location", "registry.location", where, &location_text));
  ASSIGN_OR_RETURN(std::string prefix,
                   CleanLocation(prefix_text, "prefix", true, where, table.get("prefix")));
  ASSIGN_OR_RETURN(std::string location,
                   CleanLocation(location_text, "location", false, where, table.get("location")));
  if (prefix.empty()) {
    if (location.empty()) return where.Error(&table, "[[registry]] needs a prefix or a location");
    prefix = location;
  } else if (location.empty() && prefix.substr(0, 2) != "*.") {
    return where.Error(&table, "[[registry]] with prefix \"" + prefix +
                                   "\" needs a location (only a *.example.com prefix may omit it)");
  }
  settings.prefix = prefix;

  Endpoint primary;
  primary.location = location;
  RETURN_IF_ERROR(GetBool(table, "insecure", "registry.insecure", where, &primary.insecure));
  RETURN_IF_ERROR(GetBool(table, "blocked", "registry.blocked", where, &settings.blocked));
  bool digest_only = false;
  RETURN_IF_ERROR(GetBool(table, "mirror-by-digest-only", "registry.mirror-by-digest-only", where,
                          &digest_only));
  bool has_pull_from_mirror = false;
  RETURN_IF_ERROR(ParsePullFromMirror(table, where, &has_pull_from_mirror).status());
  if (has_pull_from_mirror) {
    return where.Error(
        table.get("pull-from-mirror"),
        "pull-from-mirror is for [[registry.mirror]] entries, not [[registry]] \"" + prefix + "\"");
  }

  if (const toml::node* mirrors = table.get("mirror")) {
    const toml::array* list = mirrors->as_array();
    if (list == nullptr)
      return where.Error(mirrors, "registry.mirror must be [[registry.mirror]] tables");
    for (const toml::node& item : *list) {
      const toml::table* m = item.as_table();
      if (m == nullptr)
        return where.Error(&item, "registry.mirror must be [[registry.mirror]] tables");
      Endpoint mirror;
      mirror.mirror = true;
      std::string mirror_location;
      RETURN_IF_ERROR(GetString(*m, "location", "mirror.location", where, &mirror_location));
      ASSIGN_OR_RETURN(mirror.location, CleanLocation(mirror_location, "mirror location", false,
                                                      where, m->get("location")));
      if (mirror.location.empty()) return where.Error(m, "[[registry.mirror]] needs a location");
      RETURN_IF_ERROR(GetBool(*m, "insecure", "mirror.insecure", where, &mirror.insecure));
      bool present = false;
      ASSIGN_OR_RETURN(mirror.pull_from_mirror, ParsePullFromMirror(*m, where, &present));
      if (digest_only) {
        if (present) {
          return where.Error(m->get("pull-from-mirror"),
                             "pull-from-mirror cannot be combined with mirror-by-digest-only of "
                             "registry \"" +
                                 prefix + "\"");
        }
        mirror.pull_from_mirror = PullFromMirror::kDigestOnly;
      }
      settings.endpoints.push_back(std::move(mirror));
    }
  }
  settings.endpoints.push_back(std::move(primary));
  return settings;
}

// Interprets a parsed file. Throws nothing itself; the caller still guards toml++ calls.
Status Interpret(const toml::table& root, const std::string& source,
                 std::vector<RegistrySettings>* registries, std::vector<std::string>* unqualified,
                 bool* has_unqualified) {
  const Where where(source);
  if (const toml::node* v1 = root.get("registries")) {
    return where.Error(v1,
                       "version 1 format ([registries.search], [registries.insecure], "
                       "[registries.block]) is not supported; use version 2 "
                       "(unqualified-search-registries and [[registry]] tables, "
                       "see containers-registries.conf(5))");
  }
  if (const toml::node* search = root.get("unqualified-search-registries")) {
    const toml::array* list = search->as_array();
    if (list == nullptr) {
      return where.Error(search, "unqualified-search-registries must be an array of strings");
    }
    *has_unqualified = true;
    for (const toml::node& item : *list) {
      const auto* s = item.as_string();
      if (s == nullptr) {
        return where.Error(&item, "unqualified-search-registries must be an array of strings");
      }
      ASSIGN_OR_RETURN(
          std::string host,
          CleanLocation(s->get(), "unqualified-search-registries entry", false, where, &item));
      if (host.empty() || host.find('/') != std::string::npos) {
        return where.Error(
            &item, "unqualified-search-registries entry \"" + s->get() + "\" is not a host[:port]");
      }
      unqualified->push_back(std::move(host));
    }
  }
  if (const toml::node* regs = root.get("registry")) {
    const toml::array* list = regs->as_array();
    if (list == nullptr) return where.Error(regs, "registry must be [[registry]] tables");
    for (const toml::node& item : *list) {
      const toml::table* t = item.as_table();
      if (t == nullptr) return where.Error(&item, "registry must be [[registry]] tables");
      ASSIGN_OR_RETURN(RegistrySettings settings, ParseRegistry(*t, where, source));
      bool duplicate =
          std::any_of(registries->begin(), registries->end(),
                      [&](const RegistrySettings& r) { return r.prefix == settings.prefix; });
      if (!duplicate) registries->push_back(std::move(settings));  // the first one wins
    }
  }
  return OkStatus();
}

bool IsWildcard(std::string_view prefix) { return prefix.substr(0, 2) == "*."; }

// The length of `ref_text` that `prefix` matches, or -1.
int MatchLength(std::string_view ref_text, std::string_view prefix) {
  size_t domain_end = ref_text.find('/');
  if (domain_end == std::string_view::npos) domain_end = ref_text.size();
  std::string_view domain = ref_text.substr(0, domain_end);
  if (IsWildcard(prefix)) {
    std::string_view suffix = prefix.substr(1);  // ".example.com"
    size_t host_end = domain.front() == '[' ? domain.size() : domain.find(':');
    if (host_end == std::string_view::npos) host_end = domain.size();
    std::string_view hostname = domain.substr(0, host_end);
    if (hostname.size() > suffix.size() &&
        EqualsIgnoreCase(hostname.substr(hostname.size() - suffix.size()), suffix)) {
      return static_cast<int>(host_end);
    }
    return -1;
  }
  if (prefix.find('/') == std::string_view::npos) {
    // Only a whole host[:port]: "example.com" must not match "example.com:5000/x".
    return domain == prefix ? static_cast<int>(domain.size()) : -1;
  }
  if (ref_text.substr(0, prefix.size()) != prefix) return -1;
  if (ref_text.size() == prefix.size()) return static_cast<int>(prefix.size());
  char next = ref_text[prefix.size()];
  return (next == '/' || next == ':' || next == '@') ? static_cast<int>(prefix.size()) : -1;
}

std::string HostOfLocation(std::string_view location) {
  std::string host = ToLower(location.substr(0, location.find('/')));
  if (host == "index.docker.io") host = "docker.io";
  return host;
}

}  // namespace

Result<RegistriesConf> RegistriesConf::Parse(std::string_view toml_text, std::string source_name) {
  RegistriesConf conf;
  try {
    toml::table root;
    try {
      root = toml::parse(toml_text, std::string_view(source_name));
    } catch (const toml::parse_error& e) {
      return InvalidArgumentError(source_name + ":" + std::to_string(e.source().begin.line) + ": " +
                                  std::string(e.description()));
    }
    RETURN_IF_ERROR(Interpret(root, source_name, &conf.registries_,
                              &conf.unqualified_search_registries_,
                              &conf.has_unqualified_search_registries_));
  } catch (const std::exception& e) {
    return InternalError(source_name + ": " + e.what());
  } catch (...) {
    return InternalError(source_name + ": unexpected error while parsing");
  }
  std::sort(
      conf.registries_.begin(), conf.registries_.end(),
      [](const RegistrySettings& a, const RegistrySettings& b) { return a.prefix < b.prefix; });
  conf.files_.push_back(std::move(source_name));
  return conf;
}

void RegistriesConf::MergeFrom(RegistriesConf later) {
  for (RegistrySettings& r : later.registries_) {
    auto it = std::find_if(registries_.begin(), registries_.end(),
                           [&](const RegistrySettings& mine) { return mine.prefix == r.prefix; });
    if (it != registries_.end()) {
      *it = std::move(r);
    } else {
      registries_.push_back(std::move(r));
    }
  }
  std::sort(
      registries_.begin(), registries_.end(),
      [](const RegistrySettings& a, const RegistrySettings& b) { return a.prefix < b.prefix; });
  if (later.has_unqualified_search_registries_) {
    unqualified_search_registries_ = std::move(later.unqualified_search_registries_);
    has_unqualified_search_registries_ = true;
  }
  for (std::string& f : later.files_) files_.push_back(std::move(f));
}

Result<RegistriesConf> RegistriesConf::LoadFile(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadUserFile(path, kMaxConfBytes));
  ASSIGN_OR_RETURN(RegistriesConf conf, Parse(text, path));
  const std::string dropin_dir = path + ".d";  // "registries.conf" → "registries.conf.d"
  ASSIGN_OR_RETURN(std::vector<std::string> names, ListDirectory(dropin_dir));
  for (const std::string& name : names) {
    if (name.size() <= 5 || name.substr(name.size() - 5) != ".conf") continue;
    const std::string dropin = dropin_dir + "/" + name;
    if (!IsRegularFile(dropin)) continue;
    Result<std::string> dropin_text = ReadUserFile(dropin, kMaxConfBytes);
    if (!dropin_text.ok()) {
      if (dropin_text.status().code() == StatusCode::kNotFound) continue;  // removed meanwhile
      return dropin_text.status();
    }
    ASSIGN_OR_RETURN(RegistriesConf more, Parse(*dropin_text, dropin));
    conf.MergeFrom(std::move(more));
  }
  return conf;
}

Result<RegistriesConf> RegistriesConf::Load() {
  std::string explicit_path = GetEnv("HOIST_REGISTRIES_CONF");
  if (!explicit_path.empty()) {
    Result<RegistriesConf> conf = LoadFile(explicit_path);
    if (!conf.ok()) return conf.status().WithContext("HOIST_REGISTRIES_CONF");
    return conf;
  }
  std::string user_dir = UserConfigDir();
  if (!user_dir.empty()) {
    std::string user_conf = user_dir + "/containers/registries.conf";
    if (IsRegularFile(user_conf)) return LoadFile(user_conf);
  }
  if (IsRegularFile(kSystemConf)) return LoadFile(kSystemConf);
  return RegistriesConf();
}

int RegistriesConf::FindEntry(std::string_view ref_text, size_t* match_length) const {
  int best = -1;
  for (size_t i = 0; i < registries_.size(); ++i) {
    const std::string& prefix = registries_[i].prefix;
    int n = MatchLength(ref_text, prefix);
    if (n < 0) continue;
    if (best >= 0) {
      const std::string& best_prefix = registries_[best].prefix;
      if (prefix.size() < best_prefix.size()) continue;
      // On equal lengths an exact prefix beats a wildcard one.
      if (prefix.size() == best_prefix.size() && (IsWildcard(prefix) || !IsWildcard(best_prefix))) {
        continue;
      }
    }
    best = static_cast<int>(i);
    *match_length = static_cast<size_t>(n);
  }
  return best;
}

RegistrySettings RegistriesConf::SettingsFor(const Reference& ref) const {
  size_t match_length = 0;
  int index = FindEntry(ref.String(), &match_length);
  if (index >= 0) return registries_[index];
  RegistrySettings none;
  none.endpoints.push_back(Endpoint{ref.domain(), false, false, PullFromMirror::kAll});
  return none;
}

Result<std::vector<RegistriesConf::Route>> RegistriesConf::RoutesFor(const Reference& ref) const {
  const std::string ref_text = ref.String();
  size_t match_length = 0;
  int index = FindEntry(ref_text, &match_length);
  std::vector<Route> routes;
  if (index < 0) {
    routes.push_back(Route{Endpoint{ref.domain(), false, false, PullFromMirror::kAll},
                           ref.RegistryHost(), ref.path(), ref.domain()});
    return routes;
  }
  const RegistrySettings& entry = registries_[index];
  if (entry.blocked) {
    return PermissionDeniedError("registry " + entry.prefix + " is blocked by " + entry.source);
  }
  const bool by_digest = ref.digest().has_value();
  for (const Endpoint& endpoint : entry.endpoints) {
    if (endpoint.mirror) {
      if (endpoint.pull_from_mirror == PullFromMirror::kDigestOnly && !by_digest) continue;
      if (endpoint.pull_from_mirror == PullFromMirror::kTagOnly && by_digest) continue;
    }
    if (endpoint.location.empty()) {  // wildcard prefix without location: the name as is
      routes.push_back(Route{endpoint, ref.RegistryHost(), ref.path(), ref.domain()});
      continue;
    }
    const std::string rewritten_text = endpoint.location + ref_text.substr(match_length);
    const std::string context = entry.source + ": [[registry]] \"" + entry.prefix +
                                "\": location \"" + endpoint.location + "\" for " + ref_text;
    Result<Reference> rewritten = Reference::Parse(rewritten_text);
    if (!rewritten.ok()) return rewritten.status().WithContext(context);
    if (ToLower(rewritten->domain()) != HostOfLocation(endpoint.location)) {
      return InvalidArgumentError(context + ": \"" + rewritten_text +
                                  "\" does not start with a registry host");
    }
    routes.push_back(
        Route{endpoint, rewritten->RegistryHost(), rewritten->path(), rewritten->domain()});
  }
  return routes;
}

}  // namespace hoist::config
