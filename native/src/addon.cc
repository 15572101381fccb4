// Node-API surface of kmodload: module syscalls, the index reader, decompression and
// fnmatch. Deliberately thin: no module-tree logic lives here. The TypeScript shape is
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

namespace kmodload {
namespace {

std::string ErrnoName(int err) {
  // Linux's ENOTSUP and EOPNOTSUPP share a number; glibc names it EOPNOTSUPP, Node ENOTSUP.
  if (err == ENOTSUP) return "ENOTSUP";
  const char* name = strerrorname_np(err);
  return name ? name : "E" + std::to_string(err);
}

// An error shaped like fs's: "ENOENT: No such file or directory, open '/x'", with code,
// errno (positive, as the kernel returns it), syscall and path.
Napi::Error SystemError(Napi::Env env, int err, const std::string& syscall, const std::string& path,
                        const std::string& detail = "") {
  std::string code = ErrnoName(err);
  std::string message = code + ": " + (detail.empty() ? strerror(err) : detail) + ", " + syscall;
  if (!path.empty()) message += " '" + path + "'";
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", code);
  error.Set("errno", Napi::Number::New(env, err));
  error.Set("syscall", syscall);
  if (!path.empty()) error.Set("path", path);
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

std::vector<uint8_t> Bytes(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (!info[i].IsTypedArray() ||
      info[i].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    throw ArgError(info.Env(), std::string(what) + " must be a Uint8Array or Buffer");
  }
  // Copied: the worker runs on another thread and the caller's ArrayBuffer could be
  // detached or reused meanwhile.
  Napi::Uint8Array array = info[i].As<Napi::Uint8Array>();
  return std::vector<uint8_t>(array.Data(), array.Data() + array.ByteLength());
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
      deferred_.Reject(SystemError(env, err_, syscall_, path_, detail_).Value());
    } else {
      deferred_.Resolve(Result(env));
    }
  }
  void OnError(const Napi::Error& error) override { deferred_.Reject(error.Value()); }

  virtual Napi::Value Result(Napi::Env env) { return env.Undefined(); }

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

class FinitModuleWorker : public PromiseWorker {
 public:
  FinitModuleWorker(Napi::Env env, std::string path, std::string params, uint32_t flags)
      : PromiseWorker(env), params_(std::move(params)), flags_(flags) {
    path_ = std::move(path);
  }

  void Execute() override {
    int fd = open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Fail(errno, "open");
    long rc = syscall(SYS_finit_module, fd, params_.c_str(), flags_);
    int err = errno;
    close(fd);
    if (rc != 0) Fail(err, "finit_module");
  }

 private:
  std::string params_;
  uint32_t flags_;
};

class InitModuleWorker : public PromiseWorker {
 public:
  // The image has no name of its own: `label` (the module's file or name) is what errors
  // carry as their path, so a failure says which module it was.
  InitModuleWorker(Napi::Env env, std::vector<uint8_t> image, std::string params, std::string label)
      : PromiseWorker(env), image_(std::move(image)), params_(std::move(params)) {
    path_ = std::move(label);
  }

  void Execute() override {
    long rc = syscall(SYS_init_module, image_.data(), image_.size(), params_.c_str());
    if (rc != 0) Fail(errno, "init_module");
  }

 private:
  std::vector<uint8_t> image_;
  std::string params_;
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

class DecompressWorker : public PromiseWorker {
 public:
  DecompressWorker(Napi::Env env, std::vector<uint8_t> input, Compression format)
      : PromiseWorker(env), input_(std::move(input)), format_(format) {}

  ~DecompressWorker() override { free(output_.data); }

  void Execute() override {
    try {
      output_ = Decompress(input_.data(), input_.size(), format_);
    } catch (const DecompressError& e) {
      Fail(e.err(), "decompress", e.what());
    } catch (const std::bad_alloc&) {
      Fail(ENOMEM, "decompress");
    }
    std::vector<uint8_t>().swap(input_);
  }

  Napi::Value Result(Napi::Env env) override {
    Decompressed out = output_;
    output_ = Decompressed{nullptr, 0};
    if (out.size == 0) {
      free(out.data);
      return Napi::Buffer<uint8_t>::New(env, 0);
    }
    // NewOrCopy copies (and runs the finalizer at once) where external buffers are not allowed.
    return Napi::Buffer<uint8_t>::NewOrCopy(env, out.data, out.size,
                                            [](Napi::Env, uint8_t* data) { free(data); });
  }

 private:
  std::vector<uint8_t> input_;
  Compression format_;
  Decompressed output_{nullptr, 0};
};

// The JS object behind NativeIndex. Lookups are synchronous: the file is in memory, every node
// is reached at most once per lookup and a wildcard lookup's fnmatch() work is capped, so each
// call is bounded by the (capped) file size.
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

class OpenIndexWorker : public PromiseWorker {
 public:
  OpenIndexWorker(Napi::Env env, std::string path) : PromiseWorker(env) { path_ = std::move(path); }

  void Execute() override {
    try {
      reader_ = std::make_unique<IndexReader>(IndexReader::Open(path_));
    } catch (const IndexError& e) {
      // Syscall failures carry the syscall's name; format problems a description.
      std::string what = e.what();
      if (what == "open" || what == "fstat" || what == "read") {
        syscall_name_ = what;
        Fail(e.err(), syscall_name_.c_str());
      } else {
        Fail(e.err(), "open_index", what);
      }
    } catch (const std::bad_alloc&) {
      Fail(ENOMEM, "open_index");
    }
  }

  Napi::Value Result(Napi::Env env) override {
    Napi::Object object = env.GetInstanceData<AddonData>()->index_class.New({});
    IndexObject::Unwrap(object)->Attach(std::move(reader_), path_);
    return object;
  }

 private:
  std::unique_ptr<IndexReader> reader_;
  std::string syscall_name_;
};

Napi::Value FinitModule(const Napi::CallbackInfo& info) {
  return PromiseCall(info, [&]() -> Napi::Value {
    std::string path = CString(info, 0, "path");
    std::string params = CString(info, 1, "params");
    uint32_t flags = Flags(info, 2);
    return (new FinitModuleWorker(info.Env(), path, params, flags))->Start();
  });
}

Napi::Value InitModule(const Napi::CallbackInfo& info) {
  return PromiseCall(info, [&]() -> Napi::Value {
    std::vector<uint8_t> image = Bytes(info, 0, "image");
    std::string params = CString(info, 1, "params");
    std::string label = info[2].IsUndefined() ? "" : CString(info, 2, "label");
    return (new InitModuleWorker(info.Env(), std::move(image), params, label))->Start();
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

Napi::Value DecompressData(const Napi::CallbackInfo& info) {
  return PromiseCall(info, [&]() -> Napi::Value {
    std::vector<uint8_t> data = Bytes(info, 0, "data");
    std::string name = info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "";
    Compression format;
    if (name == "gzip") {
      format = Compression::kGzip;
    } else if (name == "xz") {
      format = Compression::kXz;
    } else if (name == "zstd") {
      format = Compression::kZstd;
    } else {
      throw ArgError(info.Env(), "format must be 'gzip', 'xz' or 'zstd'");
    }
    return (new DecompressWorker(info.Env(), std::move(data), format))->Start();
  });
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
  exports.Set("finitModule", Napi::Function::New<FinitModule>(env, "finitModule"));
  exports.Set("initModule", Napi::Function::New<InitModule>(env, "initModule"));
  exports.Set("deleteModule", Napi::Function::New<DeleteModule>(env, "deleteModule"));
  exports.Set("openIndex", Napi::Function::New<OpenIndex>(env, "openIndex"));
  exports.Set("decompress", Napi::Function::New<DecompressData>(env, "decompress"));
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
