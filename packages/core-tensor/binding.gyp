{
  "variables": {
    "skysense_blas%": "<!(node scripts/native.mjs --blas)"
  },
  "target_defaults": {
    "cflags_cc": ["-O3", "-fPIC", "-fno-math-errno", "-fno-trapping-math", "-fexceptions", "-std=c++17"],
    "cflags_cc!": ["-fno-exceptions"],
    "xcode_settings": { "OTHER_CPLUSPLUSFLAGS": ["-O3", "-std=c++17", "-fno-math-errno", "-fno-trapping-math", "-fexceptions"], "GCC_ENABLE_CPP_EXCEPTIONS": "YES" }
  },
  "targets": [
    {
      "target_name": "skysense_native",
      "sources": ["native/skysense_native.cc", "native/fused.cc", "native/gemm.cc", "native/threads.cc", "native/gemm_baseline.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "conditions": [
        ["target_arch=='x64'", {
          "cflags_cc": ["-march=x86-64-v2"],
          "defines": ["SKYSENSE_X86_KERNELS"],
          "dependencies": ["gemm_avx2", "gemm_avx512"]
        }],
        ["skysense_blas=='openblas'", {
          "defines": ["SKYSENSE_OPENBLAS"],
          "include_dirs": ["<!@(pkg-config --cflags-only-I openblas | sed s/-I//g)"],
          "libraries": ["<!@(pkg-config --libs openblas)"]
        }]
      ]
    }
  ],
  "conditions": [
    ["target_arch=='x64'", {
      "targets": [
        {
          "target_name": "gemm_avx2",
          "type": "static_library",
          "sources": ["native/gemm_avx2.cc"],
          "cflags_cc": ["-mavx2", "-mfma", "-ffp-contract=fast"],
          "xcode_settings": { "OTHER_CPLUSPLUSFLAGS": ["-O3", "-std=c++17", "-mavx2", "-mfma", "-ffp-contract=fast"] }
        },
        {
          "target_name": "gemm_avx512",
          "type": "static_library",
          "sources": ["native/gemm_avx512.cc"],
          "cflags_cc": ["-mavx512f", "-mavx2", "-mfma", "-ffp-contract=fast"],
          "xcode_settings": { "OTHER_CPLUSPLUSFLAGS": ["-O3", "-std=c++17", "-mavx512f", "-mavx2", "-mfma", "-ffp-contract=fast"] }
        }
      ]
    }]
  ]
}
