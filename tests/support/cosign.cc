#include "support/cosign.h"

#include <cerrno>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "base/status_macros.h"
#include "base/strings.h"
#include "support/http_client.h"
#include "support/image_builder.h"
#include "support/process.h"

namespace hoist::testing {
namespace {

using json = nlohmann::ordered_json;

constexpr int kOpensslTimeoutS = 60;
constexpr char kOciManifestType[] = "application/vnd.oci.image.manifest.v1+json";
constexpr char kOciConfigType[] = "application/vnd.oci.image.config.v1+json";

Result<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return ErrnoError(errno, "open " + path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

// Whether the PEM key file (private, or public with `pub`) is an Ed25519 key, which the openssl
// commands sign and verify with pkeyutl -rawin rather than dgst.
Result<bool> IsEd25519(const std::string& key_path, bool pub) {
  std::vector<std::string> argv = {"openssl", "pkey", "-in", key_path, "-noout", "-text"};
  if (pub) argv.insert(argv.begin() + 2, "-pubin");
  ASSIGN_OR_RETURN(std::string text, RunCommand(argv, kOpensslTimeoutS));
  return text.rfind("ED25519", 0) == 0;
}

std::string AttachmentTag(const Digest& d) { return d.algorithm() + "-" + d.hex() + ".sig"; }

}  // namespace

Result<CosignKey> MakeKey(const std::string& dir, const std::string& name,
                          const std::vector<std::string>& algorithm_args) {
  CosignKey key;
  key.private_key_path = dir + "/" + name + ".key";
  key.public_key_path = dir + "/" + name + ".pub";
  std::vector<std::string> gen = {"openssl", "genpkey"};
  gen.insert(gen.end(), algorithm_args.begin(), algorithm_args.end());
  gen.insert(gen.end(), {"-out", key.private_key_path});
  RETURN_IF_ERROR(RunCommand(gen, kOpensslTimeoutS).status());
  RETURN_IF_ERROR(RunCommand({"openssl", "pkey", "-in", key.private_key_path, "-pubout", "-out",
                              key.public_key_path},
                             kOpensslTimeoutS)
                      .status());
  ASSIGN_OR_RETURN(key.public_key_pem, ReadFile(key.public_key_path));
  return key;
}

Result<CosignKey> MakeCosignKey(const std::string& dir, const std::string& name) {
  return MakeKey(dir, name, {"-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"});
}

std::string CosignPayload(const std::string& docker_reference, const std::string& manifest_digest) {
  json payload = {{"critical",
                   {{"identity", {{"docker-reference", docker_reference}}},
                    {"image", {{"docker-manifest-digest", manifest_digest}}},
                    {"type", "cosign container image signature"}}},
                  {"optional", nullptr}};
  return payload.dump();
}

Result<bool> OpensslVerify(const std::string& payload, const std::string& signature_base64,
                           const std::string& public_key_pem_path) {
  ASSIGN_OR_RETURN(TempDir tmp, TempDir::Create("hoist-cosign-"));
  const std::string payload_path = tmp.path() + "/payload";
  const std::string b64_path = tmp.path() + "/sig.b64";
  const std::string sig_path = tmp.path() + "/sig.der";
  RETURN_IF_ERROR(WriteFile(payload_path, payload));
  RETURN_IF_ERROR(WriteFile(b64_path, signature_base64 + "\n"));
  if (!RunCommand({"openssl", "base64", "-d", "-A", "-in", b64_path, "-out", sig_path},
                  kOpensslTimeoutS)
           .ok()) {
    return false;
  }
  ASSIGN_OR_RETURN(bool ed25519, IsEd25519(public_key_pem_path, true));
  std::vector<std::string> argv =
      ed25519
          ? std::vector<std::string>{"openssl",
                                     "pkeyutl",
                                     "-verify",
                                     "-rawin",
                                     "-pubin",
                                     "-inkey",
                                     public_key_pem_path,
                                     "-in",
                                     payload_path,
                                     "-sigfile",
                                     sig_path}
          : std::vector<std::string>{"openssl",           "dgst",       "-sha256", "-verify",
                                     public_key_pem_path, "-signature", sig_path,  payload_path};
  Result<std::string> out = RunCommand(argv, kOpensslTimeoutS);
  // Both commands exit 1 and print "Verification failure" (dgst) or "Signature Verification
  // Failure" (pkeyutl) for a signature that does not verify, and dgst "Error verifying data"
  // for one that is no DER signature; anything else is a failure to run.
  if (out.ok()) {
    return out->find("Verified OK") != std::string::npos ||
           out->find("Signature Verified Successfully") != std::string::npos;
  }
  const std::string said = ToLower(out.status().message());
  if (said.find("verification failure") != std::string::npos ||
      said.find("error verifying data") != std::string::npos) {
    return false;
  }
  return out.status();
}

Result<std::string> OpensslSign(const std::string& payload,
                                const std::string& private_key_pem_path) {
  ASSIGN_OR_RETURN(TempDir tmp, TempDir::Create("hoist-cosign-"));
  const std::string payload_path = tmp.path() + "/payload";
  const std::string sig_path = tmp.path() + "/sig.der";
  const std::string pub_path = tmp.path() + "/key.pub";
  RETURN_IF_ERROR(WriteFile(payload_path, payload));
  ASSIGN_OR_RETURN(bool ed25519, IsEd25519(private_key_pem_path, false));
  std::vector<std::string> sign =
      ed25519 ? std::vector<std::string>{"openssl", "pkeyutl",    "-sign",
                                         "-rawin",  "-inkey",     private_key_pem_path,
                                         "-in",     payload_path, "-out",
                                         sig_path}
              : std::vector<std::string>{
                    "openssl", "dgst",   "-sha256",   "-sign", private_key_pem_path,
                    "-out",    sig_path, payload_path};
  RETURN_IF_ERROR(RunCommand(sign, kOpensslTimeoutS).status());
  ASSIGN_OR_RETURN(std::string b64,
                   RunCommand({"openssl", "base64", "-A", "-in", sig_path}, kOpensslTimeoutS));
  b64 = Trim(b64);
  RETURN_IF_ERROR(
      RunCommand({"openssl", "pkey", "-in", private_key_pem_path, "-pubout", "-out", pub_path},
                 kOpensslTimeoutS)
          .status());
  ASSIGN_OR_RETURN(bool verified, OpensslVerify(payload, b64, pub_path));
  if (!verified) return InternalError("openssl does not verify its own signature of the payload");
  return b64;
}

Status AttachCosignLayers(const std::string& registry_host, const std::string& repo,
                          const Digest& manifest_digest, const std::vector<CosignLayer>& layers,
                          const std::string& basic_creds) {
  const std::string tag = AttachmentTag(manifest_digest);
  const std::string what = "attach signatures to " + registry_host + "/" + repo + ":" + tag;
  json old_layers = json::array();
  ASSIGN_OR_RETURN(ClientResponse got,
                   HttpCall("GET", "http://" + registry_host + "/v2/" + repo + "/manifests/" + tag,
                            {std::string("Accept: ") + kOciManifestType}, "", basic_creds));
  if (got.status == 200) {
    json old = json::parse(got.body, nullptr, /*allow_exceptions=*/false);
    if (old.is_discarded() || !old.is_object() || !old.contains("layers") ||
        !old["layers"].is_array()) {
      return InternalError(what + ": the existing attachment is not an image manifest");
    }
    old_layers = old["layers"];
  } else if (got.status != 404) {
    return InternalError(what + ": GET the existing attachment: HTTP " +
                         std::to_string(got.status));
  }

  json all_layers = old_layers;
  for (const CosignLayer& l : layers) {
    Blob blob{l.media_type, Sha256Digest(l.payload), l.payload};
    RETURN_IF_ERROR(PushBlob(registry_host, repo, blob, basic_creds).WithContext(what));
    json desc = {{"mediaType", l.media_type}, {"size", l.payload.size()}, {"digest", blob.digest}};
    if (!l.annotations.empty()) desc["annotations"] = l.annotations;
    all_layers.push_back(desc);
  }
  // The config cosign writes: an empty image whose diff_ids are the layers' digests.
  json diff_ids = json::array();
  for (const json& l : all_layers) diff_ids.push_back(l.value("digest", ""));
  json config = {{"architecture", ""},
                 {"created", "0001-01-01T00:00:00Z"},
                 {"os", ""},
                 {"rootfs", {{"type", "layers"}, {"diff_ids", diff_ids}}},
                 {"config", json::object()}};
  Blob config_blob{kOciConfigType, "", config.dump()};
  config_blob.digest = Sha256Digest(config_blob.data);
  RETURN_IF_ERROR(PushBlob(registry_host, repo, config_blob, basic_creds).WithContext(what));
  json manifest = {{"schemaVersion", 2},
                   {"mediaType", kOciManifestType},
                   {"config",
                    {{"mediaType", kOciConfigType},
                     {"size", config_blob.data.size()},
                     {"digest", config_blob.digest}}},
                   {"layers", all_layers}};
  return PushManifest(registry_host, repo, tag, manifest.dump(), kOciManifestType, basic_creds);
}

Status AttachCosignSignature(const std::string& registry_host, const std::string& repo,
                             const Digest& manifest_digest, const std::string& docker_reference,
                             const std::string& private_key_pem_path,
                             const std::string& basic_creds) {
  const std::string payload = CosignPayload(docker_reference, manifest_digest.String());
  ASSIGN_OR_RETURN(std::string signature, OpensslSign(payload, private_key_pem_path));
  return AttachCosignLayers(registry_host, repo, manifest_digest,
                            {{payload, {{kCosignSignatureAnnotation, signature}}}}, basic_creds);
}

}  // namespace hoist::testing
