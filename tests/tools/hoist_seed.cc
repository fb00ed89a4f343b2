// hoist-seed: builds an image from local directories and pushes it to a registry, for the
// demo and the benchmark. Each --dir becomes one gzip layer holding that directory's tree
// (regular files, directories, symlinks).
//
//   hoist-seed [--format oci|docker] [--dir DIR]... HOST REPO:TAG
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "support/image_builder.h"

namespace fs = std::filesystem;
using hoist::testing::TarEntry;

namespace {

std::vector<TarEntry> EntriesOf(const fs::path& root) {
  std::vector<TarEntry> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, fs::directory_options::skip_permission_denied, ec);
       it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    const fs::path& p = it->path();
    // Lexical: fs::relative would follow a symlink and name it after its target.
    std::string rel = p.lexically_relative(root).string();
    auto status = fs::symlink_status(p);
    int mode = static_cast<int>(status.permissions()) & 07777;
    if (fs::is_symlink(status)) {
      out.push_back({rel, "", '2', fs::read_symlink(p).string(), 0777});
    } else if (fs::is_directory(status)) {
      out.push_back({rel + "/", "", '5', "", mode});
    } else if (fs::is_regular_file(status)) {
      std::ifstream in(p, std::ios::binary);
      out.push_back({rel, std::string(std::istreambuf_iterator<char>(in), {}), '0', "", mode});
    }
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  hoist::testing::Format format = hoist::testing::Format::kOci;
  std::vector<std::string> dirs;
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--format" && i + 1 < argc) {
      format = std::string(argv[++i]) == "docker" ? hoist::testing::Format::kDocker
                                                   : hoist::testing::Format::kOci;
    } else if (a == "--dir" && i + 1 < argc) {
      dirs.push_back(argv[++i]);
    } else {
      args.push_back(a);
    }
  }
  if (args.size() != 2 || args[1].find(':') == std::string::npos) {
    std::fprintf(stderr, "usage: hoist-seed [--format oci|docker] [--dir DIR]... HOST REPO:TAG\n");
    return 2;
  }
  std::vector<std::vector<TarEntry>> layers;
  for (const auto& d : dirs) layers.push_back(EntriesOf(d));
  if (layers.empty()) {
    layers.push_back({{"etc/", "", '5'}, {"etc/motd", "hello from hoist-seed\n"}});
  }
  auto image = hoist::testing::BuildImage(format, layers);
  std::string repo = args[1].substr(0, args[1].rfind(':'));
  std::string tag = args[1].substr(args[1].rfind(':') + 1);
  hoist::Status s = hoist::testing::PushImage(args[0], repo, tag, image);
  if (!s.ok()) {
    std::fprintf(stderr, "hoist-seed: push %s/%s: %s\n", args[0].c_str(), args[1].c_str(),
                 s.message().c_str());
    return 1;
  }
  size_t bytes = image.config.data.size();
  for (const auto& l : image.layers) bytes += l.data.size();
  std::printf("pushed %s/%s: %zu layers, %zu bytes, %s\n", args[0].c_str(), args[1].c_str(),
              image.layers.size(), bytes, image.manifest_digest.c_str());
  return 0;
}
