#include "support/tls.h"

#include <arpa/inet.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <cerrno>
#include <fstream>
#include <utility>

#include "base/status_macros.h"

namespace hoist::testing {

using KeyPtr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;
using CertPtr = std::unique_ptr<X509, decltype(&X509_free)>;

struct TestCa::Material {
  KeyPtr key{nullptr, EVP_PKEY_free};
  CertPtr cert{nullptr, X509_free};
};

namespace {

Status TlsError(const std::string& what) { return InternalError("test CA: " + what + " failed"); }

KeyPtr NewKey() { return KeyPtr(EVP_EC_gen("P-256"), EVP_PKEY_free); }

bool IsIpAddress(const std::string& host) {
  unsigned char buf[16];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

// Adds the extension `nid` = `value` (OpenSSL's config syntax) to `cert`.
Status AddExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) return TlsError("extension " + value);
  int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  return ok == 1 ? OkStatus() : TlsError("adding extension " + value);
}

// A certificate for `key` with subject CN `common_name`, issued by `issuer` (nullptr: by
// itself), not yet signed.
Result<CertPtr> NewCert(EVP_PKEY* key, const std::string& common_name, X509* issuer) {
  CertPtr cert(X509_new(), X509_free);
  if (!cert) return TlsError("X509_new");
  X509_set_version(cert.get(), 2);
  unsigned char serial[12];
  if (RAND_bytes(serial, sizeof(serial)) != 1) return TlsError("random serial");
  serial[0] &= 0x7f;
  std::unique_ptr<BIGNUM, decltype(&BN_free)> bn(BN_bin2bn(serial, sizeof(serial), nullptr),
                                                 BN_free);
  if (!bn || BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert.get())) == nullptr) {
    return TlsError("serial number");
  }
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 7L * 24 * 3600);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("hoist tests"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1,
                             0);
  X509_set_issuer_name(cert.get(), issuer == nullptr ? name : X509_get_subject_name(issuer));
  return cert;
}

Result<std::string> ToPem(X509* cert, EVP_PKEY* key) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  if (!bio) return TlsError("BIO_new");
  int ok = cert != nullptr
               ? PEM_write_bio_X509(bio.get(), cert)
               : PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  if (ok != 1) return TlsError("PEM encoding");
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

Status WriteFile(const std::string& path, const std::string& data, mode_t mode) {
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << data;
    out.close();
    if (!out) return InternalError("test CA: write " + path + " failed");
  }
  if (::chmod(path.c_str(), mode) != 0) return ErrnoError(errno, "chmod " + path);
  return OkStatus();
}

}  // namespace

TestCa::TestCa(TempDir dir, std::unique_ptr<Material> material)
    : dir_(std::move(dir)), material_(std::move(material)) {}
TestCa::TestCa(TestCa&&) noexcept = default;
TestCa& TestCa::operator=(TestCa&&) noexcept = default;
TestCa::~TestCa() = default;

Result<TestCa> TestCa::Create(const std::string& common_name) {
  ASSIGN_OR_RETURN(TempDir dir, TempDir::Create("hoist-ca-"));
  auto material = std::make_unique<Material>();
  material->key = NewKey();
  if (!material->key) return TlsError("CA key generation");
  ASSIGN_OR_RETURN(material->cert, NewCert(material->key.get(), common_name, nullptr));
  X509* cert = material->cert.get();
  RETURN_IF_ERROR(AddExtension(cert, cert, NID_basic_constraints, "critical,CA:TRUE"));
  RETURN_IF_ERROR(
      AddExtension(cert, cert, NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature"));
  RETURN_IF_ERROR(AddExtension(cert, cert, NID_subject_key_identifier, "hash"));
  if (X509_sign(cert, material->key.get(), EVP_sha256()) == 0) return TlsError("CA signing");

  TestCa ca(std::move(dir), std::move(material));
  ca.ca_cert_path_ = ca.dir_.path() + "/ca.crt";
  ASSIGN_OR_RETURN(std::string pem, ToPem(cert, nullptr));
  RETURN_IF_ERROR(WriteFile(ca.ca_cert_path_, pem, 0644));
  return ca;
}

std::string TestCa::ca_cert_pem() const {
  Result<std::string> pem = ToPem(material_->cert.get(), nullptr);
  return pem.ok() ? *pem : std::string();
}

Result<CertFiles> TestCa::IssueServerCert(const std::vector<std::string>& hosts) {
  if (hosts.empty()) return InvalidArgumentError("test CA: a server certificate needs a host");
  return Issue(hosts[0], hosts, /*server=*/true);
}

Result<CertFiles> TestCa::IssueClientCert(const std::string& common_name) {
  return Issue(common_name, {}, /*server=*/false);
}

Result<CertFiles> TestCa::Issue(const std::string& common_name,
                                const std::vector<std::string>& hosts, bool server) {
  KeyPtr key = NewKey();
  if (!key) return TlsError("key generation");
  X509* issuer = material_->cert.get();
  ASSIGN_OR_RETURN(CertPtr cert, NewCert(key.get(), common_name, issuer));
  RETURN_IF_ERROR(AddExtension(cert.get(), issuer, NID_basic_constraints, "critical,CA:FALSE"));
  RETURN_IF_ERROR(AddExtension(cert.get(), issuer, NID_key_usage, "critical,digitalSignature"));
  RETURN_IF_ERROR(
      AddExtension(cert.get(), issuer, NID_ext_key_usage, server ? "serverAuth" : "clientAuth"));
  RETURN_IF_ERROR(AddExtension(cert.get(), issuer, NID_subject_key_identifier, "hash"));
  RETURN_IF_ERROR(AddExtension(cert.get(), issuer, NID_authority_key_identifier, "keyid"));
  if (!hosts.empty()) {
    std::string san;
    for (const std::string& h : hosts) {
      san += std::string(san.empty() ? "" : ",") + (IsIpAddress(h) ? "IP:" : "DNS:") + h;
    }
    RETURN_IF_ERROR(AddExtension(cert.get(), issuer, NID_subject_alt_name, san));
  }
  if (X509_sign(cert.get(), material_->key.get(), EVP_sha256()) == 0) {
    return TlsError("certificate signing");
  }

  const std::string base =
      dir_.path() + "/" + (server ? "server" : "client") + std::to_string(++issued_);
  CertFiles files{base + ".cert", base + ".key"};
  ASSIGN_OR_RETURN(std::string cert_pem, ToPem(cert.get(), nullptr));
  ASSIGN_OR_RETURN(std::string key_pem, ToPem(nullptr, key.get()));
  RETURN_IF_ERROR(WriteFile(files.cert_path, cert_pem, 0644));
  RETURN_IF_ERROR(WriteFile(files.key_path, key_pem, 0600));
  return files;
}

}  // namespace hoist::testing
