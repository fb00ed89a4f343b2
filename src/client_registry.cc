// hoist::Client's registry-account commands: login, logout, and the effective
// settings.
#include "base/status_macros.h"
#include "client_impl.h"
#include "config/endpoint.h"
#include "trust/policy.h"

namespace hoist {

namespace {

// The registry a login names: "docker.io" for Docker Hub however it is written
// ("https://index.docker.io/v1/", "index.docker.io", "registry-1.docker.io"),
// else host[:port].
Result<std::string> LoginRegistry(std::string_view text) {
  std::string name(text.empty() ? "docker.io" : text);
  if (auto scheme = name.find("://"); scheme != std::string::npos) name = name.substr(scheme + 3);
  name = name.substr(0, name.find('/'));
  if (name == "index.docker.io" || name == "registry-1.docker.io") name = "docker.io";
  auto ref = Reference::Parse(name + "/x");
  if (!ref.ok() || ref->domain() != name) {
    return InvalidArgumentError("invalid registry \"" + std::string(text) + "\"");
  }
  return name;
}

}  // namespace

Status Client::Login(const std::string& registry_text, const std::string& user,
                     const std::string& password) {
  const std::string context = "login " + (registry_text.empty() ? "docker.io" : registry_text);
  auto name = LoginRegistry(registry_text);
  if (!name.ok()) return name.status().WithContext(context);
  if (user.empty() || password.empty()) {
    return InvalidArgumentError(context + ": a user name and a password are needed");
  }
  auto ref = Reference::Parse(*name + "/x");
  registry::Credential cred{user, password, ""};
  // Checked with these credentials alone, against the registry's own endpoint
  // (not mirrors).
  registry::StaticCredentials only(cred);
  registry::Authorizer authorizer;
  auto endpoint = config::MakeEndpoint(*name, ref->RegistryHost(), false, impl_->tls);
  if (!endpoint.ok()) return endpoint.status().WithContext(context);
  registry::Registry reg(*name, ref->RegistryHost(), *endpoint, &authorizer, &only);
  registry::HttpClient http;
  auto r = reg.Send(http, "/v2/", registry::HttpRequest{}, "");
  if (!r.ok()) return r.status().WithContext(context);
  if (r->status == 401) return UnauthenticatedError(context + ": credentials rejected");
  if (r->status != 200) return registry::StatusFromResponse(*r).WithContext(context);
  return impl_->docker_credentials->Store(*name, cred).WithContext(context);
}

Status Client::Logout(const std::string& registry_text) {
  const std::string context = "logout " + (registry_text.empty() ? "docker.io" : registry_text);
  auto name = LoginRegistry(registry_text);
  if (!name.ok()) return name.status().WithContext(context);
  return impl_->docker_credentials->Erase(*name).WithContext(context);
}

Result<std::string> Client::DescribeConfig(std::string_view text) {
  const std::string context = "config " + std::string(text);
  auto ref = Reference::Parse(text);
  if (!ref.ok()) return ref.status().WithContext(context);
  std::string out = "reference: " + ref->String() + "\n";
  auto routes = impl_->registries_conf.RoutesFor(*ref);
  if (!routes.ok()) return routes.status().WithContext(context);
  auto settings = impl_->registries_conf.SettingsFor(*ref);
  out += "registries.conf entry: " +
         (settings.prefix.empty() ? std::string("none")
                                  : settings.prefix + " (" + settings.source + ")") +
         "\nendpoints, in order:\n";
  int n = 0;
  for (const auto& route : *routes) {
    const bool given = impl_->CredentialsFor(route) == impl_->static_credentials.get();
    out +=
        "  " + std::to_string(++n) + ". " + (route.endpoint.mirror ? "mirror " : "registry ") +
        route.host + "/" + route.repository + "\n     tls: " +
        config::DescribeEndpoint(route.registry, route.host, route.endpoint.insecure, impl_->tls) +
        "\n     credentials: " +
        (given ? std::string("--creds") : impl_->docker_credentials->Describe(route.registry)) +
        "\n";
  }
  out += "registries.conf files read:";
  if (impl_->registries_conf.files().empty()) out += " none";
  for (const auto& f : impl_->registries_conf.files()) out += " " + f;
  out += "\n";
  auto policy = trust::LoadPolicy(impl_->options.signature_policy);
  if (!policy.ok()) return policy.status().WithContext(context);
  if (!*policy) return out + "signature policy: no policy file: every image accepted\n";
  return out + "signature policy: " + (*policy)->path + " (scope " +
         trust::RequirementsFor(**policy, *ref).scope + "; see hoist trust show)\n";
}

}  // namespace hoist
