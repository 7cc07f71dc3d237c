{
  # Sources are picked up by folder so adding a kernel file needs no edit here. Files ending in
  # _avx2.cpp / _avx512.cpp are built in their own static libraries with their own -march (gyp has
  # no per-file flags, and -march must never leak into code that runs on every CPU).
  "variables": {
    "common_cflags": ["-O3", "-std=c++17", "-fopenmp", "-fno-math-errno", "-Wall", "-Wno-unused-parameter",
                      "-Wno-maybe-uninitialized", "-Wno-sign-compare", "-fvisibility=hidden"]
  },
  "targets": [
    {
      "target_name": "packptq_avx2",
      "type": "static_library",
      "sources": ["<!@(node -e \"require('./native/sources.js').print('avx2')\")"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["<@(common_cflags)", "-march=x86-64-v3", "-fPIC"],
      "include_dirs": ["native"]
    },
    {
      "target_name": "packptq_avx512",
      "type": "static_library",
      "sources": ["<!@(node -e \"require('./native/sources.js').print('avx512')\")"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["<@(common_cflags)", "-march=x86-64-v4", "-mprefer-vector-width=512", "-fPIC"],
      "include_dirs": ["native"]
    },
    {
      "target_name": "packptq",
      "sources": ["<!@(node -e \"require('./native/sources.js').print('generic')\")"],
      "dependencies": ["packptq_avx2", "packptq_avx512"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "native"],
      "defines": ["NAPI_VERSION=9", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["<@(common_cflags)"],
      "ldflags": ["-fopenmp"]
    }
  ]
}
