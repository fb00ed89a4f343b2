#include "trust/policy.h"

#include <set>

#include "base/json.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "config/user_files.h"

namespace hoist::trust {

namespace {

using Json = nlohmann::json;

Status Bad(const std::string& where, const std::string& what) {
  return InvalidArgumentError(where + ": " + what);
}

// Every key of `object` must be in `allowed`.
Status OnlyFields(const Json& object, const std::set<std::string>& allowed,
                  const std::string& where) {
  for (const auto& [key, value] : object.items()) {
    if (!allowed.contains(key)) return Bad(where, "unknown field " + Quote(key));
  }
  return OkStatus();
}

Result<std::string> StringField(const Json& object, const std::string& key,
                                const std::string& where) {
  auto it = object.find(key);
  if (it == object.end()) return Bad(where, "missing field " + Quote(key));
  if (!it->is_string()) return Bad(where, Quote(key) + " is not a string");
  return it->get<std::string>();
}

// The last path component holds the tag or digest, when there is one.
bool IsNameOnly(std::string_view text) {
  auto slash = text.rfind('/');
  std::string_view last = slash == std::string_view::npos ? text : text.substr(slash + 1);
  return last.find(':') == std::string_view::npos && last.find('@') == std::string_view::npos;
}

// host[:port]: what a remapIdentity prefix or a docker scope may be without a path.
bool IsHost(std::string_view s) {
  auto colon = s.find(':');
  std::string_view host = s.substr(0, colon);
  if (host.empty()) return false;
  for (char c : host) {
    if (!isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-') return false;
  }
  if (colon == std::string_view::npos) return true;
  std::string_view port = s.substr(colon + 1);
  if (port.empty() || port.size() > 5) return false;
  for (char c : port) {
    if (!isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// A repository or namespace written in full ("host/ns/repo"), or a bare host.
bool IsNormalizedName(std::string_view s) {
  if (IsHost(s)) return true;
  if (!IsNameOnly(s)) return false;
  auto ref = Reference::Parse(s);
  return ref.ok() && ref->Name() == s;
}

Result<SignedIdentity> ParseIdentity(const Json& j, const std::string& where) {
  SignedIdentity id;
  if (!j.is_object()) return Bad(where, "signedIdentity is not an object");
  ASSIGN_OR_RETURN(std::string type, StringField(j, "type", where + ": signedIdentity"));
  const std::string at = where + ": signedIdentity " + Quote(type);
  if (type == "matchRepoDigestOrExact" || type == "matchExact" || type == "matchRepository") {
    RETURN_IF_ERROR(OnlyFields(j, {"type"}, at));
    id.kind = type == "matchExact"        ? SignedIdentity::Kind::kMatchExact
              : type == "matchRepository" ? SignedIdentity::Kind::kMatchRepository
                                          : SignedIdentity::Kind::kMatchRepoDigestOrExact;
  } else if (type == "exactReference") {
    RETURN_IF_ERROR(OnlyFields(j, {"type", "dockerReference"}, at));
    ASSIGN_OR_RETURN(id.reference, StringField(j, "dockerReference", at));
    auto ref = Reference::Parse(id.reference);
    if (!ref.ok() || IsNameOnly(id.reference)) {
      return Bad(at,
                 "dockerReference " + Quote(id.reference) + " is not a name with a tag or digest");
    }
    id.kind = SignedIdentity::Kind::kExactReference;
  } else if (type == "exactRepository") {
    RETURN_IF_ERROR(OnlyFields(j, {"type", "dockerRepository"}, at));
    ASSIGN_OR_RETURN(id.repository, StringField(j, "dockerRepository", at));
    if (!Reference::Parse(id.repository).ok()) {
      return Bad(at, "dockerRepository " + Quote(id.repository) + " is not a repository");
    }
    id.kind = SignedIdentity::Kind::kExactRepository;
  } else if (type == "remapIdentity") {
    RETURN_IF_ERROR(OnlyFields(j, {"type", "prefix", "signedPrefix"}, at));
    ASSIGN_OR_RETURN(id.prefix, StringField(j, "prefix", at));
    ASSIGN_OR_RETURN(id.signed_prefix, StringField(j, "signedPrefix", at));
    for (const std::string& p : {id.prefix, id.signed_prefix}) {
      if (!IsNormalizedName(p)) {
        return Bad(at, Quote(p) + " is not a host[:port], namespace or repository");
      }
    }
    id.kind = SignedIdentity::Kind::kRemapIdentity;
  } else {
    return Bad(where, "unknown signedIdentity type " + Quote(type));
  }
  return id;
}

// keyPath / keyPaths / keyData: exactly one.
Status ParseKeys(const Json& j, bool allow_key_paths, const std::string& where, Requirement* r) {
  int sources = 0;
  if (auto it = j.find("keyPath"); it != j.end()) {
    ++sources;
    if (!it->is_string() || it->get<std::string>().empty()) {
      return Bad(where, "keyPath is not a file name");
    }
    r->key_paths.push_back(it->get<std::string>());
  }
  if (auto it = j.find("keyPaths"); allow_key_paths && it != j.end()) {
    ++sources;
    if (!it->is_array() || it->empty()) return Bad(where, "keyPaths is not a list of files");
    for (const auto& p : *it) {
      if (!p.is_string() || p.get<std::string>().empty()) {
        return Bad(where, "keyPaths is not a list of files");
      }
      r->key_paths.push_back(p.get<std::string>());
    }
  }
  if (auto it = j.find("keyData"); it != j.end()) {
    ++sources;
    if (!it->is_string() || !Base64Decode(it->get<std::string>(), &r->key_data) ||
        r->key_data.empty()) {
      return Bad(where, "keyData is not base64");
    }
  }
  if (sources != 1) {
    return Bad(where, allow_key_paths ? "exactly one of keyPath, keyPaths and keyData is needed"
                                      : "exactly one of keyPath and keyData is needed");
  }
  return OkStatus();
}

Result<Requirement> ParseRequirement(const Json& j, const std::string& where) {
  if (!j.is_object()) return Bad(where, "a requirement is not an object");
  ASSIGN_OR_RETURN(std::string type, StringField(j, "type", where));
  const std::string at = where + ": " + Quote(type);
  Requirement r;
  if (type == "insecureAcceptAnything" || type == "reject") {
    RETURN_IF_ERROR(OnlyFields(j, {"type"}, at));
    r.type =
        type == "reject" ? Requirement::Type::kReject : Requirement::Type::kInsecureAcceptAnything;
    return r;
  }
  if (type == "signedBy") {
    r.type = Requirement::Type::kSignedBy;
    RETURN_IF_ERROR(
        OnlyFields(j, {"type", "keyType", "keyPath", "keyPaths", "keyData", "signedIdentity"}, at));
    ASSIGN_OR_RETURN(std::string key_type, StringField(j, "keyType", at));
    if (key_type != "GPGKeys") {
      return Bad(at, "keyType " + Quote(key_type) + " is not supported (only \"GPGKeys\")");
    }
    RETURN_IF_ERROR(ParseKeys(j, true, at, &r));
  } else if (type == "sigstoreSigned") {
    r.type = Requirement::Type::kSigstoreSigned;
    static const std::set<std::string> kNotSupported = {"keyPaths",
                                                        "keyDatas",
                                                        "fulcio",
                                                        "rekorPublicKeyPath",
                                                        "rekorPublicKeyPaths",
                                                        "rekorPublicKeyData",
                                                        "rekorPublicKeyDatas",
                                                        "pki"};
    for (const auto& [key, value] : j.items()) {
      if (kNotSupported.contains(key)) return Bad(at, Quote(key) + " is not supported");
    }
    RETURN_IF_ERROR(OnlyFields(j, {"type", "keyPath", "keyData", "signedIdentity"}, at));
    RETURN_IF_ERROR(ParseKeys(j, false, at, &r));
  } else {
    return Bad(where, "unknown requirement type " + Quote(type));
  }
  if (auto it = j.find("signedIdentity"); it != j.end()) {
    ASSIGN_OR_RETURN(r.identity, ParseIdentity(*it, at));
  }
  return r;
}

Result<std::vector<Requirement>> ParseRequirements(const Json& j, const std::string& where) {
  if (!j.is_array()) return Bad(where, "not a list of requirements");
  if (j.empty()) return Bad(where, "no requirements");
  if (j.size() > 64) return Bad(where, "more than 64 requirements");
  std::vector<Requirement> out;
  for (const auto& r : j) {
    ASSIGN_OR_RETURN(Requirement req, ParseRequirement(r, where));
    out.push_back(std::move(req));
  }
  return out;
}

}  // namespace

Result<Policy> ParsePolicy(std::string_view text, const std::string& path) {
  const std::string where = "policy " + Quote(path);
  auto doc = ParseJson(text, where);
  if (!doc.ok()) return InvalidArgumentError(doc.status().message());
  if (!doc->is_object()) return Bad(where, "not a JSON object");
  RETURN_IF_ERROR(OnlyFields(*doc, {"default", "transports"}, where));
  Policy policy;
  policy.path = path;
  auto def = doc->find("default");
  if (def == doc->end()) return Bad(where, "no \"default\" requirements");
  ASSIGN_OR_RETURN(policy.default_requirements, ParseRequirements(*def, where + ": default"));
  if (auto transports = doc->find("transports"); transports != doc->end()) {
    if (!transports->is_object()) return Bad(where, "\"transports\" is not an object");
    for (const auto& [name, scopes] : transports->items()) {
      const std::string at = where + ": transport " + Quote(name);
      if (!scopes.is_object()) return Bad(at, "not an object of scopes");
      for (const auto& [scope, requirements] : scopes.items()) {
        const std::string scope_at = at + ": scope " + Quote(scope);
        ASSIGN_OR_RETURN(auto parsed, ParseRequirements(requirements, scope_at));
        if (name != "docker") continue;  // hoist pulls from registries only
        policy.docker_scopes[scope] = std::move(parsed);
      }
    }
  }
  return policy;
}

Result<std::optional<Policy>> LoadPolicy(const std::string& explicit_path) {
  std::vector<std::string> candidates;
  if (!explicit_path.empty()) {
    candidates.push_back(explicit_path);
  } else {
    if (std::string home = config::HomeDir(); !home.empty()) {
      candidates.push_back(home + "/.config/containers/policy.json");
    }
    candidates.push_back("/etc/containers/policy.json");
  }
  for (const auto& path : candidates) {
    if (explicit_path.empty() && !config::IsRegularFile(path)) continue;
    auto text = config::ReadUserFile(path, kMaxPolicyBytes);
    if (!text.ok()) return text.status().WithContext("policy " + Quote(path));
    ASSIGN_OR_RETURN(Policy policy, ParsePolicy(*text, path));
    return std::optional<Policy>(std::move(policy));
  }
  return std::optional<Policy>();
}

std::string PolicyIdentity(const Reference& ref) {
  if (ref.digest()) return ref.Name() + "@" + ref.digest()->String();
  return ref.Name() + ":" + ref.tag();
}

std::vector<std::string> PolicyNamespaces(const Reference& ref) {
  std::vector<std::string> out;
  std::string name = ref.Name();
  while (true) {
    out.push_back(name);
    auto slash = name.rfind('/');
    if (slash == std::string::npos) break;
    name.resize(slash);
  }
  // name is host[:port] now; the wildcards are of the host without its port.
  name = name.substr(0, name.find(':'));
  for (auto dot = name.find('.'); dot != std::string::npos; dot = name.find('.')) {
    name = name.substr(dot + 1);
    out.push_back("*." + name);
  }
  return out;
}

ScopeMatch RequirementsFor(const Policy& policy, const Reference& ref) {
  std::vector<std::string> scopes = {PolicyIdentity(ref)};
  for (auto& ns : PolicyNamespaces(ref)) scopes.push_back(std::move(ns));
  scopes.push_back("");
  for (const auto& scope : scopes) {
    if (auto it = policy.docker_scopes.find(scope); it != policy.docker_scopes.end()) {
      return {"docker:" + Quote(scope), &it->second};
    }
  }
  return {"default", &policy.default_requirements};
}

namespace {

// Parses a docker-reference from a signature or a policy. nullopt when it does not parse.
std::optional<Reference> ParseNamed(std::string_view text) {
  auto ref = Reference::Parse(text);
  if (!ref.ok()) return std::nullopt;
  return *ref;
}

// matchRepoDigestOrExact on parsed references: a digest reference accepts any signature for
// the repository (the digest itself is checked against the signature's elsewhere); a tag
// reference accepts exactly that name:tag.
bool RepoDigestOrExact(const Reference& intended, const Reference& signature) {
  if (intended.digest()) return signature.Name() == intended.Name();
  return signature.String() == intended.String();
}

}  // namespace

bool IdentityMatches(const SignedIdentity& identity, const Reference& intended,
                     std::string_view signed_reference) {
  std::optional<Reference> signature = ParseNamed(signed_reference);
  if (!signature) return false;
  // A signature names an exact image: never a bare repository.
  const bool signature_name_only = IsNameOnly(signed_reference);
  using Kind = SignedIdentity::Kind;
  switch (identity.kind) {
    case Kind::kMatchRepoDigestOrExact:
      return !signature_name_only && RepoDigestOrExact(intended, *signature);
    case Kind::kMatchExact:
      return !signature_name_only && signature->String() == intended.String();
    case Kind::kMatchRepository:
      return signature->Name() == intended.Name();
    case Kind::kExactReference: {
      std::optional<Reference> want = ParseNamed(identity.reference);
      return want && !signature_name_only && signature->String() == want->String();
    }
    case Kind::kExactRepository: {
      std::optional<Reference> want = ParseNamed(identity.repository);
      return want && signature->Name() == want->Name();
    }
    case Kind::kRemapIdentity: {
      Reference remapped = intended;
      const std::string name = intended.Name();
      const std::string& prefix = identity.prefix;
      if (name == prefix ||
          (name.size() > prefix.size() && name.starts_with(prefix) && name[prefix.size()] == '/')) {
        std::string text = intended.String();
        std::optional<Reference> r =
            ParseNamed(identity.signed_prefix + text.substr(prefix.size()));
        if (!r) return false;
        remapped = *r;
      }
      return !signature_name_only && RepoDigestOrExact(remapped, *signature);
    }
  }
  return false;
}

std::string_view RequirementName(Requirement::Type type) {
  switch (type) {
    case Requirement::Type::kInsecureAcceptAnything:
      return "insecureAcceptAnything";
    case Requirement::Type::kReject:
      return "reject";
    case Requirement::Type::kSignedBy:
      return "signedBy";
    case Requirement::Type::kSigstoreSigned:
      return "sigstoreSigned";
  }
  return "?";
}

std::string DescribeRequirement(const Requirement& r) {
  std::string out(RequirementName(r.type));
  if (r.type != Requirement::Type::kSignedBy && r.type != Requirement::Type::kSigstoreSigned) {
    return out;
  }
  if (r.type == Requirement::Type::kSignedBy) out += " keyType=GPGKeys";
  for (const auto& p : r.key_paths) out += " keyPath=" + Quote(p);
  if (!r.key_data.empty()) out += " keyData=(" + std::to_string(r.key_data.size()) + " bytes)";
  out += " signedIdentity=";
  using Kind = SignedIdentity::Kind;
  switch (r.identity.kind) {
    case Kind::kMatchRepoDigestOrExact:
      out += "matchRepoDigestOrExact";
      break;
    case Kind::kMatchExact:
      out += "matchExact";
      break;
    case Kind::kMatchRepository:
      out += "matchRepository";
      break;
    case Kind::kExactReference:
      out += "exactReference(" + Quote(r.identity.reference) + ")";
      break;
    case Kind::kExactRepository:
      out += "exactRepository(" + Quote(r.identity.repository) + ")";
      break;
    case Kind::kRemapIdentity:
      out += "remapIdentity(" + Quote(r.identity.prefix) + " -> " +
             Quote(r.identity.signed_prefix) + ")";
      break;
  }
  return out;
}

}  // namespace hoist::trust
