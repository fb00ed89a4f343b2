// docker-archive: the tarball `docker save` writes and `docker load` / `podman load` read.
//
//   manifest.json   [{"Config": "<path>", "RepoTags": ["app:1", ...], "Layers": ["<path>", ...]}]
//   repositories    {"app": {"1": "<id>"}} (read by old loaders only)
//   the files those paths name: the image config (JSON) and the layer tars
//
// Docker up to 24 names them `<config-digest-hex>.json` and `<v1-id>/layer.tar`; docker 25+
// writes an OCI layout beside manifest.json and names them `blobs/sha256/<hex>`; podman and
// skopeo `<hex>.json` and `<hex>.tar`. Only manifest.json counts: every layout is read the
// same way.
#pragma once

#include <memory>
#include <string>

#include "hoist/status.h"
#include "transport/tar_index.h"
#include "transport/transport.h"

namespace hoist::transport {

// Opens the archive at `path` ("-": stdin) as a source of the image `ref` names: one of the
// images' RepoTags (as written, or naming the same reference once normalized), "@N" (the N-th
// image of manifest.json, from 0), or empty when the archive holds exactly one image
// (InvalidArgument listing the images otherwise).
//
// The archive is indexed first (TarIndex: stdin and compressed tarballs are spooled to an unnamed
// file in `spool_dir`), then the image is checked before anything is read from it:
// manifest.json (a regular file, at most 4 MiB) and the files it names must be regular files
// present once; a file named by its digest (`blobs/sha256/<hex>`, a config `<hex>.json`) must
// have that digest; the config's rootfs.diff_ids must be one per layer and, for each layer
// that is a plain tar, equal its digest. Any failure is an error naming the file (DataLoss,
// NotFound, ResourceExhausted), and nothing is read further.
//
// The source serves an OCI image manifest made from manifest.json: the config blob (OCI config
// media type) and the layers as stored, `application/vnd.oci.image.layer.v1.tar` (or
// `+gzip`/`+zstd` as the layer's first bytes announce), each digest the sha256 of the file's
// bytes. Names() is the image's RepoTags. Blob() is thread-safe.
Result<std::unique_ptr<ImageSource>> OpenDockerArchiveSource(const std::string& path,
                                                             const std::string& ref,
                                                             const std::string& spool_dir,
                                                             const TarIndexLimits& limits = {});
// The same, for an archive already indexed (its errors without the "docker-archive PATH"
// context).
Result<std::unique_ptr<ImageSource>> OpenDockerArchiveSource(std::unique_ptr<TarIndex> archive,
                                                             const std::string& ref);

// A destination writing a docker-archive to `path` ("-": stdout) that docker load (20.10 and
// later) and podman load read: config `<hex>.json`, layers `<hex>.tar` (each blob as the
// source stores it; both loaders inflate gzip and zstd layers), manifest.json with one entry
// per committed image (RepoTags: the names given to Commit that carry a tag) and repositories.
// Images committed to one destination share their blobs.
//
// The archive is written to a temporary file (mode 0600, as `docker save -o` makes it: an image
// may be private) in `path`'s directory (for "-": an unnamed file in `spool_dir`) and renamed
// over `path` (copied to stdout) by Close; until then nothing is
// visible. Each blob is written with the size its descriptor gives and checked against that size
// and digest as it is written; a mismatch (or any other error) fails the save, and the temporary
// file is removed when the destination is destroyed without a successful Close. Only image
// manifests can be committed (a docker-archive holds one platform of an image): committing an
// index is InvalidArgument. Thread-safe: PutBlob calls are written one after another.
Result<std::unique_ptr<ImageDestination>> OpenDockerArchiveDestination(
    const std::string& path, const std::string& spool_dir);

}  // namespace hoist::transport
