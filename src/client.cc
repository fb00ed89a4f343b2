// The one orchestrator: resolve → fetch manifests → fetch blobs in parallel → record.
#include "hoist/client.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>

#include <nlohmann/json.hpp>

#include "base/fs.h"
#include "base/status_macros.h"
#include "base/unique_fd.h"
#include "config/credentials.h"
#include "config/endpoint.h"
#include "config/registries_conf.h"
#include "content/digester.h"
#include "content/index_file.h"
#include "content/store.h"
#include "hoist/reference.h"
#include "manifest/config.h"
#include "manifest/convert.h"
#include "manifest/manifest.h"
#include "manifest/media_types.h"
#include "manifest/platform.h"
#include "registry/auth.h"
#include "registry/registry.h"
#include "transfer/dispatch.h"
#include "unpack/bundle.h"
#include "unpack/layer.h"
#include "unpack/mount.h"

namespace hoist {
namespace {

// Index annotation recording what the reference resolved to when that differs from the
// image manifest (a multi-platform index).
constexpr char kRepoDigestAnnotation[] = "io.hoist.repo.digest";
// Index annotation naming the registry's own manifest when the record points to a rendition
// of it (the OCI form of a Docker schema2 manifest).
constexpr char kManifestDigestAnnotation[] = "io.hoist.manifest.digest";

// The name an image is recorded under: name:tag, or name@digest when pulled by digest.
std::string RecordName(const Reference& ref) {
  return ref.digest() ? ref.Name() + "@" + ref.digest()->String() : ref.Name() + ":" + ref.tag();
}

// Serializes progress callbacks coming from several workers.
class Progress {
 public:
  explicit Progress(const ProgressCallback& cb) : cb_(cb) {}
  void Report(const Descriptor& d, ProgressState state, int64_t current = 0) {
    if (!cb_) return;
    std::lock_guard<std::mutex> lock(mu_);
    cb_(ProgressEvent{d, state, current, d.size});
  }

 private:
  const ProgressCallback& cb_;
  std::mutex mu_;
};

}  // namespace

std::string DefaultStoreDir() {
  if (const char* s = std::getenv("HOIST_STORE"); s != nullptr && *s != '\0') return s;
  if (geteuid() == 0) return "/var/lib/hoist";
  if (const char* x = std::getenv("XDG_DATA_HOME"); x != nullptr && *x != '\0') {
    return std::string(x) + "/hoist";
  }
  const char* home = std::getenv("HOME");
  return std::string(home != nullptr ? home : ".") + "/.local/share/hoist";
}

struct Client::Impl {
  ClientOptions options;
  std::unique_ptr<content::Store> store;
  config::RegistriesConf registries_conf;
  config::TlsPolicy tls;
  std::unique_ptr<config::DockerCredentials> docker_credentials;  // login, logout, describe
  std::unique_ptr<registry::CredentialSource> static_credentials;  // --creds, when given
  registry::CredentialSource* credentials = nullptr;                // the one in use
  std::unique_ptr<registry::Authorizer> authorizer;
  std::mutex mu;
  std::map<std::string, std::unique_ptr<registry::Registry>> registries;  // by name|host

  // The Registry for a host, created once per client (it remembers http vs https).
  // name: the registry whose credentials apply (the reference's, or a mirror's host).
  Result<registry::Registry*> RegistryFor(const std::string& name, const std::string& host,
                                          bool configured_insecure) {
    std::lock_guard<std::mutex> lock(mu);
    auto& r = registries[name + "|" + host];
    if (!r) {
      ASSIGN_OR_RETURN(registry::Endpoint endpoint,
                       config::MakeEndpoint(name, host, configured_insecure, tls));
      r = std::make_unique<registry::Registry>(name, host, std::move(endpoint), authorizer.get());
    }
    return r.get();
  }

  // The repositories to try for `ref`, in order (mirrors first), per registries.conf.
  struct Source {
    std::unique_ptr<registry::Repository> repo;
    std::string describe;  // "mirror 127.0.0.1:5001" / "127.0.0.1:5000"
  };
  Result<std::vector<Source>> SourcesFor(const Reference& ref) {
    ASSIGN_OR_RETURN(auto routes, registries_conf.RoutesFor(ref));
    std::vector<Source> out;
    for (const auto& route : routes) {
      const std::string name = route.endpoint.mirror ? route.host : ref.domain();
      ASSIGN_OR_RETURN(registry::Registry * reg,
                       RegistryFor(name, route.host, route.endpoint.insecure));
      out.push_back({std::make_unique<registry::Repository>(reg, route.repository),
                     (route.endpoint.mirror ? "mirror " : "") + route.host});
    }
    return out;
  }

  Result<Image> Pull(const Reference& ref, const PullOptions& options);
  Result<Image> PullFrom(const Reference& ref, registry::Repository& repo,
                         const PullOptions& options);
  Status Download(registry::Repository& repo, registry::HttpClient& http, const Descriptor& d,
                  const std::function<Status(const char*, size_t)>& sink);
  // The manifest with this digest, from the store, or fetched, verified and stored first
  // (then *downloaded is set). *media_type: the document's media type.
  Result<std::string> FetchManifest(registry::Repository& repo, registry::HttpClient& http,
                                    const Digest& digest, std::string* media_type,
                                    bool* downloaded);
  Status FetchBlob(registry::Repository& repo, registry::HttpClient& http, const Descriptor& d,
                   Progress* progress, bool* downloaded);
  Status FetchLayer(registry::Repository& repo, registry::HttpClient& http, const Descriptor& d,
                    const Digest& diff_id, Progress& progress, bool* downloaded);
  Result<Image> Load(const std::string& name, const Descriptor& record);
  Result<Image> Find(const Reference& ref);
  Status ApplyLayers(const Image& image, int root_fd);
};

// Verifies manifest bytes against `want` (their canonical form for signed schema1) and puts
// them in the store. Returns the bytes as stored.
static Result<std::string> VerifyAndStoreManifest(content::Store& store, const Digest& want,
                                                  const std::string& content_type,
                                                  std::string bytes) {
  ASSIGN_OR_RETURN(manifest::Decoded decoded, manifest::Decode(content_type, bytes));
  ASSIGN_OR_RETURN(std::string canonical, manifest::CanonicalBytes(decoded, bytes));
  ASSIGN_OR_RETURN(Digest got, content::DigestOf(want.algorithm(), canonical));
  if (got != want) {
    return DataLossError("manifest digest mismatch: got " + got.String() + ", want " +
                         want.String());
  }
  RETURN_IF_ERROR(store.WriteBlob(want, canonical));
  return canonical;
}

Result<std::string> Client::Impl::FetchManifest(registry::Repository& repo,
                                                registry::HttpClient& http, const Digest& digest,
                                                std::string* media_type, bool* downloaded) {
  if (!store->Has(digest)) {
    *downloaded = true;
    ASSIGN_OR_RETURN(auto m, repo.GetManifest(http, digest.String(), manifest::AcceptHeader(),
                                              manifest::kMaxManifestBytes));
    RETURN_IF_ERROR(VerifyAndStoreManifest(*store, digest, m.content_type, std::move(m.body))
                        .status());
  }
  ASSIGN_OR_RETURN(std::string bytes, store->ReadBlob(digest, manifest::kMaxManifestBytes));
  ASSIGN_OR_RETURN(manifest::Decoded d, manifest::Decode("", bytes));
  *media_type = d.media_type;
  return bytes;
}

// A blob's bytes to sink: from its `urls` first when it has some (foreign layers; plain
// http(s), never with registry credentials; skipped when the client refuses foreign URLs),
// then from the registry.
Status Client::Impl::Download(registry::Repository& repo, registry::HttpClient& http,
                              const Descriptor& d,
                              const std::function<Status(const char*, size_t)>& sink) {
  if (!d.urls.empty() && options.allow_foreign_urls) {
    bool started = false;
    auto counting = [&](const char* data, size_t n) {
      started = true;
      return sink(data, n);
    };
    for (const std::string& url : d.urls) {
      Status s = registry::GetUrl(http, url, counting);
      if (s.ok()) return s;
      if (started) return s.WithContext("foreign URL " + url);  // bytes already consumed
    }
  }
  return repo.GetBlob(http, d.digest, sink);
}

Status Client::Impl::FetchBlob(registry::Repository& repo, registry::HttpClient& http,
                               const Descriptor& d, Progress* progress, bool* downloaded) {
  // The config is fetched like a layer but, as in docker, gets no progress lines.
  auto report = [&](ProgressState state, int64_t current = 0) {
    if (progress != nullptr) progress->Report(d, state, current);
  };
  ASSIGN_OR_RETURN(auto writer, store->OpenWriter(d.digest, d.size));
  if (writer->already_committed()) {
    report(ProgressState::kAlreadyExists);
    return OkStatus();
  }
  report(ProgressState::kDownloading);
  RETURN_IF_ERROR(Download(repo, http, d, [&](const char* data, size_t n) {
    return writer->Write(data, n);
  }));
  report(ProgressState::kVerifying, writer->written());
  RETURN_IF_ERROR(writer->Commit());
  *downloaded = true;
  report(ProgressState::kDownloadComplete, d.size);
  return OkStatus();
}

// A layer: downloaded (unless stored) and extracted in the same pass. Lock order, in every
// process: the layer's lock (inside LayerUnpacker::Open), then the blob's (OpenWriter).
Status Client::Impl::FetchLayer(registry::Repository& repo, registry::HttpClient& http,
                                const Descriptor& d, const Digest& diff_id, Progress& progress,
                                bool* downloaded) {
  unpack::LayerLimits limits;
  limits.max_uncompressed = options.max_layer_bytes;
  ASSIGN_OR_RETURN(auto layer, unpack::LayerUnpacker::Open(store->layout(), FileSystem::Default(),
                                                           diff_id, d.media_type, limits));
  ASSIGN_OR_RETURN(auto writer, store->OpenWriter(d.digest, d.size));
  if (writer->already_committed()) {
    if (layer->already_exists()) {
      progress.Report(d, ProgressState::kAlreadyExists);
      return OkStatus();
    }
    writer.reset();  // the blob is verified and read-only: its lock is not needed
    progress.Report(d, ProgressState::kExtracting);
    RETURN_IF_ERROR(unpack::FeedFile(store->layout().BlobFile(d.digest),
                                     [&](const char* data, size_t n) { return layer->Feed(data, n); }));
    RETURN_IF_ERROR(layer->Finish());
  } else {
    progress.Report(d, ProgressState::kDownloading);
    // If extraction fails, the rest of the blob is still read (bounded by its declared size)
    // and hashed, so that bytes that are not the blob are reported as such, not as whatever
    // the inflater or tar reader made of them.
    Status extract;
    RETURN_IF_ERROR(Download(repo, http, d, [&](const char* data, size_t n) -> Status {
      RETURN_IF_ERROR(writer->Write(data, n));
      if (extract.ok()) extract = layer->Feed(data, n);  // no-op if already extracted
      return OkStatus();
    }));
    progress.Report(d, ProgressState::kVerifying, writer->written());
    // Both digests before anything becomes visible: the blob's, then the diff_id.
    RETURN_IF_ERROR(writer->Verify());
    RETURN_IF_ERROR(extract);
    RETURN_IF_ERROR(layer->Finish());
    RETURN_IF_ERROR(writer->Commit());
    *downloaded = true;
    progress.Report(d, ProgressState::kDownloadComplete, d.size);
  }
  RETURN_IF_ERROR(layer->Commit());
  progress.Report(d, ProgressState::kPullComplete, d.size);
  return OkStatus();
}

// Mirrors first, then the registry: a mirror that cannot be reached, fails (5xx) or does not
// have the image (404) is passed over with a notice. The image keeps the reference's name
// and digest whichever endpoint served it.
Result<Image> Client::Impl::Pull(const Reference& ref, const PullOptions& options) {
  ASSIGN_OR_RETURN(std::vector<Source> sources, SourcesFor(ref));
  for (size_t i = 0; i < sources.size(); ++i) {
    auto image = PullFrom(ref, *sources[i].repo, options);
    bool fall_back = !image.ok() && i + 1 < sources.size() &&
                     (image.status().code() == StatusCode::kUnavailable ||
                      image.status().code() == StatusCode::kNotFound);
    if (!fall_back) {
      if (!image.ok() && sources.size() > 1) {
        return image.status().WithContext(sources[i].describe);
      }
      return image;
    }
    if (options.notice) {
      options.notice(sources[i].describe + " failed (" + image.status().message() +
                     "); trying " + sources[i + 1].describe);
    }
  }
  return InternalError("no endpoint to pull from");
}

Result<Image> Client::Impl::PullFrom(const Reference& ref, registry::Repository& repo,
                                     const PullOptions& options) {
  Platform want;
  if (options.platform.empty()) {
    want = manifest::HostPlatform();
  } else {
    ASSIGN_OR_RETURN(want, manifest::ParsePlatform(options.platform));
  }
  std::atomic<bool> cancel{false};
  std::atomic<bool> never{false};
  const std::atomic<bool>* outside = options.cancel != nullptr ? options.cancel : &never;
  registry::HttpClient http(outside);

  // 1. Resolve: what does the reference name, by digest? A HEAD answers that in one request
  // (and is the only request when the image is already here); a registry that does not send
  // Docker-Content-Digest gets a GET by tag, and hoist computes the digest itself.
  Digest top;
  bool downloaded = false;
  if (ref.digest()) {
    top = *ref.digest();
  } else {
    ASSIGN_OR_RETURN(auto head, repo.HeadManifest(http, ref.tag(), manifest::AcceptHeader()));
    auto header_digest = Digest::Parse(head.digest_header);
    if (header_digest.ok()) {
      top = *header_digest;  // fetched (if missing) and verified by digest below
    } else {
      ASSIGN_OR_RETURN(auto m, repo.GetManifest(http, ref.tag(), manifest::AcceptHeader(),
                                                manifest::kMaxManifestBytes));
      ASSIGN_OR_RETURN(manifest::Decoded d, manifest::Decode(m.content_type, m.body));
      ASSIGN_OR_RETURN(std::string canonical, manifest::CanonicalBytes(d, m.body));
      ASSIGN_OR_RETURN(top, content::DigestOf("sha256", canonical));
      if (auto claimed = Digest::Parse(m.digest_header); claimed.ok()) {
        top = *claimed;  // the registry's word, checked against the bytes right here
      }
      RETURN_IF_ERROR(VerifyAndStoreManifest(*store, top, m.content_type, std::move(m.body))
                          .status());
      downloaded = true;
    }
  }

  // 2. An index names one manifest per platform: pick ours.
  std::string media_type;
  ASSIGN_OR_RETURN(std::string bytes, FetchManifest(repo, http, top, &media_type, &downloaded));
  ASSIGN_OR_RETURN(manifest::Decoded decoded, manifest::Decode(media_type, bytes));
  Descriptor manifest_desc{decoded.media_type, top, static_cast<int64_t>(bytes.size()), {}, {}, {}};
  if (decoded.kind == manifest::Kind::kIndex) {
    ASSIGN_OR_RETURN(Descriptor chosen, manifest::SelectPlatform(decoded.index, want));
    ASSIGN_OR_RETURN(bytes, FetchManifest(repo, http, chosen.digest, &media_type, &downloaded));
    ASSIGN_OR_RETURN(decoded, manifest::Decode(media_type, bytes));
    if (decoded.kind == manifest::Kind::kIndex) {
      return DataLossError("manifest " + chosen.digest.String() +
                           ": an index inside an index is not supported");
    }
    manifest_desc = chosen;
    manifest_desc.media_type = decoded.media_type;
    manifest_desc.size = static_cast<int64_t>(bytes.size());
  }

  // 3. The config first (its diff_ids name the layers), then every layer not yet in the store
  // and extracted, in parallel. Docker's lines: a layer already here is "Already exists",
  // the others "Pulling fs layer".
  Progress progress(options.progress);
  std::vector<Descriptor> layers = manifest::Children(decoded);
  std::vector<Digest> diff_ids;  // empty for schema1, whose layers are stored, not extracted
  if (decoded.kind == manifest::Kind::kImageManifest) {
    layers.erase(layers.begin());  // the config
    const Descriptor& config = decoded.manifest.config;
    RETURN_IF_ERROR(FetchBlob(repo, http, config, nullptr, &downloaded)
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
    if (store->Has(layers[i].digest) &&
        (!diff_id || unpack::LayerExists(store->layout(), *diff_id))) {
      progress.Report(layers[i], ProgressState::kAlreadyExists);
    } else if (seen.insert(layers[i].digest).second) {
      progress.Report(layers[i], ProgressState::kWaiting);
      missing.push_back({layers[i], diff_id});
    }
  }
  std::mutex mu;
  Status status = transfer::ForEachParallel(
      missing.size(), options.jobs, &cancel, outside,
      [&](size_t i, registry::HttpClient& worker_http) {
        const Work& w = missing[i];
        bool got = false;
        Status s = w.diff_id ? FetchLayer(repo, worker_http, w.layer, *w.diff_id, progress, &got)
                             : FetchBlob(repo, worker_http, w.layer, &progress, &got);
        if (got) {
          std::lock_guard<std::mutex> lock(mu);
          downloaded = true;
        }
        return s.WithContext("blob " + w.layer.digest.String());
      });
  RETURN_IF_ERROR(status);

  // 4. The image record, last: nothing points at a blob that is not verified and in place.
  Descriptor record = manifest_desc;
  if (decoded.media_type == manifest::kDockerManifest) {
    // An OCI layout lists OCI manifests: record the OCI rendition of a Docker manifest (same
    // blobs), and remember the registry's own manifest, which stays the image's identity.
    ASSIGN_OR_RETURN(std::string oci, manifest::DockerToOciManifest(decoded));
    ASSIGN_OR_RETURN(record.digest, content::DigestOf("sha256", oci));
    RETURN_IF_ERROR(store->WriteBlob(record.digest, oci));
    record.media_type = manifest::kOciManifest;
    record.size = static_cast<int64_t>(oci.size());
    record.annotations[kManifestDigestAnnotation] = manifest_desc.digest.String();
  }
  if (top != manifest_desc.digest) record.annotations[kRepoDigestAnnotation] = top.String();
  RETURN_IF_ERROR(store->PutRef(RecordName(ref), record).WithContext("record"));
  ASSIGN_OR_RETURN(Image image, Load(RecordName(ref), record));
  image.downloaded = downloaded;
  return image;
}

// Builds an Image from a record and the blobs in the store.
Result<Image> Client::Impl::Load(const std::string& name, const Descriptor& record) {
  Image image;
  image.reference = name;
  Digest manifest_digest = record.digest;
  if (auto it = record.annotations.find(kManifestDigestAnnotation);
      it != record.annotations.end()) {
    ASSIGN_OR_RETURN(manifest_digest, Digest::Parse(it->second));
  }
  image.repo_digest = manifest_digest;
  if (auto it = record.annotations.find(kRepoDigestAnnotation); it != record.annotations.end()) {
    ASSIGN_OR_RETURN(image.repo_digest, Digest::Parse(it->second));
  }
  ASSIGN_OR_RETURN(std::string bytes, store->ReadBlob(manifest_digest, manifest::kMaxManifestBytes));
  ASSIGN_OR_RETURN(manifest::Decoded decoded,
                   manifest::Decode(manifest_digest == record.digest ? record.media_type : "",
                                    bytes));
  image.manifest = Descriptor{decoded.media_type, manifest_digest,
                              static_cast<int64_t>(bytes.size()), {}, {}, record.platform};
  if (decoded.kind == manifest::Kind::kImageManifest) {
    image.config = decoded.manifest.config;
    image.layers = decoded.manifest.layers;
    ASSIGN_OR_RETURN(image.config_json,
                     store->ReadBlob(image.config.digest, manifest::kMaxManifestBytes));
    ASSIGN_OR_RETURN(manifest::ImageConfig cfg, manifest::ParseConfig(image.config_json));
    image.platform = cfg.platform;
  } else if (decoded.kind == manifest::Kind::kSchema1) {
    image.layers = manifest::Children(decoded);
    image.platform.os = "linux";
    image.platform.architecture = decoded.schema1.architecture;
  } else {
    return DataLossError("record " + name + " points to an index");
  }
  return image;
}

Result<Image> Client::Impl::Find(const Reference& ref) {
  ASSIGN_OR_RETURN(auto record, store->GetRef(RecordName(ref)));
  if (!record) return NotFoundError("no such image in the store (pull it first)");
  return Load(RecordName(ref), *record);
}

// Applies every layer of the image, in order, to root_fd (a flattened rootfs), each one
// checked against its diff_id again.
Status Client::Impl::ApplyLayers(const Image& image, int root_fd) {
  std::vector<Digest> diff_ids;
  if (!image.config_json.empty()) {
    ASSIGN_OR_RETURN(manifest::ImageConfig cfg, manifest::ParseConfig(image.config_json));
    diff_ids = cfg.diff_ids;
  }
  unpack::ExtractOptions extract;
  extract.whiteouts = unpack::WhiteoutMode::kApply;
  unpack::LayerLimits limits;
  limits.max_uncompressed = options.max_layer_bytes;
  extract.max_total_bytes = limits.max_uncompressed;
  for (size_t i = 0; i < image.layers.size(); ++i) {
    const Descriptor& layer = image.layers[i];
    const std::string context = "layer " + layer.digest.String();
    unpack::LayerStream stream(root_fd, layer.media_type, extract, limits);
    RETURN_IF_ERROR(unpack::FeedFile(store->layout().BlobFile(layer.digest),
                                     [&](const char* d, size_t n) { return stream.Feed(d, n); })
                        .WithContext(context));
    auto diff_id = stream.Finish();
    if (!diff_id.ok()) return diff_id.status().WithContext(context);
    if (i < diff_ids.size() && *diff_id != diff_ids[i]) {
      return DataLossError(context + ": diff_id mismatch: got " + diff_id->String() +
                           ", want " + diff_ids[i].String());
    }
  }
  return OkStatus();
}

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::~Client() = default;

Result<std::unique_ptr<Client>> Client::Open(ClientOptions options) {
  if (options.store_dir.empty()) options.store_dir = DefaultStoreDir();
  auto impl = std::make_unique<Impl>();
  impl->docker_credentials =
      std::make_unique<config::DockerCredentials>(config::CredentialFiles::Default());
  impl->credentials = impl->docker_credentials.get();
  if (!options.credentials.empty()) {
    ASSIGN_OR_RETURN(auto cred,
                     registry::StaticCredentials::ParseUserPassword(options.credentials));
    impl->static_credentials = std::make_unique<registry::StaticCredentials>(std::move(cred));
    impl->credentials = impl->static_credentials.get();
  }
  impl->authorizer = std::make_unique<registry::Authorizer>(impl->credentials);
  if (options.registries_conf.empty()) {
    ASSIGN_OR_RETURN(impl->registries_conf, config::RegistriesConf::Load());
  } else {
    ASSIGN_OR_RETURN(impl->registries_conf, config::RegistriesConf::LoadFile(options.registries_conf));
  }
  switch (options.tls_verify) {
    case ClientOptions::TlsVerify::kDefault: impl->tls.mode = config::TlsPolicy::Mode::kDefault; break;
    case ClientOptions::TlsVerify::kAlways: impl->tls.mode = config::TlsPolicy::Mode::kAlways; break;
    case ClientOptions::TlsVerify::kNever: impl->tls.mode = config::TlsPolicy::Mode::kNever; break;
  }
  impl->tls.insecure_registries = options.insecure_registries;
  impl->tls.cert_dir = options.cert_dir;
  impl->tls.certs_dirs = options.certs_dirs;
  auto store = content::Store::Open(options.store_dir);
  if (!store.ok()) return store.status().WithContext("store " + options.store_dir);
  impl->store = std::move(store).value();
  impl->options = std::move(options);
  return std::unique_ptr<Client>(new Client(std::move(impl)));
}

Result<Image> Client::Pull(std::string_view text, const PullOptions& options) {
  const std::string context = "pull " + std::string(text);
  auto ref = Reference::Parse(text);
  if (!ref.ok()) return ref.status().WithContext(context);
  auto image = impl_->Pull(*ref, options);
  if (!image.ok()) return image.status().WithContext(context);
  return image;
}

Result<std::vector<ImageSummary>> Client::Images() {
  ASSIGN_OR_RETURN(std::vector<Descriptor> records, impl_->store->ListRefs());
  std::vector<ImageSummary> out;
  for (const auto& r : records) {
    auto name = r.annotations.find(content::kRefNameAnnotation);
    ImageSummary s;
    s.reference = name == r.annotations.end() ? "" : name->second;
    auto image = impl_->Load(s.reference, r);
    if (!image.ok()) return image.status().WithContext("images: " + s.reference);
    s.digest = image->manifest.digest;
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
  auto image = impl_->Find(*ref);
  if (!image.ok()) return image.status().WithContext(context);
  return image;
}

namespace {

// A fresh staging directory beside `dest` ("DIR/.NAME.hoist-XXXXXX").
Result<std::string> MakeStagingBeside(const std::string& dest) {
  std::filesystem::path p(dest);
  std::string name = p.filename().string();
  if (name.empty() || name == "." || name == "..") {
    return InvalidArgumentError("destination \"" + dest + "\" must name a directory");
  }
  std::string tmpl = (p.parent_path().empty() ? std::filesystem::path(".") : p.parent_path()) /
                     ("." + name + ".hoist-XXXXXX");
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr) return ErrnoError(errno, "create staging beside " + dest);
  ::chmod(buf.data(), 0755);
  return std::string(buf.data());
}

// OK if `dest` does not exist or is an empty directory.
Status CheckDestination(const std::string& dest) {
  std::error_code ec;
  auto st = std::filesystem::symlink_status(dest, ec);
  if (ec || st.type() == std::filesystem::file_type::not_found) return OkStatus();
  if (st.type() != std::filesystem::file_type::directory) {
    return AlreadyExistsError(dest + " exists and is not a directory");
  }
  if (!std::filesystem::is_empty(dest, ec) || ec) {
    return AlreadyExistsError(dest + " is not empty");
  }
  return OkStatus();
}

// The store's directory for the upper/work dirs of a writable mount at `target`.
Result<std::string> MountId(const std::string& target) {
  std::error_code ec;
  auto abs = std::filesystem::weakly_canonical(target, ec);
  if (ec) return InvalidArgumentError("mount target " + target + ": " + ec.message());
  ASSIGN_OR_RETURN(Digest d, content::DigestOf("sha256", abs.string()));
  return d.hex().substr(0, 32);
}

std::string Absolute(const std::string& path) {
  std::error_code ec;
  auto abs = std::filesystem::absolute(path, ec);
  return ec ? path : abs.lexically_normal().string();
}

}  // namespace

Status Client::Unpack(std::string_view text, const std::string& dest,
                      const UnpackOptions& options) {
  const std::string context = "unpack " + std::string(text);
  auto ref = Reference::Parse(text);
  if (!ref.ok()) return ref.status().WithContext(context);
  auto image = impl_->Find(*ref);
  if (!image.ok()) return image.status().WithContext(context);
  RETURN_IF_ERROR(CheckDestination(dest).WithContext(context));
  auto staging = MakeStagingBeside(dest);
  if (!staging.ok()) return staging.status().WithContext(context);
  auto build = [&]() -> Status {
    std::string rootfs = options.bundle ? *staging + "/rootfs" : *staging;
    if (options.bundle && ::mkdir(rootfs.c_str(), 0755) != 0) {
      return ErrnoError(errno, "mkdir " + rootfs);
    }
    UniqueFd root(::open(rootfs.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!root) return ErrnoError(errno, "open " + rootfs);
    RETURN_IF_ERROR(impl_->ApplyLayers(*image, root.get()));
    if (options.bundle) {
      ASSIGN_OR_RETURN(std::string config, unpack::RuntimeConfig(image->config_json, root.get()));
      RETURN_IF_ERROR(WriteFileAtomically(FileSystem::Default(), *staging + "/config.json",
                                          *staging + "/config.json.tmp", config, 0644));
    }
    if (::rename(staging->c_str(), dest.c_str()) != 0) {
      return ErrnoError(errno, "rename into " + dest);
    }
    return OkStatus();
  };
  Status s = build();
  if (!s.ok()) {
    std::error_code ec;
    std::filesystem::remove_all(*staging, ec);
    return s.WithContext(context);
  }
  return OkStatus();
}

Status Client::Mount(std::string_view text, const std::string& target,
                     const MountOptions& options) {
  const std::string context = "mount " + std::string(text);
  auto ref = Reference::Parse(text);
  if (!ref.ok()) return ref.status().WithContext(context);
  auto image = impl_->Find(*ref);
  if (!image.ok()) return image.status().WithContext(context);
  if (image->config_json.empty()) {
    return FailedPreconditionError(context + ": schema1 images are not extracted per layer");
  }
  auto cfg = manifest::ParseConfig(image->config_json);
  if (!cfg.ok()) return cfg.status().WithContext(context);
  const content::Layout& layout = impl_->store->layout();
  std::vector<std::string> lowerdirs;  // topmost first
  for (auto it = cfg->diff_ids.rbegin(); it != cfg->diff_ids.rend(); ++it) {
    auto info = ReadFileToString(layout.LayerInfoFile(*it), 1 << 20);
    if (!info.ok()) {
      return FailedPreconditionError(context + ": layer " + it->String() +
                                     " is not extracted (pull the image again)");
    }
    auto j = nlohmann::json::parse(*info, nullptr, false);
    if (j.is_discarded() || !j.is_object() || j.value("whiteouts", "") != "overlay") {
      return FailedPreconditionError(context + ": layer " + it->String() +
                                     " was extracted without root (OCI whiteout files); pull it "
                                     "again as root to mount it");
    }
    lowerdirs.push_back(Absolute(layout.LayerRootfs(*it)));
  }
  if (lowerdirs.size() < 2) {
    // overlayfs wants two lower layers when there is no upper one.
    RETURN_IF_ERROR(MakeDirs(FileSystem::Default(), layout.EmptyLayerDir(), 0755)
                        .WithContext(context));
    lowerdirs.push_back(Absolute(layout.EmptyLayerDir()));
  }
  std::string upper, work;
  if (options.writable) {
    auto id = MountId(target);
    if (!id.ok()) return id.status().WithContext(context);
    std::string dir = Absolute(layout.MountDir(*id));
    upper = dir + "/upper";
    work = dir + "/work";
    for (const auto& d : {upper, work}) {
      RETURN_IF_ERROR(MakeDirs(FileSystem::Default(), d, 0755).WithContext(context));
    }
  }
  return unpack::MountOverlay(lowerdirs, upper, work, target).WithContext(context);
}

Status Client::Unmount(const std::string& target) {
  const std::string context = "umount " + target;
  auto id = MountId(target);
  if (!id.ok()) return id.status().WithContext(context);
  RETURN_IF_ERROR(unpack::Unmount(target).WithContext(context));
  std::error_code ec;
  std::filesystem::remove_all(impl_->store->layout().MountDir(*id), ec);
  return OkStatus();
}

namespace {

// The registry a login names: "docker.io" for Docker Hub however it is written
// ("https://index.docker.io/v1/", "index.docker.io", "registry-1.docker.io"), else host[:port].
Result<std::string> LoginRegistry(std::string_view text) {
  std::string name(text.empty() ? "docker.io" : text);
  if (auto scheme = name.find("://"); scheme != std::string::npos) name = name.substr(scheme + 3);
  name = name.substr(0, name.find('/'));
  if (name == "index.docker.io" || name == "registry-1.docker.io") name = "docker.io";
  auto ref = Reference::Parse(name + "/x");
  if (!ref.ok() || ref->domain() != name) {
    return InvalidArgumentError("invalid registry \"" + std::string(text) + "\"");
  }
  return name;
}

}  // namespace

Status Client::Login(const std::string& registry_text, const std::string& user,
                     const std::string& password) {
  const std::string context = "login " + (registry_text.empty() ? "docker.io" : registry_text);
  auto name = LoginRegistry(registry_text);
  if (!name.ok()) return name.status().WithContext(context);
  if (user.empty() || password.empty()) {
    return InvalidArgumentError(context + ": a user name and a password are needed");
  }
  auto ref = Reference::Parse(*name + "/x");
  registry::Credential cred{user, password, ""};
  // Checked with these credentials alone, against the registry's own endpoint (not mirrors).
  registry::StaticCredentials only(cred);
  registry::Authorizer authorizer(&only);
  auto endpoint = config::MakeEndpoint(*name, ref->RegistryHost(), false, impl_->tls);
  if (!endpoint.ok()) return endpoint.status().WithContext(context);
  registry::Registry reg(*name, ref->RegistryHost(), *endpoint, &authorizer);
  registry::HttpClient http;
  auto r = reg.Send(http, "/v2/", registry::HttpRequest{}, "");
  if (!r.ok()) return r.status().WithContext(context);
  if (r->status == 401) return UnauthenticatedError(context + ": credentials rejected");
  if (r->status != 200) return registry::StatusFromResponse(*r).WithContext(context);
  return impl_->docker_credentials->Store(*name, cred).WithContext(context);
}

Status Client::Logout(const std::string& registry_text) {
  const std::string context = "logout " + (registry_text.empty() ? "docker.io" : registry_text);
  auto name = LoginRegistry(registry_text);
  if (!name.ok()) return name.status().WithContext(context);
  return impl_->docker_credentials->Erase(*name).WithContext(context);
}

Result<std::string> Client::DescribeConfig(std::string_view text) {
  const std::string context = "config " + std::string(text);
  auto ref = Reference::Parse(text);
  if (!ref.ok()) return ref.status().WithContext(context);
  std::string out = "reference: " + ref->String() + "\n";
  auto routes = impl_->registries_conf.RoutesFor(*ref);
  if (!routes.ok()) return routes.status().WithContext(context);
  auto settings = impl_->registries_conf.SettingsFor(*ref);
  out += "registries.conf entry: " +
         (settings.prefix.empty() ? std::string("none") : settings.prefix + " (" + settings.source + ")") +
         "\nendpoints, in order:\n";
  int n = 0;
  for (const auto& route : *routes) {
    const std::string name = route.endpoint.mirror ? route.host : ref->domain();
    out += "  " + std::to_string(++n) + ". " + (route.endpoint.mirror ? "mirror " : "registry ") +
           route.host + "/" + route.repository + "\n     tls: " +
           config::DescribeEndpoint(name, route.host, route.endpoint.insecure, impl_->tls) +
           "\n     credentials: " +
           (impl_->static_credentials ? std::string("--creds") : impl_->docker_credentials->Describe(name)) +
           "\n";
  }
  out += "registries.conf files read:";
  if (impl_->registries_conf.files().empty()) out += " none";
  for (const auto& f : impl_->registries_conf.files()) out += " " + f;
  return out + "\n";
}

}  // namespace hoist
