// hoist::Client: open, pull (the one orchestrator: resolve → manifests → blobs and layers in
// parallel → record), images, inspect.
#include "hoist/client.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <set>

#include "base/fs.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "client_impl.h"
#include "content/digester.h"
#include "content/store.h"
#include "hoist/reference.h"
#include "image/records.h"
#include "manifest/config.h"
#include "manifest/manifest.h"
#include "manifest/media_types.h"
#include "manifest/platform.h"
#include "registry/auth.h"
#include "registry/registry.h"
#include "transfer/dispatch.h"
#include "unpack/layer.h"

namespace hoist {

std::string DefaultStoreDir() {
  if (const char* s = std::getenv("HOIST_STORE"); s != nullptr && *s != '\0') return s;
  if (geteuid() == 0) return "/var/lib/hoist";
  if (const char* x = std::getenv("XDG_DATA_HOME"); x != nullptr && *x != '\0') {
    return std::string(x) + "/hoist";
  }
  const char* home = std::getenv("HOME");
  return std::string(home != nullptr ? home : ".") + "/.local/share/hoist";
}

Result<registry::Registry*> Client::Impl::RegistryFor(const config::RegistriesConf::Route& route) {
  registry::CredentialSource* credentials = CredentialsFor(route);
  const std::string key = route.registry + "|" + route.host + "|" +
                          (credentials == static_credentials.get() ? "creds" : "files");
  std::lock_guard<std::mutex> lock(mu);
  auto& r = registries[key];
  if (!r) {
    ASSIGN_OR_RETURN(
        registry::Endpoint endpoint,
        config::MakeEndpoint(route.registry, route.host, route.endpoint.insecure, tls));
    r = std::make_unique<registry::Registry>(route.registry, route.host, std::move(endpoint),
                                             authorizer.get(), credentials);
  }
  return r.get();
}

Result<std::vector<Client::Impl::Source>> Client::Impl::SourcesFor(const Reference& ref) {
  ASSIGN_OR_RETURN(auto routes, registries_conf.RoutesFor(ref));
  std::vector<Source> out;
  for (const auto& route : routes) {
    ASSIGN_OR_RETURN(registry::Registry * reg, RegistryFor(route));
    out.push_back({std::make_unique<registry::Repository>(reg, route.repository),
                   (route.endpoint.mirror ? "mirror " : "") + route.host});
  }
  return out;
}

// Verifies manifest bytes against `want` (their canonical form for signed
// schema1) and puts those in the store.
static Status VerifyAndStoreManifest(content::Store& store, const Digest& want,
                                     const std::string& content_type, const std::string& bytes) {
  ASSIGN_OR_RETURN(manifest::Decoded decoded, manifest::Decode(content_type, bytes));
  ASSIGN_OR_RETURN(std::string canonical, manifest::CanonicalBytes(decoded, bytes));
  ASSIGN_OR_RETURN(Digest got, content::DigestOf(want.algorithm(), canonical));
  if (got != want) {
    return DataLossError("manifest digest mismatch: got " + got.String() + ", want " +
                         want.String());
  }
  return store.WriteBlob(want, canonical);
}

registry::RetryPolicy Client::Impl::RetryPolicyOf(bool last_source) const {
  registry::RetryPolicy p;
  p.max_attempts = 1 + std::max(0, options.retries);
  if (!last_source) p.max_attempts = std::min(p.max_attempts, 2);
  p.max_time = std::chrono::seconds(std::max<int64_t>(0, options.retry_max_seconds));
  p.base_delay = std::chrono::milliseconds(std::max<int64_t>(0, options.retry_base_delay_ms));
  return p;
}

Result<manifest::Decoded> Client::Impl::FetchManifest(registry::Repository& repo,
                                                      registry::HttpClient& http,
                                                      registry::Fetcher& fetcher,
                                                      const registry::RetryNotice& notice,
                                                      const Digest& digest, std::string* bytes,
                                                      bool* downloaded) {
  if (!store->Has(digest)) {
    *downloaded = true;
    ASSIGN_OR_RETURN(auto m, fetcher.Call<registry::ManifestResponse>(http, notice, [&] {
      return repo.GetManifest(http, digest.String(), manifest::AcceptHeader(),
                              manifest::kMaxManifestBytes);
    }));
    RETURN_IF_ERROR(VerifyAndStoreManifest(*store, digest, m.content_type, m.body));
  }
  ASSIGN_OR_RETURN(*bytes, store->ReadBlob(digest, manifest::kMaxManifestBytes));
  return manifest::Decode("", *bytes);
}

// A foreign layer may come from its `urls` (when the client allows it), then from the
// registry; any other blob only from the registry (registry::Fetcher::FetchFromSources).
Status Client::Impl::Download(registry::Repository& repo, registry::HttpClient& http,
                              registry::Fetcher& fetcher, const Descriptor& d, Progress* progress,
                              const std::function<Status(const Fetch&)>& attempt) {
  auto notice = [&](const std::string& line) {
    if (progress != nullptr) progress->Report(d, ProgressState::kRetrying, 0, line);
  };
  const bool foreign = manifest::IsForeignLayerType(d.media_type) && !d.urls.empty();
  const bool use_urls = foreign && options.allow_foreign_urls;
  Status s = fetcher.FetchFromSources(repo, http, d, use_urls ? d.urls : std::vector<std::string>{},
                                      notice, attempt);
  if (!s.ok() && foreign && !options.allow_foreign_urls) {
    return PermissionDeniedError(
        "foreign layer: fetching it from its URLs is refused by "
        "configuration, and the registry does not serve it (" +
        s.message() + ")");
  }
  return s;
}

Status Client::Impl::FetchBlob(registry::Repository& repo, registry::HttpClient& http,
                               registry::Fetcher& fetcher, const Descriptor& d, Progress& progress,
                               bool report_states, bool* downloaded) {
  auto report = [&](ProgressState state, int64_t current = 0) {
    if (report_states) progress.Report(d, state, current);
  };
  content::WriterOptions resume;
  resume.on_wait = [&] { report(ProgressState::kWaitingForOther); };
  // The first source continues from what an earlier pull left in ingest/ (see OpenWriter).
  ASSIGN_OR_RETURN(auto writer, store->OpenWriter(d.digest, d.size, resume));
  if (writer->already_committed()) {
    report(ProgressState::kAlreadyExists);
    return OkStatus();
  }
  report(ProgressState::kDownloading, writer->written());
  ByteProgress bytes(progress, d, ProgressState::kDownloading);
  bool fresh = true;
  RETURN_IF_ERROR(Download(repo, http, fetcher, d, &progress, [&](const Fetch& fetch) -> Status {
    // Resuming what an earlier pull kept in ingest/ (only the first source does).
    bool from_kept = fresh && writer->written() > 0;
    // Another source starts from nothing: what the previous one wrote is dropped.
    if (!fresh) {
      content::WriterOptions from_zero = resume;
      from_zero.resume = false;
      writer.reset();
      ASSIGN_OR_RETURN(writer, store->OpenWriter(d.digest, d.size, from_zero));
    }
    fresh = false;
    for (;;) {
      if (writer->already_committed()) return OkStatus();  // another process stored it meanwhile
      // Across a Range resume the writer continues; a source that starts again from zero
      // restarts it.
      Status s = fetch(registry::BlobSink{
          [&] { return writer->Restart(); },
          [&](const char* data, size_t n) {
            RETURN_IF_ERROR(writer->Write(data, n));
            if (report_states) bytes.Update(writer->written());
            return OkStatus();
          },
          writer->written()});
      if (s.ok()) {
        report(ProgressState::kVerifying, writer->written());
        s = writer->Verify();
        if (!s.ok() && from_kept) {
          // The kept data was not the blob's beginning (a crash may lose what was not
          // synced): it is gone with the failed writer; once more, the whole blob.
          from_kept = false;
          content::WriterOptions from_zero = resume;
          from_zero.resume = false;
          writer.reset();
          ASSIGN_OR_RETURN(writer, store->OpenWriter(d.digest, d.size, from_zero));
          continue;
        }
        if (s.ok()) s = writer->Commit();
      }
      return s;
    }
  }));
  *downloaded = true;
  report(ProgressState::kDownloadComplete, d.size);
  return OkStatus();
}

// A layer: downloaded (unless stored) and extracted in the same pass. Lock
// order, in every process: the layer's lock (inside LayerUnpacker::Open), then
// the blob's (OpenWriter).
Status Client::Impl::FetchLayer(registry::Repository& repo, registry::HttpClient& http,
                                registry::Fetcher& fetcher, const Descriptor& d,
                                const Digest& diff_id, Progress& progress, bool* downloaded,
                                const std::function<void(const std::string&)>& notice,
                                unpack::ImageBudget* budget) {
  unpack::LayerLimits limits;
  limits.max_uncompressed = options.max_layer_bytes;
  limits.image_budget = budget;
  std::unique_ptr<unpack::LayerUnpacker> layer;
  std::unique_ptr<content::Writer> writer;
  // If extraction fails, the rest of the blob is still read (bounded by its declared size)
  // and hashed, so that bytes that are not the blob are reported as such, not as whatever the
  // inflater or tar reader made of them.
  Status extract;
  auto feed = [&](const char* data, size_t n) -> Status {
    if (extract.ok()) extract = layer->Feed(data, n);  // no-op if already extracted
    return OkStatus();
  };
  auto on_wait = [&] { progress.Report(d, ProgressState::kWaitingForOther); };
  // A new staging directory and a new blob writer, in lock order; whatever the previous ones
  // held (extracted files, hash state) is dropped with them. `resume`: the writer continues
  // from the partial data an earlier pull left in ingest/, which is extracted first
  // (extraction cannot resume); otherwise the partial data is emptied too.
  auto open = [&](bool resume) -> Status {
    writer.reset();
    layer.reset();
    extract = OkStatus();
    ASSIGN_OR_RETURN(layer, unpack::LayerUnpacker::Open(*store, diff_id, d.digest, d.media_type,
                                                        limits, on_wait));
    content::WriterOptions o;
    o.on_wait = on_wait;
    o.resume = resume;
    o.replay = feed;
    ASSIGN_OR_RETURN(writer, store->OpenWriter(d.digest, d.size, o));
    return OkStatus();
  };
  // The blob is verified and read-only in the store: its lock is not needed.
  auto extract_stored = [&]() -> Status {
    writer.reset();
    progress.Report(d, ProgressState::kExtracting);
    ByteProgress extracted(progress, d, ProgressState::kExtracting);
    int64_t fed = 0;
    RETURN_IF_ERROR(
        unpack::FeedFile(store->layout().BlobFile(d.digest), [&](const char* data, size_t n) {
          RETURN_IF_ERROR(layer->Feed(data, n));
          extracted.Update(fed += static_cast<int64_t>(n));
          return OkStatus();
        }));
    extracted.Update(fed, true);
    return layer->Finish();
  };
  RETURN_IF_ERROR(open(true));
  if (writer->already_committed()) {
    if (layer->already_exists()) {
      progress.Report(d, ProgressState::kAlreadyExists);
      return OkStatus();
    }
    RETURN_IF_ERROR(extract_stored());
  } else {
    progress.Report(d, ProgressState::kDownloading, writer->written());
    ByteProgress bytes(progress, d, ProgressState::kDownloading);
    bool fresh = true;  // the writer and the staging directory hold only this source's bytes
    RETURN_IF_ERROR(Download(repo, http, fetcher, d, &progress, [&](const Fetch& fetch) -> Status {
      // Resuming what an earlier pull kept in ingest/ (only the first source does).
      bool from_kept = fresh && writer->written() > 0;
      // Every other source hashes and extracts from byte zero: a source that sent wrong bytes
      // leaves no trace in the next attempt's blob or layer.
      if (!fresh) {
        RETURN_IF_ERROR(open(false));
        if (writer->already_committed()) {  // another process stored it meanwhile
          return layer->already_exists() ? OkStatus() : extract_stored();
        }
      }
      fresh = false;
      for (;;) {
        // A Range resume continues both the blob writer and the extraction, which hold their
        // state in memory: nothing is fetched or extracted twice. A source that starts again
        // from zero gets a new writer and a new staging directory.
        auto restart = [&]() -> Status {
          RETURN_IF_ERROR(open(false));
          if (writer->already_committed()) return AlreadyExistsError("stored by another process");
          return OkStatus();
        };
        auto write = [&](const char* data, size_t n) -> Status {
          RETURN_IF_ERROR(writer->Write(data, n));
          RETURN_IF_ERROR(feed(data, n));
          bytes.Update(writer->written());  // extracted as it arrives: one count for both
          return OkStatus();
        };
        Status fetched = fetch(registry::BlobSink{restart, write, writer->written()});
        if (writer != nullptr && writer->already_committed()) {  // stored meanwhile, elsewhere
          return layer->already_exists() ? OkStatus() : extract_stored();
        }
        RETURN_IF_ERROR(fetched);
        progress.Report(d, ProgressState::kVerifying, writer->written());
        // Both digests before anything becomes visible: the blob's, then the
        // diff_id.
        Status verified = writer->Verify();
        if (!verified.ok() && from_kept) {
          // The kept data was not the blob's beginning (a crash may lose what was not
          // synced): it is gone with the failed writer; once more, the whole blob.
          from_kept = false;
          RETURN_IF_ERROR(open(false));
          if (writer->already_committed()) {
            return layer->already_exists() ? OkStatus() : extract_stored();
          }
          continue;
        }
        RETURN_IF_ERROR(verified);
        RETURN_IF_ERROR(extract);
        RETURN_IF_ERROR(layer->Finish());
        RETURN_IF_ERROR(writer->Commit());
        *downloaded = true;
        return OkStatus();
      }
    }));
    if (*downloaded) progress.Report(d, ProgressState::kDownloadComplete, d.size);
  }
  if (layer->already_exists()) {  // committed by another process during a retry
    progress.Report(d, ProgressState::kPullComplete, d.size);
    return OkStatus();
  }
  if (layer->skipped_devices() > 0 && notice) {
    notice("layer " + diff_id.String() + ": " + std::to_string(layer->skipped_devices()) +
           " device nodes not created (that needs root)");
  }
  RETURN_IF_ERROR(layer->Commit());
  progress.Report(d, ProgressState::kPullComplete, d.size);
  return OkStatus();
}

// Mirrors first, then the registry: a mirror that cannot be reached, fails
// (5xx) or does not have the image (404) is passed over with a notice. The
// image keeps the reference's name and digest whichever endpoint served it.
Result<Image> Client::Impl::Pull(const Reference& ref, const PullOptions& options) {
  ASSIGN_OR_RETURN(std::vector<Source> sources, SourcesFor(ref));
  for (size_t i = 0; i < sources.size(); ++i) {
    bool remote_failure = false;
    auto image = PullFrom(ref, *sources[i].repo, options, i + 1 == sources.size(), &remote_failure);
    // Only what the source did wrong passes it over, never a local fault.
    bool fall_back = !image.ok() && i + 1 < sources.size() && remote_failure &&
                     (image.status().code() == StatusCode::kUnavailable ||
                      image.status().code() == StatusCode::kNotFound);
    if (!fall_back) {
      if (!image.ok() && sources.size() > 1) {
        return image.status().WithContext(sources[i].describe);
      }
      return image;
    }
    if (options.notice) {
      options.notice(sources[i].describe + " failed (" + image.status().message() + "); trying " +
                     sources[i + 1].describe);
    }
  }
  return InternalError("no endpoint to pull from");
}

Result<Image> Client::Impl::PullFrom(const Reference& ref, registry::Repository& repo,
                                     const PullOptions& options, bool last_source,
                                     bool* remote_failure) {
  Platform want;
  if (options.platform.empty()) {
    want = manifest::HostPlatform();
  } else {
    ASSIGN_OR_RETURN(want, manifest::ParsePlatform(options.platform));
  }
  std::atomic<bool> cancel{false};
  std::atomic<bool> never{false};
  const std::atomic<bool>* outside = options.cancel != nullptr ? options.cancel : &never;
  const registry::TransferLimits limits{this->options.low_speed_bytes_per_second,
                                        this->options.low_speed_seconds,
                                        this->options.request_timeout_seconds};
  registry::HttpClient http(outside, nullptr, limits);
  registry::Fetcher fetcher(RetryPolicyOf(last_source), outside, &cancel);
  // Set on every way out: whether the registry or the network failed us.
  struct RemoteFailure {
    registry::Fetcher& fetcher;
    bool* out;
    ~RemoteFailure() { *out = fetcher.remote_failure(); }
  } remote_failure_report{fetcher, remote_failure};
  registry::RetryNotice notice;  // manifest retries
  if (options.notice) {
    notice = [&](const std::string& line) {
      options.notice(repo.registry().host() + "/" + repo.path() + ": " + line);
    };
  }

  // 1. Resolve: what does the reference name, by digest? A HEAD answers that in
  // one request (and is the only request when the image is already here); a
  // registry that does not send Docker-Content-Digest gets a GET by tag, and
  // hoist computes the digest itself.
  Digest top;
  bool downloaded = false;
  if (ref.digest()) {
    top = *ref.digest();
  } else {
    ASSIGN_OR_RETURN(auto head, fetcher.Call<registry::ManifestResponse>(http, notice, [&] {
      return repo.HeadManifest(http, ref.tag(), manifest::AcceptHeader());
    }));
    auto header_digest = Digest::Parse(head.digest_header);
    if (header_digest.ok()) {
      top = *header_digest;  // fetched (if missing) and verified by digest below
    } else {
      ASSIGN_OR_RETURN(auto m, fetcher.Call<registry::ManifestResponse>(http, notice, [&] {
        return repo.GetManifest(http, ref.tag(), manifest::AcceptHeader(),
                                manifest::kMaxManifestBytes);
      }));
      ASSIGN_OR_RETURN(manifest::Decoded d, manifest::Decode(m.content_type, m.body));
      ASSIGN_OR_RETURN(std::string canonical, manifest::CanonicalBytes(d, m.body));
      ASSIGN_OR_RETURN(top, content::DigestOf("sha256", canonical));
      if (auto claimed = Digest::Parse(m.digest_header); claimed.ok()) {
        top = *claimed;  // the registry's word, checked against the bytes right
                         // here
      }
      RETURN_IF_ERROR(VerifyAndStoreManifest(*store, top, m.content_type, m.body));
      downloaded = true;
    }
  }

  // 2. An index names one manifest per platform: pick ours.
  std::string bytes;
  ASSIGN_OR_RETURN(manifest::Decoded decoded,
                   FetchManifest(repo, http, fetcher, notice, top, &bytes, &downloaded));
  Descriptor manifest_desc{decoded.media_type, top, static_cast<int64_t>(bytes.size()), {}, {}, {}};
  if (decoded.kind == manifest::Kind::kIndex) {
    ASSIGN_OR_RETURN(Descriptor chosen, manifest::SelectPlatform(decoded.index, want));
    ASSIGN_OR_RETURN(
        decoded, FetchManifest(repo, http, fetcher, notice, chosen.digest, &bytes, &downloaded));
    if (decoded.kind == manifest::Kind::kIndex) {
      return DataLossError("manifest " + chosen.digest.String() +
                           ": an index inside an index is not supported");
    }
    manifest_desc = chosen;
    manifest_desc.media_type = decoded.media_type;
    manifest_desc.size = static_cast<int64_t>(bytes.size());
  }

  // 3. The config first (its diff_ids name the layers), then every layer not
  // yet in the store and extracted, in parallel. Docker's lines: a layer
  // already here is "Already exists", the others "Pulling fs layer".
  Progress progress(options.progress);
  std::vector<Descriptor> layers = manifest::Children(decoded);
  std::vector<Digest> diff_ids;  // empty for schema1, whose layers are stored, not extracted
  if (decoded.kind == manifest::Kind::kImageManifest) {
    layers.erase(layers.begin());  // the config
    const Descriptor& config = decoded.manifest.config;
    RETURN_IF_ERROR(FetchBlob(repo, http, fetcher, config, progress, false, &downloaded)
                        .WithContext("config " + config.digest.String()));
    ASSIGN_OR_RETURN(std::string config_bytes,
                     store->ReadBlob(config.digest, manifest::kMaxManifestBytes));
    ASSIGN_OR_RETURN(manifest::ImageConfig cfg, manifest::ParseConfig(config_bytes));
    if (cfg.diff_ids.size() != layers.size()) {
      return DataLossError("config " + config.digest.String() + " lists " +
                           std::to_string(cfg.diff_ids.size()) + " diff_ids for " +
                           std::to_string(layers.size()) + " layers");
    }
    diff_ids = cfg.diff_ids;
    manifest_desc.platform = cfg.platform;
  }
  struct Work {
    Descriptor layer;
    std::optional<Digest> diff_id;
  };
  std::vector<Work> missing;
  std::set<Digest> seen;
  for (size_t i = 0; i < layers.size(); ++i) {
    std::optional<Digest> diff_id;
    if (!diff_ids.empty()) diff_id = diff_ids[i];
    if (store->Has(layers[i].digest) && (!diff_id || unpack::LayerExists(*store, *diff_id))) {
      progress.Report(layers[i], ProgressState::kAlreadyExists);
    } else if (seen.insert(layers[i].digest).second) {
      progress.Report(layers[i], ProgressState::kWaiting);
      missing.push_back({layers[i], diff_id});
    }
  }
  std::mutex mu;
  unpack::ImageBudget budget(this->options.max_image_bytes);
  Status status = transfer::ForEachParallel(
      missing.size(), options.jobs, &cancel, outside,
      [&](size_t i, registry::HttpClient& worker_http) {
        const Work& w = missing[i];
        bool got = false;
        Status s = w.diff_id ? FetchLayer(repo, worker_http, fetcher, w.layer, *w.diff_id, progress,
                                          &got, options.notice, &budget)
                             : FetchBlob(repo, worker_http, fetcher, w.layer, progress, true, &got);
        if (got) {
          std::lock_guard<std::mutex> lock(mu);
          downloaded = true;
        }
        return s.WithContext("blob " + w.layer.digest.String());
      },
      limits);
  RETURN_IF_ERROR(status);

  // 4. The image record, last: nothing points at a blob that is not verified
  // and in place.
  ASSIGN_OR_RETURN(Image image, image::Record(*store, ref, top, manifest_desc, decoded));
  image.downloaded = downloaded;
  return image;
}

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::~Client() = default;

Result<std::unique_ptr<Client>> Client::Open(ClientOptions options) {
  if (options.store_dir.empty()) options.store_dir = DefaultStoreDir();
  auto impl = std::make_unique<Impl>();
  impl->docker_credentials =
      std::make_unique<config::DockerCredentials>(config::CredentialFiles::Default());
  if (!options.credentials.empty()) {
    ASSIGN_OR_RETURN(auto cred,
                     registry::StaticCredentials::ParseUserPassword(options.credentials));
    impl->static_credentials = std::make_unique<registry::StaticCredentials>(std::move(cred));
  }
  impl->authorizer = std::make_unique<registry::Authorizer>();
  if (options.registries_conf.empty()) {
    ASSIGN_OR_RETURN(impl->registries_conf, config::RegistriesConf::Load());
  } else {
    ASSIGN_OR_RETURN(impl->registries_conf,
                     config::RegistriesConf::LoadFile(options.registries_conf));
  }
  switch (options.tls_verify) {
    case ClientOptions::TlsVerify::kDefault:
      impl->tls.mode = config::TlsPolicy::Mode::kDefault;
      break;
    case ClientOptions::TlsVerify::kAlways:
      impl->tls.mode = config::TlsPolicy::Mode::kAlways;
      break;
    case ClientOptions::TlsVerify::kNever:
      impl->tls.mode = config::TlsPolicy::Mode::kNever;
      break;
  }
  impl->tls.insecure_registries = options.insecure_registries;
  impl->tls.cert_dir = options.cert_dir;
  impl->tls.certs_dirs = options.certs_dirs;
  auto store = content::Store::Open(options.store_dir);
  if (!store.ok()) return store.status();  // it names the store
  impl->store = std::move(store).value();
  impl->options = std::move(options);
  return std::unique_ptr<Client>(new Client(std::move(impl)));
}

Result<Image> Client::Pull(std::string_view text, const PullOptions& options) {
  const std::string context = "pull " + std::string(text);
  auto ref = Reference::Parse(text);
  if (!ref.ok()) return ref.status().WithContext(context);
  // Held until the record is written: gc keeps what this pull fetched meanwhile.
  auto gc_guard = impl_->store->LockAgainstGc();
  if (!gc_guard.ok()) return gc_guard.status().WithContext(context);
  auto image = impl_->Pull(*ref, options);
  if (!image.ok()) return image.status().WithContext(context);
  return image;
}

Result<std::vector<ImageSummary>> Client::Images() {
  ASSIGN_OR_RETURN(std::vector<Descriptor> records, image::List(*impl_->store));
  std::vector<ImageSummary> out;
  for (const auto& r : records) {
    ImageSummary s;
    s.reference = image::NameOf(r);
    auto image = image::Load(*impl_->store, s.reference, r);
    if (!image.ok()) return image.status().WithContext("images: " + TerminalSafe(s.reference));
    s.digest = image->manifest.digest;
    s.repo_digest = image->repo_digest;
    s.created = image->created;
    s.size = image->manifest.size + std::max<int64_t>(0, image->config.size);
    for (const auto& l : image->layers) s.size += std::max<int64_t>(0, l.size);
    out.push_back(std::move(s));
  }
  return out;
}

Result<Image> Client::Inspect(std::string_view text) {
  const std::string context = "inspect " + std::string(text);
  auto ref = Reference::Parse(text);
  if (!ref.ok()) return ref.status().WithContext(context);
  auto image = image::Find(*impl_->store, *ref);
  if (!image.ok()) return image.status().WithContext(context);
  return image;
}

Status Client::Tag(std::string_view source, std::string_view target) {
  const std::string context = "tag " + std::string(source) + " " + std::string(target);
  auto src = Reference::Parse(source);
  if (!src.ok()) return src.status().WithContext(context);
  auto dst = Reference::Parse(target);
  if (!dst.ok()) return dst.status().WithContext(context);
  if (dst->digest()) {
    return InvalidArgumentError(context + ": the new name takes a tag, not a digest");
  }
  // Between reading the record and writing the new one, gc must not reclaim the manifest.
  auto gc_guard = impl_->store->LockAgainstGc();
  if (!gc_guard.ok()) return gc_guard.status().WithContext(context);
  return image::Tag(*impl_->store, *src, *dst).WithContext(context);
}

}  // namespace hoist
