// Node-API surface of kmodload: module syscalls (one insert path, with user-space
// decompression when the kernel cannot decompress), the index reader, flock and fnmatch.
// Deliberately thin: no module-tree logic lives here. The TypeScript shape is
// src/native/binding.ts.
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <napi.h>
#include <string.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "decompress.h"
#include "index_reader.h"
#include "module_file.h"

namespace kmodload {
namespace {

// A failed call as a JS Error carrying the raw facts: errno (positive, as the kernel returns
// it), syscall, path and, where the errno alone says too little, detail. The code ('ENOENT')
// and the fs-style message are made in one place, src/native/system-error.ts, from Node's own
// errno table: naming errno values here would need strerrorname_np (glibc 2.32).
Napi::Error SystemError(Napi::Env env, int err, const std::string& syscall, const std::string& path,
                        const std::string& detail = "") {
  Napi::Error error = Napi::Error::New(env, detail.empty() ? syscall : detail);
  error.Set("errno", Napi::Number::New(env, err));
  error.Set("syscall", syscall);
  if (!path.empty()) error.Set("path", path);
  if (!detail.empty()) error.Set("detail", detail);
  return error;
}

Napi::Error ArgError(Napi::Env env, const std::string& message) {
  Napi::TypeError error = Napi::TypeError::New(env, message);
  error.Set("code", "ERR_INVALID_ARG_TYPE");
  return error;
}

// Reads a string argument that goes to the kernel or libc as a C string: an embedded NUL
// would silently cut it short, so it is refused.
std::string CString(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (!info[i].IsString()) throw ArgError(info.Env(), std::string(what) + " must be a string");
  std::string s = info[i].As<Napi::String>().Utf8Value();
  if (s.find('\0') != std::string::npos) {
    throw ArgError(info.Env(), std::string(what) + " must not contain NUL bytes");
  }
  return s;
}

uint32_t Flags(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsNumber()) throw ArgError(info.Env(), "flags must be a number");
  double value = info[i].As<Napi::Number>().DoubleValue();
  if (!(value >= 0 && value <= 0xFFFFFFFF) || value != static_cast<uint32_t>(value)) {
    throw ArgError(info.Env(), "flags must be an unsigned 32-bit integer");
  }
  return static_cast<uint32_t>(value);
}

// Runs f (which may throw Napi::Error for bad arguments) and turns a synchronous throw into
// a rejected Promise, so every Promise-returning function fails the same way.
template <typename Fn>
Napi::Value PromiseCall(const Napi::CallbackInfo& info, Fn&& fn) {
  try {
    return fn();
  } catch (const Napi::Error& error) {
    Napi::Promise::Deferred deferred = Napi::Promise::Deferred::New(info.Env());
    deferred.Reject(error.Value());
    return deferred.Promise();
  }
}

// Base for work on libuv's pool that settles a Promise. Execute() must not touch JS.
class PromiseWorker : public Napi::AsyncWorker {
 public:
  explicit PromiseWorker(Napi::Env env)
      : Napi::AsyncWorker(env, "kmodload"), deferred_(Napi::Promise::Deferred::New(env)) {}

  Napi::Promise Start() {
    Napi::Promise promise = deferred_.Promise();
    Queue();
    return promise;
  }

 protected:
  void OnOK() override {
    Napi::Env env = Env();
    if (err_ != 0) {
      Napi::Error error = SystemError(env, err_, syscall_, path_, detail_);
      Decorate(env, error);
      deferred_.Reject(error.Value());
    } else {
      deferred_.Resolve(Result(env));
    }
  }
  void OnError(const Napi::Error& error) override { deferred_.Reject(error.Value()); }

  virtual Napi::Value Result(Napi::Env env) { return env.Undefined(); }
  // Adds worker-specific properties to the error it rejects with.
  virtual void Decorate(Napi::Env, Napi::Error&) {}

  // Runs work on a module file; its failures (ModuleFileError, out of memory) become this
  // worker's error.
  template <typename Fn>
  void OnModuleFile(Fn&& work) {
    try {
      work();
    } catch (const ModuleFileError& e) {
      Fail(e.err(), e.syscall(), e.what());
    } catch (const std::bad_alloc&) {
      Fail(ENOMEM, "read");
    }
  }

  void Fail(int err, const char* syscall, std::string detail = "") {
    err_ = err;
    syscall_ = syscall;
    detail_ = std::move(detail);
  }

  std::string path_;

 private:
  Napi::Promise::Deferred deferred_;
  int err_ = 0;
  std::string syscall_;
  std::string detail_;
};

// finit_module(2) flag: the fd holds a compressed module the kernel decompresses itself.
constexpr uint32_t kModuleInitCompressedFile = 4;

// The one insert path, as kmod takes it. The file is opened once; its first bytes say whether
// it is compressed. A plain file, or one the kernel decompresses itself, goes to
// finit_module(fd). Otherwise, or when finit_module says ENOSYS (no such syscall), or EINVAL
// to the compressed flag (its decoder refused the stream), the same fd is read, decompressed
// in user space if need be, and the image goes to init_module. `attempts` records the steps
// taken, for results and tests: "finit_module", "finit_module(compressed)", "decompress(xz)",
// "init_module".
class InsertModuleWorker : public PromiseWorker {
 public:
  InsertModuleWorker(Napi::Env env, std::string path, std::string params, uint32_t flags,
                     std::vector<std::string> kernel_formats)
      : PromiseWorker(env),
        params_(std::move(params)),
        flags_(flags),
        kernel_formats_(std::move(kernel_formats)) {
    path_ = std::move(path);
  }

  void Execute() override {
    OnModuleFile([this] { Insert(); });
  }

  Napi::Value Result(Napi::Env env) override {
    Napi::Object result = Napi::Object::New(env);
    result.Set("attempts", Attempts(env));
    return result;
  }

 protected:
  void Decorate(Napi::Env env, Napi::Error& error) override {
    error.Set("attempts", Attempts(env));
  }

 private:
  void Insert() {
    ModuleFile file = ModuleFile::Open(path_);
    const Codec* codec = file.codec();
    if (codec == nullptr || file.KernelDecodes(kernel_formats_)) {
      uint32_t flags = flags_ | (codec ? kModuleInitCompressedFile : 0);
      attempts_.push_back(codec ? "finit_module(compressed)" : "finit_module");
      if (syscall(SYS_finit_module, file.fd(), params_.c_str(), flags) == 0) return;
      int err = errno;
      // ENOSYS: no finit_module. EINVAL to a compressed file: the kernel's decoder refused the
      // stream (its own limits on options or window size); user space may still read it.
      bool fall_back = err == ENOSYS || (codec != nullptr && err == EINVAL);
      if (!fall_back) return Fail(err, "finit_module");
    }
    if (codec) attempts_.push_back(std::string("decompress(") + codec->name + ")");
    Decompressed image = file.Image();
    struct Free {
      uint8_t* data;
      ~Free() { free(data); }
    } release{image.data};
    attempts_.push_back("init_module");
    if (syscall(SYS_init_module, image.data, image.size, params_.c_str()) != 0) {
      Fail(errno, "init_module");
    }
  }

  Napi::Array Attempts(Napi::Env env) {
    Napi::Array array = Napi::Array::New(env, attempts_.size());
    for (size_t i = 0; i < attempts_.size(); i++) {
      array.Set(static_cast<uint32_t>(i), attempts_[i]);
    }
    return array;
  }

  std::string params_;
  uint32_t flags_;
  std::vector<std::string> kernel_formats_;
  std::vector<std::string> attempts_;
};

class DeleteModuleWorker : public PromiseWorker {
 public:
  DeleteModuleWorker(Napi::Env env, std::string name, uint32_t flags)
      : PromiseWorker(env), flags_(flags) {
    path_ = std::move(name);
  }

  void Execute() override {
    long rc = syscall(SYS_delete_module, path_.c_str(), flags_);
    if (rc != 0) Fail(errno, "delete_module");
  }

 private:
  uint32_t flags_;
};

// What init_module would be given for a module file: its bytes, decompressed if need be,
// through the same ModuleFile path as InsertModuleWorker. For inspection (the tests).
class ReadModuleImageWorker : public PromiseWorker {
 public:
  ReadModuleImageWorker(Napi::Env env, std::string path) : PromiseWorker(env) {
    path_ = std::move(path);
  }

  ~ReadModuleImageWorker() override { free(image_.data); }

  void Execute() override {
    OnModuleFile([this] {
      ModuleFile file = ModuleFile::Open(path_);
      format_ = file.codec() ? file.codec()->name : "";
      image_ = file.Image();
    });
  }

  Napi::Value Result(Napi::Env env) override {
    Napi::Object result = Napi::Object::New(env);
    result.Set("format", format_.empty() ? env.Null() : Napi::String::New(env, format_));
    result.Set("image", Napi::Buffer<uint8_t>::Copy(env, image_.data, image_.size));
    return result;
  }

 private:
  std::string format_;
  Decompressed image_{nullptr, 0};
};

// The JS object behind NativeIndex. Lookups are synchronous: the file is in memory (or its
// blocks are read as a lookup reaches them: openIndexOnDemand), every node is reached at most
// once per lookup and a wildcard lookup's fnmatch() work is capped, so each call is bounded by
// the (capped) file size.
class IndexObject : public Napi::ObjectWrap<IndexObject> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeIndex",
                       {InstanceMethod<&IndexObject::Exact>("exact"),
                        InstanceMethod<&IndexObject::Wildcard>("wildcard"),
                        InstanceMethod<&IndexObject::Entries>("entries"),
                        InstanceMethod<&IndexObject::Close>("close")});
  }

  explicit IndexObject(const Napi::CallbackInfo& info) : Napi::ObjectWrap<IndexObject>(info) {}

  void Attach(std::unique_ptr<IndexReader> reader, std::string path) {
    reader_ = std::move(reader);
    path_ = std::move(path);
  }

 private:
  const IndexReader& Reader(Napi::Env env, const char* op) {
    if (!reader_) throw SystemError(env, EBADF, op, path_, "index is closed");
    return *reader_;
  }

  template <typename Fn>
  auto Guard(Napi::Env env, const char* op, Fn&& fn) -> decltype(fn()) {
    try {
      return fn();
    } catch (const IndexError& e) {
      throw SystemError(env, e.err(), op, path_, e.what());
    }
  }

  static Napi::Array ToArray(Napi::Env env, const std::vector<IndexValue>& values) {
    Napi::Array array = Napi::Array::New(env, values.size());
    for (size_t i = 0; i < values.size(); i++) {
      Napi::Object v = Napi::Object::New(env);
      v.Set("value", values[i].value);
      v.Set("priority", Napi::Number::New(env, values[i].priority));
      array.Set(static_cast<uint32_t>(i), v);
    }
    return array;
  }

  Napi::Value Exact(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::string key = CString(info, 0, "key");
    const IndexReader& reader = Reader(env, "index_exact");
    return ToArray(env, Guard(env, "index_exact", [&] { return reader.Exact(key); }));
  }

  Napi::Value Wildcard(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::string key = CString(info, 0, "key");
    const IndexReader& reader = Reader(env, "index_wildcard");
    return ToArray(env, Guard(env, "index_wildcard", [&] { return reader.Wildcard(key); }));
  }

  Napi::Value Entries(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const IndexReader& reader = Reader(env, "index_entries");
    std::vector<IndexEntry> entries = Guard(env, "index_entries", [&] { return reader.Entries(); });
    Napi::Array array = Napi::Array::New(env, entries.size());
    for (size_t i = 0; i < entries.size(); i++) {
      Napi::Object entry = Napi::Object::New(env);
      entry.Set("key", entries[i].key);
      entry.Set("values", ToArray(env, entries[i].values));
      array.Set(static_cast<uint32_t>(i), entry);
    }
    return array;
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    reader_.reset();
    return info.Env().Undefined();
  }

  std::unique_ptr<IndexReader> reader_;
  std::string path_;
};

struct AddonData {
  Napi::FunctionReference index_class;
};

// Opens an index (`open`, IndexReader::Open or OpenOnDemand); a failure as the syscall it
// names ("open", "fstat", "read") or, for the file's format, "open_index" with a description.
struct IndexOpening {
  std::unique_ptr<IndexReader> reader;
  int err = 0;
  std::string syscall;
  std::string detail;

  template <typename Open>
  void Run(Open&& open) {
    try {
      reader = std::make_unique<IndexReader>(open());
    } catch (const IndexError& e) {
      std::string what = e.what();
      err = e.err();
      if (what == "open" || what == "fstat" || what == "read") {
        syscall = what;
      } else {
        syscall = "open_index";
        detail = what;
      }
    } catch (const std::bad_alloc&) {
      err = ENOMEM;
      syscall = "open_index";
    }
  }

  Napi::Object Index(Napi::Env env, const std::string& path) {
    Napi::Object object = env.GetInstanceData<AddonData>()->index_class.New({});
    IndexObject::Unwrap(object)->Attach(std::move(reader), path);
    return object;
  }
};

class OpenIndexWorker : public PromiseWorker {
 public:
  OpenIndexWorker(Napi::Env env, std::string path) : PromiseWorker(env) { path_ = std::move(path); }

  void Execute() override {
    opening_.Run([this] { return IndexReader::Open(path_); });
    if (opening_.err != 0) Fail(opening_.err, opening_.syscall.c_str(), opening_.detail);
  }

  Napi::Value Result(Napi::Env env) override { return opening_.Index(env, path_); }

 private:
  IndexOpening opening_;
};

std::vector<std::string> Strings(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (!info[i].IsArray()) throw ArgError(info.Env(), std::string(what) + " must be an array");
  Napi::Array array = info[i].As<Napi::Array>();
  std::vector<std::string> out;
  for (uint32_t k = 0; k < array.Length(); k++) {
    Napi::Value item = array.Get(k);
    if (!item.IsString()) throw ArgError(info.Env(), std::string(what) + " must hold strings");
    out.push_back(item.As<Napi::String>().Utf8Value());
  }
  return out;
}

Napi::Value InsertModule(const Napi::CallbackInfo& info) {
  return PromiseCall(info, [&]() -> Napi::Value {
    std::string path = CString(info, 0, "path");
    std::string params = CString(info, 1, "params");
    uint32_t flags = Flags(info, 2);
    std::vector<std::string> formats = Strings(info, 3, "kernelFormats");
    return (new InsertModuleWorker(info.Env(), path, params, flags, std::move(formats)))->Start();
  });
}

Napi::Value ReadModuleImage(const Napi::CallbackInfo& info) {
  return PromiseCall(info, [&]() -> Napi::Value {
    std::string path = CString(info, 0, "path");
    return (new ReadModuleImageWorker(info.Env(), path))->Start();
  });
}

Napi::Value DeleteModule(const Napi::CallbackInfo& info) {
  return PromiseCall(info, [&]() -> Napi::Value {
    std::string name = CString(info, 0, "name");
    uint32_t flags = Flags(info, 1);
    return (new DeleteModuleWorker(info.Env(), name, flags))->Start();
  });
}

Napi::Value OpenIndex(const Napi::CallbackInfo& info) {
  return PromiseCall(info, [&]() -> Napi::Value {
    std::string path = CString(info, 0, "path");
    return (new OpenIndexWorker(info.Env(), path))->Start();
  });
}

// The index whose blocks are read as lookups reach them: only the header is read here, at
// once (a few microseconds: no thread-pool round trip).
Napi::Value OpenIndexOnDemand(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = CString(info, 0, "path");
  IndexOpening opening;
  opening.Run([&] { return IndexReader::OpenOnDemand(path); });
  if (opening.err != 0) throw SystemError(env, opening.err, opening.syscall, path, opening.detail);
  return opening.Index(env, path);
}

Napi::Value Fnmatch(const Napi::CallbackInfo& info) {
  std::string pattern = CString(info, 0, "pattern");
  std::string string = CString(info, 1, "string");
  return Napi::Boolean::New(info.Env(), fnmatch(pattern.c_str(), string.c_str(), 0) == 0);
}

// flock(fd, LOCK_EX | LOCK_NB) and friends: the state directory's lock. Synchronous, so only
// non-blocking operations are accepted: waiting is the caller's (a timer, off the event loop).
Napi::Value Flock(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber() || !info[1].IsNumber()) {
    throw ArgError(env, "fd and operation must be numbers");
  }
  int fd = info[0].As<Napi::Number>().Int32Value();
  int operation = info[1].As<Napi::Number>().Int32Value();
  if ((operation & LOCK_UN) == 0 && (operation & LOCK_NB) == 0) {
    throw ArgError(env, "flock operation must include LOCK_NB (it would block the event loop)");
  }
  if (flock(fd, operation) != 0) throw SystemError(env, errno, "flock", "");
  return env.Undefined();
}

// finit_module(-1, "", 0): loads nothing, and tells whether the kernel has module support at
// all. The errno it fails with: EBADF (there is support), ENOSYS (none), EPERM (no privilege,
// or modules_disabled). Instant, so synchronous.
Napi::Value ProbeModuleSupport(const Napi::CallbackInfo& info) {
  long rc = syscall(SYS_finit_module, -1, "", 0);
  return Napi::Number::New(info.Env(), rc == 0 ? 0 : errno);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  data->index_class = Napi::Persistent(IndexObject::Define(env));
  env.SetInstanceData(data);
  exports.Set("insertModule", Napi::Function::New<InsertModule>(env, "insertModule"));
  exports.Set("readModuleImage", Napi::Function::New<ReadModuleImage>(env, "readModuleImage"));
  exports.Set("deleteModule", Napi::Function::New<DeleteModule>(env, "deleteModule"));
  exports.Set("openIndex", Napi::Function::New<OpenIndex>(env, "openIndex"));
  exports.Set("openIndexOnDemand",
              Napi::Function::New<OpenIndexOnDemand>(env, "openIndexOnDemand"));
  exports.Set("fnmatch", Napi::Function::New<Fnmatch>(env, "fnmatch"));
  exports.Set("flock", Napi::Function::New<Flock>(env, "flock"));
  exports.Set("probeModuleSupport",
              Napi::Function::New<ProbeModuleSupport>(env, "probeModuleSupport"));
  return exports;
}

}  // namespace
}  // namespace kmodload

static Napi::Object InitKmodload(Napi::Env env, Napi::Object exports) {
  return kmodload::Init(env, exports);
}

NODE_API_MODULE(kmodload, InitKmodload)
