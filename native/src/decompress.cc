#include "decompress.h"

#include <dlfcn.h>
#include <errno.h>

#include <cstdlib>
#include <cstring>
#include <mutex>

namespace kmodload {

namespace {

// The few parts of each library's stable ABI that are used, declared here so that no
// development headers are needed at build time.

// zlib (libz.so.1)
struct ZStream {
  const uint8_t* next_in;
  unsigned int avail_in;
  unsigned long total_in;
  uint8_t* next_out;
  unsigned int avail_out;
  unsigned long total_out;
  const char* msg;
  void* state;
  void* zalloc;
  void* zfree;
  void* opaque;
  int data_type;
  unsigned long adler;
  unsigned long reserved;
};
constexpr int kZOk = 0;
constexpr int kZStreamEnd = 1;
constexpr int kZBufError = -5;
constexpr int kZMemError = -4;
constexpr int kZNoFlush = 0;
constexpr int kZMaxWindowBits = 15;
constexpr int kZGzipOnly = 16;  // windowBits + 16: expect a gzip header and trailer

struct Zlib {
  const char* (*zlibVersion)();
  int (*inflateInit2_)(ZStream*, int, const char*, int);
  int (*inflate)(ZStream*, int);
  int (*inflateReset)(ZStream*);
  int (*inflateEnd)(ZStream*);
};

// liblzma (liblzma.so.5)
struct LzmaStream {
  const uint8_t* next_in;
  size_t avail_in;
  uint64_t total_in;
  uint8_t* next_out;
  size_t avail_out;
  uint64_t total_out;
  const void* allocator;
  void* internal;
  void* reserved_ptr[4];
  uint64_t reserved_int1;
  uint64_t reserved_int2;
  size_t reserved_int3;
  size_t reserved_int4;
  int reserved_enum1;
  int reserved_enum2;
};
constexpr int kLzmaOk = 0;
constexpr int kLzmaStreamEnd = 1;
constexpr int kLzmaMemError = 5;
constexpr int kLzmaMemlimitError = 6;
constexpr int kLzmaFormatError = 7;
constexpr int kLzmaOptionsError = 8;
constexpr int kLzmaDataError = 9;
constexpr int kLzmaBufError = 10;
constexpr int kLzmaFinish = 3;
constexpr uint32_t kLzmaConcatenated = 0x08;

struct Lzma {
  int (*lzma_stream_decoder)(LzmaStream*, uint64_t, uint32_t);
  int (*lzma_code)(LzmaStream*, int);
  void (*lzma_end)(LzmaStream*);
};

// libzstd (libzstd.so.1)
struct ZstdInBuffer {
  const void* src;
  size_t size;
  size_t pos;
};
struct ZstdOutBuffer {
  void* dst;
  size_t size;
  size_t pos;
};
struct Zstd {
  void* (*ZSTD_createDCtx)();
  size_t (*ZSTD_freeDCtx)(void*);
  size_t (*ZSTD_decompressStream)(void*, ZstdOutBuffer*, ZstdInBuffer*);
  unsigned (*ZSTD_isError)(size_t);
  const char* (*ZSTD_getErrorName)(size_t);
};

// Resolves a library once; later calls reuse the result (or the same failure).
template <typename Api>
class Library {
 public:
  using Resolver = bool (*)(void* handle, Api* api);

  Library(const char* soname, const char* format, Resolver resolve)
      : soname_(soname), format_(format), resolve_(resolve) {}

  const Api& Get() {
    std::call_once(once_, [this] {
      // A process that already has the library's functions (node links zlib in statically
      // and exports it) must use those: a second copy dlopen()ed beside them would have its
      // internal calls bound to the first copy's symbols, which mixes two zlibs' private
      // state and crashes.
      if (resolve_(RTLD_DEFAULT, &api_)) {
        ok_ = true;
        return;
      }
      void* handle = dlopen(soname_, RTLD_NOW | RTLD_LOCAL);
      if (handle == nullptr) {
        const char* why = dlerror();
        error_ = std::string(format_) + " decompression needs " + soname_ +
                 ", which cannot be loaded" + (why ? std::string(" (") + why + ")" : std::string());
        return;
      }
      if (!resolve_(handle, &api_)) {
        error_ = std::string(soname_) + " lacks the functions " + format_ + " decompression needs";
        dlclose(handle);
        return;
      }
      ok_ = true;  // the handle stays open for the life of the process
    });
    if (!ok_) throw DecompressError(ENOTSUP, error_);
    return api_;
  }

 private:
  const char* soname_;
  const char* format_;
  Resolver resolve_;
  std::once_flag once_;
  bool ok_ = false;
  std::string error_;
  Api api_{};
};

template <typename Fn>
bool Sym(void* handle, const char* name, Fn* out) {
  *out = reinterpret_cast<Fn>(dlsym(handle, name));
  return *out != nullptr;
}

Library<Zlib> zlib("libz.so.1", "gzip", [](void* h, Zlib* api) {
  return Sym(h, "zlibVersion", &api->zlibVersion) && Sym(h, "inflateInit2_", &api->inflateInit2_) &&
         Sym(h, "inflate", &api->inflate) && Sym(h, "inflateReset", &api->inflateReset) &&
         Sym(h, "inflateEnd", &api->inflateEnd);
});

Library<Lzma> lzma("liblzma.so.5", "xz", [](void* h, Lzma* api) {
  return Sym(h, "lzma_stream_decoder", &api->lzma_stream_decoder) &&
         Sym(h, "lzma_code", &api->lzma_code) && Sym(h, "lzma_end", &api->lzma_end);
});

Library<Zstd> zstd("libzstd.so.1", "zstd", [](void* h, Zstd* api) {
  return Sym(h, "ZSTD_createDCtx", &api->ZSTD_createDCtx) &&
         Sym(h, "ZSTD_freeDCtx", &api->ZSTD_freeDCtx) &&
         Sym(h, "ZSTD_decompressStream", &api->ZSTD_decompressStream) &&
         Sym(h, "ZSTD_isError", &api->ZSTD_isError) &&
         Sym(h, "ZSTD_getErrorName", &api->ZSTD_getErrorName);
});

// Growable output with the bomb cap. Each codec asks for free space, writes, commits.
// realloc() rather than std::vector: no zero-filling, and large blocks grow by mremap.
class Output {
 public:
  Output(size_t input_size, size_t cap, const char* format) : cap_(cap), format_(format) {
    size_t initial = input_size < cap / 4 ? input_size * 4 : cap;
    if (initial < 65536) initial = cap < 65536 ? cap : 65536;
    Grow(initial);
  }
  ~Output() { free(buf_); }

  // Makes sure some space is free; returns false when the cap is reached.
  bool Reserve() {
    if (used_ < capacity_) return true;
    if (capacity_ >= cap_) return false;
    Grow(capacity_ > cap_ / 2 ? cap_ : capacity_ * 2);
    return true;
  }
  uint8_t* free_ptr() { return buf_ + used_; }
  size_t free_size() const { return capacity_ - used_; }
  void Commit(size_t n) { used_ += n; }
  [[noreturn]] void TooBig() const {
    throw DecompressError(EFBIG, std::string(format_) + " data expands beyond " +
                                     std::to_string(cap_ >> 20) + " MiB");
  }
  Decompressed Take() {
    // Shrinking cannot fail in a way that loses data: keep the larger block if it does.
    if (used_ > 0 && used_ < capacity_) {
      if (void* shrunk = realloc(buf_, used_)) buf_ = static_cast<uint8_t*>(shrunk);
    }
    Decompressed out{buf_, used_};
    buf_ = nullptr;
    capacity_ = used_ = 0;
    return out;
  }

 private:
  void Grow(size_t capacity) {
    void* grown = realloc(buf_, capacity);
    if (grown == nullptr) throw DecompressError(ENOMEM, "out of memory");
    buf_ = static_cast<uint8_t*>(grown);
    capacity_ = capacity;
  }

  uint8_t* buf_ = nullptr;
  size_t capacity_ = 0;
  size_t used_ = 0;
  size_t cap_;
  const char* format_;
};

[[noreturn]] void Bad(const std::string& what) { throw DecompressError(EBADMSG, what); }

Decompressed Gunzip(const uint8_t* data, size_t size, size_t cap) {
  const Zlib& z = zlib.Get();
  ZStream s{};
  if (z.inflateInit2_(&s, kZGzipOnly + kZMaxWindowBits, z.zlibVersion(),
                      static_cast<int>(sizeof(ZStream))) != kZOk) {
    throw DecompressError(ENOMEM, "cannot initialise zlib");
  }
  struct End {
    const Zlib& z;
    ZStream* s;
    ~End() { z.inflateEnd(s); }
  } end{z, &s};

  Output out(size, cap, "gzip");
  size_t in_pos = 0;
  for (;;) {
    // avail_in is 32-bit: feed large inputs in slices.
    size_t slice = size - in_pos > 0x40000000 ? 0x40000000 : size - in_pos;
    s.next_in = data + in_pos;
    s.avail_in = static_cast<unsigned int>(slice);
    if (!out.Reserve()) out.TooBig();
    size_t room = out.free_size() > 0x40000000 ? 0x40000000 : out.free_size();
    s.next_out = out.free_ptr();
    s.avail_out = static_cast<unsigned int>(room);
    int rc = z.inflate(&s, kZNoFlush);
    in_pos += slice - s.avail_in;
    out.Commit(room - s.avail_out);
    if (rc == kZStreamEnd) {
      if (in_pos == size) break;
      // Another gzip member follows (gzip -c a b > c); anything else is not gzip data.
      if (size - in_pos < 2 || data[in_pos] != 0x1f || data[in_pos + 1] != 0x8b) {
        Bad("trailing data after gzip stream");
      }
      z.inflateReset(&s);
      continue;
    }
    if (rc == kZMemError) throw DecompressError(ENOMEM, "zlib out of memory");
    if (rc == kZBufError) {
      // No progress possible: either the output is full (grow it) or the input ran out.
      if (s.avail_out == 0) continue;
      Bad("gzip data is truncated");
    }
    if (rc != kZOk)
      Bad(std::string("gzip data is corrupt") + (s.msg ? std::string(": ") + s.msg : ""));
    if (in_pos == size && s.avail_out != 0) Bad("gzip data is truncated");
  }
  return out.Take();
}

Decompressed Unxz(const uint8_t* data, size_t size, size_t cap) {
  const Lzma& l = lzma.Get();
  LzmaStream s{};
  if (l.lzma_stream_decoder(&s, UINT64_MAX, kLzmaConcatenated) != kLzmaOk) {
    throw DecompressError(ENOMEM, "cannot initialise liblzma");
  }
  struct End {
    const Lzma& l;
    LzmaStream* s;
    ~End() { l.lzma_end(s); }
  } end{l, &s};

  Output out(size, cap, "xz");
  s.next_in = data;
  s.avail_in = size;
  for (;;) {
    if (!out.Reserve()) out.TooBig();
    size_t room = out.free_size();
    s.next_out = out.free_ptr();
    s.avail_out = room;
    // All input is present, so LZMA_FINISH from the start; concatenated streams still work.
    int rc = l.lzma_code(&s, kLzmaFinish);
    out.Commit(room - s.avail_out);
    if (rc == kLzmaStreamEnd) break;
    if (rc == kLzmaOk) continue;
    switch (rc) {
      case kLzmaMemError:
      case kLzmaMemlimitError:
        throw DecompressError(ENOMEM, "liblzma out of memory");
      case kLzmaFormatError:
        Bad("not xz data");
      case kLzmaOptionsError:
        Bad("xz data uses unsupported options");
      case kLzmaDataError:
        Bad("xz data is corrupt");
      case kLzmaBufError:
        if (s.avail_out == 0) continue;
        Bad("xz data is truncated");
      default:
        Bad("liblzma error " + std::to_string(rc));
    }
  }
  return out.Take();
}

Decompressed Unzstd(const uint8_t* data, size_t size, size_t cap) {
  const Zstd& z = zstd.Get();
  void* ctx = z.ZSTD_createDCtx();
  if (ctx == nullptr) throw DecompressError(ENOMEM, "cannot initialise libzstd");
  struct End {
    const Zstd& z;
    void* ctx;
    ~End() { z.ZSTD_freeDCtx(ctx); }
  } end{z, ctx};

  Output out(size, cap, "zstd");
  ZstdInBuffer in{data, size, 0};
  for (;;) {
    if (!out.Reserve()) out.TooBig();
    ZstdOutBuffer o{out.free_ptr(), out.free_size(), 0};
    size_t last = z.ZSTD_decompressStream(ctx, &o, &in);
    out.Commit(o.pos);
    if (z.ZSTD_isError(last))
      Bad(std::string("zstd data is corrupt: ") + z.ZSTD_getErrorName(last));
    // Done when every input byte is used and the last frame is fully flushed.
    if (in.pos == in.size && last == 0) break;
    // Input exhausted mid-frame and the decoder had room to write more: truncated.
    if (in.pos == in.size && o.pos < o.size) Bad("zstd data is truncated");
  }
  return out.Take();
}

Decompressed Checked(const uint8_t* data, size_t size, size_t cap, const char* name,
                     Decompressed (*decode)(const uint8_t*, size_t, size_t)) {
  if (size == 0) Bad(std::string(name) + " data is truncated");
  return decode(data, size, cap);
}

constexpr uint8_t kGzipMagic[] = {0x1f, 0x8b};
constexpr uint8_t kXzMagic[] = {0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00};
constexpr uint8_t kZstdMagic[] = {0x28, 0xb5, 0x2f, 0xfd};

const Codec kCodecs[] = {
    {Compression::kGzip, "gzip", kGzipMagic, sizeof kGzipMagic,
     [](const uint8_t* d, size_t n, size_t cap) { return Checked(d, n, cap, "gzip", Gunzip); }},
    {Compression::kXz, "xz", kXzMagic, sizeof kXzMagic,
     [](const uint8_t* d, size_t n, size_t cap) { return Checked(d, n, cap, "xz", Unxz); }},
    {Compression::kZstd, "zstd", kZstdMagic, sizeof kZstdMagic,
     [](const uint8_t* d, size_t n, size_t cap) { return Checked(d, n, cap, "zstd", Unzstd); }},
};

}  // namespace

const Codec* CodecFor(const uint8_t* head, size_t size) {
  for (const Codec& codec : kCodecs) {
    if (size >= codec.magic_size && memcmp(head, codec.magic, codec.magic_size) == 0) return &codec;
  }
  return nullptr;
}

}  // namespace kmodload
