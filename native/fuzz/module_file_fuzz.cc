// libFuzzer target over the insert path's file handling (module_file.cc and the decoders):
// any file content must give an image or ModuleFileError, never a crash, an out-of-bounds
// access or output past the cap. The input is written to a memfd, which ModuleFile reads as
// the addon reads a module file (fstat, pread of the head, pread of the whole, decode).
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "module_file.h"

namespace {

// Small enough that a decompression bomb costs milliseconds, not a gigabyte.
constexpr size_t kFuzzOutputCap = size_t{16} << 20;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  int fd = memfd_create("module", MFD_CLOEXEC);
  if (fd < 0) return 0;
  size_t done = 0;
  while (done < size) {
    ssize_t n = write(fd, data + done, size - done);
    if (n <= 0) {
      close(fd);
      return 0;
    }
    done += static_cast<size_t>(n);
  }
  try {
    kmodload::ModuleFile file = kmodload::ModuleFile::FromFd(fd);
    static const std::vector<std::string> kAll = {"gzip", "xz", "zstd"};
    file.KernelDecodes(kAll);
    kmodload::Decompressed image = file.Image(kFuzzOutputCap);
    if (image.size > kFuzzOutputCap && file.codec() != nullptr) abort();
    free(image.data);
  } catch (const kmodload::ModuleFileError&) {
  }
  return 0;
}
