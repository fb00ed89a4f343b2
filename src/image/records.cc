#include "image/records.h"

#include <utility>

#include "base/status_macros.h"
#include "content/digester.h"
#include "content/index_file.h"
#include "manifest/config.h"
#include "manifest/convert.h"
#include "manifest/media_types.h"

namespace hoist::image {

std::string RecordName(const Reference& ref) {
  return ref.digest() ? ref.Name() + "@" + ref.digest()->String() : ref.Name() + ":" + ref.tag();
}

std::string NameOf(const Descriptor& record) {
  auto it = record.annotations.find(content::kRefNameAnnotation);
  return it == record.annotations.end() ? "" : it->second;
}

Result<Image> Record(content::Store& store, const Reference& ref, const Digest& top,
                     const Descriptor& manifest_desc, const manifest::Decoded& decoded) {
  Descriptor record = manifest_desc;
  if (decoded.media_type == manifest::kDockerManifest) {
    // An OCI layout lists OCI manifests: record the OCI rendition of a Docker manifest (same
    // blobs), and remember the registry's own manifest, which stays the image's identity.
    ASSIGN_OR_RETURN(std::string oci, manifest::DockerToOciManifest(decoded));
    ASSIGN_OR_RETURN(record.digest, content::DigestOf("sha256", oci));
    RETURN_IF_ERROR(store.WriteBlob(record.digest, oci));
    record.media_type = manifest::kOciManifest;
    record.size = static_cast<int64_t>(oci.size());
    record.annotations[kManifestDigestAnnotation] = manifest_desc.digest.String();
  }
  if (top != manifest_desc.digest) record.annotations[kRepoDigestAnnotation] = top.String();
  const std::string name = RecordName(ref);
  RETURN_IF_ERROR(store.PutRef(name, record).WithContext("record"));
  return Load(store, name, record);
}

Result<Image> Load(const content::Store& store, const std::string& name, const Descriptor& record) {
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
  ASSIGN_OR_RETURN(std::string bytes, store.ReadBlob(manifest_digest, manifest::kMaxManifestBytes));
  ASSIGN_OR_RETURN(
      manifest::Decoded decoded,
      manifest::Decode(manifest_digest == record.digest ? record.media_type : "", bytes));
  image.manifest =
      Descriptor{decoded.media_type, manifest_digest, static_cast<int64_t>(bytes.size()), {}, {},
                 record.platform};
  if (decoded.kind == manifest::Kind::kImageManifest) {
    image.config = decoded.manifest.config;
    image.layers = decoded.manifest.layers;
    ASSIGN_OR_RETURN(image.config_json,
                     store.ReadBlob(image.config.digest, manifest::kMaxManifestBytes));
    ASSIGN_OR_RETURN(manifest::ImageConfig cfg, manifest::ParseConfig(image.config_json));
    image.platform = cfg.platform;
    image.created = cfg.created;
  } else if (decoded.kind == manifest::Kind::kSchema1) {
    image.layers = manifest::Children(decoded);
    image.platform.os = "linux";
    image.platform.architecture = decoded.schema1.architecture;
  } else {
    return DataLossError("record " + name + " points to an index");
  }
  image.manifest_json = std::move(bytes);
  return image;
}

Result<std::optional<Descriptor>> Get(const content::Store& store, const Reference& ref) {
  return store.GetRef(RecordName(ref));
}

Result<Image> Find(const content::Store& store, const Reference& ref) {
  ASSIGN_OR_RETURN(std::optional<Descriptor> record, Get(store, ref));
  if (!record) return NotFoundError("no such image in the store (pull it first)");
  return Load(store, RecordName(ref), *record);
}

Result<std::vector<Descriptor>> List(const content::Store& store) { return store.ListRefs(); }

Status Tag(content::Store& store, const Reference& src, const Reference& dst) {
  ASSIGN_OR_RETURN(std::optional<Descriptor> record, Get(store, src));
  if (!record) return NotFoundError("no such image in the store (pull it first)");
  record->annotations.erase(content::kRefNameAnnotation);  // PutRef names it
  return store.PutRef(RecordName(dst), *record);
}

Status Remove(content::Store& store, const Reference& ref) {
  return store.RemoveRef(RecordName(ref));
}

}  // namespace hoist::image
