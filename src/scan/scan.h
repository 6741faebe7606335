/* scan.h - the import scanner: decides whether a file of a bundle may enter
 * the store, collecting every reason it may not.
 *
 * A "model" file must be a GGUF that passes the engine's full validation
 * (al_gguf_open: structure, tensor types, offsets; al_model_load:
 * architecture, required tensors, shapes; al_vocab_load: tokenizer;
 * al_template_parse: the chat template parses in the sandbox) and whose
 * metadata strings are sane (valid UTF-8, bounded lengths, no control
 * characters but \t \n \r). A "license" must be UTF-8 text (<= 1 MiB). A
 * "file" may be another GGUF (validated the same way, e.g. a vocab-only
 * file) or UTF-8 text (<= 16 MiB). Everything else is refused with what it
 * is: pickle, zip (PyTorch), safetensors, ELF/PE/Mach-O executables, shell
 * scripts, unknown binary. */
#ifndef AL_SCAN_SCAN_H
#define AL_SCAN_SCAN_H

#include "store/store.h"

/* An al_store_scan_fn: user is unused (NULL). */
void al_scan_file(void *user, const char *path, const al_manifest_file *file, al_scan_report *rep);

/* What the first bytes of a file say it is: "gguf", "pickle", "zip",
 * "safetensors", "ELF executable", "PE executable", "Mach-O executable",
 * "script", "text" or "unknown binary". */
const char *al_scan_sniff(const unsigned char *head, size_t n, unsigned long long file_size);

#endif
