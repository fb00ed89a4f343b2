// hoist::Client's load, save, copy and push: a source and a destination opened for two
// locations, and transport::Copy between them.
#include "base/status_macros.h"
#include "base/strings.h"
#include "client_impl.h"
#include "transport/docker_archive.h"
#include "transport/oci_layout.h"
#include "transport/registry.h"
#include "transport/store.h"

namespace hoist {
namespace {

transport::CopyOptions CopyOptionsOf(const CopyOptions& o) {
  transport::CopyOptions c;
  c.all_platforms = o.all_platforms;
  c.platform = o.platform;
  c.jobs = o.jobs;
  c.progress = o.progress;
  c.cancel = o.cancel;
  return c;
}

bool TouchesStore(const transport::Location& l) {
  return l.kind == transport::Location::Kind::kStore;
}

// Before anything is copied into the store: it records images by name only.
Status NoName() {
  return InvalidArgumentError("the image has no name to record it by (give one with --tag)");
}

}  // namespace

Result<std::string> Client::Impl::SpoolDir() {
  RETURN_IF_ERROR(store->OpenDir(store->layout().IngestDir(), /*create=*/true).status());
  return store->layout().IngestDir();
}

Result<std::pair<std::unique_ptr<registry::Repository>, transport::RegistryTransportOptions>>
Client::Impl::RegistryTransport(const transport::Location& location, Reference* ref,
                                const std::atomic<bool>* cancel,
                                const std::function<void(const std::string&)>& notice) {
  ASSIGN_OR_RETURN(*ref, Reference::Parse(location.ref));
  ASSIGN_OR_RETURN(auto routes, registries_conf.RoutesFor(*ref));
  // The registry itself, never a mirror: mirrors are for pulls, and a copy must see the
  // registry's own image.
  const auto& route = routes.back();
  ASSIGN_OR_RETURN(registry::Registry * reg, RegistryFor(route));
  transport::RegistryTransportOptions o;
  o.retry = RetryPolicyOf(true);
  o.limits = {options.low_speed_bytes_per_second, options.low_speed_seconds,
              options.request_timeout_seconds};
  o.cancel = cancel;
  o.notice = notice;
  return std::make_pair(std::make_unique<registry::Repository>(reg, route.repository),
                        std::move(o));
}

Result<std::unique_ptr<transport::ImageSource>> Client::Impl::OpenSource(
    const transport::Location& location) {
  using Kind = transport::Location::Kind;
  Reference ref;
  switch (location.kind) {
    case Kind::kStore: {
      ASSIGN_OR_RETURN(auto src, transport::StoreSource::Open(*store, location.ref));
      return std::unique_ptr<transport::ImageSource>(std::move(src));
    }
    case Kind::kOciDir: {
      ASSIGN_OR_RETURN(auto src, transport::OciLayoutSource::OpenDirectory(location.path));
      RETURN_IF_ERROR(src->Select(location.ref));
      return std::unique_ptr<transport::ImageSource>(std::move(src));
    }
    case Kind::kOciArchive: {
      ASSIGN_OR_RETURN(std::string spool, SpoolDir());
      ASSIGN_OR_RETURN(auto archive, transport::TarIndex::Open(location.path, spool));
      ASSIGN_OR_RETURN(auto src, transport::OciLayoutSource::OpenArchive(std::move(archive)));
      RETURN_IF_ERROR(src->Select(location.ref));
      return std::unique_ptr<transport::ImageSource>(std::move(src));
    }
    case Kind::kDockerArchive: {
      ASSIGN_OR_RETURN(std::string spool, SpoolDir());
      return transport::OpenDockerArchiveSource(location.path, location.ref, spool);
    }
    case Kind::kRegistry: {
      ASSIGN_OR_RETURN(auto repo, RegistryTransport(location, &ref));
      // The policy's signature requests go to the same repository.
      ASSIGN_OR_RETURN(auto policy_repo, RegistryTransport(location, &ref));
      return WithSignaturePolicy(
          transport::OpenRegistrySource(std::move(repo.first), ref, std::move(repo.second)), ref,
          std::move(policy_repo.first));
    }
  }
  return InternalError("unknown transport");
}

Result<std::unique_ptr<transport::ImageDestination>> Client::Impl::OpenDestination(
    const transport::Location& location, const CopyOptions& copy) {
  using Kind = transport::Location::Kind;
  Reference ref;
  switch (location.kind) {
    case Kind::kStore: {
      pull::FetchOptions fetch;
      fetch.limits.max_uncompressed = options.max_layer_bytes;
      fetch.limits.max_zstd_window = options.max_zstd_window_bytes;
      fetch.notice = copy.notice;
      fetch.cancel = copy.cancel;
      return std::unique_ptr<transport::ImageDestination>(new transport::StoreDestination(
          *store, std::move(fetch), copy.progress, options.max_image_bytes));
    }
    case Kind::kOciDir:
      return transport::OpenOciLayoutDestination(location.path);
    case Kind::kOciArchive:
      return transport::OpenOciArchiveDestination(location.path);
    case Kind::kDockerArchive:
      return transport::OpenDockerArchiveDestination(location.path, store->layout().IngestDir());
    case Kind::kRegistry: {
      ASSIGN_OR_RETURN(auto repo, RegistryTransport(location, &ref, copy.cancel, copy.notice));
      return transport::OpenRegistryDestination(std::move(repo.first), ref, std::move(repo.second));
    }
  }
  return InternalError("unknown transport");
}

Result<Digest> Client::Copy(std::string_view source, std::string_view destination,
                            const CopyOptions& options) {
  const std::string context = "copy " + std::string(source) + " " + std::string(destination);
  Result<Digest> digest = [&]() -> Result<Digest> {
    ASSIGN_OR_RETURN(transport::Location from, transport::ParseLocation(source));
    ASSIGN_OR_RETURN(transport::Location to, transport::ParseLocation(destination));
    content::Store::GcLock gc_guard;
    if (TouchesStore(from) || TouchesStore(to)) {
      // Held until the record is written (or the last blob read): gc keeps what we use.
      ASSIGN_OR_RETURN(gc_guard, impl_->store->LockAgainstGc());
    }
    ASSIGN_OR_RETURN(auto src, impl_->OpenSource(from));
    ASSIGN_OR_RETURN(auto dst, impl_->OpenDestination(to, options));
    std::vector<std::string> names = src->Names();
    if (!to.ref.empty()) names = {to.ref};
    ASSIGN_OR_RETURN(transport::ManifestBytes top,
                     transport::Copy(*src, *dst, names, CopyOptionsOf(options)));
    RETURN_IF_ERROR(dst->Close());
    return top.digest;
  }();
  if (!digest.ok()) return digest.status().WithContext(context);
  return digest;
}

Result<Digest> Client::Push(std::string_view local, std::string_view destination,
                            const CopyOptions& options) {
  const std::string dest(destination.empty() ? local : destination);
  auto digest = Copy("hoist:" + std::string(local), "docker://" + dest, options);
  if (!digest.ok()) {
    // "push LOCAL DEST: ..." rather than the copy's spelling.
    const std::string copy_context =
        "copy hoist:" + std::string(local) + " docker://" + dest + ": ";
    std::string message = digest.status().message();
    if (message.rfind(copy_context, 0) == 0) message.erase(0, copy_context.size());
    return Status(digest.status().code(),
                  "push " + std::string(local) + " " + dest + ": " + message);
  }
  return digest;
}

Status Client::Save(const std::vector<std::string>& references, const std::string& output,
                    ArchiveFormat format, const CopyOptions& options) {
  const std::string context = "save";
  if (references.empty()) return InvalidArgumentError("save: no image named");
  transport::Location to;
  to.kind = format == ArchiveFormat::kOciArchive ? transport::Location::Kind::kOciArchive
                                                 : transport::Location::Kind::kDockerArchive;
  to.path = output;
  auto gc_guard = impl_->store->LockAgainstGc();
  if (!gc_guard.ok()) return gc_guard.status().WithContext(context);
  // Every image is found before anything is written.
  std::vector<std::unique_ptr<transport::ImageSource>> sources;
  for (const auto& ref : references) {
    transport::Location from{transport::Location::Kind::kStore, "", ref};
    auto src = impl_->OpenSource(from);
    if (!src.ok()) return src.status().WithContext("save " + ref);
    sources.push_back(std::move(src).value());
  }
  auto dst = impl_->OpenDestination(to, options);
  if (!dst.ok()) return dst.status().WithContext(context);
  for (size_t i = 0; i < sources.size(); ++i) {
    auto top = transport::Copy(*sources[i], **dst, sources[i]->Names(), CopyOptionsOf(options));
    if (!top.ok()) return top.status().WithContext("save " + references[i]);
  }
  return (*dst)->Close().WithContext(context);
}

Result<std::vector<Image>> Client::Load(const std::string& input, const LoadOptions& options) {
  const std::string context = "load " + (input.empty() ? options.layout : input);
  Result<std::vector<Image>> loaded = [&]() -> Result<std::vector<Image>> {
    ASSIGN_OR_RETURN(content::Store::GcLock gc_guard, impl_->store->LockAgainstGc());
    std::unique_ptr<transport::OciLayoutSource> oci;
    std::unique_ptr<transport::ImageSource> other;
    std::string tag;
    if (!options.layout.empty()) {
      ASSIGN_OR_RETURN(transport::Location l, transport::ParseLocation("oci:" + options.layout));
      ASSIGN_OR_RETURN(oci, transport::OciLayoutSource::OpenDirectory(l.path));
      tag = l.ref;
    } else {
      ASSIGN_OR_RETURN(std::string spool, impl_->SpoolDir());
      ASSIGN_OR_RETURN(auto archive, transport::TarIndex::Open(input.empty() ? "-" : input, spool));
      if (archive->Lookup("manifest.json") != nullptr) {
        ASSIGN_OR_RETURN(other, transport::OpenDockerArchiveSource(std::move(archive), ""));
      } else if (archive->Lookup("index.json") != nullptr) {
        ASSIGN_OR_RETURN(oci, transport::OciLayoutSource::OpenArchive(std::move(archive)));
      } else {
        return InvalidArgumentError(
            "neither a docker-archive (manifest.json) nor an oci-archive (index.json)");
      }
    }
    transport::StoreDestination dst(
        *impl_->store,
        [&] {
          pull::FetchOptions fetch;
          fetch.limits.max_uncompressed = impl_->options.max_layer_bytes;
          fetch.limits.max_zstd_window = impl_->options.max_zstd_window_bytes;
          fetch.notice = options.notice;
          fetch.cancel = options.cancel;
          return fetch;
        }(),
        options.progress, impl_->options.max_image_bytes);
    auto copy = [&](transport::ImageSource& src) -> Status {
      std::vector<std::string> names = src.Names();
      if (!options.tag.empty()) names = {options.tag};
      if (names.empty()) return NoName();
      return transport::Copy(src, dst, names, CopyOptionsOf(options)).status();
    };
    if (other) {
      RETURN_IF_ERROR(copy(*other));
    } else if (!tag.empty() || oci->entries().size() == 1) {
      RETURN_IF_ERROR(oci->Select(tag));
      RETURN_IF_ERROR(copy(*oci));
    } else {
      if (!options.tag.empty()) {
        return InvalidArgumentError("--tag names one image; the archive holds " +
                                    std::to_string(oci->entries().size()));
      }
      for (size_t i = 0; i < oci->entries().size(); ++i) {
        oci->SelectEntry(i);
        RETURN_IF_ERROR(copy(*oci));
      }
    }
    return dst.committed();
  }();
  if (!loaded.ok()) return loaded.status().WithContext(context);
  return loaded;
}

}  // namespace hoist
