#include "support/http_server.h"

#include <arpa/inet.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>

#include "base/strings.h"

namespace hoist::testing {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kConnectionDeadline = std::chrono::seconds(30);

const char* ReasonPhrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 206:
      return "Partial Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 307:
      return "Temporary Redirect";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 413:
      return "Payload Too Large";
    case 416:
      return "Range Not Satisfiable";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    default:
      return "Status";
  }
}

// Waits until `fd` is readable, the deadline passes or `stopping` is set (polls in 100 ms
// slices). Returns bytes read, 0 on EOF, -1 on error/timeout/stop.
ssize_t RecvSome(int fd, char* buf, size_t cap, Clock::time_point deadline,
                 const std::atomic<bool>& stopping) {
  while (!stopping.load() && Clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    int n = ::poll(&p, 1, 100);
    if (n < 0 && errno != EINTR) return -1;
    if (n <= 0) continue;
    ssize_t got = ::recv(fd, buf, cap, 0);
    if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    return got;
  }
  return -1;
}

bool SendAll(int fd, std::string_view data, Clock::time_point deadline) {
  while (!data.empty()) {
    if (Clock::now() >= deadline) return false;
    pollfd p{fd, POLLOUT, 0};
    int n = ::poll(&p, 1, 100);
    if (n < 0 && errno != EINTR) return false;
    if (n <= 0) continue;
    ssize_t sent = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (sent < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return false;
    }
    data.remove_prefix(static_cast<size_t>(sent));
  }
  return true;
}

std::string SimpleResponse(int status, std::string_view message) {
  return "HTTP/1.1 " + std::to_string(status) + " " + ReasonPhrase(status) +
         "\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(message.size()) +
         "\r\nConnection: close\r\n\r\n" + std::string(message);
}

// Parses the request line and headers (everything before the blank line). False if malformed.
bool ParseHead(std::string_view head, HttpRequest* req) {
  size_t eol = head.find("\r\n");
  std::string_view line = head.substr(0, eol);
  std::vector<std::string_view> parts = Split(line, ' ');
  if (parts.size() != 3 || parts[0].empty() || parts[1].empty() ||
      parts[2].rfind("HTTP/1.", 0) != 0) {
    return false;
  }
  req->method = std::string(parts[0]);
  req->target = std::string(parts[1]);
  if (eol == std::string_view::npos) return true;
  std::string_view rest = head.substr(eol + 2);
  while (!rest.empty()) {
    eol = rest.find("\r\n");
    std::string_view header = rest.substr(0, eol);
    rest = eol == std::string_view::npos ? std::string_view() : rest.substr(eol + 2);
    if (header.empty()) continue;
    size_t colon = header.find(':');
    if (colon == std::string_view::npos || colon == 0) return false;
    req->headers[ToLower(TrimSpace(header.substr(0, colon)))] =
        std::string(TrimSpace(header.substr(colon + 1)));
  }
  return true;
}

}  // namespace

Result<std::unique_ptr<FixtureServer>> FixtureServer::Start(Handler handler,
                                                            const std::string& address) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return ErrnoError(errno, "fixture server: socket");
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  if (::inet_pton(AF_INET, address.c_str(), &addr.sin_addr) != 1) {
    return InvalidArgumentError("fixture server: not an IPv4 address: " + address);
  }
  addr.sin_port = 0;
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return ErrnoError(errno, "fixture server: bind " + address + ":0");
  }
  if (::listen(fd.get(), 64) != 0) return ErrnoError(errno, "fixture server: listen");
  socklen_t len = sizeof(addr);
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return ErrnoError(errno, "fixture server: getsockname");
  }
  std::unique_ptr<FixtureServer> server(
      new FixtureServer(std::move(handler), std::move(fd), address, ntohs(addr.sin_port)));
  server->acceptor_ = std::thread([s = server.get()] { s->AcceptLoop(); });
  return server;
}

FixtureServer::~FixtureServer() {
  stopping_.store(true);
  if (acceptor_.joinable()) acceptor_.join();
  JoinFinished(/*all=*/true);
}

std::vector<HttpRequest> FixtureServer::requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_;
}

void FixtureServer::JoinFinished(bool all) {
  for (auto it = connections_.begin(); it != connections_.end();) {
    if (all || it->done.load()) {
      if (it->thread.joinable()) it->thread.join();
      it = connections_.erase(it);
    } else {
      ++it;
    }
  }
}

void FixtureServer::AcceptLoop() {
  while (!stopping_.load()) {
    JoinFinished(/*all=*/false);
    pollfd p{listener_.get(), POLLIN, 0};
    int n = ::poll(&p, 1, 100);
    if (n <= 0) continue;
    UniqueFd client(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!client) continue;
    Connection& c = connections_.emplace_back();
    c.thread = std::thread([this, &c, fd = client.release()]() mutable {
      Serve(UniqueFd(fd));
      c.done.store(true);
    });
  }
}

void FixtureServer::Serve(UniqueFd fd) {
  const auto deadline = Clock::now() + kConnectionDeadline;
  std::string buf;
  char chunk[65536];
  size_t head_end = std::string::npos;
  while ((head_end = buf.find("\r\n\r\n")) == std::string::npos) {
    if (buf.size() > kMaxHeaderBytes) {
      SendAll(fd.get(), SimpleResponse(431, "header block too large"), deadline);
      return;
    }
    ssize_t got = RecvSome(fd.get(), chunk, sizeof(chunk), deadline, stopping_);
    if (got <= 0) return;
    buf.append(chunk, static_cast<size_t>(got));
    // A TLS ClientHello (record type 0x16) on this plain-HTTP port: answer at once, as real
    // plain-HTTP servers do, so a client probing https first falls back without waiting.
    if (buf[0] == '\x16') {
      SendAll(fd.get(), SimpleResponse(400, "this is a plain HTTP server"), deadline);
      return;
    }
  }
  if (head_end > kMaxHeaderBytes) {
    SendAll(fd.get(), SimpleResponse(431, "header block too large"), deadline);
    return;
  }
  HttpRequest req;
  if (!ParseHead(std::string_view(buf).substr(0, head_end), &req)) {
    SendAll(fd.get(), SimpleResponse(400, "malformed request"), deadline);
    return;
  }
  if (req.headers.count("transfer-encoding") != 0) {
    SendAll(fd.get(), SimpleResponse(501, "chunked request bodies are not supported"), deadline);
    return;
  }
  size_t content_length = 0;
  if (auto it = req.headers.find("content-length"); it != req.headers.end()) {
    const std::string& v = it->second;
    if (v.empty() || v.size() > 12 || v.find_first_not_of("0123456789") != std::string::npos) {
      SendAll(fd.get(), SimpleResponse(400, "bad Content-Length"), deadline);
      return;
    }
    content_length = std::stoull(v);
    if (content_length > kMaxBodyBytes) {
      SendAll(fd.get(), SimpleResponse(413, "body too large"), deadline);
      return;
    }
  }
  req.body = buf.substr(head_end + 4);
  if (req.body.size() < content_length) {
    auto expect = req.headers.find("expect");
    if (expect != req.headers.end() && EqualsIgnoreCase(expect->second, "100-continue")) {
      if (!SendAll(fd.get(), "HTTP/1.1 100 Continue\r\n\r\n", deadline)) return;
    }
  }
  while (req.body.size() < content_length) {
    ssize_t got = RecvSome(fd.get(), chunk, sizeof(chunk), deadline, stopping_);
    if (got <= 0) return;
    req.body.append(chunk, static_cast<size_t>(got));
  }
  req.body.resize(content_length);  // a pipelined next request is ignored
  {
    std::lock_guard<std::mutex> lock(mu_);
    requests_.push_back(req);
  }

  HttpResponse resp;
  try {
    resp = handler_(req);
  } catch (...) {
    resp = HttpResponse{500, {}, "fixture handler threw", std::string::npos};
  }
  if (resp.reset && resp.status == 0) {
    linger hard{1, 0};  // close() sends RST
    ::setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &hard, sizeof(hard));
    return;
  }
  bool has_length = false, has_connection = false;
  std::string out =
      "HTTP/1.1 " + std::to_string(resp.status) + " " + ReasonPhrase(resp.status) + "\r\n";
  for (const auto& [name, value] : resp.headers) {
    if (EqualsIgnoreCase(name, "content-length")) has_length = true;
    if (EqualsIgnoreCase(name, "connection")) has_connection = true;
    out += name + ": " + value + "\r\n";
  }
  if (!has_length) out += "Content-Length: " + std::to_string(resp.body.size()) + "\r\n";
  if (!has_connection) out += "Connection: close\r\n";
  out += "\r\n";
  const size_t body_bytes = req.method == "HEAD" ? 0 : std::min(resp.body_limit, resp.body.size());
  const bool trickle = resp.byte_interval.count() > 0;
  if (!trickle) out.append(resp.body, 0, body_bytes);
  if (!SendAll(fd.get(), out, deadline)) return;
  for (size_t i = 0; trickle && i < body_bytes && !stopping_.load(); ++i) {
    std::this_thread::sleep_for(resp.byte_interval);
    if (!SendAll(fd.get(), std::string_view(resp.body).substr(i, 1), deadline)) return;
  }
  if (resp.stall.count() > 0) {
    // Until the client gives up (a read of 0 or an error) or the stall is over.
    const auto stall_end = std::min(deadline, Clock::now() + resp.stall);
    while (Clock::now() < stall_end && !stopping_.load()) {
      if (RecvSome(fd.get(), chunk, sizeof(chunk), stall_end, stopping_) <= 0) break;
    }
  }
  if (resp.reset) {
    // Let what was sent reach the client first (≤ 2 s), so the reset comes at that byte.
    for (int i = 0, pending = 1; i < 200 && pending > 0 && !stopping_.load(); ++i) {
      if (::ioctl(fd.get(), SIOCOUTQ, &pending) != 0) break;
      if (pending > 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    linger hard{1, 0};  // close() then sends RST and drops anything unsent
    ::setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &hard, sizeof(hard));
    return;
  }

  // Close gracefully: stop sending, then drain what the client still sends (briefly) so the
  // kernel does not answer unread bytes with a reset that could destroy the response.
  ::shutdown(fd.get(), SHUT_WR);
  const auto drain_deadline = std::min(deadline, Clock::now() + std::chrono::seconds(1));
  for (int i = 0; i < 64; ++i) {
    if (RecvSome(fd.get(), chunk, sizeof(chunk), drain_deadline, stopping_) <= 0) break;
  }
}

}  // namespace hoist::testing
