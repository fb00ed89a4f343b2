// hoist::Client and the signature policy: the check a pull makes before it fetches any blob,
// and `hoist trust show`.
#include "base/status_macros.h"
#include "base/strings.h"
#include "client_impl.h"
#include "content/digester.h"
#include "manifest/media_types.h"
#include "trust/evaluate.h"
#include "trust/lookaside.h"
#include "trust/policy.h"
#include "trust/registries_d.h"
#include "trust/sigstore.h"

namespace hoist {

namespace {

// The signatures of one image: the lookaside store registries.d names for it, and the
// registry's sigstore attachments when registries.d enables them. Each is fetched once.
class PullSignatures : public trust::SignatureSource {
 public:
  PullSignatures(registry::HttpClient& http, registry::Repository& repo, const Reference& ref,
                 trust::SignatureSources sources)
      : http_(http), repo_(repo), ref_(ref), sources_(std::move(sources)) {}

  Result<std::vector<std::string>> SimpleSignatures(const Digest& digest) override {
    if (!simple_) {
      ASSIGN_OR_RETURN(simple_,
                       trust::FetchLookasideSignatures(http_, sources_.lookaside, ref_, digest));
    }
    return *simple_;
  }
  Result<std::vector<trust::SigstoreSignature>> SigstoreSignatures(const Digest& digest) override {
    if (!sources_.use_sigstore_attachments) return std::vector<trust::SigstoreSignature>();
    if (!sigstore_) {
      ASSIGN_OR_RETURN(sigstore_, trust::FetchSigstoreSignatures(http_, repo_, digest));
    }
    return *sigstore_;
  }

 private:
  registry::HttpClient& http_;
  registry::Repository& repo_;
  const Reference& ref_;
  const trust::SignatureSources sources_;
  std::optional<std::vector<std::string>> simple_;
  std::optional<std::vector<trust::SigstoreSignature>> sigstore_;
};

// A docker:// source whose image manifests pass `check` (digest, bytes) before they are
// handed out.
class PolicyCheckedSource : public transport::ImageSource {
 public:
  using Check = std::function<Status(const Digest&, const std::string&)>;
  PolicyCheckedSource(std::unique_ptr<transport::ImageSource> inner, Check check)
      : inner_(std::move(inner)), check_(std::move(check)) {}

  Result<transport::ManifestBytes> TopManifest() override {
    ASSIGN_OR_RETURN(transport::ManifestBytes m, inner_->TopManifest());
    RETURN_IF_ERROR(Checked(m));
    return m;
  }
  Result<transport::ManifestBytes> Manifest(const Digest& digest) override {
    ASSIGN_OR_RETURN(transport::ManifestBytes m, inner_->Manifest(digest));
    RETURN_IF_ERROR(Checked(m));
    return m;
  }
  Status Blob(const Descriptor& d, const registry::BlobSink& sink) override {
    return inner_->Blob(d, sink);
  }
  std::vector<std::string> Names() override { return inner_->Names(); }

 private:
  // The digest is computed here from the bytes checked, whatever the source says.
  Status Checked(const transport::ManifestBytes& m) {
    if (manifest::IsIndexType(m.media_type)) return OkStatus();
    ASSIGN_OR_RETURN(Digest digest, content::DigestOf("sha256", m.bytes));
    return check_(digest, m.bytes);
  }

  std::unique_ptr<transport::ImageSource> inner_;
  Check check_;
};

}  // namespace

std::unique_ptr<transport::ImageSource> Client::Impl::WithSignaturePolicy(
    std::unique_ptr<transport::ImageSource> source, const Reference& ref,
    std::unique_ptr<registry::Repository> repo) {
  auto http = std::make_shared<registry::HttpClient>(
      nullptr, nullptr,
      registry::TransferLimits{options.low_speed_bytes_per_second, options.low_speed_seconds,
                               options.request_timeout_seconds});
  std::shared_ptr<registry::Repository> shared_repo(std::move(repo));
  return std::make_unique<PolicyCheckedSource>(
      std::move(source), [this, http, shared_repo, ref](const Digest& d, const std::string& b) {
        return CheckSignaturePolicy(*http, *shared_repo, ref, d, &b);
      });
}

Status Client::Impl::CheckSignaturePolicy(registry::HttpClient& http, registry::Repository& repo,
                                          const Reference& ref, const Digest& manifest,
                                          const std::string* bytes) {
  ASSIGN_OR_RETURN(std::optional<trust::Policy> policy,
                   trust::LoadPolicy(options.signature_policy));
  if (!policy) return OkStatus();
  std::optional<trust::RegistriesD> registries_d;
  std::string manifest_bytes;
  if (trust::NeedsSignatures(*policy, ref)) {
    ASSIGN_OR_RETURN(registries_d, trust::RegistriesD::Load(options.registries_d));
    if (bytes != nullptr) {
      manifest_bytes = *bytes;
    } else {
      ASSIGN_OR_RETURN(manifest_bytes, store->ReadBlob(manifest, manifest::kMaxManifestBytes));
    }
  }
  PullSignatures signatures(http, repo, ref,
                            registries_d ? registries_d->For(ref) : trust::SignatureSources{});
  return trust::Evaluate(*policy, ref, manifest, manifest_bytes, signatures);
}

Result<std::string> Client::DescribeTrust(std::string_view text) {
  const std::string context = "trust show " + std::string(text);
  auto ref = Reference::Parse(text);
  if (!ref.ok()) return ref.status().WithContext(context);
  auto policy = trust::LoadPolicy(impl_->options.signature_policy);
  if (!policy.ok()) return policy.status().WithContext(context);
  std::string out = "reference: " + ref->String() + "\n";
  if (!*policy) {
    return out + "policy: no policy file (" +
           (impl_->options.signature_policy.empty()
                ? std::string("neither ~/.config/containers/policy.json nor "
                              "/etc/containers/policy.json exists")
                : "") +
           "): every image accepted\n";
  }
  const trust::Policy& p = **policy;
  trust::ScopeMatch match = trust::RequirementsFor(p, *ref);
  out += "policy: " + p.path + "\n";
  out += "scope: " + match.scope + "\n";
  std::string why;
  if (match.scope == "default") {
    why = "no transports.docker scope matches " + Quote(trust::PolicyIdentity(*ref)) +
          ", its repository, namespaces, host or wildcard domains, and there is no \"\" scope";
  } else if (match.scope == "docker:\"\"") {
    why = "no more specific transports.docker scope matches";
  } else {
    why = "the most specific of the scopes tried, in order: " + Quote(trust::PolicyIdentity(*ref));
    for (const auto& ns : trust::PolicyNamespaces(*ref)) why += ", " + Quote(ns);
  }
  out += "why: " + why + "\n";
  out += "requirements (all must pass):\n";
  for (const auto& r : *match.requirements) {
    out += "  " + trust::DescribeRequirement(r) + "\n";
  }
  auto registries_d = trust::RegistriesD::Load(impl_->options.registries_d);
  if (!registries_d.ok()) return registries_d.status().WithContext(context);
  trust::SignatureSources sources = registries_d->For(*ref);
  out += "registries.d: " + registries_d->dir() + "\n";
  out += "  lookaside: " + TerminalSafe(sources.lookaside) + " (" +
         TerminalSafe(sources.lookaside_from) + ")\n";
  out += "  sigstore attachments: " +
         std::string(sources.use_sigstore_attachments ? "used" : "not used") + " (" +
         (sources.attachments_from.empty() ? std::string("not set")
                                           : TerminalSafe(sources.attachments_from)) +
         ")\n";
  return out;
}

}  // namespace hoist
