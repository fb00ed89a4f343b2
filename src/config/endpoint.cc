#include "config/endpoint.h"

#include <algorithm>
#include <fstream>
#include <iterator>

#include "base/status_macros.h"
#include "config/certs.h"
#include "registry/auth.h"

namespace hoist::config {
namespace {

bool Insecure(const std::string& name, const std::string& host, bool configured_insecure,
              const TlsPolicy& policy) {
  switch (policy.mode) {
    case TlsPolicy::Mode::kAlways:
      return false;
    case TlsPolicy::Mode::kNever:
      return true;
    case TlsPolicy::Mode::kDefault:
      break;
  }
  auto listed = [&](const std::string& h) {
    return std::find(policy.insecure_registries.begin(), policy.insecure_registries.end(), h) !=
           policy.insecure_registries.end();
  };
  return configured_insecure || registry::IsLoopbackHost(host) || listed(name) || listed(host);
}

Result<TlsFiles> Files(const std::string& host, const TlsPolicy& policy) {
  return policy.certs_dirs.empty() ? FindTlsFiles(host, policy.cert_dir)
                                   : FindTlsFiles(host, policy.cert_dir, policy.certs_dirs);
}

}  // namespace

Result<registry::Endpoint> MakeEndpoint(const std::string& name, const std::string& host,
                                        bool configured_insecure, const TlsPolicy& policy) {
  registry::Endpoint e;
  e.insecure = Insecure(name, host, configured_insecure, policy);
  ASSIGN_OR_RETURN(TlsFiles files, Files(host, policy));
  for (const auto& ca : files.ca_files) {
    std::ifstream in(ca, std::ios::binary);
    if (!in) return FailedPreconditionError("cannot read CA file " + ca);
    e.tls.extra_ca_pem.append(std::istreambuf_iterator<char>(in), {});
    e.tls.extra_ca_pem += "\n";
  }
  if (!files.client_pairs.empty()) {
    e.tls.client_cert = files.client_pairs.front().first;
    e.tls.client_key = files.client_pairs.front().second;
  }
  return e;
}

std::string DescribeEndpoint(const std::string& name, const std::string& host,
                             bool configured_insecure, const TlsPolicy& policy) {
  if (Insecure(name, host, configured_insecure, policy)) {
    return "HTTPS without verification, then plain HTTP";
  }
  auto files = Files(host, policy);
  if (!files.ok()) return "verified HTTPS; certs.d error: " + files.status().message();
  std::string out = "verified HTTPS (system CAs";
  for (const auto& ca : files->ca_files) out += " + " + ca;
  for (const auto& [cert, key] : files->client_pairs) out += "; client cert " + cert;
  return out + ")";
}

}  // namespace hoist::config
