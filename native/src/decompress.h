// User-space decompression of module images. The codec libraries are dlopen()ed on first
// use so the addon builds without their -dev packages and loads without them installed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace kmodload {

enum class Compression { kGzip, kXz, kZstd };

// err: ENOTSUP (library missing), EBADMSG (corrupt or truncated data), EFBIG (output over
// the cap), ENOMEM.
class DecompressError : public std::runtime_error {
 public:
  DecompressError(int err, const std::string& what) : std::runtime_error(what), err_(err) {}
  int err() const { return err_; }

 private:
  int err_;
};

// Modules are a few MiB; anything near this is a decompression bomb.
constexpr size_t kMaxDecompressedSize = size_t{1} << 30;

// A malloc()ed output block; release with free().
struct Decompressed {
  uint8_t* data;
  size_t size;
};

// One compression format a module file may come in: recognised by its first bytes, as kmod
// does (a .ko may be compressed and a .ko.xz may not be, whatever the name says), and decoded
// whole. The one table of formats is kCodecs in decompress.cc.
struct Codec {
  Compression format;
  // The name /sys/module/compression uses for it ("gzip", "xz", "zstd").
  const char* name;
  const uint8_t* magic;
  size_t magic_size;
  // Decompresses every member/stream/frame of data. Thread-safe. The caller owns the result.
  Decompressed (*decode)(const uint8_t* data, size_t size, size_t max_output);
};

// The codec whose magic starts head, or nullptr for a plain (uncompressed) file.
const Codec* CodecFor(const uint8_t* head, size_t size);

}  // namespace kmodload
