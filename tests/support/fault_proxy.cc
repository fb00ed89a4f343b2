#include "support/fault_proxy.h"

#include <algorithm>
#include <thread>

#include "base/status_macros.h"
#include "support/http_client.h"

namespace hoist::testing {
namespace {

const char* KindName(Fault::Kind k) {
  switch (k) {
    case Fault::kStatus:
      return "status";
    case Fault::kReset:
      return "reset";
    case Fault::kShortBody:
      return "short body";
    case Fault::kStall:
      return "stall";
    case Fault::kIgnoreRange:
      return "ignore range";
    case Fault::kDelay:
      return "delay";
  }
  return "";
}

std::string PathOf(const std::string& target) { return target.substr(0, target.find('?')); }

}  // namespace

Result<std::unique_ptr<FaultProxy>> FaultProxy::Start(const std::string& upstream) {
  std::unique_ptr<FaultProxy> proxy(new FaultProxy(upstream));
  auto server =
      FixtureServer::Start([p = proxy.get()](const HttpRequest& req) { return p->Handle(req); });
  if (!server.ok()) return server.status();
  proxy->server_ = std::move(server).value();
  return proxy;
}

void FaultProxy::Add(Fault fault) {
  std::lock_guard<std::mutex> lock(mu_);
  left_.push_back(fault.count);
  faults_.push_back(std::move(fault));
}

void FaultProxy::ClearFaults() {
  std::lock_guard<std::mutex> lock(mu_);
  faults_.clear();
  left_.clear();
}

std::optional<Fault> FaultProxy::Take(const std::string& path,
                                      std::initializer_list<Fault::Kind> kinds) {
  std::lock_guard<std::mutex> lock(mu_);
  for (size_t i = 0; i < faults_.size(); ++i) {
    const Fault& f = faults_[i];
    if (left_[i] == 0 || std::find(kinds.begin(), kinds.end(), f.kind) == kinds.end()) continue;
    if (path.find(f.path_contains) == std::string::npos) continue;
    if (left_[i] > 0) --left_[i];
    return f;
  }
  return std::nullopt;
}

HttpResponse FaultProxy::Handle(const HttpRequest& req) {
  ProxiedRequest entry;
  entry.arrived = std::chrono::steady_clock::now();
  entry.method = req.method;
  entry.path = PathOf(req.target);
  if (auto it = req.headers.find("range"); it != req.headers.end()) entry.range = it->second;
  auto finish = [&](HttpResponse resp) {
    entry.status = resp.status;
    if (req.method != "HEAD") {
      entry.body_bytes = static_cast<int64_t>(std::min(resp.body_limit, resp.body.size()));
    }
    std::lock_guard<std::mutex> lock(mu_);
    log_.push_back(entry);
    return resp;
  };

  if (auto f = Take(entry.path, {Fault::kStatus})) {
    entry.fault = KindName(f->kind);
    HttpResponse resp;
    resp.status = f->status;
    resp.headers = {{"Content-Type", "application/json"}};
    if (!f->retry_after.empty()) resp.headers.emplace_back("Retry-After", f->retry_after);
    resp.body = R"({"errors":[{"code":"INJECTED","message":"fault injected by the test proxy"}]})";
    return finish(std::move(resp));
  }
  if (auto f = Take(entry.path, {Fault::kDelay})) {
    entry.fault = KindName(f->kind);
    std::this_thread::sleep_for(f->stall);
  }
  if (req.method == "PUT" || req.method == "PATCH") {
    if (auto f = Take(entry.path, {Fault::kReset})) {
      entry.fault = KindName(f->kind);
      HttpResponse resp;
      resp.status = 0;  // nothing sent: the connection is reset
      resp.reset = true;
      return finish(std::move(resp));
    }
  }
  std::vector<std::string> headers;
  for (const char* name : {"accept", "authorization", "range", "content-type", "content-range"}) {
    auto it = req.headers.find(name);
    if (it == req.headers.end()) continue;
    if (std::string_view(name) == "range") {
      if (auto f = Take(entry.path, {Fault::kIgnoreRange})) {
        entry.fault = KindName(f->kind);
        continue;
      }
    }
    headers.push_back(std::string(name) + ": " + it->second);
  }
  auto up = HttpCall(req.method, "http://" + upstream_ + req.target, headers, req.body);
  if (!up.ok()) {
    HttpResponse resp;
    resp.status = 502;
    resp.body = up.status().message();
    return finish(std::move(resp));
  }
  HttpResponse resp;
  resp.status = up->status;
  for (const auto& [name, value] : up->headers) {
    if (name == "connection" || name == "transfer-encoding") continue;
    if (name == "content-length" && req.method != "HEAD") continue;  // the server counts
    if (name == "location" && value.starts_with("http://" + upstream_ + "/")) {
      resp.headers.emplace_back(name, "http://" + host() + value.substr(7 + upstream_.size()));
      continue;
    }
    resp.headers.emplace_back(name, value);
  }
  resp.body = std::move(up->body);
  const bool has_body = req.method == "GET" && resp.status / 100 == 2 && !resp.body.empty();
  if (has_body) {
    if (auto f = Take(entry.path, {Fault::kReset, Fault::kShortBody, Fault::kStall})) {
      entry.fault = KindName(f->kind);
      const int64_t size = static_cast<int64_t>(resp.body.size());
      int64_t at =
          f->at >= 0 ? f->at : static_cast<int64_t>(static_cast<double>(size) * f->fraction);
      resp.body_limit = static_cast<size_t>(std::clamp<int64_t>(at, 0, size));
      resp.reset = f->kind == Fault::kReset;
      if (f->kind == Fault::kStall) resp.stall = f->stall;
    }
  }
  return finish(std::move(resp));
}

std::vector<ProxiedRequest> FaultProxy::Requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return log_;
}

int64_t FaultProxy::BodyBytes(std::string_view path_contains) const {
  std::lock_guard<std::mutex> lock(mu_);
  int64_t n = 0;
  for (const auto& r : log_) {
    if (r.path.find(path_contains) != std::string::npos && r.status / 100 == 2) {
      n += r.body_bytes;
    }
  }
  return n;
}

int FaultProxy::Count(std::string_view path_contains, std::string_view method) const {
  std::lock_guard<std::mutex> lock(mu_);
  int n = 0;
  for (const auto& r : log_) {
    if (r.path.find(path_contains) != std::string::npos && (method.empty() || r.method == method)) {
      ++n;
    }
  }
  return n;
}

std::chrono::milliseconds FaultProxy::LongestRecovery() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::chrono::milliseconds longest{0};
  for (size_t i = 0; i < log_.size(); ++i) {
    if (log_[i].fault.empty()) continue;
    for (size_t j = i + 1; j < log_.size(); ++j) {
      if (log_[j].path != log_[i].path) continue;
      longest = std::max(longest, std::chrono::duration_cast<std::chrono::milliseconds>(
                                      log_[j].arrived - log_[i].arrived));
      break;
    }
  }
  return longest;
}

Result<ProxiedRegistry> StartProxiedRegistry(const std::string& repo, const std::string& tag,
                                             const BuiltImage& image) {
  ProxiedRegistry r;
  ASSIGN_OR_RETURN(r.registry, TestRegistry::Start());
  RETURN_IF_ERROR(PushImage(r.registry->host(), repo, tag, image));
  ASSIGN_OR_RETURN(r.proxy, FaultProxy::Start(r.registry->host()));
  return r;
}

}  // namespace hoist::testing
