#include "pull/resolver.h"

#include "base/status_macros.h"
#include "content/digester.h"
#include "manifest/media_types.h"
#include "manifest/platform.h"

namespace hoist::pull {

Result<VerifiedManifest> VerifyManifest(const registry::ManifestResponse& m,
                                        const std::optional<Digest>& want) {
  VerifiedManifest v;
  ASSIGN_OR_RETURN(v.decoded, manifest::Decode(m.content_type, m.body));
  ASSIGN_OR_RETURN(v.canonical, manifest::CanonicalBytes(v.decoded, m.body));
  ASSIGN_OR_RETURN(v.digest, content::DigestOf(want ? want->algorithm() : "sha256", v.canonical));
  if (want && v.digest != *want) {
    return DataLossError("manifest digest mismatch: got " + v.digest.String() + ", want " +
                         want->String());
  }
  if (auto claimed = Digest::Parse(m.digest_header); claimed.ok()) {
    ASSIGN_OR_RETURN(Digest check, content::DigestOf(claimed->algorithm(), v.canonical));
    if (check != *claimed) {
      return DataLossError("manifest digest mismatch: the registry claims " + claimed->String() +
                           ", the document is " + check.String());
    }
  }
  return v;
}

Result<Descriptor> Resolver::Resolve(registry::HttpClient& http, const Reference& ref) {
  Descriptor d;
  d.size = -1;
  if (ref.digest()) {
    d.digest = *ref.digest();
    return d;
  }
  ASSIGN_OR_RETURN(auto head, fetcher_.Call<registry::ManifestResponse>(http, notice_, [&] {
    return repo_.HeadManifest(http, ref.tag(), manifest::AcceptHeader());
  }));
  if (auto digest = Digest::Parse(head.digest_header); digest.ok()) {
    d.digest = *digest;  // fetched (if missing) and verified against it later
    d.media_type = head.content_type;
    d.size = head.content_length;
    return d;
  }
  ASSIGN_OR_RETURN(auto m, fetcher_.Call<registry::ManifestResponse>(http, notice_, [&] {
    return repo_.GetManifest(http, ref.tag(), manifest::AcceptHeader(),
                             manifest::kMaxManifestBytes);
  }));
  ASSIGN_OR_RETURN(VerifiedManifest v, VerifyManifest(m, std::nullopt));
  d.digest = v.digest;
  if (auto claimed = Digest::Parse(m.digest_header); claimed.ok()) {
    d.digest = *claimed;  // the registry's word, checked against the bytes by VerifyManifest
  }
  RETURN_IF_ERROR(store_.WriteBlob(d.digest, v.canonical));
  fetched_ = true;
  d.media_type = v.decoded.media_type;
  d.size = static_cast<int64_t>(v.canonical.size());
  return d;
}

Result<manifest::Decoded> Resolver::Manifest(registry::HttpClient& http, const Digest& digest,
                                             std::string* bytes) {
  if (!store_.Has(digest)) {
    ASSIGN_OR_RETURN(auto m, fetcher_.Call<registry::ManifestResponse>(http, notice_, [&] {
      return repo_.GetManifest(http, digest.String(), manifest::AcceptHeader(),
                               manifest::kMaxManifestBytes);
    }));
    ASSIGN_OR_RETURN(VerifiedManifest v, VerifyManifest(m, digest));
    RETURN_IF_ERROR(store_.WriteBlob(digest, v.canonical));
    fetched_ = true;
  }
  ASSIGN_OR_RETURN(*bytes, store_.ReadBlob(digest, manifest::kMaxManifestBytes));
  return manifest::Decode("", *bytes);
}

Result<ResolvedImage> Resolver::ImageManifest(registry::HttpClient& http, const Digest& top,
                                              const Platform& platform) {
  ResolvedImage image;
  image.top = top;
  std::string bytes;
  ASSIGN_OR_RETURN(image.decoded, Manifest(http, top, &bytes));
  image.manifest =
      Descriptor{image.decoded.media_type, top, static_cast<int64_t>(bytes.size()), {}, {}, {}};
  if (image.decoded.kind != manifest::Kind::kIndex) return image;
  ASSIGN_OR_RETURN(Descriptor chosen, manifest::SelectPlatform(image.decoded.index, platform));
  ASSIGN_OR_RETURN(image.decoded, Manifest(http, chosen.digest, &bytes));
  if (image.decoded.kind == manifest::Kind::kIndex) {
    return DataLossError("manifest " + chosen.digest.String() +
                         ": an index inside an index is not supported");
  }
  image.manifest = chosen;
  image.manifest.media_type = image.decoded.media_type;
  image.manifest.size = static_cast<int64_t>(bytes.size());
  return image;
}

}  // namespace hoist::pull
