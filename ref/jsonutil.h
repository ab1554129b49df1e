/* jsonutil.h: small helpers for messages about jansson values, shared by the JSON readers
 * (config.json, safetensors headers). */
#ifndef SEEK_JSONUTIL_H
#define SEEK_JSONUTIL_H

#include <jansson.h>

#include "common.h"

/* jansson's reason in one line: "NAME: invalid JSON at line L column C: TEXT" where jansson knows
 * the position, else "NAME: invalid JSON: TEXT" (jansson reports line -1 then, which must never
 * reach a user as "line -1"). Read files with read_text_file and parse them with json_loadb, so a
 * file that cannot be opened gets the usual "PATH: cannot open: REASON". Returns -1. */
static inline int json_parse_fail(SeekErr *err, const char *name, const json_error_t *je) {
    if (je->line > 0) return seek_fail(err, "%s: invalid JSON at line %d column %d: %s", name, je->line, je->column, je->text);
    return seek_fail(err, "%s: invalid JSON: %s", name, je->text);
}

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
