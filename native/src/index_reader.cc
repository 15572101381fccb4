#include "index_reader.h"

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
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

// Real trees nest a few hundred nodes at most (one per key byte). The limit keeps a hostile
// file from exhausting the stack through a deep or cyclic chain of nodes.
constexpr size_t kMaxDepth = 2048;

// Smallest encoding of one value: a u32 priority and an empty NUL-terminated string.
constexpr size_t kMinValueSize = 5;

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

// kmod's add_value(): a value goes before the first one whose priority is not lower, so the
// list is sorted by priority and, among equal priorities, the last inserted comes first.
void InsertByPriority(std::vector<IndexValue>* out, IndexValue value) {
  auto it = out->begin();
  while (it != out->end() && it->priority < value.priority) ++it;
  out->insert(it, std::move(value));
}

}  // namespace

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

// One lookup over the mapping. Counts visited nodes so that a file whose child offsets form
// cycles or a DAG cannot make a lookup run away: a well-formed trie has fewer nodes than
// bytes, and every traversal here visits each node at most once.
class IndexReader::Walk {
 public:
  explicit Walk(const IndexReader& reader)
      : data_(reader.data_), size_(reader.size_), root_(reader.root_), budget_(reader.size_ + 16) {
    if (data_ == nullptr) throw IndexError(EBADF, "index is closed");
  }

  bool Root(Node* node) { return Read(root_, node); }

  // False when the offset is null (no such node), as kmod treats it.
  bool Read(uint32_t raw, Node* node) {
    size_t pos = raw & kOffsetMask;
    if (pos == 0) return false;
    if (++visits_ > budget_) Corrupt("too many nodes visited (cyclic child offsets?)");
    if (pos >= size_) Corrupt("node offset " + Hex(pos) + " beyond end of file");
    *node = Node();
    node->offset = pos;
    if (raw & kFlagPrefix) {
      const void* nul = memchr(data_ + pos, '\0', size_ - pos);
      if (nul == nullptr) Corrupt("unterminated prefix at " + Hex(pos));
      node->prefix = reinterpret_cast<const char*>(data_ + pos);
      node->prefix_len = static_cast<const uint8_t*>(nul) - (data_ + pos);
      pos += node->prefix_len + 1;
    }
    if (raw & kFlagChildren) {
      if (size_ - pos < 2) Corrupt("truncated child range at " + Hex(pos));
      node->first = data_[pos];
      node->last = data_[pos + 1];
      if (node->first > node->last || node->last >= kChildMax) {
        Corrupt("bad child range at " + Hex(pos));
      }
      pos += 2;
      size_t count = static_cast<size_t>(node->last - node->first + 1);
      if ((size_ - pos) / 4 < count) Corrupt("truncated child table at " + Hex(pos));
      node->children_pos = pos;
      pos += 4 * count;
    }
    if (raw & kFlagValues) {
      if (size_ - pos < 4) Corrupt("truncated value count at " + Hex(pos));
      node->value_count = ReadBe32(data_ + pos);
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
      uint32_t priority = ReadBe32(data_ + pos);
      pos += 4;
      const void* nul = memchr(data_ + pos, '\0', size_ - pos);
      if (nul == nullptr) Corrupt("unterminated value at " + Hex(pos));
      size_t len = static_cast<const uint8_t*>(nul) - (data_ + pos);
      fn(IndexValue{std::string(reinterpret_cast<const char*>(data_ + pos), len), priority});
      pos += len + 1;
    }
  }

  std::vector<IndexValue> Values(const Node& node) {
    std::vector<IndexValue> values;
    ForEachValue(node, [&](IndexValue v) { values.push_back(std::move(v)); });
    return values;
  }

  void Enter(size_t depth) {
    if (depth > kMaxDepth) Corrupt("trie deeper than " + std::to_string(kMaxDepth) + " nodes");
  }

  // kmod's wildcard level 3: below a wildcard, every stored key is a pattern to test against
  // the rest of the query. Children are visited before the node's own values.
  void SearchAll(const Node& node, size_t j, std::string* pattern, const char* subkey, size_t depth,
                 std::vector<IndexValue>* out) {
    Enter(depth);
    size_t pushed = node.prefix_len - j;
    pattern->append(node.prefix + j, pushed);
    for (int ch = node.first; ch <= node.last; ch++) {
      Node child;
      if (!Child(node, ch, &child)) continue;
      pattern->push_back(static_cast<char>(ch));
      SearchAll(child, 0, pattern, subkey, depth + 1, out);
      pattern->pop_back();
    }
    if (node.value_count > 0 && fnmatch(pattern->c_str(), subkey, 0) == 0) {
      ForEachValue(node, [&](IndexValue v) { InsertByPriority(out, std::move(v)); });
    }
    pattern->resize(pattern->size() - pushed);
  }

  void Dump(const Node& node, std::string* key, size_t depth, std::vector<IndexEntry>* out) {
    Enter(depth);
    key->append(node.prefix, node.prefix_len);
    if (node.value_count > 0) out->push_back(IndexEntry{*key, Values(node)});
    for (int ch = node.first; ch <= node.last; ch++) {
      Node child;
      if (!Child(node, ch, &child)) continue;
      key->push_back(static_cast<char>(ch));
      Dump(child, key, depth + 1, out);
      key->pop_back();
    }
    key->resize(key->size() - node.prefix_len);
  }

 private:
  const uint8_t* data_;
  size_t size_;
  uint32_t root_;
  size_t budget_;
  size_t visits_ = 0;
};

IndexReader::IndexReader(const uint8_t* data, size_t size, bool mapped)
    : data_(data), size_(size), mapped_(mapped), root_(0) {}

IndexReader::IndexReader(IndexReader&& other) noexcept
    : data_(other.data_), size_(other.size_), mapped_(other.mapped_), root_(other.root_) {
  other.data_ = nullptr;
  other.size_ = 0;
}

IndexReader& IndexReader::operator=(IndexReader&& other) noexcept {
  if (this != &other) {
    Close();
    data_ = other.data_;
    size_ = other.size_;
    mapped_ = other.mapped_;
    root_ = other.root_;
    other.data_ = nullptr;
    other.size_ = 0;
  }
  return *this;
}

IndexReader::~IndexReader() { Close(); }

void IndexReader::Close() {
  if (data_ != nullptr && mapped_) munmap(const_cast<uint8_t*>(data_), size_);
  data_ = nullptr;
  size_ = 0;
}

void IndexReader::CheckHeader(const uint8_t* data, size_t size, uint32_t* root) {
  if (size < kHeaderSize) Corrupt("file shorter than the 12-byte header");
  uint32_t magic = ReadBe32(data);
  if (magic != kMagic) Corrupt("bad magic " + Hex(magic));
  uint32_t version = ReadBe32(data + 4);
  if ((version >> 16) != kMajorVersion) {
    Corrupt("unsupported format version " + std::to_string(version >> 16));
  }
  *root = ReadBe32(data + 8);
}

IndexReader IndexReader::FromBuffer(const uint8_t* data, size_t size) {
  uint32_t root;
  CheckHeader(data, size, &root);
  IndexReader reader(data, size, false);
  reader.root_ = root;
  return reader;
}

IndexReader IndexReader::Open(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw IndexError(errno, "open");
  struct stat st;
  if (fstat(fd, &st) < 0) {
    int err = errno;
    close(fd);
    throw IndexError(err, "fstat");
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    throw IndexError(S_ISDIR(st.st_mode) ? EISDIR : EBADMSG, "not a regular file");
  }
  size_t size = static_cast<size_t>(st.st_size);
  if (size < kHeaderSize) {
    close(fd);
    Corrupt("file shorter than the 12-byte header");
  }
  void* map = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  int map_err = errno;
  close(fd);
  if (map == MAP_FAILED) throw IndexError(map_err, "mmap");
  IndexReader reader(static_cast<const uint8_t*>(map), size, true);
  CheckHeader(reader.data_, size, &reader.root_);  // on throw, reader's destructor unmaps
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
  std::vector<IndexValue> out;
  Node node;
  if (!walk.Root(&node)) return out;
  std::string pattern;
  const char* k = key.c_str();
  size_t i = 0;
  // kmod's level 2: follow the key literally until a stored byte is a wildcard; at each node
  // also explore the '*', '?' and '[' subtrees, in that order.
  for (;;) {
    for (size_t j = 0; j < node.prefix_len; j++) {
      char ch = node.prefix[j];
      if (ch == '*' || ch == '?' || ch == '[') {
        walk.SearchAll(node, j, &pattern, k + i + j, 1, &out);
        return out;
      }
      if (ch != k[i + j]) return out;
    }
    i += node.prefix_len;
    for (char wild : {'*', '?', '['}) {
      Node child;
      if (!walk.Child(node, wild, &child)) continue;
      pattern.push_back(wild);
      walk.SearchAll(child, 0, &pattern, k + i, 1, &out);
      pattern.pop_back();
    }
    if (k[i] == '\0') {
      walk.ForEachValue(node, [&](IndexValue v) { InsertByPriority(&out, std::move(v)); });
      return out;
    }
    Node child;
    if (!walk.Child(node, static_cast<unsigned char>(k[i]), &child)) return out;
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
  walk.Dump(node, &key, 0, &out);
  return out;
}

}  // namespace kmodload
