// A module file opened once for insertion: the same descriptor is sniffed for compression,
// handed to finit_module(2), or read (and decompressed) for init_module(2). Opening it once
// means a file replaced on disk mid-way cannot give the kernel a flag that does not match the
// bytes it reads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "decompress.h"

namespace kmodload {

// A failed step: errno, the call that failed ("open", "read", "decompress"...) and, where the
// errno alone says too little, a description.
class ModuleFileError : public std::runtime_error {
 public:
  ModuleFileError(int err, const char* syscall, const std::string& detail = "")
      : std::runtime_error(detail), err_(err), syscall_(syscall) {}
  int err() const { return err_; }
  const char* syscall() const { return syscall_; }

 private:
  int err_;
  const char* syscall_;
};

// A compressed module file is read whole before it is decoded: this caps what it may occupy.
constexpr size_t kMaxModuleFileSize = size_t{1} << 30;

class ModuleFile {
 public:
  // open(O_RDONLY | O_CLOEXEC | O_NONBLOCK): a FIFO or device cannot block or feed us forever;
  // anything but a regular file is refused (EINVAL, "not a regular file").
  static ModuleFile Open(const std::string& path);
  // Takes ownership of an open descriptor (the fuzz target passes a memfd).
  static ModuleFile FromFd(int fd);

  ModuleFile(ModuleFile&& other) noexcept;
  ModuleFile& operator=(ModuleFile&&) = delete;
  ModuleFile(const ModuleFile&) = delete;
  ~ModuleFile();

  int fd() const { return fd_; }
  // The compression its first bytes show, or nullptr for a plain module.
  const Codec* codec() const { return codec_; }

  // Whether finit_module can take this file with MODULE_INIT_COMPRESSED_FILE: the kernel lists
  // the format in /sys/module/compression, and for xz the stream's integrity check is one the
  // kernel's decoder knows (none or CRC32; plain `xz` writes CRC64, which the kernel refuses).
  bool KernelDecodes(const std::vector<std::string>& kernel_formats) const;

  // The bytes init_module needs: the whole file, decompressed when it is compressed.
  // Read with pread from offset 0, up to kMaxModuleFileSize (EFBIG beyond); decompressed, up
  // to max_output (the fuzz target lowers it).
  Decompressed Image(size_t max_output = kMaxDecompressedSize) const;

 private:
  explicit ModuleFile(int fd);

  int fd_;
  const Codec* codec_ = nullptr;
  uint8_t xz_check_ = 0xff;
};

}  // namespace kmodload
