#include "trust/registries_d.h"

#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include "base/status_macros.h"
#include "base/strings.h"
#include "config/user_files.h"
#include "trust/policy.h"

namespace hoist::trust {

namespace {

Result<SignatureStorage> ParseStorage(const YAML::Node& node, const std::string& where) {
  SignatureStorage s;
  if (node.IsNull()) return s;
  if (!node.IsMap()) return InvalidArgumentError(where + ": not a mapping");
  std::string lookaside, sigstore;
  for (const auto& kv : node) {
    const std::string key = kv.first.as<std::string>();
    if (key == "lookaside" || key == "sigstore") {
      if (!kv.second.IsScalar()) return InvalidArgumentError(where + ": " + key + " is not a URL");
      (key == "lookaside" ? lookaside : sigstore) = kv.second.as<std::string>();
    } else if (key == "use-sigstore-attachments") {
      if (!kv.second.IsScalar()) {
        return InvalidArgumentError(where + ": use-sigstore-attachments is not true or false");
      }
      s.use_sigstore_attachments = kv.second.as<bool>();
    }
  }
  if (!lookaside.empty() && !sigstore.empty()) {
    return InvalidArgumentError(where + ": both lookaside and sigstore are set");
  }
  s.lookaside = !lookaside.empty() ? lookaside : sigstore;
  if (!s.lookaside.empty() && !s.lookaside.starts_with("file://") &&
      !s.lookaside.starts_with("http://") && !s.lookaside.starts_with("https://")) {
    return InvalidArgumentError(where + ": lookaside " + Quote(s.lookaside) +
                                " is not a file://, http:// or https:// URL");
  }
  return s;
}

std::string BuiltInLookaside() {
  if (geteuid() == 0) return "file:///var/lib/containers/sigstore";
  return "file://" + config::HomeDir() + "/.local/share/containers/sigstore";
}

}  // namespace

Status RegistriesD::AddFile(const std::string& name, const std::string& text) {
  const std::string where = "registries.d " + Quote(name);
  YAML::Node doc;
  try {
    doc = YAML::Load(text);
  } catch (const std::exception& e) {
    return InvalidArgumentError(where + ": " + TerminalSafe(e.what()));
  }
  if (doc.IsNull()) return OkStatus();
  if (!doc.IsMap()) return InvalidArgumentError(where + ": not a mapping");
  try {
    for (const auto& kv : doc) {
      const std::string key = kv.first.as<std::string>();
      if (key == "default-docker") {
        if (default_docker_) {
          return InvalidArgumentError(where + ": default-docker is also set in " +
                                      default_docker_->from);
        }
        ASSIGN_OR_RETURN(SignatureStorage s, ParseStorage(kv.second, where + ": default-docker"));
        default_docker_ = Entry{s, Quote(name) + ": default-docker"};
      } else if (key == "docker") {
        if (kv.second.IsNull()) continue;
        if (!kv.second.IsMap()) return InvalidArgumentError(where + ": docker is not a mapping");
        if (kv.second.size() > 4096) return InvalidArgumentError(where + ": too many namespaces");
        for (const auto& ns : kv.second) {
          const std::string scope = ns.first.as<std::string>();
          const std::string at = where + ": docker " + Quote(scope);
          if (auto it = docker_.find(scope); it != docker_.end()) {
            return InvalidArgumentError(at + " is also set in " + it->second.from);
          }
          ASSIGN_OR_RETURN(SignatureStorage s, ParseStorage(ns.second, at));
          docker_[scope] = Entry{s, Quote(name) + ": docker " + Quote(scope)};
        }
      }
    }
  } catch (const std::exception& e) {
    return InvalidArgumentError(where + ": " + TerminalSafe(e.what()));
  }
  return OkStatus();
}

Result<RegistriesD> RegistriesD::Load(const std::string& dir) {
  RegistriesD out;
  if (!dir.empty()) {
    if (!config::IsDirectory(dir)) {
      return NotFoundError("registries.d " + Quote(dir) + ": not a directory");
    }
    out.dir_ = dir;
  } else {
    const std::string user = config::UserConfigDir() + "/containers/registries.d";
    out.dir_ = config::IsDirectory(user) ? user : "/etc/containers/registries.d";
  }
  ASSIGN_OR_RETURN(std::vector<std::string> names, config::ListDirectory(out.dir_));
  size_t files = 0;
  for (const auto& name : names) {
    if (!name.ends_with(".yaml")) continue;
    if (++files > kMaxRegistriesDFiles) {
      return ResourceExhaustedError("registries.d " + Quote(out.dir_) + ": more than 256 files");
    }
    const std::string path = out.dir_ + "/" + name;
    auto text = config::ReadUserFile(path, kMaxRegistriesDFileBytes);
    if (!text.ok()) return text.status().WithContext("registries.d " + Quote(path));
    RETURN_IF_ERROR(out.AddFile(path, *text));
  }
  return out;
}

SignatureSources RegistriesD::For(const Reference& ref) const {
  std::vector<std::string> scopes = {PolicyIdentity(ref)};
  for (auto& ns : PolicyNamespaces(ref)) scopes.push_back(std::move(ns));
  std::vector<const Entry*> entries;
  for (const auto& scope : scopes) {
    if (auto it = docker_.find(scope); it != docker_.end()) entries.push_back(&it->second);
  }
  if (default_docker_) entries.push_back(&*default_docker_);
  SignatureSources out;
  for (const Entry* e : entries) {
    if (out.lookaside.empty() && !e->storage.lookaside.empty()) {
      out.lookaside = e->storage.lookaside;
      out.lookaside_from = e->from;
    }
    if (out.attachments_from.empty() && e->storage.use_sigstore_attachments) {
      out.use_sigstore_attachments = *e->storage.use_sigstore_attachments;
      out.attachments_from = e->from;
    }
  }
  if (out.lookaside.empty()) {
    out.lookaside = BuiltInLookaside();
    out.lookaside_from = "built-in default";
  }
  return out;
}

std::string LookasideUrl(const std::string& base, const Reference& ref, const Digest& digest,
                         int index) {
  std::string url = base;
  while (url.ends_with('/')) url.pop_back();
  return url + "/" + ref.path() + "@" + digest.algorithm() + "=" + digest.hex() + "/signature-" +
         std::to_string(index);
}

}  // namespace hoist::trust
