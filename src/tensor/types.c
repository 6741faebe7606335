#include "tensor/types.h"

#include <stdio.h>

static const al_type_traits k_traits[AL_TYPE_COUNT] = {
    [AL_TYPE_F32] = {"F32", 1, 4, true},
    [AL_TYPE_F16] = {"F16", 1, 2, true},
    [AL_TYPE_Q4_0] = {"Q4_0", 32, 18, true},
    [AL_TYPE_Q4_1] = {"Q4_1", 32, 20, true},
    [AL_TYPE_Q5_0] = {"Q5_0", 32, 22, true},
    [AL_TYPE_Q5_1] = {"Q5_1", 32, 24, true},
    [AL_TYPE_Q8_0] = {"Q8_0", 32, 34, true},
    [AL_TYPE_Q8_1] = {"Q8_1", 32, 36, false},
    [AL_TYPE_Q2_K] = {"Q2_K", 256, 84, true},
    [AL_TYPE_Q3_K] = {"Q3_K", 256, 110, true},
    [AL_TYPE_Q4_K] = {"Q4_K", 256, 144, true},
    [AL_TYPE_Q5_K] = {"Q5_K", 256, 176, true},
    [AL_TYPE_Q6_K] = {"Q6_K", 256, 210, true},
    [AL_TYPE_Q8_K] = {"Q8_K", 256, 292, false},
    [AL_TYPE_IQ2_XXS] = {"IQ2_XXS", 256, 66, true},
    [AL_TYPE_IQ2_XS] = {"IQ2_XS", 256, 74, true},
    [AL_TYPE_IQ3_XXS] = {"IQ3_XXS", 256, 98, true},
    [AL_TYPE_IQ1_S] = {"IQ1_S", 256, 50, true},
    [AL_TYPE_IQ4_NL] = {"IQ4_NL", 32, 18, true},
    [AL_TYPE_IQ3_S] = {"IQ3_S", 256, 110, true},
    [AL_TYPE_IQ2_S] = {"IQ2_S", 256, 82, true},
    [AL_TYPE_IQ4_XS] = {"IQ4_XS", 256, 136, true},
    [24] = {"I8", 1, 1, false},
    [25] = {"I16", 1, 2, false},
    [26] = {"I32", 1, 4, false},
    [27] = {"I64", 1, 8, false},
    [28] = {"F64", 1, 8, false},
    [AL_TYPE_IQ1_M] = {"IQ1_M", 256, 56, true},
    [AL_TYPE_BF16] = {"BF16", 1, 2, true},
    [AL_TYPE_TQ1_0] = {"TQ1_0", 256, 54, true},
    [AL_TYPE_TQ2_0] = {"TQ2_0", 256, 66, true},
    [AL_TYPE_MXFP4] = {"MXFP4", 32, 17, true},
};

static const al_type_traits k_unknown = {NULL, 0, 0, false};

const al_type_traits *al_type_get(uint32_t type_id)
{
    if (type_id >= AL_TYPE_COUNT || !k_traits[type_id].name)
        return &k_unknown;
    return &k_traits[type_id];
}

size_t al_type_row_bytes(uint32_t type_id, int64_t n)
{
    const al_type_traits *t = al_type_get(type_id);
    return t->block_elems ? (size_t)(n / t->block_elems) * t->block_bytes : 0;
}

const char *al_type_name(uint32_t type_id)
{
    static _Thread_local char buf[32];
    const al_type_traits *t = al_type_get(type_id);
    if (t->name)
        return t->name;
    snprintf(buf, sizeof(buf), "type#%u", type_id);
    return buf;
}

void al_type_supported_list(char *buf, size_t cap)
{
    size_t n = 0;
    if (cap)
        buf[0] = 0;
    for (uint32_t i = 0; i < AL_TYPE_COUNT && cap; i++) {
        if (!k_traits[i].supported)
            continue;
        int w = snprintf(buf + n, cap - n, "%s%s", n ? " " : "", k_traits[i].name);
        if (w < 0 || (size_t)w >= cap - n)
            break;
        n += (size_t)w;
    }
}
