// A driver for the tar fuzz target without libFuzzer.
//   tar_fuzzer FILE...            runs the target once over each file (e.g. a crash to replay)
//   tar_fuzzer --smoke [SECONDS]  mutates a few built-in seed archives for SECONDS (default 10)
// The target aborts on a broken invariant, so success is exit status 0.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

constexpr size_t kBlock = 512;

// A seed archive and the offsets of its header blocks (their checksums are repaired after a
// mutation now and then, so mutations reach past the checksum test).
struct Seed {
  std::string bytes;
  std::vector<size_t> headers;
};

void PutOctal(std::string* b, size_t off, size_t len, uint64_t v) {
  std::string digits;
  do {
    digits.insert(digits.begin(), static_cast<char>('0' + (v & 7)));
    v >>= 3;
  } while (v != 0);
  digits.insert(0, len - 1 - digits.size(), '0');
  b->replace(off, len - 1, digits);
  (*b)[off + len - 1] = '\0';
}

void FixChecksum(std::string* b, size_t at) {
  std::memset(&(*b)[at + 148], ' ', 8);
  unsigned sum = 0;
  for (size_t i = 0; i < kBlock; ++i) sum += static_cast<unsigned char>((*b)[at + i]);
  PutOctal(b, at + 148, 7, sum);
}

class SeedBuilder {
 public:
  // Appends a header; `gnu` selects the GNU magic (else POSIX ustar).
  size_t Header(const std::string& name, char type, uint64_t size, bool gnu = false,
                const std::string& link = "") {
    size_t at = seed_.bytes.size();
    std::string h(kBlock, '\0');
    h.replace(0, std::min<size_t>(name.size(), 100), name.substr(0, 100));
    PutOctal(&h, 100, 8, 0644);
    PutOctal(&h, 108, 8, 1000);
    PutOctal(&h, 116, 8, 1000);
    PutOctal(&h, 124, 12, size);
    PutOctal(&h, 136, 12, 1700000000);
    h[156] = type;
    h.replace(157, std::min<size_t>(link.size(), 100), link.substr(0, 100));
    h.replace(257, 8,
              gnu ? std::string("ustar  \0", 8)
                  : std::string("ustar\0"
                                "00",
                                8));
    seed_.bytes += h;
    FixChecksum(&seed_.bytes, at);
    seed_.headers.push_back(at);
    return at;
  }
  void Data(const std::string& d) {
    seed_.bytes += d;
    seed_.bytes.append((kBlock - d.size() % kBlock) % kBlock, '\0');
  }
  void File(const std::string& name, const std::string& d, char type = '0') {
    Header(name, type, d.size());
    Data(d);
  }
  void Pax(const std::vector<std::pair<std::string, std::string>>& records, char type = 'x') {
    std::string body;
    for (const auto& [k, v] : records) {
      std::string rest = " " + k + "=" + v + "\n";
      size_t n = rest.size() + 1;
      while (std::to_string(n).size() + rest.size() != n) ++n;
      body += std::to_string(n) + rest;
    }
    Header("PaxHeaders/x", type, body.size());
    Data(body);
  }
  Seed Finish() {
    seed_.bytes.append(2 * kBlock, '\0');
    return std::move(seed_);
  }
  std::string& bytes() { return seed_.bytes; }

 private:
  Seed seed_;
};

std::vector<Seed> Seeds() {
  std::vector<Seed> seeds;
  {
    SeedBuilder b;
    b.File("etc/hosts", "127.0.0.1 localhost\n");
    b.Header("etc/", '5', 0);
    b.Header("etc/link", '2', 0, false, "hosts");
    b.Header("etc/hard", '1', 0, false, "etc/hosts");
    b.Header("dev/null", '3', 0);
    b.File("old/", "xyz", '\0');
    b.File("big", std::string(1500, 'b'), '7');
    seeds.push_back(b.Finish());
  }
  {
    SeedBuilder b;
    std::string long_name(150, 'n');
    b.Header("././@LongLink", 'L', long_name.size() + 1, true);
    b.Data(long_name + '\0');
    b.Header("././@LongLink", 'K', 4, true);
    b.Data("tgt\0");
    b.Header("short", '2', 0, true);
    b.Pax({{"comment", "global"}}, 'g');
    b.Pax({{"path", "pax/file"},
           {"mtime", "1700000000.5"},
           {"SCHILY.xattr.user.a", "v"},
           {"LIBARCHIVE.xattr.user.b", "aGk="},
           {"size", "5"}});
    b.File("pax-ignored", "hello");
    seeds.push_back(b.Finish());
  }
  {
    // Old GNU sparse: realsize 4096, segments (0, 3) and (4000, 2), one in an extension block.
    SeedBuilder b;
    size_t at = b.Header("sparse", 'S', 5, true);
    std::string& s = b.bytes();
    PutOctal(&s, at + 386, 12, 0);
    PutOctal(&s, at + 398, 12, 3);
    s[at + 482] = 1;
    PutOctal(&s, at + 483, 12, 4096);
    FixChecksum(&s, at);
    std::string ext(kBlock, '\0');
    PutOctal(&ext, 0, 12, 4000);
    PutOctal(&ext, 12, 12, 2);
    s += ext;
    b.Data("abcde");
    seeds.push_back(b.Finish());
  }
  {
    // PAX sparse 1.0 and 0.1.
    SeedBuilder b;
    b.Pax({{"GNU.sparse.major", "1"},
           {"GNU.sparse.minor", "0"},
           {"GNU.sparse.name", "s1"},
           {"GNU.sparse.realsize", "3000"}});
    std::string map = "2\n100\n2\n2000\n3\n";
    map.append(kBlock - map.size(), '\0');
    b.File("GNUSparseFile.0/s1", map + "xyABC");
    b.Pax({{"GNU.sparse.size", "100"},
           {"GNU.sparse.numblocks", "1"},
           {"GNU.sparse.map", "10,4"},
           {"GNU.sparse.name", "s0"}});
    b.File("GNUSparseFile.0/s0", "wxyz");
    seeds.push_back(b.Finish());
  }
  return seeds;
}

int RunFile(const char* path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "tar_fuzzer: cannot read %s\n", path);
    return 1;
  }
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(data.data()), data.size());
  return 0;
}

std::string Mutate(const std::vector<Seed>& seeds, std::mt19937_64& rng) {
  const Seed& seed = seeds[rng() % seeds.size()];
  std::string s = seed.bytes;
  static const unsigned char kInteresting[] = {0,   ' ', '\n', '=', '0',  '1',  '7', '9',
                                               'x', 'S', 'L',  'g', 0x80, 0xff, 0x7f};
  const int mutations = 1 + static_cast<int>(rng() % 8);
  for (int i = 0; i < mutations && !s.empty(); ++i) {
    const size_t at = rng() % s.size();
    switch (rng() % 7) {
      case 0:
        s[at] = static_cast<char>(rng());
        break;
      case 1:
      case 2:
        s[at] = static_cast<char>(kInteresting[rng() % sizeof(kInteresting)]);
        break;
      case 3:
        s.resize(at);  // truncate
        break;
      case 4:
        s.insert(at, 1 + rng() % 16, static_cast<char>(rng()));
        break;
      case 5: {  // copy a block somewhere else
        const size_t from = (rng() % (s.size() / kBlock + 1)) * kBlock;
        if (from < s.size()) s.insert(at, s.substr(from, kBlock));
        break;
      }
      case 6:
        s.erase(at, 1 + rng() % 64);
        break;
    }
  }
  if (rng() % 2 == 0) {
    for (size_t h : seed.headers) {
      if (h + kBlock <= s.size()) FixChecksum(&s, h);
    }
  }
  s.insert(s.begin(), static_cast<char>(rng()));  // the chunk-size seed byte
  return s;
}

int RunSmoke(double seconds) {
  const std::vector<Seed> seeds = Seeds();
  std::mt19937_64 rng(20240601);
  const auto stop = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  uint64_t runs = 0;
  for (const Seed& seed : seeds) {  // the seeds themselves, unmutated
    std::string s = '\0' + seed.bytes;
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  }
  while (std::chrono::steady_clock::now() < stop) {
    for (int i = 0; i < 100; ++i, ++runs) {
      std::string s = Mutate(seeds, rng);
      LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(s.data()), s.size());
    }
  }
  std::printf("tar_fuzzer: %llu mutated inputs, no invariant broken\n",
              static_cast<unsigned long long>(runs));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::strcmp(argv[1], "--smoke") == 0) {
    return RunSmoke(argc >= 3 ? std::atof(argv[2]) : 10.0);
  }
  if (argc < 2) {
    std::fprintf(stderr, "usage: tar_fuzzer FILE... | tar_fuzzer --smoke [SECONDS]\n");
    return 2;
  }
  for (int i = 1; i < argc; ++i) {
    if (RunFile(argv[i]) != 0) return 1;
  }
  return 0;
}
