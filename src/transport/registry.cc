#include "transport/registry.h"

#include <algorithm>
#include <mutex>
#include <set>
#include <utility>

#include "base/status_macros.h"
#include "base/strings.h"
#include "content/digester.h"
#include "manifest/manifest.h"
#include "manifest/media_types.h"
#include "pull/resolver.h"

namespace hoist::transport {
namespace {

// HttpClients for the calls of one source or destination, reused (with their connections)
// across calls made from any thread. Copy calls a source and a destination from its workers,
// without handing them its own clients.
class ClientPool {
 public:
  ClientPool(const std::atomic<bool>* cancel, registry::TransferLimits limits)
      : cancel_(cancel), limits_(limits) {}

  struct Return {
    ClientPool* pool;
    void operator()(registry::HttpClient* http) const {
      std::lock_guard<std::mutex> lock(pool->mu_);
      pool->idle_.emplace_back(http);
    }
  };
  using Lease = std::unique_ptr<registry::HttpClient, Return>;

  Lease Acquire() {
    std::lock_guard<std::mutex> lock(mu_);
    if (idle_.empty()) {
      return Lease(new registry::HttpClient(cancel_, nullptr, limits_), Return{this});
    }
    Lease out(idle_.back().release(), Return{this});
    idle_.pop_back();
    return out;
  }

 private:
  const std::atomic<bool>* cancel_;
  const registry::TransferLimits limits_;
  std::mutex mu_;
  std::vector<std::unique_ptr<registry::HttpClient>> idle_;  // guarded by mu_
};

// A manifest as the registry sent it, with the digest that identifies it (of its canonical
// bytes: signed schema1 differs), verified (pull::VerifyManifest).
Result<ManifestBytes> CheckedManifest(const registry::ManifestResponse& m,
                                      const std::optional<Digest>& want) {
  ASSIGN_OR_RETURN(pull::VerifiedManifest v, pull::VerifyManifest(m, want));
  return ManifestBytes{v.decoded.media_type, m.body, v.digest};
}

class RegistrySource : public ImageSource {
 public:
  RegistrySource(std::unique_ptr<registry::Repository> repo, Reference ref,
                 RegistryTransportOptions options)
      : repo_(std::move(repo)),
        ref_(std::move(ref)),
        options_(std::move(options)),
        clients_(options_.cancel, options_.limits),
        fetcher_(options_.retry, options_.cancel, nullptr) {}

  const registry::Repository& repo() const { return *repo_; }

  Result<ManifestBytes> TopManifest() override {
    auto m = Get(ref_.ManifestReference(), ref_.digest());
    if (!m.ok()) return m.status().WithContext(ref_.String());
    return m;
  }

  Result<ManifestBytes> Manifest(const Digest& digest) override {
    return Get(digest.String(), digest);
  }

  Status Blob(const Descriptor& d, const registry::BlobSink& sink) override {
    ClientPool::Lease http = clients_.Acquire();
    return fetcher_.FetchBlob(
        *http,
        [&](registry::HttpClient& h, int64_t offset, const registry::BodyStart& start,
            const registry::BodySink& body) {
          return repo_->GetBlob(h, d.digest, offset, start, body);
        },
        d.size, sink, options_.notice);
  }

  std::vector<std::string> Names() override { return {ref_.String()}; }

 private:
  Result<ManifestBytes> Get(const std::string& reference, const std::optional<Digest>& want) {
    ClientPool::Lease http = clients_.Acquire();
    ASSIGN_OR_RETURN(auto m, fetcher_.Call<registry::ManifestResponse>(*http, options_.notice, [&] {
      return repo_->GetManifest(*http, reference, manifest::AcceptHeader(),
                                manifest::kMaxManifestBytes);
    }));
    return CheckedManifest(m, want);
  }

  std::unique_ptr<registry::Repository> repo_;
  const Reference ref_;
  const RegistryTransportOptions options_;
  ClientPool clients_;
  registry::Fetcher fetcher_;
};

class RegistryDestination : public ImageDestination {
 public:
  RegistryDestination(std::unique_ptr<registry::Repository> repo, Reference ref,
                      RegistryTransportOptions options)
      : repo_(std::move(repo)),
        uploader_(*repo_),
        ref_(std::move(ref)),
        options_(std::move(options)),
        clients_(options_.cancel, options_.limits),
        fetcher_(options_.retry, options_.cancel, nullptr) {
    options_.chunk_size = std::max<int64_t>(options_.chunk_size, 1);
  }

  // HEAD; then a mount from each repository of options.mount_from.
  Result<bool> Reuse(const BlobInfo& b) override {
    ClientPool::Lease http = clients_.Acquire();
    ASSIGN_OR_RETURN(bool have, fetcher_.Call<bool>(*http, options_.notice, [&] {
      return uploader_.HasBlob(*http, b.blob.digest);
    }));
    if (have) return true;
    for (const std::string& from : options_.mount_from) {
      std::string session;
      if (Mount(*http, b.blob.digest, from, &session)) return true;
      if (!session.empty()) (void)uploader_.CancelUpload(*http, session);
    }
    return false;
  }

  // A mount from the source's repository when the source is this registry; else (or when the
  // registry starts an upload instead) an upload.
  Status PutBlob(const BlobInfo& b, ImageSource& src) override {
    ClientPool::Lease http = clients_.Acquire();
    std::string session;
    if (auto* from = dynamic_cast<RegistrySource*>(&src);
        from != nullptr && from->repo().registry().host() == repo_->registry().host() &&
        from->repo().path() != repo_->path()) {
      if (Mount(*http, b.blob.digest, from->repo().path(), &session)) return OkStatus();
    }
    return fetcher_.CallUnlessFinal(*http, options_.notice, [&](bool* final) {
      std::string first = std::exchange(session, "");
      return Upload(*http, b.blob, src, std::move(first), final);
    });
  }

  Status PutManifest(const ManifestBytes& m) override { return Put(m, m.digest.String()); }

  Status Commit(const ManifestBytes& top, const std::vector<std::string>& names) override {
    Reference target = ref_;
    if (!names.empty()) {
      ASSIGN_OR_RETURN(target, Reference::Parse(names[0]));
    }
    if (target.digest() && *target.digest() != top.digest) {
      return InvalidArgumentError("image " + top.digest.String() + " is not " +
                                  target.digest()->String());
    }
    if (target.digest() || target.tag().empty()) {
      return Put(top, top.digest.String());
    }
    return Put(top, target.tag()).WithContext("tag " + target.tag());
  }

 private:
  // True when blob `digest` was mounted from repository `from`. When the registry started an
  // upload instead, *session is that upload's. Any error (the credentials may not reach
  // `from`) leaves the blob to an upload.
  bool Mount(registry::HttpClient& http, const Digest& digest, const std::string& from,
             std::string* session) {
    auto mounted = fetcher_.Call<bool>(
        http, options_.notice, [&] { return uploader_.MountBlob(http, digest, from, session); });
    return mounted.ok() && *mounted;
  }

  // One upload of blob `d` from byte 0, in `session` (a new one when empty): the source's bytes
  // are hashed as they pass, sent in PATCH chunks of options.chunk_size once there are more
  // than that, and the rest goes with the final PUT, which is sent only when size and digest
  // matched. A source that starts again from 0 gets a new session. On a mismatch the session is
  // deleted; *final is set for every error another attempt cannot mend (the source's own, which
  // it retried already, and the digest's).
  Status Upload(registry::HttpClient& http, const Descriptor& d, ImageSource& src,
                std::string session, bool* final) {
    const size_t chunk = static_cast<size_t>(options_.chunk_size);
    ASSIGN_OR_RETURN(content::Digester digester, content::Digester::New(d.digest.algorithm()));
    if (session.empty()) {
      ASSIGN_OR_RETURN(session, uploader_.StartUpload(http));
    }
    std::string buffer;  // bytes not sent yet: at most one chunk
    int64_t sent = 0;    // bytes PATCHed
    bool sink_failed = false;
    registry::BlobSink sink;
    sink.restart = [&]() -> Status {
      (void)uploader_.CancelUpload(http, session);
      auto next = uploader_.StartUpload(http);
      if (!next.ok()) {
        sink_failed = true;
        return next.status();
      }
      session = std::move(*next);
      ASSIGN_OR_RETURN(digester, content::Digester::New(d.digest.algorithm()));
      buffer.clear();
      sent = 0;
      return OkStatus();
    };
    sink.write = [&](const char* data, size_t n) -> Status {
      if (d.size >= 0 && sent + static_cast<int64_t>(buffer.size() + n) > d.size) {
        sink_failed = true;
        return DataLossError("blob larger than its descriptor");
      }
      digester.Update(data, n);
      while (n > 0) {
        if (buffer.size() == chunk) {
          auto next = uploader_.PatchUpload(http, session, sent, std::move(buffer));
          buffer.clear();
          if (!next.ok()) {
            sink_failed = true;
            return next.status();
          }
          session = std::move(*next);
          sent += static_cast<int64_t>(chunk);
        }
        const size_t take = std::min(n, chunk - buffer.size());
        buffer.append(data, take);
        data += take;
        n -= take;
      }
      return OkStatus();
    };
    Status read = src.Blob(d, sink);
    if (!read.ok()) {
      *final = !sink_failed;  // the source's error: it retried what it could
      if (read.code() == StatusCode::kDataLoss) *final = true;
      (void)uploader_.CancelUpload(http, session);
      return read;
    }
    const int64_t total = sent + static_cast<int64_t>(buffer.size());
    const Digest got = digester.Finish();
    if (got != d.digest || (d.size >= 0 && total != d.size)) {
      *final = true;
      (void)uploader_.CancelUpload(http, session);
      return DataLossError("digest mismatch: got " + got.String() + " (" + std::to_string(total) +
                           " bytes), want " + d.digest.String() + " (" + std::to_string(d.size) +
                           " bytes)");
    }
    Status put = uploader_.FinishUpload(http, session, d.digest, std::move(buffer));
    if (put.code() == StatusCode::kDataLoss) *final = true;
    return put;
  }

  // PUT of `m` under `reference` (a tag or its digest), once each.
  Status Put(const ManifestBytes& m, const std::string& reference) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!put_.insert(reference + "=" + m.digest.String()).second) return OkStatus();
    }
    ClientPool::Lease http = clients_.Acquire();
    Status s = fetcher_.Call(*http, options_.notice, [&] {
      return uploader_.PutManifest(*http, reference, m.media_type, m.bytes, m.digest);
    });
    if (!s.ok()) {
      std::lock_guard<std::mutex> lock(mu_);
      put_.erase(reference + "=" + m.digest.String());
    }
    return s;
  }

  std::unique_ptr<registry::Repository> repo_;
  registry::Uploader uploader_;
  const Reference ref_;
  RegistryTransportOptions options_;
  ClientPool clients_;
  registry::Fetcher fetcher_;
  std::mutex mu_;
  std::set<std::string> put_;  // guarded by mu_: "reference=digest" of the manifests put
};

}  // namespace

std::unique_ptr<ImageSource> OpenRegistrySource(std::unique_ptr<registry::Repository> repo,
                                                const Reference& ref,
                                                RegistryTransportOptions options) {
  return std::make_unique<RegistrySource>(std::move(repo), ref, std::move(options));
}

std::unique_ptr<ImageDestination> OpenRegistryDestination(
    std::unique_ptr<registry::Repository> repo, const Reference& ref,
    RegistryTransportOptions options) {
  return std::make_unique<RegistryDestination>(std::move(repo), ref, std::move(options));
}

}  // namespace hoist::transport
