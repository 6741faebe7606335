/* cmd_apikey.c - `airlock apikey create|list|revoke`. Each change is audited
 * (never the secret). */
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "audit/audit.h"
#include "cli/cli.h"
#include "cli/util.h"
#include "policy/apikey.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: airlock apikey create --name NAME [--scope LIST] [--models GLOBS] [--rpm N]\n"
            "                             [--tpm N] [--expires 90d|12h|30m|never] [--store DIR]\n"
            "       airlock apikey list [--store DIR]\n"
            "       airlock apikey revoke NAME|ID [--store DIR]\n\n"
            "  --scope   comma list of " AL_APIKEY_SCOPES " (default " AL_APIKEY_DEFAULT_SCOPES ")\n"
            "  --models  comma list of model globs the key may use, e.g. 'qwen3*' (default all)\n"
            "  --rpm     requests per minute (0 = unlimited)   --tpm  tokens per minute\n"
            "The secret is printed once; only a salted hash is stored in STORE/keys.db.\n"
            "Store: --store DIR, else $AIRLOCK_STORE, else ./var/airlock.\n");
}

static const char *cli_actor(void)
{
    static char buf[80];
    const char *u = getenv("SUDO_USER");
    if (!u || !*u) {
        struct passwd *pw = getpwuid(getuid());
        u = pw ? pw->pw_name : NULL;
    }
    if (u)
        snprintf(buf, sizeof(buf), "%s", u);
    else
        snprintf(buf, sizeof(buf), "uid:%u", (unsigned)getuid());
    return buf;
}

/* Appends one CLI action to STORE/audit; failures are reported, not fatal. */
static void cli_audit(const char *store, const char *action, int status, const char *detail)
{
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/audit", store);
    al_audit *a = NULL;
    al_error err = {0};
    if (al_audit_open(dir, &a, &err) != AL_OK) {
        fprintf(stderr, "airlock: warning: audit log: %s\n", err.msg);
        return;
    }
    al_audit_event ev = {0};
    ev.actor = cli_actor();
    ev.client = "cli";
    ev.action = action;
    ev.prompt_tokens = ev.completion_tokens = -1;
    ev.status = status;
    ev.detail = detail;
    if (al_audit_append(a, &ev, &err) != AL_OK)
        fprintf(stderr, "airlock: warning: audit log: %s\n", err.msg);
    al_audit_close(a);
}

int cmd_apikey(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *sub = argv[1];
    const char *store = NULL, *name = NULL, *scope = NULL, *models = NULL, *expires = NULL;
    const char *target = NULL;
    int64_t rpm = 0, tpm = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool takes = !strcmp(a, "--store") || !strcmp(a, "--name") || !strcmp(a, "--scope") ||
                     !strcmp(a, "--models") || !strcmp(a, "--rpm") || !strcmp(a, "--tpm") ||
                     !strcmp(a, "--expires");
        if (takes && !v) {
            cli_errorf("apikey", "%s needs a value", a);
            return 2;
        }
        if (!strcmp(a, "--store"))
            store = v;
        else if (!strcmp(a, "--name"))
            name = v;
        else if (!strcmp(a, "--scope"))
            scope = v;
        else if (!strcmp(a, "--models"))
            models = v;
        else if (!strcmp(a, "--expires"))
            expires = v;
        else if (!strcmp(a, "--rpm") || !strcmp(a, "--tpm")) {
            int64_t *dst = a[2] == 'r' ? &rpm : &tpm;
            if (!cli_parse_i64(v, 0, INT64_C(1) << 40, dst)) {
                cli_errorf("apikey", "%s: expected a number >= 0, not '%s'", a, v);
                return 2;
            }
        } else if (a[0] != '-' && !target) {
            target = a;
            continue;
        } else {
            cli_errorf("apikey", "unknown option '%s'", a);
            return 2;
        }
        i++;
    }
    store = cli_store_dir(store);
    al_keyring *kr = NULL;
    al_error err = {0};

    if (!strcmp(sub, "create")) {
        if (!name) {
            cli_errorf("apikey", "create needs --name");
            return 2;
        }
        int64_t exp_s = 0;
        if (expires && al_apikey_parse_duration(expires, &exp_s, &err) != AL_OK) {
            cli_errorf("apikey", "%s", err.msg);
            return 2;
        }
        if (al_keyring_open(store, &kr, &err) != AL_OK) {
            cli_errorf("apikey", "%s", err.msg);
            return 1;
        }
        al_apikey_spec sp = {.name = name, .scopes = scope, .models = models, .rpm = rpm,
                             .tpm = tpm, .expires_unix = exp_s ? (int64_t)time(NULL) + exp_s : 0};
        char secret[AL_APIKEY_SECRET_LEN + 1], id[17];
        al_status st = al_keyring_create(kr, &sp, secret, id, &err);
        al_keyring_close(kr);
        if (st) {
            cli_errorf("apikey", "%s", err.msg);
            return st == AL_ERR_ARG ? 2 : 1;
        }
        printf("%s\n", secret);
        fflush(stdout);
        memset(secret, 0, sizeof(secret));
        fprintf(stderr, "created key '%s' (id %s, scopes %s%s%s); the secret above is shown only "
                "once\n", name, id, scope ? scope : AL_APIKEY_DEFAULT_SCOPES,
                models ? ", models " : "", models ? models : "");
        char detail[512];
        snprintf(detail, sizeof(detail), "name=%s id=%s scopes=%s models=%s rpm=%lld tpm=%lld",
                 name, id, scope ? scope : AL_APIKEY_DEFAULT_SCOPES, models ? models : "*",
                 (long long)rpm, (long long)tpm);
        cli_audit(store, "apikey.create", 0, detail);
        return 0;
    }
    if (!strcmp(sub, "list")) {
        if (al_keyring_open(store, &kr, &err) != AL_OK) {
            cli_errorf("apikey", "%s", err.msg);
            return 1;
        }
        al_apikey_info *v = NULL;
        size_t n = 0;
        al_status st = al_keyring_list(kr, &v, &n, &err);
        al_keyring_close(kr);
        if (st) {
            cli_errorf("apikey", "%s", err.msg);
            return 1;
        }
        printf("%-16s  %-20s  %-8s  %-36s  %-12s  %6s  %8s  %s\n", "ID", "NAME", "STATE", "SCOPES",
               "MODELS", "RPM", "TPM", "EXPIRES");
        time_t now = time(NULL);
        for (size_t i = 0; i < n; i++) {
            char exp[32] = "never";
            if (v[i].expires_unix) {
                time_t t = (time_t)v[i].expires_unix;
                struct tm tm;
                gmtime_r(&t, &tm);
                strftime(exp, sizeof(exp), "%Y-%m-%dT%H:%M:%SZ", &tm);
            }
            const char *state = v[i].revoked ? "revoked"
                                : (v[i].expires_unix && v[i].expires_unix <= now) ? "expired"
                                                                                   : "active";
            printf("%-16s  %-20s  %-8s  %-36s  %-12s  %6lld  %8lld  %s\n", v[i].id, v[i].name,
                   state, v[i].scopes, v[i].models[0] ? v[i].models : "*", (long long)v[i].rpm,
                   (long long)v[i].tpm, exp);
        }
        free(v);
        return 0;
    }
    if (!strcmp(sub, "revoke")) {
        if (!target) {
            cli_errorf("apikey", "revoke needs a key name or id");
            return 2;
        }
        if (al_keyring_open(store, &kr, &err) != AL_OK) {
            cli_errorf("apikey", "%s", err.msg);
            return 1;
        }
        al_status st = al_keyring_revoke(kr, target, &err);
        al_keyring_close(kr);
        if (st) {
            cli_errorf("apikey", "%s", err.msg);
            return 1;
        }
        printf("revoked %s\n", target);
        char detail[160];
        snprintf(detail, sizeof(detail), "key=%s", target);
        cli_audit(store, "apikey.revoke", 0, detail);
        return 0;
    }
    cli_errorf("apikey", "unknown action '%s' (create, list, revoke)", sub);
    return 2;
}
