// Per-registry TLS material the way docker and containers/image find it:
//
//   /etc/docker/certs.d/<host[:port]>/       (also /etc/containers/certs.d/..., and
//     ca.crt          → a CA to trust         ${XDG_CONFIG_HOME:-~/.config}/containers/certs.d
//     client.cert     → a client certificate  for a non-root user, looked at first)
//     client.key      → ... and its key (same base name)
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "hoist/status.h"

namespace hoist::config {

struct TlsFiles {
  std::vector<std::string> ca_files;                              // *.crt, full paths, sorted
  std::vector<std::pair<std::string, std::string>> client_pairs;  // (cert, key), full paths
  std::string dir;  // the directory they came from; "" when none exists
};

// The base directories searched, in order: for a non-root user
// ${XDG_CONFIG_HOME:-~/.config}/containers/certs.d first; then /etc/docker/certs.d and
// /etc/containers/certs.d.
std::vector<std::string> DefaultCertsDirs();

// The TLS files for registry `host_port` ("ghcr.io", "127.0.0.1:5000"). `cert_dir`, when not
// empty, is used as is (skopeo's --cert-dir: the files directly inside it; it must exist);
// otherwise the first existing `<base>/<host_port>/` of `base_dirs`. No such directory gives
// an empty TlsFiles. Files: *.crt are CAs; X.cert with X.key is a client pair; a .cert
// without its .key, or a .key without its .cert, is InvalidArgument naming the file (as
// docker). Subdirectories are ignored. `host_port` must be a plain host[:port] (no '/',
// not "." or ".."): InvalidArgument otherwise.
Result<TlsFiles> FindTlsFiles(const std::string& host_port, const std::string& cert_dir = "",
                              std::vector<std::string> base_dirs = DefaultCertsDirs());

}  // namespace hoist::config
