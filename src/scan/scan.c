/* scan.c - the import scanner (see scan.h). */
#include "scan/scan.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf/gguf.h"
#include "tensor/quant.h"
#include "tensor/types.h"

#define TEXT_LICENSE_MAX (1u << 20)
#define TEXT_FILE_MAX (16u << 20)
#define META_STR_MAX (64u << 10)      /* any metadata string but the template */
#define META_TEMPLATE_MAX (1u << 20)  /* tokenizer.chat_template */
#define META_KEY_MAX 256


static uint64_t rd_le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c < 0x80)
        return 1;
    if ((c & 0xe0) == 0xc0)
        len = 2, min = 0x80;
    else if ((c & 0xf0) == 0xe0)
        len = 3, min = 0x800;
    else if ((c & 0xf8) == 0xf0)
        len = 4, min = 0x10000;
    else
        return 0;
    if (len > n)
        return 0;
    unsigned cp = c & (0x7f >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* NULL when s is sane text: valid UTF-8, no control characters other than
 * \t \n \r (and \f when allow_ff). Otherwise what is wrong, with *at. */
static const char *text_problem(const unsigned char *s, size_t n, bool allow_ff, size_t *at)
{
    for (size_t i = 0; i < n;) {
        size_t l = utf8_len(s + i, n - i);
        if (l == 0) {
            *at = i;
            return "invalid UTF-8";
        }
        if (l == 1) {
            unsigned char c = s[i];
            if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r' && !(allow_ff && c == '\f')) || c == 0x7f) {
                *at = i;
                return c == 0 ? "NUL byte" : "control character";
            }
        }
        i += l;
    }
    return NULL;
}

const char *al_scan_sniff(const unsigned char *h, size_t n, unsigned long long size)
{
    if (n >= 4 && !memcmp(h, "GGUF", 4))
        return "gguf";
    if (n >= 4 && !memcmp(h, "\x7f" "ELF", 4))
        return "ELF executable";
    if (n >= 2 && h[0] == 'M' && h[1] == 'Z')
        return "PE executable";
    if (n >= 4) {
        uint32_t be = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
        if (be == 0xfeedface || be == 0xfeedfacf || be == 0xcefaedfe || be == 0xcffaedfe || be == 0xcafebabe)
            return "Mach-O executable";
    }
    if (n >= 2 && h[0] == '#' && h[1] == '!')
        return "script";
    if (n >= 2 && h[0] == 0x80 && h[1] >= 2 && h[1] <= 5)
        return "pickle";
    if (n >= 4 && !memcmp(h, "PK\x03\x04", 4))
        return "zip";
    if (n >= 9) {
        uint64_t hl = rd_le64(h);
        if (hl > 1 && size >= 8 && hl <= size - 8 && h[8] == '{')
            return "safetensors";
    }
    size_t at;
    /* a text prefix may end in the middle of a UTF-8 character */
    size_t m = n;
    while (m > 0 && m > n - 4 && (h[m - 1] & 0xc0) == 0x80)
        m--;
    if (m > 0 && m < n && (h[m - 1] & 0xc0) == 0xc0)
        m--;
    if (!text_problem(h, m, true, &at))
        return "text";
    return "unknown binary";
}

static const char *refuse_reason(const char *kind)
{
    if (!strcmp(kind, "pickle"))
        return "a Python pickle (can run code when loaded); only GGUF models are accepted";
    if (!strcmp(kind, "zip"))
        return "a zip archive (PyTorch checkpoints are zipped pickles); only GGUF models are accepted";
    if (!strcmp(kind, "safetensors"))
        return "a safetensors file; convert it to GGUF on the connected side";
    if (!strcmp(kind, "ELF executable") || !strcmp(kind, "PE executable") || !strcmp(kind, "Mach-O executable"))
        return "an executable; executables never enter the store";
    if (!strcmp(kind, "script"))
        return "a script (#!); executables never enter the store";
    return "of an unknown kind; only GGUF models and UTF-8 text are accepted";
}

static void check_text_file(const char *path, const al_manifest_file *f, size_t max, al_scan_report *rep)
{
    if (f->size > max) {
        al_scan_report_add(rep, false, "%s: text file is %llu bytes, over the %zu-byte limit for a %s", f->name,
                           (unsigned long long)f->size, max, f->role);
        return;
    }
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        al_scan_report_add(rep, false, "%s: cannot open: %s", f->name, strerror(errno));
        return;
    }
    unsigned char *buf = malloc(max + 1);
    size_t n = buf ? fread(buf, 1, max + 1, fp) : 0;
    fclose(fp);
    if (!buf) {
        al_scan_report_add(rep, false, "%s: out of memory", f->name);
        return;
    }
    size_t at;
    const char *why = text_problem(buf, n, true, &at);
    free(buf);
    if (why)
        al_scan_report_add(rep, false, "%s: not clean UTF-8 text (%s at byte %zu)", f->name, why, at);
    else
        al_scan_report_add(rep, true, "%s: UTF-8 text, %zu bytes (%s)", f->name, n, f->role);
}

/* Metadata keys and string values must be sane. */
static void check_metadata(const al_gguf *g, const al_manifest_file *f, al_scan_report *rep)
{
    int bad = 0;
    for (uint64_t i = 0; i < g->n_kv && bad < 8; i++) {
        const al_gguf_kv *kv = &g->kv[i];
        size_t at;
        if (kv->key.len == 0 || kv->key.len > META_KEY_MAX) {
            al_scan_report_add(rep, false, "%s: metadata key #%llu has length %llu (1..%d allowed)", f->name,
                               (unsigned long long)i, (unsigned long long)kv->key.len, META_KEY_MAX);
            bad++;
            continue;
        }
        bool key_ok = true;
        for (uint64_t j = 0; j < kv->key.len; j++)
            key_ok = key_ok && kv->key.ptr[j] > 0x20 && kv->key.ptr[j] < 0x7f;
        if (!key_ok) {
            al_scan_report_add(rep, false, "%s: metadata key #%llu has non-printable characters", f->name,
                               (unsigned long long)i);
            bad++;
            continue;
        }
        if (kv->type != AL_GGUF_STR)
            continue;
        bool is_tmpl = al_str_eq(kv->key, "tokenizer.chat_template") ||
                       (kv->key.len > 24 && !memcmp(kv->key.ptr, "tokenizer.chat_template.", 24));
        uint64_t max = is_tmpl ? META_TEMPLATE_MAX : META_STR_MAX;
        if (kv->str.len > max) {
            al_scan_report_add(rep, false, "%s: metadata '%.*s' is %llu bytes, over the %llu-byte limit", f->name,
                               (int)kv->key.len, kv->key.ptr, (unsigned long long)kv->str.len,
                               (unsigned long long)max);
            bad++;
            continue;
        }
        const char *why = text_problem((const unsigned char *)kv->str.ptr, (size_t)kv->str.len, false, &at);
        if (why) {
            al_scan_report_add(rep, false, "%s: metadata '%.*s' is not sane text (%s at byte %zu)", f->name,
                               (int)kv->key.len, kv->key.ptr, why, at);
            bad++;
        }
    }
    if (!bad)
        al_scan_report_add(rep, true, "%s: %llu metadata keys, strings are valid UTF-8 within limits", f->name,
                           (unsigned long long)g->n_kv);
}

/* True when every value of t is NaN or infinite. Stops at the first finite
 * value, so a sound tensor costs one block. Types the dequantizer does not
 * know are not judged (false). */
static bool tensor_all_nonfinite(const al_gguf_tensor *t)
{
    int64_t ne0 = (int64_t)t->ne[0];
    if (ne0 <= 0 || !t->n_elems || !t->data)
        return false;
    bool plain = t->type == AL_TYPE_F32 || t->type == AL_TYPE_F16 || t->type == AL_TYPE_BF16;
    int64_t blk = ne0 % 256 == 0 ? 256 : ne0 % 32 == 0 ? 32 : plain ? 1 : 0;
    if (!blk)
        return false;
    size_t bb = al_type_row_bytes(t->type, blk);
    if (!bb)
        return false;
    uint64_t nblocks = t->n_elems / (uint64_t)blk;
    if (nblocks * bb > t->n_bytes)
        return false;
    const unsigned char *p = t->data;
    float buf[256];
    for (uint64_t i = 0; i < nblocks; i++) {
        al_dequantize_row(t->type, p + i * bb, buf, blk);
        for (int64_t j = 0; j < blk; j++)
            if (isfinite(buf[j]))
                return false;
    }
    return true;
}

static void check_values(const al_gguf *g, const al_manifest_file *f, al_scan_report *rep)
{
    uint64_t bad = 0;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const al_gguf_tensor *t = &g->tensors[i];
        if (tensor_all_nonfinite(t)) {
            if (bad++ < 8)
                al_scan_report_add(rep, false, "%s: tensor '%.*s': all %llu values are NaN or infinite",
                                   f->name, (int)(t->name.len > 96 ? 96 : t->name.len), t->name.ptr,
                                   (unsigned long long)t->n_elems);
        }
    }
    if (bad > 8)
        al_scan_report_add(rep, false, "%s: %llu more tensors are all NaN or infinite", f->name,
                           (unsigned long long)(bad - 8));
    if (!bad)
        al_scan_report_add(rep, true, "%s: no tensor is all NaN/infinite", f->name);
}

static void check_gguf(const char *path, const al_manifest_file *f, bool is_model, al_scan_report *rep)
{
    al_error err = {0};
    al_gguf *g = NULL;
    al_gguf_params gp = {.allow_unsupported_types = false};
    if (al_gguf_open(path, &gp, &g, &err)) {
        al_scan_report_add(rep, false, "%s: GGUF validation failed: %s", f->name, err.msg);
        return;
    }
    al_scan_report_add(rep, true, "%s: GGUF v%u structure valid: %llu tensors, %llu metadata keys, types supported",
                       f->name, g->version, (unsigned long long)g->n_tensors, (unsigned long long)g->n_kv);
    check_metadata(g, f, rep);
    check_values(g, f, rep);
    al_str tmpl = {0};
    bool has_tmpl = al_gguf_get_str(g, "tokenizer.chat_template", &tmpl);
    bool has_tokenizer = al_gguf_find(g, "tokenizer.ggml.model") != NULL;
    if (is_model) {
        /* architecture, hyper-parameters, required tensors and shapes */
        al_model *m = NULL;
        al_model_params mp = al_model_default_params();
        mp.pack_weights = false; /* checked, not run */
        err.msg[0] = 0;
        if (al_model_load(path, &mp, &m, &err)) {
            al_scan_report_add(rep, false, "%s: the engine cannot run it: %s", f->name, err.msg);
        } else {
            al_model_info in;
            al_model_get_info(m, &in);
            al_scan_report_add(rep, true, "%s: architecture %s, %u layers, types %s: runnable", f->name, in.arch,
                               in.n_layer, in.type_mix);
            al_model_free(m);
        }
    }
    if (is_model || has_tokenizer) {
        if (!has_tokenizer) {
            al_scan_report_add(rep, false, "%s: no tokenizer (tokenizer.ggml.model missing)", f->name);
        } else {
            al_vocab *v = NULL;
            err.msg[0] = 0;
            if (al_vocab_load(path, &v, &err))
                al_scan_report_add(rep, false, "%s: tokenizer refused: %s", f->name, err.msg);
            else {
                al_scan_report_add(rep, true, "%s: tokenizer loads (%d tokens)", f->name, al_vocab_n_tokens(v));
                al_vocab_free(v);
            }
        }
    }
    if (has_tmpl) {
        al_template *t = NULL;
        err.msg[0] = 0;
        if (al_template_parse(tmpl.ptr, (size_t)tmpl.len, &t, &err))
            al_scan_report_add(rep, false, "%s: chat template does not parse in the sandbox: %s", f->name, err.msg);
        else {
            al_scan_report_add(rep, true, "%s: chat template parses (%llu bytes)", f->name,
                               (unsigned long long)tmpl.len);
            al_template_free(t);
        }
    } else if (is_model) {
        al_scan_report_add(rep, true, "%s: no chat template (a built-in format will be needed for chat)", f->name);
    }
    al_gguf_close(g);
}

void al_scan_file(void *user, const char *path, const al_manifest_file *f, al_scan_report *rep)
{
    (void)user;
    unsigned char head[4096];
    size_t n = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        al_scan_report_add(rep, false, "%s: cannot open: %s", f->name, strerror(errno));
        return;
    }
    ssize_t r = read(fd, head, sizeof(head));
    close(fd);
    if (r > 0)
        n = (size_t)r;
    const char *kind = al_scan_sniff(head, n, (unsigned long long)f->size);
    if (!strcmp(f->role, "model")) {
        if (strcmp(kind, "gguf")) {
            al_scan_report_add(rep, false, "%s: refused: the model file is %s", f->name,
                               !strcmp(kind, "text") ? "text, not a GGUF model" : refuse_reason(kind));
            return;
        }
        check_gguf(path, f, true, rep);
    } else if (!strcmp(f->role, "license")) {
        if (strcmp(kind, "text") && !(n == 0 && f->size == 0)) {
            al_scan_report_add(rep, false, "%s: refused: the license is %s", f->name,
                               !strcmp(kind, "gguf") ? "a GGUF file, not text" : refuse_reason(kind));
            return;
        }
        check_text_file(path, f, TEXT_LICENSE_MAX, rep);
    } else {
        if (!strcmp(kind, "gguf"))
            check_gguf(path, f, false, rep);
        else if (!strcmp(kind, "text"))
            check_text_file(path, f, TEXT_FILE_MAX, rep);
        else
            al_scan_report_add(rep, false, "%s: refused: it is %s", f->name, refuse_reason(kind));
    }
}
