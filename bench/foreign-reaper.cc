/*
 * foreign-reaper: a Node-API addon that does what any other native module in the process may
 * do — waitpid() a child it does not own. bench/reliability.js uses it to reap a daemon behind
 * the library's back and then hand its pid to a sentinel.
 *
 * reap(pid) -> wait status (>= 0) or -errno. Blocks until pid has exited.
 *
 * Not built by node-gyp nor by scripts/build-helpers.js (which builds executables from *.c): it is
 * no part of the library. bench/reliability.js compiles it on first use with
 *   g++ -O2 -Wall -shared -fPIC -I/usr/include/node -o build/helpers/foreign-reaper.node bench/foreign-reaper.cc
 */
#include <errno.h>
#include <node_api.h>
#include <sys/wait.h>

static napi_value Reap(napi_env env, napi_callback_info info)
{
    size_t argc = 1;
    napi_value arg;
    int32_t pid = 0;
    napi_get_cb_info(env, info, &argc, &arg, NULL, NULL);
    napi_get_value_int32(env, arg, &pid);
    int st = 0;
    int r;
    do {
        r = waitpid(pid, &st, __WALL);
    } while (r < 0 && errno == EINTR);
    napi_value out;
    napi_create_int32(env, r < 0 ? -errno : st, &out);
    return out;
}

NAPI_MODULE_INIT()
{
    napi_value fn;
    napi_create_function(env, "reap", NAPI_AUTO_LENGTH, Reap, NULL, &fn);
    napi_set_named_property(env, exports, "reap", fn);
    return exports;
}
