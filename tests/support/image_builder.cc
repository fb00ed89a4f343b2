#include "support/image_builder.h"

#include <openssl/evp.h>
#include <sys/stat.h>
#include <zlib.h>
#include <zstd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "base/status_macros.h"
#include "base/strings.h"
#include "support/http_client.h"
#include "support/process.h"

namespace hoist::testing {
namespace {

using json = nlohmann::json;

constexpr size_t kBlock = 512;
constexpr long kFixedMtime = 1704067200;  // 2024-01-01T00:00:00Z
constexpr char kCreated[] = "2024-01-01T00:00:00Z";

// Writes `value` as zero-padded octal into field [off, off+width): width-1 digits and a NUL.
void PutOctal(std::string& h, size_t off, size_t width, unsigned long long value) {
  std::string digits;
  do {
    digits.insert(digits.begin(), static_cast<char>('0' + (value & 7)));
    value >>= 3;
  } while (value != 0);
  if (digits.size() < width - 1) digits.insert(0, width - 1 - digits.size(), '0');
  std::memcpy(&h[off], digits.data(), std::min(digits.size(), width - 1));
}

void PutString(std::string& h, size_t off, size_t width, std::string_view s) {
  std::memcpy(&h[off], s.data(), std::min(s.size(), width));
}

void PadToBlock(std::string& out) {
  if (out.size() % kBlock != 0) out.append(kBlock - out.size() % kBlock, '\0');
}

// Owner, mtime and device numbers of a header; the defaults are those of a plain entry.
struct HeaderMeta {
  int uid = 0;
  int gid = 0;
  long long mtime = kFixedMtime;
  unsigned dev_major = 0, dev_minor = 0;
};

std::string Header(std::string_view name, std::string_view prefix, char type, int mode, size_t size,
                   std::string_view linkname, const HeaderMeta& meta = {}) {
  std::string h(kBlock, '\0');
  PutString(h, 0, 100, name);
  PutOctal(h, 100, 8, static_cast<unsigned>(mode) & 07777);
  PutOctal(h, 108, 8, static_cast<unsigned>(meta.uid));
  PutOctal(h, 116, 8, static_cast<unsigned>(meta.gid));
  PutOctal(h, 124, 12, size);
  PutOctal(h, 136, 12, static_cast<unsigned long long>(meta.mtime));
  h[156] = type;
  PutString(h, 157, 100, linkname);
  PutString(h, 257, 6, std::string_view("ustar\0", 6));
  PutString(h, 263, 2, "00");
  if (meta.uid == 0) PutString(h, 265, 32, "root");
  if (meta.gid == 0) PutString(h, 297, 32, "root");
  PutOctal(h, 329, 8, meta.dev_major);
  PutOctal(h, 337, 8, meta.dev_minor);
  PutString(h, 345, 155, prefix);
  std::memset(&h[148], ' ', 8);
  unsigned sum = 0;
  for (unsigned char c : h) sum += c;
  PutOctal(h, 148, 7, sum);  // six digits and a NUL; the eighth byte stays a space
  return h;
}

std::string PaxRecord(std::string_view key, std::string_view value) {
  size_t base = key.size() + value.size() + 3;  // ' ', '=', '\n'
  size_t len = base + 1;
  while (std::to_string(len).size() + base != len) len = std::to_string(len).size() + base;
  return std::to_string(len) + " " + std::string(key) + "=" + std::string(value) + "\n";
}

// Splits `path` into ustar (prefix, name); false if it does not fit.
bool SplitUstarName(std::string_view path, std::string_view* prefix, std::string_view* name) {
  if (path.size() <= 100) {
    *prefix = {};
    *name = path;
    return true;
  }
  for (size_t p = std::min<size_t>(path.size() - 1, 155); p > 0; --p) {
    if (path[p] == '/' && path.size() - p - 1 <= 100 && path.size() - p - 1 > 0) {
      *prefix = path.substr(0, p);
      *name = path.substr(p + 1);
      return true;
    }
  }
  return false;
}

std::string Sha256Raw(std::string_view bytes) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(bytes.data(), bytes.size(), md, &len, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<char*>(md), len);
}

std::string RegistryUrl(const std::string& host, const std::string& path) {
  return "http://" + host + path;
}

Status HttpError(const std::string& what, const ClientResponse& r) {
  std::string msg = what + ": HTTP " + std::to_string(r.status) + ": " + r.body.substr(0, 512);
  switch (r.status) {
    case 401:
      return UnauthenticatedError(msg);
    case 403:
      return PermissionDeniedError(msg);
    case 404:
      return NotFoundError(msg);
    default:
      return InternalError(msg);
  }
}

json DescriptorJson(const std::string& media_type, const std::string& digest, size_t size) {
  return json{{"mediaType", media_type}, {"digest", digest}, {"size", size}};
}

}  // namespace

TarEntry SparseEntry(const std::string& name, uint64_t size,
                     const std::vector<std::pair<uint64_t, std::string>>& segments) {
  TarEntry e{.path = "GNUSparseFile.0/" + name};
  std::string map;
  for (const auto& [offset, bytes] : segments) {
    map += (map.empty() ? "" : ",") + std::to_string(offset) + "," + std::to_string(bytes.size());
    e.content += bytes;
  }
  e.pax = {{"GNU.sparse.size", std::to_string(size)},
           {"GNU.sparse.numblocks", std::to_string(segments.size())},
           {"GNU.sparse.map", map},
           {"GNU.sparse.name", name}};
  return e;
}

std::string MakeTar(const std::vector<TarEntry>& entries) {
  std::string out;
  for (const TarEntry& e : entries) {
    int mode = e.mode;
    if (e.type == '5' && mode == 0644) mode = 0755;
    const bool has_data = e.type == '0' || e.type == '7';
    const size_t size = has_data ? e.content.size() : 0;
    std::string_view prefix, name;
    bool fits = SplitUstarName(e.path, &prefix, &name);
    bool long_link = e.linkname.size() > 100;
    if (!fits || long_link || !e.pax.empty()) {
      std::string records;
      if (!fits) records += PaxRecord("path", e.path);
      if (long_link) records += PaxRecord("linkpath", e.linkname);
      for (const auto& [key, value] : e.pax) records += PaxRecord(key, value);
      std::string pax_name = "PaxHeaders/" + e.path.substr(0, 80);
      out += Header(pax_name, "", 'x', 0644, records.size(), "");
      out += records;
      PadToBlock(out);
      if (!fits) {
        prefix = {};
        name = std::string_view(e.path).substr(0, 100);
      }
    }
    HeaderMeta meta;
    meta.uid = e.uid;
    meta.gid = e.gid;
    if (e.mtime >= 0) meta.mtime = e.mtime;
    meta.dev_major = e.dev_major;
    meta.dev_minor = e.dev_minor;
    out += Header(name, prefix, e.type, mode, size,
                  std::string_view(e.linkname).substr(0, std::min<size_t>(e.linkname.size(), 100)),
                  meta);
    if (has_data) {
      out += e.content;
      PadToBlock(out);
    }
  }
  out.append(2 * kBlock, '\0');
  return out;
}

std::string Gzip(std::string_view data) {
  z_stream z{};
  if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    return {};
  }
  std::string out(deflateBound(&z, data.size()) + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  int rc = deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return rc == Z_STREAM_END ? out : std::string();
}

std::string Zstd(std::string_view data) {
  std::string out(ZSTD_compressBound(data.size()), '\0');
  size_t n = ZSTD_compress(out.data(), out.size(), data.data(), data.size(), 3);
  if (ZSTD_isError(n)) return {};
  out.resize(n);
  return out;
}

std::string Sha256Digest(std::string_view bytes) { return "sha256:" + HexEncode(Sha256Raw(bytes)); }

Blob GzipLayer(Format f, std::string_view tar) {
  std::string gz = Gzip(tar);
  std::string digest = Sha256Digest(gz);
  return Blob{f == Format::kOci ? "application/vnd.oci.image.layer.v1.tar+gzip"
                                : "application/vnd.docker.image.rootfs.diff.tar.gzip",
              std::move(digest), std::move(gz)};
}

BuiltImage BuildImage(Format f, const std::vector<std::vector<TarEntry>>& layers, std::string os,
                      std::string arch, std::string variant) {
  std::vector<Blob> blobs;
  std::vector<std::string> diff_ids;
  for (const auto& entries : layers) {
    std::string tar = MakeTar(entries);
    diff_ids.push_back(Sha256Digest(tar));
    blobs.push_back(GzipLayer(f, tar));
  }
  return BuildImageFromBlobs(f, std::move(blobs), std::move(diff_ids), ImageConfigSpec{},
                             std::move(os), std::move(arch), std::move(variant));
}

BuiltImage BuildImageFromBlobs(Format f, std::vector<Blob> layers,
                               std::vector<std::string> diff_ids, const ImageConfigSpec& spec,
                               std::string os, std::string arch, std::string variant) {
  const bool oci = f == Format::kOci;
  BuiltImage img;
  img.os = std::move(os);
  img.architecture = std::move(arch);
  img.variant = std::move(variant);
  img.layers = std::move(layers);
  img.diff_ids = std::move(diff_ids);
  json history = json::array();
  for (size_t i = 0; i < img.layers.size(); ++i) {
    history.push_back(
        {{"created", kCreated}, {"created_by", "hoist test layer " + std::to_string(i)}});
  }
  json container_config = {{"Env", spec.env}, {"Cmd", spec.cmd}};
  if (!spec.entrypoint.empty()) container_config["Entrypoint"] = spec.entrypoint;
  if (!spec.working_dir.empty()) container_config["WorkingDir"] = spec.working_dir;
  if (!spec.user.empty()) container_config["User"] = spec.user;
  json config = {
      {"architecture", img.architecture},
      {"os", img.os},
      {"created", kCreated},
      {"config", container_config},
      {"rootfs", {{"type", "layers"}, {"diff_ids", img.diff_ids}}},
      {"history", history},
  };
  if (!img.variant.empty()) config["variant"] = img.variant;
  img.config.media_type = oci ? "application/vnd.oci.image.config.v1+json"
                              : "application/vnd.docker.container.image.v1+json";
  img.config.data = config.dump();
  img.config.digest = Sha256Digest(img.config.data);

  img.manifest_media_type = oci ? "application/vnd.oci.image.manifest.v1+json"
                                : "application/vnd.docker.distribution.manifest.v2+json";
  json layer_descs = json::array();
  for (const Blob& b : img.layers) {
    layer_descs.push_back(DescriptorJson(b.media_type, b.digest, b.data.size()));
  }
  json manifest = {
      {"schemaVersion", 2},
      {"mediaType", img.manifest_media_type},
      {"config", DescriptorJson(img.config.media_type, img.config.digest, img.config.data.size())},
      {"layers", layer_descs},
  };
  img.manifest = manifest.dump();
  img.manifest_digest = Sha256Digest(img.manifest);
  return img;
}

BuiltIndex BuildIndex(Format f, std::vector<BuiltImage> images) {
  BuiltIndex idx;
  idx.media_type = f == Format::kOci ? "application/vnd.oci.image.index.v1+json"
                                     : "application/vnd.docker.distribution.manifest.list.v2+json";
  json entries = json::array();
  for (const BuiltImage& img : images) {
    json desc = DescriptorJson(img.manifest_media_type, img.manifest_digest, img.manifest.size());
    json platform = {{"architecture", img.architecture}, {"os", img.os}};
    if (!img.variant.empty()) platform["variant"] = img.variant;
    desc["platform"] = platform;
    entries.push_back(desc);
  }
  json index = {{"schemaVersion", 2}, {"mediaType", idx.media_type}, {"manifests", entries}};
  idx.manifest = index.dump();
  idx.digest = Sha256Digest(idx.manifest);
  idx.images = std::move(images);
  return idx;
}

Status PushBlob(const std::string& host, const std::string& repo, const Blob& blob,
                const std::string& basic_creds) {
  const std::string what = "push blob " + blob.digest + " to " + host + "/" + repo;
  ASSIGN_OR_RETURN(ClientResponse head,
                   HttpCall("HEAD", RegistryUrl(host, "/v2/" + repo + "/blobs/" + blob.digest), {},
                            "", basic_creds));
  if (head.status == 200) return OkStatus();
  if (head.status != 404) return HttpError(what + ": HEAD", head);

  ASSIGN_OR_RETURN(ClientResponse start,
                   HttpCall("POST", RegistryUrl(host, "/v2/" + repo + "/blobs/uploads/"),
                            {"Content-Type: application/octet-stream"}, "", basic_creds));
  if (start.status != 202) return HttpError(what + ": start upload", start);
  auto loc = start.headers.find("location");
  if (loc == start.headers.end() || loc->second.empty()) {
    return InternalError(what + ": upload answer has no Location");
  }
  std::string url = loc->second;
  if (url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0) {
    if (url[0] != '/') return InternalError(what + ": odd Location " + url);
    url = RegistryUrl(host, url);
  }
  url += (url.find('?') == std::string::npos ? "?" : "&");
  url += "digest=" + UrlEncode(blob.digest);
  ASSIGN_OR_RETURN(
      ClientResponse put,
      HttpCall("PUT", url, {"Content-Type: application/octet-stream"}, blob.data, basic_creds));
  if (put.status != 201) return HttpError(what + ": PUT", put);
  return OkStatus();
}

Status PushManifest(const std::string& host, const std::string& repo, const std::string& ref,
                    const std::string& body, const std::string& media_type,
                    const std::string& basic_creds) {
  const std::string what = "push manifest " + host + "/" + repo + ":" + ref;
  ASSIGN_OR_RETURN(ClientResponse put,
                   HttpCall("PUT", RegistryUrl(host, "/v2/" + repo + "/manifests/" + ref),
                            {"Content-Type: " + media_type}, body, basic_creds));
  if (put.status != 201) return HttpError(what, put);
  auto digest = put.headers.find("docker-content-digest");
  if (digest != put.headers.end() && digest->second != Sha256Digest(body)) {
    return DataLossError(what + ": registry says " + digest->second + ", body is " +
                         Sha256Digest(body));
  }
  return OkStatus();
}

Status PushImage(const std::string& host, const std::string& repo, const std::string& ref,
                 const BuiltImage& img, const std::string& basic_creds) {
  for (const Blob& layer : img.layers) RETURN_IF_ERROR(PushBlob(host, repo, layer, basic_creds));
  RETURN_IF_ERROR(PushBlob(host, repo, img.config, basic_creds));
  return PushManifest(host, repo, ref, img.manifest, img.manifest_media_type, basic_creds);
}

Status PushIndex(const std::string& host, const std::string& repo, const std::string& ref,
                 const BuiltIndex& idx, const std::string& basic_creds) {
  for (const BuiltImage& img : idx.images) {
    RETURN_IF_ERROR(PushImage(host, repo, img.manifest_digest, img, basic_creds));
  }
  return PushManifest(host, repo, ref, idx.manifest, idx.media_type, basic_creds);
}

Status WriteOciLayout(const std::string& dir, const std::string& tag, const BuiltImage& img) {
  std::error_code ec;
  std::filesystem::create_directories(dir + "/blobs/sha256", ec);
  if (ec) return InternalError("create " + dir + "/blobs/sha256: " + ec.message());
  auto write_blob = [&](const std::string& digest, std::string_view data) {
    return WriteFile(dir + "/blobs/sha256/" + digest.substr(7), data);
  };
  for (const Blob& layer : img.layers) RETURN_IF_ERROR(write_blob(layer.digest, layer.data));
  RETURN_IF_ERROR(write_blob(img.config.digest, img.config.data));
  RETURN_IF_ERROR(write_blob(img.manifest_digest, img.manifest));
  RETURN_IF_ERROR(WriteFile(dir + "/oci-layout", R"({"imageLayoutVersion":"1.0.0"})"));
  json desc = DescriptorJson(img.manifest_media_type, img.manifest_digest, img.manifest.size());
  desc["annotations"] = {{"org.opencontainers.image.ref.name", tag}};
  json index = {{"schemaVersion", 2},
                {"mediaType", "application/vnd.oci.image.index.v1+json"},
                {"manifests", json::array({desc})}};
  return WriteFile(dir + "/index.json", index.dump());
}

bool SkopeoAvailable() { return FindExecutable("skopeo"); }

std::string RandomBytes(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

}  // namespace hoist::testing
