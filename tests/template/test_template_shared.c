/* test_template_shared.c - every case of ../shared/templates/NAME.expected.json
 * renders byte for byte (real chat templates of popular models). */
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "airlock.h"

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)len + 1);
    if (b && fread(b, 1, (size_t)len, f) != (size_t)len) {
        free(b);
        b = NULL;
    }
    if (b)
        b[len] = 0;
    fclose(f);
    if (n)
        *n = (size_t)len;
    return b;
}

static void show_diff(const char *want, const char *got)
{
    size_t i = 0;
    while (want[i] && want[i] == got[i])
        i++;
    size_t from = i > 40 ? i - 40 : 0;
    fprintf(stderr, "    first difference at byte %zu\n    want: ...%.80s\n    got:  ...%.80s\n", i, want + from,
            got + from);
}

int main(void)
{
    const char *shared = getenv("AIRLOCK_SHARED");
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/templates", shared ? shared : "../shared");
    DIR *d = opendir(dir);
    if (!d) {
        printf("SKIP: %s not found\n", dir);
        return 77;
    }
    int n_files = 0, n_cases = 0, n_fail = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t nl = strlen(e->d_name);
        if (nl < 14 || strcmp(e->d_name + nl - 14, ".expected.json"))
            continue;
        n_files++;
        char path[8192];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        json_error_t je;
        json_t *root = json_load_file(path, 0, &je);
        if (!root) {
            fprintf(stderr, "FAIL %s: bad JSON: %s\n", e->d_name, je.text);
            n_fail++;
            continue;
        }
        const char *tname = json_string_value(json_object_get(root, "template"));
        const char *bos = json_string_value(json_object_get(root, "bos_token"));
        const char *eos = json_string_value(json_object_get(root, "eos_token"));
        const char *now = json_string_value(json_object_get(root, "now"));
        snprintf(path, sizeof(path), "%s/%s", dir, tname ? tname : "?");
        size_t slen;
        char *src = slurp(path, &slen);
        al_template *t = NULL;
        al_error err = {0};
        if (!src || al_template_parse(src, slen, &t, &err)) {
            fprintf(stderr, "FAIL %s: cannot parse %s: %s\n", e->d_name, path, src ? err.msg : "unreadable");
            n_fail++;
            free(src);
            json_decref(root);
            continue;
        }
        json_t *cases = json_object_get(root, "cases"), *c;
        size_t i;
        json_array_foreach(cases, i, c) {
            n_cases++;
            const char *name = json_string_value(json_object_get(c, "name"));
            const char *want = json_string_value(json_object_get(c, "expected"));
            json_t *agp = json_object_get(c, "add_generation_prompt");
            json_t *tools = json_object_get(c, "tools");
            char *msgs = json_dumps(json_object_get(c, "messages"), JSON_ENCODE_ANY);
            char *tools_s = tools ? json_dumps(tools, JSON_ENCODE_ANY) : NULL;
            al_template_inputs in = {
                .messages_json = msgs,
                .tools_json = tools_s,
                .add_generation_prompt = agp ? json_is_true(agp) : true,
                .bos_token = bos,
                .eos_token = eos,
                .now = now,
            };
            char *out = NULL;
            size_t out_n = 0;
            al_status st = al_template_render(t, &in, &out, &out_n, &err);
            if (st) {
                fprintf(stderr, "FAIL %s [%s]: %s\n", e->d_name, name, err.msg);
                n_fail++;
            } else if (!want || out_n != strlen(want) || memcmp(out, want, out_n)) {
                fprintf(stderr, "FAIL %s [%s]: output differs\n", e->d_name, name);
                show_diff(want ? want : "", out);
                n_fail++;
            } else {
                printf("ok   %s [%s]\n", e->d_name, name);
            }
            free(out);
            free(msgs);
            free(tools_s);
        }
        al_template_free(t);
        free(src);
        json_decref(root);
    }
    closedir(d);
    printf("%d files, %d cases, %d failed\n", n_files, n_cases, n_fail);
    if (n_files == 0 || n_cases == 0) {
        fprintf(stderr, "FAIL: no cases found in %s\n", dir);
        return 1;
    }
    return n_fail ? 1 : 0;
}
