// libFuzzer target over the index reader: any input must give results or IndexError, never
// a crash, an out-of-bounds read or a runaway lookup. Keys come from the input itself (the
// keys the trie holds and raw slices of it) so lookups follow real paths through the trie,
// not only the root. Inputs starting with the byte 0xC5 are not indexes: the rest drives a
// generator of the hostile shapes (child slots sharing one node, cycles, a node holding many
// values, long chains under a wildcard), so each run also covers those, mutated.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "index_reader.h"

namespace {

constexpr size_t kMaxKeys = 64;
constexpr uint8_t kCraftTag = 0xC5;

constexpr uint32_t kPrefix = 0x80000000;
constexpr uint32_t kValues = 0x40000000;
constexpr uint32_t kChildren = 0x20000000;

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

void Put32(std::vector<uint8_t>* out, size_t at, uint32_t v) {
  (*out)[at] = static_cast<uint8_t>(v >> 24);
  (*out)[at + 1] = static_cast<uint8_t>(v >> 16);
  (*out)[at + 2] = static_cast<uint8_t>(v >> 8);
  (*out)[at + 3] = static_cast<uint8_t>(v);
}

void Append32(std::vector<uint8_t>* out, uint32_t v) {
  out->resize(out->size() + 4);
  Put32(out, out->size() - 4, v);
}

// Builds an index of `nodes` nodes from the parameters in p. Every node has a prefix, a child
// table over [first, last] and `values` values; each child slot points at a node chosen by
// the parameters: the next node (a chain), a fixed shared node, the node itself, or the
// root, so DAGs, cycles and long chains all come out of a few bytes.
std::vector<uint8_t> Craft(const uint8_t* p, size_t n) {
  auto byte = [&](size_t i) -> uint8_t { return i < n ? p[i] : 0; };
  size_t nodes = 1 + byte(0) % 48;
  uint8_t first = static_cast<uint8_t>(byte(1) % 128);
  uint8_t last = static_cast<uint8_t>(first + byte(2) % (128 - first));
  size_t values = (static_cast<size_t>(byte(3)) << 8 | byte(4)) % 6000;
  uint8_t mode = byte(5);
  std::string prefix(reinterpret_cast<const char*>(p) + (n > 6 ? 6 : n), n > 6 ? (n - 6) % 8 : 0);
  for (char& c : prefix) {
    if (c == '\0') c = '*';
  }
  size_t slots = static_cast<size_t>(last - first + 1);

  std::vector<uint8_t> out(12);
  Put32(&out, 0, 0xB007F457);
  Put32(&out, 4, 0x00020001);
  std::vector<size_t> offsets;
  std::vector<size_t> tables;
  for (size_t i = 0; i < nodes; i++) {
    offsets.push_back(out.size());
    out.insert(out.end(), prefix.begin(), prefix.end());
    out.push_back(0);
    out.push_back(first);
    out.push_back(last);
    tables.push_back(out.size());
    out.resize(out.size() + 4 * slots);
    size_t count = i == nodes - 1 ? values : (i % 3 == 0 ? 1 : 0);
    Append32(&out, static_cast<uint32_t>(count));
    for (size_t v = 0; v < count; v++) {
      Append32(&out, static_cast<uint32_t>((v * 7 + mode) % 11));
      out.push_back(static_cast<uint8_t>('a' + v % 26));
      out.push_back(0);
    }
  }
  uint32_t flags = kPrefix | kValues | kChildren;
  for (size_t i = 0; i < nodes; i++) {
    for (size_t s = 0; s < slots; s++) {
      size_t target;
      switch ((mode + s) % 4) {
        case 0:
          target = i + 1 < nodes ? i + 1 : nodes - 1;  // chain (the last one: itself)
          break;
        case 1:
          target = nodes - 1;  // every slot at one node, the one with many values
          break;
        case 2:
          target = i;  // itself
          break;
        default:
          target = 0;  // back to the root
      }
      Put32(&out, tables[i] + 4 * s, flags | static_cast<uint32_t>(offsets[target]));
    }
  }
  Put32(&out, 8, flags | static_cast<uint32_t>(offsets[0]));
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> crafted;
  if (size > 0 && data[0] == kCraftTag) {
    crafted = Craft(data + 1, size - 1);
    data = crafted.data();
    size = crafted.size();
  }
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
  keys.emplace_back(64, 'a');

  for (const std::string& key : keys) Lookups(*reader, key);
  return 0;
}
