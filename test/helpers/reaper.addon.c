/*
 * A foreign reaper for the tests: any native module that calls waitpid() on a pid it did not
 * spawn, as some do with waitpid(-1). waitpid(pid) → the wait status, or -errno.
 */
#include <errno.h>
#include <node_api.h>
#include <sys/wait.h>

static napi_value Waitpid(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t pid = 0;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  napi_get_value_int32(env, argv[0], &pid);
  int status = 0;
  pid_t r;
  do {
    r = waitpid(pid, &status, 0);
  } while (r < 0 && errno == EINTR);
  napi_value out;
  napi_create_int32(env, r < 0 ? -errno : status, &out);
  return out;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "waitpid", NAPI_AUTO_LENGTH, Waitpid, NULL, &fn);
  napi_set_named_property(env, exports, "waitpid", fn);
  return exports;
}
