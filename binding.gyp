{
  "targets": [
    {
      "target_name": "kmodload",
      # The one source list, shared with native/CMakeLists.txt.
      "sources": ["<!@(cat native/sources.txt)"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      # glibc_compat.h: loadable on glibc 2.28 when built on a newer one (scripts/make/check-glibc.sh).
      "cflags_cc": ["-std=c++17", "-fexceptions", "-Wall", "-Wextra",
                    "-include", "<(module_root_dir)/native/src/glibc_compat.h"],
      # libstdc++ stays shared: its static archive, built against this glibc, would bring in
      # arc4random, _dl_find_object, __libc_single_threaded (2.32-2.36); the shared one is only
      # asked for GLIBCXX_3.4.21 (GCC 8 has 3.4.25). libdl.so.2 and libpthread.so.0 by soname:
      # where glibc < 2.34 keeps dlopen and pthread_once.
      # Only where the C library is glibc (musl has neither file).
      "libraries": ["<!@(node -p \"process.report.getReport().header.glibcVersionRuntime ? '-Wl,--push-state,--no-as-needed -l:libdl.so.2 -l:libpthread.so.0 -Wl,--pop-state' : ''\")"]
    }
  ]
}
