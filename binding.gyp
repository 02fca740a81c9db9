{
  "targets": [
    {
      "target_name": "virtiofs_daemon",
      "sources": [
        "native/addon.cc",
        "native/addon_sockets.cc",
        "native/addon_files.cc",
        "native/addon_spawn.cc",
        "native/addon_processes.cc",
        "native/arguments.cc",
        "native/child.cc",
        "native/spawn.cc",
        "native/unix_socket.cc",
        "native/dir_walk.cc",
        "native/trusted_file.cc",
        "native/errors.cc",
        "native/process_group.cc",
        "native/syscalls.cc",
        "native/clone3.cc",
        "native/pipe_reader.cc",
        "native/cgroup.cc",
        "native/lifetime.cc",
        "native/proc_facts.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": [
        "NAPI_VERSION=8",
        "NAPI_DISABLE_CPP_EXCEPTIONS",
        "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS",
        "NODE_API_NO_EXTERNAL_BUFFERS_ALLOWED",
        "_GNU_SOURCE"
      ],
      "cflags": ["-fvisibility=hidden"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-fno-exceptions", "-fvisibility=hidden", "-fvisibility-inlines-hidden"],
      "conditions": [
        ["OS!='linux'", {"type": "none"}]
      ]
    }
  ]
}
