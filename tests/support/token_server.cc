#include "support/token_server.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>

#include "base/status_macros.h"
#include "base/strings.h"

namespace hoist::testing {

using json = nlohmann::json;

struct TokenServer::Signer {
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key{nullptr, EVP_PKEY_free};
  std::unique_ptr<X509, decltype(&X509_free)> cert{nullptr, X509_free};
  std::string cert_der_base64;  // standard base64 of the DER certificate, for x5c
};

namespace token_internal {

bool FormDecode(std::string_view in, std::string* out) {
  out->clear();
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '+') {
      out->push_back(' ');
    } else if (c == '%') {
      if (i + 2 >= in.size()) return false;
      auto hex = [](char h) -> int {
        if (h >= '0' && h <= '9') return h - '0';
        if (h >= 'a' && h <= 'f') return h - 'a' + 10;
        if (h >= 'A' && h <= 'F') return h - 'A' + 10;
        return -1;
      };
      int hi = hex(in[i + 1]), lo = hex(in[i + 2]);
      if (hi < 0 || lo < 0) return false;
      out->push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      out->push_back(c);
    }
  }
  return true;
}

std::string Base64Url(std::string_view bytes) { return Base64UrlEncode(bytes); }

}  // namespace token_internal

namespace {

using token_internal::Base64Url;
using token_internal::FormDecode;

std::string OpenSslError(const std::string& what) { return "token server: " + what + " failed"; }

Result<std::unique_ptr<TokenServer::Signer>> MakeSigner() {
  auto signer = std::make_unique<TokenServer::Signer>();
  signer->key.reset(EVP_RSA_gen(2048));
  if (!signer->key) return InternalError(OpenSslError("RSA key generation"));
  signer->cert.reset(X509_new());
  X509* cert = signer->cert.get();
  if (cert == nullptr) return InternalError(OpenSslError("X509_new"));
  X509_set_version(cert, 2);
  unsigned char serial[8];
  RAND_bytes(serial, sizeof(serial));
  serial[0] &= 0x7f;
  std::unique_ptr<BIGNUM, decltype(&BN_free)> bn(BN_bin2bn(serial, sizeof(serial), nullptr),
                                                 BN_free);
  BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert));
  X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert), 7L * 24 * 3600);
  X509_set_pubkey(cert, signer->key.get());
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("hoist test token signer"), -1,
                             -1, 0);
  X509_set_issuer_name(cert, name);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  for (auto [nid, value] : {std::pair{NID_basic_constraints, "critical,CA:TRUE"},
                            std::pair{NID_key_usage, "critical,digitalSignature,keyCertSign"},
                            std::pair{NID_subject_key_identifier, "hash"}}) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
    if (ext == nullptr) return InternalError(OpenSslError("certificate extension"));
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
  }
  if (X509_sign(cert, signer->key.get(), EVP_sha256()) == 0) {
    return InternalError(OpenSslError("certificate signing"));
  }
  int len = i2d_X509(cert, nullptr);
  if (len <= 0) return InternalError(OpenSslError("certificate encoding"));
  std::string der(static_cast<size_t>(len), '\0');
  unsigned char* p = reinterpret_cast<unsigned char*>(der.data());
  i2d_X509(cert, &p);
  signer->cert_der_base64 = Base64Encode(der);
  return signer;
}

Result<std::string> CertPem(X509* cert) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) {
    return InternalError(OpenSslError("PEM encoding"));
  }
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

Result<std::string> SignRs256(EVP_PKEY* key, std::string_view input) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  size_t len = 0;
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(input.data()),
                     input.size()) != 1) {
    return InternalError(OpenSslError("JWT signing"));
  }
  std::string sig(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len,
                     reinterpret_cast<const unsigned char*>(input.data()), input.size()) != 1) {
    return InternalError(OpenSslError("JWT signing"));
  }
  sig.resize(len);
  return sig;
}

std::string Rfc3339(std::time_t t) {
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

HttpResponse JsonError(int status, const std::string& code, const std::string& message) {
  json body = {{"errors", json::array({{{"code", code}, {"message", message}}})}};
  return HttpResponse{status, {{"Content-Type", "application/json"}}, body.dump()};
}

// Query parameters of `target` in order (a key may repeat). False on a bad escape.
bool ParseQuery(std::string_view target, std::vector<std::pair<std::string, std::string>>* out) {
  size_t q = target.find('?');
  if (q == std::string_view::npos) return true;
  for (std::string_view part : Split(target.substr(q + 1), '&')) {
    if (part.empty()) continue;
    size_t eq = part.find('=');
    std::string key, value;
    if (!FormDecode(part.substr(0, eq), &key)) return false;
    if (eq != std::string_view::npos && !FormDecode(part.substr(eq + 1), &value)) return false;
    out->emplace_back(std::move(key), std::move(value));
  }
  return true;
}

}  // namespace

TokenServer::TokenServer(TokenOptions options, TempDir dir)
    : options_(std::move(options)), dir_(std::move(dir)) {}

TokenServer::~TokenServer() { server_.reset(); }

int TokenServer::tokens_issued() const { return tokens_issued_.load(); }

Result<std::unique_ptr<TokenServer>> TokenServer::Start(TokenOptions options) {
  ASSIGN_OR_RETURN(TempDir dir, TempDir::Create("hoist-token-"));
  std::unique_ptr<TokenServer> ts(new TokenServer(std::move(options), std::move(dir)));
  ASSIGN_OR_RETURN(ts->signer_, MakeSigner());
  ASSIGN_OR_RETURN(std::string pem, CertPem(ts->signer_->cert.get()));
  {
    std::ofstream out(ts->cert_path(), std::ios::binary | std::ios::trunc);
    out << pem;
    out.close();
    if (!out) return InternalError("token server: write " + ts->cert_path());
  }
  TokenServer* self = ts.get();
  ASSIGN_OR_RETURN(ts->server_,
                   FixtureServer::Start([self](const HttpRequest& r) { return self->Handle(r); }));
  return ts;
}

HttpResponse TokenServer::Handle(const HttpRequest& req) {
  std::string_view path = std::string_view(req.target).substr(0, req.target.find('?'));
  if (path != "/token") return JsonError(404, "NOT_FOUND", "no such endpoint");
  if (req.method == "POST") {
    // OAuth2: the parameters are the form body.
    std::vector<std::pair<std::string, std::string>> form;
    if (!ParseQuery("?" + req.body, &form)) return JsonError(400, "BAD_REQUEST", "bad form escape");
    auto param = [&form](const std::string& key) {
      for (const auto& [k, v] : form) {
        if (k == key) return v;
      }
      return std::string();
    };
    const std::string grant = param("grant_type");
    std::string subject;
    if (grant == "refresh_token") {
      auto known = options_.refresh_tokens.find(param("refresh_token"));
      if (known == options_.refresh_tokens.end()) {
        return JsonError(401, "UNAUTHORIZED", "unknown refresh token");
      }
      subject = known->second;
    } else if (grant == "password") {
      auto known = options_.users.find(param("username"));
      if (known == options_.users.end() || known->second != param("password")) {
        return JsonError(401, "UNAUTHORIZED", "bad credentials");
      }
      subject = known->first;
    } else {
      return JsonError(400, "UNSUPPORTED_GRANT_TYPE", "unsupported grant_type " + grant);
    }
    return Issue(subject, form, /*oauth=*/true);
  }
  if (req.method != "GET") return JsonError(405, "UNSUPPORTED", "only GET and POST /token");

  std::vector<std::pair<std::string, std::string>> query;
  if (!ParseQuery(req.target, &query)) return JsonError(400, "BAD_REQUEST", "bad query escape");

  // Who is asking.
  std::string subject;
  if (auto it = req.headers.find("authorization"); it != req.headers.end()) {
    std::string_view value = it->second;
    std::string decoded;
    if (value.size() < 6 || !EqualsIgnoreCase(value.substr(0, 6), "basic ") ||
        !Base64Decode(TrimSpace(value.substr(6)), &decoded)) {
      return JsonError(401, "UNAUTHORIZED", "unsupported authorization");
    }
    size_t colon = decoded.find(':');
    std::string user = decoded.substr(0, colon);
    std::string pass = colon == std::string::npos ? "" : decoded.substr(colon + 1);
    auto known = options_.users.find(user);
    if (colon == std::string::npos || known == options_.users.end() || known->second != pass) {
      return JsonError(401, "UNAUTHORIZED", "bad credentials");
    }
    subject = user;
  }
  return Issue(subject, query, /*oauth=*/false);
}

HttpResponse TokenServer::Issue(const std::string& subject,
                                const std::vector<std::pair<std::string, std::string>>& params,
                                bool oauth) {
  // What they ask for.
  json access = json::array();
  std::string granted_scopes;
  for (const auto& [key, value] : params) {
    if (key == "service" && value != options_.service) {
      return JsonError(400, "BAD_REQUEST", "unknown service " + value);
    }
    if (key != "scope") continue;
    for (std::string_view scope : Split(value, ' ')) {  // a scope parameter may hold several
      if (scope.empty()) continue;
      size_t first = scope.find(':'), last = scope.rfind(':');
      if (first == std::string_view::npos || first == last) {
        return JsonError(400, "BAD_REQUEST", "malformed scope " + std::string(scope));
      }
      std::string type(scope.substr(0, first));
      std::string name(scope.substr(first + 1, last - first - 1));
      json actions = json::array();
      std::string action_list;
      for (std::string_view action : Split(scope.substr(last + 1), ',')) {
        if (action.empty()) continue;
        bool granted = !subject.empty() || (type == "repository" && action == "pull" &&
                                            options_.public_repos.count(name) != 0);
        if (!granted) continue;
        actions.push_back(std::string(action));
        action_list += (action_list.empty() ? "" : ",") + std::string(action);
      }
      if (!actions.empty()) {
        access.push_back({{"type", type}, {"name", name}, {"actions", actions}});
        granted_scopes +=
            (granted_scopes.empty() ? "" : " ") + type + ":" + name + ":" + action_list;
      }
    }
  }

  const std::time_t now = std::time(nullptr);
  unsigned char jti[16];
  RAND_bytes(jti, sizeof(jti));
  json header = {{"alg", "RS256"}, {"typ", "JWT"}, {"x5c", {signer_->cert_der_base64}}};
  json claims = {{"iss", options_.issuer},
                 {"sub", subject},
                 {"aud", options_.service},
                 {"exp", now + options_.expires_in - options_.exp_claim_skew},
                 {"nbf", now - 10},
                 {"iat", now},
                 {"jti", HexEncode(std::string_view(reinterpret_cast<char*>(jti), sizeof(jti)))},
                 {"access", access}};
  std::string signing_input = Base64Url(header.dump()) + "." + Base64Url(claims.dump());
  Result<std::string> sig = SignRs256(signer_->key.get(), signing_input);
  if (!sig.ok()) return JsonError(500, "INTERNAL", sig.status().message());
  std::string jwt = signing_input + "." + Base64Url(*sig);
  json body = {
      {"access_token", jwt}, {"expires_in", options_.expires_in}, {"issued_at", Rfc3339(now)}};
  if (oauth) {
    body["scope"] = granted_scopes;
  } else {
    body["token"] = jwt;
  }
  tokens_issued_.fetch_add(1);
  return HttpResponse{200, {{"Content-Type", "application/json"}}, body.dump()};
}

}  // namespace hoist::testing
