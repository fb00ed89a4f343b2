// Image records: which manifest a name stands for in the store. A record is one entry of the
// store's index.json (content::Store::PutRef), named by the full reference, and always points to
// an image manifest that an OCI image layout reader understands:
//
//   name:tag | name@digest ──► OCI or schema1 manifest ──► config, layers (all in blobs/)
//     annotations:
//       io.hoist.manifest.digest  the registry's own manifest when the record points to its
//                                 OCI rendition (a Docker schema2 manifest, converted)
//       io.hoist.repo.digest      what the reference resolved to when that is not the
//                                 manifest (a multi-platform index)
//
// A record is written last in a pull, after every blob and layer it references is in place, so a
// record never points at anything unverified. What a record keeps alive for gc and verify is in
// image/references.h. Thread-safe as the Store is; index.json changes are atomic across processes.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "content/store.h"
#include "hoist/descriptor.h"
#include "hoist/image.h"
#include "hoist/reference.h"
#include "hoist/status.h"
#include "manifest/manifest.h"

namespace hoist::image {

// Annotation naming what the reference resolved to when that differs from the image manifest
// (a multi-platform index): Image::repo_digest.
inline constexpr char kRepoDigestAnnotation[] = "io.hoist.repo.digest";
// Annotation naming the registry's own manifest when the record points to a rendition of it
// (the OCI form of a Docker schema2 manifest): Image::manifest.digest.
inline constexpr char kManifestDigestAnnotation[] = "io.hoist.manifest.digest";

// The name an image is recorded under: name:tag, or name@digest when pulled by digest.
std::string RecordName(const Reference& ref);
// The name a record carries (its org.opencontainers.image.ref.name), "" when it has none.
std::string NameOf(const Descriptor& record);

// Records the image `ref` resolved to, and returns it as Load does (downloaded false).
// `top`: the digest the reference resolved to (an index, or the manifest itself);
// `manifest_desc`: the platform's image or schema1 manifest (media type, digest, size, and the
// platform its config names), decoded as `decoded`. Everything it references must be in the
// store already. A Docker schema2 manifest is recorded as its OCI rendition
// (manifest::DockerToOciManifest), written to the store first, with kManifestDigestAnnotation;
// kRepoDigestAnnotation is added when top is not the manifest. The record replaces any record of
// the same name; errors from writing it carry the context "record".
Result<Image> Record(content::Store& store, const Reference& ref, const Digest& top,
                     const Descriptor& manifest_desc, const manifest::Decoded& decoded);

// The image a record describes, read from the store: the registry's manifest (the annotation's,
// else the record's own), its config and layers. `name` becomes Image::reference. A record that
// points to an index (written by another tool) is DataLoss; a missing or damaged blob is the
// store's error (NotFound, DataLoss).
Result<Image> Load(const content::Store& store, const std::string& name, const Descriptor& record);
// The record of `ref`, or nullopt when there is none.
Result<std::optional<Descriptor>> Get(const content::Store& store, const Reference& ref);
// The image recorded for `ref`; NotFound "no such image in the store (pull it first)".
Result<Image> Find(const content::Store& store, const Reference& ref);
// Every record, as stored (annotations included), in index.json's order.
Result<std::vector<Descriptor>> List(const content::Store& store);

// Records the image of `src` under `dst` as well (a copy of its record, annotations kept).
// NotFound "no such image in the store (pull it first)" when `src` has no record. The caller
// keeps gc away (content::Store::LockAgainstGc) between the read and the write.
Status Tag(content::Store& store, const Reference& src, const Reference& dst);
// Removes the record of `ref`; NotFound when there is none. No blob is removed (gc's job).
Status Remove(content::Store& store, const Reference& ref);

}  // namespace hoist::image
