// The one orchestrator: resolve → fetch manifests → fetch blobs in parallel → record.
#include "hoist/client.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <mutex>
#include <set>

#include "base/status_macros.h"
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
  std::unique_ptr<registry::CredentialSource> credentials;
  std::unique_ptr<registry::Authorizer> authorizer;
  std::mutex mu;
  std::map<std::string, std::unique_ptr<registry::Registry>> registries;  // by domain

  registry::Registry* RegistryFor(const Reference& ref) {
    std::lock_guard<std::mutex> lock(mu);
    auto& r = registries[ref.domain()];
    if (!r) {
      std::string host = ref.RegistryHost();
      bool insecure = registry::IsLoopbackHost(host) ||
                      std::find(options.insecure_registries.begin(),
                                options.insecure_registries.end(),
                                ref.domain()) != options.insecure_registries.end() ||
                      std::find(options.insecure_registries.begin(),
                                options.insecure_registries.end(),
                                host) != options.insecure_registries.end();
      r = std::make_unique<registry::Registry>(ref.domain(), host, insecure, authorizer.get());
    }
    return r.get();
  }

  Result<Image> Pull(const Reference& ref, const PullOptions& options);
  // The manifest with this digest, from the store, or fetched, verified and stored first
  // (then *downloaded is set). *media_type: the document's media type.
  Result<std::string> FetchManifest(registry::Repository& repo, registry::HttpClient& http,
                                    const Digest& digest, std::string* media_type,
                                    bool* downloaded);
  Status FetchBlob(registry::Repository& repo, registry::HttpClient& http, const Descriptor& d,
                   Progress* progress, bool* downloaded);
  Result<Image> Load(const std::string& name, const Descriptor& record);
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
  RETURN_IF_ERROR(repo.GetBlob(http, d.digest, [&](const char* data, size_t n) {
    return writer->Write(data, n);
  }));
  report(ProgressState::kVerifying, writer->written());
  RETURN_IF_ERROR(writer->Commit());
  *downloaded = true;
  report(ProgressState::kDownloadComplete, d.size);
  return OkStatus();
}

Result<Image> Client::Impl::Pull(const Reference& ref, const PullOptions& options) {
  Platform want;
  if (options.platform.empty()) {
    want = manifest::HostPlatform();
  } else {
    ASSIGN_OR_RETURN(want, manifest::ParsePlatform(options.platform));
  }
  std::atomic<bool> cancel{false};
  std::atomic<bool> never{false};
  const std::atomic<bool>* outside = options.cancel != nullptr ? options.cancel : &never;
  registry::Repository repo(RegistryFor(ref), ref.path());
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

  // 3. Every blob of the image not yet in the store, in parallel: config first, then layers.
  // Docker's lines: a layer already here is "Already exists", the others "Pulling fs layer".
  Progress progress(options.progress);
  size_t first_layer = decoded.kind == manifest::Kind::kImageManifest ? 1 : 0;
  std::vector<Descriptor> blobs = manifest::Children(decoded);
  std::vector<std::pair<Descriptor, bool>> missing;  // blob, is a layer
  std::set<Digest> seen;
  for (size_t i = 0; i < blobs.size(); ++i) {
    bool layer = i >= first_layer;
    if (store->Has(blobs[i].digest)) {
      if (layer) progress.Report(blobs[i], ProgressState::kAlreadyExists);
    } else if (seen.insert(blobs[i].digest).second) {
      if (layer) progress.Report(blobs[i], ProgressState::kWaiting);
      missing.emplace_back(blobs[i], layer);
    }
  }
  std::mutex mu;
  Status status = transfer::ForEachParallel(
      missing.size(), options.jobs, &cancel, outside,
      [&](size_t i, registry::HttpClient& worker_http) {
        const auto& [blob, layer] = missing[i];
        bool got = false;
        Status s = FetchBlob(repo, worker_http, blob, layer ? &progress : nullptr, &got)
                       .WithContext((layer ? "blob " : "config ") + blob.digest.String());
        if (got) {
          std::lock_guard<std::mutex> lock(mu);
          downloaded = true;
        }
        return s;
      });
  RETURN_IF_ERROR(status);

  // 4. The image record, last: nothing points at a blob that is not verified and in place.
  Descriptor record = manifest_desc;
  if (decoded.kind == manifest::Kind::kImageManifest) {
    ASSIGN_OR_RETURN(std::string config, store->ReadBlob(decoded.manifest.config.digest,
                                                         manifest::kMaxManifestBytes));
    ASSIGN_OR_RETURN(manifest::ImageConfig cfg, manifest::ParseConfig(config));
    if (cfg.diff_ids.size() != decoded.manifest.layers.size()) {
      return DataLossError("config " + decoded.manifest.config.digest.String() + " lists " +
                           std::to_string(cfg.diff_ids.size()) + " diff_ids for " +
                           std::to_string(decoded.manifest.layers.size()) + " layers");
    }
    record.platform = cfg.platform;
  }
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

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::~Client() = default;

Result<std::unique_ptr<Client>> Client::Open(ClientOptions options) {
  if (options.store_dir.empty()) options.store_dir = DefaultStoreDir();
  auto impl = std::make_unique<Impl>();
  ASSIGN_OR_RETURN(auto cred, registry::StaticCredentials::ParseUserPassword(options.credentials));
  impl->credentials = std::make_unique<registry::StaticCredentials>(std::move(cred));
  impl->authorizer = std::make_unique<registry::Authorizer>(impl->credentials.get());
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
  auto record = impl_->store->GetRef(RecordName(*ref));
  if (!record.ok()) return record.status().WithContext(context);
  if (!record->has_value()) {
    return NotFoundError(context + ": no such image in the store (pull it first)");
  }
  auto image = impl_->Load(RecordName(*ref), **record);
  if (!image.ok()) return image.status().WithContext(context);
  return image;
}

}  // namespace hoist
