#include "hoist/reference.h"

#include <cstddef>
#include <string>
#include <string_view>

#include "base/status_macros.h"
#include "base/strings.h"

namespace hoist {
namespace {

constexpr std::string_view kDefaultDomain = "docker.io";
constexpr std::string_view kLegacyDefaultDomain = "index.docker.io";
constexpr std::string_view kDefaultRegistryHost = "registry-1.docker.io";
constexpr std::string_view kOfficialRepoPrefix = "library/";
constexpr std::string_view kDefaultTag = "latest";
constexpr size_t kMaxNameLength = 255;  // domain + "/" + path, after normalization
constexpr size_t kMaxTagLength = 128;

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || IsDigit(c); }
bool IsAlnum(char c) { return IsLowerAlnum(c) || (c >= 'A' && c <= 'Z'); }
bool IsWordChar(char c) { return IsAlnum(c) || c == '_'; }
bool IsHexDigit(char c) { return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
bool IsLowerHex(std::string_view s, size_t length) {
  if (s.size() != length) return false;
  for (char c : s) {
    if (!IsDigit(c) && !(c >= 'a' && c <= 'f')) return false;
  }
  return true;
}

// Docker's rule for the first component of a name: it names a registry when it contains '.'
// or ':' or is exactly "localhost".
bool LooksLikeDomain(std::string_view component) {
  return component.find_first_of(".:") != std::string_view::npos || component == "localhost";
}

// Checks host[:port] where host is dot-separated labels of [A-Za-z0-9-] that neither start
// nor end with '-', or a bracketed IPv6 literal; port is a number from 1 to 65535.
Status CheckDomain(std::string_view domain) {
  std::string_view host = domain;
  std::string_view port;
  bool has_port = false;
  if (!domain.empty() && domain.front() == '[') {
    size_t close = domain.find(']');
    if (close == std::string_view::npos) {
      return InvalidArgumentError("domain " + Quote(domain) + " has '[' without ']'");
    }
    std::string_view address = domain.substr(1, close - 1);
    bool address_ok = address.find(':') != std::string_view::npos;
    for (char c : address) address_ok = address_ok && (IsHexDigit(c) || c == ':');
    if (!address_ok) {
      return InvalidArgumentError("domain " + Quote(domain) + " is not a valid IPv6 literal");
    }
    std::string_view rest = domain.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') {
        return InvalidArgumentError("domain " + Quote(domain) + " has characters after ']'");
      }
      has_port = true;
      port = rest.substr(1);
    }
  } else {
    size_t colon = domain.find(':');
    if (colon != std::string_view::npos) {
      has_port = true;
      port = domain.substr(colon + 1);
      host = domain.substr(0, colon);
    }
    if (host.empty()) return InvalidArgumentError("domain " + Quote(domain) + " has no host");
    for (std::string_view label : Split(host, '.')) {
      if (label.empty()) {
        return InvalidArgumentError("domain " + Quote(domain) + " has an empty label");
      }
      for (char c : label) {
        if (!IsAlnum(c) && c != '-') {
          return InvalidArgumentError("domain " + Quote(domain) + " has invalid character '" +
                                      TerminalSafe(std::string(1, c)) + "'");
        }
      }
      if (label.front() == '-' || label.back() == '-') {
        return InvalidArgumentError("domain " + Quote(domain) +
                                    " has a label that starts or ends with '-'");
      }
    }
  }
  if (has_port) {
    bool port_ok = !port.empty() && port.size() <= 5;
    unsigned value = 0;
    for (char c : port) {
      port_ok = port_ok && IsDigit(c);
      if (port_ok) value = value * 10 + static_cast<unsigned>(c - '0');
    }
    if (!port_ok || value == 0 || value > 65535) {
      return InvalidArgumentError("port " + Quote(port) + " of domain " + Quote(domain) +
                                  " is not a number from 1 to 65535");
    }
  }
  return OkStatus();
}

// One path component: [a-z0-9]+ runs joined by exactly one separator each, where a separator
// is ".", "_", "__" or one or more '-'. So a component never starts or ends with a separator
// and is never "." or "..".
Status CheckPathComponent(std::string_view component) {
  if (component == "." || component == "..") {
    return InvalidArgumentError("path component " + Quote(component) + " is not allowed");
  }
  if (!IsLowerAlnum(component.front())) {
    return InvalidArgumentError("path component " + Quote(component) +
                                " must start with a lowercase letter or digit");
  }
  size_t i = 0;
  while (i < component.size()) {
    while (i < component.size() && IsLowerAlnum(component[i])) ++i;
    if (i == component.size()) break;
    size_t separator_start = i;
    while (i < component.size() && !IsLowerAlnum(component[i])) {
      char c = component[i];
      if (c != '.' && c != '_' && c != '-') {
        return InvalidArgumentError("invalid character '" + TerminalSafe(std::string(1, c)) +
                                    "' in repository name");
      }
      ++i;
    }
    if (i == component.size()) {
      return InvalidArgumentError("path component " + Quote(component) +
                                  " must end with a lowercase letter or digit");
    }
    std::string_view separator = component.substr(separator_start, i - separator_start);
    bool all_dashes = separator.find_first_not_of('-') == std::string_view::npos;
    if (separator != "." && separator != "_" && separator != "__" && !all_dashes) {
      return InvalidArgumentError("path component " + Quote(component) + " has invalid separator " +
                                  Quote(separator));
    }
  }
  return OkStatus();
}

// The repository path: one or more valid components joined by single '/'.
Status CheckPath(std::string_view path) {
  if (path.empty()) return InvalidArgumentError("repository name is empty");
  if (path.front() == '/') return InvalidArgumentError("repository name starts with '/'");
  if (path.back() == '/') return InvalidArgumentError("repository name ends with '/'");
  for (char c : path) {
    if (c >= 'A' && c <= 'Z') return InvalidArgumentError("repository name must be lowercase");
  }
  for (std::string_view component : Split(path, '/')) {
    if (component.empty()) {
      return InvalidArgumentError("repository name has an empty component (\"//\")");
    }
    RETURN_IF_ERROR(CheckPathComponent(component));
  }
  return OkStatus();
}

// A tag: [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}.
Status CheckTag(std::string_view tag) {
  if (tag.empty()) return InvalidArgumentError("tag is empty (trailing ':')");
  if (tag.size() > kMaxTagLength) {
    return InvalidArgumentError("tag is " + std::to_string(tag.size()) +
                                " characters long; the limit is " + std::to_string(kMaxTagLength));
  }
  if (!IsWordChar(tag.front())) {
    return InvalidArgumentError("tag " + Quote(tag) + " must start with a letter, digit or '_'");
  }
  for (char c : tag) {
    if (!IsWordChar(c) && c != '.' && c != '-') {
      return InvalidArgumentError("invalid character '" + TerminalSafe(std::string(1, c)) +
                                  "' in tag " + Quote(tag));
    }
  }
  return OkStatus();
}

// A name written without a domain that would not read as a repository: a bare 64-hex
// string (an image ID), or "sha256:<hex>" / "sha512:<hex>" (a digest missing its name).
// `tag` is "" when none was written.
Status CheckNotIdentifier(std::string_view name, std::string_view tag) {
  if (IsLowerHex(name, 64)) {
    return InvalidArgumentError(
        "repository name is a 64-character hex string, which reads as an image ID");
  }
  if ((name == "sha256" && IsLowerHex(tag, 64)) || (name == "sha512" && IsLowerHex(tag, 128))) {
    return InvalidArgumentError("a digest is not an image reference; write NAME@" +
                                std::string(name) + ":...");
  }
  return OkStatus();
}

// ":tag" and "@digest", each when present.
std::string Suffix(const std::string& tag, const std::optional<Digest>& digest) {
  std::string out;
  if (!tag.empty()) out += ":" + tag;
  if (digest) out += "@" + digest->String();
  return out;
}

// What Parse does; the caller puts `invalid reference "TEXT"` in front of any error.
Status ParseInto(std::string_view text, std::string* domain, std::string* path, std::string* tag,
                 std::optional<Digest>* digest) {
  if (text.empty()) return InvalidArgumentError("reference is empty");
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    if (u == ' ' || (u >= '\t' && u <= '\r')) return InvalidArgumentError("contains whitespace");
    if (u < 0x20 || u > 0x7e) {
      return InvalidArgumentError("contains a control or non-ASCII character");
    }
  }

  // name[:tag][@digest]: the digest follows the first '@'; the tag follows a ':' that comes
  // after the last '/' (a ':' before it belongs to the domain's port).
  std::string_view name = text;
  size_t at = text.find('@');
  if (at != std::string_view::npos) {
    name = text.substr(0, at);
    std::string_view digest_text = text.substr(at + 1);
    if (digest_text.empty()) return InvalidArgumentError("'@' without a digest");
    ASSIGN_OR_RETURN(*digest, Digest::Parse(digest_text));
  }
  bool has_tag = false;
  size_t colon = name.rfind(':');
  size_t last_slash = name.rfind('/');
  if (colon != std::string_view::npos &&
      (last_slash == std::string_view::npos || colon > last_slash)) {
    has_tag = true;
    std::string_view tag_text = name.substr(colon + 1);
    name = name.substr(0, colon);
    RETURN_IF_ERROR(CheckTag(tag_text));
    *tag = std::string(tag_text);
  }
  if (name.empty()) return InvalidArgumentError("repository name is empty");

  // [domain/]path
  std::string_view remote = name;
  size_t first_slash = name.find('/');
  if (first_slash != std::string_view::npos && LooksLikeDomain(name.substr(0, first_slash))) {
    std::string_view domain_text = name.substr(0, first_slash);
    RETURN_IF_ERROR(CheckDomain(domain_text));
    *domain = domain_text == kLegacyDefaultDomain ? std::string(kDefaultDomain)
                                                  : std::string(domain_text);
    remote = name.substr(first_slash + 1);
  } else {
    RETURN_IF_ERROR(CheckNotIdentifier(remote, has_tag ? std::string_view(*tag) : ""));
    *domain = std::string(kDefaultDomain);
  }
  RETURN_IF_ERROR(CheckPath(remote));
  *path = std::string(remote);
  if (*domain == kDefaultDomain && path->find('/') == std::string::npos) {
    path->insert(0, kOfficialRepoPrefix);
  }
  size_t name_length = domain->size() + 1 + path->size();
  if (name_length > kMaxNameLength) {
    return InvalidArgumentError("name is " + std::to_string(name_length) +
                                " characters long; the limit is " + std::to_string(kMaxNameLength));
  }
  if (!has_tag && !digest->has_value()) *tag = std::string(kDefaultTag);
  return OkStatus();
}

}  // namespace

Result<Reference> Reference::Parse(std::string_view text) {
  Reference ref;
  Status status = ParseInto(text, &ref.domain_, &ref.path_, &ref.tag_, &ref.digest_);
  if (!status.ok()) {
    return InvalidArgumentError("invalid reference " + Quote(text) + ": " + status.message());
  }
  return ref;
}

std::string Reference::Name() const { return domain_ + "/" + path_; }

std::string Reference::String() const { return Name() + Suffix(tag_, digest_); }

std::string Reference::Familiar() const {
  if (domain_ != kDefaultDomain) return String();
  std::string_view short_name = path_;
  if (short_name.starts_with(kOfficialRepoPrefix) &&
      short_name.find('/', kOfficialRepoPrefix.size()) == std::string_view::npos) {
    short_name.remove_prefix(kOfficialRepoPrefix.size());
  }
  // Keep the full name where the short one would parse differently: its first component
  // would be taken for a domain, or it would read as an image ID or a bare digest.
  size_t slash = short_name.find('/');
  if (slash != std::string_view::npos && LooksLikeDomain(short_name.substr(0, slash))) {
    return String();
  }
  if (!CheckNotIdentifier(short_name, tag_).ok()) return String();
  return std::string(short_name) + Suffix(tag_, digest_);
}

std::string Reference::RegistryHost() const {
  if (domain_ == kDefaultDomain) return std::string(kDefaultRegistryHost);
  return domain_;
}

std::string Reference::ManifestReference() const {
  if (digest_) return digest_->String();
  return tag_;
}

Reference Reference::WithDigest(const Digest& d) const {
  Reference out = *this;
  if (!d.empty()) out.digest_ = d;
  return out;
}

}  // namespace hoist
