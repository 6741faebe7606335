/* tmpl_json.c - JSON text (messages, tools, extra variables) to template
 * values, via jansson. Numbers keep Python's int/float distinction; object
 * keys keep their order. */
#include "template/tmpl.h"

#include <jansson.h>
#include <string.h>

#include "util/error.h"

static char *dup_bytes(tmpl_arena *a, const char *p, size_t n)
{
    char *d = tmpl_alloc(a, n + 1);
    if (d && n)
        memcpy(d, p, n);
    return d;
}

static bool conv(tmpl_arena *a, json_t *j, tv *out)
{
    switch (json_typeof(j)) {
    case JSON_NULL: *out = tv_none(); return true;
    case JSON_TRUE: *out = tv_bool(true); return true;
    case JSON_FALSE: *out = tv_bool(false); return true;
    case JSON_INTEGER: *out = tv_int((int64_t)json_integer_value(j)); return true;
    case JSON_REAL: *out = tv_float(json_real_value(j)); return true;
    case JSON_STRING: {
        size_t n = json_string_length(j);
        char *p = dup_bytes(a, json_string_value(j), n);
        if (!p)
            return false;
        *out = tv_str(p, n);
        return true;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(j);
        tv_list *l = tv_list_new(a, n);
        if (!l)
            return false;
        for (size_t i = 0; i < n; i++)
            if (!conv(a, json_array_get(j, i), &l->items[l->n++]))
                return false;
        out->type = TV_LIST;
        out->u.list = l;
        return true;
    }
    case JSON_OBJECT: {
        tv_dict *d = tv_dict_new(a, json_object_size(j));
        if (!d)
            return false;
        const char *key;
        json_t *val;
        json_object_foreach(j, key, val) {
            size_t kn = strlen(key);
            char *k = dup_bytes(a, key, kn);
            tv v;
            if (!k || !conv(a, val, &v) || !tv_dict_set(a, d, k, kn, v))
                return false;
        }
        out->type = TV_DICT;
        out->u.dict = d;
        return true;
    }
    }
    return false;
}

al_status tmpl_json_parse(tmpl_arena *a, const char *text, const char *what, tv *out, al_error *err)
{
    json_error_t je;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &je);
    if (!j)
        return al_err(err, AL_ERR_FORMAT, "%s: invalid JSON at line %d column %d: %s", what, je.line, je.column,
                      je.text);
    bool ok = conv(a, j, out);
    json_decref(j);
    if (!ok)
        return al_err(err, AL_ERR_LIMIT, "%s: the JSON exceeds the template memory limit", what);
    return AL_OK;
}
