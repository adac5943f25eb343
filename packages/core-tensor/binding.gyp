{
  "targets": [
    {
      "target_name": "skysense_native",
      "sources": ["native/skysense_native.cc", "native/fused.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "<!@(pkg-config --cflags-only-I openblas | sed s/-I//g)"],
      "libraries": ["<!@(pkg-config --libs openblas)"],
      "cflags_cc": ["-O3", "-march=x86-64-v2", "-fno-math-errno", "-fno-trapping-math", "-fexceptions", "-std=c++17"],
      "cflags_cc!": ["-fno-exceptions"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"]
    }
  ]
}
