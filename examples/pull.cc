// The smallest program that embeds libhoist: pull one image into a store and list its layers.
//
//   pull STORE_DIR REFERENCE
#include <cstdio>

#include "hoist/client.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s STORE_DIR REFERENCE\n", argv[0]);
    return 2;
  }
  hoist::ClientOptions options;
  options.store_dir = argv[1];
  auto client = hoist::Client::Open(options);
  if (!client.ok()) {
    std::fprintf(stderr, "%s\n", client.status().message().c_str());
    return 1;
  }
  hoist::Result<hoist::Image> image = (*client)->Pull(argv[2]);
  if (!image.ok()) {
    std::fprintf(stderr, "%s\n", image.status().message().c_str());
    return 1;
  }
  std::printf("%s %s\n", image->reference.c_str(), image->manifest.digest.String().c_str());
  for (const hoist::Descriptor& layer : image->layers) {
    std::printf("  %s %lld\n", layer.digest.String().c_str(), static_cast<long long>(layer.size));
  }
  return 0;
}
