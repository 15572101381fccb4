#include "module_file.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

namespace kmodload {

namespace {

// An xz stream header: six magic bytes, a zero flag byte, then the check type.
constexpr size_t kXzCheckOffset = 7;
constexpr uint8_t kXzCheckNone = 0x00;
constexpr uint8_t kXzCheckCrc32 = 0x01;

// pread that retries EINTR and short reads; returns the bytes read (less only at EOF).
size_t ReadAt(int fd, uint8_t* buf, size_t size, off_t offset) {
  size_t done = 0;
  while (done < size) {
    ssize_t n = pread(fd, buf + done, size - done, offset + static_cast<off_t>(done));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw ModuleFileError(errno, "read");
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return done;
}

struct Block {
  uint8_t* data = nullptr;
  ~Block() { free(data); }
};

}  // namespace

ModuleFile ModuleFile::Open(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) throw ModuleFileError(errno, "open");
  return ModuleFile(fd);
}

ModuleFile ModuleFile::FromFd(int fd) { return ModuleFile(fd); }

ModuleFile::ModuleFile(int fd) : fd_(fd) {
  struct stat st;
  if (fstat(fd_, &st) != 0) {
    int err = errno;
    close(fd_);
    throw ModuleFileError(err, "fstat");
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd_);
    throw ModuleFileError(EINVAL, "open", "not a regular file");
  }
  uint8_t head[kXzCheckOffset + 1] = {};
  size_t got;
  try {
    got = ReadAt(fd_, head, sizeof head, 0);
  } catch (...) {
    close(fd_);
    throw;
  }
  codec_ = CodecFor(head, got);
  if (got > kXzCheckOffset) xz_check_ = head[kXzCheckOffset];
}

ModuleFile::ModuleFile(ModuleFile&& other) noexcept
    : fd_(other.fd_), codec_(other.codec_), xz_check_(other.xz_check_) {
  other.fd_ = -1;
}

ModuleFile::~ModuleFile() {
  if (fd_ >= 0) close(fd_);
}

bool ModuleFile::KernelDecodes(const std::vector<std::string>& kernel_formats) const {
  if (codec_ == nullptr) return false;
  bool listed = false;
  for (const std::string& format : kernel_formats) listed = listed || format == codec_->name;
  if (!listed) return false;
  if (codec_->format == Compression::kXz) {
    return xz_check_ == kXzCheckNone || xz_check_ == kXzCheckCrc32;
  }
  return true;
}

Decompressed ModuleFile::Image(size_t max_output) const {
  // Read to EOF, not to st_size: the size may change under us, and the cap holds either way.
  Block file;
  size_t capacity = 0;
  size_t used = 0;
  for (;;) {
    if (used == capacity) {
      if (capacity >= kMaxModuleFileSize) {
        uint8_t probe;
        if (ReadAt(fd_, &probe, 1, static_cast<off_t>(used)) == 0) break;
        throw ModuleFileError(
            EFBIG, "read",
            "module file larger than " + std::to_string(kMaxModuleFileSize >> 20) + " MiB");
      }
      size_t grown = capacity == 0 ? 1 << 20 : capacity * 2;
      if (grown > kMaxModuleFileSize) grown = kMaxModuleFileSize;
      void* block = realloc(file.data, grown);
      if (block == nullptr) throw ModuleFileError(ENOMEM, "read");
      file.data = static_cast<uint8_t*>(block);
      capacity = grown;
    }
    size_t n = ReadAt(fd_, file.data + used, capacity - used, static_cast<off_t>(used));
    used += n;
    if (used < capacity) break;
  }
  if (codec_ == nullptr) {
    Decompressed plain{file.data, used};
    file.data = nullptr;
    return plain;
  }
  try {
    return codec_->decode(file.data, used, max_output);
  } catch (const DecompressError& e) {
    throw ModuleFileError(e.err(), "decompress", e.what());
  } catch (const std::bad_alloc&) {
    throw ModuleFileError(ENOMEM, "decompress");
  }
}

}  // namespace kmodload
