// Reader for kmod's binary trie indexes (modules.*.bin), following libkmod-index.c's format
// and search order. Pure C++ without Node-API so the fuzz target links it alone. The file is
// untrusted: it is read into memory, whole or page by page as lookups reach its parts (never
// a mapping of the file, so a file truncated while in use cannot fault the process), every
// offset is checked against its size, each lookup reaches every node at most once (a node
// reached twice is a DAG or a cycle: corruption), and any inconsistency raises IndexError
// instead of reading out of bounds.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
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
  // Largest index file read (EFBIG beyond). Debian's biggest, modules.alias.bin, is ~1.3 MB.
  static constexpr size_t kMaxFileSize = 32u << 20;
  // Longest stored key (bytes). depmod's keys are module names, aliases and symbols; kmod
  // normalises a request into a PATH_MAX buffer, so nothing longer can ever match.
  static constexpr size_t kMaxKeyLength = 4096;

  // Reads the whole regular file (opened non-blocking, at most kMaxFileSize bytes). Throws
  // IndexError: errno of open/fstat/read, EFBIG over the cap, EBADMSG for a bad header. A
  // 0-byte file is an empty index, as depmod writes one for an empty source.
  static IndexReader Open(const std::string& path);
  // As Open, but reads only the header now and each block of the file when a lookup first
  // reaches it (the file stays open): a process that looks up a few keys reads a few dozen
  // blocks, not megabytes. The file's size is its size now; a file that is shorter when a
  // block is read is corrupt (EBADMSG), a read error the lookup's error. Lookups fill blocks,
  // so they must come from one thread at a time.
  static IndexReader OpenOnDemand(const std::string& path);
  // Reads a copy of data (fuzzing, tests).
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
  bool closed() const { return closed_; }
  size_t size() const { return size_; }

 private:
  struct Node;
  class Walk;
  struct Blocks;

  IndexReader();
  void Load();
  // The bytes [pos, pos + len) of the file (within its size), read first if need be.
  const uint8_t* At(size_t pos, size_t len) const;
  // The first NUL byte at or after pos, or nullptr when there is none before the end.
  const uint8_t* Nul(size_t pos) const;

  std::vector<uint8_t> data_;       // the file read whole
  std::unique_ptr<Blocks> blocks_;  // or read block by block (OpenOnDemand)
  const uint8_t* base_ = nullptr;   // the file's first byte, in either
  size_t size_ = 0;
  bool closed_ = false;
  uint32_t root_ = 0;  // 0: no root node (an empty index)
};

}  // namespace kmodload
