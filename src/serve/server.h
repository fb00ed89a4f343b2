// A read-only OCI distribution server over the local store (`hoist serve`), so that other nodes
// can list this one as a registries.conf mirror. Built on libmicrohttpd (its own threads, TLS,
// sendfile of blob fds, connection and header-size limits).
//
// What it answers (everything else is the distribution spec's error JSON):
//   GET|HEAD /v2/                            200, Docker-Distribution-API-Version: registry/2.0
//   GET|HEAD /v2/<name>/manifests/<tag>      the image a record of the store names, see below
//   GET|HEAD /v2/<name>/manifests/<digest>   a manifest some record references
//   GET|HEAD /v2/<name>/blobs/<digest>       a blob some record references; one Range
//   GET|HEAD /v2/<name>/tags/list            the tags of the records of <name>; ?n= and ?last=
//   any other method                          405 UNSUPPORTED (read-only whatever the request)
//
// Names. A mirror client asks for the repository path without the registry's host: a record
// "127.0.0.1:5000/app:1" is asked for as /v2/app/manifests/1. A tag matches every record whose
// reference has that path and tag, with any registry host, or only the host given as the
// `ns` query parameter (as containerd's mirrors send it). If records of several registries
// match and name different manifests, the request is MANIFEST_UNKNOWN ("ambiguous"): ask with
// ?ns=HOST. A tag serves what the registry served for it: the index the reference resolved to
// (io.hoist.repo.digest), else the registry's own manifest, else the record's manifest; so a
// node pulling through this one records the same digests as from the registry.
//
// Safety. `<name>` must satisfy the reference grammar (reference.h: no "." or ".." component,
// no '%' or other path characters; the URL is percent-decoded before the check), digests come
// from Digest::Parse, and a blob is opened relative to the store's blobs/<alg> directory fd
// with O_NOFOLLOW: no path is built from request text. Only digests the records reference
// (image/references.h) are served, whatever repository name is asked; nothing is written. The
// server reads the store only through a StoreView, so that it can run as a user who cannot open
// the store (broker.h).
// Blobs are sent from their fd (sendfile on plain http), never read into memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "content/store.h"
#include "hoist/status.h"
#include "serve/store_view.h"

namespace hoist::serve {

struct ServeOptions {
  // ADDR:PORT ("[ADDR]:PORT" for IPv6); the address numeric. Port 0 picks a free port.
  std::string listen = "127.0.0.1:5000";
  // PEM files: serve https with this certificate and key.
  std::string tls_cert, tls_key;
  // A PEM CA (with TLS): every request needs a client certificate it issued (else 403 DENIED).
  std::string tls_client_ca;
  // An htpasswd file of bcrypt ($2y$) entries (htpasswd -B): every request needs Basic auth
  // with one of its accounts. Read once at Start (at most 1 MiB, 10000 entries).
  std::string htpasswd;
  // Without htpasswd or tls_client_ca, Start refuses an address that is not loopback unless
  // this is set.
  bool allow_anonymous_remote = false;
  // "": no access log; "-": standard error; else a file appended to (created 0600).
  std::string access_log;
  unsigned max_connections = 256;
  unsigned max_connections_per_ip = 64;
  unsigned timeout_seconds = 60;     // an idle connection is closed after this long
  size_t header_memory = 32 * 1024;  // per connection: request line and headers must fit
  unsigned threads = 4;
};

class Server {
 public:
  // Reads what `options` name (htpasswd, TLS cert, key and client CA, the access log) and binds
  // and listens on the address, as whoever calls it; serving begins with Start. So a privileged
  // process can do this before dropping its privileges (broker.h).
  // InvalidArgument for a bad address or a refused combination (non-loopback without htpasswd,
  // tls_client_ca or allow_anonymous_remote; a client CA without TLS); the file's error for an
  // unreadable cert, key or htpasswd; Unavailable when the address cannot be bound.
  static Result<std::unique_ptr<Server>> Bind(ServeOptions options);
  // Starts serving `view` (which must outlive the Server) in threads of its own. Unavailable
  // when the TLS cert or key is not usable.
  Status Start(StoreView& view);
  // Bind, then Start over a view of `store` (which must outlive the Server).
  static Result<std::unique_ptr<Server>> Start(const content::Store& store, ServeOptions options);
  // Stops listening and waits for the connections' threads to end.
  ~Server();
  // The port bound (the one chosen, with port 0).
  int port() const;

  struct State;

 private:
  explicit Server(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace hoist::serve
