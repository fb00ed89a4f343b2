#include "registry/auth.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <ctime>
#include <nlohmann/json.hpp>

#include "base/json.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "registry/registry.h"

namespace hoist::registry {
namespace {

constexpr auto kDefaultTokenLifetime = std::chrono::seconds(60);
// Refresh a token this long before the registry would reject it.
constexpr auto kTokenSlack = std::chrono::seconds(10);

bool IsTokenChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool IsToken68Char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) ||
         std::string_view("-._~+/").find(c) != std::string_view::npos;
}

void SkipSpace(std::string_view s, size_t& i) {
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
}

void SkipSpaceAndCommas(std::string_view s, size_t& i) {
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == ',')) ++i;
}

std::string ReadToken(std::string_view s, size_t& i) {
  size_t start = i;
  while (i < s.size() && IsTokenChar(s[i])) ++i;
  return std::string(s.substr(start, i - start));
}

// A token68 (RFC 7235 2.1: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=") at i
// that makes up the whole rest of its challenge, i.e. is followed by a comma or the end; then i
// moves past it. Otherwise "" and i is unchanged (what follows the scheme is auth-params).
std::string ReadToken68(std::string_view s, size_t& i) {
  size_t j = i;
  while (j < s.size() && IsToken68Char(s[j])) ++j;
  if (j == i) return "";
  while (j < s.size() && s[j] == '=') ++j;
  size_t end = j;
  SkipSpace(s, j);
  if (j < s.size() && s[j] != ',') return "";
  std::string out(s.substr(i, end - i));
  i = j;
  return out;
}

// An auth-param value: a quoted-string (backslash escapes) or a token.
std::string ReadParamValue(std::string_view s, size_t& i) {
  if (i >= s.size() || s[i] != '"') return ReadToken(s, i);
  std::string value;
  ++i;
  while (i < s.size() && s[i] != '"') {
    if (s[i] == '\\' && i + 1 < s.size()) ++i;
    value.push_back(s[i++]);
  }
  if (i < s.size()) ++i;  // closing quote
  return value;
}

// Parses the challenges of one header value, appending to out (RFC 7235 section 4.1):
//   challenge = auth-scheme [ 1*SP ( token68 / #auth-param ) ], challenges separated by ","
// A name followed by "=" is a parameter of the current challenge; any other token starts the
// next challenge. Text that fits neither is skipped up to the next comma.
void ParseValue(std::string_view s, std::vector<Challenge>& out) {
  size_t i = 0;
  while (i < s.size()) {
    SkipSpaceAndCommas(s, i);
    std::string scheme = ReadToken(s, i);
    if (scheme.empty()) {  // not a challenge: skip to the next comma
      while (i < s.size() && s[i] != ',') ++i;
      continue;
    }
    Challenge c;
    c.scheme = ToLower(scheme);
    SkipSpace(s, i);
    c.token68 = ReadToken68(s, i);
    while (c.token68.empty() && i < s.size()) {
      SkipSpaceAndCommas(s, i);
      size_t name_start = i;
      std::string name = ReadToken(s, i);
      if (name.empty()) {  // a character no token may hold: skip to the next comma
        while (i < s.size() && s[i] != ',') ++i;
        continue;
      }
      SkipSpace(s, i);
      if (i >= s.size() || s[i] != '=') {  // not a parameter: the next challenge's scheme
        i = name_start;
        break;
      }
      ++i;
      SkipSpace(s, i);
      c.params[ToLower(name)] = ReadParamValue(s, i);
      SkipSpace(s, i);
      if (i < s.size() && s[i] != ',') {  // junk after the value
        while (i < s.size() && s[i] != ',') ++i;
      }
    }
    out.push_back(std::move(c));
  }
}

// Seconds since the epoch of an RFC 3339 time ("2024-01-02T03:04:05.123Z"), or nullopt.
std::optional<std::time_t> ParseRfc3339(const std::string& text) {
  std::tm tm{};
  const char* end = strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (end == nullptr) return std::nullopt;
  return timegm(&tm);
}

}  // namespace

std::vector<Challenge> ParseChallenges(const std::vector<std::string>& header_values) {
  std::vector<Challenge> out;
  for (const auto& v : header_values) ParseValue(v, out);
  return out;
}

Result<std::optional<Credential>> StaticCredentials::ParseUserPassword(std::string_view text) {
  if (text.empty()) return std::optional<Credential>();
  auto colon = text.find(':');
  if (colon == std::string_view::npos || colon == 0) {
    return InvalidArgumentError("credentials must be given as USER:PASSWORD");
  }
  Credential c;
  c.username = std::string(text.substr(0, colon));
  c.password = std::string(text.substr(colon + 1));
  return std::optional<Credential>(std::move(c));
}

std::string UrlAuthority(const std::string& url) {
  CURLU* u = curl_url();
  std::string out;
  if (curl_url_set(u, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK) {
    char* host = nullptr;
    char* port = nullptr;
    if (curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
      out = host;
      if (curl_url_get(u, CURLUPART_PORT, &port, 0) == CURLUE_OK) out += ":" + std::string(port);
    }
    curl_free(host);
    curl_free(port);
  }
  curl_url_cleanup(u);
  return out;
}

std::string UrlHostname(const std::string& url) {
  std::string authority = UrlAuthority(url);
  if (authority.starts_with("[")) return authority.substr(0, authority.find(']') + 1);
  return authority.substr(
      0, authority.rfind(':') == std::string::npos ? authority.size() : authority.rfind(':'));
}

bool IsLoopbackHost(std::string_view host) {
  if (host.starts_with("[")) {
    return host.substr(0, host.find(']') + 1) == "[::1]";
  }
  host = host.substr(0, host.find(':'));
  if (host == "localhost") return true;
  if (!host.starts_with("127.")) return false;
  auto parts = Split(host, '.');
  if (parts.size() != 4) return false;
  for (auto p : parts) {
    if (p.empty() || p.size() > 3) return false;
    for (char c : p) {
      if (!std::isdigit(static_cast<unsigned char>(c))) return false;
    }
    if (std::stoi(std::string(p)) > 255) return false;
  }
  return true;
}

std::string Authorizer::HeaderFor(const std::string& host, const CredentialSource& credentials,
                                  const std::string& scope) {
  const Key key{host, &credentials};
  std::lock_guard<std::mutex> lock(mu_);
  auto t = tokens_.find({key, scope});
  if (t != tokens_.end()) {
    if (std::chrono::steady_clock::now() < t->second.expires) {
      return "Authorization: Bearer " + t->second.value;
    }
    tokens_.erase(t);
  }
  auto b = basic_.find(key);
  return b == basic_.end() ? "" : b->second;
}

Status Authorizer::OnUnauthorized(const std::string& registry, CredentialSource& credentials,
                                  const std::string& host, const RealmTls& tls,
                                  const std::string& scope, const HttpResponse& response,
                                  HttpClient& http) {
  auto it = response.headers.find("www-authenticate");
  std::vector<Challenge> challenges =
      ParseChallenges(it == response.headers.end() ? std::vector<std::string>{} : it->second);
  // Bearer first (it carries the scope), then basic.
  for (const auto& c : challenges) {
    if (c.scheme != "bearer") continue;
    ASSIGN_OR_RETURN(Token token, FetchToken(registry, credentials, host, tls, scope, c, http));
    std::lock_guard<std::mutex> lock(mu_);
    tokens_[{Key{host, &credentials}, scope}] = std::move(token);
    return OkStatus();
  }
  for (const auto& c : challenges) {
    if (c.scheme != "basic") continue;
    ASSIGN_OR_RETURN(auto cred, credentials.Lookup(registry));
    if (!cred || cred->username.empty()) {
      return UnauthenticatedError("authentication required (no credentials for " + registry +
                                  "; use --creds)");
    }
    std::string header =
        "Authorization: Basic " + Base64Encode(cred->username + ":" + cred->password);
    std::lock_guard<std::mutex> lock(mu_);
    std::string& known = basic_[Key{host, &credentials}];
    if (known == header) {
      return UnauthenticatedError("credentials for " + registry + " were rejected");
    }
    known = std::move(header);
    return OkStatus();
  }
  return UnauthenticatedError("registry " + registry +
                              " answered 401 without a usable WWW-Authenticate challenge");
}

Result<Authorizer::Token> Authorizer::FetchToken(const std::string& registry,
                                                 CredentialSource& credentials,
                                                 const std::string& host, const RealmTls& tls,
                                                 const std::string& scope, const Challenge& c,
                                                 HttpClient& http) {
  auto realm_it = c.params.find("realm");
  if (realm_it == c.params.end() || realm_it->second.empty()) {
    return UnauthenticatedError("bearer challenge from " + registry + " has no realm");
  }
  const std::string& realm = realm_it->second;
  if (!realm.starts_with("https://") && !realm.starts_with("http://")) {
    return UnauthenticatedError("token realm " + Quote(realm) + " is not an http(s) URL");
  }
  // Credentials travel to the realm only over TLS, or in the clear to the registry's own host.
  bool may_send_credentials =
      realm.starts_with("https://") || UrlHostname(realm) == UrlHostname("http://" + host);

  ASSIGN_OR_RETURN(auto cred, credentials.Lookup(registry));
  std::string query;
  auto service = c.params.find("service");
  if (service != c.params.end()) query += "service=" + UrlEncode(service->second);
  // The challenge may name a scope of its own (e.g. a push scope); we ask for the ones we need
  // (space-separated in `scope`, one parameter each: a mount's two repositories).
  for (std::string_view one : Split(scope, ' ')) {
    if (!one.empty()) query += std::string(query.empty() ? "" : "&") + "scope=" + UrlEncode(one);
  }

  HttpRequest req;
  req.max_body = 1 << 20;
  req.tls = tls.tls;
  req.verify_tls = !(tls.registry_insecure && UrlHostname(realm) == UrlHostname("http://" + host));
  HttpResponse r;
  bool answered = false;
  if (cred && may_send_credentials && !cred->identity_token.empty()) {
    // OAuth2 refresh-token grant (docker's identity tokens): a form POST to the realm.
    req.method = "POST";
    req.url = realm;
    req.headers = {"Content-Type: application/x-www-form-urlencoded"};
    req.body = "grant_type=refresh_token&client_id=hoist&refresh_token=" +
               UrlEncode(cred->identity_token) + (query.empty() ? "" : "&" + query);
    ASSIGN_OR_RETURN(r, http.Do(req));
    // A token server without OAuth2 support answers 404/405: fall back to GET, as docker.
    answered = r.status != 404 && r.status != 405;
  }
  if (!answered) {
    req.method = "GET";
    req.url = realm + (realm.find('?') == std::string::npos ? "?" : "&") + query;
    req.body.clear();
    req.headers.clear();
    if (cred && may_send_credentials && !cred->username.empty() && !cred->password.empty()) {
      req.headers.push_back("Authorization: Basic " +
                            Base64Encode(cred->username + ":" + cred->password));
    }
    ASSIGN_OR_RETURN(r, http.Do(req));
  }
  if (r.status == 401 || r.status == 403) {
    return UnauthenticatedError("token server " + TerminalSafe(UrlAuthority(realm)) +
                                " refused (HTTP " + std::to_string(r.status) + ")");
  }
  if (r.status != 200) {
    // Retryable (Unavailable) only when the status is: 408, 429, 5xx.
    return Status(StatusFromResponse(r).code(), "token server " +
                                                    TerminalSafe(UrlAuthority(realm)) +
                                                    " answered HTTP " + std::to_string(r.status));
  }
  auto parsed = ParseJson(r.body, "token answer");
  if (!parsed.ok() || !parsed->is_object()) {
    return UnauthenticatedError("token server " + TerminalSafe(UrlAuthority(realm)) +
                                " sent invalid JSON");
  }
  const nlohmann::json& doc = *parsed;
  Token token;
  for (const char* key : {"token", "access_token"}) {
    if (doc.contains(key) && doc[key].is_string() && !doc[key].get<std::string>().empty()) {
      token.value = doc[key].get<std::string>();
      break;
    }
  }
  if (token.value.empty()) {
    return UnauthenticatedError("token server " + TerminalSafe(UrlAuthority(realm)) +
                                " sent no token");
  }
  for (char ch : token.value) {
    if (ch <= ' ' || ch > '~') {
      return UnauthenticatedError("token server " + TerminalSafe(UrlAuthority(realm)) +
                                  " sent a malformed token");
    }
  }
  auto lifetime = kDefaultTokenLifetime;
  if (doc.contains("expires_in") && doc["expires_in"].is_number_integer()) {
    int64_t s = doc["expires_in"].get<int64_t>();
    if (s > 0 && s < 365LL * 24 * 3600) lifetime = std::chrono::seconds(s);
  }
  // issued_at lets a token that was issued a while ago expire on time.
  if (doc.contains("issued_at") && doc["issued_at"].is_string()) {
    if (auto issued = ParseRfc3339(doc["issued_at"].get<std::string>())) {
      auto age = std::chrono::seconds(std::max<int64_t>(0, std::time(nullptr) - *issued));
      if (age < lifetime) lifetime -= age;
    }
  }
  token.expires = std::chrono::steady_clock::now() +
                  (lifetime > 2 * kTokenSlack ? lifetime - kTokenSlack : lifetime);
  return token;
}

}  // namespace hoist::registry
