/*
 * malloc_trim(0) for the agent (src/agent/memory.ts): glibc returns freed
 * memory to the system only from the top of its heap, and Node never calls
 * malloc_trim, so the 64 KiB buffers of a transfer (socket reads, Noise's
 * messages, blocks) stay resident long after they are freed: ~20 MiB of an
 * XO's RAM for as long as the agent then idles (docs/agent.md, "After the
 * work").
 *
 * A Node-API module without Node's headers: the few Node-API functions it
 * calls are declared here as the stable C ABI documents them, and resolved
 * from the node binary when the module is loaded. Built next to the agent's
 * bundle by scripts/build-agentd.ts (`cc -shared -fPIC`); where there is no
 * C compiler the agent simply does not trim.
 */
#include <malloc.h>
#include <stddef.h>

typedef struct napi_env__ *napi_env;
typedef struct napi_value__ *napi_value;
typedef struct napi_callback_info__ *napi_callback_info;
typedef int napi_status;
typedef napi_value (*napi_callback)(napi_env env, napi_callback_info info);

napi_status napi_create_function(napi_env env, const char *utf8name, size_t length, napi_callback cb, void *data, napi_value *result);
napi_status napi_create_int32(napi_env env, int value, napi_value *result);
napi_status napi_set_named_property(napi_env env, napi_value object, const char *utf8name, napi_value value);

/* mallocTrim(): 1 if memory was given back to the system, else 0. */
static napi_value trim(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value result = NULL;
  napi_create_int32(env, malloc_trim(0), &result);
  return result;
}

napi_value napi_register_module_v1(napi_env env, napi_value exports) {
  napi_value fn = NULL;
  if (napi_create_function(env, "mallocTrim", (size_t)-1, trim, NULL, &fn) != 0) return NULL;
  if (napi_set_named_property(env, exports, "mallocTrim", fn) != 0) return NULL;
  return exports;
}
