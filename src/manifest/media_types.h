// Media types of the documents and blobs a pull meets (OCI image spec, Docker image manifest
// v2 schema 1 and 2), and predicates over them.
#pragma once

#include <string>
#include <string_view>

namespace hoist::manifest {

// OCI image spec.
inline constexpr std::string_view kOciManifest = "application/vnd.oci.image.manifest.v1+json";
inline constexpr std::string_view kOciIndex = "application/vnd.oci.image.index.v1+json";
inline constexpr std::string_view kOciConfig = "application/vnd.oci.image.config.v1+json";
inline constexpr std::string_view kOciLayerTar = "application/vnd.oci.image.layer.v1.tar";
inline constexpr std::string_view kOciLayerGzip = "application/vnd.oci.image.layer.v1.tar+gzip";
inline constexpr std::string_view kOciLayerZstd = "application/vnd.oci.image.layer.v1.tar+zstd";
inline constexpr std::string_view kOciLayerNondistributableTar =
    "application/vnd.oci.image.layer.nondistributable.v1.tar";
inline constexpr std::string_view kOciLayerNondistributableGzip =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
inline constexpr std::string_view kOciLayerNondistributableZstd =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";

// Docker image manifest v2, schema 2.
inline constexpr std::string_view kDockerManifest =
    "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr std::string_view kDockerManifestList =
    "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr std::string_view kDockerConfig = "application/vnd.docker.container.image.v1+json";
inline constexpr std::string_view kDockerLayer =
    "application/vnd.docker.image.rootfs.diff.tar.gzip";
inline constexpr std::string_view kDockerForeignLayer =
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";

// Docker image manifest v2, schema 1 (deprecated; read-only support).
inline constexpr std::string_view kDockerSchema1 =
    "application/vnd.docker.distribution.manifest.v1+json";
inline constexpr std::string_view kDockerSchema1Signed =
    "application/vnd.docker.distribution.manifest.v1+prettyjws";

// The value of the HTTP Accept header of a manifest request: the six manifest media types
// above (OCI manifest, OCI index, Docker v2, Docker list, schema1 signed, schema1), joined by
// ", ".
std::string AcceptHeader();

// OCI manifest or Docker v2 manifest.
bool IsImageManifestType(std::string_view media_type);
// OCI index or Docker manifest list.
bool IsIndexType(std::string_view media_type);
// Either schema1 type, signed or not.
bool IsSchema1Type(std::string_view media_type);
// Any of the six manifest types above.
bool IsManifestType(std::string_view media_type);
// OCI config or Docker config.
bool IsConfigType(std::string_view media_type);
// A layer whose blob is a (possibly compressed) tar this project can unpack: the OCI tar,
// tar+gzip, tar+zstd types and their non-distributable variants, Docker rootfs diff and
// Docker foreign layer.
bool IsLayerType(std::string_view media_type);
// A foreign (non-distributable) layer: the three OCI nondistributable types and the Docker
// foreign layer. Only these may be fetched from their descriptor's `urls`.
bool IsForeignLayerType(std::string_view media_type);

}  // namespace hoist::manifest
