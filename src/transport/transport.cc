#include "transport/transport.h"

#include <mutex>

#include "base/status_macros.h"
#include "base/strings.h"
#include "content/digester.h"
#include "hoist/reference.h"
#include "manifest/config.h"
#include "manifest/platform.h"
#include "transfer/dispatch.h"

namespace hoist::transport {
namespace {

constexpr std::pair<std::string_view, Location::Kind> kPrefixes[] = {
    {"docker://", Location::Kind::kRegistry},
    {"oci:", Location::Kind::kOciDir},
    {"oci-archive:", Location::Kind::kOciArchive},
    {"docker-archive:", Location::Kind::kDockerArchive},
    {"hoist:", Location::Kind::kStore},
};

// The config's bytes, read whole from the source and verified (it is small: capped).
Result<std::string> ReadConfig(ImageSource& src, const Descriptor& d) {
  if (d.size < 0 || static_cast<size_t>(d.size) > manifest::kMaxManifestBytes) {
    return ResourceExhaustedError("config " + d.digest.String() + " of " + std::to_string(d.size) +
                                  " bytes is over the cap");
  }
  std::string bytes;
  RETURN_IF_ERROR(
      src.Blob(d, registry::BlobSink{[&] {
                                       bytes.clear();
                                       return OkStatus();
                                     },
                                     [&](const char* data, size_t n) -> Status {
                                       if (bytes.size() + n > static_cast<size_t>(d.size)) {
                                         return DataLossError("config larger than its descriptor");
                                       }
                                       bytes.append(data, n);
                                       return OkStatus();
                                     },
                                     0}));
  ASSIGN_OR_RETURN(Digest got, content::DigestOf(d.digest.algorithm(), bytes));
  if (got != d.digest || bytes.size() != static_cast<size_t>(d.size)) {
    return DataLossError("config digest mismatch: got " + got.String() + ", want " +
                         d.digest.String());
  }
  return bytes;
}

// One image manifest's blobs, then the manifest itself.
Status CopyImage(ImageSource& src, ImageDestination& dst, const ManifestBytes& m,
                 const manifest::Decoded& decoded, const CopyOptions& options) {
  std::vector<BlobInfo> blobs;
  std::vector<Descriptor> layers = manifest::Children(decoded);
  if (decoded.kind == manifest::Kind::kImageManifest) {
    layers.erase(layers.begin());  // the config
    const Descriptor& config = decoded.manifest.config;
    auto config_bytes = ReadConfig(src, config);
    if (!config_bytes.ok())
      return config_bytes.status().WithContext("config " + config.digest.String());
    ASSIGN_OR_RETURN(manifest::ImageConfig cfg, manifest::ParseConfig(*config_bytes));
    if (cfg.diff_ids.size() != layers.size()) {
      return DataLossError("config " + config.digest.String() + " lists " +
                           std::to_string(cfg.diff_ids.size()) + " diff_ids for " +
                           std::to_string(layers.size()) + " layers");
    }
    blobs.push_back({config, std::nullopt});
    for (size_t i = 0; i < layers.size(); ++i) blobs.push_back({layers[i], cfg.diff_ids[i]});
  } else {
    for (const auto& l : layers) blobs.push_back({l, std::nullopt});
  }
  std::atomic<bool> cancel{false};
  Status s = transfer::ForEachParallel(blobs.size(), options.jobs, &cancel, options.cancel,
                                       [&](size_t i, registry::HttpClient&) -> Status {
                                         const BlobInfo& b = blobs[i];
                                         Status put = [&]() -> Status {
                                           ASSIGN_OR_RETURN(bool reused, dst.Reuse(b));
                                           if (reused) return OkStatus();
                                           return dst.PutBlob(b, src);
                                         }();
                                         return put.WithContext("blob " + b.blob.digest.String());
                                       });
  RETURN_IF_ERROR(s);
  return dst.PutManifest(m).WithContext("manifest " + m.digest.String());
}

// The manifest `d` of an index, from the source, verified against d's digest.
Result<ManifestBytes> ChildManifest(ImageSource& src, const Descriptor& d) {
  ASSIGN_OR_RETURN(ManifestBytes m, src.Manifest(d.digest));
  ASSIGN_OR_RETURN(Digest got, content::DigestOf(d.digest.algorithm(), m.bytes));
  if (got != d.digest) {
    return DataLossError("manifest digest mismatch: got " + got.String() + ", want " +
                         d.digest.String());
  }
  m.digest = got;
  return m;
}

}  // namespace

Result<Location> ParseLocation(std::string_view text) {
  Location l;
  std::string_view rest = text;
  for (const auto& [prefix, kind] : kPrefixes) {
    if (text.substr(0, prefix.size()) == prefix) {
      l.kind = kind;
      rest = text.substr(prefix.size());
      break;
    }
  }
  switch (l.kind) {
    case Location::Kind::kRegistry:
    case Location::Kind::kStore:
      if (rest.empty()) return InvalidArgumentError("no image reference in " + Quote(text));
      RETURN_IF_ERROR(Reference::Parse(rest).status());
      l.ref = std::string(rest);
      return l;
    default: {
      // PATH[:REF]: the path is up to the first ':' (as skopeo reads it).
      const size_t colon = rest.find(':');
      l.path = std::string(rest.substr(0, colon));
      if (colon != std::string_view::npos) l.ref = std::string(rest.substr(colon + 1));
      if (l.path.empty()) return InvalidArgumentError("no path in " + Quote(text));
      return l;
    }
  }
}

std::string ToString(const Location& l) {
  for (const auto& [prefix, kind] : kPrefixes) {
    if (kind != l.kind) continue;
    if (kind == Location::Kind::kRegistry || kind == Location::Kind::kStore) {
      return std::string(prefix) + l.ref;
    }
    return std::string(prefix) + l.path + (l.ref.empty() ? "" : ":" + l.ref);
  }
  return l.ref;
}

Result<ManifestBytes> MakeManifestBytes(std::string bytes, std::string_view media_type) {
  ManifestBytes m;
  ASSIGN_OR_RETURN(manifest::Decoded decoded, manifest::Decode(media_type, bytes));
  m.media_type = decoded.media_type;
  ASSIGN_OR_RETURN(m.digest, content::DigestOf("sha256", bytes));
  m.bytes = std::move(bytes);
  return m;
}

Result<ManifestBytes> Copy(ImageSource& src, ImageDestination& dst,
                           const std::vector<std::string>& names, const CopyOptions& options) {
  ASSIGN_OR_RETURN(ManifestBytes top, src.TopManifest());
  ASSIGN_OR_RETURN(manifest::Decoded decoded, manifest::Decode(top.media_type, top.bytes));
  if (decoded.kind != manifest::Kind::kIndex) {
    RETURN_IF_ERROR(CopyImage(src, dst, top, decoded, options));
    RETURN_IF_ERROR(dst.Commit(top, names));
    return top;
  }
  std::vector<Descriptor> chosen = decoded.index.manifests;
  if (!options.all_platforms) {
    Platform want = manifest::HostPlatform();
    if (!options.platform.empty()) {
      ASSIGN_OR_RETURN(want, manifest::ParsePlatform(options.platform));
    }
    ASSIGN_OR_RETURN(Descriptor d, manifest::SelectPlatform(decoded.index, want));
    chosen = {d};
  }
  ManifestBytes last;
  for (const Descriptor& d : chosen) {
    auto m = ChildManifest(src, d);
    if (!m.ok()) return m.status().WithContext("manifest " + d.digest.String());
    ASSIGN_OR_RETURN(manifest::Decoded child, manifest::Decode(m->media_type, m->bytes));
    if (child.kind == manifest::Kind::kIndex) {
      return DataLossError("manifest " + d.digest.String() +
                           ": an index inside an index is not supported");
    }
    RETURN_IF_ERROR(CopyImage(src, dst, *m, child, options));
    last = std::move(*m);
  }
  if (!options.all_platforms) {
    RETURN_IF_ERROR(dst.Commit(last, names));
    return last;
  }
  RETURN_IF_ERROR(dst.PutManifest(top).WithContext("index " + top.digest.String()));
  RETURN_IF_ERROR(dst.Commit(top, names));
  return top;
}

}  // namespace hoist::transport
