/* jsonutil.h: small helpers for messages about jansson values, shared by the JSON readers
 * (config.json, safetensors headers). */
#ifndef SEEK_JSONUTIL_H
#define SEEK_JSONUTIL_H

#include <jansson.h>

/* "an integer", "a string", ... for one-line error messages */
static inline const char *json_type_word(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a real number";
    case JSON_TRUE: case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}

#endif
