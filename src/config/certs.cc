#include "config/certs.h"

#include <unistd.h>

#include <algorithm>
#include <set>

#include "base/status_macros.h"
#include "config/user_files.h"

namespace hoist::config {
namespace {

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() > suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string WithoutSuffix(const std::string& s, const std::string& suffix) {
  return s.substr(0, s.size() - suffix.size());
}

bool ValidHostPortName(const std::string& hp) {
  if (hp.empty() || hp == "." || hp == ".." || hp.size() > 255) return false;
  return std::all_of(hp.begin(), hp.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-' || c == ':' || c == '[' || c == ']' || c == '_';
  });
}

Result<TlsFiles> ReadCertsDir(const std::string& dir) {
  TlsFiles files;
  files.dir = dir;
  ASSIGN_OR_RETURN(std::vector<std::string> names, ListDirectory(dir));
  std::set<std::string> regular;
  for (const std::string& name : names) {
    if (IsRegularFile(dir + "/" + name)) regular.insert(name);
  }
  for (const std::string& name : regular) {  // sorted
    const std::string path = dir + "/" + name;
    if (EndsWith(name, ".crt")) {
      files.ca_files.push_back(path);
    } else if (EndsWith(name, ".cert")) {
      const std::string key = WithoutSuffix(name, ".cert") + ".key";
      if (regular.count(key) == 0) {
        return InvalidArgumentError("missing key " + key + " for client certificate " + path);
      }
      files.client_pairs.emplace_back(path, dir + "/" + key);
    } else if (EndsWith(name, ".key")) {
      const std::string cert = WithoutSuffix(name, ".key") + ".cert";
      if (regular.count(cert) == 0) {
        return InvalidArgumentError("missing client certificate " + cert + " for key " + path);
      }
    }
  }
  return files;
}

}  // namespace

std::vector<std::string> DefaultCertsDirs() {
  std::vector<std::string> dirs;
  if (::geteuid() != 0) {
    std::string user = UserConfigDir();
    if (!user.empty()) dirs.push_back(user + "/containers/certs.d");
  }
  dirs.push_back("/etc/docker/certs.d");
  dirs.push_back("/etc/containers/certs.d");
  return dirs;
}

Result<TlsFiles> FindTlsFiles(const std::string& host_port, const std::string& cert_dir,
                              std::vector<std::string> base_dirs) {
  if (!cert_dir.empty()) {
    if (!IsDirectory(cert_dir)) {
      return NotFoundError("certificate directory " + cert_dir + ": not a directory");
    }
    return ReadCertsDir(cert_dir);
  }
  if (!ValidHostPortName(host_port)) {
    return InvalidArgumentError("invalid registry host \"" + host_port + "\" for certs.d lookup");
  }
  for (const std::string& base : base_dirs) {
    const std::string dir = base + "/" + host_port;
    if (IsDirectory(dir)) return ReadCertsDir(dir);
  }
  return TlsFiles{};
}

}  // namespace hoist::config
