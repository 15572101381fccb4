// Reader for kmod's binary trie indexes (modules.*.bin). Pure C++ without Node-API so the
// fuzz target links it alone. The file is untrusted: every offset is checked against the
// mapping and any inconsistency raises IndexError instead of reading out of bounds.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace kmodload {

// Corrupt or truncated index data. err is the errno the caller should report.
class IndexError : public std::runtime_error {
 public:
  IndexError(int err, const std::string& what) : std::runtime_error(what), err_(err) {}
  int err() const { return err_; }

 private:
  int err_;
};

struct IndexValue {
  std::string value;
  uint32_t priority;
};

struct IndexEntry {
  std::string key;
  std::vector<IndexValue> values;
};

class IndexReader {
 public:
  // Maps the file read-only. Throws IndexError (errno of open/mmap, or EBADMSG for a bad
  // header).
  static IndexReader Open(const std::string& path);
  // Reads from caller-owned memory that must outlive the reader (fuzzing, tests).
  static IndexReader FromBuffer(const uint8_t* data, size_t size);

  IndexReader(IndexReader&& other) noexcept;
  IndexReader& operator=(IndexReader&& other) noexcept;
  IndexReader(const IndexReader&) = delete;
  IndexReader& operator=(const IndexReader&) = delete;
  ~IndexReader();

  // Values of the node matching the whole key, in file order (depmod writes them by
  // priority; kmod's exact search takes them as stored).
  std::vector<IndexValue> Exact(const std::string& key) const;
  // Every stored pattern that fnmatch()es key, in the order kmod's wildcard search yields.
  std::vector<IndexValue> Wildcard(const std::string& key) const;
  // Every key with its values, pre-order by child byte (kmod's dump order).
  std::vector<IndexEntry> Entries() const;

  void Close();
  bool closed() const { return data_ == nullptr; }

 private:
  struct Node;
  class Walk;

  IndexReader(const uint8_t* data, size_t size, bool mapped);
  static void CheckHeader(const uint8_t* data, size_t size, uint32_t* root);

  const uint8_t* data_;
  size_t size_;
  bool mapped_;
  uint32_t root_;
};

}  // namespace kmodload
