// How to reach a registry host: TLS verification, plain-http fallback and
// certs.d material, from the user's settings.
#pragma once

#include <string>
#include <vector>

#include "hoist/status.h"
#include "registry/registry.h"

namespace hoist::config {

struct TlsPolicy {
  // As skopeo's --tls-verify: kDefault follows each registry (loopback and
  // insecure ones: unverified https, then http); kAlways verifies everywhere;
  // kNever verifies nowhere.
  enum class Mode { kDefault, kAlways, kNever } mode = Mode::kDefault;
  std::vector<std::string> insecure_registries;  // --insecure-registry HOST[:PORT]
  std::string cert_dir;                          // --cert-dir: replaces certs.d lookup
  std::vector<std::string> certs_dirs;           // certs.d bases; empty: DefaultCertsDirs()
};

// name: the registry as references name it (or a mirror's host:port); host:
// where to connect; configured_insecure: registries.conf says `insecure = true`
// for this endpoint.
Result<registry::Endpoint> MakeEndpoint(const std::string& name, const std::string& host,
                                        bool configured_insecure, const TlsPolicy& policy);

// One line for `hoist config`: "verified HTTPS (system CAs + DIR/ca.crt; client
// cert DIR/x.cert)" or "HTTPS without verification, then plain HTTP".
std::string DescribeEndpoint(const std::string& name, const std::string& host,
                             bool configured_insecure, const TlsPolicy& policy);

}  // namespace hoist::config
