// fixed-schedule: a mender strategy written in C (clang + wit-bindgen c).
//
// Retries a failed attempt after the delay the schedule gives for that
// attempt: the first failure waits delays[0], the second delays[1], and so
// on; past the end of the schedule it gives up. The upstream's Retry-After
// wins when it is longer. Auth, tool, cancelled and rejected failures are
// not fixed by repeating the request, so it answers `pass` for them.
//
// Config: {"delays": [ms, ms, ...]} (1 to 16 entries), or {} for the
// default schedule.
//
// WIT -> C, for plugin authors: every WIT type is a struct in the generated
// strategy_plugin.h; `option<T>` is `{ bool is_some; T val; }`, a variant
// is `{ uint8_t tag; union val; }`, strings are `{ ptr, len }` (not NUL
// terminated), and an export owns its arguments: free them before
// returning (the *_free functions), and allocate what it returns with
// malloc (the bindings free it after the host has copied it).

#include <stdlib.h>
#include <string.h>

#include "strategy_plugin.h"

#define MAX_DELAYS 16

// 100 ms, 1 s, 5 s: a blip, a restart, a failover; three retries are what
// most fixed-schedule clients use.
static const uint64_t DEFAULT_DELAYS[] = {100, 1000, 5000};

static uint64_t delays[MAX_DELAYS];
static size_t n_delays;

static const char *skip_space(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')) p++;
    return p;
}

// Reads the one config shape this plugin takes. There is no JSON library
// for freestanding wasm32 C in the package registries CI uses, and the
// shape is fixed, so a strict reader of exactly that shape is enough:
// anything else is refused with the expected form.
static const char *parse_config(const char *p, const char *end) {
    static const char *const form = "invalid config: expected {} or {\"delays\": [ms, ...]} with 1 to 16 delays";
    p = skip_space(p, end);
    if (p == end || *p++ != '{') return form;
    p = skip_space(p, end);
    if (p < end && *p == '}') {
        memcpy(delays, DEFAULT_DELAYS, sizeof DEFAULT_DELAYS);
        n_delays = sizeof DEFAULT_DELAYS / sizeof DEFAULT_DELAYS[0];
        return NULL;
    }
    static const char key[] = "\"delays\"";
    if ((size_t)(end - p) < sizeof key - 1 || memcmp(p, key, sizeof key - 1) != 0) return form;
    p = skip_space(p + sizeof key - 1, end);
    if (p == end || *p++ != ':') return form;
    p = skip_space(p, end);
    if (p == end || *p++ != '[') return form;
    n_delays = 0;
    for (;;) {
        p = skip_space(p, end);
        if (p == end || *p < '0' || *p > '9') return form;
        uint64_t ms = 0;
        while (p < end && *p >= '0' && *p <= '9') {
            if (ms > (UINT64_MAX - 9) / 10) return form;
            ms = ms * 10 + (uint64_t)(*p++ - '0');
        }
        if (n_delays == MAX_DELAYS) return form;
        delays[n_delays++] = ms;
        p = skip_space(p, end);
        if (p < end && *p == ',') { p++; continue; }
        if (p < end && *p == ']') { p++; break; }
        return form;
    }
    p = skip_space(p, end);
    if (p == end || *p++ != '}') return form;
    p = skip_space(p, end);
    return p == end ? NULL : form;
}

bool exports_mender_plugin_strategy_init(strategy_plugin_string_t *config,
                                         exports_mender_plugin_strategy_strategy_info_t *ret,
                                         strategy_plugin_string_t *err) {
    const char *text = (const char *)config->ptr;
    const char *problem = parse_config(text, text + config->len);
    strategy_plugin_string_free(config);
    if (problem) {
        strategy_plugin_string_dup(err, problem);
        return false;
    }
    ret->hooks = MENDER_PLUGIN_TYPES_HOOKS_ON_ERROR;
    return true;
}

// Not declared in `hooks`, so the host never calls it; the world requires it.
void exports_mender_plugin_strategy_admit(exports_mender_plugin_strategy_call_info_t *call,
                                          exports_mender_plugin_strategy_outcomes_t *recent,
                                          exports_mender_plugin_strategy_admission_t *ret) {
    exports_mender_plugin_strategy_call_info_free(call);
    exports_mender_plugin_strategy_outcomes_free(recent);
    memset(ret, 0, sizeof *ret);
    ret->tag = MENDER_PLUGIN_TYPES_ADMISSION_ALLOW;
}

static bool retryable(mender_plugin_types_error_kind_t kind) {
    switch (kind) {
    case MENDER_PLUGIN_TYPES_ERROR_KIND_AUTH:
    case MENDER_PLUGIN_TYPES_ERROR_KIND_TOOL:
    case MENDER_PLUGIN_TYPES_ERROR_KIND_CANCELLED:
    case MENDER_PLUGIN_TYPES_ERROR_KIND_REJECTED:
        return false;
    default:
        return true;
    }
}

void exports_mender_plugin_strategy_on_error(exports_mender_plugin_strategy_error_event_t *event,
                                             exports_mender_plugin_strategy_outcomes_t *recent,
                                             exports_mender_plugin_strategy_decision_t *ret) {
    memset(ret, 0, sizeof *ret);
    if (!retryable(event->kind)) {
        ret->tag = MENDER_PLUGIN_TYPES_DECISION_PASS;
    } else if (event->attempt == 0 || event->attempt > n_delays) {
        ret->tag = MENDER_PLUGIN_TYPES_DECISION_FAIL;
        strategy_plugin_string_dup(&ret->val.fail, "schedule exhausted");
    } else {
        uint64_t delay = delays[event->attempt - 1];
        if (event->retry_after.is_some && event->retry_after.val > delay) {
            delay = event->retry_after.val;
        }
        ret->tag = MENDER_PLUGIN_TYPES_DECISION_RETRY;
        ret->val.retry = delay;
    }
    exports_mender_plugin_strategy_error_event_free(event);
    exports_mender_plugin_strategy_outcomes_free(recent);
}
