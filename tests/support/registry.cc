#include "support/registry.h"

#include <curl/curl.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "base/status_macros.h"
#include "base/strings.h"

namespace hoist::testing {
namespace {

using Clock = std::chrono::steady_clock;
constexpr char kMarkerPath[] = "/v2/?hoist-log-marker=";

Result<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFoundError("cannot open " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// YAML double-quoted scalar.
std::string Quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

// Parses one access-log line: `... "METHOD URI HTTP/1.1" status ...`. False if it is not one.
bool ParseAccessLine(std::string_view line, std::string_view* method, std::string_view* uri) {
  size_t open = line.find("] \"");
  if (open == std::string_view::npos) return false;
  std::string_view rest = line.substr(open + 3);
  size_t sp1 = rest.find(' ');
  if (sp1 == std::string_view::npos) return false;
  size_t sp2 = rest.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || rest.substr(sp2 + 1, 5) != "HTTP/") return false;
  *method = rest.substr(0, sp1);
  *uri = rest.substr(sp1 + 1, sp2 - sp1 - 1);
  return true;
}

}  // namespace

bool TestRegistry::Available() { return ::access(kBinary, X_OK) == 0; }

std::string TestRegistry::host() const {
  const std::string& a = opts_.listen_address;
  bool ipv6 = a.find(':') != std::string::npos;
  return (ipv6 ? "[" + a + "]" : a) + ":" + std::to_string(port_);
}

Result<int> TestRegistry::Probe(const std::string& path) const {
  static std::once_flag init_once;
  std::call_once(init_once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), curl_easy_cleanup);
  if (!curl) return InternalError("curl_easy_init failed");
  CURL* h = curl.get();
  const std::string target = url() + path;
  curl_easy_setopt(h, CURLOPT_URL, target.c_str());
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 2L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT, 2L);
  curl_easy_setopt(
      h, CURLOPT_WRITEFUNCTION,
      +[](char*, size_t size, size_t n, void*) -> size_t { return size * n; });
  if (tls()) {
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    if (!opts_.tls_probe_cert_path.empty()) {
      curl_easy_setopt(h, CURLOPT_SSLCERT, opts_.tls_probe_cert_path.c_str());
      curl_easy_setopt(h, CURLOPT_SSLKEY, opts_.tls_probe_key_path.c_str());
    }
  }
  CURLcode rc = curl_easy_perform(h);
  if (rc != CURLE_OK) return UnavailableError(target + ": " + curl_easy_strerror(rc));
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  return static_cast<int>(status);
}

Result<std::unique_ptr<TestRegistry>> TestRegistry::Start(RegistryOptions opts) {
  if (!Available()) return FailedPreconditionError(std::string(kBinary) + " is not installed");
  if (opts.auth == RegistryOptions::Auth::kToken &&
      (opts.token_realm.empty() || opts.token_service.empty() || opts.token_issuer.empty() ||
       opts.token_cert_path.empty())) {
    return InvalidArgumentError("token auth needs realm, service, issuer and cert path");
  }
  if (opts.auth == RegistryOptions::Auth::kHtpasswd && opts.user.empty()) {
    return InvalidArgumentError("htpasswd auth needs a user");
  }
  if (opts.tls_cert_path.empty() != opts.tls_key_path.empty()) {
    return InvalidArgumentError("TLS needs both a certificate and a key");
  }
  if (!opts.tls_client_ca_path.empty() &&
      (opts.tls_cert_path.empty() || opts.tls_probe_cert_path.empty() ||
       opts.tls_probe_key_path.empty())) {
    return InvalidArgumentError("client certificates need TLS and a probe certificate and key");
  }
  ASSIGN_OR_RETURN(TempDir dir, TempDir::Create("hoist-registry-"));
  std::unique_ptr<TestRegistry> reg(new TestRegistry(std::move(opts), std::move(dir)));
  reg->storage_dir_ =
      reg->opts_.storage_dir.empty() ? reg->dir_.path() + "/storage" : reg->opts_.storage_dir;
  reg->log_path_ = reg->dir_.path() + "/registry.log";

  if (reg->opts_.auth == RegistryOptions::Auth::kHtpasswd) {
    ASSIGN_OR_RETURN(std::string line,
                     RunCommand({"htpasswd", "-Bbn", reg->opts_.user, reg->opts_.password}, 30));
    line = std::string(TrimSpace(line));
    if (line.rfind(reg->opts_.user + ":", 0) != 0) {
      return InternalError("htpasswd printed an unexpected line: " + line);
    }
    RETURN_IF_ERROR(WriteFile(reg->dir_.path() + "/htpasswd", line + "\n"));
  }

  Status last;
  for (int attempt = 0; attempt < 4; ++attempt) {
    last = reg->Launch();
    if (last.ok()) return reg;
    if (last.code() != StatusCode::kUnavailable) break;  // only a lost port is worth a retry
  }
  std::string text = reg->log();
  if (text.size() > 4000) text = "..." + text.substr(text.size() - 4000);
  return last.WithContext("start registry (log: " + text + ")");
}

Status TestRegistry::WriteConfig() {
  unsigned char secret[16];
  std::ifstream urandom("/dev/urandom", std::ios::binary);
  urandom.read(reinterpret_cast<char*>(secret), sizeof(secret));
  std::string c;
  c += "version: 0.1\n";
  c += "log:\n  level: info\n  accesslog:\n    disabled: false\n";
  c += "storage:\n  filesystem:\n    rootdirectory: " + Quote(storage_dir_) + "\n";
  c += "  delete:\n    enabled: true\n";
  c += "  maintenance:\n    uploadpurging:\n      enabled: false\n";
  c += "http:\n  addr: " + Quote(host()) + "\n";
  c += "  secret: " + HexEncode(std::string_view(reinterpret_cast<char*>(secret), sizeof(secret))) +
       "\n";
  if (tls()) {
    c += "  tls:\n    certificate: " + Quote(opts_.tls_cert_path) + "\n";
    c += "    key: " + Quote(opts_.tls_key_path) + "\n";
    if (!opts_.tls_client_ca_path.empty()) {
      c += "    clientcas:\n      - " + Quote(opts_.tls_client_ca_path) + "\n";
    }
  }
  switch (opts_.auth) {
    case RegistryOptions::Auth::kNone:
      break;
    case RegistryOptions::Auth::kHtpasswd:
      c += "auth:\n  htpasswd:\n    realm: hoist-test\n    path: " +
           Quote(dir_.path() + "/htpasswd") + "\n";
      break;
    case RegistryOptions::Auth::kToken:
      c += "auth:\n  token:\n";
      c += "    realm: " + Quote(opts_.token_realm) + "\n";
      c += "    service: " + Quote(opts_.token_service) + "\n";
      c += "    issuer: " + Quote(opts_.token_issuer) + "\n";
      c += "    rootcertbundle: " + Quote(opts_.token_cert_path) + "\n";
      break;
  }
  if (!opts_.manifest_urls_allow.empty()) {
    c += "validation:\n  manifests:\n    urls:\n      allow:\n";
    for (const std::string& re : opts_.manifest_urls_allow) c += "        - " + Quote(re) + "\n";
  }
  if (!opts_.proxy_remote_url.empty()) {
    c += "proxy:\n  remoteurl: " + Quote(opts_.proxy_remote_url) + "\n";
    if (!opts_.proxy_username.empty()) {
      c += "  username: " + Quote(opts_.proxy_username) + "\n";
      c += "  password: " + Quote(opts_.proxy_password) + "\n";
    }
  }
  return WriteFile(dir_.path() + "/config.yml", c);
}

Status TestRegistry::Launch() {
  ASSIGN_OR_RETURN(port_, PickFreePort());
  RETURN_IF_ERROR(WriteConfig());
  WriteFile(log_path_, "").ok();  // a fresh log per attempt; a failure shows up below
  // The registry reads REGISTRY_* variables as configuration overrides, and podman's
  // REGISTRY_AUTH_FILE is one that tests set: the child gets none of them (`env` then execs
  // the registry, so the child's pid stays the registry's).
  std::vector<std::string> argv = {"/usr/bin/env"};
  for (char** e = environ; *e != nullptr; ++e) {
    std::string_view var(*e);
    if (var.starts_with("REGISTRY_")) {
      argv.push_back("--unset=" + std::string(var.substr(0, var.find('='))));
    }
  }
  argv.insert(argv.end(), {kBinary, "serve", dir_.path() + "/config.yml"});
  ASSIGN_OR_RETURN(ChildProcess child, ChildProcess::Spawn(argv, log_path_));
  child_.emplace(std::move(child));

  const auto deadline = Clock::now() + std::chrono::seconds(15);
  while (Clock::now() < deadline) {
    if (!child_->Running()) {
      child_.reset();
      std::string text = log();
      if (text.find("address already in use") != std::string::npos) {
        return UnavailableError("port " + std::to_string(port_) + " was taken");
      }
      return InternalError("registry exited during start-up");
    }
    Result<int> status = Probe("/v2/");
    if (status.ok() && (*status == 200 || *status == 401)) return OkStatus();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  child_.reset();
  return InternalError("registry did not answer GET /v2/ within 15 s");
}

TestRegistry::~TestRegistry() { child_.reset(); }

std::string TestRegistry::log() const {
  Result<std::string> text = ReadFile(log_path_);
  return text.ok() ? *text : std::string();
}

int TestRegistry::CountRequests(std::string_view method, std::string_view path_part) const {
  // The access log line is written just after the response; a marker request of our own,
  // once logged, shows that the earlier requests are logged too.
  const std::string marker = kMarkerPath + std::to_string(markers_.fetch_add(1));
  Result<int> r = Probe(marker);
  std::string text;
  const auto deadline = Clock::now() + std::chrono::seconds(2);
  for (int i = 0; i < 200 && r.ok(); ++i) {
    text = log();
    if (text.find(marker + " HTTP/") != std::string::npos || Clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (!r.ok()) text = log();

  int count = 0;
  for (std::string_view line : Split(text, '\n')) {
    std::string_view m, uri;
    if (!ParseAccessLine(line, &m, &uri)) continue;
    if (uri.find(kMarkerPath) == 0) continue;
    if (m == method && uri.find(path_part) != std::string_view::npos) ++count;
  }
  return count;
}

std::string TestRegistry::BlobDataPath(const Digest& d) const {
  return storage_dir_ + "/docker/registry/v2/blobs/" + d.algorithm() + "/" + d.hex().substr(0, 2) +
         "/" + d.hex() + "/data";
}

}  // namespace hoist::testing
