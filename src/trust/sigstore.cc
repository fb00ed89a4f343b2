// Placeholder until the sigstore implementation lands: every call is Unimplemented.
#include "trust/sigstore.h"

namespace hoist::trust {

Result<std::vector<SigstoreSignature>> FetchSigstoreSignatures(registry::HttpClient&,
                                                               registry::Repository&,
                                                               const Digest&) {
  return UnimplementedError("sigstore: not yet");
}

Result<std::string> VerifySigstoreSignature(const SigstoreSignature&,
                                            const std::vector<std::string>&) {
  return UnimplementedError("sigstore: not yet");
}

}  // namespace hoist::trust
