/* cli.h - the airlock command's subcommands. Each lives in cmd_<name>.c and
 * returns the process exit status (0 ok, 1 failure, 2 usage error). */
#ifndef AL_CLI_H
#define AL_CLI_H

int cmd_info(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_bench_tokenize(int argc, char **argv);
int cmd_logits(int argc, char **argv);
int cmd_embed(int argc, char **argv);
int cmd_rerank(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_keygen(int argc, char **argv);
int cmd_bundle(int argc, char **argv);
int cmd_trust(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_approve(int argc, char **argv);
int cmd_reject(int argc, char **argv);
int cmd_reopen(int argc, char **argv);
int cmd_policy(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_show(int argc, char **argv);
int cmd_rm(int argc, char **argv);
int cmd_gc(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_doctor(int argc, char **argv);
int cmd_apikey(int argc, char **argv);
int cmd_audit(int argc, char **argv);
int cmd_sandbox_selftest(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_template(int argc, char **argv);
int cmd_push(int argc, char **argv);
int cmd_pull(int argc, char **argv);
/* more subcommands: add the declaration here and a row in main.c */

/* Prints "airlock CMD: message" to stderr (printf-style). */
void cli_errorf(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
