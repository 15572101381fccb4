// libFuzzer target over the index reader: any input must give results or IndexError, never
// a crash or an out-of-bounds read. Keys come from the input itself (the keys the trie holds
// and raw slices of it) so lookups follow real paths through the trie, not only the root.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "index_reader.h"

namespace {

constexpr size_t kMaxKeys = 64;

void Lookups(const kmodload::IndexReader& reader, const std::string& key) {
  try {
    reader.Exact(key);
  } catch (const kmodload::IndexError&) {
  }
  try {
    reader.Wildcard(key);
  } catch (const kmodload::IndexError&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::optional<kmodload::IndexReader> reader;
  try {
    reader.emplace(kmodload::IndexReader::FromBuffer(data, size));
  } catch (const kmodload::IndexError&) {
    return 0;
  }

  std::vector<std::string> keys;
  try {
    for (const kmodload::IndexEntry& entry : reader->Entries()) {
      if (keys.size() >= kMaxKeys) break;
      keys.push_back(entry.key);
    }
  } catch (const kmodload::IndexError&) {
  }
  // Stored keys, near misses of them, and the input's last bytes as a free-form key.
  size_t stored = keys.size();
  for (size_t i = 0; i < stored && i < kMaxKeys / 4; i++) {
    std::string key = keys[i];
    keys.push_back(key + "x");
    if (!key.empty()) keys.push_back(key.substr(0, key.size() - 1));
  }
  size_t tail = size < 48 ? size : 48;
  keys.emplace_back(reinterpret_cast<const char*>(data + size - tail), tail);
  keys.emplace_back("");

  for (const std::string& key : keys) Lookups(*reader, key);
  return 0;
}
