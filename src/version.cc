#include "hoist/version.h"

#include <curl/curl.h>
#include <isa-l.h>
#include <openssl/crypto.h>
#include <zstd.h>

namespace hoist {

std::string Version() { return HOIST_VERSION; }

std::vector<LibraryVersion> LinkedLibraryVersions() {
  std::vector<LibraryVersion> out;
  const curl_version_info_data* curl = curl_version_info(CURLVERSION_NOW);
  std::string curl_text = curl->version;
  if (curl->ssl_version != nullptr) curl_text += std::string(" (") + curl->ssl_version + ")";
  out.push_back({"libcurl", curl_text});
  std::string openssl = OpenSSL_version(OPENSSL_VERSION);  // "OpenSSL 3.0.11 19 Sep 2023"
  if (openssl.rfind("OpenSSL ", 0) == 0) openssl.erase(0, 8);
  out.push_back({"OpenSSL", openssl});
  out.push_back({"zstd", ZSTD_versionString()});
  // isa-l has no run-time version query: the version of its headers at build time.
  out.push_back({"isa-l",
                 std::to_string(ISAL_MAJOR_VERSION) + "." + std::to_string(ISAL_MINOR_VERSION) +
                     "." + std::to_string(ISAL_PATCH_VERSION),
                 false});
  return out;
}

}  // namespace hoist
