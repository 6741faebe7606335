/*
 * grammar_match.c - the token-level grammar matcher (see grammar.h).
 *
 * A parse state is a set of stacks. A stack is a chain of nodes in an
 * arena: the top node's pos is a byte-set element the next byte must match;
 * each node below holds the position to resume at when the rule above it
 * ends. A stack that has completed the root is ACCEPT.
 *
 * States are interned (canonical: stacks sorted by a structural hash,
 * duplicates removed) and transitions between them are cached per byte, so
 * the matcher lazily builds a DFA over the grammar's pushdown automaton.
 * Inside a string, the state after one more ordinary character is the same
 * state again, so walking the vocabulary trie costs one table lookup per
 * trie node once the few states involved are known.
 */
#include "sampling/grammar_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NONE UINT32_MAX
#define ACCEPT (UINT32_MAX - 1)
#define KEY_SEP UINT32_MAX
#define MAX_STACK_DEPTH 4096  /* deeper stacks are dropped */
#define MAX_STACKS 2048       /* stacks per state; more are dropped */
#define MAX_STATES 16384      /* interned states before the DFA is rebuilt */
#define WALK_WORK_MAX (1u << 20) /* work units one mask may spend (some 20-60 ms) */
#define T_UNKNOWN 0u
#define T_DEAD 1u

/* ---------------------------------------------------------------- cache */

typedef struct centry {
    unsigned char sha[32]; /* the grammar's */
    uint64_t khash;
    uint32_t *key;
    uint32_t klen;
    uint64_t used; /* 0: empty */
    uint64_t *mask;
} centry;

struct al_grammar_cache {
    int32_t n_vocab;
    size_t words;
    uint32_t cap;
    centry *e;
    uint64_t tick, hits, misses;
};

al_grammar_cache *al_grammar_cache_new(int32_t n_vocab, uint32_t capacity)
{
    if (n_vocab <= 0 || capacity == 0)
        return NULL;
    al_grammar_cache *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->e = calloc(capacity, sizeof *c->e);
    if (!c->e) {
        free(c);
        return NULL;
    }
    c->n_vocab = n_vocab;
    c->words = ((size_t)n_vocab + 63) / 64;
    c->cap = capacity;
    return c;
}

void al_grammar_cache_free(al_grammar_cache *c)
{
    if (!c)
        return;
    for (uint32_t i = 0; i < c->cap; i++) {
        free(c->e[i].key);
        free(c->e[i].mask);
    }
    free(c->e);
    free(c);
}

void al_grammar_cache_stats(const al_grammar_cache *c, uint64_t *hits, uint64_t *misses)
{
    *hits = c ? c->hits : 0;
    *misses = c ? c->misses : 0;
}

static centry *cache_find(al_grammar_cache *c, const unsigned char *sha, uint64_t khash, const uint32_t *key,
                          uint32_t klen)
{
    for (uint32_t i = 0; i < c->cap; i++) {
        centry *e = &c->e[i];
        if (e->used && e->khash == khash && e->klen == klen && !memcmp(e->sha, sha, sizeof e->sha) &&
            !memcmp(e->key, key, (size_t)klen * sizeof *key)) {
            e->used = ++c->tick;
            c->hits++;
            return e;
        }
    }
    return NULL;
}

/* The least recently used entry, emptied and re-keyed; NULL when out of memory. */
static centry *cache_claim(al_grammar_cache *c, const unsigned char *sha, uint64_t khash, const uint32_t *key,
                           uint32_t klen)
{
    centry *v = &c->e[0];
    for (uint32_t i = 1; i < c->cap && v->used; i++)
        if (c->e[i].used < v->used)
            v = &c->e[i];
    if (!v->mask && !(v->mask = malloc(c->words * sizeof *v->mask)))
        return NULL;
    uint32_t *k = realloc(v->key, (klen ? klen : 1) * sizeof *k);
    if (!k)
        return NULL;
    memcpy(k, key, (size_t)klen * sizeof *k);
    v->key = k;
    v->klen = klen;
    memcpy(v->sha, sha, sizeof v->sha);
    v->khash = khash;
    v->used = ++c->tick;
    c->misses++;
    return v;
}

/* -------------------------------------------------------------- matcher */

typedef struct snode {
    uint32_t pos;    /* element index */
    uint32_t parent; /* node index, or NONE */
    uint32_t depth;
    uint64_t hash;   /* structural: of pos and the chain below */
} snode;

typedef struct dstate {
    uint32_t tops_off, n_tops; /* in m->stops */
    uint32_t key_off, key_len; /* in m->keys */
    uint64_t khash;
    uint32_t *trans;           /* (256) lazily; T_UNKNOWN, T_DEAD or id + 2 */
    bool accept;               /* some stack completed the root */
    bool done;                 /* every stack completed the root */
} dstate;

struct al_grammar_matcher {
    const al_grammar *g;
    const al_token_trie *trie;
    al_grammar_cache *cache;
    bool own_cache;
    snode *nodes;
    uint32_t n_nodes, cap_nodes;
    dstate *states;
    uint32_t n_states, cap_states;
    uint32_t *stops; /* interned states' tops */
    size_t n_stops, cap_stops;
    uint32_t *keys;  /* interned states' keys */
    size_t n_keys, cap_keys;
    uint32_t *htab;  /* state id + 1 by key hash; 0 empty */
    uint32_t hcap;
    uint32_t cur;    /* current state */
    /* scratch */
    uint32_t *tmp;   /* tops under construction */
    size_t n_tmp, cap_tmp;
    uint32_t *work;  /* expansion work list: (pos, parent) pairs */
    size_t cap_work;
    uint32_t *kbuf;  /* key under construction */
    size_t n_kbuf, cap_kbuf;
    uint32_t *lvl;   /* (trie max_depth + 1) state per trie depth */
    bool oom;
    /* a mask's work is bounded: an ambiguous grammar with thousands of
     * stacks per state cannot stall the caller (the scheduler) */
    uint64_t work_done;  /* transitions computed: stacks stepped, made, and key length */
    uint64_t work_limit; /* UINT64_MAX: none */
    bool over_budget;    /* the last walk stopped early: its mask is a subset */
};

static bool grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return true;
    size_t c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    void *np = realloc(*p, c * elem);
    if (!np)
        return false;
    *p = np;
    *cap = c;
    return true;
}

static uint64_t mixh(uint64_t h, uint64_t x)
{
    h ^= x + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
    h *= 0xC2B2AE3D27D4EB4Full;
    return h ^ (h >> 29);
}

#define ACCEPT_HASH 0x5EEDF00DCAFEBEEFull

static uint32_t new_node(al_grammar_matcher *m, uint32_t pos, uint32_t parent)
{
    if (m->n_nodes == m->cap_nodes) {
        size_t c = m->cap_nodes;
        if (!grow((void **)&m->nodes, &c, (size_t)m->n_nodes + 1, sizeof *m->nodes) || c >= NONE - 2) {
            m->oom = true;
            return NONE;
        }
        m->cap_nodes = (uint32_t)c;
    }
    snode *n = &m->nodes[m->n_nodes];
    n->pos = pos;
    n->parent = parent;
    n->depth = parent == NONE ? 1 : m->nodes[parent].depth + 1;
    n->hash = mixh(parent == NONE ? 0x1234567ull : m->nodes[parent].hash, pos);
    return m->n_nodes++;
}

static bool push_tmp(al_grammar_matcher *m, uint32_t top)
{
    if (m->n_tmp >= MAX_STACKS * 4)
        return true; /* an ambiguous grammar: the extra stacks are dropped */
    if (!grow((void **)&m->tmp, &m->cap_tmp, m->n_tmp + 1, sizeof *m->tmp)) {
        m->oom = true;
        return false;
    }
    m->tmp[m->n_tmp++] = top;
    return true;
}

/* Expands the stack (pos, parent) until every branch has a byte set on top
 * (or completed the root), appending the tops to m->tmp. */
static void expand(al_grammar_matcher *m, uint32_t pos, uint32_t parent)
{
    const al_grammar *g = m->g;
    size_t sp = 0;
    if (!grow((void **)&m->work, &m->cap_work, 2, sizeof *m->work)) {
        m->oom = true;
        return;
    }
    m->work[sp++] = pos;
    m->work[sp++] = parent;
    while (sp) {
        parent = m->work[--sp];
        pos = m->work[--sp];
        for (;;) {
            uint32_t e = g->elems[pos];
            if (GE_KIND(e) == GE_SET) {
                uint32_t n = new_node(m, pos, parent);
                if (n != NONE)
                    push_tmp(m, n);
                break;
            }
            if (GE_KIND(e) == GE_END) {
                if (parent == NONE) {
                    push_tmp(m, ACCEPT);
                    break;
                }
                pos = m->nodes[parent].pos;
                parent = m->nodes[parent].parent;
                continue;
            }
            /* a reference: push the continuation unless it is the end of
             * the alternative (a tail call), then each alternative */
            uint32_t r = GE_ARG(e), np = parent;
            if (GE_KIND(g->elems[pos + 1]) != GE_END) {
                if (parent != NONE && m->nodes[parent].depth >= MAX_STACK_DEPTH)
                    break; /* too deep: this branch is dropped */
                np = new_node(m, pos + 1, parent);
                if (np == NONE)
                    return;
            }
            uint32_t a0 = g->rule_alt[r], a1 = g->rule_alt[r + 1];
            if (!grow((void **)&m->work, &m->cap_work, sp + 2 * (size_t)(a1 - a0), sizeof *m->work)) {
                m->oom = true;
                return;
            }
            for (uint32_t a = a1; a > a0; a--) {
                m->work[sp++] = g->alt_start[a - 1];
                m->work[sp++] = np;
            }
            break;
        }
    }
}

static uint64_t top_hash(const al_grammar_matcher *m, uint32_t t)
{
    return t == ACCEPT ? ACCEPT_HASH : m->nodes[t].hash;
}

static bool same_stack(const al_grammar_matcher *m, uint32_t a, uint32_t b)
{
    while (a != b) {
        if (a == NONE || b == NONE || a == ACCEPT || b == ACCEPT)
            return false;
        if (m->nodes[a].pos != m->nodes[b].pos || m->nodes[a].hash != m->nodes[b].hash)
            return false;
        a = m->nodes[a].parent;
        b = m->nodes[b].parent;
    }
    return true;
}

static int cmp_top(const void *a, const void *b, void *arg)
{
    const al_grammar_matcher *m = arg;
    uint64_t x = top_hash(m, *(const uint32_t *)a), y = top_hash(m, *(const uint32_t *)b);
    return x < y ? -1 : x > y;
}

/* Sorts m->tmp by stack hash and drops duplicate stacks. */
static void canonicalise(al_grammar_matcher *m)
{
    uint32_t *t = m->tmp;
    size_t n = m->n_tmp;
    if (n <= 1)
        return;
    if (n <= 16) {
        for (size_t i = 1; i < n; i++) {
            uint32_t v = t[i];
            uint64_t h = top_hash(m, v);
            size_t j = i;
            while (j > 0 && top_hash(m, t[j - 1]) > h) {
                t[j] = t[j - 1];
                j--;
            }
            t[j] = v;
        }
    } else
        qsort_r(t, n, sizeof *t, cmp_top, m);
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        bool dup = false;
        uint64_t h = top_hash(m, t[i]);
        for (size_t j = w; j > 0 && top_hash(m, t[j - 1]) == h; j--)
            if (same_stack(m, t[j - 1], t[i])) {
                dup = true;
                break;
            }
        if (!dup)
            t[w++] = t[i];
    }
    if (w > MAX_STACKS)
        w = MAX_STACKS;
    m->n_tmp = w;
}

/* The key of the stacks in m->tmp (canonical order) into m->kbuf. */
static bool build_key(al_grammar_matcher *m, uint64_t *khash)
{
    m->n_kbuf = 0;
    uint64_t h = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < m->n_tmp; i++) {
        uint32_t t = m->tmp[i];
        h = mixh(h, top_hash(m, t));
        size_t need = m->n_kbuf + 2 + (t == ACCEPT ? 0 : m->nodes[t].depth);
        if (!grow((void **)&m->kbuf, &m->cap_kbuf, need, sizeof *m->kbuf)) {
            m->oom = true;
            return false;
        }
        if (t == ACCEPT)
            m->kbuf[m->n_kbuf++] = ACCEPT;
        else
            for (uint32_t n = t; n != NONE; n = m->nodes[n].parent)
                m->kbuf[m->n_kbuf++] = m->nodes[n].pos;
        m->kbuf[m->n_kbuf++] = KEY_SEP;
    }
    *khash = h;
    return true;
}

/* The id of the state whose stacks are in m->tmp (interned if new), or
 * NONE when out of memory or when MAX_STATES are in use. Nodes made since
 * node_mark are rolled back when the state was known. */
static uint32_t intern(al_grammar_matcher *m, uint32_t node_mark)
{
    uint64_t kh;
    canonicalise(m);
    if (!build_key(m, &kh))
        return NONE;
    if (m->hcap) {
        uint32_t p = (uint32_t)kh & (m->hcap - 1);
        while (m->htab[p]) {
            dstate *s = &m->states[m->htab[p] - 1];
            if (s->khash == kh && s->key_len == m->n_kbuf &&
                !memcmp(m->keys + s->key_off, m->kbuf, m->n_kbuf * sizeof *m->kbuf)) {
                m->n_nodes = node_mark;
                return m->htab[p] - 1;
            }
            p = (p + 1) & (m->hcap - 1);
        }
    }
    if (m->n_states >= MAX_STATES)
        return NONE;
    if ((m->n_states + 1) * 2 > m->hcap) {
        uint32_t nc = m->hcap ? m->hcap * 2 : 256;
        uint32_t *nh = calloc(nc, sizeof *nh);
        if (!nh) {
            m->oom = true;
            return NONE;
        }
        for (uint32_t i = 0; i < m->n_states; i++) {
            uint32_t p = (uint32_t)m->states[i].khash & (nc - 1);
            while (nh[p])
                p = (p + 1) & (nc - 1);
            nh[p] = i + 1;
        }
        free(m->htab);
        m->htab = nh;
        m->hcap = nc;
    }
    size_t cs = m->cap_states;
    if (!grow((void **)&m->states, &cs, (size_t)m->n_states + 1, sizeof *m->states) ||
        !grow((void **)&m->stops, &m->cap_stops, m->n_stops + m->n_tmp, sizeof *m->stops) ||
        !grow((void **)&m->keys, &m->cap_keys, m->n_keys + m->n_kbuf, sizeof *m->keys)) {
        m->oom = true;
        return NONE;
    }
    m->cap_states = (uint32_t)cs;
    dstate *s = &m->states[m->n_states];
    memset(s, 0, sizeof *s);
    s->tops_off = (uint32_t)m->n_stops;
    s->n_tops = (uint32_t)m->n_tmp;
    s->key_off = (uint32_t)m->n_keys;
    s->key_len = (uint32_t)m->n_kbuf;
    s->khash = kh;
    memcpy(m->stops + m->n_stops, m->tmp, m->n_tmp * sizeof *m->tmp);
    memcpy(m->keys + m->n_keys, m->kbuf, m->n_kbuf * sizeof *m->kbuf);
    m->n_stops += m->n_tmp;
    m->n_keys += m->n_kbuf;
    s->done = m->n_tmp > 0;
    for (size_t i = 0; i < m->n_tmp; i++) {
        if (m->tmp[i] == ACCEPT)
            s->accept = true;
        else
            s->done = false;
    }
    uint32_t p = (uint32_t)kh & (m->hcap - 1);
    while (m->htab[p])
        p = (p + 1) & (m->hcap - 1);
    m->htab[p] = m->n_states + 1;
    return m->n_states++;
}

/* The state after byte c from state s: a state id, or NONE for "no stack
 * accepts c" (and when the DFA is full or memory ran out). */
static uint32_t step(al_grammar_matcher *m, uint32_t s, unsigned char c)
{
    dstate *st = &m->states[s];
    if (st->trans) {
        uint32_t t = st->trans[c];
        if (t != T_UNKNOWN)
            return t == T_DEAD ? NONE : t - 2;
    } else if (!(st->trans = calloc(256, sizeof *st->trans))) {
        m->oom = true;
        return NONE;
    }
    if (m->work_done >= m->work_limit) {
        m->over_budget = true;
        return NONE; /* not cached: computed when needed outside a walk */
    }
    uint32_t mark = m->n_nodes;
    m->n_tmp = 0;
    const al_grammar *g = m->g;
    for (uint32_t i = 0; i < m->states[s].n_tops; i++) {
        uint32_t t = m->stops[m->states[s].tops_off + i];
        if (t == ACCEPT)
            continue;
        uint32_t pos = m->nodes[t].pos;
        if (ge_set_has(&g->sets[GE_ARG(g->elems[pos])], c))
            expand(m, pos + 1, m->nodes[t].parent);
    }
    uint32_t r = NONE;
    m->work_done += m->states[s].n_tops;
    if (m->n_tmp == 0) {
        m->n_nodes = mark;
        m->states[s].trans[c] = T_DEAD;
        return NONE;
    }
    if (!m->oom)
        r = intern(m, mark);
    m->work_done += m->n_tmp + m->n_kbuf; /* sorting and keying the new stacks */
    if (r != NONE)
        m->states[s].trans[c] = r + 2;
    else
        m->n_nodes = mark; /* full: not cached, the branch is dropped */
    return r;
}

static void reset_store(al_grammar_matcher *m)
{
    for (uint32_t i = 0; i < m->n_states; i++)
        free(m->states[i].trans);
    m->n_states = 0;
    m->n_nodes = 0;
    m->n_stops = 0;
    m->n_keys = 0;
    if (m->htab)
        memset(m->htab, 0, m->hcap * sizeof *m->htab);
}

/* Rebuilds the DFA with only the current state (when it grew too big). */
static bool compact(al_grammar_matcher *m)
{
    dstate cur = m->states[m->cur];
    size_t n_keep = cur.n_tops;
    uint32_t *keep_pos = NULL;
    size_t n_pos = 0;
    /* the current stacks as (pos...) chains, bottom-up rebuilt below */
    for (size_t i = 0; i < n_keep; i++) {
        uint32_t t = m->stops[cur.tops_off + i];
        n_pos += 2 + (t == ACCEPT ? 0 : m->nodes[t].depth);
    }
    keep_pos = malloc((n_pos ? n_pos : 1) * sizeof *keep_pos);
    if (!keep_pos)
        return false;
    size_t w = 0;
    for (size_t i = 0; i < n_keep; i++) {
        uint32_t t = m->stops[cur.tops_off + i];
        if (t == ACCEPT) {
            keep_pos[w++] = ACCEPT;
            keep_pos[w++] = KEY_SEP;
            continue;
        }
        uint32_t d = m->nodes[t].depth;
        keep_pos[w++] = d;
        size_t base = w;
        w += d;
        for (uint32_t n = t, k = 0; n != NONE; n = m->nodes[n].parent, k++)
            keep_pos[base + d - 1 - k] = m->nodes[n].pos; /* bottom first */
    }
    reset_store(m);
    m->n_tmp = 0;
    for (size_t r = 0; r < w;) {
        if (keep_pos[r] == ACCEPT) {
            push_tmp(m, ACCEPT);
            r += 2;
            continue;
        }
        uint32_t d = keep_pos[r++], parent = NONE;
        for (uint32_t k = 0; k < d; k++)
            parent = new_node(m, keep_pos[r + k], parent);
        r += d;
        if (parent != NONE)
            push_tmp(m, parent);
    }
    free(keep_pos);
    uint32_t id = m->oom ? NONE : intern(m, m->n_nodes);
    if (id == NONE)
        return false;
    m->cur = id;
    return true;
}

al_grammar_matcher *al_grammar_matcher_new(const al_grammar *g, const al_token_trie *trie, al_grammar_cache *cache)
{
    if (!g || !trie)
        return NULL;
    al_grammar_matcher *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->g = g;
    m->trie = trie;
    m->cache = cache;
    if (!cache) {
        m->cache = al_grammar_cache_new(trie->n_vocab, 8);
        m->own_cache = true;
    }
    m->lvl = malloc(((size_t)trie->max_depth + 1) * sizeof *m->lvl);
    m->work_limit = UINT64_MAX;
    if (!m->cache || !m->lvl) {
        al_grammar_matcher_free(m);
        return NULL;
    }
    /* the start state: every alternative of root */
    m->n_tmp = 0;
    uint32_t a0 = g->rule_alt[g->root], a1 = g->rule_alt[g->root + 1];
    for (uint32_t a = a0; a < a1; a++)
        expand(m, g->alt_start[a], NONE);
    m->cur = m->oom ? NONE : intern(m, m->n_nodes);
    if (m->cur == NONE) {
        al_grammar_matcher_free(m);
        return NULL;
    }
    return m;
}

void al_grammar_matcher_free(al_grammar_matcher *m)
{
    if (!m)
        return;
    for (uint32_t i = 0; i < m->n_states; i++)
        free(m->states[i].trans);
    if (m->own_cache)
        al_grammar_cache_free(m->cache);
    free(m->nodes);
    free(m->states);
    free(m->stops);
    free(m->keys);
    free(m->htab);
    free(m->tmp);
    free(m->work);
    free(m->kbuf);
    free(m->lvl);
    free(m);
}

bool al_grammar_matcher_can_end(const al_grammar_matcher *m) { return m && m->states[m->cur].accept; }

bool al_grammar_matcher_done(const al_grammar_matcher *m) { return m && m->states[m->cur].done; }

static void allow_node(const al_token_trie *t, const tnode *nd, uint64_t *mask)
{
    for (uint32_t k = 0; k < nd->tok_count; k++) {
        int32_t id = t->sorted[nd->tok_begin + k];
        mask[id >> 6] |= 1ull << (id & 63);
    }
}

/* Computes the mask of state m->cur into mask (words of bits). The
 * single-byte tokens come first and without a budget, so that a walk cut
 * short by the budget still allows every next byte the grammar accepts
 * (no dead end); then the whole trie, within WALK_WORK_MAX. */
static void walk(al_grammar_matcher *m, uint64_t *mask, size_t words)
{
    const al_token_trie *t = m->trie;
    memset(mask, 0, words * sizeof *mask);
    const tnode *nd = t->nodes;
    m->over_budget = false;
    for (uint32_t i = 0; i < t->n_nodes; i = nd[i].skip)
        if (step(m, m->cur, nd[i].byte) != NONE)
            allow_node(t, &nd[i], mask);
    m->work_done = 0;
    m->work_limit = WALK_WORK_MAX;
    m->lvl[0] = m->cur;
    for (uint32_t i = 0; i < t->n_nodes;) {
        uint32_t d = nd[i].depth;
        uint32_t s = step(m, m->lvl[d - 1], nd[i].byte);
        if (s == NONE) {
            i = nd[i].skip;
            continue;
        }
        m->lvl[d] = s;
        allow_node(t, &nd[i], mask);
        i++;
    }
    m->work_limit = UINT64_MAX;
    if (m->states[m->cur].accept)
        for (uint32_t k = 0; k < t->n_eog; k++)
            mask[t->eog[k] >> 6] |= 1ull << (t->eog[k] & 63);
}

const uint64_t *al_grammar_matcher_mask(al_grammar_matcher *m)
{
    if (!m || m->cache->n_vocab != m->trie->n_vocab)
        return NULL;
    if (m->n_states > MAX_STATES / 2 && !compact(m))
        return NULL;
    const dstate *s = &m->states[m->cur];
    const uint32_t *key = m->keys + s->key_off;
    centry *e = cache_find(m->cache, m->g->sha, s->khash, key, s->key_len);
    if (e)
        return e->mask;
    e = cache_claim(m->cache, m->g->sha, s->khash, key, s->key_len);
    if (!e)
        return NULL;
    walk(m, e->mask, m->cache->words);
    if (m->oom || m->over_budget) { /* the mask may miss tokens: do not keep it */
        e->used = 0;
        e->klen = 0;
    }
    /* Out of memory, the mask may allow nothing at all (every logit
     * -INFINITY): an error, not a mask. (m->oom sticks: the matcher is done.) */
    return m->oom ? NULL : e->mask;
}

al_status al_grammar_matcher_apply(al_grammar_matcher *m, float *logits)
{
    const uint64_t *mask = al_grammar_matcher_mask(m);
    if (!mask)
        return AL_ERR_NOMEM;
    int32_t n = m->trie->n_vocab;
    for (int32_t w = 0; w * 64 < n; w++) {
        uint64_t b = mask[w];
        if (b == UINT64_MAX)
            continue;
        int32_t end = (w + 1) * 64 < n ? (w + 1) * 64 : n;
        for (int32_t t = w * 64; t < end; t++)
            if (!((b >> (t & 63)) & 1u))
                logits[t] = -INFINITY;
    }
    return AL_OK;
}

bool al_grammar_matcher_accept_bytes(al_grammar_matcher *m, const char *s, size_t n)
{
    if (!m || (n && !s))
        return false;
    if (m->n_states > MAX_STATES / 2 && !compact(m))
        return false;
    uint32_t st = m->cur;
    for (size_t i = 0; i < n; i++) {
        st = step(m, st, (unsigned char)s[i]);
        if (st == NONE)
            return false;
    }
    m->cur = st;
    return true;
}

al_status al_grammar_matcher_accept_token(al_grammar_matcher *m, int32_t t)
{
    if (!m || t < 0 || t >= m->trie->n_vocab)
        return AL_ERR_ARG;
    for (uint32_t k = 0; k < m->trie->n_eog; k++)
        if (m->trie->eog[k] == t)
            return m->states[m->cur].accept ? AL_OK : AL_ERR_ARG;
    uint32_t n = m->trie->poff[t + 1] - m->trie->poff[t];
    if (n == 0)
        return AL_ERR_ARG; /* an empty piece: never allowed */
    return al_grammar_matcher_accept_bytes(m, m->trie->pieces + m->trie->poff[t], n) ? AL_OK : AL_ERR_ARG;
}

/* Feeds s[0..n) to a matcher without a vocabulary (a one-token stand-in
 * trie); *complete: the text is a sentence. */
static bool feed_text(const al_grammar *g, const char *s, size_t n, bool *complete)
{
    al_token_trie t;
    memset(&t, 0, sizeof t);
    t.n_vocab = 1;
    al_grammar_matcher *m = al_grammar_matcher_new(g, &t, NULL);
    if (!m)
        return false;
    bool ok = al_grammar_matcher_accept_bytes(m, s, n);
    *complete = ok && al_grammar_matcher_can_end(m);
    al_grammar_matcher_free(m);
    return ok;
}

bool al_grammar_accepts(const al_grammar *g, const char *s, size_t n)
{
    bool complete = false;
    return feed_text(g, s, n, &complete) && complete;
}

bool al_grammar_accepts_prefix(const al_grammar *g, const char *s, size_t n)
{
    bool complete = false;
    return feed_text(g, s, n, &complete);
}
