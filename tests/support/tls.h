// TestCa: a certificate authority made in memory with OpenSSL for tests of TLS registries. It
// issues server certificates (subjectAltName DNS names and IP addresses) and client
// certificates, and writes every certificate and key as PEM files into its own temp dir,
// removed with the CA. Keys are EC P-256; certificates are valid from an hour ago for a week.
// Test-only.
//
//   auto ca = TestCa::Create();
//   auto server = ca->IssueServerCert({"127.0.0.1", "localhost"});
//   // registry: http.tls.certificate = server->cert_path, key = server->key_path
//   // client:   trust ca->ca_cert_path()
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "hoist/status.h"
#include "support/process.h"

namespace hoist::testing {

struct CertFiles {
  std::string cert_path;  // PEM certificate
  std::string key_path;   // PEM private key (PKCS#8)
};

class TestCa {
 public:
  // A fresh self-signed CA (CA:TRUE, keyCertSign) with `common_name` as its subject.
  static Result<TestCa> Create(const std::string& common_name = "hoist test CA");
  TestCa(TestCa&&) noexcept;
  TestCa& operator=(TestCa&&) noexcept;
  ~TestCa();

  // The CA certificate as a PEM file, and its text.
  const std::string& ca_cert_path() const { return ca_cert_path_; }
  std::string ca_cert_pem() const;
  // The directory holding every file the CA wrote.
  const std::string& dir() const { return dir_.path(); }

  // A server certificate (extendedKeyUsage serverAuth) for `hosts`: each entry that parses as
  // an IPv4 or IPv6 address becomes an IP subjectAltName, any other a DNS one. The first
  // entry is also the subject's CN. InvalidArgument when `hosts` is empty.
  Result<CertFiles> IssueServerCert(const std::vector<std::string>& hosts);
  // A client certificate (extendedKeyUsage clientAuth) whose subject CN is `common_name`.
  Result<CertFiles> IssueClientCert(const std::string& common_name);

  struct Material;  // the CA's key and certificate; defined in tls.cc

 private:
  TestCa(TempDir dir, std::unique_ptr<Material> material);
  Result<CertFiles> Issue(const std::string& common_name, const std::vector<std::string>& hosts,
                          bool server);

  TempDir dir_;
  std::unique_ptr<Material> material_;
  std::string ca_cert_path_;
  int issued_ = 0;  // names the files of each certificate issued
};

}  // namespace hoist::testing
