/* fuzz_gguf.c - libFuzzer entry for the GGUF reader, the model loader and
 * the tokenizer loader. The input is written to a temporary file (the
 * loaders take a path and memory-map it); the model is loaded without
 * packing the weights and without the data scan, so the work per input is
 * bounded by the metadata and tensor table, not by tensor sizes. A model
 * that loads has its info and vocabulary read back. Also built without
 * libFuzzer as a corpus replayer (fuzz_replay.c). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "airlock.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char g_path[64];

static bool write_input(const uint8_t *data, size_t size)
{
    if (!g_path[0]) {
        snprintf(g_path, sizeof(g_path), "/tmp/fuzz_gguf_XXXXXX");
        int fd = mkstemp(g_path);
        if (fd < 0)
            return false;
        close(fd);
    }
    FILE *f = fopen(g_path, "wb");
    if (!f)
        return false;
    bool ok = fwrite(data, 1, size, f) == size;
    return fclose(f) == 0 && ok;
}

static void use_vocab(const al_vocab *v)
{
    int32_t n = al_vocab_n_tokens(v);
    char piece[64];
    for (int32_t t = 0; t < n && t < 64; t++) {
        (void)al_vocab_is_eog(v, t);
        if (al_token_to_piece(v, t, piece, sizeof(piece), true) > (int32_t)(1 << 20))
            abort();
    }
    int32_t ids[64];
    size_t n_ids = 0;
    static const char text[] = "Hello world, <s> 123 \xc3\xa9\xe2\x96\x81 \xf0\x9f\x99\x8f\n\n";
    if (al_tokenize(v, text, sizeof(text) - 1, true, true, ids, 64, &n_ids, NULL) == AL_OK) {
        if (n_ids > 64)
            abort();
        al_detok *d = al_detok_new(v, false);
        for (size_t i = 0; d && i < n_ids; i++) {
            size_t k;
            (void)al_detok_push(d, ids[i], &k);
        }
        if (d) {
            size_t k;
            (void)al_detok_flush(d, &k);
            al_detok_free(d);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 20) || !write_input(data, size))
        return 0;
    al_model_params p = al_model_default_params();
    p.pack_weights = false;
    p.check_tensors = false;
    al_model *m = NULL;
    al_error err;
    if (al_model_load(g_path, &p, &m, &err) == AL_OK) {
        al_model_info info;
        al_model_get_info(m, &info);
        (void)al_model_chat_template(m);
        (void)al_model_template_error(m);
        (void)al_model_kv_bytes(m, 256, 1);
        use_vocab(al_model_vocab(m));
        al_model_free(m);
    } else if (m) {
        abort(); /* the contract: *out is NULL on failure */
    } else if (!err.msg[0]) {
        abort(); /* a failure always says why */
    }
    al_vocab *v = NULL;
    if (al_vocab_load(g_path, &v, &err) == AL_OK) {
        use_vocab(v);
        al_vocab_free(v);
    }
    return 0;
}
