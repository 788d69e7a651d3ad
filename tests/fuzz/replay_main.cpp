// Replays a fuzz target's corpus, then feeds it deterministic mutations of every corpus entry
// (bit flips, truncations, splices) and random byte strings. Any crash or sanitizer report fails
// the ctest run. Usage: <target> <corpus-dir> [mutations-per-entry]
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR [MUTATIONS]\n", argv[0]);
    return 2;
  }
  const int mutations = argc > 2 ? std::atoi(argv[2]) : 300;
  std::vector<std::vector<std::uint8_t>> corpus;
  for (const auto& e : std::filesystem::directory_iterator(argv[1])) {
    std::ifstream in(e.path(), std::ios::binary);
    corpus.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  if (corpus.empty()) {
    std::fprintf(stderr, "empty corpus %s\n", argv[1]);
    return 2;
  }
  std::mt19937_64 rng(0x5eed);
  std::size_t runs = 0;
  for (const auto& c : corpus) {
    LLVMFuzzerTestOneInput(c.data(), c.size());
    ++runs;
    for (int m = 0; m < mutations; ++m) {
      std::vector<std::uint8_t> x = c;
      switch (rng() % 4) {
        case 0:
          if (!x.empty()) x[rng() % x.size()] ^= static_cast<std::uint8_t>(1u << (rng() % 8));
          break;
        case 1:
          x.resize(x.empty() ? 0 : rng() % x.size());
          break;
        case 2: {
          const auto& other = corpus[rng() % corpus.size()];
          if (!other.empty())
            x.insert(x.begin() + (x.empty() ? 0 : rng() % x.size()), other.begin(),
                     other.begin() + rng() % other.size());
          break;
        }
        default:
          if (!x.empty()) x[rng() % x.size()] = static_cast<std::uint8_t>(rng());
      }
      LLVMFuzzerTestOneInput(x.data(), x.size());
      ++runs;
    }
  }
  for (int i = 0; i < 2000; ++i) {
    std::vector<std::uint8_t> x(rng() % 128);
    for (auto& b : x) b = static_cast<std::uint8_t>(rng());
    LLVMFuzzerTestOneInput(x.data(), x.size());
    ++runs;
  }
  std::printf("%zu inputs from %zu corpus entries: no crash\n", runs, corpus.size());
  return 0;
}
