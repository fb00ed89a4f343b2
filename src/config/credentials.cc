#include "config/credentials.h"

#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <nlohmann/json.hpp>

#include "base/fs.h"
#include "base/json.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "config/helper.h"
#include "config/user_files.h"

namespace hoist::config {
namespace {

using Json = nlohmann::ordered_json;

constexpr size_t kMaxConfigBytes = 4 << 20;
constexpr std::string_view kDockerHub = "docker.io";
constexpr std::string_view kDockerHubServerUrl = "https://index.docker.io/v1/";
constexpr std::string_view kHelperNotFound = "credentials not found in native keychain";
constexpr std::string_view kTokenUsername = "<token>";

// One credentials file, parsed. `podman` selects auth.json's key rules.
struct CredentialFile {
  std::string path;
  bool podman = false;
  Json doc;  // a JSON object
};

// Reads and parses `path`; nullopt when the file does not exist.
Result<std::optional<CredentialFile>> LoadFile(const std::string& path, bool podman) {
  if (path.empty()) return std::optional<CredentialFile>();
  Result<std::string> text = ReadUserFile(path, kMaxConfigBytes);
  if (!text.ok()) {
    if (text.status().code() == StatusCode::kNotFound) return std::optional<CredentialFile>();
    return text.status();
  }
  CredentialFile file{path, podman, Json()};
  if (TrimSpace(*text).empty()) {  // docker treats an empty file as an empty configuration
    file.doc = Json::object();
    return std::optional<CredentialFile>(std::move(file));
  }
  Result<Json> doc = ParseJson<Json>(*text, path);
  if (!doc.ok()) return InvalidArgumentError(doc.status().message());
  file.doc = std::move(doc).value();
  if (!file.doc.is_object()) return InvalidArgumentError(path + ": not a JSON object");
  return std::optional<CredentialFile>(std::move(file));
}

// A helper name is used to build a program name; it must not reach outside "docker-credential-".
bool ValidHelperName(const std::string& name) {
  if (name.empty() || name.size() > 100) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.';
    if (!ok) return false;
  }
  return true;
}

// The helper that holds `registry`'s credential according to `file` ("" when none): its
// credHelpers entry, else its credsStore.
Result<std::string> HelperFor(const CredentialFile& file, const std::string& registry) {
  std::string helper;
  auto helpers = file.doc.find("credHelpers");
  if (helpers != file.doc.end() && !helpers->is_null()) {
    if (!helpers->is_object())
      return InvalidArgumentError(file.path + ": credHelpers is not an object");
    for (auto it = helpers->begin(); it != helpers->end(); ++it) {
      if (DockerCredentials::RegistryOfKey(it.key(), file.podman) != registry) continue;
      if (!it.value().is_string()) {
        return InvalidArgumentError(file.path + ": credHelpers " + Quote(it.key()) +
                                    " is not a string");
      }
      helper = it.value().get<std::string>();
      if (!helper.empty()) break;
    }
  }
  if (helper.empty()) {
    auto store = file.doc.find("credsStore");
    if (store != file.doc.end() && !store->is_null()) {
      if (!store->is_string())
        return InvalidArgumentError(file.path + ": credsStore is not a string");
      helper = store->get<std::string>();
    }
  }
  if (!helper.empty() && !ValidHelperName(helper)) {
    return InvalidArgumentError(file.path + ": invalid credential helper name " + Quote(helper));
  }
  return helper;
}

// The `auths` keys of `file` that name `registry`; the exact server URL first.
Result<std::vector<std::string>> AuthKeysFor(const CredentialFile& file,
                                             const std::string& registry) {
  std::vector<std::string> keys;
  auto auths = file.doc.find("auths");
  if (auths == file.doc.end() || auths->is_null()) return keys;
  if (!auths->is_object()) return InvalidArgumentError(file.path + ": auths is not an object");
  const std::string exact = DockerCredentials::ServerUrl(registry);
  if (auths->contains(exact)) keys.push_back(exact);
  for (auto it = auths->begin(); it != auths->end(); ++it) {
    if (it.key() == exact) continue;
    if (DockerCredentials::RegistryOfKey(it.key(), file.podman) == registry) {
      keys.push_back(it.key());
    }
  }
  return keys;
}

// Reads one `auths` entry. nullopt when it holds nothing usable (docker writes "{}" entries).
Result<std::optional<registry::Credential>> ParseAuthEntry(const CredentialFile& file,
                                                           const std::string& key,
                                                           const Json& entry) {
  const std::string where = file.path + ": auths entry \"" + key + "\"";
  if (!entry.is_object()) return InvalidArgumentError(where + " is not an object");
  auto string_field = [&](const char* name, std::string* out) -> Status {
    auto it = entry.find(name);
    if (it == entry.end() || it->is_null()) return OkStatus();
    if (!it->is_string()) return InvalidArgumentError(where + ": " + name + " is not a string");
    *out = it->get<std::string>();
    return OkStatus();
  };
  std::string auth, username, password, token;
  RETURN_IF_ERROR(string_field("auth", &auth));
  RETURN_IF_ERROR(string_field("username", &username));
  RETURN_IF_ERROR(string_field("password", &password));
  RETURN_IF_ERROR(string_field("identitytoken", &token));
  registry::Credential c;
  if (!auth.empty()) {
    std::string decoded;
    if (!Base64Decode(TrimSpace(auth), &decoded)) {
      return InvalidArgumentError(where + ": auth is not valid base64");
    }
    size_t colon = decoded.find(':');
    if (colon == std::string::npos) {
      return InvalidArgumentError(where + ": auth is not base64 of \"user:password\"");
    }
    c.username = decoded.substr(0, colon);
    c.password = decoded.substr(colon + 1);
  } else {
    c.username = username;
    c.password = password;
  }
  c.identity_token = token;
  if (c.username.empty() && c.password.empty() && c.identity_token.empty()) {
    return std::optional<registry::Credential>();
  }
  return std::optional<registry::Credential>(std::move(c));
}

// The first line of a helper's complaint, short: enough to say what went wrong.
std::string HelperMessage(const ProgramOutput& out) {
  std::string text(TrimSpace(out.err));
  if (text.empty()) text = std::string(TrimSpace(out.out));
  size_t nl = text.find('\n');
  if (nl != std::string::npos) text.resize(nl);
  if (text.size() > 200) text = text.substr(0, 200) + "...";
  return TerminalSafe(text);
}

bool SaysNotFound(const ProgramOutput& out) {
  return out.out.find(kHelperNotFound) != std::string::npos ||
         out.err.find(kHelperNotFound) != std::string::npos;
}

// Runs `docker-credential-<helper> <action>` with `input`. Errors name the helper and action.
Result<ProgramOutput> RunHelper(const std::string& helper, const std::string& action,
                                const std::string& input, std::chrono::milliseconds timeout) {
  const std::string program = "docker-credential-" + helper;
  const std::string context = "credential helper " + program;
  Result<std::string> path = FindInPath(program);
  if (!path.ok()) {
    if (path.status().code() == StatusCode::kNotFound) {
      return FailedPreconditionError(context + ": not found in PATH");
    }
    return path.status().WithContext(context);
  }
  Result<ProgramOutput> out = RunProgram(*path, {action}, input, timeout);
  if (!out.ok()) return out.status().WithContext(context + ": " + action);
  return out;
}

Result<std::optional<registry::Credential>> HelperGet(const std::string& helper,
                                                      const std::string& registry,
                                                      std::chrono::milliseconds timeout) {
  const std::string context = "credential helper docker-credential-" + helper + ": get";
  ASSIGN_OR_RETURN(ProgramOutput out,
                   RunHelper(helper, "get", DockerCredentials::ServerUrl(registry), timeout));
  if (out.exit_code != 0) {
    if (SaysNotFound(out)) return std::optional<registry::Credential>();
    return FailedPreconditionError(context + ": exit status " + std::to_string(out.exit_code) +
                                   ": " + HelperMessage(out));
  }
  // The output holds the secret: nothing of it goes into an error message.
  Result<Json> parsed = ParseJson<Json>(out.out, "output");
  if (!parsed.ok() || !parsed->is_object()) {
    return InvalidArgumentError(context + ": output is not a JSON object");
  }
  const Json& doc = *parsed;
  auto field = [&](const char* name) -> std::optional<std::string> {
    auto it = doc.find(name);
    if (it == doc.end() || it->is_null()) return std::string();
    if (!it->is_string()) return std::nullopt;
    return it->get<std::string>();
  };
  std::optional<std::string> username = field("Username");
  std::optional<std::string> secret = field("Secret");
  if (!username || !secret) {
    return InvalidArgumentError(context + ": Username and Secret must be strings");
  }
  if (username->empty() && secret->empty()) return std::optional<registry::Credential>();
  registry::Credential c;
  if (*username == kTokenUsername) {
    c.identity_token = *secret;
  } else {
    c.username = *username;
    c.password = *secret;
  }
  return std::optional<registry::Credential>(std::move(c));
}

// Where the credential for `registry` in `file` comes from; nullopt when the file has none.
struct FileAnswer {
  std::string helper;                              // set when a helper holds it
  std::optional<registry::Credential> credential;  // from auths, when no helper applies
};

Result<FileAnswer> ReadFileAnswer(const CredentialFile& file, const std::string& registry) {
  FileAnswer answer;
  ASSIGN_OR_RETURN(answer.helper, HelperFor(file, registry));
  if (!answer.helper.empty()) return answer;
  ASSIGN_OR_RETURN(std::vector<std::string> keys, AuthKeysFor(file, registry));
  for (const std::string& key : keys) {  // non-empty only when "auths" is an object
    ASSIGN_OR_RETURN(answer.credential, ParseAuthEntry(file, key, file.doc.at("auths").at(key)));
    if (answer.credential) break;
  }
  return answer;
}

// True for a host[:port] (or bracketed IPv6 literal with optional port) a registry can be.
bool ValidRegistryName(std::string_view name) {
  if (name.empty() || name.size() > 255) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
              c == ':' || c == '[' || c == ']' || c == '_';
    if (!ok) return false;
  }
  return true;
}

// The file to replace when writing `path`: the target of a symlink, so the link survives.
std::string WriteTarget(const std::string& path) {
  char resolved[PATH_MAX];
  if (::realpath(path.c_str(), resolved) != nullptr) return resolved;
  return path;
}

Status WriteConfig(const CredentialFile& file) {
  const std::string target = WriteTarget(file.path);
  RETURN_IF_ERROR(MakeDirs(FileSystem::Default(), DirName(target), 0700));
  static std::atomic<uint64_t> counter{0};
  const std::string tmp =
      target + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1));
  std::string text = file.doc.dump(1, '\t', false, Json::error_handler_t::replace) + "\n";
  return WriteFileAtomically(FileSystem::Default(), target, tmp, text, 0600);
}

Result<CredentialFile> LoadDockerConfigForUpdate(const std::string& path) {
  if (path.empty()) return FailedPreconditionError("no docker config.json location is known");
  ASSIGN_OR_RETURN(std::optional<CredentialFile> file, LoadFile(path, /*podman=*/false));
  if (!file) return CredentialFile{path, false, Json::object()};
  return std::move(*file);
}

Result<std::string> CanonicalRegistry(const std::string& registry) {
  std::string name = DockerCredentials::RegistryOfKey(registry);
  if (!ValidRegistryName(name)) {
    return InvalidArgumentError("invalid registry name \"" + registry + "\"");
  }
  return name;
}

}  // namespace

CredentialFiles CredentialFiles::Default() {
  CredentialFiles files;
  std::string docker_dir = GetEnv("DOCKER_CONFIG");
  if (docker_dir.empty()) {
    std::string home = HomeDir();
    if (!home.empty()) docker_dir = home + "/.docker";
  }
  if (!docker_dir.empty()) files.docker_config = docker_dir + "/config.json";
  std::string auth_file = GetEnv("REGISTRY_AUTH_FILE");
  if (!auth_file.empty()) {
    files.auth_files.push_back(auth_file);
    return files;
  }
  std::string runtime_dir = GetEnv("XDG_RUNTIME_DIR");
  if (!runtime_dir.empty()) files.auth_files.push_back(runtime_dir + "/containers/auth.json");
  std::string config_dir = UserConfigDir();
  if (!config_dir.empty()) files.auth_files.push_back(config_dir + "/containers/auth.json");
  return files;
}

DockerCredentials::DockerCredentials(CredentialFiles files) : files_(std::move(files)) {}

std::string DockerCredentials::ServerUrl(const std::string& registry) {
  std::string name = RegistryOfKey(registry);
  if (name == kDockerHub) return std::string(kDockerHubServerUrl);
  return name;
}

std::string DockerCredentials::RegistryOfKey(std::string_view key, bool podman_rules) {
  key = TrimSpace(key);
  bool had_scheme = false;
  for (std::string_view scheme : {"https://", "http://"}) {
    if (key.size() >= scheme.size() && EqualsIgnoreCase(key.substr(0, scheme.size()), scheme)) {
      key.remove_prefix(scheme.size());
      had_scheme = true;
      break;
    }
  }
  size_t slash = key.find('/');
  if (slash != std::string_view::npos) {
    if (podman_rules && !had_scheme) return "";
    key = key.substr(0, slash);
  }
  std::string host = ToLower(key);
  if (host == "index.docker.io" || host == "registry-1.docker.io" ||
      host == "registry.hub.docker.com") {
    return std::string(kDockerHub);
  }
  return host;
}

Result<std::optional<registry::Credential>> DockerCredentials::Lookup(
    const std::string& registry_name) {
  const std::string registry = RegistryOfKey(registry_name);
  std::vector<std::pair<std::string, bool>> paths;
  for (const std::string& p : files_.auth_files) paths.emplace_back(p, true);
  paths.emplace_back(files_.docker_config, false);
  for (const auto& [path, podman] : paths) {
    ASSIGN_OR_RETURN(std::optional<CredentialFile> file, LoadFile(path, podman));
    if (!file) continue;
    ASSIGN_OR_RETURN(FileAnswer answer, ReadFileAnswer(*file, registry));
    if (!answer.helper.empty()) {
      ASSIGN_OR_RETURN(std::optional<registry::Credential> c,
                       HelperGet(answer.helper, registry, helper_timeout_));
      if (c) return c;
      continue;
    }
    if (answer.credential) return answer.credential;
  }
  return std::optional<registry::Credential>();
}

std::string DockerCredentials::Describe(const std::string& registry_name) {
  const std::string registry = RegistryOfKey(registry_name);
  std::vector<std::pair<std::string, bool>> paths;
  for (const std::string& p : files_.auth_files) paths.emplace_back(p, true);
  paths.emplace_back(files_.docker_config, false);
  for (const auto& [path, podman] : paths) {
    Result<std::optional<CredentialFile>> file = LoadFile(path, podman);
    if (!file.ok()) return "error: " + file.status().message();
    if (!*file) continue;
    Result<FileAnswer> answer = ReadFileAnswer(**file, registry);
    if (!answer.ok()) return "error: " + answer.status().message();
    if (!answer->helper.empty()) return "credential helper docker-credential-" + answer->helper;
    if (answer->credential) return "auths in " + path;
  }
  return "none";
}

Status DockerCredentials::Store(const std::string& registry_name, const registry::Credential& c) {
  ASSIGN_OR_RETURN(std::string registry, CanonicalRegistry(registry_name));
  if (c.identity_token.empty() && c.username.empty()) {
    return InvalidArgumentError("login to " + registry + ": no username given");
  }
  if (c.username.find(':') != std::string::npos) {
    return InvalidArgumentError("login to " + registry + ": the username must not contain ':'");
  }
  std::lock_guard<std::mutex> lock(write_mu_);
  ASSIGN_OR_RETURN(CredentialFile file, LoadDockerConfigForUpdate(files_.docker_config));
  ASSIGN_OR_RETURN(std::string helper, HelperFor(file, registry));
  if (!helper.empty()) {
    Json input = {{"ServerURL", ServerUrl(registry)}};
    if (!c.identity_token.empty()) {
      input["Username"] = kTokenUsername;
      input["Secret"] = c.identity_token;
    } else {
      input["Username"] = c.username;
      input["Secret"] = c.password;
    }
    ASSIGN_OR_RETURN(
        ProgramOutput out,
        RunHelper(helper, "store", input.dump(-1, ' ', false, Json::error_handler_t::replace),
                  helper_timeout_));
    if (out.exit_code != 0) {
      return FailedPreconditionError("credential helper docker-credential-" + helper +
                                     ": store: exit status " + std::to_string(out.exit_code) +
                                     ": " + HelperMessage(out));
    }
    return OkStatus();
  }
  ASSIGN_OR_RETURN(std::vector<std::string> old_keys, AuthKeysFor(file, registry));
  Json& auths = file.doc["auths"];
  if (auths.is_null()) auths = Json::object();
  for (const std::string& key : old_keys) auths.erase(key);
  Json entry = Json::object();
  if (!c.username.empty() || !c.password.empty()) {
    entry["auth"] = Base64Encode(c.username + ":" + c.password);
  }
  if (!c.identity_token.empty()) entry["identitytoken"] = c.identity_token;
  auths[ServerUrl(registry)] = std::move(entry);
  return WriteConfig(file).WithContext("login to " + registry);
}

Status DockerCredentials::Erase(const std::string& registry_name) {
  ASSIGN_OR_RETURN(std::string registry, CanonicalRegistry(registry_name));
  std::lock_guard<std::mutex> lock(write_mu_);
  ASSIGN_OR_RETURN(CredentialFile file, LoadDockerConfigForUpdate(files_.docker_config));
  ASSIGN_OR_RETURN(std::string helper, HelperFor(file, registry));
  if (!helper.empty()) {
    ASSIGN_OR_RETURN(ProgramOutput out,
                     RunHelper(helper, "erase", ServerUrl(registry), helper_timeout_));
    if (out.exit_code == 0) return OkStatus();
    if (SaysNotFound(out)) {
      return NotFoundError("not logged in to " + registry +
                           " (credential helper docker-credential-" + helper + ")");
    }
    return FailedPreconditionError("credential helper docker-credential-" + helper +
                                   ": erase: exit status " + std::to_string(out.exit_code) + ": " +
                                   HelperMessage(out));
  }
  ASSIGN_OR_RETURN(std::vector<std::string> keys, AuthKeysFor(file, registry));
  if (keys.empty()) return NotFoundError("not logged in to " + registry + " (" + file.path + ")");
  Json& auths = file.doc["auths"];
  for (const std::string& key : keys) auths.erase(key);
  return WriteConfig(file).WithContext("logout from " + registry);
}

registry::CredentialSource* CredentialsForRoute(const RegistriesConf::Route& route,
                                                registry::CredentialSource* given,
                                                registry::CredentialSource* files) {
  return given != nullptr && !route.endpoint.mirror ? given : files;
}

}  // namespace hoist::config
