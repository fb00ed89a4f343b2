// Uses the installed public API only.
#include <cstdio>

#include <hoist/client.h>
#include <hoist/reference.h>

int main() {
  auto ref = hoist::Reference::Parse("alpine:3.20");
  if (!ref.ok()) return 1;
  std::printf("%s\n", ref->String().c_str());
  auto bad = hoist::Reference::Parse("Bad/Name");
  return bad.ok() ? 1 : 0;
}
