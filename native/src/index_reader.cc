// kmod's binary index (libkmod-index.c): a path-compressed trie, big-endian u32s throughout.
// Lookups reproduce kmod's: exact search walks the key; wildcard search (aliases) also
// descends into every '*', '?' and '[' subtree and tests the rebuilt pattern with fnmatch();
// values found are ordered as kmod's add_value() orders them.
#include "index_reader.h"

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <set>
#include <utility>

namespace kmodload {

namespace {

constexpr uint32_t kMagic = 0xB007F457;
constexpr uint32_t kMajorVersion = 2;
constexpr size_t kHeaderSize = 12;

constexpr uint32_t kFlagPrefix = 0x80000000;
constexpr uint32_t kFlagValues = 0x40000000;
constexpr uint32_t kFlagChildren = 0x20000000;
constexpr uint32_t kOffsetMask = 0x0FFFFFFF;

// Children are indexed by 7-bit ASCII; kmod keeps at most 128 child slots per node.
constexpr int kChildMax = 128;

// Smallest encoding of one value: a u32 priority and an empty NUL-terminated string.
constexpr size_t kMinValueSize = 5;

// Work one wildcard lookup may hand to fnmatch(), counted as pattern plus key bytes per call
// (glibc's fnmatch() is about linear in both here). Every node is reached at most once and no
// key is longer than kMaxKeyLength, so a lookup is bounded anyway; this cap keeps the bound
// small enough for the event loop: about 15 ms of fnmatch() at worst on the machine this was
// measured on, while the costliest lookup in Debian 12's modules.alias.bin (a key starting
// `of:N`) counts about 75 KiB: room for trees with many times more device-tree aliases.
constexpr size_t kMaxWildcardBytes = 2u << 20;

// Node reads one wildcard lookup may make. kmod's search can legitimately read a subtree more
// than once (a key holding '*' steps into the '*' child that was searched already), so the
// reach-once rule holds per subtree search, and this caps their sum: Debian 12's costliest
// lookups read a few thousand nodes; this many take a few ms.
constexpr size_t kMaxWildcardReads = 1u << 18;

uint32_t ReadBe32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

std::string Hex(size_t value) {
  char buf[32];
  snprintf(buf, sizeof(buf), "0x%zx", value);
  return buf;
}

[[noreturn]] void Corrupt(const std::string& why) {
  throw IndexError(EBADMSG, "corrupt index: " + why);
}

// A value with its position in the search, for kmod's order.
struct Found {
  IndexValue value;
  size_t seq;
};

// kmod's add_value() inserts each value found before the first one whose priority is not
// lower: the result is sorted by priority and, among equal priorities, the value found LAST
// comes first. Sorting once gives the same list in O(n log n).
std::vector<IndexValue> KmodOrder(std::vector<Found>* found) {
  std::sort(found->begin(), found->end(), [](const Found& a, const Found& b) {
    if (a.value.priority != b.value.priority) return a.value.priority < b.value.priority;
    return a.seq > b.seq;
  });
  std::vector<IndexValue> out;
  out.reserve(found->size());
  for (Found& f : *found) out.push_back(std::move(f.value));
  return out;
}

}  // namespace

// The file of an index read on demand, and which of its blocks have been read into memory
// reserved for the whole file (anonymous: only the blocks read take pages).
struct IndexReader::Blocks {
  // A lookup reaches a node's bytes and, mostly, its children's nearby (depmod writes each
  // subtree in one run): four pages at a time read a seed's plan in a few dozen reads.
  static constexpr size_t kSize = 16u << 10;

  int fd = -1;
  uint8_t* base = nullptr;
  size_t reserved = 0;
  std::vector<bool> read;

  ~Blocks() {
    if (base != nullptr) munmap(base, reserved);
    if (fd >= 0) close(fd);
  }
};

IndexReader::IndexReader() = default;
IndexReader::IndexReader(IndexReader&& other) noexcept = default;
IndexReader& IndexReader::operator=(IndexReader&& other) noexcept = default;
IndexReader::~IndexReader() = default;

const uint8_t* IndexReader::At(size_t pos, size_t len) const {
  if (blocks_ && len > 0) {
    Blocks& blocks = *blocks_;
    for (size_t b = pos / Blocks::kSize; b <= (pos + len - 1) / Blocks::kSize; b++) {
      if (blocks.read[b]) continue;
      const size_t start = b * Blocks::kSize;
      const size_t want = std::min(Blocks::kSize, size_ - start);
      for (size_t done = 0; done < want;) {
        ssize_t n = pread(blocks.fd, blocks.base + start + done, want - done,
                          static_cast<off_t>(start + done));
        if (n < 0) {
          if (errno == EINTR) continue;
          throw IndexError(errno, "read");
        }
        if (n == 0) Corrupt("file shorter than when it was opened");
        done += static_cast<size_t>(n);
      }
      blocks.read[b] = true;
    }
  }
  return base_ + pos;
}

const uint8_t* IndexReader::Nul(size_t pos) const {
  while (pos < size_) {
    const size_t end = blocks_ ? std::min(size_, (pos / Blocks::kSize + 1) * Blocks::kSize) : size_;
    const void* nul = memchr(At(pos, end - pos), '\0', end - pos);
    if (nul != nullptr) return static_cast<const uint8_t*>(nul);
    pos = end;
  }
  return nullptr;
}

struct IndexReader::Node {
  size_t offset = 0;
  const char* prefix = "";
  size_t prefix_len = 0;
  int first = kChildMax;  // first > last: no children
  int last = 0;
  size_t children_pos = 0;
  uint32_t value_count = 0;
  size_t values_pos = 0;
};

// One lookup over the file's bytes. Remembers every node it reached: a well-formed trie is a
// tree, so a node reached a second time (child slots sharing a node, a cycle) is corruption,
// and no walk reads more nodes than the file holds. (A wildcard lookup is one literal walk
// plus subtree searches, each with its own record; see SearchFrom.)
class IndexReader::Walk {
 public:
  explicit Walk(const IndexReader& reader)
      : reader_(reader), data_(reader.base_), size_(reader.size_), root_(reader.root_) {
    if (reader.closed_) throw IndexError(EBADF, "index is closed");
  }

  bool Root(Node* node) { return Read(root_, node); }

  // False when the offset is null (no such node), as kmod treats it.
  bool Read(uint32_t raw, Node* node) {
    size_t pos = raw & kOffsetMask;
    if (pos == 0) return false;
    if (++reads_ > read_limit_) {
      Corrupt("wildcard search beyond " + std::to_string(read_limit_) + " node reads");
    }
    // A node without flags occupies no bytes: depmod writes an empty root at the very end.
    if (pos > size_ || (pos == size_ && (raw & ~kOffsetMask) != 0)) {
      Corrupt("node offset " + Hex(pos) + " beyond end of file");
    }
    if ((raw & ~kOffsetMask) != 0 && !seen_.insert(pos).second) {
      Corrupt("node at " + Hex(pos) + " reached twice (shared or cyclic child offsets)");
    }
    *node = Node();
    node->offset = pos;
    if (raw & kFlagPrefix) {
      const uint8_t* nul = reader_.Nul(pos);
      if (nul == nullptr) Corrupt("unterminated prefix at " + Hex(pos));
      node->prefix = reinterpret_cast<const char*>(data_ + pos);
      node->prefix_len = nul - (data_ + pos);
      if (node->prefix_len > kMaxKeyLength) Corrupt("prefix longer than a key at " + Hex(pos));
      pos += node->prefix_len + 1;
    }
    if (raw & kFlagChildren) {
      if (size_ - pos < 2) Corrupt("truncated child range at " + Hex(pos));
      const uint8_t* range = reader_.At(pos, 2);
      node->first = range[0];
      node->last = range[1];
      if (node->first > node->last || node->last >= kChildMax) {
        Corrupt("bad child range at " + Hex(pos));
      }
      pos += 2;
      size_t count = static_cast<size_t>(node->last - node->first + 1);
      if ((size_ - pos) / 4 < count) Corrupt("truncated child table at " + Hex(pos));
      reader_.At(pos, 4 * count);
      node->children_pos = pos;
      pos += 4 * count;
    }
    if (raw & kFlagValues) {
      if (size_ - pos < 4) Corrupt("truncated value count at " + Hex(pos));
      node->value_count = ReadBe32(reader_.At(pos, 4));
      pos += 4;
      if ((size_ - pos) / kMinValueSize < node->value_count) {
        Corrupt("value count beyond end of file at " + Hex(pos));
      }
      node->values_pos = pos;
    }
    return true;
  }

  bool Child(const Node& parent, int ch, Node* child) {
    if (ch < parent.first || ch > parent.last) return false;
    return Read(ReadBe32(data_ + parent.children_pos + 4 * static_cast<size_t>(ch - parent.first)),
                child);
  }

  // Values in file order.
  template <typename Fn>
  void ForEachValue(const Node& node, Fn&& fn) {
    size_t pos = node.values_pos;
    for (uint32_t i = 0; i < node.value_count; i++) {
      if (size_ - pos < kMinValueSize) Corrupt("truncated value at " + Hex(pos));
      uint32_t priority = ReadBe32(reader_.At(pos, 4));
      pos += 4;
      const uint8_t* nul = reader_.Nul(pos);
      if (nul == nullptr) Corrupt("unterminated value at " + Hex(pos));
      size_t len = nul - (data_ + pos);
      fn(IndexValue{std::string(reinterpret_cast<const char*>(data_ + pos), len), priority});
      pos += len + 1;
    }
  }

  std::vector<IndexValue> Values(const Node& node) {
    std::vector<IndexValue> values;
    ForEachValue(node, [&](IndexValue v) { values.push_back(std::move(v)); });
    return values;
  }

  void Collect(const Node& node, std::vector<Found>* out) {
    ForEachValue(node, [&](IndexValue v) { out->push_back(Found{std::move(v), out->size()}); });
  }

  // The key (or pattern) built along the path; a path longer than any key is corruption
  // (and bounds the recursion depth).
  static void Extend(std::string* key, const char* bytes, size_t len) {
    if (key->size() + len > kMaxKeyLength) {
      Corrupt("key longer than " + std::to_string(kMaxKeyLength) + " bytes");
    }
    key->append(bytes, len);
  }

  // kmod's wildcard level 3: below a wildcard, every stored key is a pattern to test against
  // the rest of the query. Children are visited before the node's own values.
  void SearchAll(const Node& node, size_t j, std::string* pattern, const char* subkey,
                 size_t subkey_len, std::vector<Found>* out) {
    size_t pushed = node.prefix_len - j;
    Extend(pattern, node.prefix + j, pushed);
    for (int ch = node.first; ch <= node.last; ch++) {
      Node child;
      if (!Child(node, ch, &child)) continue;
      char byte = static_cast<char>(ch);
      Extend(pattern, &byte, 1);
      SearchAll(child, 0, pattern, subkey, subkey_len, out);
      pattern->pop_back();
    }
    if (node.value_count > 0) {
      matched_ += pattern->size() + subkey_len + 1;
      if (matched_ > kMaxWildcardBytes) {
        Corrupt("wildcard search beyond " + std::to_string(kMaxWildcardBytes) +
                " bytes of patterns and key");
      }
      if (fnmatch(pattern->c_str(), subkey, 0) == 0) Collect(node, out);
    }
    pattern->resize(pattern->size() - pushed);
  }

  // One subtree search of kmod's level 2, with its own record of the nodes it reached: from
  // the wildcard at prefix byte j of node, or from node's child `wild`.
  void SearchFrom(const Node& node, size_t j, std::string* pattern, const char* subkey,
                  size_t subkey_len, std::vector<Found>* out) {
    std::set<size_t> outer;
    outer.swap(seen_);
    SearchAll(node, j, pattern, subkey, subkey_len, out);
    outer.swap(seen_);
  }

  void SearchChild(const Node& node, char wild, std::string* pattern, const char* subkey,
                   size_t subkey_len, std::vector<Found>* out) {
    std::set<size_t> outer;
    outer.swap(seen_);
    Node child;
    if (Child(node, wild, &child)) {
      pattern->push_back(wild);
      SearchAll(child, 0, pattern, subkey, subkey_len, out);
      pattern->pop_back();
    }
    outer.swap(seen_);
  }

  void LimitReads(size_t limit) { read_limit_ = limit; }

  void Dump(const Node& node, std::string* key, std::vector<IndexEntry>* out) {
    Extend(key, node.prefix, node.prefix_len);
    if (node.value_count > 0) out->push_back(IndexEntry{*key, Values(node)});
    for (int ch = node.first; ch <= node.last; ch++) {
      Node child;
      if (!Child(node, ch, &child)) continue;
      char byte = static_cast<char>(ch);
      Extend(key, &byte, 1);
      Dump(child, key, out);
      key->pop_back();
    }
    key->resize(key->size() - node.prefix_len);
  }

 private:
  const IndexReader& reader_;
  const uint8_t* data_;
  size_t size_;
  uint32_t root_;
  // std::set, not unordered_set: the hash table's bucket array would need a libstdc++ newer
  // than EL8's (GLIBCXX_3.4.29, scripts/make/check-glibc.sh).
  std::set<size_t> seen_;
  size_t matched_ = 0;
  size_t reads_ = 0;
  size_t read_limit_ = SIZE_MAX;
};

void IndexReader::Close() {
  std::vector<uint8_t>().swap(data_);
  blocks_.reset();
  base_ = nullptr;
  size_ = 0;
  closed_ = true;
}

void IndexReader::Load() {
  if (!blocks_) {
    base_ = data_.data();
    size_ = data_.size();
  }
  if (size_ == 0) return;  // depmod's empty index: no header, no nodes
  if (size_ < kHeaderSize) Corrupt("file shorter than the 12-byte header");
  const uint8_t* header = At(0, kHeaderSize);
  uint32_t magic = ReadBe32(header);
  if (magic != kMagic) Corrupt("bad magic " + Hex(magic));
  uint32_t version = ReadBe32(header + 4);
  if ((version >> 16) != kMajorVersion) {
    Corrupt("unsupported format version " + std::to_string(version >> 16));
  }
  root_ = ReadBe32(header + 8);
}

IndexReader IndexReader::FromBuffer(const uint8_t* data, size_t size) {
  IndexReader reader;
  if (size > kMaxFileSize) throw IndexError(EFBIG, "larger than the index size cap");
  reader.data_.assign(data, data + size);
  reader.Load();
  return reader;
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23  // Linux 5.14; older kernels refuse it (EINVAL)
#endif

// Has the kernel provide the pages of a large buffer in one call: faulting them in one at a
// time as they are first written costs microseconds each under a hypervisor, milliseconds for
// a 1 MB index. Best effort: a kernel without MADV_POPULATE_WRITE faults them in as before.
static void Prefault(uint8_t* data, size_t size) {
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t start = (reinterpret_cast<uintptr_t>(data) + page - 1) & ~(page - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(data) + size) & ~(page - 1);
  if (size < (64u << 10) || end <= start) return;
  madvise(reinterpret_cast<void*>(start), end - start, MADV_POPULATE_WRITE);
}

IndexReader IndexReader::Open(const std::string& path) {
  // O_NONBLOCK: a FIFO put in place of an index must not hang the opening thread.
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) throw IndexError(errno, "open");
  struct Closer {
    int fd;
    ~Closer() { close(fd); }
  } closer{fd};
  struct stat st;
  if (fstat(fd, &st) < 0) throw IndexError(errno, "fstat");
  if (S_ISDIR(st.st_mode)) throw IndexError(EISDIR, "read");
  if (!S_ISREG(st.st_mode)) Corrupt("not a regular file");
  if (static_cast<uint64_t>(st.st_size) > kMaxFileSize) {
    throw IndexError(EFBIG, "larger than " + std::to_string(kMaxFileSize) + " bytes");
  }
  IndexReader reader;
  // Read to EOF, not to st_size: the file may shrink or grow meanwhile; what was read is what
  // is parsed (a truncated copy is then corrupt, never a fault).
  reader.data_.reserve(static_cast<size_t>(st.st_size) + 1);
  Prefault(reader.data_.data(), reader.data_.capacity());
  reader.data_.resize(static_cast<size_t>(st.st_size) + 1);
  size_t length = 0;
  for (;;) {
    if (length == reader.data_.size()) {
      if (length > kMaxFileSize) {
        throw IndexError(EFBIG, "larger than " + std::to_string(kMaxFileSize) + " bytes");
      }
      reader.data_.resize(std::min(length * 2 + 4096, kMaxFileSize + 1));
    }
    ssize_t n = read(fd, reader.data_.data() + length, reader.data_.size() - length);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw IndexError(errno, "read");
    }
    if (n == 0) break;
    length += static_cast<size_t>(n);
  }
  reader.data_.resize(length);
  // A file read whole at its size leaves one spare byte: copying it all to give that back would
  // touch every page a second time. Only a file that shrank while it was read is copied.
  if (reader.data_.capacity() - length > 65536) reader.data_.shrink_to_fit();
  reader.Load();
  return reader;
}

IndexReader IndexReader::OpenOnDemand(const std::string& path) {
  auto blocks = std::make_unique<Blocks>();
  blocks->fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (blocks->fd < 0) throw IndexError(errno, "open");
  struct stat st;
  if (fstat(blocks->fd, &st) < 0) throw IndexError(errno, "fstat");
  if (S_ISDIR(st.st_mode)) throw IndexError(EISDIR, "read");
  if (!S_ISREG(st.st_mode)) Corrupt("not a regular file");
  if (static_cast<uint64_t>(st.st_size) > kMaxFileSize) {
    throw IndexError(EFBIG, "larger than " + std::to_string(kMaxFileSize) + " bytes");
  }
  IndexReader reader;
  reader.size_ = static_cast<size_t>(st.st_size);
  if (reader.size_ > 0) {
    const size_t count = (reader.size_ + Blocks::kSize - 1) / Blocks::kSize;
    blocks->reserved = count * Blocks::kSize;
    void* base = mmap(nullptr, blocks->reserved, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED) throw std::bad_alloc();
    blocks->base = static_cast<uint8_t*>(base);
    blocks->read.assign(count, false);
  }
  reader.base_ = blocks->base;
  reader.blocks_ = std::move(blocks);
  reader.Load();
  return reader;
}

std::vector<IndexValue> IndexReader::Exact(const std::string& key) const {
  Walk walk(*this);
  Node node;
  if (!walk.Root(&node)) return {};
  // key.c_str() ends in NUL, which never equals a prefix byte, so the compare stops there.
  const char* k = key.c_str();
  size_t i = 0;
  for (;;) {
    for (size_t j = 0; j < node.prefix_len; j++) {
      if (node.prefix[j] != k[i + j]) return {};
    }
    i += node.prefix_len;
    if (k[i] == '\0') return walk.Values(node);
    Node child;
    if (!walk.Child(node, static_cast<unsigned char>(k[i]), &child)) return {};
    node = child;
    i++;
  }
}

std::vector<IndexValue> IndexReader::Wildcard(const std::string& key) const {
  Walk walk(*this);
  walk.LimitReads(kMaxWildcardReads);
  std::vector<Found> found;
  Node node;
  if (!walk.Root(&node)) return {};
  std::string pattern;
  const char* k = key.c_str();
  size_t i = 0;
  // kmod's level 2: follow the key literally until a stored byte is a wildcard; at each node
  // also explore the '*', '?' and '[' subtrees, in that order.
  for (;;) {
    for (size_t j = 0; j < node.prefix_len; j++) {
      char ch = node.prefix[j];
      if (ch == '*' || ch == '?' || ch == '[') {
        walk.SearchFrom(node, j, &pattern, k + i + j, key.size() - i - j, &found);
        return KmodOrder(&found);
      }
      if (ch != k[i + j]) return KmodOrder(&found);
    }
    i += node.prefix_len;
    for (char wild : {'*', '?', '['}) {
      walk.SearchChild(node, wild, &pattern, k + i, key.size() - i, &found);
    }
    if (k[i] == '\0') {
      walk.Collect(node, &found);
      return KmodOrder(&found);
    }
    Node child;
    if (!walk.Child(node, static_cast<unsigned char>(k[i]), &child)) return KmodOrder(&found);
    node = child;
    i++;
  }
}

std::vector<IndexEntry> IndexReader::Entries() const {
  Walk walk(*this);
  std::vector<IndexEntry> out;
  Node node;
  if (!walk.Root(&node)) return out;
  std::string key;
  walk.Dump(node, &key, &out);
  return out;
}

}  // namespace kmodload
